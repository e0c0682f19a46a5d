/* vt_convert: stream an input file into a store in bounded memory. */
#include "codec.h"
#include "io_npy.h"
#include "labels.h"
#include "resample.h"
#include "source.h"

#include <math.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Read chunks of about this many bytes. */
#define CHUNK_BYTES (8u << 20)

void vt_convert_opts_init(vt_convert_opts *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->codec = VT_CODEC_LZ4HC;
    o->filter = VT_FILTER_AUTO;
    o->threads = 1;
    o->array = "image";
    o->dtype = VT_DTYPE_SAME;
    o->crop_mode = VT_CROP_NONE;
}

int vt_convert_opts_string(const vt_convert_opts *o, char *buf, size_t len)
{
    if (o == NULL)
        return -1;
    static const char *const filters[] = {"off", "on", "auto"};
    static const char *const crops[] = {"none", "box", "nonzero", "label"};
    char crop[128];
    switch (o->crop_mode) {
    case VT_CROP_BOX:
        snprintf(crop, sizeof crop, "box:%lld:%lld,%lld:%lld,%lld:%lld", (long long)o->crop[0],
                 (long long)o->crop[1], (long long)o->crop[2], (long long)o->crop[3], (long long)o->crop[4],
                 (long long)o->crop[5]);
        break;
    case VT_CROP_LABEL: snprintf(crop, sizeof crop, "label:%lld", (long long)o->crop_margin); break;
    default: snprintf(crop, sizeof crop, "%s", (unsigned)o->crop_mode < 4 ? crops[o->crop_mode] : "?");
    }
    uint32_t t[3];
    for (int d = 0; d < 3; d++)
        t[d] = o->tile[d] ? o->tile[d] : VT_DEFAULT_TILE_EDGE;
    return snprintf(buf, len, "array=%s dtype=%s apply_scaling=%d crop=%s levels=%d tile=%u,%u,%u codec=%s level=%d shuffle=%s",
                    o->array ? o->array : "image",
                    o->dtype == VT_DTYPE_SAME ? "same" : vt_dtype_name(o->dtype), o->apply_scaling ? 1 : 0,
                    crop, o->levels, t[0], t[1], t[2], vt_codec_name(o->codec),
                    o->level ? o->level : vt__codec_default_level(o->codec),
                    (unsigned)o->filter < 3 ? filters[o->filter] : "?");
}

/* Whether source @p s has an intensity scaling other than x*1+0 (slope 0 means none). */
static bool has_scaling(const vt_source *s)
{
    return s->scl_slope != 0 && !(s->scl_slope == 1 && s->scl_inter == 0);
}

