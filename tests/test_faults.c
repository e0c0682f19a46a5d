/* I/O errors and out of memory, the SQLite way: make the Nth allocation or
 * system call fail -- once, or from then on -- for N = 1, 2, ... until the
 * operation succeeds. Every failure must come back as an error, publish
 * nothing (or leave the store it was replacing intact), and leak no
 * descriptor; the sanitizer build checks memory leaks (LeakSanitizer). */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/stat.h>

/* from src/base/internal.h (test builds link the library's static archive) */
#define VT_FAULT_MALLOC 0x01u
#define VT_FAULT_WRITE 0x04u
#define VT_FAULT_ALL 0x1ffu
void vt__fault_arm(unsigned kinds, long nth, bool persistent, int err);
void vt__fault_disarm(void);
long vt__fault_calls(void);
long vt__fault_failures(void);

static char *dir, *path;
static char lastmsg[1024]; /* the message of write_store's failure */

static int count_fds(void)
{
    return tu_count_entries("/proc/self/fd");
}

#define NZ 9
#define NY 20
#define NX 21

static void fill(int16_t *img, uint8_t *seg, int variant)
{
    for (int i = 0; i < NZ * NY * NX; i++) {
        img[i] = (int16_t)((i * 37 + variant * 1000) % 2000 - 1000);
        seg[i] = (uint8_t)((i / 50 + variant) % 4);
    }
}

/* Write a store of two arrays (one a label array) in pieces; the first
 * failing call's code, or 0. */
static int write_store(const char *p, int threads, int variant)
{
    int16_t img[NZ * NY * NX];
    uint8_t seg[NZ * NY * NX];
    fill(img, seg, variant);
    vt_writer_opts wo;
    vt_writer_opts_init(&wo);
    wo.threads = threads;
    vt_writer *w = NULL;
    int rc = vt_writer_open(p, &wo, &w);
    int id1 = -1, id2 = -1;
    static const uint64_t shape[3] = {NZ, NY, NX};
    static const uint32_t tile[3] = {4, 8, 8};
    vt_array_spec spec;
    tu_spec(&spec, "image", VT_I16, 3, shape, tile);
    if (rc == 0)
        rc = vt_writer_add_array(w, &spec, &id1);
    spec.name = "seg";
    spec.dtype = VT_U8;
    spec.labels = 1;
    if (rc == 0)
        rc = vt_writer_add_array(w, &spec, &id2);
    double spacing[3] = {2, 1, 1};
    if (rc == 0)
        rc = vt_writer_set_meta(w, "spacing", VT_META_F64, spacing, 3);
    for (uint64_t z = 0; z < NZ && rc == 0; z += 3) { /* slabs of 3 slices: partial tiles */
        uint64_t st[3] = {z, 0, 0}, sz[3] = {3, NY, NX};
        rc = vt_writer_write(w, id1, st, sz, img + z * NY * NX);
        if (rc == 0)
            rc = vt_writer_write(w, id2, st, sz, seg + z * NY * NX);
    }
    if (rc == 0)
        rc = vt_writer_finalize(w);
    if (rc) {
        snprintf(lastmsg, sizeof lastmsg, "%s", w ? vt_writer_errmsg(w) : vt_errmsg(NULL));
        TU_CHECK(strlen(lastmsg) > 0, "a failure without a message");
    }
    vt_writer_free(w);
    return rc;
}

/* The store at p holds variant's data. */
static void check_store(const char *p, int variant)
{
    int16_t img[NZ * NY * NX], out[NZ * NY * NX];
    uint8_t seg[NZ * NY * NX];
    fill(img, seg, variant);
    const vt_array *a;
    vt_store *s = tu_open_array(p, "image", &a);
    int64_t st[3] = {0, 0, 0};
    uint64_t sz[3] = {NZ, NY, NX};
    ck_assert_int_eq(vt_read(a, st, sz, NULL, out), 0);
    ck_assert(memcmp(out, img, sizeof img) == 0);
    ck_assert_int_eq(vt_store_array(s, "seg", &a), 0);
    ck_assert_uint_gt(vt_label_count(a), 0);
    ck_assert_int_eq(vt_verify_array(a, NULL), 0);
    vt_close(s);
}

static void setup(void)
{
    dir = tu_tmpdir();
    path = tu_path(dir, "f.vxt");
}

