/* One tile ready to copy from: its checksum checked, decoded into the
 * calling thread's scratch when compressed (box reads and verification). */
#include "codec.h"
#include "store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- per-thread scratch ------------------------------------------------- */

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_destroy(void *p)
{
    vt_tscratch *s = p;
    if (s) {
        free(s->dec);
        free(s->row);
        free(s);
    }
}

static void scratch_make_key(void) { pthread_key_create(&scratch_key, scratch_destroy); }

vt_tscratch *vt__tscratch(void)
{
    pthread_once(&scratch_once, scratch_make_key);
    vt_tscratch *s = pthread_getspecific(scratch_key);
    if (s == NULL) {
        s = vt__calloc(1, sizeof *s);
        if (s && pthread_setspecific(scratch_key, s) != 0) {
            free(s);
            s = NULL;
        }
    }
    return s;
}

/* ---- tiles -------------------------------------------------------------- */

int vt__tile_fail(const vt_array *a, uint64_t t, int code, const char *what)
{
    uint64_t c[VT_MAX_DIMS];
    char cs[160];
    vt__tile_coords(a->grid, t, c);
    return vt__fail_at(a->store, code, a->store->path, "array '%s' tile %llu %s: %s", a->ent.name,
                       (unsigned long long)t, vt__coords_text(c, a->ent.ndim, cs, sizeof cs), what);
}

int vt__tile_load(const vt_array *a, uint64_t t, int verify, vt_tscratch *s, vt_tile_view *v)
{
    const unsigned char *ent = a->index + t * VT_TILE_ENTRY_SIZE;
    vt_tile_entry te;
    vt__tile_decode(ent, &te);
    uint64_t c[VT_MAX_DIMS];
    vt__tile_coords(a->grid, t, c);
    uint64_t n = vt__tile_box(&a->ent, c, v->start, v->ext);
    v->nelem = n;
    if (te.flags & VT_TILE_CONSTANT) {
        if (verify && vt__hash_differs(ent, 8, te.checksum))
            return vt__tile_fail(a, t, VT_ECORRUPT, "constant value checksum mismatch");
        v->data = ent; /* the value's bytes lead the index entry */
        v->layout = VT_LAYOUT_CONST;
        return 0;
    }
    const unsigned char *bytes = a->store->map + te.offset;
    if (verify && vt__hash_differs(bytes, te.size, te.checksum))
        return vt__tile_fail(a, t, VT_ECORRUPT, "checksum mismatch (tile data damaged)");
    if (te.flags & VT_TILE_RAW) {
        v->data = bytes;
        v->layout = VT_LAYOUT_CONTIG;
        return 0;
    }
    size_t raw = (size_t)(n * a->elem_size);
    if (vt__grow(&s->dec, &s->dec_cap, raw))
        return vt__tile_fail(a, t, VT_ENOMEM, "out of memory for the decode buffer");
    if (vt__decompress((vt_codec)a->ent.codec, bytes, te.size, s->dec, raw) != 0)
        return vt__tile_fail(a, t, VT_ECORRUPT, "does not decode to its size (tile data damaged)");
    v->data = s->dec;
    v->layout = (te.flags & VT_TILE_SHUFFLED) ? VT_LAYOUT_PLANES : VT_LAYOUT_CONTIG;
    return 0;
}
