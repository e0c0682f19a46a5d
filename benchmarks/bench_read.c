/* bench_read: random-patch read benchmark of a voxtile store.
 *
 *   bench_read STORE [--patches N] [--size S] [--threads 1|2] [--dtype float16]
 *              [--cold] [--seed S] [--repeat R] [--array NAME] [--no-verify]
 *              [--positions FILE] [--pad constant|edge|reflect] [--sync] [--dump FILE]
 *
 * Opens STORE, picks N random patch positions (fixed seed; start anywhere in
 * [0, shape - size] on z, y, x; channel 0) and reads each as a box
 * (1, size, size, size) with vt_read converting to the requested dtype
 * (float16 by default) into one preallocated output buffer per reader thread.
 * With --threads 2, two pthreads share the one store handle and split the
 * patch list in halves.
 *
 * For each repeat and the median over repeats it reports patches/s (wall
 * time of the whole list), p50 and p99 latency of one vt_read (ms), the peak
 * RssAnon of the process (sampled from /proc/self/status after every patch)
 * and the store's compression ratio (raw_bytes / stored_bytes).
 *
 * Warm (default): before the first repeat the whole file is read once with
 * pread() so that it sits in the page cache.
 * Cold (--cold): before each repeat the store is closed, the file is fsync'ed
 * and evicted with posix_fadvise(POSIX_FADV_DONTNEED) on a separate fd, and
 * the store is opened again. The store must be closed first: the kernel does
 * not drop page-cache pages that are still mapped by a process, and the store
 * handle maps the whole file. Residency is checked with mincore() before and
 * after the eviction; a note is printed when the eviction did not take.
 *
 * --positions FILE reads the box starts from FILE instead of drawing them: one
 * box per line, "z y x" (integers, may be negative or reach past the far
 * border: those voxels come from the pad mode, --pad, default constant 0);
 * empty lines and lines starting with '#' are skipped; --patches is then the
 * number of boxes in the file. benchmarks/compare.py writes these files so that
 * the C reader and the Python peers read exactly the same boxes.
 *
 * --sync (for a driver such as benchmarks/compare.py): before each repeat,
 * after the cold eviction and reopening, print "READY <rep>" and wait for a
 * line on stdin; the repeat starts when it arrives, and end of input stops the
 * run after the repeats so far (--repeat is then an upper bound). A driver uses
 * it to interleave readers, to start two processes at the same moment, or to
 * repeat a run that other work on the machine disturbed.
 * --dump FILE writes the output of every patch of the first repeat to FILE,
 * patch after patch (outside the timed region), for checking voxels.
 *
 * After every repeat a machine-readable line
 *   REP rep=1 t0=... t1=... patches=... patches_per_s=... p50_ms=... p99_ms=...
 *       peak_anon_mib=... base_anon_mib=... peak_file_mib=... resident_pct=...
 * gives the repeat's figures. resident_pct is the part of the file in the page
 * cache right after the cold eviction (-1 when warm); t0/t1 are CLOCK_MONOTONIC
 * seconds (comparable between processes, for the summed rate of two processes).
 *
 * The last line is machine-readable:
 *   RESULT threads=1 cold=0 patches_per_s=... p50_ms=... p99_ms=... peak_anon_mib=... ratio=...
 */
#include "voxtile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 2

typedef struct config {
    const char *path;
    const char *array;
    long patches;
    long size;
    int threads;
    vt_dtype dtype;
    int cold;
    uint64_t seed;
    int repeat;
    int verify;
    const char *positions; /* file of box starts, or NULL: draw them */
    vt_pad pad;
    int sync;
    const char *dump; /* output of every patch of the first repeat, or NULL */
} config;

