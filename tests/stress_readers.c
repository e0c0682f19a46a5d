/* Stress: many readers of one handle, and descriptor hygiene.
 *
 * 1. stress: a store whose every voxel is a function of its coordinates
 *    (so any box can be checked without keeping the array) is opened once;
 *    then 8 processes are forked, each running 2 threads that read random
 *    boxes -- inside, straddling a border, near and far outside; every pad
 *    mode; output dtypes float16, bfloat16, float32, float64 and integers;
 *    now and then a transform or two decode threads -- for DURATION seconds,
 *    checking every voxel of every result against the formula, converted by
 *    the rules include/voxtile.h gives for vt_read (testutil.h's reference
 *    conversions). The parent is a watchdog: a process not finished within
 *    DURATION + 60 s is a hang, killed and counted. Reads, mismatches and
 *    hangs are printed; mismatches, read errors, hangs and crashes must be 0.
 * 2. cloexec: every descriptor the library opens -- itself, or through zlib
 *    for NIfTI input and output -- has FD_CLOEXEC when it is opened. The
 *    test defines open/open64/openat/openat64 (and fortify's __open_2 /
 *    __open64_2): the library's calls, linked statically, and zlib's, through
 *    the executable's exported symbol, land here; each records the
 *    descriptor's flags and opens it with the openat system call. Descriptors
 *    that outlive a call (the writer's temporary file) are also checked from
 *    /proc/self/fd.
 * 3. no_fd_leak: /proc/self/fd counts the same before and after many cycles
 *    of every kind of call, failing ones included.
 *
 * Usage: test_stress [DURATION_SECONDS]   (default 2; the 'slow' suite runs 60)
 * VT_STRESS_SEED sets the seed of the random boxes (printed). */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

static double duration = 2.0;
static uint64_t seed0 = 12345;

/* ======================================================================== */
/* Descriptor recording: our own open() family                              */
/* ======================================================================== */

#define MAXREC 256
typedef struct fdrec {
    int fd, fdflags, oflags;
    char path[240];
} fdrec;
static atomic_int rec_on;
static atomic_int nrec;
static fdrec recs[MAXREC];

static int record(const char *path, int oflags, int fd)
{
    if (fd >= 0 && atomic_load(&rec_on)) {
        int e = errno;
        int i = atomic_fetch_add(&nrec, 1);
        if (i < MAXREC) {
            recs[i].fd = fd;
            recs[i].fdflags = fcntl(fd, F_GETFD);
            recs[i].oflags = oflags;
            snprintf(recs[i].path, sizeof recs[i].path, "%s", path ? path : "?");
        }
        errno = e;
    }
    return fd;
}

static int sys_openat(int dfd, const char *path, int oflags, unsigned mode)
{
    return (int)syscall(SYS_openat, dfd, path, oflags, mode);
}

static bool needs_mode(int oflags)
{
    return (oflags & O_CREAT) || (oflags & O_TMPFILE) == O_TMPFILE;
}

/* The C names are ours; the symbols are libc's, which these take the place of. */
int tu_open(const char *path, int oflags, ...) __asm__("open");
int tu_open64(const char *path, int oflags, ...) __asm__("open64");
int tu_openat(int dfd, const char *path, int oflags, ...) __asm__("openat");
int tu_openat64(int dfd, const char *path, int oflags, ...) __asm__("openat64");
int tu_open_2(const char *path, int oflags) __asm__("__open_2");
int tu_open64_2(const char *path, int oflags) __asm__("__open64_2");

#define MODE_ARG(last)                                                                             \
    unsigned mode = 0;                                                                             \
    if (needs_mode(oflags)) {                                                                      \
        va_list ap;                                                                                \
        va_start(ap, last);                                                                        \
        mode = va_arg(ap, unsigned);                                                               \
        va_end(ap);                                                                                \
    }

int tu_open(const char *path, int oflags, ...)
{
    MODE_ARG(oflags);
    return record(path, oflags, sys_openat(AT_FDCWD, path, oflags, mode));
}

int tu_open64(const char *path, int oflags, ...)
{
    MODE_ARG(oflags);
    return record(path, oflags, sys_openat(AT_FDCWD, path, oflags, mode));
}

int tu_openat(int dfd, const char *path, int oflags, ...)
{
    MODE_ARG(oflags);
    return record(path, oflags, sys_openat(dfd, path, oflags, mode));
}

