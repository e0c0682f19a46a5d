/* A change of voxel spacing, streamed slice by slice (vt_convert_opts::spacing
 * and the export of predictions back to a source grid). */
#ifndef VT_SPACING_H
#define VT_SPACING_H

#include "internal.h"

/* How one axis is interpolated. */
typedef enum vt_kernel { VT_KERNEL_NEAREST, VT_KERNEL_LINEAR, VT_KERNEL_CUBIC } vt_kernel;

/* One axis's taps and weights, per output index: output i sits at input
 * coordinate c = (i + 0.5) n_in / n_out - 0.5; taps outside [0, n_in) are
 * clamped to the edge. */
typedef struct vt_axis {
    uint64_t n_in, n_out;
    int ntaps;      /* 1 nearest, 2 linear (and labels), 4 cubic */
    uint32_t *tap;  /* n_out * ntaps input indices, consecutive before clamping */
    double *w;      /* n_out * ntaps weights */
    double *frac;   /* n_out fractions of the linear taps (0 on a nearest axis): the label vote's */
} vt_axis;

/* Table axis @p a; labels: 2 taps whatever @p k (a nearest axis: both the
 * nearest, frac 0). VT_ENOMEM or 0; free with vt__axis_free either way. */
VT_INTERNAL int vt__axis_init(vt_axis *a, uint64_t n_in, uint64_t n_out, vt_kernel k, bool labels);
VT_INTERNAL void vt__axis_free(vt_axis *a);

/* Output slice of labels between input slices @p z0 and @p z1 (ay->n_in x
 * ax->n_in int32 each, weight @p fz on z1): the label vote over each output
 * voxel's 8 linear taps, into @p out (ay->n_out x ax->n_out). */
VT_INTERNAL void vt__vote_plane(const vt_axis *ay, const vt_axis *ax, const int32_t *z0, const int32_t *z1, double fz,
                                int32_t *out);

typedef struct vt_respace vt_respace;

/* Called for each output slice z (in order): @p f (images, out[1] x out[2]
 * doubles) or @p lab (labels, int32). A nonzero return stops the stream. */
typedef int (*vt_respace_emit)(void *ctx, uint64_t z, const double *f, const int32_t *lab);

/* A grid of in[3] (z, y, x) voxels resampled to out[3]: output index i maps
 * to input coordinate (i + 0.5) in / out - 0.5 (voxel centres aligned, as
 * skimage's resize and nnU-Net), taps outside the input take the edge value.
 * Images: separable, the kernel of each axis (cubic: Keys a = -1/2; linear;
 * nearest: halves up). Labels: the label vote over the 2 x 2 x 2 linear taps
 * (an axis whose kernel is nearest takes its nearest slice). Memory: a few
 * slices. */
VT_INTERNAL int vt__respace_new(const uint64_t *in, const uint64_t *out, const vt_kernel *kern, bool labels,
                                vt_respace_emit emit, void *ctx, vt_respace **out_r);
VT_INTERNAL void vt__respace_free(vt_respace *r);
/* Start a volume (a channel). */
VT_INTERNAL void vt__respace_begin(vt_respace *r);
/* The next input slice, z increasing: in[1] x in[2] doubles (images) or int32
 * (labels). Emits every output slice it completes. */
VT_INTERNAL int vt__respace_push(vt_respace *r, const double *slice, const int32_t *labels);
/* After the last input slice: emit the rest. */
VT_INTERNAL int vt__respace_end(vt_respace *r);

/* nnU-Net's new shape for a change of spacing: rint(old / new * n), halves to even, at least 1. */
VT_INTERNAL uint64_t vt__respace_extent(uint64_t n, double old_spacing, double new_spacing);

#endif
