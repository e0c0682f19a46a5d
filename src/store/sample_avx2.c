/* vt_sample's kernel for 8 voxels at a time, compiled for AVX2 (this file
 * only is built with -mavx2), chosen at run time when the CPU has it.
 *
 * The arithmetic is the scalar path's, operation for operation and in the
 * same order (no fused multiply-add: -ffp-contract=off), so both give the same
 * bits: positions bz + m * i in double, floor and x - floor(x) (exact),
 * fractions rounded to float32, taps loaded from the decoded tiles, and
 * trilinear interpolation as a + w (b - a) in float32, with the tap-by-tap
 * form for the voxels whose result is not finite.
 *
 * There is no AVX-512 version: one taking 16 voxels (a block's row) in one
 * step, same bits, no gathers, was measured on the Zen 5 with AVX-512 this
 * was written on and gave no gain (time per rotated image+label pair, same
 * draws alternated in one process: 16 lanes / 8 lanes = 0.995 median of 60;
 * the kernel's share of perf samples the same within noise). What bounds the
 * kernel is its 4 pair loads per voxel and array and their addressing, not
 * the arithmetic the wider registers would halve. */
#include "sample_vec.h"

#include <immintrin.h>

/* 8 int32 lanes from two vectors of 4 doubles holding integers. */
static inline __m256i to_i32(__m256d lo, __m256d hi)
{
    return _mm256_set_m128i(_mm256_cvttpd_epi32(hi), _mm256_cvttpd_epi32(lo));
}

/* 8 float lanes from two vectors of 4 doubles, rounded to nearest. */
static inline __m256 to_f32(__m256d lo, __m256d hi)
{
    return _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
}

/* a + w (b - a), and a where w is 0 when @p exact. */
static inline __m256 lerp(__m256 a, __m256 b, __m256 w, int exact)
{
    __m256 r = _mm256_add_ps(a, _mm256_mul_ps(w, _mm256_sub_ps(b, a)));
    if (exact)
        r = _mm256_blendv_ps(r, a, _mm256_cmp_ps(w, _mm256_setzero_ps(), _CMP_EQ_OQ));
    return r;
}

static inline __m256 trilerp(const __m256 *v, __m256 wz, __m256 wy, __m256 wx, int exact)
{
    __m256 c00 = lerp(v[0], v[1], wx, exact), c01 = lerp(v[2], v[3], wx, exact);
    __m256 c10 = lerp(v[4], v[5], wx, exact), c11 = lerp(v[6], v[7], wx, exact);
    __m256 c0 = lerp(c00, c01, wy, exact), c1 = lerp(c10, c11, wy, exact);
    return lerp(c0, c1, wz, exact);
}

/* The pairs (x, x+1) at @p off from the 8 indices of @p idx, as two vectors:
 * the x taps and the x+1 taps. Plain 64-bit loads and two shuffles (cheaper
 * than gathers on the CPUs measured). */
static inline void float_pairs(const float *ar, const int32_t *idx, int32_t off, __m256 *v0, __m256 *v1)
{
    __m128 a = _mm_loadl_pi(_mm_setzero_ps(), (const __m64 *)(const void *)(ar + idx[0] + off));
    __m128 b = _mm_loadl_pi(_mm_setzero_ps(), (const __m64 *)(const void *)(ar + idx[2] + off));
    __m128 c = _mm_loadl_pi(_mm_setzero_ps(), (const __m64 *)(const void *)(ar + idx[4] + off));
    __m128 d = _mm_loadl_pi(_mm_setzero_ps(), (const __m64 *)(const void *)(ar + idx[6] + off));
    a = _mm_loadh_pi(a, (const __m64 *)(const void *)(ar + idx[1] + off));
    b = _mm_loadh_pi(b, (const __m64 *)(const void *)(ar + idx[3] + off));
    c = _mm_loadh_pi(c, (const __m64 *)(const void *)(ar + idx[5] + off));
    d = _mm_loadh_pi(d, (const __m64 *)(const void *)(ar + idx[7] + off));
    __m256 lo = _mm256_set_m128(c, a), hi = _mm256_set_m128(d, b); /* voxels 0 1 4 5 | 2 3 6 7 */
    *v0 = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
    *v1 = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
}

/* The pairs (x, x+1) of int16 at @p off from the 8 indices, each as one 32-bit
 * lane, by plain loads (see the gathers' cost below). */
