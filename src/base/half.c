/* float16 and bfloat16 conversions: a portable bit-exact implementation and an
 * F16C fast path chosen at run time. Both give numpy's astype(float16) result
 * for every input; NaN lanes of the F16C path are redone by the portable code
 * because F16C quiets signalling NaNs and numpy does not. */
#include "half.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define VT_HAVE_X86 1
#endif

uint16_t vt__f32_to_f16_bits(uint32_t f)
{
    uint16_t sign = (uint16_t)((f >> 16) & 0x8000u);
    uint32_t exp = (f >> 23) & 0xffu;
    uint32_t mant = f & 0x7fffffu;

    if (exp == 0xffu) { /* inf or NaN */
        if (mant == 0)
            return sign | 0x7c00u;
        uint32_t m = mant >> 13;
        return (uint16_t)(sign | 0x7c00u | (m ? m : 1u));
    }
    if (exp < 113) { /* below 2^-14: a float16 subnormal or zero */
        int shift = 126 - (int)exp; /* value * 2^24 = full >> shift */
        if (shift > 24)
            return sign;
        uint32_t full = mant | 0x800000u;
        uint32_t q = full >> shift;
        uint32_t rem = full & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u)))
            q++;
        return (uint16_t)(sign | q);
    }
    uint32_t q = ((exp - 112u) << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u)))
        q++;
    if (q >= 0x7c00u)
        return sign | 0x7c00u;
    return (uint16_t)(sign | q);
}

uint32_t vt__f16_to_f32_bits(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        if (mant == 0)
            return sign;
        /* subnormal: normalise */
        int e = -1;
        do {
            e++;
            mant <<= 1;
        } while ((mant & 0x400u) == 0);
        return sign | ((uint32_t)(112 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
    if (exp == 31)
        return sign | 0x7f800000u | (mant << 13);
    return sign | ((exp + 112u) << 23) | (mant << 13);
}

/* double -> a binary format with @p E exponent and @p M mantissa bits, round to
 * nearest even; returns the magnitude bits (sign added by the caller). NaN is
 * left to the caller. */
static uint32_t f64_to_small(uint64_t d, int E, int M)
{
    uint32_t maxexp = (1u << E) - 1u;
    int bias = (int)(maxexp >> 1);
    uint32_t exp = (uint32_t)(d >> 52) & 0x7ffu;
    uint64_t mant = d & ((UINT64_C(1) << 52) - 1u);

    if (exp == 0x7ffu) /* infinity (NaN handled by the caller) */
        return maxexp << M;
    if (exp == 0) /* double zero or subnormal: far below any small subnormal */
        return 0;
    int e = (int)exp - 1023;
    int he = e + bias;
    uint64_t q, rem, half;
    if (he >= 1) {
        if (he >= (int)maxexp)
            return maxexp << M;
        int sh = 52 - M;
        q = ((uint64_t)he << M) | (mant >> sh);
        rem = mant & ((UINT64_C(1) << sh) - 1u);
        half = UINT64_C(1) << (sh - 1);
    } else {
        int sh = 53 - bias - M - e;
        if (sh > 53)
            return 0;
        uint64_t full = mant | (UINT64_C(1) << 52);
        q = full >> sh;
        rem = full & ((UINT64_C(1) << sh) - 1u);
        half = UINT64_C(1) << (sh - 1);
    }
    if (rem > half || (rem == half && (q & 1u)))
        q++;
    if (q >= ((uint64_t)maxexp << M))
        return maxexp << M;
    return (uint32_t)q;
}

uint16_t vt__f64_to_f16_bits(uint64_t d)
{
    uint16_t sign = (uint16_t)((d >> 48) & 0x8000u);
    if ((d & UINT64_C(0x7fffffffffffffff)) > UINT64_C(0x7ff0000000000000)) {
        uint32_t m = (uint32_t)((d & ((UINT64_C(1) << 52) - 1u)) >> 42);
        return (uint16_t)(sign | 0x7c00u | (m ? m : 1u));
    }
    return (uint16_t)(sign | f64_to_small(d, 5, 10));
}

uint16_t vt__f32_to_bf16_bits(uint32_t f)
{
    if ((f & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)(((f >> 16) & 0x8000u) | 0x7fc0u);
    uint32_t r = 0x7fffu + ((f >> 16) & 1u);
    return (uint16_t)((f + r) >> 16);
}

uint16_t vt__f64_to_bf16_bits(uint64_t d)
{
    uint16_t sign = (uint16_t)((d >> 48) & 0x8000u);
    if ((d & UINT64_C(0x7fffffffffffffff)) > UINT64_C(0x7ff0000000000000))
        return sign | 0x7fc0u;
    return (uint16_t)(sign | f64_to_small(d, 8, 7));
}

/* ---- array conversions -------------------------------------------------- */

static void f32_to_f16_portable(const void *src, uint16_t *dst, size_t n)
{
    const unsigned char *s = src;
    for (size_t i = 0; i < n; i++)
        dst[i] = vt__f32_to_f16_bits(vt__ld32(s + 4 * i));
}

static void f16_to_f32_portable(const void *src, float *dst, size_t n)
{
    const unsigned char *s = src;
    for (size_t i = 0; i < n; i++) {
        uint32_t b = vt__f16_to_f32_bits(vt__ld16(s + 2 * i));
        memcpy(&dst[i], &b, 4);
    }
}

#ifdef VT_HAVE_X86
__attribute__((target("avx,f16c"))) static void f32_to_f16_f16c(const void *src, uint16_t *dst,
                                                                size_t n)
{
    const unsigned char *s = src;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps((const float *)(const void *)(s + 4 * i));
        __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128((__m128i *)(void *)(dst + i), h);
        int nan = _mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        while (nan) {
            int k = __builtin_ctz((unsigned)nan);
            dst[i + (size_t)k] = vt__f32_to_f16_bits(vt__ld32(s + 4 * (i + (size_t)k)));
            nan &= nan - 1;
        }
    }
    if (i < n) { /* the tail through a padded vector */
        float in[8] = {0};
        uint16_t out[8];
        memcpy(in, s + 4 * i, 4 * (n - i));
        f32_to_f16_f16c(in, out, 8);
        memcpy(dst + i, out, 2 * (n - i));
    }
}

__attribute__((target("avx,f16c"))) static void f16_to_f32_f16c(const void *src, float *dst,
                                                                size_t n)
{
    const unsigned char *s = src;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(s + 2 * i));
        __m256 v = _mm256_cvtph_ps(h);
        _mm256_storeu_ps(dst + i, v);
        int nan = _mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        while (nan) {
            int k = __builtin_ctz((unsigned)nan);
            uint32_t b = vt__f16_to_f32_bits(vt__ld16(s + 2 * (i + (size_t)k)));
            memcpy(&dst[i + (size_t)k], &b, 4);
            nan &= nan - 1;
        }
    }
    f16_to_f32_portable(s + 2 * i, dst + i, n - i);
}
#endif

