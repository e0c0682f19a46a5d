/* voxtile info: a summary of a store for people (text) and programs (--json).
 *
 * Beyond the arrays and the raw metadata it interprets the metadata the
 * converter writes: the geometry (spacing, origin, direction, orientation
 * code, crop box) and the source (file names, format, the NIfTI header's
 * fields decoded from the verbatim copy in "nifti.header"). */
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
    "Summarise a store: each array (dtype, shape, tile shape, codec and shuffle,\n"
    "raw vs stored bytes and ratio, constant tiles, value range, labels with their\n"
    "voxel counts), the geometry (spacing, origin, direction, orientation, crop box),\n"
    "the source (files, format, NIfTI header fields) and all metadata.\n"
    "\n"
    "      --json          one JSON object with stable keys (see docs/cli.md)\n"
    "\n"
    "example: voxtile info ct.vxt --json | python3 -m json.tool\n";

/* ---- geometry and source ------------------------------------------------ */

static bool meta_f64(const vt_store *s, const char *key, size_t n, const double **out)
{
    vt_meta_type t;
    const void *d;
    size_t c;
    if (vt_meta_get(s, key, &t, &d, &c) != 0 || t != VT_META_F64 || c != n)
        return false;
    *out = d;
    return true;
}

static const char *meta_str(const vt_store *s, const char *key)
{
    vt_meta_type t;
    const void *d;
    size_t c;
    return vt_meta_get(s, key, &t, &d, &c) == 0 && t == VT_META_STRING ? d : NULL;
}

/* Orientation code of the voxel axes (i, j, k) = (x, y, z) of a NIfTI-style
 * affine (4x4 row-major, to RAS+): for each axis the world direction it
 * mostly points to, R/L, A/P, S/I -- nibabel's aff2axcodes for affines
 * without shear. Axes are assigned greedily by the largest component so that
 * no world axis is used twice. Returns false for a degenerate affine. */
bool orientation_code(const double *aff, char code[4])
{
    static const char pos[3] = {'R', 'A', 'S'}, neg[3] = {'L', 'P', 'I'};
    int used_row = 0, used_col = 0;
    for (int k = 0; k < 3; k++) {
        double best = 0;
        int br = -1, bc = -1;
        for (int c = 0; c < 3; c++)
            for (int r = 0; r < 3; r++)
                if (!(used_row & 1 << r) && !(used_col & 1 << c) && fabs(aff[4 * r + c]) > best) {
                    best = fabs(aff[4 * r + c]);
                    br = r;
                    bc = c;
                }
        if (br < 0)
            return false;
        used_row |= 1 << br;
        used_col |= 1 << bc;
        code[bc] = aff[4 * br + bc] > 0 ? pos[br] : neg[br];
    }
    code[3] = 0;
    return true;
}

/* The fields of a NIfTI-1 (348 bytes) or NIfTI-2 (540 bytes) header, in
 * either byte order. */
typedef struct nifti_fields {
    int version;
    int datatype, bitpix, intent_code, qform_code, sform_code, xyzt_units, slice_code;
    int64_t dim[8];
    double pixdim[8], vox_offset, scl_slope, scl_inter, cal_min, cal_max, toffset;
    char descrip[81], aux_file[25], intent_name[17];
} nifti_fields;

