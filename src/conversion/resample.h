/* Pyramid levels by streaming 2x downsampling (Lanczos-3 for images, block
 * mode for labels). */
#ifndef VT_RESAMPLE_H
#define VT_RESAMPLE_H

#include "internal.h"

typedef struct vt_pyramid vt_pyramid;

/* Called for each output slice of level (1-based) @p level at depth @p z:
 * @p f (images) or @p lab (labels) holds out[1] x out[2] values. */
typedef int (*vt_pyramid_emit)(void *ctx, int level, uint64_t z, const float *f, const int32_t *lab);

/* Plan up to @p nlevels levels below a (z, y, x) grid of @p shape and
 * @p spacing; fewer when no axis can be halved any more. */
VT_INTERNAL int vt__pyramid_new(int nlevels, const double *spacing, const uint64_t *shape, bool labels,
                                vt_pyramid_emit emit, void *ctx, vt_pyramid **out);
VT_INTERNAL void vt__pyramid_free(vt_pyramid *p);
/* Levels actually planned. */
VT_INTERNAL int vt__pyramid_levels(const vt_pyramid *p);
/* Shape of level k+1 (0-based k) and which axes it halved. */
VT_INTERNAL void vt__pyramid_level(const vt_pyramid *p, int k, uint64_t *shape, int *reduced);
/* Start a volume (a channel). */
VT_INTERNAL void vt__pyramid_begin(vt_pyramid *p);
/* Feed the next z slice of the base level (float for images, int32 for labels). */
VT_INTERNAL int vt__pyramid_push(vt_pyramid *p, const float *slice, const int32_t *labels);
/* Flush the volume's last slices. */
VT_INTERNAL int vt__pyramid_end(vt_pyramid *p);

#endif
