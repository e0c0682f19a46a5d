/* voxtile stats: know the data before training -- over stores, image files
 * and folders, the distributions of shapes, spacings, dtypes and sizes, the
 * largest cases, and what brings each under a memory budget. */
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

static const char stats_help[] =
    "usage: voxtile stats PATH... [--budget SIZE] [--json]\n"
    "       voxtile stats DATASET --fingerprint [--json] [-o FILE] [-j N]\n"
    "\n"
    "Know your data before you train: over stores, image files and folders (searched\n"
    "recursively; label folders skipped; CASE_0000, CASE_0001 ... counted as one case),\n"
    "the distribution of shapes, spacings, dtypes and bytes per case as float32 and as\n"
    "stored, and the largest cases. With --budget, the cases over it and the crop\n"
    "(fraction kept per axis) or downsampling factor per axis that brings each under.\n"
    "\n"
    "With --fingerprint, nnU-Net's dataset fingerprint of a raw dataset folder\n"
    "(imagesTr/CASE_XXXX.nii.gz, labelsTr/CASE.nii.gz): per channel the mean, std, min,\n"
    "max, median and 0.5/99.5 percentiles of the foreground (label > 0 inside the\n"
    "nonzero box) over every voxel of every case -- exact for integer values, within\n"
    "2^-11 relative otherwise --, the spacings and shapes after cropping, and the\n"
    "target spacing nnU-Net's planner chooses (median spacing, or its anisotropy rule).\n"
    "\n"
    "      --budget SIZE       bytes per case as float32, e.g. 2GiB, 512MiB, 1e9\n"
    "      --json              one JSON object (see docs/cli.md)\n"
    "      --fingerprint       the dataset fingerprint of DATASET (JSON keys as nnU-Net's\n"
    "                          dataset_fingerprint.json, plus \"voxtile\")\n"
    "  -o, --output FILE       with --fingerprint: also write the JSON to FILE (atomically)\n"
    "  -j, --jobs N            with --fingerprint: cases read at once (default: all cores)\n"
    "\n"
    "example: voxtile stats nnUNet_raw/Dataset001_Liver/imagesTr --budget 1GiB\n"
    "         voxtile stats nnUNet_raw/Dataset001_Liver --fingerprint -o fingerprint.json\n";

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

/* The case a file belongs to: its path without the channel number, as
 * nnU-Net names channels (CASE_0000.nii.gz, CASE_0001.nii.gz ... ->
 * CASE.nii.gz); a file without one is a case of its own (t.nrrd and t.mha
 * are two). */
