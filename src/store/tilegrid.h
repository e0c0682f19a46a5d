/* The tile grid of an array, as the writer and the reader both walk it:
 * tiles are numbered in C order over the grid (format.h's directory entry
 * gives shape and tile shape; the grid is ceil(shape / tile) per axis, 1
 * past ndim). */
#ifndef VT_TILEGRID_H
#define VT_TILEGRID_H

#include "format.h"

#include <stdio.h>

/* Coordinates @p c in the grid of tile number @p t (every axis; 0 past ndim). */
static inline void vt__tile_coords(const uint64_t *grid, uint64_t t, uint64_t *c)
{
    for (int d = VT_MAX_DIMS - 1; d >= 0; d--) {
        c[d] = t % grid[d];
        t /= grid[d];
    }
}

/* Tile number of the tile at @p c (its first @p nd coordinates; 0 after). */
static inline uint64_t vt__tile_number(const uint64_t *grid, const uint64_t *c, int nd)
{
    uint64_t t = 0;
    for (int d = 0; d < VT_MAX_DIMS; d++)
        t = t * grid[d] + (d < nd ? c[d] : 0);
    return t;
}

/* The voxels of the tile at @p c of array @p e: its first voxel (@p start,
 * may be NULL) and extents (@p ext: the tile shape, clipped at the far
 * border), 0 and 1 past ndim; returns the number of voxels. */
static inline uint64_t vt__tile_box(const vt_dirent *e, const uint64_t *c, uint64_t *start, uint64_t *ext)
{
    uint64_t n = 1;
    for (int d = 0; d < VT_MAX_DIMS; d++) {
        uint64_t s = d < e->ndim ? c[d] * e->tile[d] : 0, left = d < e->ndim ? e->shape[d] - s : 1;
        if (start)
            start[d] = s;
        ext[d] = left < e->tile[d] ? left : e->tile[d];
        n *= ext[d];
    }
    return n;
}

/* "(a,b,c)": the first @p ndim coordinates, for messages. */
static inline const char *vt__coords_text(const uint64_t *c, int ndim, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "(");
    for (int d = 0; d < ndim && o < len; d++)
        o += (size_t)snprintf(buf + o, len - o, "%s%llu", d ? "," : "", (unsigned long long)c[d]);
    if (o < len)
        snprintf(buf + o, len - o, ")");
    return buf;
}

#endif
