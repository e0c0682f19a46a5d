/* fuzz_roundtrip: the fuzz input describes an array (dtype, 1 to 5
 * dimensions, a small shape, tile shape or the default, codec and level,
 * filter, fill value, sparse, label index, writer threads, metadata) and
 * holds its data. The harness writes it with vt_writer in pieces of a random
 * partition of the array, in random order (a sparse array leaves some pieces
 * unwritten), opens the store and checks that everything comes back: the
 * voxels bit for bit, the array description, the value range, the label
 * index (values, voxel counts, tiles and counts per tile), the metadata, and
 * vt_verify_array. Optionally it writes one voxel twice, which must fail the
 * writer and publish nothing. Any difference aborts. */
#include "fuzz_common.h"
#include "internal.h"

#define MAX_VOX 1024

typedef struct ctx {
    vt_writer *w;
    int id, nd;
    vt_dtype dt;
    size_t es;
    uint64_t shape[VT_MAX_DIMS];
    unsigned char *exp; /* what the store must hold */
    unsigned char fillb[8];
    bool sparse;
    uint64_t rng;
    unsigned char *piece;
    uint64_t written_voxel[VT_MAX_DIMS];
    bool any_written;
    int depth_max;
} ctx;

static uint64_t lin_index(const ctx *c, const uint64_t *p)
{
    uint64_t l = 0;
    for (int d = 0; d < c->nd; d++)
        l = l * c->shape[d] + p[d];
    return l;
}

/* Write (or, sparse, maybe skip) the box [lo, hi). */
static void leaf(ctx *c, const uint64_t *lo, const uint64_t *hi)
{
    uint64_t size[VT_MAX_DIMS], n = 1;
    for (int d = 0; d < c->nd; d++) {
        size[d] = hi[d] - lo[d];
        n *= size[d];
    }
    bool skip = c->sparse && fz_rng(&c->rng) % 3 == 0;
    uint64_t p[VT_MAX_DIMS];
    memcpy(p, lo, sizeof p);
    for (uint64_t i = 0; i < n; i++) {
        unsigned char *e = c->exp + lin_index(c, p) * c->es;
        if (skip)
            memcpy(e, c->fillb, c->es);
        else
            memcpy(c->piece + i * c->es, e, c->es);
        for (int d = c->nd - 1; d >= 0; d--) {
            if (++p[d] < hi[d])
                break;
            p[d] = lo[d];
        }
    }
    if (skip)
        return;
    int rc = vt_writer_write(c->w, c->id, lo, size, c->piece);
    FZ_CHECK(rc == 0, "vt_writer_write returned %d: %s", rc, vt_writer_errmsg(c->w));
    if (!c->any_written) {
        memcpy(c->written_voxel, lo, sizeof c->written_voxel);
        c->any_written = true;
    }
}

/* A random partition of [lo, hi) into boxes, visited in random order. */
static void partition(ctx *c, uint64_t *lo, uint64_t *hi, int depth)
{
    uint64_t r = fz_rng(&c->rng);
    int axes[VT_MAX_DIMS], na = 0;
    for (int d = 0; d < c->nd; d++)
        if (hi[d] - lo[d] > 1)
            axes[na++] = d;
    if (na == 0 || depth >= c->depth_max || r % 5 == 0) {
        leaf(c, lo, hi);
        return;
    }
    int d = axes[(r >> 8) % (uint64_t)na];
    uint64_t cut = lo[d] + 1 + (r >> 16) % (hi[d] - lo[d] - 1);
    uint64_t lo2[VT_MAX_DIMS], hi2[VT_MAX_DIMS];
    memcpy(lo2, lo, sizeof lo2);
    memcpy(hi2, hi, sizeof hi2);
    hi2[d] = cut; /* first half: [lo, hi2) */
    lo2[d] = cut; /* second half: [lo2, hi) */
    if (r & (1u << 7)) {
        partition(c, lo2, hi, depth + 1);
        partition(c, lo, hi2, depth + 1);
    } else {
        partition(c, lo, hi2, depth + 1);
        partition(c, lo2, hi, depth + 1);
    }
}

typedef struct meta {
    char key[32];
    vt_meta_type type;
    unsigned char val[64];
    size_t count, bytes;
} meta;

typedef struct vt_pair {
    int64_t value;
    uint64_t tile;
} vt_pair;

static int cmp_pair(const void *a, const void *b)
{
    const vt_pair *x = a, *y = b;
    if (x->value != y->value)
        return x->value < y->value ? -1 : 1;
    return x->tile < y->tile ? -1 : x->tile > y->tile;
}

