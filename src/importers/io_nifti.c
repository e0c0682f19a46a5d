/* NIfTI-1 and NIfTI-2 input: single files (.nii, .nii.gz) and header/image
 * pairs (.hdr/.img, either gzipped), both byte orders. The data are read as
 * a stream through zlib (which passes uncompressed files through), slab by
 * slab, so a gzipped volume is never decompressed whole.
 *
 * NIfTI stores x fastest, then y, z and t: the bytes of volume t are already
 * the C-order array (z, y, x), so a 3-d image becomes (1, z, y, x) and a 4-d
 * one (t, z, y, x) without any transposition. */
#include "source.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* NIfTI datatype codes */
enum {
    DT_UINT8 = 2, DT_INT16 = 4, DT_INT32 = 8, DT_FLOAT32 = 16, DT_COMPLEX64 = 32, DT_FLOAT64 = 64,
    DT_RGB24 = 128, DT_INT8 = 256, DT_UINT16 = 512, DT_UINT32 = 768, DT_INT64 = 1024, DT_UINT64 = 1280,
    DT_FLOAT128 = 1536, DT_COMPLEX128 = 1792, DT_COMPLEX256 = 2048, DT_RGBA32 = 2304
};

typedef struct nifti_impl {
    gzFile gz;
    char *data_path;
    uint64_t vox_offset;
    uint64_t pos;      /* data bytes consumed */
    bool swap;
    int code;          /* NIfTI datatype */
    size_t fes;        /* element size in the file */
    unsigned char *tmp; /* 64-bit elements before narrowing */
    size_t tmp_cap;
} nifti_impl;

static uint16_t bswap16(uint16_t v) { return __builtin_bswap16(v); }
static uint32_t bswap32(uint32_t v) { return __builtin_bswap32(v); }
static uint64_t bswap64(uint64_t v) { return __builtin_bswap64(v); }

/* Field readers honouring the header's byte order. */
typedef struct hdrview {
    const unsigned char *b;
    bool swap;
} hdrview;

