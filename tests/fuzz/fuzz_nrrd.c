/* fuzz_nrrd: arbitrary bytes as a NRRD file, opened through the image source
 * interface (vt__source_open) and read slab by slab -- as an attached .nrrd,
 * and, when the text names a data file, also as a detached .nhdr. The folder
 * holds a data file "d.raw" (and "d.raw.gz"): the bytes after the header's
 * empty line, raw and gzipped, for headers that name them. */
#include "fuzz_source.h"

#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    unsigned seed = (unsigned)XXH3_64bits(data, size);
    const uint8_t *body = fz_find(data, size, "\n\n");
    body = body ? body + 2 : data;
    size_t blen = size - (size_t)(body - data);
    const char *raw = fz_path(2, "d.raw"), *rawgz = fz_path(3, "d.raw.gz");
    fz_put_file(raw, body, blen);
    gzFile g = gzopen(rawgz, "wb1");
    FZ_CHECK(g != NULL, "cannot write %s", rawgz);
    if (blen)
        gzwrite(g, body, (unsigned)blen);
    gzclose(g);

    fz_try_file(0, "in.nrrd", data, size, seed);
    if (fz_find(data, size, "data file") || fz_find(data, size, "datafile"))
        fz_try_file(1, "in.nhdr", data, size, seed >> 1);
    unlink(raw);
    unlink(rawgz);
    return 0;
}
