/* float16 / bfloat16 conversions against the arithmetic reference in
 * testutil.h. The exhaustive sweep over all 2^32 float bit patterns runs in
 * the slow suite (pass --exhaustive). */
#include "half.h"
#include "testutil.h"

#include <pthread.h>
#include <stdbool.h>

static void check_f32(uint32_t bits, uint16_t got, const char *path)
{
    float f;
    memcpy(&f, &bits, 4);
    uint16_t want = ref_f16_from_f32(f);
    TU_CHECK(got == want, "%s: f32 0x%08x -> f16 0x%04x, reference 0x%04x", path, bits, got,
                  want);
}

/* Convert patterns [lo, lo+n) with the array path (F16C when present) and the
 * portable scalar path, and compare both with the reference. */
static void sweep(uint64_t lo, uint64_t n, uint32_t *buf, uint16_t *out)
{
    for (uint64_t i = 0; i < n; i++)
        buf[i] = (uint32_t)(lo + i);
    vt__f32_to_f16(buf, out, (size_t)n);
    for (uint64_t i = 0; i < n; i++) {
        uint16_t scalar = vt__f32_to_f16_bits(buf[i]);
        float f;
        memcpy(&f, &buf[i], 4);
        uint16_t want = ref_f16_from_f32(f);
        if (out[i] != want || scalar != want)
            ck_abort_msg("f32 0x%08x: array path 0x%04x, portable 0x%04x, reference 0x%04x",
                         buf[i], out[i], scalar, want);
    }
}

START_TEST(special_values)
{
    /* values numpy gives (checked with numpy 1.24 astype(float16)) */
    static const struct {
        uint32_t f;
        uint16_t h;
    } cases[] = {
        {0x00000000, 0x0000}, {0x80000000, 0x8000}, {0x3f800000, 0x3c00}, {0x477fe000, 0x7bff},
        {0x477ff000, 0x7c00}, /* 65520 rounds to inf */
        {0x477fefff, 0x7bff}, {0x7f800000, 0x7c00}, {0xff800000, 0xfc00},
        {0x7f800001, 0x7c01}, /* signalling NaN keeps payload, never 0 */
        {0x7fa00000, 0x7d00}, {0x7fc00000, 0x7e00}, {0xff800001, 0xfc01}, {0x7fffffff, 0x7fff},
        {0x33000000, 0x0000}, /* 2^-25: tie to even -> 0 */
        {0x33000001, 0x0001}, {0x33c00000, 0x0002}, /* 1.5 * 2^-24 -> 2 (even) */
        {0x387fc000, 0x03ff}, {0x38800000, 0x0400}, {0x387fe000, 0x0400},
        {0x00000001, 0x0000}, {0x3f802000, 0x3c01}, {0x3f801000, 0x3c00}, {0x3f803000, 0x3c02},
    };
    for (int impl = 0; impl < 2; impl++) {
        vt__half_force_portable(impl);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            uint16_t out[9];
            uint32_t in[9];
            for (int k = 0; k < 9; k++)
                in[k] = cases[i].f;
            vt__f32_to_f16(in, out, 9); /* 8 through the vector path + 1 tail */
            for (int k = 0; k < 9; k++)
                ck_assert_msg(out[k] == cases[i].h, "impl %d: 0x%08x -> 0x%04x, numpy 0x%04x", impl,
                              cases[i].f, out[k], cases[i].h);
            check_f32(cases[i].f, vt__f32_to_f16_bits(cases[i].f), "scalar");
        }
    }
    vt__half_force_portable(0);
}
END_TEST

START_TEST(random_patterns)
{
    rng r = {12345};
    enum { N = 1 << 16 };
    uint32_t *buf = malloc(N * 4);
    uint16_t *out = malloc(N * 2);
    for (int impl = 0; impl < 2; impl++) {
        vt__half_force_portable(impl);
        for (int round = 0; round < 32; round++) {
            for (int i = 0; i < N; i++)
                buf[i] = (uint32_t)rng_next(&r);
            vt__f32_to_f16(buf, out, N);
            for (int i = 0; i < N; i++)
                check_f32(buf[i], out[i], impl ? "portable" : "default");
        }
        /* every pattern near the float16 range: exponents 100..150 */
        for (uint64_t lo = UINT64_C(100) << 23; lo < (UINT64_C(150) << 23); lo += N * 64)
            sweep(lo, N, buf, out);
    }
    vt__half_force_portable(0);
    free(buf);
    free(out);
}
END_TEST

