/* Label index: per-tile histograms in the writer, the on-disk block, and its
 * validation in the reader. */
#ifndef VT_LABELS_H
#define VT_LABELS_H

#include "internal.h"

#define VT_LABEL_HEADER 8u
#define VT_LABEL_ENTRY 32u
#define VT_LABEL_PAIR 16u

typedef struct vt_label_pair {
    int64_t value;
    uint64_t count;
} vt_label_pair;

/* The distinct values of one tile with their counts, sorted by value. */
typedef struct vt_label_hist {
    vt_label_pair *pairs;
    uint32_t n;
} vt_label_hist;

/* Integer dtypes a label array may have. */
VT_INTERNAL bool vt__label_dtype_ok(vt_dtype dt);
/* Histogram of @p n elements. */
VT_INTERNAL int vt__label_hist(vt_dtype dt, const void *data, size_t n, vt_label_hist *out);
/* Encode the block from the histograms of every tile; *buf is malloc'd. */
VT_INTERNAL int vt__label_block(const vt_label_hist *hist, uint64_t ntiles, unsigned char **buf,
                                size_t *len);
/* Check a block read from a file: sizes, order, tile numbers and counts
 * (tile_voxels(ctx, t) gives the voxels of tile t), totals. */
VT_INTERNAL int vt__label_check(const unsigned char *b, uint64_t size, uint64_t ntiles,
                                uint64_t voxels, uint64_t (*tile_voxels)(const void *ctx, uint64_t tile),
                                const void *ctx, char *why, size_t whylen);

#endif
