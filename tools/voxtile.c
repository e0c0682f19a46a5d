/* voxtile: command-line tool over the public API (include/voxtile.h).
 *
 *   voxtile convert IN.npy -o OUT.vxt [--tile Z,Y,X] [--codec C] [--level N] [--shuffle M] [-j N]
 *   voxtile info STORE [--json]
 *   voxtile verify STORE...
 *   voxtile extract STORE [--array NAME] --start ... --size ... [--dtype T] [--pad M] [--pad-value V] -o OUT.npy
 *
 * Errors: "voxtile: FILE: what is wrong" on stderr. Exit status: 0 success,
 * 1 failure (bad file, failed check), 2 usage error. */

#include "voxtile.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define EXIT_USAGE 2

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("voxtile: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\nTry 'voxtile --help'.\n", stderr);
    va_end(ap);
    exit(EXIT_USAGE);
}

/* A library failure: its message names the file. */
static int lib_error(const char *msg, int rc)
{
    fprintf(stderr, "voxtile: %s\n", msg && msg[0] ? msg : vt_strerror(rc));
    return 1;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *human(double bytes, char *buf, size_t len)
{
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.2f %s" : "%.0f %s", bytes, units[u]);
    return buf;
}

/* Parse "a,b,c" into up to max integers; returns the count or -1. */
static int parse_list(const char *s, int64_t *v, int max)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        if (n == max)
            return -1;
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno)
            return -1;
        v[n++] = x;
        if (*end == ',')
            p = end + 1;
        else if (*end == 0)
            p = end;
        else
            return -1;
    }
    return n;
}

static long parse_int(const char *opt, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi)
        die_usage("%s: '%s' is not an integer in %ld..%ld", opt, s, lo, hi);
    return v;
}

/* ---- convert ------------------------------------------------------------ */

static const char convert_help[] =
    "usage: voxtile convert IMAGE [IMAGE2 ...] [--seg LABEL] -o OUT.vxt [options]\n"
    "\n"
    "Convert images to a store, streaming in bounded memory. Several images become\n"
    "the channels of one image array (nnU-Net's case_0000, case_0001 ...); --seg adds\n"
    "a label array 'seg' with its label index. Inputs: .nii, .nii.gz, .hdr/.img,\n"
    ".nrrd, .nhdr, .mha, .mhd, .npy, and raw files with --raw-shape and --raw-dtype.\n"
    "A single .npy without crop or --dtype keeps any rank.\n"
    "\n"
    "  -o, --output FILE         store to write (replaced atomically)\n"
    "      --seg FILE            segmentation (same voxel grid as the images)\n"
    "      --crop Z0:Z1,Y0:Y1,X0:X1  keep this box of the source\n"
    "      --crop-nonzero        crop to the non-zero voxels of the images (nnU-Net)\n"
    "      --crop-to-label [M]   crop to the segmentation's foreground plus M voxels\n"
    "      --dtype T             store the image as T (float16, int16 ...); values must fit\n"
    "      --apply-scaling       store NIfTI scl_slope/scl_inter applied (float32)\n"
    "      --raw-shape [C,]Z,Y,X shape of .raw, .raw.gz, .bin inputs; with --raw-dtype T,\n"
    "                            --raw-offset N, --raw-big-endian, --raw-spacing Z,Y,X and\n"
    "                            --raw-seg-dtype T (a raw segmentation, default uint8)\n"
    "      --levels N            add pyramid levels image@1..image@N (and seg@k): each halves\n"
    "                            the axes whose spacing is within 3x the finest (Lanczos-3)\n"
    "      --tile Z,Y,X          tile shape (default 16,16,16)\n"
    "      --codec C             lz4hc (default), lz4 or none\n"
    "      --level N             LZ4HC level 1..12 (default 4) / LZ4 acceleration (default 1)\n"
    "      --shuffle M           byte shuffle: auto (default), on or off\n"
    "      --array NAME          image array name (default image)\n"
    "  -j, --threads N           compression threads (default: all cores)\n"
    "  -q, --quiet               no progress bar and no summary\n"
    "\n"
    "example: voxtile convert case_0000.nii.gz case_0001.nii.gz --seg case.nii.gz --crop-nonzero -o case.vxt\n";

static void progress_bar(void *ctx, double f)
{
    int *last = ctx;
    int pct = (int)(f * 100);
    if (pct == *last)
        return;
    *last = pct;
    int n = pct / 4;
    fprintf(stderr, "\r[%.*s%*s] %3d%%", n, "=========================", 25 - n, "", pct);
    if (pct >= 100)
        fputc('\n', stderr);
    fflush(stderr);
}

static int parse_crop(const char *s, int64_t *box)
{
    int n = 0;
    const char *p = s;
    for (int d = 0; d < 3; d++) {
        char *end;
        errno = 0;
        box[2 * d] = strtoll(p, &end, 10);
        if (end == p || *end != ':' || errno)
            return -1;
        p = end + 1;
        box[2 * d + 1] = strtoll(p, &end, 10);
        if (end == p || errno)
            return -1;
        n++;
        if (d < 2 && *end != ',')
            return -1;
        p = end + (d < 2);
        if (d == 2 && *end)
            return -1;
    }
    return n == 3 ? 0 : -1;
}

/* Options shared by convert and convert-dataset: how the store is written. */
#define STORE_OPTIONS                                                                                  \
    {"tile", required_argument, 0, 't'}, {"codec", required_argument, 0, 'c'},                        \
        {"level", required_argument, 0, 'l'}, {"shuffle", required_argument, 0, 's'},                 \
        {"array", required_argument, 0, 'a'}, {"crop", required_argument, 0, 'C'},                    \
        {"crop-nonzero", no_argument, 0, 'N'}, {"crop-to-label", optional_argument, 0, 'L'},          \
        {"dtype", required_argument, 0, 'd'}, {"apply-scaling", no_argument, 0, 'A'},                 \
        {"levels", required_argument, 0, 'V'}, {"raw-shape", required_argument, 0, 1001},           \
        {"raw-dtype", required_argument, 0, 1002}, {"raw-offset", required_argument, 0, 1003},       \
        {"raw-big-endian", no_argument, 0, 1004}, {"raw-spacing", required_argument, 0, 1005},      \
        {"raw-seg-dtype", required_argument, 0, 1006}

