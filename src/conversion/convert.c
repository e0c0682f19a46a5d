/* vt_convert_images: the channels of one case and its segmentation, any
 * importer's images, into one store, streaming in bounded memory: crop, cast
 * (a dtype for all channels, scaling applied or kept), pyramid levels, the
 * source's geometry and header kept as metadata.
 *
 * vt_convert_images() runs in named steps over one `conversion`: check the
 * options, open the inputs, check they share one voxel grid, choose the
 * dtypes, choose tiles and the crop box (reading the inputs once for the
 * crop modes that need a bounding box), create the store (arrays, metadata,
 * pyramid levels), then stream every input into it and finalize. */
#include "codec.h"
#include "convert.h"
#include "labels.h"
#include "moments.h"
#include "resample.h"
#include "source.h"
#include "spacing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    /* what resampling and normalisation add is written only when asked, so stores made without them
     * keep the line they had (a rerun of convert-dataset compares it) */
    char extra[64 + 4 * 4 * 32] = "";
    size_t e = 0;
    if (o->spacing[0] || o->spacing[1] || o->spacing[2]) {
        static const char *const sep[] = {"auto", "on", "off"};
        e += (size_t)snprintf(extra + e, sizeof extra - e, " spacing=%.17g,%.17g,%.17g order=%s separate_z=%s%s",
                              o->spacing[0], o->spacing[1], o->spacing[2],
                              o->order == VT_RESAMPLE_LINEAR ? "linear" : "cubic",
                              (unsigned)o->separate_z < 3 ? sep[o->separate_z] : "?",
                              o->separate_linear ? "/linear" : "");
    }
    if (o->normalize == VT_NORMALIZE_ZSCORE)
        e += (size_t)snprintf(extra + e, sizeof extra - e, " normalize=zscore");
    else if (o->normalize == VT_NORMALIZE_CT) {
        e += (size_t)snprintf(extra + e, sizeof extra - e, " normalize=ct");
        for (size_t c = 0; o->norm_params && c < o->norm_channels && c < 4 && e < sizeof extra; c++)
            e += (size_t)snprintf(extra + e, sizeof extra - e, "%s%.9g,%.9g,%.9g,%.9g", c ? ";" : ":",
                                  o->norm_params[4 * c], o->norm_params[4 * c + 1], o->norm_params[4 * c + 2],
                                  o->norm_params[4 * c + 3]);
        if (o->norm_params && o->norm_channels > 4 && e < sizeof extra) { /* the rest as a hash (FNV-1a) */
            uint64_t h = 1469598103934665603ull;
            const unsigned char *b = (const unsigned char *)(o->norm_params + 16);
            for (size_t i = 0; i < (o->norm_channels - 4) * 4 * sizeof(double); i++)
                h = (h ^ b[i]) * 1099511628211ull;
            e += (size_t)snprintf(extra + e, sizeof extra - e, ";+%zu#%016llx", o->norm_channels - 4,
                                  (unsigned long long)h);
        }
    }
    return snprintf(buf, len,
                    "array=%s dtype=%s apply_scaling=%d crop=%s levels=%d tile=%u,%u,%u codec=%s level=%d "
                    "shuffle=%s%s",
                    o->array ? o->array : "image",
                    o->dtype == VT_DTYPE_SAME ? "same" : vt_dtype_name(o->dtype), o->apply_scaling ? 1 : 0,
                    crop, o->levels, t[0], t[1], t[2], vt_codec_name(o->codec),
                    o->level ? o->level : vt__codec_default_level(o->codec),
                    (unsigned)o->filter < 3 ? filters[o->filter] : "?", extra);
}

/* Re-report a writer failure as the thread's last failure. */
int vt__convert_writer_fail(vt_writer *w, int rc)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", vt_writer_errmsg(w));
    return vt__fail(NULL, rc, "%s", msg);
}

/* The same for a store's failure (declared in convert.h). */
int vt__store_fail(const vt_store *s, int rc)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", vt_errmsg(s));
    return vt__fail(NULL, rc, "%s", msg);
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

/* One conversion: its inputs, the choices made for them, the store being
 * written, and the scratch buffers of the streaming. */
typedef struct conversion {
    const vt_convert_opts *o;
    const char *const *images; /* their paths */
    const char *segpath;
    levels lv_img, lv_seg;
    vt_source **img;
    size_t nimg;
    vt_source *seg;
    uint64_t channels;   /* of all images */
    uint64_t shape[3];   /* source (z, y, x) */
    int64_t box[6];      /* crop: z0, z1, y0, y1, x0, x1 */
    vt_dtype img_dtype, seg_dtype;
    uint32_t tile[4];
    uint64_t done, total; /* progress, in slices */
    vt_writer *w;        /* the store */
    int img_id, seg_id;
    unsigned char *slab, *cropped, *cast;
    size_t slab_cap, cropped_cap, cast_cap;
    /* the stored grid: the cropped source, or resampled to vt_convert_opts::spacing */
    uint64_t grid[3];          /* (z, y, x) */
    double spacing[3];         /* of the stored grid: source spacing x n_source / n_stored */
    bool resample;
    vt_kernel kern_img[3], kern_seg[3];
    int lowres;                /* the axis interpolated on its own, or -1 */
    double *dslice;            /* resampling: one source slice as double */
    int32_t *lslice;           /* or as int32 (labels) */
    unsigned char *oslice;     /* one stored slice in the array's dtype */
    /* zscore normalisation: per image channel, over the cropped source voxels (scaled) */
    vt__moments *zmom;
    double *zmin, *zmax;
} conversion;

