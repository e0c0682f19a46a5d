/* Parsing the store options shared by convert and convert-dataset. */
#include "store_options.h"

#include "cli.h"

#include <errno.h>
#include <limits.h>
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

