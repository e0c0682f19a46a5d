/* What the AVX2 kernel of vt_sample (sample_avx2.c) needs to sample 8
 * voxels of a row for a group of arrays that share one plan: the geometry of
 * the tiles, the table of planned tiles, and per array where its decoded
 * tiles are. Filled by sample.c for each block. */
#ifndef VT_SAMPLE_VEC_H
#define VT_SAMPLE_VEC_H

#include "internal.h"

#define VT_VEC_MAX_ARRAYS 8

enum { VT_VEC_LINEAR, VT_VEC_LABEL16 };

typedef struct vt_vec_group {
    double m[12];          /* the map */
    int32_t nlast[3];      /* n - 2: the largest floor index whose two taps are inside */
    int32_t shift[3];      /* log2 of the tile shape */
    int32_t d0[3], dn[3];  /* the dense table's tile-coordinate box */
    const int32_t *table;  /* slot number per tile of the box, -1 for none */
    int32_t st0, st1;      /* element strides of a decoded tile (x: 1) */
    int narr;
    struct {
        int kind;            /* VT_VEC_LINEAR (float32 tiles) or VT_VEC_LABEL16 (int16 tiles) */
        const void *arena;   /* the array's decoded tiles */
        const int32_t *base; /* per slot: element index of its decoded tile in arena, -1 if none */
        float *rf;           /* linear: results of the row */
        int32_t *ri;         /* labels: results of the row */
    } a[VT_VEC_MAX_ARRAYS];
} vt_vec_group;

/* Output voxels (k, j, i0 .. i0+n-1) of every array of @p g, 8 at a time,
 * written at positions 0 .. n-1 of each array's row results; the floors and
 * fractions of every group of 8 go to iz .. fx[0 .. ] for the caller. Returns a mask
 * of the groups of 8 it did (bit g: voxels 8g .. 8g+7; a partial group at
 * the end is never done): a group is left to the caller, untouched, when some
 * voxel's taps are not all inside the array or not all in decoded tiles.
 * @p votes[a] gets the voxels (bit q) of label array a in the groups done
 * whose taps differ: the caller votes on them. */
VT_INTERNAL unsigned vt__sample_row_avx2(const vt_vec_group *g, int64_t k, int64_t j, int64_t i0, int n,
                                         int64_t *iz, int64_t *iy, int64_t *ix, double *fz, double *fy, double *fx,
                                         uint32_t *votes);

#endif
