/* voxtile dump: what is where in a store file.
 *
 *   (default)  the file's regions in file order: header, tile data, label
 *              indexes, tile indexes, directory, metadata
 *   --tiles    the tile index of each array (or --array NAME): per tile its
 *              grid coordinates, offset, stored and raw size, ratio, kind,
 *              min/max and checksum
 *   --header   the raw fields of the header and of each directory entry
 *              with their byte offsets, each with the check the reader
 *              applies to it (docs/format.md sections 2 and 3)
 *
 * The region map and --header read the file's bytes themselves, following
 * docs/format.md, so they work on a file the library refuses to open: that
 * is when they are needed. --tiles goes through the library (vt_tile_get). */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

static const char dump_help[] =
    "usage: voxtile dump STORE [--tiles] [--header] [--array NAME]\n"
    "\n"
    "Show the layout of a store file. Without options: its regions in file order\n"
    "(header, tile data, label and tile indexes, directory, metadata) with offsets\n"
    "and sizes. These views read the bytes directly (docs/format.md), so they also\n"
    "work on a damaged file that 'voxtile info' cannot open.\n"
    "\n"
    "      --tiles         the tile index: per tile its grid coordinates, file offset,\n"
    "                      stored and decoded bytes, ratio, kind (lz4, lz4+shuffle, raw,\n"
    "                      constant), min, max and checksum\n"
    "      --header        the raw header and directory fields with their byte offsets,\n"
    "                      values and the reader's check of each (for a broken file)\n"
    "      --array NAME    only this array (--tiles)\n"
    "\n"
    "Exit status 1 when the file breaks a rule of the format (the failing check is shown).\n"
    "\n"
    "example: voxtile dump ct.vxt --tiles --array seg | sort -k6 -n | tail\n";

#define HDR 4096u
#define DIRENT 256u
#define TILE_ENTRY 40u

typedef struct rawfile {
    const char *path;
    const unsigned char *map;
    uint64_t size;
} rawfile;

static uint64_t ld64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint32_t ld32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static int raw_open(const char *path, rawfile *f)
{
    f->path = path;
    f->map = NULL;
    f->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return file_error(path, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return file_error(path, "not a regular file");
    }
    f->size = (uint64_t)st.st_size;
    if (f->size > 0) {
        void *m = mmap(NULL, (size_t)f->size, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            return file_error(path, "cannot map: %s", strerror(errno));
        }
        f->map = m;
    }
    close(fd);
    return 0;
}

static void raw_close(rawfile *f)
{
    if (f->map)
        munmap((void *)f->map, (size_t)f->size);
}

/* [off, off+len) lies in the file after the header, without overflow. */
static bool region_ok(const rawfile *f, uint64_t off, uint64_t len)
{
    return off >= HDR && len <= f->size && off <= f->size - len;
}

/* ---- --header ----------------------------------------------------------- */

static int problems;

static void row(uint64_t off, unsigned size, const char *field, const char *value, const char *check)
{
    printf("%10" PRIu64 " %5u  %-18s %-36s %s\n", off, size, field, value, check);
    if (strcmp(check, "ok") != 0 && strcmp(check, "-") != 0)
        problems++;
}

static const char *hex64(uint64_t v, char *buf, size_t n)
{
    snprintf(buf, n, "0x%016" PRIx64, v);
    return buf;
}

/* The row of a checksum field: "ok" or what [off, off+len) hashes to when the
 * region is valid (checkable), "-" when it is not. */
static void checksum_row(const rawfile *f, uint64_t at, const char *field, uint64_t want, bool checkable,
                         uint64_t off, uint64_t len, const char *what)
{
    char v[40], c[96];
    hex64(want, v, sizeof v);
    if (!checkable) {
        row(at, 8, field, v, "-");
        return;
    }
    uint64_t x = XXH3_64bits(f->map + off, (size_t)len);
    snprintf(c, sizeof c, "MISMATCH: %s hashes to 0x%016" PRIx64, what, x);
    row(at, 8, field, v, x == want ? "ok" : c);
}

