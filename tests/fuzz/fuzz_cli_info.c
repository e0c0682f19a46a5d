/* fuzz_cli_info: arbitrary bytes as a store, through the library calls the
 * CLI makes for `voxtile info` (text and --json), `voxtile verify` and
 * `voxtile extract` (tools/voxtile.c: cmd_info, cmd_verify, cmd_extract),
 * replicated here statement for statement with the output going to
 * /dev/null -- the CLI's main is not linked. extract's box, which the CLI
 * takes from its command line, is derived from the array's shape: one voxel
 * of padding around the origin corner, and a reflected box over the far
 * corner as float16. As in fuzz_open, the checksums are recomputed first. */
#include "fuzz_common.h"

#include <inttypes.h>
#include <sys/mman.h>

static FILE *out;

/* ---- tools/voxtile.c helpers, as they are there ------------------------------- */

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

static void json_string(const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static void json_double(double v)
{
    if (isnan(v) || isinf(v))
        fprintf(out, "null");
    else
        fprintf(out, "%.17g", v);
}

static void print_meta_value(vt_meta_type type, const void *data, size_t count, int json)
{
    switch (type) {
    case VT_META_STRING:
        if (json)
            json_string(data);
        else
            fprintf(out, "\"%s\"", (const char *)data);
        break;
    case VT_META_F64:
    case VT_META_I64:
        fputc('[', out);
        for (size_t i = 0; i < count; i++) {
            if (i)
                fprintf(out, ", ");
            if (type == VT_META_I64)
                fprintf(out, "%" PRId64, ((const int64_t *)data)[i]);
            else if (json)
                json_double(((const double *)data)[i]);
            else
                fprintf(out, "%g", ((const double *)data)[i]);
        }
        fputc(']', out);
        break;
    default:
        fputc('"', out);
        for (size_t i = 0; i < count && (json || i < 16); i++)
            fprintf(out, "%02x", ((const unsigned char *)data)[i]);
        if (!json && count > 16)
            fprintf(out, "...");
        fputc('"', out);
        if (!json)
            fprintf(out, " (%zu bytes)", count);
        break;
    }
}

static const char *filter_name(vt_filter f)
{
    return f == VT_FILTER_SHUFFLE ? "shuffle" : f == VT_FILTER_AUTO ? "auto" : "none";
}

/* ---- cmd_info --------------------------------------------------------------- */

static int cmd_info(const char *path, int json)
{
    vt_store *s;
    int rc = vt_open(path, 0, &s);
    if (rc)
        return 1;
    size_t na = vt_store_narrays(s);
    char b1[32], b2[32];
    if (json) {
        fprintf(out, "{\"path\": ");
        json_string(vt_store_path(s));
        fprintf(out, ", \"file_size\": %" PRIu64 ", \"format_version\": %u, \"writer_version\": %u, \"arrays\": [",
                vt_store_file_size(s), vt_store_format_version(s), vt_store_writer_version(s));
    } else {
        uint32_t wv = vt_store_writer_version(s);
        fprintf(out, "%s: voxtile store, format %u, written by voxtile %u.%u.%u, %s\n", vt_store_path(s),
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
            fprintf(out, "%s{\"name\": ", i ? ", " : "");
            json_string(ai.name);
            fprintf(out, ", \"dtype\": \"%s\", \"shape\": [", vt_dtype_name(ai.dtype));
            for (int d = 0; d < ai.ndim; d++)
                fprintf(out, "%s%" PRIu64, d ? ", " : "", ai.shape[d]);
            fprintf(out, "], \"tile\": [");
            for (int d = 0; d < ai.ndim; d++)
                fprintf(out, "%s%u", d ? ", " : "", ai.tile[d]);
            fprintf(out, "], \"grid\": [");
            for (int d = 0; d < ai.ndim; d++)
                fprintf(out, "%s%" PRIu64, d ? ", " : "", ai.grid[d]);
            fprintf(out, "], \"tiles\": %" PRIu64 ", \"codec\": \"%s\", \"level\": %d, \"filter\": \"%s\"",
                    ai.ntiles, vt_codec_name(ai.codec), ai.level, filter_name(ai.filter));
            fprintf(out, ", \"raw_bytes\": %" PRIu64 ", \"stored_bytes\": %" PRIu64 ", \"ratio\": %.4f",
                    ai.raw_bytes, ai.stored_bytes, ratio);
            fprintf(out, ", \"constant_tiles\": %" PRIu64 ", \"raw_tiles\": %" PRIu64 ", \"shuffled_tiles\": %" PRIu64
                         ", \"min\": ",
                    ai.constant_tiles, ai.raw_tiles, ai.shuffled_tiles);
            json_double(ai.min);
            fprintf(out, ", \"max\": ");
            json_double(ai.max);
            fprintf(out, ", \"fill\": ");
            json_double(ai.fill);
            if (vt_label_count(a)) {
                fprintf(out, ", \"labels\": [");
                for (size_t l = 0; l < vt_label_count(a); l++) {
                    vt_label_info li;
                    vt_label_get(a, l, &li);
                    fprintf(out, "%s{\"value\": %" PRId64 ", \"voxels\": %" PRIu64 ", \"tiles\": %" PRIu64 "}",
                            l ? ", " : "", li.value, li.voxels, li.ntiles);
                }
                fprintf(out, "]");
            }
            fprintf(out, "}");
        } else {
            fprintf(out, "array '%s': %s (", ai.name, vt_dtype_name(ai.dtype));
            for (int d = 0; d < ai.ndim; d++)
                fprintf(out, "%s%" PRIu64, d ? ", " : "", ai.shape[d]);
            fprintf(out, "), tile (");
            for (int d = 0; d < ai.ndim; d++)
                fprintf(out, "%s%u", d ? ", " : "", ai.tile[d]);
            fprintf(out, "), %" PRIu64 " tiles\n", ai.ntiles);
            fprintf(out, "  codec %s", vt_codec_name(ai.codec));
            if (ai.codec != VT_CODEC_NONE)
                fprintf(out, " level %d", ai.level);
            fprintf(out, ", shuffle %s; tiles: %" PRIu64 " shuffled, %" PRIu64 " raw, %" PRIu64 " constant\n",
                    filter_name(ai.filter), ai.shuffled_tiles, ai.raw_tiles, ai.constant_tiles);
            fprintf(out, "  %s raw, %s stored, ratio %.3f\n", human((double)ai.raw_bytes, b1, sizeof b1),
                    human((double)ai.stored_bytes, b2, sizeof b2), ratio);
            fprintf(out, "  values [%g, %g], fill %g\n", ai.min, ai.max, ai.fill);
            if (vt_label_count(a)) {
                fprintf(out, "  %zu labels (value: voxels):", vt_label_count(a));
                for (size_t l = 0; l < vt_label_count(a); l++) {
                    vt_label_info li;
                    vt_label_get(a, l, &li);
                    fprintf(out, "%s %" PRId64 ": %" PRIu64, l % 8 ? "," : (l ? "\n   " : ""), li.value, li.voxels);
                }
                fprintf(out, "\n");
            }
        }
    }
    size_t nm = vt_meta_count(s);
    if (json)
        fprintf(out, "], \"metadata\": {");
    else if (nm)
        fprintf(out, "metadata:\n");
    for (size_t i = 0; i < nm; i++) {
        const char *key;
        vt_meta_type type;
        const void *data;
        size_t count;
        vt_meta_at(s, i, &key, &type, &data, &count);
        if (json) {
            fprintf(out, "%s", i ? ", " : "");
            json_string(key);
            fprintf(out, ": ");
        } else
            fprintf(out, "  %s = ", key);
        print_meta_value(type, data, count, json);
        if (!json)
            fputc('\n', out);
    }
    if (json)
        fprintf(out, "}}\n");
    vt_close(s);
    return 0;
}

/* ---- cmd_verify ------------------------------------------------------------- */

static int cmd_verify(const char *path)
{
    vt_store *s;
    int rc = vt_open(path, 0, &s);
    if (rc)
        return 1;
    uint64_t tiles = 0;
    for (size_t k = 0; k < vt_store_narrays(s) && rc == 0; k++) {
        const vt_array *a;
        vt_array_info ai;
        vt_store_array_at(s, k, &a);
        vt_array_info_get(a, &ai);
        rc = vt_verify_array(a, NULL);
        if (rc)
            fprintf(out, "voxtile: %s\n", vt_errmsg(s));
        tiles += ai.ntiles;
    }
    if (rc == 0)
        fprintf(out, "%s: ok (%zu arrays, %" PRIu64 " tiles)\n", path, vt_store_narrays(s), tiles);
    vt_close(s);
    return rc ? 1 : 0;
}

/* ---- cmd_extract -------------------------------------------------------------- */

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

static const uint64_t box_edge[6] = {0, 4096, 64, 16, 8, 5};

/* --start/--size from the shape: @p far picks the far corner. */
static int cmd_extract(const char *path, int far, vt_dtype want, vt_pad pad)
{
    vt_read_opts ro;
    vt_read_opts_init(&ro);
    ro.dtype = want;
    ro.pad = pad;
    ro.pad_value = -1;
    vt_store *s;
    int rc = vt_open(path, 0, &s);
    if (rc)
        return 1;
    const vt_array *a = NULL;
    if (vt_store_array(s, "image", &a) != 0)
        rc = vt_store_array_at(s, 0, &a);
    if (rc) {
        vt_close(s);
        return 1;
    }
    vt_array_info ai;
    vt_array_info_get(a, &ai);
    vt_dtype dd = ro.dtype == VT_DTYPE_SAME ? ai.dtype : ro.dtype;
    const char *descr = npy_descr(dd);
    int nd = ai.ndim;
    int64_t start[VT_MAX_DIMS], size[VT_MAX_DIMS];
    for (int d = 0; d < nd; d++) {
        uint64_t e = box_edge[nd];
        size[d] = (int64_t)(ai.shape[d] + 2 < e && ai.shape[d] + 2 > ai.shape[d] ? ai.shape[d] + 2 : e);
        start[d] = far ? (int64_t)(ai.shape[d] > (uint64_t)INT64_MAX / 2 ? INT64_MAX / 2 : ai.shape[d]) - 2 : -1;
    }
    if (descr == NULL) {
        vt_close(s);
        return 1;
    }
    uint64_t usize[VT_MAX_DIMS], slab = 1;
    size_t es = vt_dtype_size(dd);
    for (int d = 0; d < nd; d++) {
        usize[d] = (uint64_t)size[d];
        if (d > 0)
            slab *= usize[d];
    }
    char shape[256];
    size_t o = 0;
    for (int d = 0; d < nd; d++)
        o += (size_t)snprintf(shape + o, sizeof shape - o, "%" PRIu64 ",%s", usize[d], d < nd - 1 ? " " : "");
    if (nd > 1)
        shape[o - 1] = 0;
    char hdr[512];
    int hl = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape);
    int total = 10 + hl + 1;
    int padded = (total + 63) / 64 * 64;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
    uint16_t hlen = (uint16_t)(padded - 10);
    memcpy(pre + 8, &hlen, 2);
    fwrite(pre, 1, 10, out);
    fwrite(hdr, 1, (size_t)hl, out);
    for (int i = 10 + hl; i < padded - 1; i++)
        fputc(' ', out);
    fputc('\n', out);
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
            fprintf(out, "voxtile: %s\n", vt_errmsg(s));
        else
            fwrite(buf, es, (size_t)(sz[0] * slab), out);
    }
    free(buf);
    vt_close(s);
    return rc ? 1 : 0;
}

