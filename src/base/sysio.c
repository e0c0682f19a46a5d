/* Thin wrappers over the system calls the writer and converters use, so that
 * short transfers and EINTR are handled in one place. */
#include "internal.h"

#include <errno.h>
#include <unistd.h>

/* pread or pwrite all of @p len bytes at @p off, retrying short transfers and EINTR. */
static int transfer_all(int fd, void *buf, size_t len, uint64_t off, bool write)
{
    char *p = buf;
    while (len > 0) {
        size_t chunk = len > (1u << 30) ? (1u << 30) : len;
        ssize_t n = write ? vt__pwrite(fd, p, chunk, (off_t)off) : vt__pread(fd, p, chunk, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int vt__pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    return transfer_all(fd, (void *)(uintptr_t)buf, len, off, true);
}

int vt__pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    return transfer_all(fd, buf, len, off, false);
}