static void dump_direntry(const rawfile *f, uint64_t at, uint32_t i)
{
    const unsigned char *e = f->map + at;
    char v[96], c[160];
    printf("\ndirectory entry %u at %" PRIu64 ":\n", i, at);
    /* name: NUL within 1..63, zero after */
    size_t len = strnlen((const char *)e, 64);
    bool zero_after = true;
    for (size_t k = len + 1; k < 64; k++)
        zero_after &= e[k] == 0;
    snprintf(v, sizeof v, "\"%.*s\"", (int)(len < 40 ? len : 40), (const char *)e);
    row(at, 64, "name", v, len >= 1 && len <= 63 && zero_after ? "ok" : "must be 1..63 bytes, NUL, then zeros");
    unsigned dtype = e[64], ndim = e[65], codec = e[66], filter = e[67];
    snprintf(v, sizeof v, "%u (%s)", dtype, dtype >= 1 && dtype <= 10 ? vt_dtype_name((vt_dtype)dtype) : "?");
    row(at + 64, 1, "dtype", v, dtype >= 1 && dtype <= 10 ? "ok" : "must be 1..10");
    snprintf(v, sizeof v, "%u", ndim);
    row(at + 65, 1, "ndim", v, ndim >= 1 && ndim <= 5 ? "ok" : "must be 1..5");
    snprintf(v, sizeof v, "%u (%s)", codec, codec <= 2 ? vt_codec_name((vt_codec)codec) : "?");
    row(at + 66, 1, "codec", v, codec <= 2 ? "ok" : "must be 0..2");
    snprintf(v, sizeof v, "%u (%s)", filter, filter == 0 ? "none" : filter == 1 ? "shuffle" : filter == 2 ? "auto" : "?");
    row(at + 67, 1, "filter", v, filter <= 2 && !(codec == 0 && filter) ? "ok" : "must be 0..2, and 0 with codec 0");
    row(at + 68, 4, "reserved", ld32(e + 68) ? "nonzero" : "0", ld32(e + 68) ? "must be 0" : "ok");
    uint32_t level = ld32(e + 72), flags = ld32(e + 76);
    bool lok = codec == 0 ? level == 0 : codec == 1 ? level >= 1 && level <= 65537 : level >= 1 && level <= 12;
    snprintf(v, sizeof v, "%u", level);
    row(at + 72, 4, "level", v, lok ? "ok" : "out of range for the codec");
    snprintf(v, sizeof v, "0x%x%s", flags, flags & 1 ? " (SPARSE)" : "");
    row(at + 76, 4, "flags", v, flags & ~1u ? "unknown bits" : "ok");
    uint64_t ntiles = 1;
    bool shape_ok = true, ovf = false;
    for (int d = 0; d < 5; d++) {
        uint64_t sh = ld64(e + 80 + 8 * d);
        uint32_t tl = ld32(e + 120 + 4 * d);
        bool used = d < (int)ndim;
        bool ok = used ? sh >= 1 && sh <= INT64_MAX && tl >= 1 && tl <= sh : sh == 1 && tl == 1;
        shape_ok &= ok;
        if (ok) {
            uint64_t g = (sh + tl - 1) / tl;
            if (g && ntiles > UINT64_MAX / g)
                ovf = true;
            else
                ntiles *= g;
        }
        char name[16];
        snprintf(name, sizeof name, "shape[%d]", d);
        snprintf(v, sizeof v, "%" PRIu64, sh);
        row(at + 80 + 8 * (uint64_t)d, 8, name, v, ok ? "ok" : used ? "must be >= tile >= 1" : "must be 1 (unused axis)");
    }
    for (int d = 0; d < 5; d++) {
        char name[16];
        snprintf(name, sizeof name, "tile[%d]", d);
        snprintf(v, sizeof v, "%u", ld32(e + 120 + 4 * d));
        row(at + 120 + 4 * (uint64_t)d, 4, name, v, "-");
    }
    row(at + 140, 4, "reserved", ld32(e + 140) ? "nonzero" : "0", ld32(e + 140) ? "must be 0" : "ok");
    snprintf(v, sizeof v, "%02x %02x %02x %02x %02x %02x %02x %02x", e[144], e[145], e[146], e[147], e[148], e[149],
             e[150], e[151]);
    row(at + 144, 8, "fill", v, "-");
    uint64_t nt = ld64(e + 152);
    snprintf(v, sizeof v, "%" PRIu64, nt);
    snprintf(c, sizeof c, "grid gives %" PRIu64, ntiles);
    row(at + 152, 8, "ntiles", v, !shape_ok || ovf ? "-" : nt == ntiles ? "ok" : c);
    uint64_t io = ld64(e + 160), is = ld64(e + 168), ic = ld64(e + 176);
    bool iok = region_ok(f, io, is) && io % 8 == 0;
    snprintf(v, sizeof v, "%" PRIu64, io);
    row(at + 160, 8, "index_offset", v, iok ? "ok" : "outside the file or not 8-aligned");
    snprintf(v, sizeof v, "%" PRIu64, is);
    snprintf(c, sizeof c, "must be ntiles x 40 = %" PRIu64, nt <= UINT64_MAX / 40 ? nt * 40 : 0);
    row(at + 168, 8, "index_size", v, nt <= UINT64_MAX / 40 && is == nt * 40 ? "ok" : c);
    checksum_row(f, at + 176, "index_checksum", ic, iok, io, is, "the index");
    uint64_t lo = ld64(e + 184), ls = ld64(e + 192), lc = ld64(e + 200);
    bool lok2 = ls == 0 ? lo == 0 && lc == 0 : region_ok(f, lo, ls) && lo % 8 == 0;
    snprintf(v, sizeof v, "%" PRIu64, lo);
    row(at + 184, 8, "labels_offset", v, lok2 ? "ok" : "outside the file, not 8-aligned, or set without a size");
    snprintf(v, sizeof v, "%" PRIu64 "%s", ls, ls ? "" : " (no label index)");
    row(at + 192, 8, "labels_size", v, "-");
    checksum_row(f, at + 200, "labels_checksum", lc, ls && lok2, lo, ls, "the label index");
    bool rz = true;
    for (int k = 208; k < 256; k++)
        rz &= e[k] == 0;
    row(at + 208, 48, "reserved", rz ? "all zero" : "nonzero bytes", rz ? "ok" : "must be 0");
}