int tu_openat64(int dfd, const char *path, int oflags, ...)
{
    MODE_ARG(oflags);
    return record(path, oflags, sys_openat(dfd, path, oflags, mode));
}

int tu_open_2(const char *path, int oflags) { return record(path, oflags, sys_openat(AT_FDCWD, path, oflags, 0)); }

int tu_open64_2(const char *path, int oflags)
{
    return record(path, oflags, sys_openat(AT_FDCWD, path, oflags, 0));
}

/* ======================================================================== */
/* The store: every voxel a function of its coordinates                     */
/* ======================================================================== */

/* image: float32 (IC, IZ, IY, IX), tiles (1, 16, 16, 16): partial tiles at
 * the far borders, constant tiles for z >= 32 (the last tile row) */
#define IC 2
#define IZ 40
#define IY 70
#define IX 90
/* lab: uint16 (LZ, LY, LX), default tiles (16, 16, 16) */
#define LZ 33
#define LY 47
#define LX 51

/* A hash of @p z: splitmix64's next number from state z. */
static uint64_t mix(uint64_t z)
{
    rng r = {z};
    return rng_next(&r);
}

/* Values that exercise the conversions: fractions, float16 subnormals and
 * underflow, magnitudes beyond float16 and int16, NaN with payloads, -0. */
static float image_value(int64_t c, int64_t z, int64_t y, int64_t x)
{
    if (z >= 32)
        return c ? -0.0f : 3.25f;
    uint64_t h = mix(((uint64_t)c << 48) ^ ((uint64_t)z << 32) ^ ((uint64_t)y << 16) ^ (uint64_t)x);
    switch (h & 15) {
    case 0: return (float)ldexp((double)((h >> 8) & 1023), -30);
    case 1: return (float)(((double)((h >> 8) % 300001) - 150000.0) * 0.75);
    case 2:
        if (((h >> 8) & 7) == 0) {
            uint32_t b = 0x7fc00000u | (uint32_t)((h >> 16) & 0x3fffff) | (uint32_t)((h >> 40) & 1) << 31;
            float f;
            memcpy(&f, &b, 4);
            return f;
        }
        return -0.0f;
    case 3: return (float)(int64_t)((h >> 8) % 256);
    default: return (float)(((double)((h >> 8) % 2000001) - 1000000.0) / 1024.0);
    }
}

static uint16_t lab_value(int64_t z, int64_t y, int64_t x)
{
    if (z < 16 && y < 16)
        return 7;
    return (uint16_t)((z * 131 + y * 17 + x * 3 + (x * y) % 7) % 1200);
}

static char *dir, *store_path;

static void write_store(const char *p)
{
    vt_writer *w = tu_writer(p, 2);
    uint64_t ishape[4] = {IC, IZ, IY, IX};
    static const uint32_t itile[4] = {1, 16, 16, 16};
    vt_array_spec spec;
    tu_spec(&spec, "image", VT_F32, 4, ishape, itile);
    int idi = tu_add_array(w, &spec);
    uint64_t lshape[3] = {LZ, LY, LX};
    tu_spec(&spec, "lab", VT_U16, 3, lshape, NULL);
    int idl = tu_add_array(w, &spec);

    float *img = malloc(sizeof(float) * IC * IZ * IY * IX);
    size_t k = 0;
    for (int c = 0; c < IC; c++)
        for (int z = 0; z < IZ; z++)
            for (int y = 0; y < IY; y++)
                for (int x = 0; x < IX; x++)
                    img[k++] = image_value(c, z, y, x);
    uint64_t st[4] = {0};
    ck_assert_int_eq(vt_writer_write(w, idi, st, ishape, img), 0);
    free(img);
    uint16_t *lab = malloc(sizeof(uint16_t) * LZ * LY * LX);
    k = 0;
    for (int z = 0; z < LZ; z++)
        for (int y = 0; y < LY; y++)
            for (int x = 0; x < LX; x++)
                lab[k++] = lab_value(z, y, x);
    ck_assert_int_eq(vt_writer_write(w, idl, st, lshape, lab), 0);
    free(lab);
    tu_finish(w);
}

static void setup(void)
{
    dir = tu_tmpdir();
    store_path = tu_path(dir, "s.vxt");
    write_store(store_path);
}

static void teardown(void)
{
    tu_tmpdir_free(dir, store_path);
}

/* ======================================================================== */
/* 1. stress                                                                */
/* ======================================================================== */

#define NPROC 8
#define NTHREAD 2
#define MAXBOX (3 * 40 * 40 * 40)

