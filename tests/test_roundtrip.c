/* Write -> read round trips for every dtype, codec, filter and odd shape,
 * written in slabs, tile by tile, and in random pieces; writer errors and
 * publishing behaviour. The oracle is the source array itself. */
#include "testutil.h"

#include <stdbool.h>

#include <fcntl.h>

static const vt_dtype all_dtypes[] = {VT_U8, VT_I8, VT_U16, VT_I16, VT_U32,
                                      VT_I32, VT_F16, VT_BF16, VT_F32, VT_F64};

typedef struct shape_case {
    int nd;
    uint64_t shape[VT_MAX_DIMS];
    uint32_t tile[VT_MAX_DIMS]; /* all 0 = default */
} shape_case;

static const shape_case shapes[] = {
    {1, {1}, {0}},
    {1, {7}, {3}},
    {2, {5, 9}, {2, 4}},
    {3, {1, 1, 1}, {0}},
    {3, {13, 17, 19}, {4, 5, 6}},
    {3, {2, 3, 5}, {64, 64, 64}},       /* tiles larger than the array */
    {4, {2, 11, 7, 13}, {1, 4, 4, 4}},
    {4, {1, 23, 29, 31}, {0}},          /* default tiles, primes */
    {5, {2, 2, 3, 5, 7}, {1, 2, 2, 2, 3}},
    /* more tiles along the last axis than the writer fills at once (64), the
     * last one narrower */
    {4, {1, 5, 3, 1100}, {1, 2, 2, 16}},
    {2, {3, 700}, {2, 8}},
};

/* The documented default tile: 16 on the last three axes, 1 before them;
 * 1-d 32768, 2-d 256 x 256. */
static uint32_t expected_tile(const shape_case *sc, int d)
{
    bool dflt = true;
    for (int k = 0; k < sc->nd; k++)
        dflt &= sc->tile[k] == 0;
    if (!dflt)
        return sc->tile[d];
    if (sc->nd == 1)
        return 32768;
    if (sc->nd == 2)
        return 256;
    return d < sc->nd - 3 ? 1 : 16;
}

/* Each test's own temporary folder, and the store it writes there. */
static char *dir, *path;

static void setup(void)
{
    dir = tu_tmpdir();
    path = tu_path(dir, "rt.vxt");
}

static void teardown(void)
{
    tu_tmpdir_free(dir, path);
}

/* Random data with structure: smooth stretches, constant stretches (constant
 * tiles), and for floats NaN, infinities, -0 and subnormals. */
static unsigned char *make_data(vt_dtype dt, uint64_t n, rng *r)
{
    size_t es = vt_dtype_size(dt);
    unsigned char *p = malloc((size_t)(n * es) + 1);
    uint64_t i = 0;
    while (i < n) {
        uint64_t run = (uint64_t)rng_range(r, 1, 300);
        int kind = (int)rng_range(r, 0, 9);
        double base = rng_unit(r) * 200 - 100;
        for (uint64_t k = 0; k < run && i < n; k++, i++) {
            unsigned char *e = p + i * es;
            if (kind == 0) { /* constant */
                if (k == 0 || i == 0)
                    for (size_t b = 0; b < es; b++)
                        e[b] = (unsigned char)rng_next(r);
                else
                    memcpy(e, e - es, es);
            } else if (kind <= 2) { /* random bits (any value incl. NaN patterns) */
                for (size_t b = 0; b < es; b++)
                    e[b] = (unsigned char)rng_next(r);
            } else { /* smooth */
                double v = base + (double)k * 0.25 + rng_unit(r);
                if (kind == 3 && (dt == VT_F32 || dt == VT_F64 || dt == VT_F16 || dt == VT_BF16)) {
                    static const double specials[] = {NAN, INFINITY, -INFINITY, -0.0, 1e-40, 6e-8};
                    v = specials[rng_next(r) % 6];
                }
                ref_store(dt, e, v);
            }
        }
    }
    return p;
}

/* Copy box (start, size) out of a C-order array. */
static void box_copy(const unsigned char *src, const uint64_t *shape, int nd, size_t es,
                     const uint64_t *start, const uint64_t *size, unsigned char *dst)
{
    uint64_t idx[VT_MAX_DIMS] = {0};
    uint64_t n = tu_count_of(nd, size);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t off = 0;
        for (int d = 0; d < nd; d++)
            off = off * shape[d] + start[d] + idx[d];
        memcpy(dst + i * es, src + off * es, es);
        for (int d = nd - 1; d >= 0; d--) {
            if (++idx[d] < size[d])
                break;
            idx[d] = 0;
        }
    }
}