typedef struct reader {
    const vt_array *arr;
    const config *cfg;
    int nd;
    const int64_t *starts; /* patches x nd */
    const uint64_t *box;   /* nd */
    long first, count;
    void *out;
    double *lat_ms; /* per patch, indexed by patch number */
    long peak_anon_kib;
    long peak_file_kib;
    int dump_fd; /* -1: no dump */
    size_t out_bytes;
    int rc;
    char msg[512];
    pthread_t th;
} reader;

typedef struct rep_result {
    double pps, p50, p99, peak_anon_mib, peak_file_mib, resident_pct;
} rep_result;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_read: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void usage(int code)
{
    fputs("usage: bench_read STORE [--patches N=200] [--size S=128] [--threads 1|2]\n"
          "                  [--dtype float16] [--cold] [--seed S=1] [--repeat R=5]\n"
          "                  [--array NAME=image] [--no-verify] [--positions FILE]\n"
          "                  [--pad constant|edge|reflect] [--sync] [--dump FILE]\n",
          code ? stderr : stdout);
    exit(code);
}

static long parse_long(const char *opt, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        die("%s: expected an integer in %ld..%ld, got '%s'", opt, lo, hi, s);
    return v;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* splitmix64 */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform in [0, n) (n >= 1), without modulo bias worth caring about at these sizes. */
static uint64_t rng_below(uint64_t *s, uint64_t n) { return rng_next(s) % n; }

/* RssAnon and RssFile of the process in KiB, read from an open /proc/self/status. */
static void read_rss(int fd, long *anon_kib, long *file_kib)
{
    char buf[4096];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    *anon_kib = *file_kib = -1;
    if (n <= 0)
        return;
    buf[n] = 0;
    const char *p = strstr(buf, "RssAnon:");
    if (p)
        *anon_kib = strtol(p + 8, NULL, 10);
    p = strstr(buf, "RssFile:");
    if (p)
        *file_kib = strtol(p + 8, NULL, 10);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n). */
static double percentile(const double *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t k = (size_t)ceil(q / 100.0 * (double)n);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Percentage of the file's pages resident in the page cache (mincore), or -1. */
static double resident_pct(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    double pct = -1;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        size_t len = (size_t)st.st_size;
        long pg = sysconf(_SC_PAGESIZE);
        size_t npages = (len + (size_t)pg - 1) / (size_t)pg;
        void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
        unsigned char *vec = malloc(npages);
        if (m != MAP_FAILED && vec && mincore(m, len, vec) == 0) {
            size_t res = 0;
            for (size_t i = 0; i < npages; i++)
                res += vec[i] & 1u;
            pct = 100.0 * (double)res / (double)npages;
        }
        free(vec);
        if (m != MAP_FAILED)
            munmap(m, len);
    }
    close(fd);
    return pct;
}

/* fsync the file and drop its (clean, unmapped) pages from the page cache. */
static void evict(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("%s: cannot open to evict: %s", path, strerror(errno));
    if (fsync(fd) != 0)
        fprintf(stderr, "bench_read: note: fsync(%s) failed: %s\n", path, strerror(errno));
    int rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    if (rc != 0)
        fprintf(stderr, "bench_read: note: posix_fadvise(DONTNEED) failed: %s\n", strerror(rc));
    close(fd);
}

/* Read the whole file once so that it is in the page cache. */
static void warm_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("%s: cannot open to warm: %s", path, strerror(errno));
    size_t cap = (size_t)8 << 20;
    char *buf = malloc(cap);
    if (buf == NULL)
        die("out of memory");
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    while (read(fd, buf, cap) > 0) {
    }
    free(buf);
    close(fd);
}