typedef struct tstats {
    long reads, voxels, mismatches, errors;
    long by_pad[3], by_dtype[11], by_box[3], transformed, threaded; /* what the reads covered */
    char first[600]; /* the first problem */
} tstats;

typedef struct reader_ctx {
    const vt_array *arr[2];
    tstats *st;
    uint64_t seed;
    double deadline;
} reader_ctx;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const vt_dtype out_dtypes[] = {VT_DTYPE_SAME, VT_F16, VT_F16, VT_F16, VT_BF16, VT_F32,
                                      VT_F64,        VT_U8,  VT_I16, VT_U16, VT_I32};
static const double pad_values[] = {0.0, -3.5, 70000.0, 1e-7, 255.9, -1e9, NAN};

static const char *pad_name(vt_pad p) { return p == VT_PAD_CONSTANT ? "constant" : p == VT_PAD_EDGE ? "edge" : "reflect"; }

/* A random stretch along an axis of extent n, with lengths up to maxs:
 * mode 0 inside, 1 straddling one border or both, 2 just outside, 3 anywhere
 * from far below to far above (reflect folds many times). */
static void random_axis(rng *r, int mode, int64_t n, int64_t maxs, int64_t *start, uint64_t *size)
{
    int64_t s = rng_range(r, 1, maxs);
    switch (mode) {
    case 0:
        if (s > n)
            s = n;
        *start = rng_range(r, 0, n - s);
        break;
    case 1:
        if (s == 1)
            s = 2;
        *start = rng_range(r, 0, 1) ? rng_range(r, -s + 1, -1) : rng_range(r, n - s + 1, n - 1);
        if (*start >= 0 && *start + s <= n) /* a short box on a long axis: move it over the far border */
            *start = n - s + 1;
        break;
    case 2: *start = rng_range(r, 0, 1) ? rng_range(r, -s - 4, -s) : rng_range(r, n, n + 4); break;
    default:
        do
            *start = rng_range(r, -6 * n - s, 6 * n);
        while (*start + s > 0 && *start < n);
        break;
    }
    *size = (uint64_t)s;
}

