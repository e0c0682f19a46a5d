/* Opening a store: map it read-only and validate every structure before any
 * tile is touched; then what the handle tells: arrays, tiles' index entries,
 * label index, metadata. Reading tiles is tile.c's, box reads read.c's,
 * checking every tile verify.c's. */

#include "codec.h"
#include "labels.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- open --------------------------------------------------------------- */

/* Decoded bytes of the tile at @p c. */
static uint64_t tile_raw_bytes(const vt_array *a, const uint64_t *c)
{
    uint64_t ext[VT_MAX_DIMS];
    return vt__tile_box(&a->ent, c, NULL, ext) * a->elem_size;
}

static uint64_t tile_voxels_cb(const void *ctx, uint64_t t)
{
    const vt_array *a = ctx;
    uint64_t c[VT_MAX_DIMS], ext[VT_MAX_DIMS];
    vt__tile_coords(a->grid, t, c);
    return vt__tile_box(&a->ent, c, NULL, ext);
}

/* Check one array's directory entry against the file and its tile index. */
static int validate_array(vt_store *s, vt_array *a)
{
    const vt_dirent *e = &a->ent;
    uint64_t end;
    if (e->index_offset < VT_HEADER_SIZE || e->index_offset % 8 ||
        !vt__add_ok(e->index_offset, e->index_size, &end) || end > s->size)
        return vt__fail_at(NULL, VT_EFORMAT, s->path, "array '%s': tile index [%llu, +%llu) lies outside the file",
                   e->name, (unsigned long long)e->index_offset, (unsigned long long)e->index_size);
    if (e->labels_size && (e->labels_offset < VT_HEADER_SIZE ||
                           !vt__add_ok(e->labels_offset, e->labels_size, &end) || end > s->size))
        return vt__fail_at(NULL, VT_EFORMAT, s->path, "array '%s': label index lies outside the file", e->name);
    a->index = s->map + e->index_offset;
    if (vt__hash_differs(a->index, (size_t)e->index_size, e->index_checksum))
        return vt__fail_at(NULL, VT_ECORRUPT, s->path, "array '%s': tile index checksum mismatch (index damaged)",
                           e->name);
    if (e->labels_size &&
        vt__hash_differs(s->map + e->labels_offset, (size_t)e->labels_size, e->labels_checksum))
        return vt__fail_at(NULL, VT_ECORRUPT, s->path, "array '%s': label index checksum mismatch", e->name);

    a->elem_size = vt_dtype_size((vt_dtype)e->dtype);
    a->max_tile_bytes = a->elem_size;
    for (int d = 0; d < VT_MAX_DIMS; d++) {
        a->grid[d] = vt__ceil_div(e->shape[d], e->tile[d]);
        a->max_tile_bytes *= e->tile[d];
    }
    a->min = INFINITY;
    a->max = -INFINITY;
    uint64_t c[VT_MAX_DIMS] = {0};
    for (uint64_t t = 0; t < e->ntiles; t++) {
        vt_tile_entry te;
        vt__tile_decode(a->index + t * VT_TILE_ENTRY_SIZE, &te);
        uint64_t raw = tile_raw_bytes(a, c);
        const char *why = NULL;
        if (te.flags & ~VT_TILE_FLAGS_KNOWN)
            why = "unknown flags";
        else if (te.flags & VT_TILE_CONSTANT) {
            unsigned char v[8];
            vt__st64(v, te.offset);
            if (te.flags != VT_TILE_CONSTANT || te.size != 0)
                why = "constant tile with stored bytes";
            for (size_t i = a->elem_size; i < 8 && !why; i++)
                if (v[i])
                    why = "constant tile value padding not zero";
        } else {
            if (te.offset < VT_HEADER_SIZE || !vt__add_ok(te.offset, te.size, &end) || end > s->size)
                why = "stored bytes lie outside the file";
            else if (te.flags & VT_TILE_RAW) {
                if (te.flags != VT_TILE_RAW || te.size != raw)
                    why = "raw tile size does not match its shape";
            } else if (e->codec == VT_CODEC_NONE)
                why = "compressed tile in an array without codec";
            else if (te.size == 0 || te.size > vt__compress_bound((size_t)raw))
                why = "compressed size impossible for the tile size";
            else if ((te.flags & VT_TILE_SHUFFLED) && (a->elem_size == 1 || e->filter == VT_FILTER_NONE))
                why = "shuffled tile in an array without the shuffle filter";
        }
        if (why) {
            char cs[160];
            return vt__fail_at(NULL, VT_EFORMAT, s->path, "array '%s' tile %s: %s", e->name,
                               vt__coords_text(c, e->ndim, cs, sizeof cs), why);
        }
        a->stored_bytes += te.size;
        a->constant_tiles += (te.flags & VT_TILE_CONSTANT) != 0;
        a->raw_tiles += (te.flags & VT_TILE_RAW) != 0;
        a->shuffled_tiles += (te.flags & VT_TILE_SHUFFLED) != 0;
        if (te.min < a->min)
            a->min = te.min;
        if (te.max > a->max)
            a->max = te.max;
        for (int d = VT_MAX_DIMS - 1; d >= 0; d--) {
            if (++c[d] < a->grid[d])
                break;
            c[d] = 0;
        }
    }
    if (a->min > a->max)
        a->min = a->max = NAN;
    if (e->labels_size) {
        char why[256];
        uint64_t voxels = 1;
        for (int d = 0; d < e->ndim; d++)
            voxels *= e->shape[d];
        if (!vt__label_dtype_ok((vt_dtype)e->dtype))
            return vt__fail_at(NULL, VT_EFORMAT, s->path, "array '%s': label index on a %s array", e->name,
                               vt_dtype_name((vt_dtype)e->dtype));
        int rc = vt__label_check(s->map + e->labels_offset, e->labels_size, e->ntiles, voxels,
                                 tile_voxels_cb, a, why, sizeof why);
        if (rc)
            return vt__fail_at(NULL, rc, s->path, "array '%s': %s", e->name, why);
        a->labels = s->map + e->labels_offset;
        a->nlabels = vt__ld32(a->labels);
    }
    return 0;
}

