/* One handle, many readers: threads sharing a store, and children forked
 * after vt_open (also while other threads of the parent are reading), all
 * compared with the source array. */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>

#define NZ 40
#define NY 50
#define NX 60

static char *dir, *path;
static float *src;
static vt_store *store;
static const vt_array *arr;

static void setup(void)
{
    dir = tu_tmpdir();
    path = tu_path(dir, "t.vxt");
    size_t n = NZ * NY * NX;
    src = malloc(n * 4);
    rng r = {99};
    for (size_t i = 0; i < n; i++)
        src[i] = (float)(rng_unit(&r) * 1000 - 500);
    static const uint64_t shape[4] = {1, NZ, NY, NX};
    static const uint32_t tile[4] = {1, 16, 16, 16};
    vt_array_spec spec;
    tu_spec(&spec, "image", VT_F32, 4, shape, tile);
    tu_write_store(path, 2, &spec, src);
    store = tu_open_array(path, "image", &arr);
}

static void teardown(void)
{
    vt_close(store);
    free(src);
    tu_tmpdir_free(dir, path);
}

/* Read random boxes inside the volume and compare with the source; returns
 * the number of mismatches. */
static int read_and_check(uint64_t seed, int reads, int threads_per_read)
{
    rng r = {seed};
    float *out = malloc(24 * 24 * 24 * 4);
    int bad = 0;
    for (int i = 0; i < reads; i++) {
        uint64_t size[4] = {1, (uint64_t)rng_range(&r, 1, 24), (uint64_t)rng_range(&r, 1, 24),
                            (uint64_t)rng_range(&r, 1, 24)};
        int64_t start[4] = {0, rng_range(&r, 0, NZ - (int64_t)size[1]),
                            rng_range(&r, 0, NY - (int64_t)size[2]), rng_range(&r, 0, NX - (int64_t)size[3])};
        vt_read_opts o;
        vt_read_opts_init(&o);
        o.threads = threads_per_read;
        if (vt_read(arr, start, size, &o, out) != 0) {
            bad++;
            continue;
        }
        size_t k = 0;
        for (uint64_t z = 0; z < size[1]; z++)
            for (uint64_t y = 0; y < size[2]; y++)
                for (uint64_t x = 0; x < size[3]; x++, k++) {
                    size_t si = ((size_t)(start[1] + (int64_t)z) * NY + (size_t)(start[2] + (int64_t)y)) * NX +
                                (size_t)(start[3] + (int64_t)x);
                    if (memcmp(&out[k], &src[si], 4) != 0) {
                        bad++;
                        goto next;
                    }
                }
    next:;
    }
    free(out);
    return bad;
}

typedef struct job {
    uint64_t seed;
    int reads, threads_per_read, bad;
} job;

static void *reader(void *arg)
{
    job *j = arg;
    j->bad = read_and_check(j->seed, j->reads, j->threads_per_read);
    return NULL;
}

START_TEST(threads_share_a_handle)
{
    pthread_t th[6];
    job jobs[6];
    for (int i = 0; i < 6; i++) {
        jobs[i] = (job){(uint64_t)i + 1, 400, i % 3 == 2 ? 2 : 1, -1};
        ck_assert_int_eq(pthread_create(&th[i], NULL, reader, &jobs[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(jobs[i].bad, 0);
    }
}
END_TEST

static atomic_int stop_readers;

static void *reader_until_stopped(void *arg)
{
    job *j = arg;
    j->bad = 0;
    while (!atomic_load(&stop_readers))
        j->bad += read_and_check(j->seed++, 5, 1);
    return NULL;
}

/* GCC 12's AddressSanitizer allocator does not lock itself around fork(), so
 * a child forked while another thread is inside malloc can deadlock in its
 * first malloc (glibc's allocator does lock: the plain build runs the full
 * case). Under ASan the parent forks with no other thread running. */
#if defined(__SANITIZE_ADDRESS__)
#define PARENT_READERS 0
#else
#define PARENT_READERS 2
#endif

START_TEST(forked_children_keep_reading)
{
    /* the parent has read (its thread scratch exists) and keeps reading in
     * two threads while it forks */
    ck_assert_int_eq(read_and_check(7, 20, 1), 0);
    atomic_store(&stop_readers, 0);
    pthread_t th[2];
    job jobs[2] = {{100, 0, 1, 0}, {200, 0, 1, 0}};
    for (int i = 0; i < PARENT_READERS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, reader_until_stopped, &jobs[i]), 0);
    pid_t kids[4];
    for (int k = 0; k < 4; k++) {
        kids[k] = fork();
        ck_assert(kids[k] >= 0);
        if (kids[k] == 0) {
            /* child: single-threaded and multi-threaded reads on the inherited handle */
            int bad = read_and_check(1000 + (uint64_t)k, 200, 1) + read_and_check(2000 + (uint64_t)k, 50, 2);
            _exit(bad == 0 ? 0 : 1);
        }
    }
    for (int k = 0; k < 4; k++) {
        int status;
        ck_assert_int_eq(waitpid(kids[k], &status, 0), kids[k]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d failed (status 0x%x)", k,
                      status);
    }
    atomic_store(&stop_readers, 1);
    for (int i = 0; i < PARENT_READERS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(jobs[i].bad, 0);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("concurrency");
    TCase *tc = tu_tcase(s, "concurrency", 120, setup, teardown);
    tcase_add_test(tc, threads_share_a_handle);
    tcase_add_test(tc, forked_children_keep_reading);
    return tu_run(s);
}