/* Apply one store option; false when @p c is not one. */
static bool store_option(int c, vt_convert_opts *o, int argc, char **argv)
{
    static vt_raw_spec raw; /* o->raw points here once a --raw-* option is given */
    if (c >= 1001 && c <= 1006)
        o->raw = &raw;
    switch (c) {
    case 1001: {
        int64_t v[4];
        int n = parse_list(optarg, v, 4);
        if (n < 3 || v[0] < 1 || v[1] < 1 || v[2] < 1 || (n == 4 && v[3] < 1))
            die_usage("--raw-shape: expected Z,Y,X or C,Z,Y,X of sizes >= 1, got '%s'", optarg);
        raw.shape[0] = n == 4 ? (uint64_t)v[0] : 1;
        for (int d = 0; d < 3; d++)
            raw.shape[d + 1] = (uint64_t)v[d + n - 3];
        return true;
    }
    case 1002:
        if (vt_dtype_parse(optarg, &raw.dtype) != 0)
            die_usage("--raw-dtype: unknown dtype '%s'", optarg);
        return true;
    case 1006:
        if (vt_dtype_parse(optarg, &raw.seg_dtype) != 0)
            die_usage("--raw-seg-dtype: unknown dtype '%s'", optarg);
        return true;
    case 1003: raw.offset = (uint64_t)parse_int("--raw-offset", optarg, 0, LONG_MAX); return true;
    case 1004: raw.big_endian = 1; return true;
    case 1005: {
        char *end = optarg;
        for (int d = 0; d < 3; d++) {
            raw.spacing[d] = strtod(end, &end);
            if (raw.spacing[d] <= 0 || (d < 2 && *end++ != ','))
                die_usage("--raw-spacing: expected Z,Y,X in mm, got '%s'", optarg);
        }
        if (*end)
            die_usage("--raw-spacing: expected Z,Y,X in mm, got '%s'", optarg);
        return true;
    }
    case 't': {
        int64_t t[3];
        if (parse_list(optarg, t, 3) != 3 || t[0] < 1 || t[1] < 1 || t[2] < 1 || t[0] > 4096 ||
            t[1] > 4096 || t[2] > 4096)
            die_usage("--tile: expected Z,Y,X with each in 1..4096, got '%s'", optarg);
        for (int i = 0; i < 3; i++)
            o->tile[i] = (uint32_t)t[i];
        return true;
    }
    case 'c':
        if (strcmp(optarg, "lz4hc") == 0)
            o->codec = VT_CODEC_LZ4HC;
        else if (strcmp(optarg, "lz4") == 0)
            o->codec = VT_CODEC_LZ4;
        else if (strcmp(optarg, "none") == 0)
            o->codec = VT_CODEC_NONE;
        else
            die_usage("--codec: expected lz4hc, lz4 or none, got '%s'", optarg);
        return true;
    case 'l': o->level = (int)parse_int("--level", optarg, 1, 65537); return true;
    case 's':
        if (strcmp(optarg, "auto") == 0)
            o->filter = VT_FILTER_AUTO;
        else if (strcmp(optarg, "on") == 0)
            o->filter = VT_FILTER_SHUFFLE;
        else if (strcmp(optarg, "off") == 0)
            o->filter = VT_FILTER_NONE;
        else
            die_usage("--shuffle: expected auto, on or off, got '%s'", optarg);
        return true;
    case 'a': o->array = optarg; return true;
    case 'C':
        if (parse_crop(optarg, o->crop) != 0)
            die_usage("--crop: expected Z0:Z1,Y0:Y1,X0:X1, got '%s'", optarg);
        o->crop_mode = VT_CROP_BOX;
        return true;
    case 'N': o->crop_mode = VT_CROP_NONZERO; return true;
    case 'L':
        o->crop_mode = VT_CROP_LABEL;
        /* an optional argument may also come as the next word: --crop-to-label 5 */
        if (optarg == NULL && optind < argc && argv[optind][0] >= '0' && argv[optind][0] <= '9')
            optarg = argv[optind++];
        o->crop_margin = optarg ? parse_int("--crop-to-label", optarg, 0, 1 << 30) : 0;
        return true;
    case 'd':
        if (vt_dtype_parse(optarg, &o->dtype) != 0)
            die_usage("--dtype: unknown dtype '%s'", optarg);
        return true;
    case 'A': o->apply_scaling = 1; return true;
    case 'V': o->levels = (int)parse_int("--levels", optarg, 0, 16); return true;
    default: return false;
    }
}

static int cmd_convert(int argc, char **argv)
{
    static const struct option opts[] = {STORE_OPTIONS,
                                         {"output", required_argument, 0, 'o'},
                                         {"threads", required_argument, 0, 'j'},
                                         {"seg", required_argument, 0, 'S'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    vt_convert_opts o;
    vt_convert_opts_init(&o);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o.threads = ncpu > 0 ? (int)ncpu : 1;
    const char *out = NULL, *seg = NULL;
    int c, quiet = 0;
    while ((c = getopt_long(argc, argv, "o:j:qh", opts, NULL)) != -1) {
        if (store_option(c, &o, argc, argv))
            continue;
        switch (c) {
        case 'o': out = optarg; break;
        case 'S': seg = optarg; break;
        case 'j': o.threads = (int)parse_int("-j", optarg, 1, 1024); break;
        case 'q': quiet = 1; break;
        case 'h': fputs(convert_help, stdout); return 0;
        default: die_usage("convert: bad option");
        }
    }
    if (optind >= argc)
        die_usage("convert: expected at least one input image");
    if (out == NULL)
        die_usage("convert: -o OUT.vxt is required");
    if (o.codec == VT_CODEC_NONE)
        o.level = 0;
    int last = -1;
    if (!quiet && isatty(STDERR_FILENO)) {
        o.progress = progress_bar;
        o.progress_ctx = &last;
    }
    const char *const *in = (const char *const *)(argv + optind);
    size_t nin = (size_t)(argc - optind);
    double t0 = now();
    int rc = nin == 1 && seg == NULL ? vt_convert(in[0], out, &o) : vt_convert_images(in, nin, seg, out, &o);
    if (last >= 0 && last < 100)
        fputc('\n', stderr);
    if (rc)
        return lib_error(vt_errmsg(NULL), rc);
    double dt = now() - t0;
    if (quiet)
        return 0;
    vt_store *s;
    rc = vt_open(out, 0, &s);
    if (rc)
        return lib_error(vt_errmsg(NULL), rc);
    for (size_t i = 0; i < vt_store_narrays(s); i++) {
        const vt_array *a;
        vt_array_info ai;
        vt_store_array_at(s, i, &a);
        vt_array_info_get(a, &ai);
        char b1[32], b2[32];
        printf("%s: '%s' %s (", out, ai.name, vt_dtype_name(ai.dtype));
        for (int d = 0; d < ai.ndim; d++)
            printf("%s%" PRIu64, d ? ", " : "", ai.shape[d]);
        printf(") %s stored of %s raw, ratio %.3f", human((double)ai.stored_bytes, b1, sizeof b1),
               human((double)ai.raw_bytes, b2, sizeof b2),
               (double)ai.raw_bytes / (double)(ai.stored_bytes ? ai.stored_bytes : 1));
        if (vt_label_count(a))
            printf(", %zu labels", vt_label_count(a));
        printf("\n");
    }
    printf("%s: converted %zu image%s%s in %.2f s with %d thread%s\n", out, nin, nin == 1 ? "" : "s",
           seg ? " and a segmentation" : "", dt, o.threads, o.threads == 1 ? "" : "s");
    vt_close(s);
    return 0;
}

/* ---- convert-dataset ---------------------------------------------------- */

static const char dataset_help[] =
    "usage: voxtile convert-dataset RAW_DIR -o OUT_DIR [-j N] [store options]\n"
    "\n"
    "Convert an nnU-Net raw dataset folder (dataset.json, imagesTr/CASE_XXXX.nii.gz,\n"
    "labelsTr/CASE.nii.gz, optional imagesTs/) to one store per case: OUT_DIR/CASE.vxt\n"
    "(with 'seg' when a label exists) and OUT_DIR/imagesTs/CASE.vxt, plus a copy of\n"
    "dataset.json. Cases run in parallel; a rerun skips cases already converted; a\n"
    "failing case is reported and the others go on (exit status 1 if any failed).\n"
    "\n"
    "  -o, --output DIR          output folder (created)\n"
    "  -j, --jobs N              cases converted at once (default: all cores)\n"
    "  store options as for convert: --crop-nonzero, --crop-to-label [M], --levels N,\n"
    "  --dtype T, --tile Z,Y,X, --codec C, --level N, --shuffle M, --apply-scaling\n"
    "\n"
    "example: voxtile convert-dataset nnUNet_raw/Dataset001_Liver -o stores/Dataset001 -j 8 --crop-nonzero\n";

/* The string value of "key" in JSON text (first occurrence), malloc'd, or NULL. */
static char *json_string_value(const char *text, const char *key)
{
    char pat[256];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(text, pat);
    if (p == NULL)
        return NULL;
    p += strlen(pat);
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ':')
        p++;
    if (*p != '"')
        return NULL;
    const char *e = strchr(p + 1, '"');
    return e ? strndup(p + 1, (size_t)(e - p - 1)) : NULL;
}

/* Members of the object value of "key" in JSON text, or -1. */
static int json_object_size(const char *text, const char *key)
{
    char pat[256];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(text, pat);
    if (p == NULL)
        return -1;
    p += strlen(pat);
    while (*p && *p != '{' && *p != '[' && *p != '"' && !(*p >= '0' && *p <= '9'))
        p++;
    if (*p != '{')
        return -1;
    int depth = 0, n = 0;
    bool str = false, any = false;
    for (; *p; p++) {
        if (str) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                str = false;
            continue;
        }
        if (*p == '"')
            str = true;
        if (*p == '{' || *p == '[')
            depth++;
        else if (*p == '}' || *p == ']') {
            if (--depth == 0)
                return any ? n + 1 : 0;
        } else if (depth == 1 && *p == ',')
            n++;
        if (depth == 1 && *p == ':')
            any = true;
    }
    return -1;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 8192;
            char *n = realloc(buf, cap);
            if (n == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = n;
        }
        size_t k = fread(buf + len, 1, 4096, f);
        len += k;
        if (k < 4096)
            break;
    }
    fclose(f);
    buf[len] = 0;
    return buf;
}

