/* The dataset fingerprint: nnU-Net v2's DatasetFingerprintExtractor over
 * every foreground voxel instead of a random sample, in bounded memory.
 *
 * vt_fingerprint_add_case() reads one case in named steps over a `scan`:
 * open the inputs (one source per channel), check they share one voxel
 * grid, read them slab by slab (the nonzero box, the foreground statistics),
 * count the foreground voxels that are 0 in every channel and lie inside the
 * box (reading the case again only when some lie outside it), then merge the
 * case into the fingerprint under its lock. The getters compute the numbers
 * from the merged histograms and the cases' moments, in the order of the
 * cases' paths, so that neither the order of the calls nor threads change
 * a result. */
#include "convert.h"
#include "fingerprint.h"
#include "moments.h"
#include "source.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__extension__ typedef __int128 i128;

/* ---- histograms --------------------------------------------------------- */

#define INT_LO (-32768)
#define INT_HI 65535
#define NINT ((size_t)(INT_HI - INT_LO + 1))
#define FSHIFT 12                          /* bits of a float32's key below its bin's */
#define NFLT ((size_t)1 << (32 - FSHIFT))  /* 2^20 bins */

/* The values of one channel: integers INT_LO .. INT_HI counted exactly, the
 * others (float32) by bin of their order-preserving key, each bin with the
 * value it holds while it holds one distinct value. */
struct vt__fp_hist {
    uint64_t *ints;    /* NINT counts; NULL while there are none */
    uint64_t *fcount;  /* NFLT counts; NULL while there are none */
    float *frep;       /* a bin's value (meaningful when not mixed) */
    uint8_t *fmixed;   /* a bit per bin: it holds more than one distinct value */
    double fmin, fmax; /* of the values in bins */
};

static int hist_ints(vt__fp_hist *h)
{
    if (h->ints == NULL && (h->ints = vt__calloc(NINT, sizeof *h->ints)) == NULL)
        return VT_ENOMEM;
    return 0;
}

static int hist_floats(vt__fp_hist *h)
{
    if (h->fcount)
        return 0;
    h->fcount = vt__calloc(NFLT, sizeof *h->fcount);
    h->frep = vt__malloc(NFLT * sizeof *h->frep);
    h->fmixed = vt__calloc(NFLT / 8, 1);
    h->fmin = INFINITY;
    h->fmax = -INFINITY;
    if (h->fcount && h->frep && h->fmixed)
        return 0;
    free(h->fcount);
    free(h->frep);
    free(h->fmixed);
    h->fcount = NULL;
    h->frep = NULL;
    h->fmixed = NULL;
    return VT_ENOMEM;
}

static void hist_free(vt__fp_hist *h)
{
    free(h->ints);
    free(h->fcount);
    free(h->frep);
    free(h->fmixed);
}

/* A float32's bits, ordered as the values are (NaN aside). */
static inline uint32_t fkey(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return (b & 0x80000000u) ? ~b : b | 0x80000000u;
}

