/* NRRD input: `.nrrd` (header and data in one file) and `.nhdr` (header
 * naming a detached data file), NRRD0001..NRRD0005, 3-d and 4-d.
 *
 * The header is text: the magic line, then "field: value" lines, "key:=value"
 * pairs (ignored) and "#" comments, up to an empty line after which attached
 * data follow. Every field is treated as hostile: lines are bounded, numbers
 * parsed strictly, sizes checked for overflow and against the data.
 *
 * Data: encodings raw and gzip (others are VT_EUNSUPPORTED), either byte
 * order, every integer and float type (64-bit integers are narrowed to 32
 * bits, failing on a value that does not fit, as for NIfTI). "line skip"
 * skips lines of the data file; "byte skip" then skips bytes of the file
 * (raw) or of the decompressed stream (gzip), as teem does; "byte skip: -1"
 * (data at the end of the file) works for raw data only.
 *
 * Axes: NRRD lists the fastest axis first, so sizes "X Y Z" are the C-order
 * array (Z, Y, X) and become (1, Z, Y, X). A 4-d image has one non-spatial
 * axis, told by its kind (list, vector, time, ...) or by "none" among the
 * space directions: first ("C X Y Z", the channels of a voxel interleaved:
 * a channel's slab is gathered from the slab of all channels) or last
 * ("X Y Z T", (T, Z, Y, X) as stored). Without kinds or directions a 4-d
 * image is taken as X Y Z T. Colour kinds (RGB-color ...) and complex data
 * are VT_EUNSUPPORTED.
 *
 * Geometry: the space directions are the columns of the voxel-to-world
 * matrix, one per spatial axis, in the declared space; the affine is turned
 * into RAS (voxtile's NIfTI convention) by negating the world rows that the
 * space names the other way: x and y for left-posterior-superior (LPS), x for
 * left-anterior-superior (LAS). Spaces without anatomical meaning
 * (scanner-xyz, 3D-right-handed, 3D-left-handed, or only "space dimension:
 * 3") are taken as they are, like a NRRD without any space: then the axes
 * are the world axes scaled by "spacings" (1 when missing or NaN), with the
 * origin at 0 -- the .npy convention. Spaces with time (RAST ...) are
 * VT_EUNSUPPORTED. spacing = the lengths of the direction vectors.
 *
 * The text header (through its ending empty line) is kept verbatim in
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
#define NRRD_HEADER_MAX (16u << 20)

enum {
    F_TYPE,
    F_DIMENSION,
    F_SIZES,
    F_ENDIAN,
    F_ENCODING,
    F_DATAFILE,
    F_BYTESKIP,
    F_LINESKIP,
    F_SPACE,
    F_SPACEDIM,
    F_SPACEDIRS,
    F_SPACEORIGIN,
    F_SPACINGS,
    F_KINDS,
    F_COUNT
};

/* Field names with spaces removed (teem accepts "datafile" for "data file"
 * and so on), and as printed. */
static const char *const field_key[F_COUNT] = {
    "type",  "dimension",      "sizes",           "endian",      "encoding", "datafile", "byteskip",
    "lineskip", "space", "spacedimension", "spacedirections", "spaceorigin", "spacings", "kinds"};
static const char *const field_name[F_COUNT] = {
    "type",  "dimension",       "sizes",           "endian",       "encoding", "data file", "byte skip",
    "line skip", "space", "space dimension", "space directions", "space origin", "spacings", "kinds"};

typedef struct nrrd_hdr {
    const char *path;
    char *val[F_COUNT];
    unsigned line[F_COUNT];
} nrrd_hdr;

#define MAXD 4

/* Next whitespace-separated token of *p into tok (cap bytes with the NUL):
 * its length, 0 at the end, -1 when too long. */
static int next_token(const char **p, char *tok, size_t cap)
{
    const char *s;
    size_t n = vt__text_token(p, &s);
    if (n >= cap)
        return -1;
    memcpy(tok, s, n);
    tok[n] = 0;
    return (int)n;
}

/* A whole NUL-terminated token as an integer, overflow-checked; unsigned
 * without a minus sign. */
