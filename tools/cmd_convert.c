/* voxtile convert, voxtile convert-dataset */
#include "cli.h"
#include "voxtile_convert.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>

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

int cmd_convert(int argc, char **argv)
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
    o.threads = online_cpus();
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
    if (o.crop_mode == VT_CROP_LABEL && seg == NULL)
        die_usage("convert: --crop-to-label needs --seg LABEL");
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
        print_u64s(ai.shape, ai.ndim);
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
    "dataset.json. Cases run in parallel; a rerun skips cases already converted with\n"
    "the same store options (and converts again those made with others); a failing\n"
    "case is reported and the others go on (exit status 1 if any failed).\n"
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
        size_t n = strlen(e->d_name), idlen;
        int ch;
        if (!has_suffix(e->d_name, ending) || !nnunet_channel(e->d_name, n - el, &idlen, &ch))
            continue;
        char *id = strndup(e->d_name, idlen);
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

int cmd_convert_dataset(int argc, char **argv)
{
    static const struct option opts[] = {STORE_OPTIONS,
                                         {"output", required_argument, 0, 'o'},
                                         {"jobs", required_argument, 0, 'j'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    vt_convert_opts o;
    vt_convert_opts_init(&o);
    int jobs = online_cpus(), c, quiet = 0;
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
    char how[512]; /* a store made with other options is converted again */
    vt_convert_opts_string(&o, how, sizeof how);
    size_t done = 0, skipped = 0, failed = 0, running = 0, next = 0, redone = 0;
    pid_t *pids = calloc(ncases ? ncases : 1, sizeof *pids);
    double t0 = now();
    while (next < ncases || running > 0) {
        while (next < ncases && running < (size_t)jobs) {
            dcase *k = &cases[next++];
            vt_store *st;
            if (vt_open(k->out, 0, &st) == 0) { /* finished by an earlier run: the same options? */
                vt_meta_type t;
                const void *v;
                size_t n;
                bool same = vt_meta_get(st, "convert.options", &t, &v, &n) == 0 && t == VT_META_STRING &&
                            n == strlen(how) && memcmp(v, how, n) == 0;
                vt_close(st);
                if (same) {
                    skipped++;
                    continue;
                }
                redone++;
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
        printf("%s: %zu cases: %zu converted (%zu again: made with other options), %zu already there, %zu failed, "
               "in %.1f s with %d jobs\n",
               out, ncases, done, redone, skipped, failed, now() - t0, jobs);
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

