/* Mean and squared deviations of a stream of doubles, accurate whatever
 * their offset from zero: sums of the deviations from the first value,
 * each compensated (Neumaier). Used by the fingerprint and by convert's
 * zscore normalisation. */
#ifndef VT_MOMENTS_H
#define VT_MOMENTS_H

#include <math.h>
#include <stdint.h>

/* Neumaier's compensated sum: s + c is the sum of the terms added. */
static inline void vt__neumaier(double *s, double *c, double x)
{
    double t = *s + x;
    *c += fabs(*s) >= fabs(x) ? (*s - t) + x : (x - t) + *s;
    *s = t;
}

typedef struct vt__moments {
    uint64_t n;
    double shift, s1, c1, s2, c2;
} vt__moments; /* all zero: none yet */

static inline void vt__moments_add(vt__moments *a, double x)
{
    if (a->n++ == 0)
        a->shift = x;
    double d = x - a->shift;
    vt__neumaier(&a->s1, &a->c1, d);
    vt__neumaier(&a->s2, &a->c2, d * d);
}

/* The mean and the sum of squared deviations from it (0 and 0 for none). */
static inline void vt__moments_get(const vt__moments *a, double *mean, double *m2)
{
    *mean = *m2 = 0;
    if (a->n) {
        double s1 = a->s1 + a->c1, s2 = a->s2 + a->c2, n = (double)a->n;
        *mean = a->shift + s1 / n;
        *m2 = fmax(0.0, s2 - s1 * s1 / n);
    }
}

#endif
