/**
 * @file voxtile_convert.h
 * @brief voxtile: converting image files to stores, and stores back to NIfTI.
 *
 * The other half of the public API. voxtile.h reads and writes stores; this
 * header adds what reads image files -- NIfTI-1/2, NRRD, MetaImage, .npy,
 * raw -- and converts them (crop, dtype, scaling, pyramid levels) into
 * stores, and writes a store's array back as NIfTI. A program that only
 * reads stores includes voxtile.h alone and needs neither zlib nor the
 * importers.
 *
 * The conventions of voxtile.h hold here: 0 or a negative VT_E* code,
 * vt_errmsg(NULL) for the detail, which names the file.
 */
#ifndef VOXTILE_CONVERT_H
#define VOXTILE_CONVERT_H

#include "voxtile.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------- */
/** @name Converting image files to stores */
/**@{*/

/** How vt_convert_images() crops. */
typedef enum vt_crop {
    VT_CROP_NONE = 0,    /**< keep the whole volume */
    VT_CROP_BOX = 1,     /**< vt_convert_opts::crop */
    VT_CROP_NONZERO = 2, /**< bounding box of voxels that are not 0 in any channel (nnU-Net's crop) */
    VT_CROP_LABEL = 3    /**< bounding box of the segmentation's foreground (not 0), grown by crop_margin */
} vt_crop;

/** How to read headerless raw files (vt_convert_opts::raw). */
typedef struct vt_raw_spec {
    uint64_t shape[4];   /**< (c, z, y, x): c volumes one after another, each z slices of y rows of x */
    vt_dtype dtype;      /**< element type of raw images */
    vt_dtype seg_dtype;  /**< element type of a raw segmentation (one volume of shape (z, y, x));
                              VT_DTYPE_SAME (0) = uint8 */
    uint64_t offset;     /**< bytes before the data (a header to skip) */
    int big_endian;      /**< nonzero: elements are big-endian */
    double spacing[3];   /**< voxel size (z, y, x) in mm; 0 = 1 mm. The affine is diagonal. */
} vt_raw_spec;

/** Image interpolation when vt_convert_opts::spacing changes the grid. */
typedef enum vt_resample_order {
    VT_RESAMPLE_CUBIC = 0, /**< Keys' cubic convolution (a = -1/2): local, 4 taps, interpolating */
    VT_RESAMPLE_LINEAR = 1 /**< linear */
} vt_resample_order;

/** nnU-Net's treatment of a low-resolution axis when resampling (vt_convert_opts::separate_z). */
typedef enum vt_separate {
    VT_SEPARATE_AUTO = 0, /**< when the largest spacing exceeds 3x the smallest (of the source, else of the
                               target), that one axis is interpolated on its own: nearest (or linear);
                               none when two axes share that spacing's largest value (as nnU-Net) */
    VT_SEPARATE_ON = 1,   /**< always, for the axis of the largest source spacing (none on a tie) */
    VT_SEPARATE_OFF = 2   /**< never: the same kernel on every axis */
} vt_separate;

/** Normalisation recorded for each image channel (vt_convert_opts::normalize). */
typedef enum vt_normalize {
    VT_NORMALIZE_NONE = 0,  /**< none recorded */
    VT_NORMALIZE_CT = 1,    /**< nnU-Net's CT scheme: clip to a dataset's foreground 0.5/99.5 percentiles, then
                                 (x - mean) / std with its foreground mean and std (vt_convert_opts::norm_params) */
    VT_NORMALIZE_ZSCORE = 2 /**< (x - mean) / std with each case's own mean and std over its (cropped) image */
} vt_normalize;

