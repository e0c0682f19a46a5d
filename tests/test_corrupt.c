/* Damaged and hostile files: every single-byte change of header, directory,
 * tile index and metadata; every truncation; hostile values in every field
 * with the checksums recomputed so the parsers behind them are reached; and
 * damaged tile data. vt_open / vt_verify_array / vt_read must return an error
 * (or, where the change is harmless, identical data) -- never crash (the CI
 * runs this suite under ASan and UBSan). The file layout offsets used here
 * come from docs/format.md, not from the library. */
#include "testutil.h"

#include <fcntl.h>
#include <stdbool.h>
#include <xxhash.h>

static char *dir, *path;
static unsigned char *orig;
static size_t orig_len;
static float *img;
static uint8_t *seg;
#define NZ 6
#define NY 7
#define NX 9

static uint64_t ld64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t ld32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static void st64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static void st32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }

static void setup(void)
{
    dir = tu_tmpdir();
    path = tu_path(dir, "c.vxt");
    size_t n = NZ * NY * NX;
    img = malloc(n * 4);
    seg = malloc(n);
    for (size_t i = 0; i < n; i++) {
        img[i] = (float)(sin((double)i * 0.37) * 100);
        seg[i] = (uint8_t)(i / 100 % 3 == 0 ? 0 : i % 5);
    }
    vt_writer *w = tu_writer(path, 1);
    uint64_t shape[4] = {1, NZ, NY, NX};
    static const uint32_t tile[4] = {1, 3, 4, 4};
    vt_array_spec spec;
    tu_spec(&spec, "image", VT_F32, 4, shape, tile);
    spec.codec = VT_CODEC_LZ4;
    spec.filter = VT_FILTER_SHUFFLE;
    int id = tu_add_array(w, &spec);
    uint64_t st[4] = {0};
    ck_assert_int_eq(vt_writer_write(w, id, st, shape, img), 0);
    spec.name = "seg";
    spec.dtype = VT_U8;
    spec.codec = VT_CODEC_NONE;
    spec.filter = VT_FILTER_NONE;
    id = tu_add_array(w, &spec);
    ck_assert_int_eq(vt_writer_write(w, id, st, shape, seg), 0);
    double spacing[3] = {3, 0.8, 0.8};
    ck_assert_int_eq(vt_writer_set_meta(w, "spacing", VT_META_F64, spacing, 3), 0);
    ck_assert_int_eq(vt_writer_set_meta(w, "source", VT_META_STRING, "ct.npy", 6), 0);
    tu_finish(w);
    orig = tu_read_file(path, &orig_len);
}

static void teardown(void)
{
    free(orig);
    free(img);
    free(seg);
    tu_tmpdir_free(dir, path);
}

/* The file's regions, read from its header and directory. */
typedef struct layout {
    uint64_t dir_off, dir_size, meta_off, meta_size;
    uint32_t narrays;
    uint64_t index_off[2], index_size[2];
} layout;

static layout get_layout(const unsigned char *f)
{
    layout l;
    l.dir_off = ld64(f + 32);
    l.dir_size = ld64(f + 40);
    l.meta_off = ld64(f + 56);
    l.meta_size = ld64(f + 64);
    l.narrays = ld32(f + 80);
    ck_assert_uint_eq(l.narrays, 2);
    for (int i = 0; i < 2; i++) {
        const unsigned char *e = f + l.dir_off + 256 * (uint64_t)i;
        l.index_off[i] = ld64(e + 160);
        l.index_size[i] = ld64(e + 168);
    }
    return l;
}

/* Recompute every checksum of the structures (not of tiles), over the
 * regions where the original file has them, whatever the fields now say. */
static void reseal(unsigned char *f)
{
    layout l = get_layout(orig);
    for (int i = 0; i < 2; i++) {
        unsigned char *e = f + l.dir_off + 256 * (uint64_t)i;
        st64(e + 176, XXH3_64bits(f + l.index_off[i], (size_t)l.index_size[i]));
    }
    st64(f + 48, XXH3_64bits(f + l.dir_off, (size_t)l.dir_size));
    st64(f + 72, XXH3_64bits(f + l.meta_off, (size_t)l.meta_size));
    st64(f + 4088, XXH3_64bits(f, 4088));
}