static int dump_header(const rawfile *f)
{
    char v[96], c[160];
    printf("%s: %" PRIu64 " bytes\n", f->path, f->size);
    printf("%10s %5s  %-18s %-36s %s\n", "offset", "size", "field", "value", "check");
    if (f->size < HDR) {
        printf("(the file is shorter than the %u-byte header)\n", HDR);
        return 1;
    }
    const unsigned char *h = f->map;
    bool magic = memcmp(h, "VOXTILE\0", 8) == 0;
    snprintf(v, sizeof v, "%02x %02x %02x %02x %02x %02x %02x %02x", h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]);
    row(0, 8, "magic", v, magic ? "ok" : "not \"VOXTILE\\0\": not a voxtile store");
    snprintf(v, sizeof v, "%u", ld32(h + 8));
    row(8, 4, "version", v, ld32(h + 8) == 1 ? "ok" : "this reader knows version 1");
    snprintf(v, sizeof v, "%u", ld32(h + 12));
    row(12, 4, "header_size", v, ld32(h + 12) == HDR ? "ok" : "must be 4096");
    uint64_t flags = ld64(h + 16);
    snprintf(v, sizeof v, "0x%" PRIx64 "%s", flags, flags & 1 ? " (COMPLETE)" : "");
    row(16, 8, "flags", v, flags == 1 ? "ok" : flags & 1 ? "unknown bits" : "not COMPLETE: never finalized");
    uint64_t fsz = ld64(h + 24);
    snprintf(v, sizeof v, "%" PRIu64, fsz);
    snprintf(c, sizeof c, "the file has %" PRIu64 " bytes (truncated or extended)", f->size);
    row(24, 8, "file_size", v, fsz == f->size ? "ok" : c);
    uint64_t doff = ld64(h + 32), dsz = ld64(h + 40), dck = ld64(h + 48);
    uint32_t narrays = ld32(h + 80);
    bool dok = region_ok(f, doff, dsz) && doff % 8 == 0;
    snprintf(v, sizeof v, "%" PRIu64, doff);
    row(32, 8, "dir_offset", v, dok ? "ok" : "outside the file or not 8-aligned");
    snprintf(v, sizeof v, "%" PRIu64, dsz);
    snprintf(c, sizeof c, "must be narrays x 256 = %" PRIu64, (uint64_t)narrays * DIRENT);
    row(40, 8, "dir_size", v, dsz == (uint64_t)narrays * DIRENT ? "ok" : c);
    checksum_row(f, 48, "dir_checksum", dck, dok, doff, dsz, "the directory");
    uint64_t moff = ld64(h + 56), msz = ld64(h + 64), mck = ld64(h + 72);
    bool mok = region_ok(f, moff, msz) && moff % 8 == 0;
    snprintf(v, sizeof v, "%" PRIu64, moff);
    row(56, 8, "meta_offset", v, mok ? "ok" : "outside the file or not 8-aligned");
    snprintf(v, sizeof v, "%" PRIu64, msz);
    row(64, 8, "meta_size", v, msz >= 8 && msz % 8 == 0 ? "ok" : "must be >= 8 and a multiple of 8");
    checksum_row(f, 72, "meta_checksum", mck, mok, moff, msz, "the metadata");
    snprintf(v, sizeof v, "%u", narrays);
    row(80, 4, "narrays", v, narrays >= 1 ? "ok" : "must be >= 1");
    uint32_t wv = ld32(h + 84);
    snprintf(v, sizeof v, "%u (%u.%u.%u)", wv, wv / 10000, wv / 100 % 100, wv % 100);
    row(84, 4, "writer_version", v, "-");
    uint64_t first_nz = 0;
    for (uint64_t k = 88; k < 4088 && !first_nz; k++)
        if (h[k])
            first_nz = k;
    snprintf(c, sizeof c, "must be 0; byte %" PRIu64 " is 0x%02x", first_nz, first_nz ? h[first_nz] : 0);
    row(88, 4000, "reserved", first_nz ? "nonzero bytes" : "all zero", first_nz ? c : "ok");
    uint64_t hck = ld64(h + 4088), x = XXH3_64bits(h, 4088);
    snprintf(c, sizeof c, "MISMATCH: bytes 0..4087 hash to 0x%016" PRIx64, x);
    row(4088, 8, "header_checksum", hex64(hck, v, sizeof v), x == hck ? "ok" : c);
    if (dok && dsz == (uint64_t)narrays * DIRENT)
        for (uint32_t i = 0; i < narrays; i++)
            dump_direntry(f, doff + (uint64_t)i * DIRENT, i);
    else
        printf("\n(the directory lies outside the file: its entries are not shown)\n");
    return problems ? 1 : 0;
}

