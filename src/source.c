/* Image sources: format dispatch, and the .npy source (3-d and 4-d arrays,
 * C order read by slabs, Fortran order gathered run by run). */
#include "source.h"

#include "io_npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

vt_source *vt__source_new(const char *path)
{
    vt_source *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->path = strdup(path);
    if (s->path == NULL) {
        free(s);
        return NULL;
    }
    for (int i = 0; i < 4; i++)
        s->shape[i] = 1;
    for (int i = 0; i < 3; i++)
        s->spacing[i] = 1;
    for (int i = 0; i < 16; i += 5)
        s->affine[i] = s->qform[i] = s->sform[i] = 1;
    return s;
}

void vt__source_close(vt_source *s)
{
    if (s == NULL)
        return;
    if (s->close)
        s->close(s);
    free(s->extra);
    free(s->path);
    free(s);
}

uint64_t vt__source_slice_bytes(const vt_source *s)
{
    return s->shape[2] * s->shape[3] * vt_dtype_size(s->dtype);
}

int vt__source_open(const char *path, vt_source **out)
{
    *out = NULL;
    if (ends_with(path, ".nii") || ends_with(path, ".nii.gz") || ends_with(path, ".hdr") ||
        ends_with(path, ".hdr.gz") || ends_with(path, ".img") || ends_with(path, ".img.gz"))
        return vt__nifti_open(path, out);
    if (ends_with(path, ".npy"))
        return vt__npy_source_open(path, out);
    return vt__fail(NULL, VT_EUNSUPPORTED,
                    "%s: unknown image type (supported: .nii, .nii.gz, .hdr/.img, .npy)", path);
}

int vt_image_probe(const char *path, vt_image_info *out)
{
    if (path == NULL || out == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_image_probe: NULL argument");
    vt_source *s;
    int rc = vt__source_open(path, &s);
    if (rc)
        return rc;
    memset(out, 0, sizeof *out);
    memcpy(out->shape, s->shape, sizeof out->shape);
    out->dtype = s->dtype;
    memcpy(out->spacing, s->spacing, sizeof out->spacing);
    snprintf(out->format, sizeof out->format, "%s", s->format ? s->format : "?");
    vt__source_close(s);
    return 0;
}

/* ---- .npy --------------------------------------------------------------- */

typedef struct npy_impl {
    vt_npy n;
} npy_impl;

static int npy_read_slab(vt_source *s, uint64_t c, uint64_t z0, uint64_t nz, void *buf)
{
    npy_impl *im = s->impl;
    vt_npy *n = &im->n;
    uint64_t Z = s->shape[1], Y = s->shape[2], X = s->shape[3];
    size_t es = n->es;
    if (!n->fortran) /* contiguous: channel c, slices z0.. */
        return vt__npy_read(n, ((c * Z + z0) * Y * X) * es, buf, (size_t)(nz * Y * X * es));
    /* Fortran order (3-d only): element (z, y, x) at z + Z * (y + Y * x); each
     * (y, x) holds the slab's nz values of z contiguously. */
    unsigned char *out = buf;
    size_t per = (size_t)nz * es;
    unsigned char *r = malloc(per);
    if (r == NULL)
        return vt__fail(NULL, VT_ENOMEM, "%s: out of memory", s->path);
    int rc = 0;
    for (uint64_t y = 0; y < Y && rc == 0; y++)
        for (uint64_t x = 0; x < X && rc == 0; x++) {
            rc = vt__npy_read(n, (z0 + Z * (y + Y * x)) * es, r, per);
            for (uint64_t k = 0; k < nz && rc == 0; k++)
                memcpy(out + ((k * Y + y) * X + x) * es, r + k * es, es);
        }
    free(r);
    return rc;
}

static void npy_close(vt_source *s)
{
    npy_impl *im = s->impl;
    if (im) {
        vt__npy_close(&im->n);
        free(im);
        s->impl = NULL;
    }
}

int vt__npy_source_open(const char *path, vt_source **out)
{
    *out = NULL;
    vt_source *s = vt__source_new(path);
    npy_impl *im = calloc(1, sizeof *im);
    if (s == NULL || im == NULL) {
        free(im);
        vt__source_close(s);
        return vt__fail(NULL, VT_ENOMEM, "%s: out of memory", path);
    }
    s->impl = im;
    s->close = npy_close;
    s->read_slab = npy_read_slab;
    s->format = "npy";
    int rc = vt__npy_open(path, &im->n);
    if (rc) {
        vt__source_close(s);
        return rc;
    }
    vt_npy *n = &im->n;
    if (n->ndim != 3 && n->ndim != 4) {
        vt__source_close(s);
        return vt__fail(NULL, VT_EUNSUPPORTED, "%s: a %d-d .npy is not an image: expected (z, y, x) or (c, z, y, x)",
                        path, n->ndim);
    }
    if (n->fortran && n->ndim != 3) {
        vt__source_close(s);
        return vt__fail(NULL, VT_EUNSUPPORTED, "%s: a 4-d Fortran-order .npy cannot be streamed; save it in C order",
                        path);
    }
    int lead = n->ndim == 3;
    for (int d = 0; d < n->ndim; d++)
        s->shape[d + lead] = n->shape[d];
    s->dtype = n->dtype;
    /* .npy has no geometry: unit spacing, identity affine (x, y, z) -> (x, y, z) */
    *out = s;
    return 0;
}
