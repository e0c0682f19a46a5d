/* Image sources: format dispatch, the .npy source (3-d and 4-d arrays,
 * C order read by slabs, Fortran order gathered run by run), and what the
 * text-header formats (NRRD, MetaImage) share: a line reader for their
 * headers and the reader of their flat voxel data (raw, gzip or zlib). */
#include "source.h"

#include "io_npy.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

vt_source *vt__source_new(const char *path)
{
    vt_source *s = vt__calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->path = vt__strdup(path);
    if (s->path == NULL) {
        free(s);
        return NULL;
    }
    for (int i = 0; i < 4; i++)
        s->shape[i] = 1;
    for (int i = 0; i < 3; i++)
        s->spacing[i] = 1;
    for (int i = 0; i < 16; i += 5)
        s->affine[i] = s->qform[i] = s->sform[i] = 1;
    return s;
}

void vt__source_close(vt_source *s)
{
    if (s == NULL)
        return;
    if (s->close)
        s->close(s);
    free(s->extra);
    free(s->path);
    free(s);
}

uint64_t vt__source_slice_bytes(const vt_source *s)
{
    return s->shape[2] * s->shape[3] * vt_dtype_size(s->dtype);
}

/* A headerless file: shape, dtype and geometry from @p raw. */
static int raw_open(const char *path, const vt_raw_spec *raw, bool seg, vt_source **out)
{
    vt_dtype dt = seg ? (raw->seg_dtype == VT_DTYPE_SAME ? VT_U8 : raw->seg_dtype) : raw->dtype;
    if (!vt__dtype_valid(dt))
        return vt__fail(NULL, VT_EINVAL, "%s: a raw file needs a valid dtype", path);
    for (int d = 0; d < 4; d++)
        if (raw->shape[d] == 0)
            return vt__fail(NULL, VT_EINVAL, "%s: a raw file needs a shape (c, z, y, x) of sizes >= 1", path);
    vt_source *s = vt__source_new(path);
    if (s == NULL)
        return vt__fail(NULL, VT_ENOMEM, "%s: out of memory", path);
    memcpy(s->shape, raw->shape, sizeof s->shape);
    if (seg) /* one volume on the images' grid */
        s->shape[0] = 1;
    s->format = "raw";
    for (int d = 0; d < 3; d++)
        s->spacing[d] = raw->spacing[d] > 0 ? raw->spacing[d] : 1.0;
    for (int d = 0; d < 3; d++)
        s->affine[5 * d] = s->spacing[2 - d]; /* affine columns are x, y, z */
    vt_flat_spec fs;
    memset(&fs, 0, sizeof fs);
    fs.data_path = path;
    fs.offset = raw->offset;
    fs.codec = ends_with(path, ".gz") ? VT_FLAT_GZIP : VT_FLAT_RAW;
    fs.dtype = dt;
    fs.file_es = vt_dtype_size(dt);
    fs.big_endian = raw->big_endian != 0;
    int rc = vt__flat_attach(s, &fs);
    if (rc) {
        vt__source_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

int vt__source_open_raw(const char *path, const vt_raw_spec *raw, bool seg, vt_source **out)
{
    *out = NULL;
    if (raw && (ends_with(path, ".raw") || ends_with(path, ".raw.gz") || ends_with(path, ".bin")))
        return raw_open(path, raw, seg, out);
    return vt__source_open(path, out);
}

int vt__source_open(const char *path, vt_source **out)
{
    *out = NULL;
    if (ends_with(path, ".nii") || ends_with(path, ".nii.gz") || ends_with(path, ".hdr") ||
        ends_with(path, ".hdr.gz") || ends_with(path, ".img") || ends_with(path, ".img.gz"))
        return vt__nifti_open(path, out);
    if (ends_with(path, ".npy"))
        return vt__npy_source_open(path, out);
    if (ends_with(path, ".nrrd") || ends_with(path, ".nhdr"))
        return vt__nrrd_open(path, out);
    if (ends_with(path, ".mha") || ends_with(path, ".mhd"))
        return vt__mha_open(path, out);
    return vt__fail(NULL, VT_EUNSUPPORTED,
                    "%s: unknown image type (supported: .nii, .nii.gz, .hdr/.img, .npy, .nrrd, .nhdr, "
                    ".mha, .mhd; .raw, .raw.gz, .bin with a raw shape and dtype)",
                    path);
}

int vt_image_probe(const char *path, vt_image_info *out)
{
    if (path == NULL || out == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_image_probe: NULL argument");
    vt_source *s;
    int rc = vt__source_open(path, &s);
    if (rc)
        return rc;
    memset(out, 0, sizeof *out);
    memcpy(out->shape, s->shape, sizeof out->shape);
    out->dtype = s->dtype;
    memcpy(out->spacing, s->spacing, sizeof out->spacing);
    snprintf(out->format, sizeof out->format, "%s", s->format ? s->format : "?");
    vt__source_close(s);
    return 0;
}

/* ---- .npy --------------------------------------------------------------- */

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
        return vt__fail(NULL, VT_ENOMEM, "%s: out of memory", s->path);
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
        return vt__fail(NULL, VT_ENOMEM, "%s: out of memory", path);
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
        return vt__fail(NULL, VT_EUNSUPPORTED, "%s: a %d-d .npy is not an image: expected (z, y, x) or (c, z, y, x)",
                        path, nd);
    }
    if (n->fortran && n->ndim != 3) {
        vt__source_close(s);
        return vt__fail(NULL, VT_EUNSUPPORTED, "%s: a 4-d Fortran-order .npy cannot be streamed; save it in C order",
                        path);
    }
    int lead = n->ndim == 3;
    for (int d = 0; d < n->ndim; d++)
        s->shape[d + lead] = n->shape[d];
    s->dtype = n->dtype;
    /* .npy has no geometry: unit spacing, identity affine (x, y, z) -> (x, y, z) */
    *out = s;
    return 0;
}

/* ---- text headers -------------------------------------------------------- */

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
        return vt__fail(NULL, VT_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    const char *why = NULL;
    if (fstat(r->fd, &st) != 0)
        why = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        why = "not a regular file";
    if (why) {
        vt__close(r->fd);
        r->fd = -1;
        return vt__fail(NULL, VT_EIO, "%s: cannot open: %s", path, why);
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
            return vt__fail(NULL, VT_ENOMEM, "%s: out of memory", r->path);
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
            return vt__fail(NULL, VT_EIO, "%s: cannot read: %s", r->path, strerror(errno));
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
            return vt__fail(NULL, VT_EFORMAT, "%s: line %u of the header is longer than %u bytes", r->path,
                            r->lineno + 1, VT_TEXT_LINE_MAX);
        } else if (!r->eof) {
            scanned = r->len;
            if (r->len == r->max && r->max > 0) {
                return vt__fail(NULL, VT_EFORMAT, "%s: the header is longer than %zu bytes (no end found)",
                                r->path, r->max);
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
            return vt__fail(NULL, VT_EFORMAT, "%s: line %u of the header is longer than %u bytes", r->path,
                            r->lineno + 1, VT_TEXT_LINE_MAX);
        if (memchr(r->buf + r->pos, 0, n) != NULL)
            return vt__fail(NULL, VT_EFORMAT,
                            "%s: line %u of the header holds a NUL byte (binary data before the header's end?)",
                            r->path, r->lineno + 1);
        if (n > 0 && r->buf[end - 1] == '\r')
            n--;
        if (n + 1 > r->line_cap) {
            char *l = vt__realloc(r->line, n + 1);
            if (l == NULL)
                return vt__fail(NULL, VT_ENOMEM, "%s: out of memory", r->path);
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

int vt__source_keep_text_header(vt_source *s, const void *text, size_t len)
{
    if (len <= VT_SOURCE_HEADER_MAX) {
        memcpy(s->header, text, len);
        s->header_len = len;
        return 0;
    }
    unsigned char *p = vt__malloc(len);
    if (p == NULL)
        return vt__fail(NULL, VT_ENOMEM, "%s: out of memory", s->path);
    memcpy(p, text, len);
    free(s->extra);
    s->extra = p;
    s->extra_len = len;
    s->header_len = 0;
    return 0;
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

/* ---- flat binary voxel data ---------------------------------------------- */

#define FLAT_IN_CHUNK (256u << 10)  /* compressed bytes read at once */
#define FLAT_SCRATCH (64u << 10)    /* decompressed bytes discarded at once */
#define FLAT_CHUNK (4u << 20)       /* file bytes gathered at once for de-interleaving or narrowing */

typedef struct flat_impl {
    char *path;          /* the data file */
    int fd;
    uint64_t file_size;
    vt_flat_codec codec;
    uint64_t offset;     /* raw: of the data; compressed: of the stream */
    uint64_t skip;       /* compressed: decompressed bytes before the data */
    uint64_t total;      /* data bytes */
    uint64_t in_end;     /* compressed: end of the stream in the file */
    size_t fes, es;
    bool swap, interleaved;
    bool narrow;         /* 64-bit integers in the file delivered as 32-bit */
    bool is_signed;      /* of those */
    /* compressed stream */
    z_stream z;
    bool z_init, z_end;
    unsigned char *in, *scratch;
    uint64_t in_pos;     /* file offset of the next compressed byte to read */
    uint64_t out_pos;    /* decompressed bytes produced */
    /* gathered file bytes */
    unsigned char *tmp;
    size_t tmp_cap;
} flat_impl;

static const char *flat_codec_name(vt_flat_codec c)
{
    return c == VT_FLAT_GZIP ? "gzip" : c == VT_FLAT_ZLIB ? "zlib" : "raw";
}

static int flat_pread(flat_impl *f, void *buf, size_t len, uint64_t off, const char *what)
{
    int r = vt__pread_all(f->fd, buf, len, off);
    if (r == -EIO && off + len > f->file_size)
        return vt__fail(NULL, VT_EFORMAT, "%s: the file ends inside the %s (truncated?)", f->path, what);
    if (r)
        return vt__fail(NULL, VT_EIO, "%s: cannot read: %s", f->path, strerror(-r));
    return 0;
}

static int z_restart(flat_impl *f)
{
    if (!f->z_init) {
        memset(&f->z, 0, sizeof f->z);
        int zr = inflateInit2(&f->z, f->codec == VT_FLAT_GZIP ? 15 + 16 : 15);
        if (zr != Z_OK)
            return vt__fail(NULL, zr == Z_MEM_ERROR ? VT_ENOMEM : VT_EIO, "%s: cannot start zlib: %s", f->path,
                            f->z.msg ? f->z.msg : "error");
        f->z_init = true;
    } else if (inflateReset(&f->z) != Z_OK) {
        return vt__fail(NULL, VT_EIO, "%s: cannot restart zlib", f->path);
    }
    f->z.next_in = f->in;
    f->z.avail_in = 0;
    f->in_pos = f->offset;
    f->out_pos = 0;
    f->z_end = false;
    return 0;
}

/* Refill the compressed input when it is used up; false at the stream's end. */
static int z_refill(flat_impl *f, bool *more)
{
    *more = true;
    if (f->z.avail_in > 0)
        return 0;
    if (f->in_pos >= f->in_end) {
        *more = false;
        return 0;
    }
    uint64_t k = f->in_end - f->in_pos;
    if (k > FLAT_IN_CHUNK)
        k = FLAT_IN_CHUNK;
    int rc = flat_pread(f, f->in, (size_t)k, f->in_pos, "compressed data");
    if (rc)
        return rc;
    f->z.next_in = f->in;
    f->z.avail_in = (uInt)k;
    f->in_pos += k;
    return 0;
}

static int z_error(flat_impl *f, int zr)
{
    if (zr == Z_MEM_ERROR)
        return vt__fail(NULL, VT_ENOMEM, "%s: out of memory in zlib", f->path);
    if (zr == Z_NEED_DICT)
        return vt__fail(NULL, VT_EUNSUPPORTED, "%s: the %s stream needs a preset dictionary", f->path,
                        flat_codec_name(f->codec));
    return vt__fail(NULL, VT_EFORMAT, "%s: corrupt %s data: %s", f->path, flat_codec_name(f->codec),
                    f->z.msg ? f->z.msg : "stream error");
}

/* After the end of a gzip member: go on with the next member if one follows. */
static int z_member_end(flat_impl *f)
{
    bool more;
    int rc = z_refill(f, &more);
    if (rc)
        return rc;
    if (f->codec == VT_FLAT_GZIP && more && f->z.next_in[0] == 0x1f) {
        if (inflateReset(&f->z) != Z_OK)
            return vt__fail(NULL, VT_EIO, "%s: cannot restart zlib", f->path);
        return 0;
    }
    f->z_end = true; /* anything after the stream is ignored */
    return 0;
}

/* Decompress the next @p len bytes into @p out, or discard them (out NULL). */
static int z_read(flat_impl *f, unsigned char *out, uint64_t len)
{
    while (len > 0) {
        if (f->z_end)
            return vt__fail(NULL, VT_EFORMAT,
                            "%s: the %s data end after %llu bytes but the header describes %llu (sizes too large?)",
                            f->path, flat_codec_name(f->codec),
                            (unsigned long long)(f->out_pos >= f->skip ? f->out_pos - f->skip : 0),
                            (unsigned long long)f->total);
        bool more;
        int rc = z_refill(f, &more);
        if (rc)
            return rc;
        uInt room = len > (out ? (1u << 30) : FLAT_SCRATCH) ? (out ? (1u << 30) : FLAT_SCRATCH) : (uInt)len;
        f->z.next_out = out ? out : f->scratch;
        f->z.avail_out = room;
        int zr = inflate(&f->z, Z_NO_FLUSH);
        uInt got = room - f->z.avail_out;
        f->out_pos += got;
        len -= got;
        if (out)
            out += got;
        if (zr == Z_STREAM_END) {
            if ((rc = z_member_end(f)) != 0)
                return rc;
        } else if (zr == Z_BUF_ERROR || (zr == Z_OK && got == 0)) {
            if (f->z.avail_in == 0 && f->in_pos >= f->in_end)
                return vt__fail(NULL, VT_EFORMAT,
                                "%s: the %s stream is truncated: it ends after %llu of the %llu data bytes",
                                f->path, flat_codec_name(f->codec),
                                (unsigned long long)(f->out_pos >= f->skip ? f->out_pos - f->skip : 0),
                                (unsigned long long)f->total);
        } else if (zr != Z_OK) {
            return z_error(f, zr);
        }
    }
    return 0;
}

/* At the end of the data: the stream must end there too (its checksum is
 * checked on the way). */
static int z_check_end(flat_impl *f)
{
    while (!f->z_end) {
        bool more;
        int rc = z_refill(f, &more);
        if (rc)
            return rc;
        f->z.next_out = f->scratch;
        f->z.avail_out = FLAT_SCRATCH;
        int zr = inflate(&f->z, Z_NO_FLUSH);
        if (f->z.avail_out != FLAT_SCRATCH)
            return vt__fail(NULL, VT_EFORMAT,
                            "%s: the %s data hold more than the %llu bytes the header describes (sizes too small?)",
                            f->path, flat_codec_name(f->codec), (unsigned long long)f->total);
        if (zr == Z_STREAM_END) {
            f->z_end = true; /* later members or bytes are ignored */
        } else if (zr == Z_BUF_ERROR || zr == Z_OK) {
            if (f->z.avail_in == 0 && f->in_pos >= f->in_end)
                return vt__fail(NULL, VT_EFORMAT, "%s: the %s stream is truncated: its end is missing", f->path,
                                flat_codec_name(f->codec));
        } else {
            return z_error(f, zr);
        }
    }
    return 0;
}

/* Data bytes [pos, pos + len) into @p buf. */
static int flat_fetch(flat_impl *f, uint64_t pos, void *buf, uint64_t len)
{
    if (f->codec == VT_FLAT_RAW)
        return flat_pread(f, buf, (size_t)len, f->offset + pos, "voxel data");
    uint64_t want = f->skip + pos;
    int rc = 0;
    if (!f->z_init || want < f->out_pos) /* going back: restart the stream */
        rc = z_restart(f);
    if (rc == 0 && want > f->out_pos)
        rc = z_read(f, NULL, want - f->out_pos);
    if (rc == 0)
        rc = z_read(f, buf, len);
    if (rc == 0 && f->out_pos == f->skip + f->total)
        rc = z_check_end(f);
    return rc;
}

/* @p n elements from @p src, @p stride bytes apart, into @p dst in host order
 * (64-bit integers narrowed, failing on a value that does not fit). */
static int flat_decode(flat_impl *f, const unsigned char *src, uint64_t n, size_t stride, unsigned char *dst)
{
    for (uint64_t i = 0; i < n; i++) {
        const unsigned char *e = src + i * stride;
        unsigned char *d = dst + i * f->es;
        if (f->fes == 1) {
            *d = *e;
        } else if (f->fes == 2) {
            uint16_t v = vt__ld16(e);
            vt__st16(d, f->swap ? __builtin_bswap16(v) : v);
        } else if (f->fes == 4) {
            uint32_t v = vt__ld32(e);
            vt__st32(d, f->swap ? __builtin_bswap32(v) : v);
        } else {
            uint64_t v = vt__ld64(e);
            if (f->swap)
                v = __builtin_bswap64(v);
            if (!f->narrow) {
                vt__st64(d, v);
            } else if (f->is_signed) {
                int64_t x = (int64_t)v;
                if (x < INT32_MIN || x > INT32_MAX)
                    return vt__fail(NULL, VT_ERANGE,
                                    "%s: int64 value %lld does not fit int32 (the store's widest integer)",
                                    f->path, (long long)x);
                vt__st32(d, (uint32_t)(int32_t)x);
            } else {
                if (v > UINT32_MAX)
                    return vt__fail(NULL, VT_ERANGE,
                                    "%s: uint64 value %llu does not fit uint32 (the store's widest integer)",
                                    f->path, (unsigned long long)v);
                vt__st32(d, (uint32_t)v);
            }
        }
    }
    return 0;
}

static int flat_read_slab(vt_source *s, uint64_t c, uint64_t z0, uint64_t nz, void *buf)
{
    flat_impl *f = s->impl;
    uint64_t plane = s->shape[2] * s->shape[3], nvox = nz * plane;
    uint64_t C = f->interleaved ? s->shape[0] : 1;
    /* index of the slab's first voxel, in units of C elements */
    uint64_t first = f->interleaved ? z0 * plane : (c * s->shape[1] + z0) * plane;
    size_t stride = (size_t)(C * f->fes);
    unsigned char *out = buf;
    if (C == 1 && f->fes == f->es) { /* the file's bytes are the slab's */
        int rc = flat_fetch(f, first * f->fes, buf, nvox * f->es);
        if (rc == 0 && f->swap)
            rc = flat_decode(f, out, nvox, f->es, out);
        return rc;
    }
    size_t coff = f->interleaved ? (size_t)c * f->fes : 0;
    if (stride > FLAT_CHUNK) { /* a voxel's channels span more than a chunk: element by element */
        unsigned char e[8];
        for (uint64_t v = 0; v < nvox; v++) {
            int rc = flat_fetch(f, (first + v) * stride + coff, e, f->fes);
            if (rc == 0)
                rc = flat_decode(f, e, 1, f->fes, out + v * f->es);
            if (rc)
                return rc;
        }
        return 0;
    }
    uint64_t per = FLAT_CHUNK / stride;
    if (per > nvox)
        per = nvox;
    if (vt__grow(&f->tmp, &f->tmp_cap, (size_t)(per * stride)))
        return vt__fail(NULL, VT_ENOMEM, "%s: out of memory", f->path);
    for (uint64_t v = 0; v < nvox; v += per) {
        uint64_t k = nvox - v < per ? nvox - v : per;
        int rc = flat_fetch(f, (first + v) * stride, f->tmp, k * stride);
        if (rc == 0)
            rc = flat_decode(f, f->tmp + coff, k, stride, out + v * f->es);
        if (rc)
            return rc;
    }
    return 0;
}

static void flat_close(vt_source *s)
{
    flat_impl *f = s->impl;
    if (f == NULL)
        return;
    if (f->z_init)
        inflateEnd(&f->z);
    if (f->fd >= 0)
        vt__close(f->fd);
    free(f->in);
    free(f->scratch);
    free(f->tmp);
    free(f->path);
    free(f);
    s->impl = NULL;
}

/* Skip @p n lines of the file from @p *off. */
static int flat_skip_lines(flat_impl *f, uint64_t n, uint64_t *off)
{
    unsigned char *b = vt__malloc(FLAT_IN_CHUNK);
    if (b == NULL)
        return vt__fail(NULL, VT_ENOMEM, "%s: out of memory", f->path);
    uint64_t pos = *off;
    int rc = 0;
    while (n > 0 && rc == 0) {
        if (pos >= f->file_size) {
            rc = vt__fail(NULL, VT_EFORMAT, "%s: the file ends before the %llu lines to skip", f->path,
                          (unsigned long long)n);
            break;
        }
        uint64_t k = f->file_size - pos < FLAT_IN_CHUNK ? f->file_size - pos : FLAT_IN_CHUNK;
        rc = flat_pread(f, b, (size_t)k, pos, "lines to skip");
        for (uint64_t i = 0; i < k && rc == 0; i++)
            if (b[i] == '\n' && --n == 0) {
                pos += i + 1;
                break;
            }
        if (n > 0)
            pos += k;
    }
    free(b);
    *off = pos;
    return rc;
}

int vt__flat_attach(vt_source *s, const vt_flat_spec *sp)
{
    flat_impl *f = vt__calloc(1, sizeof *f);
    if (f == NULL)
        return vt__fail(NULL, VT_ENOMEM, "%s: out of memory", s->path);
    f->fd = -1;
    s->impl = f;
    s->read_slab = flat_read_slab;
    s->close = flat_close;
    s->dtype = sp->dtype;
    f->path = vt__strdup(sp->data_path);
    if (f->path == NULL)
        return vt__fail(NULL, VT_ENOMEM, "%s: out of memory", s->path);
    f->codec = sp->codec;
    f->es = vt_dtype_size(sp->dtype);
    f->fes = sp->file_es;
    f->narrow = f->fes == 8 && (sp->dtype == VT_I32 || sp->dtype == VT_U32);
    f->is_signed = sp->dtype == VT_I32;
    if (f->es == 0 || (f->fes != f->es && !f->narrow))
        return vt__fail(NULL, VT_EINVAL, "%s: invalid element type", s->path);
    f->swap = sp->big_endian && f->fes > 1;
    f->interleaved = sp->interleaved && s->shape[0] > 1;
    uint64_t total = f->fes;
    for (int i = 0; i < 4; i++)
        if (s->shape[i] == 0 || !vt__mul_ok(total, s->shape[i], &total))
            return vt__fail(NULL, VT_EFORMAT, "%s: the image sizes overflow", s->path);
    if (total > (UINT64_C(1) << 50))
        return vt__fail(NULL, VT_EFORMAT, "%s: the image sizes describe %llu bytes, implausibly large", s->path,
                        (unsigned long long)total);
    f->total = total;
    /* named by an untrusted header: O_NONBLOCK so a FIFO is refused below instead of hanging the open */
    f->fd = vt__open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0);
    if (f->fd < 0)
        return vt__fail(NULL, VT_EIO, "%s: cannot open the data file: %s", f->path, strerror(errno));
    struct stat st;
    if (fstat(f->fd, &st) != 0)
        return vt__fail(NULL, VT_EIO, "%s: cannot stat: %s", f->path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return vt__fail(NULL, VT_EIO, "%s: the data file is not a regular file", f->path);
    f->file_size = (uint64_t)st.st_size;
    uint64_t off = sp->offset;
    if (off > f->file_size)
        return vt__fail(NULL, VT_EFORMAT, "%s: the data would start at byte %llu, past the end of the file (%llu bytes)",
                        f->path, (unsigned long long)off, (unsigned long long)f->file_size);
    if (!sp->at_end && sp->line_skip > 0) {
        int rc = flat_skip_lines(f, sp->line_skip, &off);
        if (rc)
            return rc;
    }
    if (f->codec == VT_FLAT_RAW) {
        uint64_t start = off;
        if (sp->at_end) {
            if (f->file_size < total)
                return vt__fail(NULL, VT_EFORMAT,
                                "%s: the header describes %llu data bytes but the file holds %llu (truncated?)",
                                f->path, (unsigned long long)total, (unsigned long long)f->file_size);
            off = f->file_size - total;
        } else if (!vt__add_ok(off, sp->byte_skip, &off) || off > f->file_size ||
                   f->file_size - off < total) {
            return vt__fail(NULL, VT_EFORMAT,
                            "%s: the header describes %llu data bytes from byte %llu but the file ends at byte %llu "
                            "(truncated?)",
                            f->path, (unsigned long long)total,
                            (unsigned long long)(start + sp->byte_skip), (unsigned long long)f->file_size);
        }
        f->offset = off;
        return 0;
    }
    if (f->codec != VT_FLAT_GZIP && f->codec != VT_FLAT_ZLIB)
        return vt__fail(NULL, VT_EINVAL, "%s: invalid data codec", s->path);
    if (sp->at_end) {
        if (sp->stream_len == 0 || sp->stream_len > f->file_size)
            return vt__fail(NULL, VT_EFORMAT, "%s: cannot find the %s stream at the end of the file", f->path,
                            flat_codec_name(f->codec));
        off = f->file_size - sp->stream_len;
    }
    f->offset = off;
    f->skip = sp->byte_skip;
    if (sp->stream_len > 0) {
        if (sp->stream_len > f->file_size - off)
            return vt__fail(NULL, VT_EFORMAT,
                            "%s: the %s stream should be %llu bytes but the file holds %llu after byte %llu "
                            "(truncated?)",
                            f->path, flat_codec_name(f->codec), (unsigned long long)sp->stream_len,
                            (unsigned long long)(f->file_size - off), (unsigned long long)off);
        f->in_end = off + sp->stream_len;
    } else {
        f->in_end = f->file_size;
    }
    f->in = vt__malloc(FLAT_IN_CHUNK);
    f->scratch = vt__malloc(FLAT_SCRATCH);
    if (f->in == NULL || f->scratch == NULL)
        return vt__fail(NULL, VT_ENOMEM, "%s: out of memory", f->path);
    return 0;
}
