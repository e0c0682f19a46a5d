/* vt_sample, vt_sample_many: an output grid sampled from arrays' last three
 * axes through one affine map (optionally deformed by a displacement field),
 * by nearest neighbour, trilinear interpolation or label vote, straight from
 * the tiles -- several arrays (an image and its labels) in one pass.
 *
 * The output is cut into blocks of up to 32^3 voxels, visited in C order
 * (32^3 rather than 16^3: fewer blocks to plan and tiles to look up, rotated
 * pairs ~5-7 % faster, ~1 MiB more decoded tiles at peak).
 *
 * Planning (per array; once per call, or per piece of a very large call):
 * for each block, the tiles its voxels' taps may reach. The source positions
 * of a block lie in the box spanned by its mapped corners (the block grown by
 * the range of the field over it); the tap indices of that box, sent through
 * the pad mode axis by axis, give candidate tiles, and a candidate the block's
 * parallelepiped does not meet (separating-axis test) is dropped. A block whose
 * candidates are many (strong minification) is scanned voxel by voxel
 * instead, which is exact. Every tile needed gets a slot that counts the
 * blocks still to use it.
 *
 * Running: a block decodes those of its tiles that are not decoded yet --
 * converted once, to float32 (linear; the transform applied), int16 or int32
 * (labels) or plain elements (nearest), into a buffer with an apron of one
 * voxel past the tile's far faces, copied from the neighbours as they are
 * decoded -- samples its rows and frees every tile it was the last block to
 * need. So each tile is decoded once per call, the 8 taps of a voxel are
 * always in one buffer, and the decoded tiles held at once are those of the
 * blocks in flight and of the blocks still to come: a slab of the source,
 * not its box.
 *
 * Per row, the source positions, their floors and fractions are computed
 * once for all arrays; per voxel and array, the taps are looked up in the
 * tile of the previous voxel first (the common case: 8 loads, no search),
 * then through a table of the planned tiles (a dense 3-d table over their
 * tile-coordinate box, or a hash when that box is too large). */
#include "codec.h"
#include "half.h"
#include "interp.h"
#include "sample_vec.h"
#include "store.h"

#include <math.h>
#include <pthread.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLKZ 32 /* block edges in output voxels along z and y */
#define BLKY 32
#define BLK 32  /* block edge along x: a row sampled at once; its voxels are bits of a uint32 */
_Static_assert(BLK <= 32, "a row's voxels are the bits of a uint32_t mask");
#define CAND_MAX 512                      /* candidates above which a block is scanned */
#define DENSE_MAX (UINT64_C(1) << 22)     /* largest dense tile table, entries */
#define PIECE_BYTES (UINT64_C(256) << 20) /* decoded tiles a piece may plan */
#define PIECE_PAIRS (UINT64_C(1) << 24)   /* (block, tile) pairs a piece may plan */
#define MAX_EXTENT (UINT64_C(1) << 24)
#define MAX_VOXELS (UINT64_C(1) << 31)
#define MAX_TARGETS 16
#define COORD_MAX 1125899906842624.0      /* 2^50: furthest source coordinate */
#define FIELD_MAX 65536u
#define CACHE_BYTES ((size_t)64 << 20)    /* arena a thread keeps mapped between calls */

enum { S_EMPTY, S_BUSY, S_READY, S_FAILED };

/* A planned tile. Decoded, it holds its voxels plus an apron of one voxel
 * past its far faces (where the array goes on), copied from the neighbours:
 * every voxel whose floor index lies in [lo, chi) finds its 8 taps here. */
typedef struct slot {
    int64_t lo[3], hi[3]; /* its voxels on the three spatial axes: [lo, hi) */
    int64_t chi[3];       /* hi where there is an apron, else hi - 1 */
    int64_t st0, st1;     /* element strides of data along z and y (x: 1): the same for every tile */
    const void *data;     /* the decoded values, apron included (NULL when not decoded) */
    int32_t chunk;        /* the arena chunk behind data, or -1 */
    unsigned filled;      /* apron parts copied (bit 4 dz + 2 dy + dx), or not existing */
    uint64_t key;         /* tile number in the spatial tile grid (z, y, x) */
    uint32_t uses;        /* blocks still to use it (current leading index) */
    uint32_t uses0;       /* blocks that use it */
    uint64_t mark;        /* planning: 1 + the last block that listed it */
    int state;
} slot;

/* Tile intervals along one axis, [a, b] inclusive. */
typedef struct ivl {
    int64_t a, b;
} ivl;

typedef struct plan {
    uint32_t *first;        /* nblocks + 1 offsets into list */
    uint32_t *list;         /* slot numbers, block after block */
    size_t nlist, caplist;
    slot *slots;
    uint32_t nslots, capslots;
    uint64_t *hkey;         /* hash: spatial tile number + 1 (0 = empty) */
    uint32_t *hval;
    size_t hcap;
    int dense;              /* lookups through table */
    int64_t d0[3], dn[3];   /* the table's tile-coordinate box */
    int32_t *table;
    int32_t *base;          /* per slot: element index of its decoded tile in the arena, -1 if none */
} plan;

typedef struct sampler sampler;

/* One array being sampled. */
typedef struct target {
    sampler *c;
    const vt_array *a;
    const vt_store *st;
    int nd;
    vt_interp interp;
    vt_pad pad;
    int64_t n[3];           /* spatial shape */
    int64_t tsz[3];         /* spatial tile shape */
    int tshift[3];          /* log2 of tsz, or -1 */
    int64_t tgrid[3];       /* spatial tile grid */
    uint64_t lead_tiles;    /* tiles of one leading tile index: tgrid product */
    uint64_t nlead;         /* leading indices (channels) */
    vt_dtype sd, dd;
    size_t src_size, out_size, dec_size;
    int xf;
    double clip_lo, clip_hi, scale, offset;
    float pad_f;            /* linear: an outside tap */
    int32_t pad_i;          /* label vote: an outside tap */
    unsigned char pad_out[8]; /* nearest: an outside voxel, as output element */
    unsigned char *out;
    int64_t ostr[VT_MAX_DIMS]; /* bytes */
    int verify;
    size_t buf_bytes;       /* one decoded tile with its apron: (tz+1)(ty+1)(tx+1) elements */
    plan p;                 /* the piece being run */
    int leader;             /* index of the array whose tile lookups this one shares (itself if none):
                               same spatial shape, tiles and pad mode, taps at floor and floor + 1, and
                               so the same plan, slot for slot */
    int active;             /* has the current leading index */
    uint64_t lead_base;     /* first tile number of the current leading index */
    uint64_t lead_in[VT_MAX_DIMS]; /* the current leading index inside its tile */
    unsigned char *obase;   /* output of the current leading index */
    uint64_t needed, decoded;
    vt_sample_stats *stats;
    const double *transforms; /* per leading index (clip_lo, clip_hi, scale, offset), or NULL */
} target;

struct sampler {
    target *t;
    size_t nt;
    double m[12];
    uint64_t size[3];
    const float *field;
    uint64_t fshape[3];
    double fscale[3];       /* output index -> field grid coordinate */
    int threads;
    uint64_t layer0, layer1, nblocks; /* the piece: block layers along output z */
    /* shared while running */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t next;
    int rc;
    char msg[1024];
    unsigned char *arena;   /* decoded tiles: chunks of chunk_bytes, reserved, touched as used */
    size_t arena_bytes, chunk_bytes;
    uint32_t nchunks;       /* chunks the arena holds */
    uint32_t top;           /* chunks ever used this call */
    uint32_t *free_chunks;  /* chunks given back, reused first */
    uint32_t nfree;
    uint64_t held, peak;    /* decoded-tile bytes */
    int vec;                /* the piece runs through the AVX2 kernel where it can (vg) */
    int vec_used;           /* some piece of the call did (stats) */
    vt_vec_group vg;        /* its template (row buffers set per thread) */
};

/* ---- small helpers ------------------------------------------------------ */

static inline int64_t ifloor(double x)
{
    int64_t i = (int64_t)x;
    return x < (double)i ? i - 1 : i;
}

/* Round half to even (|x| < 2^52). */
static inline int64_t iround(double x)
{
    int64_t f = ifloor(x);
    double d = x - (double)f;
    if (d > 0.5 || (d == 0.5 && (f & 1)))
        return f + 1;
    return f;
}

/* floor(x) and x - floor(x) (|x| < 2^52; x - trunc(x) is exact). */
static inline int64_t floor_frac(double x, double *f)
{
    int64_t i = (int64_t)x;
    double d = x - (double)i;
    if (d < 0) {
        i--;
        d += 1;
    }
    *f = d;
    return i;
}

static inline int64_t tile_of(const target *t, int d, int64_t i)
{
    return t->tshift[d] >= 0 ? i >> t->tshift[d] : i / t->tsz[d];
}

/* Record the first failure (under the lock). */
static void set_error(sampler *c, int rc)
{
    if (c->rc == 0) {
        c->rc = rc;
        snprintf(c->msg, sizeof c->msg, "%s", vt__errmsg(NULL));
    }
}

/* ---- positions ---------------------------------------------------------- */

/* Source positions of the output row (k, j, i0 .. i0+n-1): the one place
 * positions are computed, so planning and sampling see the same numbers. With
 * a field, its trilinear interpolation is done in z and y once for the row,
 * at every grid column the row spans, then in x per voxel. */
static void row_positions(const sampler *c, int64_t k, int64_t j, int64_t i0, int n, double *pz, double *py,
                          double *px)
{
    const double *m = c->m;
    if (c->field == NULL) {
        double bz = m[0] * (double)k + m[1] * (double)j + m[3];
        double by = m[4] * (double)k + m[5] * (double)j + m[7];
        double bx = m[8] * (double)k + m[9] * (double)j + m[11];
        for (int q = 0; q < n; q++) {
            double i = (double)(i0 + q);
            pz[q] = bz + m[2] * i;
            py[q] = by + m[6] * i;
            px[q] = bx + m[10] * i;
        }
        return;
    }
    const uint64_t *fs = c->fshape;
    /* rows of the grid around (k, j) and their weights */
    int64_t f0[2], f1[2];
    double w[2];
    double u[2] = {(double)k * c->fscale[0], (double)j * c->fscale[1]};
    for (int a = 0; a < 2; a++) {
        int64_t f = ifloor(u[a]);
        f = f < 0 ? 0 : f > (int64_t)fs[a] - 1 ? (int64_t)fs[a] - 1 : f;
        f0[a] = f;
        f1[a] = f + 1 < (int64_t)fs[a] ? f + 1 : f;
        w[a] = u[a] - (double)f;
    }
    /* the grid columns the row spans, interpolated in z and y as they are first needed */
    uint64_t plane = fs[0] * fs[1] * fs[2];
    int64_t have = -1, have1 = -1; /* columns held in ca and cb */
    double ca[3] = {0, 0, 0}, cb[3] = {0, 0, 0};
    for (int q = 0; q < n; q++) {
        double ux = (double)(i0 + q) * c->fscale[2];
        int64_t x = ifloor(ux);
        x = x < 0 ? 0 : x > (int64_t)fs[2] - 1 ? (int64_t)fs[2] - 1 : x;
        int64_t x1 = x + 1 < (int64_t)fs[2] ? x + 1 : x;
        double t = ux - (double)x;
        if (have != x || have1 != x1) {
            for (int comp = 0; comp < 3; comp++) {
                const float *g = c->field + (uint64_t)comp * plane;
                double col[2];
                for (int e = 0; e < 2; e++) {
                    uint64_t cx = (uint64_t)(e ? x1 : x);
                    double v00 = g[((uint64_t)f0[0] * fs[1] + (uint64_t)f0[1]) * fs[2] + cx];
                    double v01 = g[((uint64_t)f0[0] * fs[1] + (uint64_t)f1[1]) * fs[2] + cx];
                    double v10 = g[((uint64_t)f1[0] * fs[1] + (uint64_t)f0[1]) * fs[2] + cx];
                    double v11 = g[((uint64_t)f1[0] * fs[1] + (uint64_t)f1[1]) * fs[2] + cx];
                    double a0 = v00 + w[1] * (v01 - v00), a1 = v10 + w[1] * (v11 - v10);
                    col[e] = a0 + w[0] * (a1 - a0);
                }
                ca[comp] = col[0];
                cb[comp] = col[1];
            }
            have = x;
            have1 = x1;
        }
        double d[3];
        for (int comp = 0; comp < 3; comp++)
            d[comp] = ca[comp] + t * (cb[comp] - ca[comp]);
        double z = (double)k + d[0], y = (double)j + d[1], xx = (double)(i0 + q) + d[2];
        pz[q] = m[0] * z + m[1] * y + m[2] * xx + m[3];
        py[q] = m[4] * z + m[5] * y + m[6] * xx + m[7];
        px[q] = m[8] * z + m[9] * y + m[10] * xx + m[11];
    }
}

/* The box of output positions (index plus displacement) of voxels
 * [o0, o1): with a field, each component grown by the range of the grid
 * points whose cells the block covers (trilinear values lie between them). */
