/* Checksums: XXH3-64 of the stored bytes (the file format's only hash). */
#ifndef VT_HASH_H
#define VT_HASH_H

#include "internal.h"

/* XXH3-64 of @p n bytes: libxxhash's, or the same function built for AVX2
 * (hash_avx2.c) when the CPU has it -- the value is the same either way. */
VT_INTERNAL uint64_t vt__hash(const void *p, size_t n);
/* True when @p p's hash differs from @p want. Fuzzing builds (-DVT_FUZZING)
 * still compute it but never report a mismatch, so that a fuzzer reaches the
 * parsers behind the checksums. */
static inline bool vt__hash_differs(const void *p, size_t n, uint64_t want)
{
#ifdef VT_FUZZING
    return vt__hash(p, n) != want && false;
#else
    return vt__hash(p, n) != want;
#endif
}
/* For tests: libxxhash's function, whatever the CPU. */
VT_INTERNAL uint64_t vt__hash_portable(const void *p, size_t n);

#endif
