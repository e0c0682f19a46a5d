/* vt_export_like: a prediction made on a case's store, back on the case's
 * source grid, as NIfTI.
 *
 * The conversion recorded the way from the source to the stored grid: the
 * crop box ("crop"), the source's shape and affine ("source.*") and, when it
 * changed the spacing, the kernels ("resample.kernel"). The way back: each
 * channel is resampled from the stored grid to the crop box's extent with
 * the same centre-aligned mapping, then put in place in the source's shape
 * with background around it.
 *
 * Streaming, output slice by output slice in file order (x fastest, then y,
 * z, then channel): a window of the input slices the z taps need, per
 * channel (all channels for argmax and labels, one at a time for float
 * channels written as such), read a tile-depth at a time; each output slice
 * is the z taps' weighted sum at the input's in-plane size, then resampled
 * in x and y. The z sum before the in-plane passes keeps the window at the
 * prediction's size (smaller than the source's when predictions are made on
 * a coarser grid); the arithmetic is the same as in-plane first. */
#include "convert.h"
#include "half.h"
#include "spacing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum mode { MODE_FLOAT, MODE_ARGMAX, MODE_LABELS };

/* Input slices [lo, lo + n) of channels [c0, c0 + nc) of the prediction. */
typedef struct window {
    const vt_array *a;
    vt_dtype dt;          /* held as: F16 (the stored bits), F32 or I32 */
    uint64_t Z, plane;    /* the prediction's depth and in-plane size */
    uint64_t c0, nc;
    uint64_t chunk;       /* slices per read */
    uint64_t cap, lo, n;  /* capacity, first held slice, slices held */
    unsigned char *buf;   /* nc x cap x plane elements */
} window;

typedef struct job {
    const char *pred_path, *like_path, *out;
    vt_store *ps, *ls;
    const vt_array *pa;
    vt_array_info pi;
    enum mode mode;
    uint64_t grid[3];     /* the stored grid (z, y, x) */
    uint64_t src[3];      /* the source's shape */
    int64_t crop[6];      /* the crop box in the source */
    uint64_t ext[3];      /* its extent */
    vt_axis ax[3];        /* stored grid -> crop extent */
    vt_dtype out_dt;
    bool integral;        /* MODE_FLOAT into an integer dtype: rounded, clamped to [lo, hi] */
    double lo, hi;
    window win;
    float *zsum, *xtmp, *slice, *scratch; /* in plane; in y x out x; out plane; one input slice */
    float *best;          /* argmax: the running maximum of the output slice */
    int32_t *lab;         /* argmax / labels: the output slice's labels */
    unsigned char *row;   /* one source slice in the output dtype */
    const vt_export_opts *o;
    uint64_t done, total; /* output slices, for progress */
} job;

/* The like store's image grid: its first 4-d array that is not a pyramid
 * level (preferring one not called "seg"). */
static int like_grid(job *j)
{
    const vt_array *pick = NULL;
    vt_array_info ai;
    for (size_t i = 0; i < vt_store_narrays(j->ls); i++) {
        const vt_array *a;
        vt_store_array_at(j->ls, i, &a);
        vt_array_info_get(a, &ai);
        if (ai.ndim != 4 || strchr(ai.name, '@'))
            continue;
        if (pick == NULL || strcmp(ai.name, "seg") != 0) {
            pick = a;
            if (strcmp(ai.name, "seg") != 0)
                break;
        }
    }
    if (pick == NULL)
        return vt__fail_at(NULL, VT_EINVAL, j->like_path, "no 4-d image array to take the case's grid from");
    vt_array_info_get(pick, &ai);
    for (int d = 0; d < 3; d++)
        j->grid[d] = ai.shape[d + 1];
    return 0;
}

