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
 * .img, .npy, .nrrd, .nhdr, .mha, .mhd). On failure the thread's error names
 * the file. */
VT_INTERNAL int vt__source_open(const char *path, vt_source **out);
/* As vt__source_open; raw files (.raw, .raw.gz, .bin) are read as @p raw
 * says (the segmentation's dtype when @p seg). */
VT_INTERNAL int vt__source_open_raw(const char *path, const vt_raw_spec *raw, bool seg, vt_source **out);
VT_INTERNAL void vt__source_close(vt_source *s);
/* Bytes of one z slice of one channel. */
VT_INTERNAL uint64_t vt__source_slice_bytes(const vt_source *s);

/* Per-format openers (io_nifti.c, io_npy.c, io_nrrd.c, io_mha.c). */
VT_INTERNAL int vt__nifti_open(const char *path, vt_source **out);
VT_INTERNAL int vt__npy_source_open(const char *path, vt_source **out);
VT_INTERNAL int vt__nrrd_open(const char *path, vt_source **out);
VT_INTERNAL int vt__mha_open(const char *path, vt_source **out);

/* Allocate a source with its path copied and an identity geometry. */
VT_INTERNAL vt_source *vt__source_new(const char *path);

/* ---- text headers (NRRD, MetaImage; source.c) ---------------------------- */

/* Longest line of a text header, in bytes. */
#define VT_TEXT_LINE_MAX (1u << 20)

/* Reads the text header at the start of a file line by line. The bytes read
 * so far are in buf[0, len); pos is where the next line starts, which once
 * the caller has seen the header's last line is where the data begin. */
typedef struct vt_lines {
    const char *path;
    int fd;
    unsigned char *buf;
    size_t len, cap, pos;
    size_t max;        /* longest header accepted */
    bool eof;
    unsigned lineno;   /* of the line last returned, from 1 */
    char *line;        /* copy of that line, NUL-terminated */
    size_t line_cap;
} vt_lines;

/* Open @p path for reading a header of at most @p max bytes. */
VT_INTERNAL int vt__lines_open(vt_lines *r, const char *path, size_t max);
/* The next line without its "\n" or "\r\n", NUL-terminated, in r->line (valid
 * until the next call): 1; 0 at the end of the file; or an error (a line
 * over VT_TEXT_LINE_MAX bytes or holding a NUL byte, a header over max). */
VT_INTERNAL int vt__lines_next(vt_lines *r, char **line);
VT_INTERNAL void vt__lines_close(vt_lines *r);

/* Keep a text header: in s->header when it fits VT_SOURCE_HEADER_MAX bytes,
 * else all of it in s->extra (and header_len 0). */
VT_INTERNAL int vt__source_keep_text_header(vt_source *s, const void *text, size_t len);
/* @p name (a data file named in a header) as a path: relative names are taken
 * relative to the folder of @p header_path. malloc'd; NULL when out of memory. */
VT_INTERNAL char *vt__path_beside(const char *header_path, const char *name);

/* ---- flat binary voxel data (NRRD, MetaImage; source.c) ----------------- */

typedef enum vt_flat_codec {
    VT_FLAT_RAW = 0,  /* uncompressed: read at any offset */
    VT_FLAT_GZIP = 1, /* gzip stream (members concatenated allowed) */
    VT_FLAT_ZLIB = 2  /* zlib stream (RFC 1950) */
} vt_flat_codec;

/* Where and how the voxels of an image are stored: the elements of the
 * (c, z, y, x) array in C order (planar), or in (z, y, x, c) order
 * (interleaved: the channel varies fastest). */
typedef struct vt_flat_spec {
    const char *data_path; /* the file holding the data (copied) */
    uint64_t offset;       /* byte offset in that file of the data or the compressed stream */
    uint64_t line_skip;    /* then skip this many lines ('\n') of the file */
    uint64_t byte_skip;    /* then this many bytes: of the file (raw) or of the
                              decompressed stream (gzip, zlib) */
    bool at_end;           /* raw: the data are the last bytes of the file (offset and
                              skips ignored); compressed: the stream is the last
                              stream_len bytes */
    uint64_t stream_len;   /* compressed: bytes of the stream, 0 if unknown (to the end of the file) */
    vt_flat_codec codec;
    vt_dtype dtype;        /* element delivered; s->dtype is set from it */
    size_t file_es;        /* bytes of an element in the file: vt_dtype_size(dtype), or 8 for
                              64-bit integers delivered as VT_I32 / VT_U32 (a value out of range
                              is an error) */
    bool big_endian;
    bool interleaved;
} vt_flat_spec;

/* Make @p s (shape set) read its voxels as @p spec says: sets dtype,
 * read_slab, close and impl. Checks that a raw file holds all the data; a
 * compressed stream is checked as it is read (corrupt, truncated, or holding
 * more than the data). Errors name the data file. On failure the caller
 * closes @p s as usual. */
VT_INTERNAL int vt__flat_attach(vt_source *s, const vt_flat_spec *spec);

/* Text header helpers shared by the text formats. */
VT_INTERNAL bool vt__text_space(char c); /* blank other than a line end */
VT_INTERNAL char *vt__text_trim(char *s); /* blanks cut at both ends, in place */
/* Next blank-separated token of *p: its start in *tok, its length (0 at the end). */
VT_INTERNAL size_t vt__text_token(const char **p, const char **tok);
/* A whole token of @p n bytes as an integer (optional sign), overflow-checked. */
VT_INTERNAL bool vt__text_i64(const char *t, size_t n, int64_t *v);
/* A whole token of @p n bytes as a finite number. */
VT_INTERNAL bool vt__text_f64(const char *t, size_t n, double *v);

#endif
