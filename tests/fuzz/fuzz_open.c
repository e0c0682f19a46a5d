/* fuzz_open: arbitrary bytes as a store file -> vt_open; when it opens, every
 * read-side call: array info, tiles, labels, metadata, verification and
 * vt_read boxes inside and outside the array in every pad mode and a few
 * dtypes. Nothing may crash, and every pointer the library lends must lie in
 * its mapping of the file (ASan cannot see the mapping, so this is checked
 * here through the internal handle, src/store/store.h).
 *
 * The input's checksums are recomputed first (fz_reseal), so the parsers
 * behind them are reached in any build. The file is a memfd (fz_put_store). */
#include "fuzz_common.h"
#include "store.h"

/* ---- pointers into the mapping -------------------------------------------- */

static const vt_store *cur;

static bool in_map(const void *p, uint64_t n)
{
    const unsigned char *q = p;
    return q >= cur->map && (uint64_t)(q - cur->map) <= cur->size && n <= cur->size - (uint64_t)(q - cur->map);
}

static volatile uint64_t sink;

static void touch(const void *p, size_t n)
{
    const unsigned char *q = p;
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += q[i];
    sink += s;
}

/* ---- reads ----------------------------------------------------------------- */

/* Largest box edge per dimension count, so that a box has at most ~1024 voxels. */
static const uint64_t box_edge[6] = {0, 1024, 32, 10, 6, 4};