static void teardown(void)
{
    tu_tmpdir_free(dir, path);
}

START_TEST(write_fails_at_every_call)
{
    int threads = 1 + (_i & 1), replace = (_i >> 1) & 1, persist = (_i >> 2) & 1;
    int errs[2] = {EIO, ENOSPC};
    unsigned char *old = NULL;
    size_t old_len = 0;
    unlink(path);
    if (replace) { /* an older store at the path must survive every failure */
        ck_assert_int_eq(write_store(path, 1, 7), 0);
        old = tu_read_file(path, &old_len);
    }
    int fds = count_fds();
    long n, failures_seen = 0, after_publish = 0;
    for (n = 1; n < 100000; n++) {
        vt__fault_arm(VT_FAULT_ALL, n, persist, errs[n & 1]);
        int rc = write_store(path, threads, 1);
        long failed = vt__fault_failures(), calls = vt__fault_calls();
        vt__fault_disarm();
        TU_CHECK(count_fds() == fds, "n=%ld: %d descriptors open, %d before", n, count_fds(), fds);
        if (rc == 0) { /* no failure, or one that cannot matter (closing the directory): a complete store */
            check_store(path, 1);
            if (failed == 0 || calls < n)
                break;
            unlink(path);
            if (replace)
                tu_write_file(path, old, old_len);
            continue;
        }
        failures_seen++;
        TU_CHECK(rc < 0, "n=%ld: a call failed but the write returned %d", n, rc);
        /* nothing published: the folder holds the old store, byte for byte, or nothing --
         * unless only the directory's fsync after the rename failed, which the message says:
         * then the new store is there and complete */
        if (strstr(lastmsg, "is published and complete")) {
            TU_CHECK(tu_count_entries(dir) == 1, "n=%ld: published, but %d files", n, tu_count_entries(dir));
            check_store(path, 1);
            unlink(path);
            if (replace)
                tu_write_file(path, old, old_len);
            after_publish++;
            continue;
        }
        TU_CHECK(tu_count_entries(dir) == (replace ? 1 : 0), "n=%ld: %d files in the folder (%s)", n,
                 tu_count_entries(dir), lastmsg);
        if (replace) {
            size_t len;
            unsigned char *now = tu_read_file(path, &len);
            TU_CHECK(len == old_len && memcmp(now, old, len) == 0, "n=%ld: the old store changed (%s)", n, lastmsg);
            free(now);
        }
    }
    printf("write (threads %d, %s, %s): %ld failing runs (%ld after publishing), success at call %ld\n",
           threads, persist ? "persistent" : "once", replace ? "replacing a store" : "new file", failures_seen,
           after_publish, n);
    ck_assert_int_gt(failures_seen, 20);
    check_store(path, 1);
    free(old);
}
END_TEST

START_TEST(open_and_read_fail_at_every_call)
{
    int persist = _i & 1;
    ck_assert_int_eq(write_store(path, 1, 2), 0);
    int16_t img[NZ * NY * NX];
    uint8_t seg[NZ * NY * NX];
    fill(img, seg, 2);
    int fds = count_fds();
    long n, failures_seen = 0;
    for (n = 1; n < 100000; n++) {
        vt__fault_arm(VT_FAULT_ALL, n, persist, EIO);
        vt_store *s = NULL;
        int rc = vt_open(path, 0, &s);
        int16_t out[4 * 8 * 30];
        if (rc == 0) {
            const vt_array *a;
            rc = vt_store_array(s, "image", &a);
            /* a box wider than the array: padding, several tiles, a mirrored row */
            int64_t st[3] = {2, 5, -3};
            uint64_t sz[3] = {4, 8, 30};
            vt_read_opts o;
            vt_read_opts_init(&o);
            o.pad = VT_PAD_REFLECT;
            o.dtype = VT_F32;
            o.threads = 2;
            float fout[4 * 8 * 30];
            if (rc == 0)
                rc = vt_read(a, st, sz, &o, fout);
            if (rc == 0) {
                o.dtype = VT_DTYPE_SAME;
                o.threads = 1;
                rc = vt_read(a, st, sz, &o, out);
            }
            if (rc == 0)
                rc = vt_verify_array(a, NULL);
            vt_close(s);
        } else
            ck_assert_ptr_null(s);
        long failed = vt__fault_failures(), calls = vt__fault_calls();
        vt__fault_disarm();
        TU_CHECK(count_fds() == fds, "n=%ld: descriptor leak", n);
        if (rc == 0) { /* no failure, or one absorbed (decode threads fall back to one): right data */
            for (int z = 0; z < 4; z++) /* the reflect read against its definition */
                for (int y = 0; y < 8; y++)
                    for (int x = 0; x < 30; x++) {
                        int sx = x - 3 < 0 ? -(x - 3) : (x - 3 >= NX ? 2 * (NX - 1) - (x - 3) : x - 3);
                        TU_CHECK(out[(z * 8 + y) * 30 + x] == img[((z + 2) * NY + y + 5) * NX + sx], "voxel");
                    }
            if (failed == 0 || calls < n)
                break;
            continue;
        }
        failures_seen++;
        TU_CHECK(failed > 0, "n=%ld: reading failed (%d) without an injected failure", n, rc);
    }
    printf("open + read (%s): %ld failing runs, success at call %ld\n", persist ? "persistent" : "once",
           failures_seen, n);
    ck_assert_int_gt(failures_seen, 3);
}
END_TEST

