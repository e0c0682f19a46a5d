/* Pyramid levels: streaming 2x downsampling, level after level.
 *
 * Level k halves the axes of level k-1 whose spacing is at most 3x the
 * finest (an anisotropic scan keeps its coarse axis). Images use a separable
 * Lanczos-3 filter stretched for a factor of 2: output voxel i is centred on
 * input 2i + 0.5 and weighs the 12 inputs 2i-5 .. 2i+6 by L((j - 2i - 0.5) / 2),
 * normalised, L(x) = sinc(x) sinc(x / 3); borders mirror half-sample
 * (.. b a | a b ..). Label arrays take the most frequent value of each 2x2x2
 * (or 2x2, 2 ...) block, the smallest on ties. Output extent: ceil(n / 2).
 *
 * Slices go in one at a time (z increasing); each level keeps a ring of its
 * last 16 input slices, already reduced in y and x, and emits an output slice
 * as soon as the inputs it needs are there -- so memory is a few slices per
 * level whatever the depth of the volume. */
#include "resample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TAPS 12
#define RING 16

typedef struct level {
    uint64_t in[3], out[3]; /* (z, y, x) */
    int reduce[3];
    float *ring;             /* RING slices of out[1] x out[2] */
    uint64_t have;           /* input slices received */
    uint64_t next;           /* next output slice */
    float *tmp;              /* x-reduced rows of one input slice */
    int32_t *lab;            /* labels: the previous input slice (z pairs) */
} level;

struct vt_pyramid {
    int nlevels;
    bool labels;
    level *lv;
    float w[TAPS];
    float *outbuf;
    int32_t *labout;
    vt_pyramid_emit emit;
    void *ctx;
};

static double sinc(double x)
{
    if (x == 0)
        return 1;
    double px = M_PI * x;
    return sin(px) / px;
}

static int64_t mirror(int64_t i, int64_t n)
{
    int64_t p = 2 * n;
    int64_t j = i % p;
    if (j < 0)
        j += p;
    return j >= n ? p - 1 - j : j;
}

int vt__pyramid_new(int nlevels, const double *spacing, const uint64_t *shape, bool labels,
                    vt_pyramid_emit emit, void *ctx, vt_pyramid **out)
{
    *out = NULL;
    vt_pyramid *p = vt__calloc(1, sizeof *p);
    if (p == NULL)
        return VT_ENOMEM;
    p->lv = vt__calloc((size_t)nlevels, sizeof *p->lv);
    if (p->lv == NULL) {
        free(p);
        return VT_ENOMEM;
    }
    p->labels = labels;
    p->emit = emit;
    p->ctx = ctx;
    double sp[3] = {spacing[0], spacing[1], spacing[2]};
    uint64_t sh[3] = {shape[0], shape[1], shape[2]};
    size_t maxrow = 0;
    for (int k = 0; k < nlevels; k++) {
        level *l = &p->lv[k];
        double finest = INFINITY;
        for (int a = 0; a < 3; a++)
            if (sh[a] > 1 && sp[a] < finest)
                finest = sp[a];
        for (int a = 0; a < 3; a++) {
            l->in[a] = sh[a];
            l->reduce[a] = sh[a] > 1 && sp[a] <= 3 * finest;
            l->out[a] = l->reduce[a] ? (sh[a] + 1) / 2 : sh[a];
            if (l->reduce[a])
                sp[a] *= 2;
            sh[a] = l->out[a];
        }
        if (!l->reduce[0] && !l->reduce[1] && !l->reduce[2]) {
            p->nlevels = k;
            break;
        }
        p->nlevels = k + 1;
        l->ring = vt__malloc(RING * l->out[1] * l->out[2] * sizeof(float));
        l->tmp = vt__malloc(l->in[1] * l->out[2] * sizeof(float));
        l->lab = labels ? vt__malloc(l->in[1] * l->in[2] * sizeof(int32_t)) : NULL;
        if (l->ring == NULL || l->tmp == NULL || (labels && l->lab == NULL)) {
            vt__pyramid_free(p);
            return VT_ENOMEM;
        }
        if (l->in[1] * l->in[2] > maxrow)
            maxrow = l->in[1] * l->in[2];
    }
    double sum = 0, w[TAPS];
    for (int t = 0; t < TAPS; t++) {
        double x = ((double)(t - 5) - 0.5) / 2.0; /* input 2i-5+t relative to centre 2i+0.5, halved */
        w[t] = fabs(x) < 3 ? sinc(x) * sinc(x / 3) : 0;
        sum += w[t];
    }
    for (int t = 0; t < TAPS; t++)
        p->w[t] = (float)(w[t] / sum);
    p->outbuf = vt__malloc((maxrow ? maxrow : 1) * sizeof(float));
    p->labout = vt__malloc((maxrow ? maxrow : 1) * sizeof(int32_t));
    if (p->outbuf == NULL || p->labout == NULL) {
        vt__pyramid_free(p);
        return VT_ENOMEM;
    }
    *out = p;
    return 0;
}

