/* What the conversion layer's files share. */
#ifndef VT_CONVERT_H
#define VT_CONVERT_H

#include "internal.h"
#include "voxtile_convert.h"

/* Report the writer's last failure (code @p rc) as the calling thread's,
 * for vt_errmsg(NULL); returns @p rc. */
VT_INTERNAL int vt__convert_writer_fail(vt_writer *w, int rc);

#endif
