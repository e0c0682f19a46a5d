/* NIfTI-1 and NIfTI-2 header layouts and field access (nifti.h). The offsets
 * are those of nifti1.h and nifti2.h. */
#include "nifti.h"

#include <string.h>

const vt_nifti_layout vt__nifti1 = {
    .version = 1, .size = VT_NIFTI1_SIZE, .magic = 344, .magic_single = "n+1", .magic_pair = "ni1",
    .datatype = 70, .bitpix = 72, .dim = 40,
    .pixdim = 76, .vox_offset = 108, .scl_slope = 112, .scl_inter = 116, .xform_codes = 252,
    .quatern = 256, .srow = 280, .xyzt_units = 123, .dim_bytes = 2, .real_bytes = 4, .code_bytes = 2,
};

const vt_nifti_layout vt__nifti2 = {
    .version = 2, .size = VT_NIFTI2_SIZE, .magic = 4, .magic_single = "n+2", .magic_pair = "ni2",
    .datatype = 12, .bitpix = 14, .dim = 16,
    .pixdim = 104, .vox_offset = 168, .scl_slope = 176, .scl_inter = 184, .xform_codes = 344,
    .quatern = 352, .srow = 400, .xyzt_units = 500, .dim_bytes = 8, .real_bytes = 8, .code_bytes = 4,
};

/* code, dtype stored, bytes in the file */
static const struct {
    int code;
    vt_dtype dtype;
    size_t bytes;
} types[] = {
    {VT_NIFTI_UINT8, VT_U8, 1},     {VT_NIFTI_INT8, VT_I8, 1},       {VT_NIFTI_UINT16, VT_U16, 2},
    {VT_NIFTI_INT16, VT_I16, 2},    {VT_NIFTI_UINT32, VT_U32, 4},    {VT_NIFTI_INT32, VT_I32, 4},
    {VT_NIFTI_FLOAT32, VT_F32, 4},  {VT_NIFTI_FLOAT64, VT_F64, 8},   {VT_NIFTI_INT64, VT_I32, 8},
    {VT_NIFTI_UINT64, VT_U32, 8},
};

bool vt__nifti_dtype(int code, vt_dtype *dtype, size_t *file_bytes)
{
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (types[i].code == code) {
            *dtype = types[i].dtype;
            *file_bytes = types[i].bytes;
            return true;
        }
    return false;
}

int vt__nifti_code(vt_dtype dtype)
{
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (types[i].dtype == dtype && types[i].bytes == vt_dtype_size(dtype))
            return types[i].code;
    return VT_NIFTI_FLOAT32; /* float16 and bfloat16 are widened */
}

const char *vt__nifti_code_kind(int code)
{
    switch (code) {
    case VT_NIFTI_RGB24:
    case VT_NIFTI_RGBA32: return "RGB";
    case VT_NIFTI_COMPLEX64:
    case VT_NIFTI_COMPLEX128:
    case VT_NIFTI_COMPLEX256: return "complex";
    case VT_NIFTI_FLOAT128: return "float128";
    default: return "unknown";
    }
}

int64_t vt__nifti_get_int(const vt_nifti_hdr *h, size_t off, int width)
{
    const unsigned char *p = h->b + off;
    switch (width) {
    case 1: return (int8_t)p[0];
    case 2: {
        uint16_t v = vt__ld16(p);
        return (int16_t)(h->swap ? __builtin_bswap16(v) : v);
    }
    case 4: {
        uint32_t v = vt__ld32(p);
        return (int32_t)(h->swap ? __builtin_bswap32(v) : v);
    }
    default: {
        uint64_t v = vt__ld64(p);
        return (int64_t)(h->swap ? __builtin_bswap64(v) : v);
    }
    }
}

void vt__nifti_put_int(vt_nifti_hdr *h, size_t off, int width, int64_t v)
{
    unsigned char *p = h->b + off;
    switch (width) {
    case 1: p[0] = (unsigned char)v; break;
    case 2: {
        uint16_t x = (uint16_t)(int16_t)v;
        vt__st16(p, h->swap ? __builtin_bswap16(x) : x);
        break;
    }
    case 4: {
        uint32_t x = (uint32_t)(int32_t)v;
        vt__st32(p, h->swap ? __builtin_bswap32(x) : x);
        break;
    }
    default: {
        uint64_t x = (uint64_t)v;
        vt__st64(p, h->swap ? __builtin_bswap64(x) : x);
    }
    }
}

double vt__nifti_get_real(const vt_nifti_hdr *h, size_t off)
{
    if (h->l->real_bytes == 8) {
        uint64_t x = (uint64_t)vt__nifti_get_int(h, off, 8);
        double d;
        memcpy(&d, &x, 8);
        return d;
    }
    uint32_t x = (uint32_t)vt__nifti_get_int(h, off, 4);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

void vt__nifti_put_real(vt_nifti_hdr *h, size_t off, double v)
{
    if (h->l->real_bytes == 8) {
        int64_t x;
        memcpy(&x, &v, 8);
        vt__nifti_put_int(h, off, 8, x);
    } else {
        float f = (float)v;
        int32_t x;
        memcpy(&x, &f, 4);
        vt__nifti_put_int(h, off, 4, x);
    }
}
