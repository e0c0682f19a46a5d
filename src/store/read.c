/* vt_read: a box of voxels -> the tiles it needs -> the caller's buffer.
 *
 * Each axis of the box is described by "runs": stretches of output indices
 * that either come from the pad value (fill runs) or map to array indices
 * src, src+step, src+2*step ... with step +1 (inside, or a mirrored stretch
 * going outward), -1 (a mirrored stretch coming back) or 0 (edge replicate).
 * Every pad mode is then the same operation: for each tile that some run
 * reaches on every axis, decode the tile once and copy each combination of
 * runs that meets it, converting row by row straight into the output. */
#include "codec.h"
#include "half.h"
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- casting elements to the output dtype -------------------------------- */

enum { K_COPY, K_F32_F16, K_F16_F32, K_F32_BF16, K_INT_F32, K_INT_F16, K_INT_WIDEN, K_GENERIC };

/* How stored elements become output elements: the kernel, and the
 * transform (clip, scale, offset) when there is one. */
typedef struct cast {
    vt_dtype src, dst;          /* stored and output dtype */
    size_t src_size, dst_size;  /* their element sizes */
    int kind;
    int xf;
    double lo, hi, scale, offset;
} cast;

static void cast_init(cast *c, vt_dtype src, vt_dtype dst, const vt_read_opts *o)
{
    c->src = src;
    c->dst = dst;
    c->src_size = vt_dtype_size(src);
    c->dst_size = vt_dtype_size(dst);
    c->xf = o->transform != 0;
    c->lo = o->clip_lo;
    c->hi = o->clip_hi;
    c->scale = o->scale;
    c->offset = o->offset;
    if (c->xf)
        c->kind = K_GENERIC;
    else if (src == dst)
        c->kind = K_COPY;
    else if (src == VT_F32 && dst == VT_F16)
        c->kind = K_F32_F16;
    else if (src == VT_F16 && dst == VT_F32)
        c->kind = K_F16_F32;
    else if (src == VT_F32 && dst == VT_BF16)
        c->kind = K_F32_BF16;
    else if ((src == VT_U8 || src == VT_I8 || src == VT_U16 || src == VT_I16) && (dst == VT_F32 || dst == VT_F16))
        /* exact in float32, so float16 rounds once, as from double */
        c->kind = dst == VT_F32 ? K_INT_F32 : K_INT_F16;
    else if (((src == VT_U8 || src == VT_I8) && (dst == VT_I16 || dst == VT_I32)) ||
             (src == VT_U8 && (dst == VT_U16 || dst == VT_U32)) || (src == VT_U16 && (dst == VT_I32 || dst == VT_U32)) ||
             (src == VT_I16 && dst == VT_I32))
        c->kind = K_INT_WIDEN; /* every value fits: a label map read as int16 or int32 */
    else
        c->kind = K_GENERIC;
}

static inline double xform(const cast *c, double x) { return vt__xform(x, c->lo, c->hi, c->scale, c->offset); }

/* A label row widened into contiguous aligned output, reading the source forwards (@p step 1, from @p s)
 * or backwards (-1, from @p s down: a mirrored patch): loops the compiler vectorises (an 8-bit label map
 * read as int16 is the training loader's every patch). False for the pairs it does not handle. */
static bool widen_row(vt_dtype src, const unsigned char *s, int step, size_t n, unsigned char *dst,
                      size_t dst_size)
{
#define WIDEN(S, D)                                                                                            \
    do {                                                                                                       \
        D *d_ = (D *)(void *)dst;                                                                              \
        for (size_t k_ = 0; k_ < n; k_++) {                                                                    \
            S v_;                                                                                              \
            memcpy(&v_, s + (ptrdiff_t)k_ * step * (ptrdiff_t)sizeof(S), sizeof(S));                           \
            d_[k_] = (D)v_;                                                                                    \
        }                                                                                                      \
    } while (0)
    if (src == VT_U8 && dst_size == 2)
        WIDEN(uint8_t, uint16_t);
    else if (src == VT_I8 && dst_size == 2)
        WIDEN(int8_t, int16_t);
    else if (src == VT_U8 && dst_size == 4)
        WIDEN(uint8_t, uint32_t);
    else if (src == VT_I8 && dst_size == 4)
        WIDEN(int8_t, int32_t);
    else if (src == VT_U16 && dst_size == 4)
        WIDEN(uint16_t, uint32_t);
    else if (src == VT_I16 && dst_size == 4)
        WIDEN(int16_t, int32_t);
    else
        return false;
#undef WIDEN
    return true;
}