/* The reference conversion (made unarmed, in a folder of its own) and a check
 * that a store a faulted run published holds the same arrays, voxel for voxel. */
static char *ref_dir, *ref_path;

static unsigned char *read_whole(vt_store *s, size_t i, vt_array_info *ai, size_t *len)
{
    const vt_array *a;
    ck_assert_int_eq(vt_store_array_at(s, i, &a), 0);
    ck_assert_int_eq(vt_array_info_get(a, ai), 0);
    size_t n = vt_dtype_size(ai->dtype);
    int64_t st[VT_MAX_DIMS] = {0};
    for (int d = 0; d < ai->ndim; d++)
        n *= ai->shape[d];
    unsigned char *buf = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(vt_read(a, st, ai->shape, NULL, buf), 0);
    ck_assert_int_eq(vt_verify_array(a, NULL), 0);
    *len = n;
    return buf;
}

static void check_converted(const char *p)
{
    vt_store *s, *r;
    ck_assert_int_eq(vt_open(p, 0, &s), 0);
    ck_assert_int_eq(vt_open(ref_path, 0, &r), 0);
    ck_assert_uint_eq(vt_store_narrays(s), 4);
    ck_assert_uint_eq(vt_store_narrays(r), 4);
    for (size_t i = 0; i < 4; i++) {
        vt_array_info ai, ri;
        size_t n, rn;
        unsigned char *got = read_whole(s, i, &ai, &n), *want = read_whole(r, i, &ri, &rn);
        ck_assert_str_eq(ai.name, ri.name);
        ck_assert_int_eq(ai.ndim, ri.ndim);
        ck_assert(n == rn && memcmp(got, want, n) == 0);
        free(got);
        free(want);
    }
    vt_close(s);
    vt_close(r);
}