static void out_box(const sampler *c, const int64_t *o0, const int64_t *o1, double *lo, double *hi)
{
    for (int d = 0; d < 3; d++) {
        lo[d] = (double)o0[d];
        hi[d] = (double)(o1[d] - 1);
    }
    if (c->field == NULL)
        return;
    const uint64_t *fs = c->fshape;
    int64_t g0[3], g1[3];
    for (int d = 0; d < 3; d++) {
        g0[d] = ifloor((double)o0[d] * c->fscale[d]);
        g1[d] = ifloor((double)(o1[d] - 1) * c->fscale[d]) + 1;
        g0[d] = g0[d] < 0 ? 0 : g0[d];
        g1[d] = g1[d] > (int64_t)fs[d] - 1 ? (int64_t)fs[d] - 1 : g1[d];
    }
    uint64_t plane = fs[0] * fs[1] * fs[2];
    for (int comp = 0; comp < 3; comp++) {
        const float *g = c->field + (uint64_t)comp * plane;
        double mn = INFINITY, mx = -INFINITY;
        for (int64_t z = g0[0]; z <= g1[0]; z++)
            for (int64_t y = g0[1]; y <= g1[1]; y++)
                for (int64_t x = g0[2]; x <= g1[2]; x++) {
                    double v = g[((uint64_t)z * fs[1] + (uint64_t)y) * fs[2] + (uint64_t)x];
                    mn = v < mn ? v : mn;
                    mx = v > mx ? v : mx;
                }
        lo[comp] += mn;
        hi[comp] += mx;
    }
}

/* Bounding box of the source positions of output voxels [o0, o1). */
static void box_bounds(const sampler *c, const int64_t *o0, const int64_t *o1, double *lo, double *hi)
{
    double ol[3], oh[3];
    out_box(c, o0, o1, ol, oh);
    for (int d = 0; d < 3; d++) {
        lo[d] = INFINITY;
        hi[d] = -INFINITY;
    }
    const double *m = c->m;
    for (int q = 0; q < 8; q++) {
        double o[3] = {q & 4 ? oh[0] : ol[0], q & 2 ? oh[1] : ol[1], q & 1 ? oh[2] : ol[2]};
        for (int d = 0; d < 3; d++) {
            double v = m[4 * d] * o[0] + m[4 * d + 1] * o[1] + m[4 * d + 2] * o[2] + m[4 * d + 3];
            if (v < lo[d])
                lo[d] = v;
            if (v > hi[d])
                hi[d] = v;
        }
    }
    for (int d = 0; d < 3; d++) { /* rounding in the per-voxel arithmetic is far below the margin */
        double g = 1e-6 * (1 + fabs(lo[d]) + fabs(hi[d]));
        lo[d] -= g;
        hi[d] += g;
    }
}

/* Output voxels of block @p b of the current piece. */
static void block_box(const sampler *c, uint64_t b, int64_t *o0, int64_t *o1)
{
    static const int64_t edge[3] = {BLKZ, BLKY, BLK};
    uint64_t nby = (c->size[1] + BLKY - 1) / BLKY, nbx = (c->size[2] + BLK - 1) / BLK;
    uint64_t bc[3] = {c->layer0 + b / (nby * nbx), b / nbx % nby, b % nbx};
    for (int d = 0; d < 3; d++) {
        o0[d] = (int64_t)bc[d] * edge[d];
        o1[d] = o0[d] + edge[d] < (int64_t)c->size[d] ? o0[d] + edge[d] : (int64_t)c->size[d];
    }
}

/* ---- planning ----------------------------------------------------------- */

static void plan_free(plan *p)
{
    free(p->first);
    free(p->list);
    free(p->slots);
    free(p->hkey);
    free(p->hval);
    free(p->table);
    free(p->base);
    memset(p, 0, sizeof *p);
}

static inline size_t hash64(uint64_t k, size_t cap)
{
    k ^= k >> 33;
    k *= UINT64_C(0xff51afd7ed558ccd);
    k ^= k >> 33;
    return (size_t)k & (cap - 1);
}

/* Slot number of spatial tile @p key, or -1. */
static inline int64_t hash_find(const plan *p, uint64_t key)
{
    if (p->hcap == 0)
        return -1;
    for (size_t h = hash64(key, p->hcap);; h = (h + 1) & (p->hcap - 1)) {
        if (p->hkey[h] == 0)
            return -1;
        if (p->hkey[h] == key + 1)
            return p->hval[h];
    }
}

static int hash_grow(plan *p)
{
    size_t cap = p->hcap ? p->hcap * 2 : 1024;
    uint64_t *k = vt__calloc(cap, sizeof *k);
    uint32_t *v = vt__malloc(cap * sizeof *v);
    if (k == NULL || v == NULL) {
        free(k);
        free(v);
        return VT_ENOMEM;
    }
    for (size_t i = 0; i < p->hcap; i++) {
        if (p->hkey[i] == 0)
            continue;
        size_t h = hash64(p->hkey[i] - 1, cap);
        while (k[h])
            h = (h + 1) & (cap - 1);
        k[h] = p->hkey[i];
        v[h] = p->hval[i];
    }
    free(p->hkey);
    free(p->hval);
    p->hkey = k;
    p->hval = v;
    p->hcap = cap;
    return 0;
}

/* The slot of spatial tile @p tc, created if new; -1 when out of memory. */
static int64_t slot_get(target *t, const int64_t *tc)
{
    plan *p = &t->p;
    uint64_t key = ((uint64_t)tc[0] * (uint64_t)t->tgrid[1] + (uint64_t)tc[1]) * (uint64_t)t->tgrid[2] + (uint64_t)tc[2];
    int64_t s = hash_find(p, key);
    if (s >= 0)
        return s;
    if ((p->nslots + 1) * 2 > p->hcap && hash_grow(p))
        return -1;
    if (p->nslots == p->capslots) {
        uint32_t cap = p->capslots ? p->capslots * 2 : 256;
        slot *ns = vt__realloc(p->slots, cap * sizeof *ns);
        if (ns == NULL)
            return -1;
        p->slots = ns;
        p->capslots = cap;
    }
    slot *sl = &p->slots[p->nslots];
    memset(sl, 0, sizeof *sl);
    sl->key = key;
    sl->chunk = -1;
    sl->st1 = t->tsz[2] + 1;
    sl->st0 = (t->tsz[1] + 1) * (t->tsz[2] + 1);
    for (int d = 0; d < 3; d++) {
        sl->lo[d] = tc[d] * t->tsz[d];
        sl->hi[d] = sl->lo[d] + t->tsz[d] < t->n[d] ? sl->lo[d] + t->tsz[d] : t->n[d];
        sl->chi[d] = sl->hi[d] < t->n[d] ? sl->hi[d] : sl->hi[d] - 1;
    }
    size_t h = hash64(key, p->hcap);
    while (p->hkey[h])
        h = (h + 1) & (p->hcap - 1);
    p->hkey[h] = key + 1;
    p->hval[h] = p->nslots;
    return p->nslots++;
}

/* Put slot @p s in block @p b's list (once). */
static int list_add(plan *p, uint64_t b, int64_t s)
{
    if (s < 0)
        return VT_ENOMEM;
    if (p->slots[s].mark == b + 1)
        return 0;
    p->slots[s].mark = b + 1;
    if (p->nlist >= UINT32_MAX - 1)
        return VT_ERANGE;
    if (p->nlist == p->caplist) {
        size_t cap = p->caplist ? p->caplist * 2 : 4096;
        uint32_t *nl = vt__realloc(p->list, cap * sizeof *nl);
        if (nl == NULL)
            return VT_ENOMEM;
        p->list = nl;
        p->caplist = cap;
    }
    p->list[p->nlist++] = (uint32_t)s;
    p->slots[s].uses0++;
    return 0;
}

/* Tap indices [a, b] of source positions [lo, hi] along one axis. */
static void tap_range(const target *t, double lo, double hi, int64_t *a, int64_t *b)
{
    if (t->interp == VT_INTERP_NEAREST) {
        *a = iround(lo);
        *b = iround(hi);
    } else {
        *a = ifloor(lo);
        *b = ifloor(hi) + 1;
    }
}

/* Tiles along axis @p d that tap indices [a, b] reach through the pad mode:
 * up to 4 disjoint intervals of tile coordinates. */
static int axis_tiles(const target *t, int d, int64_t a, int64_t b, ivl *out)
{
    int64_t n = t->n[d];
    ivl idx[4];
    int ni = 0;
    if (t->pad == VT_PAD_CONSTANT) {
        if (a < 0)
            a = 0;
        if (b > n - 1)
            b = n - 1;
        if (a <= b)
            idx[ni++] = (ivl){a, b};
    } else if (t->pad == VT_PAD_EDGE) {
        idx[ni++] = (ivl){a < 0 ? 0 : a > n - 1 ? n - 1 : a, b < 0 ? 0 : b > n - 1 ? n - 1 : b};
    } else if (n == 1 || b - a + 1 >= 2 * (n - 1)) {
        idx[ni++] = (ivl){0, n - 1};
    } else {
        /* reflect is monotone between the folds at multiples of n - 1 */
        int64_t s = a;
        while (s <= b && ni < 4) {
            int64_t f = n - 1, q = s / f - (s % f < 0);
            int64_t e = (q + 1) * f;
            if (e > b)
                e = b;
            int64_t x = vt__pad_index(s, n, VT_PAD_REFLECT), y = vt__pad_index(e, n, VT_PAD_REFLECT);
            idx[ni++] = (ivl){x < y ? x : y, x < y ? y : x};
            s = e + 1;
        }
    }
    /* to tile coordinates, sorted and merged */
    ivl tl[4];
    for (int i = 0; i < ni; i++)
        tl[i] = (ivl){tile_of(t, d, idx[i].a), tile_of(t, d, idx[i].b)};
    for (int i = 1; i < ni; i++)
        for (int j = i; j > 0 && tl[j].a < tl[j - 1].a; j--) {
            ivl x = tl[j];
            tl[j] = tl[j - 1];
            tl[j - 1] = x;
        }
    int no = 0;
    for (int i = 0; i < ni; i++) {
        if (no > 0 && tl[i].a <= out[no - 1].b + 1) {
            if (tl[i].b > out[no - 1].b)
                out[no - 1].b = tl[i].b;
        } else
            out[no++] = tl[i];
    }
    return no;
}

/* Can tile @p tc be reached from output voxels [o0, o1)? The separating-axis
 * test between the block's source parallelepiped (the matrix applied to the
 * box of its voxel centres) and the box of source positions whose taps fall
 * in the tile: the box's 3 axes, the parallelepiped's 3 face normals and the 9
 * products of their edges. Exact for the two convex shapes, so a tile is kept
 * only if a position of the block's hull reaches it. */
static bool tile_meets_block(const target *t, const int64_t *tc, const int64_t *o0, const int64_t *o1)
{
    const double *m = t->c->m;
    double bc[3], bh[3], pc[3], u[3][3];
    for (int d = 0; d < 3; d++) {
        int64_t s = tc[d] * t->tsz[d];
        int64_t e = s + t->tsz[d] < t->n[d] ? s + t->tsz[d] : t->n[d];
        double lo = t->interp == VT_INTERP_NEAREST ? (double)s - 0.5 : (double)s - 1;
        double hi = t->interp == VT_INTERP_NEAREST ? (double)e - 0.5 : (double)e;
        bc[d] = (lo + hi) / 2;
        bh[d] = (hi - lo) / 2;
    }
    double ol[3], ou[3], oc[3], oh[3];
    out_box(t->c, o0, o1, ol, ou);
    for (int i = 0; i < 3; i++) {
        oc[i] = (ol[i] + ou[i]) / 2;
        oh[i] = (ou[i] - ol[i]) / 2;
    }
    for (int d = 0; d < 3; d++) {
        pc[d] = m[4 * d] * oc[0] + m[4 * d + 1] * oc[1] + m[4 * d + 2] * oc[2] + m[4 * d + 3];
        for (int i = 0; i < 3; i++)
            u[i][d] = m[4 * d + i] * oh[i]; /* half-edge i of the parallelepiped */
    }
    double axes[15][3];
    int na = 0;
    for (int d = 0; d < 3; d++) {
        double e[3] = {0, 0, 0};
        e[d] = 1;
        memcpy(axes[na++], e, sizeof e);
    }
    for (int i = 0; i < 3; i++) { /* face normals: products of the matrix's columns */
        const double *a = &m[(i + 1) % 3], *b = &m[(i + 2) % 3];
        double n[3] = {a[4] * b[8] - a[8] * b[4], a[8] * b[0] - a[0] * b[8], a[0] * b[4] - a[4] * b[0]};
        memcpy(axes[na++], n, sizeof n);
    }
    for (int i = 0; i < 3; i++) /* a column times a unit axis */
        for (int d = 0; d < 3; d++) {
            double col[3] = {m[i], m[4 + i], m[8 + i]}, n[3];
            n[0] = d == 0 ? 0 : d == 1 ? -col[2] : col[1];
            n[1] = d == 1 ? 0 : d == 0 ? col[2] : -col[0];
            n[2] = d == 2 ? 0 : d == 0 ? -col[1] : col[0];
            memcpy(axes[na++], n, sizeof n);
        }
    for (int q = 0; q < na; q++) {
        const double *a = axes[q];
        double len = fabs(a[0]) + fabs(a[1]) + fabs(a[2]);
        if (len == 0)
            continue;
        double dist = fabs((pc[0] - bc[0]) * a[0] + (pc[1] - bc[1]) * a[1] + (pc[2] - bc[2]) * a[2]);
        double rb = fabs(a[0]) * bh[0] + fabs(a[1]) * bh[1] + fabs(a[2]) * bh[2];
        double rp = 0;
        for (int i = 0; i < 3; i++)
            rp += fabs(u[i][0] * a[0] + u[i][1] * a[1] + u[i][2] * a[2]);
        /* a margin far above rounding, far below a voxel */
        if (dist > rb + rp + 1e-6 * len * (1 + fabs(pc[0]) + fabs(pc[1]) + fabs(pc[2]) + rb + rp))
            return false;
    }
    return true;
}