/* The way back, from the like store's metadata. */
static int read_geometry(job *j)
{
    const char *lp = j->like_path;
    const int64_t *shape = vt__meta_typed(j->ls, "source.shape", VT_META_I64, 3);
    const int64_t *crop = vt__meta_typed(j->ls, "crop", VT_META_I64, 6);
    if (shape == NULL || crop == NULL || vt__meta_typed(j->ls, "source.affine", VT_META_F64, 16) == NULL)
        return vt__fail_at(NULL, VT_EFORMAT, lp, "records no source grid (source.shape, source.affine, crop): "
                           "it was not converted from an image by this version of voxtile");
    for (int d = 0; d < 3; d++) {
        if (shape[d] < 1 || shape[d] > (INT64_C(1) << 31) || crop[2 * d] < 0 || crop[2 * d + 1] > shape[d] ||
            crop[2 * d] >= crop[2 * d + 1])
            return vt__fail_at(NULL, VT_EFORMAT, lp, "source shape %lld and crop %lld:%lld on axis %d do not fit "
                               "together", (long long)shape[d], (long long)crop[2 * d], (long long)crop[2 * d + 1], d);
        j->src[d] = (uint64_t)shape[d];
        j->crop[2 * d] = crop[2 * d];
        j->crop[2 * d + 1] = crop[2 * d + 1];
        j->ext[d] = (uint64_t)(crop[2 * d + 1] - crop[2 * d]);
    }
    int rc = like_grid(j);
    if (rc)
        return rc;
    for (int d = 0; d < 3; d++) /* the tap tables hold 32-bit indices */
        if (j->grid[d] == 0 || j->grid[d] > INT32_MAX)
            return vt__fail_at(NULL, VT_ERANGE, lp, "axis %d of its grid has %llu voxels: too large to export", d,
                               (unsigned long long)j->grid[d]);
    /* slices held: a source slice, the crop's, the prediction's (each axis below 2^31) */
    uint64_t lim = UINT64_C(1) << 34;
    if (j->src[1] * j->src[2] > lim || j->grid[1] * j->grid[2] > lim || j->grid[1] * j->ext[2] > lim)
        return vt__fail_at(NULL, VT_ERANGE, lp, "slices of %llu x %llu (source) or %llu x %llu (grid) voxels are "
                           "too large to export", (unsigned long long)j->src[1], (unsigned long long)j->src[2],
                           (unsigned long long)j->grid[1], (unsigned long long)j->grid[2]);
    /* the kernel of each axis: nearest where the conversion kept an axis apart */
    vt_kernel kern[3];
    vt_kernel fk = j->o->order == VT_RESAMPLE_CUBIC ? VT_KERNEL_CUBIC : VT_KERNEL_LINEAR;
    const char *rk = NULL;
    vt_meta_type t;
    const void *d;
    size_t n;
    if (vt_meta_get(j->ls, "resample.kernel", &t, &d, &n) == 0 && t == VT_META_STRING)
        rk = d;
    for (int a = 0; a < 3; a++) {
        kern[a] = fk;
        if (rk) { /* "k0,k1,k2" */
            const char *p = rk, *end = rk + n;
            for (int k = 0; k < a && p < end; k++) {
                const char *c = memchr(p, ',', (size_t)(end - p));
                p = c ? c + 1 : end;
            }
            if ((size_t)(end - p) >= 7 && strncmp(p, "nearest", 7) == 0)
                kern[a] = VT_KERNEL_NEAREST;
        }
        if (!rk && j->grid[a] != j->ext[a])
            return vt__fail_at(NULL, VT_EFORMAT, lp, "its grid (%llu on axis %d) is not its crop box's (%llu) and "
                               "it records no resampling", (unsigned long long)j->grid[a], a,
                               (unsigned long long)j->ext[a]);
    }
    /* the prediction on that grid */
    for (int a = 0; a < 3; a++)
        if (j->pi.shape[a + 1] != j->grid[a])
            return vt__fail_at(NULL, VT_EINVAL, j->pred_path, "'%s' is (%llu, %llu, %llu) voxels but %s's grid is "
                               "(%llu, %llu, %llu): a prediction of another case or another grid?", j->pi.name,
                               (unsigned long long)j->pi.shape[1], (unsigned long long)j->pi.shape[2],
                               (unsigned long long)j->pi.shape[3], lp, (unsigned long long)j->grid[0],
                               (unsigned long long)j->grid[1], (unsigned long long)j->grid[2]);
    const double *pa = vt__meta_typed(j->ps, "affine", VT_META_F64, 16);
    const double *la = vt__meta_typed(j->ls, "affine", VT_META_F64, 16);
    if (pa && la)
        for (int i = 0; i < 12; i++)
            if (fabs(pa[i] - la[i]) > 1e-3 * (1 + fabs(la[i])))
                return vt__fail_at(NULL, VT_EINVAL, j->pred_path, "its affine differs from %s's (element %d: %g, "
                                   "not %g): a prediction of another case?", lp, i, pa[i], la[i]);
    bool labels = j->mode == MODE_LABELS;
    for (int a = 0; a < 3; a++)
        if (vt__axis_init(&j->ax[a], j->grid[a], j->ext[a], kern[a], labels) != 0)
            return vt__fail_at(NULL, VT_ENOMEM, j->out, "out of memory");
    return 0;
}

