/* Element types: sizes, names, and the scalar load/store rules every
 * conversion in the library follows. */
#include "half.h"
#include "internal.h"

#include <math.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [VT_U8] = {"uint8", 1},     [VT_I8] = {"int8", 1},     [VT_U16] = {"uint16", 2},
    [VT_I16] = {"int16", 2},    [VT_U32] = {"uint32", 4},  [VT_I32] = {"int32", 4},
    [VT_F16] = {"float16", 2},  [VT_BF16] = {"bfloat16", 2}, [VT_F32] = {"float32", 4},
    [VT_F64] = {"float64", 8},
};

bool vt__dtype_valid(int dtype) { return dtype >= VT_U8 && dtype <= VT_F64; }

bool vt__dtype_is_float(vt_dtype d) { return d == VT_F16 || d == VT_BF16 || d == VT_F32 || d == VT_F64; }

size_t vt_dtype_size(vt_dtype dtype) { return vt__dtype_valid(dtype) ? dtypes[dtype].size : 0; }

const char *vt_dtype_name(vt_dtype dtype) { return vt__dtype_valid(dtype) ? dtypes[dtype].name : "?"; }

int vt_dtype_parse(const char *name, vt_dtype *out)
{
    static const struct {
        const char *alias;
        vt_dtype d;
    } aliases[] = {
        {"u1", VT_U8},   {"u8", VT_U8},    {"i1", VT_I8},    {"i8", VT_I8},     {"u2", VT_U16},
        {"u16", VT_U16}, {"i2", VT_I16},   {"i16", VT_I16},  {"u4", VT_U32},    {"u32", VT_U32},
        {"i4", VT_I32},  {"i32", VT_I32},  {"f2", VT_F16},   {"f16", VT_F16},   {"half", VT_F16},
        {"bf16", VT_BF16}, {"f4", VT_F32}, {"f32", VT_F32},  {"float", VT_F32}, {"f8", VT_F64},
        {"f64", VT_F64}, {"double", VT_F64},
    };
    if (name == NULL || out == NULL)
        return VT_EINVAL;
    for (int d = VT_U8; d <= VT_F64; d++)
        if (strcmp(name, dtypes[d].name) == 0) {
            *out = (vt_dtype)d;
            return 0;
        }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(name, aliases[i].alias) == 0) {
            *out = aliases[i].d;
            return 0;
        }
    return VT_EINVAL;
}

const char *vt_codec_name(vt_codec codec)
{
    switch (codec) {
    case VT_CODEC_NONE: return "none";
    case VT_CODEC_LZ4: return "lz4";
    case VT_CODEC_LZ4HC: return "lz4hc";
    default: return "?";
    }
}

