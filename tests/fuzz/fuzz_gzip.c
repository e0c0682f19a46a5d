/* fuzz_gzip: the compressed voxel streams. The first input byte picks a
 * template -- a valid header for a small image, of NIfTI (.nii.gz: the
 * header is a gzip member of its own; int64/uint64 narrowing, big-endian,
 * NIfTI-2, header extensions read from the stream), NRRD (.nrrd,
 * "encoding: gzip", byte skip in the decompressed stream, interleaved
 * channels) or MetaImage (.mha, CompressedData = True: one zlib stream, with
 * and without CompressedDataSize) -- and the rest of the input is the
 * compressed stream that follows it. The file is opened through
 * vt__source_open and read slab by slab: truncated, corrupt, short or long
 * streams must be reported, never crash or hang. */
#include "fuzz_source.h"

#include <zlib.h>

typedef struct nii_t {
    int version;    /* 1 or 2 */
    bool big;       /* big-endian header */
    int datatype, bitpix;
    int64_t dim[5]; /* dim[0] = number of dimensions */
    uint64_t vox_offset;
    float slope;
    bool ext;       /* extension flag set: bytes 352..vox_offset are extensions */
} nii_t;

static const nii_t niis[] = {
    {1, false, 2, 8, {3, 6, 5, 4}, 352, 0, false},
    {1, false, 4, 16, {3, 4, 3, 5}, 352, 2.0f, false},
    {1, false, 16, 32, {4, 3, 4, 2, 2}, 352, 0, false},
    {1, false, 1024, 64, {3, 2, 3, 2}, 352, 0, false},
    {1, true, 64, 64, {3, 2, 2, 3}, 352, 0, false},
    {2, false, 512, 16, {3, 5, 4, 3}, 544, 0, false},
    {1, false, 2, 8, {3, 4, 4, 2}, 400, 0, true},
    {1, true, 1280, 64, {4, 2, 2, 2, 3}, 352, 0, false},
};
#define NNII (sizeof niis / sizeof niis[0])

static const char *const texts[] = {
    "NRRD0004\ntype: uint16\ndimension: 3\nsizes: 5 4 3\nendian: little\nencoding: gzip\n\n",
    "NRRD0005\ntype: float\ndimension: 4\nsizes: 2 3 4 2\nkinds: list domain domain domain\n"
    "endian: little\nencoding: gz\nbyte skip: 3\nspace: left-posterior-superior\n"
    "space directions: none (1,0,0) (0,1,0) (0,0,2)\nspace origin: (1,2,3)\n\n",
    "NRRD0004\ntype: int64\ndimension: 3\nsizes: 3 2 2\nendian: big\nencoding: gzip\n\n",
    "ObjectType = Image\nNDims = 3\nDimSize = 5 4 3\nElementType = MET_SHORT\nBinaryData = True\n"
    "CompressedData = True\nElementDataFile = LOCAL\n",
    "ObjectType = Image\nNDims = 3\nDimSize = 3 2 2\nElementNumberOfChannels = 2\nElementType = MET_FLOAT\n"
    "CompressedData = True\nCompressedDataSize = %zu\nElementSpacing = 1 2 3\nElementDataFile = LOCAL\n",
    "ObjectType = Image\nNDims = 4\nDimSize = 2 2 2 2\nElementType = MET_ULONG_LONG\n"
    "BinaryDataByteOrderMSB = True\nCompressedData = True\nElementDataFile = LOCAL\n",
};
#define NTEXT (sizeof texts / sizeof texts[0])

static void put(unsigned char *h, size_t off, uint64_t v, int n, bool big)
{
    for (int i = 0; i < n; i++)
        h[off + (size_t)(big ? n - 1 - i : i)] = (unsigned char)(v >> (8 * i));
}

static void putf32(unsigned char *h, size_t off, float f, bool big)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    put(h, off, b, 4, big);
}

static void putf64(unsigned char *h, size_t off, double f, bool big)
{
    uint64_t b;
    memcpy(&b, &f, 8);
    put(h, off, b, 8, big);
}

/* The uncompressed bytes before the voxels: header, extender, extensions. */
static size_t nii_header(const nii_t *t, unsigned char *h)
{
    memset(h, 0, 1024);
    bool big = t->big;
    if (t->version == 1) {
        put(h, 0, 348, 4, big);
        for (int i = 0; i < 5; i++)
            put(h, 40 + 2 * (size_t)i, (uint64_t)(i <= t->dim[0] ? t->dim[i] : 1), 2, big);
        put(h, 70, (uint64_t)t->datatype, 2, big);
        put(h, 72, (uint64_t)t->bitpix, 2, big);
        for (int i = 0; i < 4; i++)
            putf32(h, 76 + 4 * (size_t)i, 1.0f + (float)i * 0.5f, big);
        putf32(h, 108, (float)t->vox_offset, big);
        putf32(h, 112, t->slope, big);
        put(h, 252, 1, 2, big); /* qform_code */
        memcpy(h + 344, "n+1", 4);
    } else {
        put(h, 0, 540, 4, big);
        memcpy(h + 4, "n+2\0\r\n\032\n", 8);
        put(h, 12, (uint64_t)t->datatype, 2, big);
        put(h, 14, (uint64_t)t->bitpix, 2, big);
        for (int i = 0; i < 5; i++)
            put(h, 16 + 8 * (size_t)i, (uint64_t)(i <= t->dim[0] ? t->dim[i] : 1), 8, big);
        for (int i = 0; i < 4; i++)
            putf64(h, 104 + 8 * (size_t)i, 1.0 + i, big);
        put(h, 168, t->vox_offset, 8, big);
        put(h, 348, 2, 4, big); /* sform_code */
        putf64(h, 400, 1.0, big);
        putf64(h, 440, 1.0, big);
        putf64(h, 480, 1.0, big);
    }
    size_t hl = t->version == 1 ? 348 : 540;
    if (t->ext) { /* extender, then extensions up to vox_offset: only their first 8 bytes here */
        h[hl] = 1;
        put(h, hl + 4, t->vox_offset - hl - 4, 4, big);
        put(h, hl + 8, 6, 4, big);
        return hl + 12;
    }
    return hl + 4;
}

/* A gzip member holding @p n bytes. */
static size_t gzip_member(const unsigned char *src, size_t n, unsigned char *dst, size_t cap)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    FZ_CHECK(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) == Z_OK, "deflateInit2");
    z.next_in = (unsigned char *)src;
    z.avail_in = (uInt)n;
    z.next_out = dst;
    z.avail_out = (uInt)cap;
    FZ_CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END, "deflate");
    size_t out = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    unsigned sel = data[0] % (NNII + NTEXT);
    const uint8_t *rest = data + 1;
    size_t rlen = size - 1;
    unsigned char pre[2048];
    size_t plen;
    const char *name;
    if (sel < NNII) {
        unsigned char h[1024];
        size_t hl = nii_header(&niis[sel], h);
        plen = gzip_member(h, hl, pre, sizeof pre);
        name = "in.nii.gz";
    } else {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        plen = (size_t)snprintf((char *)pre, sizeof pre, texts[sel - NNII], rlen); /* %zu: the stream's size */
#pragma GCC diagnostic pop
        name = sel - NNII < 3 ? "in.nrrd" : "in.mha";
    }
    unsigned char *file = malloc(plen + rlen + 1);
    FZ_CHECK(file != NULL, "out of memory");
    memcpy(file, pre, plen);
    memcpy(file + plen, rest, rlen);
    fz_try_file(0, name, file, plen + rlen, (unsigned)XXH3_64bits(data, size));
    free(file);
    return 0;
}
