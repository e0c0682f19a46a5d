/**
 * @file voxtile.h
 * @brief voxtile: out-of-core tiled storage for 3-D/4-D medical images.
 *
 * A store (`.vxt`) is one file holding named N-d arrays (N <= 5) cut into
 * tiles, each tile LZ4-compressed on its own and checksummed (xxh3-64), with an
 * index and a metadata block. The reader maps the file read-only and serves
 * any box of voxels -- partly or wholly outside the array, padded, converted to
 * another dtype (float16 included) -- decoding only the tiles the box touches,
 * straight into the caller's buffer.
 *
 * This header is the store: reading and writing it. Converting image files
 * (NIfTI, NRRD, MetaImage, .npy, raw) to stores and exporting them back is
 * in voxtile_convert.h, which includes this one.
 *
 * Conventions
 * - Every function that can fail returns `int`: 0 on success, a negative
 *   `VT_E*` code on failure. vt_strerror() names a code; vt_errmsg() and
 *   vt_writer_errmsg() give the detail of the last failure, which names the
 *   file and what is wrong.
 * - Output handles come back through a trailing `**out` and stay NULL on
 *   failure. Destructors accept NULL.
 * - Arrays are C order. Images are `(c, z, y, x)`; tiles are per channel.
 * - Pointers "borrowed" from a store point into its read-only mapping or its
 *   handle; they stay valid until vt_close() of that store and must not be
 *   written or freed.
 * - The library supports little-endian hosts only (the file format is
 *   little-endian and is mapped in place).
 */
#ifndef VOXTILE_H
#define VOXTILE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(VT_BUILDING_LIBRARY) && defined(__GNUC__)
#define VT_API __attribute__((visibility("default")))
#else
#define VT_API
#endif

/** @name Versions
 *  The library version (of this header; vt_version_number() gives the one
 *  linked at run time) and the on-disk format version it reads and writes. */
/**@{*/
#define VT_VERSION_MAJOR 0
#define VT_VERSION_MINOR 1
#define VT_VERSION_PATCH 0
#define VT_VERSION_NUMBER (VT_VERSION_MAJOR * 10000 + VT_VERSION_MINOR * 100 + VT_VERSION_PATCH)
#define VT_FORMAT_VERSION 1
/**@}*/

/** Largest number of dimensions of an array. */
#define VT_MAX_DIMS 5
/** Longest array name in bytes, not counting the terminating NUL. */
#define VT_NAME_MAX 63
/** Longest metadata key in bytes, not counting the terminating NUL. */
#define VT_KEY_MAX 255

/** @name Error codes (all negative; 0 is success) */
/**@{*/
#define VT_OK 0
#define VT_EIO (-1)          /**< a system call failed (open, read, write, fsync, rename, mmap ...) */
#define VT_ECORRUPT (-2)     /**< the file is damaged: a checksum does not match, a tile does not decode */
#define VT_EFORMAT (-3)      /**< the file is not a store, or its structure is inconsistent */
#define VT_EVERSION (-4)     /**< the file's format version is not one this library reads */
#define VT_ERANGE (-5)       /**< a value or box is out of range, or a size overflows */
#define VT_ENOMEM (-6)       /**< memory allocation failed */
#define VT_EINVAL (-7)       /**< an argument is invalid */
#define VT_ENOTFOUND (-8)    /**< no array or metadata key of that name */
#define VT_ENOSPC (-9)       /**< no space left on the device */
#define VT_EUNSUPPORTED (-10)/**< the input uses a feature voxtile does not support */
#define VT_ESTATE (-11)      /**< the call is not allowed in the handle's state (e.g. a failed writer) */
/**@}*/

/** Element types. The numeric values are the on-disk codes. */
typedef enum vt_dtype {
    VT_DTYPE_SAME = 0, /**< only in vt_read_opts: keep the stored dtype */
    VT_U8 = 1,
    VT_I8 = 2,
    VT_U16 = 3,
    VT_I16 = 4,
    VT_U32 = 5,
    VT_I32 = 6,
    VT_F16 = 7,  /**< IEEE 754 binary16 */
    VT_BF16 = 8, /**< bfloat16 (the upper half of a binary32) */
    VT_F32 = 9,
    VT_F64 = 10
} vt_dtype;

/** Tile codecs. The numeric values are the on-disk codes. */
typedef enum vt_codec {
    VT_CODEC_NONE = 0,  /**< tiles stored uncompressed */
    VT_CODEC_LZ4 = 1,   /**< LZ4 (fast); level is LZ4's acceleration (1 = default) */
    VT_CODEC_LZ4HC = 2  /**< LZ4HC; level 1..12 */
} vt_codec;

/** Byte-shuffle filter applied before compression. */
typedef enum vt_filter {
    VT_FILTER_NONE = 0,    /**< bytes stored as they are */
    VT_FILTER_SHUFFLE = 1, /**< bytes regrouped by significance (byte k of every element together) */
    VT_FILTER_AUTO = 2     /**< try both on the first tiles, keep what compresses smaller */
} vt_filter;

