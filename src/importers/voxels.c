/* Flat binary voxel data (NRRD, MetaImage, raw files): the elements of an
 * image stored one after another in a file -- raw, or in a gzip or zlib
 * stream -- read slab by slab in any order (a compressed stream restarts when
 * a read goes back), byte-swapped, de-interleaved and narrowed to the
 * store's dtypes on the way. Only called: it knows no format. */
#include "voxels.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define IN_CHUNK (256u << 10)      /* compressed bytes read at once */
#define SCRATCH (64u << 10)        /* decompressed bytes discarded at once */
#define GATHER_CHUNK (4u << 20)    /* file bytes gathered at once for de-interleaving or narrowing */

typedef struct voxels_impl {
    char *path;          /* the data file */
    int fd;
    uint64_t file_size;
    vt_voxels_codec codec;
    uint64_t offset;     /* raw: of the data; compressed: of the stream */
    uint64_t skip;       /* compressed: decompressed bytes before the data */
    uint64_t total;      /* data bytes */
    uint64_t in_end;     /* compressed: end of the stream in the file */
    size_t file_elem, elem; /* bytes of an element in the file, and delivered */
    bool swap, interleaved;
    bool trailing_ok;    /* compressed: bytes after the data allowed */
    bool narrow;         /* 64-bit integers in the file delivered as 32-bit */
    vt_dtype dtype;      /* delivered */
    /* compressed stream */
    z_stream z;
    bool z_init, z_end;
    unsigned char *in, *scratch;
    uint64_t in_pos;     /* file offset of the next compressed byte to read */
    uint64_t out_pos;    /* decompressed bytes produced */
    /* gathered file bytes */
    unsigned char *tmp;
    size_t tmp_cap;
} voxels_impl;

static const char *codec_name(vt_voxels_codec c)
{
    return c == VT_VOXELS_GZIP ? "gzip" : c == VT_VOXELS_ZLIB ? "zlib" : "raw";
}

static int read_at(voxels_impl *f, void *buf, size_t len, uint64_t off, const char *what)
{
    int r = vt__pread_all(f->fd, buf, len, off);
    if (r == -EIO && off + len > f->file_size)
        return vt__fail_at(NULL, VT_EFORMAT, f->path, "the file ends inside the %s (truncated?)", what);
    if (r)
        return vt__fail_at(NULL, VT_EIO, f->path, "cannot read: %s", strerror(-r));
    return 0;
}

static int z_restart(voxels_impl *f)
{
    if (!f->z_init) {
        memset(&f->z, 0, sizeof f->z);
        int zr = inflateInit2(&f->z, f->codec == VT_VOXELS_GZIP ? 15 + 16 : 15);
        if (zr != Z_OK)
            return vt__fail_at(NULL, zr == Z_MEM_ERROR ? VT_ENOMEM : VT_EIO, f->path, "cannot start zlib: %s",
                               f->z.msg ? f->z.msg : "error");
        f->z_init = true;
    } else if (inflateReset(&f->z) != Z_OK) {
        return vt__fail_at(NULL, VT_EIO, f->path, "cannot restart zlib");
    }
    f->z.next_in = f->in;
    f->z.avail_in = 0;
    f->in_pos = f->offset;
    f->out_pos = 0;
    f->z_end = false;
    return 0;
}

/* Refill the compressed input when it is used up; false at the stream's end. */
static int z_refill(voxels_impl *f, bool *more)
{
    *more = true;
    if (f->z.avail_in > 0)
        return 0;
    if (f->in_pos >= f->in_end) {
        *more = false;
        return 0;
    }
    uint64_t k = f->in_end - f->in_pos;
    if (k > IN_CHUNK)
        k = IN_CHUNK;
    int rc = read_at(f, f->in, (size_t)k, f->in_pos, "compressed data");
    if (rc)
        return rc;
    f->z.next_in = f->in;
    f->z.avail_in = (uInt)k;
    f->in_pos += k;
    return 0;
}

static int z_error(voxels_impl *f, int zr)
{
    if (zr == Z_MEM_ERROR)
        return vt__fail_at(NULL, VT_ENOMEM, f->path, "out of memory in zlib");
    if (zr == Z_NEED_DICT)
        return vt__fail_at(NULL, VT_EUNSUPPORTED, f->path, "the %s stream needs a preset dictionary",
                           codec_name(f->codec));
    return vt__fail_at(NULL, VT_EFORMAT, f->path, "corrupt %s data: %s", codec_name(f->codec),
                       f->z.msg ? f->z.msg : "stream error");
}

