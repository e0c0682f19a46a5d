/* Tile codecs over liblz4, and the byte-shuffle filter. */
#include "codec.h"

#include <lz4.h>
#include <lz4hc.h>
#include <stdlib.h>
#include <string.h>

void vt__shuffle(const void *src, void *dst, size_t n, size_t es)
{
    const unsigned char *s = src;
    unsigned char *d = dst;
    if (es == 1) {
        memcpy(d, s, n);
        return;
    }
    for (size_t b = 0; b < es; b++) {
        unsigned char *plane = d + b * n;
        for (size_t i = 0; i < n; i++)
            plane[i] = s[i * es + b];
    }
}

void vt__unshuffle(const void *src, void *dst, size_t n, size_t es)
{
    const unsigned char *s = src;
    unsigned char *d = dst;
    if (es == 1) {
        memcpy(d, s, n);
        return;
    }
    for (size_t b = 0; b < es; b++) {
        const unsigned char *plane = s + b * n;
        for (size_t i = 0; i < n; i++)
            d[i * es + b] = plane[i];
    }
}

void vt__codec_ctx_free(vt_codec_ctx *c)
{
    if (c == NULL)
        return;
    free(c->state);
    c->state = NULL;
    c->state_size = 0;
}

size_t vt__compress_bound(size_t n) { return (size_t)LZ4_compressBound((int)n); }

int vt__codec_default_level(vt_codec codec)
{
    return codec == VT_CODEC_LZ4HC ? 4 : 1;
}

bool vt__codec_level_ok(vt_codec codec, int level)
{
    switch (codec) {
    case VT_CODEC_NONE: return level == 0;
    case VT_CODEC_LZ4: return level >= 1 && level <= 65537;
    case VT_CODEC_LZ4HC: return level >= 1 && level <= LZ4HC_CLEVEL_MAX;
    default: return false;
    }
}

static int ensure_state(vt_codec_ctx *c, size_t need)
{
    if (c->state_size >= need)
        return 0;
    void *p = malloc(need);
    if (p == NULL)
        return VT_ENOMEM;
    free(c->state);
    c->state = p;
    c->state_size = need;
    return 0;
}

long vt__compress(vt_codec_ctx *c, vt_codec codec, int level, const void *src, size_t n,
                  void *dst, size_t cap)
{
    if (n > (size_t)LZ4_MAX_INPUT_SIZE)
        return VT_ERANGE;
    int icap = cap > (size_t)INT32_MAX ? INT32_MAX : (int)cap;
    int r;
    switch (codec) {
    case VT_CODEC_LZ4:
        if (ensure_state(c, (size_t)LZ4_sizeofState()))
            return VT_ENOMEM;
        r = LZ4_compress_fast_extState(c->state, src, dst, (int)n, icap, level);
        break;
    case VT_CODEC_LZ4HC:
        if (ensure_state(c, (size_t)LZ4_sizeofStateHC()))
            return VT_ENOMEM;
        r = LZ4_compress_HC_extStateHC(c->state, src, dst, (int)n, icap, level);
        break;
    default: return VT_EINVAL;
    }
    return r;
}

int vt__decompress(vt_codec codec, const void *src, size_t n, void *dst, size_t raw)
{
    if (codec != VT_CODEC_LZ4 && codec != VT_CODEC_LZ4HC)
        return VT_ECORRUPT;
    if (n > (size_t)INT32_MAX || raw > (size_t)INT32_MAX)
        return VT_ECORRUPT;
    int r = LZ4_decompress_safe(src, dst, (int)n, (int)raw);
    return (r >= 0 && (size_t)r == raw) ? 0 : VT_ECORRUPT;
}