/** How vt_read() produces voxels outside the array. */
typedef enum vt_pad {
    VT_PAD_CONSTANT = 0, /**< vt_read_opts::pad_value */
    VT_PAD_EDGE = 1,     /**< replicate the nearest border voxel (numpy "edge") */
    VT_PAD_REFLECT = 2   /**< mirror without repeating the border voxel (numpy "reflect") */
} vt_pad;

/** Types of metadata values. The numeric values are the on-disk codes. */
typedef enum vt_meta_type {
    VT_META_BYTES = 0,  /**< opaque bytes; count = number of bytes */
    VT_META_STRING = 1, /**< UTF-8 text, NUL-terminated in the file; count = strlen */
    VT_META_F64 = 2,    /**< array of double; count = number of doubles */
    VT_META_I64 = 3     /**< array of int64_t; count = number of integers */
} vt_meta_type;

/** Flags of a tile in the index (vt_tile_info::flags). */
#define VT_TILE_RAW 0x1u      /**< stored bytes are the raw elements (no codec, no filter) */
#define VT_TILE_CONSTANT 0x2u /**< every element equal; no bytes stored, the value is in the index */
#define VT_TILE_SHUFFLED 0x4u /**< byte-shuffled before compression */

/* ------------------------------------------------------------------------- */
/** @name Library */
/**@{*/

/** Library version linked at run time.
 * @return the version as VT_VERSION_NUMBER computes it (major * 10000 + minor * 100 + patch). */
VT_API int vt_version_number(void);
/** Library version linked at run time, as text.
 * @return a static string such as "0.1.0" (never freed, never NULL). */
VT_API const char *vt_version_string(void);
/**
 * Name an error code.
 * @param code  0 or a VT_E* code.
 * @return static text ("success", "input/output error" ...); "unknown error"
 *         for any other value; never NULL.
 */
VT_API const char *vt_strerror(int code);
/**
 * sizeof() of a public struct, by name, so that bindings (the Python
 * package) can check at load time that they lay the structs out as this
 * build of the library does.
 * @param name  "vt_read_opts", "vt_array_info", "vt_tile_info",
 *              "vt_label_info", "vt_array_spec", "vt_writer_opts", "vt_sample_opts",
 *              "vt_sample_stats", "vt_sample_target", or of voxtile_convert.h
 *              "vt_convert_opts", "vt_raw_spec", "vt_image_info" or "vt_dataset_case_info";
 *              may be NULL.
 * @return the size in bytes; 0 for an unknown name or NULL.
 */
VT_API size_t vt_struct_size(const char *name);
/**
 * Size of one element.
 * @param dtype  an element type (not VT_DTYPE_SAME).
 * @return the size in bytes, or 0 for an invalid dtype (VT_DTYPE_SAME included).
 */
VT_API size_t vt_dtype_size(vt_dtype dtype);
/**
 * Name of a dtype as numpy spells it.
 * @param dtype  an element type.
 * @return a static string ("uint8", "float16", "bfloat16" ...; never freed);
 *         "?" for an invalid dtype (VT_DTYPE_SAME included).
 */
VT_API const char *vt_dtype_name(vt_dtype dtype);
/**
 * Parse a dtype name: numpy names ("float32", "int16", "uint8", "float16",
 * "bfloat16", "float64") and short forms ("f4", "i2", "u1", "f2", "bf16", "f8",
 * "f32", "i16", "u8" ...).
 * @param name  the name.
 * @param out   receives the dtype.
 * @return 0, or VT_EINVAL for an unknown name.
 */
VT_API int vt_dtype_parse(const char *name, vt_dtype *out);
/**
 * Name of a codec.
 * @param codec  a codec.
 * @return a static string ("none", "lz4", "lz4hc"; never freed); "?" for an
 *         invalid codec.
 */
VT_API const char *vt_codec_name(vt_codec codec);
/**@}*/

/* ------------------------------------------------------------------------- */
/** @name Reading a store */
/**@{*/

typedef struct vt_store vt_store;
typedef struct vt_array vt_array;

/** vt_open() flag: a plain mapping, without the 2 MiB placement and huge-page advice. */
#define VT_OPEN_NO_HUGE 1u

/**
 * Open a store read-only. The file is mapped and validated before this returns:
 * header, directory, every tile index and the metadata -- every offset and size
 * inside the file, shapes and tile counts consistent, checksums matching.
 * Tiles themselves are checked when read (vt_read_opts::verify) or by
 * vt_verify().
 *
 * The handle may be used by many threads at once. A process that forks after
 * vt_open() may keep using the handle in the child. If another process
 * truncates the file in place while it is mapped, reads may raise SIGBUS;
 * stores are replaced by rename, which open handles never notice.
 *
 * The mapping is placed at a 2 MiB boundary and advised for huge pages
 * (MADV_HUGEPAGE): where the page cache holds the file in 2 MiB folios (as
 * vt_writer writes it, or as this advice makes a read from disk bring it),
 * the first touch of each 2 MiB maps all of it at once instead of 512 pages
 * one by one -- random patches read 1.2-1.3x faster on a virtual machine
 * where mapping a page is expensive. A read from disk then brings the 2 MiB
 * around each first touch; VT_OPEN_NO_HUGE keeps the kernel's usual
 * readahead (a cold store on a slow disk, read sparsely once).
 *
 * @param path   file name.
 * @param flags  0, or VT_OPEN_NO_HUGE.
 * @param out    receives the handle; NULL on failure. Close with vt_close().
 * @return 0; VT_EIO (cannot open, stat or map); VT_EFORMAT (not a store, bad
 *         structure, incomplete file); VT_EVERSION (unknown format version);
 *         VT_ECORRUPT (a checksum of header, directory, index or metadata does
 *         not match); VT_ENOMEM; VT_EINVAL (NULL argument, unknown flags);
 *         VT_ERANGE (a file too large to map on this host).
 *         vt_errmsg(NULL) in the calling thread gives the detail.
 */
