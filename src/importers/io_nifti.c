/* NIfTI-1 and NIfTI-2 input: single files (.nii, .nii.gz) and header/image
 * pairs (.hdr/.img, either gzipped), both byte orders. The header's fields
 * are found through nifti.h; the voxels are read by voxels.c, through zlib
 * when the file is gzip (told by its magic, as zlib's gzopen tells it), slab
 * by slab, so a gzipped volume is never decompressed whole.
 *
 * NIfTI stores x fastest, then y, z and t: the bytes of volume t are already
 * the C-order array (z, y, x), so a 3-d image becomes (1, z, y, x) and a 4-d
 * one (t, z, y, x) without any transposition.
 *
 * Opening goes in four steps: parse the header (parse_header), check what
 * voxtile can read of it (check_header), describe the image in the source
 * (describe: shape, spacing, scaling, qform/sform, the header and its
 * extensions kept verbatim), and attach the voxel data (attach_voxels). */
#include "nifti.h"
#include "source.h"
#include "voxels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The header fields voxtile uses, decoded. */
typedef struct nifti_fields {
    const vt_nifti_layout *l;
    bool swap;
    bool pair;   /* magic ni1/ni2: data in a separate .img */
    int64_t dim[8];
    double pixdim[8];
    int datatype;
    uint64_t vox_offset;
    double scl_slope, scl_inter;
    int qform_code, sform_code;
    double quatern[3], qoffset[3], srow[12];
} nifti_fields;