/* @p n elements converted into the contiguous aligned @p dst in reverse order (dst[k] from src[n - 1 - k]),
 * for the conversions a mirrored training patch takes; false for the others. */
static bool reverse_row(const cast *c, const unsigned char *src, size_t n, unsigned char *dst)
{
    size_t ss = c->src_size, ds = c->dst_size;
    if (c->kind == K_INT_WIDEN)
        return widen_row(c->src, src + (n - 1) * ss, -1, n, dst, ds);
    if (c->kind == K_COPY && (ds == 1 || ds == 2 || ds == 4 || ds == 8)) {
#define REVCOPY(T)                                                                                             \
    do {                                                                                                       \
        T *d_ = (T *)(void *)dst;                                                                              \
        for (size_t k_ = 0; k_ < n; k_++)                                                                      \
            memcpy(&d_[k_], src + (n - 1 - k_) * sizeof(T), sizeof(T));                                        \
    } while (0)
        switch (ds) {
        case 1: REVCOPY(uint8_t); break;
        case 2: REVCOPY(uint16_t); break;
        case 4: REVCOPY(uint32_t); break;
        default: REVCOPY(uint64_t); break;
        }
#undef REVCOPY
        return true;
    }
    if (c->kind == K_F32_F16) {
        uint16_t *d = (uint16_t *)(void *)dst;
        for (size_t k = 0; k < n;) { /* source chunks from the end, converted forwards, stored reversed */
            uint16_t tmp[256];
            size_t m = n - k < 256 ? n - k : 256;
            vt__f32_to_f16(src + 4 * (n - k - m), tmp, m);
            for (size_t j = 0; j < m; j++)
                d[k + j] = tmp[m - 1 - j];
            k += m;
        }
        return true;
    }
    return false;
}

/* An output element repeated across 8 bytes, for filling rows with it. */
typedef struct fillpat {
    unsigned char b[8];
    uint64_t pat;
    size_t size;
} fillpat;

static void fillpat_make(fillpat *f, const unsigned char *val, size_t size)
{
    for (size_t k = 0; k < 8; k++)
        f->b[k] = val[k % size];
    memcpy(&f->pat, f->b, 8);
    f->size = size;
}

/* @p n copies of the element of @p f, @p ds bytes apart. */
static void fill_pat_row(const fillpat *f, unsigned char *dst, size_t n, int64_t ds)
{
    size_t size = f->size;
    if (ds == -(int64_t)size && n > 1) { /* a mirrored output row: the same bytes, from its other end */
        dst -= (n - 1) * size;
        ds = (int64_t)size;
    }
    if (ds == (int64_t)size && (size == 1 || size == 2 || size == 4 || size == 8)) {
        /* 8 bytes at a time (a 16-voxel int16 row: 4 stores) */
        size_t bytes = n * size, k = 0;
        for (; k + 8 <= bytes; k += 8)
            memcpy(dst + k, &f->pat, 8);
        memcpy(dst + k, f->b, bytes - k); /* a whole number of elements: the pattern starts at an element */
        return;
    }
    for (size_t k = 0; k < n; k++)
        memcpy(dst + (int64_t)k * ds, f->b, size);
}

/* @p n copies of the @p size -byte element at @p val, @p ds bytes apart. */
static void fill_row(unsigned char *dst, const unsigned char *val, size_t size, size_t n, int64_t ds)
{
    fillpat f;
    fillpat_make(&f, val, size);
    fill_pat_row(&f, dst, n, ds);
}