typedef struct dcase {
    char *id;
    char **chan; /* channel files, by channel number */
    int nchan;
    char *label;
    char *out;
} dcase;

static int cmp_case(const void *a, const void *b)
{
    return strcmp(((const dcase *)a)->id, ((const dcase *)b)->id);
}

/* The cases of one images folder: CASE_XXXX<ending> grouped by CASE. */
static int list_cases(const char *dir, const char *ending, int nchan, const char *labels_dir,
                      const char *out_dir, dcase **cases, size_t *ncases)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    size_t el = strlen(ending);
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < el + 5 || strcmp(e->d_name + n - el, ending) != 0 || e->d_name[n - el - 5] != '_')
            continue;
        const char *num = e->d_name + n - el - 4;
        if (!(num[0] >= '0' && num[0] <= '9' && num[1] >= '0' && num[1] <= '9' && num[2] >= '0' &&
              num[2] <= '9' && num[3] >= '0' && num[3] <= '9'))
            continue;
        int ch = atoi(num);
        char *id = strndup(e->d_name, n - el - 5);
        dcase *c = NULL;
        for (size_t i = 0; i < *ncases; i++)
            if (strcmp((*cases)[i].id, id) == 0 && strncmp((*cases)[i].out, out_dir, strlen(out_dir)) == 0 &&
                (*cases)[i].out[strlen(out_dir)] == '/' && strchr((*cases)[i].out + strlen(out_dir) + 1, '/') == NULL)
                c = &(*cases)[i];
        if (c == NULL) {
            dcase *nc = realloc(*cases, (*ncases + 1) * sizeof *nc);
            if (nc == NULL) {
                closedir(d);
                return -1;
            }
            *cases = nc;
            c = &nc[(*ncases)++];
            memset(c, 0, sizeof *c);
            c->id = id;
            c->nchan = nchan;
            c->chan = calloc((size_t)nchan, sizeof *c->chan);
            size_t ol = strlen(out_dir) + strlen(id) + 8;
            c->out = malloc(ol);
            snprintf(c->out, ol, "%s/%s.vxt", out_dir, id);
            if (labels_dir) {
                size_t ll = strlen(labels_dir) + strlen(id) + el + 2;
                char *lp = malloc(ll);
                snprintf(lp, ll, "%s/%s%s", labels_dir, id, ending);
                if (access(lp, R_OK) == 0)
                    c->label = lp;
                else
                    free(lp);
            }
        } else
            free(id);
        if (ch < c->nchan && c->chan[ch] == NULL) {
            size_t pl = strlen(dir) + n + 2;
            c->chan[ch] = malloc(pl);
            snprintf(c->chan[ch], pl, "%s/%s", dir, e->d_name);
        }
    }
    closedir(d);
    return 0;
}