static void write_box(vt_writer *w, int id, const unsigned char *data, const uint64_t *shape, int nd,
                      size_t es, const uint64_t *start, const uint64_t *size)
{
    unsigned char *buf = malloc((size_t)(tu_count_of(nd, size) * es));
    box_copy(data, shape, nd, es, start, size, buf);
    int rc = vt_writer_write(w, id, start, size, buf);
    ck_assert_msg(rc == 0, "write: %s", vt_writer_errmsg(w));
    free(buf);
}

typedef struct box {
    uint64_t start[VT_MAX_DIMS], size[VT_MAX_DIMS];
} box;

/* Split a box into random pieces. */
static size_t split(box b, int nd, rng *r, box *out, size_t cap, int depth)
{
    int d = (int)rng_range(r, 0, nd - 1);
    if (depth == 0 || b.size[d] < 2 || cap < 2) {
        out[0] = b;
        return 1;
    }
    uint64_t cut = (uint64_t)rng_range(r, 1, (int64_t)b.size[d] - 1);
    box lo = b, hi = b;
    lo.size[d] = cut;
    hi.start[d] += cut;
    hi.size[d] -= cut;
    size_t n = split(lo, nd, r, out, cap / 2, depth - 1);
    return n + split(hi, nd, r, out + n, cap - n, depth - 1);
}

enum { BY_SLABS, BY_TILES, BY_PIECES };

static void write_array(vt_writer *w, int id, const unsigned char *data, const vt_array_info *ai,
                        int how, rng *r)
{
    int nd = ai->ndim;
    size_t es = vt_dtype_size(ai->dtype);
    const uint64_t *shape = ai->shape;
    if (how == BY_SLABS) {
        uint64_t start[VT_MAX_DIMS] = {0}, size[VT_MAX_DIMS];
        memcpy(size, shape, sizeof size);
        while (start[0] < shape[0]) {
            size[0] = (uint64_t)rng_range(r, 1, (int64_t)(shape[0] - start[0]));
            write_box(w, id, data, shape, nd, es, start, size);
            start[0] += size[0];
        }
    } else if (how == BY_TILES) {
        /* tiles in a scrambled order */
        uint64_t nt = ai->ntiles, mul = 7919 % nt ? 7919 : 7907;
        while (nt > 1 && (mul % nt == 0))
            mul++;
        for (uint64_t k = 0; k < nt; k++) {
            uint64_t t = (k * mul) % nt, rem = t;
            uint64_t start[VT_MAX_DIMS], size[VT_MAX_DIMS];
            for (int d = nd - 1; d >= 0; d--) {
                uint64_t c = rem % ai->grid[d];
                rem /= ai->grid[d];
                start[d] = c * ai->tile[d];
                size[d] = shape[d] - start[d] < ai->tile[d] ? shape[d] - start[d] : ai->tile[d];
            }
            write_box(w, id, data, shape, nd, es, start, size);
        }
    } else {
        box all;
        memset(&all, 0, sizeof all);
        memcpy(all.size, shape, sizeof all.size);
        box pieces[64];
        size_t n = split(all, nd, r, pieces, 64, 6);
        for (size_t i = n; i > 1; i--) { /* shuffle */
            size_t j = (size_t)(rng_next(r) % i);
            box t = pieces[i - 1];
            pieces[i - 1] = pieces[j];
            pieces[j] = t;
        }
        for (size_t i = 0; i < n; i++)
            write_box(w, id, data, shape, nd, es, pieces[i].start, pieces[i].size);
    }
}

static void read_all_and_compare(const vt_array *a, const unsigned char *data, const vt_array_info *ai,
                                 int threads)
{
    size_t es = vt_dtype_size(ai->dtype);
    uint64_t n = tu_count_of(ai->ndim, ai->shape);
    unsigned char *out = malloc((size_t)(n * es));
    int64_t start[VT_MAX_DIMS] = {0};
    vt_read_opts o;
    vt_read_opts_init(&o);
    o.threads = threads;
    ck_assert_msg(vt_read(a, start, ai->shape, &o, out) == 0, "read: %s", vt_errmsg(NULL));
    for (uint64_t i = 0; i < n; i++)
        TU_CHECK(memcmp(out + i * es, data + i * es, es) == 0, "%s %s: element %llu differs",
                 vt_dtype_name(ai->dtype), ai->name, (unsigned long long)i);
    free(out);
}