VT_API int vt_open(const char *path, unsigned flags, vt_store **out);

/**
 * Close a store and unmap it. Every pointer borrowed from it becomes invalid.
 * @param store  the store; NULL is ignored.
 */
VT_API void vt_close(vt_store *store);

/**
 * Detail of the last failure of a call on @p store made by the calling thread
 * (each thread sees its own last failure, so concurrent readers do not
 * overwrite each other's messages). With @p store NULL: the calling thread's
 * last failure of any call (use it after a vt_open() or vt_convert() failure).
 * @param store  the store, or NULL.
 * @return a NUL-terminated message, "" if there was none; valid until the next
 *         failing call in this thread.
 */
VT_API const char *vt_errmsg(const vt_store *store);

/**
 * Drop the store's pages from this process's resident memory (madvise
 * MADV_DONTNEED on its mapping) -- and nothing else: the store stays open,
 * its arrays and every pointer borrowed from it stay valid, and the next read
 * faults the pages it needs in again from the kernel's page cache, which
 * keeps the data. It closes, unmaps and frees nothing (that is vt_close()).
 * Useful in long-running data-loader processes, whose resident size
 * otherwise grows towards the size of the stores they read. Safe while other
 * threads read.
 * @param store  the store.
 * @return 0, or VT_EIO (madvise failed) or VT_EINVAL (NULL store).
 */
VT_API int vt_store_release(const vt_store *store);

/** Path the store was opened with.
 * @param store  the store.
 * @return the path (borrowed; valid until vt_close()); NULL for a NULL store. */
VT_API const char *vt_store_path(const vt_store *store);
/** Size of the store's file.
 * @param store  the store.
 * @return the size in bytes; 0 for a NULL store. */
VT_API uint64_t vt_store_file_size(const vt_store *store);
/** Format version of the file.
 * @param store  the store.
 * @return VT_FORMAT_VERSION for every file vt_open() accepts; 0 for a NULL store. */
VT_API uint32_t vt_store_format_version(const vt_store *store);
/** Version of the library that wrote the file.
 * @param store  the store.
 * @return its VT_VERSION_NUMBER; 0 for a NULL store. */
VT_API uint32_t vt_store_writer_version(const vt_store *store);
/** Number of arrays in the store.
 * @param store  the store.
 * @return the number (at least 1 in a store vt_open() accepts); 0 for a NULL store. */
VT_API size_t vt_store_narrays(const vt_store *store);

/**
 * The array at position @p index in the directory.
 * @param store  the store.
 * @param index  0 .. vt_store_narrays()-1.
 * @param out    receives a handle borrowed from the store (valid until vt_close(); never freed).
 * @return 0, VT_ERANGE (no such index) or VT_EINVAL (NULL argument).
 */
VT_API int vt_store_array_at(const vt_store *store, size_t index, const vt_array **out);

/**
 * The array called @p name.
 * @param store  the store.
 * @param name   array name, e.g. "image" or "seg".
 * @param out    receives a handle borrowed from the store (valid until vt_close()).
 * @return 0, VT_ENOTFOUND or VT_EINVAL.
 */
VT_API int vt_store_array(const vt_store *store, const char *name, const vt_array **out);

/** Description of an array (vt_array_info()). */
typedef struct vt_array_info {
    const char *name;             /**< borrowed from the store */
    vt_dtype dtype;
    int ndim;
    uint64_t shape[VT_MAX_DIMS];  /**< entries past ndim are 1 */
    uint32_t tile[VT_MAX_DIMS];   /**< tile shape (clipped to the shape); entries past ndim are 1 */
    uint64_t grid[VT_MAX_DIMS];   /**< tiles along each axis */
    uint64_t ntiles;
    vt_codec codec;
    int level;
    vt_filter filter;             /**< as requested at write time (AUTO stays AUTO; NONE with codec none);
                                       each tile's VT_TILE_SHUFFLED flag says how it is stored */
    double fill;                  /**< fill value of the array (vt_array_spec::fill) */
    uint64_t raw_bytes;           /**< number of elements x element size */
    uint64_t stored_bytes;        /**< bytes of tile data in the file */
    uint64_t constant_tiles;      /**< tiles stored as one value */
    uint64_t raw_tiles;           /**< tiles stored uncompressed */
    uint64_t shuffled_tiles;      /**< tiles stored byte-shuffled */
    double min, max;              /**< value range over all tiles, NaN ignored (NaN if all NaN) */
} vt_array_info;

/**
 * Describe an array.
 * @param array  the array.
 * @param out    filled in; its name pointer is borrowed from the store.
 * @return 0 or VT_EINVAL.
 */