/* Re-report a writer failure as the thread's last failure. */
static int writer_fail(vt_writer *w, int rc)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", vt_writer_errmsg(w));
    return vt__fail(NULL, rc, "%s", msg);
}

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
                    rc = writer_fail(w, r);
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
    size_t es = n->es;
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
        uint64_t total = plane / es * nx;
        for (uint64_t i = 0; i < total; i++) {
            uint64_t ro = 0;
            for (int d = 0; d < nd; d++)
                ro += idx[d] * rstr[d];
            memcpy(tr + i * es, raw + ro * es, es);
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
            rc = writer_fail(w, r);
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
        rc = writer_fail(w, rc);
    if (rc == 0 && (rc = vt_writer_set_meta(w, "source", VT_META_STRING, in, strlen(in))) != 0)
        rc = writer_fail(w, rc);
    if (rc == 0 && spec.tile[0] == 0)
        vt__default_tile(nd, spec.tile);
    if (rc == 0) /* Fortran order: chunks one tile thick */
        rc = n.fortran && nd > 1 ? stream_f_order(&n, w, id, nd, shape, spec.tile[nd - 1])
                                 : stream_c_order(&n, w, id, nd, shape, spec.tile);
    if (rc == 0) {
        int r = vt_writer_finalize(w);
        if (r)
            rc = writer_fail(w, r);
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
    /* a plain .npy of any rank or order keeps its shape */
    if (vt__ends_with(in, ".npy") && opts->crop_mode == VT_CROP_NONE && opts->dtype == VT_DTYPE_SAME)
        return convert_npy(in, out, opts);
    return vt_convert_images(&in, 1, NULL, out, opts);
}

/* ---- images (+ segmentation) -> store ----------------------------------- */

/* Pyramid levels of one array while it streams. */
typedef struct levels {
    vt_pyramid *pyr;
    int n;
    int ids[32];          /* writer ids of name@1 .. name@n */
    uint64_t shape[32][3];
    vt_dtype dtype;
    uint64_t channel;     /* channel being streamed */
    vt_writer *w;
    unsigned char *buf;   /* one output slice in the array's dtype */
    float *fslice;        /* one input slice as float */
    int32_t *lslice;      /* or as int32 (labels) */
} levels;

typedef struct job {
    const vt_convert_opts *o;
    levels lv_img, lv_seg;
    vt_source **img;
    size_t nimg;
    vt_source *seg;
    uint64_t shape[3];   /* source (z, y, x) */
    int64_t box[6];      /* crop: z0, z1, y0, y1, x0, x1 */
    vt_dtype img_dtype, seg_dtype;
    uint32_t tile[4];
    uint64_t done, total; /* progress, in slices */
    unsigned char *slab, *cropped, *cast;
    size_t slab_cap, cropped_cap, cast_cap;
} job;

static void progress(job *j, uint64_t slices)
{
    j->done += slices;
    if (j->o->progress && j->total)
        j->o->progress(j->o->progress_ctx, (double)j->done / (double)j->total);
}

/* A type holding every value of both (for channels of different dtypes). */
static vt_dtype promote(vt_dtype a, vt_dtype b)
{
    if (a == b)
        return a;
    bool fa = vt__dtype_is_float(a), fb = vt__dtype_is_float(b);
    if (fa || fb) {
        size_t wa = fa ? vt_dtype_size(a) : vt_dtype_size(a) * 2, wb = fb ? vt_dtype_size(b) : vt_dtype_size(b) * 2;
        return (wa > 4 || wb > 4) ? VT_F64 : VT_F32;
    }
    double lo = fmin(vt__dtype_min(a), vt__dtype_min(b)), hi = fmax(vt__dtype_max(a), vt__dtype_max(b));
    static const vt_dtype order[] = {VT_U8, VT_I8, VT_U16, VT_I16, VT_U32, VT_I32};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (vt__dtype_min(order[i]) <= lo && vt__dtype_max(order[i]) >= hi)
            return order[i];
    return VT_F64;
}

static bool same_affine(const double *a, const double *b)
{
    for (int i = 0; i < 12; i++) {
        double tol = 1e-4 * fmax(1.0, fmax(fabs(a[i]), fabs(b[i])));
        if (fabs(a[i] - b[i]) > tol)
            return false;
    }
    return true;
}

/* Read slices [z0, z0+nz) of channel c, cropped to the box in y and x. */
static int read_cropped(job *j, vt_source *s, uint64_t c, uint64_t z0, uint64_t nz, void **out)
{
    uint64_t Y = s->shape[2], X = s->shape[3];
    size_t es = vt_dtype_size(s->dtype);
    if (vt__grow(&j->slab, &j->slab_cap, (size_t)(nz * Y * X * es)))
        return vt__fail_at(NULL, VT_ENOMEM, s->path, "out of memory for a slab");
    int rc = s->read_slab(s, c, z0, nz, j->slab);
    if (rc)
        return rc;
    uint64_t y0 = (uint64_t)j->box[2], y1 = (uint64_t)j->box[3], x0 = (uint64_t)j->box[4],
             x1 = (uint64_t)j->box[5];
    if (y0 == 0 && y1 == Y && x0 == 0 && x1 == X) {
        *out = j->slab;
        return 0;
    }
    uint64_t ny = y1 - y0, nx = x1 - x0;
    if (vt__grow(&j->cropped, &j->cropped_cap, (size_t)(nz * ny * nx * es)))
        return vt__fail_at(NULL, VT_ENOMEM, s->path, "out of memory for a slab");
    for (uint64_t k = 0; k < nz; k++)
        for (uint64_t y = 0; y < ny; y++)
            memcpy(j->cropped + ((k * ny + y) * nx) * es, j->slab + ((k * Y + y0 + y) * X + x0) * es,
                   (size_t)(nx * es));
    *out = j->cropped;
    return 0;
}

/* Convert n elements to dtype dt (scaling first when asked); values that do
 * not fit dt are an error naming the file. */
static int cast(job *j, const vt_source *s, const void *in, uint64_t n, vt_dtype dt, bool scale,
                bool integral, void **out)
{
    if (s->dtype == dt && !scale) {
        *out = (void *)(uintptr_t)in;
        return 0;
    }
    size_t ses = vt_dtype_size(s->dtype), des = vt_dtype_size(dt);
    if (vt__grow(&j->cast, &j->cast_cap, (size_t)(n * des)))
        return vt__fail_at(NULL, VT_ENOMEM, s->path, "out of memory");
    bool to_int = !vt__dtype_is_float(dt);
    double lo = vt__dtype_min(dt), hi = vt__dtype_max(dt);
    const unsigned char *p = in;
    for (uint64_t i = 0; i < n; i++) {
        double v = vt__load_f64(s->dtype, p + i * ses);
        if (scale)
            v = v * s->scl_slope + s->scl_inter;
        if (to_int) {
            double r = nearbyint(v);
            if (integral && r != v)
                return vt__fail_at(NULL, VT_EINVAL, s->path, "label value %g is not an integer", v);
            if (!(r >= lo && r <= hi))
                return vt__fail_at(NULL, VT_ERANGE, s->path, "value %g does not fit %s", v, vt_dtype_name(dt));
            v = r;
        }
        vt__store_f64(dt, j->cast + i * des, v);
        if (!to_int && isfinite(v) && !isfinite(vt__load_f64(dt, j->cast + i * des)))
            return vt__fail_at(NULL, VT_ERANGE, s->path, "value %g does not fit %s", v, vt_dtype_name(dt));
    }
    *out = j->cast;
    return 0;
}

/* Bounding box (z0, z1, y0, y1, x0, x1) of voxels != 0 over every channel of
 * the given sources, one streaming pass; false when there are none. */
static int nonzero_box(job *j, vt_source **src, size_t nsrc, int64_t *box, bool *found)
{
    uint64_t Z = j->shape[0], Y = j->shape[1], X = j->shape[2];
    int64_t b[6] = {INT64_MAX, -1, INT64_MAX, -1, INT64_MAX, -1};
    uint64_t step = j->tile[1];
    for (size_t i = 0; i < nsrc; i++) {
        vt_source *s = src[i];
        size_t es = vt_dtype_size(s->dtype);
        for (uint64_t c = 0; c < s->shape[0]; c++)
            for (uint64_t z0 = 0; z0 < Z; z0 += step) {
                uint64_t nz = Z - z0 < step ? Z - z0 : step;
                if (vt__grow(&j->slab, &j->slab_cap, (size_t)(nz * Y * X * es)))
                    return vt__fail_at(NULL, VT_ENOMEM, s->path, "out of memory");
                int rc = s->read_slab(s, c, z0, nz, j->slab);
                if (rc)
                    return rc;
                for (uint64_t k = 0; k < nz; k++)
                    for (uint64_t y = 0; y < Y; y++) {
                        const unsigned char *row = j->slab + ((k * Y + y) * X) * es;
                        int64_t first = -1, last = -1;
                        for (uint64_t x = 0; x < X; x++) {
                            bool nz_ = false;
                            for (size_t q = 0; q < es; q++)
                                nz_ |= row[x * es + q] != 0;
                            /* -0.0 is zero */
                            if (nz_ && vt__dtype_is_float(s->dtype) && vt__load_f64(s->dtype, row + x * es) == 0)
                                nz_ = false;
                            if (nz_) {
                                if (first < 0)
                                    first = (int64_t)x;
                                last = (int64_t)x;
                            }
                        }
                        if (first < 0)
                            continue;
                        int64_t z = (int64_t)(z0 + k);
                        b[0] = z < b[0] ? z : b[0];
                        b[1] = z + 1 > b[1] ? z + 1 : b[1];
                        b[2] = (int64_t)y < b[2] ? (int64_t)y : b[2];
                        b[3] = (int64_t)y + 1 > b[3] ? (int64_t)y + 1 : b[3];
                        b[4] = first < b[4] ? first : b[4];
                        b[5] = last + 1 > b[5] ? last + 1 : b[5];
                    }
                progress(j, nz);
            }
    }
    *found = b[1] > 0;
    if (*found)
        memcpy(box, b, sizeof b);
    return 0;
}

/* The affine of the stored (cropped) grid: the origin moves to the crop corner. */
static void level_affine(const job *j, double *aff)
{
    const vt_source *s = j->img[0];
    memcpy(aff, s->affine, 16 * sizeof *aff);
    double ijk[3] = {(double)j->box[4], (double)j->box[2], (double)j->box[0]};
    for (int r = 0; r < 3; r++)
        aff[4 * r + 3] = s->affine[4 * r + 3] + s->affine[4 * r] * ijk[0] + s->affine[4 * r + 1] * ijk[1] +
                         s->affine[4 * r + 2] * ijk[2];
}

static int write_meta_common(vt_writer *w, job *j, const char *const *images, const char *segpath)
{
    vt_source *s = j->img[0];
    int rc = 0;
    size_t len = 0;
    for (size_t i = 0; i < j->nimg; i++)
        len += strlen(images[i]) + 1;
    char *all = vt__malloc(len + 1);
    if (all == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, images[0], "out of memory");
    all[0] = 0;
    for (size_t i = 0; i < j->nimg; i++) {
        strcat(all, images[i]);
        if (i + 1 < j->nimg)
            strcat(all, "\n");
    }
    double aff[16];
    level_affine(j, aff);
    double origin[3] = {aff[3], aff[7], aff[11]}, dir[9];
    for (int c = 0; c < 3; c++) {
        double n = sqrt(aff[c] * aff[c] + aff[4 + c] * aff[4 + c] + aff[8 + c] * aff[8 + c]);
        for (int r = 0; r < 3; r++)
            dir[3 * r + c] = n > 0 ? aff[4 * r + c] / n : (r == c);
    }
    int64_t crop[6];
    memcpy(crop, j->box, sizeof crop);
#define META(k, t, d, n)                                                                          \
    do {                                                                                          \
        if (rc == 0)                                                                              \
            rc = vt_writer_set_meta(w, k, t, d, n);                                               \
    } while (0)
    META("source", VT_META_STRING, images[0], strlen(images[0]));
    META("sources", VT_META_STRING, all, strlen(all));
    if (segpath)
        META("seg.source", VT_META_STRING, segpath, strlen(segpath));
    META("format", VT_META_STRING, s->format, strlen(s->format));
    char how[512];
    if (vt_convert_opts_string(j->o, how, sizeof how) < (int)sizeof how)
        META("convert.options", VT_META_STRING, how, strlen(how));
    META("spacing", VT_META_F64, s->spacing, 3);
    META("affine", VT_META_F64, aff, 16);
    META("origin", VT_META_F64, origin, 3);
    META("direction", VT_META_F64, dir, 9);
    META("crop", VT_META_I64, crop, 6);
    if (strncmp(s->format, "nifti", 5) == 0) {
        int64_t qc = s->qform_code, sc = s->sform_code;
        META("nifti.header", VT_META_BYTES, s->header, s->header_len);
        if (s->extra_len)
            META("nifti.extensions", VT_META_BYTES, s->extra, s->extra_len);
        META("nifti.qform", VT_META_F64, s->qform, 16);
        META("nifti.sform", VT_META_F64, s->sform, 16);
        META("nifti.qform_code", VT_META_I64, &qc, 1);
        META("nifti.sform_code", VT_META_I64, &sc, 1);
    }
    if (strcmp(s->format, "nrrd") == 0 || strcmp(s->format, "metaimage") == 0) {
        /* the text header, verbatim */
        char key[32];
        snprintf(key, sizeof key, "%s.header", s->format);
        const char *text = s->header_len ? (const char *)s->header : (const char *)s->extra;
        size_t tlen = s->header_len ? s->header_len : s->extra_len;
        if (text && tlen)
            META(key, VT_META_BYTES, text, tlen);
    }
    if (has_scaling(s) && !j->o->apply_scaling) {
        META("scl_slope", VT_META_F64, &s->scl_slope, 1);
        META("scl_inter", VT_META_F64, &s->scl_inter, 1);
    }
#undef META
    free(all);
    return rc ? writer_fail(w, rc) : 0;
}

/* Write one output slice of a pyramid level. */
static int emit_level(void *ctx, int level, uint64_t z, const float *f, const int32_t *lab)
{
    levels *lv = ctx;
    uint64_t n = lv->shape[level - 1][1] * lv->shape[level - 1][2];
    size_t es = vt_dtype_size(lv->dtype);
    bool to_int = !vt__dtype_is_float(lv->dtype);
    for (uint64_t i = 0; i < n; i++) {
        double v = f ? (double)f[i] : (double)lab[i];
        vt__store_f64(lv->dtype, lv->buf + i * es, to_int ? nearbyint(v) : v);
    }
    uint64_t start[4] = {lv->channel, z, 0, 0},
             size[4] = {1, 1, lv->shape[level - 1][1], lv->shape[level - 1][2]};
    int rc = vt_writer_write(lv->w, lv->ids[level - 1], start, size, lv->buf);
    return rc ? writer_fail(lv->w, rc) : 0;
}

/* Plan the levels of array @p name (shape and spacing of the stored grid),
 * declare their arrays and record their geometry. */
static int levels_setup(job *j, levels *lv, vt_writer *w, const vt_array_spec *base, const double *affine)
{
    lv->w = w;
    lv->dtype = base->dtype;
    bool labels = base->labels != 0;
    uint64_t shape[3] = {base->shape[1], base->shape[2], base->shape[3]};
    int n = j->o->levels > 32 ? 32 : j->o->levels;
    int rc = vt__pyramid_new(n, j->img[0]->spacing, shape, labels, emit_level, lv, &lv->pyr);
    if (rc)
        return vt__fail_at(NULL, rc, j->img[0]->path, "out of memory for pyramid levels");
    lv->n = vt__pyramid_levels(lv->pyr);
    uint64_t maxslice = shape[1] * shape[2];
    lv->fslice = vt__malloc(maxslice * sizeof *lv->fslice);
    lv->lslice = vt__malloc(maxslice * sizeof *lv->lslice);
    lv->buf = vt__malloc(maxslice * vt_dtype_size(base->dtype));
    if (lv->fslice == NULL || lv->lslice == NULL || lv->buf == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, j->img[0]->path, "out of memory for pyramid levels");
    double aff[16], sp[3];
    memcpy(aff, affine, sizeof aff);
    memcpy(sp, j->img[0]->spacing, sizeof sp);
    for (int k = 0; k < lv->n; k++) {
        int red[3];
        vt__pyramid_level(lv->pyr, k, lv->shape[k], red);
        vt_array_spec spec = *base;
        char name[VT_NAME_MAX + 1];
        snprintf(name, sizeof name, "%s@%d", base->name, k + 1);
        spec.name = name;
        for (int a = 0; a < 3; a++)
            spec.shape[a + 1] = lv->shape[k][a];
        if ((rc = vt_writer_add_array(w, &spec, &lv->ids[k])) != 0)
            return writer_fail(w, rc);
        /* voxel i of the level is centred on voxel 2i + 0.5 of the level above */
        for (int a = 0; a < 3; a++) {
            if (!red[a])
                continue;
            int col = 2 - a; /* affine columns are (x, y, z) */
            for (int r = 0; r < 3; r++) {
                aff[4 * r + 3] += 0.5 * aff[4 * r + col];
                aff[4 * r + col] *= 2;
            }
            sp[a] *= 2;
        }
        if (!labels) {
            char key[VT_NAME_MAX + 32];
            snprintf(key, sizeof key, "%s.spacing", name);
            if ((rc = vt_writer_set_meta(w, key, VT_META_F64, sp, 3)) == 0) {
                snprintf(key, sizeof key, "%s.affine", name);
                rc = vt_writer_set_meta(w, key, VT_META_F64, aff, 16);
            }
            if (rc)
                return writer_fail(w, rc);
        }
    }
    return 0;
}

static void levels_free(levels *lv)
{
    vt__pyramid_free(lv->pyr);
    free(lv->fslice);
    free(lv->lslice);
    free(lv->buf);
}

/* Stream every channel of @p src (cropped, cast) into array @p id starting at
 * channel @p c0, feeding the array's pyramid levels on the way. */
static int stream_source(job *j, vt_writer *w, int id, vt_source *src, uint64_t c0, vt_dtype dt,
                         bool scale, bool integral, levels *lv)
{
    uint64_t z0 = (uint64_t)j->box[0], z1 = (uint64_t)j->box[1];
    uint64_t ny = (uint64_t)(j->box[3] - j->box[2]), nx = (uint64_t)(j->box[5] - j->box[4]);
    uint64_t step = j->tile[1];
    size_t es = vt_dtype_size(dt);
    for (uint64_t c = 0; c < src->shape[0]; c++) {
        if (lv->n) {
            lv->channel = c0 + c;
            vt__pyramid_begin(lv->pyr);
        }
        for (uint64_t z = z0; z < z1; z += step) {
            uint64_t nz = z1 - z < step ? z1 - z : step;
            void *data = NULL, *conv = NULL;
            int rc = read_cropped(j, src, c, z, nz, &data);
            if (rc == 0)
                rc = cast(j, src, data, nz * ny * nx, dt, scale, integral, &conv);
            if (rc)
                return rc;
            uint64_t start[4] = {c0 + c, z - z0, 0, 0}, size[4] = {1, nz, ny, nx};
            rc = vt_writer_write(w, id, start, size, conv);
            if (rc)
                return writer_fail(w, rc);
            for (uint64_t k = 0; k < nz && lv->n; k++) { /* the slices, one by one, to the levels */
                const unsigned char *sl = (const unsigned char *)conv + k * ny * nx * es;
                for (uint64_t i = 0; i < ny * nx; i++) {
                    double v = vt__load_f64(dt, sl + i * es);
                    if (integral)
                        lv->lslice[i] = (int32_t)v;
                    else
                        lv->fslice[i] = (float)v;
                }
                rc = vt__pyramid_push(lv->pyr, integral ? NULL : lv->fslice, integral ? lv->lslice : NULL);
                if (rc)
                    return rc < 0 && rc != VT_ENOMEM ? rc : vt__fail_at(NULL, rc, src->path, "out of memory");
            }
            progress(j, nz);
        }
        if (lv->n) {
            int rc = vt__pyramid_end(lv->pyr);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int vt_convert_images(const char *const *images, size_t nimages, const char *segpath, const char *out,
                      const vt_convert_opts *opts)
{
    if (images == NULL || nimages == 0 || out == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_convert_images: images and output must be given");
    vt_convert_opts def;
    if (opts == NULL) {
        vt_convert_opts_init(&def);
        opts = &def;
    }
    if (opts->array == NULL || opts->array[0] == 0 || strcmp(opts->array, "seg") == 0)
        return vt__fail(NULL, VT_EINVAL, "vt_convert_images: the image array needs a name other than 'seg'");
    if (opts->dtype != VT_DTYPE_SAME && !vt__dtype_valid(opts->dtype))
        return vt__fail(NULL, VT_EINVAL, "vt_convert_images: invalid dtype %d", (int)opts->dtype);
    if (opts->crop_mode == VT_CROP_LABEL && segpath == NULL)
        return vt__fail_at(NULL, VT_EINVAL, images[0], "cropping to the label needs a segmentation");
    job j;
    memset(&j, 0, sizeof j);
    j.o = opts;
    j.nimg = nimages;
    j.img = vt__calloc(nimages, sizeof *j.img);
    if (j.img == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, images[0], "out of memory");
    int rc = 0;
    vt_writer *w = NULL;
    uint64_t channels = 0;
    for (size_t i = 0; i < nimages && rc == 0; i++)
        rc = vt__source_open_raw(images[i], opts->raw, false, &j.img[i]);
    if (rc == 0 && segpath)
        rc = vt__source_open_raw(segpath, opts->raw, true, &j.seg);
    if (rc)
        goto done;
    /* one voxel grid for all */
    vt_source *ref = j.img[0];
    for (int d = 0; d < 3; d++)
        j.shape[d] = ref->shape[d + 1];
    for (size_t i = 0; i <= nimages && rc == 0; i++) {
        vt_source *s = i < nimages ? j.img[i] : j.seg;
        if (s == NULL)
            continue;
        if (s->shape[1] != j.shape[0] || s->shape[2] != j.shape[1] || s->shape[3] != j.shape[2])
            rc = vt__fail_at(NULL, VT_EINVAL, s->path,
                             "shape (z, y, x) = (%llu, %llu, %llu) differs from %s (%llu, %llu, %llu)",
                             (unsigned long long)s->shape[1], (unsigned long long)s->shape[2],
                             (unsigned long long)s->shape[3], ref->path, (unsigned long long)j.shape[0],
                             (unsigned long long)j.shape[1], (unsigned long long)j.shape[2]);
        else if (!same_affine(s->affine, ref->affine))
            rc = vt__fail_at(NULL, VT_EINVAL, s->path, "its affine (voxel-to-world geometry) differs from %s's",
                             ref->path);
        if (i == nimages && rc == 0 && s->shape[0] != 1)
            rc = vt__fail_at(NULL, VT_EINVAL, s->path, "a segmentation must have one volume, not %llu",
                             (unsigned long long)s->shape[0]);
        if (i < nimages)
            channels += s->shape[0];
    }
    if (rc)
        goto done;
    /* dtypes */
    bool scaling = false;
    j.img_dtype = ref->dtype;
    for (size_t i = 0; i < nimages; i++) {
        j.img_dtype = promote(j.img_dtype, j.img[i]->dtype);
        scaling |= opts->apply_scaling && has_scaling(j.img[i]);
    }
    if (scaling)
        j.img_dtype = promote(j.img_dtype, VT_F32);
    /* raw values keep one scaling in the metadata: channels must share it */
    for (size_t i = 1; i < nimages && !opts->apply_scaling; i++) {
        const vt_source *a = j.img[0], *b = j.img[i];
        bool sa = has_scaling(a), sb = has_scaling(b);
        if (sa != sb || (sa && (a->scl_slope != b->scl_slope || a->scl_inter != b->scl_inter))) {
            rc = vt__fail_at(NULL, VT_EINVAL, images[i],
                             "scl_slope/scl_inter (%g, %g) differ from %s's (%g, %g): the channels of one "
                             "array share one scaling; convert with --apply-scaling", sb ? b->scl_slope : 1,
                             sb ? b->scl_inter : 0, images[0],
                             sa ? a->scl_slope : 1, sa ? a->scl_inter : 0);
            goto done;
        }
    }
    if (opts->dtype != VT_DTYPE_SAME)
        j.img_dtype = opts->dtype;
    if (j.seg)
        j.seg_dtype = vt__label_dtype_ok(j.seg->dtype) ? j.seg->dtype : VT_I16;
    /* tiles */
    j.tile[0] = 1;
    for (int d = 0; d < 3; d++)
        j.tile[d + 1] = opts->tile[d] ? opts->tile[d] : VT_DEFAULT_TILE_EDGE;
    if ((opts->tile[0] || opts->tile[1] || opts->tile[2]) && !(opts->tile[0] && opts->tile[1] && opts->tile[2])) {
        rc = vt__fail_at(NULL, VT_EINVAL, images[0], "tile sizes must be >= 1");
        goto done;
    }
    /* crop box */
    int64_t full[6] = {0, (int64_t)j.shape[0], 0, (int64_t)j.shape[1], 0, (int64_t)j.shape[2]};
    memcpy(j.box, full, sizeof full);
    j.total = channels * j.shape[0] + (j.seg ? j.shape[0] : 0);
    if (opts->crop_mode == VT_CROP_BOX) {
        for (int d = 0; d < 3 && rc == 0; d++)
            if (opts->crop[2 * d] < 0 || opts->crop[2 * d] >= opts->crop[2 * d + 1] ||
                opts->crop[2 * d + 1] > full[2 * d + 1])
                rc = vt__fail_at(NULL, VT_EINVAL, images[0], "crop %lld:%lld on axis %d is empty or outside 0:%lld",
                                 (long long)opts->crop[2 * d], (long long)opts->crop[2 * d + 1], d,
                                 (long long)full[2 * d + 1]);
        memcpy(j.box, opts->crop, sizeof j.box);
    } else if (opts->crop_mode == VT_CROP_NONZERO || opts->crop_mode == VT_CROP_LABEL) {
        bool found;
        int64_t b[6];
        j.total += opts->crop_mode == VT_CROP_NONZERO ? channels * j.shape[0] : j.shape[0];
        rc = opts->crop_mode == VT_CROP_NONZERO ? nonzero_box(&j, j.img, nimages, b, &found)
                                                : nonzero_box(&j, &j.seg, 1, b, &found);
        if (rc == 0 && found) {
            int64_t m = opts->crop_mode == VT_CROP_LABEL ? opts->crop_margin : 0;
            for (int d = 0; d < 3; d++) {
                j.box[2 * d] = b[2 * d] - m < 0 ? 0 : b[2 * d] - m;
                j.box[2 * d + 1] = b[2 * d + 1] + m > full[2 * d + 1] ? full[2 * d + 1] : b[2 * d + 1] + m;
            }
        }
    } else if (opts->crop_mode != VT_CROP_NONE)
        rc = vt__fail_at(NULL, VT_EINVAL, images[0], "invalid crop mode %d", (int)opts->crop_mode);
    if (rc)
        goto done;

    /* the store */
    vt_writer_opts wo;
    vt_writer_opts_init(&wo);
    wo.threads = opts->threads;
    if ((rc = vt_writer_open(out, &wo, &w)) != 0)
        goto done;
    vt_array_spec spec;
    vt_array_spec_init(&spec);
    spec.name = opts->array;
    spec.dtype = j.img_dtype;
    spec.ndim = 4;
    spec.shape[0] = channels;
    for (int d = 0; d < 3; d++)
        spec.shape[d + 1] = (uint64_t)(j.box[2 * d + 1] - j.box[2 * d]);
    memcpy(spec.tile, j.tile, sizeof j.tile);
    spec.codec = opts->codec;
    spec.level = opts->level;
    spec.filter = opts->filter;
    int img_id = -1, seg_id = -1;
    if ((rc = vt_writer_add_array(w, &spec, &img_id)) != 0) {
        rc = writer_fail(w, rc);
        goto done;
    }
    if (j.seg) {
        spec.name = "seg";
        spec.dtype = j.seg_dtype;
        spec.shape[0] = 1;
        spec.labels = 1;
        if ((rc = vt_writer_add_array(w, &spec, &seg_id)) != 0) {
            rc = writer_fail(w, rc);
            goto done;
        }
    }
    if ((rc = write_meta_common(w, &j, images, segpath)) != 0)
        goto done;
    if (opts->levels > 0) {
        double aff[16];
        level_affine(&j, aff);
        spec.name = opts->array;
        spec.dtype = j.img_dtype;
        spec.shape[0] = channels;
        spec.labels = 0;
        rc = levels_setup(&j, &j.lv_img, w, &spec, aff);
        if (rc == 0 && j.seg) {
            spec.name = "seg";
            spec.dtype = j.seg_dtype;
            spec.shape[0] = 1;
            spec.labels = 1;
            rc = levels_setup(&j, &j.lv_seg, w, &spec, aff);
        }
        int64_t nl = j.lv_img.n;
        if (rc == 0 && (rc = vt_writer_set_meta(w, "levels", VT_META_I64, &nl, 1)) != 0)
            rc = writer_fail(w, rc);
        if (rc)
            goto done;
    }
    uint64_t c0 = 0;
    for (size_t i = 0; i < nimages && rc == 0; i++) {
        rc = stream_source(&j, w, img_id, j.img[i], c0, j.img_dtype, opts->apply_scaling && has_scaling(j.img[i]),
                           false, &j.lv_img);
        c0 += j.img[i]->shape[0];
    }
    if (rc == 0 && j.seg)
        rc = stream_source(&j, w, seg_id, j.seg, 0, j.seg_dtype, false, true, &j.lv_seg);
    if (rc == 0 && (rc = vt_writer_finalize(w)) != 0)
        rc = writer_fail(w, rc);
done:
    vt_writer_free(w);
    levels_free(&j.lv_img);
    levels_free(&j.lv_seg);
    for (size_t i = 0; i < nimages; i++)
        vt__source_close(j.img[i]);
    vt__source_close(j.seg);
    free(j.img);
    free(j.slab);
    free(j.cropped);
    free(j.cast);
    return rc;
}