START_TEST(all_dtypes_codecs_filters_shapes)
{
    rng r = {42 + (uint64_t)_i};
    int ncases = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (size_t di = 0; di < sizeof all_dtypes / sizeof all_dtypes[0]; di++)
            for (int codec = VT_CODEC_NONE; codec <= VT_CODEC_LZ4HC; codec++)
                for (int filter = VT_FILTER_NONE; filter <= VT_FILTER_AUTO; filter++) {
                    if (codec == VT_CODEC_NONE && filter != VT_FILTER_NONE)
                        continue;
                    const shape_case *sc = &shapes[si];
                    vt_dtype dt = all_dtypes[di];
                    uint64_t n = tu_count_of(sc->nd, sc->shape);
                    unsigned char *data = make_data(dt, n, &r);
                    int how = (int)(ncases % 3);
                    int threads = ncases % 4 == 3 ? 3 : 1;

                    vt_writer *w = tu_writer(path, threads);
                    vt_array_spec spec;
                    tu_spec(&spec, "a", dt, sc->nd, sc->shape, sc->tile);
                    spec.codec = (vt_codec)codec;
                    spec.filter = (vt_filter)filter;
                    spec.level = codec == VT_CODEC_LZ4HC ? (int)rng_range(&r, 1, 12) : 0;
                    int id = tu_add_array(w, &spec);
                    /* the writer's tile geometry, from a store we are about to write */
                    vt_array_info ai;
                    memset(&ai, 0, sizeof ai);
                    ai.ndim = sc->nd;
                    ai.dtype = dt;
                    ai.name = "a";
                    uint64_t nt = 1;
                    for (int d = 0; d < sc->nd; d++) {
                        uint32_t t = expected_tile(sc, d);
                        ai.shape[d] = sc->shape[d];
                        ai.tile[d] = (uint64_t)t > sc->shape[d] ? (uint32_t)sc->shape[d] : t;
                        ai.grid[d] = (ai.shape[d] + ai.tile[d] - 1) / ai.tile[d];
                        nt *= ai.grid[d];
                    }
                    ai.ntiles = nt;
                    write_array(w, id, data, &ai, how, &r);
                    tu_finish(w);

                    const vt_array *a;
                    vt_store *s = tu_open_array(path, "a", &a);
                    vt_array_info got;
                    ck_assert_int_eq(vt_array_info_get(a, &got), 0);
                    ck_assert_int_eq(got.dtype, dt);
                    ck_assert_int_eq(got.ndim, sc->nd);
                    ck_assert_uint_eq(got.ntiles, nt);
                    for (int d = 0; d < sc->nd; d++) {
                        ck_assert_uint_eq(got.shape[d], sc->shape[d]);
                        ck_assert_uint_eq(got.tile[d], ai.tile[d]);
                    }
                    ck_assert_uint_eq(got.raw_bytes, n * vt_dtype_size(dt));
                    if (codec == VT_CODEC_NONE)
                        ck_assert_uint_eq(got.shuffled_tiles, 0);
                    if (filter == VT_FILTER_NONE || vt_dtype_size(dt) == 1)
                        ck_assert_uint_eq(got.shuffled_tiles, 0);
                    /* value range against the data, NaN ignored */
                    double mn = INFINITY, mx = -INFINITY;
                    for (uint64_t i = 0; i < n; i++) {
                        double v = ref_load(dt, data + i * vt_dtype_size(dt));
                        if (v < mn)
                            mn = v;
                        if (v > mx)
                            mx = v;
                    }
                    if (mn > mx)
                        ck_assert(isnan(got.min) && isnan(got.max));
                    else
                        ck_assert_msg(got.min == mn && got.max == mx, "range [%g,%g] want [%g,%g]",
                                      got.min, got.max, mn, mx);
                    read_all_and_compare(a, data, &ai, 1 + ncases % 3);
                    uint64_t badt = 999;
                    ck_assert_msg(vt_verify_array(a, &badt) == 0, "verify: %s", vt_errmsg(s));
                    ck_assert_uint_eq(badt, 999);
                    vt_close(s);
                    free(data);
                    ncases++;
                }
    ck_assert_int_gt(ncases, 200);
    unlink(path);
    ck_assert_int_eq(tu_count_entries(dir), 0);
}
END_TEST

/* Write @p data as the only array of the store at path -- 4-d, 16^3 tiles,
 * one box -- and open it; the store and the array in *out. */
static vt_store *write_one_array(const char *name, vt_dtype dtype, const uint64_t *shape,
                                 vt_codec codec, vt_filter filter, const void *data, const vt_array **out)
{
    static const uint32_t tile[4] = {1, 16, 16, 16};
    vt_array_spec spec;
    tu_spec(&spec, name, dtype, 4, shape, tile);
    spec.codec = codec;
    spec.filter = filter;
    tu_write_store(path, 1, &spec, data);
    return tu_open_array(path, name, out);
}

/* Compression actually happens: a smooth volume shrinks, shuffle helps floats,
 * constant tiles store no bytes. */
