/* vt_read on thousands of random boxes -- inside, straddling the border,
 * wholly outside; every pad mode, output dtype, transform, stride layout and
 * thread count -- against a brute-force reference computed voxel by voxel
 * from the source array in memory. */
#include "testutil.h"

#include <stdbool.h>

typedef struct arr_case {
    const char *name;
    vt_dtype dtype;
    int nd;
    uint64_t shape[VT_MAX_DIMS];
    uint32_t tile[VT_MAX_DIMS];
    vt_codec codec;
    vt_filter filter;
} arr_case;

static const arr_case cases[] = {
    {"f32_4d", VT_F32, 4, {2, 13, 17, 19}, {1, 4, 5, 6}, VT_CODEC_LZ4HC, VT_FILTER_SHUFFLE},
    {"i16_4d", VT_I16, 4, {1, 9, 10, 11}, {1, 3, 3, 3}, VT_CODEC_LZ4, VT_FILTER_NONE},
    {"u8_2d", VT_U8, 2, {5, 7}, {2, 3}, VT_CODEC_NONE, VT_FILTER_NONE},
    {"f16_5d", VT_F16, 5, {3, 4, 5, 6, 7}, {1, 2, 2, 3, 3}, VT_CODEC_LZ4, VT_FILTER_AUTO},
    {"f64_1d", VT_F64, 1, {29}, {4}, VT_CODEC_LZ4HC, VT_FILTER_SHUFFLE},
    {"bf16_3d", VT_BF16, 3, {4, 5, 6}, {4, 5, 6}, VT_CODEC_LZ4, VT_FILTER_SHUFFLE},
    {"u32_3d_1", VT_U32, 3, {1, 1, 1}, {1, 1, 1}, VT_CODEC_LZ4, VT_FILTER_SHUFFLE},
    {"i32_3d", VT_I32, 3, {6, 2, 9}, {5, 2, 4}, VT_CODEC_LZ4HC, VT_FILTER_AUTO},
    {"i8_2d", VT_I8, 2, {3, 40}, {3, 7}, VT_CODEC_LZ4, VT_FILTER_NONE},
    {"u16_4d", VT_U16, 4, {1, 8, 8, 8}, {1, 8, 8, 8}, VT_CODEC_LZ4HC, VT_FILTER_SHUFFLE},
};
#define NCASES (sizeof cases / sizeof cases[0])

static const vt_dtype out_dtypes[] = {VT_DTYPE_SAME, VT_U8,  VT_I8,   VT_U16, VT_I16, VT_U32,
                                      VT_I32,        VT_F16, VT_BF16, VT_F32, VT_F64};

static unsigned char *data[NCASES];
/* what the random reads covered, asserted at the end so the test cannot pass vacuously */
static uint64_t n_voxels, n_padded_voxels, n_by_pad[3], n_by_mode[4], n_transform, n_threaded;
static char *dir, *path;

/* Values with structure: constant stretches (constant tiles), specials, extremes. */
static void fill_values(vt_dtype dt, unsigned char *p, uint64_t n, rng *r)
{
    size_t es = vt_dtype_size(dt);
    for (uint64_t i = 0; i < n; i++) {
        unsigned char *e = p + i * es;
        int k = (int)rng_range(r, 0, 19);
        if (k == 0 && i > 0) {
            memcpy(e, e - es, es);
        } else if (k == 1) {
            for (size_t b = 0; b < es; b++)
                e[b] = (unsigned char)rng_next(r);
        } else if (k == 2 && (dt == VT_F32 || dt == VT_F64 || dt == VT_F16 || dt == VT_BF16)) {
            static const double specials[] = {NAN, INFINITY, -INFINITY, -0.0, 1e-42, 70000, -1e6};
            ref_store(dt, e, specials[rng_next(r) % 7]);
        } else {
            ref_store(dt, e, rng_unit(r) * 600 - 300);
        }
    }
    if (n >= 64) /* a stretch of one value, long enough to make constant tiles */
        for (uint64_t i = n / 2; i < n / 2 + n / 4; i++)
            memcpy(p + i * es, p + (n / 2) * es, es);
}