/* Argmax: the case's own segmentation, when it has one, says how many
 * classes there are at least. */
static int check_classes(const job *j)
{
    const vt_array *seg;
    vt_label_info top;
    size_t nl;
    if (j->mode != MODE_ARGMAX || vt_store_array(j->ls, "seg", &seg) != 0 || (nl = vt_label_count(seg)) == 0 ||
        vt_label_get(seg, nl - 1, &top) != 0 || top.value < 0 || (uint64_t)top.value < j->pi.shape[0])
        return 0;
    return vt__fail_at(NULL, VT_EINVAL, j->pred_path, "array '%s' has %llu channels but %s's segmentation has "
                       "label %lld: one channel per class, background included (a prediction of another "
                       "dataset?)", j->pi.name, (unsigned long long)j->pi.shape[0], j->like_path,
                       (long long)top.value);
}

/* ---- the window of input slices ------------------------------------------ */

static int window_init(job *j, uint64_t c0, uint64_t nc)
{
    window *w = &j->win;
    free(w->buf);
    memset(w, 0, sizeof *w);
    w->a = j->pa;
    w->dt = j->mode == MODE_LABELS ? VT_I32 : j->pi.dtype == VT_F16 ? VT_F16 : VT_F32;
    w->Z = j->grid[0];
    w->plane = j->grid[1] * j->grid[2];
    w->c0 = c0;
    w->nc = nc;
    /* a tile's depth per read (no tile decoded twice), within 128 MiB */
    uint64_t depth = j->pi.tile[1] ? j->pi.tile[1] : 16;
    uint64_t per; /* bytes of one slice of every channel held */
    if (__builtin_mul_overflow(nc, w->plane * vt_dtype_size(w->dt), &per))
        per = UINT64_MAX;
    uint64_t fit = ((uint64_t)128 << 20) / (per ? per : 1);
    w->chunk = depth < fit ? depth : fit > 4 ? fit - 3 : 1;
    w->cap = w->chunk + 3; /* up to 3 earlier slices kept for the taps */
    w->lo = 0;
    w->n = 0;
    uint64_t bytes;
    if (__builtin_mul_overflow(per, w->cap, &bytes) || bytes > SIZE_MAX / 2)
        return vt__fail_at(NULL, VT_ENOMEM, j->out, "out of memory: %llu channels of %llu-voxel slices",
                           (unsigned long long)nc, (unsigned long long)w->plane);
    w->buf = vt__malloc((size_t)bytes);
    return w->buf ? 0 : vt__fail_at(NULL, VT_ENOMEM, j->out, "out of memory");
}

static unsigned char *window_slice(const window *w, uint64_t c, uint64_t z)
{
    return w->buf + ((c - w->c0) * w->cap + (z - w->lo)) * w->plane * vt_dtype_size(w->dt);
}

