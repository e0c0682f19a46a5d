/* Error codes, their static texts, and the per-thread detail messages.
 *
 * There is no global error state: each thread remembers the message of its
 * own last failure and the handle it concerned, so threads sharing a store
 * never see each other's messages, and a forked child inherits nothing that a
 * lock could leave held. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static _Thread_local struct {
    const void *handle;
    char msg[1024];
} last_failure;

int vt__vfail(const void *handle, int code, const char *fmt, va_list ap)
{
    last_failure.handle = handle;
    vsnprintf(last_failure.msg, sizeof last_failure.msg, fmt, ap);
    return code;
}

int vt__fail(const void *handle, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vt__vfail(handle, code, fmt, ap);
    va_end(ap);
    return code;
}

int vt__vfail_at(const void *handle, int code, const char *path, const char *fmt, va_list ap)
{
    char msg[sizeof last_failure.msg]; /* the arguments may point into last_failure.msg */
    vsnprintf(msg, sizeof msg, fmt, ap);
    return vt__fail(handle, code, "%s: %s", path ? path : "?", msg);
}

int vt__fail_at(const void *handle, int code, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vt__vfail_at(handle, code, path, fmt, ap);
    va_end(ap);
    return rc;
}

int vt__why(char *why, size_t whylen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return code;
}

const char *vt__errmsg(const void *handle)
{
    if (handle == NULL || last_failure.handle == handle)
        return last_failure.msg;
    return "";
}

int vt__errno_code(int err)
{
    switch (err) {
    case ENOMEM: return VT_ENOMEM;
    case ENOSPC:
    case EDQUOT: return VT_ENOSPC;
    case EINVAL: return VT_EINVAL;
    default: return VT_EIO;
    }
}

const char *vt_strerror(int code)
{
    switch (code) {
    case VT_OK: return "success";
    case VT_EIO: return "input/output error";
    case VT_ECORRUPT: return "store data corrupt (checksum or decode failure)";
    case VT_EFORMAT: return "not a valid store or input file";
    case VT_EVERSION: return "unsupported format version";
    case VT_ERANGE: return "value out of range";
    case VT_ENOMEM: return "out of memory";
    case VT_EINVAL: return "invalid argument";
    case VT_ENOTFOUND: return "not found";
    case VT_ENOSPC: return "no space left on device";
    case VT_EUNSUPPORTED: return "unsupported input";
    case VT_ESTATE: return "operation not allowed in this state";
    default: return "unknown error";
    }
}