/* Convert @p n contiguous source elements to the output, @p ds bytes apart. */
static void cast_row(const cast *c, const unsigned char *src, size_t n, unsigned char *dst, int64_t ds)
{
    size_t dst_size = c->dst_size;
    if (ds == -(int64_t)dst_size && n > 1 && ((uintptr_t)dst & (dst_size - 1)) == 0 &&
        reverse_row(c, src, n, dst - (n - 1) * dst_size))
        return; /* written backwards (a mirrored patch): read backwards, written forwards */
    switch (c->kind) {
    case K_COPY:
        if (ds == (int64_t)dst_size)
            memcpy(dst, src, n * dst_size);
        else
            for (size_t k = 0; k < n; k++)
                memcpy(dst + (int64_t)k * ds, src + k * dst_size, dst_size);
        return;
    case K_F32_F16:
        if (ds == 2) {
            uint16_t *d = (uint16_t *)(void *)dst;
            if (((uintptr_t)dst & 1u) == 0) {
                vt__f32_to_f16(src, d, n);
                return;
            }
        }
        for (size_t k = 0; k < n;) { /* through a small buffer */
            uint16_t tmp[256];
            size_t m = n - k < 256 ? n - k : 256;
            vt__f32_to_f16(src + 4 * k, tmp, m);
            for (size_t j = 0; j < m; j++)
                memcpy(dst + (int64_t)(k + j) * ds, &tmp[j], 2);
            k += m;
        }
        return;
    case K_F16_F32:
        for (size_t k = 0; k < n;) {
            float tmp[256];
            size_t m = n - k < 256 ? n - k : 256;
            vt__f16_to_f32(src + 2 * k, tmp, m);
            if (ds == 4)
                memcpy(dst + (int64_t)k * 4, tmp, m * 4);
            else
                for (size_t j = 0; j < m; j++)
                    memcpy(dst + (int64_t)(k + j) * ds, &tmp[j], 4);
            k += m;
        }
        return;
    case K_F32_BF16:
        for (size_t k = 0; k < n; k++)
            vt__st16(dst + (int64_t)k * ds, vt__f32_to_bf16_bits(vt__ld32(src + 4 * k)));
        return;
    case K_INT_F32:
    case K_INT_F16:
        for (size_t k = 0; k < n;) {
            float tmp[256];
            uint16_t h[256];
            size_t m = n - k < 256 ? n - k : 256;
            vt__small_ints_to_f32(c->src, src + k * c->src_size, m, tmp);
            const unsigned char *from = (const unsigned char *)tmp;
            if (c->kind == K_INT_F16) {
                vt__f32_to_f16(tmp, h, m);
                from = (const unsigned char *)h;
            }
            if (ds == (int64_t)dst_size)
                memcpy(dst + (int64_t)k * ds, from, m * dst_size);
            else
                for (size_t j = 0; j < m; j++)
                    memcpy(dst + (int64_t)(k + j) * ds, from + j * dst_size, dst_size);
            k += m;
        }
        return;
    case K_INT_WIDEN:
        if (ds == (int64_t)dst_size && ((uintptr_t)dst & (dst_size - 1)) == 0 &&
            widen_row(c->src, src, 1, n, dst, dst_size))
            return;
        for (size_t k = 0; k < n; k++) {
            int64_t v = vt__load_int(c->src, src + k * c->src_size);
            if (dst_size == 2)
                vt__st16(dst + (int64_t)k * ds, (uint16_t)v);
            else
                vt__st32(dst + (int64_t)k * ds, (uint32_t)v);
        }
        return;
    default:
        for (size_t k = 0; k < n; k++) {
            double x = vt__load_f64(c->src, src + k * c->src_size);
            if (c->xf)
                x = xform(c, x);
            vt__store_f64(c->dst, dst + (int64_t)k * ds, x);
        }
        return;
    }
}

/* ---- per-axis runs ------------------------------------------------------ */

typedef struct run {
    uint64_t out; /* first output index along the axis */
    uint64_t len;
    int fill;     /* from the pad value */
    int step;     /* -1, 0, +1 */
    int64_t src;  /* array index of the first element */
} run;

/* A run's part inside one tile. */
typedef struct piece {
    uint64_t out, len;
    int64_t src; /* index inside the tile */
    int step;
} piece;

#define INLINE_RUNS 8

typedef struct axis {
    run *runs;
    size_t nruns, cap;
    run inline_runs[INLINE_RUNS];
    piece *pieces; /* scratch: up to nruns pieces for the current tile */
    piece inline_pieces[INLINE_RUNS];
    int64_t slo, shi; /* array indices the mapped runs need: [slo, shi) */
} axis;

