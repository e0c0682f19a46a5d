/* float16 / bfloat16 conversions. */
#ifndef VT_HALF_H
#define VT_HALF_H

#include "internal.h"

/* Scalar conversions on bit patterns. Rounding is to nearest, ties to even.
 * f32/f64 -> f16 follow numpy's astype(float16) exactly, NaN included: the
 * payload's top bits are kept (sign | 0x7c00 | payload >> shift, never 0). */
VT_INTERNAL uint16_t vt__f32_to_f16_bits(uint32_t f);
VT_INTERNAL uint16_t vt__f64_to_f16_bits(uint64_t d);
VT_INTERNAL uint32_t vt__f16_to_f32_bits(uint16_t h);
/* bfloat16: NaN becomes the quiet NaN 0x7fc0 with the input's sign (as Eigen
 * and ml_dtypes do). */
VT_INTERNAL uint16_t vt__f32_to_bf16_bits(uint32_t f);
VT_INTERNAL uint16_t vt__f64_to_bf16_bits(uint64_t d);
static inline uint32_t vt__bf16_to_f32_bits(uint16_t b) { return (uint32_t)b << 16; }

/* Array conversions; the F16C path is used when the CPU has it. src and dst
 * may be unaligned. */
VT_INTERNAL void vt__f32_to_f16(const void *src, uint16_t *dst, size_t n);
VT_INTERNAL void vt__f16_to_f32(const void *src, float *dst, size_t n);
/* Elements [first, first + n) of a byte-shuffled block of @p nelem float32
 * (4 byte planes of nelem bytes) converted to float16: unshuffle and
 * conversion fused, in registers, on the F16C path. */
VT_INTERNAL void vt__f32_planes_to_f16(const unsigned char *planes, size_t nelem, size_t first,
                                       size_t n, uint16_t *dst);
/* @p rows such rows in one call: row r starts at element first + r * src_step
 * and goes to dst + r * dst_step (steps in elements, any sign). */
VT_INTERNAL void vt__f32_planes_to_f16_rows(const unsigned char *planes, size_t nelem, int64_t first,
                                            size_t n, size_t rows, int64_t src_step, uint16_t *dst,
                                            int64_t dst_step);
/* Force the portable path (nonzero) or allow F16C again (0); for tests. */
VT_INTERNAL void vt__half_force_portable(int on);
/* Nonzero when the F16C path is in use. */
VT_INTERNAL int vt__half_uses_f16c(void);

#endif
