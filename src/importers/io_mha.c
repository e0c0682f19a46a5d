/* MetaImage input (ITK's MetaIO): `.mha` (header and data in one file) and
 * `.mhd` (header naming a data file, `.raw` / `.zraw`), 3-d and 4-d.
 *
 * The header is text, "Key = Value" lines (keys matched without regard to
 * case), ending with ElementDataFile: LOCAL (the data follow the header in
 * the same file) or a file name relative to the header's folder; LIST and
 * numbered-file patterns are VT_EUNSUPPORTED. Every field is treated as
 * hostile: lines are bounded, numbers parsed strictly, sizes checked for
 * overflow and against the data.
 *
 * Data: binary only (BinaryData = False, i.e. ASCII, is VT_EUNSUPPORTED;
 * a missing BinaryData is taken as True), either byte order
 * (BinaryDataByteOrderMSB or its synonym ElementByteOrderMSB), raw or
 * CompressedData = True: one zlib stream (RFC 1950, as MetaIO writes it),
 * CompressedDataSize bytes long when given, else to the end of the file.
 * Element types MET_CHAR MET_UCHAR MET_SHORT MET_USHORT MET_INT MET_UINT
 * MET_LONG MET_ULONG MET_LONG_LONG MET_ULONG_LONG MET_FLOAT MET_DOUBLE and
 * their *_ARRAY forms (the same bytes). MET_LONG and MET_ULONG are 4 bytes,
 * as in MetaIO (metaTypes.h: MET_LONG_TYPE is int32_t whatever the platform's
 * long). 64-bit integers are narrowed to 32 bits, failing on a value that
 * does not fit, as for NIfTI.
 *
 * HeaderSize (bytes before the data in a separate data file; -1: the data
 * are the last bytes of the file) applies to a separate data file only; a
 * LOCAL file's data start right after the ElementDataFile line.
 *
 * Axes: DimSize lists x fastest, so "X Y Z" is the C-order array (Z, Y, X),
 * an image (1, Z, Y, X); ElementNumberOfChannels C > 1 interleaves the
 * channels of each voxel (C fastest): (C, Z, Y, X), a channel's slab gathered
 * from the slab of all channels. A 4-d image "X Y Z T" is (T, Z, Y, X) as
 * stored (with more than one channel it is VT_EUNSUPPORTED).
 *
 * Geometry: MetaIO's world is LPS. TransformMatrix (synonyms Rotation,
 * Orientation) holds NDims x NDims numbers written by ITK as the direction
 * cosines of index axis 0, then of axis 1 ... (itkMetaImageIO: matrix[i * N
 * + j] = GetDirection(i)[j]), so read row-major the file's matrix is the
 * transpose of the direction matrix D whose columns are those cosines.
 * Offset (synonyms Position, Origin) is the world position of voxel 0. The
 * RAS affine is diag(-1, -1, 1) @ [D diag(spacing) | Offset]; for a 4-d image
 * its spatial 3 x 3 part. ElementSpacing (else ElementSize, else 1) gives
 * spacing. AnatomicalOrientation and the other fields are ignored.
 *
 * The text header (through the ElementDataFile line) is kept verbatim in
 * s->header when it fits VT_SOURCE_HEADER_MAX bytes, else whole in s->extra
 * (header_len 0). */
#include "source.h"
#include "text.h"
#include "voxels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Longest header accepted. */
#define MHA_HEADER_MAX (16u << 20)

enum {
    M_OBJECTTYPE,
    M_NDIMS,
    M_DIMSIZE,
    M_ELEMENTTYPE,
    M_CHANNELS,
    M_BINARY,
    M_MSB,
    M_ELEMMSB,
    M_COMPRESSED,
    M_COMPSIZE,
    M_SPACING,
    M_ELEMSIZE,
    M_OFFSET,
    M_MATRIX,
    M_HEADERSIZE,
    M_DATAFILE,
    M_COUNT
};

