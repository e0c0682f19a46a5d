/* .npy input (NumPy format 1.0, 2.0, 3.0). */
#ifndef VT_IO_NPY_H
#define VT_IO_NPY_H

#include "internal.h"

#define VT_NPY_MAX_DIMS 32

typedef struct vt_npy {
    const char *path;
    int fd;
    vt_dtype dtype;
    size_t es;     /* bytes per element as read (vt_dtype_size(dtype)) */
    size_t fes;    /* bytes per element in the file: es, or 8 for int64/uint64 read narrowed */
    unsigned char *wide; /* read buffer for narrowed elements */
    size_t wide_cap;
    bool swap;     /* big-endian data */
    bool fortran;  /* Fortran (column-major) order */
    int ndim;
    uint64_t shape[VT_NPY_MAX_DIMS];
    uint64_t data_offset;
    uint64_t data_bytes;
} vt_npy;

/* Open and parse the header; checks that the file holds exactly the data the
 * header describes. Errors name the file. */
VT_INTERNAL int vt__npy_open(const char *path, vt_npy *n);
VT_INTERNAL void vt__npy_close(vt_npy *n);
/* Parse a header from memory (the first @p len bytes of a file of @p file_size bytes). */
VT_INTERNAL int vt__npy_parse(const char *path, const unsigned char *buf, size_t len,
                              uint64_t file_size, vt_npy *n);
/* Read @p len bytes of data starting @p off bytes into the data, in host byte
 * order. Offsets and lengths count elements of n->es bytes: int64/uint64 files
 * are read as int32/uint32 (the store's widest integers), every value checked
 * to fit (VT_ERANGE naming the file and the value otherwise). */
VT_INTERNAL int vt__npy_read(vt_npy *n, uint64_t off, void *buf, size_t len);

/* The image source over a 3-d (z, y, x) or 4-d (c, z, y, x) .npy,
 * vt__npy_source_open, is declared with the other importers in source.h. */

#endif