START_TEST(f16_to_f32_all)
{
    uint16_t in[65536];
    float out[65536];
    for (int i = 0; i < 65536; i++)
        in[i] = (uint16_t)i;
    for (int impl = 0; impl < 2; impl++) {
        vt__half_force_portable(impl);
        vt__f16_to_f32(in, out, 65536);
        for (int i = 0; i < 65536; i++) {
            double want = ref_f16_value((uint16_t)i);
            if (isnan(want)) {
                uint32_t b;
                memcpy(&b, &out[i], 4);
                /* numpy: payload shifted up, sign kept, not quieted */
                uint32_t expect = ((uint32_t)(i & 0x8000) << 16) | 0x7f800000u | ((uint32_t)(i & 0x3ff) << 13);
                TU_CHECK(b == expect, "f16 0x%04x -> 0x%08x, want 0x%08x", i, b, expect);
            } else {
                TU_CHECK((double)out[i] == want && !signbit(out[i]) == !signbit(want),
                              "f16 0x%04x -> %g, want %g", i, (double)out[i], want);
            }
            /* and back: every float16 survives the round trip */
            TU_CHECK(vt__f32_to_f16_bits(vt__f16_to_f32_bits((uint16_t)i)) == i, "f16 0x%04x round trip", i);
        }
    }
    vt__half_force_portable(0);
}
END_TEST

START_TEST(f64_to_f16_and_bf16)
{
    rng r = {777};
    for (int i = 0; i < 2000000; i++) {
        uint64_t b = rng_next(&r);
        /* bias toward the interesting exponent range */
        if (i & 1)
            b = (b & UINT64_C(0x800fffffffffffff)) | ((uint64_t)rng_range(&r, 1023 - 30, 1023 + 20) << 52);
        double d;
        memcpy(&d, &b, 8);
        uint16_t got = vt__f64_to_f16_bits(b), want = ref_f16(d);
        TU_CHECK(got == want, "f64 0x%016llx -> f16 0x%04x, want 0x%04x", (unsigned long long)b,
                      got, want);
        if (i & 2)
            b = (b & UINT64_C(0x800fffffffffffff)) | ((uint64_t)rng_range(&r, 1023 - 140, 1023 + 130) << 52);
        memcpy(&d, &b, 8);
        got = vt__f64_to_bf16_bits(b);
        want = ref_bf16(d);
        TU_CHECK(got == want, "f64 0x%016llx -> bf16 0x%04x, want 0x%04x", (unsigned long long)b,
                      got, want);
        float f = (float)d;
        uint32_t fb;
        memcpy(&fb, &f, 4);
        if (!isnan(f)) {
            got = vt__f32_to_bf16_bits(fb);
            want = ref_bf16((double)f);
            TU_CHECK(got == want, "f32 0x%08x -> bf16 0x%04x, want 0x%04x", fb, got, want);
        }
    }
}
END_TEST

/* Shuffled float32 rows to float16 (fused path) against the reference, for
 * every row length and offset, with NaNs and specials mixed in. */
START_TEST(shuffled_planes_to_f16)
{
    rng r = {31};
    enum { NE = 200 };
    uint32_t vals[NE];
    unsigned char planes[4 * NE];
    uint16_t out[NE + 1];
    for (int impl = 0; impl < 2; impl++) {
        vt__half_force_portable(impl);
        for (int it = 0; it < 3000; it++) {
            for (int i = 0; i < NE; i++) {
                uint32_t b = (uint32_t)rng_next(&r);
                if (i % 3 == 0) /* mostly the float16 range */
                    b = (b & 0x807fffffu) | ((uint32_t)rng_range(&r, 100, 150) << 23);
                vals[i] = b;
                for (int k = 0; k < 4; k++)
                    planes[k * NE + i] = (unsigned char)(b >> (8 * k));
            }
            size_t first = (size_t)rng_range(&r, 0, NE - 1);
            size_t n = (size_t)rng_range(&r, 0, (int64_t)(NE - first));
            out[n] = 0xBEEF;
            vt__f32_planes_to_f16(planes, NE, first, n, out);
            for (size_t k = 0; k < n; k++)
                check_f32(vals[first + k], out[k], impl ? "planes portable" : "planes default");
            TU_CHECK(out[n] == 0xBEEF, "wrote past %zu elements", n);
        }
    }
    vt__half_force_portable(0);
}
END_TEST