/* After the end of a gzip member: go on with the next member if one follows. */
static int z_member_end(voxels_impl *f)
{
    bool more;
    int rc = z_refill(f, &more);
    if (rc)
        return rc;
    if (f->codec == VT_VOXELS_GZIP && more && f->z.next_in[0] == 0x1f) {
        if (inflateReset(&f->z) != Z_OK)
            return vt__fail_at(NULL, VT_EIO, f->path, "cannot restart zlib");
        return 0;
    }
    f->z_end = true; /* anything after the stream is ignored */
    return 0;
}

/* Decompress the next @p len bytes into @p out, or discard them (out NULL). */
static int z_read(voxels_impl *f, unsigned char *out, uint64_t len)
{
    while (len > 0) {
        if (f->z_end)
            return vt__fail_at(NULL, VT_EFORMAT, f->path,
                               "the %s data end after %llu bytes but the header describes %llu (sizes too large?)",
                               codec_name(f->codec),
                               (unsigned long long)(f->out_pos >= f->skip ? f->out_pos - f->skip : 0),
                               (unsigned long long)f->total);
        bool more;
        int rc = z_refill(f, &more);
        if (rc)
            return rc;
        uInt room = len > (out ? (1u << 30) : SCRATCH) ? (out ? (1u << 30) : SCRATCH) : (uInt)len;
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
                return vt__fail_at(NULL, VT_EFORMAT, f->path,
                                   "the %s stream is truncated: it ends after %llu of the %llu data bytes",
                                   codec_name(f->codec),
                                   (unsigned long long)(f->out_pos >= f->skip ? f->out_pos - f->skip : 0),
                                   (unsigned long long)f->total);
        } else if (zr != Z_OK) {
            return z_error(f, zr);
        }
    }
    return 0;
}

/* At the end of the data: the stream must end there too, unless bytes after
 * the data are allowed (its checksum is checked on the way either way). */
static int z_check_end(voxels_impl *f)
{
    while (!f->z_end) {
        bool more;
        int rc = z_refill(f, &more);
        if (rc)
            return rc;
        f->z.next_out = f->scratch;
        f->z.avail_out = SCRATCH;
        int zr = inflate(&f->z, Z_NO_FLUSH);
        if (f->z.avail_out != SCRATCH && !f->trailing_ok)
            return vt__fail_at(NULL, VT_EFORMAT, f->path,
                               "the %s data hold more than the %llu bytes the header describes (sizes too small?)",
                               codec_name(f->codec), (unsigned long long)f->total);
        if (zr == Z_STREAM_END) {
            f->z_end = true; /* later members or bytes are ignored */
        } else if (zr == Z_BUF_ERROR || zr == Z_OK) {
            if (f->z.avail_in == 0 && f->in_pos >= f->in_end)
                return vt__fail_at(NULL, VT_EFORMAT, f->path, "truncated %s stream: its end is missing",
                                   codec_name(f->codec));
        } else {
            return z_error(f, zr);
        }
    }
    return 0;
}