VT_API int vt_array_info_get(const vt_array *array, vt_array_info *out);

/** One tile's entry in the index (vt_tile_get()). */
typedef struct vt_tile_info {
    uint64_t coord[VT_MAX_DIMS]; /**< tile coordinates in the tile grid */
    uint64_t start[VT_MAX_DIMS]; /**< first voxel of the tile */
    uint64_t extent[VT_MAX_DIMS];/**< voxels of the tile along each axis (smaller at the far border) */
    uint64_t offset;             /**< file offset of the stored bytes (0 for a constant tile) */
    uint32_t stored_size;        /**< stored bytes (0 for a constant tile) */
    uint32_t flags;              /**< VT_TILE_* */
    uint64_t raw_size;           /**< decoded bytes */
    uint64_t checksum;           /**< xxh3-64 of the stored bytes (of the 8 value bytes for a constant tile) */
    double min, max;             /**< value range of the tile, NaN ignored */
} vt_tile_info;

/**
 * Index entry of tile number @p tile (C order over the tile grid).
 * @param array  the array.
 * @param tile   tile number, 0 .. ntiles-1 (vt_array_info::ntiles).
 * @param out    filled in with the tile's coordinates, voxel box, index entry
 *               (offset, stored and raw size, flags, checksum) and value range;
 *               it holds no pointers.
 * @return 0, VT_ERANGE (no such tile) or VT_EINVAL (NULL argument).
 */
VT_API int vt_tile_get(const vt_array *array, uint64_t tile, vt_tile_info *out);

/** Options of vt_read(); initialise with vt_read_opts_init(). */
typedef struct vt_read_opts {
    vt_dtype dtype;       /**< output dtype; VT_DTYPE_SAME (default) keeps the stored one */
    vt_pad pad;           /**< how voxels outside the array are produced (default constant) */
    double pad_value;     /**< output value of constant padding (default 0), converted to the output dtype */
    int transform;        /**< nonzero: apply clip, then x*scale + offset, to every voxel read (not to pad_value) */
    double clip_lo;       /**< lower clip bound (default -INFINITY) */
    double clip_hi;       /**< upper clip bound (default +INFINITY) */
    double scale;         /**< default 1 */
    double offset;        /**< default 0 */
    const int64_t *strides; /**< output strides in elements, one per dimension; NULL = C-contiguous box */
    int threads;          /**< threads to decode one read with, 0..256 (default 1; others: VT_EINVAL);
                               0 or 1 = the calling thread only */
    int verify;           /**< nonzero (default): check each tile's checksum before decoding it */
} vt_read_opts;

/** Fill @p opts with the defaults documented on each field.
 * @param opts  the options to fill in; NULL is ignored. */
VT_API void vt_read_opts_init(vt_read_opts *opts);

/**
 * Read a box of voxels into @p out.
 *
 * The box is `[start[d], start[d] + size[d])` on each axis; @p start may be
 * negative and the box may pass the far border or lie wholly outside the
 * array: those voxels come from the pad mode. Only the tiles the box needs are
 * decoded, tile by tile, straight into @p out (no box- or volume-sized
 * temporary). Conversion: values are read as double, clipped and scaled when
 * opts->transform is set (in double, no fused multiply-add), then converted to
 * the output dtype: to floating types with round-to-nearest-even (float16 as
 * numpy's astype, NaN, infinities, subnormals and overflow included), to integer
 * types by truncation toward zero, saturating at the type's limits, NaN -> 0.
 * Copies without conversion are bit-exact.
 *
 * Thread-safe: many threads may read from the same array at once.
 *
 * @param array  the array.
 * @param start  ndim first-voxel coordinates (may be negative).
 * @param size   ndim box extents, each >= 1.
 * @param opts   options, or NULL for the defaults.
 * @param out    output buffer: C-contiguous box of the output dtype, or laid out
 *               by opts->strides (element strides, may be negative); it must be
 *               suitably aligned for the output dtype.
 * @return 0; VT_EINVAL (NULL pointer, bad dtype or pad mode, opts->threads
 *         outside 0..256); VT_ERANGE (an extent of 0, or a box whose coordinates, byte size or
 *         strided byte offsets overflow 64 bits); VT_ECORRUPT (a tile's checksum does not match or it does
 *         not decode; the message names array and tile coordinates);
 *         VT_ENOMEM; VT_EIO (a decode thread cannot be started).
 *         On failure @p out may be partly written.
 */
VT_API int vt_read(const vt_array *array, const int64_t *start, const uint64_t *size,
                   const vt_read_opts *opts, void *out);

/** Interpolation of vt_sample(). */
typedef enum vt_interp {
    VT_INTERP_NEAREST = 0, /**< the voxel nearest the source position (halves round to even, as
                                torch's grid_sample(mode="nearest")) */
    VT_INTERP_LINEAR = 1,  /**< trilinear over the 8 voxels around the source position */
    VT_INTERP_LABEL = 2    /**< label vote: the value with the largest total trilinear weight among the
                                8 voxels around the source position, ties to the smaller value -- the
                                argmax of the one-hot masks of every label, each interpolated
                                trilinearly, in O(8) per voxel whatever the number of labels */
} vt_interp;

