/* fuzz_read: one valid store, built once per process from a fixed seed (every
 * dtype, 1-d to 5-d, every codec and filter, constant tiles, a sparse label
 * array, a float32 array with 16 x 16 tile planes for the fused float16
 * kernel), and the fuzz input choosing the request: array, start, size, pad
 * mode and value, output dtype, transform, strides, threads, verify.
 *
 * The harness predicts from the documentation whether the request is valid.
 * An invalid one (bad dtype, pad mode or thread count; an empty box or one
 * whose coordinates, byte size or strides overflow) must be refused with the
 * documented code, before anything is written. A valid one must succeed, and
 * its output is compared voxel by voxel with a reference computed here from
 * the array's data: the pad mode's index mapping (numpy's constant / edge /
 * reflect; tests/reference.h), then the documented conversion (value as double, clip, x*scale +
 * offset, the library's double -> dtype rounding; bit copies without
 * conversion). Bytes of the output buffer outside the box's elements (gaps
 * left by strides) must stay untouched. */
#include "fuzz_common.h"
#include "internal.h"
#include "../reference.h"

typedef struct aspec {
    const char *name;
    vt_dtype dt;
    int nd;
    uint64_t shape[VT_MAX_DIMS];
    uint32_t tile[VT_MAX_DIMS];
    vt_codec codec;
    vt_filter filter;
    int sparse, labels;
    double fill;
} aspec;

static const aspec specs[] = {
    {"u8_1d", VT_U8, 1, {100}, {7}, VT_CODEC_LZ4, VT_FILTER_NONE, 0, 0, 0},
    {"i8_2d", VT_I8, 2, {13, 17}, {5, 4}, VT_CODEC_NONE, VT_FILTER_NONE, 0, 0, 0},
    {"u16_3d", VT_U16, 3, {9, 10, 11}, {4, 3, 5}, VT_CODEC_LZ4HC, VT_FILTER_SHUFFLE, 0, 0, 0},
    {"i16_3d", VT_I16, 3, {6, 7, 9}, {3, 4, 4}, VT_CODEC_LZ4, VT_FILTER_AUTO, 0, 0, 0},
    {"u32_4d", VT_U32, 4, {2, 5, 6, 7}, {1, 2, 4, 3}, VT_CODEC_LZ4, VT_FILTER_SHUFFLE, 0, 1, 0},
    {"i32_3d", VT_I32, 3, {8, 8, 8}, {8, 8, 8}, VT_CODEC_NONE, VT_FILTER_NONE, 0, 0, 0},
    {"f16_4d", VT_F16, 4, {1, 5, 6, 7}, {1, 2, 2, 2}, VT_CODEC_LZ4HC, VT_FILTER_SHUFFLE, 0, 0, 0},
    {"bf16_2d", VT_BF16, 2, {13, 17}, {5, 5}, VT_CODEC_LZ4, VT_FILTER_NONE, 0, 0, 0},
    {"f32_4d", VT_F32, 4, {2, 7, 9, 8}, {1, 3, 4, 4}, VT_CODEC_LZ4, VT_FILTER_SHUFFLE, 0, 0, 0},
    {"f64_5d", VT_F64, 5, {2, 2, 3, 4, 5}, {1, 1, 2, 2, 2}, VT_CODEC_LZ4HC, VT_FILTER_AUTO, 0, 0, 0},
    {"f32_planes", VT_F32, 4, {1, 3, 33, 40}, {1, 2, 16, 16}, VT_CODEC_LZ4, VT_FILTER_SHUFFLE, 0, 0, 0},
    {"u8_sparse", VT_U8, 3, {10, 12, 14}, {4, 4, 4}, VT_CODEC_LZ4HC, VT_FILTER_NONE, 1, 1, 3},
};
#define NARR (sizeof specs / sizeof specs[0])

static struct {
    bool ready;
    vt_store *store;
    const vt_array *arr[NARR];
    unsigned char *data[NARR]; /* the array's elements, C order */
    uint64_t nvox[NARR];
} S;

static void cleanup(void)
{
    vt_close(S.store);
    S.store = NULL;
    for (size_t i = 0; i < NARR; i++) {
        free(S.data[i]);
        S.data[i] = NULL;
    }
}

/* A value of dtype @p dt into @p p: constant stretches, small integers and,
 * for floats, NaN (with payloads), infinities, zeros of both signs,
 * subnormals and values that overflow the narrower float types. */