static bool parse_i64(const char *t, int64_t *v) { return vt__text_i64(t, strlen(t), v); }

static bool parse_u64(const char *t, uint64_t *v)
{
    int64_t x;
    if (t[0] == '-' || !parse_i64(t, &x))
        return false;
    *v = (uint64_t)x;
    return true;
}

/* A number from *p up to a delimiter; NaN allowed when nan_ok. */
static bool parse_f64(const char **p, double *v, bool nan_ok)
{
    const char *s = *p;
    while (vt__text_space(*s))
        s++;
    if (*s == 0 || *s == ',' || *s == ')')
        return false;
    char *end;
    double x = strtod(s, &end);
    if (end == s || (isnan(x) && !nan_ok) || isinf(x))
        return false;
    *v = x;
    *p = end;
    return true;
}

/* A vector "(a,b,c)" of exactly n finite numbers at *p (whitespace allowed
 * inside). */
static bool parse_vector(const char **p, double *v, int n)
{
    const char *s = *p;
    while (vt__text_space(*s))
        s++;
    if (*s++ != '(')
        return false;
    for (int i = 0; i < n; i++) {
        if (!parse_f64(&s, &v[i], false))
            return false;
        while (vt__text_space(*s))
            s++;
        if (*s != (i + 1 < n ? ',' : ')'))
            return false;
        s++;
    }
    *p = s;
    return true;
}

static void lower_collapse(char *s)
{
    /* lower case, runs of blanks made one space */
    char *w = s;
    bool blank = false;
    for (const char *r = s; *r; r++) {
        if (vt__text_space(*r)) {
            blank = true;
            continue;
        }
        if (blank && w != s)
            *w++ = ' ';
        blank = false;
        *w++ = (char)(*r >= 'A' && *r <= 'Z' ? *r - 'A' + 'a' : *r);
    }
    *w = 0;
}

static const struct {
    const char *name;
    vt_dtype dtype;
    size_t file_bytes;
} nrrd_types[] = {
    {"signed char", VT_I8, 1},         {"int8", VT_I8, 1},
    {"int8_t", VT_I8, 1},              {"uchar", VT_U8, 1},
    {"unsigned char", VT_U8, 1},       {"uint8", VT_U8, 1},
    {"uint8_t", VT_U8, 1},             {"short", VT_I16, 2},
    {"short int", VT_I16, 2},          {"signed short", VT_I16, 2},
    {"signed short int", VT_I16, 2},   {"int16", VT_I16, 2},
    {"int16_t", VT_I16, 2},            {"ushort", VT_U16, 2},
    {"unsigned short", VT_U16, 2},     {"unsigned short int", VT_U16, 2},
    {"uint16", VT_U16, 2},             {"uint16_t", VT_U16, 2},
    {"int", VT_I32, 4},                {"signed int", VT_I32, 4},
    {"int32", VT_I32, 4},              {"int32_t", VT_I32, 4},
    {"uint", VT_U32, 4},               {"unsigned int", VT_U32, 4},
    {"uint32", VT_U32, 4},             {"uint32_t", VT_U32, 4},
    {"longlong", VT_I32, 8},           {"long long", VT_I32, 8},
    {"long long int", VT_I32, 8},      {"signed long long", VT_I32, 8},
    {"signed long long int", VT_I32, 8}, {"int64", VT_I32, 8},
    {"int64_t", VT_I32, 8},            {"ulonglong", VT_U32, 8},
    {"unsigned long long", VT_U32, 8}, {"unsigned long long int", VT_U32, 8},
    {"uint64", VT_U32, 8},             {"uint64_t", VT_U32, 8},
    {"float", VT_F32, 4},              {"double", VT_F64, 8},
};

/* Kinds: spatial, unknown, usable as channels/volumes, or unsupported. */
enum { K_SPATIAL, K_UNKNOWN, K_CHANNELS, K_COLOR, K_COMPLEX, K_BAD };