static char *case_key(const char *path)
{
    size_t ending, stem;
    char *key = strdup(path);
    if (key && vt_image_format(path, NULL, &ending) == VT_IMAGE_FILE &&
        nnunet_channel(path, strlen(path) - ending, &stem, NULL))
        memmove(key + stem, key + stem + 5, strlen(key + stem + 5) + 1);
    return key;
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
        bool known = has_suffix(names[i], ".vxt") || vt_image_format(names[i], NULL, NULL) == VT_IMAGE_FILE;
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

/* The distributions over the cases: per axis sorted shapes and spacings,
 * bytes per case (as float32) by case and sorted, cases by size, dtypes. */
typedef struct summary {
    size_t n, stores, mid, over;
    uint64_t *sh[4];
    double *sp[3];
    uint64_t *bytes, *sorted;
    size_t *order;           /* cases by size, largest first */
    uint64_t total, stored, stored_raw;
    size_t dtype_count[VT_F64 + 1];
} summary;

/* Step 2 (after the walk): sort what the table and the JSON show; false when
 * out of memory. */
static bool summarise(const scases *cs, double budget, summary *u)
{
    size_t n = cs->n;
    memset(u, 0, sizeof *u);
    u->n = n;
    bool ok = (u->bytes = malloc(n * sizeof *u->bytes)) != NULL &&
              (u->sorted = malloc(n * sizeof *u->sorted)) != NULL && (u->order = malloc(n * sizeof *u->order)) != NULL;
    for (int d = 0; d < 4; d++)
        ok &= (u->sh[d] = malloc(n * sizeof **u->sh)) != NULL;
    for (int d = 0; d < 3; d++)
        ok &= (u->sp[d] = malloc(n * sizeof **u->sp)) != NULL;
    if (!ok)
        return false;
    for (size_t i = 0; i < n; i++) {
        for (int d = 0; d < 4; d++)
            u->sh[d][i] = cs->v[i].shape[d];
        for (int d = 0; d < 3; d++)
            u->sp[d][i] = cs->v[i].spacing[d];
        u->bytes[i] = case_f32(&cs->v[i]);
        u->total += u->bytes[i];
        if (cs->v[i].store) {
            u->stores++;
            u->stored += cs->v[i].stored;
            u->stored_raw += u->bytes[i] / 4 * vt_dtype_size(cs->v[i].dtype);
        }
        if (cs->v[i].dtype <= VT_F64)
            u->dtype_count[cs->v[i].dtype]++;
    }
    for (int d = 0; d < 4; d++)
        qsort(u->sh[d], n, sizeof **u->sh, cmp_u64);
    for (int d = 0; d < 3; d++)
        qsort(u->sp[d], n, sizeof **u->sp, cmp_dbl);
    memcpy(u->sorted, u->bytes, n * sizeof *u->sorted);
    qsort(u->sorted, n, sizeof *u->sorted, cmp_u64);
    for (size_t i = 0; i < n; i++)
        u->order[i] = i;
    for (size_t i = 0; i < n; i++)
        for (size_t k = i + 1; k < n; k++)
            if (u->bytes[u->order[k]] > u->bytes[u->order[i]]) {
                size_t t = u->order[i];
                u->order[i] = u->order[k];
                u->order[k] = t;
            }
    u->mid = n / 2;
    for (size_t i = 0; i < n; i++)
        u->over += budget > 0 && (double)u->bytes[i] > budget;
    return true;
}

static void summary_free(summary *u)
{
    for (int d = 0; d < 4; d++)
        free(u->sh[d]);
    for (int d = 0; d < 3; d++)
        free(u->sp[d]);
    free(u->bytes);
    free(u->sorted);
    free(u->order);
}

/* Step 3, --json: one object (docs/cli.md). */
static void print_json(const scases *cs, const summary *u, double budget)
{
    size_t n = u->n, mid = u->mid;
    printf("{\"cases\": %zu, \"stores\": %zu, \"unreadable\": %zu, \"shape\": {", n, u->stores, cs->failed);
    const char *which[3] = {"min", "median", "max"};
    size_t at[3] = {0, mid, n - 1};
    for (int q = 0; q < 3; q++) {
        printf("%s\"%s\": [", q ? ", " : "", which[q]);
        for (int d = 0; d < 4; d++)
            printf("%s%" PRIu64, d ? ", " : "", u->sh[d][at[q]]);
        printf("]");
    }
    printf("}, \"spacing\": {");
    for (int q = 0; q < 3; q++) {
        printf("%s\"%s\": [", q ? ", " : "", which[q]);
        for (int d = 0; d < 3; d++)
            printf("%s%.17g", d ? ", " : "", u->sp[d][at[q]]);
        printf("]");
    }
    printf("}, \"dtypes\": {");
    int first = 1;
    for (int d = VT_U8; d <= VT_F64; d++)
        if (u->dtype_count[d]) {
            printf("%s\"%s\": %zu", first ? "" : ", ", vt_dtype_name((vt_dtype)d), u->dtype_count[d]);
            first = 0;
        }
    printf("}, \"bytes_float32\": {\"min\": %" PRIu64 ", \"median\": %" PRIu64 ", \"max\": %" PRIu64
           ", \"total\": %" PRIu64 "}, \"stored_bytes\": %" PRIu64 ", \"largest\": [",
           u->sorted[0], u->sorted[mid], u->sorted[n - 1], u->total, u->stored);
    for (size_t i = 0; i < n && i < 5; i++) {
        const scase *k = &cs->v[u->order[i]];
        printf("%s{\"path\": ", i ? ", " : "");
        json_string(k->path);
        printf(", \"shape\": [%" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64 "], \"bytes_float32\": %" PRIu64 "}",
               k->shape[0], k->shape[1], k->shape[2], k->shape[3], u->bytes[u->order[i]]);
    }
    printf("]");
    if (budget > 0) {
        printf(", \"budget\": {\"bytes\": %.0f, \"over\": [", budget);
        size_t w = 0;
        for (size_t i = 0; i < n; i++) {
            const scase *k = &cs->v[u->order[i]];
            double b = (double)u->bytes[u->order[i]];
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
}

/* Step 3: the table for people. */
static void print_text(const scases *cs, const summary *u, double budget)
{
    size_t n = u->n, mid = u->mid;
    char b1[32], b2[32], b3[32], b4[32];
    printf("%zu cases (%zu stores, %zu image cases)%s\n", n, u->stores, n - u->stores,
           cs->failed ? ", some files unreadable (above)" : "");
    printf("%-26s %-30s %-30s %s\n", "", "min", "median", "max");
    char cell[3][64];
    size_t at[3] = {0, mid, n - 1};
    for (int q = 0; q < 3; q++)
        snprintf(cell[q], sizeof cell[q], "%" PRIu64 " x %" PRIu64 " x %" PRIu64 " x %" PRIu64, u->sh[0][at[q]],
                 u->sh[1][at[q]], u->sh[2][at[q]], u->sh[3][at[q]]);
    printf("%-26s %-30s %-30s %s\n", "shape (c, z, y, x)", cell[0], cell[1], cell[2]);
    for (int q = 0; q < 3; q++)
        snprintf(cell[q], sizeof cell[q], "%.4g x %.4g x %.4g", u->sp[0][at[q]], u->sp[1][at[q]], u->sp[2][at[q]]);
    printf("%-26s %-30s %-30s %s\n", "spacing (z, y, x) mm", cell[0], cell[1], cell[2]);
    printf("%-26s %-30s %-30s %s\n", "bytes per case as float32", human((double)u->sorted[0], b1, sizeof b1),
           human((double)u->sorted[mid], b2, sizeof b2), human((double)u->sorted[n - 1], b3, sizeof b3));
    printf("dtypes:");
    for (int d = VT_U8; d <= VT_F64; d++)
        if (u->dtype_count[d])
            printf(" %s %zu", vt_dtype_name((vt_dtype)d), u->dtype_count[d]);
    printf("\ntotal as float32: %s", human((double)u->total, b1, sizeof b1));
    if (u->stores)
        printf("; stores hold %s for %s raw (ratio %.2f)", human((double)u->stored, b2, sizeof b2),
               human((double)u->stored_raw, b3, sizeof b3),
               (double)u->stored_raw / (double)(u->stored ? u->stored : 1));
    printf("\nlargest cases:\n");
    for (size_t i = 0; i < n && i < 5; i++) {
        const scase *k = &cs->v[u->order[i]];
        printf("  %10s  %" PRIu64 " x %" PRIu64 " x %" PRIu64 " x %" PRIu64 "  %s\n",
               human((double)u->bytes[u->order[i]], b1, sizeof b1), k->shape[0], k->shape[1], k->shape[2],
               k->shape[3], k->path);
    }
    if (budget <= 0)
        return;
    printf("budget %s per case as float32: %zu case%s over\n", human(budget, b4, sizeof b4), u->over,
           u->over == 1 ? "" : "s");
    for (size_t i = 0; i < n; i++) {
        double b = (double)u->bytes[u->order[i]];
        if (b <= budget)
            continue;
        printf("  %10s  crop to %.2f per axis (%.0f%% of voxels) or downsample by %.2f per axis  %s\n",
               human(b, b1, sizeof b1), cbrt(budget / b), 100 * budget / b, cbrt(b / budget),
               cs->v[u->order[i]].path);
    }
}

/* parse the command line, walk the paths (step 1), summarise, print */
int cmd_stats(int argc, char **argv)
{
    static const struct option opts[] = {{"budget", required_argument, 0, 'b'},
                                         {"json", no_argument, 0, 'J'},
                                         {"fingerprint", no_argument, 0, 'F'},
                                         {"output", required_argument, 0, 'o'},
                                         {"jobs", required_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    double budget = 0;
    int json = 0, fingerprint = 0, jobs = 0, c;
    const char *out = NULL;
    while ((c = getopt_long(argc, argv, "o:j:h", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (!parse_size(optarg, &budget))
                die_usage("--budget: expected a size such as 2GiB, got '%s'", optarg);
            break;
        case 'J': json = 1; break;
        case 'F': fingerprint = 1; break;
        case 'o': out = optarg; break;
        case 'j': jobs = (int)parse_int("-j", optarg, 1, 1024); break;
        case 'h': fputs(stats_help, stdout); return 0;
        default: die_usage("stats: bad option");
        }
    }
    if (optind >= argc)
        die_usage("stats: expected at least one path");
    if (fingerprint) {
        if (budget > 0 || optind + 1 != argc)
            die_usage("stats --fingerprint: expected one dataset folder (and no --budget)");
        return stats_fingerprint(argv[optind], json, out, jobs ? jobs : online_cpus());
    }
    if (out || jobs)
        die_usage("stats: -o and -j go with --fingerprint");
    scases cs = {0};
    for (int i = optind; i < argc; i++)
        stats_walk(&cs, argv[i]);
    if (cs.n == 0) {
        fprintf(stderr, "voxtile: no images or stores found\n");
        return 1;
    }
    summary u;
    int status = cs.failed ? 1 : 0;
    if (!summarise(&cs, budget, &u)) {
        fprintf(stderr, "voxtile: out of memory\n");
        status = 1;
    } else if (json)
        print_json(&cs, &u, budget);
    else
        print_text(&cs, &u, budget);
    summary_free(&u);
    for (size_t i = 0; i < cs.n; i++) {
        free(cs.v[i].path);
        free(cs.v[i].key);
    }
    free(cs.v);
    return status;
}
