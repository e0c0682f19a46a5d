/* Format version 1: encoding and checking of the fixed structures. Every
 * decoder treats its input as hostile: each field is range-checked and sizes
 * are computed with overflow checks. */
#include "format.h"

#include "codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


void vt__hdr_encode(const vt_hdr *h, unsigned char buf[VT_HEADER_SIZE])
{
    memset(buf, 0, VT_HEADER_SIZE);
    memcpy(buf, VT_MAGIC, 8);
    vt__st32(buf + 8, h->version);
    vt__st32(buf + 12, VT_HEADER_SIZE);
    vt__st64(buf + 16, h->flags);
    vt__st64(buf + 24, h->file_size);
    vt__st64(buf + 32, h->dir_offset);
    vt__st64(buf + 40, h->dir_size);
    vt__st64(buf + 48, h->dir_checksum);
    vt__st64(buf + 56, h->meta_offset);
    vt__st64(buf + 64, h->meta_size);
    vt__st64(buf + 72, h->meta_checksum);
    vt__st32(buf + 80, h->narrays);
    vt__st32(buf + 84, h->writer_version);
    vt__st64(buf + VT_HDR_CHECKSUM_AT, vt__hash(buf, VT_HDR_CHECKSUM_AT));
}

static bool all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* A region [off, off+size) lies after the header and inside the file. */
static bool region_ok(uint64_t off, uint64_t size, uint64_t file_size)
{
    uint64_t end;
    return off >= VT_HEADER_SIZE && vt__add_ok(off, size, &end) && end <= file_size;
}

int vt__hdr_decode(const unsigned char *buf, uint64_t file_size, vt_hdr *h, char *why,
                   size_t whylen)
{
    if (file_size < VT_HEADER_SIZE)
        return vt__why(why, whylen, VT_EFORMAT, "file is %llu bytes, shorter than a store header (%u bytes)",
                       (unsigned long long)file_size, VT_HEADER_SIZE);
    if (memcmp(buf, VT_MAGIC, 8) != 0)
        return vt__why(why, whylen, VT_EFORMAT, "not a voxtile store (bad magic)");
    uint64_t sum = vt__ld64(buf + VT_HDR_CHECKSUM_AT);
    if (vt__hash_differs(buf, VT_HDR_CHECKSUM_AT, sum))
        return vt__why(why, whylen, VT_ECORRUPT, "header checksum mismatch (header damaged)");
    h->version = vt__ld32(buf + 8);
    if (h->version != VT_FORMAT_VERSION)
        return vt__why(why, whylen, VT_EVERSION, "format version %u; this library reads version %u", h->version,
                       VT_FORMAT_VERSION);
    if (vt__ld32(buf + 12) != VT_HEADER_SIZE)
        return vt__why(why, whylen, VT_EFORMAT, "header size %u, expected %u", vt__ld32(buf + 12), VT_HEADER_SIZE);
    h->flags = vt__ld64(buf + 16);
    h->file_size = vt__ld64(buf + 24);
    h->dir_offset = vt__ld64(buf + 32);
    h->dir_size = vt__ld64(buf + 40);
    h->dir_checksum = vt__ld64(buf + 48);
    h->meta_offset = vt__ld64(buf + 56);
    h->meta_size = vt__ld64(buf + 64);
    h->meta_checksum = vt__ld64(buf + 72);
    h->narrays = vt__ld32(buf + 80);
    h->writer_version = vt__ld32(buf + 84);
    if (!(h->flags & VT_HDR_FLAG_COMPLETE))
        return vt__why(why, whylen, VT_EFORMAT, "store is incomplete (never finalized)");
    if (h->flags & ~(uint64_t)VT_HDR_FLAG_COMPLETE)
        return vt__why(why, whylen, VT_EFORMAT, "unknown header flags 0x%llx", (unsigned long long)h->flags);
    if (!all_zero(buf + 88, VT_HDR_CHECKSUM_AT - 88))
        return vt__why(why, whylen, VT_EFORMAT, "reserved header bytes are not zero");
    if (h->file_size != file_size)
        return vt__why(why, whylen, VT_EFORMAT,
                       "file is %llu bytes but its header says %llu (truncated or extended)",
                       (unsigned long long)file_size, (unsigned long long)h->file_size);
    uint64_t dsz;
    if (h->narrays == 0 || !vt__mul_ok(h->narrays, VT_DIRENT_SIZE, &dsz) || dsz != h->dir_size)
        return vt__why(why, whylen, VT_EFORMAT, "directory size %llu does not match %u arrays",
                       (unsigned long long)h->dir_size,
                       h->narrays);
    if (!region_ok(h->dir_offset, h->dir_size, file_size))
        return vt__why(why, whylen, VT_EFORMAT, "directory [%llu, +%llu) lies outside the file",
                       (unsigned long long)h->dir_offset,
                       (unsigned long long)h->dir_size);
    if (h->dir_offset % 8)
        return vt__why(why, whylen, VT_EFORMAT, "directory offset %llu is not 8-byte aligned",
                       (unsigned long long)h->dir_offset);
    if (!region_ok(h->meta_offset, h->meta_size, file_size) || h->meta_offset % 8 ||
        h->meta_size < VT_META_HEADER_SIZE)
        return vt__why(why, whylen, VT_EFORMAT,
                       "metadata block [%llu, +%llu) lies outside the file or is misaligned",
                       (unsigned long long)h->meta_offset, (unsigned long long)h->meta_size);
    return 0;
}