static void put_file(const unsigned char *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_TRUNC);
    ck_assert(fd >= 0);
    ck_assert(write(fd, buf, len) == (ssize_t)len);
    close(fd);
}

/* Open, verify and read everything: returns 0 when the store opened and
 * verified and every voxel equals the original; nonzero on any error. */
static int try_store(void)
{
    vt_store *s;
    int rc = vt_open(path, 0, &s);
    if (rc) {
        ck_assert_ptr_null(s);
        TU_CHECK(rc < 0 && strlen(vt_errmsg(NULL)) > 0 && strstr(vt_errmsg(NULL), path) != NULL,
                 "open failed without naming the file: '%s'", vt_errmsg(NULL));
        return rc;
    }
    int result = 0;
    float fo[NZ * NY * NX];
    uint8_t so[NZ * NY * NX];
    for (size_t i = 0; i < vt_store_narrays(s) && result == 0; i++) {
        const vt_array *a;
        ck_assert_int_eq(vt_store_array_at(s, i, &a), 0);
        vt_array_info ai;
        vt_array_info_get(a, &ai);
        /* reads never crash, verified or not, in or out of bounds */
        int64_t st[5] = {-2, -2, -2, -2, -2};
        uint64_t sz[5] = {3, 4, 4, 4, 4};
        static unsigned char scratch[8 * 4 * 4 * 4 * 4 * 4];
        vt_read_opts o;
        vt_read_opts_init(&o);
        o.verify = 0;
        o.pad = VT_PAD_REFLECT;
        (void)vt_read(a, st, sz, &o, scratch);
        if (vt_verify_array(a, NULL) != 0) {
            result = VT_ECORRUPT;
            break;
        }
    }
    if (result == 0) {
        const vt_array *a;
        int64_t st[4] = {0};
        uint64_t sz[4] = {1, NZ, NY, NX};
        const vt_array *b;
        if (vt_store_array(s, "image", &a) || vt_store_array(s, "seg", &b))
            result = VT_ENOTFOUND; /* a name was changed: not the store we wrote */
        else if (vt_read(a, st, sz, NULL, fo) || memcmp(fo, img, sizeof fo) != 0)
            result = -100;
        else if (vt_read(b, st, sz, NULL, so) || memcmp(so, seg, sizeof so) != 0)
            result = -101;
    }
    vt_close(s);
    return result;
}

/* Every byte of the header and the metadata changed 3 ways (xor 0x01, 0x80,
 * 0xff); every byte of the directory and of both tile indexes changed to each
 * of its 255 other values. The byte is rewritten in place (pwrite), the file
 * otherwise the original: about 390,000 vt_open calls (mostly refused at
 * the directory or index checksum): about 4 s more than 3 ways each, 10 s
 * more under ASan + UBSan. */
START_TEST(every_byte_of_the_structures)
{
    layout l = get_layout(orig);
    struct {
        uint64_t off, len;
        bool all_values;
    } regions[] = {{0, 4096, false},
                   {l.dir_off, l.dir_size, true},
                   {l.meta_off, l.meta_size, false},
                   {l.index_off[0], l.index_size[0], true},
                   {l.index_off[1], l.index_size[1], true}};
    static const unsigned char flips[3] = {0x01, 0x80, 0xff};
    int tried = 0, tried_all = 0;
    put_file(orig, orig_len);
    int fd = open(path, O_WRONLY);
    ck_assert(fd >= 0);
    for (size_t r = 0; r < sizeof regions / sizeof regions[0]; r++)
        for (uint64_t i = regions[r].off; i < regions[r].off + regions[r].len; i++) {
            int nflips = regions[r].all_values ? 255 : 3;
            for (int k = 0; k < nflips; k++) {
                unsigned char x = regions[r].all_values ? (unsigned char)(k + 1) : flips[k];
                unsigned char b = orig[i] ^ x;
                ck_assert(pwrite(fd, &b, 1, (off_t)i) == 1);
                vt_store *s;
                int rc = vt_open(path, 0, &s);
                TU_CHECK(rc != 0, "byte %llu ^ 0x%02x accepted by vt_open", (unsigned long long)i, x);
                TU_CHECK(rc == VT_ECORRUPT || rc == VT_EFORMAT || rc == VT_EVERSION,
                         "byte %llu ^ 0x%02x: unexpected code %d", (unsigned long long)i, x, rc);
                tried++;
                tried_all += regions[r].all_values;
            }
            ck_assert(pwrite(fd, &orig[i], 1, (off_t)i) == 1);
        }
    close(fd);
    ck_assert_int_gt(tried, 3 * 4096);
    ck_assert_uint_eq((uint64_t)tried_all, 255 * (l.dir_size + l.index_size[0] + l.index_size[1]));
    printf("every byte: %d changed files, %d of them a directory or index byte set to every other value\n",
           tried, tried_all);
    /* the file is the original again */
    size_t len;
    unsigned char *back = tu_read_file(path, &len);
    ck_assert(len == orig_len && memcmp(back, orig, len) == 0);
    free(back);
}
END_TEST