static int kind_class(const char *k)
{
    static const char *const channels[] = {
        "time", "list", "point", "vector", "covariant-vector", "normal", "stub", "scalar", "2-vector",
        "3-vector", "3-gradient", "3-normal", "4-vector", "quaternion", "2d-symmetric-matrix",
        "2d-masked-symmetric-matrix", "2d-matrix", "2d-masked-matrix", "3d-symmetric-matrix",
        "3d-masked-symmetric-matrix", "3d-matrix", "3d-masked-matrix"};
    static const char *const colors[] = {"3-color", "rgb-color", "hsv-color", "xyz-color", "4-color",
                                         "rgba-color"};
    if (strcasecmp(k, "domain") == 0 || strcasecmp(k, "space") == 0)
        return K_SPATIAL;
    if (strcmp(k, "???") == 0 || strcasecmp(k, "none") == 0)
        return K_UNKNOWN;
    for (size_t i = 0; i < sizeof channels / sizeof channels[0]; i++)
        if (strcasecmp(k, channels[i]) == 0)
            return K_CHANNELS;
    for (size_t i = 0; i < sizeof colors / sizeof colors[0]; i++)
        if (strcasecmp(k, colors[i]) == 0)
            return K_COLOR;
    if (strcasecmp(k, "complex") == 0)
        return K_COMPLEX;
    return K_BAD;
}

/* Step 1: read the header: the magic line and the fields up to the empty line (or
 * the end of the file). *data_off: where attached data start; *ended: an
 * empty line was seen. */
static int read_header(vt_lines *L, nrrd_hdr *h, bool *ended)
{
    const char *path = h->path;
    char *line;
    int rc = vt__lines_next(L, &line);
    if (rc < 0)
        return rc;
    if (rc == 0 || strncmp(line, "NRRD", 4) != 0)
        return vt__fail_at(NULL, VT_EFORMAT, path, "not a NRRD file (it does not start with \"NRRD000\")");
    bool eight = strlen(line) == 8;
    if (!eight || strncmp(line, "NRRD000", 7) != 0 || line[7] < '1' || line[7] > '5')
        return vt__fail_at(NULL, eight && line[7] > '5' && line[7] <= '9' ? VT_EUNSUPPORTED : VT_EFORMAT, path,
                           "bad NRRD magic \"%.16s\" (NRRD0001..NRRD0005 are read)", line);
    *ended = false;
    while ((rc = vt__lines_next(L, &line)) == 1) {
        if (line[0] == 0) {
            *ended = true;
            return 0;
        }
        if (line[0] == '#')
            continue;
        char *kv = strstr(line, ":="), *sep = strstr(line, ": ");
        if (kv && (sep == NULL || kv < sep))
            continue; /* key/value pair */
        if (sep == NULL) {
            size_t n = strlen(line);
            if (n > 0 && line[n - 1] == ':')
                sep = line + n - 1; /* "field:" with an empty value */
            else
                return vt__fail_at(NULL, VT_EFORMAT, path, "header line %u is not \"field: value\": \"%.60s\"",
                                   L->lineno, line);
        }
        *sep = 0;
        char *value = vt__text_trim(sep + 1);
        /* the field's name without blanks, lower case */
        char key[64];
        size_t k = 0;
        bool too_long = false;
        for (const char *c = line; *c; c++) {
            if (vt__text_space(*c))
                continue;
            if (k + 1 >= sizeof key) {
                too_long = true;
                break;
            }
            key[k++] = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
        }
        key[k] = 0;
        if (too_long)
            continue; /* no field has so long a name: ignored like any unknown field */
        for (int f = 0; f < F_COUNT; f++) {
            if (strcmp(key, field_key[f]) != 0)
                continue;
            if (h->val[f])
                return vt__fail_at(NULL, VT_EFORMAT, path, "field \"%s\" given twice (header lines %u and %u)",
                                   field_name[f], h->line[f], L->lineno);
            h->val[f] = vt__strdup(value);
            if (h->val[f] == NULL)
                return vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
            h->line[f] = L->lineno;
            /* "data file: LIST": file names follow to the end; refused later */
            if (f == F_DATAFILE && strncmp(value, "LIST", 4) == 0 && (value[4] == 0 || vt__text_space(value[4])))
                return 0;
        }
        /* other fields (content, centers, units, thicknesses, axis mins ...) are ignored */
    }
    return rc < 0 ? rc : 0;
}