static void one_read(reader_ctx *ctx, rng *r, unsigned char *out, unsigned char *want)
{
    int which = (int)rng_range(r, 0, 3) == 0; /* 1 of 4: lab */
    const vt_array *arr = ctx->arr[which];
    int nd = which ? 3 : 4;
    const int64_t *shape = which ? (const int64_t[]){LZ, LY, LX} : (const int64_t[]){IC, IZ, IY, IX};
    vt_dtype sd = which ? VT_U16 : VT_F32;
    int64_t start[4];
    uint64_t size[4];
    /* 4 of 10 boxes inside, 4 straddling a border on some axes, 2 wholly outside along one axis */
    int cls = (int)rng_range(r, 0, 9), out_axis = (int)rng_range(r, 0, nd - 1);
    for (int d = 0; d < nd; d++) {
        int mode = cls < 4 ? 0 : (int)rng_range(r, 0, 1);
        if (cls >= 8 && d == out_axis)
            mode = 2 + (int)rng_range(r, 0, 1);
        random_axis(r, mode, shape[d], (!which && d == 0) ? 3 : 40, &start[d], &size[d]);
    }
    vt_read_opts o;
    vt_read_opts_init(&o);
    o.dtype = out_dtypes[rng_range(r, 0, (int64_t)(sizeof out_dtypes / sizeof *out_dtypes) - 1)];
    o.pad = (vt_pad)rng_range(r, 0, 2);
    o.pad_value = pad_values[rng_range(r, 0, (int64_t)(sizeof pad_values / sizeof *pad_values) - 1)];
    if (rng_range(r, 0, 5) == 0) {
        o.transform = 1;
        o.clip_lo = -500 - (double)rng_range(r, 0, 1000);
        o.clip_hi = 700 + (double)rng_range(r, 0, 100000);
        o.scale = 0.37;
        o.offset = 12.5;
    }
    if (rng_range(r, 0, 9) == 0)
        o.threads = 2;
    o.verify = (int)rng_range(r, 0, 3) != 0;
    vt_dtype dd = o.dtype == VT_DTYPE_SAME ? sd : o.dtype;
    size_t des = vt_dtype_size(dd);

    ctx->st->reads++;
    ctx->st->by_pad[o.pad]++;
    ctx->st->by_dtype[dd]++;
    ctx->st->transformed += o.transform;
    ctx->st->threaded += o.threads > 1;
    int box = 0; /* 0 inside, 1 straddling, 2 wholly outside */
    for (int d = 0; d < nd; d++) {
        if (start[d] + (int64_t)size[d] <= 0 || start[d] >= shape[d]) {
            box = 2;
            break;
        }
        if (start[d] < 0 || start[d] + (int64_t)size[d] > shape[d])
            box = 1;
    }
    ctx->st->by_box[box]++;
    int rc = vt_read(arr, start, size, &o, out);
    if (rc != 0) {
        if (ctx->st->errors++ == 0 && ctx->st->first[0] == 0)
            snprintf(ctx->st->first, sizeof ctx->st->first, "vt_read failed: %s (%s)", vt_strerror(rc),
                     vt_errmsg(NULL));
        return;
    }
    /* the array index of every box coordinate, per axis */
    int64_t map[4][40];
    for (int d = 0; d < nd; d++)
        for (uint64_t k = 0; k < size[d]; k++)
            map[d][k] = ref_map(start[d] + (int64_t)k, shape[d], o.pad);
    uint64_t idx[4] = {0};
    uint64_t nvox = 1;
    for (int d = 0; d < nd; d++)
        nvox *= size[d];
    bool f32_to_f16 = !o.transform && sd == VT_F32 && dd == VT_F16;
    for (uint64_t v = 0; v < nvox; v++) {
        bool pad = false;
        for (int d = 0; d < nd; d++)
            pad |= map[d][idx[d]] < 0;
        bool exact = true;
        if (pad) {
            ref_store(dd, want, o.pad_value);
            exact = false;
        } else {
            double val;
            unsigned char src[4];
            if (which) {
                uint16_t u = lab_value(map[0][idx[0]], map[1][idx[1]], map[2][idx[2]]);
                memcpy(src, &u, 2);
                val = u;
            } else {
                float f = image_value(map[0][idx[0]], map[1][idx[1]], map[2][idx[2]], map[3][idx[3]]);
                memcpy(src, &f, 4);
                val = f;
                if (f32_to_f16) {
                    uint16_t h = ref_f16_from_f32(f);
                    memcpy(want, &h, 2);
                }
            }
            if (!o.transform && dd == sd)
                memcpy(want, src, des);
            else if (!f32_to_f16) {
                if (o.transform)
                    val = ref_transform(val, &o);
                ref_store(dd, want, val);
                exact = false;
            }
        }
        if (!tu_same_value(dd, out + v * des, want, exact)) {
            if (ctx->st->mismatches++ == 0 && ctx->st->first[0] == 0) {
                uint64_t got = 0, exp = 0;
                memcpy(&got, out + v * des, des);
                memcpy(&exp, want, des);
                snprintf(ctx->st->first, sizeof ctx->st->first,
                         "mismatch: array %s start (%lld,%lld,%lld,%lld) size (%llu,%llu,%llu,%llu) dtype %s pad %s "
                         "pad_value %g transform %d threads %d, voxel (%llu,%llu,%llu,%llu): got 0x%llx want 0x%llx",
                         which ? "lab" : "image", (long long)start[0], (long long)start[1],
                         (long long)start[2], (long long)(nd > 3 ? start[3] : 0), (unsigned long long)size[0],
                         (unsigned long long)size[1], (unsigned long long)size[2],
                         (unsigned long long)(nd > 3 ? size[3] : 0), vt_dtype_name(dd), pad_name(o.pad),
                         o.pad_value, o.transform, o.threads, (unsigned long long)idx[0],
                         (unsigned long long)idx[1], (unsigned long long)idx[2],
                         (unsigned long long)(nd > 3 ? idx[3] : 0), (unsigned long long)got,
                         (unsigned long long)exp);
            }
        }
        for (int d = nd - 1; d >= 0; d--) { /* next voxel, C order */
            if (++idx[d] < size[d])
                break;
            idx[d] = 0;
        }
    }
    ctx->st->voxels += (long)nvox;
}

static void *reader_main(void *arg)
{
    reader_ctx *ctx = arg;
    rng r = {ctx->seed};
    unsigned char *out = malloc(MAXBOX * 8), want[8];
    if (out == NULL) {
        ctx->st->errors++;
        return NULL;
    }
    while (now() < ctx->deadline)
        one_read(ctx, &r, out, want);
    free(out);
    return NULL;
}

