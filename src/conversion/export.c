/* vt_export_nifti: an array of a store back to NIfTI (.nii or .nii.gz).
 *
 * When the store came from NIfTI, the source header kept in its metadata is
 * written back, patched only where the store differs from the source: the
 * shape (crop, channels), the datatype (a cast or applied scaling), the
 * scaling fields, the translation of the cropped grid, and vox_offset. So
 * convert + export reproduces the source voxels and header fields. Other
 * stores get a fresh NIfTI-1 header from the "affine" and "spacing" metadata.
 * Data are streamed slab by slab from the lazy reader, in the header's byte
 * order, to a temporary file renamed into place. */
#include "convert.h"
#include "nifti.h"
#include "voxtile_convert.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* A header being written: the source's (or a fresh NIfTI-1) bytes, patched. */
typedef struct hdr {
    unsigned char b[VT_NIFTI2_SIZE + 4];
    vt_nifti_hdr h;  /* b, its layout and byte order */
    bool widen;      /* 64-bit integers in the source, stored narrowed to 32 bits */
} hdr;

/* Declared in convert.h. */
const void *vt__meta_typed(const vt_store *s, const char *key, vt_meta_type type, size_t count)
{
    vt_meta_type t;
    const void *d;
    size_t n;
    if (vt_meta_get(s, key, &t, &d, &n) != 0 || t != type || (count && n != count))
        return NULL;
    return d;
}

/* The affine of array @p name: "NAME@K.affine" for a pyramid level (a
 * segmentation's level shares its image's: any "...@K.affine"), else "affine". */
static const double *level_affine(const vt_store *s, const char *name)
{
    const char *at = strrchr(name, '@');
    if (at) {
        char key[VT_NAME_MAX + 32];
        snprintf(key, sizeof key, "%s.affine", name);
        const double *a = vt__meta_typed(s, key, VT_META_F64, 16);
        if (a)
            return a;
        for (size_t i = 0; i < vt_meta_count(s); i++) { /* seg@K: the image's level K */
            const char *k;
            vt_meta_type t;
            const void *d;
            size_t n;
            vt_meta_at(s, i, &k, &t, &d, &n);
            size_t kl = strlen(k), sl = strlen(at);
            if (t == VT_META_F64 && n == 16 && kl > sl + 7 && strncmp(k + kl - sl - 7, at, sl) == 0 &&
                strcmp(k + kl - 7, ".affine") == 0)
                return d;
        }
    }
    return vt__meta_typed(s, "affine", VT_META_F64, 16);
}

/* Index transform from array @p name's grid to the source's, per axis x, y, z:
 * source index = fac * index + t (crop corner; pyramid levels scale). */
static void level_transform(const vt_store *s, const char *name, const int64_t *crop, double *fac, double *t)
{
    const double *base = vt__meta_typed(s, "affine", VT_META_F64, 16), *lev = level_affine(s, name);
    /* a resampled store: the stored grid's columns are the source's scaled by n / n' */
    const double *src = vt__meta_typed(s, "resample.spacing", VT_META_F64, 3)
                            ? vt__meta_typed(s, "source.affine", VT_META_F64, 16)
                            : NULL;
    for (int c = 0; c < 3; c++) {
        fac[c] = 1;
        if (base && lev && lev != base) {
            double nb = 0, nl = 0;
            for (int r = 0; r < 3; r++) {
                nb += base[4 * r + c] * base[4 * r + c];
                nl += lev[4 * r + c] * lev[4 * r + c];
            }
            if (nb > 0)
                fac[c] = nearbyint(sqrt(nl / nb));
            if (fac[c] < 1)
                fac[c] = 1;
        }
        if (src && base) {
            double ns = 0, nb = 0;
            for (int r = 0; r < 3; r++) {
                ns += src[4 * r + c] * src[4 * r + c];
                nb += base[4 * r + c] * base[4 * r + c];
            }
            if (ns > 0 && nb > 0)
                fac[c] *= sqrt(nb / ns);
        }
        double corner = crop ? (double)crop[2 * (2 - c)] : 0; /* crop is (z0, z1, y0, y1, x0, x1) */
        t[c] = corner + (fac[c] - 1) / 2;
    }
}