START_TEST(compression_and_constant_tiles)
{
    uint64_t shape[4] = {1, 32, 64, 64};
    uint64_t n = tu_count_of(4, shape);
    float *v = malloc(n * 4);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t z = i / 4096, y = i / 64 % 64, x = i % 64;
        v[i] = z < 16 ? 0.0f : (float)(sin((double)x * 0.1) * cos((double)y * 0.07) * 100 + (double)z);
    }
    uint64_t stored[3];
    for (int f = 0; f < 3; f++) {
        const vt_array *a;
        vt_store *s = write_one_array("image", VT_F32, shape, VT_CODEC_LZ4HC, (vt_filter)f, v, &a);
        vt_array_info ai;
        vt_array_info_get(a, &ai);
        ck_assert_uint_eq(ai.constant_tiles, 16); /* z < 16: 1 x 4 x 4 tiles */
        for (uint64_t t = 0; t < ai.ntiles; t++) {
            vt_tile_info ti;
            ck_assert_int_eq(vt_tile_get(a, t, &ti), 0);
            if (ti.coord[1] == 0) {
                ck_assert_uint_eq(ti.flags, VT_TILE_CONSTANT);
                ck_assert_uint_eq(ti.stored_size, 0);
                ck_assert(ti.min == 0 && ti.max == 0);
            } else
                ck_assert(!(ti.flags & VT_TILE_CONSTANT));
        }
        if (f == VT_FILTER_NONE)
            ck_assert_uint_eq(ai.shuffled_tiles, 0);
        if (f == VT_FILTER_SHUFFLE)
            ck_assert_uint_eq(ai.shuffled_tiles + ai.raw_tiles + ai.constant_tiles, ai.ntiles);
        stored[f] = ai.stored_bytes;
        ck_assert_uint_lt(ai.stored_bytes, ai.raw_bytes / 2);
        vt_close(s);
    }
    /* auto keeps whichever of the two is smaller on its sample */
    ck_assert_uint_le(stored[VT_FILTER_AUTO], (stored[0] > stored[1] ? stored[0] : stored[1]));

    /* Incompressible tiles (random bytes; partial tiles at the far borders)
     * under lz4 and lz4hc, with shuffle off and auto: LZ4's output is larger,
     * so every tile is stored raw, byte for byte, and reads back equal. */
    uint64_t rshape[4] = {1, 20, 32, 40};
    uint64_t rn = tu_count_of(4, rshape);
    unsigned char *rnd = malloc(rn), *back = malloc(rn);
    rng r = {2024};
    for (uint64_t i = 0; i < rn; i++)
        rnd[i] = (unsigned char)(rng_next(&r) >> 56);
    static const vt_codec codecs[] = {VT_CODEC_LZ4, VT_CODEC_LZ4HC};
    static const vt_filter filters[] = {VT_FILTER_NONE, VT_FILTER_AUTO};
    for (int c = 0; c < 2; c++)
        for (int f = 0; f < 2; f++) {
            const vt_array *a;
            vt_store *s = write_one_array("noise", VT_U8, rshape, codecs[c], filters[f], rnd, &a);
            vt_array_info ai;
            ck_assert_int_eq(vt_array_info_get(a, &ai), 0);
            ck_assert_uint_eq(ai.ntiles, 2 * 2 * 3);
            for (uint64_t t = 0; t < ai.ntiles; t++) {
                vt_tile_info ti;
                ck_assert_int_eq(vt_tile_get(a, t, &ti), 0);
                ck_assert_msg(ti.flags == VT_TILE_RAW, "%s, filter %d: tile %llu has flags 0x%x, not raw",
                              vt_codec_name(codecs[c]), (int)filters[f], (unsigned long long)t, ti.flags);
                ck_assert_uint_eq(ti.raw_size, ti.extent[1] * ti.extent[2] * ti.extent[3]);
                ck_assert_uint_eq(ti.stored_size, ti.raw_size);
            }
            ck_assert_uint_eq(ai.raw_tiles, ai.ntiles);
            ck_assert_uint_eq(ai.stored_bytes, ai.raw_bytes);
            ck_assert_int_eq(ai.codec, codecs[c]);
            int64_t at[4] = {0};
            memset(back, 0, rn);
            ck_assert_int_eq(vt_read(a, at, rshape, NULL, back), 0);
            ck_assert(memcmp(back, rnd, rn) == 0);
            ck_assert_int_eq(vt_verify_array(a, NULL), 0);
            vt_close(s);
        }
    free(rnd);
    free(back);
    free(v);
}
END_TEST

/* The VmFlags line and start address of this process's mapping of @p file
 * (the first whose path matches) from /proc/self/smaps; false if none. */
