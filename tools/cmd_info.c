/* voxtile info */
#include "cli.h"

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

/* ---- info --------------------------------------------------------------- */

static const char info_help[] =
    "usage: voxtile info STORE [--json]\n"
    "\n"
    "Summarise a store: arrays (dtype, shape, tiles, codec, raw vs stored bytes,\n"
    "value range) and metadata. --json prints one JSON object (see docs/cli.md).\n"
    "\n"
    "example: voxtile info ct.vxt --json\n";

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

int cmd_info(int argc, char **argv)
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

