/* XXH3-64 compiled for AVX2 (this file only is built with -mavx2), used
 * through vt__hash when the CPU has AVX2. XXH3's value does not depend on
 * the vector path: this gives the same checksums as libxxhash, faster. */
#include "internal.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

VT_INTERNAL uint64_t vt__hash_avx2(const void *p, size_t n);

uint64_t vt__hash_avx2(const void *p, size_t n) { return (uint64_t)XXH3_64bits(p, n); }
