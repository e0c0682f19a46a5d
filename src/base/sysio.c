/* Thin wrappers over the system calls the writer and converters use, so that
 * short transfers and EINTR are handled in one place. */
#include "internal.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

int vt__read_text(const char *path, uint64_t max_bytes, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int fd = vt__open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return vt__fail_at(NULL, vt__errno_code(errno), path, "cannot read: %s", strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = vt__fail_at(NULL, VT_EIO, path, "cannot stat: %s", strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = vt__fail_at(NULL, VT_EIO, path, "not a regular file");
    else if ((uint64_t)st.st_size > max_bytes)
        rc = vt__fail_at(NULL, VT_EFORMAT, path, "%llu bytes: larger than such a file can be (%llu)",
                         (unsigned long long)st.st_size, (unsigned long long)max_bytes);
    char *buf = rc ? NULL : vt__malloc((size_t)st.st_size + 1);
    if (rc == 0 && buf == NULL)
        rc = vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
    int e = rc ? 0 : vt__pread_all(fd, buf, (size_t)st.st_size, 0);
    if (e)
        rc = vt__fail_at(NULL, VT_EIO, path, "cannot read: %s", strerror(-e));
    vt__close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[st.st_size] = 0;
    *out = buf;
    *len = (size_t)st.st_size;
    return 0;
}
