/* fuzz_npy: arbitrary bytes as a .npy file. The header parser
 * (vt__npy_parse) runs on the bytes in memory, with the input's length as the
 * file size; when it accepts them, what it reports must describe exactly the
 * input (data offset + data bytes = file size), and the file is then opened
 * as an image source (vt__source_open: 3-d and 4-d arrays, C or Fortran
 * order, either byte order) and read slab by slab. */
#include "fuzz_source.h"
#include "io_npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vt_npy n;
    memset(&n, 0, sizeof n);
    n.fd = -1;
    int rc = vt__npy_parse("fuzz.npy", data, size, size, &n);
    FZ_CHECK(fz_known_code(rc), "vt__npy_parse returned %d", rc);
    if (rc != 0)
        return 0;
    FZ_CHECK(n.ndim >= 0 && n.ndim <= VT_NPY_MAX_DIMS, "ndim %d", n.ndim);
    FZ_CHECK(n.es == vt_dtype_size(n.dtype) && n.es > 0, "element size %zu for dtype %d", n.es, (int)n.dtype);
    /* int64/uint64 are read narrowed to int32/uint32: 8 bytes in the file, 4 read */
    bool narrowed = n.fes != n.es;
    FZ_CHECK(!narrowed || (n.fes == 8 && (n.dtype == VT_I32 || n.dtype == VT_U32)),
             "file element size %zu for dtype %d", n.fes, (int)n.dtype);
    FZ_CHECK(n.data_offset <= size && n.data_offset + n.data_bytes == size,
             "data [%llu, +%llu) in a file of %zu bytes", (unsigned long long)n.data_offset,
             (unsigned long long)n.data_bytes, size);
    uint64_t count = 1;
    for (int d = 0; d < n.ndim; d++)
        count *= n.shape[d];
    FZ_CHECK(count * n.fes == n.data_bytes, "shape does not give data_bytes");

    /* the same bytes as a file, through the source interface */
    rc = fz_try_file(0, "in.npy", data, size, (unsigned)size);
    if (n.ndim == 3 || (n.ndim == 4 && !n.fortran)) /* narrowed: a value over 32 bits is refused */
        FZ_CHECK(rc == 0 || (narrowed && rc == VT_ERANGE),
                 "a .npy the parser accepts failed to open as a source: %d %s", rc, vt_errmsg(NULL));
    return 0;
}