static int16_t h16(hdrview h, size_t off)
{
    uint16_t v = vt__ld16(h.b + off);
    return (int16_t)(h.swap ? bswap16(v) : v);
}
static int32_t h32(hdrview h, size_t off)
{
    uint32_t v = vt__ld32(h.b + off);
    return (int32_t)(h.swap ? bswap32(v) : v);
}
static int64_t h64(hdrview h, size_t off)
{
    uint64_t v = vt__ld64(h.b + off);
    return (int64_t)(h.swap ? bswap64(v) : v);
}
static double hf32(hdrview h, size_t off)
{
    uint32_t v = (uint32_t)h32(h, off);
    float f;
    memcpy(&f, &v, 4);
    return f;
}
static double hf64(hdrview h, size_t off)
{
    uint64_t v = (uint64_t)h64(h, off);
    double d;
    memcpy(&d, &v, 8);
    return d;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Decoded header fields the converter needs. */
typedef struct nifti_hdr {
    int version; /* 1 or 2 */
    bool swap;
    bool pair;   /* magic ni1/ni2: data in a separate .img */
    int64_t dim[8];
    double pixdim[8];
    int datatype;
    uint64_t vox_offset;
    double scl_slope, scl_inter;
    int qform_code, sform_code;
    double quatern[3], qoffset[3], srow[12];
    size_t header_len;
} nifti_hdr;

#define WHY(...) snprintf(why, whylen, __VA_ARGS__)

/* Parse a NIfTI-1/2 header from the first @p len bytes of a file. */
static int parse_header(const unsigned char *b, size_t len, nifti_hdr *h, char *why, size_t whylen)
{
    memset(h, 0, sizeof *h);
    if (len < 348) {
        WHY("file too short for a NIfTI header (%zu bytes)", len);
        return VT_EFORMAT;
    }
    uint32_t sz = vt__ld32(b);
    if (sz == 348 || bswap32(sz) == 348) {
        h->version = 1;
        h->swap = sz != 348;
    } else if (sz == 540 || bswap32(sz) == 540) {
        h->version = 2;
        h->swap = sz != 540;
        if (len < 540) {
            WHY("file too short for a NIfTI-2 header (%zu bytes)", len);
            return VT_EFORMAT;
        }
    } else {
        WHY("not a NIfTI file (sizeof_hdr is %u, not 348 or 540)", sz);
        return VT_EFORMAT;
    }
    hdrview v = {b, h->swap};
    if (h->version == 1) {
        const char *m = (const char *)b + 344;
        if (memcmp(m, "n+1\0", 4) == 0)
            h->pair = false;
        else if (memcmp(m, "ni1\0", 4) == 0)
            h->pair = true;
        else {
            WHY("bad NIfTI-1 magic (an Analyze 7.5 header?)");
            return VT_EUNSUPPORTED;
        }
        for (int i = 0; i < 8; i++) {
            h->dim[i] = h16(v, 40 + 2 * (size_t)i);
            h->pixdim[i] = hf32(v, 76 + 4 * (size_t)i);
        }
        h->datatype = h16(v, 70);
        double vo = hf32(v, 108);
        if (!(vo >= 0) || vo > 1e15 || vo != floor(vo)) {
            WHY("vox_offset %g is not a valid byte offset", vo);
            return VT_EFORMAT;
        }
        h->vox_offset = (uint64_t)vo;
        h->scl_slope = hf32(v, 112);
        h->scl_inter = hf32(v, 116);
        h->qform_code = h16(v, 252);
        h->sform_code = h16(v, 254);
        for (int i = 0; i < 3; i++) {
            h->quatern[i] = hf32(v, 256 + 4 * (size_t)i);
            h->qoffset[i] = hf32(v, 268 + 4 * (size_t)i);
        }
        for (int i = 0; i < 12; i++)
            h->srow[i] = hf32(v, 280 + 4 * (size_t)i);
        h->header_len = 348;
    } else {
        const unsigned char *m = b + 4;
        static const unsigned char tail[4] = {'\r', '\n', 0x1a, '\n'};
        if (memcmp(m, "n+2\0", 4) == 0)
            h->pair = false;
        else if (memcmp(m, "ni2\0", 4) == 0)
            h->pair = true;
        else {
            WHY("bad NIfTI-2 magic");
            return VT_EFORMAT;
        }
        if (memcmp(m + 4, tail, 4) != 0) {
            WHY("NIfTI-2 magic damaged (line-ending conversion?)");
            return VT_EFORMAT;
        }
        h->datatype = h16(v, 12);
        for (int i = 0; i < 8; i++) {
            h->dim[i] = h64(v, 16 + 8 * (size_t)i);
            h->pixdim[i] = hf64(v, 104 + 8 * (size_t)i);
        }
        int64_t vo = h64(v, 168);
        if (vo < 0) {
            WHY("vox_offset %lld is negative", (long long)vo);
            return VT_EFORMAT;
        }
        h->vox_offset = (uint64_t)vo;
        h->scl_slope = hf64(v, 176);
        h->scl_inter = hf64(v, 184);
        h->qform_code = h32(v, 344);
        h->sform_code = h32(v, 348);
        for (int i = 0; i < 3; i++) {
            h->quatern[i] = hf64(v, 352 + 8 * (size_t)i);
            h->qoffset[i] = hf64(v, 376 + 8 * (size_t)i);
        }
        for (int i = 0; i < 12; i++)
            h->srow[i] = hf64(v, 400 + 8 * (size_t)i);
        h->header_len = 540;
    }
    if (h->dim[0] < 1 || h->dim[0] > 7) {
        WHY("dim[0] = %lld, the number of dimensions must be 1..7", (long long)h->dim[0]);
        return VT_EFORMAT;
    }
    for (int i = 1; i <= h->dim[0]; i++)
        if (h->dim[i] < 1) {
            WHY("dim[%d] = %lld: every size must be >= 1", i, (long long)h->dim[i]);
            return VT_EFORMAT;
        }
    for (int i = 5; i <= h->dim[0]; i++)
        if (h->dim[i] != 1) {
            WHY("%lld-d images (dim[%d] = %lld) are not supported: at most x, y, z and t",
                (long long)h->dim[0], i, (long long)h->dim[i]);
            return VT_EUNSUPPORTED;
        }
    return 0;
}

/* nibabel's quaternion -> rotation (quaternions.quat2mat with fillpositive). */
static void quat_to_mat(double b, double c, double d, double R[9])
{
    double w2 = 1.0 - (b * b + c * c + d * d);
    double a = w2 < 0 ? 0 : sqrt(w2);
    double n = a * a + b * b + c * c + d * d;
    if (n < 1e-12) {
        memset(R, 0, 9 * sizeof *R);
        R[0] = R[4] = R[8] = 1;
        return;
    }
    double s = 2.0 / n;
    double X = b * s, Y = c * s, Z = d * s;
    double wX = a * X, wY = a * Y, wZ = a * Z;
    double xX = b * X, xY = b * Y, xZ = b * Z;
    double yY = c * Y, yZ = c * Z, zZ = d * Z;
    R[0] = 1.0 - (yY + zZ);
    R[1] = xY - wZ;
    R[2] = xZ + wY;
    R[3] = xY + wZ;
    R[4] = 1.0 - (xX + zZ);
    R[5] = yZ - wX;
    R[6] = xZ - wY;
    R[7] = yZ + wX;
    R[8] = 1.0 - (xX + yY);
}

static void identity4(double m[16])
{
    memset(m, 0, 16 * sizeof *m);
    m[0] = m[5] = m[10] = m[15] = 1;
}

/* qform, sform, and the affine nibabel's get_best_affine gives. */
static void affines(const nifti_hdr *h, vt_source *s)
{
    /* the qform uses pixdim[1..3] whatever dim[0] says (as nibabel and
     * nifti_quatern_to_mat44); the fallback affine only the used axes */
    double zooms[3];
    for (int i = 0; i < 3; i++)
        zooms[i] = i < h->dim[0] ? h->pixdim[i + 1] : 1.0;
    double R[9];
    quat_to_mat(h->quatern[0], h->quatern[1], h->quatern[2], R);
    double qfac = h->pixdim[0] == -1.0 ? -1.0 : 1.0;
    double vox[3] = {fabs(h->pixdim[1]), fabs(h->pixdim[2]), fabs(h->pixdim[3]) * qfac};
    identity4(s->qform);
    for (int r = 0; r < 3; r++) {
        for (int c = 0; c < 3; c++)
            s->qform[4 * r + c] = R[3 * r + c] * vox[c];
        s->qform[4 * r + 3] = h->qoffset[r];
    }
    identity4(s->sform);
    for (int i = 0; i < 12; i++)
        s->sform[i] = h->srow[i];
    s->qform_code = h->qform_code;
    s->sform_code = h->sform_code;
    if (h->sform_code > 0)
        memcpy(s->affine, s->sform, sizeof s->affine);
    else if (h->qform_code > 0)
        memcpy(s->affine, s->qform, sizeof s->affine);
    else { /* nibabel's base affine: x flipped, origin at the centre */
        identity4(s->affine);
        double shape[3] = {(double)s->shape[3], (double)s->shape[2], (double)s->shape[1]};
        double z[3] = {-zooms[0], zooms[1], zooms[2]};
        for (int i = 0; i < 3; i++) {
            s->affine[5 * i] = z[i];
            s->affine[4 * i + 3] = -(shape[i] - 1) / 2.0 * z[i];
        }
    }
}

static int nifti_read_slab(vt_source *s, uint64_t c, uint64_t z0, uint64_t nz, void *buf);
static void nifti_close(vt_source *s);

/* Open @p path with zlib (gzip or plain), reporting errors against the file.
 * Only regular files: the descriptor is opened non-blocking and checked
 * first, so a FIFO (a .img named next to a .hdr) is refused, not waited on. */
static gzFile open_gz(const char *path)
{
    int fd = vt__open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0);
    if (fd < 0) {
        vt__fail(NULL, VT_EIO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        vt__close(fd);
        vt__fail(NULL, VT_EIO, "%s: not a regular file", path);
        return NULL;
    }
    gzFile g = gzdopen(fd, "rb");
    if (g == NULL) {
        vt__close(fd);
        vt__fail(NULL, VT_ENOMEM, "%s: out of memory", path);
    } else
        gzbuffer(g, 1u << 18);
    return g;
}

/* zlib's message for the last error of @p g, without the "NAME: " zlib puts
 * in front -- the path, or "<fd:N>" for a gzdopen()ed stream (our messages
 * name the file already). */
static const char *gz_msg(gzFile g, const char *path, int *zerr)
{
    const char *m = gzerror(g, zerr);
    size_t n = strlen(path);
    const char *fd_end = strncmp(m, "<fd:", 4) == 0 ? strstr(m, ">: ") : NULL;
    if (strncmp(m, path, n) == 0 && m[n] == ':' && m[n + 1] == ' ')
        m += n + 2;
    else if (fd_end != NULL)
        m = fd_end + 3;
    return *zerr == Z_ERRNO ? strerror(errno) : m;
}

/* Read exactly @p len bytes; an error names the file and what happened. */
static int gz_read_all(gzFile g, const char *path, void *buf, uint64_t len, const char *what)
{
    unsigned char *p = buf;
    uint64_t done = 0;
    while (done < len) {
        unsigned chunk = len - done > (1u << 30) ? (1u << 30) : (unsigned)(len - done);
        int n = gzread(g, p + done, chunk);
        if (n <= 0) {
            int zerr = Z_OK;
            const char *msg = gz_msg(g, path, &zerr);
            if (n < 0 || (zerr != Z_OK && zerr != Z_STREAM_END))
                return vt__fail(NULL, zerr == Z_ERRNO ? VT_EIO : VT_EFORMAT,
                                "%s: %s: %s (corrupt or truncated gzip stream)", path, what, msg);
            return vt__fail(NULL, VT_EFORMAT,
                            "%s: %s: the file ends after %llu of %llu bytes (truncated)", path, what,
                            (unsigned long long)done, (unsigned long long)len);
        }
        done += (uint64_t)n;
    }
    return 0;
}

static char *sibling(const char *path, const char *from, const char *to)
{
    size_t n = strlen(path) - strlen(from);
    char *p = vt__malloc(n + strlen(to) + 1);
    if (p) {
        memcpy(p, path, n);
        strcpy(p + n, to);
    }
    return p;
}

/* The header file and data file of a pair, or the single file twice; on
 * failure (no memory) neither is allocated. */
static int pair_paths(const char *path, char **hdr, char **img)
{
    static const char *const pairs[][2] = {{".hdr", ".img"}, {".hdr.gz", ".img.gz"}};
    *hdr = *img = NULL;
    bool matched = false;
    for (size_t i = 0; i < 2 && !matched; i++) {
        if (ends_with(path, pairs[i][0])) {
            *hdr = vt__strdup(path);
            *img = sibling(path, pairs[i][0], pairs[i][1]);
            matched = true;
        } else if (ends_with(path, pairs[i][1])) {
            *hdr = sibling(path, pairs[i][1], pairs[i][0]);
            *img = vt__strdup(path);
            matched = true;
        }
    }
    if (!matched) {
        *hdr = vt__strdup(path);
        *img = vt__strdup(path);
    }
    if (*hdr && *img)
        return 0;
    free(*hdr);
    free(*img);
    *hdr = *img = NULL;
    return VT_ENOMEM;
}

int vt__nifti_open(const char *path, vt_source **out)
{
    *out = NULL;
    char *hpath, *ipath;
    if (pair_paths(path, &hpath, &ipath) != 0)
        return vt__fail(NULL, VT_ENOMEM, "%s: out of memory", path);
    bool is_pair_name = strcmp(hpath, ipath) != 0;
    int rc = 0;
    vt_source *s = vt__source_new(path);
    nifti_impl *im = vt__calloc(1, sizeof *im);
    gzFile g = NULL;
    if (s == NULL || im == NULL) {
        free(im);
        rc = vt__fail(NULL, VT_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    s->impl = im;
    s->read_slab = nifti_read_slab;
    s->close = nifti_close;
    g = open_gz(hpath);
    if (g == NULL) {
        rc = VT_EIO;
        goto done;
    }
    unsigned char hb[544];
    int got = gzread(g, hb, sizeof hb);
    if (got < 0) {
        int zerr;
        rc = vt__fail(NULL, VT_EFORMAT, "%s: %s (corrupt gzip stream)", hpath, gz_msg(g, hpath, &zerr));
        goto done;
    }
    nifti_hdr h;
    char why[256];
    rc = parse_header(hb, (size_t)got, &h, why, sizeof why);
    if (rc) {
        rc = vt__fail(NULL, rc, "%s: %s", hpath, why);
        goto done;
    }
    if (h.pair != is_pair_name) {
        rc = vt__fail(NULL, VT_EFORMAT, "%s: the header's magic says %s but the file name says %s",
                      hpath, h.pair ? "header/image pair" : "single file",
                      is_pair_name ? ".hdr/.img pair" : "single file");
        goto done;
    }
    /* element type */
    struct {
        int code;
        vt_dtype dt;
        size_t fes;
    } types[] = {{DT_UINT8, VT_U8, 1},   {DT_INT8, VT_I8, 1},      {DT_UINT16, VT_U16, 2},
                 {DT_INT16, VT_I16, 2},  {DT_UINT32, VT_U32, 4},   {DT_INT32, VT_I32, 4},
                 {DT_FLOAT32, VT_F32, 4}, {DT_FLOAT64, VT_F64, 8}, {DT_INT64, VT_I32, 8},
                 {DT_UINT64, VT_U32, 8}};
    im->code = 0;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (types[i].code == h.datatype) {
            im->code = h.datatype;
            s->dtype = types[i].dt;
            im->fes = types[i].fes;
        }
    if (im->code == 0) {
        const char *name = h.datatype == DT_RGB24 || h.datatype == DT_RGBA32 ? "RGB"
                           : h.datatype == DT_COMPLEX64 || h.datatype == DT_COMPLEX128 ||
                                   h.datatype == DT_COMPLEX256
                               ? "complex"
                           : h.datatype == DT_FLOAT128 ? "float128"
                                                       : "unknown";
        rc = vt__fail(NULL, VT_EUNSUPPORTED, "%s: NIfTI datatype %d (%s) is not supported", hpath,
                      h.datatype, name);
        goto done;
    }
    im->swap = h.swap;
    /* shape: (t, z, y, x) */
    int64_t X = h.dim[1], Y = h.dim[0] >= 2 ? h.dim[2] : 1, Z = h.dim[0] >= 3 ? h.dim[3] : 1,
            T = h.dim[0] >= 4 ? h.dim[4] : 1;
    s->shape[0] = (uint64_t)T;
    s->shape[1] = (uint64_t)Z;
    s->shape[2] = (uint64_t)Y;
    s->shape[3] = (uint64_t)X;
    uint64_t total = im->fes;
    for (int i = 0; i < 4; i++)
        if (!vt__mul_ok(total, s->shape[i], &total)) {
            rc = vt__fail(NULL, VT_EFORMAT, "%s: dim sizes overflow", hpath);
            goto done;
        }
    if (total > (UINT64_C(1) << 50)) {
        rc = vt__fail(NULL, VT_EFORMAT, "%s: dim sizes describe %llu bytes, implausibly large", hpath,
                      (unsigned long long)total);
        goto done;
    }
    for (int i = 0; i < 3; i++) {
        double z = i < h.dim[0] ? fabs(h.pixdim[i + 1]) : 1.0;
        s->spacing[2 - i] = z > 0 && isfinite(z) ? z : 1.0;
    }
    s->scl_slope = isfinite(h.scl_slope) ? h.scl_slope : 0;
    s->scl_inter = isfinite(h.scl_inter) ? h.scl_inter : 0;
    if (s->scl_slope == 0)
        s->scl_inter = 0;
    affines(&h, s);
    s->format = h.version == 1 ? "nifti1" : "nifti2";
    memcpy(s->header, hb, h.header_len);
    s->header_len = h.header_len;

    /* extensions and the data offset */
    uint64_t min_off = h.pair ? 0 : (uint64_t)h.header_len + 4;
    uint64_t vox_offset = h.vox_offset;
    if (!h.pair && vox_offset < min_off) {
        if (vox_offset == 0) /* as nibabel: a single file without offset starts after the extender */
            vox_offset = min_off;
        else {
            rc = vt__fail(NULL, VT_EFORMAT, "%s: vox_offset %llu lies inside the %zu-byte header", hpath,
                          (unsigned long long)vox_offset, h.header_len);
            goto done;
        }
    }
    /* extension bytes (after the 4-byte extender) are kept verbatim */
    uint64_t ext_end = h.pair ? 0 : vox_offset;
    if (!h.pair && (size_t)got >= h.header_len + 4 && hb[h.header_len] != 0 && ext_end > h.header_len + 4) {
        uint64_t n = ext_end - (h.header_len + 4);
        if (n > (64u << 20)) {
            rc = vt__fail(NULL, VT_EFORMAT, "%s: %llu bytes of header extensions (over 64 MiB)", hpath,
                          (unsigned long long)n);
            goto done;
        }
        s->extra = vt__malloc((size_t)n);
        if (s->extra == NULL) {
            rc = vt__fail(NULL, VT_ENOMEM, "%s: out of memory", hpath);
            goto done;
        }
        if (gzseek(g, (z_off_t)(h.header_len + 4), SEEK_SET) < 0 ||
            (rc = gz_read_all(g, hpath, s->extra, n, "header extensions")) != 0) {
            if (rc == 0)
                rc = vt__fail(NULL, VT_EFORMAT, "%s: cannot reach the header extensions", hpath);
            goto done;
        }
        s->extra_len = (size_t)n;
    }
    im->vox_offset = vox_offset;
    if (h.pair) {
        gzclose(g);
        g = open_gz(ipath);
        if (g == NULL) {
            rc = VT_EIO;
            goto done;
        }
    }
    /* position at the data */
    if (vox_offset > 0) {
        unsigned char skip[4096];
        uint64_t left = vox_offset - (h.pair ? 0 : 0);
        z_off_t here = gztell(g);
        if (here < 0 || (uint64_t)here > left) {
            gzrewind(g);
            here = 0;
        }
        left -= (uint64_t)here;
        while (left > 0 && rc == 0) {
            size_t k = left > sizeof skip ? sizeof skip : (size_t)left;
            rc = gz_read_all(g, h.pair ? ipath : hpath, skip, k, "reaching the voxel data");
            left -= k;
        }
        if (rc)
            goto done;
    }
    /* an uncompressed file must hold the voxels the header describes: said
     * now, before a store the size of the header's claim is set up */
    struct stat st;
    const char *dpath = h.pair ? ipath : hpath;
    uint64_t need;
    if (gzdirect(g) && stat(dpath, &st) == 0 &&
        (!vt__add_ok(vox_offset, total, &need) || need > (uint64_t)st.st_size)) {
        rc = vt__fail(NULL, VT_EFORMAT,
                      "%s: file truncated: the header describes %llu bytes of voxels from offset %llu, the file has %lld bytes",
                      dpath, (unsigned long long)total, (unsigned long long)vox_offset, (long long)st.st_size);
        goto done;
    }
    im->gz = g;
    g = NULL;
    im->data_path = ipath;
    ipath = NULL;
done:
    if (g)
        gzclose(g);
    free(hpath);
    free(ipath);
    if (rc) {
        vt__source_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* Narrow 64-bit integers to 32 bits, failing on a value that does not fit. */
static int narrow64(nifti_impl *im, const char *path, const unsigned char *src, uint64_t n, void *dst)
{
    bool is_signed = im->code == DT_INT64;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = vt__ld64(src + 8 * i);
        if (im->swap)
            v = bswap64(v);
        if (is_signed) {
            int64_t x = (int64_t)v;
            if (x < INT32_MIN || x > INT32_MAX)
                return vt__fail(NULL, VT_ERANGE, "%s: int64 value %lld does not fit int32 (the store's widest integer)",
                                path, (long long)x);
            vt__st32((unsigned char *)dst + 4 * i, (uint32_t)(int32_t)x);
        } else {
            if (v > UINT32_MAX)
                return vt__fail(NULL, VT_ERANGE, "%s: uint64 value %llu does not fit uint32", path,
                                (unsigned long long)v);
            vt__st32((unsigned char *)dst + 4 * i, (uint32_t)v);
        }
    }
    return 0;
}

/* After the last voxel: read on to the end of the stream, so that zlib checks
 * a gzip file's trailer (CRC-32 and length of everything before). Bytes after
 * the voxels of a plain file are allowed, as nibabel allows them. */
static int check_end(nifti_impl *im)
{
    unsigned char sink[1u << 16];
    for (;;) {
        int n = gzread(im->gz, sink, sizeof sink);
        if (n > 0)
            continue;
        int zerr = Z_OK;
        const char *msg = gz_msg(im->gz, im->data_path, &zerr);
        if (n < 0 || (zerr != Z_OK && zerr != Z_STREAM_END))
            return vt__fail(NULL, zerr == Z_ERRNO ? VT_EIO : VT_EFORMAT,
                            "%s: after the voxel data: %s (corrupt or truncated gzip stream)", im->data_path, msg);
        return 0;
    }
}

static int nifti_read_slab(vt_source *s, uint64_t c, uint64_t z0, uint64_t nz, void *buf)
{
    nifti_impl *im = s->impl;
    uint64_t n = nz * s->shape[2] * s->shape[3];
    uint64_t want = ((c * s->shape[1] + z0) * s->shape[2] * s->shape[3]) * im->fes;
    if (want != im->pos) { /* out of order: seek (a gzip stream restarts) */
        if (gzseek(im->gz, (z_off_t)(im->vox_offset + want), SEEK_SET) < 0)
            return vt__fail(NULL, VT_EIO, "%s: cannot seek in the voxel data", im->data_path);
        im->pos = want;
    }
    uint64_t bytes = n * im->fes;
    unsigned char *dst = buf;
    if (im->fes == 8 && s->dtype != VT_F64) {
        if (vt__grow(&im->tmp, &im->tmp_cap, (size_t)bytes))
            return vt__fail(NULL, VT_ENOMEM, "%s: out of memory", im->data_path);
        dst = im->tmp;
    }
    int rc = gz_read_all(im->gz, im->data_path, dst, bytes, "voxel data");
    if (rc)
        return rc;
    im->pos += bytes;
    if (im->pos == s->shape[0] * s->shape[1] * s->shape[2] * s->shape[3] * im->fes &&
        (rc = check_end(im)) != 0)
        return rc;
    if (dst != buf)
        return narrow64(im, im->data_path, dst, n, buf);
    if (im->swap) {
        for (uint64_t i = 0; i < n; i++) {
            unsigned char *e = dst + i * im->fes;
            if (im->fes == 2)
                vt__st16(e, bswap16(vt__ld16(e)));
            else if (im->fes == 4)
                vt__st32(e, bswap32(vt__ld32(e)));
            else if (im->fes == 8)
                vt__st64(e, bswap64(vt__ld64(e)));
        }
    }
    return 0;
}

static void nifti_close(vt_source *s)
{
    nifti_impl *im = s->impl;
    if (im == NULL)
        return;
    if (im->gz)
        gzclose(im->gz);
    free(im->data_path);
    free(im->tmp);
    free(im);
    s->impl = NULL;
}