static inline float fkey_value(uint32_t k)
{
    uint32_t b = (k & 0x80000000u) ? k & 0x7fffffffu : ~k;
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static inline bool mixed(const vt__fp_hist *h, size_t bin) { return h->fmixed[bin >> 3] >> (bin & 7) & 1; }

static inline void hist_add_float(vt__fp_hist *h, float f)
{
    size_t bin = fkey(f) >> FSHIFT;
    if (h->fcount[bin]++ == 0)
        h->frep[bin] = f;
    else if (h->frep[bin] != f)
        h->fmixed[bin >> 3] |= (uint8_t)(1u << (bin & 7));
    if ((double)f < h->fmin)
        h->fmin = f;
    if ((double)f > h->fmax)
        h->fmax = f;
}

/* Add @p src's counts to @p dst, whose arrays exist where @p src's do. */
static void hist_merge(vt__fp_hist *dst, const vt__fp_hist *src)
{
    for (size_t i = 0; src->ints && i < NINT; i++)
        dst->ints[i] += src->ints[i];
    for (size_t b = 0; src->fcount && b < NFLT; b++) {
        if (src->fcount[b] == 0)
            continue;
        if (dst->fcount[b] == 0) {
            dst->frep[b] = src->frep[b];
            if (mixed(src, b))
                dst->fmixed[b >> 3] |= (uint8_t)(1u << (b & 7));
        } else if (mixed(src, b) || src->frep[b] != dst->frep[b]) {
            dst->fmixed[b >> 3] |= (uint8_t)(1u << (b & 7));
        }
        dst->fcount[b] += src->fcount[b];
    }
    if (src->fcount) {
        dst->fmin = fmin(dst->fmin, src->fmin);
        dst->fmax = fmax(dst->fmax, src->fmax);
    }
}

/* ---- one channel of one case -------------------------------------------- */

/* A channel's foreground in one case: its histogram, NaN count, and the
 * moments of the values that are not small integers (sums of the
 * deviations from the first of them, compensated). */
typedef struct chan_acc {
    vt__fp_hist h;
    uint64_t nan, pinf, ninf;
    vt__moments mom;
} chan_acc;

/* One foreground voxel's value. 0 or VT_ENOMEM. */
static inline int acc_add(chan_acc *a, float f)
{
    if (f >= (float)INT_LO && f <= (float)INT_HI && f == (float)(int32_t)f) {
        a->h.ints[(int32_t)f - INT_LO]++;
        return 0;
    }
    if (f != f) {
        a->nan++;
        return 0;
    }
    if (a->h.fcount == NULL && hist_floats(&a->h))
        return VT_ENOMEM;
    hist_add_float(&a->h, f);
    if (isinf(f)) {
        if (f > 0)
            a->pinf++;
        else
            a->ninf++;
        return 0;
    }
    vt__moments_add(&a->mom, (double)f);
    return 0;
}

static vt__fp_moments acc_moments(const chan_acc *a)
{
    vt__fp_moments m = {a->mom.n, a->pinf, a->ninf, 0, 0};
    vt__moments_get(&a->mom, &m.mean, &m.m2);
    return m;
}

/* Chan et al.'s combination of two sets' (count, mean, squared deviations). */
static void moments_join(uint64_t *n, double *mean, double *m2, uint64_t nb, double meanb, double m2b)
{
    if (nb == 0)
        return;
    if (*n == 0) {
        *n = nb, *mean = meanb, *m2 = m2b;
        return;
    }
    double na = (double)*n, dn = (double)nb, t = na + dn, delta = meanb - *mean;
    *mean += delta * (dn / t);
    *m2 += m2b + delta * delta * (na * dn / t);
    *n += nb;
}

/* ---- one case: the steps of vt_fingerprint_add_case ---------------------- */

typedef struct input {
    vt_source *src;
    uint64_t c;            /* the channel of src */
    bool scaled;           /* scl_slope/scl_inter other than x*1+0 */
    unsigned char *buf;    /* one slab */
    size_t cap;
} input;

typedef struct scan {
    input *in;             /* one per channel */
    size_t nin;
    vt_source *seg;
    unsigned char *segbuf;
    size_t segcap;
    uint8_t *state;        /* per voxel of a slab: 1 not 0 in some channel, 2 foreground */
    size_t statecap;
    uint64_t shape[3];     /* (z, y, x) */
    uint64_t slab;         /* z slices per slab */
    chan_acc *acc;         /* per channel */
    int64_t box[6];        /* the nonzero box so far (z0, z1, y0, y1, x0, x1) */
    uint64_t zero_fg;      /* foreground voxels 0 in every channel, */
    int64_t zbox[6];       /* their box */
    uint64_t zero_in_box;  /* of them inside the nonzero box (second reading) */
} scan;

static void scan_free(scan *sc)
{
    for (size_t i = 0; sc->in && i < sc->nin; i++) {
        vt__source_close(sc->in[i].src);
        free(sc->in[i].buf);
    }
    for (size_t i = 0; sc->acc && i < sc->nin; i++)
        hist_free(&sc->acc[i].h);
    free(sc->in);
    free(sc->acc);
    vt__source_close(sc->seg);
    free(sc->segbuf);
    free(sc->state);
}

/* Step 1: open every input, a file of several channels once per channel (so
 * that each reads its own stream in order), and the segmentation. */
static int open_inputs(scan *sc, const char *const *images, size_t nimages, const char *segpath,
                       const vt_raw_spec *raw)
{
    size_t cap = nimages;
    if ((sc->in = vt__calloc(cap, sizeof *sc->in)) == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, images[0], "out of memory");
    for (size_t i = 0; i < nimages; i++) {
        uint64_t volumes = 1;
        for (uint64_t c = 0; c < volumes; c++) {
            size_t was = cap;
            if (vt__grow_items(&sc->in, &cap, sc->nin, sizeof *sc->in, cap))
                return vt__fail_at(NULL, VT_ENOMEM, images[i], "out of memory");
            memset(sc->in + was, 0, (cap - was) * sizeof *sc->in);
            input *in = &sc->in[sc->nin];
            int rc = vt__source_open_raw(images[i], raw, false, &in->src);
            if (rc)
                return rc;
            sc->nin++;
            in->c = c;
            in->scaled = vt__source_scaled(in->src);
            volumes = in->src->shape[0];
        }
    }
    return vt__source_open_raw(segpath, raw, true, &sc->seg);
}

/* Step 2: one voxel grid (shape and affine) for every input, one volume of
 * segmentation. */
static int check_grid(scan *sc)
{
    vt_source **src = vt__calloc(sc->nin, sizeof *src);
    if (src == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, sc->in[0].src->path, "out of memory");
    for (size_t i = 0; i < sc->nin; i++)
        src[i] = sc->in[i].src;
    int rc = vt__check_grid(src, sc->nin, sc->seg, sc->shape);
    free(src);
    return rc;
}

/* Step 3: the accumulators, and slabs of about 8 MiB for all inputs together. */
static int prepare(scan *sc)
{
    const char *path = sc->in[0].src->path;
    if ((sc->acc = vt__calloc(sc->nin, sizeof *sc->acc)) == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
    for (size_t i = 0; i < sc->nin; i++)
        if (hist_ints(&sc->acc[i].h))
            return vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
    uint64_t per = vt_dtype_size(sc->seg->dtype) + 1;
    for (size_t i = 0; i < sc->nin; i++)
        per += vt_dtype_size(sc->in[i].src->dtype);
    uint64_t slice = sc->shape[1] * sc->shape[2] * per;
    sc->slab = slice >= (8u << 20) ? 1 : (8u << 20) / slice;
    if (sc->slab > sc->shape[0])
        sc->slab = sc->shape[0];
    int64_t none[6] = {INT64_MAX, -1, INT64_MAX, -1, INT64_MAX, -1};
    memcpy(sc->box, none, sizeof none);
    memcpy(sc->zbox, none, sizeof none);
    return 0;
}

/* Element i of @p p as a float32, as nnU-Net reads it (scaling applied). */
static inline float value_at(const input *in, const unsigned char *p, size_t i)
{
    size_t es = vt_dtype_size(in->src->dtype);
    double v = vt__load_f64(in->src->dtype, p + i * es);
    if (in->scaled)
        v = v * in->src->scl_slope + in->src->scl_inter;
    return (float)v;
}

/* Run STMT for each of the @p n elements of type T at @p p, as `v`. */
#define EACH(T, STMT)                                                                                          \
    do {                                                                                                       \
        for (size_t i = 0; i < n; i++) {                                                                       \
            T v;                                                                                               \
            memcpy(&v, p + i * sizeof v, sizeof v);                                                            \
            STMT;                                                                                              \
        }                                                                                                      \
    } while (0)

/* state |= 1 where a channel is not 0 (NaN is not 0, -0.0 is). */
static void mark_nonzero(const input *in, const unsigned char *p, size_t n, uint8_t *st)
{
    switch (in->scaled ? VT_DTYPE_SAME : in->src->dtype) {
    case VT_U8:
    case VT_I8: EACH(uint8_t, st[i] |= v != 0); break;
    case VT_U16:
    case VT_I16: EACH(uint16_t, st[i] |= v != 0); break;
    case VT_U32:
    case VT_I32: EACH(uint32_t, st[i] |= v != 0); break;
    case VT_F32: EACH(float, st[i] |= v != 0); break;
    default:
        for (size_t i = 0; i < n; i++)
            st[i] |= value_at(in, p, i) != 0;
    }
}

/* state |= 2 where the segmentation is > 0. */
static void mark_foreground(const vt_source *seg, const unsigned char *p, size_t n, uint8_t *st)
{
    switch (seg->dtype) {
    case VT_U8: EACH(uint8_t, st[i] |= (uint8_t)((v > 0) << 1)); break;
    case VT_I8: EACH(int8_t, st[i] |= (uint8_t)((v > 0) << 1)); break;
    case VT_U16: EACH(uint16_t, st[i] |= (uint8_t)((v > 0) << 1)); break;
    case VT_I16: EACH(int16_t, st[i] |= (uint8_t)((v > 0) << 1)); break;
    case VT_I32: EACH(int32_t, st[i] |= (uint8_t)((v > 0) << 1)); break;
    case VT_F32: EACH(float, st[i] |= (uint8_t)((v > 0) << 1)); break;
    default: {
        size_t es = vt_dtype_size(seg->dtype);
        for (size_t i = 0; i < n; i++)
            st[i] |= (uint8_t)((vt__load_f64(seg->dtype, p + i * es) > 0) << 1);
    }
    }
}

/* The values of one channel where state is 3 (foreground, inside the box). */
static int accumulate(const input *in, chan_acc *a, const unsigned char *p, size_t n, const uint8_t *st)
{
    uint64_t *ints = a->h.ints - INT_LO;
    switch (in->scaled ? VT_DTYPE_SAME : in->src->dtype) {
    case VT_U8: EACH(uint8_t, ints[v] += st[i] == 3); return 0;
    case VT_I8: EACH(int8_t, ints[v] += st[i] == 3); return 0;
    case VT_U16: EACH(uint16_t, ints[v] += st[i] == 3); return 0;
    case VT_I16: EACH(int16_t, ints[v] += st[i] == 3); return 0;
    case VT_F32:
        EACH(float, if (st[i] == 3 && acc_add(a, v)) return vt__fail_at(NULL, VT_ENOMEM, in->src->path, "out of memory"));
        return 0;
    default:
        for (size_t i = 0; i < n; i++)
            if (st[i] == 3 && acc_add(a, value_at(in, p, i)))
                return vt__fail_at(NULL, VT_ENOMEM, in->src->path, "out of memory");
        return 0;
    }
}
#undef EACH

static void grow_box(int64_t *b, int64_t z, int64_t y, int64_t x0, int64_t x1)
{
    b[0] = z < b[0] ? z : b[0];
    b[1] = z + 1 > b[1] ? z + 1 : b[1];
    b[2] = y < b[2] ? y : b[2];
    b[3] = y + 1 > b[3] ? y + 1 : b[3];
    b[4] = x0 < b[4] ? x0 : b[4];
    b[5] = x1 + 1 > b[5] ? x1 + 1 : b[5];
}

/* The rows of a slab starting at z0: the nonzero box, and the foreground
 * voxels that are 0 in every channel (their count and box), or with
 * @p in_box only those of them inside sc->box. */
static void scan_rows(scan *sc, uint64_t z0, uint64_t nz, bool in_box)
{
    uint64_t Y = sc->shape[1], X = sc->shape[2];
    for (uint64_t k = 0; k < nz; k++)
        for (uint64_t y = 0; y < Y; y++) {
            const uint8_t *row = sc->state + (k * Y + y) * X;
            int64_t z = (int64_t)(z0 + k), first = -1, last = -1, zfirst = -1, zlast = -1;
            uint64_t zeros = 0;
            for (uint64_t x = 0; x < X; x++) {
                if (row[x] & 1) {
                    if (first < 0)
                        first = (int64_t)x;
                    last = (int64_t)x;
                } else if (row[x] == 2 && (!in_box || ((int64_t)x >= sc->box[4] && (int64_t)x < sc->box[5]))) {
                    zeros++;
                    if (zfirst < 0)
                        zfirst = (int64_t)x;
                    zlast = (int64_t)x;
                }
            }
            if (in_box) {
                bool inside = z >= sc->box[0] && z < sc->box[1] && (int64_t)y >= sc->box[2] && (int64_t)y < sc->box[3];
                sc->zero_in_box += inside ? zeros : 0;
                continue;
            }
            if (first >= 0)
                grow_box(sc->box, z, (int64_t)y, first, last);
            if (zeros) {
                sc->zero_fg += zeros;
                grow_box(sc->zbox, z, (int64_t)y, zfirst, zlast);
            }
        }
}

/* Step 4 (and 5 with @p in_box): read every input slab by slab; mark each
 * voxel; the rows' boxes; the channels' foreground values (not in_box). */
static int read_case(scan *sc, bool in_box)
{
    uint64_t Z = sc->shape[0], plane = sc->shape[1] * sc->shape[2];
    for (uint64_t z0 = 0; z0 < Z; z0 += sc->slab) {
        uint64_t nz = Z - z0 < sc->slab ? Z - z0 : sc->slab;
        size_t n = (size_t)(nz * plane);
        if (vt__grow(&sc->state, &sc->statecap, n) ||
            vt__grow(&sc->segbuf, &sc->segcap, n * vt_dtype_size(sc->seg->dtype)))
            return vt__fail_at(NULL, VT_ENOMEM, sc->seg->path, "out of memory for a slab");
        memset(sc->state, 0, n);
        for (size_t i = 0; i < sc->nin; i++) {
            input *in = &sc->in[i];
            if (vt__grow(&in->buf, &in->cap, n * vt_dtype_size(in->src->dtype)))
                return vt__fail_at(NULL, VT_ENOMEM, in->src->path, "out of memory for a slab");
            int rc = in->src->read_slab(in->src, in->c, z0, nz, in->buf);
            if (rc)
                return rc;
            mark_nonzero(in, in->buf, n, sc->state);
        }
        int rc = sc->seg->read_slab(sc->seg, 0, z0, nz, sc->segbuf);
        if (rc)
            return rc;
        mark_foreground(sc->seg, sc->segbuf, n, sc->state);
        scan_rows(sc, z0, nz, in_box);
        for (size_t i = 0; i < sc->nin && !in_box; i++)
            if ((rc = accumulate(&sc->in[i], &sc->acc[i], sc->in[i].buf, n, sc->state)) != 0)
                return rc;
    }
    return 0;
}

/* Step 5: the foreground voxels that are 0 in every channel count (as 0)
 * when inside the box: all of them when their box lies inside it (or there
 * is no nonzero voxel: the box is then the whole image), else those a second
 * reading finds inside. */
static int count_zero_foreground(scan *sc)
{
    bool found = sc->box[1] > 0;
    if (!found) {
        int64_t full[6] = {0, (int64_t)sc->shape[0], 0, (int64_t)sc->shape[1], 0, (int64_t)sc->shape[2]};
        memcpy(sc->box, full, sizeof full);
    }
    if (sc->zero_fg == 0)
        return 0;
    bool inside = true;
    for (int d = 0; d < 3; d++)
        inside &= sc->zbox[2 * d] >= sc->box[2 * d] && sc->zbox[2 * d + 1] <= sc->box[2 * d + 1];
    if (inside) {
        sc->zero_in_box = sc->zero_fg;
    } else { /* read again (a stream restarts when a read goes back) */
        int rc = read_case(sc, true);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < sc->nin; i++)
        sc->acc[i].h.ints[0 - INT_LO] += sc->zero_in_box;
    return 0;
}

/* Step 6: the case into the fingerprint, under its lock: everything that can
 * fail first, so that a failure leaves the fingerprint as it was. */
static int merge(vt_fingerprint *fp, scan *sc, const char *image, const char *segpath)
{
    pthread_mutex_lock(&fp->lock);
    int rc = 0;
    bool set = false;
    vt__fp_case *k = NULL;
    if (fp->loaded) {
        rc = vt__fail_at(NULL, VT_ESTATE, image, "a fingerprint loaded from a file takes no more cases");
    } else if (fp->channels == 0) {
        if ((rc = vt__fp_set_channels(fp, sc->nin)) != 0)
            rc = vt__fail_at(NULL, rc, image, "out of memory");
        set = rc == 0;
    } else if (fp->channels != sc->nin) {
        rc = vt__fail_at(NULL, VT_EINVAL, image, "the case has %zu channels, the cases before it %llu", sc->nin,
                         (unsigned long long)fp->channels);
    }
    for (size_t c = 0; c < sc->nin && rc == 0; c++)
        if (hist_ints(&fp->hist[c]) || (sc->acc[c].h.fcount && hist_floats(&fp->hist[c])))
            rc = vt__fail_at(NULL, VT_ENOMEM, image, "out of memory");
    if (rc == 0 && (k = vt__fp_case_slot(fp)) == NULL)
        rc = vt__fail_at(NULL, VT_ENOMEM, image, "out of memory");
    if (rc == 0) {
        k->image = vt__strdup(image);
        k->seg = vt__strdup(segpath);
        k->mom = vt__calloc(sc->nin, sizeof *k->mom);
        if (k->image == NULL || k->seg == NULL || k->mom == NULL) {
            free(k->image);
            free(k->seg);
            free(k->mom);
            rc = vt__fail_at(NULL, VT_ENOMEM, image, "out of memory");
        }
    }
    if (rc) {
        if (set) { /* as it was: no channels yet */
            for (size_t c = 0; c < sc->nin; c++)
                hist_free(&fp->hist[c]);
            free(fp->hist);
            free(fp->nan);
            free(fp->stats);
            fp->hist = NULL, fp->nan = NULL, fp->stats = NULL, fp->channels = 0;
        }
        pthread_mutex_unlock(&fp->lock);
        return rc;
    }
    k->seq = fp->seq++;
    const vt_source *s = sc->in[0].src;
    for (int d = 0; d < 3; d++) {
        k->spacing[d] = s->spacing[d];
        k->shape[d] = sc->shape[d];
        k->after[d] = (uint64_t)(sc->box[2 * d + 1] - sc->box[2 * d]);
    }
    memcpy(k->crop, sc->box, sizeof k->crop);
    for (size_t c = 0; c < sc->nin; c++) {
        k->mom[c] = acc_moments(&sc->acc[c]);
        hist_merge(&fp->hist[c], &sc->acc[c].h);
        fp->nan[c] += sc->acc[c].nan;
    }
    fp->ncases++;
    fp->fresh = false;
    pthread_mutex_unlock(&fp->lock);
    return 0;
}

int vt_fingerprint_add_case(vt_fingerprint *fp, const char *const *images, size_t nimages, const char *segpath,
                            const vt_raw_spec *raw)
{
    if (fp == NULL || images == NULL || nimages == 0 || segpath == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_fingerprint_add_case: a fingerprint, images and a segmentation "
                                         "must be given");
    for (size_t i = 0; i < nimages; i++)
        if (images[i] == NULL)
            return vt__fail(NULL, VT_EINVAL, "vt_fingerprint_add_case: image %zu is NULL", i);
    pthread_mutex_lock(&fp->lock);
    bool loaded = fp->loaded;
    pthread_mutex_unlock(&fp->lock);
    if (loaded)
        return vt__fail_at(NULL, VT_ESTATE, images[0], "a fingerprint loaded from a file takes no more cases");
    scan sc;
    memset(&sc, 0, sizeof sc);
    int rc = open_inputs(&sc, images, nimages, segpath, raw);
    if (rc == 0)
        rc = check_grid(&sc);
    if (rc == 0)
        rc = prepare(&sc);
    if (rc == 0)
        rc = read_case(&sc, false);
    if (rc == 0)
        rc = count_zero_foreground(&sc);
    if (rc == 0)
        rc = merge(fp, &sc, images[0], segpath);
    scan_free(&sc);
    return rc;
}

/* ---- the fingerprint object ---------------------------------------------- */

vt_fingerprint *vt__fp_alloc(bool loaded)
{
    vt_fingerprint *fp = vt__calloc(1, sizeof *fp);
    if (fp == NULL)
        return NULL;
    if (pthread_mutex_init(&fp->lock, NULL) != 0) {
        free(fp);
        return NULL;
    }
    fp->loaded = loaded;
    return fp;
}

int vt__fp_set_channels(vt_fingerprint *fp, uint64_t channels)
{
    fp->stats = vt__calloc(channels, sizeof *fp->stats);
    fp->nan = vt__calloc(channels, sizeof *fp->nan);
    fp->hist = fp->loaded ? NULL : vt__calloc(channels, sizeof *fp->hist);
    if (fp->stats == NULL || fp->nan == NULL || (!fp->loaded && fp->hist == NULL)) {
        free(fp->stats);
        free(fp->nan);
        free(fp->hist);
        fp->stats = NULL, fp->nan = NULL, fp->hist = NULL;
        return VT_ENOMEM;
    }
    fp->channels = channels;
    return 0;
}

vt__fp_case *vt__fp_case_slot(vt_fingerprint *fp)
{
    if (vt__grow_items(&fp->cases, &fp->cap, fp->ncases, sizeof *fp->cases, 16) || fp->cases == NULL)
        return NULL;
    vt__fp_case *k = &fp->cases[fp->ncases];
    memset(k, 0, sizeof *k);
    return k;
}

int vt_fingerprint_new(vt_fingerprint **out)
{
    if (out == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_fingerprint_new: NULL output");
    *out = vt__fp_alloc(false);
    return *out ? 0 : vt__fail(NULL, VT_ENOMEM, "vt_fingerprint_new: out of memory");
}

void vt_fingerprint_free(vt_fingerprint *fp)
{
    if (fp == NULL)
        return;
    for (size_t i = 0; i < fp->ncases; i++) {
        free(fp->cases[i].image);
        free(fp->cases[i].seg);
        free(fp->cases[i].mom);
    }
    for (size_t c = 0; fp->hist && c < fp->channels; c++)
        hist_free(&fp->hist[c]);
    free(fp->cases);
    free(fp->hist);
    free(fp->nan);
    free(fp->stats);
    pthread_mutex_destroy(&fp->lock);
    free(fp);
}

/* ---- the numbers ---------------------------------------------------------- */

/* numpy's _lerp: a + (b - a) t, from b's side when t >= 0.5. */
static double np_lerp(double a, double b, double t)
{
    double d = b - a;
    return t >= 0.5 ? b - d * (1 - t) : a + d * t;
}

/* numpy's linear method: the virtual index (n - 1) q / 100, its floor and
 * the next order statistic (both the last at or past the end), the weight. */
static void np_ranks(uint64_t n, double q, uint64_t *lo, uint64_t *hi, double *t)
{
    double v = (double)(n - 1) * (q / 100);
    if (v >= (double)(n - 1)) {
        *lo = *hi = n - 1;
        *t = 1;
        return;
    }
    double f = floor(v);
    *lo = (uint64_t)f;
    *hi = *lo + 1;
    *t = v - f;
}

double vt__np_percentile(const double *sorted, size_t n, double q)
{
    if (n == 0)
        return NAN;
    uint64_t lo, hi;
    double t;
    np_ranks(n, q, &lo, &hi, &t);
    return np_lerp(sorted[lo], sorted[hi], t);
}

/* An order statistic wanted from a histogram: its rank (0-based), then its
 * value and a bound on that value's error. */
typedef struct order_stat {
    uint64_t rank;
    double value, err;
} order_stat;

/* The order statistics @p q (sorted by rank) of histogram @p h: one walk
 * through the integers and the bins in order of value. A bin holding one
 * value gives it exactly; in a bin holding several, the values are taken as
 * spread evenly over the bin, and integers inside its range as following
 * it, both off by at most the bin's width. */
static void order_stats(const vt__fp_hist *h, double lo_all, double hi_all, order_stat *q, size_t nq)
{
    uint64_t seen = 0;
    size_t i = 0, b = 0, k = 0;
    double mixed_hi = -INFINITY, mixed_width = 0; /* the last bin of several values passed */
    while (k < nq) {
        while (i < NINT && (h->ints == NULL || h->ints[i] == 0))
            i++;
        while (b < NFLT && (h->fcount == NULL || h->fcount[b] == 0))
            b++;
        if (i == NINT && b == NFLT)
            break;
        bool several = b < NFLT && mixed(h, b);
        double lo = b < NFLT ? fkey_value((uint32_t)(b << FSHIFT)) : 0;
        double hi = b < NFLT ? fkey_value((uint32_t)(b << FSHIFT | ((1u << FSHIFT) - 1))) : 0;
        double v = (double)i + INT_LO;
        if (b == NFLT || (i < NINT && v < (several ? lo : (double)h->frep[b]))) {
            for (; k < nq && q[k].rank < seen + h->ints[i]; k++) {
                q[k].value = v;
                q[k].err = v <= mixed_hi ? mixed_width : 0;
            }
            seen += h->ints[i++];
            continue;
        }
        uint64_t c = h->fcount[b];
        for (; k < nq && q[k].rank < seen + c; k++) {
            if (!several) {
                q[k].value = h->frep[b], q[k].err = 0;
                continue;
            }
            double x = lo + ((double)(q[k].rank - seen) + 0.5) / (double)c * (hi - lo);
            q[k].value = fmin(fmax(x, lo_all), hi_all);
            q[k].err = hi - lo;
        }
        if (several)
            mixed_hi = hi, mixed_width = hi - lo;
        seen += c;
        b++;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Median and the 0.5 and 99.5 percentiles of @p n values in histogram @p h. */
static void percentiles(const vt__fp_hist *h, uint64_t n, vt_fingerprint_stats *o)
{
    static const double qs[3] = {0.5, 50, 99.5};
    uint64_t lo[3], hi[3], ranks[6];
    double t[3];
    for (int j = 0; j < 3; j++) {
        np_ranks(n, qs[j], &lo[j], &hi[j], &t[j]);
        ranks[2 * j] = lo[j], ranks[2 * j + 1] = hi[j];
    }
    qsort(ranks, 6, sizeof *ranks, cmp_u64);
    order_stat q[6];
    for (int j = 0; j < 6; j++)
        q[j].rank = ranks[j];
    order_stats(h, o->min, o->max, q, 6);
    double *out[3] = {&o->percentile_00_5, &o->median, &o->percentile_99_5};
    o->percentile_error = 0;
    for (int j = 0; j < 3; j++) {
        const order_stat *a = NULL, *b = NULL;
        for (int r = 0; r < 6; r++) {
            if (q[r].rank == lo[j])
                a = &q[r];
            if (q[r].rank == hi[j])
                b = &q[r];
        }
        *out[j] = np_lerp(a->value, b->value, t[j]);
        o->percentile_error = fmax(o->percentile_error, fmax(a->err, b->err));
    }
}

/* One channel's statistics: the exact integers' moments from their counts
 * (sum in 128 bits, squared deviations compensated), joined with the other
 * values' moments case by case in the cases' order. */
static void channel_stats(const vt_fingerprint *fp, size_t c, vt_fingerprint_stats *o)
{
    const vt__fp_hist *h = &fp->hist[c];
    memset(o, 0, sizeof *o);
    o->nan_count = fp->nan[c];
    uint64_t ni = 0;
    i128 s1 = 0;
    double imin = INFINITY, imax = -INFINITY;
    for (size_t i = 0; h->ints && i < NINT; i++)
        if (h->ints[i]) {
            ni += h->ints[i];
            s1 += (i128)h->ints[i] * ((int64_t)i + INT_LO);
            imin = fmin(imin, (double)i + INT_LO);
            imax = (double)i + INT_LO;
        }
    double mean = 0, m2 = 0, cm = 0;
    if (ni) {
        mean = (double)s1 / (double)ni;
        for (size_t i = 0; i < NINT; i++)
            if (h->ints[i]) {
                double d = (double)i + INT_LO - mean;
                vt__neumaier(&m2, &cm, (double)h->ints[i] * (d * d));
            }
        m2 += cm;
    }
    uint64_t n = ni, pinf = 0, ninf = 0;
    for (size_t k = 0; k < fp->ncases; k++) {
        const vt__fp_moments *m = &fp->cases[k].mom[c];
        moments_join(&n, &mean, &m2, m->n, m->mean, m->m2);
        pinf += m->pinf;
        ninf += m->ninf;
    }
    o->count = n + pinf + ninf;
    if (o->count == 0) {
        o->mean = o->std = o->min = o->max = o->median = o->percentile_00_5 = o->percentile_99_5 = NAN;
        return;
    }
    o->mean = mean;
    o->std = sqrt(m2 / (double)n);
    if (pinf || ninf) { /* as numpy: an infinite mean, NaN when both; NaN std */
        o->mean = pinf && ninf ? NAN : pinf ? INFINITY : -INFINITY;
        o->std = NAN;
    }
    o->min = h->fcount ? fmin(imin, h->fmin) : imin;
    o->max = h->fcount ? fmax(imax, h->fmax) : imax;
    percentiles(h, o->count, o);
}

static int cmp_str(const char *a, const char *b) { return strcmp(a ? a : "", b ? b : ""); }

static int cmp_case(const void *pa, const void *pb)
{
    const vt__fp_case *a = pa, *b = pb;
    int r = cmp_str(a->image, b->image);
    if (r == 0)
        r = cmp_str(a->seg, b->seg);
    return r ? r : (a->seq > b->seq) - (a->seq < b->seq);
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy's percentile @p q of one column of the cases: the spacings, or the
 * shapes after cropping, along @p axis (@p col: room for the column). */
static double column_percentile(const vt_fingerprint *fp, double *col, int axis, bool shape, double q)
{
    for (size_t i = 0; i < fp->ncases; i++)
        col[i] = shape ? (double)fp->cases[i].after[axis] : fp->cases[i].spacing[axis];
    qsort(col, fp->ncases, sizeof *col, cmp_dbl);
    return vt__np_percentile(col, fp->ncases, q);
}

/* The dataset's numbers; nnU-Net's ExperimentPlanner.determine_fullres_target_spacing. */
static int summarise(vt_fingerprint *fp)
{
    vt_fingerprint_summary *s = &fp->sum;
    double rel = s->median_relative_size_after_cropping;
    memset(s, 0, sizeof *s);
    s->cases = fp->ncases;
    s->channels = fp->channels;
    s->anisotropic_axis = -1;
    s->median_relative_size_after_cropping = fp->loaded ? rel : (double)NAN;
    double *col = vt__malloc((fp->ncases ? fp->ncases : 1) * sizeof *col);
    if (col == NULL)
        return VT_ENOMEM;
    for (int a = 0; a < 3; a++) {
        s->median_spacing[a] = s->target_spacing[a] = column_percentile(fp, col, a, false, 50);
        s->median_shape[a] = column_percentile(fp, col, a, true, 50);
    }
    int worst = 0;
    for (int a = 1; a < 3; a++)
        if (s->median_spacing[a] > s->median_spacing[worst])
            worst = a;
    s->lowres_axis = worst;
    s->others_max_spacing = -INFINITY;
    s->others_min_shape = INFINITY;
    for (int a = 0; a < 3; a++)
        if (a != worst) {
            s->others_max_spacing = fmax(s->others_max_spacing, s->median_spacing[a]);
            s->others_min_shape = fmin(s->others_min_shape, s->median_shape[a]);
        }
    if (fp->ncases && s->median_spacing[worst] > 3 * s->others_max_spacing &&
        s->median_shape[worst] * 3 < s->others_min_shape) {
        double t = column_percentile(fp, col, worst, false, 10);
        if (t < s->others_max_spacing)
            t = s->others_max_spacing + 1e-5;
        s->target_spacing[worst] = t;
        s->anisotropic_axis = worst;
    }
    if (!fp->loaded && fp->ncases) { /* np.median: the middle one, or the mean of the two */
        for (size_t i = 0; i < fp->ncases; i++) {
            const vt__fp_case *k = &fp->cases[i];
            col[i] = (double)(k->after[0] * k->after[1] * k->after[2]) / (double)(k->shape[0] * k->shape[1] *
                                                                                  k->shape[2]);
        }
        qsort(col, fp->ncases, sizeof *col, cmp_dbl);
        size_t m = fp->ncases / 2;
        s->median_relative_size_after_cropping = fp->ncases % 2 ? col[m] : (col[m - 1] + col[m]) / 2;
    }
    free(col);
    return 0;
}

int vt__fp_refresh(vt_fingerprint *fp)
{
    if (fp->fresh)
        return 0;
    if (!fp->loaded) {
        if (fp->ncases > 1)
            qsort(fp->cases, fp->ncases, sizeof *fp->cases, cmp_case);
        for (size_t c = 0; c < fp->channels; c++)
            channel_stats(fp, c, &fp->stats[c]);
    }
    int rc = summarise(fp);
    fp->fresh = rc == 0;
    return rc;
}

/* Lock, refresh; 0 (locked) or an error (unlocked). */
static int begin_get(vt_fingerprint *fp, const void *out, const char *fn)
{
    if (fp == NULL || out == NULL)
        return vt__fail(NULL, VT_EINVAL, "%s: NULL argument", fn);
    pthread_mutex_lock(&fp->lock);
    int rc = vt__fp_refresh(fp);
    if (rc) {
        pthread_mutex_unlock(&fp->lock);
        return vt__fail(NULL, rc, "%s: out of memory", fn);
    }
    return 0;
}

int vt_fingerprint_channel(vt_fingerprint *fp, size_t channel, vt_fingerprint_stats *out)
{
    int rc = begin_get(fp, out, "vt_fingerprint_channel");
    if (rc)
        return rc;
    if (channel < fp->channels)
        *out = fp->stats[channel];
    else
        rc = vt__fail(NULL, VT_ERANGE, "vt_fingerprint_channel: channel %zu of %llu", channel,
                      (unsigned long long)fp->channels);
    pthread_mutex_unlock(&fp->lock);
    return rc;
}

int vt_fingerprint_case_get(vt_fingerprint *fp, size_t index, vt_fingerprint_case *out)
{
    int rc = begin_get(fp, out, "vt_fingerprint_case_get");
    if (rc)
        return rc;
    if (index < fp->ncases) {
        const vt__fp_case *k = &fp->cases[index];
        out->image = k->image;
        out->seg = k->seg;
        memcpy(out->spacing, k->spacing, sizeof out->spacing);
        memcpy(out->shape, k->shape, sizeof out->shape);
        memcpy(out->shape_after_crop, k->after, sizeof out->shape_after_crop);
        memcpy(out->crop, k->crop, sizeof out->crop);
    } else {
        rc = vt__fail(NULL, VT_ERANGE, "vt_fingerprint_case_get: case %zu of %zu", index, fp->ncases);
    }
    pthread_mutex_unlock(&fp->lock);
    return rc;
}

int vt_fingerprint_summary_get(vt_fingerprint *fp, vt_fingerprint_summary *out)
{
    int rc = begin_get(fp, out, "vt_fingerprint_summary_get");
    if (rc)
        return rc;
    *out = fp->sum;
    pthread_mutex_unlock(&fp->lock);
    return 0;
}