static bool mapping_of(const char *file, char *flags, size_t cap, uintptr_t *start)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (f == NULL)
        return false;
    char line[4096];
    bool in = false, found = false;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char name[2048] = "";
        if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %2047s", &lo, &hi, name) >= 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = strcmp(name, file) == 0;
            if (in)
                *start = (uintptr_t)lo;
        } else if (in && strncmp(line, "VmFlags:", 8) == 0) {
            size_t n = strlen(line + 8) < cap ? strlen(line + 8) : cap - 1;
            memcpy(flags, line + 8, n);
            flags[n] = 0;
            found = true;
        }
    }
    fclose(f);
    return found;
}

/* The writer writes the file in aligned 2 MiB windows: tiles bigger than a
 * window (one append fills two), tiles that straddle window edges and small
 * tiles after them, from one and from two encoding threads. Every tile reads
 * back equal and verifies, the tiles' byte ranges lie after the header,
 * inside the file and do not overlap, and the tile data has no gaps. */
START_TEST(windows_hold_tiles_of_any_size)
{
    /* incompressible bytes: every tile stored raw, 1 x 128 x 128 x 192 = 3 MiB, then narrower ones */
    uint64_t shape[4] = {1, 260, 128, 200};
    static const uint32_t tile[4] = {1, 128, 128, 192};
    uint64_t n = tu_count_of(4, shape);
    unsigned char *v = malloc(n), *back = malloc(n);
    rng r = {77};
    for (uint64_t i = 0; i < n; i++)
        v[i] = (unsigned char)(rng_next(&r) >> 56);
    for (int threads = 1; threads <= 2; threads++) {
        vt_array_spec spec;
        tu_spec(&spec, "noise", VT_U8, 4, shape, tile);
        spec.codec = VT_CODEC_LZ4;
        tu_write_store(path, threads, &spec, v);
        const vt_array *a;
        vt_store *s = tu_open_array(path, "noise", &a);
        vt_array_info ai;
        ck_assert_int_eq(vt_array_info_get(a, &ai), 0);
        ck_assert_uint_eq(ai.ntiles, 3 * 1 * 2);
        ck_assert_uint_eq(ai.raw_tiles, ai.ntiles);
        uint64_t lo[6] = {0}, hi[6] = {0}, total = 0;
        for (uint64_t t = 0; t < ai.ntiles; t++) {
            vt_tile_info ti;
            ck_assert_int_eq(vt_tile_get(a, t, &ti), 0);
            lo[t] = ti.offset;
            hi[t] = ti.offset + ti.stored_size;
            total += ti.stored_size;
            ck_assert_uint_ge(lo[t], 4096); /* after the header (VT_HEADER_SIZE) */
            ck_assert_uint_le(hi[t], vt_store_file_size(s));
            for (uint64_t u = 0; u < t; u++)
                ck_assert_msg(hi[t] <= lo[u] || hi[u] <= lo[t], "tiles %llu and %llu overlap",
                              (unsigned long long)t, (unsigned long long)u);
        }
        uint64_t first = lo[0], last = hi[0];
        for (uint64_t t = 1; t < ai.ntiles; t++) {
            first = lo[t] < first ? lo[t] : first;
            last = hi[t] > last ? hi[t] : last;
        }
        ck_assert_uint_eq(last - first, total); /* one run of tile data */
        ck_assert_uint_gt(vt_store_file_size(s), (uint64_t)3 * (2 << 20));
        int64_t at[4] = {0};
        memset(back, 0, n);
        ck_assert_int_eq(vt_read(a, at, shape, NULL, back), 0);
        ck_assert(memcmp(back, v, n) == 0);
        ck_assert_int_eq(vt_verify_array(a, NULL), 0);
        /* the mapping: at a 2 MiB boundary, advised for huge pages ("hg") where the kernel has them;
         * VT_OPEN_NO_HUGE: a plain mapping, the same bytes; other flags refused */
        char fl[512];
        uintptr_t at0 = 0;
        ck_assert(mapping_of(path, fl, sizeof fl, &at0));
        ck_assert_uint_eq(at0 % (2u << 20), 0);
        if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0)
            ck_assert_msg(strstr(fl, " hg") != NULL, "VmFlags without hg: %s", fl);
        vt_close(s);
        ck_assert_int_eq(vt_open(path, VT_OPEN_NO_HUGE, &s), 0);
        ck_assert(mapping_of(path, fl, sizeof fl, &at0));
        ck_assert_msg(strstr(fl, " hg") == NULL, "VT_OPEN_NO_HUGE mapping has hg: %s", fl);
        ck_assert_int_eq(vt_store_array(s, "noise", &a), 0);
        memset(back, 0, n);
        ck_assert_int_eq(vt_read(a, at, shape, NULL, back), 0);
        ck_assert(memcmp(back, v, n) == 0);
        vt_close(s);
        ck_assert_int_eq(vt_open(path, 2u, &s), VT_EINVAL);
        ck_assert_ptr_null(s);
        ck_assert_ptr_nonnull(strstr(vt_errmsg(NULL), "unknown open flags 0x2"));
    }
    free(v);
    free(back);
}
END_TEST