START_TEST(convert_fails_at_every_call)
{
    /* the bundled CT and segmentation, cropped, with a pyramid level: every
     * allocation and system call of the converter and the writer */
    const char *srcdir = getenv("VT_TEST_DATA");
    ck_assert_msg(srcdir != NULL, "VT_TEST_DATA must name tests/data");
    char *ct = tu_path(srcdir, "example_ct_sm.nii.gz"), *sg = tu_path(srcdir, "example_seg.nii.gz");
    const char *imgs[1] = {ct};
    vt_convert_opts o;
    vt_convert_opts_init(&o);
    o.crop_mode = VT_CROP_LABEL;
    o.crop_margin = 2;
    o.levels = 1;
    o.threads = 1 + (_i & 1);
    int persist = (_i >> 1) & 1;
    ref_dir = tu_tmpdir();
    ref_path = tu_path(ref_dir, "ref.vxt");
    ck_assert_msg(vt_convert_images(imgs, 1, sg, ref_path, &o) == 0, "%s", vt_errmsg(NULL));
    int fds = count_fds();
    long n, failures_seen = 0, after_publish = 0, absorbed = 0;
    for (n = 1; n < 200000; n += 1 + n / 64) { /* every call early on, then a stride */
        vt__fault_arm(VT_FAULT_ALL, n, persist, n & 1 ? ENOSPC : EIO);
        int rc = vt_convert_images(imgs, 1, sg, path, &o);
        long failed = vt__fault_failures();
        vt__fault_disarm();
        TU_CHECK(count_fds() == fds, "n=%ld: descriptor leak", n);
        if (failed == 0) {
            ck_assert_msg(rc == 0, "%s", vt_errmsg(NULL));
            break;
        }
        if (rc == 0) { /* a failure that cannot matter (closing the folder after publishing) */
            check_converted(path);
            unlink(path);
            absorbed++;
            continue;
        }
        failures_seen++;
        TU_CHECK(rc < 0, "n=%ld: a call failed but the conversion returned %d", n, rc);
        const char *msg = vt_errmsg(NULL);
        TU_CHECK(strlen(msg) > 0, "n=%ld: no message", n);
        /* only the folder's fsync after the rename failed, and the message says so:
         * the store is there and complete; otherwise nothing may be left */
        if (strstr(msg, "is published and complete")) {
            TU_CHECK(tu_count_entries(dir) == 1, "n=%ld: published, but %d files", n, tu_count_entries(dir));
            check_converted(path);
            unlink(path);
            after_publish++;
            continue;
        }
        TU_CHECK(tu_count_entries(dir) == 0, "n=%ld: something was left in the output folder (%s)", n, msg);
    }
    printf("convert (threads %d, %s): %ld failing runs (%ld after publishing, %ld absorbed), success at call %ld\n",
           o.threads, persist ? "persistent" : "once", failures_seen, after_publish, absorbed, n);
    ck_assert_int_gt(failures_seen, 50);
    check_converted(path);
    tu_tmpdir_free(ref_dir, ref_path);
    free(ct);
    free(sg);
}
END_TEST

/* The fingerprint's JSON text (malloc'd). */
static char *fp_text(vt_fingerprint *fp)
{
    long long n = vt_fingerprint_json(fp, NULL, 0);
    ck_assert_int_ge(n, 0);
    char *t = malloc((size_t)n + 1);
    ck_assert_int_eq(vt_fingerprint_json(fp, t, (size_t)n + 1), n);
    return t;
}

/* The text of a fingerprint of the CT case added @p cases times. */
static char *fp_reference(const char *const *imgs, const char *seg, int cases)
{
    vt_fingerprint *fp;
    ck_assert_int_eq(vt_fingerprint_new(&fp), 0);
    for (int i = 0; i < cases; i++)
        ck_assert_msg(vt_fingerprint_add_case(fp, imgs, 1, seg, NULL) == 0, "%s", vt_errmsg(NULL));
    char *t = fp_text(fp);
    vt_fingerprint_free(fp);
    return t;
}

