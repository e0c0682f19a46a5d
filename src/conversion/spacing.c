/* A change of voxel spacing, streamed slice by slice.
 *
 * Images are resampled separably. Each input slice is resampled in x, then in
 * y, into a ring of the last few slices (as many as the z kernel has taps);
 * an output slice is emitted as soon as the input slices its z taps need are
 * in the ring. Labels keep the last two input slices and take the label vote
 * over the 8 linear taps of each output voxel (interp.h): the argmax of the
 * one-hot masks interpolated trilinearly, whatever the number of labels.
 * Memory is a few slices whatever the depth of the volume.
 *
 * Per axis and output index the taps and weights are tabled once. Output i
 * sits at input coordinate c = (i + 0.5) n_in / n_out - 0.5; taps outside
 * [0, n_in) take the edge voxel. */
#include "spacing.h"
#include "interp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef vt_axis axis;

struct vt_respace {
    axis ax[3];
    bool labels;
    vt_respace_emit emit;
    void *ctx;
    uint64_t have;      /* input slices pushed */
    uint64_t next;      /* next output slice */
    int ring_n;         /* ring slots */
    double *tmp;        /* images: one input slice resampled in x: n_in[1] x n_out[2] */
    double *ring;       /* images: ring_n slices of n_out[1] x n_out[2]; labels: ring_n input slices */
    int32_t *lring;
    double *outf;       /* one output slice */
    int32_t *outl;
};

uint64_t vt__respace_extent(uint64_t n, double old_spacing, double new_spacing)
{
    double e = nearbyint(old_spacing / new_spacing * (double)n); /* nnU-Net: (old / new) * n, round half even */
    if (!(e < 0x1p62)) /* also NaN: a spacing ratio no grid can have; callers refuse over 2^31 */
        return UINT64_MAX;
    return e < 1 ? 1 : (uint64_t)e;
}

static uint32_t clampi(int64_t i, uint64_t n) { return i < 0 ? 0 : (uint64_t)i >= n ? (uint32_t)(n - 1) : (uint32_t)i; }

int vt__axis_init(vt_axis *a, uint64_t n_in, uint64_t n_out, vt_kernel k, bool labels)
{
    memset(a, 0, sizeof *a);
    if (n_in == 0 || n_in > INT32_MAX || n_out == 0 || n_out > INT32_MAX) /* taps are 32-bit */
        return VT_ERANGE;
    a->n_in = n_in;
    a->n_out = n_out;
    a->ntaps = labels ? 2 : k == VT_KERNEL_CUBIC ? 4 : k == VT_KERNEL_LINEAR ? 2 : 1;
    a->tap = vt__malloc(n_out * (size_t)a->ntaps * sizeof *a->tap);
    a->w = vt__malloc(n_out * (size_t)a->ntaps * sizeof *a->w);
    a->frac = vt__malloc(n_out * sizeof *a->frac);
    if (a->tap == NULL || a->w == NULL || a->frac == NULL)
        return VT_ENOMEM;
    double scale = (double)n_in / (double)n_out;
    for (uint64_t i = 0; i < n_out; i++) {
        double c = ((double)i + 0.5) * scale - 0.5;
        uint32_t *t = a->tap + i * (size_t)a->ntaps;
        double *w = a->w + i * (size_t)a->ntaps;
        if (k == VT_KERNEL_NEAREST) { /* scipy's order 0: floor(c + 0.5), halves up */
            uint32_t j = clampi((int64_t)floor(c + 0.5), n_in);
            for (int q = 0; q < a->ntaps; q++) {
                t[q] = j;
                w[q] = q == 0;
            }
            a->frac[i] = 0;
            continue;
        }
        int64_t j = (int64_t)floor(c);
        double f = c - (double)j;
        a->frac[i] = f;
        if (a->ntaps == 2) {
            t[0] = clampi(j, n_in);
            t[1] = clampi(j + 1, n_in);
            w[0] = 1 - f;
            w[1] = f;
        } else {
            double cw[4];
            vt__cubic_weights(f, cw);
            for (int q = 0; q < 4; q++) {
                t[q] = clampi(j - 1 + q, n_in);
                w[q] = cw[q];
            }
        }
    }
    return 0;
}

void vt__axis_free(vt_axis *a)
{
    free(a->tap);
    free(a->w);
    free(a->frac);
    memset(a, 0, sizeof *a);
}

void vt__respace_free(vt_respace *r)
{
    if (r == NULL)
        return;
    for (int d = 0; d < 3; d++)
        vt__axis_free(&r->ax[d]);
    free(r->tmp);
    free(r->ring);
    free(r->lring);
    free(r->outf);
    free(r->outl);
    free(r);
}

int vt__respace_new(const uint64_t *in, const uint64_t *out, const vt_kernel *kern, bool labels, vt_respace_emit emit,
                    void *ctx, vt_respace **out_r)
{
    *out_r = NULL;
    vt_respace *r = vt__calloc(1, sizeof *r);
    if (r == NULL)
        return VT_ENOMEM;
    r->labels = labels;
    r->emit = emit;
    r->ctx = ctx;
    int rc = 0;
    for (int d = 0; d < 3 && rc == 0; d++)
        rc = vt__axis_init(&r->ax[d], in[d], out[d], kern[d], labels);
    uint64_t in_plane = in[1] * in[2], out_plane = out[1] * out[2];
    r->ring_n = r->ax[0].ntaps;
    if (rc == 0 && labels) {
        r->lring = vt__malloc((size_t)r->ring_n * in_plane * sizeof *r->lring);
        r->outl = vt__malloc(out_plane * sizeof *r->outl);
        rc = r->lring && r->outl ? 0 : VT_ENOMEM;
    } else if (rc == 0) {
        r->tmp = vt__malloc(in[1] * out[2] * sizeof *r->tmp);
        r->ring = vt__malloc((size_t)r->ring_n * out_plane * sizeof *r->ring);
        r->outf = vt__malloc(out_plane * sizeof *r->outf);
        rc = r->tmp && r->ring && r->outf ? 0 : VT_ENOMEM;
    }
    if (rc) {
        vt__respace_free(r);
        return rc;
    }
    *out_r = r;
    return 0;
}

