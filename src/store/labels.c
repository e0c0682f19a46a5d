/* Label index of a label array: for each label value, which tiles hold it and
 * how many voxels, so a sampler can pick a foreground patch without reading
 * label data. The writer histograms each tile as it is encoded; finalize
 * turns the per-tile histograms into the block below (docs/format.md):
 *
 *   u32 nlabels, u32 reserved (0)
 *   nlabels x { i64 value, u64 voxels, u64 ntiles, u64 first }   sorted by value
 *   sum(ntiles) x { u64 tile, u64 count }   label by label, sorted by tile
 *
 * where `first` is the label's first pair. */
#include "labels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool vt__label_dtype_ok(vt_dtype dt)
{
    return dt == VT_U8 || dt == VT_I8 || dt == VT_U16 || dt == VT_I16 || dt == VT_U32 || dt == VT_I32;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int vt__label_hist(vt_dtype dt, const void *data, size_t n, vt_label_hist *out)
{
    const unsigned char *p = data;
    size_t elem_size = vt_dtype_size(dt);
    out->n = 0;
    out->pairs = NULL;
    if (elem_size == 1) { /* counting */
        uint32_t count[256] = {0};
        for (size_t i = 0; i < n; i++)
            count[p[i]]++;
        size_t k = 0;
        for (int v = 0; v < 256; v++)
            k += count[v] != 0;
        out->pairs = vt__malloc(k * sizeof *out->pairs);
        if (out->pairs == NULL)
            return VT_ENOMEM;
        for (int v = 0; v < 256; v++) {
            if (count[v] == 0)
                continue;
            int64_t value = dt == VT_I8 ? (int8_t)v : v;
            out->pairs[out->n++] = (vt_label_pair){value, count[v]};
        }
        if (dt == VT_I8) /* bytes 0x80.. are the negative values: sort by value */
            qsort(out->pairs, out->n, sizeof *out->pairs, cmp_i64);
        return 0;
    }
    /* wider types: sort a copy of the values and count runs */
    int64_t *v = vt__malloc(n * sizeof *v);
    if (v == NULL)
        return VT_ENOMEM;
    for (size_t i = 0; i < n; i++)
        v[i] = vt__load_int(dt, p + i * elem_size);
    qsort(v, n, sizeof *v, cmp_i64);
    size_t runs = n > 0;
    for (size_t i = 1; i < n; i++)
        runs += v[i] != v[i - 1];
    out->pairs = vt__malloc(runs * sizeof *out->pairs);
    if (out->pairs == NULL) {
        free(v);
        return VT_ENOMEM;
    }
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && v[j] == v[i])
            j++;
        out->pairs[out->n++] = (vt_label_pair){v[i], (uint64_t)(j - i)};
        i = j;
    }
    free(v);
    return 0;
}

typedef struct triple {
    int64_t value;
    uint64_t tile, count;
} triple;

static int cmp_triple(const void *a, const void *b)
{
    const triple *x = a, *y = b;
    if (x->value != y->value)
        return (x->value > y->value) - (x->value < y->value);
    return (x->tile > y->tile) - (x->tile < y->tile);
}

int vt__label_block(const vt_label_hist *hist, uint64_t ntiles, unsigned char **buf, size_t *len)
{
    uint64_t total = 0;
    for (uint64_t t = 0; t < ntiles; t++)
        total += hist[t].n;
    triple *tr = vt__malloc((size_t)(total ? total : 1) * sizeof *tr);
    if (tr == NULL)
        return VT_ENOMEM;
    size_t k = 0;
    for (uint64_t t = 0; t < ntiles; t++)
        for (uint32_t i = 0; i < hist[t].n; i++)
            tr[k++] = (triple){hist[t].pairs[i].value, t, hist[t].pairs[i].count};
    qsort(tr, (size_t)total, sizeof *tr, cmp_triple);
    size_t nlabels = 0;
    for (size_t i = 0; i < total; i++)
        nlabels += i == 0 || tr[i].value != tr[i - 1].value;
    size_t size = VT_LABEL_HEADER + nlabels * VT_LABEL_ENTRY + (size_t)total * VT_LABEL_PAIR;
    unsigned char *b = vt__calloc(1, size);
    if (b == NULL) {
        free(tr);
        return VT_ENOMEM;
    }
    vt__st32(b, (uint32_t)nlabels);
    unsigned char *ent = b + VT_LABEL_HEADER - VT_LABEL_ENTRY;
    unsigned char *pairs = b + VT_LABEL_HEADER + nlabels * VT_LABEL_ENTRY;
    for (size_t i = 0; i < total; i++) {
        if (i == 0 || tr[i].value != tr[i - 1].value) {
            ent += VT_LABEL_ENTRY;
            vt__st64(ent, (uint64_t)tr[i].value);
            vt__st64(ent + 24, (uint64_t)i);
        }
        vt__st64(ent + 8, vt__ld64(ent + 8) + tr[i].count);
        vt__st64(ent + 16, vt__ld64(ent + 16) + 1);
        vt__st64(pairs + i * VT_LABEL_PAIR, tr[i].tile);
        vt__st64(pairs + i * VT_LABEL_PAIR + 8, tr[i].count);
    }
    free(tr);
    *buf = b;
    *len = size;
    return 0;
}


