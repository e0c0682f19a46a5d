/* Tile encoding: byte shuffle and the LZ4 / LZ4HC codecs. */
#ifndef VT_CODEC_H
#define VT_CODEC_H

#include "internal.h"

/* Regroup @p n elements of @p elem_size bytes: byte b of element i goes to
 * dst[b * n + i]. */
VT_INTERNAL void vt__shuffle(const void *src, void *dst, size_t n, size_t elem_size);
/* Inverse of vt__shuffle. */
VT_INTERNAL void vt__unshuffle(const void *src, void *dst, size_t n, size_t elem_size);
/* Elements [first, first + n) of a shuffled block of @p nelem elements,
 * unshuffled into @p dst (SSE2 for 2-, 4- and 8-byte elements on x86-64). */
VT_INTERNAL void vt__unshuffle_range(const void *src, size_t nelem, size_t elem_size, size_t first,
                                     size_t n, void *dst);

/* Scratch space one compressing thread keeps between tiles. */
typedef struct vt_codec_ctx {
    void *state;      /* LZ4 or LZ4HC state */
    size_t state_size;
} vt_codec_ctx;

VT_INTERNAL void vt__codec_ctx_free(vt_codec_ctx *c);
/* Bytes the destination of vt__compress needs for @p n input bytes. */
VT_INTERNAL size_t vt__compress_bound(size_t n);
/* Compress; returns the compressed size, 0 when it does not fit @p cap, or a
 * negative VT_E* code. */
VT_INTERNAL long vt__compress(vt_codec_ctx *c, vt_codec codec, int level, const void *src,
                              size_t n, void *dst, size_t cap);
/* Decompress exactly @p raw bytes; 0, or VT_ECORRUPT when the input does not
 * decode to exactly that size. */
VT_INTERNAL int vt__decompress(vt_codec codec, const void *src, size_t n, void *dst, size_t raw);
/* The level a codec uses for level 0, and whether @p level is valid. */
VT_INTERNAL int vt__codec_default_level(vt_codec codec);
VT_INTERNAL bool vt__codec_level_ok(vt_codec codec, int level);

#endif
