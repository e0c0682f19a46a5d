/* Internal declarations shared by the library's modules. Not installed. */
#ifndef VT_INTERNAL_H
#define VT_INTERNAL_H

#include "voxtile.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "voxtile supports little-endian hosts only"
#endif

#define VT_INTERNAL __attribute__((visibility("hidden")))

/* ---- errors (error.c) --------------------------------------------------- */

/* The error idiom, one pair for the whole library:
 *
 *   return vt__fail_at(handle, VT_EFORMAT, path, "dim[%d] = %lld: ...", i, v);
 *
 * records "PATH: message" as the calling thread's last failure (attributed
 * to @p handle: a store, a writer, or NULL) and returns the code. Every
 * failure that concerns a file names it this way; vt__fail is for the few
 * that concern no file (a NULL argument, a message passed on as it is).
 * A decoder with no file at hand (format.c, labels.c, the NIfTI header
 * parser) explains itself into its caller's buffer instead:
 *
 *   return vt__why(why, whylen, VT_EFORMAT, "header size %u", n);
 *
 * and its caller reports it: vt__fail_at(NULL, rc, path, "%s", why). */
VT_INTERNAL int vt__fail_at(const void *handle, int code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
VT_INTERNAL int vt__vfail_at(const void *handle, int code, const char *path, const char *fmt,
                             va_list ap);
VT_INTERNAL int vt__why(char *why, size_t whylen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* As vt__fail_at, naming no file. */
VT_INTERNAL int vt__fail(const void *handle, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
VT_INTERNAL int vt__vfail(const void *handle, int code, const char *fmt, va_list ap);
/* Message recorded for @p handle in this thread ("" if the last failure was
 * for another handle); handle NULL: the last failure of any handle. */
VT_INTERNAL const char *vt__errmsg(const void *handle);
/* Map an errno value to a VT_E* code. */
VT_INTERNAL int vt__errno_code(int err);

/* ---- checked arithmetic ------------------------------------------------- */

static inline bool vt__mul_ok(uint64_t a, uint64_t b, uint64_t *r)
{
    return !__builtin_mul_overflow(a, b, r);
}
static inline bool vt__add_ok(uint64_t a, uint64_t b, uint64_t *r)
{
    return !__builtin_add_overflow(a, b, r);
}
static inline uint64_t vt__ceil_div(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* ---- file names ------------------------------------------------------- */

/* Whether @p s ends with @p suffix (file name endings: ".nii.gz", ".npy" ...). */
static inline bool vt__ends_with(const char *s, const char *suffix)
{
    size_t n = __builtin_strlen(s), m = __builtin_strlen(suffix);
    return n >= m && __builtin_memcmp(s + n - m, suffix, m) == 0;
}

/* ---- little-endian field access ----------------------------------------- */

static inline uint16_t vt__ld16(const void *p) { uint16_t v; __builtin_memcpy(&v, p, 2); return v; }
static inline uint32_t vt__ld32(const void *p) { uint32_t v; __builtin_memcpy(&v, p, 4); return v; }
static inline uint64_t vt__ld64(const void *p) { uint64_t v; __builtin_memcpy(&v, p, 8); return v; }
static inline double vt__ldf64(const void *p) { double v; __builtin_memcpy(&v, p, 8); return v; }
static inline void vt__st16(void *p, uint16_t v) { __builtin_memcpy(p, &v, 2); }
static inline void vt__st32(void *p, uint32_t v) { __builtin_memcpy(p, &v, 4); }
static inline void vt__st64(void *p, uint64_t v) { __builtin_memcpy(p, &v, 8); }
static inline void vt__stf64(void *p, double v) { __builtin_memcpy(p, &v, 8); }

/* ---- dtypes (dtype.c) --------------------------------------------------- */

VT_INTERNAL bool vt__dtype_valid(int dtype);
VT_INTERNAL bool vt__dtype_is_float(vt_dtype dtype);
/* Element at @p p (any alignment) as double (exact for every dtype). */
VT_INTERNAL double vt__load_f64(vt_dtype dtype, const void *p);
/* vt_read_opts' transform of one value: clip to [lo, hi], then x * scale +
 * offset, in double, no fused multiply-add (vt_read, vt_sample). */
static inline double vt__xform(double x, double lo, double hi, double scale, double offset)
{
    if (x < lo)
        x = lo;
    if (x > hi)
        x = hi;
    return x * scale + offset;
}
/* @p n elements of U8, I8, U16 or I16 (any alignment) as float32: exact. */
VT_INTERNAL void vt__small_ints_to_f32(vt_dtype dtype, const unsigned char *src, size_t n, float *dst);
/* Element at @p p of an integer dtype up to 32 bits, exactly. */
static inline int64_t vt__load_int(vt_dtype dtype, const unsigned char *p)
{
    switch (dtype) {
    case VT_U8: return *p;
    case VT_I8: return (int8_t)*p;
    case VT_U16: return vt__ld16(p);
    case VT_I16: return (int16_t)vt__ld16(p);
    case VT_U32: return vt__ld32(p);
    default: return (int32_t)vt__ld32(p);
    }
}
/* Store double @p v into one element at @p p with the library's conversion
 * rules (round-to-nearest-even for floats, truncate + saturate for integers,
 * NaN -> 0). */
VT_INTERNAL void vt__store_f64(vt_dtype dtype, void *p, double v);
/* Smallest and largest finite value of a dtype. */
VT_INTERNAL double vt__dtype_min(vt_dtype dtype);
VT_INTERNAL double vt__dtype_max(vt_dtype dtype);
/* min and max of @p n elements at @p p, NaN ignored; both NaN when all are NaN. */
VT_INTERNAL void vt__minmax(vt_dtype dtype, const void *p, size_t n, double *min, double *max);
/* True when @p v converts to @p dtype and back unchanged (NaN counts as exact for floats). */
VT_INTERNAL bool vt__representable(vt_dtype dtype, double v);
/* Narrow @p n 64-bit integers to the store's widest integers, @p dtype VT_I32
 * (from int64) or VT_U32 (from uint64): element i at src + i * @p stride,
 * byte-swapped first when @p swap, to dst + 4 * i (not overlapping src).
 * VT_ERANGE naming @p path and the first value that does not fit. */
VT_INTERNAL int vt__narrow64(vt_dtype dtype, const unsigned char *src, size_t n, size_t stride, bool swap,
                             unsigned char *dst, const char *path);

/* ---- writer (writer.c) ------------------------------------------------- */

/* Edge of the default tile on each of the last three axes. */
#define VT_DEFAULT_TILE_EDGE 16
/* Default tile shape for @p ndim dimensions: VT_DEFAULT_TILE_EDGE on the last
 * three axes and 1 before them; 1-d 32768, 2-d 256 x 256. */
VT_INTERNAL void vt__default_tile(int ndim, uint32_t *tile);


/* ---- scratch buffers (grow.c) ------------------------------------------ */

/* Grow a malloc'd buffer to at least @p need bytes (at least 4 KiB; the
 * contents are not kept). 0, or VT_ENOMEM with the buffer unchanged. */
VT_INTERNAL int vt__grow(unsigned char **p, size_t *cap, size_t need);

/* Make room for item @p n of a malloc'd array of @p item -byte items (*@p arr,
 * *@p cap of them): when full, double the capacity (@p first items the first
 * time), keeping the contents; the new items are not initialised. 0, or
 * VT_ENOMEM with the array unchanged. */
VT_INTERNAL int vt__grow_items(void *arr, size_t *cap, size_t n, size_t item, size_t first);

/* ---- fault injection (fault.c) ------------------------------------------ */

#include <sys/types.h>

/* Kinds of calls a test can make fail. */
#define VT_FAULT_MALLOC 0x01u
#define VT_FAULT_OPEN 0x02u
#define VT_FAULT_WRITE 0x04u
#define VT_FAULT_FSYNC 0x08u
#define VT_FAULT_RENAME 0x10u
#define VT_FAULT_LINK 0x20u
#define VT_FAULT_CLOSE 0x40u
#define VT_FAULT_MMAP 0x80u
#define VT_FAULT_READ 0x100u
#define VT_FAULT_ALL 0x1ffu

/* Make the @p nth call (1-based) of the @p kinds fail with @p err (ENOMEM for
 * allocations), and every later one too when @p persistent. */
VT_INTERNAL void vt__fault_arm(unsigned kinds, long nth, bool persistent, int err);
VT_INTERNAL void vt__fault_disarm(void);
/* Calls of the armed kinds, and failures injected, since the last arm. */
VT_INTERNAL long vt__fault_calls(void);
VT_INTERNAL long vt__fault_failures(void);

/* The wrappers every library file uses instead of the functions they wrap. */
VT_INTERNAL void *vt__malloc(size_t n);
VT_INTERNAL void *vt__calloc(size_t n, size_t m);
VT_INTERNAL void *vt__realloc(void *p, size_t n);
VT_INTERNAL char *vt__strdup(const char *s);
VT_INTERNAL char *vt__strndup(const char *s, size_t n);
VT_INTERNAL int vt__open(const char *path, int flags, mode_t mode);
VT_INTERNAL ssize_t vt__pwrite(int fd, const void *buf, size_t n, off_t off);
VT_INTERNAL ssize_t vt__pread(int fd, void *buf, size_t n, off_t off);
VT_INTERNAL int vt__fsync(int fd);
VT_INTERNAL int vt__rename(const char *from, const char *to);
VT_INTERNAL int vt__linkat(int dfd, const char *from, int nfd, const char *to, int flags);
VT_INTERNAL int vt__close(int fd);
VT_INTERNAL void *vt__mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

/* ---- files published whole (publish.c) ---------------------------------- */

/* A file written to a temporary in the target's folder and renamed over the
 * target when complete (see publish.c for the steps and crash behaviour). */
typedef struct vt_tmpfile {
    char *path; /* the target */
    char *dir;  /* its folder */
    char *tmp;  /* the temporary's name while it has one */
    int fd;     /* write here (pwrite or a dup'd descriptor) */
    bool published;
} vt_tmpfile;

/* Create the temporary for @p path; errors are reported against @p handle. */
VT_INTERNAL int vt__tmpfile_open(vt_tmpfile *t, const char *path, const void *handle);
/* fsync, name, close, rename over the target, fsync the folder. On failure
 * nothing is published unless t->published is set (only the folder's fsync
 * failed: the file is complete in place). */
VT_INTERNAL int vt__tmpfile_publish(vt_tmpfile *t, const void *handle);
/* Close and, unless published, remove; frees everything (safe twice). */
VT_INTERNAL void vt__tmpfile_discard(vt_tmpfile *t);

/* ---- system calls (sysio.c) --------------------------------------------- */

/* Write all of @p len bytes at @p off (retrying short writes and EINTR). 0 or -errno. */
VT_INTERNAL int vt__pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/* Read all of @p len bytes at @p off. 0, -errno, or -EIO at end of file. */
VT_INTERNAL int vt__pread_all(int fd, void *buf, size_t len, uint64_t off);
/* The whole of regular file @p path, NUL-terminated, in *out (malloc'd) and
 * its length in *len. VT_EIO (cannot open, stat or read; not a regular
 * file), VT_EFORMAT (over @p max_bytes), VT_ENOMEM; the error names the file. */
VT_INTERNAL int vt__read_text(const char *path, uint64_t max_bytes, char **out, size_t *len);

#endif /* VT_INTERNAL_H */