/** Options of vt_convert() and vt_convert_images(); initialise with vt_convert_opts_init(). */
typedef struct vt_convert_opts {
    uint32_t tile[3];  /**< tile shape (z, y, x); 0 = default (16, 16, 16) */
    vt_codec codec;    /**< default VT_CODEC_LZ4HC */
    int level;         /**< 0 = codec default */
    vt_filter filter;  /**< default VT_FILTER_AUTO */
    int threads;       /**< compression threads, 0..1024 (default 1); as vt_writer_opts::threads */
    const char *array; /**< name of the image array (default "image") */
    vt_dtype dtype;    /**< store the image as this dtype (default VT_DTYPE_SAME: the input's, or a
                            common type of several inputs); values that do not fit are an error;
                            floats become integers rounded to nearest */
    int apply_scaling; /**< nonzero: store NIfTI scl_slope/scl_inter applied (as float32, float64 for
                            32-bit integer or float64 data, unless dtype says otherwise); 0 (default):
                            store the raw values and keep slope and intercept in the metadata
                            ("scl_slope", "scl_inter") */
    vt_crop crop_mode; /**< default VT_CROP_NONE */
    int64_t crop[6];   /**< VT_CROP_BOX: z0, z1, y0, y1, x0, x1 (half-open, in source voxels) */
    int64_t crop_margin; /**< VT_CROP_LABEL: voxels added on each side (clamped to the volume) */
    int levels;        /**< pyramid levels "image@1" .. "image@N" (and "seg@k"); each halves the axes
                            whose spacing is at most 3x the finest (Lanczos-3 for images, block mode
                            for labels); fewer when nothing is left to halve. Default 0 */
    /** Inputs named .raw, .raw.gz (gzip) or .bin are read as this says; NULL: they are an error. */
    const vt_raw_spec *raw;
    /** Called now and then with the fraction done (0..1); may be NULL. */
    void (*progress)(void *ctx, double fraction);
    void *progress_ctx;
    /** Resample to this voxel size (z, y, x) in mm, after cropping; all 0 (default) keeps the source's
     *  grid. New shape as nnU-Net: rint(n * old / new) per axis; output voxel i sits on source coordinate
     *  (i + 0.5) n_old / n_new - 0.5 (centres aligned), edge values outside. Images: order below; the
     *  segmentation: the label vote (argmax of one-hot linear interpolation). Every source value must fit
     *  the stored dtype as without resampling (VT_ERANGE); what the kernel adds beyond the dtype's range
     *  (cubic ringing next to its limits) is clamped to it. The metadata records the
     *  source grid ("source.shape", "source.spacing", "source.affine", "crop") and the resampling
     *  ("resample.spacing", "resample.kernel") so that vt_export_like() can map back. */
    double spacing[3];
    vt_resample_order order;   /**< images, when resampling (default cubic) */
    vt_separate separate_z;    /**< the low-resolution axis (default auto) */
    int separate_linear;       /**< nonzero: that axis linear instead of nearest */
    vt_normalize normalize;    /**< normalisation recorded in the metadata for readers to apply (stored values
                                    stay raw): "normalize" (the scheme) and "normalize.params" (F64, per
                                    channel: clip_lo, clip_hi, mean, std, in the units read() gives with
                                    scaling). Default none */
    /** VT_NORMALIZE_CT: 4 doubles per image channel (clip_lo, clip_hi, mean, std > 0), in channel order. */
    const double *norm_params;
    size_t norm_channels;      /**< channels in norm_params */
} vt_convert_opts;

/** Fill @p opts with the defaults documented on each field.
 * @param opts  the options to fill in; NULL is ignored. */
VT_API void vt_convert_opts_init(vt_convert_opts *opts);

/**
 * The options that shape a converted store, as one canonical line
 * ("array=image dtype=same apply_scaling=0 crop=none levels=0 tile=16,16,16
 * codec=lz4hc level=4 shuffle=auto"): defaults written out, threads and
 * progress left out. vt_convert_images() stores it as metadata
 * "convert.options", so a rerun can tell whether a store was made the same way.
 * @param opts  the options.
 * @param buf   receives the text, NUL-terminated and truncated to @p len - 1
 *              bytes; may be NULL when @p len is 0.
 * @param len   size of @p buf.
 * @return the length of the whole text (as snprintf), or -1 for a NULL @p opts.
 */
VT_API int vt_convert_opts_string(const vt_convert_opts *opts, char *buf, size_t len);

/**
 * Convert one image file to a store, streaming in bounded memory; as
 * vt_convert_images() with one image and no segmentation, except that a
 * `.npy` of any rank is accepted (a 3-d (z, y, x) array becomes a (1, z, y, x)
 * image, other ranks are kept) when no image option (crop, dtype) is set.
 * @param in    input path (any input vt_convert_images() takes).
 * @param out   store to write (replaced atomically; nothing is left on failure).
 * @param opts  options or NULL for the defaults.
 * @return as vt_convert_images(); VT_EINVAL also for a NULL path or an empty
 *         opts->array.
 */
VT_API int vt_convert(const char *in, const char *out, const vt_convert_opts *opts);

