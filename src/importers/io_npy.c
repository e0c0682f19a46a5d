/* .npy reader: header parsing (a Python dict literal, parsed strictly),
 * positioned reads of the data in host byte order, and the image source over
 * it (3-d and 4-d arrays, C order read by slabs, Fortran order gathered run
 * by run). */
#include "io_npy.h"

#include "source.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER (1u << 20)

typedef struct lex {
    const char *p, *end;
} lex;

static void skip_ws(lex *l)
{
    while (l->p < l->end && (*l->p == ' ' || *l->p == '\t' || *l->p == '\n' || *l->p == '\r'))
        l->p++;
}

static bool eat(lex *l, char c)
{
    skip_ws(l);
    if (l->p < l->end && *l->p == c) {
        l->p++;
        return true;
    }
    return false;
}

/* A quoted string into @p out (at most cap-1 bytes). */
static bool string(lex *l, char *out, size_t cap)
{
    skip_ws(l);
    if (l->p >= l->end || (*l->p != '\'' && *l->p != '"'))
        return false;
    char q = *l->p++;
    size_t n = 0;
    while (l->p < l->end && *l->p != q) {
        if (n + 1 >= cap)
            return false;
        out[n++] = *l->p++;
    }
    if (l->p >= l->end)
        return false;
    l->p++;
    out[n] = 0;
    return true;
}

static bool word(lex *l, const char *w)
{
    skip_ws(l);
    size_t n = strlen(w);
    if ((size_t)(l->end - l->p) >= n && memcmp(l->p, w, n) == 0) {
        l->p += n;
        return true;
    }
    return false;
}

static bool integer(lex *l, uint64_t *v)
{
    skip_ws(l);
    if (l->p >= l->end || *l->p < '0' || *l->p > '9')
        return false;
    uint64_t x = 0;
    while (l->p < l->end && *l->p >= '0' && *l->p <= '9') {
        if (x > (UINT64_MAX - 9) / 10)
            return false;
        x = x * 10 + (uint64_t)(*l->p++ - '0');
    }
    if (l->p < l->end && *l->p == 'L') /* Python 2 long */
        l->p++;
    *v = x;
    return true;
}

static int descr_dtype(const char *d, vt_npy *n)
{
    char order = d[0];
    if (order != '<' && order != '>' && order != '|' && order != '=')
        return -1;
    const char *t = d + 1;
    static const struct {
        const char *code;
        vt_dtype dt;
        size_t file_bytes;
    } map[] = {{"u1", VT_U8, 1}, {"b1", VT_U8, 1},  {"i1", VT_I8, 1},  {"u2", VT_U16, 2},
               {"i2", VT_I16, 2}, {"u4", VT_U32, 4}, {"i4", VT_I32, 4}, {"f2", VT_F16, 2},
               {"f4", VT_F32, 4}, {"f8", VT_F64, 8}, {"i8", VT_I32, 8}, {"u8", VT_U32, 8}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(t, map[i].code) == 0) {
            n->dtype = map[i].dt;
            n->es = vt_dtype_size(map[i].dt);
            n->fes = map[i].file_bytes;
            n->swap = order == '>' && n->fes > 1;
            return 0;
        }
    return -1;
}