static const struct {
    const char *key;
    int field;
} mha_keys[] = {
    {"ObjectType", M_OBJECTTYPE},
    {"NDims", M_NDIMS},
    {"DimSize", M_DIMSIZE},
    {"ElementType", M_ELEMENTTYPE},
    {"ElementNumberOfChannels", M_CHANNELS},
    {"BinaryData", M_BINARY},
    {"BinaryDataByteOrderMSB", M_MSB},
    {"ElementByteOrderMSB", M_ELEMMSB},
    {"CompressedData", M_COMPRESSED},
    {"CompressedDataSize", M_COMPSIZE},
    {"ElementSpacing", M_SPACING},
    {"ElementSize", M_ELEMSIZE},
    {"Offset", M_OFFSET},
    {"Position", M_OFFSET},
    {"Origin", M_OFFSET},
    {"TransformMatrix", M_MATRIX},
    {"Rotation", M_MATRIX},
    {"Orientation", M_MATRIX},
    {"HeaderSize", M_HEADERSIZE},
    {"ElementDataFile", M_DATAFILE},
};

typedef struct mha_hdr {
    const char *path;
    char *val[M_COUNT];
    const char *key[M_COUNT]; /* as spelled in the table */
    unsigned line[M_COUNT];
} mha_hdr;

/* Exactly @p n values of field @p f: integers into @p iv, or (iv NULL)
 * finite numbers into @p dv. */
static int values(const mha_hdr *h, int f, int64_t *iv, double *dv, int n)
{
    const char *p = h->val[f], *t;
    for (int i = 0; i <= n; i++) {
        size_t k = vt__text_token(&p, &t);
        if (i == n) {
            if (k == 0)
                return 0;
            break;
        }
        if (k == 0 || !(iv ? vt__text_i64(t, k, &iv[i]) : vt__text_f64(t, k, &dv[i])))
            break;
    }
    return vt__fail_at(NULL, VT_EFORMAT, h->path, "%s = \"%.60s\" is not %d %s%s", h->key[f], h->val[f], n,
                       iv ? "integer" : "finite number", n > 1 ? "s" : "");
}

static int ints(const mha_hdr *h, int f, int64_t *v, int n) { return values(h, f, v, NULL, n); }

static int numbers(const mha_hdr *h, int f, double *v, int n) { return values(h, f, NULL, v, n); }

/* True / False (also 1 / 0); a missing field is @p def. */
static int boolean(const mha_hdr *h, int f, bool def, bool *v)
{
    const char *s = h->val[f];
    if (s == NULL)
        *v = def;
    else if (strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0)
        *v = true;
    else if (strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0)
        *v = false;
    else
        return vt__fail_at(NULL, VT_EFORMAT, h->path, "%s = \"%.40s\" is neither True nor False", h->key[f], s);
    return 0;
}

static const struct {
    const char *name;
    vt_dtype dtype;
    size_t file_bytes;
} mha_types[] = {
    {"MET_CHAR", VT_I8, 1},       {"MET_UCHAR", VT_U8, 1},       {"MET_SHORT", VT_I16, 2},
    {"MET_USHORT", VT_U16, 2},    {"MET_INT", VT_I32, 4},        {"MET_UINT", VT_U32, 4},
    {"MET_LONG", VT_I32, 4},      {"MET_ULONG", VT_U32, 4},      {"MET_LONG_LONG", VT_I32, 8},
    {"MET_ULONG_LONG", VT_U32, 8}, {"MET_FLOAT", VT_F32, 4},     {"MET_DOUBLE", VT_F64, 8},
};