/* ---- region map --------------------------------------------------------- */

typedef struct region {
    uint64_t off, size;
    char what[128];
} region;

static int cmp_region(const void *a, const void *b)
{
    const region *x = a, *y = b;
    return (x->off > y->off) - (x->off < y->off);
}

static int dump_layout(const rawfile *f)
{
    if (f->size < HDR || memcmp(f->map, "VOXTILE\0", 8) != 0) {
        file_error(f->path, f->size < HDR ? "shorter than a store header (%u bytes)" : "not a voxtile store (bad magic)",
                   HDR);
        return 1;
    }
    const unsigned char *h = f->map;
    uint32_t narrays = ld32(h + 80);
    uint64_t doff = ld64(h + 32), dsz = ld64(h + 40), moff = ld64(h + 56), msz = ld64(h + 64);
    region *r = calloc(2 * (size_t)(narrays < 4096 ? narrays : 4096) + 4, sizeof *r);
    if (r == NULL)
        return file_error(f->path, "out of memory");
    size_t n = 0;
    r[n++] = (region){0, HDR, ""};
    snprintf(r[0].what, sizeof r[0].what, "header (format %u, %s, %u array%s)", ld32(h + 8),
             ld64(h + 16) & 1 ? "complete" : "INCOMPLETE", narrays, narrays == 1 ? "" : "s");
    uint64_t tiles_lo = UINT64_MAX, tiles_hi = 0, stored = 0, ntiles_total = 0, nconst = 0;
    bool dir_ok = region_ok(f, doff, dsz) && dsz == (uint64_t)narrays * DIRENT;
    if (dir_ok) {
        r[n] = (region){doff, dsz, ""};
        snprintf(r[n++].what, sizeof r[0].what, "directory (%u x 256)", narrays);
        for (uint32_t i = 0; i < narrays && i < 4096; i++) {
            const unsigned char *e = f->map + doff + (uint64_t)i * DIRENT;
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)strnlen((const char *)e, 63), (const char *)e);
            uint64_t io = ld64(e + 160), is = ld64(e + 168), lo = ld64(e + 184), ls = ld64(e + 192);
            if (region_ok(f, io, is)) {
                r[n] = (region){io, is, ""};
                snprintf(r[n++].what, sizeof r[0].what, "tile index of '%s' (%" PRIu64 " x 40)", name, is / 40);
                for (uint64_t t = 0; t < is / TILE_ENTRY; t++) { /* extent of the tile data */
                    const unsigned char *te = f->map + io + t * TILE_ENTRY;
                    uint32_t fl = ld32(te + 12), sz = ld32(te + 8);
                    uint64_t off = ld64(te);
                    ntiles_total++;
                    if (fl & 2) {
                        nconst++;
                        continue;
                    }
                    if (region_ok(f, off, sz)) {
                        tiles_lo = off < tiles_lo ? off : tiles_lo;
                        tiles_hi = off + sz > tiles_hi ? off + sz : tiles_hi;
                        stored += sz;
                    }
                }
            } else {
                r[n] = (region){io, is, ""};
                snprintf(r[n++].what, sizeof r[0].what, "tile index of '%s': LIES OUTSIDE THE FILE", name);
                problems++;
            }
            if (ls) {
                r[n] = (region){lo, ls, ""};
                snprintf(r[n++].what, sizeof r[0].what, "label index of '%s' (%u labels)%s", name,
                         region_ok(f, lo, ls) && ls >= 4 ? ld32(f->map + lo) : 0,
                         region_ok(f, lo, ls) ? "" : ": LIES OUTSIDE THE FILE");
                problems += !region_ok(f, lo, ls);
            }
        }
    } else {
        r[n] = (region){doff, dsz, ""};
        snprintf(r[n++].what, sizeof r[0].what, "directory: LIES OUTSIDE THE FILE or has the wrong size");
        problems++;
    }
    if (tiles_hi > 0) {
        r[n] = (region){tiles_lo, tiles_hi - tiles_lo, ""};
        snprintf(r[n++].what, sizeof r[0].what,
                 "tile data (%" PRIu64 " tiles: %" PRIu64 " stored in %" PRIu64 " bytes, %" PRIu64 " constant)",
                 ntiles_total, ntiles_total - nconst, stored, nconst);
    }
    r[n] = (region){moff, msz, ""};
    if (region_ok(f, moff, msz) && msz >= 8)
        snprintf(r[n++].what, sizeof r[0].what, "metadata (%u entries)", ld32(f->map + moff));
    else {
        snprintf(r[n++].what, sizeof r[0].what, "metadata: LIES OUTSIDE THE FILE");
        problems++;
    }
    qsort(r, n, sizeof *r, cmp_region);
    printf("%s: %" PRIu64 " bytes\n", f->path, f->size);
    printf("%12s %12s %12s  %s\n", "offset", "end", "size", "region");
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (r[i].off > at)
            printf("%12" PRIu64 " %12" PRIu64 " %12" PRIu64 "  (unused: padding)\n", at, r[i].off, r[i].off - at);
        else if (r[i].off < at)
            printf("%12s %12s %12s  (overlaps the region above)\n", "", "", "");
        printf("%12" PRIu64 " %12" PRIu64 " %12" PRIu64 "  %s\n", r[i].off, r[i].off + r[i].size, r[i].size,
               r[i].what);
        if (r[i].off + r[i].size > at)
            at = r[i].off + r[i].size;
    }
    if (at < f->size)
        printf("%12" PRIu64 " %12" PRIu64 " %12" PRIu64 "  (trailing bytes)\n", at, f->size, f->size - at);
    free(r);
    return problems ? 1 : 0;
}