static int axis_plan(axis *ax, int64_t start, uint64_t size, uint64_t n, vt_pad pad)
{
    ax->runs = ax->inline_runs;
    ax->pieces = ax->inline_pieces;
    ax->cap = INLINE_RUNS;
    ax->nruns = 0;
    ax->slo = INT64_MAX;
    ax->shi = INT64_MIN;
    for (uint64_t k = 0; k < size; k++) {
        int64_t m = vt__pad_index(start + (int64_t)k, (int64_t)n, pad);
        if (ax->nruns > 0) {
            run *r = &ax->runs[ax->nruns - 1];
            if (m < 0 && r->fill) {
                r->len++;
                continue;
            }
            if (m >= 0 && !r->fill) {
                if (r->len == 1 && m - r->src >= -1 && m - r->src <= 1) {
                    r->step = (int)(m - r->src);
                    r->len = 2;
                    continue;
                }
                if (r->len > 1 && m == r->src + r->step * (int64_t)r->len) {
                    r->len++;
                    continue;
                }
            }
        }
        if (ax->nruns == ax->cap) {
            size_t cap = ax->cap * 4;
            run *nr = vt__malloc(cap * sizeof *nr);
            piece *np = vt__malloc(cap * sizeof *np);
            if (nr == NULL || np == NULL) {
                free(nr);
                free(np);
                return VT_ENOMEM;
            }
            memcpy(nr, ax->runs, ax->nruns * sizeof *nr);
            if (ax->runs != ax->inline_runs) {
                free(ax->runs);
                free(ax->pieces);
            }
            ax->runs = nr;
            ax->pieces = np;
            ax->cap = cap;
        }
        ax->runs[ax->nruns++] = (run){k, 1, m < 0, 1, m};
    }
    for (size_t i = 0; i < ax->nruns; i++) {
        const run *r = &ax->runs[i];
        if (r->fill)
            continue;
        int64_t last = r->src + r->step * (int64_t)(r->len - 1);
        int64_t lo = r->src < last ? r->src : last, hi = (r->src > last ? r->src : last) + 1;
        if (lo < ax->slo)
            ax->slo = lo;
        if (hi > ax->shi)
            ax->shi = hi;
    }
    return 0;
}

static void axis_free(axis *ax)
{
    if (ax->runs != ax->inline_runs) {
        free(ax->runs);
        free(ax->pieces);
    }
}

/* Pieces of the axis's mapped runs inside the tile span [ts, ts+te). */
static size_t axis_pieces(axis *ax, int64_t ts, int64_t te)
{
    size_t np = 0;
    for (size_t i = 0; i < ax->nruns; i++) {
        const run *r = &ax->runs[i];
        if (r->fill)
            continue;
        int64_t len = (int64_t)r->len, k0, k1;
        if (r->step > 0) {
            k0 = ts - r->src;
            k1 = ts + te - r->src;
        } else if (r->step < 0) {
            k0 = r->src - (ts + te) + 1;
            k1 = r->src - ts + 1;
        } else {
            k0 = 0;
            k1 = (r->src >= ts && r->src < ts + te) ? len : 0;
        }
        if (k0 < 0)
            k0 = 0;
        if (k1 > len)
            k1 = len;
        if (k0 >= k1)
            continue;
        ax->pieces[np++] = (piece){r->out + (uint64_t)k0, (uint64_t)(k1 - k0),
                                   r->src + r->step * k0 - ts, r->step};
    }
    return np;
}

/* ---- the read ----------------------------------------------------------- */

typedef struct read_ctx {
    const vt_array *a;
    int nd;
    axis ax[VT_MAX_DIMS];
    int64_t ostr[VT_MAX_DIMS]; /* output strides in bytes */
    unsigned char *out;
    cast cast;
    int verify;
    uint64_t tlo[VT_MAX_DIMS], thi[VT_MAX_DIMS]; /* tile range */
} read_ctx;

#define REVERSE(T)                                                                                 \
    do {                                                                                           \
        T *e = (T *)(void *)p;                                                                     \
        for (size_t a = 0, b = n - 1; a < b; a++, b--) {                                          \
            T t = e[a];                                                                            \
            e[a] = e[b];                                                                           \
            e[b] = t;                                                                              \
        }                                                                                          \
    } while (0)

/* Reverse the order of @p n elements of @p elem_size bytes in place (the row buffer
 * is allocated with malloc, so aligned for any element). */
static void reverse_elements(unsigned char *p, size_t n, size_t elem_size)
{
    if (n < 2)
        return;
    switch (elem_size) {
    case 1: REVERSE(uint8_t); break;
    case 2: REVERSE(uint16_t); break;
    case 4: REVERSE(uint32_t); break;
    default: REVERSE(uint64_t); break;
    }
}

/* Element @p ei of a tile (a constant tile's value for any @p ei), converted
 * to the output type, as a fill pattern. */