/* Tap indices of one position along axis d through the pad mode: up to 2
 * array indices (-1: the pad value). */
static int taps_of(const target *t, int d, double p, int64_t *idx)
{
    if (t->interp == VT_INTERP_NEAREST) {
        idx[0] = vt__pad_index(iround(p), t->n[d], t->pad);
        return 1;
    }
    int64_t f = ifloor(p);
    idx[0] = vt__pad_index(f, t->n[d], t->pad);
    idx[1] = vt__pad_index(f + 1, t->n[d], t->pad);
    return 2;
}

/* The exact tiles of block @p b, [o0, o1): every voxel's taps. */
static int block_scan(target *t, uint64_t b, const int64_t *o0, const int64_t *o1)
{
    double pz[BLK], py[BLK], px[BLK];
    for (int64_t k = o0[0]; k < o1[0]; k++)
        for (int64_t j = o0[1]; j < o1[1]; j++) {
            int n = (int)(o1[2] - o0[2]);
            row_positions(t->c, k, j, o0[2], n, pz, py, px);
            for (int q = 0; q < n; q++) {
                int64_t iz[2], iy[2], ix[2];
                int nz = taps_of(t, 0, pz[q], iz), ny = taps_of(t, 1, py[q], iy), nx = taps_of(t, 2, px[q], ix);
                for (int a = 0; a < nz; a++)
                    for (int u = 0; u < ny; u++)
                        for (int e = 0; e < nx; e++) {
                            if (iz[a] < 0 || iy[u] < 0 || ix[e] < 0)
                                continue;
                            int64_t tc[3] = {tile_of(t, 0, iz[a]), tile_of(t, 1, iy[u]), tile_of(t, 2, ix[e])};
                            int rc = list_add(&t->p, b, slot_get(t, tc));
                            if (rc)
                                return rc;
                        }
            }
        }
    return 0;
}

/* The tiles of block @p b appended to the target's plan. */
static int plan_block(target *t, uint64_t b)
{
    const sampler *c = t->c;
    int64_t o0[3], o1[3];
    block_box(c, b, o0, o1);
    double lo[3], hi[3];
    box_bounds(c, o0, o1, lo, hi);
    ivl tl[3][4];
    int nt[3];
    uint64_t count = 1;
    bool inside = true;
    for (int d = 0; d < 3; d++) {
        int64_t a, e;
        tap_range(t, lo[d], hi[d], &a, &e);
        inside &= a >= 0 && e <= t->n[d] - 1;
        nt[d] = axis_tiles(t, d, a, e, tl[d]);
        uint64_t len = 0;
        for (int i = 0; i < nt[d]; i++)
            len += (uint64_t)(tl[d][i].b - tl[d][i].a + 1);
        count = len == 0 ? 0 : count > UINT64_MAX / len ? UINT64_MAX : count * len;
    }
    if (count == 0)
        return 0;
    if (count > CAND_MAX)
        return block_scan(t, b, o0, o1);
    /* the test holds where the taps need no pad mapping: inside, or padding with a constant */
    bool test = inside || t->pad == VT_PAD_CONSTANT;
    for (int i0 = 0; i0 < nt[0]; i0++)
        for (int64_t tz = tl[0][i0].a; tz <= tl[0][i0].b; tz++)
            for (int i1 = 0; i1 < nt[1]; i1++)
                for (int64_t ty = tl[1][i1].a; ty <= tl[1][i1].b; ty++)
                    for (int i2 = 0; i2 < nt[2]; i2++)
                        for (int64_t tx = tl[2][i2].a; tx <= tl[2][i2].b; tx++) {
                            int64_t tc[3] = {tz, ty, tx};
                            if (test && !tile_meets_block(t, tc, o0, o1))
                                continue;
                            int rc = list_add(&t->p, b, slot_get(t, tc));
                            if (rc)
                                return rc;
                        }
    return 0;
}

/* Plan the target's tiles for the blocks of the current piece. VT_ERANGE:
 * too large (the caller halves the piece while it can). */
static int plan_piece(target *t)
{
    const sampler *c = t->c;
    plan *p = &t->p;
    memset(p, 0, sizeof *p);
    bool halvable = c->layer1 - c->layer0 > 1;
    p->first = vt__malloc((c->nblocks + 1) * sizeof *p->first);
    if (p->first == NULL)
        return VT_ENOMEM;
    for (uint64_t b = 0; b < c->nblocks; b++) {
        p->first[b] = (uint32_t)p->nlist;
        int rc = plan_block(t, b);
        if (rc)
            return rc;
        if (p->nlist > PIECE_PAIRS && halvable)
            return VT_ERANGE;
    }
    p->first[c->nblocks] = (uint32_t)p->nlist;
    uint64_t bytes;
    if (!vt__mul_ok(p->nslots, t->buf_bytes, &bytes) || (bytes > PIECE_BYTES && halvable))
        return VT_ERANGE;
    p->base = vt__malloc(((size_t)p->nslots + 1) * sizeof *p->base);
    if (p->base == NULL)
        return VT_ENOMEM;
    memset(p->base, 0xff, ((size_t)p->nslots + 1) * sizeof *p->base);
    /* a dense lookup table over the planned tiles' coordinate box, if small */
    int64_t lo[3] = {INT64_MAX, INT64_MAX, INT64_MAX}, hi[3] = {INT64_MIN, INT64_MIN, INT64_MIN};
    for (uint32_t s = 0; s < p->nslots; s++)
        for (int d = 0; d < 3; d++) {
            int64_t tc = p->slots[s].lo[d] / t->tsz[d];
            if (tc < lo[d])
                lo[d] = tc;
            if (tc > hi[d])
                hi[d] = tc;
        }
    uint64_t cells = p->nslots ? 1 : 0;
    for (int d = 0; d < 3 && cells; d++) {
        uint64_t e = (uint64_t)(hi[d] - lo[d] + 1);
        cells = cells > DENSE_MAX / e ? DENSE_MAX + 1 : cells * e;
    }
    if (cells > 0 && cells <= DENSE_MAX) {
        p->table = vt__malloc(cells * sizeof *p->table);
        if (p->table == NULL)
            return VT_ENOMEM;
        memset(p->table, 0xff, cells * sizeof *p->table);
        for (int d = 0; d < 3; d++) {
            p->d0[d] = lo[d];
            p->dn[d] = hi[d] - lo[d] + 1;
        }
        for (uint32_t s = 0; s < p->nslots; s++) {
            const slot *sl = &p->slots[s];
            int64_t i = ((sl->lo[0] / t->tsz[0] - lo[0]) * p->dn[1] + (sl->lo[1] / t->tsz[1] - lo[1])) * p->dn[2] +
                        (sl->lo[2] / t->tsz[2] - lo[2]);
            p->table[i] = (int32_t)s;
        }
        p->dense = 1;
    }
    return 0;
}

/* The decoded slot holding voxel (z, y, x) of the array, or NULL (a tile not
 * planned, or not decoded: a planning bug, reported by the caller, never read). */
static inline const slot *find(const target *t, int64_t z, int64_t y, int64_t x)
{
    const plan *p = &t->p;
    int64_t tz = tile_of(t, 0, z), ty = tile_of(t, 1, y), tx = tile_of(t, 2, x);
    int64_t s;
    if (p->dense) {
        tz -= p->d0[0];
        ty -= p->d0[1];
        tx -= p->d0[2];
        if ((uint64_t)tz >= (uint64_t)p->dn[0] || (uint64_t)ty >= (uint64_t)p->dn[1] ||
            (uint64_t)tx >= (uint64_t)p->dn[2])
            return NULL;
        s = p->table[(tz * p->dn[1] + ty) * p->dn[2] + tx];
    } else
        s = hash_find(p, ((uint64_t)tz * (uint64_t)t->tgrid[1] + (uint64_t)ty) * (uint64_t)t->tgrid[2] + (uint64_t)tx);
    return s < 0 || p->slots[s].data == NULL ? NULL : &p->slots[s];
}

/* ---- the arena of decoded tiles ---------------------------------------- */

/* Decoded tiles live in chunks of one anonymous mapping, reserved for the
 * piece's every planned tile and touched only as chunks are used (a chunk
 * given back is reused first, so the pages touched stay those of the most
 * tiles held at once). One mapping makes every tap an offset from one base.
 * Each thread keeps its last mapping (up to CACHE_BYTES) for its next call,
 * so that a data loader sampling patch after patch reuses warm pages instead
 * of faulting in fresh ones every call. */
typedef struct cache {
    void *base;
    size_t bytes;
} cache;

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_free(void *arg)
{
    cache *k = arg;
    if (k->base)
        munmap(k->base, k->bytes);
    free(k);
}

static void cache_make_key(void) { (void)pthread_key_create(&cache_key, cache_free); }

static cache *thread_cache(void)
{
    pthread_once(&cache_once, cache_make_key);
    cache *k = pthread_getspecific(cache_key);
    if (k == NULL && (k = vt__calloc(1, sizeof *k)) != NULL && pthread_setspecific(cache_key, k) != 0) {
        free(k);
        k = NULL;
    }
    return k;
}

/* An arena of at least @p chunks chunks for the piece about to run. */
static int arena_reserve(sampler *c, uint32_t chunks)
{
    c->top = 0;
    c->nfree = 0;
    if (chunks <= c->nchunks)
        return 0;
    size_t bytes = (size_t)chunks * c->chunk_bytes;
    bytes = (bytes + 4095) & ~(size_t)4095;
    cache *k = c->arena == NULL ? thread_cache() : NULL;
    if (k && k->base && k->bytes >= bytes) { /* the thread's mapping from an earlier call */
        c->arena = k->base;
        c->arena_bytes = k->bytes;
        k->base = NULL;
    } else {
        if (c->arena)
            munmap(c->arena, c->arena_bytes);
        c->arena = NULL;
        void *m = vt__mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED)
            return VT_ENOMEM;
        c->arena = m;
        c->arena_bytes = bytes;
    }
    uint32_t *f = vt__realloc(c->free_chunks, chunks * sizeof *f);
    if (f == NULL)
        return VT_ENOMEM;
    c->free_chunks = f;
    c->nchunks = (uint32_t)(c->arena_bytes / c->chunk_bytes);
    return 0;
}

/* The arena back to the calling thread's cache (if small enough), or unmapped. */
static void arena_release(sampler *c)
{
    free(c->free_chunks);
    if (c->arena == NULL)
        return;
    cache *k = thread_cache();
    if (k && c->arena_bytes <= CACHE_BYTES && (k->base == NULL || k->bytes < c->arena_bytes)) {
        if (k->base)
            munmap(k->base, k->bytes);
        k->base = c->arena;
        k->bytes = c->arena_bytes;
    } else
        munmap(c->arena, c->arena_bytes);
}

/* A chunk (under the lock); -1 when the arena is full (a planning bug). */
static int32_t chunk_take(sampler *c)
{
    uint32_t i;
    if (c->nfree)
        i = c->free_chunks[--c->nfree];
    else if (c->top < c->nchunks)
        i = c->top++;
    else
        return -1;
    c->held += c->chunk_bytes;
    if (c->held > c->peak)
        c->peak = c->held;
    return (int32_t)i;
}

static void chunk_give(sampler *c, int32_t i)
{
    if (i < 0)
        return;
    c->held -= c->chunk_bytes;
    c->free_chunks[c->nfree++] = (uint32_t)i;
}

/* ---- decoding tiles ----------------------------------------------------- */

static inline double xform(const target *t, double x)
{
    return vt__xform(x, t->clip_lo, t->clip_hi, t->scale, t->offset);
}

/* @p n elements of the source dtype to float32 (the transform applied). */
static void to_float(const target *t, const unsigned char *src, size_t n, float *dst)
{
    if (!t->xf) { /* (float32 without transform is a plain copy: convert_is_copy) */
        switch (t->sd) {
        case VT_F16: vt__f16_to_f32(src, dst, n); return;
        case VT_U8:
        case VT_I8:
        case VT_U16:
        case VT_I16: vt__small_ints_to_f32(t->sd, src, n, dst); return;
        default: break;
        }
    }
    for (size_t k = 0; k < n; k++) {
        double x = vt__load_f64(t->sd, src + k * t->src_size);
        dst[k] = (float)(t->xf ? xform(t, x) : x);
    }
}

/* Whether a decoded element of @p t is the stored one, byte for byte:
 * float32 without transform, nearest, labels whose type is the decoded one
 * (U16 here holds no value over 32767, U32 none over INT32_MAX). */
static bool convert_is_copy(const target *t)
{
    if (t->interp == VT_INTERP_LINEAR)
        return !t->xf && t->sd == VT_F32;
    if (t->interp == VT_INTERP_NEAREST)
        return true;
    if (t->dec_size == 2)
        return t->sd == VT_I16 || t->sd == VT_U16;
    return t->sd == VT_I32 || t->sd == VT_U32;
}

