/* Headerless raw files (.raw, .raw.gz, .bin): shape, dtype, byte order and
 * geometry come from the caller's vt_raw_spec, the voxels from voxels.c. */
#include "source.h"
#include "voxels.h"

#include <string.h>

/* A headerless file: shape, dtype and geometry from @p raw. */
int vt__raw_open(const char *path, const vt_raw_spec *raw, bool seg, vt_source **out)
{
    vt_dtype dt = seg ? (raw->seg_dtype == VT_DTYPE_SAME ? VT_U8 : raw->seg_dtype) : raw->dtype;
    if (!vt__dtype_valid(dt))
        return vt__fail_at(NULL, VT_EINVAL, path, "a raw file needs a valid dtype");
    for (int d = 0; d < 4; d++)
        if (raw->shape[d] == 0)
            return vt__fail_at(NULL, VT_EINVAL, path, "a raw file needs a shape (c, z, y, x) of sizes >= 1");
    vt_source *s = vt__source_new(path);
    if (s == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
    memcpy(s->shape, raw->shape, sizeof s->shape);
    if (seg) /* one volume on the images' grid */
        s->shape[0] = 1;
    s->format = "raw";
    for (int d = 0; d < 3; d++)
        s->spacing[d] = raw->spacing[d] > 0 ? raw->spacing[d] : 1.0;
    for (int d = 0; d < 3; d++)
        s->affine[5 * d] = s->spacing[2 - d]; /* affine columns are x, y, z */
    vt_voxels_spec fs;
    memset(&fs, 0, sizeof fs);
    fs.data_path = path;
    fs.offset = raw->offset;
    fs.codec = vt__ends_with(path, ".gz") ? VT_VOXELS_GZIP : VT_VOXELS_RAW;
    fs.dtype = dt;
    fs.file_elem_bytes = vt_dtype_size(dt);
    fs.big_endian = raw->big_endian != 0;
    int rc = vt__voxels_attach(s, &fs);
    return vt__source_done(s, rc, out);
}