/**
 * Convert images -- the channels of one case, e.g. nnU-Net's case_0000,
 * case_0001 ... -- and optionally their segmentation into one store:
 * an image array `(c, z, y, x)` (channels in input order, a 4-d input
 * contributing all its volumes) and a label array "seg" `(1, z, y, x)` with
 * its label index. Inputs: NIfTI-1/2 (`.nii`, `.nii.gz`, `.hdr`/`.img`,
 * either byte order), `.npy` ((z, y, x) or (c, z, y, x)), NRRD (`.nrrd`,
 * `.nhdr` + data file; raw or gzip) and MetaImage (`.mha`, `.mhd` + `.raw` /
 * `.zraw`), 3-d or 4-d (channels interleaved per voxel, or volumes last);
 * 64-bit integers are narrowed to 32 bits when they fit. Every input must
 * have the same voxel grid (shape and affine). Data are read slab by slab:
 * memory is bounded by a few slabs of tiles, whatever the volume; cropping
 * modes that need a bounding box read the inputs twice.
 *
 * Metadata written: "source" (the first image), "sources" (all, one per
 * line), "seg.source", "format", "spacing", "affine", "origin",
 * "direction", "crop" (I64[6]: z0, z1, y0, y1, x0, x1 in the source),
 * "levels" (I64) with "image@K.spacing" and "image@K.affine" per level, and for
 * NIfTI "nifti.header" (verbatim), "nifti.extensions", "nifti.qform",
 * "nifti.sform", "nifti.qform_code", "nifti.sform_code", "scl_slope",
 * "scl_inter" (when scaling is kept rather than applied), "source.shape",
 * "source.spacing", "source.affine" (the input grid, for vt_export_like());
 * with opts->spacing "resample.spacing" (as asked) and "resample.kernel"
 * ("cubic,cubic,nearest" ...), "spacing" and "affine" then describing the
 * resampled grid (true voxel size old * n / n'); with opts->normalize
 * "normalize" ("ct", "zscore") and "normalize.params" (F64: clip_lo,
 * clip_hi, mean, std per image channel, in scaled units).
 *
 * @param images   input paths (at least one).
 * @param nimages  their number.
 * @param seg      segmentation path, or NULL.
 * @param out      store to write (replaced atomically; nothing is left on failure).
 * @param opts     options or NULL.
 * @return 0; VT_EIO (cannot open or read); VT_EFORMAT (malformed input: bad
 *         header, truncated or corrupt gzip stream, sizes that do not match
 *         the file); VT_EUNSUPPORTED (RGB, complex, more than 4 dimensions);
 *         VT_EINVAL (inputs that disagree in shape or geometry, a bad crop
 *         box, a segmentation that is not integral, opts->threads outside
 *         0..1024, a spacing that is not positive and finite, an unknown
 *         normalize, ct without norm_params for every channel or with
 *         lo > hi or std <= 0); VT_ERANGE (a value that does not fit the
 *         requested dtype; a resampled axis over 2^31 voxels); VT_ENOSPC;
 *         VT_ENOMEM.
 *         vt_errmsg(NULL) names the file and what is wrong.
 */
VT_API int vt_convert_images(const char *const *images, size_t nimages, const char *seg,
                             const char *out, const vt_convert_opts *opts);

/** What a file is to the importers, by the ending of its name (vt_image_format()). */
typedef enum vt_image_role {
    VT_IMAGE_NONE = 0, /**< no importer reads a file of that name */
    VT_IMAGE_FILE = 1, /**< an image: its header, or its header and voxels (.nii.gz, .hdr, .nrrd, .npy ...) */
    VT_IMAGE_DATA = 2, /**< the voxels of an image whose header is the file beside it (.img of a .hdr/.img
                            pair); given to vt_convert_images() it opens the pair */
    VT_IMAGE_RAW = 3   /**< headerless voxels (.raw, .raw.gz, .bin): read only as vt_convert_opts::raw says */
} vt_image_role;

/**
 * Which importer takes a file, by the ending of its name: the table
 * vt_convert_images() and vt_image_probe() use, for programs that look for
 * images in a folder (`voxtile stats`). The file is not opened.
 * @param path        file name.
 * @param format      receives the format's name ("nifti", "npy", "nrrd",
 *                    "metaimage", "raw"; static), or NULL when no importer
 *                    takes the name; may be NULL.
 * @param ending_len  receives the length of the ending that names the format
 *                    (7 for ".nii.gz"), 0 when none does; may be NULL.
 * @return the file's role; VT_IMAGE_NONE for a NULL path.
 */
VT_API vt_image_role vt_image_format(const char *path, const char **format, size_t *ending_len);

/** What vt_image_probe() tells of an image file. */
typedef struct vt_image_info {
    uint64_t shape[4];   /**< as it would be stored: (c, z, y, x) */
    vt_dtype dtype;      /**< as it would be stored */
    double spacing[3];   /**< voxel size along (z, y, x) */
    char format[16];     /**< "nifti1", "nifti2", "npy" ... */
} vt_image_info;

/**
 * Read the header of an image file (any input vt_convert_images() takes),
 * not its voxels.
 * @param path  image file.
 * @param out   filled in.
 * @return 0, or the errors of vt_convert_images() for a bad header;
 *         vt_errmsg(NULL) names the file.
 */