static uint64_t rdu(const unsigned char *b, size_t off, size_t n, bool swap)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) /* little-endian, or big-endian when swapped */
        v |= (uint64_t)b[off + (swap ? n - 1 - i : i)] << (8 * i);
    return v;
}
static int64_t rdi16(const unsigned char *b, size_t off, bool swap) { return (int16_t)rdu(b, off, 2, swap); }
static int64_t rdi32(const unsigned char *b, size_t off, bool swap) { return (int32_t)rdu(b, off, 4, swap); }
static int64_t rdi64(const unsigned char *b, size_t off, bool swap) { return (int64_t)rdu(b, off, 8, swap); }
static double rdf32(const unsigned char *b, size_t off, bool swap)
{
    uint32_t u = (uint32_t)rdu(b, off, 4, swap);
    float f;
    memcpy(&f, &u, 4);
    return (double)f;
}
static double rdf64(const unsigned char *b, size_t off, bool swap)
{
    uint64_t u = rdu(b, off, 8, swap);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static bool nifti_decode(const unsigned char *b, size_t n, nifti_fields *h)
{
    uint32_t sz;
    if (n < 348)
        return false;
    memcpy(&sz, b, 4);
    bool swap = sz == 0x5c010000u || sz == 0x1c020000u;
    if (swap)
        sz = __builtin_bswap32(sz);
    if (!((sz == 348 && n == 348) || (sz == 540 && n == 540)))
        return false;
    memset(h, 0, sizeof *h);
    if (sz == 348) {
        h->version = 1;
        for (int i = 0; i < 8; i++) {
            h->dim[i] = rdi16(b, 40 + 2 * i, swap);
            h->pixdim[i] = rdf32(b, 76 + 4 * i, swap);
        }
        h->intent_code = rdi16(b, 68, swap);
        h->datatype = rdi16(b, 70, swap);
        h->bitpix = rdi16(b, 72, swap);
        h->vox_offset = rdf32(b, 108, swap);
        h->scl_slope = rdf32(b, 112, swap);
        h->scl_inter = rdf32(b, 116, swap);
        h->slice_code = b[122];
        h->xyzt_units = b[123];
        h->cal_max = rdf32(b, 124, swap);
        h->cal_min = rdf32(b, 128, swap);
        h->toffset = rdf32(b, 136, swap);
        memcpy(h->descrip, b + 148, 80);
        memcpy(h->aux_file, b + 228, 24);
        h->qform_code = rdi16(b, 252, swap);
        h->sform_code = rdi16(b, 254, swap);
        memcpy(h->intent_name, b + 328, 16);
    } else {
        h->version = 2;
        h->datatype = rdi16(b, 12, swap);
        h->bitpix = rdi16(b, 14, swap);
        for (int i = 0; i < 8; i++) {
            h->dim[i] = rdi64(b, 16 + 8 * i, swap);
            h->pixdim[i] = rdf64(b, 104 + 8 * i, swap);
        }
        h->vox_offset = (double)rdi64(b, 168, swap);
        h->scl_slope = rdf64(b, 176, swap);
        h->scl_inter = rdf64(b, 184, swap);
        h->cal_max = rdf64(b, 192, swap);
        h->cal_min = rdf64(b, 200, swap);
        h->toffset = rdf64(b, 216, swap);
        memcpy(h->descrip, b + 240, 80);
        memcpy(h->aux_file, b + 320, 24);
        h->qform_code = rdi32(b, 344, swap);
        h->sform_code = rdi32(b, 348, swap);
        h->slice_code = rdi32(b, 496, swap);
        h->xyzt_units = rdi32(b, 500, swap);
        h->intent_code = rdi32(b, 504, swap);
        memcpy(h->intent_name, b + 508, 16);
    }
    return true;
}

static const char *xform_name(int code)
{
    switch (code) {
    case 0: return "unknown";
    case 1: return "scanner";
    case 2: return "aligned";
    case 3: return "talairach";
    case 4: return "mni";
    case 5: return "template";
    default: return "?";
    }
}

static const char *space_unit(int units)
{
    switch (units & 7) {
    case 1: return "m";
    case 2: return "mm";
    case 3: return "um";
    default: return "unknown";
    }
}

/* A printable copy of a fixed-size header string (non-printable bytes as '?'). */
static void clean(char *s)
{
    for (unsigned char *p = (unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
}

static void print_nifti(nifti_fields *h, int json)
{
    clean(h->descrip);
    clean(h->aux_file);
    clean(h->intent_name);
    int nd = h->dim[0] >= 1 && h->dim[0] <= 7 ? (int)h->dim[0] : 7;
    if (json) {
        printf(", \"header\": {\"sizeof_hdr\": %d, \"datatype\": %d, \"bitpix\": %d, \"dim\": [",
               h->version == 1 ? 348 : 540, h->datatype, h->bitpix);
        for (int i = 0; i < 8; i++)
            printf("%s%" PRId64, i ? ", " : "", h->dim[i]);
        printf("], \"pixdim\": [");
        for (int i = 0; i < 8; i++) {
            printf("%s", i ? ", " : "");
            json_double(h->pixdim[i]);
        }
        printf("], \"vox_offset\": ");
        json_double(h->vox_offset);
        printf(", \"scl_slope\": ");
        json_double(h->scl_slope);
        printf(", \"scl_inter\": ");
        json_double(h->scl_inter);
        printf(", \"cal_min\": ");
        json_double(h->cal_min);
        printf(", \"cal_max\": ");
        json_double(h->cal_max);
        printf(", \"xyzt_units\": %d, \"qform_code\": %d, \"sform_code\": %d, \"intent_code\": %d"
               ", \"slice_code\": %d, \"descrip\": ",
               h->xyzt_units, h->qform_code, h->sform_code, h->intent_code, h->slice_code);
        json_string(h->descrip);
        printf(", \"aux_file\": ");
        json_string(h->aux_file);
        printf(", \"intent_name\": ");
        json_string(h->intent_name);
        printf("}");
        return;
    }
    printf("  nifti%d header: datatype %d (%d bits), dim [", h->version, h->datatype, h->bitpix);
    for (int i = 0; i <= nd; i++)
        printf("%s%" PRId64, i ? " " : "", h->dim[i]);
    printf("], pixdim [");
    for (int i = 0; i <= nd; i++)
        printf("%s%g", i ? " " : "", h->pixdim[i]);
    printf("] %s\n", space_unit(h->xyzt_units));
    printf("    qform_code %d (%s), sform_code %d (%s), scl_slope %g, scl_inter %g, vox_offset %g\n",
           h->qform_code, xform_name(h->qform_code), h->sform_code, xform_name(h->sform_code), h->scl_slope,
           h->scl_inter, h->vox_offset);
    if (h->descrip[0] || h->aux_file[0] || h->intent_code)
        printf("    descrip \"%s\", aux_file \"%s\", intent %d \"%s\"\n", h->descrip, h->aux_file, h->intent_code,
               h->intent_name);
}

static void print_list(const double *v, size_t n, int json, const char *sep)
{
    for (size_t i = 0; i < n; i++) {
        printf("%s", i ? sep : "");
        if (json)
            json_double(v[i]);
        else
            printf("%g", v[i]);
    }
}

/* `"key": [v...]` after *sep, which then becomes ", "; nothing when v is NULL. */
static void json_list(const char **sep, const char *key, const double *v, size_t n)
{
    if (v == NULL)
        return;
    printf("%s\"%s\": [", *sep, key);
    print_list(v, n, 1, ", ");
    printf("]");
    *sep = ", ";
}

/* The geometry and source objects (JSON: leading ", "). */
static void print_geometry(const vt_store *s, int json)
{
    const double *sp = NULL, *org = NULL, *dir = NULL, *aff = NULL;
    bool has_sp = meta_f64(s, "spacing", 3, &sp), has_org = meta_f64(s, "origin", 3, &org);
    bool has_dir = meta_f64(s, "direction", 9, &dir), has_aff = meta_f64(s, "affine", 16, &aff);
    char code[4] = "";
    bool has_code = has_aff && orientation_code(aff, code);
    vt_meta_type t;
    const void *crop = NULL;
    size_t nc = 0;
    bool has_crop = vt_meta_get(s, "crop", &t, &crop, &nc) == 0 && t == VT_META_I64 && nc == 6;
    if (json) {
        printf(", \"geometry\": {");
        const char *sep = "";
        json_list(&sep, "spacing", has_sp ? sp : NULL, 3);
        json_list(&sep, "origin", has_org ? org : NULL, 3);
        json_list(&sep, "direction", has_dir ? dir : NULL, 9);
        json_list(&sep, "affine", has_aff ? aff : NULL, 16);
        if (has_code) {
            printf("%s\"orientation\": \"%s\"", sep, code);
            sep = ", ";
        }
        if (has_crop) {
            const int64_t *c = crop;
            printf("%s\"crop\": [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 "]", sep,
                   c[0], c[1], c[2], c[3], c[4], c[5]);
        }
        printf("}");
    } else if (has_sp || has_org || has_dir || has_crop) {
        printf("geometry:\n");
        if (has_sp) {
            printf("  spacing (z, y, x) ");
            print_list(sp, 3, 0, " x ");
            printf(" mm\n");
        }
        if (has_code)
            printf("  orientation %s (voxel axes x, y, z point to these; RAS+ world)\n", code);
        if (has_org) {
            printf("  origin (first voxel, world x, y, z) (");
            print_list(org, 3, 0, ", ");
            printf(") mm\n");
        }
        if (has_dir) {
            printf("  direction (columns: voxel x, y, z) [");
            print_list(dir, 9, 0, " ");
            printf("]\n");
        }
        if (has_crop) {
            const int64_t *c = crop;
            printf("  crop of the source: z %" PRId64 ":%" PRId64 ", y %" PRId64 ":%" PRId64 ", x %" PRId64 ":%" PRId64
                   "\n",
                   c[0], c[1], c[2], c[3], c[4], c[5]);
        }
        const double *ssp = NULL;
        const char *kern = meta_str(s, "resample.kernel");
        const void *ssh = NULL;
        size_t ns = 0;
        if (meta_f64(s, "source.spacing", 3, &ssp) && kern &&
            vt_meta_get(s, "source.shape", &t, &ssh, &ns) == 0 && t == VT_META_I64 && ns == 3) {
            const int64_t *sh = ssh;
            printf("  resampled from spacing %g x %g x %g mm (source %" PRId64 " x %" PRId64 " x %" PRId64
                   "), kernels (z, y, x) %s\n",
                   ssp[0], ssp[1], ssp[2], sh[0], sh[1], sh[2], kern);
        }
    }
    const char *src = meta_str(s, "source"), *srcs = meta_str(s, "sources"), *seg = meta_str(s, "seg.source");
    const char *fmt = meta_str(s, "format");
    const void *hdr = NULL;
    size_t hn = 0;
    nifti_fields nf;
    bool has_nifti = vt_meta_get(s, "nifti.header", &t, &hdr, &hn) == 0 && t == VT_META_BYTES &&
                     nifti_decode(hdr, hn, &nf);
    if (json) {
        printf(", \"source\": {");
        const char *sep = "";
        if (src) {
            printf("\"path\": ");
            json_string(src);
            sep = ", ";
        }
        if (srcs) {
            printf("%s\"paths\": [", sep);
            const char *p = srcs;
            for (int i = 0; *p || i == 0; i++) {
                const char *nl = strchr(p, '\n');
                size_t len = nl ? (size_t)(nl - p) : strlen(p);
                char *one = strndup(p, len);
                printf("%s", i ? ", " : "");
                json_string(one ? one : "");
                free(one);
                p += len + (nl != NULL);
                if (!nl)
                    break;
            }
            printf("]");
            sep = ", ";
        }
        if (seg) {
            printf("%s\"seg\": ", sep);
            json_string(seg);
            sep = ", ";
        }
        if (fmt) {
            printf("%s\"format\": ", sep);
            json_string(fmt);
        }
        if (has_nifti)
            print_nifti(&nf, 1);
        printf("}");
    } else if (src || fmt) {
        printf("source: %s", src ? src : "?");
        if (fmt)
            printf(" (%s)", fmt);
        if (srcs && strchr(srcs, '\n')) {
            printf(", channels:");
            for (const char *p = srcs; *p;) {
                const char *nl = strchr(p, '\n');
                size_t len = nl ? (size_t)(nl - p) : strlen(p);
                printf("\n    %.*s", (int)len, p);
                p += len + (nl != NULL);
            }
        }
        printf("\n");
        if (seg)
            printf("  segmentation: %s\n", seg);
        if (has_nifti)
            print_nifti(&nf, 0);
    }
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
            print_u64s(ai.shape, ai.ndim);
            printf("], \"tile\": [");
            print_u32s(ai.tile, ai.ndim);
            printf("], \"grid\": [");
            print_u64s(ai.grid, ai.ndim);
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
            print_u64s(ai.shape, ai.ndim);
            printf("), tile (");
            print_u32s(ai.tile, ai.ndim);
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
    if (json)
        printf("]");
    print_geometry(s, json);
    size_t nm = vt_meta_count(s);
    if (json)
        printf(", \"metadata\": {");
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

