/* Interpolation kernels shared by the sampler (sample.c: vt_sample) and the
 * conversion's change of spacing (conversion/spacing.c): one rule for labels
 * whether a patch is rotated for training or a volume is resampled. */
#ifndef VT_INTERP_H
#define VT_INTERP_H

#include "internal.h"

/* The label vote: among 8 taps v[4 dz + 2 dy + dx] (dz, dy, dx in {0, 1}) with
 * trilinear weights from the fractions (wz, wy, wx), the value whose taps weigh
 * most in total, ties (within 1e-9, so that rounding in the sums does not
 * decide them) to the smaller value -- the argmax of the one-hot masks of
 * every label interpolated trilinearly, the first of equal maxima. Taps of weight 0 do not count, so a
 * fraction of 0 on an axis (or equal taps) makes it a vote in fewer dimensions. */
VT_INTERNAL int32_t vt__label_vote(const int32_t *v, double wz, double wy, double wx);

/* Weights of a local cubic at fraction f of the interval [j, j + 1], for the
 * taps j - 1, j, j + 1, j + 2: Keys' cubic convolution with a = -1/2
 * (Catmull-Rom): interpolating, C1, third-order accurate, no prefilter. */
static inline void vt__cubic_weights(double f, double w[4])
{
    double f2 = f * f, f3 = f2 * f;
    w[0] = -0.5 * f3 + f2 - 0.5 * f;
    w[1] = 1.5 * f3 - 2.5 * f2 + 1;
    w[2] = -1.5 * f3 + 2 * f2 + 0.5 * f;
    w[3] = 0.5 * f3 - 0.5 * f2;
}

#endif
