/* Tile codecs over liblz4, and the byte-shuffle filter. */
#include "codec.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <lz4.h>
#include <lz4hc.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
/* 16 elements per step: de-interleave bytes by unpacking twice (4-byte
 * elements) or once (2-byte). Returns the elements done. */
static size_t shuffle_sse2(const unsigned char *s, size_t n, size_t elem_size, unsigned char *d)
{
    size_t k = 0;
    if (elem_size == 4) {
        for (; k + 16 <= n; k += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(s + 4 * k));
            __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(s + 4 * k + 16));
            __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(s + 4 * k + 32));
            __m128i e = _mm_loadu_si128((const __m128i *)(const void *)(s + 4 * k + 48));
            /* three levels of byte unpacking transpose 16 x 4 bytes into 4 x 16:
             * after them u0 = byte 0 then byte 1 of elements 0-7, u1 = bytes 2
             * and 3 of elements 0-7, u2 and u3 the same of elements 8-15 */
            __m128i t0 = _mm_unpacklo_epi8(a, b), t1 = _mm_unpackhi_epi8(a, b);
            __m128i t2 = _mm_unpacklo_epi8(c, e), t3 = _mm_unpackhi_epi8(c, e);
            __m128i v0 = _mm_unpacklo_epi8(t0, t1), v1 = _mm_unpackhi_epi8(t0, t1);
            __m128i v2 = _mm_unpacklo_epi8(t2, t3), v3 = _mm_unpackhi_epi8(t2, t3);
            __m128i u0 = _mm_unpacklo_epi8(v0, v1), u1 = _mm_unpackhi_epi8(v0, v1);
            __m128i u2 = _mm_unpacklo_epi8(v2, v3), u3 = _mm_unpackhi_epi8(v2, v3);
            _mm_storeu_si128((__m128i *)(void *)(d + k), _mm_unpacklo_epi64(u0, u2));
            _mm_storeu_si128((__m128i *)(void *)(d + n + k), _mm_unpackhi_epi64(u0, u2));
            _mm_storeu_si128((__m128i *)(void *)(d + 2 * n + k), _mm_unpacklo_epi64(u1, u3));
            _mm_storeu_si128((__m128i *)(void *)(d + 3 * n + k), _mm_unpackhi_epi64(u1, u3));
        }
    } else if (elem_size == 2) {
        const __m128i lo = _mm_set1_epi16(0x00ff);
        for (; k + 16 <= n; k += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(s + 2 * k));
            __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(s + 2 * k + 16));
            _mm_storeu_si128((__m128i *)(void *)(d + k),
                             _mm_packus_epi16(_mm_and_si128(a, lo), _mm_and_si128(b, lo)));
            _mm_storeu_si128((__m128i *)(void *)(d + n + k),
                             _mm_packus_epi16(_mm_srli_epi16(a, 8), _mm_srli_epi16(b, 8)));
        }
    }
    return k;
}
#endif

void vt__shuffle(const void *src, void *dst, size_t n, size_t elem_size)
{
    const unsigned char *s = src;
    unsigned char *d = dst;
    if (elem_size == 1) {
        memcpy(d, s, n);
        return;
    }
    size_t k = 0;
#if defined(__SSE2__)
    k = shuffle_sse2(s, n, elem_size, d);
#endif
    for (size_t b = 0; b < elem_size; b++) {
        unsigned char *plane = d + b * n;
        for (size_t i = k; i < n; i++)
            plane[i] = s[i * elem_size + b];
    }
}

void vt__unshuffle(const void *src, void *dst, size_t n, size_t elem_size)
{
    vt__unshuffle_range(src, n, elem_size, 0, n, dst);
}

#if defined(__SSE2__)
#define LD(p) _mm_loadu_si128((const __m128i *)(const void *)(p))
#define ST(p, v) _mm_storeu_si128((__m128i *)(void *)(p), (v))

/* 16 elements per step: byte planes interleaved by unpacking bytes, then
 * 16-bit, then 32-bit lanes. Returns the number of elements done. */