/* ---- the harness --------------------------------------------------------------- */

static const char *store_path(void)
{
    static char path[1100];
    static int fd = -1;
    if (fd < 0) {
        fd = memfd_create("vtfuzz-cli", MFD_CLOEXEC);
        if (fd >= 0)
            snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        else {
            snprintf(path, sizeof path, "%s", fz_path(0, "cli.vxt"));
            fd = 0;
        }
        out = fopen("/dev/null", "w");
        FZ_CHECK(out != NULL, "cannot open /dev/null");
    }
    return path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (16u << 20))
        return 0;
    const char *path = store_path();
    uint8_t *f = malloc(size ? size : 1);
    if (f == NULL)
        return 0;
    memcpy(f, data, size);
    fz_reseal(f, size);
    if (strncmp(path, "/proc/self/fd/", 14) == 0) {
        int fd = atoi(path + 14);
        FZ_CHECK(ftruncate(fd, 0) == 0 && ftruncate(fd, (off_t)size) == 0, "ftruncate");
        FZ_CHECK(size == 0 || pwrite(fd, f, size, 0) == (ssize_t)size, "pwrite");
    } else
        FZ_CHECK(fz_write_file(path, f, size) == 0, "cannot write %s", path);
    free(f);
    if (cmd_info(path, 0) == 0) { /* the rest only for a file that opens */
        cmd_info(path, 1);
        cmd_verify(path);
        cmd_extract(path, 0, VT_DTYPE_SAME, VT_PAD_CONSTANT);
        cmd_extract(path, 1, VT_F16, VT_PAD_REFLECT);
    }
    fflush(out);
    return 0;
}