/* Make slices [lo, hi] present (lo, hi never decrease from call to call). */
static int window_need(job *j, uint64_t lo, uint64_t hi)
{
    window *w = &j->win;
    size_t es = vt_dtype_size(w->dt);
    if (lo > w->lo) { /* drop the slices before lo */
        uint64_t drop = lo - w->lo < w->n ? lo - w->lo : w->n;
        for (uint64_t c = 0; c < w->nc && drop < w->n; c++) {
            unsigned char *base = w->buf + c * w->cap * w->plane * es;
            memmove(base, base + drop * w->plane * es, (size_t)((w->n - drop) * w->plane * es));
        }
        w->n -= drop;
        w->lo = w->n ? w->lo + drop : lo;
    }
    while (w->lo + w->n <= hi) {
        uint64_t z = w->lo + w->n;
        uint64_t nz = w->Z - z < w->chunk ? w->Z - z : w->chunk;
        if (w->n + nz > w->cap)
            nz = w->cap - w->n;
        vt_read_opts ro;
        vt_read_opts_init(&ro);
        ro.dtype = w->dt;
        for (uint64_t c = 0; c < w->nc; c++) {
            int64_t st[4] = {(int64_t)(w->c0 + c), (int64_t)z, 0, 0};
            uint64_t sz[4] = {1, nz, j->grid[1], j->grid[2]};
            int rc = vt_read(w->a, st, sz, &ro, window_slice(w, w->c0 + c, z));
            if (rc)
                return vt__store_fail(j->ps, rc);
        }
        w->n += nz;
        /* the mapped pages just decoded are not needed again: keep the resident size that of the
         * window, not of the prediction file (1 GB for 14 classes of (630, 420, 420)) */
        (void)vt_store_release(j->ps);
    }
    return 0;
}

/* ---- one output slice ------------------------------------------------------ */

/* Channel c of output slice oz (of the crop extent) into j->slice. */
static void float_slice(job *j, uint64_t c, uint64_t oz)
{
    const vt_axis *az = &j->ax[0], *ay = &j->ax[1], *ax = &j->ax[2];
    uint64_t plane = j->win.plane, Yi = j->grid[1], Xi = j->grid[2], Xo = ax->n_out;
    const uint32_t *t = az->tap + oz * (size_t)az->ntaps;
    const double *wz = az->w + oz * (size_t)az->ntaps;
    /* z: the weighted sum of the taps' slices */
    for (int q = 0; q < az->ntaps; q++) {
        const unsigned char *s = window_slice(&j->win, c, t[q]);
        const float *f = (const float *)s;
        if (j->win.dt == VT_F16) {
            vt__f16_to_f32(s, j->scratch, plane);
            f = j->scratch;
        }
        float wq = (float)wz[q];
        if (q == 0)
            for (uint64_t i = 0; i < plane; i++)
                j->zsum[i] = wq * f[i];
        else if (wq != 0)
            for (uint64_t i = 0; i < plane; i++)
                j->zsum[i] += wq * f[i];
    }
    /* x: each row to the output width */
    int nx = ax->ntaps, ny = ay->ntaps;
    for (uint64_t y = 0; y < Yi; y++) {
        const float *r = j->zsum + y * Xi;
        float *d = j->xtmp + y * Xo;
        for (uint64_t i = 0; i < Xo; i++) {
            const uint32_t *tx = ax->tap + i * (size_t)nx;
            const double *w = ax->w + i * (size_t)nx;
            float acc = (float)w[0] * r[tx[0]];
            for (int q = 1; q < nx; q++)
                acc += (float)w[q] * r[tx[q]];
            d[i] = acc;
        }
    }
    /* y: rows of xtmp to the output rows */
    for (uint64_t y = 0; y < ay->n_out; y++) {
        const uint32_t *ty = ay->tap + y * (size_t)ny;
        const double *w = ay->w + y * (size_t)ny;
        float *d = j->slice + y * Xo;
        const float *s0 = j->xtmp + ty[0] * Xo;
        float w0 = (float)w[0];
        for (uint64_t i = 0; i < Xo; i++)
            d[i] = w0 * s0[i];
        for (int q = 1; q < ny; q++) {
            const float *s = j->xtmp + ty[q] * Xo;
            float wq = (float)w[q];
            if (wq != 0)
                for (uint64_t i = 0; i < Xo; i++)
                    d[i] += wq * s[i];
        }
    }
}