START_TEST(fingerprint_fails_at_every_call)
{
    /* new, two cases (the bundled CT), save, load: every allocation and
     * system call; a failed add leaves the fingerprint as it was, a failed
     * save leaves no file, a failed load gives no fingerprint */
    const char *srcdir = getenv("VT_TEST_DATA");
    ck_assert_msg(srcdir != NULL, "VT_TEST_DATA must name tests/data");
    char *ct = tu_path(srcdir, "example_ct_sm.nii.gz"), *sg = tu_path(srcdir, "example_seg.nii.gz");
    char *json = tu_path(dir, "fp.json");
    const char *imgs[1] = {ct};
    char *ref[3];
    for (int i = 0; i < 3; i++)
        ref[i] = fp_reference(imgs, sg, i);
    int persist = _i & 1, fds = count_fds();
    long n, failures_seen = 0, absorbed = 0;
    for (n = 1; n < 200000; n += 1 + n / 64) {
        vt_fingerprint *fp = NULL, *loaded = NULL;
        int step = 0, cases = 0;
        vt__fault_arm(VT_FAULT_ALL, n, persist, n & 1 ? ENOSPC : EIO);
        int rc = vt_fingerprint_new(&fp);
        for (; rc == 0 && cases < 2; cases += rc == 0)
            step = 1, rc = vt_fingerprint_add_case(fp, imgs, 1, sg, NULL);
        if (rc == 0)
            step = 2, rc = vt_fingerprint_save(fp, json);
        if (rc == 0)
            step = 3, rc = vt_fingerprint_load(json, &loaded);
        long failed = vt__fault_failures();
        vt__fault_disarm();
        TU_CHECK(count_fds() == fds, "n=%ld: descriptor leak", n);
        const char *msg = vt_errmsg(NULL);
        if (rc) {
            failures_seen++;
            TU_CHECK(rc < 0 && strlen(msg) > 0, "n=%ld: rc %d, message '%s'", n, rc, msg);
        } else if (failed) {
            absorbed++;
        }
        if (step == 0)
            TU_CHECK(fp == NULL, "n=%ld: a fingerprint from a failed vt_fingerprint_new", n);
        if (fp) { /* the cases that were added, and only those */
            char *t = fp_text(fp);
            TU_CHECK(strcmp(t, ref[cases]) == 0, "n=%ld: after %d cases (%s)", n, cases, msg);
            free(t);
        }
        if (step == 2 && rc && !strstr(msg, "is published and complete"))
            TU_CHECK(tu_count_entries(dir) == 0, "n=%ld: a failed save left a file (%s)", n, msg);
        if (step == 3 && rc)
            TU_CHECK(loaded == NULL, "n=%ld: a fingerprint from a failed load", n);
        if (loaded) {
            char *t = fp_text(loaded);
            TU_CHECK(strcmp(t, ref[2]) == 0, "n=%ld: loaded text differs", n);
            free(t);
        }
        vt_fingerprint_free(fp);
        vt_fingerprint_free(loaded);
        unlink(json);
        if (failed == 0) {
            ck_assert_msg(rc == 0, "%s", msg);
            ck_assert_ptr_nonnull(loaded);
            break;
        }
    }
    printf("fingerprint (%s): %ld failing runs (%ld absorbed), success at call %ld\n", persist ? "persistent" : "once",
           failures_seen, absorbed, n);
    ck_assert_int_gt(failures_seen, 20);
    for (int i = 0; i < 3; i++)
        free(ref[i]);
    free(json);
    free(ct);
    free(sg);
}
END_TEST

/* A small .npy (z, y, x) of dtype descr ("<i2", "|u1") with value v + i at i. */
static void write_npy(const char *p, const char *descr, size_t esize, int v)
{
    char hdr[128];
    int n = snprintf(hdr + 10, sizeof hdr - 10, "{'descr': '%s', 'fortran_order': False, 'shape': (4, 5, 6), }",
                     descr);
    int total = (10 + n + 1 + 63) / 64 * 64;
    memcpy(hdr, "\x93NUMPY\x01\x00", 8);
    hdr[8] = (char)(total - 10);
    hdr[9] = 0;
    memset(hdr + 10 + n, ' ', (size_t)(total - 10 - n));
    hdr[total - 1] = '\n';
    unsigned char data[4 * 5 * 6 * 2];
    for (int i = 0; i < 4 * 5 * 6; i++) {
        int x = esize == 1 ? (v + i) % 3 : v + i;
        memcpy(data + i * esize, &x, esize); /* little-endian host */
    }
    FILE *f = fopen(p, "wb");
    ck_assert(f != NULL);
    ck_assert(fwrite(hdr, 1, (size_t)total, f) == (size_t)total);
    ck_assert(fwrite(data, esize, 4 * 5 * 6, f) == 4 * 5 * 6);
    ck_assert(fclose(f) == 0);
}

/* Remove the files of @p d and then @p d. */
static void rm_dir(const char *d, const char *sub)
{
    char *p = tu_path(d, sub);
    tu_rmtree(p);
    free(p);
}