/* Build the header for @p a of @p s. */
static int make_header(const vt_store *s, const char *name, const uint64_t *shape, vt_dtype out_dt,
                       bool source_grid, hdr *hd, const unsigned char **ext, size_t *ext_len)
{
    memset(hd, 0, sizeof *hd);
    vt_nifti_hdr *h = &hd->h;
    h->b = hd->b;
    vt_meta_type t;
    const void *src;
    size_t n;
    bool from_source = vt_meta_get(s, "nifti.header", &t, &src, &n) == 0 && t == VT_META_BYTES &&
                       (n == VT_NIFTI1_SIZE || n == VT_NIFTI2_SIZE);
    *ext = NULL;
    *ext_len = 0;
    if (from_source) {
        memcpy(h->b, src, n);
        h->l = n == VT_NIFTI1_SIZE ? &vt__nifti1 : &vt__nifti2;
        h->swap = vt__ld32(h->b) != (uint32_t)n;
        size_t en;
        if (vt_meta_get(s, "nifti.extensions", &t, &src, &en) == 0 && t == VT_META_BYTES) {
            *ext = src;
            *ext_len = en;
        }
    } else { /* a fresh NIfTI-1 header */
        h->l = &vt__nifti1;
        vt__nifti_put_int(h, 0, 4, VT_NIFTI1_SIZE);
        memcpy(h->b + h->l->magic, "n+1\0", 4);
        vt__nifti_put_real(h, h->l->pixdim, 1.0);  /* qfac */
        vt__nifti_put_int(h, h->l->xyzt_units, 1, 2); /* mm */
    }
    const vt_nifti_layout *l = h->l;
    /* shape */
    uint64_t C = shape[0], Z = shape[1], Y = shape[2], X = shape[3];
    int nd = C > 1 ? 4 : Z > 1 ? 3 : Y > 1 ? 2 : 1;
    int64_t dims[8] = {nd, (int64_t)X, (int64_t)Y, (int64_t)Z, (int64_t)C, 1, 1, 1};
    for (int i = 0; i < 8; i++)
        vt__nifti_put_int(h, l->dim + (size_t)(i * l->dim_bytes), l->dim_bytes, dims[i]);
    int code = vt__nifti_code(out_dt);
    if (from_source && !source_grid) { /* int64/uint64 sources were narrowed (values checked): widen back */
        int src_code = (int)vt__nifti_get_int(h, l->datatype, 2);
        hd->widen = (src_code == VT_NIFTI_INT64 && out_dt == VT_I32) ||
                    (src_code == VT_NIFTI_UINT64 && out_dt == VT_U32);
        if (hd->widen)
            code = src_code;
    }
    vt__nifti_put_int(h, l->datatype, 2, code);
    vt__nifti_put_int(h, l->bitpix, 2, (int64_t)(8 * vt_dtype_size(out_dt)) * (hd->widen ? 2 : 1));
    /* scaling: the header's own fields stay when they still hold (raw values
     * with their slope, or no scaling at all); cleared when the store holds
     * scaled values or labels */
    bool image = strcmp(name, "seg") != 0 && !source_grid;
    bool kept = vt__meta_typed(s, "scl_slope", VT_META_F64, 1) != NULL;
    double slope = from_source ? vt__nifti_get_real(h, l->scl_slope) : 0;
    double inter = from_source ? vt__nifti_get_real(h, l->scl_inter) : 0;
    bool scales = isfinite(slope) && slope != 0 && !(slope == 1 && (inter == 0 || !isfinite(inter)));
    if (scales && !(image && kept)) {
        vt__nifti_put_real(h, l->scl_slope, 0);
        vt__nifti_put_real(h, l->scl_inter, 0);
    }
    /* geometry */
    if (from_source) {
        /* a single file now, whatever the source was */
        if (memcmp(h->b + l->magic, "ni1", 3) == 0 || memcmp(h->b + l->magic, "ni2", 3) == 0)
            h->b[l->magic + 1] = '+';
        /* the stored grid maps to the source's by index' = f * index + t: f = 1 and
         * t = the crop corner for a cropped array; a pyramid level also scales
         * (f = 2, 4 ... along halved axes) with t = corner + (f - 1) / 2 */
        const int64_t *crop = vt__meta_typed(s, "crop", VT_META_I64, 6);
        const double *q = vt__meta_typed(s, "nifti.qform", VT_META_F64, 16);
        const double *f = vt__meta_typed(s, "nifti.sform", VT_META_F64, 16);
        double fac[3] = {1, 1, 1}, tr[3] = {0, 0, 0};
        if (!source_grid)
            level_transform(s, name, crop, fac, tr);
        bool moved = tr[0] != 0 || tr[1] != 0 || tr[2] != 0 || fac[0] != 1 || fac[1] != 1 || fac[2] != 1;
        if (q && f && moved) {
            for (int r = 0; r < 3; r++) {
                double qt = q[4 * r + 3], st = f[4 * r + 3];
                for (int c = 0; c < 3; c++) {
                    qt += q[4 * r + c] * tr[c];
                    st += f[4 * r + c] * tr[c];
                    vt__nifti_put_real(h, vt__nifti_real_at(h, l->srow, 4 * r + c), f[4 * r + c] * fac[c]);
                }
                vt__nifti_put_real(h, vt__nifti_real_at(h, l->quatern, 3 + r), qt); /* qoffset */
                vt__nifti_put_real(h, vt__nifti_real_at(h, l->srow, 4 * r + 3), st);
            }
            for (int c = 0; c < 3; c++) /* the qform's zooms */
                if (fac[c] != 1) {
                    size_t at = vt__nifti_real_at(h, l->pixdim, c + 1);
                    vt__nifti_put_real(h, at, vt__nifti_get_real(h, at) * fac[c]);
                }
        }
    } else {
        const double *aff = level_affine(s, name), *sp = vt__meta_typed(s, "spacing", VT_META_F64, 3);
        if (source_grid) {
            aff = vt__meta_typed(s, "source.affine", VT_META_F64, 16);
            sp = vt__meta_typed(s, "source.spacing", VT_META_F64, 3);
        }
        static const double eye[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
        if (aff == NULL)
            aff = eye;
        for (int i = 0; i < 12; i++)
            vt__nifti_put_real(h, vt__nifti_real_at(h, l->srow, i), aff[i]);
        /* sform_code 2: aligned to an anatomical volume */
        vt__nifti_put_int(h, l->xform_codes + (size_t)l->code_bytes, l->code_bytes, 2);
        for (int i = 0; i < 3; i++) {
            double z = sqrt(aff[i] * aff[i] + aff[4 + i] * aff[4 + i] + aff[8 + i] * aff[8 + i]);
            vt__nifti_put_real(h, vt__nifti_real_at(h, l->pixdim, i + 1), sp && aff == eye ? sp[2 - i] : z);
        }
    }
    return 0;
}

/* A NIfTI file being written: streamed through zlib to a temporary that is
 * published whole at the end (as stores are). */
struct vt_nifti_out {
    vt_tmpfile tf;
    gzFile g;
    const char *path;
    hdr h;
    vt_dtype dt;
    size_t file_elem; /* bytes of a voxel in the file */
    int wrote;
};

int vt__nifti_out_open(const vt_store *s, const char *name, const uint64_t *shape, vt_dtype dt, bool source_grid,
                       const char *out, vt_nifti_out **wp)
{
    *wp = NULL;
    bool gz = vt__ends_with(out, ".nii.gz");
    if (!gz && !vt__ends_with(out, ".nii"))
        return vt__fail_at(NULL, VT_EINVAL, out, "the output must end in .nii or .nii.gz");
    vt_nifti_out *w = vt__calloc(1, sizeof *w);
    if (w == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, out, "out of memory");
    w->path = out;
    w->dt = dt;
    const unsigned char *ext;
    size_t ext_len;
    make_header(s, name, shape, dt, source_grid, &w->h, &ext, &ext_len);
    w->file_elem = vt_dtype_size(dt) * (w->h.widen ? 2 : 1);
    /* vox_offset: header, 4-byte extender, extensions, rounded up to 16 */
    size_t hs = w->h.h.l->size;
    uint64_t vox = ((hs + 4 + ext_len) + 15) / 16 * 16;
    if (w->h.h.l->version == 2)
        vt__nifti_put_int(&w->h.h, w->h.h.l->vox_offset, 8, (int64_t)vox);
    else
        vt__nifti_put_real(&w->h.h, w->h.h.l->vox_offset, (double)vox);
    /* zlib writes through a duplicate of the temporary's descriptor */
    int rc = vt__tmpfile_open(&w->tf, out, NULL);
    if (rc) {
        vt__tmpfile_discard(&w->tf);
        free(w);
        return rc;
    }
    int zfd = fcntl(w->tf.fd, F_DUPFD_CLOEXEC, 0);
    w->g = zfd >= 0 ? gzdopen(zfd, gz ? "wb6" : "wbT") : NULL;
    if (w->g == NULL) {
        int err = errno;
        if (zfd >= 0)
            close(zfd);
        vt__tmpfile_discard(&w->tf);
        free(w);
        return vt__fail_at(NULL, vt__errno_code(err), out, "cannot write: %s", strerror(err));
    }
    unsigned char pre[548] = {0};
    memcpy(pre, w->h.b, hs);
    if (ext_len)
        pre[hs] = 1;
    w->wrote = gzwrite(w->g, pre, (unsigned)(hs + 4)) == (int)(hs + 4);
    if (w->wrote && ext_len)
        w->wrote = gzwrite(w->g, ext, (unsigned)ext_len) == (int)ext_len;
    static const unsigned char zeros[16];
    size_t pad = (size_t)(vox - (hs + 4 + ext_len));
    if (w->wrote && pad)
        w->wrote = gzwrite(w->g, zeros, (unsigned)pad) == (int)pad;
    *wp = w;
    return 0;
}

size_t vt__nifti_out_elem(const vt_nifti_out *w) { return w->file_elem; }

int vt__nifti_out_write(vt_nifti_out *w, void *data, uint64_t n)
{
    unsigned char *buf = data;
    size_t fe = w->file_elem;
    if (fe != vt_dtype_size(w->dt))
        for (uint64_t i = n; i-- > 0;) { /* widen in place, from the end */
            uint32_t v = vt__ld32(buf + 4 * i);
            vt__st64(buf + 8 * i, w->dt == VT_I32 ? (uint64_t)(int64_t)(int32_t)v : v);
        }
    if (w->h.h.swap && fe > 1)
        for (uint64_t i = 0; i < n; i++) {
            unsigned char *e = buf + i * fe;
            for (size_t p = 0, q = fe - 1; p < q; p++, q--) {
                unsigned char t = e[p];
                e[p] = e[q];
                e[q] = t;
            }
        }
    for (uint64_t off = 0; off < n * fe && w->wrote;) {
        unsigned k = n * fe - off > (1u << 30) ? (1u << 30) : (unsigned)(n * fe - off);
        w->wrote = gzwrite(w->g, buf + off, k) == (int)k;
        off += k;
    }
    return w->wrote ? 0 : VT_EIO;
}

int vt__nifti_out_close(vt_nifti_out *w, int rc)
{
    if (w == NULL)
        return rc;
    int zerr = Z_OK;
    const char *zmsg = w->wrote ? "" : gzerror(w->g, &zerr);
    if (!w->wrote && rc == 0)
        rc = vt__fail_at(NULL, zerr == Z_ERRNO ? vt__errno_code(errno) : VT_EIO, w->path, "cannot write: %s",
                         zerr == Z_ERRNO ? strerror(errno) : zmsg);
    if (gzclose(w->g) != Z_OK && rc == 0)
        rc = vt__fail_at(NULL, VT_EIO, w->path, "cannot write: %s", strerror(errno));
    if (rc == 0)
        rc = vt__tmpfile_publish(&w->tf, NULL);
    vt__tmpfile_discard(&w->tf);
    free(w);
    return rc;
}

int vt_export_nifti(const char *store_path, const char *array, const char *out)
{
    return vt__export_plain(store_path, array, out, NULL);
}

int vt__export_plain(const char *store_path, const char *array, const char *out, const vt_export_opts *o)
{
    if (store_path == NULL || out == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_export_nifti: store and output must be given");
    if (!vt__ends_with(out, ".nii.gz") && !vt__ends_with(out, ".nii"))
        return vt__fail_at(NULL, VT_EINVAL, out, "the output must end in .nii or .nii.gz");
    vt_store *s;
    int rc = vt_open(store_path, 0, &s);
    if (rc)
        return rc;
    const vt_array *a;
    if ((rc = vt_store_array(s, array ? array : "image", &a)) != 0) {
        rc = vt__store_fail(s, rc);
        vt_close(s);
        return rc;
    }
    vt_array_info ai;
    vt_array_info_get(a, &ai);
    if (ai.ndim != 4) {
        vt_close(s);
        return vt__fail_at(NULL, VT_EUNSUPPORTED, store_path,
                           "array '%s' is %d-d; NIfTI export takes (c, z, y, x) images", ai.name, ai.ndim);
    }
    vt_dtype dt = ai.dtype == VT_F16 || ai.dtype == VT_BF16 ? VT_F32 : ai.dtype;
    vt_nifti_out *w;
    if ((rc = vt__nifti_out_open(s, ai.name, ai.shape, dt, false, out, &w)) != 0) {
        vt_close(s);
        return rc;
    }
    /* data, volume by volume, in slabs of z */
    size_t file_elem = vt__nifti_out_elem(w);
    uint64_t slice = ai.shape[2] * ai.shape[3];
    uint64_t step = slice * file_elem >= (16u << 20) ? 1 : (16u << 20) / (slice * file_elem);
    unsigned char *buf = vt__malloc((size_t)(step * slice * file_elem));
    if (buf == NULL)
        rc = vt__fail_at(NULL, VT_ENOMEM, out, "out of memory");
    vt_read_opts ro;
    vt_read_opts_init(&ro);
    ro.dtype = dt;
    bool ok = true;
    for (uint64_t c = 0; c < ai.shape[0] && rc == 0 && ok; c++)
        for (uint64_t z = 0; z < ai.shape[1] && rc == 0 && ok; z += step) {
            uint64_t nz = ai.shape[1] - z < step ? ai.shape[1] - z : step;
            int64_t st[4] = {(int64_t)c, (int64_t)z, 0, 0};
            uint64_t sz[4] = {1, nz, ai.shape[2], ai.shape[3]};
            if ((rc = vt_read(a, st, sz, &ro, buf)) != 0) {
                rc = vt__store_fail(s, rc);
                break;
            }
            ok = vt__nifti_out_write(w, buf, nz * slice) == 0; /* close reports a failure */
            if (o && o->progress)
                o->progress(o->progress_ctx, (double)(c * ai.shape[1] + z + nz) / (double)(ai.shape[0] * ai.shape[1]));
        }
    free(buf);
    rc = vt__nifti_out_close(w, rc);
    vt_close(s);
    return rc;
}