START_TEST(stress)
{
    const vt_array *arr[2];
    vt_store *s = tu_open_array(store_path, "image", &arr[0]);
    ck_assert_int_eq(vt_store_array(s, "lab", &arr[1]), 0);
    /* one read in the parent first: its thread scratch exists when it forks */
    {
        reader_ctx ctx = {{arr[0], arr[1]}, NULL, seed0, 0};
        tstats st;
        memset(&st, 0, sizeof st);
        ctx.st = &st;
        rng r = {seed0 ^ 0xabcdef};
        unsigned char *out = malloc(MAXBOX * 8), want[8];
        for (int i = 0; i < 50; i++)
            one_read(&ctx, &r, out, want);
        free(out);
        ck_assert_msg(st.mismatches == 0 && st.errors == 0, "parent: %s", st.first);
    }
    tstats *sh = mmap(NULL, sizeof(tstats) * NPROC * NTHREAD, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert(sh != MAP_FAILED);
    memset(sh, 0, sizeof(tstats) * NPROC * NTHREAD);
    double t0 = now();
    pid_t kids[NPROC];
    for (int p = 0; p < NPROC; p++) {
        kids[p] = fork();
        ck_assert(kids[p] >= 0);
        if (kids[p] == 0) {
            pthread_t th[NTHREAD];
            bool started[NTHREAD] = {false};
            reader_ctx ctx[NTHREAD];
            int bad = 0;
            for (int t = 0; t < NTHREAD; t++) {
                ctx[t] = (reader_ctx){{arr[0], arr[1]}, &sh[p * NTHREAD + t],
                                      mix(seed0 + (uint64_t)(p * NTHREAD + t) * 1000003u), t0 + duration};
                started[t] = pthread_create(&th[t], NULL, reader_main, &ctx[t]) == 0;
                if (!started[t]) {
                    sh[p * NTHREAD + t].errors++;
                    snprintf(sh[p * NTHREAD + t].first, sizeof sh->first, "pthread_create failed");
                    bad = 1;
                }
            }
            for (int t = 0; t < NTHREAD; t++)
                if (started[t])
                    pthread_join(th[t], NULL);
            for (int t = 0; t < NTHREAD; t++)
                bad |= sh[p * NTHREAD + t].mismatches != 0 || sh[p * NTHREAD + t].errors != 0;
            _exit(bad);
        }
    }
    /* watchdog */
    int left = NPROC, hangs = 0, crashed = 0, failed = 0;
    bool done[NPROC] = {false};
    while (left > 0) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid > 0) {
            for (int p = 0; p < NPROC; p++)
                if (kids[p] == pid && !done[p]) {
                    done[p] = true;
                    left--;
                    if (WIFSIGNALED(status)) {
                        crashed++;
                        fprintf(stderr, "stress: process %d killed by signal %d\n", p, WTERMSIG(status));
                    } else if (WEXITSTATUS(status) != 0)
                        failed++;
                }
            continue;
        }
        if (now() - t0 > duration + 60) {
            for (int p = 0; p < NPROC; p++)
                if (!done[p]) {
                    kill(kids[p], SIGKILL);
                    waitpid(kids[p], &status, 0);
                    done[p] = true;
                    left--;
                    hangs++;
                    fprintf(stderr, "stress: process %d hangs (not done %.0f s after its deadline): killed\n", p,
                            now() - t0 - duration);
                }
            break;
        }
        usleep(20000);
    }
    long reads = 0, voxels = 0, mism = 0, errs = 0, cov[3 + 11 + 3 + 2] = {0};
    const char *first = NULL;
    for (int i = 0; i < NPROC * NTHREAD; i++) {
        for (int k = 0; k < 3; k++) {
            cov[k] += sh[i].by_pad[k];
            cov[14 + k] += sh[i].by_box[k];
        }
        for (int k = 0; k < 11; k++)
            cov[3 + k] += sh[i].by_dtype[k];
        cov[17] += sh[i].transformed;
        cov[18] += sh[i].threaded;
        reads += sh[i].reads;
        voxels += sh[i].voxels;
        mism += sh[i].mismatches;
        errs += sh[i].errors;
        if (sh[i].first[0] && first == NULL)
            first = sh[i].first;
        printf("stress: process %d thread %d: %ld reads, %ld mismatches, %ld errors\n", i / NTHREAD,
               i % NTHREAD, sh[i].reads, sh[i].mismatches, sh[i].errors);
    }
    printf("stress: %d processes x %d threads, %.0f s, seed %llu: %ld reads (%ld voxels checked), %ld mismatches, "
           "%ld read errors, %d hangs, %d crashed, %d failed\n",
           NPROC, NTHREAD, duration, (unsigned long long)seed0, reads, voxels, mism, errs, hangs, crashed, failed);
    printf("stress: boxes inside %ld, straddling %ld, outside %ld; pad constant %ld, edge %ld, reflect %ld; "
           "transform %ld; 2 decode threads %ld\nstress: output dtypes:", cov[14], cov[15], cov[16], cov[0], cov[1],
           cov[2], cov[17], cov[18]);
    for (int k = 1; k < 11; k++)
        if (cov[3 + k])
            printf(" %s %ld", vt_dtype_name((vt_dtype)k), cov[3 + k]);
    printf("\n");
    if (first)
        printf("stress: first problem: %s\n", first);
    fflush(stdout);
    char firstcopy[600];
    snprintf(firstcopy, sizeof firstcopy, "%s", first ? first : "");
    munmap(sh, sizeof(tstats) * NPROC * NTHREAD);
    vt_close(s);
    ck_assert_msg(mism == 0 && errs == 0, "%ld mismatches, %ld read errors; first: %s", mism, errs, firstcopy);
    ck_assert_msg(hangs == 0, "%d reader processes hung", hangs);
    ck_assert_msg(crashed == 0 && failed == 0, "%d reader processes crashed, %d failed", crashed, failed);
    ck_assert_msg(reads >= NPROC * NTHREAD, "too few reads: %ld", reads);
}
END_TEST

