/* On-disk layout of format version 1 (docs/format.md is the specification):
 * encoding and decoding of the header, directory entries, tile index entries
 * and the metadata block. Pure functions over byte buffers; no I/O. */
#ifndef VT_FORMAT_H
#define VT_FORMAT_H

#include "hash.h"
#include "internal.h"

#define VT_MAGIC "VOXTILE"           /* 8 bytes with the NUL */
#define VT_HEADER_SIZE 4096u
#define VT_HDR_CHECKSUM_AT 4088u
#define VT_DIRENT_SIZE 256u
#define VT_TILE_ENTRY_SIZE 40u
#define VT_META_HEADER_SIZE 8u
#define VT_META_ENTRY_HEADER 16u
#define VT_HDR_FLAG_COMPLETE 0x1u
#define VT_ARRAY_FLAG_SPARSE 0x1u
#define VT_META_MAX_ENTRIES 4096u
#define VT_TILE_FLAGS_KNOWN (VT_TILE_RAW | VT_TILE_CONSTANT | VT_TILE_SHUFFLED)
/* Largest decoded tile, so that sizes fit LZ4's int arguments with room. */
#define VT_MAX_TILE_BYTES (UINT64_C(1) << 30)

typedef struct vt_hdr {
    uint32_t version;
    uint64_t flags;
    uint64_t file_size;
    uint64_t dir_offset, dir_size, dir_checksum;
    uint64_t meta_offset, meta_size, meta_checksum;
    uint32_t narrays;
    uint32_t writer_version;
} vt_hdr;

typedef struct vt_dirent {
    char name[VT_NAME_MAX + 1];
    uint8_t dtype, ndim, codec, filter;
    uint32_t level;
    uint32_t flags;
    uint64_t shape[VT_MAX_DIMS];
    uint32_t tile[VT_MAX_DIMS];
    unsigned char fill[8]; /* raw element bytes, zero-padded */
    uint64_t ntiles;
    uint64_t index_offset, index_size, index_checksum;
    uint64_t labels_offset, labels_size, labels_checksum;
} vt_dirent;

typedef struct vt_tile_entry {
    uint64_t offset; /* constant tile: the element's bytes, zero-padded */
    uint32_t size;
    uint32_t flags;
    uint64_t checksum;
    double min, max;
} vt_tile_entry;


VT_INTERNAL void vt__hdr_encode(const vt_hdr *h, unsigned char buf[VT_HEADER_SIZE]);
/* Decode and check a header read from a file of @p file_size bytes. On
 * failure returns a VT_E* code and writes a reason into @p why. */
VT_INTERNAL int vt__hdr_decode(const unsigned char *buf, uint64_t file_size, vt_hdr *h,
                               char *why, size_t whylen);

VT_INTERNAL void vt__dirent_encode(const vt_dirent *e, unsigned char buf[VT_DIRENT_SIZE]);
/* Decode and check one directory entry for internal consistency (not against
 * the file size). */
VT_INTERNAL int vt__dirent_decode(const unsigned char *buf, vt_dirent *e, char *why, size_t whylen);

static inline void vt__tile_encode(const vt_tile_entry *t, unsigned char *b)
{
    vt__st64(b, t->offset);
    vt__st32(b + 8, t->size);
    vt__st32(b + 12, t->flags);
    vt__st64(b + 16, t->checksum);
    vt__stf64(b + 24, t->min);
    vt__stf64(b + 32, t->max);
}

static inline void vt__tile_decode(const unsigned char *b, vt_tile_entry *t)
{
    t->offset = vt__ld64(b);
    t->size = vt__ld32(b + 8);
    t->flags = vt__ld32(b + 12);
    t->checksum = vt__ld64(b + 16);
    t->min = vt__ldf64(b + 24);
    t->max = vt__ldf64(b + 32);
}

/* Metadata entries as held in memory by the writer and parsed by the reader. */
typedef struct vt_meta {
    const char *key;
    vt_meta_type type;
    const void *data; /* value bytes (a string includes its NUL) */
    uint64_t nbytes;  /* value bytes including a string's NUL */
} vt_meta;

VT_INTERNAL size_t vt__meta_type_size(vt_meta_type t);
/* Bytes the block for these entries takes. */
VT_INTERNAL uint64_t vt__meta_encoded_size(const vt_meta *m, size_t n);
VT_INTERNAL void vt__meta_encode(const vt_meta *m, size_t n, unsigned char *buf);
/* Parse a block; @p out (may be NULL) receives up to @p cap entries pointing into
 * @p buf, @p count the number of entries. buf must be 8-byte aligned. */
VT_INTERNAL int vt__meta_decode(const unsigned char *buf, uint64_t size, vt_meta *out, size_t cap,
                                size_t *count, char *why, size_t whylen);

#endif