START_TEST(metadata_round_trip)
{
    vt_writer *w = tu_writer(path, 1);
    uint8_t vals[3] = {1, 2, 3};
    uint64_t st = 0, sz = 3;
    vt_array_spec spec;
    tu_spec(&spec, "x", VT_U8, 1, &sz, NULL);
    int id = tu_add_array(w, &spec);
    ck_assert_int_eq(vt_writer_write(w, id, &st, &sz, vals), 0);
    double spacing[3] = {2.5, 0.75, 0.75}, dir9[9] = {1, 0, 0, 0, -1, 0, 0, 0, 1};
    int64_t ints[2] = {-5, INT64_MAX};
    unsigned char blob[5] = {0, 1, 2, 0, 255};
    ck_assert_int_eq(vt_writer_set_meta(w, "spacing", VT_META_F64, spacing, 3), 0);
    ck_assert_int_eq(vt_writer_set_meta(w, "direction", VT_META_F64, dir9, 9), 0);
    ck_assert_int_eq(vt_writer_set_meta(w, "ints", VT_META_I64, ints, 2), 0);
    ck_assert_int_eq(vt_writer_set_meta(w, "blob", VT_META_BYTES, blob, 5), 0);
    ck_assert_int_eq(vt_writer_set_meta(w, "empty", VT_META_BYTES, NULL, 0), 0);
    ck_assert_int_eq(vt_writer_set_meta(w, "note", VT_META_STRING, "first", 5), 0);
    ck_assert_int_eq(vt_writer_set_meta(w, "note", VT_META_STRING, "replaced value", 14), 0);
    ck_assert_int_eq(vt_writer_set_meta(w, "", VT_META_STRING, "x", 1), VT_EINVAL);
    ck_assert_int_eq(vt_writer_set_meta(w, "nul", VT_META_STRING, "a\0b", 3), VT_EINVAL);
    tu_finish(w);

    vt_store *s;
    ck_assert_int_eq(vt_open(path, 0, &s), 0);
    ck_assert_uint_eq(vt_meta_count(s), 6);
    vt_meta_type t;
    const void *data;
    size_t count;
    ck_assert_int_eq(vt_meta_get(s, "spacing", &t, &data, &count), 0);
    ck_assert_int_eq(t, VT_META_F64);
    ck_assert_uint_eq(count, 3);
    ck_assert_uint_eq((uintptr_t)data % 8, 0);
    ck_assert(memcmp(data, spacing, sizeof spacing) == 0);
    ck_assert_int_eq(vt_meta_get(s, "direction", &t, &data, &count), 0);
    ck_assert(count == 9 && memcmp(data, dir9, sizeof dir9) == 0);
    ck_assert_int_eq(vt_meta_get(s, "ints", &t, &data, &count), 0);
    ck_assert(t == VT_META_I64 && count == 2 && memcmp(data, ints, sizeof ints) == 0);
    ck_assert_int_eq(vt_meta_get(s, "blob", &t, &data, &count), 0);
    ck_assert(t == VT_META_BYTES && count == 5 && memcmp(data, blob, 5) == 0);
    ck_assert_int_eq(vt_meta_get(s, "empty", &t, &data, &count), 0);
    ck_assert_uint_eq(count, 0);
    ck_assert_int_eq(vt_meta_get(s, "note", &t, &data, &count), 0);
    ck_assert(t == VT_META_STRING && count == 14);
    ck_assert_str_eq((const char *)data, "replaced value");
    ck_assert_int_eq(vt_meta_get(s, "missing", &t, &data, &count), VT_ENOTFOUND);
    const char *key;
    ck_assert_int_eq(vt_meta_at(s, 0, &key, NULL, NULL, NULL), 0);
    ck_assert_str_eq(key, "spacing");
    ck_assert_int_eq(vt_meta_at(s, 6, &key, NULL, NULL, NULL), VT_ERANGE);
    vt_close(s);
}
END_TEST

/* A writer of the store at path, of a 1-d int16 array "v" of @p n voxels in tiles of 10. */
static vt_writer *writer_1d(int threads, uint64_t n, int *id)
{
    vt_writer *w = tu_writer(path, threads);
    const uint32_t tile = 10;
    vt_array_spec spec;
    tu_spec(&spec, "v", VT_I16, 1, &n, &tile);
    *id = tu_add_array(w, &spec);
    return w;
}