/* Box starts "z y x" per line; returns patches x 3 int64 and sets *n. */
static int64_t *read_positions(const char *path, long *n)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        die("%s: %s", path, strerror(errno));
    size_t cap = 256, cnt = 0;
    int64_t *v = malloc(cap * 3 * sizeof *v);
    char line[256];
    long lineno = 0;
    while (v && fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == '\n' || *p == '\r' || *p == 0)
            continue;
        long long z, y, x;
        char extra;
        if (sscanf(p, "%lld %lld %lld %c", &z, &y, &x, &extra) != 3)
            die("%s:%ld: expected \"z y x\"", path, lineno);
        if (cnt == cap) {
            cap *= 2;
            int64_t *nv = realloc(v, cap * 3 * sizeof *v);
            if (nv == NULL)
                free(v);
            v = nv;
        }
        if (v) {
            v[cnt * 3] = z;
            v[cnt * 3 + 1] = y;
            v[cnt * 3 + 2] = x;
            cnt++;
        }
    }
    fclose(f);
    if (v == NULL)
        die("out of memory");
    if (cnt == 0)
        die("%s: no positions", path);
    *n = (long)cnt;
    return v;
}

static void *reader_main(void *arg)
{
    reader *r = arg;
    vt_read_opts o;
    vt_read_opts_init(&o);
    o.dtype = r->cfg->dtype;
    o.verify = r->cfg->verify;
    o.pad = r->cfg->pad;
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    r->peak_anon_kib = r->peak_file_kib = 0;
    for (long i = r->first; i < r->first + r->count; i++) {
        const int64_t *start = r->starts + i * r->nd;
        double t0 = now_s();
        int rc = vt_read(r->arr, start, r->box, &o, r->out);
        double t1 = now_s();
        if (rc) {
            r->rc = rc;
            snprintf(r->msg, sizeof r->msg, "patch %ld: %s: %s", i, vt_strerror(rc), vt_errmsg(NULL));
            break;
        }
        r->lat_ms[i] = (t1 - t0) * 1e3;
        if (r->dump_fd >= 0) {
            off_t off = (off_t)i * (off_t)r->out_bytes;
            if (pwrite(r->dump_fd, r->out, r->out_bytes, off) != (ssize_t)r->out_bytes) {
                r->rc = VT_EIO;
                snprintf(r->msg, sizeof r->msg, "patch %ld: cannot write the dump: %s", i, strerror(errno));
                break;
            }
        }
        if (fd >= 0) {
            long anon, file;
            read_rss(fd, &anon, &file);
            if (anon > r->peak_anon_kib)
                r->peak_anon_kib = anon;
            if (file > r->peak_file_kib)
                r->peak_file_kib = file;
        }
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static const vt_array *open_array(const config *c, vt_store **st)
{
    int rc = vt_open(c->path, 0, st);
    if (rc)
        die("%s", vt_errmsg(NULL));
    const vt_array *a;
    rc = c->array ? vt_store_array(*st, c->array, &a) : vt_store_array_at(*st, 0, &a);
    if (rc)
        die("%s", vt_errmsg(*st));
    return a;
}

int main(int argc, char **argv)
{
    config c = {NULL, "image", 200, 128, 1, VT_F16, 0, 1, 5, 1, NULL, VT_PAD_CONSTANT, 0, NULL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            usage(0);
        else if (strcmp(a, "--cold") == 0)
            c.cold = 1;
        else if (strcmp(a, "--no-verify") == 0)
            c.verify = 0;
        else if (strcmp(a, "--sync") == 0)
            c.sync = 1;
        else if (a[0] == '-' && a[1] == '-' && v == NULL)
            die("%s needs a value", a);
        else if (strcmp(a, "--patches") == 0)
            c.patches = parse_long(a, argv[++i], 1, 100000000);
        else if (strcmp(a, "--size") == 0)
            c.size = parse_long(a, argv[++i], 1, 4096);
        else if (strcmp(a, "--threads") == 0)
            c.threads = (int)parse_long(a, argv[++i], 1, MAX_THREADS);
        else if (strcmp(a, "--seed") == 0)
            c.seed = (uint64_t)parse_long(a, argv[++i], 0, INT64_MAX);
        else if (strcmp(a, "--repeat") == 0)
            c.repeat = (int)parse_long(a, argv[++i], 1, 1000);
        else if (strcmp(a, "--array") == 0)
            c.array = argv[++i];
        else if (strcmp(a, "--positions") == 0)
            c.positions = argv[++i];
        else if (strcmp(a, "--dump") == 0)
            c.dump = argv[++i];
        else if (strcmp(a, "--pad") == 0) {
            const char *m = argv[++i];
            if (strcmp(m, "constant") == 0)
                c.pad = VT_PAD_CONSTANT;
            else if (strcmp(m, "edge") == 0)
                c.pad = VT_PAD_EDGE;
            else if (strcmp(m, "reflect") == 0)
                c.pad = VT_PAD_REFLECT;
            else
                die("--pad: expected constant, edge or reflect, got '%s'", m);
        }
        else if (strcmp(a, "--dtype") == 0) {
            if (vt_dtype_parse(argv[++i], &c.dtype) != 0)
                die("--dtype: unknown dtype '%s'", argv[i]);
        } else if (a[0] == '-')
            die("unknown option '%s' (--help)", a);
        else if (c.path == NULL)
            c.path = a;
        else
            die("more than one STORE given");
    }
    if (c.path == NULL)
        usage(2);

    vt_store *st = NULL;
    const vt_array *arr = open_array(&c, &st);
    vt_array_info info;
    if (vt_array_info_get(arr, &info) != 0)
        die("%s", vt_errmsg(st));
    if (info.ndim < 3)
        die("array '%s' has %d dimensions; need (z, y, x) or (c, z, y, x)", info.name, info.ndim);
    int nd = info.ndim;
    double ratio = info.stored_bytes ? (double)info.raw_bytes / (double)info.stored_bytes : 0;

    /* patch positions: channel 0 (and 0 on any leading axis), random z, y, x */
    uint64_t box[VT_MAX_DIMS];
    for (int d = 0; d < nd; d++)
        box[d] = d < nd - 3 ? 1 : (uint64_t)c.size;
    int64_t *given = NULL;
    if (c.positions)
        given = read_positions(c.positions, &c.patches);
    int64_t *starts = calloc((size_t)c.patches * (size_t)nd, sizeof *starts);
    double *lat = calloc((size_t)c.patches, sizeof *lat);
    double *sorted = calloc((size_t)c.patches, sizeof *sorted);
    rep_result *res = calloc((size_t)c.repeat, sizeof *res);
    if (!starts || !lat || !sorted || !res)
        die("out of memory");
    uint64_t rs = c.seed;
    for (long p = 0; p < c.patches; p++)
        for (int d = nd - 3; d < nd; d++) {
            if (given) {
                starts[p * nd + d] = given[p * 3 + (d - (nd - 3))];
                continue;
            }
            uint64_t span = info.shape[d] >= box[d] ? info.shape[d] - box[d] + 1 : 1;
            starts[p * nd + d] = (int64_t)rng_below(&rs, span);
        }
    free(given);
    int dump_fd = -1;
    if (c.dump) {
        dump_fd = open(c.dump, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (dump_fd < 0)
            die("%s: cannot create the dump: %s", c.dump, strerror(errno));
    }

    size_t out_bytes = vt_dtype_size(c.dtype == VT_DTYPE_SAME ? info.dtype : c.dtype);
    for (int d = 0; d < nd; d++)
        out_bytes *= box[d];
    void *outs[MAX_THREADS];
    for (int t = 0; t < c.threads; t++) {
        outs[t] = aligned_alloc(64, (out_bytes + 63) / 64 * 64);
        if (outs[t] == NULL)
            die("out of memory for a %zu-byte output buffer", out_bytes);
        memset(outs[t], 0, out_bytes); /* touch: count it in the baseline */
    }

    printf("store %s: array '%s' %s shape", c.path, info.name, vt_dtype_name(info.dtype));
    for (int d = 0; d < nd; d++)
        printf("%s%" PRIu64, d ? "x" : " ", info.shape[d]);
    printf(" tile");
    for (int d = 0; d < nd; d++)
        printf("%s%" PRIu32, d ? "x" : " ", info.tile[d]);
    printf(" codec %s level %d, %" PRIu64 " tiles (%" PRIu64 " shuffled, %" PRIu64 " raw, %" PRIu64
           " constant)\n",
           vt_codec_name(info.codec), info.level, info.ntiles, info.shuffled_tiles, info.raw_tiles,
           info.constant_tiles);
    printf("file %.1f MiB, raw %.1f MiB, stored tile bytes %.1f MiB, ratio %.3f\n",
           (double)vt_store_file_size(st) / 1048576.0, (double)info.raw_bytes / 1048576.0,
           (double)info.stored_bytes / 1048576.0, ratio);
    static const char *const pad_names[] = {"constant", "edge", "reflect"};
    printf("%ld patches of %ld^3 -> %s, %d thread(s), %s, %s%s, %d repeat(s), verify %d, pad %s\n",
           c.patches, c.size, vt_dtype_name(c.dtype == VT_DTYPE_SAME ? info.dtype : c.dtype),
           c.threads, c.cold ? "cold (page cache evicted before each repeat)" : "warm",
           c.positions ? "positions from " : "random positions", c.positions ? c.positions : "",
           c.repeat, c.verify, pad_names[c.pad]);

    if (!c.cold) {
        warm_file(c.path);
        printf("warm: file read once; %.1f%% of its pages resident\n", resident_pct(c.path));
    }
    long base_anon = -1;
    {
        int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
        long anon = -1, file = -1;
        if (fd >= 0) {
            read_rss(fd, &anon, &file);
            close(fd);
        }
        base_anon = anon;
        printf("baseline RssAnon %.1f MiB (output buffers %d x %.1f MiB included)\n",
               (double)anon / 1024.0, c.threads, (double)out_bytes / 1048576.0);
    }

    int cold_failed = 0;
    for (int rep = 0; rep < c.repeat; rep++) {
        double before = -1, after = -1;
        if (c.cold) {
            vt_close(st); /* mapped pages are not evicted: unmap first */
            st = NULL;
            before = resident_pct(c.path);
            evict(c.path);
            after = resident_pct(c.path);
            arr = open_array(&c, &st);
            if (after > 5.0) {
                cold_failed = 1;
                printf("note: eviction did not work: %.1f%% of the file still resident after "
                       "POSIX_FADV_DONTNEED (%.1f%% before); this repeat is not cold\n",
                       after, before);
            }
        }
        res[rep].resident_pct = c.cold ? resident_pct(c.path) : -1;
        if (c.sync) {
            char line[64];
            printf("READY %d\n", rep + 1);
            fflush(stdout);
            if (fgets(line, sizeof line, stdin) == NULL) {
                c.repeat = rep; /* the driver is done: stop after the repeats so far */
                break;
            }
        }
        reader rd[MAX_THREADS];
        memset(rd, 0, sizeof rd);
        long per = c.patches / c.threads, extra = c.patches % c.threads, first = 0;
        for (int t = 0; t < c.threads; t++) {
            rd[t].arr = arr;
            rd[t].cfg = &c;
            rd[t].nd = nd;
            rd[t].starts = starts;
            rd[t].box = box;
            rd[t].first = first;
            rd[t].count = per + (t < extra);
            rd[t].out = outs[t];
            rd[t].lat_ms = lat;
            rd[t].dump_fd = rep == 0 ? dump_fd : -1;
            rd[t].out_bytes = out_bytes;
            first += rd[t].count;
        }
        double t0 = now_s();
        for (int t = 0; t < c.threads; t++)
            if (pthread_create(&rd[t].th, NULL, reader_main, &rd[t]) != 0)
                die("cannot start reader thread");
        for (int t = 0; t < c.threads; t++)
            pthread_join(rd[t].th, NULL);
        double t1 = now_s();
        double wall = t1 - t0;
        long peak_anon = 0, peak_file = 0;
        for (int t = 0; t < c.threads; t++) {
            if (rd[t].rc)
                die("vt_read failed: %s", rd[t].msg);
            if (rd[t].peak_anon_kib > peak_anon)
                peak_anon = rd[t].peak_anon_kib;
            if (rd[t].peak_file_kib > peak_file)
                peak_file = rd[t].peak_file_kib;
        }
        memcpy(sorted, lat, (size_t)c.patches * sizeof *lat);
        qsort(sorted, (size_t)c.patches, sizeof *sorted, cmp_double);
        rep_result *r = &res[rep];
        r->pps = (double)c.patches / wall;
        r->p50 = percentile(sorted, (size_t)c.patches, 50);
        r->p99 = percentile(sorted, (size_t)c.patches, 99);
        r->peak_anon_mib = (double)peak_anon / 1024.0;
        r->peak_file_mib = (double)peak_file / 1024.0;
        printf("repeat %d: %.2f s, %.1f patches/s (%.1f MiB/s out), p50 %.2f ms, p99 %.2f ms, "
               "peak RssAnon %.1f MiB, peak RssFile %.1f MiB",
               rep + 1, wall, r->pps, r->pps * (double)out_bytes / 1048576.0, r->p50, r->p99,
               r->peak_anon_mib, r->peak_file_mib);
        if (c.cold)
            printf(", resident before/after evict %.1f%%/%.1f%%", before, after);
        printf("\n");
        printf("REP rep=%d t0=%.6f t1=%.6f patches=%ld patches_per_s=%.3f p50_ms=%.4f p99_ms=%.4f "
               "peak_anon_mib=%.2f base_anon_mib=%.2f peak_file_mib=%.2f resident_pct=%.2f\n",
               rep + 1, t0, t1, c.patches, r->pps, r->p50, r->p99, r->peak_anon_mib,
               (double)base_anon / 1024.0, r->peak_file_mib, c.cold ? after : -1.0);
        fflush(stdout);
    }

    if (c.repeat == 0) {
        printf("no repeat run\n");
        vt_close(st);
        return 0;
    }
    double v[5][1000];
    for (int rep = 0; rep < c.repeat; rep++) {
        v[0][rep] = res[rep].pps;
        v[1][rep] = res[rep].p50;
        v[2][rep] = res[rep].p99;
        v[3][rep] = res[rep].peak_anon_mib;
        v[4][rep] = res[rep].peak_file_mib;
    }
    size_t n = (size_t)c.repeat;
    double m_pps = median(v[0], n), m_p50 = median(v[1], n), m_p99 = median(v[2], n),
           m_anon = median(v[3], n), m_file = median(v[4], n);
    printf("median of %d: %.1f patches/s, p50 %.2f ms, p99 %.2f ms, peak RssAnon %.1f MiB, "
           "peak RssFile %.1f MiB, ratio %.3f\n",
           c.repeat, m_pps, m_p50, m_p99, m_anon, m_file, ratio);
    if (cold_failed)
        printf("note: at least one cold repeat was not cold (see above)\n");
    printf("RESULT threads=%d cold=%d patches_per_s=%.2f p50_ms=%.3f p99_ms=%.3f peak_anon_mib=%.1f "
           "ratio=%.4f peak_file_mib=%.1f cold_ok=%d\n",
           c.threads, c.cold, m_pps, m_p50, m_p99, m_anon, ratio, m_file, c.cold ? !cold_failed : 1);

    vt_close(st);
    if (dump_fd >= 0 && close(dump_fd) != 0)
        die("%s: %s", c.dump, strerror(errno));
    for (int t = 0; t < c.threads; t++)
        free(outs[t]);
    free(starts);
    free(lat);
    free(sorted);
    free(res);
    return 0;
}
