/* Text headers (NRRD, MetaImage): a bounded line reader for the header at
 * the start of a file, the token and number parsers the formats share, and
 * the path of a data file a header names. Only called: it knows no format. */
#include "text.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LINES_CHUNK (64u << 10)

bool vt__text_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

char *vt__text_trim(char *s)
{
    while (vt__text_space(*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && vt__text_space(s[n - 1]))
        s[--n] = 0;
    return s;
}

size_t vt__text_token(const char **p, const char **tok)
{
    const char *s = *p;
    while (vt__text_space(*s))
        s++;
    size_t n = 0;
    while (s[n] && !vt__text_space(s[n]))
        n++;
    *tok = s;
    *p = s + n;
    return n;
}

bool vt__text_i64(const char *t, size_t n, int64_t *v)
{
    bool neg = n > 0 && t[0] == '-';
    size_t i = neg || (n > 0 && t[0] == '+');
    if (i == n)
        return false;
    uint64_t x = 0;
    for (; i < n; i++) {
        if (t[i] < '0' || t[i] > '9')
            return false;
        if (!vt__mul_ok(x, 10, &x) || !vt__add_ok(x, (uint64_t)(t[i] - '0'), &x))
            return false;
    }
    if (x > (uint64_t)INT64_MAX)
        return false;
    *v = neg ? -(int64_t)x : (int64_t)x;
    return true;
}

bool vt__text_f64(const char *t, size_t n, double *v)
{
    char buf[64];
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, t, n);
    buf[n] = 0;
    char *end;
    double x = strtod(buf, &end);
    if (end != buf + n || !isfinite(x))
        return false;
    *v = x;
    return true;
}

int vt__lines_open(vt_lines *r, const char *path, size_t max)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    r->max = max;
    r->fd = vt__open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0); /* a FIFO must not block: refused below */
    if (r->fd < 0)
        return vt__fail_at(NULL, VT_EIO, path, "cannot open: %s", strerror(errno));
    struct stat st;
    const char *why = NULL;
    if (fstat(r->fd, &st) != 0)
        why = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        why = "not a regular file";
    if (why) {
        vt__close(r->fd);
        r->fd = -1;
        return vt__fail_at(NULL, VT_EIO, path, "cannot open: %s", why);
    }
    return 0;
}

void vt__lines_close(vt_lines *r)
{
    if (r->fd >= 0)
        vt__close(r->fd);
    r->fd = -1;
    free(r->buf);
    free(r->line);
    r->buf = NULL;
    r->line = NULL;
}

/* Read more of the file into the buffer; sets eof at its end. */
static int lines_fill(vt_lines *r)
{
    if (r->len == r->max) {
        r->eof = true;
        return 0;
    }
    if (r->cap - r->len < LINES_CHUNK / 2 && r->cap < r->max) {
        size_t ncap = r->cap ? r->cap * 2 : LINES_CHUNK;
        if (ncap > r->max)
            ncap = r->max;
        unsigned char *b = vt__realloc(r->buf, ncap);
        if (b == NULL)
            return vt__fail_at(NULL, VT_ENOMEM, r->path, "out of memory");
        r->buf = b;
        r->cap = ncap;
    }
    size_t want = r->cap - r->len;
    if (want > LINES_CHUNK)
        want = LINES_CHUNK;
    for (;;) {
        ssize_t n = read(r->fd, r->buf + r->len, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return vt__fail_at(NULL, VT_EIO, r->path, "cannot read: %s", strerror(errno));
        if (n == 0)
            r->eof = true;
        r->len += (size_t)n;
        return 0;
    }
}

int vt__lines_next(vt_lines *r, char **line)
{
    size_t scanned = r->pos; /* bytes after pos already known to hold no '\n' */
    for (;;) {
        const unsigned char *nl = r->len > scanned ? memchr(r->buf + scanned, '\n', r->len - scanned) : NULL;
        size_t end; /* of the line's text */
        size_t next;
        if (nl != NULL) {
            end = (size_t)(nl - r->buf);
            next = end + 1;
        } else if (r->len - r->pos > VT_TEXT_LINE_MAX) {
            return vt__fail_at(NULL, VT_EFORMAT, r->path, "line %u of the header is longer than %u bytes",
                               r->lineno + 1, VT_TEXT_LINE_MAX);
        } else if (!r->eof) {
            scanned = r->len;
            if (r->len == r->max && r->max > 0) {
                return vt__fail_at(NULL, VT_EFORMAT, r->path, "the header is longer than %zu bytes (no end found)",
                                   r->max);
            }
            int rc = lines_fill(r);
            if (rc)
                return rc;
            continue;
        } else if (r->pos == r->len) {
            return 0; /* end of file */
        } else {
            end = next = r->len; /* a last line without "\n" */
        }
        size_t n = end - r->pos;
        if (n > VT_TEXT_LINE_MAX)
            return vt__fail_at(NULL, VT_EFORMAT, r->path, "line %u of the header is longer than %u bytes",
                               r->lineno + 1, VT_TEXT_LINE_MAX);
        if (memchr(r->buf + r->pos, 0, n) != NULL)
            return vt__fail_at(NULL, VT_EFORMAT, r->path,
                               "line %u of the header holds a NUL byte (binary data before the header's end?)",
                               r->lineno + 1);
        if (n > 0 && r->buf[end - 1] == '\r')
            n--;
        if (n + 1 > r->line_cap) {
            char *l = vt__realloc(r->line, n + 1);
            if (l == NULL)
                return vt__fail_at(NULL, VT_ENOMEM, r->path, "out of memory");
            r->line = l;
            r->line_cap = n + 1;
        }
        memcpy(r->line, r->buf + r->pos, n);
        r->line[n] = 0;
        r->pos = next;
        r->lineno++;
        *line = r->line;
        return 1;
    }
}


char *vt__path_beside(const char *header_path, const char *name)
{
    const char *slash = strrchr(header_path, '/');
    if (name[0] == '/' || slash == NULL)
        return vt__strdup(name);
    size_t dir = (size_t)(slash - header_path) + 1, n = strlen(name);
    char *p = vt__malloc(dir + n + 1);
    if (p) {
        memcpy(p, header_path, dir);
        memcpy(p + dir, name, n + 1);
    }
    return p;
}