/* ---- --tiles ------------------------------------------------------------ */

static const char *tile_kind(const vt_array_info *ai, uint32_t flags)
{
    if (flags & VT_TILE_CONSTANT)
        return "constant";
    if (flags & VT_TILE_RAW)
        return "raw";
    if (flags & VT_TILE_SHUFFLED)
        return ai->codec == VT_CODEC_LZ4 ? "lz4+shuffle" : "lz4hc+shuffle";
    return ai->codec == VT_CODEC_LZ4 ? "lz4" : "lz4hc";
}

static void dump_tiles(const vt_array *a)
{
    vt_array_info ai;
    vt_array_info_get(a, &ai);
    printf("array '%s': %s (", ai.name, vt_dtype_name(ai.dtype));
    print_u64s(ai.shape, ai.ndim);
    printf("), tile (");
    print_u32s(ai.tile, ai.ndim);
    printf("), grid (");
    print_u64s(ai.grid, ai.ndim);
    printf("), %" PRIu64 " tiles\n", ai.ntiles);
    printf("%8s  %-16s %12s %9s %9s %8s  %-13s %12s %12s  %s\n", "tile", "coords", "offset", "stored", "raw", "ratio",
           "kind", "min", "max", "checksum");
    for (uint64_t t = 0; t < ai.ntiles; t++) {
        vt_tile_info ti;
        if (vt_tile_get(a, t, &ti) != 0)
            break;
        char coords[96];
        size_t o = 0;
        for (int d = 0; d < ai.ndim; d++)
            o += (size_t)snprintf(coords + o, sizeof coords - o, "%s%" PRIu64, d ? "," : "", ti.coord[d]);
        char off[24], ratio[24];
        if (ti.flags & VT_TILE_CONSTANT) {
            snprintf(off, sizeof off, "-");
            snprintf(ratio, sizeof ratio, "-");
        } else {
            snprintf(off, sizeof off, "%" PRIu64, ti.offset);
            snprintf(ratio, sizeof ratio, "%.2f", (double)ti.raw_size / (double)ti.stored_size);
        }
        printf("%8" PRIu64 "  %-16s %12s %9u %9" PRIu64 " %8s  %-13s %12.6g %12.6g  %016" PRIx64 "\n", t, coords, off,
               ti.stored_size, ti.raw_size, ratio, tile_kind(&ai, ti.flags), ti.min, ti.max, ti.checksum);
    }
}

