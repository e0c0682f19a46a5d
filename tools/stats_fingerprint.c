/* voxtile stats DATASET --fingerprint: nnU-Net's dataset fingerprint of a raw
 * dataset folder (imagesTr/CASE_XXXX<ending> + labelsTr/CASE<ending>), the
 * cases read by N threads into one vt_fingerprint, printed as a table or as
 * JSON, and written to a file. */
#include "cli.h"
#include "voxtile_convert.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct fcase {
    char *id;
    char **chan;   /* channel files by number (NULL: missing) */
    int nchan;
    char *label;
} fcase;

typedef struct dataset {
    fcase *v;
    size_t n;
    int nchan;     /* channels: the largest number found + 1 */
} dataset;

static void dataset_free(dataset *d)
{
    for (size_t i = 0; i < d->n; i++) {
        for (int c = 0; c < d->v[i].nchan; c++)
            free(d->v[i].chan[c]);
        free(d->v[i].chan);
        free(d->v[i].id);
        free(d->v[i].label);
    }
    free(d->v);
}

static int cmp_fcase(const void *a, const void *b) { return strcmp(((const fcase *)a)->id, ((const fcase *)b)->id); }

static char *join(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s%s", a, b, c);
    return s;
}

/* One channel file imagesTr/NAME of case CASE (NAME = CASE_XXXX<ending>). */
static int add_file(dataset *d, const char *images, const char *labels, const char *name)
{
    size_t ending, idlen;
    int ch;
    if (vt_image_format(name, NULL, &ending) != VT_IMAGE_FILE ||
        !nnunet_channel(name, strlen(name) - ending, &idlen, &ch))
        return 0;
    fcase *k = NULL;
    for (size_t i = 0; i < d->n && k == NULL; i++)
        if (strlen(d->v[i].id) == idlen && strncmp(d->v[i].id, name, idlen) == 0)
            k = &d->v[i];
    if (k == NULL) {
        fcase *v = realloc(d->v, (d->n + 1) * sizeof *v);
        if (v == NULL)
            return -1;
        d->v = v;
        k = &v[d->n++];
        memset(k, 0, sizeof *k);
        k->id = strndup(name, idlen);
        char *lab = k->id ? join(labels, "/", k->id) : NULL;
        k->label = lab ? join(lab, name + strlen(name) - ending, "") : NULL;
        free(lab);
        if (k->label == NULL)
            return -1;
    }
    if (ch >= k->nchan) {
        char **c = realloc(k->chan, (size_t)(ch + 1) * sizeof *c);
        if (c == NULL)
            return -1;
        memset(c + k->nchan, 0, (size_t)(ch + 1 - k->nchan) * sizeof *c);
        k->chan = c;
        k->nchan = ch + 1;
    }
    if (k->chan[ch] == NULL && (k->chan[ch] = join(images, "/", name)) == NULL)
        return -1;
    if (ch + 1 > d->nchan)
        d->nchan = ch + 1;
    return 0;
}

/* The training cases of a raw dataset folder: every case with every channel
 * and its label, or an error naming what is missing. */