/** What one vt_sample() call did (vt_sample_opts::stats). */
typedef struct vt_sample_stats {
    uint64_t tiles_needed;  /**< distinct tiles the plan found the output's voxels may reach, summed over
                                 leading indices (channels) */
    uint64_t tiles_decoded; /**< tile decodes made: equal to tiles_needed unless the call was cut into
                                 pieces (only for outputs whose tiles exceed 256 MiB decoded) */
    uint64_t peak_bytes;    /**< most memory held at once for decoded tiles (by the whole call, all
                                 arrays of a vt_sample_many() together) */
    int box_read;           /**< nonzero: the map was a crop, mirror or axis permutation and went through
                                 vt_read() without interpolation */
    int vector_lanes;       /**< 8: the AVX2 kernel (8 voxels at a time) sampled the rows it could; 0: the
                                 scalar code only (a CPU without AVX2, VOXTILE_SAMPLE_SCALAR set, a
                                 displacement field, a box read, labels that are not int16 tiles...) */
} vt_sample_stats;

/** Options of vt_sample(); initialise with vt_sample_opts_init(). */
typedef struct vt_sample_opts {
    vt_interp interp;         /**< default VT_INTERP_LINEAR */
    /** Displacement field (elastic deformation), or NULL (default): float32, C-contiguous, shape
     *  (3, field_shape[0], field_shape[1], field_shape[2]); component 0 is the displacement along
     *  z, 1 along y, 2 along x, in output voxels. Its grid spans the output corner to corner: grid
     *  point (a, b, c) sits on output voxel (a (size[0]-1)/(field_shape[0]-1), ...), an axis of
     *  one point is constant along that axis. It is interpolated trilinearly to each output
     *  voxel and added to the voxel's index before the matrix maps it. */
    const float *field;
    uint64_t field_shape[3];  /**< each 1 .. 65536 when field is set */
    vt_sample_stats *stats;   /**< if not NULL, filled in by the call */
} vt_sample_opts;

/** Fill @p opts with the defaults documented on each field.
 * @param opts  the options to fill in; NULL is ignored. */
VT_API void vt_sample_opts_init(vt_sample_opts *opts);

/**
 * Sample an output grid of `size[0] x size[1] x size[2]` voxels from the last
 * three axes of @p array through an affine map, every leading (channel) index
 * alike: output voxel (k, j, i) -- optionally displaced by a field -- is taken
 * from source position `M (k, j, i, 1)^T` (z, y, x; voxel centres at integer
 * coordinates), M the 3x4 @p matrix. Rotation, scaling, shear, mirroring and
 * translation are all one matrix; it need not be invertible.
 *
 * Interpolation (sopts->interp): nearest, trilinear (the values of
 * torch.nn.functional.grid_sample(mode="bilinear", align_corners=True) and
 * scipy.ndimage.map_coordinates(order=1) at the same source coordinates, in
 * float32), or the label vote. A voxel the map sends outside the array takes
 * the pad mode (opts->pad) for each tap: constant (opts->pad_value, as is), edge
 * or reflect (numpy's semantics of the tap index). A tap of weight 0 is never
 * used.
 *
 * Values: opts->transform (clip, then scale and offset, in double) applies to
 * each source voxel before interpolation. Linear interpolation converts each
 * source voxel (transformed) to float32, interpolates in float32 and rounds the
 * result to the output dtype (float32, float16, bfloat16 or float64: float16 as
 * numpy's astype of the float32 result). Nearest converts the chosen voxel as
 * vt_read() does, to any dtype; from integer values without a transform to an
 * integer dtype, that dtype must hold every value of the array (its index's
 * min and max) and the pad value. The label vote needs an integer array whose
 * values fit int32, no transform, and an integer output dtype that holds every
 * value of the array (its index's min and max) and the pad value.
 *
 * Work and memory: the output is sampled in blocks of 32^3 voxels; only the
 * tiles the blocks' voxels may reach are decoded, each once per call (per
 * leading index), converted once, and freed after the last block that needs
 * it -- memory for decoded tiles is about one slab of the source, never the
 * source box or the volume (sopts->stats reports it). A matrix that is an
 * axis permutation with +-1 entries and an integer translation (a crop, a
 * mirror, a 90-degree rotation) is read through vt_read() with output strides
 * instead: the same bits, no interpolation.
 *
 * Output layout: `(shape[0], ..., shape[ndim-4], size[0], size[1], size[2])`,
 * C-contiguous or laid out by opts->strides (ndim element strides, may be
 * negative). opts->threads (0..256) split the blocks between threads;
 * opts->verify checks each tile's checksum before decoding it. Thread-safe as
 * vt_read().
 *
 * @param array   the array (at least 3 dimensions).
 * @param matrix  12 doubles, row-major 3x4: source (z, y, x) = matrix * (k, j, i, 1).
 * @param size    3 output extents (z, y, x), each 1 .. 2^24, at most 2^31 voxels in all.
 * @param sopts   sampling options, or NULL for the defaults (linear, no field).
 * @param opts    read options (dtype, pad, pad_value, transform, strides, threads,
 *                verify), or NULL for the defaults.
 * @param out     output buffer, suitably aligned for the output dtype.
 * @return 0; VT_EINVAL (NULL pointer; fewer than 3 dimensions; a matrix entry or
 *         field value that is NaN or infinite; a bad interpolation, pad mode,
 *         dtype or field shape; an output dtype that cannot hold the labels or
 *         the pad value, by the label vote or by nearest without a transform;
 *         a transform with the label vote; threads outside
 *         0..256); VT_ERANGE (an extent of 0 or over the limits; a map that
 *         sends voxels beyond +-2^50; strides that overflow); VT_EUNSUPPORTED
 *         (the label vote on values outside int32); VT_ECORRUPT (a tile does
 *         not decode or its checksum does not match; the message names it);
 *         VT_ENOMEM; VT_EIO (a thread cannot be started). On failure @p out
 *         may be partly written.
 */