static uint64_t clamp_u(uint64_t v, uint64_t lo, uint64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* start + delta, saturated to int64. */
static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static void do_read(const vt_array *a, const vt_array_info *ai, const int64_t *start, const uint64_t *size,
                    vt_dtype dtype, vt_pad pad, int threads, int transform, const int64_t *strides)
{
    vt_read_opts o;
    vt_read_opts_init(&o);
    o.dtype = dtype;
    o.pad = pad;
    o.pad_value = 3.5;
    o.threads = threads;
    if (transform) {
        o.transform = 1;
        o.clip_lo = -100;
        o.clip_hi = 1e6;
        o.scale = 0.5;
        o.offset = -2;
    }
    vt_dtype dd = dtype == VT_DTYPE_SAME ? ai->dtype : dtype;
    size_t es = vt_dtype_size(dd);
    uint64_t n = 1;
    for (int d = 0; d < ai->ndim; d++)
        n *= size[d];
    /* strides (if any) are a permutation of C order with the last axis
     * reversed: the box's elements still fill n * es bytes exactly */
    unsigned char *buf = malloc((size_t)(n * es));
    if (buf == NULL)
        return;
    unsigned char *out = buf;
    if (strides) {
        int64_t off = 0;
        for (int d = 0; d < ai->ndim; d++)
            if (strides[d] < 0)
                off += -strides[d] * (int64_t)(size[d] - 1);
        out = buf + off * (int64_t)es;
    }
    o.strides = strides;
    int rc = vt_read(a, start, size, &o, out);
    /* a validated store and a sane box: the data may be damaged or too big to
     * decode, but the arguments are fine */
    FZ_CHECK(rc == 0 || rc == VT_ECORRUPT || rc == VT_ENOMEM || rc == VT_EIO || rc == VT_ERANGE,
             "vt_read returned %d (%s): %s", rc, vt_strerror(rc), vt_errmsg(cur));
    if (rc == 0)
        touch(buf, (size_t)(n * es));
    free(buf);
}

static void exercise_reads(const vt_array *a, const vt_array_info *ai, unsigned seed)
{
    int nd = ai->ndim;
    uint64_t edge = box_edge[nd];
    int64_t start[VT_MAX_DIMS], strides[VT_MAX_DIMS];
    uint64_t size[VT_MAX_DIMS];

    /* 1. inside, from the origin, as stored */
    for (int d = 0; d < nd; d++) {
        start[d] = 0;
        size[d] = clamp_u(ai->shape[d], 1, edge);
    }
    do_read(a, ai, start, size, VT_DTYPE_SAME, VT_PAD_CONSTANT, 1, 0, NULL);

    /* 2. across the near border, edge padding, as float32 on two threads */
    for (int d = 0; d < nd; d++) {
        start[d] = -2;
        size[d] = clamp_u(ai->shape[d] + 4, 1, edge);
    }
    do_read(a, ai, start, size, VT_F32, VT_PAD_EDGE, seed % 8 == 0 ? 2 : 1, 0, NULL);

    /* 3. across the far border, reflected, as float16 */
    for (int d = 0; d < nd; d++) {
        start[d] = sat_add((int64_t)(ai->shape[d] > INT64_MAX ? INT64_MAX : ai->shape[d]), -3);
        size[d] = clamp_u(edge / 2, 1, edge);
    }
    do_read(a, ai, start, size, VT_F16, VT_PAD_REFLECT, 1, 0, NULL);

    /* 4. wholly outside: constant (no tile read) and edge (border tiles) */
    for (int d = 0; d < nd; d++) {
        start[d] = sat_add((int64_t)(ai->shape[d] > INT64_MAX ? INT64_MAX : ai->shape[d]), 5);
        size[d] = 3;
    }
    do_read(a, ai, start, size, VT_U8, VT_PAD_CONSTANT, 1, 0, NULL);
    do_read(a, ai, start, size, VT_I32, VT_PAD_EDGE, 1, 0, NULL);

    /* 5. far before the start, reflected several periods */
    for (int d = 0; d < nd; d++) {
        int64_t s = ai->shape[d] > (uint64_t)(INT64_MAX / 4) ? INT64_MAX / 4 : (int64_t)ai->shape[d];
        start[d] = -3 * s - 1;
        size[d] = clamp_u(edge / 3, 1, edge);
    }
    do_read(a, ai, start, size, VT_DTYPE_SAME, VT_PAD_REFLECT, seed % 8 == 1 ? 3 : 0, 0, NULL);

    /* 6. the middle, transformed to float64, written with the last axis
     *    reversed and the first two axes swapped */
    for (int d = 0; d < nd; d++) {
        size[d] = clamp_u(ai->shape[d], 1, edge / 2 ? edge / 2 : 1);
        start[d] = (int64_t)((ai->shape[d] - size[d]) / 2);
    }
    {
        int perm[VT_MAX_DIMS];
        for (int d = 0; d < nd; d++)
            perm[d] = d;
        if (nd >= 2) {
            perm[0] = 1;
            perm[1] = 0;
        }
        /* C order over the permuted axes */
        int64_t st = 1;
        for (int k = nd - 1; k >= 0; k--) {
            strides[perm[k]] = st;
            st *= (int64_t)size[perm[k]];
        }
        strides[nd - 1] = -strides[nd - 1];
    }
    do_read(a, ai, start, size, VT_F64, VT_PAD_CONSTANT, 1, 1, strides);

    /* 7. the last tile, and a tile picked by the seed, as bfloat16 / int16 */
    for (int d = 0; d < nd; d++) {
        uint64_t g = ai->grid[d] ? ai->grid[d] - 1 : 0;
        start[d] = (int64_t)(g * ai->tile[d] > (uint64_t)INT64_MAX ? 0 : g * ai->tile[d]);
        size[d] = clamp_u(ai->shape[d] - (uint64_t)start[d], 1, edge);
    }
    do_read(a, ai, start, size, VT_BF16, VT_PAD_EDGE, 1, 0, NULL);
    for (int d = 0; d < nd; d++) {
        uint64_t g = ai->grid[d] ? (seed * 2654435761u >> (d * 3)) % ai->grid[d] : 0;
        start[d] = (int64_t)(g * ai->tile[d] > (uint64_t)INT64_MAX ? 0 : g * ai->tile[d]) - 1;
        size[d] = clamp_u(ai->tile[d] + 2, 1, edge);
    }
    do_read(a, ai, start, size, VT_I16, VT_PAD_REFLECT, 1, 1, NULL);
}

/* ---- the rest of the API ----------------------------------------------------- */

static void exercise_array(const vt_store *s, const vt_array *a, unsigned seed)
{
    vt_array_info ai;
    FZ_CHECK(vt_array_info_get(a, &ai) == 0, "vt_array_info_get failed");
    FZ_CHECK(ai.ndim >= 1 && ai.ndim <= VT_MAX_DIMS, "ndim %d", ai.ndim);
    FZ_CHECK(vt_dtype_size(ai.dtype) > 0, "dtype %d", (int)ai.dtype);
    FZ_CHECK(ai.name != NULL, "no name");
    FZ_CHECK(strlen(ai.name) >= 1 && strlen(ai.name) <= VT_NAME_MAX, "name length %zu", strlen(ai.name));
    const vt_array *b;
    FZ_CHECK(vt_store_array(s, ai.name, &b) == 0 && b == a, "array '%s' not found by name", ai.name);
    uint64_t nt = 1;
    for (int d = 0; d < VT_MAX_DIMS; d++) {
        FZ_CHECK(ai.tile[d] >= 1 && ai.tile[d] <= ai.shape[d], "axis %d: tile %u shape %llu", d, ai.tile[d],
                 (unsigned long long)ai.shape[d]);
        FZ_CHECK(ai.grid[d] == ai.shape[d] / ai.tile[d] + (ai.shape[d] % ai.tile[d] != 0), "grid");
        FZ_CHECK(d < ai.ndim || (ai.shape[d] == 1 && ai.tile[d] == 1), "unused axis %d", d);
        nt *= ai.grid[d];
    }
    FZ_CHECK(nt == ai.ntiles, "ntiles %llu, grid product %llu", (unsigned long long)ai.ntiles,
             (unsigned long long)nt);
    FZ_CHECK(ai.constant_tiles + ai.raw_tiles <= ai.ntiles, "tile counts");
    sink += (ai.min == ai.min) + (ai.fill == ai.fill);

    /* tiles: first, last, middle, a few more */
    uint64_t pick[6] = {0, ai.ntiles - 1, ai.ntiles / 2, seed % ai.ntiles, (seed >> 8) % ai.ntiles,
                        (seed >> 16) % ai.ntiles};
    size_t es = vt_dtype_size(ai.dtype);
    for (int i = 0; i < 6; i++) {
        vt_tile_info ti;
        FZ_CHECK(vt_tile_get(a, pick[i], &ti) == 0, "vt_tile_get(%llu)", (unsigned long long)pick[i]);
        uint64_t raw = es;
        for (int d = 0; d < VT_MAX_DIMS; d++) {
            FZ_CHECK(ti.coord[d] < ai.grid[d], "coord");
            FZ_CHECK(ti.extent[d] >= 1 && ti.extent[d] <= ai.tile[d] && ti.start[d] + ti.extent[d] <= ai.shape[d],
                     "tile extent");
            raw *= ti.extent[d];
        }
        FZ_CHECK(raw == ti.raw_size, "raw_size %llu, extents give %llu", (unsigned long long)ti.raw_size,
                 (unsigned long long)raw);
        if (!(ti.flags & VT_TILE_CONSTANT))
            FZ_CHECK(ti.offset >= 4096 && in_map(cur->map + ti.offset, ti.stored_size),
                     "tile %llu: [%llu, +%u) outside the file", (unsigned long long)pick[i],
                     (unsigned long long)ti.offset, ti.stored_size);
    }
    vt_tile_info ti;
    FZ_CHECK(vt_tile_get(a, ai.ntiles, &ti) == VT_ERANGE, "tile past the end");

    /* labels */
    size_t nl = vt_label_count(a);
    int64_t prev = INT64_MIN;
    for (size_t l = 0; l < nl && l < 512; l++) {
        vt_label_info li;
        FZ_CHECK(vt_label_get(a, l, &li) == 0, "vt_label_get(%zu)", l);
        FZ_CHECK(l == 0 || li.value > prev, "labels not increasing");
        prev = li.value;
        FZ_CHECK(li.ntiles <= ai.ntiles && in_map(li.tiles, li.ntiles * 16),
                 "label %zu: %llu pairs outside the file", l, (unsigned long long)li.ntiles);
        FZ_CHECK(((uintptr_t)li.tiles & 7) == 0, "label pairs not 8-aligned");
        for (uint64_t k = 0; k < li.ntiles && k < 4096; k++)
            FZ_CHECK(li.tiles[2 * k] < ai.ntiles, "label tile number");
    }
    vt_label_info li;
    FZ_CHECK(vt_label_get(a, nl, &li) == VT_ERANGE, "label past the end");

    uint64_t bad = UINT64_MAX;
    int rc = vt_verify_array(a, &bad);
    FZ_CHECK(rc == 0 || rc == VT_ECORRUPT || rc == VT_ENOMEM, "vt_verify_array returned %d", rc);
    FZ_CHECK(rc != VT_ECORRUPT || bad < ai.ntiles, "bad tile %llu", (unsigned long long)bad);

    exercise_reads(a, &ai, seed);
}

static void exercise_meta(const vt_store *s)
{
    char missing[VT_KEY_MAX + 40]; /* longer than any key can be */
    memset(missing, 'x', sizeof missing - 1);
    missing[sizeof missing - 1] = 0;
    size_t nm = vt_meta_count(s);
    FZ_CHECK(nm <= 4096, "%zu metadata entries", nm);
    for (size_t i = 0; i < nm; i++) {
        const char *key;
        vt_meta_type type;
        const void *data;
        size_t count;
        FZ_CHECK(vt_meta_at(s, i, &key, &type, &data, &count) == 0, "vt_meta_at(%zu)", i);
        FZ_CHECK(in_map(key, 1), "key outside the file");
        size_t kl = strnlen(key, (size_t)(cur->size - (uint64_t)((const unsigned char *)key - cur->map)));
        FZ_CHECK(kl >= 1 && kl <= VT_KEY_MAX && in_map(key, kl + 1), "key length %zu", kl);
        FZ_CHECK(type >= VT_META_BYTES && type <= VT_META_I64, "type %d", (int)type);
        size_t bytes = type == VT_META_STRING ? count + 1 : type == VT_META_BYTES ? count : count * 8;
        FZ_CHECK(count == 0 || in_map(data, bytes), "value outside the file");
        if (type == VT_META_STRING)
            FZ_CHECK(in_map(data, count + 1) && strlen(data) == count, "string length");
        if (type == VT_META_F64 || type == VT_META_I64)
            FZ_CHECK(((uintptr_t)data & 7) == 0, "value not 8-aligned");
        if (count)
            touch(data, bytes);
        vt_meta_type t2;
        const void *d2;
        size_t c2;
        FZ_CHECK(vt_meta_get(s, key, &t2, &d2, &c2) == 0 && t2 == type && d2 == data && c2 == count,
                 "vt_meta_get('%s') differs from vt_meta_at(%zu)", key, i);
    }
    FZ_CHECK(vt_meta_at(s, nm, NULL, NULL, NULL, NULL) == VT_ERANGE, "entry past the end");
    FZ_CHECK(vt_meta_get(s, missing, NULL, NULL, NULL) == VT_ENOTFOUND, "missing key");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (16u << 20))
        return 0;
    uint64_t hash;
    if (!fz_put_resealed(data, size, &hash))
        return 0;
    unsigned seed = (unsigned)hash;

    vt_store *s = (vt_store *)1;
    int rc = vt_open(fz_store_path(), 0, &s);
    FZ_CHECK(fz_known_code(rc), "vt_open returned %d", rc);
    if (rc != 0) {
        FZ_CHECK(s == NULL, "failed vt_open left a handle");
        FZ_CHECK(vt_errmsg(NULL)[0] != 0, "failed vt_open without a message");
        return 0;
    }
    cur = s;
    FZ_CHECK(vt_store_file_size(s) == size, "file size %llu", (unsigned long long)vt_store_file_size(s));
    FZ_CHECK(vt_store_format_version(s) == VT_FORMAT_VERSION, "format version");
    sink += vt_store_writer_version(s) + strlen(vt_store_path(s));
    size_t na = vt_store_narrays(s);
    FZ_CHECK(na >= 1, "no arrays");
    for (size_t i = 0; i < na && i < 64; i++) {
        const vt_array *a;
        FZ_CHECK(vt_store_array_at(s, i, &a) == 0, "vt_store_array_at(%zu)", i);
        exercise_array(s, a, seed + (unsigned)i);
    }
    const vt_array *a;
    FZ_CHECK(vt_store_array_at(s, na, &a) == VT_ERANGE, "array past the end");
    char missing[VT_KEY_MAX + 40]; /* longer than any name or key can be */
    memset(missing, 'x', sizeof missing - 1);
    missing[sizeof missing - 1] = 0;
    FZ_CHECK(vt_store_array(s, missing, &a) == VT_ENOTFOUND, "missing array");
    exercise_meta(s);
    FZ_CHECK(vt_store_release(s) == 0, "vt_store_release");
    vt_close(s);
    cur = NULL;
    return 0;
}