/* Parse a NIfTI-1/2 header from the first @p len bytes of a file. */
static int parse_header(unsigned char *b, size_t len, nifti_fields *h, char *why, size_t whylen)
{
    memset(h, 0, sizeof *h);
    if (len < VT_NIFTI1_SIZE)
        return vt__why(why, whylen, VT_EFORMAT, "file too short for a NIfTI header (%zu bytes)", len);
    uint32_t sz = vt__ld32(b);
    if (sz == VT_NIFTI1_SIZE || __builtin_bswap32(sz) == VT_NIFTI1_SIZE) {
        h->l = &vt__nifti1;
        h->swap = sz != VT_NIFTI1_SIZE;
    } else if (sz == VT_NIFTI2_SIZE || __builtin_bswap32(sz) == VT_NIFTI2_SIZE) {
        h->l = &vt__nifti2;
        h->swap = sz != VT_NIFTI2_SIZE;
        if (len < VT_NIFTI2_SIZE)
            return vt__why(why, whylen, VT_EFORMAT, "file too short for a NIfTI-2 header (%zu bytes)", len);
    } else {
        return vt__why(why, whylen, VT_EFORMAT, "not a NIfTI file (sizeof_hdr is %u, not 348 or 540)", sz);
    }
    const vt_nifti_layout *l = h->l;
    vt_nifti_hdr v = {b, l, h->swap};
    const char *m = (const char *)b + l->magic;
    if (memcmp(m, l->magic_single, 4) == 0) /* the magic's NUL included */
        h->pair = false;
    else if (memcmp(m, l->magic_pair, 4) == 0)
        h->pair = true;
    else if (l->version == 1)
        return vt__why(why, whylen, VT_EUNSUPPORTED, "bad NIfTI-1 magic (an Analyze 7.5 header?)");
    else
        return vt__why(why, whylen, VT_EFORMAT, "bad NIfTI-2 magic");
    if (l->version == 1) {
        double vo = vt__nifti_get_real(&v, l->vox_offset);
        if (!(vo >= 0) || vo > 1e15 || vo != floor(vo))
            return vt__why(why, whylen, VT_EFORMAT, "vox_offset %g is not a valid byte offset", vo);
        h->vox_offset = (uint64_t)vo;
    } else {
        static const unsigned char tail[4] = {'\r', '\n', 0x1a, '\n'};
        if (memcmp(m + 4, tail, 4) != 0)
            return vt__why(why, whylen, VT_EFORMAT, "NIfTI-2 magic damaged (line-ending conversion?)");
        int64_t vo = vt__nifti_get_int(&v, l->vox_offset, 8);
        if (vo < 0)
            return vt__why(why, whylen, VT_EFORMAT, "vox_offset %lld is negative", (long long)vo);
        h->vox_offset = (uint64_t)vo;
    }
    h->datatype = (int)vt__nifti_get_int(&v, l->datatype, 2);
    for (int i = 0; i < 8; i++) {
        h->dim[i] = vt__nifti_get_int(&v, l->dim + (size_t)(i * l->dim_bytes), l->dim_bytes);
        h->pixdim[i] = vt__nifti_get_real(&v, vt__nifti_real_at(&v, l->pixdim, i));
    }
    h->scl_slope = vt__nifti_get_real(&v, l->scl_slope);
    h->scl_inter = vt__nifti_get_real(&v, l->scl_inter);
    h->qform_code = (int)vt__nifti_get_int(&v, l->xform_codes, l->code_bytes);
    h->sform_code = (int)vt__nifti_get_int(&v, l->xform_codes + (size_t)l->code_bytes, l->code_bytes);
    for (int i = 0; i < 3; i++) {
        h->quatern[i] = vt__nifti_get_real(&v, vt__nifti_real_at(&v, l->quatern, i));
        h->qoffset[i] = vt__nifti_get_real(&v, vt__nifti_real_at(&v, l->quatern, i + 3));
    }
    for (int i = 0; i < 12; i++)
        h->srow[i] = vt__nifti_get_real(&v, vt__nifti_real_at(&v, l->srow, i));
    if (h->dim[0] < 1 || h->dim[0] > 7)
        return vt__why(why, whylen, VT_EFORMAT, "dim[0] = %lld, the number of dimensions must be 1..7",
                       (long long)h->dim[0]);
    for (int i = 1; i <= h->dim[0]; i++)
        if (h->dim[i] < 1)
            return vt__why(why, whylen, VT_EFORMAT, "dim[%d] = %lld: every size must be >= 1", i,
                           (long long)h->dim[i]);
    for (int i = 5; i <= h->dim[0]; i++)
        if (h->dim[i] != 1)
            return vt__why(why, whylen, VT_EUNSUPPORTED,
                           "%lld-d images (dim[%d] = %lld) are not supported: at most x, y, z and t",
                           (long long)h->dim[0], i, (long long)h->dim[i]);
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
static void affines(const nifti_fields *h, vt_source *s)
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
        if (vt__ends_with(path, pairs[i][0])) {
            *hdr = vt__strdup(path);
            *img = sibling(path, pairs[i][0], pairs[i][1]);
            matched = true;
        } else if (vt__ends_with(path, pairs[i][1])) {
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

/* What voxtile can read of a parsed header: the magic agreeing with the file
 * name, the datatype, sizes that fit. Sets s's dtype and shape, and
 * *file_bytes to the bytes of an element in the file. */
static int check_header(const nifti_fields *h, const char *hpath, bool is_pair_name, vt_source *s,
                        size_t *file_bytes)
{
    if (h->pair != is_pair_name)
        return vt__fail_at(NULL, VT_EFORMAT, hpath, "the header's magic says %s but the file name says %s",
                           h->pair ? "header/image pair" : "single file",
                           is_pair_name ? ".hdr/.img pair" : "single file");
    if (!vt__nifti_dtype(h->datatype, &s->dtype, file_bytes))
        return vt__fail_at(NULL, VT_EUNSUPPORTED, hpath, "NIfTI datatype %d (%s) is not supported", h->datatype,
                           vt__nifti_code_kind(h->datatype));
    /* shape: (t, z, y, x) */
    const int64_t *dim = h->dim;
    s->shape[0] = (uint64_t)(dim[0] >= 4 ? dim[4] : 1);
    s->shape[1] = (uint64_t)(dim[0] >= 3 ? dim[3] : 1);
    s->shape[2] = (uint64_t)(dim[0] >= 2 ? dim[2] : 1);
    s->shape[3] = (uint64_t)dim[1];
    uint64_t total = *file_bytes;
    for (int i = 0; i < 4; i++)
        if (!vt__mul_ok(total, s->shape[i], &total))
            return vt__fail_at(NULL, VT_EFORMAT, hpath, "dim sizes overflow");
    if (total > (UINT64_C(1) << 50))
        return vt__fail_at(NULL, VT_EFORMAT, hpath, "dim sizes describe %llu bytes, implausibly large",
                           (unsigned long long)total);
    return 0;
}

/* The image's geometry, scaling and header, kept in the source. */
static void describe(const nifti_fields *h, const unsigned char *hb, vt_source *s)
{
    for (int i = 0; i < 3; i++) {
        double z = i < h->dim[0] ? fabs(h->pixdim[i + 1]) : 1.0;
        s->spacing[2 - i] = z > 0 && isfinite(z) ? z : 1.0;
    }
    s->scl_slope = isfinite(h->scl_slope) ? h->scl_slope : 0;
    s->scl_inter = isfinite(h->scl_inter) ? h->scl_inter : 0;
    if (s->scl_slope == 0)
        s->scl_inter = 0;
    affines(h, s);
    s->format = h->l->version == 1 ? "nifti1" : "nifti2";
    memcpy(s->header, hb, h->l->size);
    s->header_len = h->l->size;
}

/* Where the voxels start (*vox_offset) and the header extensions between the
 * header and them, kept verbatim in s->extra; @p hb holds the first @p got
 * bytes of the file. */
static int read_extensions(const nifti_fields *h, const char *hpath, const unsigned char *hb, size_t got,
                           vt_source *s, uint64_t *vox_offset)
{
    size_t hl = h->l->size;
    uint64_t min_off = h->pair ? 0 : (uint64_t)hl + 4;
    *vox_offset = h->vox_offset;
    if (!h->pair && *vox_offset < min_off) {
        if (*vox_offset != 0)
            return vt__fail_at(NULL, VT_EFORMAT, hpath, "vox_offset %llu lies inside the %zu-byte header",
                               (unsigned long long)*vox_offset, hl);
        *vox_offset = min_off; /* as nibabel: a single file without offset starts after the extender */
    }
    /* extension bytes (after the 4-byte extender) are kept verbatim */
    if (h->pair || got < hl + 4 || hb[hl] == 0 || *vox_offset <= hl + 4)
        return 0;
    uint64_t n = *vox_offset - (hl + 4);
    if (n > (64u << 20))
        return vt__fail_at(NULL, VT_EFORMAT, hpath, "%llu bytes of header extensions (over 64 MiB)",
                           (unsigned long long)n);
    size_t all = hl + 4 + (size_t)n, have;
    s->extra = vt__malloc(all);
    if (s->extra == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, hpath, "out of memory");
    int rc = vt__voxels_head(hpath, s->extra, all, &have);
    if (rc)
        return rc;
    if (have < all)
        return vt__fail_at(NULL, VT_EFORMAT, hpath,
                           "header extensions: the file ends after %zu of %llu bytes (truncated)",
                           have > hl + 4 ? have - (hl + 4) : 0, (unsigned long long)n);
    memmove(s->extra, s->extra + hl + 4, (size_t)n);
    s->extra_len = (size_t)n;
    return 0;
}

/* The voxels: the file's bytes from vox_offset, in the header's byte order,
 * raw or gzip (bytes after them allowed, as nibabel allows them; a gzip
 * stream is still read to its end, so its checksum is checked). */
static int attach_voxels(const nifti_fields *h, const char *dpath, uint64_t vox_offset, size_t file_bytes,
                         vt_source *s)
{
    vt_voxels_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.data_path = dpath;
    spec.byte_skip = vox_offset;
    spec.codec = VT_VOXELS_SNIFF;
    spec.trailing_ok = true;
    spec.dtype = s->dtype;
    spec.file_elem_bytes = file_bytes;
    spec.big_endian = h->swap; /* the host is little-endian */
    return vt__voxels_attach(s, &spec);
}

int vt__nifti_open(const char *path, vt_source **out)
{
    *out = NULL;
    char *hpath, *ipath;
    if (pair_paths(path, &hpath, &ipath) != 0)
        return vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
    bool is_pair_name = strcmp(hpath, ipath) != 0;
    vt_source *s = vt__source_new(path);
    unsigned char hb[VT_NIFTI2_SIZE + 4];
    size_t got = 0, file_bytes = 0;
    uint64_t vox_offset = 0;
    nifti_fields h;
    char why[256];
    int rc = s ? vt__voxels_head(hpath, hb, sizeof hb, &got) : vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
    if (rc == 0 && (rc = parse_header(hb, got, &h, why, sizeof why)) != 0)
        rc = vt__fail_at(NULL, rc, hpath, "%s", why);
    if (rc == 0)
        rc = check_header(&h, hpath, is_pair_name, s, &file_bytes);
    if (rc == 0) {
        describe(&h, hb, s);
        rc = read_extensions(&h, hpath, hb, got, s, &vox_offset);
    }
    if (rc == 0)
        rc = attach_voxels(&h, h.pair ? ipath : hpath, vox_offset, file_bytes, s);
    free(hpath);
    free(ipath);
    return vt__source_done(s, rc, out);
}