static void convert_elements(const target *t, const unsigned char *src, size_t n, void *dst)
{
    if (convert_is_copy(t))
        memcpy(dst, src, n * t->src_size);
    else if (t->interp == VT_INTERP_LINEAR)
        to_float(t, src, n, dst);
    else if (t->dec_size == 2 && t->sd == VT_U8)
        for (size_t k = 0; k < n; k++)
            ((int16_t *)dst)[k] = src[k];
    else if (t->dec_size == 2)
        for (size_t k = 0; k < n; k++)
            ((int16_t *)dst)[k] = (int16_t)vt__load_int(t->sd, src + k * t->src_size);
    else
        for (size_t k = 0; k < n; k++)
            ((int32_t *)dst)[k] = (int32_t)vt__load_int(t->sd, src + k * t->src_size);
}

/* The apron parts that do not exist: part (dz, dy, dx) needs an apron on
 * every axis it names (part 0 is the tile itself). */
static unsigned apron_none(const slot *sl)
{
    unsigned none = 1;
    for (unsigned k = 1; k < 8; k++)
        if (((k & 4) && sl->chi[0] < sl->hi[0]) || ((k & 2) && sl->chi[1] < sl->hi[1]) ||
            ((k & 1) && sl->chi[2] < sl->hi[2]))
            none |= 1u << k;
    return none;
}

/* Copy a row of @p n bytes of decoded tiles: the usual ones (a tile row of
 * 16 float32 or int16, one element) with a size known here, so inlined. */
static inline void put_row(unsigned char *d, const unsigned char *f, size_t n)
{
    switch (n) {
    case 64: memcpy(d, f, 64); break;
    case 32: memcpy(d, f, 32); break;
    case 4: memcpy(d, f, 4); break;
    case 2: memcpy(d, f, 2); break;
    default: memcpy(d, f, n);
    }
}

/* Decode the slot's tile for the current leading index into a buffer with
 * room for the apron. Called without the lock; the slot is BUSY, so no one
 * else touches it. */
static int slot_decode(target *t, slot *sl, vt_tscratch *s)
{
    sampler *c = t->c;
    const vt_array *a = t->a;
    vt_tile_view v;
    int rc = vt__tile_load(a, t->lead_base + sl->key, t->verify, s, &v);
    if (rc)
        return rc;
    int64_t e[3] = {sl->hi[0] - sl->lo[0], sl->hi[1] - sl->lo[1], sl->hi[2] - sl->lo[2]};
    size_t nsp = (size_t)(e[0] * e[1] * e[2]), es = t->dec_size;
    pthread_mutex_lock(&c->mu);
    int32_t chunk = chunk_take(c);
    pthread_mutex_unlock(&c->mu);
    if (chunk < 0)
        return vt__fail_at(a->store, VT_EINVAL, a->store->path, "vt_sample: internal error: no arena chunk left");
    unsigned char *b = c->arena + (size_t)chunk * c->chunk_bytes;
    if (v.layout == VT_LAYOUT_CONST) {
        unsigned char one[8];
        convert_elements(t, v.data, 1, one);
        for (int64_t x = 0; x < e[2]; x++) /* one row, then copies of it */
            memcpy(b + (size_t)x * es, one, es);
        for (int64_t z = 0; z < e[0]; z++)
            for (int64_t y = z == 0; y < e[1]; y++)
                put_row(b + (size_t)(z * sl->st0 + y * sl->st1) * es, b, (size_t)e[2] * es);
    } else {
        /* the leading index's part of a tile that spans several (C order over the tile's extents) */
        uint64_t lin = 0;
        for (int d = 0; d < t->nd - 3; d++)
            lin = lin * v.ext[d] + t->lead_in[d];
        size_t first = (size_t)lin * nsp;
        bool planes = v.layout == VT_LAYOUT_PLANES;
        if (planes && convert_is_copy(t)) { /* each row unshuffled straight into its place (no row buffer) */
            for (int64_t z = 0; z < e[0]; z++)
                for (int64_t y = 0; y < e[1]; y++)
                    vt__unshuffle_range(v.data, (size_t)v.nelem, t->src_size, first + (size_t)((z * e[1] + y) * e[2]),
                                        (size_t)e[2], b + (size_t)(z * sl->st0 + y * sl->st1) * es);
        } else {
            const unsigned char *src = v.data + first * t->src_size;
            if (planes) {
                if (vt__grow(&s->row, &s->row_cap, nsp * t->src_size)) {
                    pthread_mutex_lock(&c->mu);
                    chunk_give(c, chunk);
                    pthread_mutex_unlock(&c->mu);
                    return vt__fail_at(a->store, VT_ENOMEM, a->store->path, "vt_sample: out of memory");
                }
                vt__unshuffle_range(v.data, (size_t)v.nelem, t->src_size, first, nsp, s->row);
                src = s->row;
            }
            for (int64_t z = 0; z < e[0]; z++)
                for (int64_t y = 0; y < e[1]; y++)
                    convert_elements(t, src + (size_t)((z * e[1] + y) * e[2]) * t->src_size, (size_t)e[2],
                                     b + (size_t)(z * sl->st0 + y * sl->st1) * es);
        }
    }
    sl->chunk = chunk;
    sl->data = b;
    sl->filled = apron_none(sl);
    t->p.base[sl - t->p.slots] = (int32_t)((size_t)chunk * (c->chunk_bytes / es));
    return 0;
}

/* Copy apron part @p k (bit 4: the z face, 2: y, 1: x) of @p sl from its
 * neighbour @p nb (under the lock): rows of the part, strided in both. */
static void apron_fill(const target *t, slot *sl, const slot *nb, unsigned k)
{
    size_t es = t->dec_size;
    int64_t z0 = k & 4 ? sl->hi[0] : sl->lo[0], z1 = k & 4 ? sl->hi[0] + 1 : sl->hi[0];
    int64_t y0 = k & 2 ? sl->hi[1] : sl->lo[1], y1 = k & 2 ? sl->hi[1] + 1 : sl->hi[1];
    int64_t x0 = k & 1 ? sl->hi[2] : sl->lo[2], x1 = k & 1 ? sl->hi[2] + 1 : sl->hi[2];
    unsigned char *d = (unsigned char *)(uintptr_t)sl->data +
                       (size_t)((z0 - sl->lo[0]) * sl->st0 + (y0 - sl->lo[1]) * sl->st1 + (x0 - sl->lo[2])) * es;
    const unsigned char *f =
        (const unsigned char *)nb->data + (size_t)((z0 - nb->lo[0]) * nb->st0 + (y0 - nb->lo[1]) * nb->st1 + (x0 - nb->lo[2])) * es;
    size_t row = (size_t)(x1 - x0) * es, ny = (size_t)(y1 - y0);
    size_t d0 = (size_t)sl->st0 * es, d1 = (size_t)sl->st1 * es, f0 = (size_t)nb->st0 * es, f1 = (size_t)nb->st1 * es;
    for (int64_t z = z0; z < z1; z++, d += d0, f += f0)
        for (size_t y = 0; y < ny; y++)
            put_row(d + y * d1, f + y * f1, row);
}

/* ---- sampling ----------------------------------------------------------- */

/* The floors and fractions of a row's source positions, shared by every array. */
typedef struct coords {
    int n;
    double pz[BLK], py[BLK], px[BLK];
    int64_t iz[BLK], iy[BLK], ix[BLK];
    double fz[BLK], fy[BLK], fx[BLK];
} coords;

/* A thread's lookups for one array. */
typedef struct tstate {
    const slot *cur; /* the tile of the previous voxel */
    int missing;     /* a tap found no planned tile (a planning bug) */
} tstate;

/* The current tile's geometry in locals (the compiler must otherwise reload
 * it after every store: the library is built with -fno-strict-aliasing):
 * floor indices [lo, lo + e) are served, at element offset
 * (iz - lo0) st0 + (iy - lo1) st1 + (ix - lo2). */
typedef struct geom {
    const void *data;
    int64_t lo0, lo1, lo2;
    uint64_t e0, e1, e2;
    int64_t st0, st1;
} geom;

static inline void geom_of(geom *g, const slot *s)
{
    if (s == NULL) {
        memset(g, 0, sizeof *g); /* serves nothing */
        return;
    }
    g->data = s->data;
    g->lo0 = s->lo[0];
    g->lo1 = s->lo[1];
    g->lo2 = s->lo[2];
    g->e0 = (uint64_t)(s->chi[0] - s->lo[0]);
    g->e1 = (uint64_t)(s->chi[1] - s->lo[1]);
    g->e2 = (uint64_t)(s->chi[2] - s->lo[2]);
    g->st0 = s->st0;
    g->st1 = s->st1;
}

/* Offset of floor index (iz, iy, ix) in the current tile, after making the
 * tile that serves it current; -1 when none does (near the border, where the
 * taps go through the pad mode one by one). */
static inline int64_t locate(const target *t, tstate *ts, geom *g, int64_t iz, int64_t iy, int64_t ix)
{
    uint64_t dz = (uint64_t)(iz - g->lo0), dy = (uint64_t)(iy - g->lo1), dx = (uint64_t)(ix - g->lo2);
    if (dz < g->e0 && dy < g->e1 && dx < g->e2)
        return (int64_t)dz * g->st0 + (int64_t)dy * g->st1 + (int64_t)dx;
    if (iz < 0 || iz >= t->n[0] - 1 || iy < 0 || iy >= t->n[1] - 1 || ix < 0 || ix >= t->n[2] - 1)
        return -1;
    const slot *s = find(t, iz, iy, ix);
    if (s == NULL)
        ts->missing = 1;
    ts->cur = s;
    geom_of(g, s);
    if (s == NULL)
        return -1;
    return (iz - g->lo0) * g->st0 + (iy - g->lo1) * g->st1 + (ix - g->lo2);
}

/* Where the taps of a row's voxels are: slot number and element offset of
 * floor index (iz, iy, ix) in its buffer, or slot -1 near the border. One
 * lookup serves every array of a group (they share plans slot for slot). */
typedef struct taps {
    int32_t slot[BLK];
    int64_t off[BLK];
} taps;

static void locate_row(const target *t, tstate *ts, const coords *k, taps *tp, int q0, int q1)
{
    geom g;
    geom_of(&g, ts->cur);
    const slot *base = t->p.slots;
    for (int q = q0; q < q1; q++) {
        int64_t o = locate(t, ts, &g, k->iz[q], k->iy[q], k->ix[q]);
        tp->off[q] = o;
        tp->slot[q] = o < 0 ? -1 : (int32_t)(ts->cur - base);
    }
}

/* Every tap of floor index (iz, iy, ix) outside the array, under constant padding. */
static inline bool all_outside(const target *t, int64_t iz, int64_t iy, int64_t ix)
{
    return t->pad == VT_PAD_CONSTANT &&
           (iz < -1 || iz >= t->n[0] || iy < -1 || iy >= t->n[1] || ix < -1 || ix >= t->n[2]);
}

/* The 8 taps around (iz, iy, ix) near the border, each through the pad
 * mode: v[4 dz + 2 dy + dx]. */
#define GATHER8(NAME, T)                                                                           \
    static void NAME(const target *t, tstate *ts, int64_t iz, int64_t iy, int64_t ix, T padv, T *v) \
    {                                                                                              \
        int64_t zi[2] = {vt__pad_index(iz, t->n[0], t->pad), vt__pad_index(iz + 1, t->n[0], t->pad)};      \
        int64_t yi[2] = {vt__pad_index(iy, t->n[1], t->pad), vt__pad_index(iy + 1, t->n[1], t->pad)};      \
        int64_t xi[2] = {vt__pad_index(ix, t->n[2], t->pad), vt__pad_index(ix + 1, t->n[2], t->pad)};      \
        for (int q = 0; q < 8; q++) {                                                              \
            int64_t z = zi[q >> 2], y = yi[q >> 1 & 1], x = xi[q & 1];                             \
            if (z < 0 || y < 0 || x < 0) {                                                         \
                v[q] = padv;                                                                       \
                continue;                                                                          \
            }                                                                                      \
            const slot *s = find(t, z, y, x);                                                      \
            if (s == NULL) {                                                                       \
                ts->missing = 1;                                                                   \
                v[q] = 0;                                                                          \
            } else                                                                                 \
                v[q] = ((const T *)s->data)[(z - s->lo[0]) * s->st0 + (y - s->lo[1]) * s->st1 + (x - s->lo[2])]; \
        }                                                                                          \
    }

GATHER8(gather_f, float)
GATHER8(gather_i16, int16_t)
GATHER8(gather_i32, int32_t)

/* a + w (b - a); exactly a when w is 0, whatever b holds (a tap of weight 0 is never used). */
static inline float lerp0(float a, float b, float w) { return w == 0.0f ? a : a + w * (b - a); }

/* Trilinear from v[4 dz + 2 dy + dx]. With finite taps, a weight of 0 already
 * leaves a + 0 (b - a) = a; only an infinite or NaN result can hide a tap of
 * weight 0 that is not finite, and is then computed again tap by tap. */
static inline float trilerp(const float *v, float wz, float wy, float wx)
{
    float c00 = v[0] + wx * (v[1] - v[0]), c01 = v[2] + wx * (v[3] - v[2]);
    float c10 = v[4] + wx * (v[5] - v[4]), c11 = v[6] + wx * (v[7] - v[6]);
    float c0 = c00 + wy * (c01 - c00), c1 = c10 + wy * (c11 - c10);
    float r = c0 + wz * (c1 - c0);
    if (__builtin_expect(r - r == 0.0f, 1))
        return r;
    c0 = lerp0(lerp0(v[0], v[1], wx), lerp0(v[2], v[3], wx), wy);
    c1 = lerp0(lerp0(v[4], v[5], wx), lerp0(v[6], v[7], wx), wy);
    return lerp0(c0, c1, wz);
}

