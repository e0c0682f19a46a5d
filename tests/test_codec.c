/* Byte shuffle, the SIMD unshuffle of element ranges, and the LZ4 codecs,
 * against plain loops written here. */
#include "codec.h"
#include "format.h"
#include "testutil.h"

START_TEST(unshuffle_ranges_match_a_plain_loop)
{
    rng r = {5};
    unsigned char src[8 * 300], ref[8 * 300], out[8 * 300 + 16];
    for (size_t es = 1; es <= 8; es++)
        for (int it = 0; it < 400; it++) {
            size_t nelem = (size_t)rng_range(&r, 1, 300);
            size_t first = (size_t)rng_range(&r, 0, (int64_t)nelem - 1);
            size_t n = (size_t)rng_range(&r, 0, (int64_t)(nelem - first));
            for (size_t i = 0; i < es * nelem; i++)
                src[i] = (unsigned char)rng_next(&r);
            for (size_t k = 0; k < n; k++) /* byte b of element first+k sits at b*nelem + first+k */
                for (size_t b = 0; b < es; b++)
                    ref[k * es + b] = src[b * nelem + first + k];
            memset(out, 0xEE, sizeof out);
            vt__unshuffle_range(src, nelem, es, first, n, out);
            TU_CHECK(memcmp(out, ref, n * es) == 0, "es %zu nelem %zu first %zu n %zu differs", es, nelem,
                     first, n);
            TU_CHECK(out[n * es] == 0xEE, "es %zu n %zu: wrote past the range", es, n);
            /* shuffle against the definition, and as the inverse */
            unsigned char back[8 * 300], plain[8 * 300];
            for (size_t i = 0; i < nelem; i++)
                for (size_t b = 0; b < es; b++)
                    plain[b * nelem + i] = src[i * es + b];
            vt__shuffle(src, back, nelem, es);
            TU_CHECK(memcmp(back, plain, nelem * es) == 0, "es %zu nelem %zu: shuffle differs from its definition",
                     es, nelem);
            vt__unshuffle(src, out, nelem, es);
            vt__shuffle(out, back, nelem, es);
            TU_CHECK(memcmp(back, src, nelem * es) == 0, "es %zu: shuffle(unshuffle(x)) != x", es);
        }
}
END_TEST

START_TEST(codecs_round_trip_and_reject_damage)
{
    rng r = {6};
    enum { N = 70000 };
    unsigned char *src = malloc(N), *comp = malloc(vt__compress_bound(N)), *dec = malloc(N);
    for (size_t i = 0; i < N; i++)
        src[i] = (unsigned char)(i % 251 < 100 ? 7 : rng_next(&r));
    vt_codec_ctx ctx = {0};
    for (int codec = VT_CODEC_LZ4; codec <= VT_CODEC_LZ4HC; codec++) {
        long c = vt__compress(&ctx, (vt_codec)codec, codec == VT_CODEC_LZ4 ? 1 : 9, src, N, comp,
                              vt__compress_bound(N));
        ck_assert_int_gt(c, 0);
        ck_assert_int_lt(c, N);
        ck_assert_int_eq(vt__decompress((vt_codec)codec, comp, (size_t)c, dec, N), 0);
        ck_assert(memcmp(dec, src, N) == 0);
        /* wrong expected size, truncated input, damaged input: errors, never overruns */
        ck_assert_int_eq(vt__decompress((vt_codec)codec, comp, (size_t)c, dec, N - 1), VT_ECORRUPT);
        ck_assert_int_eq(vt__decompress((vt_codec)codec, comp, (size_t)c - 1, dec, N), VT_ECORRUPT);
        ck_assert_int_eq(vt__decompress(VT_CODEC_NONE, comp, (size_t)c, dec, N), VT_ECORRUPT);
        /* too small a destination: not compressed (0), no overrun */
        ck_assert_int_eq(vt__compress(&ctx, (vt_codec)codec, 1, src, N, comp, 16), 0);
    }
    vt__codec_ctx_free(&ctx);
    free(src);
    free(comp);
    free(dec);
}
END_TEST

/* The hash the library uses (AVX2 build when the CPU has it) gives libxxhash's
 * XXH3-64 for every length and alignment. */
START_TEST(hash_paths_agree)
{
    rng r = {77};
    unsigned char *buf = malloc(70000);
    for (size_t i = 0; i < 70000; i++)
        buf[i] = (unsigned char)rng_next(&r);
    for (int it = 0; it < 3000; it++) {
        size_t n = it < 300 ? (size_t)it : (size_t)rng_range(&r, 0, 69000);
        size_t off = (size_t)rng_range(&r, 0, 64);
        TU_CHECK(vt__hash(buf + off, n) == vt__hash_portable(buf + off, n), "length %zu offset %zu", n, off);
    }
    free(buf);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("codec");
    TCase *tc = tu_tcase(s, "codec", 0, NULL, NULL);
    tcase_add_test(tc, unshuffle_ranges_match_a_plain_loop);
    tcase_add_test(tc, codecs_round_trip_and_reject_damage);
    tcase_add_test(tc, hash_paths_agree);
    return tu_run(s);
}