static void gen_value(vt_dtype dt, unsigned char *p, uint64_t i, uint64_t *rng)
{
    uint64_t r = fz_rng(rng);
    if ((i / 37) % 4 == 0) { /* stretches of one value: constant tiles */
        vt__store_f64(dt, p, (double)((i / 37) % 7) - 2);
        return;
    }
    size_t es = vt_dtype_size(dt);
    switch (r % 8) {
    case 0: memcpy(p, &r, es); return; /* any bits */
    case 1: {
        static const double sp[] = {FZ_NAN, -FZ_NAN, FZ_INF, -FZ_INF, 0.0, -0.0, 5e-324, 1e-40, 6e-8, 65504.0,
                                    65520.0, 3.4e38, 1e300, -1e300, 2147483648.0, -2147483649.0, 255.5, -0.5};
        vt__store_f64(dt, p, sp[(r >> 8) % (sizeof sp / sizeof sp[0])]);
        return;
    }
    default:
        vt__store_f64(dt, p, (double)(int64_t)((r >> 8) % 2001) - 1000 + ((r >> 40) & 3) * 0.25);
        return;
    }
}

static void build(void)
{
    const char *path = fz_path(0, "read.vxt");
    vt_writer *w;
    FZ_CHECK(vt_writer_open(path, NULL, &w) == 0, "vt_writer_open: %s", vt_errmsg(NULL));
    uint64_t rng = 12345;
    for (size_t k = 0; k < NARR; k++) {
        const aspec *sp = &specs[k];
        vt_array_spec spec;
        vt_array_spec_init(&spec);
        spec.name = sp->name;
        spec.dtype = sp->dt;
        spec.ndim = sp->nd;
        memcpy(spec.shape, sp->shape, sizeof spec.shape);
        memcpy(spec.tile, sp->tile, sizeof spec.tile);
        spec.codec = sp->codec;
        spec.filter = sp->filter;
        spec.sparse = sp->sparse;
        spec.labels = sp->labels;
        spec.fill = sp->fill;
        int id;
        FZ_CHECK(vt_writer_add_array(w, &spec, &id) == 0, "add_array %s: %s", sp->name, vt_writer_errmsg(w));
        size_t es = vt_dtype_size(sp->dt);
        uint64_t n = 1;
        for (int d = 0; d < sp->nd; d++)
            n *= sp->shape[d];
        S.nvox[k] = n;
        S.data[k] = malloc((size_t)(n * es));
        FZ_CHECK(S.data[k] != NULL, "out of memory");
        for (uint64_t i = 0; i < n; i++) {
            if (sp->labels) {
                uint64_t r = fz_rng(&rng);
                vt__store_f64(sp->dt, S.data[k] + i * es, (double)((i / 29) % 3 == 0 ? 0 : r % 5));
            } else
                gen_value(sp->dt, S.data[k] + i * es, i, &rng);
        }
        /* write slab by slab along axis 0; a sparse array skips every third
         * slab, which then holds the fill value */
        uint64_t slab = n / sp->shape[0];
        for (uint64_t z = 0; z < sp->shape[0]; z++) {
            if (sp->sparse && z % 3 == 1) {
                for (uint64_t i = 0; i < slab; i++)
                    vt__store_f64(sp->dt, S.data[k] + (z * slab + i) * es, sp->fill);
                continue;
            }
            uint64_t st[VT_MAX_DIMS] = {z}, sz[VT_MAX_DIMS];
            memcpy(sz, sp->shape, sizeof sz);
            sz[0] = 1;
            FZ_CHECK(vt_writer_write(w, id, st, sz, S.data[k] + z * slab * es) == 0, "write %s: %s", sp->name,
                     vt_writer_errmsg(w));
        }
    }
    FZ_CHECK(vt_writer_finalize(w) == 0, "finalize: %s", vt_writer_errmsg(w));
    vt_writer_free(w);
    FZ_CHECK(vt_open(path, 0, &S.store) == 0, "vt_open: %s", vt_errmsg(NULL));
    unlink(path); /* the mapping keeps the file: nothing is left behind, even after a crash */
    for (size_t k = 0; k < NARR; k++)
        FZ_CHECK(vt_store_array(S.store, specs[k].name, &S.arr[k]) == 0, "array %s", specs[k].name);
    atexit(cleanup);
    S.ready = true;
}

/* ---- the request ------------------------------------------------------------- */