static void progress(conversion *cv, uint64_t slices)
{
    cv->done += slices;
    if (cv->o->progress && cv->total)
        cv->o->progress(cv->o->progress_ctx, (double)cv->done / (double)cv->total);
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

/* Read slices [z0, z0+nz) of channel c, cropped to the box in y and x. */
static int read_cropped(conversion *cv, vt_source *s, uint64_t c, uint64_t z0, uint64_t nz, void **out)
{
    uint64_t Y = s->shape[2], X = s->shape[3];
    size_t elem_size = vt_dtype_size(s->dtype);
    if (vt__grow(&cv->slab, &cv->slab_cap, (size_t)(nz * Y * X * elem_size)))
        return vt__fail_at(NULL, VT_ENOMEM, s->path, "out of memory for a slab");
    int rc = s->read_slab(s, c, z0, nz, cv->slab);
    if (rc)
        return rc;
    uint64_t y0 = (uint64_t)cv->box[2], y1 = (uint64_t)cv->box[3], x0 = (uint64_t)cv->box[4],
             x1 = (uint64_t)cv->box[5];
    if (y0 == 0 && y1 == Y && x0 == 0 && x1 == X) {
        *out = cv->slab;
        return 0;
    }
    uint64_t ny = y1 - y0, nx = x1 - x0;
    if (vt__grow(&cv->cropped, &cv->cropped_cap, (size_t)(nz * ny * nx * elem_size)))
        return vt__fail_at(NULL, VT_ENOMEM, s->path, "out of memory for a slab");
    for (uint64_t k = 0; k < nz; k++)
        for (uint64_t y = 0; y < ny; y++)
            memcpy(cv->cropped + ((k * ny + y) * nx) * elem_size,
                   cv->slab + ((k * Y + y0 + y) * X + x0) * elem_size,
                   (size_t)(nx * elem_size));
    *out = cv->cropped;
    return 0;
}

/* Whether @p v (rounded to an integer for an integer @p dt) is stored in @p dt
 * without going out of its range; for a float type a finite value that would
 * become infinite does not fit; NaN fits only a float type. (cast() checks a
 * float after storing it, so as not to store every value twice.) */
static bool value_fits(vt_dtype dt, double v)
{
    if (!vt__dtype_is_float(dt)) {
        double r = nearbyint(v);
        return r >= vt__dtype_min(dt) && r <= vt__dtype_max(dt);
    }
    unsigned char b[8];
    vt__store_f64(dt, b, v);
    return !isfinite(v) || isfinite(vt__load_f64(dt, b));
}

/* Convert n elements to dtype dt (scaling first when asked); values that do
 * not fit dt are an error naming the file. */
static int cast(conversion *cv, const vt_source *s, const void *in, uint64_t n, vt_dtype dt, bool scale,
                bool integral, void **out)
{
    if (s->dtype == dt && !scale) {
        *out = (void *)(uintptr_t)in;
        return 0;
    }
    size_t in_size = vt_dtype_size(s->dtype), out_size = vt_dtype_size(dt);
    if (vt__grow(&cv->cast, &cv->cast_cap, (size_t)(n * out_size)))
        return vt__fail_at(NULL, VT_ENOMEM, s->path, "out of memory");
    bool to_int = !vt__dtype_is_float(dt);
    const unsigned char *p = in;
    for (uint64_t i = 0; i < n; i++) {
        double v = vt__load_f64(s->dtype, p + i * in_size);
        if (scale)
            v = v * s->scl_slope + s->scl_inter;
        if (to_int) {
            double r = nearbyint(v);
            if (integral && r != v)
                return vt__fail_at(NULL, VT_EINVAL, s->path, "label value %g is not an integer", v);
            if (!value_fits(dt, v))
                return vt__fail_at(NULL, VT_ERANGE, s->path, "value %g does not fit %s", v, vt_dtype_name(dt));
            v = r;
        }
        vt__store_f64(dt, cv->cast + i * out_size, v);
        if (!to_int && isfinite(v) && !isfinite(vt__load_f64(dt, cv->cast + i * out_size)))
            return vt__fail_at(NULL, VT_ERANGE, s->path, "value %g does not fit %s", v, vt_dtype_name(dt));
    }
    *out = cv->cast;
    return 0;
}

/* Bounding box (z0, z1, y0, y1, x0, x1) of voxels != 0 over every channel of
 * the given sources, one streaming pass; false when there are none. */
static int nonzero_box(conversion *cv, vt_source **src, size_t nsrc, int64_t *box, bool *found)
{
    uint64_t Z = cv->shape[0], Y = cv->shape[1], X = cv->shape[2];
    int64_t b[6] = {INT64_MAX, -1, INT64_MAX, -1, INT64_MAX, -1};
    uint64_t step = cv->tile[1];
    for (size_t i = 0; i < nsrc; i++) {
        vt_source *s = src[i];
        size_t elem_size = vt_dtype_size(s->dtype);
        for (uint64_t c = 0; c < s->shape[0]; c++)
            for (uint64_t z0 = 0; z0 < Z; z0 += step) {
                uint64_t nz = Z - z0 < step ? Z - z0 : step;
                if (vt__grow(&cv->slab, &cv->slab_cap, (size_t)(nz * Y * X * elem_size)))
                    return vt__fail_at(NULL, VT_ENOMEM, s->path, "out of memory");
                int rc = s->read_slab(s, c, z0, nz, cv->slab);
                if (rc)
                    return rc;
                for (uint64_t k = 0; k < nz; k++)
                    for (uint64_t y = 0; y < Y; y++) {
                        const unsigned char *row = cv->slab + ((k * Y + y) * X) * elem_size;
                        int64_t first = -1, last = -1;
                        for (uint64_t x = 0; x < X; x++) {
                            bool nz_ = false;
                            for (size_t q = 0; q < elem_size; q++)
                                nz_ |= row[x * elem_size + q] != 0;
                            /* -0.0 is zero */
                            if (nz_ && vt__dtype_is_float(s->dtype) &&
                                vt__load_f64(s->dtype, row + x * elem_size) == 0)
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
                progress(cv, nz);
            }
    }
    *found = b[1] > 0;
    if (*found)
        memcpy(box, b, sizeof b);
    return 0;
}

/* The affine of the stored grid: the origin moves to the crop corner; when
 * resampled, stored voxel i of an axis sits on cropped source coordinate
 * (i + 0.5) n / n' - 0.5, so the axis's column scales by n / n' and the
 * origin moves by 0.5 n / n' - 0.5 of the old column. */
static void level_affine(const conversion *cv, double *aff)
{
    const vt_source *s = cv->img[0];
    memcpy(aff, s->affine, 16 * sizeof *aff);
    double ijk[3] = {(double)cv->box[4], (double)cv->box[2], (double)cv->box[0]};
    for (int r = 0; r < 3; r++)
        aff[4 * r + 3] = s->affine[4 * r + 3] + s->affine[4 * r] * ijk[0] + s->affine[4 * r + 1] * ijk[1] +
                         s->affine[4 * r + 2] * ijk[2];
    for (int d = 0; d < 3 && cv->resample; d++) {
        double f = (double)(cv->box[2 * d + 1] - cv->box[2 * d]) / (double)cv->grid[d];
        int col = 2 - d; /* affine columns are (x, y, z) */
        for (int r = 0; r < 3; r++) {
            aff[4 * r + 3] += aff[4 * r + col] * (0.5 * f - 0.5);
            aff[4 * r + col] *= f;
        }
    }
}

static int write_meta_common(vt_writer *w, conversion *cv, const char *const *images, const char *segpath)
{
    vt_source *s = cv->img[0];
    int rc = 0;
    size_t len = 0;
    for (size_t i = 0; i < cv->nimg; i++)
        len += strlen(images[i]) + 1;
    char *all = vt__malloc(len + 1);
    /* the options line whole, however long the options make it (a rerun compares it) */
    int hn = vt_convert_opts_string(cv->o, NULL, 0);
    char *how = hn >= 0 ? vt__malloc((size_t)hn + 1) : NULL;
    if (all == NULL || how == NULL) {
        free(all);
        free(how);
        return vt__fail_at(NULL, VT_ENOMEM, images[0], "out of memory");
    }
    vt_convert_opts_string(cv->o, how, (size_t)hn + 1);
    all[0] = 0;
    for (size_t i = 0; i < cv->nimg; i++) {
        strcat(all, images[i]);
        if (i + 1 < cv->nimg)
            strcat(all, "\n");
    }
    double aff[16];
    level_affine(cv, aff);
    double origin[3] = {aff[3], aff[7], aff[11]}, dir[9];
    for (int c = 0; c < 3; c++) {
        double n = sqrt(aff[c] * aff[c] + aff[4 + c] * aff[4 + c] + aff[8 + c] * aff[8 + c]);
        for (int r = 0; r < 3; r++)
            dir[3 * r + c] = n > 0 ? aff[4 * r + c] / n : (r == c);
    }
    int64_t crop[6];
    memcpy(crop, cv->box, sizeof crop);
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
    META("convert.options", VT_META_STRING, how, (size_t)hn);
    free(how);
    META("spacing", VT_META_F64, cv->spacing, 3);
    META("affine", VT_META_F64, aff, 16);
    META("origin", VT_META_F64, origin, 3);
    META("direction", VT_META_F64, dir, 9);
    META("crop", VT_META_I64, crop, 6);
    /* the source grid, so that a prediction can be mapped back (vt_export_like) */
    int64_t shape[3] = {(int64_t)cv->shape[0], (int64_t)cv->shape[1], (int64_t)cv->shape[2]};
    META("source.shape", VT_META_I64, shape, 3);
    META("source.spacing", VT_META_F64, s->spacing, 3);
    META("source.affine", VT_META_F64, s->affine, 16);
    if (cv->resample) {
        char kern[64];
        static const char *const kname[] = {"nearest", "linear", "cubic"};
        snprintf(kern, sizeof kern, "%s,%s,%s", kname[cv->kern_img[0]], kname[cv->kern_img[1]],
                 kname[cv->kern_img[2]]);
        META("resample.spacing", VT_META_F64, cv->o->spacing, 3);
        META("resample.kernel", VT_META_STRING, kern, strlen(kern));
    }
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
    if (vt__source_scaled(s) && !cv->o->apply_scaling) {
        META("scl_slope", VT_META_F64, &s->scl_slope, 1);
        META("scl_inter", VT_META_F64, &s->scl_inter, 1);
    }
#undef META
    free(all);
    return rc ? vt__convert_writer_fail(w, rc) : 0;
}

/* Write one output slice of a pyramid level. */
static int emit_level(void *ctx, int level, uint64_t z, const float *f, const int32_t *lab)
{
    levels *lv = ctx;
    uint64_t n = lv->shape[level - 1][1] * lv->shape[level - 1][2];
    size_t elem_size = vt_dtype_size(lv->dtype);
    bool to_int = !vt__dtype_is_float(lv->dtype);
    for (uint64_t i = 0; i < n; i++) {
        double v = f ? (double)f[i] : (double)lab[i];
        vt__store_f64(lv->dtype, lv->buf + i * elem_size, to_int ? nearbyint(v) : v);
    }
    uint64_t start[4] = {lv->channel, z, 0, 0},
             size[4] = {1, 1, lv->shape[level - 1][1], lv->shape[level - 1][2]};
    int rc = vt_writer_write(lv->w, lv->ids[level - 1], start, size, lv->buf);
    return rc ? vt__convert_writer_fail(lv->w, rc) : 0;
}

/* Plan the levels of array @p name (shape and spacing of the stored grid),
 * declare their arrays and record their geometry. */
static int levels_setup(conversion *cv, levels *lv, vt_writer *w, const vt_array_spec *base, const double *affine)
{
    lv->w = w;
    lv->dtype = base->dtype;
    bool labels = base->labels != 0;
    uint64_t shape[3] = {base->shape[1], base->shape[2], base->shape[3]};
    int n = cv->o->levels > 32 ? 32 : cv->o->levels;
    int rc = vt__pyramid_new(n, cv->spacing, shape, labels, emit_level, lv, &lv->pyr);
    if (rc)
        return vt__fail_at(NULL, rc, cv->img[0]->path, "out of memory for pyramid levels");
    lv->n = vt__pyramid_levels(lv->pyr);
    uint64_t maxslice = shape[1] * shape[2];
    lv->fslice = vt__malloc(maxslice * sizeof *lv->fslice);
    lv->lslice = vt__malloc(maxslice * sizeof *lv->lslice);
    lv->buf = vt__malloc(maxslice * vt_dtype_size(base->dtype));
    if (lv->fslice == NULL || lv->lslice == NULL || lv->buf == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, cv->img[0]->path, "out of memory for pyramid levels");
    double aff[16], sp[3];
    memcpy(aff, affine, sizeof aff);
    memcpy(sp, cv->spacing, sizeof sp);
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
            return vt__convert_writer_fail(w, rc);
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
                return vt__convert_writer_fail(w, rc);
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

/* Add slices of channel @p c (source dtype, scaled values) to the channel's
 * zscore sums. */
static void zscore_add(conversion *cv, const vt_source *s, uint64_t c, const void *data, uint64_t n)
{
    size_t es = vt_dtype_size(s->dtype);
    bool scale = vt__source_scaled(s);
    double mn = cv->zmin[c], mx = cv->zmax[c];
    vt__moments *m = &cv->zmom[c];
    for (uint64_t i = 0; i < n; i++) {
        double v = vt__load_f64(s->dtype, (const unsigned char *)data + i * es);
        if (scale)
            v = v * s->scl_slope + s->scl_inter;
        if (!isfinite(v))
            continue;
        vt__moments_add(m, v);
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
    }
    cv->zmin[c] = mn;
    cv->zmax[c] = mx;
}

/* Where a resampled stream's slices go. */
typedef struct stream {
    conversion *cv;
    vt_writer *w;
    int id;
    uint64_t c;         /* channel of the array */
    vt_dtype dt;
    levels *lv;
} stream;

/* One stored slice from the resampler: rounded (integer dtypes) and clamped
 * to the dtype (a cubic overshoots a little), written, fed to the levels. */
static int emit_resampled(void *ctx, uint64_t z, const double *f, const int32_t *lab)
{
    stream *st = ctx;
    conversion *cv = st->cv;
    uint64_t n = cv->grid[1] * cv->grid[2];
    size_t es = vt_dtype_size(st->dt);
    bool to_int = !vt__dtype_is_float(st->dt);
    double lo = vt__dtype_min(st->dt), hi = vt__dtype_max(st->dt);
    for (uint64_t i = 0; i < n; i++) {
        /* every source value fits the type (checked as it was read, stream_resampled) and a label
         * comes out as one of them; an image value can overshoot the type's range through the
         * kernel's ringing next to its limits (cubic, a saturated region): clamped to the range */
        double v = f ? f[i] : (double)lab[i];
        if (to_int)
            v = nearbyint(v);
        if (isfinite(v))
            v = v < lo ? lo : v > hi ? hi : v;
        vt__store_f64(st->dt, cv->oslice + i * es, v);
    }
    uint64_t start[4] = {st->c, z, 0, 0}, size[4] = {1, 1, cv->grid[1], cv->grid[2]};
    int rc = vt_writer_write(st->w, st->id, start, size, cv->oslice);
    if (rc)
        return vt__convert_writer_fail(st->w, rc);
    if (st->lv->n) {
        if (f)
            for (uint64_t i = 0; i < n; i++)
                st->lv->fslice[i] = (float)vt__load_f64(st->dt, cv->oslice + i * es);
        rc = vt__pyramid_push(st->lv->pyr, f ? st->lv->fslice : NULL, f ? NULL : lab);
        if (rc)
            return rc < 0 && rc != VT_ENOMEM ? rc : vt__fail_at(NULL, VT_ENOMEM, cv->images[0], "out of memory");
    }
    return 0;
}

/* Channel @p c of @p src through the resampler into channel @p c0 + c of the array. */
static int stream_resampled(conversion *cv, vt_writer *w, int id, vt_source *src, uint64_t c, uint64_t c0,
                            vt_dtype dt, bool scale, bool integral, levels *lv)
{
    uint64_t z0 = (uint64_t)cv->box[0], z1 = (uint64_t)cv->box[1];
    uint64_t in[3] = {z1 - z0, (uint64_t)(cv->box[3] - cv->box[2]), (uint64_t)(cv->box[5] - cv->box[4])};
    stream st = {cv, w, id, c0 + c, dt, lv};
    vt_respace *rs;
    int rc = vt__respace_new(in, cv->grid, integral ? cv->kern_seg : cv->kern_img, integral, emit_resampled, &st, &rs);
    if (rc)
        return vt__fail_at(NULL, VT_ENOMEM, src->path, "out of memory for resampling");
    vt__respace_begin(rs);
    size_t es = vt_dtype_size(src->dtype);
    uint64_t plane = in[1] * in[2];
    for (uint64_t z = z0; z < z1 && rc == 0; z += cv->tile[1]) {
        uint64_t nz = z1 - z < cv->tile[1] ? z1 - z : cv->tile[1];
        void *data = NULL;
        rc = read_cropped(cv, src, c, z, nz, &data);
        if (rc == 0 && cv->o->normalize == VT_NORMALIZE_ZSCORE && !integral)
            zscore_add(cv, src, c0 + c, data, nz * plane);
        for (uint64_t k = 0; k < nz && rc == 0; k++) {
            const unsigned char *sl = (const unsigned char *)data + k * plane * es;
            for (uint64_t i = 0; i < plane && rc == 0; i++) {
                double v = vt__load_f64(src->dtype, sl + i * es);
                if (!integral && scale)
                    v = v * src->scl_slope + src->scl_inter;
                if (integral && (v != nearbyint(v) || !(v >= -2147483648.0 && v <= 2147483647.0)))
                    rc = vt__fail_at(NULL, VT_EINVAL, src->path, "label value %g is not an integer", v);
                else if (!value_fits(dt, v)) /* as the unresampled path (cast) refuses it */
                    rc = vt__fail_at(NULL, VT_ERANGE, src->path, "value %g does not fit %s", v, vt_dtype_name(dt));
                else if (integral)
                    cv->lslice[i] = (int32_t)v;
                else
                    cv->dslice[i] = v;
            }
            if (rc == 0)
                rc = vt__respace_push(rs, integral ? NULL : cv->dslice, integral ? cv->lslice : NULL);
        }
        progress(cv, nz);
    }
    if (rc == 0)
        rc = vt__respace_end(rs);
    vt__respace_free(rs);
    return rc;
}

/* Stream every channel of @p src (cropped, cast -- or resampled) into array
 * @p id starting at channel @p c0, feeding the array's pyramid levels on the way. */
static int stream_source(conversion *cv, vt_writer *w, int id, vt_source *src, uint64_t c0, vt_dtype dt,
                         bool scale, bool integral, levels *lv)
{
    uint64_t z0 = (uint64_t)cv->box[0], z1 = (uint64_t)cv->box[1];
    uint64_t ny = (uint64_t)(cv->box[3] - cv->box[2]), nx = (uint64_t)(cv->box[5] - cv->box[4]);
    uint64_t step = cv->tile[1];
    size_t elem_size = vt_dtype_size(dt);
    for (uint64_t c = 0; c < src->shape[0]; c++) {
        if (lv->n) {
            lv->channel = c0 + c;
            vt__pyramid_begin(lv->pyr);
        }
        if (cv->resample) {
            int rc = stream_resampled(cv, w, id, src, c, c0, dt, scale, integral, lv);
            if (rc == 0 && lv->n)
                rc = vt__pyramid_end(lv->pyr);
            if (rc)
                return rc;
            continue;
        }
        for (uint64_t z = z0; z < z1; z += step) {
            uint64_t nz = z1 - z < step ? z1 - z : step;
            void *data = NULL, *conv = NULL;
            int rc = read_cropped(cv, src, c, z, nz, &data);
            if (rc == 0 && cv->o->normalize == VT_NORMALIZE_ZSCORE && !integral)
                zscore_add(cv, src, c0 + c, data, nz * ny * nx);
            if (rc == 0)
                rc = cast(cv, src, data, nz * ny * nx, dt, scale, integral, &conv);
            if (rc)
                return rc;
            uint64_t start[4] = {c0 + c, z - z0, 0, 0}, size[4] = {1, nz, ny, nx};
            rc = vt_writer_write(w, id, start, size, conv);
            if (rc)
                return vt__convert_writer_fail(w, rc);
            for (uint64_t k = 0; k < nz && lv->n; k++) { /* the slices, one by one, to the levels */
                const unsigned char *sl = (const unsigned char *)conv + k * ny * nx * elem_size;
                for (uint64_t i = 0; i < ny * nx; i++) {
                    double v = vt__load_f64(dt, sl + i * elem_size);
                    if (integral)
                        lv->lslice[i] = (int32_t)v;
                    else
                        lv->fslice[i] = (float)v;
                }
                rc = vt__pyramid_push(lv->pyr, integral ? NULL : lv->fslice, integral ? lv->lslice : NULL);
                if (rc)
                    return rc < 0 && rc != VT_ENOMEM ? rc : vt__fail_at(NULL, rc, src->path, "out of memory");
            }
            progress(cv, nz);
        }
        if (lv->n) {
            int rc = vt__pyramid_end(lv->pyr);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* ---- the steps of vt_convert_images ------------------------------------- */

/* Step 1: options that no input is needed to judge. */
static int check_options(const char *const *images, size_t nimages, const char *segpath, const char *out,
                         const vt_convert_opts *o)
{
    if (images == NULL || nimages == 0 || out == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_convert_images: images and output must be given");
    if (o->array == NULL || o->array[0] == 0 || strcmp(o->array, "seg") == 0)
        return vt__fail(NULL, VT_EINVAL, "vt_convert_images: the image array needs a name other than 'seg'");
    if (o->dtype != VT_DTYPE_SAME && !vt__dtype_valid(o->dtype))
        return vt__fail(NULL, VT_EINVAL, "vt_convert_images: invalid dtype %d", (int)o->dtype);
    if (o->crop_mode == VT_CROP_LABEL && segpath == NULL)
        return vt__fail_at(NULL, VT_EINVAL, images[0], "cropping to the label needs a segmentation");
    return 0;
}

/* Step 2: open every input (its header only). */
static int open_inputs(conversion *cv)
{
    cv->img = vt__calloc(cv->nimg, sizeof *cv->img);
    if (cv->img == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, cv->images[0], "out of memory");
    int rc = 0;
    for (size_t i = 0; i < cv->nimg && rc == 0; i++)
        rc = vt__source_open_raw(cv->images[i], cv->o->raw, false, &cv->img[i]);
    if (rc == 0 && cv->segpath)
        rc = vt__source_open_raw(cv->segpath, cv->o->raw, true, &cv->seg);
    return rc;
}

/* Step 3: one voxel grid (shape and affine) for all; one volume of segmentation. */
static int check_grid(conversion *cv)
{
    int rc = vt__check_grid(cv->img, cv->nimg, cv->seg, cv->shape);
    for (size_t i = 0; rc == 0 && i < cv->nimg; i++)
        cv->channels += cv->img[i]->shape[0];
    return rc;
}

/* Step 4: the image's dtype (one for all channels, wide enough for every
 * input and for applied scaling, or as asked) and the segmentation's. */
static int choose_dtypes(conversion *cv)
{
    const vt_convert_opts *o = cv->o;
    bool scaling = false;
    cv->img_dtype = cv->img[0]->dtype;
    for (size_t i = 0; i < cv->nimg; i++) {
        cv->img_dtype = promote(cv->img_dtype, cv->img[i]->dtype);
        scaling |= o->apply_scaling && vt__source_scaled(cv->img[i]);
    }
    if (scaling)
        cv->img_dtype = promote(cv->img_dtype, VT_F32);
    /* raw values keep one scaling in the metadata: channels must share it */
    for (size_t i = 1; i < cv->nimg && !o->apply_scaling; i++) {
        const vt_source *a = cv->img[0], *b = cv->img[i];
        bool sa = vt__source_scaled(a), sb = vt__source_scaled(b);
        if (sa != sb || (sa && (a->scl_slope != b->scl_slope || a->scl_inter != b->scl_inter)))
            return vt__fail_at(NULL, VT_EINVAL, cv->images[i],
                               "scl_slope/scl_inter (%g, %g) differ from %s's (%g, %g): the channels of one "
                               "array share one scaling; convert with --apply-scaling",
                               sb ? b->scl_slope : 1, sb ? b->scl_inter : 0, cv->images[0], sa ? a->scl_slope : 1,
                               sa ? a->scl_inter : 0);
    }
    if (o->dtype != VT_DTYPE_SAME)
        cv->img_dtype = o->dtype;
    if (cv->seg)
        cv->seg_dtype = vt__label_dtype_ok(cv->seg->dtype) ? cv->seg->dtype : VT_I16;
    return 0;
}

/* Step 5: the tile shape and the box of the source to keep: all of it, the
 * box asked for, or the bounding box of the non-zero voxels of the images
 * or of the segmentation's foreground (grown by the margin), which reads
 * those inputs once. */
static int choose_tiles_and_box(conversion *cv)
{
    const vt_convert_opts *o = cv->o;
    const char *first = cv->images[0];
    cv->tile[0] = 1;
    for (int d = 0; d < 3; d++)
        cv->tile[d + 1] = o->tile[d] ? o->tile[d] : VT_DEFAULT_TILE_EDGE;
    if ((o->tile[0] || o->tile[1] || o->tile[2]) && !(o->tile[0] && o->tile[1] && o->tile[2]))
        return vt__fail_at(NULL, VT_EINVAL, first, "tile sizes must be >= 1");
    int64_t full[6] = {0, (int64_t)cv->shape[0], 0, (int64_t)cv->shape[1], 0, (int64_t)cv->shape[2]};
    memcpy(cv->box, full, sizeof full);
    cv->total = cv->channels * cv->shape[0] + (cv->seg ? cv->shape[0] : 0);
    switch (o->crop_mode) {
    case VT_CROP_NONE: return 0;
    case VT_CROP_BOX:
        for (int d = 0; d < 3; d++)
            if (o->crop[2 * d] < 0 || o->crop[2 * d] >= o->crop[2 * d + 1] || o->crop[2 * d + 1] > full[2 * d + 1])
                return vt__fail_at(NULL, VT_EINVAL, first, "crop %lld:%lld on axis %d is empty or outside 0:%lld",
                                   (long long)o->crop[2 * d], (long long)o->crop[2 * d + 1], d,
                                   (long long)full[2 * d + 1]);
        memcpy(cv->box, o->crop, sizeof cv->box);
        return 0;
    case VT_CROP_NONZERO:
    case VT_CROP_LABEL: {
        bool found, label = o->crop_mode == VT_CROP_LABEL;
        int64_t b[6];
        cv->total += label ? cv->shape[0] : cv->channels * cv->shape[0];
        int rc = label ? nonzero_box(cv, &cv->seg, 1, b, &found) : nonzero_box(cv, cv->img, cv->nimg, b, &found);
        if (rc == 0 && found) {
            int64_t m = label ? o->crop_margin : 0;
            for (int d = 0; d < 3; d++) {
                cv->box[2 * d] = b[2 * d] - m < 0 ? 0 : b[2 * d] - m;
                cv->box[2 * d + 1] = b[2 * d + 1] + m > full[2 * d + 1] ? full[2 * d + 1] : b[2 * d + 1] + m;
            }
        }
        return rc;
    }
    default: return vt__fail_at(NULL, VT_EINVAL, first, "invalid crop mode %d", (int)o->crop_mode);
    }
}

/* Step 5b: the stored grid. Without vt_convert_opts::spacing the cropped
 * source's; with it nnU-Net's new shape, the kernels of each axis (a
 * low-resolution axis on its own, nnU-Net's rule) and the scratch slices of
 * the resampling. */
static int choose_grid(conversion *cv)
{
    const vt_convert_opts *o = cv->o;
    const vt_source *s = cv->img[0];
    uint64_t in[3];
    for (int d = 0; d < 3; d++) {
        in[d] = (uint64_t)(cv->box[2 * d + 1] - cv->box[2 * d]);
        cv->grid[d] = in[d];
        cv->spacing[d] = s->spacing[d];
    }
    if (!(o->spacing[0] || o->spacing[1] || o->spacing[2]))
        return 0;
    for (int d = 0; d < 3; d++) {
        if (!(o->spacing[d] > 0 && isfinite(o->spacing[d])))
            return vt__fail_at(NULL, VT_EINVAL, s->path, "spacing %g on axis %d: every spacing must be a positive "
                               "number of mm", o->spacing[d], d);
        if (!(s->spacing[d] > 0 && isfinite(s->spacing[d])))
            return vt__fail_at(NULL, VT_EINVAL, s->path, "its spacing %g on axis %d is not positive: it cannot be "
                               "resampled", s->spacing[d], d);
        cv->grid[d] = vt__respace_extent(in[d], s->spacing[d], o->spacing[d]);
        if (cv->grid[d] > (UINT64_C(1) << 31))
            return vt__fail_at(NULL, VT_ERANGE, s->path, "resampling to spacing %g makes axis %d %llu voxels long",
                               o->spacing[d], d, (unsigned long long)cv->grid[d]);
        cv->spacing[d] = s->spacing[d] * (double)in[d] / (double)cv->grid[d];
    }
    /* nnU-Net's rule: the axis of the largest spacing alone, when it exceeds 3x the smallest of the
     * source (else of the target); the first spacing that is that anisotropic decides, and two axes
     * sharing its largest spacing mean no axis alone (not a look at the target instead) */
    cv->lowres = -1;
    const double *sp[2] = {s->spacing, o->spacing};
    for (int k = 0; k < 2 && o->separate_z != VT_SEPARATE_OFF && cv->lowres < 0; k++) {
        double mx = fmax(sp[k][0], fmax(sp[k][1], sp[k][2])), mn = fmin(sp[k][0], fmin(sp[k][1], sp[k][2]));
        if (o->separate_z == VT_SEPARATE_AUTO && !(mx / mn > 3))
            continue;
        int ties = 0, axis = 0;
        for (int d = 0; d < 3; d++)
            if (sp[k][d] == mx) {
                ties++;
                axis = d;
            }
        if (ties == 1)
            cv->lowres = axis;
        break; /* decided (on: by the source's spacing) */
    }
    for (int d = 0; d < 3; d++) {
        bool alone = d == cv->lowres;
        cv->kern_img[d] = alone ? (o->separate_linear ? VT_KERNEL_LINEAR : VT_KERNEL_NEAREST)
                                : (o->order == VT_RESAMPLE_LINEAR ? VT_KERNEL_LINEAR : VT_KERNEL_CUBIC);
        cv->kern_seg[d] = alone && !o->separate_linear ? VT_KERNEL_NEAREST : VT_KERNEL_LINEAR;
    }
    cv->resample = true;
    uint64_t in_plane = in[1] * in[2], out_plane = cv->grid[1] * cv->grid[2];
    cv->dslice = vt__malloc(in_plane * sizeof *cv->dslice);
    cv->lslice = vt__malloc(in_plane * sizeof *cv->lslice);
    cv->oslice = vt__malloc(out_plane * 8);
    if (cv->dslice == NULL || cv->lslice == NULL || cv->oslice == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, s->path, "out of memory for resampling");
    return 0;
}

/* Step 5c: what normalisation needs: the dataset's parameters, one per channel,
 * or room for each channel's sums. */
static int choose_normalization(conversion *cv)
{
    const vt_convert_opts *o = cv->o;
    const char *first = cv->images[0];
    if (o->normalize == VT_NORMALIZE_NONE)
        return 0;
    if (o->normalize == VT_NORMALIZE_CT) {
        if (o->norm_params == NULL || o->norm_channels != cv->channels)
            return vt__fail_at(NULL, VT_EINVAL, first, "CT normalisation needs parameters for each of its %llu "
                               "channels, %zu given (a fingerprint of the dataset: voxtile stats --fingerprint)",
                               (unsigned long long)cv->channels, o->norm_params ? o->norm_channels : 0);
        for (size_t c = 0; c < o->norm_channels; c++) {
            const double *p = o->norm_params + 4 * c;
            if (!(p[0] <= p[1]) || !isfinite(p[2]) || !(p[3] > 0 && isfinite(p[3])))
                return vt__fail_at(NULL, VT_EINVAL, first, "CT normalisation of channel %zu: clip %g..%g, mean %g, "
                                   "std %g: the clip bounds must be ordered, mean finite, std positive", c, p[0],
                                   p[1], p[2], p[3]);
        }
        return 0;
    }
    if (o->normalize != VT_NORMALIZE_ZSCORE)
        return vt__fail_at(NULL, VT_EINVAL, first, "invalid normalisation %d", (int)o->normalize);
    size_t n = (size_t)cv->channels;
    cv->zmom = vt__calloc(n, sizeof *cv->zmom);
    cv->zmin = vt__malloc(n * sizeof *cv->zmin);
    cv->zmax = vt__malloc(n * sizeof *cv->zmax);
    if (!cv->zmom || !cv->zmin || !cv->zmax)
        return vt__fail_at(NULL, VT_ENOMEM, first, "out of memory");
    for (size_t c = 0; c < n; c++) {
        cv->zmin[c] = INFINITY;
        cv->zmax[c] = -INFINITY;
    }
    return 0;
}

/* The normalisation's metadata, once the stream has been read. */
static int write_normalization(conversion *cv)
{
    const vt_convert_opts *o = cv->o;
    if (o->normalize == VT_NORMALIZE_NONE)
        return 0;
    size_t n = (size_t)cv->channels;
    double *p = vt__malloc(4 * n * sizeof *p);
    if (p == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, cv->images[0], "out of memory");
    for (size_t c = 0; c < n; c++) {
        if (o->normalize == VT_NORMALIZE_CT) {
            memcpy(p + 4 * c, o->norm_params + 4 * c, 4 * sizeof *p);
            continue;
        }
        /* zscore: the case's own mean and population std; the clip bounds are its range (no clipping) */
        uint64_t cnt = cv->zmom[c].n;
        double mean, m2;
        vt__moments_get(&cv->zmom[c], &mean, &m2);
        double sd = cnt > 0 ? sqrt(m2 / (double)cnt) : 0;
        p[4 * c] = cnt > 0 ? cv->zmin[c] : 0;
        p[4 * c + 1] = cnt > 0 ? cv->zmax[c] : 0;
        p[4 * c + 2] = mean;
        p[4 * c + 3] = sd > 1e-8 ? sd : 1e-8;
    }
    const char *scheme = o->normalize == VT_NORMALIZE_CT ? "ct" : "zscore";
    int rc = vt_writer_set_meta(cv->w, "normalize", VT_META_STRING, scheme, strlen(scheme));
    if (rc == 0)
        rc = vt_writer_set_meta(cv->w, "normalize.params", VT_META_F64, p, 4 * n);
    free(p);
    return rc ? vt__convert_writer_fail(cv->w, rc) : 0;
}

/* Step 6: the store: the writer, the image array and the segmentation's,
 * the metadata, and the pyramid levels' arrays. */
static int create_store(conversion *cv, const char *out)
{
    const vt_convert_opts *o = cv->o;
    vt_writer_opts wo;
    vt_writer_opts_init(&wo);
    wo.threads = o->threads;
    int rc = vt_writer_open(out, &wo, &cv->w);
    if (rc)
        return rc;
    vt_writer *w = cv->w;
    vt_array_spec img, seg;
    vt_array_spec_init(&img);
    img.name = o->array;
    img.dtype = cv->img_dtype;
    img.ndim = 4;
    img.shape[0] = cv->channels;
    for (int d = 0; d < 3; d++)
        img.shape[d + 1] = cv->grid[d];
    memcpy(img.tile, cv->tile, sizeof cv->tile);
    img.codec = o->codec;
    img.level = o->level;
    img.filter = o->filter;
    seg = img;
    seg.name = "seg";
    seg.dtype = cv->seg_dtype;
    seg.shape[0] = 1;
    seg.labels = 1;
    if ((rc = vt_writer_add_array(w, &img, &cv->img_id)) != 0 ||
        (cv->seg && (rc = vt_writer_add_array(w, &seg, &cv->seg_id)) != 0))
        return vt__convert_writer_fail(w, rc);
    if ((rc = write_meta_common(w, cv, cv->images, cv->segpath)) != 0 || o->levels <= 0)
        return rc;
    double aff[16];
    level_affine(cv, aff);
    rc = levels_setup(cv, &cv->lv_img, w, &img, aff);
    if (rc == 0 && cv->seg)
        rc = levels_setup(cv, &cv->lv_seg, w, &seg, aff);
    int64_t nl = cv->lv_img.n;
    if (rc == 0 && (rc = vt_writer_set_meta(w, "levels", VT_META_I64, &nl, 1)) != 0)
        rc = vt__convert_writer_fail(w, rc);
    return rc;
}

/* Step 7: every image's channels, then the segmentation, into the store;
 * then finalize it. */
static int stream_all(conversion *cv)
{
    const vt_convert_opts *o = cv->o;
    uint64_t c0 = 0;
    int rc = 0;
    for (size_t i = 0; i < cv->nimg && rc == 0; i++) {
        rc = stream_source(cv, cv->w, cv->img_id, cv->img[i], c0, cv->img_dtype,
                           o->apply_scaling && vt__source_scaled(cv->img[i]), false, &cv->lv_img);
        c0 += cv->img[i]->shape[0];
    }
    if (rc == 0 && cv->seg)
        rc = stream_source(cv, cv->w, cv->seg_id, cv->seg, 0, cv->seg_dtype, false, true, &cv->lv_seg);
    if (rc == 0)
        rc = write_normalization(cv);
    if (rc == 0 && (rc = vt_writer_finalize(cv->w)) != 0)
        rc = vt__convert_writer_fail(cv->w, rc);
    return rc;
}

static void conversion_free(conversion *cv)
{
    vt_writer_free(cv->w);
    levels_free(&cv->lv_img);
    levels_free(&cv->lv_seg);
    for (size_t i = 0; cv->img && i < cv->nimg; i++)
        vt__source_close(cv->img[i]);
    vt__source_close(cv->seg);
    free(cv->img);
    free(cv->slab);
    free(cv->cropped);
    free(cv->cast);
    free(cv->dslice);
    free(cv->lslice);
    free(cv->oslice);
    free(cv->zmom);
    free(cv->zmin);
    free(cv->zmax);
}

int vt_convert_images(const char *const *images, size_t nimages, const char *segpath, const char *out,
                      const vt_convert_opts *opts)
{
    vt_convert_opts def;
    if (opts == NULL) {
        vt_convert_opts_init(&def);
        opts = &def;
    }
    int rc = check_options(images, nimages, segpath, out, opts);
    if (rc)
        return rc;
    conversion cv;
    memset(&cv, 0, sizeof cv);
    cv.o = opts;
    cv.images = images;
    cv.nimg = nimages;
    cv.segpath = segpath;
    cv.img_id = cv.seg_id = -1;
    rc = open_inputs(&cv);
    if (rc == 0)
        rc = check_grid(&cv);
    if (rc == 0)
        rc = choose_dtypes(&cv);
    if (rc == 0)
        rc = choose_tiles_and_box(&cv);
    if (rc == 0)
        rc = choose_grid(&cv);
    if (rc == 0)
        rc = choose_normalization(&cv);
    if (rc == 0)
        rc = create_store(&cv, out);
    if (rc == 0)
        rc = stream_all(&cv);
    conversion_free(&cv);
    return rc;
}
