/* Which importer reads a file: one table of file name endings, used to open
 * an image (vt__source_open), to probe one (vt_image_probe), and by the CLI
 * (vt_image_format) to tell image files in a folder. A new importer is one
 * io_NAME.c and a row here. */
#include "source.h"

#include <stdio.h>
#include <string.h>

static const struct importer {
    const char *ending;
    const char *format;
    vt_image_role role;
    int (*open)(const char *path, vt_source **out); /* NULL: raw, opened with a vt_raw_spec */
} importers[] = {
    {".nii", "nifti", VT_IMAGE_FILE, vt__nifti_open},
    {".nii.gz", "nifti", VT_IMAGE_FILE, vt__nifti_open},
    {".hdr", "nifti", VT_IMAGE_FILE, vt__nifti_open},
    {".hdr.gz", "nifti", VT_IMAGE_FILE, vt__nifti_open},
    {".img", "nifti", VT_IMAGE_DATA, vt__nifti_open},
    {".img.gz", "nifti", VT_IMAGE_DATA, vt__nifti_open},
    {".npy", "npy", VT_IMAGE_FILE, vt__npy_source_open},
    {".nrrd", "nrrd", VT_IMAGE_FILE, vt__nrrd_open},
    {".nhdr", "nrrd", VT_IMAGE_FILE, vt__nrrd_open},
    {".mha", "metaimage", VT_IMAGE_FILE, vt__mha_open},
    {".mhd", "metaimage", VT_IMAGE_FILE, vt__mha_open},
    {".raw", "raw", VT_IMAGE_RAW, NULL},
    {".raw.gz", "raw", VT_IMAGE_RAW, NULL},
    {".bin", "raw", VT_IMAGE_RAW, NULL},
};

static const struct importer *importer_of(const char *path)
{
    for (size_t i = 0; i < sizeof importers / sizeof importers[0]; i++)
        if (vt__ends_with(path, importers[i].ending))
            return &importers[i];
    return NULL;
}

vt_image_role vt_image_format(const char *path, const char **format, size_t *ending_len)
{
    const struct importer *im = path ? importer_of(path) : NULL;
    if (format)
        *format = im ? im->format : NULL;
    if (ending_len)
        *ending_len = im ? strlen(im->ending) : 0;
    return im ? im->role : VT_IMAGE_NONE;
}

int vt__source_open_raw(const char *path, const vt_raw_spec *raw, bool seg, vt_source **out)
{
    *out = NULL;
    const struct importer *im = importer_of(path);
    if (im && im->open)
        return im->open(path, out);
    if (im && raw)
        return vt__raw_open(path, raw, seg, out);
    return vt__fail_at(NULL, VT_EUNSUPPORTED, path,
                       "unknown image type (supported: .nii, .nii.gz, .hdr/.img, .npy, .nrrd, .nhdr, "
                       ".mha, .mhd; .raw, .raw.gz, .bin with a raw shape and dtype)");
}

int vt__source_open(const char *path, vt_source **out) { return vt__source_open_raw(path, NULL, false, out); }

int vt_image_probe(const char *path, vt_image_info *out)
{
    if (path == NULL || out == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_image_probe: NULL argument");
    vt_source *s;
    int rc = vt__source_open(path, &s);
    if (rc)
        return rc;
    memset(out, 0, sizeof *out);
    memcpy(out->shape, s->shape, sizeof out->shape);
    out->dtype = s->dtype;
    memcpy(out->spacing, s->spacing, sizeof out->spacing);
    snprintf(out->format, sizeof out->format, "%s", s->format ? s->format : "?");
    vt__source_close(s);
    return 0;
}