/* Labels of output slice oz by the label vote over the 8 linear taps. */
static void label_slice(job *j, uint64_t oz)
{
    const vt_axis *az = &j->ax[0];
    vt__vote_plane(&j->ax[1], &j->ax[2], (const int32_t *)window_slice(&j->win, 0, az->tap[2 * oz]),
                   (const int32_t *)window_slice(&j->win, 0, az->tap[2 * oz + 1]), az->frac[oz], j->lab);
}

/* Source slice z of channel c (c only matters for float channels) in the
 * output dtype into j->row: background outside the crop box. */
static int make_row(job *j, uint64_t c, uint64_t z)
{
    uint64_t Y = j->src[1], X = j->src[2];
    size_t es = vt_dtype_size(j->out_dt);
    double bg = j->mode == MODE_FLOAT && c == 0 && j->pi.shape[0] > 1 ? 1 : 0;
    unsigned char bgv[8];
    vt__store_f64(j->out_dt, bgv, bg);
    bool inside = (int64_t)z >= j->crop[0] && (int64_t)z < j->crop[1];
    if (inside) {
        uint64_t oz = z - (uint64_t)j->crop[0];
        const vt_axis *az = &j->ax[0];
        const uint32_t *t = az->tap + oz * (size_t)az->ntaps;
        uint64_t lo = t[0], hi = t[0];
        for (int q = 1; q < az->ntaps; q++) {
            lo = t[q] < lo ? t[q] : lo;
            hi = t[q] > hi ? t[q] : hi;
        }
        int rc = window_need(j, lo, hi);
        if (rc)
            return rc;
        if (j->mode == MODE_LABELS)
            label_slice(j, oz);
        else if (j->mode == MODE_FLOAT)
            float_slice(j, c, oz);
        else {
            uint64_t n = j->ext[1] * j->ext[2];
            for (uint64_t k = 0; k < j->pi.shape[0]; k++) {
                float_slice(j, k, oz);
                if (k == 0) {
                    memcpy(j->best, j->slice, n * sizeof *j->best);
                    memset(j->lab, 0, n * sizeof *j->lab);
                    continue;
                }
                for (uint64_t i = 0; i < n; i++)
                    if (j->slice[i] > j->best[i]) {
                        j->best[i] = j->slice[i];
                        j->lab[i] = (int32_t)k;
                    }
            }
        }
    }
    uint64_t y0 = (uint64_t)j->crop[2], y1 = (uint64_t)j->crop[3], x0 = (uint64_t)j->crop[4],
             x1 = (uint64_t)j->crop[5];
    for (uint64_t y = 0; y < Y; y++) {
        unsigned char *r = j->row + y * X * es;
        bool yin = inside && y >= y0 && y < y1;
        for (uint64_t x = 0; x < X; x++) {
            if (!yin || x < x0 || x >= x1) {
                memcpy(r + x * es, bgv, es);
                continue;
            }
            uint64_t i = (y - y0) * j->ext[2] + (x - x0);
            if (j->mode == MODE_FLOAT) {
                double v = (double)j->slice[i];
                if (j->integral) { /* rounded, clamped to the dtype */
                    v = nearbyint(v);
                    v = v < j->lo ? j->lo : v > j->hi ? j->hi : v;
                }
                vt__store_f64(j->out_dt, r + x * es, v);
            }
            else
                vt__store_f64(j->out_dt, r + x * es, (double)j->lab[i]);
        }
    }
    return 0;
}

