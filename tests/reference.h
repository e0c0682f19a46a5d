/* What a read promises (include/voxtile.h, vt_read), computed here
 * independently of the library: the pad modes' index mapping and the
 * transform. Shared by the Check suites (through testutil.h) and the fuzz
 * harnesses (tests/fuzz/fuzz_read.c), so it needs neither Check nor the
 * library's internals. */
#ifndef VT_TEST_REFERENCE_H
#define VT_TEST_REFERENCE_H

#include "voxtile.h"

#include <stdint.h>

/* Array index for index @p i of an axis of @p n voxels under @p pad (numpy's
 * "edge" and "reflect"); -1 where a constant pads.
 * Reflect is derived otherwise than the library's period-2(n-1) formula
 * (src/store/store.h): cut the line into half-periods of n-1 voxels; in an
 * even one the index runs forward from 0, in an odd one backward from n-1.
 * (Folding the index back and forth until it lands inside would take 2^62
 * steps for the starts near INT64_MIN/MAX that fuzz_read tries.) */
static inline int64_t ref_map(int64_t i, int64_t n, vt_pad pad)
{
    if (i >= 0 && i < n)
        return i;
    if (pad == VT_PAD_CONSTANT)
        return -1;
    if (pad == VT_PAD_EDGE)
        return i < 0 ? 0 : n - 1;
    if (n == 1)
        return 0;
    int64_t h = n - 1, q = i / h, r = i % h;
    if (r < 0) { /* floor division */
        r += h;
        q--;
    }
    return q % 2 == 0 ? r : h - r;
}

/* @p v through the read's transform (vt_read_opts.transform): clipped to
 * [clip_lo, clip_hi], then v * scale + offset. */
static inline double ref_transform(double v, const vt_read_opts *o)
{
    if (v < o->clip_lo)
        v = o->clip_lo;
    if (v > o->clip_hi)
        v = o->clip_hi;
    return v * o->scale + o->offset;
}

#endif