/* Data bytes [pos, pos + len) into @p buf. */
static int fetch(voxels_impl *f, uint64_t pos, void *buf, uint64_t len)
{
    if (f->codec == VT_VOXELS_RAW)
        return read_at(f, buf, (size_t)len, f->offset + pos, "voxel data");
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
static int decode(voxels_impl *f, const unsigned char *src, uint64_t n, size_t stride, unsigned char *dst)
{
    if (f->narrow)
        return vt__narrow64(f->dtype, src, (size_t)n, stride, f->swap, dst, f->path);
    for (uint64_t i = 0; i < n; i++) {
        const unsigned char *e = src + i * stride;
        unsigned char *d = dst + i * f->elem;
        if (f->file_elem == 1) {
            *d = *e;
        } else if (f->file_elem == 2) {
            uint16_t v = vt__ld16(e);
            vt__st16(d, f->swap ? __builtin_bswap16(v) : v);
        } else if (f->file_elem == 4) {
            uint32_t v = vt__ld32(e);
            vt__st32(d, f->swap ? __builtin_bswap32(v) : v);
        } else {
            uint64_t v = vt__ld64(e);
            if (f->swap)
                v = __builtin_bswap64(v);
            vt__st64(d, v);
        }
    }
    return 0;
}

static int voxels_read_slab(vt_source *s, uint64_t c, uint64_t z0, uint64_t nz, void *buf)
{
    voxels_impl *f = s->impl;
    uint64_t plane = s->shape[2] * s->shape[3], nvox = nz * plane;
    uint64_t C = f->interleaved ? s->shape[0] : 1;
    /* index of the slab's first voxel, in units of C elements */
    uint64_t first = f->interleaved ? z0 * plane : (c * s->shape[1] + z0) * plane;
    size_t stride = (size_t)(C * f->file_elem);
    unsigned char *out = buf;
    if (C == 1 && f->file_elem == f->elem) { /* the file's bytes are the slab's */
        int rc = fetch(f, first * f->file_elem, buf, nvox * f->elem);
        if (rc == 0 && f->swap)
            rc = decode(f, out, nvox, f->elem, out);
        return rc;
    }
    size_t coff = f->interleaved ? (size_t)c * f->file_elem : 0;
    if (stride > GATHER_CHUNK) { /* a voxel's channels span more than a chunk: element by element */
        unsigned char e[8];
        for (uint64_t v = 0; v < nvox; v++) {
            int rc = fetch(f, (first + v) * stride + coff, e, f->file_elem);
            if (rc == 0)
                rc = decode(f, e, 1, f->file_elem, out + v * f->elem);
            if (rc)
                return rc;
        }
        return 0;
    }
    uint64_t per = GATHER_CHUNK / stride;
    if (per > nvox)
        per = nvox;
    if (vt__grow(&f->tmp, &f->tmp_cap, (size_t)(per * stride)))
        return vt__fail_at(NULL, VT_ENOMEM, f->path, "out of memory");
    for (uint64_t v = 0; v < nvox; v += per) {
        uint64_t k = nvox - v < per ? nvox - v : per;
        int rc = fetch(f, (first + v) * stride, f->tmp, k * stride);
        if (rc == 0)
            rc = decode(f, f->tmp + coff, k, stride, out + v * f->elem);
        if (rc)
            return rc;
    }
    return 0;
}

static void voxels_close(vt_source *s)
{
    voxels_impl *f = s->impl;
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
static int skip_lines(voxels_impl *f, uint64_t n, uint64_t *off)
{
    unsigned char *b = vt__malloc(IN_CHUNK);
    if (b == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, f->path, "out of memory");
    uint64_t pos = *off;
    int rc = 0;
    while (n > 0 && rc == 0) {
        if (pos >= f->file_size) {
            rc = vt__fail_at(NULL, VT_EFORMAT, f->path, "the file ends before the %llu lines to skip",
                             (unsigned long long)n);
            break;
        }
        uint64_t k = f->file_size - pos < IN_CHUNK ? f->file_size - pos : IN_CHUNK;
        rc = read_at(f, b, (size_t)k, pos, "lines to skip");
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

/* Open f->path (named by an untrusted header: O_NONBLOCK, so that a FIFO is
 * refused below instead of hanging the open) and take its size. */
static int open_file(voxels_impl *f, const char *what)
{
    f->fd = vt__open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0);
    if (f->fd < 0)
        return vt__fail_at(NULL, VT_EIO, f->path, "cannot open %s: %s", what, strerror(errno));
    struct stat st;
    if (fstat(f->fd, &st) != 0)
        return vt__fail_at(NULL, VT_EIO, f->path, "cannot stat: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return vt__fail_at(NULL, VT_EIO, f->path, "%s is not a regular file", what);
    f->file_size = (uint64_t)st.st_size;
    return 0;
}

/* VT_VOXELS_SNIFF: gzip when the bytes at @p off start with gzip's magic
 * (1f 8b), else raw -- as zlib's gzopen decides. */
static int sniff(voxels_impl *f, uint64_t off)
{
    unsigned char m[2] = {0, 0};
    f->codec = VT_VOXELS_RAW;
    if (f->file_size - off < 2)
        return 0;
    int rc = read_at(f, m, 2, off, "header");
    if (rc == 0 && m[0] == 0x1f && m[1] == 0x8b)
        f->codec = VT_VOXELS_GZIP;
    return rc;
}

int vt__voxels_attach(vt_source *s, const vt_voxels_spec *sp)
{
    voxels_impl *f = vt__calloc(1, sizeof *f);
    if (f == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, s->path, "out of memory");
    f->fd = -1;
    s->impl = f;
    s->read_slab = voxels_read_slab;
    s->close = voxels_close;
    s->dtype = sp->dtype;
    f->path = vt__strdup(sp->data_path);
    if (f->path == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, s->path, "out of memory");
    f->codec = sp->codec;
    f->elem = vt_dtype_size(sp->dtype);
    f->file_elem = sp->file_elem_bytes;
    f->narrow = f->file_elem == 8 && (sp->dtype == VT_I32 || sp->dtype == VT_U32);
    f->dtype = sp->dtype;
    if (f->elem == 0 || (f->file_elem != f->elem && !f->narrow))
        return vt__fail_at(NULL, VT_EINVAL, s->path, "invalid element type");
    f->swap = sp->big_endian && f->file_elem > 1;
    f->interleaved = sp->interleaved && s->shape[0] > 1;
    uint64_t total = f->file_elem;
    for (int i = 0; i < 4; i++)
        if (s->shape[i] == 0 || !vt__mul_ok(total, s->shape[i], &total))
            return vt__fail_at(NULL, VT_EFORMAT, s->path, "the image sizes overflow");
    if (total > (UINT64_C(1) << 50))
        return vt__fail_at(NULL, VT_EFORMAT, s->path, "the image sizes describe %llu bytes, implausibly large",
                           (unsigned long long)total);
    f->total = total;
    int rc = open_file(f, "the data file");
    if (rc)
        return rc;
    uint64_t off = sp->offset;
    if (off > f->file_size)
        return vt__fail_at(NULL, VT_EFORMAT, f->path,
                           "the data would start at byte %llu, past the end of the file (%llu bytes)",
                           (unsigned long long)off, (unsigned long long)f->file_size);
    if (!sp->at_end && sp->line_skip > 0 && (rc = skip_lines(f, sp->line_skip, &off)) != 0)
        return rc;
    if (f->codec == VT_VOXELS_SNIFF && (rc = sniff(f, off)) != 0)
        return rc;
    if (f->codec == VT_VOXELS_RAW) {
        uint64_t start = off;
        if (sp->at_end) {
            if (f->file_size < total)
                return vt__fail_at(NULL, VT_EFORMAT, f->path,
                                   "the header describes %llu data bytes but the file holds %llu (truncated?)",
                                   (unsigned long long)total, (unsigned long long)f->file_size);
            off = f->file_size - total;
        } else if (!vt__add_ok(off, sp->byte_skip, &off) || off > f->file_size ||
                   f->file_size - off < total) {
            return vt__fail_at(NULL, VT_EFORMAT, f->path,
                               "file truncated: the header describes %llu bytes of voxels from byte %llu, "
                               "the file has %llu bytes",
                               (unsigned long long)total,
                               (unsigned long long)(start + sp->byte_skip), (unsigned long long)f->file_size);
        }
        f->offset = off;
        return 0;
    }
    if (f->codec != VT_VOXELS_GZIP && f->codec != VT_VOXELS_ZLIB)
        return vt__fail_at(NULL, VT_EINVAL, s->path, "invalid data codec");
    if (sp->at_end) {
        if (sp->stream_len == 0 || sp->stream_len > f->file_size)
            return vt__fail_at(NULL, VT_EFORMAT, f->path, "cannot find the %s stream at the end of the file",
                               codec_name(f->codec));
        off = f->file_size - sp->stream_len;
    }
    f->offset = off;
    f->skip = sp->byte_skip;
    f->trailing_ok = sp->trailing_ok;
    if (sp->stream_len > 0) {
        if (sp->stream_len > f->file_size - off)
            return vt__fail_at(NULL, VT_EFORMAT, f->path,
                               "the %s stream should be %llu bytes but the file holds %llu after byte %llu "
                               "(truncated?)", codec_name(f->codec), (unsigned long long)sp->stream_len,
                               (unsigned long long)(f->file_size - off), (unsigned long long)off);
        f->in_end = off + sp->stream_len;
    } else {
        f->in_end = f->file_size;
    }
    f->in = vt__malloc(IN_CHUNK);
    f->scratch = vt__malloc(SCRATCH);
    if (f->in == NULL || f->scratch == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, f->path, "out of memory");
    return 0;
}

int vt__voxels_head(const char *path, void *buf, size_t len, size_t *got)
{
    voxels_impl f;
    memset(&f, 0, sizeof f);
    f.fd = -1;
    *got = 0;
    f.path = (char *)(uintptr_t)path; /* not freed here */
    int rc = open_file(&f, "the file");
    if (rc == 0)
        rc = sniff(&f, 0);
    if (rc == 0 && f.codec == VT_VOXELS_RAW) {
        size_t n = f.file_size < len ? (size_t)f.file_size : len;
        if ((rc = read_at(&f, buf, n, 0, "header")) == 0)
            *got = n;
    } else if (rc == 0) {
        f.in_end = f.file_size;
        f.in = vt__malloc(IN_CHUNK);
        rc = f.in ? z_restart(&f) : vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
        unsigned char *out = buf;
        while (rc == 0 && *got < len && !f.z_end) {
            bool more;
            if ((rc = z_refill(&f, &more)) != 0 || !more)
                break; /* the stream ends early: the voxels' read says so */
            f.z.next_out = out + *got;
            f.z.avail_out = (uInt)(len - *got);
            int zr = inflate(&f.z, Z_NO_FLUSH);
            *got = len - f.z.avail_out;
            if (zr == Z_STREAM_END)
                rc = z_member_end(&f);
            else if (zr != Z_OK && zr != Z_BUF_ERROR)
                rc = z_error(&f, zr);
        }
    }
    if (f.z_init)
        inflateEnd(&f.z);
    if (f.fd >= 0)
        vt__close(f.fd);
    free(f.in);
    return rc;
}