/* Everything decided from the header. */
typedef struct nrrd_info {
    int dim;
    uint64_t sizes[MAXD];
    vt_voxels_spec spec;
    char *data_path;
    int nonspatial; /* index of the non-spatial axis of a 4-d image, -1 for 3-d */
    int sp[3];      /* indices of the spatial axes x, y, z */
} nrrd_info;

static int parse_type(nrrd_hdr *h, nrrd_info *in)
{
    const char *path = h->path;
    if (h->val[F_TYPE] == NULL)
        return vt__fail_at(NULL, VT_EFORMAT, path, "the header has no \"type\" field");
    lower_collapse(h->val[F_TYPE]);
    for (size_t i = 0; i < sizeof nrrd_types / sizeof nrrd_types[0]; i++)
        if (strcmp(h->val[F_TYPE], nrrd_types[i].name) == 0) {
            in->spec.dtype = nrrd_types[i].dtype;
            in->spec.file_elem_bytes = nrrd_types[i].file_bytes;
            return 0;
        }
    return vt__fail_at(NULL, VT_EUNSUPPORTED, path, "NRRD type \"%.40s\" is not supported", h->val[F_TYPE]);
}

static int parse_dims(nrrd_hdr *h, nrrd_info *in)
{
    const char *path = h->path;
    uint64_t d;
    if (h->val[F_DIMENSION] == NULL)
        return vt__fail_at(NULL, VT_EFORMAT, path, "the header has no \"dimension\" field");
    if (!parse_u64(h->val[F_DIMENSION], &d) || d == 0)
        return vt__fail_at(NULL, VT_EFORMAT, path, "dimension \"%.40s\" is not a positive integer",
                           h->val[F_DIMENSION]);
    if (d != 3 && d != 4)
        return vt__fail_at(NULL, VT_EUNSUPPORTED, path, "a %llu-d NRRD is not supported (3-d and 4-d images are)",
                           (unsigned long long)d);
    in->dim = (int)d;
    if (h->val[F_SIZES] == NULL)
        return vt__fail_at(NULL, VT_EFORMAT, path, "the header has no \"sizes\" field");
    const char *p = h->val[F_SIZES];
    char tok[64];
    for (int i = 0; i <= in->dim; i++) {
        int n = next_token(&p, tok, sizeof tok);
        if (i == in->dim) {
            if (n != 0)
                return vt__fail_at(NULL, VT_EFORMAT, path,
                                   "\"sizes\" lists more than the %d sizes of the dimension",
                                   in->dim);
            break;
        }
        if (n == 0)
            return vt__fail_at(NULL, VT_EFORMAT, path, "\"sizes\" lists %d sizes, the dimension is %d", i, in->dim);
        if (n < 0 || !parse_u64(tok, &in->sizes[i]) || in->sizes[i] == 0)
            return vt__fail_at(NULL, VT_EFORMAT, path, "size %d \"%.30s\" is not a positive integer", i,
                               n < 0 ? "(too long)" : tok);
    }
    return 0;
}