static int mkdirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(buf, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

/* Convert one case (in a child process); 0 on success. */
static int convert_case(const dcase *c, const vt_convert_opts *o)
{
    for (int i = 0; i < c->nchan; i++)
        if (c->chan[i] == NULL) {
            fprintf(stderr, "voxtile: case %s: channel %04d is missing\n", c->id, i);
            return 1;
        }
    int rc = vt_convert_images((const char *const *)c->chan, (size_t)c->nchan, c->label, c->out, o);
    if (rc) {
        fprintf(stderr, "voxtile: case %s: %s\n", c->id, vt_errmsg(NULL));
        return 1;
    }
    return 0;
}

static int cmd_convert_dataset(int argc, char **argv)
{
    static const struct option opts[] = {STORE_OPTIONS,
                                         {"output", required_argument, 0, 'o'},
                                         {"jobs", required_argument, 0, 'j'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    vt_convert_opts o;
    vt_convert_opts_init(&o);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int jobs = ncpu > 0 ? (int)ncpu : 1, c, quiet = 0;
    const char *out = NULL;
    while ((c = getopt_long(argc, argv, "o:j:qh", opts, NULL)) != -1) {
        if (store_option(c, &o, argc, argv))
            continue;
        switch (c) {
        case 'o': out = optarg; break;
        case 'j': jobs = (int)parse_int("-j", optarg, 1, 1024); break;
        case 'q': quiet = 1; break;
        case 'h': fputs(dataset_help, stdout); return 0;
        default: die_usage("convert-dataset: bad option");
        }
    }
    if (optind + 1 != argc || out == NULL)
        die_usage("convert-dataset: expected RAW_DIR and -o OUT_DIR");
    const char *raw = argv[optind];
    char path[4096];
    snprintf(path, sizeof path, "%s/dataset.json", raw);
    char *json = read_text(path);
    if (json == NULL) {
        fprintf(stderr, "voxtile: %s: cannot read: %s\n", path, strerror(errno));
        return 1;
    }
    char *ending = json_string_value(json, "file_ending");
    int nchan = json_object_size(json, "channel_names");
    if (nchan < 0)
        nchan = json_object_size(json, "modality"); /* nnU-Net v1 */
    if (nchan <= 0) {
        fprintf(stderr, "voxtile: %s: no \"channel_names\" (or \"modality\") object\n", path);
        free(json);
        free(ending);
        return 1;
    }
    if (mkdirs(out) != 0) {
        fprintf(stderr, "voxtile: %s: cannot create: %s\n", out, strerror(errno));
        free(json);
        free(ending);
        return 1;
    }
    const char *end = ending ? ending : ".nii.gz";
    dcase *cases = NULL;
    size_t ncases = 0;
    char dir[4096], lab[4096], outs[4096];
    snprintf(dir, sizeof dir, "%s/imagesTr", raw);
    snprintf(lab, sizeof lab, "%s/labelsTr", raw);
    int rc = list_cases(dir, end, nchan, lab, out, &cases, &ncases);
    snprintf(dir, sizeof dir, "%s/imagesTs", raw);
    snprintf(outs, sizeof outs, "%s/imagesTs", out);
    size_t ntr = ncases;
    if (rc == 0)
        rc = list_cases(dir, end, nchan, NULL, outs, &cases, &ncases);
    if (rc == 0 && ncases > ntr && mkdirs(outs) != 0)
        rc = -1;
    qsort(cases, ntr, sizeof *cases, cmp_case);
    qsort(cases + ntr, ncases - ntr, sizeof *cases, cmp_case);
    if (rc != 0) {
        fprintf(stderr, "voxtile: %s: cannot list the cases: %s\n", raw, strerror(errno));
        free(json);
        free(ending);
        return 1;
    }
    /* dataset.json, copied atomically */
    char tmp[4200], dst[4200];
    snprintf(dst, sizeof dst, "%s/dataset.json", out);
    snprintf(tmp, sizeof tmp, "%s/.dataset.json.tmp.%d", out, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (f == NULL || fputs(json, f) < 0 || fclose(f) != 0 || rename(tmp, dst) != 0) {
        fprintf(stderr, "voxtile: %s: cannot write: %s\n", dst, strerror(errno));
        unlink(tmp);
        free(json);
        free(ending);
        return 1;
    }
    free(json);
    o.threads = 1;
    size_t done = 0, skipped = 0, failed = 0, running = 0, next = 0;
    pid_t *pids = calloc(ncases ? ncases : 1, sizeof *pids);
    double t0 = now();
    while (next < ncases || running > 0) {
        while (next < ncases && running < (size_t)jobs) {
            dcase *k = &cases[next++];
            vt_store *st;
            if (vt_open(k->out, 0, &st) == 0) { /* finished by an earlier run */
                vt_close(st);
                skipped++;
                continue;
            }
            fflush(NULL);
            pid_t pid = fork();
            if (pid < 0) {
                fprintf(stderr, "voxtile: cannot start a process: %s\n", strerror(errno));
                failed++;
                continue;
            }
            if (pid == 0)
                _exit(convert_case(k, &o));
            pids[next - 1] = pid;
            running++;
        }
        if (running == 0)
            break;
        int status;
        pid_t pid = wait(&status);
        if (pid < 0)
            break;
        running--;
        for (size_t i = 0; i < ncases; i++)
            if (pids[i] == pid) {
                bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
                if (!ok && !(WIFEXITED(status)))
                    fprintf(stderr, "voxtile: case %s: the converter died (signal %d)\n", cases[i].id,
                            WIFSIGNALED(status) ? WTERMSIG(status) : 0);
                if (ok)
                    done++;
                else
                    failed++;
                if (!quiet && isatty(STDERR_FILENO))
                    fprintf(stderr, "\r%zu of %zu cases", done + skipped + failed, ncases);
            }
    }
    if (!quiet && isatty(STDERR_FILENO))
        fputc('\n', stderr);
    if (!quiet)
        printf("%s: %zu cases: %zu converted, %zu already there, %zu failed, in %.1f s with %d jobs\n", out, ncases,
               done, skipped, failed, now() - t0, jobs);
    for (size_t i = 0; i < ncases; i++) {
        for (int ch = 0; ch < cases[i].nchan; ch++)
            free(cases[i].chan[ch]);
        free(cases[i].chan);
        free(cases[i].id);
        free(cases[i].label);
        free(cases[i].out);
    }
    free(cases);
    free(pids);
    free(ending);
    return failed ? 1 : 0;
}

/* ---- info --------------------------------------------------------------- */

static const char info_help[] =
    "usage: voxtile info STORE [--json]\n"
    "\n"
    "Summarise a store: arrays (dtype, shape, tiles, codec, raw vs stored bytes,\n"
    "value range) and metadata. --json prints one JSON object (see docs/cli.md).\n"
    "\n"
    "example: voxtile info ct.vxt --json\n";

static void json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void json_double(double v)
{
    if (isnan(v) || isinf(v))
        printf("null");
    else
        printf("%.17g", v);
}

static void print_meta_value(vt_meta_type type, const void *data, size_t count, int json)
{
    switch (type) {
    case VT_META_STRING:
        if (json)
            json_string(data);
        else
            printf("\"%s\"", (const char *)data);
        break;
    case VT_META_F64:
    case VT_META_I64:
        putchar('[');
        for (size_t i = 0; i < count; i++) {
            if (i)
                printf(", ");
            if (type == VT_META_I64)
                printf("%" PRId64, ((const int64_t *)data)[i]);
            else if (json)
                json_double(((const double *)data)[i]);
            else
                printf("%g", ((const double *)data)[i]);
        }
        putchar(']');
        break;
    default: /* bytes as hex; the text view shows the first 16 */
        putchar('"');
        for (size_t i = 0; i < count && (json || i < 16); i++)
            printf("%02x", ((const unsigned char *)data)[i]);
        if (!json && count > 16)
            printf("...");
        putchar('"');
        if (!json)
            printf(" (%zu bytes)", count);
        break;
    }
}

static const char *filter_name(vt_filter f)
{
    return f == VT_FILTER_SHUFFLE ? "shuffle" : f == VT_FILTER_AUTO ? "auto" : "none";
}

static int cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, 0, 'J'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int json = 0, c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'J')
            json = 1;
        else if (c == 'h') {
            fputs(info_help, stdout);
            return 0;
        } else
            die_usage("info: bad option");
    }
    if (optind + 1 != argc)
        die_usage("info: expected one store");
    vt_store *s;
    int rc = vt_open(argv[optind], 0, &s);
    if (rc)
        return lib_error(vt_errmsg(NULL), rc);
    size_t na = vt_store_narrays(s);
    char b1[32], b2[32];
    if (json) {
        printf("{\"path\": ");
        json_string(vt_store_path(s));
        printf(", \"file_size\": %" PRIu64 ", \"format_version\": %u, \"writer_version\": %u, \"arrays\": [",
               vt_store_file_size(s), vt_store_format_version(s), vt_store_writer_version(s));
    } else {
        uint32_t wv = vt_store_writer_version(s);
        printf("%s: voxtile store, format %u, written by voxtile %u.%u.%u, %s\n", vt_store_path(s),
               vt_store_format_version(s), wv / 10000, wv / 100 % 100, wv % 100,
               human((double)vt_store_file_size(s), b1, sizeof b1));
    }
    for (size_t i = 0; i < na; i++) {
        const vt_array *a;
        vt_array_info ai;
        vt_store_array_at(s, i, &a);
        vt_array_info_get(a, &ai);
        double ratio = (double)ai.raw_bytes / (double)(ai.stored_bytes ? ai.stored_bytes : 1);
        if (json) {
            printf("%s{\"name\": ", i ? ", " : "");
            json_string(ai.name);
            printf(", \"dtype\": \"%s\", \"shape\": [", vt_dtype_name(ai.dtype));
            for (int d = 0; d < ai.ndim; d++)
                printf("%s%" PRIu64, d ? ", " : "", ai.shape[d]);
            printf("], \"tile\": [");
            for (int d = 0; d < ai.ndim; d++)
                printf("%s%u", d ? ", " : "", ai.tile[d]);
            printf("], \"grid\": [");
            for (int d = 0; d < ai.ndim; d++)
                printf("%s%" PRIu64, d ? ", " : "", ai.grid[d]);
            printf("], \"tiles\": %" PRIu64 ", \"codec\": \"%s\", \"level\": %d, \"filter\": \"%s\"",
                   ai.ntiles, vt_codec_name(ai.codec), ai.level, filter_name(ai.filter));
            printf(", \"raw_bytes\": %" PRIu64 ", \"stored_bytes\": %" PRIu64 ", \"ratio\": %.4f",
                   ai.raw_bytes, ai.stored_bytes, ratio);
            printf(", \"constant_tiles\": %" PRIu64 ", \"raw_tiles\": %" PRIu64
                   ", \"shuffled_tiles\": %" PRIu64 ", \"min\": ",
                   ai.constant_tiles, ai.raw_tiles, ai.shuffled_tiles);
            json_double(ai.min);
            printf(", \"max\": ");
            json_double(ai.max);
            printf(", \"fill\": ");
            json_double(ai.fill);
            if (vt_label_count(a)) {
                printf(", \"labels\": [");
                for (size_t l = 0; l < vt_label_count(a); l++) {
                    vt_label_info li;
                    vt_label_get(a, l, &li);
                    printf("%s{\"value\": %" PRId64 ", \"voxels\": %" PRIu64 ", \"tiles\": %" PRIu64 "}",
                           l ? ", " : "", li.value, li.voxels, li.ntiles);
                }
                printf("]");
            }
            printf("}");
        } else {
            printf("array '%s': %s (", ai.name, vt_dtype_name(ai.dtype));
            for (int d = 0; d < ai.ndim; d++)
                printf("%s%" PRIu64, d ? ", " : "", ai.shape[d]);
            printf("), tile (");
            for (int d = 0; d < ai.ndim; d++)
                printf("%s%u", d ? ", " : "", ai.tile[d]);
            printf("), %" PRIu64 " tiles\n", ai.ntiles);
            printf("  codec %s", vt_codec_name(ai.codec));
            if (ai.codec != VT_CODEC_NONE)
                printf(" level %d", ai.level);
            printf(", shuffle %s; tiles: %" PRIu64 " shuffled, %" PRIu64 " raw, %" PRIu64 " constant\n",
                   filter_name(ai.filter), ai.shuffled_tiles, ai.raw_tiles, ai.constant_tiles);
            printf("  %s raw, %s stored, ratio %.3f\n", human((double)ai.raw_bytes, b1, sizeof b1),
                   human((double)ai.stored_bytes, b2, sizeof b2), ratio);
            printf("  values [%g, %g], fill %g\n", ai.min, ai.max, ai.fill);
            if (vt_label_count(a)) {
                printf("  %zu labels (value: voxels):", vt_label_count(a));
                for (size_t l = 0; l < vt_label_count(a); l++) {
                    vt_label_info li;
                    vt_label_get(a, l, &li);
                    printf("%s %" PRId64 ": %" PRIu64, l % 8 ? "," : (l ? "\n   " : ""), li.value, li.voxels);
                }
                printf("\n");
            }
        }
    }
    size_t nm = vt_meta_count(s);
    if (json)
        printf("], \"metadata\": {");
    else if (nm)
        printf("metadata:\n");
    for (size_t i = 0; i < nm; i++) {
        const char *key;
        vt_meta_type type;
        const void *data;
        size_t count;
        vt_meta_at(s, i, &key, &type, &data, &count);
        if (json) {
            printf("%s", i ? ", " : "");
            json_string(key);
            printf(": ");
        } else
            printf("  %s = ", key);
        print_meta_value(type, data, count, json);
        if (!json)
            putchar('\n');
    }
    if (json)
        printf("}}\n");
    vt_close(s);
    return 0;
}

/* ---- verify ------------------------------------------------------------- */

static const char verify_help[] =
    "usage: voxtile verify STORE...\n"
    "\n"
    "Check every structure and every tile (checksum, decode, min/max) of each store.\n"
    "Prints 'FILE: ok' or the first problem of each; exits 0 only when all are ok.\n"
    "\n"
    "example: voxtile verify cases/*.vxt\n";

static int cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(verify_help, stdout);
            return 0;
        }
        die_usage("verify: bad option");
    }
    if (optind >= argc)
        die_usage("verify: expected at least one store");
    int bad = 0, total = argc - optind;
    for (int i = optind; i < argc; i++) {
        vt_store *s;
        int rc = vt_open(argv[i], 0, &s);
        if (rc) {
            lib_error(vt_errmsg(NULL), rc);
            bad++;
            continue;
        }
        uint64_t tiles = 0;
        for (size_t k = 0; k < vt_store_narrays(s) && rc == 0; k++) {
            const vt_array *a;
            vt_array_info ai;
            vt_store_array_at(s, k, &a);
            vt_array_info_get(a, &ai);
            rc = vt_verify_array(a, NULL);
            if (rc)
                lib_error(vt_errmsg(s), rc);
            tiles += ai.ntiles;
        }
        if (rc == 0)
            printf("%s: ok (%zu arrays, %" PRIu64 " tiles)\n", argv[i], vt_store_narrays(s), tiles);
        else
            bad++;
        vt_close(s);
    }
    if (total > 1)
        printf("%d of %d stores ok\n", total - bad, total);
    return bad ? 1 : 0;
}