int vt__pyramid_levels(const vt_pyramid *p) { return p->nlevels; }

void vt__pyramid_level(const vt_pyramid *p, int k, uint64_t *shape, int *reduced)
{
    for (int a = 0; a < 3; a++) {
        shape[a] = p->lv[k].out[a];
        reduced[a] = p->lv[k].reduce[a];
    }
}

void vt__pyramid_free(vt_pyramid *p)
{
    if (p == NULL)
        return;
    for (int k = 0; k < p->nlevels; k++) {
        free(p->lv[k].ring);
        free(p->lv[k].tmp);
        free(p->lv[k].lab);
    }
    free(p->lv);
    free(p->outbuf);
    free(p->labout);
    free(p);
}

void vt__pyramid_begin(vt_pyramid *p)
{
    for (int k = 0; k < p->nlevels; k++) {
        p->lv[k].have = 0;
        p->lv[k].next = 0;
    }
}

static int push(vt_pyramid *p, int k, const float *slice, const int32_t *labs);

/* ---- images ------------------------------------------------------------- */

/* Reduce one input slice in x then y into the ring. */
static void reduce_xy(const vt_pyramid *p, level *l, const float *in, float *dst)
{
    uint64_t Y = l->in[1], X = l->in[2], OY = l->out[1], OX = l->out[2];
    for (uint64_t y = 0; y < Y; y++) {
        const float *row = in + y * X;
        float *t = l->tmp + y * OX;
        if (!l->reduce[2]) {
            memcpy(t, row, X * sizeof *t);
            continue;
        }
        for (uint64_t x = 0; x < OX; x++) {
            float acc = 0;
            int64_t base = 2 * (int64_t)x - 5;
            if (base >= 0 && base + TAPS <= (int64_t)X)
                for (int k = 0; k < TAPS; k++)
                    acc += p->w[k] * row[base + k];
            else
                for (int k = 0; k < TAPS; k++)
                    acc += p->w[k] * row[mirror(base + k, (int64_t)X)];
            t[x] = acc;
        }
    }
    for (uint64_t y = 0; y < OY; y++) {
        float *o = dst + y * OX;
        if (!l->reduce[1]) {
            memcpy(o, l->tmp + y * OX, OX * sizeof *o);
            continue;
        }
        for (uint64_t x = 0; x < OX; x++)
            o[x] = 0;
        int64_t base = 2 * (int64_t)y - 5;
        for (int k = 0; k < TAPS; k++) {
            const float *r = l->tmp + (uint64_t)mirror(base + k, (int64_t)Y) * OX;
            float wk = p->w[k];
            for (uint64_t x = 0; x < OX; x++)
                o[x] += wk * r[x];
        }
    }
}

