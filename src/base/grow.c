/* Scratch buffers that grow to the largest size asked of them. */
#include "internal.h"

#include <stdlib.h>

int vt__grow(unsigned char **p, size_t *cap, size_t need)
{
    if (*cap >= need)
        return 0;
    size_t n = need < 4096 ? 4096 : need;
    unsigned char *q = vt__malloc(n);
    if (q == NULL)
        return VT_ENOMEM;
    free(*p);
    *p = q;
    *cap = n;
    return 0;
}