/* ---- extract ------------------------------------------------------------ */

static const char extract_help[] =
    "usage: voxtile extract STORE --start C,Z,Y,X --size C,Z,Y,X -o OUT.npy [options]\n"
    "\n"
    "Read a box through the lazy reader and save it as .npy. The box may start\n"
    "below 0 and run past the shape; outside voxels come from the pad mode.\n"
    "\n"
    "      --array NAME        array to read (default: image, else the first)\n"
    "      --start LIST        first voxel, one entry per dimension\n"
    "      --size LIST         box extent, one entry per dimension\n"
    "      --dtype T           output dtype (uint8 int8 uint16 int16 uint32 int32\n"
    "                          float16 float32 float64; default: stored)\n"
    "      --pad M             constant (default), edge or reflect\n"
    "      --pad-value V       value of constant padding (default 0)\n"
    "  -o, --output FILE       .npy to write\n"
    "\n"
    "example: voxtile extract ct.vxt --start 0,-16,40,40 --size 1,64,64,64 --dtype float16 -o patch.npy\n";

static const char *npy_descr(vt_dtype d)
{
    switch (d) {
    case VT_U8: return "|u1";
    case VT_I8: return "|i1";
    case VT_U16: return "<u2";
    case VT_I16: return "<i2";
    case VT_U32: return "<u4";
    case VT_I32: return "<i4";
    case VT_F16: return "<f2";
    case VT_F32: return "<f4";
    case VT_F64: return "<f8";
    default: return NULL;
    }
}