/* ======================================================================== */
/* 2. close-on-exec, 3. descriptor leaks                                    */
/* ======================================================================== */

/* Descriptors open now, as a bitmap (fd < 4096), without the one listing them. */
static int list_fds(unsigned char *set)
{
    memset(set, 0, 4096);
    DIR *d = opendir("/proc/self/fd");
    ck_assert(d != NULL);
    int self = dirfd(d), n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd == self || fd >= 4096)
            continue;
        set[fd] = 1;
        n++;
    }
    closedir(d);
    return n;
}

static void write_npy(const char *p, int nz, int ny, int nx)
{
    char hdr[128];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d, %d), }", nz, ny,
                     nx);
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;
    FILE *f = fopen(p, "wb");
    ck_assert(f != NULL);
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
    uint16_t hl = (uint16_t)(n + pad + 1);
    memcpy(pre + 8, &hl, 2);
    fwrite(pre, 1, 10, f);
    fwrite(hdr, 1, (size_t)n, f);
    for (int i = 0; i < pad; i++)
        fputc(' ', f);
    fputc('\n', f);
    for (int i = 0; i < nz * ny * nx; i++) {
        float v = (float)(i % 1000) * 0.5f;
        fwrite(&v, 4, 1, f);
    }
    ck_assert(fclose(f) == 0);
}

