/* Streaming writer.
 *
 * The caller writes boxes of voxels; the writer copies them into the tiles
 * they touch and keeps only tiles that are partly written (with a bitmap of
 * the voxels they hold, so a voxel written twice is caught). A tile whose last
 * voxel arrives is encoded -- constant check, min/max, shuffle, LZ4/LZ4HC, raw
 * fallback, checksum -- in the calling thread or on a pool of threads, and
 * appended to the file. finalize() writes the tile indexes, directory,
 * metadata and header, fsyncs, and publishes the file by rename. */

#include "codec.h"
#include "format.h"
#include "internal.h"
#include "labels.h"
#include "tilegrid.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define AUTO_SAMPLE_TILES 8
/* Encoded tiles are gathered per thread and appended with one pwrite per
 * WRITE_BATCH bytes: one small write per tile made the threads queue on the
 * file's inode lock and had the kernel zero partial pages (issue 3's
 * conversion benchmark, docs/performance.md). */
#define WRITE_BATCH ((size_t)1 << 20)
/* The file is written in windows of WINDOW bytes at offsets that are
 * multiples of WINDOW (the last one partial): a filesystem with large folios
 * (ext4 since Linux 6.16, xfs, ...) then caches the store in 2 MiB folios,
 * which a reader's mapping maps 2 MiB at a time instead of a page-table entry
 * per 4 KiB page. Page-table updates are what a first touch of the file costs,
 * and in a virtual machine they cost several times more (benchmarks/README.md,
 * "Huge mappings"). */
#define WINDOW ((size_t)2 << 20)

enum { TILE_UNTOUCHED = 0, TILE_PENDING = 1, TILE_DONE = 2 };

typedef struct pending {
    unsigned char *buf;
    uint64_t *bits; /* one bit per voxel of the tile: written */
    uint64_t filled;
} pending;

typedef struct warray {
    vt_dirent ent;
    size_t elem_size;
    uint64_t grid[VT_MAX_DIMS];
    vt_tile_entry *tiles;
    unsigned char *state; /* TILE_* per tile */
    pending **pend;       /* per tile, while TILE_PENDING */
    uint64_t done;
    vt_label_hist *hist;  /* label arrays: per tile, its values and counts */
    /* VT_FILTER_AUTO: -1 undecided, else 0/1 (shuffle); guarded by w->mtx */
    int auto_shuffle;
    int auto_samples;
    uint64_t auto_plain, auto_shuf;
} warray;

/* A complete tile waiting in the queue for an encoding thread. */
typedef struct tile_job {
    warray *a;
    uint64_t tile;
    unsigned char *buf;
} tile_job;

/* A tile waiting in a write batch: where its bytes start in the batch. */
typedef struct batched {
    struct warray *a;
    uint64_t tile;
    size_t at;
} batched;

/* Buffers of one encoding thread. */
typedef struct scratch {
    vt_codec_ctx ctx;
    unsigned char *shuf, *out1, *out2;
    size_t shuf_cap, out_cap;
    unsigned char *batch; /* encoded tiles not yet written, WRITE_BATCH bytes */
    size_t batch_len;
    batched *held;        /* the tiles in it */
    size_t nheld, held_cap;
} scratch;

/* A writer accepts calls while open; a failure that leaves it inconsistent
 * fails it, finalize() finishes it; then only vt_writer_free() is allowed. */
typedef enum writer_state { WRITER_OPEN = 0, WRITER_FAILED, WRITER_FINALIZED } writer_state;

static const char *state_name(writer_state s)
{
    return s == WRITER_OPEN ? "open" : s == WRITER_FAILED ? "failed" : "finalized";
}

struct vt_writer {
    char *path;     /* final name */
    vt_tmpfile tf;  /* the file being written, published at finalize */
    writer_state state;
    uint64_t end;   /* next append offset; guarded by mtx */
    unsigned char *win; /* file bytes [win_off, end) not yet written; guarded by mtx */
    uint64_t win_off;   /* a multiple of WINDOW */
    unsigned char **spare; /* full windows' buffers once written, for reuse; guarded by mtx */
    size_t nspare, spare_cap, nbuf; /* nbuf: window buffers in all (the spares and w->win) */
    warray **arrays;
    int narrays;
    vt_meta *meta;
    size_t nmeta;
    /* thread pool */
    int nworkers;
    pthread_t *workers;
    pthread_mutex_t mtx;
    pthread_cond_t cv_job, cv_space, cv_idle;
    tile_job *queue;
    size_t qcap, qhead, qlen;
    int busy;
    int idle;          /* workers waiting for a job */
    int space_waiter;  /* the writing thread waits for room in the queue */
    int stop;
    int abandon;         /* vt_writer_free: drop the batches instead of writing them */
    int err;             /* first worker error, guarded by mtx */
    char errmsg[512];
    scratch inline_scratch;
};

/* ---- helpers ------------------------------------------------------------ */

