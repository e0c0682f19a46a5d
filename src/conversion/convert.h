/* What the conversion layer's files share. */
#ifndef VT_CONVERT_H
#define VT_CONVERT_H

#include "internal.h"
#include "source.h"
#include "voxtile_convert.h"

/* Report the writer's last failure (code @p rc) as the calling thread's,
 * for vt_errmsg(NULL); returns @p rc. */
VT_INTERNAL int vt__convert_writer_fail(vt_writer *w, int rc);

/* ---- one voxel grid for a case's inputs (grid.c) -------------------------- */

/* Whether two affines (row-major 4x4, the first 3 rows compared) describe
 * one voxel grid: equal to 1e-4 relative to the larger entry (or to 1). */
VT_INTERNAL bool vt__same_affine(const double *a, const double *b);
/* The images @p img (at least one) and the segmentation @p seg (NULL: none)
 * share one voxel grid -- shape (z, y, x) and affine -- and the segmentation
 * has one volume; *shape receives that (z, y, x). VT_EINVAL naming the file
 * that differs. (convert.c's check_grid applies the same rule with its own
 * copy, same_affine; it can call this.) */
VT_INTERNAL int vt__check_grid(vt_source *const *img, size_t nimg, const vt_source *seg, uint64_t shape[3]);

#endif
