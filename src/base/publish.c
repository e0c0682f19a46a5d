/* Files that appear whole or not at all.
 *
 * Data go to an unnamed O_TMPFILE in the target's folder (or, where /proc
 * cannot name it later, a hidden `.NAME.tmp.XXXXXX`). Publishing fsyncs the
 * file, links it under a hidden temporary name, closes it (a close may report
 * a lost write: it must come before the name), renames it over the target,
 * and fsyncs the folder. Discarding an unpublished file removes it. A process
 * killed at any moment leaves the target as it was, or the new file complete;
 * with O_TMPFILE it leaves nothing else, except when killed between the link
 * and the rename (a complete hidden temporary). */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A fresh hidden name beside the target, in t->tmp. */
static void temp_name(vt_tmpfile *t, char *buf, size_t len)
{
    static unsigned counter;
    const char *base = strrchr(t->path, '/');
    base = base ? base + 1 : t->path;
    unsigned r = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL) ^
                 __atomic_add_fetch(&counter, 7919u, __ATOMIC_RELAXED) * 40503u;
    snprintf(buf, len, "%s/.%s.tmp.%06x", t->dir, base, r & 0xffffffu);
}

static size_t temp_len(const vt_tmpfile *t) { return strlen(t->dir) + strlen(t->path) + 32; }

int vt__tmpfile_open(vt_tmpfile *t, const char *path, const void *handle)
{
    memset(t, 0, sizeof *t);
    t->fd = -1;
    t->path = vt__strdup(path);
    const char *slash = strrchr(path, '/');
    t->dir = slash == NULL ? vt__strdup(".")
             : slash == path ? vt__strdup("/")
                             : vt__strndup(path, (size_t)(slash - path));
    if (t->path == NULL || t->dir == NULL)
        return vt__fail_at(handle, VT_ENOMEM, path, "out of memory");
#ifdef O_TMPFILE
    /* the unnamed file is named at publishing through /proc/self/fd */
    if (access("/proc/self/fd", X_OK) == 0) {
        t->fd = vt__open(t->dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
        if (t->fd >= 0)
            return 0;
        if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL && errno != ENOENT)
            return vt__fail_at(handle, vt__errno_code(errno), path, "cannot create a file in %s: %s", t->dir,
                               strerror(errno));
    }
#endif
    size_t len = temp_len(t);
    if ((t->tmp = vt__malloc(len)) == NULL)
        return vt__fail_at(handle, VT_ENOMEM, path, "out of memory");
    for (int attempt = 0; attempt < 100; attempt++) {
        temp_name(t, t->tmp, len);
        t->fd = vt__open(t->tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
        if (t->fd >= 0 || errno != EEXIST)
            break;
    }
    if (t->fd >= 0)
        return 0;
    int err = errno;
    free(t->tmp);
    t->tmp = NULL;
    return vt__fail_at(handle, vt__errno_code(err), path, "cannot create a temporary file in %s: %s", t->dir,
                       strerror(err));
}

int vt__tmpfile_publish(vt_tmpfile *t, const void *handle)
{
    if (vt__fsync(t->fd) != 0)
        return vt__fail_at(handle, vt__errno_code(errno), t->path, "fsync failed: %s", strerror(errno));
    if (t->tmp == NULL) { /* O_TMPFILE: link under a hidden name first */
        size_t len = temp_len(t);
        if ((t->tmp = vt__malloc(len)) == NULL)
            return vt__fail_at(handle, VT_ENOMEM, t->path, "out of memory");
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", t->fd);
        int rc = -1;
        for (int attempt = 0; attempt < 100 && rc != 0; attempt++) {
            temp_name(t, t->tmp, len);
            rc = vt__linkat(AT_FDCWD, proc, AT_FDCWD, t->tmp, AT_SYMLINK_FOLLOW);
            if (rc != 0 && errno != EEXIST)
                break;
        }
        if (rc != 0) {
            int err = errno;
            free(t->tmp);
            t->tmp = NULL;
            return vt__fail_at(handle, vt__errno_code(err), t->path, "cannot name the finished file in %s: %s",
                               t->dir, strerror(err));
        }
    }
    int fd = t->fd;
    t->fd = -1;
    if (vt__close(fd) != 0)
        return vt__fail_at(handle, vt__errno_code(errno), t->path, "cannot close %s: %s", t->tmp, strerror(errno));
    if (vt__rename(t->tmp, t->path) != 0)
        return vt__fail_at(handle, vt__errno_code(errno), t->path, "cannot rename %s over it: %s", t->tmp,
                           strerror(errno));
    free(t->tmp);
    t->tmp = NULL;
    t->published = true; /* nothing to undo from here */
    int dfd = vt__open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (dfd < 0 || vt__fsync(dfd) != 0) {
        int err = errno;
        if (dfd >= 0)
            vt__close(dfd);
        return vt__fail_at(handle, vt__errno_code(err), t->path,
                           "the file is published and complete, but syncing directory %s failed (%s): "
                           "a crash now could lose the new name",
                           t->dir, strerror(err));
    }
    vt__close(dfd);
    return 0;
}

void vt__tmpfile_discard(vt_tmpfile *t)
{
    if (t->fd >= 0)
        close(t->fd);
    if (t->tmp && !t->published)
        unlink(t->tmp);
    free(t->tmp);
    free(t->dir);
    free(t->path);
    memset(t, 0, sizeof *t);
    t->fd = -1;
}
