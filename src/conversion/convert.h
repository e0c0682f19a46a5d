/* What the conversion layer's files share. */
#ifndef VT_CONVERT_H
#define VT_CONVERT_H

#include "internal.h"
#include "voxtile_convert.h"

#include <math.h>

/* Report the writer's last failure (code @p rc) as the calling thread's,
 * for vt_errmsg(NULL); returns @p rc. */
VT_INTERNAL int vt__convert_writer_fail(vt_writer *w, int rc);

/* Whether two affines (row-major 4x4, the first 3 rows compared) describe
 * one voxel grid: equal to 1e-4 relative to the larger entry (or to 1). The
 * rule convert.c's check_grid applies (its static same_affine). */
static inline bool vt__same_affine(const double *a, const double *b)
{
    for (int i = 0; i < 12; i++)
        if (fabs(a[i] - b[i]) > 1e-4 * fmax(1.0, fmax(fabs(a[i]), fabs(b[i]))))
            return false;
    return true;
}

#endif