/* vt_writer_write of voxels [st, st + sz) of the 1-d array @p id from @p vals. */
static int write_1d(vt_writer *w, int id, uint64_t st, uint64_t sz, const int16_t *vals)
{
    return vt_writer_write(w, id, &st, &sz, vals);
}

START_TEST(writer_errors_publish_nothing)
{
    int16_t vals[100];
    for (int i = 0; i < 100; i++)
        vals[i] = (int16_t)(i * 37);
    for (int threads = 1; threads <= 2; threads++) {
        int id;
        /* abandoned: nothing left, not even a temporary */
        vt_writer *w = writer_1d(threads, 100, &id);
        ck_assert_int_eq(write_1d(w, id, 0, 50, vals), 0);
        vt_writer_free(w);
        ck_assert_int_eq(tu_count_entries(dir), 0);

        /* box outside the array: rejected, the writer goes on */
        w = writer_1d(threads, 100, &id);
        ck_assert_int_eq(write_1d(w, id, 95, 10, vals), VT_ERANGE);
        ck_assert(strstr(vt_writer_errmsg(w), "outside") != NULL);
        ck_assert_int_eq(write_1d(w, id, 95, 0, vals), VT_ERANGE);
        ck_assert_int_eq(write_1d(w, 7, 95, 0, vals), VT_EINVAL);
        /* incomplete: finalize fails naming the array and the first missing tile */
        ck_assert_int_eq(write_1d(w, id, 0, 55, vals), 0);
        ck_assert_int_eq(vt_writer_finalize(w), VT_EINVAL);
        ck_assert_msg(strstr(vt_writer_errmsg(w), "'v'") && strstr(vt_writer_errmsg(w), "(5)"),
                      "message: %s", vt_writer_errmsg(w));
        ck_assert_int_eq(vt_writer_finalize(w), VT_ESTATE);
        vt_writer_free(w);
        ck_assert_int_eq(tu_count_entries(dir), 0);

        /* a voxel written twice fails the writer */
        w = writer_1d(threads, 100, &id);
        ck_assert_int_eq(write_1d(w, id, 0, 15, vals), 0);
        ck_assert_int_eq(write_1d(w, id, 14, 3, vals), VT_EINVAL);
        ck_assert(strstr(vt_writer_errmsg(w), "twice") != NULL);
        ck_assert_int_eq(write_1d(w, id, 20, 3, vals), VT_ESTATE);
        ck_assert_int_eq(vt_writer_finalize(w), VT_ESTATE);
        vt_writer_free(w);
        /* and a complete tile written again */
        w = writer_1d(threads, 100, &id);
        ck_assert_int_eq(write_1d(w, id, 0, 10, vals), 0);
        ck_assert_int_eq(write_1d(w, id, 0, 1, vals), VT_EINVAL);
        vt_writer_free(w);
        ck_assert_int_eq(tu_count_entries(dir), 0);
    }
    /* bad specs */
    vt_writer *w = tu_writer(path, 1);
    const uint64_t four = 4;
    vt_array_spec spec;
    tu_spec(&spec, "x", VT_U8, 1, &four, NULL);
    int id;
    spec.fill = 300;
    ck_assert_int_eq(vt_writer_add_array(w, &spec, &id), VT_EINVAL);
    spec.fill = 0.5;
    ck_assert_int_eq(vt_writer_add_array(w, &spec, &id), VT_EINVAL);
    spec.fill = 7;
    spec.ndim = 6;
    ck_assert_int_eq(vt_writer_add_array(w, &spec, &id), VT_EINVAL);
    spec.ndim = 1;
    spec.shape[0] = 0;
    ck_assert_int_eq(vt_writer_add_array(w, &spec, &id), VT_EINVAL);
    spec.shape[0] = 4;
    spec.codec = VT_CODEC_LZ4HC;
    spec.level = 13;
    ck_assert_int_eq(vt_writer_add_array(w, &spec, &id), VT_EINVAL);
    spec.level = 0;
    spec.name = "this-name-is-longer-than-sixty-three-bytes-which-is-the-limit-of-names";
    ck_assert_int_eq(vt_writer_add_array(w, &spec, &id), VT_EINVAL);
    spec.name = "x";
    ck_assert_int_eq(vt_writer_add_array(w, &spec, &id), 0);
    ck_assert_int_eq(vt_writer_add_array(w, &spec, &id), VT_EINVAL); /* duplicate */
    vt_writer_free(w);
    /* no writer in a missing folder */
    char *missing = tu_path(dir, "no/such/dir.vxt");
    w = (vt_writer *)1;
    ck_assert_int_eq(vt_writer_open(missing, NULL, &w), VT_EIO);
    ck_assert_ptr_null(w);
    ck_assert(strstr(vt_errmsg(NULL), "no/such") != NULL);
    free(missing);
    ck_assert_int_eq(tu_count_entries(dir), 0);
}
END_TEST