VT_API int vt_image_probe(const char *path, vt_image_info *out);

/**@}*/

/* ------------------------------------------------------------------------- */
/** @name Exporting a store back to NIfTI */
/**@{*/

/**
 * Write an array of a store as NIfTI (.nii, or .nii.gz), streaming. A store
 * converted from NIfTI gets its source header back (byte order, NIfTI-1 or
 * -2, extensions, qform/sform and their codes, units, descriptions),
 * changed only where the store differs: shape (crop, channels: a 4-d file for
 * several), datatype (float16/bfloat16 are written as float32), scaling (kept
 * when the store holds raw values, none when it was applied or for "seg"),
 * the translations of a cropped grid, vox_offset. Other stores get a NIfTI-1
 * header from their "affine" metadata (identity if none).
 * @param store  store path.
 * @param array  array name, NULL for "image".
 * @param out    .nii or .nii.gz to write (temporary file renamed into place).
 * @return 0; VT_EINVAL (bad output name); VT_ENOTFOUND (no such array);
 *         VT_EUNSUPPORTED (not a 4-d image array); errors of vt_open() and
 *         vt_read(); VT_EIO / VT_ENOSPC writing. vt_errmsg(NULL) has the detail.
 */
VT_API int vt_export_nifti(const char *store, const char *array, const char *out);

/** Options of vt_export_like(); initialise with vt_export_opts_init(). */
typedef struct vt_export_opts {
    int argmax;              /**< nonzero: the index of the largest channel (the first of equal maxima), after
                                  resampling, as labels 0..C-1: uint8 (uint16 over 256 channels) */
    vt_resample_order order; /**< float channels: linear (default, nnU-Net's export) or cubic; an axis the
                                  conversion resampled on its own (separate z) stays nearest */
    /** Called now and then with the fraction done (0..1); may be NULL. */
    void (*progress)(void *ctx, double fraction);
    void *progress_ctx;
} vt_export_opts;

/**
 * Fill @p opts with the defaults documented on each field.
 * @param opts  options to initialise; NULL is ignored.
 */
VT_API void vt_export_opts_init(vt_export_opts *opts);

/**
 * Map a prediction made on a case's store back to the case's source grid
 * and write it as NIfTI (.nii or .nii.gz), streaming in bounded memory.
 *
 * @p pred's array (C, z, y, x) must lie on the grid of @p like's image (same
 * z, y, x shape; when @p pred records an "affine", the same affine). The
 * resampling of the conversion is undone (output voxel i of an axis sits on
 * stored coordinate (i + 0.5) n' / n - 0.5, edge values outside), then the
 * crop: voxels outside the crop box take the background (0; for C > 1 float
 * channels written as such, channel 0 takes 1, as nnU-Net's probabilities).
 * Label arrays (one channel with a label index) are resampled by label
 * vote; other arrays with @ref vt_export_opts::order, then argmax when asked,
 * else written as channels (a 4-d file for several): float32 (float64
 * kept as the file's type; the resampling itself runs in float32),
 * integers rounded and clamped to their dtype. The header is @p like's source
 * NIfTI header (shape and datatype changed, scaling cleared), else a NIfTI-1
 * header from its "source.affine".
 * @param pred   the prediction's store.
 * @param array  its array; NULL: "pred" if present, else its only array.
 * @param like   the store of the case (converted by vt_convert_images(): it
 *               records "source.shape", "source.affine", "crop" and any
 *               "resample.*"). NULL: no mapping back; the array (NULL:
 *               "image") is written as vt_export_nifti() writes it, with
 *               @p opts' progress; argmax and order must then be the defaults.
 * @param opts   NULL for the defaults.
 * @param out    .nii or .nii.gz to write (temporary file renamed into place).
 * @return 0; VT_EINVAL (bad output name; a grid or geometry that is not
 *         @p like's; argmax of integer channels, of one channel, or of fewer
 *         channels than @p like's "seg" has classes); VT_ENOTFOUND (no such array);
 *         VT_EFORMAT (@p like records no source grid); VT_ERANGE (a grid
 *         axis over 2^31 voxels, slices over 2^34; integer values beyond 2^24,
 *         which float32 does not hold exactly); VT_ENOMEM; errors of vt_open(),
 *         vt_read() and writing. vt_errmsg(NULL) has the detail. Nothing is
 *         left at @p out on failure.
 */
VT_API int vt_export_like(const char *pred, const char *array, const char *like, const vt_export_opts *opts,
                          const char *out);
/**@}*/

/* ------------------------------------------------------------------------- */
/** @name Dataset fingerprint (nnU-Net's dataset_fingerprint.json) */
/**@{*/

