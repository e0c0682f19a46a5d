/* vt_convert: one file to a store. A plain .npy keeps its rank and order
 * (C order read in chunks of whole hyper-rows, Fortran order transposed one
 * tile-thick slab at a time); anything else is vt_convert_images() with one
 * image. */
#include "convert.h"
#include "io_npy.h"

#include <stdlib.h>
#include <string.h>

/* Read chunks of about this many bytes. */
#define CHUNK_BYTES (8u << 20)

/* C order: the data of a slab of whole rows along axis 0 of the store
 * shape (after the channel axis) is contiguous; read it in chunks of whole
 * hyper-rows along the first axis that is not 1. */
static int stream_c_order(vt_npy *n, vt_writer *w, int id, int nd, const uint64_t *shape,
                          const uint32_t *tile)
{
    /* find k: the first axis whose chunks we step through, so that the
     * trailing block (axes after k) is at most CHUNK_BYTES or k is last */
    int k = 0;
    uint64_t inner = n->es; /* bytes of one index step along axis k */
    for (int d = 1; d < nd; d++)
        inner *= shape[d];
    while (k < nd - 1 && inner > CHUNK_BYTES) {
        k++;
        inner /= shape[k];
    }
    uint64_t step = inner >= CHUNK_BYTES ? 1 : CHUNK_BYTES / inner;
    /* whole tiles along k when a slab of them is not too big: every write then
     * completes its tiles and the writer keeps no partial ones */
    if (inner * tile[k] <= 8 * (uint64_t)CHUNK_BYTES)
        step = step < tile[k] ? tile[k] : step / tile[k] * tile[k];
    if (step > shape[k])
        step = shape[k];
    unsigned char *buf = vt__malloc((size_t)(inner * step));
    if (buf == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, n->path, "out of memory for a %llu-byte slab",
                           (unsigned long long)(inner * step));
    uint64_t start[VT_MAX_DIMS] = {0}, size[VT_MAX_DIMS];
    for (int d = 0; d < nd; d++)
        size[d] = d < k ? 1 : shape[d];
    uint64_t off = 0;
    int rc = 0;
    for (;;) {
        for (start[k] = 0; start[k] < shape[k] && rc == 0; start[k] += step) {
            size[k] = shape[k] - start[k] < step ? shape[k] - start[k] : step;
            size_t len = (size_t)(inner * size[k]);
            rc = vt__npy_read(n, off, buf, len);
            if (rc == 0) {
                int r = vt_writer_write(w, id, start, size, buf);
                if (r)
                    rc = vt__convert_writer_fail(w, r);
            }
            off += len;
        }
        int d = k - 1;
        for (; d >= 0 && rc == 0; d--) {
            if (++start[d] < shape[d])
                break;
            start[d] = 0;
        }
        if (d < 0 || rc)
            break;
    }
    free(buf);
    return rc;
}

/* Fortran order: the file is the C-order array with the axes reversed. Read
 * chunks along the last store axis (the slowest in the file), one tile thick
 * so that the tiles they complete leave memory at once, and transpose. */
static int stream_f_order(vt_npy *n, vt_writer *w, int id, int nd, const uint64_t *shape,
                          uint64_t tile_last)
{
    int L = nd - 1;
    uint64_t plane = n->es; /* bytes of one index step along the last axis */
    for (int d = 0; d < L; d++)
        plane *= shape[d];
    uint64_t step = tile_last;
    if (step > shape[L])
        step = shape[L];
    unsigned char *raw = vt__malloc((size_t)(plane * step)), *tr = vt__malloc((size_t)(plane * step));
    if (raw == NULL || tr == NULL) {
        free(raw);
        free(tr);
        return vt__fail_at(NULL, VT_ENOMEM, n->path, "out of memory for a %llu-byte slab",
                           (unsigned long long)(plane * step));
    }
    uint64_t start[VT_MAX_DIMS] = {0}, size[VT_MAX_DIMS];
    for (int d = 0; d < nd; d++)
        size[d] = shape[d];
    int rc = 0;
    size_t elem_size = n->es;
    for (uint64_t x0 = 0; x0 < shape[L] && rc == 0; x0 += step) {
        uint64_t nx = shape[L] - x0 < step ? shape[L] - x0 : step;
        rc = vt__npy_read(n, x0 * plane, raw, (size_t)(plane * nx));
        if (rc)
            break;
        /* raw is C order over (nx, shape[L-1], ..., shape[0]); tr is C order
         * over (shape[0], ..., shape[L-1], nx). Walk tr in order. */
        uint64_t dims[VT_MAX_DIMS], rstr[VT_MAX_DIMS], idx[VT_MAX_DIMS] = {0};
        for (int d = 0; d < L; d++)
            dims[d] = shape[d];
        dims[L] = nx;
        /* stride in raw of tr's axis d: raw axes are reversed */
        uint64_t s = 1;
        for (int d = 0; d < nd; d++) { /* raw's last axis is tr's axis 0 */
            rstr[d] = s;
            s *= dims[d];
        }
        uint64_t total = plane / elem_size * nx;
        for (uint64_t i = 0; i < total; i++) {
            uint64_t ro = 0;
            for (int d = 0; d < nd; d++)
                ro += idx[d] * rstr[d];
            memcpy(tr + i * elem_size, raw + ro * elem_size, elem_size);
            for (int d = nd - 1; d >= 0; d--) {
                if (++idx[d] < dims[d])
                    break;
                idx[d] = 0;
            }
        }
        start[L] = x0;
        size[L] = nx;
        int r = vt_writer_write(w, id, start, size, tr);
        if (r)
            rc = vt__convert_writer_fail(w, r);
    }
    free(raw);
    free(tr);
    return rc;
}

