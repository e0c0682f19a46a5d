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
    size_t fes;
} mha_types[] = {
    {"MET_CHAR", VT_I8, 1},       {"MET_UCHAR", VT_U8, 1},       {"MET_SHORT", VT_I16, 2},
    {"MET_USHORT", VT_U16, 2},    {"MET_INT", VT_I32, 4},        {"MET_UINT", VT_U32, 4},
    {"MET_LONG", VT_I32, 4},      {"MET_ULONG", VT_U32, 4},      {"MET_LONG_LONG", VT_I32, 8},
    {"MET_ULONG_LONG", VT_U32, 8}, {"MET_FLOAT", VT_F32, 4},     {"MET_DOUBLE", VT_F64, 8},
};

/* Read the header up to and including ElementDataFile; *ended: it was seen. */
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

int vt__mha_open(const char *path, vt_source **out)
{
    *out = NULL;
    mha_hdr h;
    memset(&h, 0, sizeof h);
    h.path = path;
    vt_lines L;
    vt_source *s = NULL;
    char *data_path = NULL;
    bool ended;
    vt_voxels_spec spec;
    memset(&spec, 0, sizeof spec);
    int rc = vt__lines_open(&L, path, MHA_HEADER_MAX);
    if (rc)
        return rc;
    if ((rc = read_header(&L, &h, &ended)) != 0)
        goto done;
    if (!ended) {
        rc = vt__fail_at(NULL, VT_EFORMAT, path,
                         "the header has no ElementDataFile line (not a MetaImage, or truncated)");
        goto done;
    }
    if (h.val[M_OBJECTTYPE] && strcasecmp(h.val[M_OBJECTTYPE], "Image") != 0) {
        rc = vt__fail_at(NULL, VT_EUNSUPPORTED, path, "ObjectType \"%.40s\" is not an image", h.val[M_OBJECTTYPE]);
        goto done;
    }
    static const int required[] = {M_NDIMS, M_DIMSIZE, M_ELEMENTTYPE};
    static const char *const required_name[] = {"NDims", "DimSize", "ElementType"};
    for (size_t i = 0; i < 3; i++)
        if (h.val[required[i]] == NULL) {
            rc = vt__fail_at(NULL, VT_EFORMAT, path, "the header has no %s", required_name[i]);
            goto done;
        }
    /* dimensions */
    int64_t nd;
    if ((rc = ints(&h, M_NDIMS, &nd, 1)) != 0)
        goto done;
    if (nd != 3 && nd != 4) {
        rc = vt__fail_at(NULL, nd >= 1 && nd <= 16 ? VT_EUNSUPPORTED : VT_EFORMAT, path,
                         "NDims = %lld: 3-d and 4-d images are supported", (long long)nd);
        goto done;
    }
    int N = (int)nd;
    int64_t dims[4];
    if ((rc = ints(&h, M_DIMSIZE, dims, N)) != 0)
        goto done;
    for (int i = 0; i < N; i++)
        if (dims[i] < 1) {
            rc = vt__fail_at(NULL, VT_EFORMAT, path, "DimSize %d is %lld: sizes must be >= 1", i,
                             (long long)dims[i]);
            goto done;
        }
    int64_t channels = 1;
    if (h.val[M_CHANNELS] && (rc = ints(&h, M_CHANNELS, &channels, 1)) != 0)
        goto done;
    if (channels < 1) {
        rc = vt__fail_at(NULL, VT_EFORMAT, path, "ElementNumberOfChannels = %lld must be >= 1",
                         (long long)channels);
        goto done;
    }
    if (channels > 1 && N == 4) {
        rc = vt__fail_at(NULL, VT_EUNSUPPORTED, path, "a 4-d image with %lld channels per element is not supported",
                         (long long)channels);
        goto done;
    }
    /* element type */
    const char *et = h.val[M_ELEMENTTYPE];
    size_t etn = strlen(et);
    bool known = false;
    for (size_t i = 0; i < sizeof mha_types / sizeof mha_types[0]; i++) {
        size_t n = strlen(mha_types[i].name);
        if (strncasecmp(et, mha_types[i].name, n) == 0 && (etn == n || strcasecmp(et + n, "_ARRAY") == 0)) {
            spec.dtype = mha_types[i].dtype;
            spec.file_elem_bytes = mha_types[i].fes;
            known = true;
        }
    }
    if (!known) {
        rc = vt__fail_at(NULL, VT_EUNSUPPORTED, path, "ElementType \"%.40s\" is not supported", et);
        goto done;
    }
    /* encoding */
    bool binary, msb, emsb, compressed;
    if ((rc = boolean(&h, M_BINARY, true, &binary)) != 0 || (rc = boolean(&h, M_MSB, false, &msb)) != 0 ||
        (rc = boolean(&h, M_ELEMMSB, false, &emsb)) != 0 ||
        (rc = boolean(&h, M_COMPRESSED, false, &compressed)) != 0)
        goto done;
    if (!binary) {
        rc = vt__fail_at(NULL, VT_EUNSUPPORTED, path, "BinaryData = False (data as text) is not supported");
        goto done;
    }
    if (h.val[M_MSB] && h.val[M_ELEMMSB] && msb != emsb) {
        rc = vt__fail_at(NULL, VT_EFORMAT, path, "BinaryDataByteOrderMSB and ElementByteOrderMSB disagree");
        goto done;
    }
    spec.big_endian = h.val[M_MSB] ? msb : emsb;
    spec.codec = compressed ? VT_VOXELS_ZLIB : VT_VOXELS_RAW;
    if (h.val[M_COMPSIZE]) {
        int64_t cs;
        if ((rc = ints(&h, M_COMPSIZE, &cs, 1)) != 0)
            goto done;
        if (cs < 0) {
            rc = vt__fail_at(NULL, VT_EFORMAT, path, "CompressedDataSize = %lld is negative", (long long)cs);
            goto done;
        }
        if (compressed)
            spec.stream_len = (uint64_t)cs;
    }
    /* geometry */
    double spacing[4] = {1, 1, 1, 1}, offset[4] = {0, 0, 0, 0}, T[16];
    int sf = h.val[M_SPACING] ? M_SPACING : h.val[M_ELEMSIZE] ? M_ELEMSIZE : -1;
    if (sf >= 0 && (rc = numbers(&h, sf, spacing, N)) != 0)
        goto done;
    if (h.val[M_OFFSET] && (rc = numbers(&h, M_OFFSET, offset, N)) != 0)
        goto done;
    for (int i = 0; i < 16; i++)
        T[i] = i % (N + 1) == 0 && i < N * N ? 1 : 0;
    if (h.val[M_MATRIX] && (rc = numbers(&h, M_MATRIX, T, N * N)) != 0)
        goto done;
    for (int i = 0; i < 3; i++)
        if (spacing[i] == 0) {
            rc = vt__fail_at(NULL, VT_EFORMAT, path, "%s %d is 0",
                             sf == M_ELEMSIZE ? "ElementSize" : "ElementSpacing", i);
            goto done;
        }
    double D[3][3]; /* D[r][c]: row r of the direction cosines of index axis c */
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            D[r][c] = T[c * N + r];
    double det = D[0][0] * (D[1][1] * D[2][2] - D[1][2] * D[2][1]) -
                 D[0][1] * (D[1][0] * D[2][2] - D[1][2] * D[2][0]) +
                 D[0][2] * (D[1][0] * D[2][1] - D[1][1] * D[2][0]);
    if (!(fabs(det) > 1e-9)) {
        rc = vt__fail_at(NULL, VT_EFORMAT, path, "the TransformMatrix is singular (its spatial part)");
        goto done;
    }

    s = vt__source_new(path);
    if (s == NULL) {
        rc = vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
        goto done;
    }
    s->format = "metaimage";
    s->shape[0] = N == 4 ? (uint64_t)dims[3] : (uint64_t)channels;
    s->shape[1] = (uint64_t)dims[2];
    s->shape[2] = (uint64_t)dims[1];
    s->shape[3] = (uint64_t)dims[0];
    spec.interleaved = N == 3 && channels > 1;
    static const double flip[3] = {-1, -1, 1}; /* LPS -> RAS */
    memset(s->affine, 0, sizeof s->affine);
    for (int r = 0; r < 3; r++) {
        for (int c = 0; c < 3; c++)
            s->affine[4 * r + c] = flip[r] * D[r][c] * spacing[c];
        s->affine[4 * r + 3] = flip[r] * offset[r];
    }
    s->affine[15] = 1;
    for (int i = 0; i < 3; i++)
        s->spacing[2 - i] = fabs(spacing[i]);

    /* the data */
    const char *df = h.val[M_DATAFILE];
    if (strcasecmp(df, "LOCAL") == 0) {
        data_path = vt__strdup(path);
        spec.offset = L.pos;
    } else {
        const char *p = df, *t;
        int tokens = 0;
        while (vt__text_token(&p, &t) > 0)
            tokens++;
        if (df[0] == 0) {
            rc = vt__fail_at(NULL, VT_EFORMAT, path, "ElementDataFile is empty");
            goto done;
        }
        if (strncasecmp(df, "LIST", 4) == 0 && (df[4] == 0 || vt__text_space(df[4]))) {
            rc = vt__fail_at(NULL, VT_EUNSUPPORTED, path,
                             "ElementDataFile = LIST (one file per slice) is not supported");
            goto done;
        }
        if (strchr(df, '%') != NULL && tokens >= 4) {
            rc = vt__fail_at(NULL, VT_EUNSUPPORTED, path,
                             "ElementDataFile = \"%.60s\" (numbered files) is not supported",
                             df);
            goto done;
        }
        data_path = vt__path_beside(path, df);
        if (h.val[M_HEADERSIZE]) {
            int64_t hs;
            if ((rc = ints(&h, M_HEADERSIZE, &hs, 1)) != 0)
                goto done;
            if (hs == -1 && compressed && spec.stream_len == 0) {
                rc = vt__fail_at(NULL, VT_EUNSUPPORTED, path,
                                 "HeaderSize = -1 with compressed data needs CompressedDataSize");
                goto done;
            } else if (hs == -1)
                spec.at_end = true;
            else if (hs < 0) {
                rc = vt__fail_at(NULL, VT_EFORMAT, path, "HeaderSize = %lld (bytes to skip, or -1)", (long long)hs);
                goto done;
            } else
                spec.offset = (uint64_t)hs;
        }
    }
    if (data_path == NULL) {
        rc = vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
        goto done;
    }
    spec.data_path = data_path;
    if ((rc = vt__source_keep_text_header(s, L.buf, L.pos)) != 0)
        goto done;
    rc = vt__voxels_attach(s, &spec);
done:
    vt__lines_close(&L);
    for (int f = 0; f < M_COUNT; f++)
        free(h.val[f]);
    free(data_path);
    if (rc) {
        vt__source_close(s);
        return rc;
    }
    *out = s;
    return 0;
}