int vt__npy_parse(const char *path, const unsigned char *buf, size_t len, uint64_t file_size,
                  vt_npy *n)
{
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0)
        return vt__fail_at(NULL, VT_EFORMAT, path, "not a .npy file (bad magic)");
    unsigned major = buf[6];
    uint64_t hlen, hstart;
    if (major == 1) {
        hlen = vt__ld16(buf + 8);
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12)
            return vt__fail_at(NULL, VT_EFORMAT, path, ".npy header truncated");
        hlen = vt__ld32(buf + 8);
        hstart = 12;
    } else
        return vt__fail_at(NULL, VT_EUNSUPPORTED, path, ".npy format version %u.%u is not supported", major,
                           buf[7]);
    if (hlen > MAX_HEADER || hstart + hlen > len)
        return vt__fail_at(NULL, VT_EFORMAT, path, ".npy header of %llu bytes runs past the file",
                           (unsigned long long)hlen);
    lex l = {(const char *)buf + hstart, (const char *)buf + hstart + hlen};
    char key[64], descr[64] = "";
    bool have_descr = false, have_order = false, have_shape = false;
    n->ndim = 0;
    n->fortran = false;
    if (!eat(&l, '{'))
        goto bad;
    while (!eat(&l, '}')) {
        if (!string(&l, key, sizeof key) || !eat(&l, ':'))
            goto bad;
        if (strcmp(key, "descr") == 0) {
            if (!string(&l, descr, sizeof descr)) {
                skip_ws(&l);
                if (l.p < l.end && (*l.p == '[' || *l.p == '('))
                    return vt__fail_at(NULL, VT_EUNSUPPORTED, path,
                                       "structured .npy dtypes are not supported");
                goto bad;
            }
            have_descr = true;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (word(&l, "True"))
                n->fortran = true;
            else if (word(&l, "False"))
                n->fortran = false;
            else
                goto bad;
            have_order = true;
        } else if (strcmp(key, "shape") == 0) {
            if (!eat(&l, '('))
                goto bad;
            while (!eat(&l, ')')) {
                uint64_t v;
                if (n->ndim >= VT_NPY_MAX_DIMS || !integer(&l, &v))
                    goto bad;
                n->shape[n->ndim++] = v;
                if (!eat(&l, ',')) {
                    if (!eat(&l, ')'))
                        goto bad;
                    break;
                }
            }
            have_shape = true;
        } else
            goto bad;
        if (!eat(&l, ',')) {
            if (!eat(&l, '}'))
                goto bad;
            break;
        }
    }
    if (!have_descr || !have_order || !have_shape)
        goto bad;
    if (descr_dtype(descr, n) != 0)
        return vt__fail_at(NULL, VT_EUNSUPPORTED, path,
                           ".npy dtype '%s' is not supported (u1 i1 u2 i2 u4 i4 u8 i8 f2 f4 f8 b1)",
                           descr);
    n->data_offset = hstart + hlen;
    uint64_t count = 1;
    for (int d = 0; d < n->ndim; d++) {
        if (n->shape[d] == 0)
            return vt__fail_at(NULL, VT_EFORMAT, path, ".npy array has an empty axis %d", d);
        if (!vt__mul_ok(count, n->shape[d], &count))
            return vt__fail_at(NULL, VT_EFORMAT, path, ".npy shape overflows");
    }
    if (!vt__mul_ok(count, n->fes, &n->data_bytes))
        return vt__fail_at(NULL, VT_EFORMAT, path, ".npy shape overflows");
    uint64_t need;
    if (!vt__add_ok(n->data_offset, n->data_bytes, &need) || need != file_size)
        return vt__fail_at(NULL, VT_EFORMAT, path,
                           ".npy header describes %llu data bytes but the file holds %lld",
                           (unsigned long long)n->data_bytes,
                           (long long)file_size - (long long)n->data_offset);
    return 0;
bad:
    return vt__fail_at(NULL, VT_EFORMAT, path, "malformed .npy header");
}

int vt__npy_open(const char *path, vt_npy *n)
{
    memset(n, 0, sizeof *n);
    n->fd = -1;
    n->path = path;
    int fd = vt__open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0); /* a FIFO: refused below, not waited on */
    if (fd < 0)
        return vt__fail_at(NULL, VT_EIO, path, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        vt__close(fd);
        return vt__fail_at(NULL, VT_EIO, path, "not a regular file");
    }
    size_t want = (uint64_t)st.st_size < MAX_HEADER + 12 ? (size_t)st.st_size : MAX_HEADER + 12;
    unsigned char *buf = vt__malloc(want ? want : 1);
    if (buf == NULL) {
        vt__close(fd);
        return vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
    }
    int r = vt__pread_all(fd, buf, want, 0);
    int rc = r < 0 ? vt__fail_at(NULL, VT_EIO, path, "cannot read: %s", strerror(-r))
                   : vt__npy_parse(path, buf, want, (uint64_t)st.st_size, n);
    free(buf);
    if (rc) {
        vt__close(fd);
        return rc;
    }
    n->fd = fd;
    return 0;
}

void vt__npy_close(vt_npy *n)
{
    if (n && n->fd >= 0) {
        vt__close(n->fd);
        n->fd = -1;
    }
    if (n) {
        free(n->wide);
        n->wide = NULL;
        n->wide_cap = 0;
    }
}

