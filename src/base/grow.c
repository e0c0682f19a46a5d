/* Scratch buffers that grow to the largest size asked of them, and arrays
 * that grow by doubling. */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int vt__grow_items(void *arr, size_t *cap, size_t n, size_t item, size_t first)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap : first;
    while (c <= n) {
        if (c > SIZE_MAX / 2)
            return VT_ENOMEM;
        c *= 2;
    }
    if (c > SIZE_MAX / item)
        return VT_ENOMEM;
    void *old;
    memcpy(&old, arr, sizeof old);
    void *g = vt__realloc(old, c * item);
    if (g == NULL)
        return VT_ENOMEM;
    memcpy(arr, &g, sizeof g);
    *cap = c;
    return 0;
}

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
