/* NIfTI-1 and NIfTI-2 headers (nifti.c): where the fields voxtile reads and
 * writes lie, their widths, the datatype codes, and field access honouring
 * the header's byte order. io_nifti.c reads headers with it; the conversion
 * layer's export.c writes them. */
#ifndef VT_NIFTI_H
#define VT_NIFTI_H

#include "internal.h"

#define VT_NIFTI1_SIZE 348u
#define VT_NIFTI2_SIZE 540u

/* Field offsets and widths of one header version. */
typedef struct vt_nifti_layout {
    int version;           /* 1 or 2 */
    size_t size;           /* sizeof_hdr: 348 or 540 (the field at offset 0, 4 bytes) */
    size_t magic;          /* 4 bytes (NIfTI-2: then "\r\n\032\n") */
    const char *magic_single, *magic_pair; /* "n+1": header and voxels in one file; "ni1": .hdr/.img */
    size_t datatype, bitpix; /* 2 bytes each */
    size_t dim;            /* dim[0..7], dim_bytes each */
    size_t pixdim;         /* pixdim[0..7], real_bytes each */
    size_t vox_offset;     /* NIfTI-1: a float32; NIfTI-2: an int64 */
    size_t scl_slope, scl_inter;
    size_t xform_codes;    /* qform_code then sform_code, code_bytes each */
    size_t quatern;        /* quatern_b, c, d, then qoffset_x, y, z: real_bytes each */
    size_t srow;           /* srow_x, srow_y, srow_z: 4 reals each */
    size_t xyzt_units;     /* 1 byte (NIfTI-1) or 4 (NIfTI-2) */
    int dim_bytes, real_bytes, code_bytes;
} vt_nifti_layout;

VT_INTERNAL extern const vt_nifti_layout vt__nifti1, vt__nifti2;

/* NIfTI datatype codes. */
enum {
    VT_NIFTI_UINT8 = 2, VT_NIFTI_INT16 = 4, VT_NIFTI_INT32 = 8, VT_NIFTI_FLOAT32 = 16,
    VT_NIFTI_COMPLEX64 = 32, VT_NIFTI_FLOAT64 = 64, VT_NIFTI_RGB24 = 128, VT_NIFTI_INT8 = 256,
    VT_NIFTI_UINT16 = 512, VT_NIFTI_UINT32 = 768, VT_NIFTI_INT64 = 1024, VT_NIFTI_UINT64 = 1280,
    VT_NIFTI_FLOAT128 = 1536, VT_NIFTI_COMPLEX128 = 1792, VT_NIFTI_COMPLEX256 = 2048, VT_NIFTI_RGBA32 = 2304
};

/* The dtype a datatype code is stored as, and its bytes in the file (8 for
 * int64/uint64, stored narrowed to int32/uint32); false for a code voxtile
 * does not read (RGB, complex, float128, unknown). */
VT_INTERNAL bool vt__nifti_dtype(int code, vt_dtype *dtype, size_t *file_bytes);
/* The datatype code of a dtype written as it is (float16 and bfloat16: float32). */
VT_INTERNAL int vt__nifti_code(vt_dtype dtype);
/* What a datatype code voxtile does not read holds: "RGB", "complex", "float128" or "unknown". */
VT_INTERNAL const char *vt__nifti_code_kind(int code);

/* A header in memory: its bytes, layout and byte order. */
typedef struct vt_nifti_hdr {
    unsigned char *b;
    const vt_nifti_layout *l;
    bool swap; /* the header's byte order is not the host's */
} vt_nifti_hdr;

/* An integer field of @p width bytes (1, 2, 4 or 8, signed) at @p off. */
VT_INTERNAL int64_t vt__nifti_get_int(const vt_nifti_hdr *h, size_t off, int width);
VT_INTERNAL void vt__nifti_put_int(vt_nifti_hdr *h, size_t off, int width, int64_t v);
/* A real field (float32 in NIfTI-1, float64 in NIfTI-2) at @p off. */
VT_INTERNAL double vt__nifti_get_real(const vt_nifti_hdr *h, size_t off);
VT_INTERNAL void vt__nifti_put_real(vt_nifti_hdr *h, size_t off, double v);
/* Element @p i of an array of reals (pixdim, quatern, srow) starting at @p off. */
static inline size_t vt__nifti_real_at(const vt_nifti_hdr *h, size_t off, int i)
{
    return off + (size_t)i * (size_t)h->l->real_bytes;
}

#endif