void vt__dirent_encode(const vt_dirent *e, unsigned char buf[VT_DIRENT_SIZE])
{
    memset(buf, 0, VT_DIRENT_SIZE);
    memcpy(buf, e->name, strnlen(e->name, VT_NAME_MAX));
    buf[64] = e->dtype;
    buf[65] = e->ndim;
    buf[66] = e->codec;
    buf[67] = e->filter;
    vt__st32(buf + 72, e->level);
    vt__st32(buf + 76, e->flags);
    for (int d = 0; d < VT_MAX_DIMS; d++) {
        vt__st64(buf + 80 + 8 * d, e->shape[d]);
        vt__st32(buf + 120 + 4 * d, e->tile[d]);
    }
    memcpy(buf + 144, e->fill, 8);
    vt__st64(buf + 152, e->ntiles);
    vt__st64(buf + 160, e->index_offset);
    vt__st64(buf + 168, e->index_size);
    vt__st64(buf + 176, e->index_checksum);
    vt__st64(buf + 184, e->labels_offset);
    vt__st64(buf + 192, e->labels_size);
    vt__st64(buf + 200, e->labels_checksum);
}

int vt__dirent_decode(const unsigned char *buf, vt_dirent *e, char *why, size_t whylen)
{
    memset(e, 0, sizeof *e);
    size_t nlen = strnlen((const char *)buf, 64);
    if (nlen == 0 || nlen > VT_NAME_MAX)
        return vt__why(why, whylen, VT_EFORMAT, "array name is empty or not terminated");
    if (!all_zero(buf + nlen, 64 - nlen))
        return vt__why(why, whylen, VT_EFORMAT, "array name padding is not zero");
    memcpy(e->name, buf, nlen);
    e->dtype = buf[64];
    e->ndim = buf[65];
    e->codec = buf[66];
    e->filter = buf[67];
    e->level = vt__ld32(buf + 72);
    e->flags = vt__ld32(buf + 76);
    memcpy(e->fill, buf + 144, 8);
    e->ntiles = vt__ld64(buf + 152);
    e->index_offset = vt__ld64(buf + 160);
    e->index_size = vt__ld64(buf + 168);
    e->index_checksum = vt__ld64(buf + 176);
    e->labels_offset = vt__ld64(buf + 184);
    e->labels_size = vt__ld64(buf + 192);
    e->labels_checksum = vt__ld64(buf + 200);

    if (!vt__dtype_valid(e->dtype))
        return vt__why(why, whylen, VT_EFORMAT, "array '%s': unknown dtype code %u", e->name, e->dtype);
    if (e->ndim < 1 || e->ndim > VT_MAX_DIMS)
        return vt__why(why, whylen, VT_EFORMAT, "array '%s': ndim %u outside 1..%d", e->name, e->ndim, VT_MAX_DIMS);
    if (e->codec > VT_CODEC_LZ4HC || e->filter > VT_FILTER_AUTO)
        return vt__why(why, whylen, VT_EFORMAT, "array '%s': unknown codec %u or filter %u", e->name, e->codec,
                       e->filter);
    if (e->level > INT32_MAX || !vt__codec_level_ok((vt_codec)e->codec, (int)e->level) ||
        (e->codec == VT_CODEC_NONE && e->filter != VT_FILTER_NONE))
        return vt__why(why, whylen, VT_EFORMAT, "array '%s': level %u or filter %u impossible with codec %s",
                       e->name, e->level,
                       e->filter, vt_codec_name((vt_codec)e->codec));
    if (e->flags & ~(uint32_t)VT_ARRAY_FLAG_SPARSE || buf[68] || buf[69] || buf[70] ||
        buf[71] || !all_zero(buf + 140, 4) || !all_zero(buf + 208, VT_DIRENT_SIZE - 208))
        return vt__why(why, whylen, VT_EFORMAT, "array '%s': unknown flags or nonzero reserved bytes", e->name);
    size_t elem_size = vt_dtype_size((vt_dtype)e->dtype);
    if (!all_zero(e->fill + elem_size, 8 - elem_size))
        return vt__why(why, whylen, VT_EFORMAT, "array '%s': fill value padding is not zero", e->name);
    uint64_t ntiles = 1, voxels = 1, tile_voxels = 1;
    for (int d = 0; d < VT_MAX_DIMS; d++) {
        e->shape[d] = vt__ld64(buf + 80 + 8 * d);
        e->tile[d] = vt__ld32(buf + 120 + 4 * d);
        if (d >= e->ndim) {
            if (e->shape[d] != 1 || e->tile[d] != 1)
                return vt__why(why, whylen, VT_EFORMAT,
                               "array '%s': unused axis %d has shape %llu / tile %u (must be 1)", e->name,
                               d, (unsigned long long)e->shape[d], e->tile[d]);
            continue;
        }
        if (e->shape[d] == 0 || e->shape[d] > (uint64_t)INT64_MAX || e->tile[d] == 0 ||
            e->tile[d] > e->shape[d])
            return vt__why(why, whylen, VT_EFORMAT, "array '%s': axis %d has shape %llu and tile %u", e->name, d,
                           (unsigned long long)e->shape[d], e->tile[d]);
        if (!vt__mul_ok(ntiles, vt__ceil_div(e->shape[d], e->tile[d]), &ntiles) ||
            !vt__mul_ok(voxels, e->shape[d], &voxels) ||
            !vt__mul_ok(tile_voxels, e->tile[d], &tile_voxels))
            return vt__why(why, whylen, VT_EFORMAT, "array '%s': shape overflows", e->name);
    }
    uint64_t bytes;
    if (!vt__mul_ok(voxels, elem_size, &bytes) || !vt__mul_ok(tile_voxels, elem_size, &bytes) ||
        bytes > VT_MAX_TILE_BYTES)
        return vt__why(why, whylen, VT_EFORMAT, "array '%s': array or tile too large", e->name);
    uint64_t isz;
    if (ntiles != e->ntiles || !vt__mul_ok(ntiles, VT_TILE_ENTRY_SIZE, &isz) ||
        isz != e->index_size)
        return vt__why(why, whylen, VT_EFORMAT,
                       "array '%s': %llu tiles recorded, shape and tile give %llu (index %llu bytes)", e->name,
                       (unsigned long long)e->ntiles, (unsigned long long)ntiles,
                       (unsigned long long)e->index_size);
    if ((e->labels_offset == 0) != (e->labels_size == 0) || e->labels_offset % 8 ||
        (e->labels_size == 0 && e->labels_checksum != 0))
        return vt__why(why, whylen, VT_EFORMAT, "array '%s': label index offset, size and checksum disagree",
                       e->name);
    return 0;
}