START_TEST(every_truncation_and_extension)
{
    for (size_t len = 0; len < orig_len; len++) {
        put_file(orig, len);
        vt_store *s;
        int rc = vt_open(path, 0, &s);
        TU_CHECK(rc == VT_EFORMAT, "truncated to %zu bytes: code %d (%s)", len, rc, vt_errmsg(NULL));
    }
    unsigned char *f = malloc(orig_len + 1);
    memcpy(f, orig, orig_len);
    f[orig_len] = 0;
    put_file(f, orig_len + 1);
    vt_store *s;
    ck_assert_int_eq(vt_open(path, 0, &s), VT_EFORMAT);
    ck_assert(strstr(vt_errmsg(NULL), "truncated or extended") != NULL);
    put_file(orig, orig_len);
    ck_assert_int_eq(try_store(), 0);
    free(f);
}
END_TEST

/* Hostile values in every 4- and 8-byte field, checksums recomputed: the
 * classic boundaries, and the file size - 1, + 0 and + 1 (offsets and sizes
 * that end just inside, at, and just past the end of the file). */
START_TEST(hostile_fields_with_valid_checksums)
{
    const uint64_t vals[] = {0,
                                    1,
                                    2,
                                    255,
                                    4096,
                                    INT32_MAX,
                                    UINT32_MAX,
                                    UINT64_C(1) << 32,
                                    UINT64_C(1) << 63,
                                    UINT64_MAX,
                                    UINT64_MAX - 4095,
                                    (uint64_t)orig_len - 1,
                                    (uint64_t)orig_len,
                                    (uint64_t)orig_len + 1};
    unsigned char *f = malloc(orig_len);
    layout l = get_layout(orig);
    struct {
        uint64_t off, len;
        int width;
    } regions[] = {{0, 96, 4},        {0, 96, 8},
                   {l.dir_off, l.dir_size, 4}, {l.dir_off, l.dir_size, 8},
                   {l.meta_off, l.meta_size, 8}, {l.meta_off, l.meta_size, 4},
                   {l.index_off[0], l.index_size[0], 4}, {l.index_off[0], l.index_size[0], 8},
                   {l.index_off[1], l.index_size[1], 8}};
    int accepted = 0, rejected = 0;
    for (size_t r = 0; r < sizeof regions / sizeof regions[0]; r++) {
        int wdt = regions[r].width;
        for (uint64_t i = regions[r].off; i + (uint64_t)wdt <= regions[r].off + regions[r].len; i += (uint64_t)wdt)
            for (size_t k = 0; k < sizeof vals / sizeof vals[0]; k++) {
                memcpy(f, orig, orig_len);
                if (wdt == 8)
                    st64(f + i, vals[k]);
                else
                    st32(f + i, (uint32_t)vals[k]);
                if (i == 4088) /* the header checksum itself */
                    continue;
                reseal(f);
                put_file(f, orig_len);
                int rc = try_store();
                /* the only acceptable outcome besides an error is identical data */
                TU_CHECK(rc != -100 && rc != -101,
                         "field at %llu = 0x%llx: store opened and verified but returned other data",
                         (unsigned long long)i, (unsigned long long)vals[k]);
                if (rc == 0)
                    accepted++;
                else
                    rejected++;
            }
    }
    printf("hostile fields: %d rejected, %d harmless\n", rejected, accepted);
    ck_assert_int_gt(rejected, 1000);
    put_file(orig, orig_len);
    free(f);
}
END_TEST