START_TEST(dataset_fails_at_every_call)
{
    /* an nnU-Net folder of two 2-channel cases (one with a label): opening it,
     * preparing the output and converting both cases, every allocation and
     * system call failing in turn */
    char *raw = tu_path(dir, "raw"), *out = tu_path(dir, "out");
    const char *subs[] = {"", "/imagesTr", "/labelsTr"};
    for (int i = 0; i < 3; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s%s", raw, subs[i]);
        ck_assert(mkdir(p, 0777) == 0);
    }
    char p[600];
    const char *json = "{\"channel_names\": {\"0\": \"a\", \"1\": \"b\"}, \"file_ending\": \".npy\"}";
    snprintf(p, sizeof p, "%s/dataset.json", raw);
    tu_write_file(p, json, strlen(json));
    for (int c = 1; c <= 2; c++)
        for (int ch = 0; ch < 2; ch++) {
            snprintf(p, sizeof p, "%s/imagesTr/c%d_%04d.npy", raw, c, ch);
            write_npy(p, "<i2", 2, 100 * c + ch);
        }
    snprintf(p, sizeof p, "%s/labelsTr/c1.npy", raw);
    write_npy(p, "|u1", 1, 0);
    vt_convert_opts o;
    vt_convert_opts_init(&o);
    o.tile[0] = o.tile[1] = o.tile[2] = 4;
    int fds = count_fds();
    long n, failures_seen = 0;
    int persist = _i;
    for (n = 1; n < 100000; n++) {
        vt__fault_arm(VT_FAULT_ALL, n, persist, n & 1 ? ENOSPC : EIO);
        vt_dataset *ds = NULL;
        vt_case_status st[2] = {VT_CASE_UP_TO_DATE, VT_CASE_UP_TO_DATE};
        int rc = vt_dataset_open(raw, &ds);
        if (rc == 0)
            rc = vt_dataset_prepare(ds, out);
        for (size_t i = 0; i < 2 && rc == 0; i++)
            rc = vt_dataset_convert_case(ds, i, out, &o, &st[i]);
        long failed = vt__fault_failures();
        vt__fault_disarm();
        TU_CHECK(count_fds() == fds, "n=%ld: descriptor leak", n);
        if (rc != 0) {
            TU_CHECK(rc < 0 && strlen(vt_errmsg(NULL)) > 0, "n=%ld: %d without a message", n, rc);
            TU_CHECK(ds == NULL || vt_dataset_ncases(ds) == 2, "n=%ld: a dataset half listed", n);
            failures_seen++;
        } else if (failed == 0) {
            ck_assert_int_eq(vt_dataset_ncases(ds), 2);
            ck_assert_int_eq(st[0], VT_CASE_MISSING);
            ck_assert_int_eq(st[1], VT_CASE_MISSING);
        }
        /* every store there opens (a failure publishes nothing half-written) */
        for (size_t i = 0; ds && i < 2; i++) {
            char sp[700];
            vt_dataset_store_path(ds, i, out, sp, sizeof sp);
            vt_store *s;
            TU_CHECK(access(sp, F_OK) != 0 || vt_open(sp, 0, &s) == 0, "n=%ld: %s does not open", n, sp);
            if (access(sp, F_OK) == 0)
                vt_close(s);
        }
        vt_dataset_close(ds);
        tu_rmtree(out);
        if (failed == 0)
            break;
    }
    printf("dataset (%s): %ld failing runs, success at call %ld\n", persist ? "persistent" : "once",
           failures_seen, n);
    ck_assert_int_gt(failures_seen, 30);
    ck_assert_int_lt(n, 100000);
    rm_dir(raw, "imagesTr");
    rm_dir(raw, "labelsTr");
    tu_rmtree(raw);
    free(raw);
    free(out);
}
END_TEST

/* A full disk: every write fails with ENOSPC -> VT_ENOSPC, a message that says so, nothing left. */
START_TEST(no_space_is_reported_as_such)
{
    vt__fault_arm(VT_FAULT_WRITE, 3, true, ENOSPC);
    int rc = write_store(path, 2, 1);
    vt__fault_disarm();
    ck_assert_int_eq(rc, VT_ENOSPC);
    ck_assert_int_eq(tu_count_entries(dir), 0);
    int16_t img[NZ * NY * NX];
    (void)img;
}
END_TEST

int main(void)
{
    Suite *s = suite_create("faults");
    TCase *tc = tu_tcase(s, "faults", 900, NULL, NULL);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, write_fails_at_every_call, 0, 8);
    tcase_add_loop_test(tc, open_and_read_fail_at_every_call, 0, 2);
    tcase_add_loop_test(tc, convert_fails_at_every_call, 0, 4);
    tcase_add_loop_test(tc, fingerprint_fails_at_every_call, 0, 2);
    tcase_add_test(tc, no_space_is_reported_as_such);
    tcase_add_loop_test(tc, dataset_fails_at_every_call, 0, 2);
    return tu_run(s);
}