static void setup(void)
{
    dir = tu_tmpdir();
    path = tu_path(dir, "read.vxt");
    rng r = {2024};
    vt_writer *w = tu_writer(path, 2);
    for (size_t c = 0; c < NCASES; c++) {
        const arr_case *ac = &cases[c];
        vt_array_spec spec;
        tu_spec(&spec, ac->name, ac->dtype, ac->nd, ac->shape, ac->tile);
        spec.codec = ac->codec;
        spec.filter = ac->filter;
        int id = tu_add_array(w, &spec);
        uint64_t n = tu_count_of(ac->nd, ac->shape);
        data[c] = malloc((size_t)(n * vt_dtype_size(ac->dtype)));
        fill_values(ac->dtype, data[c], n, &r);
        uint64_t start[VT_MAX_DIMS] = {0};
        ck_assert_int_eq(vt_writer_write(w, id, start, ac->shape, data[c]), 0);
    }
    tu_finish(w);
}

static void teardown(void)
{
    for (size_t c = 0; c < NCASES; c++)
        free(data[c]);
    tu_tmpdir_free(dir, path);
}

typedef struct read_spec {
    int64_t start[VT_MAX_DIMS];
    uint64_t size[VT_MAX_DIMS];
    vt_read_opts o;
    int64_t strides[VT_MAX_DIMS];
    int stride_mode; /* 0 C-contiguous, 1 slot of a bigger buffer, 2 an axis reversed, 3 Fortran order */
} read_spec;

/* Output bytes of voxel idx by the reference. */
static void ref_voxel(size_t c, const read_spec *rs, const uint64_t *idx, unsigned char *out)
{
    const arr_case *ac = &cases[c];
    vt_dtype sd = ac->dtype, dd = rs->o.dtype == VT_DTYPE_SAME ? sd : rs->o.dtype;
    size_t ses = vt_dtype_size(sd);
    uint64_t off = 0;
    for (int d = 0; d < ac->nd; d++) {
        int64_t m = ref_map(rs->start[d] + (int64_t)idx[d], (int64_t)ac->shape[d], rs->o.pad);
        if (m < 0) {
            ref_store(dd, out, rs->o.pad_value);
            n_padded_voxels++;
            return;
        }
        off = off * ac->shape[d] + (uint64_t)m;
    }
    const unsigned char *src = data[c] + off * ses;
    n_voxels++;
    if (!rs->o.transform && dd == sd) {
        memcpy(out, src, ses);
        return;
    }
    if (!rs->o.transform && sd == VT_F32 && dd == VT_F16) { /* numpy's float32 -> float16, NaN bits too */
        float f;
        memcpy(&f, src, 4);
        uint16_t h = ref_f16_from_f32(f);
        memcpy(out, &h, 2);
        return;
    }
    double v = ref_load(sd, src);
    if (rs->o.transform)
        v = ref_transform(v, &rs->o);
    ref_store(dd, out, v);
}

