/* Image sources, the importers' one interface: a source describes a
 * (c, z, y, x) image -- NIfTI-1/2, NRRD, MetaImage, .npy or a raw file -- and
 * delivers it slab by slab (z slices of one channel, C order, host byte
 * order), so that the converter never needs the whole volume. Sources that
 * stream (gzip) are cheapest read in order: channel by channel, z increasing.
 *
 * Who calls whom: formats.c picks an importer by the file's name and calls
 * its opener (io_*.c); an opener parses its header and fills in a source
 * (source.c) whose voxels it reads itself (io_npy.c) or through voxels.c;
 * the text formats read their headers with text.c. Nothing calls back up. */
#ifndef VT_SOURCE_H
#define VT_SOURCE_H

#include "internal.h"
#include "voxtile_convert.h"

#define VT_SOURCE_HEADER_MAX 1024

typedef struct vt_source vt_source;

struct vt_source {
    char *path;
    vt_dtype dtype;            /* element type delivered */
    uint64_t shape[4];         /* (c, z, y, x) */
    double spacing[3];         /* voxel size along (z, y, x), mm */
    double affine[16];         /* row-major 4x4, NIfTI convention: (i=x, j=y, k=z, 1) -> RAS+ mm */
    double scl_slope, scl_inter; /* intensity scaling; slope 0 = none */
    const char *format;        /* "nifti1", "nifti2", "npy", "nrrd", "metaimage", "raw" */
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

/* ---- opening an image file (formats.c) ------------------------------------ */

/* Open an image file; the format comes from the ending of its name (the
 * table in formats.c: .nii, .nii.gz, .hdr, .img, .npy, .nrrd, .nhdr, .mha,
 * .mhd ...). On failure the thread's error names the file. */
VT_INTERNAL int vt__source_open(const char *path, vt_source **out);
/* As vt__source_open; raw files (.raw, .raw.gz, .bin) are read as @p raw
 * says (the segmentation's dtype when @p seg). */
VT_INTERNAL int vt__source_open_raw(const char *path, const vt_raw_spec *raw, bool seg, vt_source **out);

/* ---- the importers (io_*.c), each called only by formats.c ----------------- */

VT_INTERNAL int vt__nifti_open(const char *path, vt_source **out);
VT_INTERNAL int vt__nrrd_open(const char *path, vt_source **out);
VT_INTERNAL int vt__mha_open(const char *path, vt_source **out);
VT_INTERNAL int vt__npy_source_open(const char *path, vt_source **out);
VT_INTERNAL int vt__raw_open(const char *path, const vt_raw_spec *raw, bool seg, vt_source **out);

/* ---- the source object (source.c), filled in by the importers --------------- */

/* Allocate a source with its path copied and an identity geometry. */
VT_INTERNAL vt_source *vt__source_new(const char *path);
VT_INTERNAL void vt__source_close(vt_source *s);
/* An opener's last step: on success (@p rc 0) hand @p s out in *out; on
 * failure close it (NULL allowed). Returns @p rc. */
VT_INTERNAL int vt__source_done(vt_source *s, int rc, vt_source **out);
/* Bytes of one z slice of one channel. */
VT_INTERNAL uint64_t vt__source_slice_bytes(const vt_source *s);
/* Keep a text header: in s->header when it fits VT_SOURCE_HEADER_MAX bytes,
 * else all of it in s->extra (and header_len 0). */
VT_INTERNAL int vt__source_keep_text_header(vt_source *s, const void *text, size_t len);

/* Whether the source's voxels carry a scaling (NIfTI scl_slope/scl_inter)
 * other than none or the identity. */
static inline bool vt__source_scaled(const vt_source *s)
{
    return s->scl_slope != 0 && !(s->scl_slope == 1 && s->scl_inter == 0);
}

#endif