static int cmd_extract(int argc, char **argv)
{
    static const struct option opts[] = {
        {"array", required_argument, 0, 'a'}, {"start", required_argument, 0, 's'},
        {"size", required_argument, 0, 'z'},  {"dtype", required_argument, 0, 'd'},
        {"pad", required_argument, 0, 'p'},   {"pad-value", required_argument, 0, 'v'},
        {"output", required_argument, 0, 'o'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *name = NULL, *out = NULL;
    int64_t start[VT_MAX_DIMS], size[VT_MAX_DIMS];
    int nstart = -1, nsize = -1, c;
    vt_read_opts ro;
    vt_read_opts_init(&ro);
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'a': name = optarg; break;
        case 's':
            if ((nstart = parse_list(optarg, start, VT_MAX_DIMS)) < 1)
                die_usage("--start: expected a list of integers, got '%s'", optarg);
            break;
        case 'z':
            if ((nsize = parse_list(optarg, size, VT_MAX_DIMS)) < 1)
                die_usage("--size: expected a list of integers, got '%s'", optarg);
            break;
        case 'd':
            if (vt_dtype_parse(optarg, &ro.dtype) != 0)
                die_usage("--dtype: unknown dtype '%s'", optarg);
            break;
        case 'p':
            if (strcmp(optarg, "constant") == 0)
                ro.pad = VT_PAD_CONSTANT;
            else if (strcmp(optarg, "edge") == 0)
                ro.pad = VT_PAD_EDGE;
            else if (strcmp(optarg, "reflect") == 0)
                ro.pad = VT_PAD_REFLECT;
            else
                die_usage("--pad: expected constant, edge or reflect, got '%s'", optarg);
            break;
        case 'v': {
            char *end;
            ro.pad_value = strtod(optarg, &end);
            if (end == optarg || *end)
                die_usage("--pad-value: '%s' is not a number", optarg);
            break;
        }
        case 'o': out = optarg; break;
        case 'h': fputs(extract_help, stdout); return 0;
        default: die_usage("extract: bad option");
        }
    }
    if (optind + 1 != argc)
        die_usage("extract: expected one store");
    if (out == NULL || nstart < 0 || nsize < 0)
        die_usage("extract: --start, --size and -o are required");
    vt_store *s;
    int rc = vt_open(argv[optind], 0, &s);
    if (rc)
        return lib_error(vt_errmsg(NULL), rc);
    const vt_array *a = NULL;
    if (name)
        rc = vt_store_array(s, name, &a);
    else if (vt_store_array(s, "image", &a) != 0)
        rc = vt_store_array_at(s, 0, &a);
    if (rc) {
        lib_error(vt_errmsg(s), rc);
        vt_close(s);
        return 1;
    }
    vt_array_info ai;
    vt_array_info_get(a, &ai);
    vt_dtype dd = ro.dtype == VT_DTYPE_SAME ? ai.dtype : ro.dtype;
    const char *descr = npy_descr(dd);
    int nd = ai.ndim;
    if (nstart != nd || nsize != nd) {
        fprintf(stderr, "voxtile: %s: array '%s' has %d dimensions; --start and --size need %d entries\n",
                argv[optind], ai.name, nd, nd);
        vt_close(s);
        return EXIT_USAGE;
    }
    if (descr == NULL) {
        fprintf(stderr, "voxtile: %s: %s has no .npy dtype; choose another --dtype\n", out,
                vt_dtype_name(dd));
        vt_close(s);
        return 1;
    }
    uint64_t usize[VT_MAX_DIMS], slab = 1;
    size_t es = vt_dtype_size(dd);
    for (int d = 0; d < nd; d++) {
        if (size[d] < 1)
            die_usage("--size: every extent must be >= 1");
        usize[d] = (uint64_t)size[d];
        if (d > 0)
            slab *= usize[d];
    }
    /* header */
    char shape[256];
    size_t o = 0;
    for (int d = 0; d < nd; d++)
        o += (size_t)snprintf(shape + o, sizeof shape - o, "%" PRIu64 ",%s", usize[d],
                              d < nd - 1 ? " " : "");
    if (nd > 1)
        shape[o - 1] = 0; /* numpy writes (a, b) but (a,) */
    char hdr[512];
    int hl = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                      descr, shape);
    int total = 10 + hl + 1;
    int padded = (total + 63) / 64 * 64;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", out, (int)getpid());
    FILE *f = fopen(tmp, "wbx");
    if (f == NULL) {
        fprintf(stderr, "voxtile: %s: cannot create: %s\n", tmp, strerror(errno));
        vt_close(s);
        return 1;
    }
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
    uint16_t hlen = (uint16_t)(padded - 10);
    memcpy(pre + 8, &hlen, 2);
    fwrite(pre, 1, 10, f);
    fwrite(hdr, 1, (size_t)hl, f);
    for (int i = 10 + hl; i < padded - 1; i++)
        fputc(' ', f);
    fputc('\n', f);
    /* slabs along axis 0, about 64 MiB each */
    uint64_t per = slab * es;
    uint64_t step = per >= (64u << 20) ? 1 : (64u << 20) / per;
    if (step > usize[0])
        step = usize[0];
    void *buf = malloc((size_t)(per * step));
    rc = buf ? 0 : VT_ENOMEM;
    for (uint64_t z = 0; z < usize[0] && rc == 0; z += step) {
        int64_t st[VT_MAX_DIMS];
        uint64_t sz[VT_MAX_DIMS];
        memcpy(st, start, sizeof st);
        memcpy(sz, usize, sizeof sz);
        st[0] = start[0] + (int64_t)z;
        sz[0] = usize[0] - z < step ? usize[0] - z : step;
        rc = vt_read(a, st, sz, &ro, buf);
        if (rc)
            lib_error(vt_errmsg(s), rc);
        else if (fwrite(buf, es, (size_t)(sz[0] * slab), f) != sz[0] * slab)
            rc = VT_EIO;
    }
    free(buf);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        rc = rc ? rc : VT_EIO;
    if (fclose(f) != 0)
        rc = rc ? rc : VT_EIO;
    if (rc == 0 && rename(tmp, out) != 0)
        rc = VT_EIO;
    if (rc) {
        if (rc == VT_EIO || rc == VT_ENOMEM)
            fprintf(stderr, "voxtile: %s: cannot write: %s\n", out, strerror(errno));
        unlink(tmp);
        vt_close(s);
        return 1;
    }
    vt_close(s);
    return 0;
}

/* ---- export ------------------------------------------------------------- */

static const char export_help[] =
    "usage: voxtile export STORE [--array NAME] -o OUT.nii[.gz]\n"
    "\n"
    "Write an array back to NIfTI. A store converted from NIfTI gets its source header\n"
    "back, changed only where the store differs (crop, channels, datatype, scaling).\n"
    "\n"
    "      --array NAME        array to write (default image)\n"
    "  -o, --output FILE       .nii or .nii.gz\n"
    "\n"
    "example: voxtile export case.vxt --array seg -o case_seg.nii.gz\n";

static int cmd_export(int argc, char **argv)
{
    static const struct option opts[] = {{"array", required_argument, 0, 'a'},
                                         {"output", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *array = NULL, *out = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'a': array = optarg; break;
        case 'o': out = optarg; break;
        case 'h': fputs(export_help, stdout); return 0;
        default: die_usage("export: bad option");
        }
    }
    if (optind + 1 != argc || out == NULL)
        die_usage("export: expected one store and -o OUT.nii[.gz]");
    int rc = vt_export_nifti(argv[optind], array, out);
    return rc ? lib_error(vt_errmsg(NULL), rc) : 0;
}

/* ---- stats -------------------------------------------------------------- */

static const char stats_help[] =
    "usage: voxtile stats PATH... [--budget SIZE] [--json]\n"
    "\n"
    "Know your data before you train: over stores, image files and folders (searched\n"
    "recursively; label folders skipped; CASE_0000, CASE_0001 ... counted as one case),\n"
    "the distribution of shapes, spacings, dtypes and bytes per case as float32 and as\n"
    "stored, and the largest cases. With --budget, the cases over it and the crop\n"
    "(fraction kept per axis) or downsampling factor per axis that brings each under.\n"
    "\n"
    "      --budget SIZE       bytes per case as float32, e.g. 2GiB, 512MiB, 1e9\n"
    "      --json              one JSON object (see docs/cli.md)\n"
    "\n"
    "example: voxtile stats nnUNet_raw/Dataset001_Liver/imagesTr --budget 1GiB\n";

typedef struct scase {
    char *path;
    char *key;            /* case identity: path without _XXXX */
    uint64_t shape[4];    /* (c, z, y, x) */
    vt_dtype dtype;
    double spacing[3];
    uint64_t stored;      /* stores: bytes of the image array */
    int store;
} scase;

typedef struct scases {
    scase *v;
    size_t n, failed;
} scases;

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static const char *const image_suffixes[] = {".nii.gz", ".nii", ".hdr", ".hdr.gz", ".npy", ".nrrd",
                                             ".nhdr", ".mha", ".mhd"};

