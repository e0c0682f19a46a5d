/* Image sources for conversion: one interface over .npy, NIfTI (and later
 * NRRD, MetaImage, raw). A source describes a (c, z, y, x) image and delivers
 * it slab by slab -- z slices of one channel, C order, host byte order -- so
 * that the converter never needs the whole volume. Sources that stream (gzip)
 * are cheapest read in order: channel by channel, z increasing. */
#ifndef VT_SOURCE_H
#define VT_SOURCE_H

#include "internal.h"

#define VT_SOURCE_HEADER_MAX 1024

typedef struct vt_source vt_source;

struct vt_source {
    char *path;
    vt_dtype dtype;            /* element type delivered */
    uint64_t shape[4];         /* (c, z, y, x) */
    double spacing[3];         /* voxel size along (z, y, x), mm */
    double affine[16];         /* row-major 4x4, NIfTI convention: (i=x, j=y, k=z, 1) -> RAS+ mm */
    double scl_slope, scl_inter; /* intensity scaling; slope 0 = none */
    const char *format;        /* "nifti1", "nifti2", "npy" ... */
    unsigned char header[VT_SOURCE_HEADER_MAX]; /* the source header verbatim */
    size_t header_len;
    unsigned char *extra;      /* format-specific bytes kept verbatim (NIfTI extensions); may be NULL */
    size_t extra_len;
    int qform_code, sform_code;
    double qform[16], sform[16];
    /* Read z slices [z0, z0 + nz) of channel c into buf (nz * y * x elements). */
    int (*read_slab)(vt_source *s, uint64_t c, uint64_t z0, uint64_t nz, void *buf);
    void (*close)(vt_source *s);
    void *impl;
};

/* Open an image file; the format comes from its name (.nii, .nii.gz, .hdr,
 * .img, .npy). On failure the thread's error names the file. */
VT_INTERNAL int vt__source_open(const char *path, vt_source **out);
VT_INTERNAL void vt__source_close(vt_source *s);
/* Bytes of one z slice of one channel. */
VT_INTERNAL uint64_t vt__source_slice_bytes(const vt_source *s);

/* Per-format openers (io_nifti.c, io_npy.c). */
VT_INTERNAL int vt__nifti_open(const char *path, vt_source **out);
VT_INTERNAL int vt__npy_source_open(const char *path, vt_source **out);

/* Allocate a source with its path copied and an identity geometry. */
VT_INTERNAL vt_source *vt__source_new(const char *path);

#endif
