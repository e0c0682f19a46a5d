/* One voxel grid for the inputs of a case: the rule the converter and the
 * fingerprint apply before reading a voxel. */
#include "convert.h"

#include <math.h>

bool vt__same_affine(const double *a, const double *b)
{
    for (int i = 0; i < 12; i++)
        if (fabs(a[i] - b[i]) > 1e-4 * fmax(1.0, fmax(fabs(a[i]), fabs(b[i]))))
            return false;
    return true;
}

int vt__check_grid(vt_source *const *img, size_t nimg, const vt_source *seg, uint64_t shape[3])
{
    const vt_source *ref = img[0];
    for (int d = 0; d < 3; d++)
        shape[d] = ref->shape[d + 1];
    for (size_t i = 0; i <= nimg; i++) {
        const vt_source *s = i < nimg ? img[i] : seg;
        if (s == NULL)
            continue;
        if (s->shape[1] != shape[0] || s->shape[2] != shape[1] || s->shape[3] != shape[2])
            return vt__fail_at(NULL, VT_EINVAL, s->path,
                               "shape (z, y, x) = (%llu, %llu, %llu) differs from %s (%llu, %llu, %llu)",
                               (unsigned long long)s->shape[1], (unsigned long long)s->shape[2],
                               (unsigned long long)s->shape[3], ref->path, (unsigned long long)shape[0],
                               (unsigned long long)shape[1], (unsigned long long)shape[2]);
        if (!vt__same_affine(s->affine, ref->affine))
            return vt__fail_at(NULL, VT_EINVAL, s->path, "its affine (voxel-to-world geometry) differs from %s's",
                               ref->path);
        if (i == nimg && s->shape[0] != 1)
            return vt__fail_at(NULL, VT_EINVAL, s->path, "a segmentation must have one volume, not %llu",
                               (unsigned long long)s->shape[0]);
    }
    return 0;
}