static int64_t pick_start(fz_in *in, uint64_t shape, uint32_t tile)
{
    int64_t n = (int64_t)shape;
    switch (fz_u8(in) % 16) {
    case 8:
    case 9: return fz_range(in, -2, (int64_t)(shape / tile) + 1) * (int64_t)tile + fz_range(in, -1, 1);
    case 10: return 0;
    case 11: return n - 1;
    case 12: return (int64_t)fz_uint(in, 8);
    case 13: return INT64_MAX - fz_range(in, 0, 300);
    case 14: return INT64_MIN + fz_range(in, 0, 300);
    case 15: return -(int64_t)fz_uint(in, 5) * 1000 - fz_range(in, 0, 255);
    default: return fz_range(in, -2 * n - 2, 2 * n + 2);
    }
}

static uint64_t pick_size(fz_in *in, uint64_t shape)
{
    switch (fz_u8(in) % 16) {
    case 10: return shape;
    case 11: return 1;
    case 12: return 0;
    case 13: return fz_uint(in, 8);
    case 14: return fz_u8(in) & 1 ? UINT64_MAX : (uint64_t)INT64_MAX + 1;
    case 15: return (UINT64_C(1) << 32) + fz_u8(in);
    default: return 1 + (uint64_t)fz_range(in, 0, (int64_t)(2 * shape + 2));
    }
}

static bool is_float(vt_dtype d) { return d == VT_F16 || d == VT_BF16 || d == VT_F32 || d == VT_F64; }

