/* Helpers shared by the fuzz harnesses (tests/fuzz/fuzz_*.c): a reader of
 * the fuzz input as a stream of numbers, a per-process temporary folder
 * (removed at exit), file helpers, re-computing the checksums of a store
 * image, and the slab walk over an image source.
 *
 * Every harness defines LLVMFuzzerTestOneInput. It is linked either with
 * libFuzzer (meson option -Dlibfuzzer=true) or with standalone.c, which
 * replays corpus files (the 'fuzz-regress' test suite). Harnesses abort()
 * when the library breaks a documented promise (FZ_CHECK), so both drivers
 * report it as a crash. */
#ifndef VT_FUZZ_COMMON_H
#define VT_FUZZ_COMMON_H

#include "voxtile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* double NaN and infinity (math.h gives float ones) */
#define FZ_NAN __builtin_nan("")
#define FZ_INF __builtin_inf()

/* A broken promise of the library: print what and where, then abort so that
 * libFuzzer (or the replay driver) reports the input. */
#define FZ_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);              \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* ---- the input as a stream of numbers ----------------------------------- */

typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in;

static inline uint8_t fz_u8(fz_in *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

/* @p nbytes little-endian bytes (missing bytes read as 0). */
static inline uint64_t fz_uint(fz_in *in, int nbytes)
{
    uint64_t v = 0;
    for (int i = 0; i < nbytes; i++)
        v |= (uint64_t)fz_u8(in) << (8 * i);
    return v;
}

/* Uniform-ish integer in [lo, hi] (hi - lo < 2^32). */
static inline int64_t fz_range(fz_in *in, int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)(hi - lo) + 1;
    uint64_t v = span <= 256 ? fz_u8(in) : span <= 65536 ? fz_uint(in, 2) : fz_uint(in, 4);
    return lo + (int64_t)(v % span);
}

/* A double: mostly interesting values, sometimes any 8 bytes. */
static inline double fz_f64(fz_in *in)
{
    static const double table[] = {0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 100.0, -1000.0, 255.0, 256.0, 65504.0,
                                   65520.0, 1e300, -1e300, 5e-324, 1e-40, 3.4028234663852886e38,
                                   2147483647.0, -2147483648.0, 4294967295.0, 4294967296.0, 1e19, -1e19,
                                   0.1, 127.5, -128.5};
    uint8_t sel = fz_u8(in);
    if (sel < 2 * sizeof table / sizeof table[0])
        return table[sel / 2];
    if (sel < 240)
        return (double)(int8_t)fz_u8(in) * 0.25;
    if (sel < 248) {
        uint64_t b = fz_uint(in, 8);
        double d;
        memcpy(&d, &b, 8);
        return d;
    }
    return sel & 1 ? FZ_NAN : (sel & 2 ? FZ_INF : -FZ_INF);
}