int cmd_dump(int argc, char **argv)
{
    static const struct option opts[] = {{"tiles", no_argument, 0, 'T'},
                                         {"header", no_argument, 0, 'H'},
                                         {"array", required_argument, 0, 'a'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int tiles = 0, header = 0, c;
    const char *name = NULL;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'T': tiles = 1; break;
        case 'H': header = 1; break;
        case 'a': name = optarg; break;
        case 'h': fputs(dump_help, stdout); return 0;
        default: die_usage("dump: bad option");
        }
    }
    if (optind + 1 != argc)
        die_usage("dump: expected one store");
    const char *path = argv[optind];
    problems = 0;
    int rc = 0;
    if (header || !tiles) {
        rawfile f;
        if (raw_open(path, &f) != 0)
            return 1;
        rc = header ? dump_header(&f) : dump_layout(&f);
        raw_close(&f);
    }
    if (tiles) {
        if (header)
            printf("\n");
        vt_store *s;
        int orc = vt_open(path, 0, &s);
        if (orc)
            return lib_error(vt_errmsg(NULL), orc);
        const vt_array *a;
        if (name) {
            if (open_array(s, name, &a) != 0) {
                vt_close(s);
                return 1;
            }
            dump_tiles(a);
        } else
            for (size_t i = 0; i < vt_store_narrays(s); i++) {
                vt_store_array_at(s, i, &a);
                if (i)
                    printf("\n");
                dump_tiles(a);
            }
        vt_close(s);
    }
    return rc;
}