/* ---- metadata ----------------------------------------------------------- */

static uint64_t pad8(uint64_t n) { return (n + 7u) & ~UINT64_C(7); }

size_t vt__meta_type_size(vt_meta_type t)
{
    return (t == VT_META_F64 || t == VT_META_I64) ? 8 : 1;
}

uint64_t vt__meta_encoded_size(const vt_meta *m, size_t n)
{
    uint64_t s = VT_META_HEADER_SIZE;
    for (size_t i = 0; i < n; i++)
        s += VT_META_ENTRY_HEADER + pad8(strlen(m[i].key) + 1) + pad8(m[i].nbytes);
    return s;
}

void vt__meta_encode(const vt_meta *m, size_t n, unsigned char *buf)
{
    uint64_t size = vt__meta_encoded_size(m, n);
    memset(buf, 0, size);
    vt__st32(buf, (uint32_t)n);
    unsigned char *p = buf + VT_META_HEADER_SIZE;
    for (size_t i = 0; i < n; i++) {
        size_t klen = strlen(m[i].key);
        vt__st32(p, (uint32_t)klen);
        vt__st32(p + 4, (uint32_t)m[i].type);
        vt__st64(p + 8, m[i].nbytes);
        p += VT_META_ENTRY_HEADER;
        memcpy(p, m[i].key, klen);
        p += pad8(klen + 1);
        if (m[i].nbytes)
            memcpy(p, m[i].data, m[i].nbytes);
        p += pad8(m[i].nbytes);
    }
}