static void random_read(const vt_store *s, size_t c, rng *r, int iteration)
{
    const arr_case *ac = &cases[c];
    int nd = ac->nd;
    read_spec rs;
    memset(&rs, 0, sizeof rs);
    vt_read_opts_init(&rs.o);
    uint64_t total = 1;
    for (int d = 0; d < nd; d++) {
        int64_t n = (int64_t)ac->shape[d];
        int kind = (int)rng_range(r, 0, 5);
        if (kind == 0) { /* inside */
            rs.size[d] = (uint64_t)rng_range(r, 1, n);
            rs.start[d] = rng_range(r, 0, n - (int64_t)rs.size[d]);
        } else if (kind == 1) { /* wholly outside */
            rs.size[d] = (uint64_t)rng_range(r, 1, n + 2);
            rs.start[d] = rng_next(r) & 1 ? rng_range(r, n, 3 * n + 3)
                                          : rng_range(r, -3 * n - 3, -1) - (int64_t)rs.size[d] + 1;
            if (rs.start[d] + (int64_t)rs.size[d] > 0 && rs.start[d] < n) /* keep it outside */
                rs.start[d] = n;
        } else { /* anywhere, often straddling */
            rs.size[d] = (uint64_t)rng_range(r, 1, 2 * n + 3);
            rs.start[d] = rng_range(r, -2 * n - 2, 2 * n + 2);
        }
        total *= rs.size[d];
    }
    while (total > 30000) { /* keep boxes small enough for the slow reference */
        int d = (int)rng_range(r, 0, nd - 1);
        if (rs.size[d] > 1) {
            total /= rs.size[d];
            rs.size[d] = (rs.size[d] + 1) / 2;
            total *= rs.size[d];
        }
    }
    rs.o.pad = (vt_pad)rng_range(r, 0, 2);
    static const double pads[] = {0, -1, 7.5, 1e9, -3e5, NAN};
    rs.o.pad_value = pads[rng_next(r) % 6];
    rs.o.dtype = out_dtypes[rng_next(r) % (sizeof out_dtypes / sizeof out_dtypes[0])];
    if (rng_range(r, 0, 3) == 0) {
        rs.o.transform = 1;
        rs.o.clip_lo = rng_next(r) & 1 ? -(double)INFINITY : rng_unit(r) * 100 - 80;
        rs.o.clip_hi = rng_next(r) & 1 ? (double)INFINITY : rng_unit(r) * 100 + 20;
        rs.o.scale = rng_unit(r) * 4 - 2;
        rs.o.offset = rng_unit(r) * 50 - 25;
    }
    rs.o.threads = (int)rng_range(r, 0, 3);
    rs.o.verify = (int)(rng_next(r) & 1);
    vt_dtype dd = rs.o.dtype == VT_DTYPE_SAME ? ac->dtype : rs.o.dtype;
    size_t des = vt_dtype_size(dd);

    /* output layout */
    rs.stride_mode = (int)rng_range(r, 0, 3);
    uint64_t outer[VT_MAX_DIMS], margin[VT_MAX_DIMS] = {0};
    for (int d = 0; d < nd; d++) {
        margin[d] = rs.stride_mode == 1 ? (uint64_t)rng_range(r, 0, 2) : 0;
        outer[d] = rs.size[d] + 2 * margin[d];
    }
    int64_t cstr[VT_MAX_DIMS];
    cstr[nd - 1] = 1;
    for (int d = nd - 2; d >= 0; d--)
        cstr[d] = cstr[d + 1] * (int64_t)outer[d + 1];
    uint64_t nout = tu_count_of(nd, outer);
    int64_t base = 0; /* element offset of voxel (0,...,0) */
    for (int d = 0; d < nd; d++) {
        rs.strides[d] = cstr[d];
        base += (int64_t)margin[d] * cstr[d];
    }
    int rev = (int)rng_range(r, 0, nd - 1);
    if (rs.stride_mode == 2) {
        rs.strides[rev] = -cstr[rev];
        base = (int64_t)(rs.size[rev] - 1) * cstr[rev];
    } else if (rs.stride_mode == 3) {
        int64_t f = 1;
        for (int d = 0; d < nd; d++) {
            rs.strides[d] = f;
            f *= (int64_t)rs.size[d];
        }
    }
    rs.o.strides = rs.stride_mode == 0 ? NULL : rs.strides;

    unsigned char *out = malloc((size_t)(nout * des));
    memset(out, 0xA5, (size_t)(nout * des));
    const vt_array *a;
    ck_assert_int_eq(vt_store_array(s, ac->name, &a), 0);
    int rc = vt_read(a, rs.start, rs.size, &rs.o, out + base * (int64_t)des);
    n_by_pad[rs.o.pad]++;
    n_by_mode[rs.stride_mode]++;
    n_transform += rs.o.transform != 0;
    n_threaded += rs.o.threads > 1;
    ck_assert_msg(rc == 0, "%s: %s", ac->name, vt_errmsg(s));

    /* every voxel of the box against the reference */
    unsigned char *touched = calloc((size_t)nout, 1);
    uint64_t idx[VT_MAX_DIMS] = {0};
    bool exact_nan = !rs.o.transform && ac->dtype == VT_F32 && dd == VT_F16;
    for (uint64_t i = 0; i < total; i++) {
        int64_t o = base;
        for (int d = 0; d < nd; d++)
            o += (int64_t)idx[d] * rs.strides[d];
        unsigned char want[8];
        ref_voxel(c, &rs, idx, want);
        if (!tu_same_value(dd, out + o * (int64_t)des, want, exact_nan)) {
            char pos[128];
            size_t p = 0;
            for (int d = 0; d < nd; d++)
                p += (size_t)snprintf(pos + p, sizeof pos - p, "%s%lld", d ? "," : "",
                                      (long long)(rs.start[d] + (int64_t)idx[d]));
            uint64_t gotb = 0, wantb = 0;
            memcpy(&gotb, out + o * (int64_t)des, des);
            memcpy(&wantb, want, des);
            ck_abort_msg("iteration %d %s: voxel (%s) pad %d dtype %s transform %d mode %d: got 0x%llx want 0x%llx",
                         iteration, ac->name, pos, rs.o.pad, vt_dtype_name(dd), rs.o.transform,
                         rs.stride_mode, (unsigned long long)gotb, (unsigned long long)wantb);
        }
        touched[o] = 1;
        for (int d = nd - 1; d >= 0; d--) {
            if (++idx[d] < rs.size[d])
                break;
            idx[d] = 0;
        }
    }
    /* nothing outside the box was written */
    for (uint64_t i = 0; i < nout; i++)
        if (!touched[i])
            for (size_t b = 0; b < des; b++)
                TU_CHECK(out[i * des + b] == 0xA5, "iteration %d %s: write outside the box at %llu",
                         iteration, ac->name, (unsigned long long)i);
    free(touched);
    free(out);
}