VT_API int vt_sample(const vt_array *array, const double *matrix, const uint64_t *size,
                     const vt_sample_opts *sopts, const vt_read_opts *opts, void *out);

/** One array of a vt_sample_many() call. */
typedef struct vt_sample_target {
    const vt_array *array;     /**< the array (at least 3 dimensions) */
    vt_interp interp;          /**< its interpolation */
    const vt_read_opts *opts;  /**< its read options (dtype, pad, pad_value, transform, strides, verify), as
                                    vt_sample() takes them, or NULL for the defaults; opts->threads is not
                                    used (the call's threads are) */
    void *out;                 /**< its output, laid out as vt_sample() says */
    vt_sample_stats *stats;    /**< if not NULL, filled in: this array's tiles, the call's peak memory */
    /** NULL (default), or one transform per leading index (channel) in C order, 4 doubles each:
     *  clip_lo, clip_hi, scale, offset -- used instead of opts->transform, e.g. a different
     *  normalisation per MR sequence; not with the label vote. */
    const double *transforms;
} vt_sample_target;

/**
 * Sample several arrays -- an image and its label arrays -- through one map in
 * one pass: each output voxel's source position, floor and fractions are
 * computed once and used for every array, each array with its own
 * interpolation and options. The result of each array is exactly what
 * vt_sample() gives it alone; together they cost less (at 128^3 with
 * rotation and scaling, the labels add about a third of the image's time).
 *
 * @param targets      the arrays, their interpolations, options and outputs (1..16).
 * @param ntargets     their number.
 * @param matrix       12 doubles, row-major 3x4, as vt_sample().
 * @param size         3 output extents, as vt_sample().
 * @param field        displacement field (3, field_shape[0..2]) float32, or NULL; as
 *                     vt_sample_opts::field.
 * @param field_shape  its 3 extents (each 1..65536), or NULL without a field.
 * @param threads      0..256, as vt_read_opts::threads.
 * @return as vt_sample(), for the first array that fails; VT_EINVAL also for
 *         NULL targets, no target or more than 16, per-channel transforms that
 *         are not finite (bounds may be infinite) or given to the label vote.
 */
VT_API int vt_sample_many(const vt_sample_target *targets, size_t ntargets, const double *matrix,
                          const uint64_t *size, const float *field, const uint64_t *field_shape, int threads);

/**
 * Check every tile of one array: checksum of the stored bytes, decode to the
 * exact size, constant-tile values, min/max against the decoded values and,
 * for a label array, the label index's voxel counts against the tile's.
 * @param array     the array.
 * @param bad_tile  if not NULL, receives the number of the first bad tile (unchanged on success).
 * @return 0 when every tile holds; VT_ECORRUPT naming the first bad tile;
 *         VT_ENOMEM; VT_EINVAL (NULL array).
 */
VT_API int vt_verify_array(const vt_array *array, uint64_t *bad_tile);

/**
 * Check one tile as vt_verify_array() does; to report every damaged tile
 * rather than the first (`voxtile verify`), or to spread the checks over
 * threads (the store is safe to share).
 * @param array  the array.
 * @param tile   tile number, 0 .. ntiles-1 (C order over the tile grid).
 * @return 0; VT_EINVAL (NULL array); VT_ERANGE (no such tile); VT_ECORRUPT
 *         (vt_errmsg() names the array, the tile number and coordinates, and
 *         what differs); VT_ENOMEM.
 */
VT_API int vt_verify_tile(const vt_array *array, uint64_t tile);

/** One label of a label array's index (vt_label_get()). */
typedef struct vt_label_info {
    int64_t value;          /**< the label value */
    uint64_t voxels;        /**< voxels of this value in the array */
    uint64_t ntiles;        /**< tiles holding it */
    const uint64_t *tiles;  /**< ntiles pairs (tile number, voxels of the value in it), by tile
                                 number; borrowed from the store's mapping, valid until vt_close() */
} vt_label_info;

/** Number of label values in the label index of an array.
 * @param array  the array.
 * @return the number; 0 when the array has no label index, or for a NULL array. */
VT_API size_t vt_label_count(const vt_array *array);

/**
 * Label number @p index (in increasing order of value) of a label array.
 * @param array  the array.
 * @param index  0 .. vt_label_count()-1.
 * @param out    filled in; out->tiles is borrowed from the store.
 * @return 0, VT_ERANGE (no such label, or no label index) or VT_EINVAL.
 */