static int list_dataset(const char *root, dataset *d)
{
    char *images = join(root, "/imagesTr", ""), *labels = join(root, "/labelsTr", "");
    int rc = 1;
    DIR *dir = images ? opendir(images) : NULL;
    if (images == NULL || labels == NULL) {
        rc = file_error(root, "out of memory");
    } else if (dir == NULL) {
        rc = file_error(images, "cannot open: %s (a raw dataset folder has imagesTr/CASE_0000.nii.gz ... and "
                                "labelsTr/CASE.nii.gz ...)", strerror(errno));
    } else {
        struct dirent *e;
        rc = 0;
        while (rc == 0 && (e = readdir(dir)) != NULL)
            if (e->d_name[0] != '.' && add_file(d, images, labels, e->d_name) != 0)
                rc = file_error(images, "out of memory");
        closedir(dir);
    }
    if (rc == 0 && d->n == 0)
        rc = file_error(images, "no images named CASE_XXXX with an image ending (.nii.gz, .nrrd, .mha ...)");
    if (rc == 0)
        qsort(d->v, d->n, sizeof *d->v, cmp_fcase);
    for (size_t i = 0; i < d->n && rc == 0; i++) {
        fcase *k = &d->v[i];
        for (int c = 0; c < d->nchan && rc == 0; c++)
            if (c >= k->nchan || k->chan[c] == NULL)
                rc = file_error(images, "case %s has no channel %04d (other cases have %d channel%s)", k->id, c,
                                d->nchan, d->nchan == 1 ? "" : "s");
        if (rc == 0 && access(k->label, R_OK) != 0)
            rc = file_error(k->label, "cannot read the label of case %s: %s", k->id, strerror(errno));
    }
    free(images);
    free(labels);
    return rc;
}

/* The cases, read by several threads into one fingerprint. */
typedef struct work {
    dataset *d;
    vt_fingerprint *fp;
    pthread_mutex_t lock;
    size_t next, done, failed;
    bool progress;
} work;

static void *worker(void *arg)
{
    work *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        size_t i = w->failed ? w->d->n : w->next++;
        pthread_mutex_unlock(&w->lock);
        if (i >= w->d->n)
            return NULL;
        fcase *k = &w->d->v[i];
        int rc = vt_fingerprint_add_case(w->fp, (const char *const *)k->chan, (size_t)w->d->nchan, k->label, NULL);
        pthread_mutex_lock(&w->lock);
        if (rc) {
            fprintf(stderr, "%svoxtile: %s\n", w->progress ? "\n" : "", vt_errmsg(NULL));
            w->failed++;
        } else {
            w->done++;
        }
        if (w->progress)
            fprintf(stderr, "\r%zu of %zu cases", w->done, w->d->n);
        pthread_mutex_unlock(&w->lock);
    }
}

static int read_cases(dataset *d, vt_fingerprint *fp, int jobs)
{
    work w = {.d = d, .fp = fp, .progress = isatty(STDERR_FILENO) != 0};
    pthread_mutex_init(&w.lock, NULL);
    if ((size_t)jobs > d->n)
        jobs = (int)d->n;
    pthread_t *t = calloc((size_t)jobs, sizeof *t);
    int started = 0;
    for (; t && started < jobs; started++)
        if (pthread_create(&t[started], NULL, worker, &w) != 0)
            break;
    if (started == 0) /* no thread: this one */
        worker(&w);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    free(t);
    pthread_mutex_destroy(&w.lock);
    if (w.progress)
        fputc('\n', stderr);
    return w.failed ? 1 : 0;
}

static const char *axis_name(int a) { return a == 0 ? "z" : a == 1 ? "y" : "x"; }

/* Why nnU-Net's anisotropy rule fired or not, in words. */
static void print_rule(const vt_fingerprint_summary *s)
{
    int w = s->lowres_axis;
    bool spacing = s->median_spacing[w] > 3 * s->others_max_spacing;
    bool voxels = s->median_shape[w] * 3 < s->others_min_shape;
    printf("  nnU-Net's anisotropy rule %s: the largest median spacing, %s's %.6g mm, is %s 3 x %.6g mm, and its "
           "median size %.6g x 3 is %s %.6g voxels\n",
           s->anisotropic_axis >= 0 ? "fired" : "did not fire", axis_name(w), s->median_spacing[w],
           spacing ? "more than" : "not more than", s->others_max_spacing, s->median_shape[w],
           voxels ? "less than" : "not less than", s->others_min_shape);
    if (s->anisotropic_axis >= 0)
        printf("  so %s takes the 10th percentile of its spacings (at least the others' largest + 1e-5 mm)\n",
               axis_name(s->anisotropic_axis));
}

