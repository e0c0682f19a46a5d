/* What the conversion layer's files share. */
#ifndef VT_CONVERT_H
#define VT_CONVERT_H

#include "internal.h"
#include "source.h"
#include "voxtile_convert.h"

/* Report the writer's last failure (code @p rc) as the calling thread's,
 * for vt_errmsg(NULL); returns @p rc. */
VT_INTERNAL int vt__convert_writer_fail(vt_writer *w, int rc);

/* A NIfTI file being written (export.c). */
typedef struct vt_nifti_out vt_nifti_out;

/* Store @p s's last failure (code @p rc) as the calling thread's, for
 * vt_errmsg(NULL); returns @p rc. */
VT_INTERNAL int vt__store_fail(const vt_store *s, int rc);

/* Metadata @p key of @p s if it has @p type and (unless 0) @p count values, else NULL. */
VT_INTERNAL const void *vt__meta_typed(const vt_store *s, const char *key, vt_meta_type type, size_t count);

/* Start writing @p out (.nii or .nii.gz) for @p shape (c, z, y, x) voxels of
 * @p dt, with the header of store @p s: its source's NIfTI header patched
 * (shape, datatype, scaling; the geometry of array @p name: crop, level,
 * resampling), else a fresh NIfTI-1 header from its affine. @p source_grid:
 * the data lie on the source's own grid (uncropped, not resampled): its
 * geometry unchanged, scaling cleared. */
VT_INTERNAL int vt__nifti_out_open(const vt_store *s, const char *name, const uint64_t *shape, vt_dtype dt,
                                   bool source_grid, const char *out, vt_nifti_out **w);
/* Bytes of a voxel in the file (twice the dtype's when int64 is restored):
 * the capacity per voxel vt__nifti_out_write needs. */
VT_INTERNAL size_t vt__nifti_out_elem(const vt_nifti_out *w);
/* The next @p n voxels, x fastest, then y, z, channel; @p data is changed
 * (byte order, widening). Nonzero on a write error (close reports it). */
VT_INTERNAL int vt__nifti_out_write(vt_nifti_out *w, void *data, uint64_t n);
/* Finish: publish when @p rc is 0, else discard; frees @p w. Returns @p rc or
 * the write's error. */
VT_INTERNAL int vt__nifti_out_close(vt_nifti_out *w, int rc);

/* vt_export_nifti, reporting progress through @p o (NULL: none). */
VT_INTERNAL int vt__export_plain(const char *store_path, const char *array, const char *out, const vt_export_opts *o);

/* ---- one voxel grid for a case's inputs (grid.c) -------------------------- */

/* Whether two affines (row-major 4x4, the first 3 rows compared) describe
 * one voxel grid: equal to 1e-4 relative to the larger entry (or to 1). */
VT_INTERNAL bool vt__same_affine(const double *a, const double *b);
/* The images @p img (at least one) and the segmentation @p seg (NULL: none)
 * share one voxel grid -- shape (z, y, x) and affine -- and the segmentation
 * has one volume; *shape receives that (z, y, x). VT_EINVAL naming the file
 * that differs. */
VT_INTERNAL int vt__check_grid(vt_source *const *img, size_t nimg, const vt_source *seg, uint64_t shape[3]);

#endif
