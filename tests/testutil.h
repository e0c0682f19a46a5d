/* Helpers shared by the Check suites: a deterministic RNG, temporary
 * folders, writing and opening stores, and reference conversions written
 * independently of the library (arithmetic on doubles with
 * frexp/ldexp/nearbyint instead of bit twiddling; reference.h: pad modes and
 * the transform). */
#ifndef VT_TESTUTIL_H
#define VT_TESTUTIL_H

#include "voxtile.h"
#include "voxtile_convert.h"
#include "reference.h"

#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* An assertion for hot loops: Check's ck_assert_* talk to the parent
 * process on every call, this only on failure. */
#define TU_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

/* ---- RNG (splitmix64) --------------------------------------------------- */

typedef struct rng {
    uint64_t s;
} rng;

static inline uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform integer in [lo, hi]. */
static inline int64_t rng_range(rng *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

static inline double rng_unit(rng *r) { return (double)(rng_next(r) >> 11) * 0x1p-53; }

/* Number of voxels of the @p nd extents of @p shape. */
static inline uint64_t tu_count_of(int nd, const uint64_t *shape)
{
    uint64_t n = 1;
    for (int d = 0; d < nd; d++)
        n *= shape[d];
    return n;
}

/* ---- temporary folders -------------------------------------------------- */

static inline char *tu_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/vt-test-XXXXXX", base && base[0] ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    ck_assert_msg(d != NULL, "mkdtemp failed");
    return strdup(d);
}

static inline char *tu_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Number of entries (other than . and ..) in a folder. */
static inline int tu_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static inline void tu_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char *p = tu_path(dir, e->d_name);
        unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(dir);
}

/* Remove a folder tu_tmpdir() made, with the file @p path in it (NULL: none)
 * and whatever else it holds, and free both names. */
static inline void tu_tmpdir_free(char *dir, char *path)
{
    if (path != NULL)
        unlink(path);
    tu_rmtree(dir);
    free(path);
    free(dir);
}

static inline unsigned char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    ck_assert((long)fread(buf, 1, (size_t)n, f) == n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static inline void tu_write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert(fwrite(buf, 1, len, f) == len);
    ck_assert(fclose(f) == 0);
}

/* ---- writing stores -------------------------------------------------------- */

/* A writer of the store at @p path with @p threads compression threads
 * (vt_writer_opts' default is 1). */
static inline vt_writer *tu_writer(const char *path, int threads)
{
    vt_writer_opts wo;
    vt_writer_opts_init(&wo);
    wo.threads = threads;
    vt_writer *w;
    ck_assert_msg(vt_writer_open(path, &wo, &w) == 0, "vt_writer_open: %s", vt_errmsg(NULL));
    return w;
}

/* @p spec with its defaults (vt_array_spec_init), then @p name, @p dtype and
 * the @p nd extents of @p shape; @p tile: the nd extents of the tiles, NULL
 * for the default tiles. */
static inline void tu_spec(vt_array_spec *spec, const char *name, vt_dtype dtype, int nd, const uint64_t *shape,
                           const uint32_t *tile)
{
    vt_array_spec_init(spec);
    spec->name = name;
    spec->dtype = dtype;
    spec->ndim = nd;
    memcpy(spec->shape, shape, (size_t)nd * sizeof *shape);
    if (tile != NULL)
        memcpy(spec->tile, tile, (size_t)nd * sizeof *tile);
}

/* Declare @p spec's array; its id. */
static inline int tu_add_array(vt_writer *w, const vt_array_spec *spec)
{
    int id;
    ck_assert_msg(vt_writer_add_array(w, spec, &id) == 0, "add %s: %s", spec->name, vt_writer_errmsg(w));
    return id;
}

/* Finalize (publish) the store and free the writer. */
static inline void tu_finish(vt_writer *w)
{
    ck_assert_msg(vt_writer_finalize(w) == 0, "finalize: %s", vt_writer_errmsg(w));
    vt_writer_free(w);
}

/* The store at @p path of the one array @p spec, written whole from @p data
 * (C order) with @p threads compression threads. */
static inline void tu_write_store(const char *path, int threads, const vt_array_spec *spec, const void *data)
{
    vt_writer *w = tu_writer(path, threads);
    int id = tu_add_array(w, spec);
    uint64_t start[VT_MAX_DIMS] = {0};
    ck_assert_msg(vt_writer_write(w, id, start, spec->shape, data) == 0, "write: %s", vt_writer_errmsg(w));
    tu_finish(w);
}

/* Open the store at @p path and find its array @p name in *a. */
static inline vt_store *tu_open_array(const char *path, const char *name, const vt_array **a)
{
    vt_store *s;
    ck_assert_msg(vt_open(path, 0, &s) == 0, "vt_open: %s", vt_errmsg(NULL));
    ck_assert_msg(vt_store_array(s, name, a) == 0, "array %s: %s", name, vt_errmsg(s));
    return s;
}

/* ---- reference conversions --------------------------------------------- */

/* Round |a| (finite, >= 0) to the binary format with mantissa bits M, minimum
 * normal exponent emin and largest finite value fmax, ties to even, and encode
 * it with exponent bias. Done with exact double arithmetic. */
static inline uint32_t ref_small_float(double a, int M, int emin, int bias, double fmax,
                                       uint32_t inf_bits)
{
    if (a == 0)
        return 0;
    int e;
    frexp(a, &e);
    int x = e - 1; /* a in [2^x, 2^(x+1)) */
    if (x < emin)
        x = emin;
    double q = ldexp(1.0, x - M);
    double v = nearbyint(a / q) * q; /* current rounding mode: to nearest, ties to even */
    if (v > fmax)
        return inf_bits;
    if (v < ldexp(1.0, emin)) /* subnormal (or zero) */
        return (uint32_t)(v / ldexp(1.0, emin - M));
    frexp(v, &e);
    x = e - 1;
    uint32_t mant = (uint32_t)((v / ldexp(1.0, x) - 1.0) * ldexp(1.0, M));
    return ((uint32_t)(x + bias) << M) | mant;
}