static void print_text(const char *root, vt_fingerprint *fp)
{
    vt_fingerprint_summary s;
    if (vt_fingerprint_summary_get(fp, &s) != 0)
        return;
    printf("%s: fingerprint of %llu case%s, %llu channel%s; the foreground is label > 0 inside the nonzero box, "
           "every voxel counted\n\n",
           root, (unsigned long long)s.cases, s.cases == 1 ? "" : "s", (unsigned long long)s.channels,
           s.channels == 1 ? "" : "s");
    printf("%-8s %12s %8s %11s %11s %11s %11s %11s %11s %11s  %s\n", "channel", "voxels", "NaN", "mean", "std",
           "min", "p0.5", "median", "p99.5", "max", "percentiles");
    for (uint64_t c = 0; c < s.channels; c++) {
        vt_fingerprint_stats o;
        if (vt_fingerprint_channel(fp, (size_t)c, &o) != 0)
            return;
        char how[64];
        if (o.percentile_error == 0)
            snprintf(how, sizeof how, "exact");
        else
            snprintf(how, sizeof how, "within %.3g", o.percentile_error);
        printf("%-8llu %12llu %8llu %11.6g %11.6g %11.6g %11.6g %11.6g %11.6g %11.6g  %s\n", (unsigned long long)c,
               (unsigned long long)o.count, (unsigned long long)o.nan_count, o.mean, o.std, o.min,
               o.percentile_00_5, o.median, o.percentile_99_5, o.max, how);
    }
    double lo[6], hi[6];
    for (int a = 0; a < 6; a++)
        lo[a] = INFINITY, hi[a] = -INFINITY;
    for (size_t i = 0; i < s.cases; i++) {
        vt_fingerprint_case k;
        if (vt_fingerprint_case_get(fp, i, &k) != 0)
            return;
        for (int a = 0; a < 3; a++) {
            lo[a] = fmin(lo[a], k.spacing[a]), hi[a] = fmax(hi[a], k.spacing[a]);
            lo[a + 3] = fmin(lo[a + 3], (double)k.shape_after_crop[a]);
            hi[a + 3] = fmax(hi[a + 3], (double)k.shape_after_crop[a]);
        }
    }
    printf("\n%-24s %11s %11s %11s\n", "", "median", "min", "max");
    for (int a = 0; a < 6; a++) {
        char label[32];
        snprintf(label, sizeof label, a < 3 ? "spacing %s (mm)" : "shape after crop %s", axis_name(a % 3));
        printf("%-24s %11.6g %11.6g %11.6g\n", label, a < 3 ? s.median_spacing[a] : s.median_shape[a - 3], lo[a],
               hi[a]);
    }
    printf("median relative size after cropping: %.6g\n", s.median_relative_size_after_cropping);
    printf("\ntarget spacing (z, y, x): %.6g, %.6g, %.6g mm\n", s.target_spacing[0], s.target_spacing[1],
           s.target_spacing[2]);
    print_rule(&s);
}

int stats_fingerprint(const char *root, bool json, const char *out, int jobs)
{
    dataset d = {0};
    vt_fingerprint *fp = NULL;
    int status = list_dataset(root, &d);
    if (status == 0 && vt_fingerprint_new(&fp) != 0)
        status = lib_error(vt_errmsg(NULL), VT_ENOMEM);
    if (status == 0)
        status = read_cases(&d, fp, jobs);
    if (status == 0 && out && vt_fingerprint_save(fp, out) != 0)
        status = lib_error(vt_errmsg(NULL), VT_EIO);
    if (status == 0 && json) {
        long long n = vt_fingerprint_json(fp, NULL, 0);
        char *text = n >= 0 ? malloc((size_t)n + 1) : NULL;
        if (text && vt_fingerprint_json(fp, text, (size_t)n + 1) == n)
            fputs(text, stdout);
        else
            status = lib_error("out of memory", VT_ENOMEM);
        free(text);
    } else if (status == 0) {
        print_text(root, fp);
    }
    vt_fingerprint_free(fp);
    dataset_free(&d);
    return status;
}