/* Step 1: read the header up to and including ElementDataFile; *ended: it was seen. */
static int read_header(vt_lines *L, mha_hdr *h, bool *ended)
{
    char *line;
    int rc;
    *ended = false;
    while ((rc = vt__lines_next(L, &line)) == 1) {
        char *t = vt__text_trim(line);
        if (*t == 0)
            continue;
        char *eq = strchr(t, '=');
        if (eq == NULL) {
            if (L->lineno == 1)
                return vt__fail_at(NULL, VT_EFORMAT, h->path,
                                   "not a MetaImage header (no \"Key = Value\" first line)");
            return vt__fail_at(NULL, VT_EFORMAT, h->path, "header line %u is not \"Key = Value\": \"%.60s\"",
                               L->lineno, t);
        }
        *eq = 0;
        char *key = vt__text_trim(t), *value = vt__text_trim(eq + 1);
        for (size_t i = 0; i < sizeof mha_keys / sizeof mha_keys[0]; i++) {
            if (strcasecmp(key, mha_keys[i].key) != 0)
                continue;
            int f = mha_keys[i].field;
            if (h->val[f])
                return vt__fail_at(NULL, VT_EFORMAT, h->path, "%s given twice (header lines %u and %u)",
                                   mha_keys[i].key, h->line[f], L->lineno);
            h->val[f] = vt__strdup(value);
            if (h->val[f] == NULL)
                return vt__fail_at(NULL, VT_ENOMEM, h->path, "out of memory");
            h->key[f] = mha_keys[i].key;
            h->line[f] = L->lineno;
            if (f == M_DATAFILE) {
                *ended = true;
                return 0;
            }
        }
        /* other keys (Comment, AnatomicalOrientation, CenterOfRotation ...) are ignored */
    }
    return rc < 0 ? rc : 0;
}

/* Everything decided from the header. */
typedef struct mha_info {
    int ndims;                /* 3 or 4 */
    int64_t dims[4];          /* x fastest */
    int64_t channels;         /* per element */
    bool compressed;
    vt_voxels_spec spec;      /* where and how the voxels are stored */
    double spacing[4], offset[4];
    double D[3][3];           /* D[r][c]: row r of the direction cosines of index axis c */
    char *data_path;
} mha_info;

/* Step 2a: what the image is -- dimensions, channels, element type. */
static int parse_image(const mha_hdr *h, mha_info *in)
{
    const char *path = h->path;
    if (h->val[M_OBJECTTYPE] && strcasecmp(h->val[M_OBJECTTYPE], "Image") != 0)
        return vt__fail_at(NULL, VT_EUNSUPPORTED, path, "ObjectType \"%.40s\" is not an image",
                           h->val[M_OBJECTTYPE]);
    static const int required[] = {M_NDIMS, M_DIMSIZE, M_ELEMENTTYPE};
    static const char *const required_name[] = {"NDims", "DimSize", "ElementType"};
    for (size_t i = 0; i < 3; i++)
        if (h->val[required[i]] == NULL)
            return vt__fail_at(NULL, VT_EFORMAT, path, "the header has no %s", required_name[i]);
    int64_t nd;
    int rc = ints(h, M_NDIMS, &nd, 1);
    if (rc)
        return rc;
    if (nd != 3 && nd != 4)
        return vt__fail_at(NULL, nd >= 1 && nd <= 16 ? VT_EUNSUPPORTED : VT_EFORMAT, path,
                           "NDims = %lld: 3-d and 4-d images are supported", (long long)nd);
    in->ndims = (int)nd;
    if ((rc = ints(h, M_DIMSIZE, in->dims, in->ndims)) != 0)
        return rc;
    for (int i = 0; i < in->ndims; i++)
        if (in->dims[i] < 1)
            return vt__fail_at(NULL, VT_EFORMAT, path, "DimSize %d is %lld: sizes must be >= 1", i,
                               (long long)in->dims[i]);
    in->channels = 1;
    if (h->val[M_CHANNELS] && (rc = ints(h, M_CHANNELS, &in->channels, 1)) != 0)
        return rc;
    if (in->channels < 1)
        return vt__fail_at(NULL, VT_EFORMAT, path, "ElementNumberOfChannels = %lld must be >= 1",
                           (long long)in->channels);
    if (in->channels > 1 && in->ndims == 4)
        return vt__fail_at(NULL, VT_EUNSUPPORTED, path,
                           "a 4-d image with %lld channels per element is not supported", (long long)in->channels);
    const char *et = h->val[M_ELEMENTTYPE];
    size_t etn = strlen(et);
    for (size_t i = 0; i < sizeof mha_types / sizeof mha_types[0]; i++) {
        size_t n = strlen(mha_types[i].name);
        if (strncasecmp(et, mha_types[i].name, n) == 0 && (etn == n || strcasecmp(et + n, "_ARRAY") == 0)) {
            in->spec.dtype = mha_types[i].dtype;
            in->spec.file_elem_bytes = mha_types[i].file_bytes;
            return 0;
        }
    }
    return vt__fail_at(NULL, VT_EUNSUPPORTED, path, "ElementType \"%.40s\" is not supported", et);
}