static void element_pattern(const read_ctx *r, const vt_tile_view *v, uint64_t ei, fillpat *f)
{
    const cast *c = &r->cast;
    size_t elem_size = c->src_size;
    unsigned char one[8], conv[8];
    if (v->layout == VT_LAYOUT_CONST)
        memcpy(one, v->data, elem_size);
    else if (v->layout == VT_LAYOUT_CONTIG)
        memcpy(one, v->data + ei * elem_size, elem_size);
    else
        for (size_t b = 0; b < elem_size; b++)
            one[b] = v->data[b * v->nelem + ei];
    cast_row(c, one, 1, conv, (int64_t)c->dst_size);
    fillpat_make(f, conv, c->dst_size);
}

/* Copy one row of a non-constant tile: n elements from element @p ei, stepping @p step. */
static int copy_row(const read_ctx *r, const vt_tile_view *v, uint64_t ei, int step, size_t n,
                    unsigned char *dst, int64_t ds, vt_tscratch *s)
{
    const cast *c = &r->cast;
    size_t elem_size = c->src_size; /* stored element bytes */
    if (step == 0) { /* one element repeated (an edge-padded axis) */
        fillpat f;
        element_pattern(r, v, ei, &f);
        fill_pat_row(&f, dst, n, ds);
        return 0;
    }
    if (v->layout == VT_LAYOUT_CONTIG && step == 1) {
        cast_row(c, v->data + ei * elem_size, n, dst, ds);
        return 0;
    }
    if (vt__grow(&s->row, &s->row_cap, n * elem_size))
        return VT_ENOMEM;
    unsigned char *row = s->row;
    if (v->layout == VT_LAYOUT_CONTIG) { /* step -1: copy the range, then reverse it */
        memcpy(row, v->data + (ei - (n - 1)) * elem_size, n * elem_size);
        reverse_elements(row, n, elem_size);
    } else if (step == 1) {
        vt__unshuffle_range(v->data, (size_t)v->nelem, elem_size, (size_t)ei, n, row);
    } else { /* step -1: unshuffle the range forward, then reverse its elements */
        vt__unshuffle_range(v->data, (size_t)v->nelem, elem_size, (size_t)(ei - (n - 1)), n, row);
        reverse_elements(row, n, elem_size);
    }
    cast_row(c, row, n, dst, ds);
    return 0;
}

/* Copy every combination of pieces (np[d] of pcs[d] on axis d) from tile @p v.
 * The row kernel is chosen once per combination and the row offsets advance
 * incrementally: at 16 to 32 elements a row, per-row bookkeeping matters. */
static int copy_tile(const read_ctx *r, const vt_tile_view *v, const size_t *np,
                     piece *const *pcs, vt_tscratch *s)
{
    int nd = r->nd, last = nd - 1;
    int64_t tstr[VT_MAX_DIMS];
    tstr[last] = 1;
    for (int d = last - 1; d >= 0; d--)
        tstr[d] = tstr[d + 1] * (int64_t)v->ext[d + 1];
    bool even = ((uintptr_t)r->out & 1u) == 0;
    for (int d = 0; d < nd; d++)
        even &= (r->ostr[d] & 1) == 0;
    size_t pi[VT_MAX_DIMS] = {0};
    for (;;) { /* over combinations of pieces */
        const piece *p[VT_MAX_DIMS];
        int64_t ei = 0, oo = 0, dei[VT_MAX_DIMS], len[VT_MAX_DIMS], k[VT_MAX_DIMS] = {0};
        for (int d = 0; d < nd; d++) {
            p[d] = &pcs[d][pi[d]];
            ei += p[d]->src * tstr[d];
            oo += (int64_t)p[d]->out * r->ostr[d];
            dei[d] = p[d]->step * tstr[d];
            len[d] = (int64_t)p[d]->len;
        }
        size_t n = (size_t)len[last];
        int step = p[last]->step;
        int64_t ds = r->ostr[last];
        int fused = v->layout == VT_LAYOUT_PLANES && step == 1 && r->cast.kind == K_F32_F16 && ds == 2 && even;
        int contig = v->layout == VT_LAYOUT_CONTIG && step == 1;
        /* the fused kernel takes all rows along the second-last axis at once */
        int rowdim = fused && nd >= 2 ? last - 1 : -1;
        /* a constant tile: its value converted once, every row filled with it (label maps are mostly these) */
        fillpat cf;
        bool constant = v->layout == VT_LAYOUT_CONST;
        if (constant)
            element_pattern(r, v, 0, &cf);
        for (;;) { /* over rows of the combination */
            if (constant)
                fill_pat_row(&cf, r->out + oo, n, ds);
            else if (rowdim >= 0) {
                vt__f32_planes_to_f16_rows(v->data, (size_t)v->nelem, ei, n, (size_t)len[rowdim], dei[rowdim],
                                           (uint16_t *)(void *)(r->out + oo), r->ostr[rowdim] / 2);
                k[rowdim] = len[rowdim] - 1; /* the odometer moves on to the next axis */
                ei += dei[rowdim] * (len[rowdim] - 1);
                oo += r->ostr[rowdim] * (len[rowdim] - 1);
            } else if (fused)
                vt__f32_planes_to_f16(v->data, (size_t)v->nelem, (size_t)ei, n,
                                      (uint16_t *)(void *)(r->out + oo));
            else if (contig)
                cast_row(&r->cast, v->data + (size_t)ei * r->cast.src_size, n, r->out + oo, ds);
            else if (copy_row(r, v, (uint64_t)ei, step, n, r->out + oo, ds, s) != 0)
                return VT_ENOMEM;
            int d = last - 1;
            for (; d >= 0; d--) {
                ei += dei[d];
                oo += r->ostr[d];
                if (++k[d] < len[d])
                    break;
                ei -= dei[d] * len[d];
                oo -= r->ostr[d] * len[d];
                k[d] = 0;
            }
            if (d < 0)
                break;
        }
        int d = last;
        for (; d >= 0; d--) {
            if (++pi[d] < np[d])
                break;
            pi[d] = 0;
        }
        if (d < 0)
            return 0;
    }
}