/* Whole 16-wide tile planes (the AVX2 two-row path) and partial ones, rows to
 * strided destinations, against the reference. */
START_TEST(shuffled_plane_rows_to_f16)
{
    rng r = {41};
    enum { NE = 16 * 16 * 3 };
    uint32_t vals[NE];
    unsigned char planes[4 * NE];
    uint16_t out[16 * 40];
    for (int impl = 0; impl < 2; impl++) {
        vt__half_force_portable(impl);
        for (int it = 0; it < 2000; it++) {
            for (int i = 0; i < NE; i++) {
                uint32_t b = (uint32_t)rng_next(&r);
                if (i % 3)
                    b = (b & 0x807fffffu) | ((uint32_t)rng_range(&r, 100, 150) << 23);
                vals[i] = b;
                for (int k = 0; k < 4; k++)
                    planes[k * NE + i] = (unsigned char)(b >> (8 * k));
            }
            bool full = it % 2 == 0;
            size_t n = full ? 16 : (size_t)rng_range(&r, 1, 16);
            int64_t src_step = full ? 16 : (rng_next(&r) & 1 ? 16 : -16);
            size_t rows = (size_t)rng_range(&r, 1, 16);
            int64_t first = src_step > 0 ? rng_range(&r, 0, 16 * 16) : rng_range(&r, 16 * 16, NE - 16);
            if (full)
                first = 16 * rng_range(&r, 0, 16);
            int64_t dst_step = 20 + rng_range(&r, 0, 4);
            memset(out, 0xAB, sizeof out);
            vt__f32_planes_to_f16_rows(planes, NE, first, n, rows, src_step, out, dst_step);
            for (size_t row = 0; row < rows; row++)
                for (size_t k = 0; k < n; k++)
                    check_f32(vals[first + (int64_t)row * src_step + (int64_t)k], out[(int64_t)row * dst_step + (int64_t)k],
                              impl ? "rows portable" : "rows default");
            TU_CHECK(out[(int64_t)(rows - 1) * dst_step + (int64_t)n] == 0xABAB, "wrote past a row");
        }
    }
    vt__half_force_portable(0);
}
END_TEST

/* ---- exhaustive (slow suite) -------------------------------------------- */

/* The patterns of a chunk as a byte-shuffled float32 block: 4 planes of n
 * bytes, byte k of every element in plane k (what vt_read decodes a shuffled
 * float32 tile to before its fused unshuffle + convert). */
static void to_planes(const uint32_t *buf, size_t n, unsigned char *planes)
{
    for (size_t i = 0; i < n; i++) {
        planes[i] = (unsigned char)buf[i];
        planes[n + i] = (unsigned char)(buf[i] >> 8);
        planes[2 * n + i] = (unsigned char)(buf[i] >> 16);
        planes[3 * n + i] = (unsigned char)(buf[i] >> 24);
    }
}

static void same_as(const uint32_t *buf, const uint16_t *want, const uint16_t *got, size_t n,
                    const char *variant, const char *kernel)
{
    if (memcmp(want, got, n * 2) == 0)
        return;
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            float f;
            memcpy(&f, &buf[i], 4);
            ck_abort_msg("%s, %s: f32 0x%08x -> 0x%04x, reference 0x%04x", variant, kernel, buf[i], got[i],
                         ref_f16_from_f32(f));
        }
}

/* The fused kernels on the chunk laid out as planes, against @p want (each
 * pattern's reference conversion): one call over the whole block (16 lanes a
 * step), and the block as rows of 16 one after another, as a 16-wide tile
 * gives them (with AVX2, two rows a step; n / 16 is even). */
static void sweep_planes(const uint32_t *buf, size_t n, unsigned char *planes, const uint16_t *want,
                         uint16_t *got, const char *variant)
{
    to_planes(buf, n, planes);
    vt__f32_planes_to_f16(planes, n, 0, n, got);
    same_as(buf, want, got, n, variant, "vt__f32_planes_to_f16");
    vt__f32_planes_to_f16_rows(planes, n, 0, 16, n / 16, 16, got, 16);
    same_as(buf, want, got, n, variant, "vt__f32_planes_to_f16_rows");
}