double vt__load_f64(vt_dtype dtype, const void *p)
{
    switch (dtype) {
    case VT_U8: return *(const uint8_t *)p;
    case VT_I8: return *(const int8_t *)p;
    case VT_U16: return vt__ld16(p);
    case VT_I16: return (int16_t)vt__ld16(p);
    case VT_U32: return vt__ld32(p);
    case VT_I32: return (int32_t)vt__ld32(p);
    case VT_F16: {
        uint32_t b = vt__f16_to_f32_bits(vt__ld16(p));
        float f;
        memcpy(&f, &b, 4);
        return f;
    }
    case VT_BF16: {
        uint32_t b = vt__bf16_to_f32_bits(vt__ld16(p));
        float f;
        memcpy(&f, &b, 4);
        return f;
    }
    case VT_F32: {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    case VT_F64: return vt__ldf64(p);
    default: return 0;
    }
}

/* Truncate toward zero and saturate into [lo, hi]; NaN -> 0. */
static double to_int(double v, double lo, double hi)
{
    if (v != v)
        return 0;
    if (v <= lo)
        return lo;
    if (v >= hi)
        return hi;
    return trunc(v);
}

void vt__store_f64(vt_dtype dtype, void *p, double v)
{
    switch (dtype) {
    case VT_U8: *(uint8_t *)p = (uint8_t)to_int(v, 0, 255); break;
    case VT_I8: *(int8_t *)p = (int8_t)to_int(v, -128, 127); break;
    case VT_U16: vt__st16(p, (uint16_t)to_int(v, 0, 65535)); break;
    case VT_I16: vt__st16(p, (uint16_t)(int16_t)to_int(v, -32768, 32767)); break;
    case VT_U32: vt__st32(p, (uint32_t)to_int(v, 0, 4294967295.0)); break;
    case VT_I32: vt__st32(p, (uint32_t)(int32_t)to_int(v, -2147483648.0, 2147483647.0)); break;
    case VT_F16: {
        uint64_t b;
        memcpy(&b, &v, 8);
        vt__st16(p, vt__f64_to_f16_bits(b));
        break;
    }
    case VT_BF16: {
        uint64_t b;
        memcpy(&b, &v, 8);
        vt__st16(p, vt__f64_to_bf16_bits(b));
        break;
    }
    case VT_F32: {
        float f = (float)v;
        memcpy(p, &f, 4);
        break;
    }
    case VT_F64: vt__stf64(p, v); break;
    default: break;
    }
}

double vt__dtype_min(vt_dtype d)
{
    switch (d) {
    case VT_I8: return -128;
    case VT_I16: return -32768;
    case VT_I32: return -2147483648.0;
    case VT_F16: return -65504;
    case VT_BF16: return -3.3895313892515355e38;
    case VT_F32: return -3.4028234663852886e38;
    case VT_F64: return -1.7976931348623157e308;
    default: return 0;
    }
}

double vt__dtype_max(vt_dtype d)
{
    switch (d) {
    case VT_U8: return 255;
    case VT_I8: return 127;
    case VT_U16: return 65535;
    case VT_I16: return 32767;
    case VT_U32: return 4294967295.0;
    case VT_I32: return 2147483647.0;
    default: return -vt__dtype_min(d);
    }
}

bool vt__representable(vt_dtype dtype, double v)
{
    unsigned char buf[8];
    if (v != v)
        return vt__dtype_is_float(dtype);
    vt__store_f64(dtype, buf, v);
    return vt__load_f64(dtype, buf) == v;
}

#define MINMAX_LOOP(T, LOAD)                                                                   \
    do {                                                                                       \
        for (size_t i = 0; i < n; i++) {                                                       \
            T v = LOAD;                                                                        \
            if (v == v) {                                                                      \
                if (v < lo) lo = v;                                                            \
                if (v > hi) hi = v;                                                            \
            }                                                                                  \
        }                                                                                      \
    } while (0)

/* min and max of @p n elements, NaN ignored; both NaN when every element is NaN. */
void vt__minmax(vt_dtype dt, const void *src, size_t n, double *mn, double *mx)
{
    const unsigned char *p = src;
    double dlo = INFINITY, dhi = -INFINITY;
    switch (dt) {
    case VT_U8: {
        unsigned lo = 255, hi = 0;
        MINMAX_LOOP(unsigned, p[i]);
        dlo = lo, dhi = hi;
        break;
    }
    case VT_I16: {
        int lo = 32767, hi = -32768;
        MINMAX_LOOP(int, (int16_t)vt__ld16(p + 2 * i));
        dlo = lo, dhi = hi;
        break;
    }
    case VT_F32: {
        float lo = INFINITY, hi = -INFINITY;
        float f;
        MINMAX_LOOP(float, (memcpy(&f, p + 4 * i, 4), f));
        dlo = lo, dhi = hi;
        break;
    }
    default: {
        size_t elem_size = vt_dtype_size(dt);
        double lo = INFINITY, hi = -INFINITY;
        MINMAX_LOOP(double, vt__load_f64(dt, p + elem_size * i));
        dlo = lo, dhi = hi;
        break;
    }
    }
    if (dlo > dhi) /* nothing but NaN */
        dlo = dhi = NAN;
    *mn = dlo;
    *mx = dhi;
}

int vt__narrow64(vt_dtype dtype, const unsigned char *src, size_t n, size_t stride, bool swap, unsigned char *dst,
                 const char *path)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t v = vt__ld64(src + i * stride);
        if (swap)
            v = __builtin_bswap64(v);
        if (dtype == VT_I32 && ((int64_t)v < INT32_MIN || (int64_t)v > INT32_MAX))
            return vt__fail_at(NULL, VT_ERANGE, path,
                               "int64 value %lld does not fit int32 (the store's widest integer)",
                               (long long)v);
        if (dtype == VT_U32 && v > UINT32_MAX)
            return vt__fail_at(NULL, VT_ERANGE, path,
                               "uint64 value %llu does not fit uint32 (the store's widest integer)",
                               (unsigned long long)v);
        vt__st32(dst + 4 * i, (uint32_t)v);
    }
    return 0;
}

void vt__small_ints_to_f32(vt_dtype dtype, const unsigned char *src, size_t n, float *dst)
{
    switch (dtype) {
    case VT_U8:
        for (size_t j = 0; j < n; j++)
            dst[j] = src[j];
        break;
    case VT_I8:
        for (size_t j = 0; j < n; j++)
            dst[j] = (int8_t)src[j];
        break;
    case VT_U16:
        for (size_t j = 0; j < n; j++)
            dst[j] = vt__ld16(src + 2 * j);
        break;
    default:
        for (size_t j = 0; j < n; j++)
            dst[j] = (int16_t)vt__ld16(src + 2 * j);
        break;
    }
}
