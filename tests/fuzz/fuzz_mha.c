/* fuzz_mha: arbitrary bytes as a MetaImage file, opened through the image
 * source interface (vt__source_open) and read slab by slab -- as a .mha
 * (ElementDataFile = LOCAL: the data follow the header), and, when the text
 * names another data file, also as a .mhd. The folder holds "d.raw" and
 * "d.zraw" (zlib): the bytes after the ElementDataFile line, for headers
 * that name them. */
#include "fuzz_source.h"

#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    unsigned seed = (unsigned)XXH3_64bits(data, size);
    const uint8_t *body = fz_find(data, size, "ElementDataFile");
    if (body) {
        const uint8_t *nl = memchr(body, '\n', size - (size_t)(body - data));
        body = nl ? nl + 1 : data + size;
    } else
        body = data;
    size_t blen = size - (size_t)(body - data);
    const char *raw = fz_path(2, "d.raw"), *zraw = fz_path(3, "d.zraw");
    fz_put_file(raw, body, blen);
    uLongf zl = compressBound((uLong)blen);
    unsigned char *z = malloc(zl);
    FZ_CHECK(z && compress2(z, &zl, body, (uLong)blen, 1) == Z_OK, "zlib");
    fz_put_file(zraw, z, zl);
    free(z);

    fz_try_file(0, "in.mha", data, size, seed);
    const uint8_t *df = fz_find(data, size, "ElementDataFile");
    if (df && !fz_find(df, size - (size_t)(df - data), "LOCAL"))
        fz_try_file(1, "in.mhd", data, size, seed >> 1);
    unlink(raw);
    unlink(zraw);
    return 0;
}