/* Decode and copy the tiles whose running number is congruent to @p part mod @p parts. */
static int read_tiles(read_ctx *r, int part, int parts, axis *ax)
{
    const vt_array *a = r->a;
    int nd = r->nd;
    vt_tscratch *s = vt__tscratch();
    if (s == NULL)
        return vt__fail_at(a->store, VT_ENOMEM, a->store->path, "out of memory");
    uint64_t tc[VT_MAX_DIMS];
    memcpy(tc, r->tlo, sizeof tc);
    uint64_t counter = 0;
    for (;;) {
        if ((int)(counter++ % (uint64_t)parts) == part) {
            size_t np[VT_MAX_DIMS];
            bool any = true;
            for (int d = 0; d < nd && any; d++) {
                int64_t ts = (int64_t)(tc[d] * a->ent.tile[d]);
                int64_t te = (int64_t)a->ent.tile[d];
                if ((uint64_t)(ts + te) > a->ent.shape[d])
                    te = (int64_t)a->ent.shape[d] - ts;
                np[d] = axis_pieces(&ax[d], ts, te);
                any = np[d] > 0;
            }
            if (any) {
                vt_tile_view v;
                int rc = vt__tile_load(a, vt__tile_number(a->grid, tc, nd), r->verify, s, &v);
                if (rc)
                    return rc;
                piece *pcs[VT_MAX_DIMS];
                for (int d = 0; d < nd; d++)
                    pcs[d] = ax[d].pieces;
                rc = copy_tile(r, &v, np, pcs, s);
                if (rc)
                    return vt__fail_at(a->store, rc, a->store->path, "out of memory");
            }
        }
        int d = nd - 1;
        for (; d >= 0; d--) {
            if (++tc[d] <= r->thi[d])
                break;
            tc[d] = r->tlo[d];
        }
        if (d < 0)
            return 0;
    }
}

/* Fill every combination of runs in which some axis pads with a constant. */
static void fill_pads(const read_ctx *r, const unsigned char *val)
{
    int nd = r->nd;
    size_t dst_size = r->cast.dst_size;
    size_t ri[VT_MAX_DIMS] = {0};
    for (;;) {
        bool fill = false;
        for (int d = 0; d < nd; d++)
            fill |= r->ax[d].runs[ri[d]].fill != 0;
        if (fill) {
            uint64_t k[VT_MAX_DIMS] = {0};
            const run *last = &r->ax[nd - 1].runs[ri[nd - 1]];
            for (;;) {
                int64_t oo = 0;
                for (int d = 0; d < nd - 1; d++)
                    oo += (int64_t)(r->ax[d].runs[ri[d]].out + k[d]) * r->ostr[d];
                oo += (int64_t)last->out * r->ostr[nd - 1];
                fill_row(r->out + oo, val, dst_size, (size_t)last->len, r->ostr[nd - 1]);
                int d = nd - 2;
                for (; d >= 0; d--) {
                    if (++k[d] < r->ax[d].runs[ri[d]].len)
                        break;
                    k[d] = 0;
                }
                if (d < 0)
                    break;
            }
        }
        int d = nd - 1;
        for (; d >= 0; d--) {
            if (++ri[d] < r->ax[d].nruns)
                break;
            ri[d] = 0;
        }
        if (d < 0)
            return;
    }
}