static size_t unshuffle_sse2(const unsigned char *s, size_t nelem, size_t elem_size, size_t n,
                             unsigned char *d)
{
    size_t k = 0;
    if (elem_size == 2) {
        for (; k + 16 <= n; k += 16) {
            __m128i p0 = LD(s + k), p1 = LD(s + nelem + k);
            ST(d + 2 * k, _mm_unpacklo_epi8(p0, p1));
            ST(d + 2 * k + 16, _mm_unpackhi_epi8(p0, p1));
        }
    } else if (elem_size == 4) {
        for (; k + 16 <= n; k += 16) {
            __m128i p0 = LD(s + k), p1 = LD(s + nelem + k);
            __m128i p2 = LD(s + 2 * nelem + k), p3 = LD(s + 3 * nelem + k);
            __m128i a = _mm_unpacklo_epi8(p0, p1), b = _mm_unpackhi_epi8(p0, p1);
            __m128i c = _mm_unpacklo_epi8(p2, p3), e = _mm_unpackhi_epi8(p2, p3);
            ST(d + 4 * k, _mm_unpacklo_epi16(a, c));
            ST(d + 4 * k + 16, _mm_unpackhi_epi16(a, c));
            ST(d + 4 * k + 32, _mm_unpacklo_epi16(b, e));
            ST(d + 4 * k + 48, _mm_unpackhi_epi16(b, e));
        }
    } else if (elem_size == 8) {
        for (; k + 16 <= n; k += 16) {
            __m128i p[8], q[8], r[8];
            for (int b = 0; b < 8; b++)
                p[b] = LD(s + (size_t)b * nelem + k);
            for (int b = 0; b < 4; b++) { /* byte pairs: elements 0-7 and 8-15 */
                q[2 * b] = _mm_unpacklo_epi8(p[2 * b], p[2 * b + 1]);
                q[2 * b + 1] = _mm_unpackhi_epi8(p[2 * b], p[2 * b + 1]);
            }
            for (int h = 0; h < 2; h++) { /* 4-byte groups */
                r[4 * h + 0] = _mm_unpacklo_epi16(q[h], q[2 + h]);
                r[4 * h + 1] = _mm_unpackhi_epi16(q[h], q[2 + h]);
                r[4 * h + 2] = _mm_unpacklo_epi16(q[4 + h], q[6 + h]);
                r[4 * h + 3] = _mm_unpackhi_epi16(q[4 + h], q[6 + h]);
            }
            /* r[4h+0] bytes 0-3 of elems 8h+0..3, r[4h+2] bytes 4-7 of the same */
            for (int h = 0; h < 2; h++)
                for (int j = 0; j < 2; j++) {
                    __m128i lo = r[4 * h + j], hi = r[4 * h + 2 + j];
                    unsigned char *o = d + 8 * (k + 8 * (size_t)h + 4 * (size_t)j);
                    ST(o, _mm_unpacklo_epi32(lo, hi));
                    ST(o + 16, _mm_unpackhi_epi32(lo, hi));
                }
        }
    }
    return k;
}
#endif

void vt__unshuffle_range(const void *src, size_t nelem, size_t elem_size, size_t first, size_t n,
                         void *dst)
{
    const unsigned char *s = (const unsigned char *)src + first;
    unsigned char *d = dst;
    if (elem_size == 1) {
        memcpy(d, s, n);
        return;
    }
    size_t k = 0;
#if defined(__SSE2__)
    k = unshuffle_sse2(s, nelem, elem_size, n, d);
#endif
    for (size_t b = 0; b < elem_size; b++) {
        const unsigned char *plane = s + b * nelem;
        for (size_t i = k; i < n; i++)
            d[i * elem_size + b] = plane[i];
    }
}

void vt__codec_ctx_free(vt_codec_ctx *c)
{
    if (c == NULL)
        return;
    free(c->state);
    c->state = NULL;
    c->state_size = 0;
}

size_t vt__compress_bound(size_t n) { return (size_t)LZ4_compressBound((int)n); }

int vt__codec_default_level(vt_codec codec)
{
    return codec == VT_CODEC_LZ4HC ? 4 : 1;
}

bool vt__codec_level_ok(vt_codec codec, int level)
{
    switch (codec) {
    case VT_CODEC_NONE: return level == 0;
    case VT_CODEC_LZ4: return level >= 1 && level <= 65537;
    case VT_CODEC_LZ4HC: return level >= 1 && level <= LZ4HC_CLEVEL_MAX;
    default: return false;
    }
}

static int ensure_state(vt_codec_ctx *c, size_t need)
{
    if (c->state_size >= need)
        return 0;
    void *p = vt__malloc(need);
    if (p == NULL)
        return VT_ENOMEM;
    free(c->state);
    c->state = p;
    c->state_size = need;
    return 0;
}

long vt__compress(vt_codec_ctx *c, vt_codec codec, int level, const void *src, size_t n,
                  void *dst, size_t cap)
{
    if (n > (size_t)LZ4_MAX_INPUT_SIZE)
        return VT_ERANGE;
    int icap = cap > (size_t)INT32_MAX ? INT32_MAX : (int)cap;
    int r;
    switch (codec) {
    case VT_CODEC_LZ4:
        if (ensure_state(c, (size_t)LZ4_sizeofState()))
            return VT_ENOMEM;
        r = LZ4_compress_fast_extState(c->state, src, dst, (int)n, icap, level);
        break;
    case VT_CODEC_LZ4HC:
        if (ensure_state(c, (size_t)LZ4_sizeofStateHC()))
            return VT_ENOMEM;
        r = LZ4_compress_HC_extStateHC(c->state, src, dst, (int)n, icap, level);
        break;
    default: return VT_EINVAL;
    }
    return r;
}

int vt__decompress(vt_codec codec, const void *src, size_t n, void *dst, size_t raw)
{
    if (codec != VT_CODEC_LZ4 && codec != VT_CODEC_LZ4HC)
        return VT_ECORRUPT;
    if (n > (size_t)INT32_MAX || raw > (size_t)INT32_MAX)
        return VT_ECORRUPT;
    int r = LZ4_decompress_safe(src, dst, (int)n, (int)raw);
    return (r >= 0 && (size_t)r == raw) ? 0 : VT_ECORRUPT;
}