/* Step 2b: how the voxels are encoded -- binary, byte order, compression. */
static int parse_encoding(const mha_hdr *h, mha_info *in)
{
    const char *path = h->path;
    bool binary, msb, emsb;
    int rc;
    if ((rc = boolean(h, M_BINARY, true, &binary)) != 0 || (rc = boolean(h, M_MSB, false, &msb)) != 0 ||
        (rc = boolean(h, M_ELEMMSB, false, &emsb)) != 0 ||
        (rc = boolean(h, M_COMPRESSED, false, &in->compressed)) != 0)
        return rc;
    if (!binary)
        return vt__fail_at(NULL, VT_EUNSUPPORTED, path, "BinaryData = False (data as text) is not supported");
    if (h->val[M_MSB] && h->val[M_ELEMMSB] && msb != emsb)
        return vt__fail_at(NULL, VT_EFORMAT, path, "BinaryDataByteOrderMSB and ElementByteOrderMSB disagree");
    in->spec.big_endian = h->val[M_MSB] ? msb : emsb;
    in->spec.codec = in->compressed ? VT_VOXELS_ZLIB : VT_VOXELS_RAW;
    if (h->val[M_COMPSIZE]) {
        int64_t cs;
        if ((rc = ints(h, M_COMPSIZE, &cs, 1)) != 0)
            return rc;
        if (cs < 0)
            return vt__fail_at(NULL, VT_EFORMAT, path, "CompressedDataSize = %lld is negative", (long long)cs);
        if (in->compressed)
            in->spec.stream_len = (uint64_t)cs;
    }
    return 0;
}

/* Step 2c: the geometry -- spacing, offset, direction cosines. */
static int parse_geometry(const mha_hdr *h, mha_info *in)
{
    const char *path = h->path;
    int N = in->ndims, rc;
    double T[16];
    for (int i = 0; i < 4; i++) {
        in->spacing[i] = 1;
        in->offset[i] = 0;
    }
    int sf = h->val[M_SPACING] ? M_SPACING : h->val[M_ELEMSIZE] ? M_ELEMSIZE : -1;
    if (sf >= 0 && (rc = numbers(h, sf, in->spacing, N)) != 0)
        return rc;
    if (h->val[M_OFFSET] && (rc = numbers(h, M_OFFSET, in->offset, N)) != 0)
        return rc;
    for (int i = 0; i < 16; i++)
        T[i] = i % (N + 1) == 0 && i < N * N ? 1 : 0;
    if (h->val[M_MATRIX] && (rc = numbers(h, M_MATRIX, T, N * N)) != 0)
        return rc;
    for (int i = 0; i < 3; i++)
        if (in->spacing[i] == 0)
            return vt__fail_at(NULL, VT_EFORMAT, path, "%s %d is 0",
                               sf == M_ELEMSIZE ? "ElementSize" : "ElementSpacing", i);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            in->D[r][c] = T[c * N + r];
    double (*D)[3] = in->D;
    double det = D[0][0] * (D[1][1] * D[2][2] - D[1][2] * D[2][1]) -
                 D[0][1] * (D[1][0] * D[2][2] - D[1][2] * D[2][0]) +
                 D[0][2] * (D[1][0] * D[2][1] - D[1][1] * D[2][0]);
    if (!(fabs(det) > 1e-9))
        return vt__fail_at(NULL, VT_EFORMAT, path, "the TransformMatrix is singular (its spatial part)");
    return 0;
}

/* Step 3: the image in the source: shape and RAS affine. */
static void describe(mha_info *in, vt_source *s)
{
    int N = in->ndims;
    s->format = "metaimage";
    s->shape[0] = N == 4 ? (uint64_t)in->dims[3] : (uint64_t)in->channels;
    s->shape[1] = (uint64_t)in->dims[2];
    s->shape[2] = (uint64_t)in->dims[1];
    s->shape[3] = (uint64_t)in->dims[0];
    in->spec.interleaved = N == 3 && in->channels > 1;
    static const double flip[3] = {-1, -1, 1}; /* LPS -> RAS */
    memset(s->affine, 0, sizeof s->affine);
    for (int r = 0; r < 3; r++) {
        for (int c = 0; c < 3; c++)
            s->affine[4 * r + c] = flip[r] * in->D[r][c] * in->spacing[c];
        s->affine[4 * r + 3] = flip[r] * in->offset[r];
    }
    s->affine[15] = 1;
    for (int i = 0; i < 3; i++)
        s->spacing[2 - i] = fabs(in->spacing[i]);
}