/* Emit every output slice of level k whose inputs are all in the ring. */
static int drain(vt_pyramid *p, int k)
{
    level *l = &p->lv[k];
    uint64_t n = l->out[1] * l->out[2], Z = l->in[0];
    while (l->next < l->out[0]) {
        uint64_t z = l->next;
        const float *src;
        if (!l->reduce[0]) {
            if (z >= l->have)
                return 0;
            src = l->ring + (z % RING) * n;
        } else {
            /* inputs up to 2z+6 (mirrored at the far end: all of them) */
            uint64_t need = 2 * z + 7 < Z ? 2 * z + 7 : Z;
            if (l->have < need)
                return 0;
            float *o = p->outbuf;
            for (uint64_t i = 0; i < n; i++)
                o[i] = 0;
            for (int t = 0; t < TAPS; t++) {
                uint64_t zi = (uint64_t)mirror(2 * (int64_t)z - 5 + t, (int64_t)Z);
                const float *r = l->ring + (zi % RING) * n;
                float wt = p->w[t];
                for (uint64_t i = 0; i < n; i++)
                    o[i] += wt * r[i];
            }
            src = o;
        }
        l->next++;
        int rc = p->emit(p->ctx, k + 1, z, src, NULL);
        if (rc == 0 && k + 1 < p->nlevels)
            rc = push(p, k + 1, src, NULL);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- labels ------------------------------------------------------------- */

static int32_t mode(const int32_t *v, int n)
{
    int32_t best = v[0];
    int bestc = 0;
    for (int i = 0; i < n; i++) {
        int c = 0;
        for (int j = 0; j < n; j++)
            c += v[j] == v[i];
        if (c > bestc || (c == bestc && v[i] < best)) {
            best = v[i];
            bestc = c;
        }
    }
    return best;
}

/* Mode over the blocks of one or two input slices (a, b: b NULL when z is
 * not reduced or the depth is odd at the end). */
static void label_blocks(const level *l, const int32_t *a, const int32_t *b, int32_t *o)
{
    uint64_t Y = l->in[1], X = l->in[2], OY = l->out[1], OX = l->out[2];
    for (uint64_t y = 0; y < OY; y++)
        for (uint64_t x = 0; x < OX; x++) {
            int32_t v[8];
            int n = 0;
            uint64_t y0 = l->reduce[1] ? 2 * y : y, x0 = l->reduce[2] ? 2 * x : x;
            uint64_t ny = l->reduce[1] && y0 + 1 < Y ? 2 : 1, nx = l->reduce[2] && x0 + 1 < X ? 2 : 1;
            for (int s = 0; s < (b ? 2 : 1); s++)
                for (uint64_t dy = 0; dy < ny; dy++)
                    for (uint64_t dx = 0; dx < nx; dx++)
                        v[n++] = (s ? b : a)[(y0 + dy) * X + x0 + dx];
            o[y * OX + x] = mode(v, n);
        }
}

static int push_labels(vt_pyramid *p, int k, const int32_t *slice, bool final)
{
    level *l = &p->lv[k];
    int32_t *o = p->labout;
    uint64_t z = l->have;
    if (final) { /* odd depth: the last slice alone */
        if (!l->reduce[0] || l->in[0] % 2 == 0)
            return 0;
        label_blocks(l, l->lab, NULL, o);
        z = l->in[0] - 1;
    } else {
        l->have++;
        if (l->reduce[0] && z % 2 == 0) { /* wait for its pair */
            memcpy(l->lab, slice, l->in[1] * l->in[2] * sizeof *slice);
            return 0;
        }
        label_blocks(l, l->reduce[0] ? l->lab : slice, l->reduce[0] ? slice : NULL, o);
    }
    uint64_t oz = l->reduce[0] ? z / 2 : z;
    int rc = p->emit(p->ctx, k + 1, oz, NULL, o);
    if (rc == 0 && k + 1 < p->nlevels) {
        /* the next level reads from its own copy: labout is reused */
        size_t n = l->out[1] * l->out[2];
        int32_t *copy = vt__malloc(n * sizeof *copy);
        if (copy == NULL)
            return VT_ENOMEM;
        memcpy(copy, o, n * sizeof *copy);
        rc = push_labels(p, k + 1, copy, false);
        free(copy);
    }
    return rc;
}

static int push(vt_pyramid *p, int k, const float *slice, const int32_t *labs)
{
    if (p->labels)
        return push_labels(p, k, labs, false);
    level *l = &p->lv[k];
    reduce_xy(p, l, slice, l->ring + (l->have % RING) * l->out[1] * l->out[2]);
    l->have++;
    return drain(p, k);
}

int vt__pyramid_push(vt_pyramid *p, const float *slice, const int32_t *labels)
{
    if (p->nlevels == 0)
        return 0;
    return push(p, 0, slice, labels);
}

int vt__pyramid_end(vt_pyramid *p)
{
    for (int k = 0; k < p->nlevels; k++) {
        int rc = p->labels ? push_labels(p, k, NULL, true) : drain(p, k);
        if (rc)
            return rc;
    }
    return 0;
}