/* splitmix64, for decisions the harness draws from a seed taken from the input. */
static inline uint64_t fz_rng(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* ---- temporary files ------------------------------------------------------ */

static char fz_dir_path[512];

static void fz_dir_remove(void)
{
    if (fz_dir_path[0] == 0)
        return;
    DIR *d = opendir(fz_dir_path);
    if (d) {
        struct dirent *e;
        char p[1024];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", fz_dir_path, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(fz_dir_path);
    fz_dir_path[0] = 0;
}

/* Folders vtfuzz-PID-* under @p base of processes that no longer run (a
 * crashed or killed harness does not run its atexit handler). */
static void fz_dir_sweep(const char *base)
{
    DIR *d = opendir(base);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long pid;
        char rest[64];
        if (sscanf(e->d_name, "vtfuzz-%ld-%63s", &pid, rest) != 2 || pid <= 0 ||
            kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        snprintf(fz_dir_path, sizeof fz_dir_path, "%s/%s", base, e->d_name);
        fz_dir_remove();
    }
    closedir(d);
}

/* This process's temporary folder: $VT_FUZZ_TMPDIR, else /dev/shm (tmpfs:
 * fsync costs nothing there), else $TMPDIR or /tmp. Removed at exit, or by
 * the next harness process if this one dies first. */
static inline const char *fz_dir(void)
{
    if (fz_dir_path[0])
        return fz_dir_path;
    const char *base = getenv("VT_FUZZ_TMPDIR");
    if (base == NULL || base[0] == 0)
        base = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    if (base == NULL || base[0] == 0)
        base = "/tmp";
    fz_dir_sweep(base);
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/vtfuzz-%ld-XXXXXX", base, (long)getpid());
    if (mkdtemp(tmpl) == NULL) {
        fprintf(stderr, "fuzz: cannot create a temporary folder under %s: %s\n", base, strerror(errno));
        abort();
    }
    snprintf(fz_dir_path, sizeof fz_dir_path, "%s", tmpl);
    atexit(fz_dir_remove);
    return fz_dir_path;
}

/* Path of @p name in the temporary folder, in a static buffer per slot. */
static inline const char *fz_path(int slot, const char *name)
{
    static char buf[8][1024];
    snprintf(buf[slot], sizeof buf[slot], "%s/%s", fz_dir(), name);
    return buf[slot];
}

static inline int fz_write_file(const char *path, const void *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    const unsigned char *p = data;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            close(fd);
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return close(fd);
}

/* fz_write_file, for the harness's own files: failing to write one is a
 * broken test machine, reported like a broken promise. */
static inline void fz_put_file(const char *path, const void *data, size_t n)
{
    FZ_CHECK(fz_write_file(path, data, n) == 0, "cannot write %s", path);
}

/* First occurrence of @p needle (n bytes) in @p hay, or NULL. */
static inline const uint8_t *fz_find(const uint8_t *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    if (n == 0 || len < n)
        return NULL;
    for (size_t i = 0; i + n <= len; i++)
        if (hay[i] == (uint8_t)needle[0] && memcmp(hay + i, needle, n) == 0)
            return hay + i;
    return NULL;
}

/* ---- stores --------------------------------------------------------------- */

static inline uint64_t fz_ld64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint32_t fz_ld32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline void fz_st64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static inline bool fz_region(uint64_t off, uint64_t len, size_t size)
{
    return off <= size && len <= size - off;
}

/* Re-compute, best effort, every checksum of a store image (docs/format.md)
 * wherever its fields point inside the image: tiles, tile indexes, label
 * indexes, directory, metadata, header -- innermost first. A mutated file
 * then gets past the checksums in any build (with or without -Dfuzzing), and
 * a reproducer behaves the same in the fuzzing build and in the normal build
 * that replays the corpus. */
static inline void fz_reseal(uint8_t *f, size_t size)
{
    if (size < 4096)
        return;
    uint64_t dir_off = fz_ld64(f + 32), dir_size = fz_ld64(f + 40);
    uint64_t meta_off = fz_ld64(f + 56), meta_size = fz_ld64(f + 64);
    uint32_t narrays = fz_ld32(f + 80);
    if (fz_region(dir_off, dir_size, size)) {
        uint64_t n = dir_size / 256;
        if (n > narrays)
            n = narrays;
        for (uint64_t i = 0; i < n && i < 4096; i++) {
            uint8_t *e = f + dir_off + 256 * i;
            uint64_t idx_off = fz_ld64(e + 160), idx_size = fz_ld64(e + 168);
            uint64_t lab_off = fz_ld64(e + 184), lab_size = fz_ld64(e + 192);
            if (fz_region(idx_off, idx_size, size)) {
                uint64_t nt = idx_size / 40;
                for (uint64_t t = 0; t < nt && t < (1u << 16); t++) {
                    uint8_t *te = f + idx_off + 40 * t;
                    uint64_t off = fz_ld64(te);
                    uint32_t sz = fz_ld32(te + 8), flags = fz_ld32(te + 12);
                    if (flags & VT_TILE_CONSTANT)
                        fz_st64(te + 16, XXH3_64bits(te, 8));
                    else if (fz_region(off, sz, size))
                        fz_st64(te + 16, XXH3_64bits(f + off, sz));
                }
                fz_st64(e + 176, XXH3_64bits(f + idx_off, (size_t)idx_size));
            }
            if (lab_size && fz_region(lab_off, lab_size, size))
                fz_st64(e + 200, XXH3_64bits(f + lab_off, (size_t)lab_size));
        }
        fz_st64(f + 48, XXH3_64bits(f + dir_off, (size_t)dir_size));
    }
    if (fz_region(meta_off, meta_size, size))
        fz_st64(f + 72, XXH3_64bits(f + meta_off, (size_t)meta_size));
    fz_st64(f + 4088, XXH3_64bits(f, 4088));
}

/* Error codes the library documents. */
static inline bool fz_known_code(int rc) { return rc <= VT_OK && rc >= VT_ESTATE; }

/* ---- a store file from the input --------------------------------------- */

/* The path of the one store a harness rewrites for each input: a memfd opened
 * by its /proc/self/fd path (no disk, nothing to clean up), else a file in
 * the harness's folder. */
static inline const char *fz_store_path(void)
{
    static char path[1100];
    static int fd = -1;
    if (fd >= 0)
        return path;
#ifdef MFD_CLOEXEC
    fd = memfd_create("vtfuzz-store", MFD_CLOEXEC);
    if (fd >= 0) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        if (access(path, R_OK) == 0)
            return path;
        close(fd);
        fd = -1;
    }
#endif
    snprintf(path, sizeof path, "%s", fz_path(0, "store.vxt"));
    fd = 0; /* a plain file, rewritten each time */
    return path;
}

/* The input's bytes as the store file. */
static inline void fz_put_store(const uint8_t *data, size_t size)
{
    const char *path = fz_store_path();
    if (strncmp(path, "/proc/self/fd/", 14) == 0) {
        int fd = atoi(path + 14);
        FZ_CHECK(ftruncate(fd, 0) == 0 && ftruncate(fd, (off_t)size) == 0, "ftruncate: %s", strerror(errno));
        size_t done = 0;
        while (done < size) {
            ssize_t k = pwrite(fd, data + done, size - done, (off_t)done);
            FZ_CHECK(k > 0, "pwrite: %s", strerror(errno));
            done += (size_t)k;
        }
    } else {
        fz_put_file(path, data, size);
    }
}

/* A copy of the input's bytes with its checksums recomputed (fz_reseal) as
 * the store file, and the copy's XXH3 in *hash (NULL: not wanted); false
 * when there is no memory for the copy. */
static inline bool fz_put_resealed(const uint8_t *data, size_t size, uint64_t *hash)
{
    uint8_t *f = malloc(size ? size : 1);
    if (f == NULL)
        return false;
    memcpy(f, data, size);
    fz_reseal(f, size);
    fz_put_store(f, size);
    if (hash)
        *hash = XXH3_64bits(f, size);
    free(f);
    return true;
}

#endif