/* Damaged tile bytes: found by verify (naming the tile) and by checked reads. */
START_TEST(damaged_tile_data)
{
    unsigned char *f = malloc(orig_len);
    /* end of the tile data: the furthest stored tile */
    uint64_t data_end = 4096;
    vt_store *s0;
    ck_assert_int_eq(vt_open(path, 0, &s0), 0);
    for (size_t k = 0; k < 2; k++) {
        const vt_array *a;
        vt_array_info ai;
        vt_store_array_at(s0, k, &a);
        vt_array_info_get(a, &ai);
        for (uint64_t t = 0; t < ai.ntiles; t++) {
            vt_tile_info ti;
            vt_tile_get(a, t, &ti);
            if (ti.offset + ti.stored_size > data_end)
                data_end = ti.offset + ti.stored_size;
        }
    }
    vt_close(s0);
    int found = 0;
    for (uint64_t i = 4096; i < data_end; i++) {
        memcpy(f, orig, orig_len);
        f[i] ^= 0x10;
        put_file(f, orig_len);
        vt_store *s;
        ck_assert_int_eq(vt_open(path, 0, &s), 0); /* structures are intact */
        int bad = 0;
        for (size_t k = 0; k < 2; k++) {
            const vt_array *a;
            vt_store_array_at(s, k, &a);
            uint64_t t = UINT64_MAX;
            int rc = vt_verify_array(a, &t);
            if (rc) {
                TU_CHECK(rc == VT_ECORRUPT, "verify code %d", rc);
                TU_CHECK(t != UINT64_MAX, "bad tile not reported");
                TU_CHECK(strstr(vt_errmsg(s), "tile") != NULL, "message without the tile: %s", vt_errmsg(s));
                /* the tile's own entry covers byte i */
                vt_tile_info ti;
                ck_assert_int_eq(vt_tile_get(a, t, &ti), 0);
                TU_CHECK(i >= ti.offset && i < ti.offset + ti.stored_size,
                         "byte %llu reported in tile %llu [%llu,+%u)", (unsigned long long)i,
                         (unsigned long long)t, (unsigned long long)ti.offset, ti.stored_size);
                /* a checked read of the whole array fails too */
                int64_t st[4] = {0};
                uint64_t sz[4] = {1, NZ, NY, NX};
                static float out[NZ * NY * NX];
                TU_CHECK(vt_read(a, st, sz, NULL, out) == VT_ECORRUPT, "checked read passed a bad tile");
                /* an unchecked read returns something or an error, without crashing */
                vt_read_opts o;
                vt_read_opts_init(&o);
                o.verify = 0;
                (void)vt_read(a, st, sz, &o, out);
                bad++;
            }
        }
        TU_CHECK(bad == 1, "flip at %llu found in %d arrays", (unsigned long long)i, bad);
        found++;
        vt_close(s);
    }
    ck_assert_int_gt(found, 100);
    put_file(orig, orig_len);
    free(f);
}
END_TEST

START_TEST(not_a_store)
{
    char *p = tu_path(dir, "junk.vxt");
    unsigned char junk[8192];
    memset(junk, 'x', sizeof junk);
    tu_write_file(p, junk, sizeof junk);
    vt_store *s;
    ck_assert_int_eq(vt_open(p, 0, &s), VT_EFORMAT);
    ck_assert(strstr(vt_errmsg(NULL), "not a voxtile store") != NULL);
    /* right magic, future version (with a valid checksum) */
    unsigned char *f = malloc(orig_len);
    memcpy(f, orig, orig_len);
    st32(f + 8, 2);
    st64(f + 4088, XXH3_64bits(f, 4088));
    tu_write_file(p, f, orig_len);
    ck_assert_int_eq(vt_open(p, 0, &s), VT_EVERSION);
    /* an unfinished store (complete flag clear) */
    memcpy(f, orig, orig_len);
    st64(f + 16, 0);
    st64(f + 4088, XXH3_64bits(f, 4088));
    tu_write_file(p, f, orig_len);
    ck_assert_int_eq(vt_open(p, 0, &s), VT_EFORMAT);
    ck_assert(strstr(vt_errmsg(NULL), "incomplete") != NULL);
    ck_assert_int_eq(vt_open(dir, 0, &s), VT_EFORMAT); /* a folder */
    unlink(p);
    free(p);
    free(f);
}
END_TEST