/* Step 4: where the voxels are: after the header (LOCAL), or in the file it
 * names, from HeaderSize (-1: at the end). */
static int locate_data(const mha_hdr *h, size_t header_end, mha_info *in)
{
    const char *path = h->path;
    const char *df = h->val[M_DATAFILE];
    if (strcasecmp(df, "LOCAL") == 0) {
        in->data_path = vt__strdup(path);
        in->spec.offset = header_end;
    } else {
        const char *p = df, *t;
        int tokens = 0;
        while (vt__text_token(&p, &t) > 0)
            tokens++;
        if (df[0] == 0)
            return vt__fail_at(NULL, VT_EFORMAT, path, "ElementDataFile is empty");
        if (strncasecmp(df, "LIST", 4) == 0 && (df[4] == 0 || vt__text_space(df[4])))
            return vt__fail_at(NULL, VT_EUNSUPPORTED, path,
                               "ElementDataFile = LIST (one file per slice) is not supported");
        if (strchr(df, '%') != NULL && tokens >= 4)
            return vt__fail_at(NULL, VT_EUNSUPPORTED, path,
                               "ElementDataFile = \"%.60s\" (numbered files) is not supported", df);
        in->data_path = vt__path_beside(path, df);
        if (h->val[M_HEADERSIZE]) {
            int64_t hs;
            int rc = ints(h, M_HEADERSIZE, &hs, 1);
            if (rc)
                return rc;
            if (hs == -1 && in->compressed && in->spec.stream_len == 0)
                return vt__fail_at(NULL, VT_EUNSUPPORTED, path,
                                   "HeaderSize = -1 with compressed data needs CompressedDataSize");
            if (hs < -1)
                return vt__fail_at(NULL, VT_EFORMAT, path, "HeaderSize = %lld (bytes to skip, or -1)",
                                   (long long)hs);
            if (hs == -1)
                in->spec.at_end = true;
            else
                in->spec.offset = (uint64_t)hs;
        }
    }
    if (in->data_path == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
    in->spec.data_path = in->data_path;
    return 0;
}

/* Opening goes in steps: read the header's lines (read_header), parse what
 * they say (parse_image, parse_encoding, parse_geometry), describe the
 * image in the source (describe), find the voxels (locate_data) and attach
 * them (voxels.c). */
int vt__mha_open(const char *path, vt_source **out)
{
    *out = NULL;
    mha_hdr h;
    memset(&h, 0, sizeof h);
    h.path = path;
    mha_info in;
    memset(&in, 0, sizeof in);
    vt_lines L;
    vt_source *s = NULL;
    bool ended;
    int rc = vt__lines_open(&L, path, MHA_HEADER_MAX);
    if (rc)
        return rc;
    if ((rc = read_header(&L, &h, &ended)) == 0 && !ended)
        rc = vt__fail_at(NULL, VT_EFORMAT, path,
                         "the header has no ElementDataFile line (not a MetaImage, or truncated)");
    if (rc == 0 && (rc = parse_image(&h, &in)) == 0 && (rc = parse_encoding(&h, &in)) == 0 &&
        (rc = parse_geometry(&h, &in)) == 0) {
        s = vt__source_new(path);
        if (s)
            describe(&in, s);
        else
            rc = vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
    }
    if (rc == 0)
        rc = locate_data(&h, L.pos, &in);
    if (rc == 0)
        rc = vt__source_keep_text_header(s, L.buf, L.pos);
    if (rc == 0)
        rc = vt__voxels_attach(s, &in.spec);
    vt__lines_close(&L);
    for (int f = 0; f < M_COUNT; f++)
        free(h.val[f]);
    free(in.data_path);
    return vt__source_done(s, rc, out);
}