START_TEST(random_boxes)
{
    rng r = {(uint64_t)_i * 7919 + 1};
    vt_store *s;
    ck_assert_int_eq(vt_open(path, 0, &s), 0);
    for (int it = 0; it < 400; it++)
        for (size_t c = 0; c < NCASES; c++)
            random_read(s, c, &r, it);
    vt_close(s);
    printf("random boxes: %llu voxels from tiles, %llu constant-padded; reads by pad mode %llu/%llu/%llu, "
           "by layout %llu/%llu/%llu/%llu, %llu transformed, %llu threaded\n",
           (unsigned long long)n_voxels, (unsigned long long)n_padded_voxels,
           (unsigned long long)n_by_pad[0], (unsigned long long)n_by_pad[1], (unsigned long long)n_by_pad[2],
           (unsigned long long)n_by_mode[0], (unsigned long long)n_by_mode[1], (unsigned long long)n_by_mode[2],
           (unsigned long long)n_by_mode[3], (unsigned long long)n_transform, (unsigned long long)n_threaded);
    ck_assert_uint_gt(n_voxels, 1000000);
    ck_assert_uint_gt(n_padded_voxels, 100000);
    for (int k = 0; k < 3; k++)
        ck_assert_uint_gt(n_by_pad[k], 500);
    for (int k = 0; k < 4; k++)
        ck_assert_uint_gt(n_by_mode[k], 500);
    ck_assert_uint_gt(n_transform, 500);
    ck_assert_uint_gt(n_threaded, 500);
}
END_TEST