/* float16 bits of a double, as numpy's astype(float16). */
static inline uint16_t ref_f16(double v)
{
    uint64_t b;
    memcpy(&b, &v, 8);
    uint16_t sign = (b >> 63) ? 0x8000 : 0;
    if (isnan(v)) {
        uint32_t m = (uint32_t)((b & ((UINT64_C(1) << 52) - 1)) >> 42);
        return (uint16_t)(sign | 0x7c00 | (m ? m : 1));
    }
    if (isinf(v))
        return sign | 0x7c00;
    return (uint16_t)(sign | ref_small_float(fabs(v), 10, -14, 15, 65504.0, 0x7c00));
}

/* float16 bits of a float (numpy keeps a NaN's top payload bits, never quiets). */
static inline uint16_t ref_f16_from_f32(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    if (isnan(f)) {
        uint32_t m = (b & 0x7fffff) >> 13;
        return (uint16_t)(((b >> 16) & 0x8000) | 0x7c00 | (m ? m : 1));
    }
    return ref_f16((double)f);
}

static inline uint16_t ref_bf16(double v)
{
    uint16_t sign = signbit(v) ? 0x8000 : 0;
    if (isnan(v))
        return sign | 0x7fc0;
    if (isinf(v))
        return sign | 0x7f80;
    double fmax = ldexp(2.0 - ldexp(1.0, -7), 127);
    return (uint16_t)(sign | ref_small_float(fabs(v), 7, -126, 127, fmax, 0x7f80));
}

/* Value of float16 bits, computed arithmetically. */
static inline double ref_f16_value(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp((double)m, -24);
    else
        v = ldexp(1.0 + m / 1024.0, e - 15);
    return s ? -v : v;
}

static inline double ref_bf16_value(uint16_t h)
{
    uint32_t b = (uint32_t)h << 16;
    float f;
    memcpy(&f, &b, 4);
    return f;
}

/* Element at p as double. */
static inline double ref_load(vt_dtype dt, const void *p)
{
    switch (dt) {
    case VT_U8: return *(const uint8_t *)p;
    case VT_I8: return *(const int8_t *)p;
    case VT_U16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case VT_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case VT_U32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case VT_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case VT_F16: { uint16_t v; memcpy(&v, p, 2); return ref_f16_value(v); }
    case VT_BF16: { uint16_t v; memcpy(&v, p, 2); return ref_bf16_value(v); }
    case VT_F32: { float v; memcpy(&v, p, 4); return v; }
    case VT_F64: { double v; memcpy(&v, p, 8); return v; }
    default: return 0;
    }
}

static inline double ref_int(double v, double lo, double hi)
{
    if (isnan(v))
        return 0;
    if (v <= lo)
        return lo;
    if (v >= hi)
        return hi;
    return trunc(v);
}

/* Store a double with the documented conversion rules. */
static inline void ref_store(vt_dtype dt, void *p, double v)
{
    switch (dt) {
    case VT_U8: { uint8_t x = (uint8_t)ref_int(v, 0, 255); memcpy(p, &x, 1); break; }
    case VT_I8: { int8_t x = (int8_t)ref_int(v, -128, 127); memcpy(p, &x, 1); break; }
    case VT_U16: { uint16_t x = (uint16_t)ref_int(v, 0, 65535); memcpy(p, &x, 2); break; }
    case VT_I16: { int16_t x = (int16_t)ref_int(v, -32768, 32767); memcpy(p, &x, 2); break; }
    case VT_U32: { uint32_t x = (uint32_t)ref_int(v, 0, 4294967295.0); memcpy(p, &x, 4); break; }
    case VT_I32: { int32_t x = (int32_t)ref_int(v, -2147483648.0, 2147483647.0); memcpy(p, &x, 4); break; }
    case VT_F16: { uint16_t x = ref_f16(v); memcpy(p, &x, 2); break; }
    case VT_BF16: { uint16_t x = ref_bf16(v); memcpy(p, &x, 2); break; }
    case VT_F32: { float x = (float)v; memcpy(p, &x, 4); break; }
    case VT_F64: memcpy(p, &v, 8); break;
    default: break;
    }
}

/* Equal bits; NaNs of a floating output count as equal whatever their
 * payload, except where numpy fixes the bits (float32 -> float16). */
static inline bool tu_same_value(vt_dtype dd, const unsigned char *a, const unsigned char *b, bool exact_nan)
{
    size_t es = vt_dtype_size(dd);
    if (memcmp(a, b, es) == 0)
        return true;
    if (!exact_nan && (dd == VT_F16 || dd == VT_BF16 || dd == VT_F32 || dd == VT_F64))
        return isnan(ref_load(dd, a)) && isnan(ref_load(dd, b));
    return false;
}

/* A test case @p name in @p s, with a timeout of @p timeout seconds (0:
 * Check's default) and, unless @p setup is NULL, the unchecked fixture
 * @p setup / @p teardown: run once around all its tests, in the runner's
 * process, so that what it makes is removed even when a test fails. */
static inline TCase *tu_tcase(Suite *s, const char *name, double timeout, SFun setup, SFun teardown)
{
    TCase *tc = tcase_create(name);
    if (timeout > 0)
        tcase_set_timeout(tc, timeout);
    if (setup != NULL)
        tcase_add_unchecked_fixture(tc, setup, teardown);
    suite_add_tcase(s, tc);
    return tc;
}

static inline int tu_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
