/* voxtile verify: every structure (at open) and every tile of each store.
 *
 * Each problem is one line on stderr, "voxtile: FILE: array 'A' tile T
 * (coords): what differs", or the open error for a damaged header,
 * directory, index or metadata block; each good store one "FILE: ok (...)"
 * line on stdout; several stores end with a summary line. -j N checks N stores at once (or, for one store, N ranges
 * of its tiles); the output keeps the order of the command line. */
#include "cli.h"

#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char verify_help[] =
    "usage: voxtile verify STORE... [-j N] [-q]\n"
    "\n"
    "Check each store completely: the header, directory, tile indexes, label\n"
    "indexes and metadata (every checksum and structural rule), then every tile:\n"
    "its checksum, that it decodes to its size, its min/max in the index, and for\n"
    "label arrays the label index's voxel counts. Prints 'FILE: ok' or every\n"
    "problem (array, tile number and coordinates, what differs); with several\n"
    "stores a summary line. Exit status 1 if any store is damaged.\n"
    "\n"
    "  -j, --jobs N        stores checked at once; for one store, threads over its tiles\n"
    "                      (default: all cores)\n"
    "  -q, --quiet         print only problems and the summary\n"
    "\n"
    "example: voxtile verify stores/Dataset001/*.vxt -j 8\n";

/* One store's outcome: its lines, ready to print. */
typedef struct result {
    char *text, *err; /* for stdout, for stderr */
    size_t len, errlen;
    uint64_t tiles, bad_tiles;
    int bad; /* the store is damaged (or unreadable) */
    int done;
} result;

typedef struct job {
    char **paths;
    size_t npaths;
    int threads_per_store;
    int quiet;
    atomic_size_t next;
    result *res;
    pthread_mutex_t lock;
    pthread_cond_t cond;
} job;

/* Tiles [t0, t1) of one array, checked by one thread: problems appended to
 * its own buffer. */
typedef struct range {
    const vt_array *a;
    const vt_store *s;
    uint64_t t0, t1, bad;
    char *text;
    size_t len;
    int enomem;
} range;

static void *check_range(void *arg)
{
    range *r = arg;
    FILE *f = open_memstream(&r->text, &r->len);
    for (uint64_t t = r->t0; t < r->t1; t++) {
        int rc = vt_verify_tile(r->a, t);
        if (rc == 0)
            continue;
        if (rc == VT_ENOMEM) {
            r->enomem = 1;
            if (f)
                fprintf(f, "voxtile: %s: out of memory\n", vt_store_path(r->s));
            break;
        }
        r->bad++;
        if (f)
            fprintf(f, "voxtile: %s\n", vt_errmsg(r->s));
    }
    if (f)
        fclose(f);
    return NULL;
}

static void verify_store(const char *path, int threads, int quiet, result *res)
{
    FILE *out = open_memstream(&res->text, &res->len);
    FILE *err = open_memstream(&res->err, &res->errlen);
    if (out == NULL || err == NULL) {
        res->bad = 1;
        if (out)
            fclose(out);
        if (err)
            fclose(err);
        return;
    }
    vt_store *s;
    int rc = vt_open(path, 0, &s);
    if (rc) {
        fprintf(err, "voxtile: %s\n", vt_errmsg(NULL));
        res->bad = 1;
        fclose(out);
        fclose(err);
        return;
    }
    for (size_t k = 0; k < vt_store_narrays(s); k++) {
        const vt_array *a;
        vt_array_info ai;
        vt_store_array_at(s, k, &a);
        vt_array_info_get(a, &ai);
        res->tiles += ai.ntiles;
        int n = threads;
        if ((uint64_t)n > ai.ntiles)
            n = (int)ai.ntiles;
        if (n > 64)
            n = 64;
        if (n < 1)
            n = 1;
        range rs[64];
        pthread_t tid[64];
        bool started[64] = {false};
        for (int i = 0; i < n; i++)
            rs[i] = (range){a, s, ai.ntiles * (uint64_t)i / (uint64_t)n, ai.ntiles * (uint64_t)(i + 1) / (uint64_t)n,
                            0, NULL, 0, 0};
        for (int i = 1; i < n; i++)
            started[i] = pthread_create(&tid[i], NULL, check_range, &rs[i]) == 0;
        for (int i = 0; i < n; i++)
            if (!started[i])
                check_range(&rs[i]); /* range 0, and any whose thread did not start */
        for (int i = 1; i < n; i++)
            if (started[i])
                pthread_join(tid[i], NULL);
        for (int i = 0; i < n; i++) {
            if (rs[i].text)
                fwrite(rs[i].text, 1, rs[i].len, err);
            free(rs[i].text);
            res->bad_tiles += rs[i].bad;
            res->bad |= rs[i].bad > 0 || rs[i].enomem;
        }
    }
    if (!res->bad && !quiet)
        fprintf(out, "%s: ok (%zu array%s, %" PRIu64 " tiles)\n", path, vt_store_narrays(s),
                vt_store_narrays(s) == 1 ? "" : "s", res->tiles);
    else if (res->bad_tiles)
        fprintf(err, "voxtile: %s: %" PRIu64 " of %" PRIu64 " tiles damaged\n", path, res->bad_tiles, res->tiles);
    vt_close(s);
    fclose(out);
    fclose(err);
}

