/* Fault injection: the library's allocations and the system calls it makes
 * to open, read, write, sync, link, rename, close and map files go through
 * these wrappers. A test arms a fault (vt__fault_arm): the Nth call of the
 * chosen kinds fails with the chosen errno, once or from then on, and loops
 * N = 1, 2, ... until an operation succeeds -- the way SQLite tests its I/O
 * error and out-of-memory handling. Unarmed, a wrapper costs one relaxed
 * atomic load. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static atomic_uint armed_kinds;  /* 0: off */
static atomic_long countdown;    /* calls of armed kinds before the failure */
static atomic_long calls;        /* calls of armed kinds since armed */
static atomic_long failures;     /* failures injected since armed */
static atomic_bool persistent;
static atomic_int fail_errno;

void vt__fault_arm(unsigned kinds, long nth, bool persist, int err)
{
    atomic_store(&countdown, nth);
    atomic_store(&calls, 0);
    atomic_store(&failures, 0);
    atomic_store(&persistent, persist);
    atomic_store(&fail_errno, err);
    atomic_store(&armed_kinds, kinds);
}

void vt__fault_disarm(void) { atomic_store(&armed_kinds, 0u); }

long vt__fault_calls(void) { return atomic_load(&calls); }

long vt__fault_failures(void) { return atomic_load(&failures); }

/* Does this call of @p kind fail? Sets errno when it does. */
static bool hit(unsigned kind)
{
    if (__builtin_expect((atomic_load_explicit(&armed_kinds, memory_order_relaxed) & kind) == 0, 1))
        return false;
    atomic_fetch_add(&calls, 1);
    long left = atomic_fetch_sub(&countdown, 1) - 1;
    if (left == 0 || (left < 0 && atomic_load(&persistent))) {
        atomic_fetch_add(&failures, 1);
        errno = kind == VT_FAULT_MALLOC ? ENOMEM : atomic_load(&fail_errno);
        return true;
    }
    return false;
}

void *vt__malloc(size_t n) { return hit(VT_FAULT_MALLOC) ? NULL : malloc(n); }

void *vt__calloc(size_t n, size_t m) { return hit(VT_FAULT_MALLOC) ? NULL : calloc(n, m); }

void *vt__realloc(void *p, size_t n) { return hit(VT_FAULT_MALLOC) ? NULL : realloc(p, n); }

char *vt__strdup(const char *s) { return hit(VT_FAULT_MALLOC) ? NULL : strdup(s); }

char *vt__strndup(const char *s, size_t n) { return hit(VT_FAULT_MALLOC) ? NULL : strndup(s, n); }

int vt__open(const char *path, int flags, mode_t mode)
{
    return hit(VT_FAULT_OPEN) ? -1 : open(path, flags, mode);
}

ssize_t vt__pwrite(int fd, const void *buf, size_t n, off_t off)
{
    return hit(VT_FAULT_WRITE) ? -1 : pwrite(fd, buf, n, off);
}

ssize_t vt__pread(int fd, void *buf, size_t n, off_t off)
{
    return hit(VT_FAULT_READ) ? -1 : pread(fd, buf, n, off);
}

int vt__fsync(int fd) { return hit(VT_FAULT_FSYNC) ? -1 : fsync(fd); }

int vt__rename(const char *from, const char *to) { return hit(VT_FAULT_RENAME) ? -1 : rename(from, to); }

int vt__linkat(int dfd, const char *from, int nfd, const char *to, int flags)
{
    return hit(VT_FAULT_LINK) ? -1 : linkat(dfd, from, nfd, to, flags);
}

int vt__close(int fd)
{
    if (hit(VT_FAULT_CLOSE)) { /* the descriptor is gone either way, as with a real failing close */
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return close(fd);
}

void *vt__mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return hit(VT_FAULT_MMAP) ? MAP_FAILED : mmap(addr, len, prot, flags, fd, off);
}