typedef struct worker {
    read_ctx *r;
    int part, parts;
    axis ax[VT_MAX_DIMS];
    int rc;
    char msg[1024];
    pthread_t th;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    w->rc = read_tiles(w->r, w->part, w->parts, w->ax);
    if (w->rc)
        snprintf(w->msg, sizeof w->msg, "%s", vt__errmsg(NULL));
    return NULL;
}

int vt__out_strides(int nd, const uint64_t *ext, const int64_t *strides, size_t es, int64_t *ostr)
{
    if (strides == NULL) {
        ostr[nd - 1] = (int64_t)es;
        for (int d = nd - 2; d >= 0; d--)
            ostr[d] = ostr[d + 1] * (int64_t)ext[d + 1];
        return -1;
    }
    /* every offset the box reaches, in bytes, must fit an int64 (magnitudes in
     * unsigned arithmetic: -INT64_MIN does not exist) */
    uint64_t span = 0, reach;
    for (int d = 0; d < nd; d++) {
        uint64_t mag;
        if (__builtin_mul_overflow(strides[d], (int64_t)es, &ostr[d]) ||
            (mag = ostr[d] < 0 ? 0 - (uint64_t)ostr[d] : (uint64_t)ostr[d]) > (uint64_t)INT64_MAX ||
            __builtin_mul_overflow(mag, ext[d] - 1, &reach) || __builtin_add_overflow(span, reach, &span) ||
            span > (uint64_t)INT64_MAX)
            return d;
    }
    return -1;
}

void vt_read_opts_init(vt_read_opts *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->dtype = VT_DTYPE_SAME;
    o->pad = VT_PAD_CONSTANT;
    o->clip_lo = -__builtin_inf();
    o->clip_hi = __builtin_inf();
    o->scale = 1;
    o->offset = 0;
    o->threads = 1;
    o->verify = 1;
}

/* Step 1 of vt_read: the arguments, the output dtype, and the output strides
 * in bytes (every offset the box reaches overflow-checked). */
static int check_read(read_ctx *r, const vt_array *a, const int64_t *start, const uint64_t *size,
                      const vt_read_opts *opts)
{
    const vt_store *st = a->store;
    vt_dtype stored = (vt_dtype)a->ent.dtype;
    vt_dtype wanted = opts->dtype == VT_DTYPE_SAME ? stored : opts->dtype;
    if (!vt__dtype_valid(wanted))
        return vt__fail_at(st, VT_EINVAL, st->path, "vt_read: invalid output dtype %d", (int)opts->dtype);
    if (opts->pad < VT_PAD_CONSTANT || opts->pad > VT_PAD_REFLECT)
        return vt__fail_at(st, VT_EINVAL, st->path, "vt_read: invalid pad mode %d", (int)opts->pad);
    if (opts->threads < 0 || opts->threads > 256)
        return vt__fail_at(st, VT_EINVAL, st->path, "vt_read: threads %d out of range 0..256", opts->threads);
    r->a = a;
    r->nd = a->ent.ndim;
    r->verify = opts->verify;
    cast_init(&r->cast, stored, wanted, opts);
    int nd = r->nd;
    uint64_t total = 1;
    for (int d = 0; d < nd; d++) {
        int64_t end;
        if (size[d] == 0 || size[d] > (uint64_t)INT64_MAX ||
            __builtin_add_overflow(start[d], (int64_t)size[d], &end) || !vt__mul_ok(total, size[d], &total))
            return vt__fail_at(st, VT_ERANGE, st->path,
                               "array '%s': box [%lld, +%llu) on axis %d is empty or overflows",
                               a->ent.name, (long long)start[d], (unsigned long long)size[d], d);
    }
    uint64_t bytes;
    if (!vt__mul_ok(total, r->cast.dst_size, &bytes) || bytes > (uint64_t)INT64_MAX)
        return vt__fail_at(st, VT_ERANGE, st->path, "array '%s': box too large", a->ent.name);
    int bad = vt__out_strides(nd, size, opts->strides, r->cast.dst_size, r->ostr);
    if (bad >= 0)
        return vt__fail_at(st, VT_ERANGE, st->path, "vt_read: stride %lld of axis %d overflows",
                           (long long)opts->strides[bad], bad);
    return 0;
}