static void row_linear(const target *t, tstate *ts, const coords *k, const taps *tp, float *restrict r, int q0,
                       int q1)
{
    const slot *slots = t->p.slots;
    int32_t last = -1;
    const float *data = NULL;
    int64_t s0 = 0, s1 = 0;
    for (int q = q0; q < q1; q++) {
        float v[8];
        int32_t si = tp->slot[q];
        if (si >= 0) {
            if (si != last) {
                last = si;
                data = slots[si].data;
                s0 = slots[si].st0;
                s1 = slots[si].st1;
            }
            const float *b = data + tp->off[q];
            v[0] = b[0];
            v[1] = b[1];
            v[2] = b[s1];
            v[3] = b[s1 + 1];
            v[4] = b[s0];
            v[5] = b[s0 + 1];
            v[6] = b[s0 + s1];
            v[7] = b[s0 + s1 + 1];
        } else if (all_outside(t, k->iz[q], k->iy[q], k->ix[q])) {
            r[q] = t->pad_f;
            continue;
        } else
            gather_f(t, ts, k->iz[q], k->iy[q], k->ix[q], t->pad_f, v);
        r[q] = trilerp(v, (float)k->fz[q], (float)k->fy[q], (float)k->fx[q]);
    }
}

/* Sums this close are a tie: weights are products of fractions, and the
 * order of the sums must not decide between labels of equal weight. */
#define VOTE_TIE 1e-9

int32_t vt__label_vote(const int32_t *v, double wz, double wy, double wx)
{
    double az[2] = {1 - wz, wz}, ay[2] = {1 - wy, wy}, ax[2] = {1 - wx, wx};
    /* two labels (the common case at a boundary): the same sums, in the same order, in one pass */
    int32_t a = v[0], b = v[0];
    double sa = 0, sb = 0;
    int q = 0;
    for (; q < 8; q++) {
        double w = az[q >> 2] * ay[q >> 1 & 1] * ax[q & 1];
        if (v[q] == a) {
            if (w != 0)
                sa += w;
        } else if (b == a || v[q] == b) {
            b = v[q];
            if (w != 0)
                sb += w;
        } else
            break; /* a third label */
    }
    if (q == 8) {
        if (sb == 0) /* b never weighed */
            return a;
        if (sa == 0)
            return b;
        return sa > sb + VOTE_TIE || (sa >= sb - VOTE_TIE && a < b) ? a : b;
    }
    int32_t val[8];
    double sum[8];
    int nv = 0;
    for (q = 0; q < 8; q++) {
        double w = az[q >> 2] * ay[q >> 1 & 1] * ax[q & 1];
        if (w == 0)
            continue;
        int u = 0;
        while (u < nv && val[u] != v[q])
            u++;
        if (u == nv) {
            val[nv] = v[q];
            sum[nv++] = 0;
        }
        sum[u] += w;
    }
    int best = 0;
    for (int u = 1; u < nv; u++)
        if (sum[u] > sum[best] + VOTE_TIE || (sum[u] >= sum[best] - VOTE_TIE && val[u] < val[best]))
            best = u;
    return val[best];
}

/* Label rows over int16 or int32 tiles. A tap pair (x, x+1) is one load of
 * twice the element size: the 8 taps are 4 loads, all one value when the 4
 * pairs are equal and the first pair holds one value twice -- the common
 * case, decided without weights. */
#define ROW_LABEL(NAME, T, PAIR, GATHER)                                                           \
    static void NAME(const target *t, tstate *ts, const coords *k, const taps *tp, int32_t *restrict r, \
                     int q0, int q1)                                                               \
    {                                                                                              \
        const slot *slots = t->p.slots;                                                            \
        int32_t last = -1;                                                                         \
        const T *data = NULL;                                                                      \
        int64_t s0 = 0, s1 = 0;                                                                    \
        T padv = (T)t->pad_i;                                                                      \
        for (int q = q0; q < q1; q++) {                                                            \
            T v[8];                                                                                \
            int32_t si = tp->slot[q];                                                              \
            if (si >= 0) {                                                                         \
                if (si != last) {                                                                  \
                    last = si;                                                                     \
                    data = slots[si].data;                                                         \
                    s0 = slots[si].st0;                                                            \
                    s1 = slots[si].st1;                                                            \
                }                                                                                  \
                const T *b = data + tp->off[q];                                                    \
                PAIR p0, p1, p2, p3;                                                               \
                memcpy(&p0, b, sizeof p0);                                                         \
                memcpy(&p1, b + s1, sizeof p1);                                                    \
                memcpy(&p2, b + s0, sizeof p2);                                                    \
                memcpy(&p3, b + s0 + s1, sizeof p3);                                               \
                if (((p0 ^ p1) | (p0 ^ p2) | (p0 ^ p3)) == 0 && b[0] == b[1]) {                   \
                    r[q] = b[0];                                                                   \
                    continue;                                                                      \
                }                                                                                  \
                memcpy(v, &p0, sizeof p0);                                                         \
                memcpy(v + 2, &p1, sizeof p1);                                                     \
                memcpy(v + 4, &p2, sizeof p2);                                                     \
                memcpy(v + 6, &p3, sizeof p3);                                                     \
            } else if (all_outside(t, k->iz[q], k->iy[q], k->ix[q])) {                             \
                r[q] = t->pad_i;                                                                   \
                continue;                                                                          \
            } else                                                                                 \
                GATHER(t, ts, k->iz[q], k->iy[q], k->ix[q], padv, v);                              \
            int32_t w[8];                                                                          \
            for (int u = 0; u < 8; u++)                                                            \
                w[u] = v[u];                                                                       \
            r[q] = vt__label_vote(w, k->fz[q], k->fy[q], k->fx[q]);                                          \
        }                                                                                          \
    }

ROW_LABEL(row_label16, int16_t, uint32_t, gather_i16)
ROW_LABEL(row_label32, int32_t, uint64_t, gather_i32)

/* Nearest: the output elements of the row, written straight to @p dst. */
static void row_nearest(const target *t, tstate *ts, const coords *k, unsigned char *dst, int64_t ds)
{
    size_t es = t->src_size;
    bool copy = t->sd == t->dd && !t->xf;
    for (int q = 0; q < k->n; q++, dst += ds) { /* never in the vector path: always whole rows */
        int64_t iz = vt__pad_index(iround(k->pz[q]), t->n[0], t->pad), iy = vt__pad_index(iround(k->py[q]), t->n[1], t->pad),
                ix = vt__pad_index(iround(k->px[q]), t->n[2], t->pad);
        if (iz < 0 || iy < 0 || ix < 0) {
            memcpy(dst, t->pad_out, t->out_size);
            continue;
        }
        const slot *s = ts->cur;
        if (!(s && iz >= s->lo[0] && iz < s->hi[0] && iy >= s->lo[1] && iy < s->hi[1] && ix >= s->lo[2] &&
              ix < s->hi[2])) {
            s = find(t, iz, iy, ix);
            if (s == NULL) {
                ts->missing = 1;
                memset(dst, 0, t->out_size);
                continue;
            }
            ts->cur = s;
        }
        const unsigned char *e = (const unsigned char *)s->data +
                                 ((iz - s->lo[0]) * s->st0 + (iy - s->lo[1]) * s->st1 + (ix - s->lo[2])) * (int64_t)es;
        if (copy)
            memcpy(dst, e, es);
        else {
            double v = vt__load_f64(t->sd, e);
            vt__store_f64(t->dd, dst, t->xf ? xform(t, v) : v);
        }
    }
}

/* Write @p n float32 results to the output dtype, @p ds bytes apart. */
static void put_floats(vt_dtype dd, const float *r, int n, unsigned char *dst, int64_t ds)
{
    switch (dd) {
    case VT_F32:
        if (ds == 4)
            memcpy(dst, r, (size_t)n * 4);
        else
            for (int q = 0; q < n; q++)
                memcpy(dst + q * ds, &r[q], 4);
        return;
    case VT_F16: {
        uint16_t h[BLK];
        vt__f32_to_f16(r, h, (size_t)n);
        if (ds == 2)
            memcpy(dst, h, (size_t)n * 2);
        else
            for (int q = 0; q < n; q++)
                memcpy(dst + q * ds, &h[q], 2);
        return;
    }
    case VT_BF16:
        for (int q = 0; q < n; q++) {
            uint32_t b;
            memcpy(&b, &r[q], 4);
            vt__st16(dst + q * ds, vt__f32_to_bf16_bits(b));
        }
        return;
    default:
        for (int q = 0; q < n; q++)
            vt__stf64(dst + q * ds, (double)r[q]);
        return;
    }
}

static void put_ints(vt_dtype dd, const int32_t *r, int n, unsigned char *dst, int64_t ds)
{
    switch (dd) {
    case VT_U8:
    case VT_I8:
        for (int q = 0; q < n; q++)
            dst[q * ds] = (unsigned char)r[q];
        return;
    case VT_U16:
    case VT_I16:
        for (int q = 0; q < n; q++)
            vt__st16(dst + q * ds, (uint16_t)r[q]);
        return;
    default:
        for (int q = 0; q < n; q++)
            vt__st32(dst + q * ds, (uint32_t)r[q]);
        return;
    }
}

/* Floors and fractions of voxels [q0, q1) of the row (k, j) (and their
 * positions, which nearest uses), with row_positions' arithmetic. */
static void row_coords(const sampler *c, coords *k, int64_t z, int64_t y, int64_t i0, int q0, int q1)
{
    if (c->field) {
        row_positions(c, z, y, i0, k->n, k->pz, k->py, k->px);
        for (int q = q0; q < q1; q++) {
            k->iz[q] = floor_frac(k->pz[q], &k->fz[q]);
            k->iy[q] = floor_frac(k->py[q], &k->fy[q]);
            k->ix[q] = floor_frac(k->px[q], &k->fx[q]);
        }
        return;
    }
    const double *m = c->m;
    double bz = m[0] * (double)z + m[1] * (double)y + m[3];
    double by = m[4] * (double)z + m[5] * (double)y + m[7];
    double bx = m[8] * (double)z + m[9] * (double)y + m[11];
    double mz = m[2], my = m[6], mx = m[10];
    for (int q = q0; q < q1; q++) {
        double i = (double)(i0 + q);
        k->pz[q] = bz + mz * i;
        k->py[q] = by + my * i;
        k->px[q] = bx + mx * i;
        k->iz[q] = floor_frac(k->pz[q], &k->fz[q]);
        k->iy[q] = floor_frac(k->py[q], &k->fy[q]);
        k->ix[q] = floor_frac(k->px[q], &k->fx[q]);
    }
}

/* Row results of the arrays of a thread: float32 (linear) or int32 (labels). */
typedef struct rows {
    float f[MAX_TARGETS][BLK];
    int32_t i[MAX_TARGETS][BLK];
    taps tp[MAX_TARGETS];
} rows;

/* Voxels [q0, q1) of the row, the scalar way, for every active array but
 * nearest ones (whole rows of their own). */
static void scalar_range(const sampler *c, tstate *ts, const coords *k, rows *rw, int q0, int q1)
{
    for (size_t i = 0; i < c->nt; i++) {
        const target *t = &c->t[i];
        if (!t->active || t->interp == VT_INTERP_NEAREST)
            continue;
        if (t->leader == (int)i)
            locate_row(t, &ts[i], k, &rw->tp[i], q0, q1);
        const taps *lt = &rw->tp[t->leader];
        if (t->interp == VT_INTERP_LINEAR)
            row_linear(t, &ts[i], k, lt, rw->f[i], q0, q1);
        else if (t->dec_size == 2)
            row_label16(t, &ts[i], k, lt, rw->i[i], q0, q1);
        else
            row_label32(t, &ts[i], k, lt, rw->i[i], q0, q1);
    }
}

/* Whether this build and CPU have the AVX2 kernel; VOXTILE_SAMPLE_SCALAR
 * turns it off (the tests compare the kernel's bits with the scalar path's). */
static int have_avx2(void)
{
#if defined(VT_HAVE_SAMPLE_AVX2)
    static int known = -1;
    if (known < 0)
        known = __builtin_cpu_supports("avx2") ? 1 : 0;
    return known && getenv("VOXTILE_SAMPLE_SCALAR") == NULL;
#else
    return 0;
#endif
}

/* Can the piece run through the AVX2 kernel? When every array is linear or
 * int16 labels, all sharing the first array's plan, with a dense table and
 * tiles whose shape is a power of two, and no field. The kernel still falls
 * back, 8 voxels at a time, wherever taps leave the array. */
