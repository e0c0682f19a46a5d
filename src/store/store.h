/* The read side's handles, shared by open.c (open, validate, what the handle
 * tells), tile.c (a tile ready to copy), read.c (box reads) and verify.c. */
#ifndef VT_STORE_H
#define VT_STORE_H

#include "format.h"
#include "internal.h"
#include "tilegrid.h"

struct vt_array {
    const vt_store *store;
    vt_dirent ent;
    size_t elem_size;
    uint64_t grid[VT_MAX_DIMS];
    const unsigned char *index; /* tile index inside the mapping */
    const unsigned char *labels; /* label index inside the mapping, or NULL */
    uint64_t nlabels;
    uint64_t max_tile_bytes;    /* decoded size of a full tile */
    /* statistics gathered while validating the index */
    uint64_t stored_bytes, constant_tiles, raw_tiles, shuffled_tiles;
    double min, max;
};

struct vt_store {
    char *path;
    const unsigned char *map;
    uint64_t size;
    vt_hdr hdr;
    struct vt_array *arrays;
    size_t narrays;
    vt_meta *meta;
    size_t nmeta;
};

/* ---- tile.c ---- */

/* Per-thread buffers for decoding (freed when the thread exits). */
typedef struct vt_tscratch {
    unsigned char *dec;
    size_t dec_cap;
    unsigned char *row;
    size_t row_cap;
} vt_tscratch;

VT_INTERNAL vt_tscratch *vt__tscratch(void);

enum { VT_LAYOUT_CONTIG, VT_LAYOUT_PLANES, VT_LAYOUT_CONST };

/* A tile ready to copy from. */
typedef struct vt_tile_view {
    const unsigned char *data; /* elements, planes, or the one constant element */
    int layout;                /* VT_LAYOUT_* */
    uint64_t nelem;            /* elements in the tile (plane length) */
    uint64_t start[VT_MAX_DIMS], ext[VT_MAX_DIMS];
} vt_tile_view;

/* Array index of index @p i of an axis of @p n voxels under the pad mode
 * (numpy's edge and reflect); -1 where a constant pads. */
static inline int64_t vt__pad_index(int64_t i, int64_t n, vt_pad pad)
{
    if (i >= 0 && i < n)
        return i;
    switch (pad) {
    case VT_PAD_EDGE: return i < 0 ? 0 : n - 1;
    case VT_PAD_REFLECT: {
        if (n == 1)
            return 0;
        int64_t p = 2 * (n - 1);
        int64_t j = i % p;
        if (j < 0)
            j += p;
        return j >= n ? p - j : j;
    }
    default: return -1;
    }
}

/* Byte strides of an output of extents @p ext (each >= 1) into @p ostr:
 * @p strides (elements, any sign) times the element size @p es, or C order
 * when NULL. Returns the axis whose stride makes an offset the box reaches
 * overflow an int64, or -1 (vt_read, vt_sample). */
VT_INTERNAL int vt__out_strides(int nd, const uint64_t *ext, const int64_t *strides, size_t es, int64_t *ostr);

/* Tile number @p t: check its checksum when @p verify, decode into the
 * thread's scratch when compressed. The view stays valid until the next call
 * in the same thread. */
VT_INTERNAL int vt__tile_load(const vt_array *a, uint64_t t, int verify, vt_tscratch *s,
                              vt_tile_view *v);
/* Record a failure naming the store file, array and tile. */
VT_INTERNAL int vt__tile_fail(const vt_array *a, uint64_t t, int code, const char *what);

#endif
