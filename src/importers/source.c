/* The image source object the importers fill in (source.h): creation with
 * an identity geometry, closing, and keeping a text header verbatim. */
#include "source.h"

#include <stdlib.h>
#include <string.h>

vt_source *vt__source_new(const char *path)
{
    vt_source *s = vt__calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->path = vt__strdup(path);
    if (s->path == NULL) {
        free(s);
        return NULL;
    }
    for (int i = 0; i < 4; i++)
        s->shape[i] = 1;
    for (int i = 0; i < 3; i++)
        s->spacing[i] = 1;
    for (int i = 0; i < 16; i += 5)
        s->affine[i] = s->qform[i] = s->sform[i] = 1;
    return s;
}

void vt__source_close(vt_source *s)
{
    if (s == NULL)
        return;
    if (s->close)
        s->close(s);
    free(s->extra);
    free(s->path);
    free(s);
}

uint64_t vt__source_slice_bytes(const vt_source *s)
{
    return s->shape[2] * s->shape[3] * vt_dtype_size(s->dtype);
}

int vt__source_keep_text_header(vt_source *s, const void *text, size_t len)
{
    if (len <= VT_SOURCE_HEADER_MAX) {
        memcpy(s->header, text, len);
        s->header_len = len;
        return 0;
    }
    unsigned char *p = vt__malloc(len);
    if (p == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, s->path, "out of memory");
    memcpy(p, text, len);
    free(s->extra);
    s->extra = p;
    s->extra_len = len;
    s->header_len = 0;
    return 0;
}

int vt__source_done(vt_source *s, int rc, vt_source **out)
{
    if (rc) {
        vt__source_close(s);
        return rc;
    }
    *out = s;
    return 0;
}
