/* fuzz_export: vt_export_like (export --like) on a hostile store. The input
 * is one byte of options (argmax, cubic) followed by a store file, its
 * checksums recomputed (fz_reseal) so that damaged structures reach the
 * parsers. The store is both the prediction and the case it is mapped back
 * to: its metadata -- source.shape, source.affine, source.spacing, crop,
 * resample.spacing, resample.kernel, affine -- is what a hostile file
 * controls, and every array of it is exported in turn.
 *
 * Promises checked: nothing crashes; every code is a documented one and a
 * failure comes with a message; a failure leaves no output file and a
 * success leaves one with at least a NIfTI header. Arrays or source grids
 * over 2^22 voxels are not exported (the harness stays fast): the same
 * checks run on smaller ones. */
#include "fuzz_common.h"

#include "voxtile_convert.h"

#include <sys/stat.h>

#define MAX_VOXELS (1ull << 22)

static const char *out;

/* The product of @p n entries, or UINT64_MAX past MAX_VOXELS. */
static uint64_t voxels(const uint64_t *v, int n)
{
    uint64_t p = 1;
    for (int d = 0; d < n; d++) {
        if (v[d] && p > MAX_VOXELS / v[d])
            return UINT64_MAX;
        p *= v[d];
    }
    return p;
}

static bool small_source_grid(const vt_store *s)
{
    vt_meta_type t;
    const void *d;
    size_t n;
    if (vt_meta_get(s, "source.shape", &t, &d, &n) != 0 || t != VT_META_I64 || n != 3)
        return true; /* none: export refuses it, quickly */
    uint64_t sh[3];
    for (int k = 0; k < 3; k++) {
        int64_t v;
        memcpy(&v, (const char *)d + 8 * k, 8);
        sh[k] = v < 0 ? 0 : (uint64_t)v;
    }
    return voxels(sh, 3) <= MAX_VOXELS;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (16u << 20))
        return 0;
    if (out == NULL)
        out = fz_path(0, "pred.nii.gz");
    if (!fz_put_resealed(data + 1, size - 1, NULL))
        return 0;
    const char *store = fz_store_path();
    vt_store *s;
    if (vt_open(store, 0, &s) != 0)
        return 0;
    char names[4][VT_NAME_MAX + 1];
    int nnames = 0;
    bool small = small_source_grid(s);
    for (size_t i = 0; i < vt_store_narrays(s) && nnames < 4; i++) {
        const vt_array *a;
        vt_array_info ai;
        if (vt_store_array_at(s, i, &a) != 0 || vt_array_info_get(a, &ai) != 0)
            continue;
        if (voxels(ai.shape, ai.ndim) > MAX_VOXELS)
            continue;
        snprintf(names[nnames++], sizeof names[0], "%s", ai.name);
    }
    vt_close(s);
    if (!small)
        return 0;
    vt_export_opts o;
    vt_export_opts_init(&o);
    o.argmax = data[0] & 1;
    o.order = data[0] & 2 ? VT_RESAMPLE_CUBIC : VT_RESAMPLE_LINEAR;
    for (int i = 0; i < nnames; i++) {
        unlink(out);
        int rc = vt_export_like(store, names[i], store, &o, out);
        FZ_CHECK(fz_known_code(rc), "vt_export_like('%s') returned %d", names[i], rc);
        struct stat st;
        bool exists = stat(out, &st) == 0;
        if (rc != 0) {
            const char *msg = vt_errmsg(NULL);
            FZ_CHECK(msg && msg[0], "vt_export_like('%s') failed (%d) without a message", names[i], rc);
            FZ_CHECK(!exists, "vt_export_like('%s') failed (%s) but left %s", names[i], msg, out);
        } else {
            FZ_CHECK(exists && st.st_size >= 20, "vt_export_like('%s') succeeded without a file", names[i]);
        }
    }
    unlink(out);
    return 0;
}
