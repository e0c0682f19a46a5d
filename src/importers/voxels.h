/* Flat binary voxel data (voxels.c): the elements of an image one after
 * another in a file -- raw, or in a gzip or zlib stream -- as NRRD, MetaImage,
 * NIfTI and raw files store them. One reader for all of them, and for the
 * gzip streams of them all. */
#ifndef VT_VOXELS_H
#define VT_VOXELS_H

#include "source.h"

typedef enum vt_voxels_codec {
    VT_VOXELS_RAW = 0,  /* uncompressed: read at any offset */
    VT_VOXELS_GZIP = 1, /* gzip stream (members concatenated allowed) */
    VT_VOXELS_ZLIB = 2, /* zlib stream (RFC 1950) */
    VT_VOXELS_SNIFF = 3 /* gzip when the file starts with gzip's magic, else raw (as zlib's gzopen
                           reads a file: NIfTI's .nii and .nii.gz are either) */
} vt_voxels_codec;

/* Where and how the voxels of an image are stored: the elements of the
 * (c, z, y, x) array in C order (planar), or in (z, y, x, c) order
 * (interleaved: the channel varies fastest). */
typedef struct vt_voxels_spec {
    const char *data_path; /* the file holding the data (copied) */
    uint64_t offset;       /* byte offset in that file of the data or the compressed stream */
    uint64_t line_skip;    /* then skip this many lines ('\n') of the file */
    uint64_t byte_skip;    /* then this many bytes: of the file (raw) or of the
                              decompressed stream (gzip, zlib) */
    bool at_end;           /* raw: the data are the last bytes of the file (offset and
                              skips ignored); compressed: the stream is the last
                              stream_len bytes */
    uint64_t stream_len;   /* compressed: bytes of the stream, 0 if unknown (to the end of the file) */
    bool trailing_ok;      /* compressed: more bytes after the data are allowed (NIfTI, as
                              nibabel reads it); the stream is still read to its end, so its
                              checksum is checked */
    vt_voxels_codec codec;
    vt_dtype dtype;        /* element delivered; s->dtype is set from it */
    size_t file_elem_bytes; /* bytes of an element in the file: vt_dtype_size(dtype), or 8 for
                              64-bit integers delivered as VT_I32 / VT_U32 (a value out of range
                              is an error) */
    bool big_endian;
    bool interleaved;
} vt_voxels_spec;

/* Make @p s (shape set) read its voxels as @p spec says: sets dtype,
 * read_slab, close and impl. Checks that a raw file holds all the data; a
 * compressed stream is checked as it is read (corrupt, truncated, or holding
 * more than the data). Errors name the data file. On failure the caller
 * closes @p s as usual. */
VT_INTERNAL int vt__voxels_attach(vt_source *s, const vt_voxels_spec *spec);

/* The first @p len bytes of @p path, decompressed when the file is gzip (by
 * its magic, as VT_VOXELS_SNIFF): a header that the same stream as the voxels
 * holds (NIfTI). *got: the bytes there are, fewer than @p len when the file or
 * its stream ends before (a damaged stream is reported by the voxels' read). */
VT_INTERNAL int vt__voxels_head(const char *path, void *buf, size_t len, size_t *got);

#endif