static int parse_encoding(nrrd_hdr *h, nrrd_info *in)
{
    const char *path = h->path;
    const char *e = h->val[F_ENCODING];
    if (e == NULL)
        return vt__fail_at(NULL, VT_EFORMAT, path, "the header has no \"encoding\" field");
    if (strcasecmp(e, "raw") == 0)
        in->spec.codec = VT_VOXELS_RAW;
    else if (strcasecmp(e, "gzip") == 0 || strcasecmp(e, "gz") == 0)
        in->spec.codec = VT_VOXELS_GZIP;
    else
        return vt__fail_at(NULL, VT_EUNSUPPORTED, path,
                           "NRRD encoding \"%.30s\" is not supported (raw and gzip are)", e);
    /* byte order: needed for elements over one byte */
    const char *en = h->val[F_ENDIAN];
    if (en == NULL) {
        if (in->spec.file_elem_bytes > 1)
            return vt__fail_at(NULL, VT_EFORMAT, path, "the header has no \"endian\" field (needed for type %s)",
                               h->val[F_TYPE]);
    } else if (strcasecmp(en, "little") == 0) {
        in->spec.big_endian = false;
    } else if (strcasecmp(en, "big") == 0) {
        in->spec.big_endian = true;
    } else {
        return vt__fail_at(NULL, VT_EFORMAT, path, "endian \"%.30s\" is neither little nor big", en);
    }
    /* skips */
    if (h->val[F_LINESKIP]) {
        if (!parse_u64(h->val[F_LINESKIP], &in->spec.line_skip))
            return vt__fail_at(NULL, VT_EFORMAT, path, "line skip \"%.30s\" is not a count of lines",
                               h->val[F_LINESKIP]);
    }
    if (h->val[F_BYTESKIP]) {
        int64_t b;
        if (!parse_i64(h->val[F_BYTESKIP], &b))
            return vt__fail_at(NULL, VT_EFORMAT, path, "byte skip \"%.30s\" is not an integer", h->val[F_BYTESKIP]);
        if (b == -1) {
            if (in->spec.codec != VT_VOXELS_RAW)
                return vt__fail_at(NULL, VT_EUNSUPPORTED, path,
                                   "byte skip -1 (data at the end) works with raw encoding only");
            in->spec.at_end = true;
        } else if (b < 0) {
            return vt__fail_at(NULL, VT_EUNSUPPORTED, path,
                               "byte skip %lld is not supported (-1 or a count of bytes)",
                               (long long)b);
        } else {
            in->spec.byte_skip = (uint64_t)b;
        }
    }
    return 0;
}