static bool same_value(double a, double b) { return a == b || (a != a && b != b); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    ctx c;
    memset(&c, 0, sizeof c);
    c.dt = (vt_dtype)(1 + fz_u8(&in) % 10);
    c.es = vt_dtype_size(c.dt);
    c.nd = 1 + fz_u8(&in) % VT_MAX_DIMS;
    uint64_t n = 1;
    for (int d = 0; d < c.nd; d++) {
        c.shape[d] = 1 + fz_u8(&in) % (c.nd == 1 ? 200 : 24);
        n *= c.shape[d];
    }
    while (n > MAX_VOX) { /* halve the longest axis */
        int m = 0;
        for (int d = 1; d < c.nd; d++)
            if (c.shape[d] > c.shape[m])
                m = d;
        n = n / c.shape[m] * ((c.shape[m] + 1) / 2);
        c.shape[m] = (c.shape[m] + 1) / 2;
    }
    vt_array_spec spec;
    vt_array_spec_init(&spec);
    spec.name = "a";
    spec.dtype = c.dt;
    spec.ndim = c.nd;
    memcpy(spec.shape, c.shape, sizeof spec.shape);
    if (fz_u8(&in) % 4) /* else the default tile shape */
        for (int d = 0; d < c.nd; d++)
            spec.tile[d] = (uint32_t)(1 + fz_u8(&in) % (c.shape[d] + 2));
    spec.codec = (vt_codec)(fz_u8(&in) % 3);
    uint8_t lv = fz_u8(&in);
    if (lv & 1) {
        static const int accel[] = {1, 2, 3, 8, 100, 65537};
        spec.level = spec.codec == VT_CODEC_LZ4HC ? 1 + (lv >> 1) % 12
                     : spec.codec == VT_CODEC_LZ4 ? accel[(lv >> 1) % 6]
                                                  : 0;
    }
    spec.filter = (vt_filter)(fz_u8(&in) % 3);
    uint8_t flags = fz_u8(&in);
    bool is_int = c.dt <= VT_I32;
    spec.sparse = flags & 1;
    c.sparse = spec.sparse != 0;
    spec.labels = (flags & 2) && is_int;
    bool dup = flags & 4;
    int nmeta = flags & 8 ? 1 + (flags >> 6) : 0;
    vt_writer_opts wo;
    vt_writer_opts_init(&wo);
    wo.threads = ((flags >> 4) & 3) == 3 ? 2 : 1; /* a pool now and then: threads cost time */
    c.rng = fz_uint(&in, 4);
    c.depth_max = 1 + fz_u8(&in) % 16;
    unsigned char fb[8];
    for (int i = 0; i < 8; i++)
        fb[i] = fz_u8(&in);
    spec.fill = vt__load_f64(c.dt, fb);
    vt__store_f64(c.dt, c.fillb, spec.fill);

    meta all[4], metas[4]; /* every setting in order; the last value per key, in first-set order */
    int nm = 0;
    for (int i = 0; i < nmeta; i++) {
        meta m;
        memset(&m, 0, sizeof m);
        size_t kl = 1 + fz_u8(&in) % 12;
        for (size_t j = 0; j < kl; j++) {
            uint8_t ch = fz_u8(&in) % 4; /* few distinct keys: setting one again replaces it */
            m.key[j] = (char)('a' + ch);
        }
        m.type = (vt_meta_type)(fz_u8(&in) % 4);
        size_t cnt = fz_u8(&in) % 8;
        if (m.type == VT_META_STRING) {
            for (size_t j = 0; j < cnt; j++)
                m.val[j] = (unsigned char)(1 + fz_u8(&in) % 255);
            m.count = cnt;
            m.bytes = cnt;
        } else if (m.type == VT_META_BYTES) {
            for (size_t j = 0; j < cnt; j++)
                m.val[j] = fz_u8(&in);
            m.count = m.bytes = cnt;
        } else {
            for (size_t j = 0; j < cnt * 8; j++)
                m.val[j] = fz_u8(&in);
            m.count = cnt;
            m.bytes = cnt * 8;
        }
        all[i] = m;
        int j = 0;
        while (j < nm && strcmp(metas[j].key, m.key) != 0)
            j++;
        metas[j] = m;
        if (j == nm)
            nm++;
    }

    /* the data: the rest of the input, repeated */
    c.exp = malloc((size_t)(n * c.es));
    c.piece = malloc((size_t)(n * c.es));
    FZ_CHECK(c.exp && c.piece, "out of memory");
    for (uint64_t i = 0; i < n * c.es; i++)
        c.exp[i] = in.n ? in.p[i % in.n] : 0;

    const char *path = fz_path(0, "rt.vxt");
    int rc = vt_writer_open(path, &wo, &c.w);
    FZ_CHECK(rc == 0, "vt_writer_open returned %d: %s", rc, vt_errmsg(NULL));
    rc = vt_writer_add_array(c.w, &spec, &c.id);
    FZ_CHECK(rc == 0, "vt_writer_add_array returned %d: %s", rc, vt_writer_errmsg(c.w));
    for (int i = 0; i < nmeta; i++) {
        rc = vt_writer_set_meta(c.w, all[i].key, all[i].type, all[i].val, all[i].count);
        FZ_CHECK(rc == 0, "vt_writer_set_meta returned %d: %s", rc, vt_writer_errmsg(c.w));
    }
    uint64_t lo[VT_MAX_DIMS] = {0}, hi[VT_MAX_DIMS];
    memcpy(hi, c.shape, sizeof hi);
    partition(&c, lo, hi, 0);

    if (dup && c.any_written) {
        uint64_t one[VT_MAX_DIMS] = {1, 1, 1, 1, 1};
        rc = vt_writer_write(c.w, c.id, c.written_voxel, one, c.exp);
        FZ_CHECK(rc == VT_EINVAL, "writing a voxel twice returned %d, want VT_EINVAL", rc);
        rc = vt_writer_finalize(c.w);
        FZ_CHECK(rc != 0, "finalize after a failed write succeeded");
        vt_writer_free(c.w);
        FZ_CHECK(access(path, F_OK) != 0, "a failed writer published %s", path);
        free(c.exp);
        free(c.piece);
        return 0;
    }
    rc = vt_writer_finalize(c.w);
    FZ_CHECK(rc == 0, "vt_writer_finalize returned %d: %s", rc, vt_writer_errmsg(c.w));
    vt_writer_free(c.w);

    /* ---- read it back ---- */
    vt_store *s;
    rc = vt_open(path, 0, &s);
    FZ_CHECK(rc == 0, "vt_open returned %d: %s", rc, vt_errmsg(NULL));
    const vt_array *a;
    FZ_CHECK(vt_store_narrays(s) == 1 && vt_store_array(s, "a", &a) == 0, "array 'a'");
    vt_array_info ai;
    FZ_CHECK(vt_array_info_get(a, &ai) == 0, "info");
    FZ_CHECK(ai.dtype == c.dt && ai.ndim == c.nd, "dtype %d ndim %d", (int)ai.dtype, ai.ndim);
    uint32_t tile[VT_MAX_DIMS];
    bool all_zero = true;
    for (int d = 0; d < c.nd; d++)
        all_zero &= spec.tile[d] == 0;
    if (all_zero)
        vt__default_tile(c.nd, tile);
    else
        memcpy(tile, spec.tile, sizeof tile);
    for (int d = 0; d < c.nd; d++) {
        FZ_CHECK(ai.shape[d] == c.shape[d], "shape[%d]", d);
        uint64_t t = tile[d] > c.shape[d] ? c.shape[d] : tile[d];
        FZ_CHECK(ai.tile[d] == t, "tile[%d] = %u, want %llu", d, ai.tile[d], (unsigned long long)t);
    }
    FZ_CHECK(ai.codec == spec.codec, "codec");
    FZ_CHECK(ai.filter == (spec.codec == VT_CODEC_NONE ? VT_FILTER_NONE : spec.filter), "filter %d", (int)ai.filter);
    if (spec.codec == VT_CODEC_NONE)
        FZ_CHECK(ai.level == 0, "level %d with codec none", ai.level);
    else if (spec.level)
        FZ_CHECK(ai.level == spec.level, "level %d, asked %d", ai.level, spec.level);
    FZ_CHECK(same_value(ai.fill, spec.fill), "fill %g, want %g", ai.fill, spec.fill);
    FZ_CHECK(ai.raw_bytes == n * c.es, "raw_bytes");
    FZ_CHECK(ai.constant_tiles + ai.raw_tiles + ai.shuffled_tiles <= ai.ntiles, "tile kinds");
    if (spec.codec == VT_CODEC_NONE)
        FZ_CHECK(ai.constant_tiles + ai.raw_tiles == ai.ntiles, "codec none: compressed tiles");
    if (ai.filter == VT_FILTER_NONE || c.es == 1)
        FZ_CHECK(ai.shuffled_tiles == 0, "shuffled tiles without shuffling");
    double mn = FZ_NAN, mx = FZ_NAN;
    for (uint64_t i = 0; i < n; i++) {
        double v = vt__load_f64(c.dt, c.exp + i * c.es);
        if (v != v)
            continue;
        if (mn != mn || v < mn)
            mn = v;
        if (mx != mx || v > mx)
            mx = v;
    }
    FZ_CHECK(same_value(ai.min, mn) && same_value(ai.max, mx), "range [%g, %g], data [%g, %g]", ai.min, ai.max,
             mn, mx);

    unsigned char *got = malloc((size_t)(n * c.es));
    FZ_CHECK(got != NULL, "out of memory");
    int64_t st0[VT_MAX_DIMS] = {0};
    rc = vt_read(a, st0, c.shape, NULL, got);
    FZ_CHECK(rc == 0, "vt_read returned %d: %s", rc, vt_errmsg(s));
    for (uint64_t i = 0; i < n; i++)
        FZ_CHECK(memcmp(got + i * c.es, c.exp + i * c.es, c.es) == 0, "voxel %llu differs", (unsigned long long)i);
    free(got);
    uint64_t bad;
    rc = vt_verify_array(a, &bad);
    FZ_CHECK(rc == 0, "vt_verify_array returned %d: %s", rc, vt_errmsg(s));

    /* the label index against a histogram of the data */
    if (spec.labels) {
        vt_pair *pr = malloc((size_t)n * sizeof *pr);
        FZ_CHECK(pr != NULL, "out of memory");
        uint64_t p[VT_MAX_DIMS] = {0};
        for (uint64_t i = 0; i < n; i++) {
            uint64_t t = 0;
            for (int d = 0; d < c.nd; d++)
                t = t * ai.grid[d] + p[d] / ai.tile[d];
            pr[i].value = (int64_t)vt__load_f64(c.dt, c.exp + i * c.es);
            pr[i].tile = t;
            for (int d = c.nd - 1; d >= 0; d--) {
                if (++p[d] < c.shape[d])
                    break;
                p[d] = 0;
            }
        }
        qsort(pr, (size_t)n, sizeof *pr, cmp_pair);
        size_t li = 0;
        for (uint64_t i = 0; i < n;) {
            uint64_t j = i;
            while (j < n && pr[j].value == pr[i].value)
                j++;
            vt_label_info L;
            FZ_CHECK(vt_label_get(a, li, &L) == 0, "label %zu missing", li);
            FZ_CHECK(L.value == pr[i].value && L.voxels == j - i, "label %zu: value %lld voxels %llu, want %lld %llu",
                     li, (long long)L.value, (unsigned long long)L.voxels, (long long)pr[i].value,
                     (unsigned long long)(j - i));
            uint64_t q = 0;
            for (uint64_t k = i; k < j;) {
                uint64_t m = k;
                while (m < j && pr[m].tile == pr[k].tile)
                    m++;
                FZ_CHECK(q < L.ntiles && L.tiles[2 * q] == pr[k].tile && L.tiles[2 * q + 1] == m - k,
                         "label %lld: tile pair %llu", (long long)L.value, (unsigned long long)q);
                q++;
                k = m;
            }
            FZ_CHECK(q == L.ntiles, "label %lld: %llu tiles, want %llu", (long long)L.value,
                     (unsigned long long)L.ntiles, (unsigned long long)q);
            li++;
            i = j;
        }
        FZ_CHECK(vt_label_count(a) == li, "%zu labels, want %zu", vt_label_count(a), li);
        free(pr);
    } else
        FZ_CHECK(vt_label_count(a) == 0, "labels on an array without them");

    FZ_CHECK(vt_meta_count(s) == (size_t)nm, "%zu metadata entries, want %d", vt_meta_count(s), nm);
    for (int i = 0; i < nm; i++) {
        const char *key;
        vt_meta_type type;
        const void *val;
        size_t count;
        FZ_CHECK(vt_meta_at(s, (size_t)i, &key, &type, &val, &count) == 0, "meta %d", i);
        FZ_CHECK(strcmp(key, metas[i].key) == 0 && type == metas[i].type && count == metas[i].count,
                 "meta %d: '%s' type %d count %zu", i, key, (int)type, count);
        FZ_CHECK(metas[i].bytes == 0 || memcmp(val, metas[i].val, metas[i].bytes) == 0, "meta '%s' value", key);
        if (type == VT_META_STRING)
            FZ_CHECK(((const char *)val)[count] == 0, "string not terminated");
    }
    vt_close(s);
    unlink(path);
    free(c.exp);
    free(c.piece);
    return 0;
}