/**
 * A dataset fingerprint being accumulated case by case, or loaded from a
 * file: per image channel the intensity statistics of the foreground, per
 * case the spacing and the shape after nnU-Net's crop to the nonzero box,
 * and the target spacing nnU-Net's planner would choose.
 *
 * What is counted, as nnU-Net v2's DatasetFingerprintExtractor does it:
 * each voxel as nnU-Net reads it (NIfTI scl_slope/scl_inter applied, rounded
 * to float32); the case cropped to the bounding box of the voxels that are
 * not 0 in some channel (NaN counts as not 0; the whole image when there are
 * none; nnU-Net's hole filling never grows that box, so it is not done);
 * the foreground is the segmentation's voxels > 0 inside that box. Unlike
 * nnU-Net, which draws 1e8 voxels at random (with replacement) over the
 * dataset, every foreground voxel counts: the two agree statistically, not
 * bit for bit. NaN voxels (an error in nnU-Net) are left out and counted.
 *
 * Precision: values that are integers in -32768 .. 65535 (all of uint8,
 * int8, uint16, int16 images, and floats holding such integers) go to an
 * exact histogram: min, max, median and percentiles are exactly numpy's
 * np.percentile(x, q) (linear interpolation between order statistics) of the
 * pooled foreground voxels; mean and std (population) exact up to double
 * rounding. Other values go to a histogram of 2^20 bins over the
 * order-preserving bits of the float32 (sign, exponent, 11 mantissa bits):
 * an order statistic in a bin holding one distinct value is exact, else it
 * is interpolated linearly inside the bin, off by at most the bin's width,
 * 2^-11 of the value (vt_fingerprint_stats::percentile_error says the bound
 * reached); mean and std are accumulated in double (compensated, relative
 * error ~1e-15); min and max are exact.
 *
 * Results do not depend on the order in which cases are added nor on the
 * threads that add them: cases are kept sorted by their first image's path.
 */
typedef struct vt_fingerprint vt_fingerprint;

/** One image channel's foreground statistics (vt_fingerprint_channel()). */
typedef struct vt_fingerprint_stats {
    uint64_t count;          /**< foreground voxels counted; 0 when unknown (a file written by nnU-Net) */
    uint64_t nan_count;      /**< foreground voxels that are NaN, left out */
    double mean;             /**< mean (NaN when count is 0) */
    double std;              /**< standard deviation, population (ddof 0) */
    double min, max;         /**< smallest and largest value */
    double median;           /**< np.percentile(x, 50) */
    double percentile_00_5;  /**< np.percentile(x, 0.5) */
    double percentile_99_5;  /**< np.percentile(x, 99.5) */
    double percentile_error; /**< bound on the error of median and percentiles: 0 exact, NaN unknown */
} vt_fingerprint_stats;

/** One case of a fingerprint (vt_fingerprint_case_get()). */
typedef struct vt_fingerprint_case {
    const char *image;            /**< its first image's path, NULL when the file did not record it;
                                       borrowed: valid until vt_fingerprint_free() */
    const char *seg;              /**< its segmentation's path, or NULL (as @c image) */
    double spacing[3];            /**< voxel size (z, y, x), mm */
    uint64_t shape[3];            /**< (z, y, x) before cropping; 0 when not recorded */
    uint64_t shape_after_crop[3]; /**< (z, y, x) of the nonzero box */
    int64_t crop[6];              /**< the box: z0, z1, y0, y1, x0, x1 (half-open); 0 when not recorded */
} vt_fingerprint_case;

/** The dataset as a whole (vt_fingerprint_summary()). */
typedef struct vt_fingerprint_summary {
    uint64_t cases;           /**< number of cases */
    uint64_t channels;        /**< image channels per case */
    double median_spacing[3]; /**< per axis (z, y, x), numpy's median of the cases' spacings */
    double median_shape[3];   /**< per axis, numpy's median of the shapes after cropping */
    double target_spacing[3]; /**< nnU-Net's choice (determine_fullres_target_spacing): the median
                                   spacing, except that when the largest median spacing is more than
                                   3x the others' largest and that axis's median size times 3 is less
                                   than the others' smallest, that axis takes the 10th percentile of
                                   its spacings, raised to max(others) + 1e-5 if below max(others) */
    int anisotropic_axis;     /**< the axis that rule changed, or -1 when it did not fire */
    int lowres_axis;          /**< the rule's inputs: the axis of the largest median spacing (the first
                                   on ties; fired iff median_spacing[lowres_axis] > 3 * others_max_spacing
                                   and median_shape[lowres_axis] * 3 < others_min_shape) */
    double others_max_spacing; /**< the largest median spacing of the two other axes */
    double others_min_shape;   /**< the smallest median shape after cropping of the two other axes */
    double median_relative_size_after_cropping; /**< median over the cases of voxels after / before cropping */
} vt_fingerprint_summary;

