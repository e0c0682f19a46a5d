/* fuzz_sample: vt_sample and vt_sample_many on hostile stores with hostile
 * parameters. The input is a block of parameters (64 bytes) followed by a
 * store file (its checksums recomputed, fz_reseal, so that damaged structures
 * reach the parsers and the tile decoders).
 *
 * For every array of 3 or more dimensions of a store that opens: a map built
 * from the parameters (rotation, scale, shear, mirroring, translation -- or
 * raw doubles: NaN, infinities, huge values), an output of up to 12^3 voxels,
 * an interpolation, pad mode and value, output dtype, transform, a
 * displacement field, threads and verification; then vt_sample_many with the
 * same map over every such array at once.
 *
 * Promises checked: nothing crashes; every code is a documented one and a
 * failure comes with a message; the output buffer's guard bytes on both sides
 * stay untouched; a call that succeeds decoded each planned tile once
 * (tiles_decoded == tiles_needed: a call cut into pieces plans each); and a crop or mirror
 * map gives the same bits through the box path as through the tiles (forced by
 * a field of zeros). */
#include "fuzz_common.h"

#define PARAMS 64
#define GUARD 64

static volatile uint64_t sink;

/* A 3x4 map from the parameters. */
static void make_map(fz_in *in, double *m, const uint64_t *shape, const uint64_t *size)
{
    uint8_t kind = fz_u8(in);
    if (kind % 8 == 0) { /* raw doubles: NaN, infinities, huge values, anything */
        for (int q = 0; q < 12; q++)
            m[q] = fz_f64(in);
        return;
    }
    double ang[3], sc[3];
    for (int d = 0; d < 3; d++) {
        ang[d] = (double)(int8_t)fz_u8(in) / 40.0;
        sc[d] = 0.25 + (double)fz_u8(in) / 64.0;
        if (fz_u8(in) & 1)
            sc[d] = -sc[d];
    }
    double a[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    for (int ax = 0; ax < 3; ax++) { /* a = a * rotation about axis ax */
        double c = cos(ang[ax]), s = sin(ang[ax]), r[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1}, t[9];
        int i = ax == 0 ? 1 : 0, j = ax == 2 ? 1 : 2;
        r[i * 3 + i] = c;
        r[i * 3 + j] = -s;
        r[j * 3 + i] = s;
        r[j * 3 + j] = c;
        for (int p = 0; p < 3; p++)
            for (int q = 0; q < 3; q++)
                t[p * 3 + q] = a[p * 3] * r[q] + a[p * 3 + 1] * r[3 + q] + a[p * 3 + 2] * r[6 + q];
        memcpy(a, t, sizeof t);
    }
    if (kind % 8 == 1) { /* a signed permutation: the box path */
        int perm[3] = {0, 1, 2};
        for (int d = 2; d > 0; d--) {
            int e = fz_u8(in) % (d + 1), x = perm[d];
            perm[d] = perm[e];
            perm[e] = x;
        }
        memset(a, 0, sizeof a);
        for (int d = 0; d < 3; d++)
            a[d * 3 + perm[d]] = fz_u8(in) & 1 ? -1 : 1;
        memset(sc, 0, sizeof sc);
        sc[0] = sc[1] = sc[2] = 1;
    }
    for (int r = 0; r < 3; r++) {
        double centre = (double)fz_range(in, -2, 6) * (double)shape[r] / 4.0;
        if (kind % 8 == 1)
            centre = (double)fz_range(in, -20, (int64_t)shape[r] + 20);
        double t = centre;
        for (int c = 0; c < 3; c++) {
            m[r * 4 + c] = a[r * 3 + c] * sc[c] + (kind % 8 == 2 && c > r ? (double)(int8_t)fz_u8(in) / 64 : 0);
            if (kind % 8 != 1)
                t -= m[r * 4 + c] * ((double)size[c] - 1) / 2;
        }
        m[r * 4 + 3] = kind % 8 == 1 ? floor(t) : t;
    }
}

static const vt_dtype out_dtypes[] = {VT_DTYPE_SAME, VT_F32, VT_F16, VT_BF16, VT_F64, VT_I16, VT_U8, VT_I32, 99};

/* Sample one array with the parameters. */
static void sample_one(const vt_array *a, const vt_array_info *ai, fz_in *in)
{
    uint64_t size[3];
    for (int d = 0; d < 3; d++)
        size[d] = (uint64_t)fz_range(in, fz_u8(in) == 255 ? 0 : 1, 12);
    double m[12];
    make_map(in, m, ai->shape + ai->ndim - 3, size);
    vt_sample_opts so;
    vt_sample_opts_init(&so);
    so.interp = (vt_interp)fz_range(in, 0, 3); /* 3: invalid */
    vt_read_opts o;
    vt_read_opts_init(&o);
    o.pad = (vt_pad)fz_range(in, 0, 3);
    o.pad_value = fz_f64(in);
    o.dtype = out_dtypes[fz_u8(in) % (sizeof out_dtypes / sizeof out_dtypes[0])];
    o.threads = (int)fz_range(in, 0, 3);
    o.verify = fz_u8(in) & 1;
    if (fz_u8(in) % 4 == 0) {
        o.transform = 1;
        o.clip_lo = fz_f64(in);
        o.clip_hi = fz_f64(in);
        o.scale = fz_f64(in);
        o.offset = fz_f64(in);
    }
    float field[3 * 4 * 4 * 4];
    uint64_t fshape[3] = {1 + fz_u8(in) % 4, 1 + fz_u8(in) % 4, 1 + fz_u8(in) % 4};
    bool with_field = fz_u8(in) % 4 == 0;
    for (size_t i = 0; i < sizeof field / sizeof field[0]; i++)
        field[i] = (float)((int8_t)fz_u8(in)) / 16.0f;
    if (with_field && fz_u8(in) == 7)
        field[5] = NAN;
    if (with_field) {
        so.field = field;
        memcpy(so.field_shape, fshape, sizeof fshape);
    }
    vt_sample_stats st;
    so.stats = &st;

    vt_dtype dd = o.dtype == VT_DTYPE_SAME ? ai->dtype : o.dtype;
    size_t es = vt_dtype_size(dd) ? vt_dtype_size(dd) : 1;
    uint64_t n = 1;
    for (int d = 0; d < ai->ndim - 3; d++)
        n *= ai->shape[d];
    if (n > 64)
        return; /* many channels: leave them to fuzz_read */
    n *= size[0] * size[1] * size[2];
    size_t bytes = (size_t)n * es;
    unsigned char *buf = malloc(bytes + 2 * GUARD + 1);
    if (buf == NULL)
        return;
    memset(buf, 0xa5, bytes + 2 * GUARD + 1);
    int rc = vt_sample(a, m, size, &so, &o, buf + GUARD);
    FZ_CHECK(fz_known_code(rc), "vt_sample returned %d", rc);
    for (size_t i = 0; i < GUARD; i++)
        FZ_CHECK(buf[i] == 0xa5 && buf[GUARD + bytes + i] == 0xa5, "vt_sample wrote outside its output");
    if (rc != 0) {
        FZ_CHECK(vt_errmsg(NULL)[0] != 0, "a failure without a message");
    } else {
        FZ_CHECK(st.tiles_decoded == st.tiles_needed, "decoded %llu of %llu tiles", (unsigned long long)st.tiles_decoded,
                 (unsigned long long)st.tiles_needed);
        uint64_t s = 0;
        for (size_t i = 0; i < bytes; i++)
            s += buf[GUARD + i];
        sink += s;
        if (st.box_read && !with_field) { /* the same bits through the tiles: a field of zeros */
            float zero[3] = {0, 0, 0};
            vt_sample_opts z = so;
            z.field = zero;
            z.field_shape[0] = z.field_shape[1] = z.field_shape[2] = 1;
            unsigned char *b2 = malloc(bytes ? bytes : 1);
            if (b2) {
                int rc2 = vt_sample(a, m, size, &z, &o, b2);
                FZ_CHECK(rc2 == 0, "the tile path failed where the box path did not: %s", vt_errmsg(NULL));
                FZ_CHECK(memcmp(b2, buf + GUARD, bytes) == 0, "box path and tile path differ");
                free(b2);
            }
        }
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < PARAMS || size > (8u << 20))
        return 0;
    if (!fz_put_resealed(data + PARAMS, size - PARAMS, NULL))
        return 0;
    vt_store *s;
    if (vt_open(fz_store_path(), 0, &s) != 0)
        return 0;
    size_t na = vt_store_narrays(s);
    const vt_array *arr[16];
    vt_sample_target tg[16];
    void *outs[16] = {0};
    size_t nt = 0;
    for (size_t i = 0; i < na && i < 16; i++) {
        const vt_array *a;
        vt_array_info ai;
        if (vt_store_array_at(s, i, &a) != 0 || vt_array_info_get(a, &ai) != 0 || ai.ndim < 3)
            continue;
        fz_in in = {data, PARAMS};
        in.p += i % 8; /* each array its own reading of the parameters */
        in.n -= i % 8;
        sample_one(a, &ai, &in);
        arr[nt++] = a;
    }
    /* all of them through one map in one pass: linear or label by dtype, 6^3 voxels */
    if (nt > 0) {
        fz_in in = {data, PARAMS};
        uint64_t osize[3] = {6, 6, 6};
        double m[12];
        vt_array_info a0;
        vt_array_info_get(arr[0], &a0);
        make_map(&in, m, a0.shape + a0.ndim - 3, osize);
        bool ok = true;
        for (size_t i = 0; i < nt && ok; i++) {
            vt_array_info ai;
            vt_array_info_get(arr[i], &ai);
            uint64_t n = 216;
            for (int d = 0; d < ai.ndim - 3; d++)
                n *= ai.shape[d];
            bool lab = vt_label_count(arr[i]) > 0;
            outs[i] = n <= (1u << 16) ? malloc((size_t)n * 4) : NULL;
            ok = outs[i] != NULL;
            tg[i] = (vt_sample_target){arr[i], lab ? VT_INTERP_LABEL : VT_INTERP_LINEAR, NULL, outs[i], NULL, NULL};
        }
        vt_read_opts lab, lin; /* 4-byte outputs, as allocated */
        vt_read_opts_init(&lab);
        vt_read_opts_init(&lin);
        lab.dtype = VT_I32;
        lin.dtype = VT_F32;
        for (size_t i = 0; i < nt; i++)
            tg[i].opts = tg[i].interp == VT_INTERP_LABEL ? &lab : &lin;
        if (ok) {
            int rc = vt_sample_many(tg, nt, m, osize, NULL, NULL, (int)(data[0] % 3));
            FZ_CHECK(fz_known_code(rc), "vt_sample_many returned %d", rc);
        }
        for (size_t i = 0; i < nt; i++)
            free(outs[i]);
    }
    vt_close(s);
    return 0;
}