/* The case a file belongs to: its path without the extension and _XXXX. */
static char *case_key(const char *path)
{
    for (size_t i = 0; i < sizeof image_suffixes / sizeof image_suffixes[0]; i++)
        if (has_suffix(path, image_suffixes[i])) {
            size_t n = strlen(path) - strlen(image_suffixes[i]);
            if (n > 5 && path[n - 5] == '_' && strspn(path + n - 4, "0123456789") >= 4)
                n -= 5;
            return strndup(path, n);
        }
    return strdup(path);
}

static void stats_add(scases *cs, const char *path)
{
    scase c;
    memset(&c, 0, sizeof c);
    if (has_suffix(path, ".vxt")) {
        vt_store *s;
        if (vt_open(path, 0, &s) != 0) {
            fprintf(stderr, "voxtile: %s\n", vt_errmsg(NULL));
            cs->failed++;
            return;
        }
        const vt_array *a;
        if (vt_store_array(s, "image", &a) != 0 && vt_store_array_at(s, 0, &a) != 0) {
            vt_close(s);
            return;
        }
        vt_array_info ai;
        vt_array_info_get(a, &ai);
        for (int d = 0; d < 4; d++)
            c.shape[d] = 1;
        for (int d = 0; d < ai.ndim && d < 4; d++)
            c.shape[4 - ai.ndim + d] = ai.shape[d];
        c.dtype = ai.dtype;
        c.stored = ai.stored_bytes;
        c.store = 1;
        vt_meta_type t;
        const void *sp;
        size_t n;
        if (vt_meta_get(s, "spacing", &t, &sp, &n) == 0 && t == VT_META_F64 && n == 3)
            memcpy(c.spacing, sp, sizeof c.spacing);
        else
            c.spacing[0] = c.spacing[1] = c.spacing[2] = 1;
        vt_close(s);
        c.path = strdup(path);
        c.key = strdup(path);
    } else {
        vt_image_info ii;
        if (vt_image_probe(path, &ii) != 0) {
            fprintf(stderr, "voxtile: %s\n", vt_errmsg(NULL));
            cs->failed++;
            return;
        }
        memcpy(c.shape, ii.shape, sizeof c.shape);
        c.dtype = ii.dtype;
        memcpy(c.spacing, ii.spacing, sizeof c.spacing);
        c.key = case_key(path);
        for (size_t i = 0; i < cs->n; i++) /* another channel of a known case */
            if (!cs->v[i].store && strcmp(cs->v[i].key, c.key) == 0) {
                cs->v[i].shape[0] += c.shape[0];
                free(c.key);
                return;
            }
        c.path = strdup(path);
    }
    scase *nv = realloc(cs->v, (cs->n + 1) * sizeof *nv);
    if (nv == NULL)
        return;
    cs->v = nv;
    cs->v[cs->n++] = c;
}

static void stats_walk(scases *cs, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "voxtile: %s: %s\n", path, strerror(errno));
        cs->failed++;
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        stats_add(cs, path);
        return;
    }
    DIR *d = opendir(path);
    if (d == NULL)
        return;
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strncmp(e->d_name, "labels", 6) == 0)
            continue;
        char **nn = realloc(names, (n + 1) * sizeof *nn);
        if (nn == NULL)
            break;
        names = nn;
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) { /* sorted, so channels and output come in order */
        for (size_t k = i + 1; k < n; k++)
            if (strcmp(names[k], names[i]) < 0) {
                char *t = names[i];
                names[i] = names[k];
                names[k] = t;
            }
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", path, names[i]);
        struct stat ss;
        bool known = has_suffix(names[i], ".vxt");
        for (size_t k = 0; k < sizeof image_suffixes / sizeof image_suffixes[0] && !known; k++)
            known = has_suffix(names[i], image_suffixes[k]);
        if (stat(sub, &ss) == 0 && (S_ISDIR(ss.st_mode) || known))
            stats_walk(cs, sub);
        free(names[i]);
    }
    free(names);
}

static uint64_t case_f32(const scase *c) { return c->shape[0] * c->shape[1] * c->shape[2] * c->shape[3] * 4; }

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static bool parse_size(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v <= 0)
        return false;
    static const struct {
        const char *u;
        double f;
    } units[] = {{"", 1},       {"B", 1},       {"K", 1e3},         {"KB", 1e3}, {"KiB", 1024},
                 {"M", 1e6},    {"MB", 1e6},    {"MiB", 1048576.0}, {"G", 1e9},  {"GB", 1e9},
                 {"GiB", 1073741824.0}, {"T", 1e12}, {"TiB", 1099511627776.0}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(end, units[i].u) == 0) {
            *out = v * units[i].f;
            return true;
        }
    return false;
}