typedef struct part {
    uint64_t lo, hi;
    int first_pass;      /* nonzero: array and scalar paths against the reference too */
    const char *variant; /* the dispatch in use, for messages */
} part;

static void *sweep_part(void *arg)
{
    part *p = arg;
    enum { N = 1 << 16 };
    uint32_t *buf = malloc(N * 4);
    uint16_t *out = malloc(N * 2), *got = malloc(N * 2);
    unsigned char *planes = malloc(N * 4);
    for (uint64_t lo = p->lo; lo < p->hi; lo += N) {
        if (p->first_pass) {
            /* buf and out: the patterns and their reference conversions */
            sweep(lo, N, buf, out);
        } else {
            /* the scalar path is the reference here: the first pass checked
             * it against ref_f16_from_f32 on every pattern */
            for (uint64_t i = 0; i < N; i++) {
                buf[i] = (uint32_t)(lo + i);
                out[i] = vt__f32_to_f16_bits(buf[i]);
            }
        }
        sweep_planes(buf, N, planes, out, got, p->variant);
    }
    free(buf);
    free(out);
    free(got);
    free(planes);
    return NULL;
}

/* Every pattern through the current dispatch, on all CPUs (at most 8). */
static void sweep_all(int first_pass, const char *variant)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nt = ncpu > 1 ? (int)(ncpu > 8 ? 8 : ncpu) : 1;
    pthread_t th[8];
    part parts[8];
    uint64_t span = (UINT64_C(1) << 32) / (uint64_t)nt;
    for (int i = 0; i < nt; i++) {
        parts[i].lo = span * (uint64_t)i;
        parts[i].hi = i == nt - 1 ? (UINT64_C(1) << 32) : span * (uint64_t)(i + 1);
        parts[i].first_pass = first_pass;
        parts[i].variant = variant;
        ck_assert_int_eq(pthread_create(&th[i], NULL, sweep_part, &parts[i]), 0);
    }
    for (int i = 0; i < nt; i++)
        pthread_join(th[i], NULL);
}

/* All 2^32 patterns through vt__f32_to_f16 (the default dispatch), the
 * scalar path and the fused plane kernels vt_read uses on shuffled float32
 * tiles, in every dispatch this CPU can select: F16C with the AVX2 rows
 * kernel, F16C without it (VT_NO_AVX2), portable. The dispatch is global:
 * it changes only between passes, with no sweeping thread running. */
START_TEST(all_2_32_patterns)
{
    int f16c = vt__half_uses_f16c(), avx2 = 0;
#if defined(__x86_64__) || defined(__i386__)
    avx2 = f16c && __builtin_cpu_supports("avx2") && getenv("VT_NO_AVX2") == NULL;
#endif
    sweep_all(1, avx2 ? "F16C + AVX2" : f16c ? "F16C" : "portable");
    if (avx2) {
        setenv("VT_NO_AVX2", "1", 1);
        vt__half_force_portable(0);
        sweep_all(0, "F16C (VT_NO_AVX2)");
        unsetenv("VT_NO_AVX2");
    }
    if (f16c) {
        vt__half_force_portable(1);
        sweep_all(0, "portable");
    }
    vt__half_force_portable(0);
}
END_TEST

int main(int argc, char **argv)
{
    Suite *s = suite_create("half");
    TCase *tc = tu_tcase(s, "half", 600, NULL, NULL);
    if (argc > 1 && strcmp(argv[1], "--exhaustive") == 0) {
        tcase_set_timeout(tc, 3600);
        tcase_add_test(tc, all_2_32_patterns);
    } else {
        tcase_add_test(tc, special_values);
        tcase_add_test(tc, random_patterns);
        tcase_add_test(tc, f16_to_f32_all);
        tcase_add_test(tc, f64_to_f16_and_bf16);
        tcase_add_test(tc, shuffled_planes_to_f16);
        tcase_add_test(tc, shuffled_plane_rows_to_f16);
    }
    printf("F16C path %s\n", vt__half_uses_f16c() ? "in use" : "not available");
    return tu_run(s);
}