/**
 * Create an empty fingerprint.
 * @param out  receives the fingerprint (free with vt_fingerprint_free()); NULL on failure.
 * @return 0; VT_EINVAL (NULL @p out); VT_ENOMEM.
 */
VT_API int vt_fingerprint_new(vt_fingerprint **out);

/**
 * Add one case: read its images and segmentation slab by slab (bounded
 * memory: a few slabs of a few MiB, plus 0.75 MiB per channel for the exact
 * histogram and 12 MiB per channel once a value is not a small integer), and
 * merge its statistics. Safe to call from several threads at once on one
 * fingerprint (each call reads on its own; the merge takes a lock). A file
 * holding several channels (a 4-d image) is opened once per channel. A case
 * whose foreground lies partly outside the nonzero box is read twice.
 * @param fp       the fingerprint (not a loaded one).
 * @param images   the case's image files, channels in order, as vt_convert_images() takes them.
 * @param nimages  their number (at least 1).
 * @param seg      the segmentation file (one volume on the images' grid).
 * @param raw      how to read headerless raw inputs (.raw, .raw.gz, .bin), or NULL.
 * @return 0; VT_EINVAL (NULL argument, no images, inputs that differ in shape
 *         or geometry, a segmentation of several volumes, a channel count
 *         other than the earlier cases'); VT_ESTATE (a loaded fingerprint);
 *         the errors of vt_convert_images() reading the inputs (VT_EIO,
 *         VT_EFORMAT, VT_EUNSUPPORTED); VT_ENOMEM. vt_errmsg(NULL) names the
 *         file. On failure the fingerprint is unchanged.
 */
VT_API int vt_fingerprint_add_case(vt_fingerprint *fp, const char *const *images, size_t nimages,
                                   const char *seg, const vt_raw_spec *raw);

/**
 * The statistics of one image channel over all cases added (or loaded).
 * @param fp       the fingerprint.
 * @param channel  0 .. channels - 1.
 * @param out      filled in.
 * @return 0; VT_EINVAL (NULL argument); VT_ERANGE (no such channel);
 *         VT_ENOMEM.
 */
VT_API int vt_fingerprint_channel(vt_fingerprint *fp, size_t channel, vt_fingerprint_stats *out);

/**
 * One case: its paths, spacing, shape and crop box. Cases are numbered in the
 * order of their first image's path.
 * @param fp     the fingerprint.
 * @param index  0 .. cases - 1.
 * @param out    filled in; its strings are borrowed from @p fp.
 * @return 0; VT_EINVAL (NULL argument); VT_ERANGE (no such case); VT_ENOMEM.
 */
VT_API int vt_fingerprint_case_get(vt_fingerprint *fp, size_t index, vt_fingerprint_case *out);

/**
 * The dataset's numbers: case and channel counts, median spacing and shape,
 * the target spacing and whether nnU-Net's anisotropy rule chose it.
 * @param fp   the fingerprint.
 * @param out  filled in (NaN spacings and shapes when there are no cases).
 * @return 0; VT_EINVAL (NULL argument); VT_ENOMEM.
 */
VT_API int vt_fingerprint_summary_get(vt_fingerprint *fp, vt_fingerprint_summary *out);

/**
 * The fingerprint as JSON text: nnU-Net's keys
 * ("foreground_intensity_properties_per_channel" with "0", "1" ... each
 * {max, mean, median, min, percentile_00_5, percentile_99_5, std},
 * "median_relative_size_after_cropping", "shapes_after_crop", "spacings")
 * and voxtile's under "voxtile" (target spacing and the rule, per channel
 * count, nan_count and percentile_error, per case paths, shape and crop
 * box); docs/cli.md lists them. Numbers round-trip exactly; an undefined
 * statistic (no foreground) is null.
 * @param fp   the fingerprint.
 * @param buf  receives the text, NUL-terminated and truncated to @p len - 1
 *             bytes; may be NULL when @p len is 0.
 * @param len  size of @p buf.
 * @return the length of the whole text (as snprintf) or a negative VT_E* code:
 *         VT_EINVAL (NULL @p fp), VT_ENOMEM.
 */
VT_API long long vt_fingerprint_json(vt_fingerprint *fp, char *buf, size_t len);

/**
 * Write the fingerprint as JSON (vt_fingerprint_json()) to a file, replaced
 * atomically (a temporary renamed into place).
 * @param fp    the fingerprint.
 * @param path  file to write, e.g. dataset_fingerprint.json.
 * @return 0; VT_EINVAL (NULL argument); VT_EIO, VT_ENOSPC (writing);
 *         VT_ENOMEM. vt_errmsg(NULL) names the file.
 */
