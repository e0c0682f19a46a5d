/* Checksums: XXH3-64, through libxxhash or its AVX2 build chosen at load time. */
#include "hash.h"

#include <stdlib.h>
#include <xxhash.h>

#if defined(VT_HAVE_HASH_AVX2)
VT_INTERNAL uint64_t vt__hash_avx2(const void *p, size_t n);
#endif

static uint64_t hash_lib(const void *p, size_t n) { return (uint64_t)XXH3_64bits(p, n); }

/* XXH3-64 of the library, or the same function built for AVX2 when the CPU has it. */
static uint64_t (*hash_impl)(const void *, size_t) = hash_lib;

__attribute__((constructor)) static void hash_init(void)
{
#if defined(VT_HAVE_HASH_AVX2)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && getenv("VT_NO_AVX2") == NULL)
        hash_impl = vt__hash_avx2;
#endif
}

uint64_t vt__hash(const void *p, size_t n) { return hash_impl(p, n); }

uint64_t vt__hash_portable(const void *p, size_t n) { return hash_lib(p, n); }