VT_API int vt_label_get(const vt_array *array, size_t index, vt_label_info *out);

/** Number of metadata entries.
 * @param store  the store.
 * @return the number; 0 for a NULL store. */
VT_API size_t vt_meta_count(const vt_store *store);

/**
 * Metadata entry number @p index (in file order).
 * @param store  the store.
 * @param index  0 .. vt_meta_count()-1.
 * @param key    receives the key (borrowed, NUL-terminated); may be NULL.
 * @param type   receives the value type; may be NULL.
 * @param data   receives the value (borrowed, 8-byte aligned: a `const double *`
 *               for F64, `const int64_t *` for I64, a NUL-terminated
 *               `const char *` for STRING); may be NULL.
 * @param count  receives the number of values (bytes, characters without the
 *               NUL, doubles or integers); may be NULL.
 * @return 0, VT_ERANGE (no such entry) or VT_EINVAL (NULL store).
 */
VT_API int vt_meta_at(const vt_store *store, size_t index, const char **key,
                      vt_meta_type *type, const void **data, size_t *count);

/**
 * Metadata entry called @p key.
 * Reserved keys, written by the converters where the input has them:
 * "spacing", "origin" (F64, one per spatial axis, in array axis order z, y, x),
 * "direction" (F64[9], row-major 3x3), "source" (STRING, the file converted from).
 * @param store  the store.
 * @param key    the key (exact, case-sensitive match).
 * @param type   receives the value type; may be NULL.
 * @param data   receives the value (borrowed from the store, valid until
 *               vt_close(); 8-byte aligned: a `const double *` for F64,
 *               `const int64_t *` for I64, a NUL-terminated `const char *`
 *               for STRING); may be NULL.
 * @param count  receives the number of values (bytes, characters without the
 *               NUL, doubles or integers); may be NULL.
 * @return 0, VT_ENOTFOUND (no such key) or VT_EINVAL (NULL store or key).
 */
VT_API int vt_meta_get(const vt_store *store, const char *key, vt_meta_type *type,
                       const void **data, size_t *count);

/**
 * The intensity scaling of @p array's values, from a NIfTI source's
 * `scl_slope`/`scl_inter` kept in the metadata ("scl_slope", "scl_inter", one
 * float64 each; written by the converter when it stores raw values, the
 * default). It applies to the image array "image" and its pyramid levels
 * "image@K", never to "seg". The stored values are the raw ones: a reader that
 * wants physical values (e.g. Hounsfield units) sets vt_read_opts.transform
 * with scale = @p slope and offset = @p inter. The CLI and the Python package
 * do that by default for floating output.
 * @param array  the array.
 * @param slope  receives the slope (1 when there is no scaling); may be NULL.
 * @param inter  receives the intercept (0 when there is no scaling); may be NULL.
 * @return 1 when the array has a scaling, 0 when it has none (or @p array is NULL).
 */
VT_API int vt_array_scaling(const vt_array *array, double *slope, double *inter);
/**@}*/

/* ------------------------------------------------------------------------- */
/** @name Writing a store */
/**@{*/

typedef struct vt_writer vt_writer;

/** Options of vt_writer_open(); initialise with vt_writer_opts_init(). */
typedef struct vt_writer_opts {
    int threads; /**< compression threads, 0..1024 (others: VT_EINVAL); default 1; 0 or 1 =
                      compress in the calling thread */
} vt_writer_opts;

/** Fill @p opts with the defaults.
 * @param opts  the options to fill in; NULL is ignored. */
VT_API void vt_writer_opts_init(vt_writer_opts *opts);

/**
 * Start writing a store at @p path. Data goes to an unnamed temporary file in
 * the same directory (O_TMPFILE; where the file system lacks it, a hidden
 * `.NAME.tmp.XXXXXX` that is deleted on failure); nothing appears at @p path
 * until vt_writer_finalize() succeeds, which then replaces any file there
 * atomically. A process killed while writing never leaves a partial store at
 * @p path; with O_TMPFILE it leaves nothing at all, except when killed in the
 * instant between naming the finished file and renaming it, which can leave a
 * complete hidden `.NAME.tmp.XXXXXX`.
 * @param path  final file name.
 * @param opts  options or NULL for defaults.
 * @param out   receives the writer; NULL on failure. Free with vt_writer_free().
 * @return 0; VT_EINVAL (NULL or empty path, NULL out, opts->threads outside
 *         0..1024, or a file name the file system rejects); VT_ENOSPC (no
 *         space or disk quota left for the temporary file); VT_EIO (any other
 *         failure to create or write the temporary file, or to start the
 *         compression threads); VT_ENOMEM.
 *         vt_errmsg(NULL) gives the detail.
 */
VT_API int vt_writer_open(const char *path, const vt_writer_opts *opts, vt_writer **out);