/* A label index that passes every check at open (sums, order, bounds) but
 * disagrees with the tiles: one voxel of a label moved from one tile's count
 * to another's. vt_verify_tile names both tiles and the value; the other
 * tiles verify. The expected counts come from a histogram of the data here. */
START_TEST(label_index_disagrees_with_tiles)
{
    char *p = tu_path(dir, "labels.vxt");
    uint64_t shape[3] = {8, 8, 8};
    uint8_t lab[512];
    for (int i = 0; i < 512; i++)
        lab[i] = (uint8_t)((i / 64 + i % 8) % 3); /* values 0, 1, 2 in every tile */
    static const uint32_t tile[3] = {4, 4, 4}; /* 8 tiles */
    vt_array_spec spec;
    tu_spec(&spec, "seg", VT_U8, 3, shape, tile);
    spec.labels = 1;
    tu_write_store(p, 1, &spec, lab);
    size_t len;
    unsigned char *f = tu_read_file(p, &len);
    uint64_t dir_off = ld64(f + 32);
    unsigned char *e = f + dir_off;
    uint64_t loff = ld64(e + 184), lsize = ld64(e + 192);
    ck_assert_uint_gt(lsize, 0);
    /* label 1 (entry 1): its first two pairs are tiles 0 and 1 */
    unsigned char *ent = f + loff + 8 + 32;
    ck_assert_uint_eq(ld64(ent), 1);
    uint32_t nlabels = ld32(f + loff);
    ck_assert_uint_eq(nlabels, 3);
    unsigned char *pairs = f + loff + 8 + 32 * nlabels + ld64(ent + 24) * 16;
    uint64_t t0 = ld64(pairs), t1 = ld64(pairs + 16);
    /* the true counts, from the data */
    uint64_t want[8] = {0};
    for (int z = 0; z < 8; z++)
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 8; x++)
                if (lab[z * 64 + y * 8 + x] == 1)
                    want[(z / 4) * 4 + (y / 4) * 2 + x / 4]++;
    ck_assert_uint_eq(ld64(pairs + 8), want[t0]);
    ck_assert_uint_eq(ld64(pairs + 24), want[t1]);
    st64(pairs + 8, want[t0] + 1);
    st64(pairs + 24, want[t1] - 1);
    st64(e + 200, XXH3_64bits(f + loff, (size_t)lsize));
    st64(f + 48, XXH3_64bits(f + dir_off, (size_t)ld64(f + 40)));
    st64(f + 4088, XXH3_64bits(f, 4088));
    tu_write_file(p, f, len);
    vt_store *s;
    ck_assert_int_eq(vt_open(p, 0, &s), 0); /* every rule checked at open holds */
    const vt_array *a;
    ck_assert_int_eq(vt_store_array(s, "seg", &a), 0);
    for (uint64_t t = 0; t < 8; t++) {
        int rc = vt_verify_tile(a, t);
        if (t == t0 || t == t1) {
            ck_assert_int_eq(rc, VT_ECORRUPT);
            char expect[128];
            snprintf(expect, sizeof expect, "tile %llu (", (unsigned long long)t);
            TU_CHECK(strstr(vt_errmsg(s), expect) && strstr(vt_errmsg(s), "of value 1"),
                     "tile %llu: '%s'", (unsigned long long)t, vt_errmsg(s));
        } else
            TU_CHECK(rc == 0, "tile %llu: %s", (unsigned long long)t, vt_errmsg(s));
    }
    uint64_t bad = UINT64_MAX;
    ck_assert_int_eq(vt_verify_array(a, &bad), VT_ECORRUPT);
    ck_assert_uint_eq(bad, t0 < t1 ? t0 : t1);
    ck_assert_int_eq(vt_verify_tile(a, 8), VT_ERANGE);
    vt_close(s);
    unlink(p);
    free(p);
    free(f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("corrupt");
    TCase *tc = tu_tcase(s, "corrupt", 900, setup, teardown);
    tcase_add_test(tc, every_byte_of_the_structures);
    tcase_add_test(tc, every_truncation_and_extension);
    tcase_add_test(tc, hostile_fields_with_valid_checksums);
    tcase_add_test(tc, damaged_tile_data);
    tcase_add_test(tc, not_a_store);
    tcase_add_test(tc, label_index_disagrees_with_tiles);
    return tu_run(s);
}