static int convert_npy(const char *in, const char *out, const vt_convert_opts *o)
{
    vt_npy n;
    int rc = vt__npy_open(in, &n);
    if (rc)
        return rc;
    vt_array_spec spec;
    vt_array_spec_init(&spec);
    spec.name = o->array;
    spec.dtype = n.dtype;
    spec.codec = o->codec;
    spec.level = o->level;
    spec.filter = o->filter;
    int nd;
    uint64_t shape[VT_MAX_DIMS];
    int lead = n.ndim == 3; /* (z, y, x) -> (1, z, y, x) */
    nd = n.ndim + lead;
    if (n.ndim == 0 || nd > VT_MAX_DIMS) {
        vt__npy_close(&n);
        return vt__fail_at(NULL, VT_EUNSUPPORTED, in, "arrays of %d dimensions are not supported (1..%d)", n.ndim,
                           VT_MAX_DIMS);
    }
    spec.ndim = nd;
    if (lead)
        shape[0] = 1;
    for (int d = 0; d < n.ndim; d++)
        shape[d + lead] = n.shape[d];
    memcpy(spec.shape, shape, sizeof(uint64_t) * (size_t)nd);
    if (o->tile[0] || o->tile[1] || o->tile[2]) {
        if (nd < 3) {
            vt__npy_close(&n);
            return vt__fail_at(NULL, VT_EINVAL, in, "a (z, y, x) tile needs an array of 3 or more dimensions");
        }
        for (int d = 0; d < nd; d++)
            spec.tile[d] = d < nd - 3 ? 1 : o->tile[d - (nd - 3)];
        for (int d = nd - 3; d < nd; d++)
            if (spec.tile[d] == 0) {
                vt__npy_close(&n);
                return vt__fail_at(NULL, VT_EINVAL, in, "tile sizes must be >= 1");
            }
    }
    vt_writer_opts wo;
    vt_writer_opts_init(&wo);
    wo.threads = o->threads;
    vt_writer *w = NULL;
    rc = vt_writer_open(out, &wo, &w);
    int id = -1;
    if (rc == 0 && (rc = vt_writer_add_array(w, &spec, &id)) != 0)
        rc = vt__convert_writer_fail(w, rc);
    if (rc == 0 && (rc = vt_writer_set_meta(w, "source", VT_META_STRING, in, strlen(in))) != 0)
        rc = vt__convert_writer_fail(w, rc);
    if (rc == 0 && spec.tile[0] == 0)
        vt__default_tile(nd, spec.tile);
    if (rc == 0) /* Fortran order: chunks one tile thick */
        rc = n.fortran && nd > 1 ? stream_f_order(&n, w, id, nd, shape, spec.tile[nd - 1])
                                 : stream_c_order(&n, w, id, nd, shape, spec.tile);
    if (rc == 0) {
        int r = vt_writer_finalize(w);
        if (r)
            rc = vt__convert_writer_fail(w, r);
    }
    vt_writer_free(w);
    vt__npy_close(&n);
    return rc;
}

int vt_convert(const char *in, const char *out, const vt_convert_opts *opts)
{
    if (in == NULL || out == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_convert: input and output must be given");
    vt_convert_opts def;
    if (opts == NULL) {
        vt_convert_opts_init(&def);
        opts = &def;
    }
    if (opts->array == NULL || opts->array[0] == 0)
        return vt__fail(NULL, VT_EINVAL, "vt_convert: array name must be given");
    /* a plain .npy of any rank or order keeps its shape; pyramid levels need an image's path */
    if (vt__ends_with(in, ".npy") && opts->crop_mode == VT_CROP_NONE && opts->dtype == VT_DTYPE_SAME &&
        opts->levels == 0 && !(opts->spacing[0] || opts->spacing[1] || opts->spacing[2]) &&
        opts->normalize == VT_NORMALIZE_NONE)
        return convert_npy(in, out, opts);
    return vt_convert_images(&in, 1, NULL, out, opts);
}