VT_API int vt_fingerprint_save(vt_fingerprint *fp, const char *path);

/**
 * Read a fingerprint file written by vt_fingerprint_save() or by nnU-Net
 * (dataset_fingerprint.json). The reader is strict: JSON syntax (RFC 8259,
 * plus the NaN, Infinity and -Infinity that Python writes), duplicate keys,
 * and nnU-Net's keys with their types (a statistics object per channel "0",
 * "1" ..., spacings of 3 positive numbers, shapes of 3 integers, as many
 * shapes as spacings) are checked; other keys are ignored. The statistics
 * are taken as written; the target spacing is computed again from the
 * spacings and shapes. A loaded fingerprint takes no more cases.
 * @param path  the file.
 * @param out   receives the fingerprint; NULL on failure.
 * @return 0; VT_EIO (cannot read); VT_EFORMAT (malformed: vt_errmsg(NULL)
 *         says "PATH: line L, column C: what"); VT_EINVAL (NULL argument);
 *         VT_ENOMEM.
 */
VT_API int vt_fingerprint_load(const char *path, vt_fingerprint **out);

/** Free a fingerprint.
 * @param fp  the fingerprint; NULL is ignored. */
VT_API void vt_fingerprint_free(vt_fingerprint *fp);
/**@}*/

/* ------------------------------------------------------------------------- */
/** @name Datasets: an nnU-Net raw folder, one store per case
 *
 * The per-case work of `voxtile convert-dataset`, for any driver: the CLI
 * runs cases in forked processes, the Python package as dask tasks. A
 * dataset is a folder with dataset.json ("channel_names", or nnU-Net v1's
 * "modality", and "file_ending", default ".nii.gz"), imagesTr/CASE_XXXX<ending>
 * (channel XXXX of case CASE), labelsTr/CASE<ending> (optional) and
 * imagesTs/CASE_XXXX<ending> (optional test cases). Case i of OUT_DIR is
 * stored as OUT_DIR/CASE.vxt, or OUT_DIR/imagesTs/CASE.vxt for a test case,
 * with the segmentation as array "seg". A store records the options that made
 * it ("convert.options", vt_convert_opts_string()): a case whose store was
 * made with the same options is up to date and left alone, so a rerun
 * resumes. A handle is read-only once open: threads and forked children may
 * convert different cases of one handle at once. */
/**@{*/

/** An nnU-Net raw dataset folder, scanned (opaque; vt_dataset_open()). */
typedef struct vt_dataset vt_dataset;

/** One case of a dataset (vt_dataset_case()); the strings belong to the
 * dataset handle and live until vt_dataset_close(). */
typedef struct vt_dataset_case_info {
    const char *id;            /**< the case's name: CASE of CASE_0000<ending> */
    const char *const *images; /**< nimages paths (RAW_DIR/imagesTr/CASE_0000<ending> ...) in channel
                                    order; an entry is NULL when that channel's file is missing */
    size_t nimages;            /**< channels, as dataset.json counts them */
    const char *seg;           /**< RAW_DIR/labelsTr/CASE<ending> when it exists, else NULL */
    int test;                  /**< nonzero for a case of imagesTs (stored in OUT_DIR/imagesTs) */
} vt_dataset_case_info;

/** What a case's store is, compared with the options asked for. */
typedef enum vt_case_status {
    VT_CASE_MISSING = 0,   /**< no store that opens: to convert */
    VT_CASE_OUTDATED = 1,  /**< a store made with other options: to convert again */
    VT_CASE_UP_TO_DATE = 2 /**< a store made with the same options: nothing to do */
} vt_case_status;

/**
 * Whether a file name is one channel of a case as nnU-Net names them,
 * CASE_XXXX<ending>: the @p stem_len characters of @p name before its ending
 * end in "_" and four digits. What vt_dataset_open() lists, for programs that
 * group image files into cases themselves (`voxtile stats`).
 * @param name      the file name (a path is fine: only its end is looked at).
 * @param stem_len  the length of @p name without its ending (".nii.gz" ...).
 * @param case_len  receives the length of CASE (of @p name up to "_XXXX"); may be NULL.
 * @param channel   receives XXXX as a number; may be NULL.
 * @return 1 when it is such a name, else 0 (the outputs untouched).
 */
VT_API int vt_nnunet_channel(const char *name, size_t stem_len, size_t *case_len, int *channel);