/** Description of an array to write; initialise with vt_array_spec_init(). */
typedef struct vt_array_spec {
    const char *name;                /**< 1..VT_NAME_MAX bytes, unique in the store (copied) */
    vt_dtype dtype;
    int ndim;                        /**< 1..VT_MAX_DIMS */
    uint64_t shape[VT_MAX_DIMS];     /**< every extent >= 1 */
    uint32_t tile[VT_MAX_DIMS];      /**< tile shape, clipped to the shape; all 0 (default) = 16 on the last three
                                          axes and 1 before them (1-d: 32768; 2-d: 256 x 256) */
    vt_codec codec;                  /**< default VT_CODEC_LZ4HC */
    int level;                       /**< LZ4HC level 1..12 / LZ4 acceleration >= 1; 0 = codec default */
    vt_filter filter;                /**< default VT_FILTER_AUTO */
    double fill;                     /**< fill value (default 0): must be representable in dtype */
    int sparse;                      /**< nonzero: voxels never written take the fill value at finalize */
    int labels;                      /**< nonzero: a label array (integer dtype): the store gets its label
                                          index, for each value the tiles holding it and how many voxels */
} vt_array_spec;

/** Fill @p spec with the defaults documented on each field (ndim 0, name NULL: set them).
 * @param spec  the description to fill in; NULL is ignored. */
VT_API void vt_array_spec_init(vt_array_spec *spec);

/**
 * Declare an array. Arrays may be written in any order, interleaved.
 * @param w      the writer.
 * @param spec   the array's description (copied).
 * @param id     receives the array's id for vt_writer_write().
 * @return 0; VT_EINVAL (bad name, dtype, ndim, shape, codec, level, filter, a
 *         fill value the dtype cannot hold, a duplicate name, labels on a
 *         non-integer dtype); VT_ERANGE (sizes
 *         overflow, a tile over 1 GiB); VT_ENOMEM; VT_ESTATE (writer failed or finalized).
 */
VT_API int vt_writer_add_array(vt_writer *w, const vt_array_spec *spec, int *id);

/**
 * Write a box of voxels: C-contiguous @p data of the array's dtype covering
 * `[start[d], start[d] + size[d])`. Each voxel must be written exactly once
 * (a voxel written twice is an error). The writer keeps only tiles that are
 * partly written; a tile is compressed (on the thread pool) as soon as its
 * last voxel arrives, so writing slabs along the slowest axis, or single
 * tiles, needs memory of about one slab of tiles.
 * @param w      the writer.
 * @param id     array id from vt_writer_add_array().
 * @param start  ndim first-voxel coordinates.
 * @param size   ndim extents.
 * @param data   the voxels (read before the call returns).
 * @return 0; VT_EINVAL (bad id, NULL, a voxel written twice -- the writer
 *         then fails); VT_ERANGE (box outside the array); VT_EIO / VT_ENOSPC
 *         (a tile could not be written); VT_ENOMEM; VT_ESTATE (writer failed or
 *         finalized). Any failure other than VT_EINVAL/VT_ERANGE for the
 *         arguments leaves the writer failed: free it.
 */
VT_API int vt_writer_write(vt_writer *w, int id, const uint64_t *start, const uint64_t *size,
                           const void *data);

/**
 * Set a metadata entry (a later call with the same key replaces it).
 * @param w      the writer.
 * @param key    1..VT_KEY_MAX bytes (copied).
 * @param type   value type.
 * @param data   @p count values (bytes, chars without NUL, doubles or int64); copied.
 * @param count  number of values.
 * @return 0; VT_EINVAL (NULL writer or key, NULL data with count > 0, a key
 *         of 0 or more than VT_KEY_MAX bytes, an invalid type, a string
 *         holding a NUL byte); VT_ERANGE (a value whose byte size overflows,
 *         or a new key beyond 4096 entries); VT_ENOMEM; VT_ESTATE (writer
 *         failed or finalized). None of these fails the writer.
 */
VT_API int vt_writer_set_meta(vt_writer *w, const char *key, vt_meta_type type,
                              const void *data, size_t count);

/**
 * Finish the store: wait for every tile, check that every tile of every array
 * was written (or is sparse), write the tile indexes, directory, metadata and
 * header, fsync the file, rename it to the final path and fsync the directory.
 * @param w  the writer.
 * @return 0; VT_EINVAL (NULL writer, no array declared, or an array not
 *         completely written: the message names it and the first missing tile); VT_EIO / VT_ENOSPC; VT_ENOMEM;
 *         VT_ESTATE. On failure nothing is published (a store being replaced
 *         stays as it was) -- except when only the final fsync of the
 *         directory fails: the new store is then in place and complete, and
 *         the error (whose message says so) means its name may not survive a
 *         crash. Free the writer either way.
 */
VT_API int vt_writer_finalize(vt_writer *w);

/**
 * Free a writer. If it was not finalized, stop its threads and delete its
 * temporary file: nothing is left behind.
 * @param w  the writer; NULL is ignored.
 */
VT_API void vt_writer_free(vt_writer *w);

/**
 * Detail of the last failure of a call on @p w made by the calling thread;
 * as vt_errmsg().
 * @param w  the writer, or NULL: the calling thread's last failure of any call
 *           (use it after a vt_writer_open() failure).
 * @return a NUL-terminated message, "" if there was none; valid until the
 *         next failing call in this thread.
 */
VT_API const char *vt_writer_errmsg(const vt_writer *w);
/**@}*/

#ifdef __cplusplus
}
#endif
#endif /* VOXTILE_H */