static int validate(vt_store *s)
{
    char why[512];
    int rc = vt__hdr_decode(s->map, s->size, &s->hdr, why, sizeof why);
    if (rc)
        return vt__fail_at(NULL, rc, s->path, "%s", why);
    const vt_hdr *h = &s->hdr;
    const unsigned char *dir = s->map + h->dir_offset;
    if (vt__hash_differs(dir, (size_t)h->dir_size, h->dir_checksum))
        return vt__fail_at(NULL, VT_ECORRUPT, s->path, "directory checksum mismatch (directory damaged)");
    const unsigned char *meta = s->map + h->meta_offset;
    if (vt__hash_differs(meta, (size_t)h->meta_size, h->meta_checksum))
        return vt__fail_at(NULL, VT_ECORRUPT, s->path, "metadata checksum mismatch (metadata damaged)");

    s->arrays = vt__calloc(h->narrays, sizeof *s->arrays);
    if (s->arrays == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, s->path, "out of memory");
    s->narrays = h->narrays;
    for (size_t i = 0; i < s->narrays; i++) {
        vt_array *a = &s->arrays[i];
        a->store = s;
        rc = vt__dirent_decode(dir + i * VT_DIRENT_SIZE, &a->ent, why, sizeof why);
        if (rc)
            return vt__fail_at(NULL, rc, s->path, "directory entry %zu: %s", i, why);
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->arrays[j].ent.name, a->ent.name) == 0)
                return vt__fail_at(NULL, VT_EFORMAT, s->path, "array name '%s' appears twice", a->ent.name);
        rc = validate_array(s, a);
        if (rc)
            return rc;
    }
    size_t n;
    rc = vt__meta_decode(meta, h->meta_size, NULL, 0, &n, why, sizeof why);
    if (rc)
        return vt__fail_at(NULL, rc, s->path, "%s", why);
    if (n) {
        s->meta = vt__calloc(n, sizeof *s->meta);
        if (s->meta == NULL)
            return vt__fail_at(NULL, VT_ENOMEM, s->path, "out of memory");
        rc = vt__meta_decode(meta, h->meta_size, s->meta, n, &s->nmeta, why, sizeof why);
        if (rc)
            return vt__fail_at(NULL, rc, s->path, "%s", why);
    }
    return 0;
}