/* Step 2: per axis, the runs of output indices and the array indices they
 * map to; the constant padding written at once; the range of tiles the
 * mapped runs reach (*mapped false when the box lies wholly in the padding). */
static int plan_read(read_ctx *r, const int64_t *start, const uint64_t *size, const vt_read_opts *opts,
                     bool *mapped)
{
    const vt_array *a = r->a;
    int nd = r->nd;
    for (int d = 0; d < nd; d++)
        if (axis_plan(&r->ax[d], start[d], size[d], a->ent.shape[d], opts->pad) != 0)
            return vt__fail_at(a->store, VT_ENOMEM, a->store->path, "out of memory");
    if (opts->pad == VT_PAD_CONSTANT) {
        unsigned char val[8];
        vt__store_f64(r->cast.dst, val, opts->pad_value);
        fill_pads(r, val);
    }
    *mapped = true;
    for (int d = 0; d < nd; d++)
        *mapped &= r->ax[d].slo < r->ax[d].shi;
    for (int d = 0; d < nd && *mapped; d++) {
        r->tlo[d] = (uint64_t)r->ax[d].slo / a->ent.tile[d];
        r->thi[d] = (uint64_t)(r->ax[d].shi - 1) / a->ent.tile[d];
    }
    return 0;
}

/* Step 3: decode and copy the tiles: the calling thread takes every
 * threads-th tile, threads - 1 decode threads the others. */
static int run_read(read_ctx *r, int threads)
{
    const vt_store *st = r->a->store;
    int nd = r->nd, rc = 0;
    uint64_t ntiles = 1;
    for (int d = 0; d < nd; d++)
        ntiles *= r->thi[d] - r->tlo[d] + 1;
    if (threads < 1)
        threads = 1;
    if ((uint64_t)threads > ntiles)
        threads = (int)ntiles;
    worker *ws = NULL;
    int started = 0;
    if (threads > 1 && (ws = vt__calloc((size_t)threads - 1, sizeof *ws)) != NULL) {
        for (int i = 0; i < threads - 1; i++) {
            worker *w = &ws[i];
            w->r = r;
            w->part = i + 1;
            w->parts = threads;
            for (int d = 0; d < nd; d++) { /* each thread its own pieces scratch */
                w->ax[d] = r->ax[d];
                w->ax[d].pieces = vt__malloc(r->ax[d].nruns * sizeof(piece));
                if (w->ax[d].pieces == NULL)
                    rc = VT_ENOMEM;
            }
            if (rc == 0 && pthread_create(&w->th, NULL, worker_main, w) != 0)
                rc = VT_EIO;
            if (rc) {
                for (int d = 0; d < nd; d++)
                    free(w->ax[d].pieces);
                break;
            }
            started++;
        }
    }
    int parts = started + 1;
    if (rc == 0)
        rc = read_tiles(r, 0, parts, r->ax);
    else
        rc = vt__fail_at(st, rc, st->path, "cannot start decode threads");
    for (int i = 0; i < started; i++) {
        pthread_join(ws[i].th, NULL);
        if (ws[i].rc && rc == 0)
            rc = vt__fail(st, ws[i].rc, "%s", ws[i].msg);
        for (int d = 0; d < nd; d++)
            free(ws[i].ax[d].pieces);
    }
    free(ws);
    return rc;
}

/* check, plan, run */
int vt_read(const vt_array *a, const int64_t *start, const uint64_t *size, const vt_read_opts *opts,
            void *out)
{
    if (a == NULL || start == NULL || size == NULL || out == NULL)
        return vt__fail(a ? a->store : NULL, VT_EINVAL, "vt_read: NULL argument");
    vt_read_opts def;
    if (opts == NULL) {
        vt_read_opts_init(&def);
        opts = &def;
    }
    read_ctx r;
    memset(&r, 0, sizeof r);
    r.out = out;
    bool mapped = false;
    int rc = check_read(&r, a, start, size, opts);
    if (rc == 0)
        rc = plan_read(&r, start, size, opts, &mapped);
    if (rc == 0 && mapped)
        rc = run_read(&r, opts->threads);
    for (int d = 0; d < r.nd; d++)
        axis_free(&r.ax[d]);
    return rc;
}