/**
 * Scan a dataset folder: read dataset.json and list the cases of imagesTr
 * (sorted by name) then of imagesTs (sorted by name), each with its channel
 * files and its label file. Files not named CASE_XXXX<ending>, and channels
 * beyond dataset.json's count, are ignored; imagesTs and labelsTr may be
 * absent. The voxels are not read.
 * @param raw_dir  the dataset folder; the paths of the cases begin with it as given.
 * @param out      receives the handle (NULL on failure); free with vt_dataset_close().
 * @return 0; VT_EIO (dataset.json cannot be read, a folder cannot be listed);
 *         VT_EFORMAT (no "channel_names" or "modality" object in dataset.json);
 *         VT_EINVAL (a NULL argument); VT_ENOMEM. vt_errmsg(NULL) names the file
 *         or folder.
 */
VT_API int vt_dataset_open(const char *raw_dir, vt_dataset **out);

/** Free a dataset handle.
 * @param ds  the handle; NULL is ignored. */
VT_API void vt_dataset_close(vt_dataset *ds);

/** The number of cases of a dataset.
 * @param ds  the dataset.
 * @return imagesTr's cases plus imagesTs'; 0 for NULL. */
VT_API size_t vt_dataset_ncases(const vt_dataset *ds);

/**
 * Describe case @p i: training cases first (0 .. n-1 sorted by name), then test cases.
 * @param ds    the dataset.
 * @param i     the case, 0 .. vt_dataset_ncases() - 1.
 * @param info  filled in; its strings are borrowed from @p ds.
 * @return 0; VT_EINVAL (NULL argument, @p i out of range).
 */
VT_API int vt_dataset_case(const vt_dataset *ds, size_t i, vt_dataset_case_info *info);

/**
 * Where case @p i is stored under @p out_dir: OUT_DIR/CASE.vxt, or
 * OUT_DIR/imagesTs/CASE.vxt for a test case.
 * @param ds       the dataset.
 * @param i        the case.
 * @param out_dir  the output folder.
 * @param buf      receives the path, NUL-terminated and truncated to @p len - 1
 *                 bytes; may be NULL when @p len is 0.
 * @param len      size of @p buf.
 * @return the length of the whole path (as snprintf); VT_EINVAL (negative) for a
 *         NULL @p ds or @p out_dir, or @p i out of range.
 */
VT_API int vt_dataset_store_path(const vt_dataset *ds, size_t i, const char *out_dir, char *buf, size_t len);

/**
 * Make the output folder ready: create @p out_dir (and its parents), and
 * OUT_DIR/imagesTs when there are test cases, and copy dataset.json there
 * (replaced atomically). Run once before converting the cases.
 * @param ds       the dataset.
 * @param out_dir  the output folder.
 * @return 0; VT_EIO / VT_ENOSPC (a folder cannot be created, dataset.json
 *         cannot be written); VT_EINVAL (NULL argument); VT_ENOMEM.
 *         vt_errmsg(NULL) names the folder or file.
 */
VT_API int vt_dataset_prepare(const vt_dataset *ds, const char *out_dir);

/**
 * Whether case @p i has an up-to-date store under @p out_dir: one that
 * opens and whose "convert.options" equals vt_convert_opts_string(@p opts).
 * Nothing is written.
 * @param ds       the dataset.
 * @param i        the case.
 * @param out_dir  the output folder.
 * @param opts     the conversion options, NULL for the defaults.
 * @param status   receives VT_CASE_MISSING, VT_CASE_OUTDATED or VT_CASE_UP_TO_DATE.
 * @return 0; VT_EINVAL (NULL argument, @p i out of range); VT_ENOMEM.
 */
VT_API int vt_dataset_case_status(const vt_dataset *ds, size_t i, const char *out_dir,
                                  const vt_convert_opts *opts, vt_case_status *status);

/**
 * Convert case @p i into its store under @p out_dir, unless it is up to date
 * (vt_dataset_case_status()): its channels in order and its segmentation
 * through vt_convert_images(), the store replaced atomically (an old store
 * stays whole until the new one is complete; nothing is left on failure).
 * The store's folder is created when missing.
 * @param ds       the dataset.
 * @param i        the case.
 * @param out_dir  the output folder.
 * @param opts     the conversion options, NULL for the defaults.
 * @param status   receives what the store was before (VT_CASE_UP_TO_DATE: nothing
 *                 was done); may be NULL.
 * @return 0; VT_EIO naming the file of a missing channel; the errors of
 *         vt_convert_images(); VT_EINVAL (NULL argument, @p i out of range).
 *         vt_errmsg(NULL) names the file.
 */
VT_API int vt_dataset_convert_case(const vt_dataset *ds, size_t i, const char *out_dir,
                                   const vt_convert_opts *opts, vt_case_status *status);
/**@}*/

#ifdef __cplusplus
}
#endif
#endif /* VOXTILE_CONVERT_H */
