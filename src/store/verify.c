/* vt_verify_array, vt_verify_tile: every tile decoded and checked against
 * its index entry (min/max, constant value) and, for a label array, against
 * the label index's voxel counts. */
#include "codec.h"
#include "labels.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- verification ------------------------------------------------------- */

static bool same(double a, double b) { return a == b || (a != a && b != b); }

/* Voxels of value @p value that the label index gives tile @p t (0 if it
 * lists none). Entries are sorted by value, each label's pairs by tile. */
static uint64_t label_listed(const vt_array *a, int64_t value, uint64_t t)
{
    const unsigned char *ent = a->labels + VT_LABEL_HEADER;
    const unsigned char *pairs = ent + a->nlabels * VT_LABEL_ENTRY;
    uint64_t lo = 0, hi = a->nlabels;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int64_t v = (int64_t)vt__ld64(ent + mid * VT_LABEL_ENTRY);
        if (v == value) {
            const unsigned char *e = ent + mid * VT_LABEL_ENTRY;
            uint64_t n = vt__ld64(e + 16), first = vt__ld64(e + 24);
            uint64_t l = 0, h = n;
            while (l < h) {
                uint64_t m = l + (h - l) / 2;
                uint64_t tt = vt__ld64(pairs + (first + m) * VT_LABEL_PAIR);
                if (tt == t)
                    return vt__ld64(pairs + (first + m) * VT_LABEL_PAIR + 8);
                if (tt < t)
                    l = m + 1;
                else
                    h = m;
            }
            return 0;
        }
        if (v < value)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* How many labels list tile @p t. */
static uint64_t labels_listing(const vt_array *a, uint64_t t)
{
    uint64_t n = 0;
    for (uint64_t l = 0; l < a->nlabels; l++)
        n += label_listed(a, (int64_t)vt__ld64(a->labels + VT_LABEL_HEADER + l * VT_LABEL_ENTRY), t) != 0;
    return n;
}

/* Check tile @p t; @p listed is how many labels the label index lists for it
 * (label arrays), or UINT64_MAX to count them here. */
static int verify_tile(const vt_array *a, uint64_t t, vt_tscratch *s, unsigned char **plain,
                       size_t *plain_cap, uint64_t listed)
{
    vt_tile_view v;
    int rc = vt__tile_load(a, t, 1, s, &v);
    if (rc)
        return rc;
    vt_tile_entry te;
    vt__tile_decode(a->index + t * VT_TILE_ENTRY_SIZE, &te);
    const unsigned char *p = v.data;
    size_t n = (size_t)(v.layout == VT_LAYOUT_CONST ? 1 : v.nelem);
    if (v.layout == VT_LAYOUT_PLANES) {
        if (vt__grow(plain, plain_cap, n * a->elem_size))
            return vt__fail_at(a->store, VT_ENOMEM, a->store->path, "out of memory");
        vt__unshuffle(v.data, *plain, n, a->elem_size);
        p = *plain;
    }
    double mn, mx;
    vt__minmax((vt_dtype)a->ent.dtype, p, n, &mn, &mx);
    if (!same(mn, te.min) || !same(mx, te.max)) {
        char why[160];
        snprintf(why, sizeof why, "min/max in the index (%.17g, %.17g) differ from the data (%.17g, %.17g)",
                 te.min, te.max, mn, mx);
        return vt__tile_fail(a, t, VT_ECORRUPT, why);
    }
    if (a->labels == NULL)
        return 0;
    vt_label_hist h;
    if (vt__label_hist((vt_dtype)a->ent.dtype, p, n, &h) != 0)
        return vt__fail_at(a->store, VT_ENOMEM, a->store->path, "out of memory");
    if (v.layout == VT_LAYOUT_CONST && h.n == 1)
        h.pairs[0].count = v.nelem;
    if (listed == UINT64_MAX)
        listed = labels_listing(a, t);
    rc = 0;
    for (uint32_t i = 0; i < h.n && rc == 0; i++) {
        uint64_t want = label_listed(a, h.pairs[i].value, t);
        if (want != h.pairs[i].count) {
            char why[160];
            snprintf(why, sizeof why, "the label index gives %llu voxels of value %lld, the tile holds %llu",
                     (unsigned long long)want, (long long)h.pairs[i].value, (unsigned long long)h.pairs[i].count);
            rc = vt__tile_fail(a, t, VT_ECORRUPT, why);
        }
    }
    if (rc == 0 && listed != h.n) {
        char why[160];
        snprintf(why, sizeof why, "the label index lists %llu values here, the tile holds %u",
                 (unsigned long long)listed, h.n);
        rc = vt__tile_fail(a, t, VT_ECORRUPT, why);
    }
    free(h.pairs);
    return rc;
}

int vt_verify_tile(const vt_array *a, uint64_t tile)
{
    if (a == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_verify_tile: NULL array");
    if (tile >= a->ent.ntiles)
        return vt__fail_at(a->store, VT_ERANGE, a->store->path, "array '%s' has no tile %llu (%llu tiles)",
                           a->ent.name, (unsigned long long)tile, (unsigned long long)a->ent.ntiles);
    vt_tscratch *s = vt__tscratch();
    if (s == NULL)
        return vt__fail_at(a->store, VT_ENOMEM, a->store->path, "out of memory");
    unsigned char *plain = NULL;
    size_t plain_cap = 0;
    int rc = verify_tile(a, tile, s, &plain, &plain_cap, UINT64_MAX);
    free(plain);
    return rc;
}

int vt_verify_array(const vt_array *a, uint64_t *bad_tile)
{
    if (a == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_verify_array: NULL array");
    vt_tscratch *s = vt__tscratch();
    if (s == NULL)
        return vt__fail_at(a->store, VT_ENOMEM, a->store->path, "out of memory");
    /* how many labels list each tile, from one pass over the pairs */
    uint32_t *listed = NULL;
    if (a->labels) {
        listed = vt__calloc((size_t)a->ent.ntiles, sizeof *listed);
        if (listed == NULL)
            return vt__fail_at(a->store, VT_ENOMEM, a->store->path, "out of memory");
        const unsigned char *pairs = a->labels + VT_LABEL_HEADER + a->nlabels * VT_LABEL_ENTRY;
        uint64_t npairs = 0;
        for (uint64_t l = 0; l < a->nlabels; l++)
            npairs += vt__ld64(a->labels + VT_LABEL_HEADER + l * VT_LABEL_ENTRY + 16);
        for (uint64_t i = 0; i < npairs; i++)
            listed[vt__ld64(pairs + i * VT_LABEL_PAIR)]++; /* tile numbers checked at open */
    }
    unsigned char *plain = NULL;
    size_t plain_cap = 0;
    int rc = 0;
    for (uint64_t t = 0; t < a->ent.ntiles && rc == 0; t++) {
        rc = verify_tile(a, t, s, &plain, &plain_cap, listed ? listed[t] : 0);
        if (rc && bad_tile && rc != VT_ENOMEM)
            *bad_tile = t;
    }
    free(plain);
    free(listed);
    return rc;
}