START_TEST(sparse_arrays_take_the_fill)
{
    vt_writer *w = tu_writer(path, 1);
    const uint64_t shape[2] = {20, 30};
    const uint32_t tile[2] = {8, 8};
    vt_array_spec spec;
    tu_spec(&spec, "pred", VT_F32, 2, shape, tile);
    spec.fill = -1.5;
    spec.sparse = 1;
    int id = tu_add_array(w, &spec);
    float patch[3 * 4];
    for (int i = 0; i < 12; i++)
        patch[i] = (float)i;
    uint64_t st[2] = {7, 9}, sz[2] = {3, 4};
    ck_assert_int_eq(vt_writer_write(w, id, st, sz, patch), 0);
    tu_finish(w);
    const vt_array *a;
    vt_store *s = tu_open_array(path, "pred", &a);
    float out[20 * 30];
    int64_t s0[2] = {0, 0};
    uint64_t all[2] = {20, 30};
    ck_assert_int_eq(vt_read(a, s0, all, NULL, out), 0);
    for (int y = 0; y < 20; y++)
        for (int x = 0; x < 30; x++) {
            float want = (y >= 7 && y < 10 && x >= 9 && x < 13) ? (float)((y - 7) * 4 + (x - 9)) : -1.5f;
            ck_assert_msg(out[y * 30 + x] == want, "(%d,%d) = %g want %g", y, x, (double)out[y * 30 + x],
                          (double)want);
        }
    vt_array_info ai;
    vt_array_info_get(a, &ai);
    ck_assert_uint_eq(ai.constant_tiles, ai.ntiles - 2); /* rows 7..9 meet tile rows 0 and 1, columns 9..12 tile column 1 */
    ck_assert(ai.fill == -1.5);
    ck_assert_int_eq(vt_verify_array(a, NULL), 0);
    vt_close(s);
}
END_TEST

/* Publishing replaces an existing store atomically: a reader of the old one
 * keeps reading the old bytes. */
START_TEST(replace_keeps_open_readers)
{
    int16_t v1[100], v2[100];
    for (int i = 0; i < 100; i++) {
        v1[i] = (int16_t)i;
        v2[i] = (int16_t)(1000 - i);
    }
    int id;
    vt_writer *w = writer_1d(1, 100, &id);
    ck_assert_int_eq(write_1d(w, id, 0, 100, v1), 0);
    tu_finish(w);
    vt_store *old;
    ck_assert_int_eq(vt_open(path, 0, &old), 0);
    w = writer_1d(2, 100, &id);
    ck_assert_int_eq(write_1d(w, id, 0, 100, v2), 0);
    tu_finish(w);
    ck_assert_int_eq(tu_count_entries(dir), 1);
    vt_store *fresh;
    ck_assert_int_eq(vt_open(path, 0, &fresh), 0);
    const vt_array *ao, *an;
    vt_store_array(old, "v", &ao);
    vt_store_array(fresh, "v", &an);
    int16_t o1[100], o2[100];
    int64_t s0 = 0;
    uint64_t sz = 100;
    ck_assert_int_eq(vt_read(ao, &s0, &sz, NULL, o1), 0);
    ck_assert_int_eq(vt_read(an, &s0, &sz, NULL, o2), 0);
    ck_assert(memcmp(o1, v1, sizeof v1) == 0);
    ck_assert(memcmp(o2, v2, sizeof v2) == 0);
    vt_close(old);
    vt_close(fresh);
    struct stat stt;
    ck_assert_int_eq(stat(path, &stt), 0);
    mode_t um = umask(0);
    umask(um);
    ck_assert_uint_eq(stt.st_mode & 0777, 0666 & ~um); /* an ordinary file, not a 0600 temporary */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("roundtrip");
    TCase *tc = tu_tcase(s, "roundtrip", 600, NULL, NULL);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, all_dtypes_codecs_filters_shapes, 0, 2);
    tcase_add_test(tc, compression_and_constant_tiles);
    tcase_add_test(tc, windows_hold_tiles_of_any_size);
    tcase_add_test(tc, metadata_round_trip);
    tcase_add_test(tc, writer_errors_publish_nothing);
    tcase_add_test(tc, sparse_arrays_take_the_fill);
    tcase_add_test(tc, replace_keeps_open_readers);
    return tu_run(s);
}