int vt__npy_read(vt_npy *n, uint64_t off, void *buf, size_t len)
{
    size_t ratio = n->fes / n->es, flen = len * ratio;
    unsigned char *into = buf;
    if (ratio > 1) {
        if (vt__grow(&n->wide, &n->wide_cap, flen))
            return vt__fail_at(NULL, VT_ENOMEM, n->path, "out of memory");
        into = n->wide;
    }
    int r = vt__pread_all(n->fd, into, flen, n->data_offset + off * ratio);
    if (r < 0)
        return vt__fail_at(NULL, vt__errno_code(-r), n->path, "cannot read: %s",
                           r == -EIO ? "unexpected end of file" : strerror(-r));
    if (n->swap) {
        unsigned char *p = into;
        for (size_t i = 0; i + n->fes <= flen; i += n->fes)
            for (size_t a = 0, b = n->fes - 1; a < b; a++, b--) {
                unsigned char t = p[i + a];
                p[i + a] = p[i + b];
                p[i + b] = t;
            }
    }
    return ratio > 1 ? vt__narrow64(n->dtype, into, len / n->es, 8, false, buf, n->path) : 0;
}

/* ---- the .npy image source ----------------------------------------------- */

typedef struct npy_impl {
    vt_npy n;
} npy_impl;

static int npy_read_slab(vt_source *s, uint64_t c, uint64_t z0, uint64_t nz, void *buf)
{
    npy_impl *im = s->impl;
    vt_npy *n = &im->n;
    uint64_t Z = s->shape[1], Y = s->shape[2], X = s->shape[3];
    size_t es = n->es;
    if (!n->fortran) /* contiguous: channel c, slices z0.. */
        return vt__npy_read(n, ((c * Z + z0) * Y * X) * es, buf, (size_t)(nz * Y * X * es));
    /* Fortran order (3-d only): element (z, y, x) at z + Z * (y + Y * x); each
     * (y, x) holds the slab's nz values of z contiguously. */
    unsigned char *out = buf;
    size_t per = (size_t)nz * es;
    unsigned char *r = vt__malloc(per);
    if (r == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, s->path, "out of memory");
    int rc = 0;
    for (uint64_t y = 0; y < Y && rc == 0; y++)
        for (uint64_t x = 0; x < X && rc == 0; x++) {
            rc = vt__npy_read(n, (z0 + Z * (y + Y * x)) * es, r, per);
            for (uint64_t k = 0; k < nz && rc == 0; k++)
                memcpy(out + ((k * Y + y) * X + x) * es, r + k * es, es);
        }
    free(r);
    return rc;
}

static void npy_close(vt_source *s)
{
    npy_impl *im = s->impl;
    if (im) {
        vt__npy_close(&im->n);
        free(im);
        s->impl = NULL;
    }
}

int vt__npy_source_open(const char *path, vt_source **out)
{
    *out = NULL;
    vt_source *s = vt__source_new(path);
    npy_impl *im = vt__calloc(1, sizeof *im);
    if (s == NULL || im == NULL) {
        free(im);
        vt__source_close(s);
        return vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
    }
    s->impl = im;
    s->close = npy_close;
    s->read_slab = npy_read_slab;
    s->format = "npy";
    int rc = vt__npy_open(path, &im->n);
    if (rc) {
        vt__source_close(s);
        return rc;
    }
    vt_npy *n = &im->n;
    if (n->ndim != 3 && n->ndim != 4) {
        int nd = n->ndim; /* closing frees n */
        vt__source_close(s);
        return vt__fail_at(NULL, VT_EUNSUPPORTED, path,
                           "a %d-d .npy is not an image: expected (z, y, x) or (c, z, y, x)", nd);
    }
    if (n->fortran && n->ndim != 3) {
        vt__source_close(s);
        return vt__fail_at(NULL, VT_EUNSUPPORTED, path,
                           "a 4-d Fortran-order .npy cannot be streamed; save it in C order");
    }
    int lead = n->ndim == 3;
    for (int d = 0; d < n->ndim; d++)
        s->shape[d + lead] = n->shape[d];
    s->dtype = n->dtype;
    /* .npy has no geometry: unit spacing, identity affine (x, y, z) -> (x, y, z) */
    *out = s;
    return 0;
}