/* The data file: detached (relative to the header's folder) or attached. */
static int parse_datafile(nrrd_hdr *h, nrrd_info *in, bool ended, uint64_t header_end, bool nhdr)
{
    const char *path = h->path;
    const char *df = h->val[F_DATAFILE];
    if (df == NULL) {
        if (nhdr)
            return vt__fail_at(NULL, VT_EFORMAT, path, "a .nhdr header needs a \"data file\" field");
        if (!ended)
            return vt__fail_at(NULL, VT_EFORMAT, path,
                               "the header has no empty line ending it: no data follow (truncated?)");
        in->data_path = vt__strdup(path);
        in->spec.offset = header_end;
    } else {
        if (df[0] == 0)
            return vt__fail_at(NULL, VT_EFORMAT, path, "\"data file\" is empty");
        if (strncmp(df, "LIST", 4) == 0 && (df[4] == 0 || vt__text_space(df[4])))
            return vt__fail_at(NULL, VT_EUNSUPPORTED, path, "data split over a LIST of files is not supported");
        /* "data file: <format> <min> <max> <step> [<subdim>]": several files */
        int tokens = 0;
        const char *p = df;
        char tok[8];
        while (next_token(&p, tok, sizeof tok) != 0)
            tokens++;
        if (strchr(df, '%') != NULL && tokens >= 4)
            return vt__fail_at(NULL, VT_EUNSUPPORTED, path,
                               "data split over numbered files (\"%.60s\") is not supported",
                               df);
        in->data_path = vt__path_beside(path, df);
        in->spec.offset = 0;
    }
    if (in->data_path == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
    in->spec.data_path = in->data_path;
    return 0;
}

/* Which axes are spatial; kinds and "none" directions decide. */
static int parse_axes(nrrd_hdr *h, nrrd_info *in, bool dir_none[MAXD])
{
    const char *path = h->path;
    int cls[MAXD];
    char tok[64];
    for (int i = 0; i < MAXD; i++)
        cls[i] = K_UNKNOWN;
    if (h->val[F_KINDS]) {
        const char *p = h->val[F_KINDS];
        for (int i = 0; i <= in->dim; i++) {
            int n = next_token(&p, tok, sizeof tok);
            if (i == in->dim) {
                if (n != 0)
                    return vt__fail_at(NULL, VT_EFORMAT, path, "\"kinds\" lists more than %d kinds", in->dim);
                break;
            }
            if (n <= 0)
                return vt__fail_at(NULL, VT_EFORMAT, path, "\"kinds\" lists %d kinds, the dimension is %d", i,
                                   in->dim);
            cls[i] = kind_class(tok);
            if (cls[i] == K_BAD)
                return vt__fail_at(NULL, VT_EFORMAT, path, "unknown kind \"%s\" of axis %d", tok, i);
            if (cls[i] == K_COLOR)
                return vt__fail_at(NULL, VT_EUNSUPPORTED, path,
                                   "axis %d of kind %s: colour images are not supported", i,
                                   tok);
            if (cls[i] == K_COMPLEX)
                return vt__fail_at(NULL, VT_EUNSUPPORTED, path, "complex data (axis %d) are not supported", i);
        }
    }
    bool ns[MAXD];
    int count = 0;
    for (int i = 0; i < in->dim; i++) {
        ns[i] = cls[i] == K_CHANNELS || dir_none[i];
        if (cls[i] == K_SPATIAL && dir_none[i])
            return vt__fail_at(NULL, VT_EFORMAT, path, "axis %d is of a spatial kind but has no space direction",
                               i);
        count += ns[i];
    }
    if (in->dim == 3) {
        if (count)
            return vt__fail_at(NULL, VT_EUNSUPPORTED, path,
                               "a 3-d NRRD with a non-spatial axis (a 2-d image with channels) is not supported");
        in->nonspatial = -1;
        for (int i = 0; i < 3; i++)
            in->sp[i] = i;
        return 0;
    }
    if (count > 1)
        return vt__fail_at(NULL, VT_EUNSUPPORTED, path, "a 4-d NRRD with %d non-spatial axes is not supported",
                           count);
    if (count == 0 && cls[3] == K_SPATIAL)
        return vt__fail_at(NULL, VT_EUNSUPPORTED, path, "a 4-d NRRD with 4 spatial axes is not supported");
    int a = 3; /* no hint: X Y Z T, as NIfTI */
    if (count == 1)
        for (int i = 0; i < 4; i++)
            if (ns[i])
                a = i;
    if (a == 1 || a == 2)
        return vt__fail_at(NULL, VT_EUNSUPPORTED, path,
                           "a non-spatial axis between spatial ones (axis %d of 4) is not supported: only first "
                           "(channels of a voxel) or last (volumes)", a);
    in->nonspatial = a;
    for (int i = 0, j = 0; i < 4; i++)
        if (i != a)
            in->sp[j++] = i;
    return 0;
}

/* The space: which world rows to negate to reach RAS. */
static int parse_space(nrrd_hdr *h, double flip[3], bool *has_space)
{
    const char *path = h->path;
    flip[0] = flip[1] = flip[2] = 1;
    *has_space = false;
    const char *sp = h->val[F_SPACE];
    if (sp) {
        static const struct {
            const char *name;
            double fx, fy;
        } spaces[] = {
            {"right-anterior-superior", 1, 1}, {"RAS", 1, 1},        {"left-anterior-superior", -1, 1},
            {"LAS", -1, 1},                    {"left-posterior-superior", -1, -1}, {"LPS", -1, -1},
            {"scanner-xyz", 1, 1},             {"3D-right-handed", 1, 1},           {"3D-left-handed", 1, 1},
        };
        static const char *const timed[] = {"right-anterior-superior-time", "RAST", "left-anterior-superior-time",
                                            "LAST", "left-posterior-superior-time", "LPST", "scanner-xyz-time",
                                            "3D-right-handed-time", "3D-left-handed-time"};
        for (size_t i = 0; i < sizeof timed / sizeof timed[0]; i++)
            if (strcasecmp(sp, timed[i]) == 0)
                return vt__fail_at(NULL, VT_EUNSUPPORTED, path, "space \"%s\" (with time) is not supported", sp);
        for (size_t i = 0; i < sizeof spaces / sizeof spaces[0]; i++)
            if (strcasecmp(sp, spaces[i].name) == 0) {
                flip[0] = spaces[i].fx;
                flip[1] = spaces[i].fy;
                *has_space = true;
            }
        if (!*has_space)
            return vt__fail_at(NULL, VT_EFORMAT, path, "unknown space \"%.40s\"", sp);
    }
    if (h->val[F_SPACEDIM]) {
        uint64_t d;
        if (!parse_u64(h->val[F_SPACEDIM], &d))
            return vt__fail_at(NULL, VT_EFORMAT, path, "space dimension \"%.30s\" is not an integer",
                               h->val[F_SPACEDIM]);
        if (d != 3)
            return vt__fail_at(NULL, VT_EUNSUPPORTED, path, "space dimension %llu is not supported (3 is)",
                               (unsigned long long)d);
        *has_space = true;
    }
    return 0;
}

/* Space directions into dirs (3 per axis); dir_none marks "none". */
static int parse_directions(nrrd_hdr *h, int dim, double dirs[MAXD][3], bool dir_none[MAXD])
{
    const char *path = h->path;
    const char *p = h->val[F_SPACEDIRS];
    for (int i = 0; i < dim; i++) {
        while (vt__text_space(*p))
            p++;
        if (strncasecmp(p, "none", 4) == 0 && (p[4] == 0 || vt__text_space(p[4]))) {
            dir_none[i] = true;
            p += 4;
            continue;
        }
        if (*p == 0)
            return vt__fail_at(NULL, VT_EFORMAT, path, "\"space directions\" lists %d of the %d axes", i, dim);
        if (!parse_vector(&p, dirs[i], 3))
            return vt__fail_at(NULL, VT_EFORMAT, path,
                               "space direction %d is not a vector \"(x,y,z)\" of finite numbers",
                               i);
    }
    while (vt__text_space(*p))
        p++;
    if (*p)
        return vt__fail_at(NULL, VT_EFORMAT, path, "\"space directions\" lists more than the %d axes", dim);
    return 0;
}

/* The geometry fields, parsed. */
typedef struct nrrd_geometry {
    bool has_dirs;
    double dirs[MAXD][3]; /* space directions, per axis */
    bool dir_none[MAXD];  /* "none": a non-spatial axis */
    double flip[3];       /* world rows negated to reach RAS */
    double spacings[MAXD];
    double origin[3];
} nrrd_geometry;

/* Step 2: the fields that say what the image is -- type, dimension and
 * sizes, encoding, which axes are spatial, the geometry -- checked against
 * each other. */
static int parse_fields(nrrd_hdr *h, nrrd_info *in, nrrd_geometry *g)
{
    const char *path = h->path;
    int rc;
    if ((rc = parse_type(h, in)) != 0 || (rc = parse_dims(h, in)) != 0 || (rc = parse_encoding(h, in)) != 0)
        return rc;
    memset(g, 0, sizeof *g);
    g->has_dirs = h->val[F_SPACEDIRS] != NULL;
    if (g->has_dirs && (rc = parse_directions(h, in->dim, g->dirs, g->dir_none)) != 0)
        return rc;
    bool has_space;
    if ((rc = parse_space(h, g->flip, &has_space)) != 0)
        return rc;
    if (g->has_dirs && !has_space)
        return vt__fail_at(NULL, VT_EFORMAT, path, "\"space directions\" without \"space\" or \"space dimension\"");
    if (g->has_dirs && h->val[F_SPACINGS])
        return vt__fail_at(NULL, VT_EFORMAT, path, "both \"space directions\" and \"spacings\" are given");
    if ((rc = parse_axes(h, in, g->dir_none)) != 0)
        return rc;
    if (g->has_dirs) {
        int n = 0;
        for (int i = 0; i < in->dim; i++)
            n += !g->dir_none[i];
        if (n != 3)
            return vt__fail_at(NULL, VT_EFORMAT, path, "\"space directions\" give %d spatial axes; 3 are needed",
                               n);
    }
    for (int i = 0; i < MAXD; i++)
        g->spacings[i] = 1;
    if (h->val[F_SPACINGS]) {
        const char *p = h->val[F_SPACINGS];
        for (int i = 0; i < in->dim; i++)
            if (!parse_f64(&p, &g->spacings[i], true))
                return vt__fail_at(NULL, VT_EFORMAT, path, "spacing %d is not a number", i);
        while (vt__text_space(*p))
            p++;
        if (*p)
            return vt__fail_at(NULL, VT_EFORMAT, path, "\"spacings\" lists more than the %d axes", in->dim);
    }
    if (h->val[F_SPACEORIGIN]) {
        const char *p = h->val[F_SPACEORIGIN];
        bool ok = parse_vector(&p, g->origin, 3);
        while (ok && vt__text_space(*p))
            p++;
        if (!ok || *p)
            return vt__fail_at(NULL, VT_EFORMAT, path,
                               "space origin \"%.60s\" is not a vector \"(x,y,z)\" of finite numbers",
                               h->val[F_SPACEORIGIN]);
    }
    return 0;
}

/* Step 3: the image in the source: its shape and its affine, whose column
 * c is the direction of spatial axis c, rows flipped to RAS. */
static int describe(const char *path, nrrd_info *in, const nrrd_geometry *g, vt_source *s)
{
    s->format = "nrrd";
    s->shape[0] = in->nonspatial >= 0 ? in->sizes[in->nonspatial] : 1;
    s->shape[1] = in->sizes[in->sp[2]];
    s->shape[2] = in->sizes[in->sp[1]];
    s->shape[3] = in->sizes[in->sp[0]];
    in->spec.interleaved = in->nonspatial == 0;
    double col[3][3];
    for (int c = 0; c < 3; c++) {
        int a = in->sp[c];
        for (int r = 0; r < 3; r++)
            col[c][r] = g->has_dirs ? g->dirs[a][r]
                                    : (r == c ? (isnan(g->spacings[a]) ? 1.0 : g->spacings[a]) : 0.0);
        double len = sqrt(col[c][0] * col[c][0] + col[c][1] * col[c][1] + col[c][2] * col[c][2]);
        if (!(len > 0) || !isfinite(len))
            return vt__fail_at(NULL, VT_EFORMAT, path, "axis %d has a %s of length %g", a,
                               g->has_dirs ? "space direction" : "spacing", len);
        s->spacing[2 - c] = len;
    }
    double det = col[0][0] * (col[1][1] * col[2][2] - col[1][2] * col[2][1]) -
                 col[1][0] * (col[0][1] * col[2][2] - col[0][2] * col[2][1]) +
                 col[2][0] * (col[0][1] * col[1][2] - col[0][2] * col[1][1]);
    if (!(fabs(det) > 1e-12 * s->spacing[0] * s->spacing[1] * s->spacing[2]))
        return vt__fail_at(NULL, VT_EFORMAT, path, "the space directions are not independent (a degenerate grid)");
    memset(s->affine, 0, sizeof s->affine);
    for (int r = 0; r < 3; r++) {
        for (int c = 0; c < 3; c++)
            s->affine[4 * r + c] = g->flip[r] * col[c][r];
        s->affine[4 * r + 3] = g->flip[r] * g->origin[r];
    }
    s->affine[15] = 1;
    return 0;
}

/* Opening goes in steps: read the header's lines (read_header), parse the
 * fields (parse_fields), describe the image in the source (describe), then
 * find the data file and attach the voxels (parse_datafile, voxels.c). */
int vt__nrrd_open(const char *path, vt_source **out)
{
    *out = NULL;
    nrrd_hdr h;
    memset(&h, 0, sizeof h);
    h.path = path;
    nrrd_info in;
    memset(&in, 0, sizeof in);
    nrrd_geometry g;
    vt_lines L;
    vt_source *s = NULL;
    bool ended = false;
    int rc = vt__lines_open(&L, path, NRRD_HEADER_MAX);
    if (rc)
        return rc;
    if ((rc = read_header(&L, &h, &ended)) == 0 && (rc = parse_fields(&h, &in, &g)) == 0) {
        s = vt__source_new(path);
        rc = s ? describe(path, &in, &g, s) : vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
    }
    if (rc == 0)
        rc = parse_datafile(&h, &in, ended, L.pos, vt__ends_with(path, ".nhdr"));
    if (rc == 0)
        rc = vt__source_keep_text_header(s, L.buf, L.pos);
    if (rc == 0)
        rc = vt__voxels_attach(s, &in.spec);
    vt__lines_close(&L);
    for (int f = 0; f < F_COUNT; f++)
        free(h.val[f]);
    free(in.data_path);
    return vt__source_done(s, rc, out);
}