int vt__label_check(const unsigned char *b, uint64_t size, uint64_t ntiles, uint64_t voxels,
                    uint64_t (*tile_voxels)(const void *ctx, uint64_t tile), const void *ctx,
                    char *why, size_t whylen)
{
    if (size < VT_LABEL_HEADER || vt__ld32(b + 4) != 0)
        return vt__why(why, whylen, VT_EFORMAT, "label index header invalid");
    uint64_t nlabels = vt__ld32(b);
    if (nlabels > (size - VT_LABEL_HEADER) / VT_LABEL_ENTRY)
        return vt__why(why, whylen, VT_EFORMAT, "label index claims %llu labels in %llu bytes",
                       (unsigned long long)nlabels,
                       (unsigned long long)size);
    uint64_t npairs = (size - VT_LABEL_HEADER - nlabels * VT_LABEL_ENTRY);
    if (npairs % VT_LABEL_PAIR)
        return vt__why(why, whylen, VT_EFORMAT, "label index size does not fit its entries");
    npairs /= VT_LABEL_PAIR;
    const unsigned char *pairs = b + VT_LABEL_HEADER + nlabels * VT_LABEL_ENTRY;
    uint64_t next = 0, sum_voxels = 0;
    for (uint64_t l = 0; l < nlabels; l++) {
        const unsigned char *e = b + VT_LABEL_HEADER + l * VT_LABEL_ENTRY;
        int64_t value = (int64_t)vt__ld64(e);
        uint64_t vox = vt__ld64(e + 8), nt = vt__ld64(e + 16), first = vt__ld64(e + 24);
        if (l > 0 && value <= (int64_t)vt__ld64(e - VT_LABEL_ENTRY))
            return vt__why(why, whylen, VT_EFORMAT, "label values are not increasing at entry %llu",
                           (unsigned long long)l);
        if (first != next || nt == 0 || nt > npairs - first)
            return vt__why(why, whylen, VT_EFORMAT, "label %lld: tile list [%llu, +%llu) inconsistent",
                           (long long)value,
                           (unsigned long long)first, (unsigned long long)nt);
        uint64_t sum = 0, prev = 0;
        for (uint64_t i = first; i < first + nt; i++) {
            uint64_t t = vt__ld64(pairs + i * VT_LABEL_PAIR), c = vt__ld64(pairs + i * VT_LABEL_PAIR + 8);
            if (t >= ntiles || (i > first && t <= prev) || c == 0 || c > tile_voxels(ctx, t))
                return vt__why(why, whylen, VT_EFORMAT, "label %lld: tile %llu with %llu voxels is impossible",
                               (long long)value,
                               (unsigned long long)t, (unsigned long long)c);
            prev = t;
            sum += c;
        }
        if (sum != vox)
            return vt__why(why, whylen, VT_EFORMAT, "label %lld: %llu voxels recorded, its tiles hold %llu",
                           (long long)value,
                           (unsigned long long)vox, (unsigned long long)sum);
        sum_voxels += vox;
        next = first + nt;
    }
    if (next != npairs || sum_voxels != voxels)
        return vt__why(why, whylen, VT_EFORMAT,
                       "label index covers %llu voxels in %llu pairs; the array has %llu voxels",
                       (unsigned long long)sum_voxels, (unsigned long long)next, (unsigned long long)voxels);
    return 0;
}