static void job_free(job *j)
{
    for (int a = 0; a < 3; a++)
        vt__axis_free(&j->ax[a]);
    free(j->win.buf);
    free(j->zsum);
    free(j->xtmp);
    free(j->slice);
    free(j->scratch);
    free(j->best);
    free(j->lab);
    free(j->row);
    vt_close(j->ps);
    vt_close(j->ls);
}

/* Open both stores and pick the prediction's array and the mode. */
static int job_open(job *j, const char *array)
{
    int rc = vt_open(j->pred_path, 0, &j->ps);
    if (rc)
        return rc;
    if ((rc = vt_open(j->like_path, 0, &j->ls)) != 0)
        return rc;
    if (array)
        rc = vt_store_array(j->ps, array, &j->pa);
    else if (vt_store_array(j->ps, "pred", &j->pa) != 0) {
        if (vt_store_narrays(j->ps) != 1)
            return vt__fail_at(NULL, VT_EINVAL, j->pred_path, "has %zu arrays and none called 'pred': name the "
                               "prediction's array", vt_store_narrays(j->ps));
        rc = vt_store_array_at(j->ps, 0, &j->pa);
    }
    if (rc)
        return vt__store_fail(j->ps, rc);
    vt_array_info_get(j->pa, &j->pi);
    if (j->pi.ndim != 4)
        return vt__fail_at(NULL, VT_EINVAL, j->pred_path, "array '%s' is %d-d, not (C, z, y, x)", j->pi.name,
                           j->pi.ndim);
    bool integral = !vt__dtype_is_float(j->pi.dtype);
    if (j->o->argmax) {
        if (integral)
            return vt__fail_at(NULL, VT_EINVAL, j->pred_path, "array '%s' holds %s values, not class scores: "
                               "argmax needs float channels", j->pi.name, vt_dtype_name(j->pi.dtype));
        j->mode = MODE_ARGMAX;
        j->out_dt = j->pi.shape[0] <= 256 ? VT_U8 : VT_U16;
        if (j->pi.shape[0] > 65536)
            return vt__fail_at(NULL, VT_EINVAL, j->pred_path, "%llu channels: more classes than uint16 labels",
                               (unsigned long long)j->pi.shape[0]);
        if (j->pi.shape[0] < 2)
            return vt__fail_at(NULL, VT_EINVAL, j->pred_path, "array '%s' has 1 channel: argmax needs one "
                               "channel per class, background included", j->pi.name);
    } else if (vt_label_count(j->pa) > 0) {
        if (j->pi.shape[0] != 1)
            return vt__fail_at(NULL, VT_EINVAL, j->pred_path, "label array '%s' has %llu channels: labels are "
                               "one channel", j->pi.name, (unsigned long long)j->pi.shape[0]);
        j->mode = MODE_LABELS;
        j->out_dt = j->pi.dtype;
    } else { /* values: float32 (float64 kept); integers stay integers, rounded */
        /* the resampling runs in float32: integers beyond 2^24 would come back changed */
        double big = fmax(fabs(j->pi.min), fabs(j->pi.max));
        if (integral && big > 16777216.0)
            return vt__fail_at(NULL, VT_ERANGE, j->pred_path, "array '%s' holds %s values up to %.17g: export "
                               "resamples in float32, exact for integers up to 2^24 only", j->pi.name,
                               vt_dtype_name(j->pi.dtype), big);
        j->mode = MODE_FLOAT;
        j->out_dt = j->pi.dtype == VT_F64 || integral ? j->pi.dtype : VT_F32;
        j->integral = integral;
        j->lo = vt__dtype_min(j->out_dt);
        j->hi = vt__dtype_max(j->out_dt);
    }
    return 0;
}