/* Fail and put the writer in the failed state. */
static int fail_hard(vt_writer *w, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail_hard(vt_writer *w, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    w->state = WRITER_FAILED;
    int rc = vt__vfail_at(w, code, w->path, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- tile encoding ------------------------------------------------------ */

static void scratch_free(scratch *s)
{
    vt__codec_ctx_free(&s->ctx);
    free(s->shuf);
    free(s->out1);
    free(s->out2);
    free(s->batch);
    free(s->held);
    memset(s, 0, sizeof *s);
}

/* Encode one tile into @p e; returns a pointer to the bytes to store (in @p raw
 * or in the scratch) and their length. */
static int encode_tile(vt_writer *w, scratch *s, warray *a, unsigned char *raw, size_t rawsize,
                       vt_tile_entry *e, const unsigned char **bytes, size_t *len)
{
    size_t elem_size = a->elem_size;
    size_t n = rawsize / elem_size;
    memset(e, 0, sizeof *e);
    vt__minmax((vt_dtype)a->ent.dtype, raw, n, &e->min, &e->max);

    if (n == 1 || memcmp(raw, raw + elem_size, rawsize - elem_size) == 0) { /* every element equal */
        unsigned char v[8] = {0};
        memcpy(v, raw, elem_size);
        e->flags = VT_TILE_CONSTANT;
        e->offset = vt__ld64(v);
        e->size = 0;
        e->checksum = vt__hash(v, 8);
        *bytes = NULL;
        *len = 0;
        return 0;
    }
    if (a->ent.codec == VT_CODEC_NONE) {
        e->flags = VT_TILE_RAW;
        *bytes = raw;
        *len = rawsize;
        e->size = (uint32_t)rawsize;
        e->checksum = vt__hash(raw, rawsize);
        return 0;
    }

    int want_shuf; /* 1 shuffle, 0 plain, -1 try both */
    if (elem_size == 1 || a->ent.filter == VT_FILTER_NONE)
        want_shuf = 0;
    else if (a->ent.filter == VT_FILTER_SHUFFLE)
        want_shuf = 1;
    else {
        pthread_mutex_lock(&w->mtx);
        want_shuf = a->auto_shuffle;
        pthread_mutex_unlock(&w->mtx);
    }

    size_t bound = vt__compress_bound(rawsize);
    if (s->out_cap < bound) {
        free(s->out1);
        free(s->out2);
        s->out1 = vt__malloc(bound);
        s->out2 = vt__malloc(bound);
        s->out_cap = s->out1 && s->out2 ? bound : 0;
        if (s->out_cap == 0)
            return VT_ENOMEM;
    }
    if (want_shuf && vt__grow(&s->shuf, &s->shuf_cap, rawsize))
        return VT_ENOMEM;

    long plain = 0, shuf = 0;
    int lvl = (int)a->ent.level;
    vt_codec codec = (vt_codec)a->ent.codec;
    if (want_shuf != 1) {
        plain = vt__compress(&s->ctx, codec, lvl, raw, rawsize, s->out1, s->out_cap);
        if (plain < 0)
            return (int)plain;
    }
    if (want_shuf != 0) {
        vt__shuffle(raw, s->shuf, n, elem_size);
        unsigned char *dst = want_shuf < 0 ? s->out2 : s->out1;
        shuf = vt__compress(&s->ctx, codec, lvl, s->shuf, rawsize, dst, s->out_cap);
        if (shuf < 0)
            return (int)shuf;
    }
    if (want_shuf < 0) {
        uint64_t p = plain > 0 ? (uint64_t)plain : rawsize;
        uint64_t q = shuf > 0 ? (uint64_t)shuf : rawsize;
        pthread_mutex_lock(&w->mtx);
        a->auto_plain += p;
        a->auto_shuf += q;
        if (++a->auto_samples >= AUTO_SAMPLE_TILES && a->auto_shuffle < 0)
            a->auto_shuffle = a->auto_shuf < a->auto_plain;
        pthread_mutex_unlock(&w->mtx);
        if (q < p) { /* keep the shuffled one: swap buffers so out1 holds it */
            unsigned char *t = s->out1;
            s->out1 = s->out2;
            s->out2 = t;
            plain = 0;
        } else {
            shuf = 0;
        }
    }
    long got = want_shuf == 1 || shuf > 0 ? shuf : plain;
    if (got <= 0 || (size_t)got >= rawsize) { /* does not shrink: store raw */
        e->flags = VT_TILE_RAW;
        *bytes = raw;
        *len = rawsize;
    } else {
        e->flags = shuf > 0 ? VT_TILE_SHUFFLED : 0;
        *bytes = s->out1;
        *len = (size_t)got;
    }
    e->size = (uint32_t)*len;
    e->checksum = vt__hash(*bytes, *len);
    return 0;
}

/* Write @p n bytes of window @p buf at @p off. */
static int window_write(vt_writer *w, const unsigned char *buf, size_t n, uint64_t off)
{
    int r = n ? vt__pwrite_all(w->tf.fd, buf, n, off) : 0;
    if (r < 0)
        return vt__fail_at(w, vt__errno_code(-r), w->path, "cannot write tile data: %s", strerror(-r));
    return 0;
}

/* Append @p len bytes at the end of the file; their offset in @p off. They are
 * copied into the window; a window made full is written by the thread that
 * filled it, outside the lock (the window goes on with a spare buffer), or
 * under it when the same append fills another one (a tile bigger than what
 * was left). */
static int append(vt_writer *w, const unsigned char *bytes, size_t len, uint64_t *off)
{
    int rc = 0;
    unsigned char *full = NULL;
    uint64_t full_off = 0;
    pthread_mutex_lock(&w->mtx);
    *off = w->end;
    while (len > 0 && rc == 0) {
        if (full) { /* a second window fills in this append */
            rc = window_write(w, full, WINDOW, full_off);
            w->spare[w->nspare++] = full;
            full = NULL;
            if (rc)
                break;
        }
        size_t at = (size_t)(w->end - w->win_off), n = WINDOW - at < len ? WINDOW - at : len;
        memcpy(w->win + at, bytes, n);
        w->end += n;
        bytes += n;
        len -= n;
        if (at + n < WINDOW)
            continue;
        unsigned char *next = w->nspare ? w->spare[--w->nspare] : NULL;
        if (next == NULL) { /* a new buffer, and room to keep every buffer but the window as a spare */
            if (vt__grow_items(&w->spare, &w->spare_cap, w->nbuf, sizeof *w->spare, 4) ||
                (next = vt__malloc(WINDOW)) == NULL) {
                rc = vt__fail_at(w, VT_ENOMEM, w->path, "out of memory for a write buffer");
                break;
            }
            w->nbuf++;
        }
        full = w->win;
        full_off = w->win_off;
        w->win = next;
        w->win_off += WINDOW;
    }
    pthread_mutex_unlock(&w->mtx);
    if (full) {
        int r = window_write(w, full, WINDOW, full_off);
        rc = rc ? rc : r;
        pthread_mutex_lock(&w->mtx);
        w->spare[w->nspare++] = full; /* room: the array holds nbuf - 1 */
        pthread_mutex_unlock(&w->mtx);
    }
    return rc;
}

/* Write the batch of @p s and give its tiles their offsets. */
static int flush_batch(vt_writer *w, scratch *s)
{
    if (s->batch_len == 0)
        return 0;
    uint64_t off;
    int rc = append(w, s->batch, s->batch_len, &off);
    if (rc == 0)
        for (size_t i = 0; i < s->nheld; i++)
            s->held[i].a->tiles[s->held[i].tile].offset = off + s->held[i].at;
    s->batch_len = 0;
    s->nheld = 0;
    return rc;
}

/* Put the @p len bytes of tile @p t in the batch of @p s (written when full). */
static int batch_tile(vt_writer *w, scratch *s, warray *a, uint64_t t, const unsigned char *bytes,
                      size_t len)
{
    if (s->batch_len + len > WRITE_BATCH) {
        int rc = flush_batch(w, s);
        if (rc)
            return rc;
    }
    if (s->batch == NULL && (s->batch = vt__malloc(WRITE_BATCH)) == NULL)
        return vt__fail_at(w, VT_ENOMEM, w->path, "out of memory for a write buffer");
    if (vt__grow_items(&s->held, &s->held_cap, s->nheld, sizeof *s->held, 256))
        return vt__fail_at(w, VT_ENOMEM, w->path, "out of memory for a write buffer");
    memcpy(s->batch + s->batch_len, bytes, len);
    s->held[s->nheld++] = (batched){a, t, s->batch_len};
    s->batch_len += len;
    return 0;
}

/* Encode tile @p t of @p a held in @p raw and queue its bytes for the file:
 * its offset is set when its batch is written (flush_batch). */
static int store_tile(vt_writer *w, scratch *s, warray *a, uint64_t t, unsigned char *raw)
{
    uint64_t c[VT_MAX_DIMS], ext[VT_MAX_DIMS];
    vt__tile_coords(a->grid, t, c);
    size_t rawsize = (size_t)(vt__tile_box(&a->ent, c, NULL, ext) * a->elem_size);
    vt_tile_entry e;
    const unsigned char *bytes = NULL;
    size_t len = 0;
    int rc = encode_tile(w, s, a, raw, rawsize, &e, &bytes, &len);
    if (rc) {
        char cs[128];
        vt__coords_text(c, a->ent.ndim, cs, sizeof cs);
        return vt__fail_at(w, rc, w->path, "array '%s' tile %s: cannot encode (%s)", a->ent.name,
                           cs, vt_strerror(rc));
    }
    a->tiles[t] = e;
    if (len > WRITE_BATCH / 2) { /* a big tile goes straight to the file */
        rc = append(w, bytes, len, &a->tiles[t].offset);
        if (rc)
            return rc;
    } else if (len > 0 && (rc = batch_tile(w, s, a, t, bytes, len)) != 0) {
        return rc;
    }
    if (a->hist) {
        rc = vt__label_hist((vt_dtype)a->ent.dtype, raw, rawsize / a->elem_size, &a->hist[t]);
        if (rc)
            return vt__fail_at(w, rc, w->path, "out of memory for the label index");
    }
    return 0;
}

/* ---- thread pool -------------------------------------------------------- */

static void *worker_main(void *arg)
{
    vt_writer *w = arg;
    scratch s;
    memset(&s, 0, sizeof s);
    pthread_mutex_lock(&w->mtx);
    for (;;) {
        while (w->qlen == 0 && !w->stop) {
            w->idle++;
            pthread_cond_wait(&w->cv_job, &w->mtx);
            w->idle--;
        }
        if (w->qlen == 0 && w->stop)
            break;
        tile_job j = w->queue[w->qhead];
        w->qhead = (w->qhead + 1) % w->qcap;
        w->qlen--;
        w->busy++;
        int skip = w->err != 0;
        if (w->space_waiter)
            pthread_cond_signal(&w->cv_space);
        pthread_mutex_unlock(&w->mtx);

        int rc = skip ? 0 : store_tile(w, &s, j.a, j.tile, j.buf);
        free(j.buf);

        pthread_mutex_lock(&w->mtx);
        if (rc && !w->err) {
            w->err = rc;
            snprintf(w->errmsg, sizeof w->errmsg, "%s", vt__errmsg(w));
        }
        w->busy--;
        if (w->qlen == 0 && w->busy == 0)
            pthread_cond_broadcast(&w->cv_idle);
    }
    /* the tiles still in this thread's batch: written unless the writer failed
     * or is being abandoned (its temporary file is then removed anyway) */
    int flush = !w->err && !w->abandon;
    pthread_mutex_unlock(&w->mtx);
    int rc = flush ? flush_batch(w, &s) : 0;
    if (rc) {
        pthread_mutex_lock(&w->mtx);
        if (!w->err) {
            w->err = rc;
            snprintf(w->errmsg, sizeof w->errmsg, "%s", vt__errmsg(w));
        }
        pthread_mutex_unlock(&w->mtx);
    }
    scratch_free(&s);
    return NULL;
}

/* Report a worker failure in the calling thread and fail the writer. */
static int check_worker_error(vt_writer *w)
{
    if (w->nworkers == 0)
        return 0;
    pthread_mutex_lock(&w->mtx);
    int err = w->err;
    char msg[512];
    memcpy(msg, w->errmsg, sizeof msg);
    pthread_mutex_unlock(&w->mtx);
    if (err) {
        w->state = WRITER_FAILED;
        return vt__fail(w, err, "%s", msg);
    }
    return 0;
}

/* Hand a complete tile to the pool (or encode it here); takes ownership of buf. */
static int submit(vt_writer *w, warray *a, uint64_t t, unsigned char *buf)
{
    a->state[t] = TILE_DONE;
    a->done++;
    if (w->nworkers == 0) {
        int rc = store_tile(w, &w->inline_scratch, a, t, buf);
        free(buf);
        if (rc)
            w->state = WRITER_FAILED;
        return rc;
    }
    pthread_mutex_lock(&w->mtx);
    while (w->qlen == w->qcap && !w->err) {
        w->space_waiter = 1;
        pthread_cond_wait(&w->cv_space, &w->mtx);
        w->space_waiter = 0;
    }
    if (w->err) {
        pthread_mutex_unlock(&w->mtx);
        free(buf);
        return check_worker_error(w);
    }
    w->queue[(w->qhead + w->qlen) % w->qcap] = (tile_job){a, t, buf};
    w->qlen++;
    if (w->idle > 0) /* a busy worker finds the job without being woken */
        pthread_cond_signal(&w->cv_job);
    pthread_mutex_unlock(&w->mtx);
    return 0;
}

static void wait_idle(vt_writer *w)
{
    if (w->nworkers == 0)
        return;
    pthread_mutex_lock(&w->mtx);
    while (w->qlen > 0 || w->busy > 0)
        pthread_cond_wait(&w->cv_idle, &w->mtx);
    pthread_mutex_unlock(&w->mtx);
}

static void stop_workers(vt_writer *w)
{
    if (w->nworkers == 0)
        return;
    pthread_mutex_lock(&w->mtx);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv_job);
    pthread_mutex_unlock(&w->mtx);
    for (int i = 0; i < w->nworkers; i++)
        pthread_join(w->workers[i], NULL);
    w->nworkers = 0;
}

/* ---- open --------------------------------------------------------------- */

void vt_writer_opts_init(vt_writer_opts *opts)
{
    if (opts)
        opts->threads = 1;
}

int vt_writer_open(const char *path, const vt_writer_opts *opts, vt_writer **out)
{
    if (out)
        *out = NULL;
    if (path == NULL || out == NULL || path[0] == 0)
        return vt__fail(NULL, VT_EINVAL, "vt_writer_open: path and out must be given");
    vt_writer_opts def;
    if (opts == NULL) {
        vt_writer_opts_init(&def);
        opts = &def;
    }
    if (opts->threads < 0 || opts->threads > 1024)
        return vt__fail_at(NULL, VT_EINVAL, path, "threads %d out of range", opts->threads);

    vt_writer *w = vt__calloc(1, sizeof *w);
    if (w == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
    w->tf.fd = -1;
    pthread_mutex_init(&w->mtx, NULL);
    pthread_cond_init(&w->cv_job, NULL);
    pthread_cond_init(&w->cv_space, NULL);
    pthread_cond_init(&w->cv_idle, NULL);
    w->path = vt__strdup(path);
    if (w->path == NULL) {
        vt_writer_free(w);
        return vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
    }
    int rc = vt__tmpfile_open(&w->tf, path, NULL);
    if (rc) {
        vt_writer_free(w); /* the thread's message stays */
        return rc;
    }
    w->end = VT_HEADER_SIZE;
    w->nbuf = 1;
    if ((w->win = vt__malloc(WINDOW)) == NULL) {
        vt_writer_free(w);
        return vt__fail_at(NULL, VT_ENOMEM, path, "out of memory for a write buffer");
    }
    /* a header without the complete flag until finalize: a reader of an
     * unfinished file is told so (also the first window's first bytes) */
    unsigned char *hb = w->win;
    vt_hdr h0;
    memset(&h0, 0, sizeof h0);
    h0.version = VT_FORMAT_VERSION;
    h0.writer_version = VT_VERSION_NUMBER;
    vt__hdr_encode(&h0, hb);
    int r = vt__pwrite_all(w->tf.fd, hb, VT_HEADER_SIZE, 0);
    if (r < 0) {
        rc = vt__fail_at(NULL, vt__errno_code(-r), path, "cannot write: %s", strerror(-r));
        vt_writer_free(w);
        return rc;
    }
    if (opts->threads > 1) {
        w->qcap = (size_t)opts->threads * 64; /* complete tiles waiting: a few MiB */
        w->queue = vt__calloc(w->qcap, sizeof *w->queue);
        w->workers = vt__calloc((size_t)opts->threads, sizeof *w->workers);
        if (w->queue == NULL || w->workers == NULL) {
            vt_writer_free(w);
            return vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
        }
        for (int i = 0; i < opts->threads; i++) {
            if (pthread_create(&w->workers[i], NULL, worker_main, w) != 0) {
                vt_writer_free(w);
                return vt__fail_at(NULL, VT_EIO, path, "cannot start compression threads");
            }
            w->nworkers++;
        }
    }
    *out = w;
    return 0;
}

/* ---- arrays ------------------------------------------------------------- */

void vt_array_spec_init(vt_array_spec *spec)
{
    if (spec == NULL)
        return;
    memset(spec, 0, sizeof *spec);
    spec->codec = VT_CODEC_LZ4HC;
    spec->filter = VT_FILTER_AUTO;
    for (int d = 0; d < VT_MAX_DIMS; d++)
        spec->shape[d] = 1;
}

/* The default tile shape (see internal.h; the measurements behind it are in
 * benchmarks/README.md, "Choosing the defaults"). */
void vt__default_tile(int ndim, uint32_t *tile)
{
    for (int d = 0; d < ndim; d++)
        tile[d] = 1;
    if (ndim == 1)
        tile[0] = 32768;
    else if (ndim == 2)
        tile[0] = tile[1] = 256;
    else
        for (int d = ndim - 3; d < ndim; d++)
            tile[d] = VT_DEFAULT_TILE_EDGE;
}

int vt_writer_add_array(vt_writer *w, const vt_array_spec *spec, int *id)
{
    if (w == NULL || spec == NULL || id == NULL)
        return vt__fail(w, VT_EINVAL, "vt_writer_add_array: NULL argument");
    if (w->state != WRITER_OPEN)
        return vt__fail_at(w, VT_ESTATE, w->path, "writer is %s", state_name(w->state));
    const char *name = spec->name;
    if (name == NULL || name[0] == 0 || strlen(name) > VT_NAME_MAX)
        return vt__fail_at(w, VT_EINVAL, w->path, "array name must be 1..%d bytes", VT_NAME_MAX);
    for (int i = 0; i < w->narrays; i++)
        if (strcmp(w->arrays[i]->ent.name, name) == 0)
            return vt__fail_at(w, VT_EINVAL, w->path, "array '%s' declared twice", name);
    if (!vt__dtype_valid(spec->dtype))
        return vt__fail_at(w, VT_EINVAL, w->path, "array '%s': invalid dtype %d", name, (int)spec->dtype);
    if (spec->ndim < 1 || spec->ndim > VT_MAX_DIMS)
        return vt__fail_at(w, VT_EINVAL, w->path, "array '%s': ndim %d outside 1..%d", name, spec->ndim,
                           VT_MAX_DIMS);
    if (spec->codec < VT_CODEC_NONE || spec->codec > VT_CODEC_LZ4HC)
        return vt__fail_at(w, VT_EINVAL, w->path, "array '%s': invalid codec %d", name, (int)spec->codec);
    if (spec->filter < VT_FILTER_NONE || spec->filter > VT_FILTER_AUTO)
        return vt__fail_at(w, VT_EINVAL, w->path, "array '%s': invalid filter %d", name, (int)spec->filter);
    int level = spec->codec == VT_CODEC_NONE ? 0
                : spec->level == 0             ? vt__codec_default_level(spec->codec)
                                               : spec->level;
    if (!vt__codec_level_ok(spec->codec, level))
        return vt__fail_at(w, VT_EINVAL, w->path, "array '%s': level %d invalid for codec %s", name, spec->level,
                           vt_codec_name(spec->codec));
    if (spec->labels && !vt__label_dtype_ok(spec->dtype))
        return vt__fail_at(w, VT_EINVAL, w->path,
                           "array '%s': a label array needs an integer dtype of at most 32 bits, not %s",
                           name, vt_dtype_name(spec->dtype));
    if (!vt__representable(spec->dtype, spec->fill))
        return vt__fail_at(w, VT_EINVAL, w->path, "array '%s': fill value %g does not fit %s", name, spec->fill,
                           vt_dtype_name(spec->dtype));

    warray *a = vt__calloc(1, sizeof *a);
    if (a == NULL)
        return vt__fail_at(w, VT_ENOMEM, w->path, "out of memory");
    vt_dirent *e = &a->ent;
    memcpy(e->name, name, strlen(name) + 1);
    e->dtype = (uint8_t)spec->dtype;
    e->ndim = (uint8_t)spec->ndim;
    e->codec = (uint8_t)spec->codec;
    e->filter = (uint8_t)(spec->codec == VT_CODEC_NONE ? VT_FILTER_NONE : spec->filter);
    e->level = (uint32_t)level;
    e->flags = spec->sparse ? VT_ARRAY_FLAG_SPARSE : 0;
    a->elem_size = vt_dtype_size(spec->dtype);
    a->auto_shuffle = -1;
    vt__store_f64(spec->dtype, e->fill, spec->fill);

    uint32_t tile[VT_MAX_DIMS];
    bool all_zero = true;
    for (int d = 0; d < spec->ndim; d++)
        all_zero &= spec->tile[d] == 0;
    if (all_zero)
        vt__default_tile(spec->ndim, tile);
    else
        memcpy(tile, spec->tile, sizeof tile);
    uint64_t ntiles = 1, tvox = 1, vox = 1, tbytes, bytes;
    int rc = 0;
    for (int d = 0; d < VT_MAX_DIMS; d++) {
        if (d >= spec->ndim) {
            e->shape[d] = 1;
            e->tile[d] = 1;
            a->grid[d] = 1;
            continue;
        }
        if (spec->shape[d] == 0 || spec->shape[d] > (uint64_t)INT64_MAX || tile[d] == 0) {
            rc = vt__fail_at(w, VT_EINVAL, w->path,
                             "array '%s': axis %d has shape %llu and tile %u (both must be >= 1)",
                             name, d, (unsigned long long)spec->shape[d], tile[d]);
            break;
        }
        e->shape[d] = spec->shape[d];
        e->tile[d] = (uint64_t)tile[d] > spec->shape[d] ? (uint32_t)spec->shape[d] : tile[d];
        a->grid[d] = vt__ceil_div(e->shape[d], e->tile[d]);
        if (!vt__mul_ok(ntiles, a->grid[d], &ntiles) || !vt__mul_ok(tvox, e->tile[d], &tvox) ||
            !vt__mul_ok(vox, e->shape[d], &vox)) {
            rc = vt__fail_at(w, VT_ERANGE, w->path, "array '%s': shape too large", name);
            break;
        }
    }
    if (rc == 0 && (!vt__mul_ok(tvox, a->elem_size, &tbytes) || tbytes > VT_MAX_TILE_BYTES ||
                    !vt__mul_ok(vox, a->elem_size, &bytes) || ntiles > SIZE_MAX / sizeof(vt_tile_entry)))
        rc = vt__fail_at(w, VT_ERANGE, w->path, "array '%s': tiles of more than 1 GiB or an array too large", name);
    if (rc) {
        free(a);
        return rc;
    }
    e->ntiles = ntiles;
    e->index_size = ntiles * VT_TILE_ENTRY_SIZE;
    a->tiles = vt__calloc(ntiles, sizeof *a->tiles);
    a->state = vt__calloc(ntiles, 1);
    a->pend = vt__calloc(ntiles, sizeof *a->pend);
    if (spec->labels)
        a->hist = vt__calloc(ntiles, sizeof *a->hist);
    warray **arr = vt__realloc(w->arrays, (size_t)(w->narrays + 1) * sizeof *arr);
    if (a->tiles == NULL || a->state == NULL || a->pend == NULL || arr == NULL ||
        (spec->labels && a->hist == NULL)) {
        free(a->hist);
        free(a->tiles);
        free(a->state);
        free(a->pend);
        free(a);
        if (arr)
            w->arrays = arr;
        return vt__fail_at(w, VT_ENOMEM, w->path, "array '%s': out of memory for the tile index", name);
    }
    w->arrays = arr;
    w->arrays[w->narrays] = a;
    *id = w->narrays++;
    return 0;
}

/* ---- writing voxels ----------------------------------------------------- */

static bool bits_any(const uint64_t *bits, uint64_t from, uint64_t n)
{
    while (n > 0) {
        uint64_t wi = from >> 6, b = from & 63;
        uint64_t take = 64 - b < n ? 64 - b : n;
        uint64_t mask = (take == 64 ? ~UINT64_C(0) : ((UINT64_C(1) << take) - 1)) << b;
        if (bits[wi] & mask)
            return true;
        from += take;
        n -= take;
    }
    return false;
}

static void bits_set(uint64_t *bits, uint64_t from, uint64_t n)
{
    while (n > 0) {
        uint64_t wi = from >> 6, b = from & 63;
        uint64_t take = 64 - b < n ? 64 - b : n;
        uint64_t mask = (take == 64 ? ~UINT64_C(0) : ((UINT64_C(1) << take) - 1)) << b;
        bits[wi] |= mask;
        from += take;
        n -= take;
    }
}

static void pending_free(pending *p)
{
    if (p == NULL)
        return;
    free(p->buf);
    free(p->bits);
    free(p);
}

static pending *pending_new(const warray *a, uint64_t voxels)
{
    pending *p = vt__calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->buf = vt__malloc((size_t)(voxels * a->elem_size));
    p->bits = vt__calloc((size_t)((voxels + 63) / 64), 8);
    if (p->buf == NULL || p->bits == NULL) {
        pending_free(p);
        return NULL;
    }
    if (a->ent.flags & VT_ARRAY_FLAG_SPARSE) /* unwritten voxels keep the fill value */
        for (uint64_t i = 0; i < voxels; i++)
            memcpy(p->buf + i * a->elem_size, a->ent.fill, a->elem_size);
    return p;
}

/* Advance @p idx over [lo, hi) on axes 0..n-1, the last fastest; false when
 * it wraps around (every index visited). */
static bool next_index(uint64_t *idx, const uint64_t *lo, const uint64_t *hi, int n)
{
    for (int d = n - 1; d >= 0; d--) {
        if (++idx[d] < hi[d])
            return true;
        idx[d] = lo[d];
    }
    return false;
}

/* Walk the rows of the part [lo, hi) of tile @p c (extents @p ext) inside
 * box (start, size). With @p dst: copy each row of @p data there and mark it
 * in @p bits (when given). Without: return false if a row already has a
 * voxel marked in @p bits, its first voxel's coordinates in @p at. */
static bool copy_rows(const warray *a, const uint64_t *c, const uint64_t *ext, const uint64_t *lo,
                      const uint64_t *hi, const uint64_t *start, const uint64_t *size,
                      const unsigned char *data, unsigned char *dst, uint64_t *bits, uint64_t *at)
{
    int nd = a->ent.ndim;
    size_t elem_size = a->elem_size;
    uint64_t row = hi[nd - 1] - lo[nd - 1], idx[VT_MAX_DIMS];
    memcpy(idx, lo, sizeof idx);
    for (;;) {
        uint64_t toff = 0, boff = 0;
        for (int d = 0; d < nd; d++) {
            toff = toff * ext[d] + (idx[d] - c[d] * a->ent.tile[d]);
            boff = boff * size[d] + (idx[d] - start[d]);
        }
        if (dst) {
            memcpy(dst + toff * elem_size, data + boff * elem_size, (size_t)(row * elem_size));
            if (bits)
                bits_set(bits, toff, row);
        } else if (bits_any(bits, toff, row)) {
            memcpy(at, idx, sizeof idx);
            return false;
        }
        if (!next_index(idx, lo, hi, nd - 1))
            return true;
    }
}

/* Copy the part of box (start, size, data) inside tile @p t. */
static int write_into_tile(vt_writer *w, warray *a, uint64_t t, const uint64_t *start,
                           const uint64_t *size, const unsigned char *data)
{
    int nd = a->ent.ndim;
    uint64_t c[VT_MAX_DIMS], ext[VT_MAX_DIMS], lo[VT_MAX_DIMS], hi[VT_MAX_DIMS];
    vt__tile_coords(a->grid, t, c);
    uint64_t voxels = vt__tile_box(&a->ent, c, NULL, ext);
    if (a->state[t] == TILE_DONE) {
        char cs[128];
        vt__coords_text(c, nd, cs, sizeof cs);
        return fail_hard(w, VT_EINVAL, "array '%s': tile %s written again after it was complete",
                         a->ent.name, cs);
    }
    uint64_t count = 1;
    for (int d = 0; d < nd; d++) {
        uint64_t ts = c[d] * a->ent.tile[d];
        lo[d] = start[d] > ts ? start[d] : ts;
        uint64_t be = start[d] + size[d], te = ts + ext[d];
        hi[d] = be < te ? be : te;
        count *= hi[d] - lo[d];
    }
    pending *p = a->pend[t];
    if (p == NULL && count == voxels) { /* the whole tile at once: no bookkeeping */
        unsigned char *buf = vt__malloc((size_t)(voxels * a->elem_size));
        if (buf == NULL)
            return fail_hard(w, VT_ENOMEM, "out of memory for a tile buffer");
        copy_rows(a, c, ext, lo, hi, start, size, data, buf, NULL, NULL);
        return submit(w, a, t, buf);
    }
    if (p == NULL) {
        p = pending_new(a, voxels);
        if (p == NULL)
            return fail_hard(w, VT_ENOMEM, "out of memory for a tile buffer");
        a->pend[t] = p;
        a->state[t] = TILE_PENDING;
    }
    /* check that no voxel was written before, then copy */
    uint64_t at[VT_MAX_DIMS];
    if (!copy_rows(a, c, ext, lo, hi, start, size, NULL, NULL, p->bits, at)) {
        char cs[128];
        vt__coords_text(at, nd, cs, sizeof cs);
        return fail_hard(w, VT_EINVAL, "array '%s': voxels at %s written twice", a->ent.name, cs);
    }
    copy_rows(a, c, ext, lo, hi, start, size, data, p->buf, p->bits, NULL);
    p->filled += count;
    if (p->filled == voxels) {
        unsigned char *buf = p->buf;
        p->buf = NULL;
        pending_free(p);
        a->pend[t] = NULL;
        return submit(w, a, t, buf);
    }
    return 0;
}

#define ROW_TILES 64                 /* tiles filled together by write_tile_row() */
#define ROW_BYTES ((uint64_t)16 << 20) /* ... holding at most this many bytes */

/* The tiles lo..hi (at most ROW_TILES) along the last axis whose other tile
 * coordinates are @p tc, when the box covers them whole and none is started:
 * allocate them all and fill them row by row, so that each row of the box is
 * read once, front to back. (Filling one tile after the other read the box in
 * short strided pieces, and the copy ran at memory latency: half the
 * converter's main thread.) Returns 1 when done, 0 when the tiles need
 * write_into_tile(), or an error. */
static int write_tile_row(vt_writer *w, warray *a, const uint64_t *tc, uint64_t lo, uint64_t hi,
                          const uint64_t *start, const uint64_t *size, const unsigned char *data)
{
    int nd = a->ent.ndim, last = nd - 1;
    size_t elem_size = a->elem_size;
    uint64_t n = hi - lo + 1, c[VT_MAX_DIMS], ext[VT_MAX_DIMS], t0 = 0;
    memcpy(c, tc, sizeof c);
    c[last] = hi; /* the last tile: the only one that may be narrower */
    uint64_t vox = vt__tile_box(&a->ent, c, NULL, ext);
    if (n < 2 || n > ROW_TILES || n * vox * elem_size > ROW_BYTES)
        return 0;
    for (int d = 0; d < nd; d++) { /* do the tiles lie inside the box? */
        uint64_t from = (d == last ? lo : c[d]) * a->ent.tile[d];
        if (from < start[d] || c[d] * a->ent.tile[d] + ext[d] > start[d] + size[d])
            return 0;
        t0 = t0 * a->grid[d] + (d == last ? lo : c[d]);
    }
    for (uint64_t k = 0; k < n; k++)
        if (a->state[t0 + k] != TILE_UNTOUCHED)
            return 0;
    uint64_t rows = vox / ext[last];
    size_t tw = (size_t)a->ent.tile[last] * elem_size, lastw = (size_t)ext[last] * elem_size;
    unsigned char *bufs[ROW_TILES];
    for (uint64_t k = 0; k < n; k++) {
        if ((bufs[k] = vt__malloc((size_t)rows * (k + 1 < n ? tw : lastw))) == NULL) {
            while (k-- > 0)
                free(bufs[k]);
            return fail_hard(w, VT_ENOMEM, "out of memory for a tile buffer");
        }
    }
    uint64_t idx[VT_MAX_DIMS], rlo[VT_MAX_DIMS], rhi[VT_MAX_DIMS];
    for (int d = 0; d < last; d++) {
        rlo[d] = idx[d] = c[d] * a->ent.tile[d];
        rhi[d] = rlo[d] + ext[d];
    }
    size_t first = (size_t)(lo * a->ent.tile[last] - start[last]) * elem_size;
    for (uint64_t r = 0;; r++) {
        uint64_t boff = 0;
        for (int d = 0; d < last; d++)
            boff = boff * size[d] + (idx[d] - start[d]);
        const unsigned char *src = data + boff * size[last] * elem_size + first;
        for (uint64_t k = 0; k + 1 < n; k++)
            memcpy(bufs[k] + r * tw, src + k * tw, tw);
        memcpy(bufs[n - 1] + r * lastw, src + (n - 1) * tw, lastw);
        if (!next_index(idx, rlo, rhi, last))
            break;
    }
    int rc = 0;
    for (uint64_t k = 0; k < n; k++) {
        if (rc == 0)
            rc = submit(w, a, t0 + k, bufs[k]);
        else
            free(bufs[k]);
    }
    return rc ? rc : 1;
}

int vt_writer_write(vt_writer *w, int id, const uint64_t *start, const uint64_t *size,
                    const void *data)
{
    if (w == NULL || start == NULL || size == NULL || data == NULL)
        return vt__fail(w, VT_EINVAL, "vt_writer_write: NULL argument");
    if (w->state != WRITER_OPEN)
        return vt__fail_at(w, VT_ESTATE, w->path, "writer is %s", state_name(w->state));
    if (id < 0 || id >= w->narrays)
        return vt__fail_at(w, VT_EINVAL, w->path, "no array with id %d", id);
    int rc = check_worker_error(w);
    if (rc)
        return rc;
    warray *a = w->arrays[id];
    int nd = a->ent.ndim;
    uint64_t tlo[VT_MAX_DIMS], thi[VT_MAX_DIMS];
    for (int d = 0; d < nd; d++) {
        uint64_t end;
        if (size[d] == 0 || !vt__add_ok(start[d], size[d], &end) || end > a->ent.shape[d])
            return vt__fail_at(w, VT_ERANGE, w->path,
                               "array '%s': box [%llu, +%llu) on axis %d is empty or outside the shape %llu",
                               a->ent.name, (unsigned long long)start[d], (unsigned long long)size[d], d,
                               (unsigned long long)a->ent.shape[d]);
        tlo[d] = start[d] / a->ent.tile[d];
        thi[d] = (end - 1) / a->ent.tile[d];
    }
    uint64_t tc[VT_MAX_DIMS];
    memcpy(tc, tlo, sizeof tc);
    for (;;) {
        if ((tc[nd - 1] - tlo[nd - 1]) % ROW_TILES == 0) {
            uint64_t hi = thi[nd - 1] - tc[nd - 1] < ROW_TILES ? thi[nd - 1] : tc[nd - 1] + ROW_TILES - 1;
            rc = write_tile_row(w, a, tc, tc[nd - 1], hi, start, size, data);
            if (rc < 0) {
                w->state = WRITER_FAILED;
                return rc;
            }
            if (rc == 1)
                tc[nd - 1] = hi;
        }
        if (rc != 1) {
            uint64_t t = vt__tile_number(a->grid, tc, nd);
            rc = write_into_tile(w, a, t, start, size, data);
            if (rc) {
                w->state = WRITER_FAILED;
                return rc;
            }
        }
        rc = 0;
        int d = nd - 1;
        for (; d >= 0; d--) {
            if (++tc[d] <= thi[d])
                break;
            tc[d] = tlo[d];
        }
        if (d < 0)
            break;
    }
    return 0;
}

/* ---- metadata ----------------------------------------------------------- */

int vt_writer_set_meta(vt_writer *w, const char *key, vt_meta_type type, const void *data,
                       size_t count)
{
    if (w == NULL || key == NULL || (data == NULL && count > 0))
        return vt__fail(w, VT_EINVAL, "vt_writer_set_meta: NULL argument");
    if (w->state != WRITER_OPEN)
        return vt__fail_at(w, VT_ESTATE, w->path, "writer is %s", state_name(w->state));
    size_t klen = strlen(key);
    if (klen == 0 || klen > VT_KEY_MAX)
        return vt__fail_at(w, VT_EINVAL, w->path, "metadata key must be 1..%d bytes", VT_KEY_MAX);
    if (type < VT_META_BYTES || type > VT_META_I64)
        return vt__fail_at(w, VT_EINVAL, w->path, "metadata '%s': invalid type %d", key, (int)type);
    if (type == VT_META_STRING && count > 0 && memchr(data, 0, count) != NULL)
        return vt__fail_at(w, VT_EINVAL, w->path, "metadata '%s': string contains a NUL byte", key);
    size_t elem_size = vt__meta_type_size(type);
    if (count > (SIZE_MAX - 8) / elem_size)
        return vt__fail_at(w, VT_ERANGE, w->path, "metadata '%s': value too large", key);
    size_t nbytes = count * elem_size + (type == VT_META_STRING);
    char *k = vt__strdup(key);
    unsigned char *v = vt__malloc(nbytes ? nbytes : 1);
    if (k == NULL || v == NULL) {
        free(k);
        free(v);
        return vt__fail_at(w, VT_ENOMEM, w->path, "out of memory");
    }
    if (count)
        memcpy(v, data, count * elem_size);
    if (type == VT_META_STRING)
        v[count] = 0;
    vt_meta m = {k, type, v, nbytes};
    for (size_t i = 0; i < w->nmeta; i++)
        if (strcmp(w->meta[i].key, key) == 0) {
            free((void *)w->meta[i].key);
            free((void *)w->meta[i].data);
            w->meta[i] = m;
            return 0;
        }
    if (w->nmeta >= VT_META_MAX_ENTRIES) {
        free(k);
        free(v);
        return vt__fail_at(w, VT_ERANGE, w->path, "more than %u metadata entries", VT_META_MAX_ENTRIES);
    }
    vt_meta *nm = vt__realloc(w->meta, (w->nmeta + 1) * sizeof *nm);
    if (nm == NULL) {
        free(k);
        free(v);
        return vt__fail_at(w, VT_ENOMEM, w->path, "out of memory");
    }
    w->meta = nm;
    w->meta[w->nmeta++] = m;
    return 0;
}

/* ---- finalize ----------------------------------------------------------- */

/* Complete sparse arrays and check that every tile of every array is stored. */
static int complete_arrays(vt_writer *w)
{
    for (int i = 0; i < w->narrays; i++) {
        warray *a = w->arrays[i];
        if (!(a->ent.flags & VT_ARRAY_FLAG_SPARSE))
            continue;
        for (uint64_t t = 0; t < a->ent.ntiles; t++) {
            if (a->state[t] == TILE_PENDING) {
                unsigned char *buf = a->pend[t]->buf;
                a->pend[t]->buf = NULL;
                pending_free(a->pend[t]);
                a->pend[t] = NULL;
                int rc = submit(w, a, t, buf);
                if (rc)
                    return rc;
            } else if (a->state[t] == TILE_UNTOUCHED) {
                vt_tile_entry *e = &a->tiles[t];
                unsigned char v[8] = {0};
                memcpy(v, a->ent.fill, a->elem_size);
                e->flags = VT_TILE_CONSTANT;
                e->offset = vt__ld64(v);
                e->checksum = vt__hash(v, 8);
                e->min = e->max = vt__load_f64((vt_dtype)a->ent.dtype, v);
                if (a->hist) {
                    uint64_t c[VT_MAX_DIMS], ext[VT_MAX_DIMS];
                    vt__tile_coords(a->grid, t, c);
                    uint64_t nvox = vt__tile_box(&a->ent, c, NULL, ext);
                    a->hist[t].pairs = vt__malloc(sizeof *a->hist[t].pairs);
                    if (a->hist[t].pairs == NULL)
                        return vt__fail_at(w, VT_ENOMEM, w->path, "out of memory for the label index");
                    a->hist[t].pairs[0] = (vt_label_pair){(int64_t)e->min, nvox};
                    a->hist[t].n = 1;
                }
                a->state[t] = TILE_DONE;
                a->done++;
            }
        }
    }
    wait_idle(w);
    int rc = check_worker_error(w);
    if (rc)
        return rc;
    for (int i = 0; i < w->narrays; i++) {
        warray *a = w->arrays[i];
        if (a->done == a->ent.ntiles)
            continue;
        uint64_t t = 0;
        while (a->state[t] == TILE_DONE)
            t++;
        uint64_t c[VT_MAX_DIMS];
        char cs[128];
        vt__tile_coords(a->grid, t, c);
        vt__coords_text(c, a->ent.ndim, cs, sizeof cs);
        return vt__fail_at(w, VT_EINVAL, w->path,
                           "array '%s': %llu of %llu tiles not completely written (first: tile %s)",
                           a->ent.name, (unsigned long long)(a->ent.ntiles - a->done),
                           (unsigned long long)a->ent.ntiles, cs);
    }
    return 0;
}

static int write_block(vt_writer *w, const void *buf, size_t len, uint64_t off)
{
    int r = vt__pwrite_all(w->tf.fd, buf, len, off);
    if (r < 0)
        return vt__fail_at(w, vt__errno_code(-r), w->path, "cannot write: %s", strerror(-r));
    return 0;
}

enum { BLOCK_LABELS, BLOCK_INDEX, BLOCK_DIR, BLOCK_META };

/* Encode one of the blocks that follow the tiles -- a label index or tile
 * index (of @p a), the directory or the metadata -- write it at *off (8-byte
 * aligned), record where it went and its checksum, and advance *off. */
static int put_block(vt_writer *w, int kind, const warray *a, uint64_t *off, uint64_t *where,
                     uint64_t *size, uint64_t *sum)
{
    unsigned char *buf = NULL;
    size_t n;
    if (kind == BLOCK_LABELS) {
        if (vt__label_block(a->hist, a->ent.ntiles, &buf, &n) != 0)
            return vt__fail_at(w, VT_ENOMEM, w->path, "out of memory for the label index");
    } else {
        n = kind == BLOCK_INDEX ? (size_t)a->ent.index_size
            : kind == BLOCK_DIR ? (size_t)w->narrays * VT_DIRENT_SIZE
                                : (size_t)vt__meta_encoded_size(w->meta, w->nmeta);
        if ((buf = vt__malloc(n)) == NULL)
            return vt__fail_at(w, VT_ENOMEM, w->path, "out of memory for a %zu-byte block", n);
        if (kind == BLOCK_INDEX)
            for (uint64_t t = 0; t < a->ent.ntiles; t++)
                vt__tile_encode(&a->tiles[t], buf + t * VT_TILE_ENTRY_SIZE);
        else if (kind == BLOCK_DIR)
            for (int i = 0; i < w->narrays; i++)
                vt__dirent_encode(&w->arrays[i]->ent, buf + (size_t)i * VT_DIRENT_SIZE);
        else
            vt__meta_encode(w->meta, w->nmeta, buf);
    }
    *where = *off;
    *size = n;
    *sum = vt__hash(buf, n);
    int rc = write_block(w, buf, n, *off);
    free(buf);
    *off += (n + 7u) & ~(size_t)7;
    return rc;
}

int vt_writer_finalize(vt_writer *w)
{
    if (w == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_writer_finalize: NULL writer");
    if (w->state != WRITER_OPEN)
        return vt__fail_at(w, VT_ESTATE, w->path, "writer is %s", state_name(w->state));
    if (w->narrays == 0)
        return fail_hard(w, VT_EINVAL, "store has no arrays");
    int rc = complete_arrays(w);
    if (rc) {
        w->state = WRITER_FAILED;
        return rc;
    }
    /* the workers write their last batches as they exit */
    stop_workers(w);
    if (w->err) {
        w->state = WRITER_FAILED;
        return vt__fail(w, w->err, "%s", w->errmsg);
    }
    rc = flush_batch(w, &w->inline_scratch);
    if (rc == 0)
        rc = window_write(w, w->win, (size_t)(w->end - w->win_off), w->win_off);
    if (rc) {
        w->state = WRITER_FAILED;
        return rc;
    }

    uint64_t off = (w->end + 7u) & ~UINT64_C(7);
    vt_hdr h;
    memset(&h, 0, sizeof h);
    for (int i = 0; i < w->narrays && rc == 0; i++) {
        vt_dirent *e = &w->arrays[i]->ent;
        if (w->arrays[i]->hist)
            rc = put_block(w, BLOCK_LABELS, w->arrays[i], &off, &e->labels_offset, &e->labels_size,
                           &e->labels_checksum);
    }
    for (int i = 0; i < w->narrays && rc == 0; i++) {
        uint64_t size;
        rc = put_block(w, BLOCK_INDEX, w->arrays[i], &off, &w->arrays[i]->ent.index_offset, &size,
                       &w->arrays[i]->ent.index_checksum);
    }
    if (rc == 0)
        rc = put_block(w, BLOCK_DIR, NULL, &off, &h.dir_offset, &h.dir_size, &h.dir_checksum);
    if (rc == 0)
        rc = put_block(w, BLOCK_META, NULL, &off, &h.meta_offset, &h.meta_size, &h.meta_checksum);
    if (rc == 0) {
        unsigned char hb[VT_HEADER_SIZE];
        h.version = VT_FORMAT_VERSION;
        h.flags = VT_HDR_FLAG_COMPLETE;
        h.file_size = off;
        h.narrays = (uint32_t)w->narrays;
        h.writer_version = VT_VERSION_NUMBER;
        vt__hdr_encode(&h, hb);
        rc = write_block(w, hb, sizeof hb, 0);
    }
    if (rc == 0)
        rc = vt__tmpfile_publish(&w->tf, w);
    if (w->tf.published)
        w->state = WRITER_FINALIZED;
    else if (rc) /* not published: vt_writer_free removes the temporary */
        w->state = WRITER_FAILED;
    return rc;
}

void vt_writer_free(vt_writer *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mtx);
    w->abandon = 1;
    pthread_mutex_unlock(&w->mtx);
    stop_workers(w);
    /* jobs never taken by a worker still own their buffers */
    while (w->qlen > 0) {
        free(w->queue[w->qhead].buf);
        w->qhead = (w->qhead + 1) % w->qcap;
        w->qlen--;
    }
    vt__tmpfile_discard(&w->tf);
    for (int i = 0; i < w->narrays; i++) {
        warray *a = w->arrays[i];
        for (uint64_t t = 0; t < a->ent.ntiles; t++)
            pending_free(a->pend[t]);
        free(a->pend);
        if (a->hist)
            for (uint64_t t = 0; t < a->ent.ntiles; t++)
                free(a->hist[t].pairs);
        free(a->hist);
        free(a->state);
        free(a->tiles);
        free(a);
    }
    for (size_t i = 0; i < w->nmeta; i++) {
        free((void *)w->meta[i].key);
        free((void *)w->meta[i].data);
    }
    free(w->meta);
    free(w->arrays);
    free(w->queue);
    free(w->workers);
    free(w->win);
    for (size_t i = 0; i < w->nspare; i++)
        free(w->spare[i]);
    free(w->spare);
    scratch_free(&w->inline_scratch);
    pthread_mutex_destroy(&w->mtx);
    pthread_cond_destroy(&w->cv_job);
    pthread_cond_destroy(&w->cv_space);
    pthread_cond_destroy(&w->cv_idle);
    free(w->path);
    free(w);
}

const char *vt_writer_errmsg(const vt_writer *w) { return vt__errmsg(w); }