int vt__meta_decode(const unsigned char *buf, uint64_t size, vt_meta *out, size_t cap,
                    size_t *count, char *why, size_t whylen)
{
    if (size < VT_META_HEADER_SIZE || size % 8)
        return vt__why(why, whylen, VT_EFORMAT, "metadata block size %llu is invalid", (unsigned long long)size);
    uint32_t n = vt__ld32(buf);
    if (n > VT_META_MAX_ENTRIES)
        return vt__why(why, whylen, VT_EFORMAT, "metadata block claims %u entries (at most %u)", n,
                       VT_META_MAX_ENTRIES);
    if (vt__ld32(buf + 4) != 0)
        return vt__why(why, whylen, VT_EFORMAT, "metadata reserved field is not zero");
    uint64_t pos = VT_META_HEADER_SIZE;
    for (uint32_t i = 0; i < n; i++) {
        if (size - pos < VT_META_ENTRY_HEADER)
            return vt__why(why, whylen, VT_EFORMAT, "metadata entry %u runs past the block", i);
        const unsigned char *e = buf + pos;
        uint32_t klen = vt__ld32(e), type = vt__ld32(e + 4);
        uint64_t nbytes = vt__ld64(e + 8);
        pos += VT_META_ENTRY_HEADER;
        if (klen == 0 || klen > VT_KEY_MAX || type > VT_META_I64)
            return vt__why(why, whylen, VT_EFORMAT, "metadata entry %u: key length %u or type %u invalid", i, klen,
                           type);
        uint64_t kspan = pad8((uint64_t)klen + 1);
        if (size - pos < kspan)
            return vt__why(why, whylen, VT_EFORMAT, "metadata entry %u: key runs past the block", i);
        const char *key = (const char *)(buf + pos);
        if (memchr(key, 0, klen) != NULL || !all_zero(buf + pos + klen, kspan - klen))
            return vt__why(why, whylen, VT_EFORMAT, "metadata entry %u: key is not %u bytes of text", i, klen);
        pos += kspan;
        if (nbytes > size - pos || pad8(nbytes) > size - pos)
            return vt__why(why, whylen, VT_EFORMAT, "metadata entry '%s': value of %llu bytes runs past the block",
                           key,
                           (unsigned long long)nbytes);
        const unsigned char *val = buf + pos;
        if (nbytes % vt__meta_type_size((vt_meta_type)type) ||
            (type == VT_META_STRING &&
             (nbytes == 0 || val[nbytes - 1] != 0 || memchr(val, 0, nbytes - 1) != NULL)))
            return vt__why(why, whylen, VT_EFORMAT, "metadata entry '%s': value size %llu does not fit its type",
                           key,
                           (unsigned long long)nbytes);
        if (!all_zero(val + nbytes, pad8(nbytes) - nbytes))
            return vt__why(why, whylen, VT_EFORMAT, "metadata entry '%s': padding is not zero", key);
        for (uint32_t j = 0; j < i && out && j < cap; j++)
            if (strcmp(out[j].key, key) == 0)
                return vt__why(why, whylen, VT_EFORMAT, "metadata key '%s' appears twice", key);
        if (out && i < cap) {
            out[i].key = key;
            out[i].type = (vt_meta_type)type;
            out[i].data = val;
            out[i].nbytes = nbytes;
        }
        pos += pad8(nbytes);
    }
    if (pos != size)
        return vt__why(why, whylen, VT_EFORMAT, "metadata block has %llu trailing bytes",
                       (unsigned long long)(size - pos));
    *count = n;
    return 0;
}