static void vec_setup(sampler *c)
{
    c->vec = 0;
    const target *t0 = &c->t[0];
    if (!have_avx2() || c->field || !t0->p.dense || c->nt > VT_VEC_MAX_ARRAYS)
        return;
    for (int d = 0; d < 3; d++)
        if (t0->tshift[d] < 0 || t0->n[d] > (INT64_C(1) << 30) || t0->p.dn[d] > (INT64_C(1) << 30))
            return;
    vt_vec_group *g = &c->vg;
    memset(g, 0, sizeof *g);
    memcpy(g->m, c->m, sizeof g->m);
    for (int d = 0; d < 3; d++) {
        g->nlast[d] = (int32_t)(t0->n[d] - 2);
        g->shift[d] = t0->tshift[d];
        g->d0[d] = (int32_t)t0->p.d0[d];
        g->dn[d] = (int32_t)t0->p.dn[d];
    }
    g->table = t0->p.table;
    g->st1 = (int32_t)(t0->tsz[2] + 1);
    g->st0 = (int32_t)((t0->tsz[1] + 1) * (t0->tsz[2] + 1));
    for (size_t i = 0; i < c->nt; i++) {
        const target *t = &c->t[i];
        if (t->leader != 0)
            return;
        if (t->interp == VT_INTERP_LINEAR)
            g->a[i].kind = VT_VEC_LINEAR;
        else if (t->interp == VT_INTERP_LABEL && t->dec_size == 2)
            g->a[i].kind = VT_VEC_LABEL16;
        else
            return;
        g->a[i].arena = c->arena;
        g->a[i].base = t->p.base;
    }
    g->narr = (int)c->nt;
    c->vec = 1;
    c->vec_used = 1;
}

/* The label vote of voxel q of a label array, the scalar way. */
static void vote_voxel(const target *t, tstate *ts, const coords *k, int32_t *r, int q)
{
    taps tp;
    locate_row(t, ts, k, &tp, q, q + 1);
    if (t->dec_size == 2)
        row_label16(t, ts, k, &tp, r, q, q + 1);
    else
        row_label32(t, ts, k, &tp, r, q, q + 1);
}

/* Sample block @p b of every active array. */
static void sample_block(const sampler *c, tstate *ts, rows *rw, vt_vec_group *vg, uint64_t b)
{
    int64_t o0[3], o1[3];
    block_box(c, b, o0, o1);
    bool floors = false;
    for (size_t i = 0; i < c->nt; i++)
        floors |= c->t[i].active && c->t[i].interp != VT_INTERP_NEAREST;
    coords k;
    k.n = (int)(o1[2] - o0[2]);
    for (int64_t z = o0[0]; z < o1[0]; z++)
        for (int64_t y = o0[1]; y < o1[1]; y++) {
            unsigned done = 0; /* groups of 8 the kernel did (it gives the floors of every full group) */
            uint32_t votes[VT_VEC_MAX_ARRAYS];
            if (c->vec)
                done = vt__sample_row_avx2(vg, z, y, o0[2], k.n, k.iz, k.iy, k.ix, k.fz, k.fy, k.fx, votes);
            if (!floors)
                row_positions(c, z, y, o0[2], k.n, k.pz, k.py, k.px);
            for (int g0 = 0; floors && g0 < k.n; g0 += 8) { /* what the kernel left, the scalar way */
                int g1 = g0 + 8 < k.n ? g0 + 8 : k.n;
                if (done >> (g0 / 8) & 1)
                    continue;
                if (!c->vec || g1 - g0 < 8)
                    row_coords(c, &k, z, y, o0[2], g0, g1);
                scalar_range(c, ts, &k, rw, g0, g1);
            }
            for (int a = 0; c->vec && a < vg->narr; a++)
                for (uint32_t m = votes[a]; m; m &= m - 1) /* label voxels whose taps differ */
                    vote_voxel(&c->t[a], &ts[a], &k, rw->i[a], __builtin_ctz(m));
            for (size_t i = 0; i < c->nt; i++) {
                const target *t = &c->t[i];
                if (!t->active)
                    continue;
                int nd = t->nd;
                int64_t ds = t->ostr[nd - 1];
                unsigned char *dst = t->obase + z * t->ostr[nd - 3] + y * t->ostr[nd - 2] + o0[2] * ds;
                if (t->interp == VT_INTERP_LINEAR)
                    put_floats(t->dd, rw->f[i], k.n, dst, ds);
                else if (t->interp == VT_INTERP_LABEL)
                    put_ints(t->dd, rw->i[i], k.n, dst, ds);
                else {
                    if (floors) /* nearest beside other arrays: the positions of the row */
                        row_positions(c, z, y, o0[2], k.n, k.pz, k.py, k.px);
                    row_nearest(t, &ts[i], &k, dst, ds);
                }
            }
        }
}

/* ---- running ------------------------------------------------------------ */

/* Make the tiles of block @p b ready for every active array: decode those
 * nobody has decoded yet, then copy the aprons their decoded neighbours
 * allow. */
static int acquire(sampler *c, uint64_t b, vt_tscratch *s)
{
    for (size_t i = 0; i < c->nt; i++) {
        target *t = &c->t[i];
        if (!t->active)
            continue;
        const plan *p = &t->p;
        for (uint32_t l = p->first[b]; l < p->first[b + 1]; l++) {
            slot *sl = &p->slots[p->list[l]];
            pthread_mutex_lock(&c->mu);
            while (sl->state == S_BUSY)
                pthread_cond_wait(&c->cv, &c->mu);
            if (sl->state == S_READY) {
                pthread_mutex_unlock(&c->mu);
                continue;
            }
            if (sl->state == S_FAILED || c->rc) {
                pthread_mutex_unlock(&c->mu);
                return VT_ECORRUPT;
            }
            sl->state = S_BUSY;
            pthread_mutex_unlock(&c->mu);
            int rc = slot_decode(t, sl, s);
            pthread_mutex_lock(&c->mu);
            sl->state = rc ? S_FAILED : S_READY;
            t->decoded++;
            if (rc)
                set_error(c, rc);
            pthread_cond_broadcast(&c->cv);
            pthread_mutex_unlock(&c->mu);
            if (rc)
                return rc;
        }
        /* a tap in a neighbour puts the neighbour in this block's list, so the
         * apron parts this block reads are all filled here */
        pthread_mutex_lock(&c->mu);
        for (uint32_t l = p->first[b]; l < p->first[b + 1]; l++) {
            slot *sl = &p->slots[p->list[l]];
            for (unsigned k = 1; k < 8 && sl->filled != 0xffu; k++) {
                if (sl->filled & (1u << k))
                    continue;
                const slot *nb = find(t, k & 4 ? sl->hi[0] : sl->lo[0], k & 2 ? sl->hi[1] : sl->lo[1],
                                      k & 1 ? sl->hi[2] : sl->lo[2]);
                if (nb && nb->state == S_READY) {
                    apron_fill(t, sl, nb, k);
                    sl->filled |= 1u << k;
                }
            }
        }
        pthread_mutex_unlock(&c->mu);
    }
    return 0;
}