/* A minimal NIfTI-1 (.nii) of float32 (nz, ny, nx), 1 mm voxels. */
static void write_nii(const char *p, int nz, int ny, int nx)
{
    unsigned char h[352];
    memset(h, 0, sizeof h);
    int32_t i32 = 348;
    memcpy(h + 0, &i32, 4);
    h[38] = 'r';
    int16_t dim[8] = {3, (int16_t)nx, (int16_t)ny, (int16_t)nz, 1, 1, 1, 1};
    memcpy(h + 40, dim, sizeof dim);
    int16_t dt = 16, bp = 32;
    memcpy(h + 70, &dt, 2);
    memcpy(h + 72, &bp, 2);
    float pix[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    memcpy(h + 76, pix, sizeof pix);
    float vox = 352;
    memcpy(h + 108, &vox, 4);
    h[123] = 2; /* mm */
    memcpy(h + 344, "n+1\0", 4);
    FILE *f = fopen(p, "wb");
    ck_assert(f != NULL);
    fwrite(h, 1, sizeof h, f);
    for (int i = 0; i < nz * ny * nx; i++) {
        float v = (float)(i % 777) - 100.0f;
        fwrite(&v, 4, 1, f);
    }
    ck_assert(fclose(f) == 0);
}

static char *npy_path, *nii_path, *junk_path, *conv_path, *exp_path, *expgz_path, *tmpw_path;

static void io_setup(void)
{
    setup();
    npy_path = tu_path(dir, "in.npy");
    nii_path = tu_path(dir, "in.nii");
    junk_path = tu_path(dir, "junk.vxt");
    conv_path = tu_path(dir, "conv.vxt");
    exp_path = tu_path(dir, "exp.nii");
    expgz_path = tu_path(dir, "exp.nii.gz");
    tmpw_path = tu_path(dir, "w.vxt");
    write_npy(npy_path, 20, 21, 22);
    write_nii(nii_path, 18, 19, 23);
    tu_write_file(junk_path, "not a store at all", 18);
}

static void io_teardown(void)
{
    free(npy_path);
    free(nii_path);
    free(junk_path);
    free(conv_path);
    free(exp_path);
    free(expgz_path);
    free(tmpw_path);
    teardown();
}

/* A small writer cycle: 0 = finalize, 1 = free without finalize, 2 = finalize fails (incomplete). */
static void writer_cycle(const char *p, int how, int threads, unsigned char *check_open_fds)
{
    vt_writer *w = tu_writer(p, threads);
    if (check_open_fds) { /* descriptors the writer holds between calls */
        unsigned char now_fds[4096];
        list_fds(now_fds);
        int fresh = 0;
        for (int fd = 0; fd < 4096; fd++)
            if (now_fds[fd] && !check_open_fds[fd]) {
                fresh++;
                int fl = fcntl(fd, F_GETFD);
                ck_assert_msg(fl >= 0 && (fl & FD_CLOEXEC), "writer's descriptor %d lacks FD_CLOEXEC", fd);
            }
        ck_assert_msg(fresh >= 1, "an open writer holds no new descriptor (%d)", fresh);
    }
    static const uint64_t shape[3] = {20, 20, 20};
    vt_array_spec spec;
    tu_spec(&spec, "a", VT_I16, 3, shape, NULL);
    int id = tu_add_array(w, &spec);
    int16_t data[20 * 20 * 20];
    for (int i = 0; i < 8000; i++)
        data[i] = (int16_t)(i % 300);
    uint64_t st[3] = {0}, sz[3] = {20, 20, 20}, half[3] = {10, 20, 20};
    if (how == 2) {
        ck_assert_int_eq(vt_writer_write(w, id, st, half, data), 0);
        ck_assert_int_eq(vt_writer_finalize(w), VT_EINVAL);
    } else {
        ck_assert_int_eq(vt_writer_write(w, id, st, sz, data), 0);
        if (how == 0)
            ck_assert_msg(vt_writer_finalize(w) == 0, "%s", vt_writer_errmsg(w));
    }
    vt_writer_free(w);
}

static void read_cycle(void)
{
    const vt_array *a;
    vt_store *s = tu_open_array(store_path, "image", &a);
    float out[2 * 20 * 20 * 20];
    int64_t st[4] = {0, 5, -3, 70};
    uint64_t sz[4] = {2, 20, 20, 20};
    vt_read_opts o;
    vt_read_opts_init(&o);
    o.threads = 2;
    ck_assert_int_eq(vt_read(a, st, sz, &o, out), 0);
    ck_assert_int_eq(vt_store_release(s), 0);
    vt_close(s);
}

/* Every kind of call, succeeding and failing. */
static void every_call(unsigned char *check_open_fds)
{
    vt_store *s = NULL;
    read_cycle();
    ck_assert_int_eq(vt_open(junk_path, 0, &s), VT_EFORMAT);
    ck_assert_int_eq(vt_open("/nonexistent/dir/x.vxt", 0, &s), VT_EIO);
    ck_assert_int_eq(vt_open(dir, 0, &s), VT_EFORMAT); /* a folder */
    writer_cycle(tmpw_path, 0, 1, check_open_fds);
    writer_cycle(tmpw_path, 0, 2, NULL);
    writer_cycle(tmpw_path, 1, 2, check_open_fds);
    writer_cycle(tmpw_path, 2, 1, NULL);
    vt_writer *w;
    ck_assert_int_ne(vt_writer_open("/nonexistent/dir/x.vxt", NULL, &w), 0);
    ck_assert_msg(vt_convert(npy_path, conv_path, NULL) == 0, "%s", vt_errmsg(NULL));
    ck_assert_msg(vt_convert(nii_path, conv_path, NULL) == 0, "%s", vt_errmsg(NULL));
    const char *data = getenv("VT_TEST_DATA");
    if (data) {
        char ct[1024];
        snprintf(ct, sizeof ct, "%s/example_ct_sm.nii.gz", data);
        if (access(ct, R_OK) == 0)
            ck_assert_msg(vt_convert(ct, conv_path, NULL) == 0, "%s", vt_errmsg(NULL));
    }
    ck_assert_int_ne(vt_convert(junk_path, conv_path, NULL), 0);
    ck_assert_int_ne(vt_convert("/nonexistent/in.npy", conv_path, NULL), 0);
    ck_assert_msg(vt_export_nifti(store_path, "image", exp_path) == 0, "%s", vt_errmsg(NULL));
    ck_assert_msg(vt_export_nifti(store_path, "image", expgz_path) == 0, "%s", vt_errmsg(NULL));
    ck_assert_int_ne(vt_export_nifti(store_path, "image", "/nonexistent/dir/e.nii"), 0);
    ck_assert_int_ne(vt_export_nifti(junk_path, "image", exp_path), 0);
}

START_TEST(cloexec)
{
    unsigned char before[4096];
    list_fds(before);
    atomic_store(&nrec, 0);
    atomic_store(&rec_on, 1);
    every_call(before);
    atomic_store(&rec_on, 0);
    int n = atomic_load(&nrec);
    ck_assert_msg(n <= MAXREC, "too many opens recorded (%d)", n);
    /* the hooks must see the library's opens and zlib's, or this test is blind */
    bool saw_store = false, saw_nii = false, saw_export = false;
    int bad = 0;
    char msg[4096] = "";
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        saw_store |= strcmp(recs[i].path, store_path) == 0;
        saw_nii |= strcmp(recs[i].path, nii_path) == 0;
        /* export writes an O_TMPFILE in the output's folder (or a hidden temporary beside it) */
        saw_export |= strncmp(recs[i].path, exp_path, strlen(exp_path)) == 0 ||
                      ((recs[i].oflags & O_TMPFILE) == O_TMPFILE && strstr(exp_path, recs[i].path) == exp_path);
        if (recs[i].fdflags < 0 || !(recs[i].fdflags & FD_CLOEXEC)) {
            bad++;
            if (len < sizeof msg - 200)
                len += (size_t)snprintf(msg + len, sizeof msg - len, "\n  fd %d of %s (open flags 0%o) lacks FD_CLOEXEC",
                                        recs[i].fd, recs[i].path, (unsigned)recs[i].oflags);
        }
    }
    printf("cloexec: %d descriptors opened by the library (itself and through zlib), %d without FD_CLOEXEC%s\n", n,
           bad, msg);
    fflush(stdout);
    ck_assert_msg(saw_store && saw_nii && saw_export,
                  "the open() hooks did not see every open (store %d, nii %d, export %d): the check is blind",
                  saw_store, saw_nii, saw_export);
    ck_assert_msg(bad == 0, "%d of %d descriptors opened by the library lack FD_CLOEXEC:%s", bad, n, msg);
}
END_TEST