static void *worker(void *arg)
{
    job *j = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->npaths)
            return NULL;
        result r = {0};
        verify_store(j->paths[i], j->threads_per_store, j->quiet, &r);
        pthread_mutex_lock(&j->lock);
        r.done = 1;
        j->res[i] = r;
        pthread_cond_broadcast(&j->cond);
        pthread_mutex_unlock(&j->lock);
    }
}

int cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {{"jobs", required_argument, 0, 'j'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int jobs = online_cpus(), quiet = 0, c;
    while ((c = getopt_long(argc, argv, "j:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'j': jobs = (int)parse_int("-j", optarg, 1, 64); break;
        case 'q': quiet = 1; break;
        case 'h': fputs(verify_help, stdout); return 0;
        default: die_usage("verify: bad option");
        }
    }
    if (optind >= argc)
        die_usage("verify: expected at least one store");
    job j;
    memset(&j, 0, sizeof j);
    j.paths = argv + optind;
    j.npaths = (size_t)(argc - optind);
    j.quiet = quiet;
    int workers = jobs < (int)j.npaths ? jobs : (int)j.npaths;
    j.threads_per_store = j.npaths == 1 ? jobs : 1;
    atomic_init(&j.next, 0);
    j.res = calloc(j.npaths, sizeof *j.res);
    if (j.res == NULL) {
        fprintf(stderr, "voxtile: out of memory\n");
        return 1;
    }
    pthread_mutex_init(&j.lock, NULL);
    pthread_cond_init(&j.cond, NULL);
    pthread_t *tid = calloc((size_t)workers, sizeof *tid);
    int nthreads = 0;
    for (int i = 1; i < workers && tid; i++)
        if (pthread_create(&tid[nthreads], NULL, worker, &j) == 0)
            nthreads++;
    /* the main thread works too, and prints results in command-line order */
    size_t printed = 0, ok = 0;
    uint64_t bad_tiles = 0;
    while (printed < j.npaths) {
        size_t i = atomic_fetch_add(&j.next, 1);
        if (i < j.npaths) {
            result r = {0};
            verify_store(j.paths[i], j.threads_per_store, quiet, &r);
            pthread_mutex_lock(&j.lock);
            r.done = 1;
            j.res[i] = r;
            pthread_mutex_unlock(&j.lock);
        }
        pthread_mutex_lock(&j.lock);
        while (printed < j.npaths && (j.res[printed].done || i >= j.npaths)) {
            while (!j.res[printed].done)
                pthread_cond_wait(&j.cond, &j.lock);
            result *r = &j.res[printed];
            if (r->err) {
                fflush(stdout);
                fwrite(r->err, 1, r->errlen, stderr);
                fflush(stderr);
            }
            if (r->text) {
                fwrite(r->text, 1, r->len, stdout);
                fflush(stdout);
            }
            ok += !r->bad;
            bad_tiles += r->bad_tiles;
            free(r->text);
            free(r->err);
            r->text = r->err = NULL;
            printed++;
        }
        pthread_mutex_unlock(&j.lock);
    }
    for (int i = 0; i < nthreads; i++)
        pthread_join(tid[i], NULL);
    free(tid);
    if (j.npaths > 1)
        printf("%zu of %zu stores ok, %zu damaged or unreadable (%" PRIu64 " damaged tiles)\n", ok, j.npaths,
               j.npaths - ok, bad_tiles);
    pthread_cond_destroy(&j.cond);
    pthread_mutex_destroy(&j.lock);
    free(j.res);
    return ok == j.npaths ? 0 : 1;
}