static int job_buffers(job *j)
{
    uint64_t in_plane = j->grid[1] * j->grid[2], out_plane = j->ext[1] * j->ext[2];
    j->row = vt__malloc((size_t)(j->src[1] * j->src[2] * 8));
    bool fl = j->mode != MODE_LABELS;
    if (fl) {
        j->zsum = vt__malloc((size_t)in_plane * sizeof *j->zsum);
        j->scratch = vt__malloc((size_t)in_plane * sizeof *j->scratch);
        j->xtmp = vt__malloc((size_t)(j->grid[1] * j->ext[2]) * sizeof *j->xtmp);
        j->slice = vt__malloc((size_t)out_plane * sizeof *j->slice);
    }
    if (j->mode != MODE_FLOAT) {
        j->lab = vt__malloc((size_t)out_plane * sizeof *j->lab);
        if (j->mode == MODE_ARGMAX)
            j->best = vt__malloc((size_t)out_plane * sizeof *j->best);
    }
    if (!j->row || (fl && (!j->zsum || !j->scratch || !j->xtmp || !j->slice)) ||
        (j->mode != MODE_FLOAT && !j->lab) || (j->mode == MODE_ARGMAX && !j->best))
        return vt__fail_at(NULL, VT_ENOMEM, j->out, "out of memory");
    return 0;
}

void vt_export_opts_init(vt_export_opts *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->order = VT_RESAMPLE_LINEAR;
}

int vt_export_like(const char *pred, const char *array, const char *like, const vt_export_opts *opts,
                   const char *out)
{
    if (pred == NULL || out == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_export_like: prediction and output must be given");
    if (like == NULL) { /* the array as it is stored */
        if (opts && (opts->argmax || opts->order != VT_RESAMPLE_LINEAR))
            return vt__fail(NULL, VT_EINVAL, "vt_export_like: argmax and order map a prediction back to a case: "
                                             "they need the case's store");
        return vt__export_plain(pred, array, out, opts);
    }
    if (!vt__ends_with(out, ".nii.gz") && !vt__ends_with(out, ".nii"))
        return vt__fail_at(NULL, VT_EINVAL, out, "the output must end in .nii or .nii.gz");
    vt_export_opts def;
    if (opts == NULL) {
        vt_export_opts_init(&def);
        opts = &def;
    }
    if (opts->order != VT_RESAMPLE_LINEAR && opts->order != VT_RESAMPLE_CUBIC)
        return vt__fail(NULL, VT_EINVAL, "vt_export_like: invalid order %d", (int)opts->order);
    job j;
    memset(&j, 0, sizeof j);
    j.pred_path = pred;
    j.like_path = like;
    j.out = out;
    j.o = opts;
    int rc = job_open(&j, array);
    if (rc == 0)
        rc = read_geometry(&j);
    if (rc == 0)
        rc = check_classes(&j);
    if (rc == 0)
        rc = job_buffers(&j);
    vt_nifti_out *w = NULL;
    uint64_t C = j.mode == MODE_FLOAT ? j.pi.shape[0] : 1;
    if (rc == 0) {
        uint64_t shape[4] = {C, j.src[0], j.src[1], j.src[2]};
        rc = vt__nifti_out_open(j.ls, "pred", shape, j.out_dt, true, out, &w);
    }
    j.total = C * j.src[0];
    bool ok = true; /* no write error (the close reports one) */
    for (uint64_t c = 0; c < C && rc == 0 && ok; c++) {
        /* float channels one at a time; argmax and labels all at once */
        rc = j.mode == MODE_FLOAT ? window_init(&j, c, 1) : window_init(&j, 0, j.pi.shape[0]);
        for (uint64_t z = 0; z < j.src[0] && rc == 0 && ok; z++) {
            rc = make_row(&j, c, z);
            ok = rc || vt__nifti_out_write(w, j.row, j.src[1] * j.src[2]) == 0;
            if (opts->progress && (++j.done & 15) == 0)
                opts->progress(opts->progress_ctx, (double)j.done / (double)j.total);
        }
    }
    if (w)
        rc = vt__nifti_out_close(w, rc);
    if (rc == 0 && opts->progress)
        opts->progress(opts->progress_ctx, 1.0);
    job_free(&j);
    return rc;
}