static int cmd_stats(int argc, char **argv)
{
    static const struct option opts[] = {{"budget", required_argument, 0, 'b'},
                                         {"json", no_argument, 0, 'J'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    double budget = 0;
    int json = 0, c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (!parse_size(optarg, &budget))
                die_usage("--budget: expected a size such as 2GiB, got '%s'", optarg);
            break;
        case 'J': json = 1; break;
        case 'h': fputs(stats_help, stdout); return 0;
        default: die_usage("stats: bad option");
        }
    }
    if (optind >= argc)
        die_usage("stats: expected at least one path");
    scases cs = {0};
    for (int i = optind; i < argc; i++)
        stats_walk(&cs, argv[i]);
    size_t n = cs.n;
    if (n == 0) {
        fprintf(stderr, "voxtile: no images or stores found\n");
        return 1;
    }
    /* distributions: min, median, max */
    uint64_t *sh[4], *bytes = malloc(n * sizeof *bytes);
    double *sp[3];
    for (int d = 0; d < 4; d++)
        sh[d] = malloc(n * sizeof **sh);
    for (int d = 0; d < 3; d++)
        sp[d] = malloc(n * sizeof **sp);
    uint64_t total = 0, stored = 0, stored_raw = 0;
    size_t stores = 0, dtype_count[VT_F64 + 1] = {0};
    for (size_t i = 0; i < n; i++) {
        for (int d = 0; d < 4; d++)
            sh[d][i] = cs.v[i].shape[d];
        for (int d = 0; d < 3; d++)
            sp[d][i] = cs.v[i].spacing[d];
        bytes[i] = case_f32(&cs.v[i]);
        total += bytes[i];
        if (cs.v[i].store) {
            stores++;
            stored += cs.v[i].stored;
            stored_raw += bytes[i] / 4 * vt_dtype_size(cs.v[i].dtype);
        }
        if (cs.v[i].dtype <= VT_F64)
            dtype_count[cs.v[i].dtype]++;
    }
    for (int d = 0; d < 4; d++)
        qsort(sh[d], n, sizeof **sh, cmp_u64);
    for (int d = 0; d < 3; d++)
        qsort(sp[d], n, sizeof **sp, cmp_dbl);
    uint64_t *sorted = malloc(n * sizeof *sorted);
    memcpy(sorted, bytes, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_u64);
    size_t *order = malloc(n * sizeof *order); /* cases by size, largest first */
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = 0; i < n; i++)
        for (size_t k = i + 1; k < n; k++)
            if (bytes[order[k]] > bytes[order[i]]) {
                size_t t = order[i];
                order[i] = order[k];
                order[k] = t;
            }
    size_t mid = n / 2, over = 0;
    for (size_t i = 0; i < n; i++)
        over += budget > 0 && (double)bytes[i] > budget;
    char b1[32], b2[32], b3[32], b4[32];
    if (json) {
        printf("{\"cases\": %zu, \"stores\": %zu, \"unreadable\": %zu, \"shape\": {", n, stores, cs.failed);
        const char *which[3] = {"min", "median", "max"};
        size_t at[3] = {0, mid, n - 1};
        for (int q = 0; q < 3; q++) {
            printf("%s\"%s\": [", q ? ", " : "", which[q]);
            for (int d = 0; d < 4; d++)
                printf("%s%" PRIu64, d ? ", " : "", sh[d][at[q]]);
            printf("]");
        }
        printf("}, \"spacing\": {");
        for (int q = 0; q < 3; q++) {
            printf("%s\"%s\": [", q ? ", " : "", which[q]);
            for (int d = 0; d < 3; d++)
                printf("%s%.17g", d ? ", " : "", sp[d][at[q]]);
            printf("]");
        }
        printf("}, \"dtypes\": {");
        int first = 1;
        for (int d = VT_U8; d <= VT_F64; d++)
            if (dtype_count[d]) {
                printf("%s\"%s\": %zu", first ? "" : ", ", vt_dtype_name((vt_dtype)d), dtype_count[d]);
                first = 0;
            }
        printf("}, \"bytes_float32\": {\"min\": %" PRIu64 ", \"median\": %" PRIu64 ", \"max\": %" PRIu64
               ", \"total\": %" PRIu64 "}, \"stored_bytes\": %" PRIu64 ", \"largest\": [",
               sorted[0], sorted[mid], sorted[n - 1], total, stored);
        for (size_t i = 0; i < n && i < 5; i++) {
            const scase *k = &cs.v[order[i]];
            printf("%s{\"path\": ", i ? ", " : "");
            json_string(k->path);
            printf(", \"shape\": [%" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64 "], \"bytes_float32\": %" PRIu64 "}",
                   k->shape[0], k->shape[1], k->shape[2], k->shape[3], bytes[order[i]]);
        }
        printf("]");
        if (budget > 0) {
            printf(", \"budget\": {\"bytes\": %.0f, \"over\": [", budget);
            size_t w = 0;
            for (size_t i = 0; i < n; i++) {
                const scase *k = &cs.v[order[i]];
                double b = (double)bytes[order[i]];
                if (b <= budget)
                    continue;
                printf("%s{\"path\": ", w++ ? ", " : "");
                json_string(k->path);
                printf(", \"bytes_float32\": %.0f, \"crop_per_axis\": %.4f, \"downsample_per_axis\": %.4f}", b,
                       cbrt(budget / b), cbrt(b / budget));
            }
            printf("]}");
        }
        printf("}\n");
    } else {
        printf("%zu cases (%zu stores, %zu image cases)%s\n", n, stores, n - stores,
               cs.failed ? ", some files unreadable (above)" : "");
        printf("%-26s %-30s %-30s %s\n", "", "min", "median", "max");
        char cell[3][64];
        size_t at[3] = {0, mid, n - 1};
        for (int q = 0; q < 3; q++)
            snprintf(cell[q], sizeof cell[q], "%" PRIu64 " x %" PRIu64 " x %" PRIu64 " x %" PRIu64, sh[0][at[q]],
                     sh[1][at[q]], sh[2][at[q]], sh[3][at[q]]);
        printf("%-26s %-30s %-30s %s\n", "shape (c, z, y, x)", cell[0], cell[1], cell[2]);
        for (int q = 0; q < 3; q++)
            snprintf(cell[q], sizeof cell[q], "%.4g x %.4g x %.4g", sp[0][at[q]], sp[1][at[q]], sp[2][at[q]]);
        printf("%-26s %-30s %-30s %s\n", "spacing (z, y, x) mm", cell[0], cell[1], cell[2]);
        printf("%-26s %-30s %-30s %s\n", "bytes per case as float32", human((double)sorted[0], b1, sizeof b1),
               human((double)sorted[mid], b2, sizeof b2), human((double)sorted[n - 1], b3, sizeof b3));
        printf("dtypes:");
        for (int d = VT_U8; d <= VT_F64; d++)
            if (dtype_count[d])
                printf(" %s %zu", vt_dtype_name((vt_dtype)d), dtype_count[d]);
        printf("\ntotal as float32: %s", human((double)total, b1, sizeof b1));
        if (stores)
            printf("; stores hold %s for %s raw (ratio %.2f)", human((double)stored, b2, sizeof b2),
                   human((double)stored_raw, b3, sizeof b3), (double)stored_raw / (double)(stored ? stored : 1));
        printf("\nlargest cases:\n");
        for (size_t i = 0; i < n && i < 5; i++) {
            const scase *k = &cs.v[order[i]];
            printf("  %10s  %" PRIu64 " x %" PRIu64 " x %" PRIu64 " x %" PRIu64 "  %s\n",
                   human((double)bytes[order[i]], b1, sizeof b1), k->shape[0], k->shape[1], k->shape[2],
                   k->shape[3], k->path);
        }
        if (budget > 0) {
            printf("budget %s per case as float32: %zu case%s over\n", human(budget, b4, sizeof b4), over,
                   over == 1 ? "" : "s");
            for (size_t i = 0; i < n; i++) {
                double b = (double)bytes[order[i]];
                if (b <= budget)
                    continue;
                printf("  %10s  crop to %.2f per axis (%.0f%% of voxels) or downsample by %.2f per axis  %s\n",
                       human(b, b1, sizeof b1), cbrt(budget / b), 100 * budget / b, cbrt(b / budget),
                       cs.v[order[i]].path);
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(cs.v[i].path);
        free(cs.v[i].key);
    }
    free(cs.v);
    for (int d = 0; d < 4; d++)
        free(sh[d]);
    for (int d = 0; d < 3; d++)
        free(sp[d]);
    free(bytes);
    free(sorted);
    free(order);
    return cs.failed ? 1 : 0;
}

/* ---- main --------------------------------------------------------------- */

static const char main_help[] =
    "usage: voxtile COMMAND [options]\n"
    "\n"
    "Tiled, compressed, checksummed storage for 3-D/4-D medical images.\n"
    "\n"
    "commands:\n"
    "  convert   convert images (.nii, .nii.gz, .hdr/.img, .npy) and a segmentation to a store\n"
    "  convert-dataset  convert an nnU-Net raw dataset folder, case by case, in parallel\n"
    "  info      summarise a store (--json for machines)\n"
    "  verify    check every checksum and structure of stores\n"
    "  extract   read a box (padded, converted) into a .npy\n"
    "  export    write an array back to NIfTI (.nii, .nii.gz)\n"
    "  stats     shapes, spacings, sizes of a dataset; cases over a memory budget\n"
    "\n"
    "'voxtile COMMAND --help' explains each. Exit status: 0 success, 1 failure, 2 usage error.\n"
    "\n"
    "example: voxtile convert ct.npy -o ct.vxt && voxtile info ct.vxt\n";

int main(int argc, char **argv)
{
    if (argc < 2)
        die_usage("missing command");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(main_help, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("voxtile %s (format %d)\n", vt_version_string(), VT_FORMAT_VERSION);
        return 0;
    }
    argc--;
    argv++;
    if (strcmp(cmd, "convert") == 0)
        return cmd_convert(argc, argv);
    if (strcmp(cmd, "convert-dataset") == 0)
        return cmd_convert_dataset(argc, argv);
    if (strcmp(cmd, "info") == 0)
        return cmd_info(argc, argv);
    if (strcmp(cmd, "verify") == 0)
        return cmd_verify(argc, argv);
    if (strcmp(cmd, "extract") == 0)
        return cmd_extract(argc, argv);
    if (strcmp(cmd, "export") == 0)
        return cmd_export(argc, argv);
    if (strcmp(cmd, "stats") == 0)
        return cmd_stats(argc, argv);
    die_usage("unknown command '%s'", cmd);
}