/* Reads of the same box with 1, 2 and 4 threads give identical bytes. */
START_TEST(threads_agree)
{
    const vt_array *a;
    vt_store *s = tu_open_array(path, "f32_4d", &a);
    int64_t start[4] = {-1, -3, 2, -5};
    uint64_t size[4] = {4, 20, 20, 30};
    size_t n = 4 * 20 * 20 * 30;
    uint16_t *o1 = malloc(n * 2), *o2 = malloc(n * 2);
    vt_read_opts o;
    vt_read_opts_init(&o);
    o.dtype = VT_F16;
    o.pad = VT_PAD_REFLECT;
    ck_assert_int_eq(vt_read(a, start, size, &o, o1), 0);
    for (int t = 2; t <= 4; t *= 2) {
        o.threads = t;
        memset(o2, 0, n * 2);
        ck_assert_int_eq(vt_read(a, start, size, &o, o2), 0);
        ck_assert(memcmp(o1, o2, n * 2) == 0);
    }
    free(o1);
    free(o2);
    vt_close(s);
}
END_TEST

START_TEST(argument_errors)
{
    const vt_array *a;
    vt_store *s = tu_open_array(path, "i16_4d", &a);
    int64_t start[4] = {0, 0, 0, 0};
    uint64_t size[4] = {1, 2, 2, 2};
    int16_t out[64];
    vt_read_opts o;
    vt_read_opts_init(&o);
    ck_assert_int_eq(vt_read(a, start, size, &o, NULL), VT_EINVAL);
    size[2] = 0;
    ck_assert_int_eq(vt_read(a, start, size, &o, out), VT_ERANGE);
    ck_assert(strstr(vt_errmsg(s), "axis 2") != NULL);
    size[2] = 2;
    o.dtype = (vt_dtype)42;
    ck_assert_int_eq(vt_read(a, start, size, &o, out), VT_EINVAL);
    o.dtype = VT_DTYPE_SAME;
    o.pad = (vt_pad)9;
    ck_assert_int_eq(vt_read(a, start, size, &o, out), VT_EINVAL);
    o.pad = VT_PAD_EDGE;
    start[1] = INT64_MAX - 1;
    ck_assert_int_eq(vt_read(a, start, size, &o, out), VT_ERANGE);
    start[1] = 0;
    int64_t strides[4] = {1, INT64_MAX / 2 + 1, 1, 1}; /* x 2 bytes overflows */
    o.strides = strides;
    ck_assert_int_eq(vt_read(a, start, size, &o, out), VT_ERANGE);
    strides[1] = INT64_MAX / 3; /* each fits, but the box's span does not */
    strides[3] = INT64_MAX / 3;
    ck_assert_int_eq(vt_read(a, start, size, &o, out), VT_ERANGE);
    strides[1] = INT64_MIN / 2; /* x 2 bytes is INT64_MIN, whose magnitude no int64 holds (fuzzing found it) */
    strides[3] = 1;
    ck_assert_int_eq(vt_read(a, start, size, &o, out), VT_ERANGE);
    o.strides = NULL;
    uint64_t huge[4] = {UINT64_C(1) << 40, UINT64_C(1) << 40, 1, 1};
    ck_assert_int_eq(vt_read(a, start, huge, &o, out), VT_ERANGE);
    const vt_array *none;
    ck_assert_int_eq(vt_store_array(s, "nope", &none), VT_ENOTFOUND);
    ck_assert(strstr(vt_errmsg(s), "nope") != NULL);
    ck_assert_int_eq(vt_store_array_at(s, NCASES, &none), VT_ERANGE);
    vt_close(s);
    /* a missing file */
    vt_store *m = (vt_store *)1;
    char *missing = tu_path(dir, "missing.vxt");
    ck_assert_int_eq(vt_open(missing, 0, &m), VT_EIO);
    ck_assert_ptr_null(m);
    ck_assert(strstr(vt_errmsg(NULL), "missing.vxt") != NULL);
    free(missing);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("read");
    TCase *tc = tu_tcase(s, "read", 900, setup, teardown);
    tcase_add_loop_test(tc, random_boxes, 0, 2);
    tcase_add_test(tc, threads_agree);
    tcase_add_test(tc, argument_errors);
    return tu_run(s);
}
