/* Opening an image file through the library's source interface (src/importers/source.h)
 * and reading it slab by slab, as the converter does, within a byte budget. */
#ifndef VT_FUZZ_SOURCE_H
#define VT_FUZZ_SOURCE_H

#include "fuzz_common.h"
#include "source.h"

/* Most bytes of voxels read per opened file, and per slab. */
#define FZ_READ_BUDGET (8u << 20)
#define FZ_SLAB_MAX (1u << 20)

/* Check what the opener promises about an opened source. */
static inline void fz_check_source(const vt_source *s)
{
    FZ_CHECK(s->path != NULL, "source without a path");
    FZ_CHECK(vt_dtype_size(s->dtype) > 0, "source dtype %d invalid", (int)s->dtype);
    uint64_t total = vt_dtype_size(s->dtype);
    for (int i = 0; i < 4; i++) {
        FZ_CHECK(s->shape[i] >= 1, "shape[%d] = %llu", i, (unsigned long long)s->shape[i]);
        FZ_CHECK(!__builtin_mul_overflow(total, s->shape[i], &total), "shape overflows");
    }
    FZ_CHECK(s->read_slab != NULL, "source without read_slab");
    FZ_CHECK(s->header_len <= VT_SOURCE_HEADER_MAX, "header_len %zu", s->header_len);
    FZ_CHECK(s->extra_len == 0 || s->extra != NULL, "extra_len %zu without extra", s->extra_len);
    /* touch what the converter copies into metadata */
    volatile unsigned sum = 0;
    for (size_t i = 0; i < s->header_len; i++)
        sum += s->header[i];
    for (size_t i = 0; i < s->extra_len; i++)
        sum += s->extra[i];
    if (s->format)
        sum += (unsigned)strlen(s->format);
    (void)sum;
}

/* Read slabs of every channel in order (z increasing), then one slab out of
 * order (a gzip stream must restart), within FZ_READ_BUDGET bytes. Errors
 * end the walk: they are the right answer to a damaged file. */
static inline void fz_walk_source(vt_source *s, unsigned seed)
{
    uint64_t slice = vt__source_slice_bytes(s);
    if (slice == 0 || slice > FZ_SLAB_MAX)
        return;
    uint64_t C = s->shape[0], Z = s->shape[1];
    uint64_t nzmax = FZ_SLAB_MAX / slice;
    if (nzmax > Z)
        nzmax = Z;
    /* vary the slab height a little, as the converter's tile rows do */
    if (nzmax > 1 && (seed & 1))
        nzmax = 1 + seed % nzmax;
    uint64_t spent = 0;
    int rc = 0;
    for (uint64_t c = 0; c < C && rc == 0; c++)
        for (uint64_t z = 0; z < Z && rc == 0; z += nzmax) {
            uint64_t nz = Z - z < nzmax ? Z - z : nzmax;
            if (spent + nz * slice > FZ_READ_BUDGET) {
                rc = 1;
                break;
            }
            /* exactly nz slices, so that ASan sees a source writing past them */
            unsigned char *buf = malloc((size_t)(nz * slice));
            if (buf == NULL)
                return;
            rc = s->read_slab(s, c, z, nz, buf);
            free(buf);
            FZ_CHECK(rc <= 0 && fz_known_code(rc), "read_slab returned %d", rc);
            spent += nz * slice;
        }
    if (rc == 0 && spent + 2 * slice <= FZ_READ_BUDGET && (C > 1 || Z > 1)) {
        unsigned char *buf = malloc((size_t)slice);
        if (buf == NULL)
            return;
        int r2 = s->read_slab(s, C - 1, Z - 1, 1, buf); /* the last slab, maybe again */
        FZ_CHECK(r2 <= 0 && fz_known_code(r2), "read_slab returned %d", r2);
        r2 = s->read_slab(s, 0, 0, 1, buf); /* back to the start */
        FZ_CHECK(r2 <= 0 && fz_known_code(r2), "read_slab returned %d", r2);
        free(buf);
    }
}

/* Open @p path as an image; when it opens, check and walk it. */
static inline int fz_try_source(const char *path, unsigned seed)
{
    vt_source *s = NULL;
    int rc = vt__source_open(path, &s);
    FZ_CHECK(fz_known_code(rc), "vt__source_open returned %d", rc);
    if (getenv("VT_FUZZ_DEBUG")) /* which inputs open: for checking seeds */
        fprintf(stderr, "%s: %d %s\n", path, rc, rc ? vt_errmsg(NULL) : "opened");
    if (rc != 0) {
        FZ_CHECK(s == NULL, "failed open left a source");
        return rc;
    }
    fz_check_source(s);
    fz_walk_source(s, seed);
    vt__source_close(s);
    return 0;
}

/* @p size bytes as the file @p name in the harness's folder (fz_path slot
 * @p slot), tried as an image (fz_try_source) and removed; its code. */
static inline int fz_try_file(int slot, const char *name, const void *data, size_t size, unsigned seed)
{
    const char *path = fz_path(slot, name);
    fz_put_file(path, data, size);
    int rc = fz_try_source(path, seed);
    unlink(path);
    return rc;
}

#endif