/* The store's mapping, at an address that is a multiple of 2 MiB and advised
 * for huge pages: where the page cache holds the file in 2 MiB folios (the
 * writer writes aligned 2 MiB windows for that, and with this advice a read
 * from disk brings 2 MiB at a time), each 2 MiB is mapped by one page-table
 * entry when first touched instead of 512 (benchmarks/README.md, "Huge
 * mappings"). Both are best effort: where the reservation or the advice
 * fails the mapping is a plain one. */
static void *map_file(int fd, size_t size)
{
    const size_t huge = (size_t)2 << 20;
    void *m = MAP_FAILED;
    if (size >= huge && size <= SIZE_MAX - huge) {
        unsigned char *r = mmap(NULL, size + huge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (r != MAP_FAILED) {
            unsigned char *a = (unsigned char *)(((uintptr_t)r + huge - 1) & ~(uintptr_t)(huge - 1));
            m = vt__mmap(a, size, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
            if (m == MAP_FAILED) {
                int e = errno;
                munmap(r, size + huge);
                errno = e;
                return MAP_FAILED;
            }
            if (a > r) /* the reservation's parts around the mapping */
                munmap(r, (size_t)(a - r));
            if (r + size + huge > a + size)
                munmap(a + size, (size_t)(r + size + huge - (a + size)));
        }
    }
    if (m == MAP_FAILED)
        m = vt__mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
#ifdef MADV_HUGEPAGE
    if (m != MAP_FAILED && size >= huge)
        (void)madvise(m, size, MADV_HUGEPAGE);
#endif
    return m;
}

int vt_open(const char *path, unsigned flags, vt_store **out)
{
    if (out)
        *out = NULL;
    if (path == NULL || out == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_open: path and out must be given");
    if (flags & ~VT_OPEN_NO_HUGE)
        return vt__fail_at(NULL, VT_EINVAL, path, "unknown open flags 0x%x", flags & ~VT_OPEN_NO_HUGE);
    vt_store *s = vt__calloc(1, sizeof *s);
    if (s == NULL || (s->path = vt__strdup(path)) == NULL) {
        free(s);
        return vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
    }
    int fd = vt__open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0); /* a FIFO: refused below, not waited on */
    if (fd < 0) {
        int err = errno;
        vt_close(s);
        return vt__fail_at(NULL, err == ENOMEM ? VT_ENOMEM : VT_EIO, path, "cannot open: %s",
                           strerror(err));
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = vt__fail_at(NULL, VT_EIO, path, "cannot stat: %s", strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = vt__fail_at(NULL, VT_EFORMAT, path, "not a regular file");
    else if ((uint64_t)st.st_size < VT_HEADER_SIZE)
        rc = vt__fail_at(NULL, VT_EFORMAT, path, "file is %lld bytes, shorter than a store header (%u bytes)",
                         (long long)st.st_size, VT_HEADER_SIZE);
    else if ((uint64_t)st.st_size > SIZE_MAX)
        rc = vt__fail_at(NULL, VT_ERANGE, path, "file too large to map");
    if (rc == 0) {
        s->size = (uint64_t)st.st_size;
        void *m = flags & VT_OPEN_NO_HUGE ? vt__mmap(NULL, (size_t)s->size, PROT_READ, MAP_SHARED, fd, 0)
                                          : map_file(fd, (size_t)s->size);
        if (m == MAP_FAILED)
            rc = vt__fail_at(NULL, errno == ENOMEM ? VT_ENOMEM : VT_EIO, path, "cannot map: %s",
                             strerror(errno));
        else
            s->map = m;
    }
    vt__close(fd); /* the mapping keeps the file */
    if (rc == 0)
        rc = validate(s);
    if (rc) {
        vt_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void vt_close(vt_store *s)
{
    if (s == NULL)
        return;
    if (s->map)
        munmap((void *)s->map, (size_t)s->size);
    free(s->arrays);
    free(s->meta);
    free(s->path);
    free(s);
}

const char *vt_errmsg(const vt_store *store) { return vt__errmsg(store); }

int vt_store_release(const vt_store *s)
{
    if (s == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_store_release: NULL store");
    if (madvise((void *)s->map, (size_t)s->size, MADV_DONTNEED) != 0)
        return vt__fail_at(s, VT_EIO, s->path, "cannot release the mapping: %s", strerror(errno));
    return 0;
}

const char *vt_store_path(const vt_store *s) { return s ? s->path : NULL; }

uint64_t vt_store_file_size(const vt_store *s) { return s ? s->size : 0; }

uint32_t vt_store_format_version(const vt_store *s) { return s ? s->hdr.version : 0; }

uint32_t vt_store_writer_version(const vt_store *s) { return s ? s->hdr.writer_version : 0; }

size_t vt_store_narrays(const vt_store *s) { return s ? s->narrays : 0; }

int vt_store_array_at(const vt_store *s, size_t index, const vt_array **out)
{
    if (s == NULL || out == NULL)
        return vt__fail(s, VT_EINVAL, "vt_store_array_at: NULL argument");
    if (index >= s->narrays)
        return vt__fail_at(s, VT_ERANGE, s->path, "no array number %zu (%zu arrays)", index,
                           s->narrays);
    *out = &s->arrays[index];
    return 0;
}

int vt_store_array(const vt_store *s, const char *name, const vt_array **out)
{
    if (s == NULL || name == NULL || out == NULL)
        return vt__fail(s, VT_EINVAL, "vt_store_array: NULL argument");
    for (size_t i = 0; i < s->narrays; i++)
        if (strcmp(s->arrays[i].ent.name, name) == 0) {
            *out = &s->arrays[i];
            return 0;
        }
    return vt__fail_at(s, VT_ENOTFOUND, s->path, "no array named '%s'", name);
}

int vt_array_info_get(const vt_array *a, vt_array_info *o)
{
    if (a == NULL || o == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_array_info_get: NULL argument");
    memset(o, 0, sizeof *o);
    o->name = a->ent.name;
    o->dtype = (vt_dtype)a->ent.dtype;
    o->ndim = a->ent.ndim;
    uint64_t vox = 1;
    for (int d = 0; d < VT_MAX_DIMS; d++) {
        o->shape[d] = a->ent.shape[d];
        o->tile[d] = a->ent.tile[d];
        o->grid[d] = a->grid[d];
        vox *= a->ent.shape[d];
    }
    o->ntiles = a->ent.ntiles;
    o->codec = (vt_codec)a->ent.codec;
    o->level = (int)a->ent.level;
    o->filter = (vt_filter)a->ent.filter;
    o->fill = vt__load_f64((vt_dtype)a->ent.dtype, a->ent.fill);
    o->raw_bytes = vox * a->elem_size;
    o->stored_bytes = a->stored_bytes;
    o->constant_tiles = a->constant_tiles;
    o->raw_tiles = a->raw_tiles;
    o->shuffled_tiles = a->shuffled_tiles;
    o->min = a->min;
    o->max = a->max;
    return 0;
}

int vt_tile_get(const vt_array *a, uint64_t t, vt_tile_info *o)
{
    if (a == NULL || o == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_tile_get: NULL argument");
    if (t >= a->ent.ntiles)
        return vt__fail_at(a->store, VT_ERANGE, a->store->path, "array '%s' has no tile %llu (%llu tiles)",
                           a->ent.name, (unsigned long long)t,
                           (unsigned long long)a->ent.ntiles);
    memset(o, 0, sizeof *o);
    vt_tile_entry te;
    vt__tile_decode(a->index + t * VT_TILE_ENTRY_SIZE, &te);
    vt__tile_coords(a->grid, t, o->coord);
    vt__tile_box(&a->ent, o->coord, o->start, o->extent);
    o->offset = (te.flags & VT_TILE_CONSTANT) ? 0 : te.offset;
    o->stored_size = te.size;
    o->flags = te.flags;
    o->raw_size = tile_raw_bytes(a, o->coord);
    o->checksum = te.checksum;
    o->min = te.min;
    o->max = te.max;
    return 0;
}

/* ---- label index -------------------------------------------------------- */

size_t vt_label_count(const vt_array *a) { return a ? (size_t)a->nlabels : 0; }

int vt_label_get(const vt_array *a, size_t index, vt_label_info *out)
{
    if (a == NULL || out == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_label_get: NULL argument");
    if (index >= a->nlabels)
        return vt__fail_at(a->store, VT_ERANGE, a->store->path, "array '%s' has no label number %zu (%llu labels)",
                           a->ent.name, index, (unsigned long long)a->nlabels);
    const unsigned char *e = a->labels + VT_LABEL_HEADER + index * VT_LABEL_ENTRY;
    out->value = (int64_t)vt__ld64(e);
    out->voxels = vt__ld64(e + 8);
    out->ntiles = vt__ld64(e + 16);
    out->tiles = (const uint64_t *)(const void *)(a->labels + VT_LABEL_HEADER + a->nlabels * VT_LABEL_ENTRY +
                                                  vt__ld64(e + 24) * VT_LABEL_PAIR);
    return 0;
}

/* ---- metadata ----------------------------------------------------------- */

size_t vt_meta_count(const vt_store *s) { return s ? s->nmeta : 0; }

static void meta_out(const vt_meta *m, const char **key, vt_meta_type *type, const void **data,
                     size_t *count)
{
    if (key)
        *key = m->key;
    if (type)
        *type = m->type;
    if (data)
        *data = m->data;
    if (count)
        *count = (size_t)(m->type == VT_META_STRING ? m->nbytes - 1
                                                    : m->nbytes / vt__meta_type_size(m->type));
}

int vt_meta_at(const vt_store *s, size_t index, const char **key, vt_meta_type *type,
               const void **data, size_t *count)
{
    if (s == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_meta_at: NULL store");
    if (index >= s->nmeta)
        return vt__fail_at(s, VT_ERANGE, s->path, "no metadata entry %zu (%zu entries)", index,
                           s->nmeta);
    meta_out(&s->meta[index], key, type, data, count);
    return 0;
}

/* The metadata entry @p key of @p s, or NULL. */
static const vt_meta *find_meta(const vt_store *s, const char *key)
{
    for (size_t i = 0; i < s->nmeta; i++)
        if (strcmp(s->meta[i].key, key) == 0)
            return &s->meta[i];
    return NULL;
}

int vt_meta_get(const vt_store *s, const char *key, vt_meta_type *type, const void **data,
                size_t *count)
{
    if (s == NULL || key == NULL)
        return vt__fail(s, VT_EINVAL, "vt_meta_get: NULL argument");
    const vt_meta *m = find_meta(s, key);
    if (m == NULL)
        return vt__fail_at(s, VT_ENOTFOUND, s->path, "no metadata key '%s'", key);
    meta_out(m, NULL, type, data, count);
    return 0;
}

int vt_array_scaling(const vt_array *a, double *slope, double *inter)
{
    if (slope)
        *slope = 1;
    if (inter)
        *inter = 0;
    if (a == NULL)
        return 0;
    const char *name = a->ent.name;
    if (strcmp(name, "image") != 0 && strncmp(name, "image@", 6) != 0)
        return 0;
    double v[2];
    const char *keys[2] = {"scl_slope", "scl_inter"};
    for (int k = 0; k < 2; k++) {
        const vt_meta *m = find_meta(a->store, keys[k]);
        if (m == NULL || m->type != VT_META_F64 || m->nbytes != 8)
            return 0;
        v[k] = vt__load_f64(VT_F64, m->data);
    }
    if (!isfinite(v[0]) || !isfinite(v[1]) || v[0] == 0 || (v[0] == 1 && v[1] == 0))
        return 0;
    if (slope)
        *slope = v[0];
    if (inter)
        *inter = v[1];
    return 1;
}
