/* Display rules shared by `voxtile preview` and `voxtile view`, so a slice
 * looks the same in a PNG and in the browser (docs/cli.md). */
#ifndef VOXTILE_DISPLAY_H
#define VOXTILE_DISPLAY_H

#include "voxtile.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

/* Flips of the spatial axes (z, y, x) for radiological orientation: with an
 * affine (4x4, row-major; NULL: none) from a NIfTI, NRRD or MetaImage source,
 * an axis whose index grows towards R, A or S (its affine column's largest
 * component is positive) is flipped. */
static inline void display_flips(const vt_store *s, const double *aff, bool flip[3])
{
    vt_meta_type t;
    const void *fmt;
    size_t n;
    flip[0] = flip[1] = flip[2] = false;
    if (aff == NULL || vt_meta_get(s, "format", &t, &fmt, &n) != 0 || t != VT_META_STRING ||
        !(strncmp(fmt, "nifti", 5) == 0 || strcmp(fmt, "nrrd") == 0 || strcmp(fmt, "metaimage") == 0))
        return;
    for (int a = 0; a < 3; a++) { /* array axis z, y, x = affine column 2, 1, 0 */
        int col = 2 - a, best = 0;
        for (int row = 1; row < 3; row++)
            if (fabs(aff[4 * row + col]) > fabs(aff[4 * best + col]))
                best = row;
        flip[a] = aff[4 * best + col] > 0;
    }
}

#endif