/* One float32 of a shuffled block. */
static inline uint32_t plane_f32(const unsigned char *p, size_t nelem, size_t i)
{
    return (uint32_t)p[i] | (uint32_t)p[nelem + i] << 8 | (uint32_t)p[2 * nelem + i] << 16 |
           (uint32_t)p[3 * nelem + i] << 24;
}

static void planes_to_f16_portable(const unsigned char *p, size_t nelem, size_t first, size_t n,
                                   uint16_t *dst)
{
    for (size_t k = 0; k < n; k++)
        dst[k] = vt__f32_to_f16_bits(plane_f32(p, nelem, first + k));
}

#ifdef VT_HAVE_X86
/* 16 elements a step: bytes of the 4 planes interleaved with unpacks into 4
 * vectors of 4 floats, converted pairwise as 8. NaN lanes redone in scalar. */
/* 16 elements of 4 byte planes (nelem apart) to float16: bytes interleaved
 * with unpacks into 4 vectors of 4 floats, converted as 2 x 8. NaN lanes are
 * redone in scalar (numpy keeps signalling NaNs). */
__attribute__((target("avx,f16c"))) static inline void planes16_f16c(const unsigned char *s, size_t nelem,
                                                                     uint16_t *dst)
{
    __m128i p0 = _mm_loadu_si128((const __m128i *)(const void *)s);
    __m128i p1 = _mm_loadu_si128((const __m128i *)(const void *)(s + nelem));
    __m128i p2 = _mm_loadu_si128((const __m128i *)(const void *)(s + 2 * nelem));
    __m128i p3 = _mm_loadu_si128((const __m128i *)(const void *)(s + 3 * nelem));
    __m128i a = _mm_unpacklo_epi8(p0, p1), b = _mm_unpackhi_epi8(p0, p1);
    __m128i c = _mm_unpacklo_epi8(p2, p3), e = _mm_unpackhi_epi8(p2, p3);
    __m256 lo = _mm256_castsi256_ps(
        _mm256_insertf128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi16(a, c)), _mm_unpackhi_epi16(a, c), 1));
    __m256 hi = _mm256_castsi256_ps(
        _mm256_insertf128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi16(b, e)), _mm_unpackhi_epi16(b, e), 1));
    _mm_storeu_si128((__m128i *)(void *)dst, _mm256_cvtps_ph(lo, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    _mm_storeu_si128((__m128i *)(void *)(dst + 8), _mm256_cvtps_ph(hi, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    int nan = _mm256_movemask_ps(_mm256_cmp_ps(lo, lo, _CMP_UNORD_Q)) |
              _mm256_movemask_ps(_mm256_cmp_ps(hi, hi, _CMP_UNORD_Q)) << 8;
    while (__builtin_expect(nan, 0)) {
        int j = __builtin_ctz((unsigned)nan);
        dst[j] = vt__f32_to_f16_bits(plane_f32(s, nelem, (size_t)j));
        nan &= nan - 1;
    }
}

__attribute__((target("avx,f16c"))) static inline void planes_to_f16_f16c(const unsigned char *p, size_t nelem,
                                                                   size_t first, size_t n, uint16_t *dst)
{
    const unsigned char *s = p + first;
    size_t k = 0;
    for (; k + 16 <= n; k += 16)
        planes16_f16c(s + k, nelem, dst + k);
    if (k < n) { /* the tail through padded planes */
        unsigned char pad[4 * 16] = {0};
        uint16_t out[16];
        for (int b = 0; b < 4; b++)
            memcpy(pad + 16 * b, s + (size_t)b * nelem + k, n - k);
        planes16_f16c(pad, 16, out);
        memcpy(dst + k, out, 2 * (n - k));
    }
}
#endif

static void planes_rows_portable(const unsigned char *p, size_t nelem, int64_t first, size_t n, size_t rows,
                                 int64_t src_step, uint16_t *dst, int64_t dst_step)
{
    for (size_t r = 0; r < rows; r++)
        planes_to_f16_portable(p, nelem, (size_t)(first + (int64_t)r * src_step), n, dst + (int64_t)r * dst_step);
}

#ifdef VT_HAVE_X86
__attribute__((target("avx,f16c"))) static void planes_rows_f16c(const unsigned char *p, size_t nelem, int64_t first,
                                                                 size_t n, size_t rows, int64_t src_step,
                                                                 uint16_t *dst, int64_t dst_step)
{
    for (size_t r = 0; r < rows; r++)
        planes_to_f16_f16c(p, nelem, (size_t)(first + (int64_t)r * src_step), n, dst + (int64_t)r * dst_step);
}
#endif

#ifdef VT_HAVE_X86
/* The rounding immediate of the conversions (a macro: -O0 builds need a literal). */
#define VT_RND (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

/* NaN lanes of a converted vector, redone in scalar from the planes. */
__attribute__((target("avx2,f16c"))) static inline void fix_nan8(__m256 v, const unsigned char *s, size_t nelem,
                                                                 size_t at, uint16_t *dst)
{
    int nan = _mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    while (__builtin_expect(nan, 0)) {
        int j = __builtin_ctz((unsigned)nan);
        dst[j] = vt__f32_to_f16_bits(plane_f32(s, nelem, at + (size_t)j));
        nan &= nan - 1;
    }
}

/* Rows of 16 elements that follow each other in the planes (a full 16-wide
 * tile), two at a time: 256-bit unpacks interleave 32 elements (in-lane:
 * elements 0-7 and 16-23 share a vector), lanes regrouped, converted as 4 x 8. */
__attribute__((target("avx2,f16c"))) static void planes_rows_avx2(const unsigned char *p, size_t nelem, int64_t first,
                                                                  size_t n, size_t rows, int64_t src_step,
                                                                  uint16_t *dst, int64_t dst_step)
{
    size_t r = 0;
    if (n == 16 && src_step == 16)
        for (; r + 2 <= rows; r += 2) {
            const unsigned char *s = p + first + (int64_t)r * 16;
            __m256i p0 = _mm256_loadu_si256((const __m256i *)(const void *)s);
            __m256i p1 = _mm256_loadu_si256((const __m256i *)(const void *)(s + nelem));
            __m256i p2 = _mm256_loadu_si256((const __m256i *)(const void *)(s + 2 * nelem));
            __m256i p3 = _mm256_loadu_si256((const __m256i *)(const void *)(s + 3 * nelem));
            __m256i a = _mm256_unpacklo_epi8(p0, p1), b = _mm256_unpackhi_epi8(p0, p1);
            __m256i c = _mm256_unpacklo_epi8(p2, p3), e = _mm256_unpackhi_epi8(p2, p3);
            __m256i f0 = _mm256_unpacklo_epi16(a, c), f1 = _mm256_unpackhi_epi16(a, c); /* 0-3|16-19, 4-7|20-23 */
            __m256i f2 = _mm256_unpacklo_epi16(b, e), f3 = _mm256_unpackhi_epi16(b, e); /* 8-11|24-27, 12-15|28-31 */
            __m256 v0 = _mm256_castsi256_ps(_mm256_permute2x128_si256(f0, f1, 0x20)); /* 0-7 */
            __m256 v1 = _mm256_castsi256_ps(_mm256_permute2x128_si256(f2, f3, 0x20)); /* 8-15 */
            __m256 v2 = _mm256_castsi256_ps(_mm256_permute2x128_si256(f0, f1, 0x31)); /* 16-23 */
            __m256 v3 = _mm256_castsi256_ps(_mm256_permute2x128_si256(f2, f3, 0x31)); /* 24-31 */
            uint16_t *d0 = dst + (int64_t)r * dst_step, *d1 = d0 + dst_step;
            _mm_storeu_si128((__m128i *)(void *)d0, _mm256_cvtps_ph(v0, VT_RND));
            _mm_storeu_si128((__m128i *)(void *)(d0 + 8), _mm256_cvtps_ph(v1, VT_RND));
            _mm_storeu_si128((__m128i *)(void *)d1, _mm256_cvtps_ph(v2, VT_RND));
            _mm_storeu_si128((__m128i *)(void *)(d1 + 8), _mm256_cvtps_ph(v3, VT_RND));
            size_t at = (size_t)(first + (int64_t)r * 16);
            fix_nan8(v0, p, nelem, at, d0);
            fix_nan8(v1, p, nelem, at + 8, d0 + 8);
            fix_nan8(v2, p, nelem, at + 16, d1);
            fix_nan8(v3, p, nelem, at + 24, d1 + 8);
        }
    for (; r < rows; r++)
        planes_to_f16_f16c(p, nelem, (size_t)(first + (int64_t)r * src_step), n, dst + (int64_t)r * dst_step);
}
#endif

static void (*planes_to_f16_impl)(const unsigned char *, size_t, size_t, size_t, uint16_t *) =
    planes_to_f16_portable;
static void (*planes_rows_impl)(const unsigned char *, size_t, int64_t, size_t, size_t, int64_t, uint16_t *,
                                int64_t) = planes_rows_portable;
static void (*f32_to_f16_impl)(const void *, uint16_t *, size_t) = f32_to_f16_portable;
static void (*f16_to_f32_impl)(const void *, float *, size_t) = f16_to_f32_portable;

/* F16C from CPUID (leaf 1, ECX bit 29), with AVX and the OS saving YMM state
 * (OSXSAVE, then XCR0 bits 1-2): __builtin_cpu_supports("f16c") is GCC-only
 * (clang 14 rejects the feature name). */
static int cpu_has_f16c(void)
{
#ifdef VT_HAVE_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    if (!(c & bit_OSXSAVE) || !(c & bit_AVX) || !(c & bit_F16C))
        return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    return (lo & 6) == 6;
#else
    return 0;
#endif
}

void vt__half_force_portable(int on)
{
#ifdef VT_HAVE_X86
    if (!on && cpu_has_f16c()) {
        f32_to_f16_impl = f32_to_f16_f16c;
        f16_to_f32_impl = f16_to_f32_f16c;
        planes_to_f16_impl = planes_to_f16_f16c;
        planes_rows_impl = planes_rows_f16c;
        if (__builtin_cpu_supports("avx2") && getenv("VT_NO_AVX2") == NULL)
            planes_rows_impl = planes_rows_avx2;
        return;
    }
#endif
    (void)on;
    f32_to_f16_impl = f32_to_f16_portable;
    f16_to_f32_impl = f16_to_f32_portable;
    planes_to_f16_impl = planes_to_f16_portable;
    planes_rows_impl = planes_rows_portable;
}

__attribute__((constructor)) static void half_init(void) { vt__half_force_portable(0); }

int vt__half_uses_f16c(void) { return f32_to_f16_impl != f32_to_f16_portable; }

void vt__f32_to_f16(const void *src, uint16_t *dst, size_t n) { f32_to_f16_impl(src, dst, n); }

void vt__f16_to_f32(const void *src, float *dst, size_t n) { f16_to_f32_impl(src, dst, n); }

void vt__f32_planes_to_f16(const unsigned char *planes, size_t nelem, size_t first, size_t n,
                           uint16_t *dst)
{
    planes_to_f16_impl(planes, nelem, first, n, dst);
}

void vt__f32_planes_to_f16_rows(const unsigned char *planes, size_t nelem, int64_t first, size_t n, size_t rows,
                                int64_t src_step, uint16_t *dst, int64_t dst_step)
{
    planes_rows_impl(planes, nelem, first, n, rows, src_step, dst, dst_step);
}