void vt__respace_begin(vt_respace *r)
{
    r->have = 0;
    r->next = 0;
}

/* Ring slot of input slice z (which must be among the last ring_n pushed). */
static inline uint64_t slot(const vt_respace *r, uint64_t z) { return z % (uint64_t)r->ring_n; }

/* Images: output slice oz from the ring. */
static int emit_image(vt_respace *r, uint64_t oz)
{
    const axis *az = &r->ax[0];
    uint64_t plane = r->ax[1].n_out * r->ax[2].n_out;
    const uint32_t *t = az->tap + oz * (size_t)az->ntaps;
    const double *w = az->w + oz * (size_t)az->ntaps;
    double *o = r->outf;
    const double *s0 = r->ring + slot(r, t[0]) * plane;
    for (uint64_t i = 0; i < plane; i++)
        o[i] = w[0] * s0[i];
    for (int q = 1; q < az->ntaps; q++) {
        if (w[q] == 0)
            continue;
        const double *s = r->ring + slot(r, t[q]) * plane;
        double wq = w[q];
        for (uint64_t i = 0; i < plane; i++)
            o[i] += wq * s[i];
    }
    return r->emit(r->ctx, oz, o, NULL);
}

void vt__vote_plane(const vt_axis *ay, const vt_axis *ax, const int32_t *z0, const int32_t *z1, double fz,
                    int32_t *out)
{
    for (uint64_t y = 0; y < ay->n_out; y++) {
        uint64_t y0 = ay->tap[2 * y] * ax->n_in, y1 = ay->tap[2 * y + 1] * ax->n_in;
        double fy = ay->frac[y];
        for (uint64_t x = 0; x < ax->n_out; x++) {
            uint64_t x0 = ax->tap[2 * x], x1 = ax->tap[2 * x + 1];
            int32_t v[8] = {z0[y0 + x0], z0[y0 + x1], z0[y1 + x0], z0[y1 + x1],
                            z1[y0 + x0], z1[y0 + x1], z1[y1 + x0], z1[y1 + x1]};
            out[y * ax->n_out + x] = vt__label_vote(v, fz, fy, ax->frac[x]);
        }
    }
}

/* Labels: output slice oz from the two input slices in the ring. */
static int emit_labels(vt_respace *r, uint64_t oz)
{
    const axis *az = &r->ax[0];
    uint64_t in_plane = r->ax[1].n_in * r->ax[2].n_in;
    vt__vote_plane(&r->ax[1], &r->ax[2], r->lring + slot(r, az->tap[2 * oz]) * in_plane,
                   r->lring + slot(r, az->tap[2 * oz + 1]) * in_plane, az->frac[oz], r->outl);
    return r->emit(r->ctx, oz, NULL, r->outl);
}

/* Emit the output slices whose taps are all pushed (all of them when @p all). */
static int flush(vt_respace *r, bool all)
{
    const axis *az = &r->ax[0];
    while (r->next < az->n_out) {
        const uint32_t *t = az->tap + r->next * (size_t)az->ntaps;
        uint32_t last = t[az->ntaps - 1];
        if (!all && last >= r->have)
            return 0;
        int rc = r->labels ? emit_labels(r, r->next) : emit_image(r, r->next);
        if (rc)
            return rc;
        r->next++;
    }
    return 0;
}

int vt__respace_push(vt_respace *r, const double *slice, const int32_t *labels)
{
    const axis *ay = &r->ax[1], *ax = &r->ax[2];
    uint64_t z = r->have;
    if (r->labels) {
        memcpy(r->lring + slot(r, z) * ay->n_in * ax->n_in, labels, ay->n_in * ax->n_in * sizeof *labels);
    } else {
        /* x: each input row to n_out[2] values */
        int nx = ax->ntaps, ny = ay->ntaps;
        for (uint64_t y = 0; y < ay->n_in; y++) {
            const double *row = slice + y * ax->n_in;
            double *dst = r->tmp + y * ax->n_out;
            for (uint64_t i = 0; i < ax->n_out; i++) {
                const uint32_t *t = ax->tap + i * (size_t)nx;
                const double *w = ax->w + i * (size_t)nx;
                double acc = w[0] * row[t[0]];
                for (int q = 1; q < nx; q++)
                    acc += w[q] * row[t[q]];
                dst[i] = acc;
            }
        }
        /* y: rows of tmp to the ring slot */
        double *out = r->ring + slot(r, z) * ay->n_out * ax->n_out;
        for (uint64_t j = 0; j < ay->n_out; j++) {
            const uint32_t *t = ay->tap + j * (size_t)ny;
            const double *w = ay->w + j * (size_t)ny;
            double *o = out + j * ax->n_out;
            const double *s0 = r->tmp + t[0] * ax->n_out;
            for (uint64_t i = 0; i < ax->n_out; i++)
                o[i] = w[0] * s0[i];
            for (int q = 1; q < ny; q++) {
                const double *s = r->tmp + t[q] * ax->n_out;
                double wq = w[q];
                for (uint64_t i = 0; i < ax->n_out; i++)
                    o[i] += wq * s[i];
            }
        }
    }
    r->have++;
    return flush(r, false);
}

int vt__respace_end(vt_respace *r) { return flush(r, true); }