static inline __m256i short_pairs(const int16_t *ar, const int32_t *idx, int32_t off)
{
    int32_t v[8];
    for (int l = 0; l < 8; l++)
        __builtin_memcpy(&v[l], ar + idx[l] + off, 4);
    return _mm256_loadu_si256((const __m256i *)(const void *)v);
}

unsigned vt__sample_row_avx2(const vt_vec_group *g, int64_t k, int64_t j, int64_t i0, int n, int64_t *iz,
                             int64_t *iy, int64_t *ix, double *fz, double *fy, double *fx, uint32_t *votes)
{
    int64_t *io[3] = {iz, iy, ix};
    double *fo[3] = {fz, fy, fx};
    const double *m = g->m;
    __m256d base[3], step[3];
    __m256i nlast[3], sh[3], d0[3], dnm1[3], mask[3], dn[3];
    for (int d = 0; d < 3; d++) {
        /* positions as row_positions computes them: (m0 k + m1 j + m3) + m2 i */
        base[d] = _mm256_set1_pd(m[4 * d] * (double)k + m[4 * d + 1] * (double)j + m[4 * d + 3]);
        step[d] = _mm256_set1_pd(m[4 * d + 2]);
        nlast[d] = _mm256_set1_epi32(g->nlast[d]);
        sh[d] = _mm256_set1_epi32(g->shift[d]);
        d0[d] = _mm256_set1_epi32(g->d0[d]);
        dn[d] = _mm256_set1_epi32(g->dn[d]);
        dnm1[d] = _mm256_set1_epi32(g->dn[d] - 1);
        mask[d] = _mm256_set1_epi32((1 << g->shift[d]) - 1);
    }
    const __m256i zero = _mm256_setzero_si256();
    const __m256i vst0 = _mm256_set1_epi32(g->st0), vst1 = _mm256_set1_epi32(g->st1);
    unsigned done = 0;
    for (int a = 0; a < g->narr; a++)
        votes[a] = 0;
    for (int q0 = 0; q0 + 8 <= n; q0 += 8) {
        __m256d ilo = _mm256_add_pd(_mm256_set1_pd((double)(i0 + q0)), _mm256_set_pd(3, 2, 1, 0));
        __m256d ihi = _mm256_add_pd(_mm256_set1_pd((double)(i0 + q0)), _mm256_set_pd(7, 6, 5, 4));
        __m256i fl[3], bad = zero;
        __m256 w[3];
        for (int d = 0; d < 3; d++) {
            __m256d plo = _mm256_add_pd(base[d], _mm256_mul_pd(step[d], ilo));
            __m256d phi = _mm256_add_pd(base[d], _mm256_mul_pd(step[d], ihi));
            __m256d flo = _mm256_floor_pd(plo), fhi = _mm256_floor_pd(phi);
            __m256d rlo = _mm256_sub_pd(plo, flo), rhi = _mm256_sub_pd(phi, fhi);
            /* floors beyond int32 give the indefinite integer, which fails the range test */
            fl[d] = to_i32(flo, fhi);
            w[d] = to_f32(rlo, rhi);
            /* floors and fractions for the caller (voxels to vote on, groups left to it) */
            _mm256_storeu_pd(fo[d] + q0, rlo);
            _mm256_storeu_pd(fo[d] + q0 + 4, rhi);
            _mm256_storeu_si256((__m256i *)(void *)(io[d] + q0), _mm256_cvtepi32_epi64(_mm256_castsi256_si128(fl[d])));
            _mm256_storeu_si256((__m256i *)(void *)(io[d] + q0 + 4),
                                _mm256_cvtepi32_epi64(_mm256_extracti128_si256(fl[d], 1)));
            /* every tap inside the array: 0 <= floor <= n - 2 */
            bad = _mm256_or_si256(bad, _mm256_cmpgt_epi32(zero, fl[d]));
            bad = _mm256_or_si256(bad, _mm256_cmpgt_epi32(fl[d], nlast[d]));
        }
        if (!_mm256_testz_si256(bad, bad))
            continue;
        /* the tile of each lane through the dense table, and the offset inside it */
        __m256i idx = zero, local = zero;
        for (int d = 0; d < 3; d++) {
            __m256i t = _mm256_sub_epi32(_mm256_srav_epi32(fl[d], sh[d]), d0[d]);
            bad = _mm256_or_si256(bad, _mm256_cmpgt_epi32(zero, t));
            bad = _mm256_or_si256(bad, _mm256_cmpgt_epi32(t, dnm1[d]));
            idx = _mm256_add_epi32(_mm256_mullo_epi32(idx, dn[d]), t);
        }
        if (!_mm256_testz_si256(bad, bad))
            continue;
        local = _mm256_add_epi32(_mm256_mullo_epi32(_mm256_and_si256(fl[0], mask[0]), vst0),
                                 _mm256_mullo_epi32(_mm256_and_si256(fl[1], mask[1]), vst1));
        local = _mm256_add_epi32(local, _mm256_and_si256(fl[2], mask[2]));
        __m256i e[VT_VEC_MAX_ARRAYS];
        int ok = 1;
        int32_t t0 = _mm256_cvtsi256_si32(idx);
        if (_mm256_movemask_epi8(_mm256_cmpeq_epi32(idx, _mm256_set1_epi32(t0))) == -1) {
            /* the 8 voxels in one tile (most groups): scalar lookups instead of gathers */
            int32_t sl = g->table[t0];
            if (sl < 0)
                continue;
            for (int a = 0; a < g->narr && ok; a++) {
                int32_t b = g->a[a].base[sl];
                ok = b >= 0;
                e[a] = _mm256_add_epi32(_mm256_set1_epi32(b), local);
            }
        } else {
            __m256i slot = _mm256_i32gather_epi32(g->table, idx, 4);
            if (_mm256_movemask_ps(_mm256_castsi256_ps(slot)) != 0) /* a tile not planned */
                continue;
            for (int a = 0; a < g->narr && ok; a++) {
                __m256i b = _mm256_i32gather_epi32(g->a[a].base, slot, 4);
                ok = _mm256_movemask_ps(_mm256_castsi256_ps(b)) == 0; /* every tile decoded */
                e[a] = _mm256_add_epi32(b, local);
            }
        }
        if (!ok)
            continue;
        for (int a = 0; a < g->narr; a++) {
            int32_t at[8]; /* the 8 voxels' first taps */
            _mm256_storeu_si256((__m256i *)(void *)at, e[a]);
            if (g->a[a].kind == VT_VEC_LINEAR) {
                const float *ar = g->a[a].arena;
                __m256 v[8];
                float_pairs(ar, at, 0, &v[0], &v[1]);
                float_pairs(ar, at, g->st1, &v[2], &v[3]);
                float_pairs(ar, at, g->st0, &v[4], &v[5]);
                float_pairs(ar, at, g->st0 + g->st1, &v[6], &v[7]);
                __m256 r = trilerp(v, w[0], w[1], w[2], 0);
                __m256 finite = _mm256_cmp_ps(_mm256_sub_ps(r, r), _mm256_setzero_ps(), _CMP_EQ_OQ);
                if (_mm256_movemask_ps(finite) != 0xff) /* those lanes tap by tap, as the scalar path */
                    r = _mm256_blendv_ps(trilerp(v, w[0], w[1], w[2], 1), r, finite);
                _mm256_storeu_ps(g->a[a].rf + q0, r);
            } else {
                /* pairs (x, x+1) of int16 as one 32-bit load: 4 x 8 loads give the 8 taps
                 * (vpgatherdd instead cost the kernel 8-26 % more on the Zen 5 measured) */
                const int16_t *ar = g->a[a].arena;
                __m256i p0 = short_pairs(ar, at, 0), p1 = short_pairs(ar, at, g->st1);
                __m256i p2 = short_pairs(ar, at, g->st0), p3 = short_pairs(ar, at, g->st0 + g->st1);
                __m256i lo = _mm256_srai_epi32(_mm256_slli_epi32(p0, 16), 16); /* the first tap, sign-extended */
                __m256i hi = _mm256_srai_epi32(p0, 16);
                __m256i same = _mm256_and_si256(_mm256_cmpeq_epi32(p0, p1), _mm256_cmpeq_epi32(p0, p2));
                same = _mm256_and_si256(same, _mm256_and_si256(_mm256_cmpeq_epi32(p0, p3), _mm256_cmpeq_epi32(lo, hi)));
                _mm256_storeu_si256((__m256i *)(void *)(g->a[a].ri + q0), lo);
                votes[a] |= ((uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(same)) ^ 0xffu) << q0;
            }
        }
        done |= 1u << (q0 / 8);
    }
    return done;
}
