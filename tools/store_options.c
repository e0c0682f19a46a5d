/* Parsing the store options shared by convert and convert-dataset. */
#include "store_options.h"

#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* "A,B,C..." of positive finite doubles into v (at most max); the count, or -1. */
static int parse_doubles(const char *s, double *v, int max, bool positive)
{
    int n = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        double x = strtod(p, &end);
        if (end == p || errno || !isfinite(x) || (positive && x <= 0) || n == max)
            return -1;
        v[n++] = x;
        if (*end == '\0')
            return n;
        if (*end != ',')
            return -1;
        p = end + 1;
    }
}

/* --fingerprint FILE: nnU-Net's CT normalisation parameters of each image
 * channel (clip to the foreground's 0.5 and 99.5 percentiles, then the
 * foreground's mean and std), from a fingerprint of stats --fingerprint or of
 * nnU-Net. A file that cannot be read, or a channel without them, ends the
 * command with the library's message. */
static void load_fingerprint(const char *path, vt_convert_opts *o)
{
    static double params[4 * 64];
    vt_fingerprint *fp;
    vt_fingerprint_summary sum;
    if (vt_fingerprint_load(path, &fp) != 0)
        exit(lib_error(vt_errmsg(NULL), VT_EIO));
    if (vt_fingerprint_summary_get(fp, &sum) != 0) {
        vt_fingerprint_free(fp);
        exit(lib_error(vt_errmsg(NULL), VT_ENOMEM));
    }
    if (sum.channels == 0 || sum.channels > 64) {
        vt_fingerprint_free(fp);
        fprintf(stderr, "voxtile: %s: a fingerprint of %llu image channels (1 to 64 can set --normalize ct)\n",
                path, (unsigned long long)sum.channels);
        exit(1);
    }
    for (size_t c = 0; c < sum.channels; c++) {
        vt_fingerprint_stats st;
        if (vt_fingerprint_channel(fp, c, &st) != 0) {
            vt_fingerprint_free(fp);
            exit(lib_error(vt_errmsg(NULL), VT_EINVAL));
        }
        double *p = params + 4 * c;
        p[0] = st.percentile_00_5;
        p[1] = st.percentile_99_5;
        p[2] = st.mean;
        p[3] = st.std;
        if (!(isfinite(p[0]) && isfinite(p[1]) && p[0] <= p[1] && isfinite(p[2]) && isfinite(p[3]) && p[3] > 0)) {
            vt_fingerprint_free(fp);
            fprintf(stderr, "voxtile: %s: channel %zu has no usable foreground statistics (percentiles %g, %g, "
                            "mean %g, std %g): CT normalisation needs a foreground with some spread\n",
                    path, c, p[0], p[1], p[2], p[3]);
            exit(1);
        }
    }
    o->norm_params = params;
    o->norm_channels = (size_t)sum.channels;
    vt_fingerprint_free(fp);
}

void store_options_done(const vt_convert_opts *o, const char *cmd)
{
    if (o->normalize == VT_NORMALIZE_CT && o->norm_params == NULL)
        die_usage("%s: --normalize ct needs --fingerprint FILE or --norm-params LO,HI,MEAN,STD", cmd);
    if (o->normalize != VT_NORMALIZE_CT && o->norm_params != NULL)
        die_usage("%s: --fingerprint and --norm-params give --normalize ct its parameters; add --normalize ct",
                  cmd);
}

/* Apply one store option; false when @p c is not one. */
bool store_option(int c, vt_convert_opts *o, int argc, char **argv)
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
    case 1010:
        if (parse_doubles(optarg, o->spacing, 3, true) != 3)
            die_usage("--spacing: expected Z,Y,X voxel sizes in mm (each > 0), got '%s'", optarg);
        return true;
    case 1011:
        if (strcmp(optarg, "cubic") == 0 || strcmp(optarg, "3") == 0)
            o->order = VT_RESAMPLE_CUBIC;
        else if (strcmp(optarg, "linear") == 0 || strcmp(optarg, "1") == 0)
            o->order = VT_RESAMPLE_LINEAR;
        else
            die_usage("--order: expected cubic or linear, got '%s'", optarg);
        return true;
    case 1012: {
        const char *m = optarg;
        size_t n = strcspn(m, "/");
        o->separate_linear = strcmp(m + n, "/linear") == 0;
        if (m[n] && !o->separate_linear)
            die_usage("--separate-z: expected auto, on or off (optionally /linear), got '%s'", optarg);
        if (n == 4 && strncmp(m, "auto", 4) == 0)
            o->separate_z = VT_SEPARATE_AUTO;
        else if (n == 2 && strncmp(m, "on", 2) == 0)
            o->separate_z = VT_SEPARATE_ON;
        else if (n == 3 && strncmp(m, "off", 3) == 0 && !o->separate_linear)
            o->separate_z = VT_SEPARATE_OFF;
        else
            die_usage("--separate-z: expected auto, on or off (optionally /linear), got '%s'", optarg);
        return true;
    }
    case 1013:
        if (strcmp(optarg, "none") == 0)
            o->normalize = VT_NORMALIZE_NONE;
        else if (strcmp(optarg, "ct") == 0)
            o->normalize = VT_NORMALIZE_CT;
        else if (strcmp(optarg, "zscore") == 0)
            o->normalize = VT_NORMALIZE_ZSCORE;
        else
            die_usage("--normalize: expected ct, zscore or none, got '%s'", optarg);
        return true;
    case 1014: {
        static double params[4 * 64];
        int n = parse_doubles(optarg, params, 4 * 64, false);
        if (n < 4 || n % 4)
            die_usage("--norm-params: expected LO,HI,MEAN,STD per image channel, got '%s'", optarg);
        for (int i = 0; i < n; i += 4)
            if (params[i + 3] <= 0 || params[i] > params[i + 1])
                die_usage("--norm-params: channel %d needs LO <= HI and STD > 0, got '%s'", i / 4, optarg);
        o->norm_params = params;
        o->norm_channels = (size_t)n / 4;
        return true;
    }
    case 1015:
        load_fingerprint(optarg, o);
        return true;
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