START_TEST(no_fd_leak)
{
    unsigned char set[4096];
    every_call(NULL); /* first calls may set up state (thread keys ...) */
    int before = list_fds(set);
    int entries = tu_count_entries(dir);
    for (int i = 0; i < 40; i++)
        every_call(NULL);
    for (int i = 0; i < 300; i++)
        read_cycle();
    int after = list_fds(set);
    printf("no_fd_leak: %d descriptors before, %d after 40 rounds of every call and 300 open/read/close\n", before,
           after);
    fflush(stdout);
    ck_assert_msg(after == before, "descriptors leak: %d before, %d after", before, after);
    ck_assert_int_eq(tu_count_entries(dir), entries); /* nothing left behind either */
}
END_TEST

int main(int argc, char **argv)
{
    if (argc > 1) {
        char *end;
        duration = strtod(argv[1], &end);
        if (*end || duration <= 0) {
            fprintf(stderr, "usage: %s [DURATION_SECONDS]\n", argv[0]);
            return 2;
        }
    }
    const char *sd = getenv("VT_STRESS_SEED");
    if (sd && *sd)
        seed0 = strtoull(sd, NULL, 0);
    else
        seed0 = (uint64_t)time(NULL);
    Suite *s = suite_create("stress");
    TCase *tc = tu_tcase(s, "stress", duration + 300, setup, teardown);
    tcase_add_test(tc, stress);
    TCase *fds = tu_tcase(s, "descriptors", 600, io_setup, io_teardown);
    tcase_add_test(fds, cloexec);
    tcase_add_test(fds, no_fd_leak);
    return tu_run(s);
}