/* Block @p b is done with its tiles: free those no later block needs. */
static void release(sampler *c, uint64_t b)
{
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->nt; i++) {
        const plan *p = &c->t[i].p;
        for (uint32_t l = c->t[i].active ? p->first[b] : 0; c->t[i].active && l < p->first[b + 1]; l++) {
            slot *sl = &p->slots[p->list[l]];
            if (--sl->uses == 0 && sl->chunk >= 0) {
                chunk_give(c, sl->chunk);
                sl->chunk = -1;
                p->base[p->list[l]] = -1;
                sl->data = NULL;
                sl->state = S_EMPTY;
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
}

static void *worker(void *arg)
{
    sampler *c = arg;
    vt_tscratch *s = vt__tscratch();
    tstate ts[MAX_TARGETS];
    memset(ts, 0, sizeof ts);
    rows *rw = vt__malloc(sizeof *rw);
    vt_vec_group vg = c->vg;
    if (rw == NULL)
        s = NULL;
    else
        for (int a = 0; a < vg.narr; a++) {
            vg.a[a].rf = rw->f[a];
            vg.a[a].ri = rw->i[a];
        }
    if (s == NULL) {
        pthread_mutex_lock(&c->mu);
        set_error(c, vt__fail(NULL, VT_ENOMEM, "vt_sample: out of memory"));
        pthread_mutex_unlock(&c->mu);
        free(rw);
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&c->mu);
        uint64_t b = c->next++;
        bool stop = c->rc != 0 || b >= c->nblocks;
        pthread_mutex_unlock(&c->mu);
        if (stop)
            break;
        if (acquire(c, b, s) != 0)
            break;
        for (size_t i = 0; i < c->nt; i++)
            ts[i].cur = NULL; /* the previous block's tiles may be gone */
        sample_block(c, ts, rw, &vg, b);
        release(c, b);
        for (size_t i = 0; i < c->nt; i++)
            if (ts[i].missing) {
                const target *t = &c->t[i];
                pthread_mutex_lock(&c->mu);
                set_error(c, vt__fail_at(t->st, VT_EINVAL, t->st->path, "array '%s': vt_sample: internal error: "
                                         "a tap outside the planned tiles", t->a->ent.name));
                pthread_mutex_unlock(&c->mu);
                free(rw);
                return NULL;
            }
    }
    free(rw);
    return NULL;
}

/* Run the planned piece for the current leading index of each active array. */
static int run_piece(sampler *c)
{
    for (size_t i = 0; i < c->nt; i++) {
        target *t = &c->t[i];
        if (!t->active)
            continue;
        for (uint32_t s = 0; s < t->p.nslots; s++) {
            t->p.slots[s].uses = t->p.slots[s].uses0;
            t->p.slots[s].state = S_EMPTY;
        }
        t->needed += t->p.nslots;
    }
    c->next = 0;
    vec_setup(c);
    int threads = c->threads < 1 ? 1 : c->threads;
    if ((uint64_t)threads > c->nblocks)
        threads = (int)c->nblocks;
    pthread_t th[256];
    int started = 0;
    for (int i = 1; i < threads; i++) {
        if (pthread_create(&th[started], NULL, worker, c) != 0) {
            pthread_mutex_lock(&c->mu);
            set_error(c, vt__fail(NULL, VT_EIO, "vt_sample: cannot start a thread"));
            pthread_mutex_unlock(&c->mu);
            break;
        }
        started++;
    }
    worker(c);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    for (size_t i = 0; i < c->nt; i++) { /* only after a failure */
        target *t = &c->t[i];
        for (uint32_t s = 0; s < t->p.nslots; s++)
            if (t->p.slots[s].chunk >= 0) {
                chunk_give(c, t->p.slots[s].chunk);
                t->p.slots[s].chunk = -1;
                t->p.base[s] = -1;
                t->p.slots[s].data = NULL;
            }
    }
    return c->rc;
}

/* Do two arrays plan alike, slot for slot (so that one plan and one tile
 * lookup serve both)? Planning depends on nothing else: the spatial shape,
 * the tiles, the pad mode, and where the taps are (nearest: one, rounded;
 * linear and labels: floor and floor + 1). */
static bool same_geometry(const target *a, const target *b)
{
    if ((a->interp == VT_INTERP_NEAREST) != (b->interp == VT_INTERP_NEAREST) || a->pad != b->pad)
        return false;
    for (int d = 0; d < 3; d++)
        if (a->n[d] != b->n[d] || a->tsz[d] != b->tsz[d])
            return false;
    return true;
}

/* @p t's plan as a copy of @p from's (planned the same way). */
static int plan_copy(target *t, const target *from)
{
    const plan *f = &from->p;
    plan *p = &t->p;
    memset(p, 0, sizeof *p);
    p->first = vt__malloc((from->c->nblocks + 1) * sizeof *p->first);
    p->list = vt__malloc((f->nlist ? f->nlist : 1) * sizeof *p->list);
    p->slots = vt__malloc((f->nslots ? f->nslots : 1) * sizeof *p->slots);
    p->hkey = f->hcap ? vt__malloc(f->hcap * sizeof *p->hkey) : NULL;
    p->hval = f->hcap ? vt__malloc(f->hcap * sizeof *p->hval) : NULL;
    uint64_t cells = f->dense ? (uint64_t)(f->dn[0] * f->dn[1] * f->dn[2]) : 0;
    p->table = cells ? vt__malloc(cells * sizeof *p->table) : NULL;
    p->base = vt__malloc(((size_t)f->nslots + 1) * sizeof *p->base);
    if (!p->first || !p->list || !p->slots || (f->hcap && (!p->hkey || !p->hval)) || (cells && !p->table) ||
        !p->base)
        return VT_ENOMEM;
    memcpy(p->first, f->first, (from->c->nblocks + 1) * sizeof *p->first);
    /* memcpy with a NULL source is undefined even for 0 bytes: an empty plan has no list nor slots */
    if (f->nlist)
        memcpy(p->list, f->list, f->nlist * sizeof *p->list);
    if (f->nslots)
        memcpy(p->slots, f->slots, f->nslots * sizeof *p->slots);
    if (f->hcap) {
        memcpy(p->hkey, f->hkey, f->hcap * sizeof *p->hkey);
        memcpy(p->hval, f->hval, f->hcap * sizeof *p->hval);
    }
    if (cells)
        memcpy(p->table, f->table, cells * sizeof *p->table);
    memset(p->base, 0xff, ((size_t)f->nslots + 1) * sizeof *p->base);
    p->nlist = p->caplist = f->nlist;
    p->nslots = p->capslots = f->nslots;
    p->hcap = f->hcap;
    p->dense = f->dense;
    memcpy(p->d0, f->d0, sizeof p->d0);
    memcpy(p->dn, f->dn, sizeof p->dn);
    for (uint32_t s = 0; s < p->nslots; s++) { /* nothing decoded yet */
        p->slots[s].data = NULL;
        p->slots[s].chunk = -1;
        p->slots[s].state = S_EMPTY;
    }
    return 0;
}

typedef struct frange {
    uint64_t lo, hi;
} frange;

static int frange_cmp(const void *x, const void *y)
{
    uint64_t a = ((const frange *)x)->lo, b = ((const frange *)y)->lo;
    return (a > b) - (a < b);
}

/* Map the stored bytes of the piece's tiles for the current leading index in
 * a few calls (madvise MADV_POPULATE_READ over merged runs of pages) instead
 * of one page fault at a time as the decoder first touches them: faults are
 * costly, and a patch touches hundreds of tiles. Best effort: where the kernel
 * lacks it nothing changes. */
static void populate(sampler *c)
{
#ifdef MADV_POPULATE_READ
    for (size_t i = 0; i < c->nt; i++) {
        const target *t = &c->t[i];
        if (!t->active || t->p.nslots == 0)
            continue;
        frange *r = vt__malloc(t->p.nslots * sizeof *r);
        if (r == NULL)
            return;
        size_t n = 0;
        for (uint32_t s = 0; s < t->p.nslots; s++) {
            vt_tile_entry te;
            vt__tile_decode(t->a->index + (t->lead_base + t->p.slots[s].key) * VT_TILE_ENTRY_SIZE, &te);
            if (!(te.flags & VT_TILE_CONSTANT) && te.size > 0)
                r[n++] = (frange){te.offset & ~(uint64_t)4095, (te.offset + te.size + 4095) & ~(uint64_t)4095};
        }
        qsort(r, n, sizeof *r, frange_cmp);
        for (size_t k = 0; k < n;) {
            uint64_t lo = r[k].lo, hi = r[k].hi;
            for (k++; k < n && r[k].lo <= hi; k++)
                hi = r[k].hi > hi ? r[k].hi : hi;
            hi = hi > t->st->size ? t->st->size : hi;
            if (hi > lo)
                (void)madvise((void *)(uintptr_t)(t->st->map + lo), (size_t)(hi - lo), MADV_POPULATE_READ);
        }
        free(r);
    }
#else
    (void)c;
#endif
}

/* Plan the piece of block layers [layer0, layer1) for every array. */
static int plan_all(sampler *c, uint64_t layer0, uint64_t layer1)
{
    c->layer0 = layer0;
    c->layer1 = layer1;
    uint64_t nby = (c->size[1] + BLKY - 1) / BLKY, nbx = (c->size[2] + BLK - 1) / BLK;
    c->nblocks = (layer1 - layer0) * nby * nbx;
    for (size_t i = 0; i < c->nt; i++) {
        /* an array planned like an earlier one copies its plan, and shares its tile lookups
         * when they sample with taps at the floor (the vector kernel and locate_row) */
        target *t = &c->t[i];
        t->leader = (int)i;
        size_t j = 0;
        while (j < i && !(c->t[j].leader == (int)j && same_geometry(&c->t[j], t)))
            j++;
        int rc = j < i ? plan_copy(t, &c->t[j]) : plan_piece(t);
        uint64_t bytes;
        if (rc == 0 && (!vt__mul_ok(t->p.nslots, t->buf_bytes, &bytes) || bytes > PIECE_BYTES) &&
            layer1 - layer0 > 1)
            rc = VT_ERANGE; /* the copy's tiles may be larger than the original's */
        if (rc)
            return rc;
        if (j < i && t->interp != VT_INTERP_NEAREST)
            t->leader = (int)j;
    }
    return 0;
}

/* Sample through the tiles: piece after piece, leading index after leading index. */
static int sample_tiles(sampler *c)
{
    uint64_t layers = (c->size[0] + BLKZ - 1) / BLKZ;
    uint64_t passes = 0;
    for (size_t i = 0; i < c->nt; i++)
        if (c->t[i].nlead > passes)
            passes = c->t[i].nlead;
    int rc = 0;
    uint64_t l0 = 0;
    while (rc == 0 && l0 < layers) {
        /* the largest piece from layer l0 whose plans fit the limits */
        uint64_t l1 = layers;
        for (;;) {
            rc = plan_all(c, l0, l1);
            if (rc != VT_ERANGE || l1 - l0 == 1)
                break;
            for (size_t i = 0; i < c->nt; i++)
                plan_free(&c->t[i].p);
            l1 = l0 + (l1 - l0) / 2;
        }
        if (rc == 0) { /* room for every planned tile of every array at once: the most ever needed */
            uint64_t chunks = 0;
            for (size_t i = 0; i < c->nt; i++)
                chunks += c->t[i].p.nslots;
            rc = chunks > UINT32_MAX / 2 ? VT_ERANGE : arena_reserve(c, (uint32_t)chunks);
        }
        if (rc) {
            const target *t = &c->t[0];
            rc = rc == VT_ENOMEM ? vt__fail_at(t->st, VT_ENOMEM, t->st->path, "vt_sample: out of memory")
                                 : vt__fail_at(t->st, rc, t->st->path, "vt_sample: the output needs too many tiles");
            break;
        }
        for (uint64_t L = 0; L < passes && rc == 0; L++) {
            /* leading index L of each array that has it: its tiles, its part of them, its output */
            for (size_t i = 0; i < c->nt; i++) {
                target *t = &c->t[i];
                t->active = L < t->nlead;
                if (!t->active)
                    continue;
                const vt_array *a = t->a;
                int nd = t->nd;
                uint64_t rem = L, ltile = 0, lidx[VT_MAX_DIMS];
                unsigned char *ob = t->out;
                for (int d = nd - 4; d >= 0; d--) {
                    lidx[d] = rem % a->ent.shape[d];
                    rem /= a->ent.shape[d];
                }
                for (int d = 0; d < nd - 3; d++) {
                    ltile = ltile * a->grid[d] + lidx[d] / a->ent.tile[d];
                    t->lead_in[d] = lidx[d] % a->ent.tile[d];
                    ob += (int64_t)lidx[d] * t->ostr[d];
                }
                t->lead_base = ltile * t->lead_tiles;
                t->obase = ob;
                if (t->transforms) { /* this channel's own transform */
                    const double *x = t->transforms + 4 * L;
                    t->xf = 1;
                    t->clip_lo = x[0];
                    t->clip_hi = x[1];
                    t->scale = x[2];
                    t->offset = x[3];
                }
            }
            populate(c);
            rc = run_piece(c);
            if (rc) /* the message of whichever thread failed, for the caller's thread and store */
                rc = vt__fail(c->t[0].st, rc, "%s", c->msg);
        }
        l0 = c->layer1;
        for (size_t i = 0; i < c->nt; i++)
            plan_free(&c->t[i].p);
    }
    for (size_t i = 0; i < c->nt; i++)
        plan_free(&c->t[i].p);
    return rc;
}

/* ---- the box path ------------------------------------------------------- */

/* A signed axis permutation with an integer translation: output axis o reads
 * source axis src_axis[o] at sign[o] * index + shift[src_axis[o]]. */
static bool is_box(const double *m, int *src_axis, int *sign, int64_t *shift)
{
    int used[3] = {0, 0, 0};
    for (int r = 0; r < 3; r++) {
        int nz = 0;
        for (int o = 0; o < 3; o++) {
            double v = m[4 * r + o];
            if (v == 0)
                continue;
            if ((v != 1 && v != -1) || nz++ || used[o]++)
                return false;
            src_axis[o] = r;
            sign[o] = v > 0 ? 1 : -1;
        }
        double t = m[4 * r + 3];
        if (nz != 1 || t != floor(t) || fabs(t) > 4503599627370496.0) /* 2^52 */
            return false;
        shift[r] = (int64_t)t;
    }
    return true;
}

/* A crop, mirror or axis permutation: one vt_read with output strides. When
 * linear interpolation would round through float32 differently from a direct
 * conversion, read float32 into a scratch copy and convert it as the sampler
 * does. */
static int sample_box(const target *t, const vt_read_opts *opts, const uint64_t *osize, const int *src_axis,
                      const int *sign, const int64_t *shift, int64_t lead)
{
    const vt_array *a = t->a;
    int nd = t->nd;
    uint64_t ext[VT_MAX_DIMS], lidx[VT_MAX_DIMS] = {0};
    for (int d = 0; d < nd; d++)
        ext[d] = d < nd - 3 ? (lead < 0 ? a->ent.shape[d] : 1) : osize[d - (nd - 3)];
    unsigned char *out = t->out; /* with @p lead >= 0: that leading index only, in its place */
    for (int d = nd - 4; lead >= 0 && d >= 0; d--) {
        lidx[d] = (uint64_t)lead % a->ent.shape[d];
        lead /= (int64_t)a->ent.shape[d];
        out += (int64_t)lidx[d] * t->ostr[d];
    }
    bool direct = t->interp != VT_INTERP_LINEAR || t->dd == VT_F32 ||
                  (!t->xf && (double)(float)opts->pad_value == opts->pad_value &&
                   (t->sd == VT_U8 || t->sd == VT_I8 || t->sd == VT_U16 || t->sd == VT_I16 || t->sd == VT_F16 ||
                    t->sd == VT_BF16 || t->sd == VT_F32));
    unsigned char *scratch = NULL, *dst = out;
    int64_t es = (int64_t)t->out_size, ostr[VT_MAX_DIMS];
    memcpy(ostr, t->ostr, sizeof ostr);
    if (!direct) { /* float32, C order of the output */
        uint64_t total = 4;
        for (int d = 0; d < nd; d++)
            total *= ext[d];
        scratch = vt__malloc((size_t)total);
        if (scratch == NULL)
            return vt__fail_at(t->st, VT_ENOMEM, t->st->path, "vt_sample: out of memory");
        dst = scratch;
        es = 4;
        ostr[nd - 1] = 4;
        for (int d = nd - 2; d >= 0; d--)
            ostr[d] = ostr[d + 1] * (int64_t)ext[d + 1];
    }
    int64_t start[VT_MAX_DIMS], estr[VT_MAX_DIMS];
    uint64_t size[VT_MAX_DIMS];
    for (int d = 0; d < nd - 3; d++) {
        start[d] = (int64_t)lidx[d];
        size[d] = ext[d];
        estr[d] = ostr[d] / es;
    }
    for (int o = 0; o < 3; o++) {
        int r = src_axis[o], d = nd - 3 + r;
        int64_t s = ostr[nd - 3 + o];
        size[d] = osize[o];
        if (sign[o] > 0) {
            start[d] = shift[r];
            estr[d] = s / es;
        } else {
            start[d] = shift[r] - (int64_t)(osize[o] - 1);
            dst += s * (int64_t)(osize[o] - 1);
            estr[d] = -s / es;
        }
    }
    vt_read_opts ro = *opts;
    ro.strides = estr;
    if (!direct) {
        ro.dtype = VT_F32;
        ro.pad_value = (double)(float)opts->pad_value;
    }
    int rc = vt_read(a, start, size, &ro, dst);
    if (rc == 0 && !direct) { /* float32 rows -> the output dtype, as the sampler writes them */
        uint64_t nrows = 1, n = ext[nd - 1];
        for (int d = 0; d < nd - 1; d++)
            nrows *= ext[d];
        const float *f = (const float *)(const void *)scratch;
        for (uint64_t row = 0; row < nrows; row++) {
            int64_t off = 0;
            uint64_t rem = row;
            for (int d = nd - 2; d >= 0; d--) {
                off += (int64_t)(rem % ext[d]) * t->ostr[d];
                rem /= ext[d];
            }
            for (uint64_t i = 0; i < n; i += BLK) {
                int m = (int)(n - i < BLK ? n - i : BLK);
                put_floats(t->dd, f + row * n + i, m, out + off + (int64_t)i * t->ostr[nd - 1], t->ostr[nd - 1]);
            }
        }
    }
    free(scratch);
    return rc;
}

/* ---- the calls ---------------------------------------------------------- */

void vt_sample_opts_init(vt_sample_opts *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->interp = VT_INTERP_LINEAR;
}

/* The map and the field, shared by every array. */
static int check_map(sampler *c, const vt_store *st, const double *matrix, const uint64_t *size, const float *field,
                     const uint64_t *field_shape, int threads)
{
    const char *path = st->path;
    for (int q = 0; q < 12; q++)
        if (!isfinite(matrix[q]))
            return vt__fail_at(st, VT_EINVAL, path, "vt_sample: matrix entry (%d, %d) is %g", q / 4, q % 4, matrix[q]);
    uint64_t total = 1;
    for (int d = 0; d < 3; d++) {
        if (size[d] == 0 || size[d] > MAX_EXTENT)
            return vt__fail_at(st, VT_ERANGE, path, "vt_sample: output extent %llu on axis %d is not in 1..%llu",
                               (unsigned long long)size[d], d, (unsigned long long)MAX_EXTENT);
        total *= size[d];
    }
    if (total > MAX_VOXELS)
        return vt__fail_at(st, VT_ERANGE, path, "vt_sample: output of %llu voxels is over the limit of %llu",
                           (unsigned long long)total, (unsigned long long)MAX_VOXELS);
    if (threads < 0 || threads > 256)
        return vt__fail_at(st, VT_EINVAL, path, "vt_sample: threads %d out of range 0..256", threads);
    memcpy(c->m, matrix, sizeof c->m);
    memcpy(c->size, size, sizeof c->size);
    c->threads = threads;
    if (field) {
        if (field_shape == NULL)
            return vt__fail_at(st, VT_EINVAL, path, "vt_sample: a field without its shape");
        uint64_t n = 3;
        for (int d = 0; d < 3; d++) {
            if (field_shape[d] < 1 || field_shape[d] > FIELD_MAX)
                return vt__fail_at(st, VT_EINVAL, path, "vt_sample: field extent %llu on axis %d is not in 1..%u",
                                   (unsigned long long)field_shape[d], d, FIELD_MAX);
            n *= field_shape[d];
        }
        for (uint64_t i = 0; i < n; i++)
            if (!isfinite(field[i]))
                return vt__fail_at(st, VT_EINVAL, path, "vt_sample: field value %llu is %g", (unsigned long long)i,
                                   (double)field[i]);
        c->field = field;
        memcpy(c->fshape, field_shape, sizeof c->fshape);
        for (int d = 0; d < 3; d++)
            c->fscale[d] = size[d] > 1 ? (double)(field_shape[d] - 1) / (double)(size[d] - 1) : 0;
    }
    /* where the whole output maps to: far positions are refused */
    int64_t o0[3] = {0, 0, 0}, o1[3] = {(int64_t)size[0], (int64_t)size[1], (int64_t)size[2]};
    double lo[3], hi[3];
    box_bounds(c, o0, o1, lo, hi);
    for (int d = 0; d < 3; d++)
        if (!(lo[d] >= -COORD_MAX && hi[d] <= COORD_MAX))
            return vt__fail_at(st, VT_ERANGE, path, "vt_sample: the map sends output voxels to source "
                               "coordinate %g on axis %d, beyond +-2^50", lo[d] < -COORD_MAX ? lo[d] : hi[d], d);
    return 0;
}

/* One array's options, checked, into its target. */
static int target_init(sampler *c, target *t, const vt_sample_target *in)
{
    const vt_array *a = in->array;
    vt_read_opts def;
    const vt_read_opts *o = in->opts;
    if (o == NULL) {
        vt_read_opts_init(&def);
        o = &def;
    }
    memset(t, 0, sizeof *t);
    t->c = c;
    t->a = a;
    t->st = a->store;
    t->nd = a->ent.ndim;
    t->interp = in->interp;
    t->pad = o->pad;
    t->sd = (vt_dtype)a->ent.dtype;
    t->dd = o->dtype == VT_DTYPE_SAME ? t->sd : o->dtype;
    t->out = in->out;
    t->stats = in->stats;
    t->transforms = in->transforms;
    const char *path = t->st->path, *name = a->ent.name;
    if (t->nd < 3)
        return vt__fail_at(t->st, VT_EINVAL, path, "array '%s': vt_sample needs at least 3 dimensions, it has %d",
                           name, t->nd);
    if (t->interp < VT_INTERP_NEAREST || t->interp > VT_INTERP_LABEL)
        return vt__fail_at(t->st, VT_EINVAL, path, "vt_sample: invalid interpolation %d", (int)t->interp);
    if (o->pad < VT_PAD_CONSTANT || o->pad > VT_PAD_REFLECT)
        return vt__fail_at(t->st, VT_EINVAL, path, "vt_sample: invalid pad mode %d", (int)o->pad);
    if (!vt__dtype_valid(t->dd))
        return vt__fail_at(t->st, VT_EINVAL, path, "vt_sample: invalid output dtype %d", (int)o->dtype);
    if (t->interp == VT_INTERP_LINEAR && !vt__dtype_is_float(t->dd))
        return vt__fail_at(t->st, VT_EINVAL, path, "vt_sample: linear interpolation writes float32, float16, "
                           "bfloat16 or float64, not %s", vt_dtype_name(t->dd));
    if (t->transforms) {
        uint64_t nlead = 1;
        for (int d = 0; d < t->nd - 3; d++)
            nlead *= a->ent.shape[d];
        if (t->interp == VT_INTERP_LABEL)
            return vt__fail_at(t->st, VT_EINVAL, path, "vt_sample: the label vote takes no intensity transform");
        for (uint64_t i = 0; i < 4 * nlead; i++)
            if (t->transforms[i] != t->transforms[i] || (i % 4 >= 2 && !isfinite(t->transforms[i])))
                return vt__fail_at(t->st, VT_EINVAL, path, "vt_sample: transform %llu of array '%s' has %g",
                                   (unsigned long long)(i / 4), name, t->transforms[i]);
    }
    if (t->interp == VT_INTERP_LABEL) {
        if (vt__dtype_is_float(t->sd))
            return vt__fail_at(t->st, VT_EINVAL, path, "array '%s' holds %s: the label vote needs integer labels",
                               name, vt_dtype_name(t->sd));
        if (vt__dtype_is_float(t->dd))
            return vt__fail_at(t->st, VT_EINVAL, path, "vt_sample: the label vote writes an integer dtype, not %s",
                               vt_dtype_name(t->dd));
        if (o->transform)
            return vt__fail_at(t->st, VT_EINVAL, path, "vt_sample: the label vote takes no intensity transform");
        if (a->min == a->min && (a->min < -2147483648.0 || a->max > 2147483647.0))
            return vt__fail_at(t->st, VT_EUNSUPPORTED, path, "array '%s': labels %.17g .. %.17g do not fit int32",
                               name, a->min, a->max);
    }
    /* the label vote, and nearest of integers into an integer dtype without a transform, write the stored
     * values as they are: the dtype must hold every one and the pad value, or a label would silently become
     * another (297 clipped to 255 in uint8); the vote also takes the pad value as an int32 label */
    int label = t->interp == VT_INTERP_LABEL;
    if (label || (t->interp == VT_INTERP_NEAREST && !vt__dtype_is_float(t->sd) && !vt__dtype_is_float(t->dd) &&
                  !o->transform && !t->transforms)) {
        if (a->min == a->min && (!vt__representable(t->dd, a->min) || !vt__representable(t->dd, a->max)))
            return vt__fail_at(t->st, VT_EINVAL, path, "vt_sample: %s cannot hold the %s of array '%s' "
                               "(%.17g .. %.17g)", vt_dtype_name(t->dd), label ? "labels" : "values", name,
                               a->min, a->max);
        if (o->pad == VT_PAD_CONSTANT && (!vt__representable(t->dd, o->pad_value) ||
                                          (label && (o->pad_value < -2147483648.0 || o->pad_value > 2147483647.0))))
            return vt__fail_at(t->st, VT_EINVAL, path, "vt_sample: pad value %.17g is not a %s", o->pad_value,
                               vt_dtype_name(t->dd));
    }
    t->src_size = vt_dtype_size(t->sd);
    t->out_size = vt_dtype_size(t->dd);
    t->xf = o->transform != 0;
    t->clip_lo = o->clip_lo;
    t->clip_hi = o->clip_hi;
    t->scale = o->scale;
    t->offset = o->offset;
    t->pad_f = (float)o->pad_value;
    t->pad_i = t->interp == VT_INTERP_LABEL && t->pad == VT_PAD_CONSTANT ? (int32_t)o->pad_value : 0;
    vt__store_f64(t->dd, t->pad_out, o->pad_value);
    t->verify = o->verify;
    int nd = t->nd;
    t->nlead = 1;
    for (int d = 0; d < nd - 3; d++)
        t->nlead *= a->ent.shape[d];
    for (int d = 0; d < 3; d++) {
        t->n[d] = (int64_t)a->ent.shape[nd - 3 + d];
        t->tsz[d] = a->ent.tile[nd - 3 + d];
        t->tgrid[d] = (int64_t)a->grid[nd - 3 + d];
        t->tshift[d] = (t->tsz[d] & (t->tsz[d] - 1)) == 0 ? __builtin_ctzll((unsigned long long)t->tsz[d]) : -1;
    }
    t->lead_tiles = (uint64_t)(t->tgrid[0] * t->tgrid[1] * t->tgrid[2]);
    /* decoded elements: float32 (linear), int16 labels when they and the pad fit, else int32, or as stored */
    t->dec_size = t->interp == VT_INTERP_NEAREST ? t->src_size : 4;
    if (t->interp == VT_INTERP_LABEL && a->min >= -32768.0 && a->max <= 32767.0 && t->pad_i >= -32768 &&
        t->pad_i <= 32767)
        t->dec_size = 2;
    t->buf_bytes = (size_t)((t->tsz[0] + 1) * (t->tsz[1] + 1) * (t->tsz[2] + 1)) * t->dec_size;

    /* output strides in bytes, overflow-checked as vt_read() does */
    int64_t es = (int64_t)t->out_size;
    uint64_t ext[VT_MAX_DIMS];
    for (int d = 0; d < nd; d++)
        ext[d] = d < nd - 3 ? a->ent.shape[d] : c->size[d - (nd - 3)];
    uint64_t total = (uint64_t)es;
    for (int d = 0; d < nd; d++)
        if (!vt__mul_ok(total, ext[d], &total) || total > (uint64_t)INT64_MAX)
            return vt__fail_at(t->st, VT_ERANGE, path, "vt_sample: output too large");
    int bad = vt__out_strides(nd, ext, o->strides, t->out_size, t->ostr);
    if (bad >= 0)
        return vt__fail_at(t->st, VT_ERANGE, path, "vt_sample: stride %lld of axis %d overflows",
                           (long long)o->strides[bad], bad);
    return 0;
}

int vt_sample_many(const vt_sample_target *targets, size_t ntargets, const double *matrix, const uint64_t *size,
                   const float *field, const uint64_t *field_shape, int threads)
{
    if (targets == NULL || ntargets == 0 || matrix == NULL || size == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_sample: NULL argument or no array");
    if (ntargets > MAX_TARGETS)
        return vt__fail(NULL, VT_EINVAL, "vt_sample: %zu arrays, at most %d in one call", ntargets, MAX_TARGETS);
    for (size_t i = 0; i < ntargets; i++) {
        if (targets[i].array == NULL || targets[i].out == NULL)
            return vt__fail(targets[i].array ? targets[i].array->store : NULL, VT_EINVAL,
                            "vt_sample: NULL array or output (array %zu)", i);
        if (targets[i].stats)
            memset(targets[i].stats, 0, sizeof *targets[i].stats);
    }
    const vt_store *st0 = targets[0].array->store;
    sampler *c = vt__calloc(1, sizeof *c);
    target *t = vt__calloc(ntargets, sizeof *t);
    if (c == NULL || t == NULL) {
        free(c);
        free(t);
        return vt__fail_at(st0, VT_ENOMEM, st0->path, "vt_sample: out of memory");
    }
    c->t = t;
    c->nt = ntargets;
    int rc = check_map(c, st0, matrix, size, field, field_shape, threads);
    for (size_t i = 0; i < ntargets && rc == 0; i++)
        rc = target_init(c, &t[i], &targets[i]);
    if (rc == 0) {
        int src_axis[3], sign[3];
        int64_t shift[3];
        if (field == NULL && is_box(matrix, src_axis, sign, shift)) {
            for (size_t i = 0; i < ntargets && rc == 0; i++) {
                vt_read_opts def;
                const vt_read_opts *o = targets[i].opts;
                if (o == NULL) {
                    vt_read_opts_init(&def);
                    o = &def;
                }
                vt_read_opts ro = *o;
                ro.threads = threads;
                if (t[i].transforms == NULL)
                    rc = sample_box(&t[i], &ro, size, src_axis, sign, shift, -1);
                for (uint64_t L = 0; t[i].transforms && L < t[i].nlead && rc == 0; L++) {
                    const double *x = t[i].transforms + 4 * L; /* one channel, its transform */
                    ro.transform = 1;
                    ro.clip_lo = x[0];
                    ro.clip_hi = x[1];
                    ro.scale = x[2];
                    ro.offset = x[3];
                    t[i].xf = 1;
                    rc = sample_box(&t[i], &ro, size, src_axis, sign, shift, (int64_t)L);
                }
                if (t[i].stats)
                    t[i].stats->box_read = 1;
            }
        } else {
            pthread_mutex_init(&c->mu, NULL);
            pthread_cond_init(&c->cv, NULL);
            for (size_t i = 0; i < ntargets; i++) /* one chunk size fits every array's tiles */
                if (t[i].buf_bytes > c->chunk_bytes)
                    c->chunk_bytes = (t[i].buf_bytes + 63) & ~(size_t)63;
            rc = sample_tiles(c);
            for (size_t i = 0; i < ntargets; i++)
                if (t[i].stats) {
                    t[i].stats->tiles_needed = t[i].needed;
                    t[i].stats->tiles_decoded = t[i].decoded;
                    t[i].stats->peak_bytes = c->peak; /* decode memory of the whole call */
                    t[i].stats->vector_lanes = c->vec_used ? 8 : 0;
                }
            arena_release(c);
            pthread_mutex_destroy(&c->mu);
            pthread_cond_destroy(&c->cv);
        }
    }
    free(t);
    free(c);
    return rc;
}

int vt_sample(const vt_array *a, const double *matrix, const uint64_t *size, const vt_sample_opts *sopts,
              const vt_read_opts *opts, void *out)
{
    if (a == NULL || matrix == NULL || size == NULL || out == NULL)
        return vt__fail(a ? a->store : NULL, VT_EINVAL, "vt_sample: NULL argument");
    vt_sample_opts sdef;
    if (sopts == NULL) {
        vt_sample_opts_init(&sdef);
        sopts = &sdef;
    }
    vt_sample_target t = {a, sopts->interp, opts, out, sopts->stats, NULL};
    return vt_sample_many(&t, 1, matrix, size, sopts->field, sopts->field ? sopts->field_shape : NULL,
                          opts ? opts->threads : 1);
}
