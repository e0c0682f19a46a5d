/* fuzz_nifti: arbitrary bytes as a NIfTI-1/2 file, opened through the image
 * source interface (vt__source_open, as the converter does) and read slab by
 * slab: as a .nii, the same bytes gzipped as a .nii.gz, and -- when the magic
 * says header/image pair (ni1 / ni2) -- as a .hdr with the bytes after the
 * header as its .img. */
#include "fuzz_source.h"

#include <zlib.h>

static int write_gz(const char *path, const uint8_t *data, size_t size)
{
    gzFile g = gzopen(path, "wb1");
    if (g == NULL)
        return -1;
    int ok = size == 0 || gzwrite(g, data, (unsigned)size) == (int)size;
    return gzclose(g) == Z_OK && ok ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    unsigned seed = (unsigned)XXH3_64bits(data, size);

    fz_try_file(0, "in.nii", data, size, seed);

    const char *gz = fz_path(1, "in.nii.gz");
    FZ_CHECK(write_gz(gz, data, size) == 0, "cannot write %s", gz);
    fz_try_source(gz, seed >> 1);
    unlink(gz);

    size_t hl = 0;
    if (size >= 348 && memcmp(data + 344, "ni1\0", 4) == 0)
        hl = 348;
    else if (size >= 540 && memcmp(data + 4, "ni2\0", 4) == 0)
        hl = 540;
    if (hl) {
        const char *hdr = fz_path(2, "pair.hdr"), *img = fz_path(3, "pair.img");
        FZ_CHECK(fz_write_file(hdr, data, hl) == 0 && fz_write_file(img, data + hl, size - hl) == 0,
                 "cannot write the pair");
        fz_try_source(seed & 4 ? img : hdr, seed >> 2);
        unlink(hdr);
        unlink(img);
    }
    return 0;
}