#define MAX_ELEMS (1u << 12)
#define MAX_SPAN (1u << 18)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!S.ready)
        build();
    fz_in in = {data, size};
    size_t k = fz_u8(&in) % NARR;
    const aspec *A = &specs[k];
    const vt_array *arr = S.arr[k];
    int nd = A->nd;
    uint8_t mode = fz_u8(&in);

    int64_t start[VT_MAX_DIMS] = {0};
    uint64_t box[VT_MAX_DIMS] = {0};
    for (int d = 0; d < nd; d++) {
        start[d] = pick_start(&in, A->shape[d], A->tile[d]);
        box[d] = pick_size(&in, A->shape[d]);
    }
    vt_read_opts o;
    vt_read_opts_init(&o);
    uint8_t b = fz_u8(&in);
    o.pad = b < 240 ? (vt_pad)(b % 3) : b < 248 ? (vt_pad)-1 : (vt_pad)(3 + b % 4);
    b = fz_u8(&in) % 14;
    o.dtype = b <= 10 ? (vt_dtype)b : b == 11 ? (vt_dtype)11 : b == 12 ? (vt_dtype)-1 : (vt_dtype)(b * 1000);
    b = fz_u8(&in);
    o.threads = b < 200 ? b % 2 : b < 240 ? 2 + b % 3 : b < 244 ? -1 : b < 248 ? 257 : b < 252 ? 256 : 8;
    o.verify = !(mode & 0x08);
    o.pad_value = fz_f64(&in);
    if (mode & 0x04) {
        o.transform = 1;
        o.clip_lo = fz_f64(&in);
        o.clip_hi = fz_f64(&in);
        o.scale = fz_f64(&in);
        o.offset = fz_f64(&in);
    }
    int64_t strides[VT_MAX_DIMS];
    int smode = mode & 0x03;
    if (smode == 1) { /* a permutation of C order, axes reversed at will, with gaps */
        int perm[VT_MAX_DIMS];
        for (int d = 0; d < nd; d++)
            perm[d] = d;
        for (int d = nd - 1; d > 0; d--) {
            int j = (int)fz_range(&in, 0, d);
            int t = perm[d];
            perm[d] = perm[j];
            perm[j] = t;
        }
        uint8_t signs = fz_u8(&in), gaps = fz_u8(&in);
        int64_t st = 1;
        bool ok = true;
        for (int q = nd - 1; q >= 0; q--) {
            int d = perm[q];
            st += (gaps >> q) & 1; /* a gap of one element before this axis's stride */
            strides[d] = (signs >> d) & 1 ? -st : st;
            if (box[d] > (1u << 20) || __builtin_mul_overflow(st, (int64_t)box[d], &st))
                ok = false;
        }
        if (!ok)
            smode = 0;
    } else if (smode == 2) {
        for (int d = 0; d < nd; d++)
            strides[d] = fz_range(&in, -60, 60);
    } else if (smode == 3) {
        for (int d = 0; d < nd; d++) {
            uint8_t s = fz_u8(&in);
            strides[d] = s < 64 ? INT64_MIN + s % 4 : s < 128 ? INT64_MAX - s % 4 : (int64_t)fz_uint(&in, 8);
        }
    }
    o.strides = smode ? strides : NULL;

    /* tile lookups, in and out of range */
    {
        vt_array_info ai;
        FZ_CHECK(vt_array_info_get(arr, &ai) == 0, "info");
        uint64_t t = fz_uint(&in, 2);
        vt_tile_info ti;
        int rc = vt_tile_get(arr, t, &ti);
        FZ_CHECK(t < ai.ntiles ? rc == 0 : rc == VT_ERANGE, "vt_tile_get(%llu) of %llu returned %d",
                 (unsigned long long)t, (unsigned long long)ai.ntiles, rc);
    }

    /* ---- what the documentation says should happen ---- */
    vt_dtype sd = A->dt, dd = o.dtype == VT_DTYPE_SAME ? sd : o.dtype;
    int expect = 0;
    bool strides_bad = false;
    if (!(dd >= VT_U8 && dd <= VT_F64))
        expect = VT_EINVAL;
    else if (o.pad < VT_PAD_CONSTANT || o.pad > VT_PAD_REFLECT)
        expect = VT_EINVAL;
    else if (o.threads < 0 || o.threads > 256)
        expect = VT_EINVAL;
    size_t des = expect ? 8 : vt_dtype_size(dd);
    uint64_t total = 1, bytes = 0;
    if (expect == 0) {
        for (int d = 0; d < nd; d++) {
            int64_t end;
            if (box[d] == 0 || box[d] > (uint64_t)INT64_MAX ||
                __builtin_add_overflow(start[d], (int64_t)box[d], &end) ||
                __builtin_mul_overflow(total, box[d], &total))
                expect = VT_ERANGE;
        }
        if (expect == 0 && (__builtin_mul_overflow(total, des, &bytes) || bytes > (uint64_t)INT64_MAX))
            expect = VT_ERANGE;
    }
    int64_t ostr[VT_MAX_DIMS];
    if (expect == 0) {
        if (o.strides) {
            int64_t span = 0;
            for (int d = 0; d < nd; d++) {
                int64_t reach = 0;
                if (__builtin_mul_overflow(strides[d], (int64_t)des, &ostr[d]))
                    strides_bad = true;
                else if (box[d] > 1) {
                    if (ostr[d] == INT64_MIN ||
                        __builtin_mul_overflow(ostr[d] < 0 ? -ostr[d] : ostr[d], (int64_t)box[d] - 1, &reach))
                        strides_bad = true;
                }
                if (!strides_bad && __builtin_add_overflow(span, reach, &span))
                    strides_bad = true;
                if (strides_bad)
                    break;
            }
            if (strides_bad)
                expect = VT_ERANGE;
        } else {
            ostr[nd - 1] = (int64_t)des;
            for (int d = nd - 2; d >= 0; d--)
                ostr[d] = ostr[d + 1] * (int64_t)box[d + 1];
        }
    }

    /* A stride of INT64_MIN bytes on an axis of extent 1 is never used: the
     * library may take it or refuse it (VT_ERANGE). (Before the fix in
     * src/store/read.c it negated it -- undefined behaviour -- and, on a longer
     * axis, let it pass the overflow check and wrote far outside the buffer:
     * corpus/fuzz_read/crash-b5be8e583656dff33de664a68567b683c8333fe9.) */
    bool min_stride = false;
    if (o.strides && expect == 0)
        for (int d = 0; d < nd; d++)
            min_stride |= ostr[d] == INT64_MIN;

    if (expect != 0) {
        _Alignas(16) unsigned char dummy[64];
        memset(dummy, 0xA5, sizeof dummy);
        int rc = vt_read(arr, start, box, &o, dummy + 16);
        if (strides_bad)
            FZ_CHECK(rc == VT_ERANGE || rc == VT_EINVAL, "bad strides: vt_read returned %d, want an error", rc);
        else
            FZ_CHECK(rc == expect, "vt_read returned %d (%s), want %d (%s): %s", rc, vt_strerror(rc), expect,
                     vt_strerror(expect), vt_errmsg(NULL));
        for (size_t i = 0; i < sizeof dummy; i++)
            FZ_CHECK(dummy[i] == 0xA5, "a refused vt_read wrote byte %zu of the output", i);
        return 0;
    }

    /* a valid request: shrink the box until the output fits a test's memory
     * (smaller extents keep it valid: strides reach less) */
    while (total > MAX_ELEMS) {
        int m = 0;
        for (int d = 1; d < nd; d++)
            if (box[d] > box[m])
                m = d;
        total = total / box[m] * ((box[m] + 1) / 2);
        box[m] = (box[m] + 1) / 2;
    }
    if (!o.strides)
        for (int d = nd - 2; d >= 0; d--)
            ostr[d] = ostr[d + 1] * (int64_t)box[d + 1];
    int64_t lo = 0, hi = 0; /* byte offsets of the first bytes of the extreme elements */
    for (int d = 0; d < nd; d++) {
        int64_t r = ostr[d] * (int64_t)(box[d] - 1);
        if (r < 0)
            lo += r;
        else
            hi += r;
    }
    uint64_t span = (uint64_t)(hi - lo) + des;
    if (span > MAX_SPAN)
        return 0;
    unsigned char *buf = malloc((size_t)span);
    unsigned char *touched = calloc((size_t)span, 1);
    FZ_CHECK(buf && touched, "out of memory");
    memset(buf, 0xA5, (size_t)span);
    unsigned char *out = buf - lo;
    int rc = vt_read(arr, start, box, &o, out);
    if (min_stride && rc == VT_ERANGE) {
        free(buf);
        free(touched);
        return 0;
    }
    FZ_CHECK(rc == 0 || rc == VT_ENOMEM || (rc == VT_EIO && o.threads > 1),
             "valid vt_read returned %d (%s): %s", rc, vt_strerror(rc), vt_errmsg(NULL));
    if (rc != 0) {
        free(buf);
        free(touched);
        return 0;
    }

    /* pass 1: where each element goes; aliasing strides make the value of a
     * shared location unspecified */
    bool alias = false;
    uint64_t kk[VT_MAX_DIMS] = {0};
    for (uint64_t e = 0; e < total; e++) {
        int64_t off = -lo;
        for (int d = 0; d < nd; d++)
            off += (int64_t)kk[d] * ostr[d];
        for (size_t j = 0; j < des; j++) {
            alias |= touched[off + (int64_t)j] != 0;
            touched[off + (int64_t)j] = 1;
        }
        for (int d = nd - 1; d >= 0; d--) {
            if (++kk[d] < box[d])
                break;
            kk[d] = 0;
        }
    }
    for (uint64_t j = 0; j < span; j++)
        FZ_CHECK(touched[j] || buf[j] == 0xA5, "vt_read wrote byte %llu of the buffer, outside the box",
                 (unsigned long long)j);

    /* pass 2: every element against the reference */
    if (!alias) {
        unsigned char padv[8];
        vt__store_f64(dd, padv, o.pad_value);
        size_t ses = vt_dtype_size(sd);
        memset(kk, 0, sizeof kk);
        for (uint64_t e = 0; e < total; e++) {
            int64_t off = -lo;
            bool fill = false;
            uint64_t lin = 0;
            for (int d = 0; d < nd; d++) {
                off += (int64_t)kk[d] * ostr[d];
                int64_t m = ref_map(start[d] + (int64_t)kk[d], (int64_t)A->shape[d], o.pad);
                if (m < 0)
                    fill = true;
                else
                    lin = lin * A->shape[d] + (uint64_t)m;
            }
            unsigned char want[8];
            if (fill)
                memcpy(want, padv, des);
            else {
                const unsigned char *src = S.data[k] + lin * ses;
                if (dd == sd && !o.transform)
                    memcpy(want, src, des);
                else {
                    double x = vt__load_f64(sd, src);
                    if (o.transform)
                        x = ref_transform(x, &o);
                    vt__store_f64(dd, want, x);
                }
            }
            const unsigned char *got = buf + off;
            bool same = memcmp(got, want, des) == 0;
            if (!same && is_float(dd)) {
                double g = vt__load_f64(dd, got), w = vt__load_f64(dd, want);
                same = g != g && w != w; /* NaN payloads may differ */
            }
            if (!same) {
                fprintf(stderr, "array %s (%s -> %s, pad %d, transform %d, strides %d, threads %d): element %llu (",
                        A->name, vt_dtype_name(sd), vt_dtype_name(dd), (int)o.pad, o.transform, smode, o.threads,
                        (unsigned long long)e);
                for (int d = 0; d < nd; d++)
                    fprintf(stderr, "%s%lld", d ? "," : "", (long long)(start[d] + (int64_t)kk[d]));
                fprintf(stderr, "): got");
                for (size_t j = 0; j < des; j++)
                    fprintf(stderr, " %02x", got[j]);
                fprintf(stderr, ", want");
                for (size_t j = 0; j < des; j++)
                    fprintf(stderr, " %02x", want[j]);
                fprintf(stderr, "\n");
                FZ_CHECK(same, "vt_read output differs from the reference");
            }
            for (int d = nd - 1; d >= 0; d--) {
                if (++kk[d] < box[d])
                    break;
                kk[d] = 0;
            }
        }
    }
    free(buf);
    free(touched);
    return 0;
}
