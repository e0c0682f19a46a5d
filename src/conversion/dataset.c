/* vt_dataset_*: an nnU-Net raw dataset folder, one store per case -- the
 * per-case work of `voxtile convert-dataset` and of the Python package's
 * voxtile.dask.convert_dataset, in one place so that both make the same
 * stores.
 *
 * Opening a dataset reads dataset.json (the channel count and the file
 * ending) and lists imagesTr, then imagesTs: the files CASE_XXXX<ending>
 * grouped by CASE, each case with its label file labelsTr/CASE<ending> when
 * there is one. A case is converted unless its store opens and was made with
 * the same options (its "convert.options" metadata): a rerun resumes. */
#include "convert.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct dcase {
    char *id;
    char **chan; /* ds->nchan paths, NULL where a channel is missing */
    char *label;
    int test;    /* a case of imagesTs */
} dcase;

struct vt_dataset {
    char *raw;      /* the folder, as given */
    char *json;     /* dataset.json's text (copied to the output) */
    size_t json_len;
    char *ending;   /* "file_ending", default ".nii.gz" */
    size_t nchan;
    dcase *cases;   /* imagesTr's sorted by name, then imagesTs' */
    size_t ncases, cap;
};

/* ---- dataset.json --------------------------------------------------------- */

/* The string value of "key" in JSON text (first occurrence), malloc'd in
 * *value, or NULL when there is none. */
static int json_string_value(const char *text, const char *key, const char *path, char **value)
{
    char pat[256];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    *value = NULL;
    const char *p = strstr(text, pat);
    if (p == NULL)
        return 0;
    p += strlen(pat);
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ':')
        p++;
    if (*p != '"')
        return 0;
    const char *e = strchr(p + 1, '"');
    if (e && (*value = vt__strndup(p + 1, (size_t)(e - p - 1))) == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
    return 0;
}

/* Members of the object value of "key" in JSON text, or -1. */
static int json_object_size(const char *text, const char *key)
{
    char pat[256];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(text, pat);
    if (p == NULL)
        return -1;
    p += strlen(pat);
    while (*p && *p != '{' && *p != '[' && *p != '"' && !(*p >= '0' && *p <= '9'))
        p++;
    if (*p != '{')
        return -1;
    int depth = 0, n = 0;
    bool str = false, any = false;
    for (; *p; p++) {
        if (str) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                str = false;
            continue;
        }
        if (*p == '"')
            str = true;
        if (*p == '{' || *p == '[')
            depth++;
        else if (*p == '}' || *p == ']') {
            if (--depth == 0)
                return any ? n + 1 : 0;
        } else if (depth == 1 && *p == ',')
            n++;
        if (depth == 1 && *p == ':')
            any = true;
    }
    return -1;
}

/* ---- listing the cases ------------------------------------------------------ */

/* "a/b" (malloc'd, NULL when out of memory); @p c may be NULL. */
static char *join(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + (c ? strlen(c) : 0) + 2;
    char *s = vt__malloc(n);
    if (s)
        snprintf(s, n, "%s/%s%s", a, b, c ? c : "");
    return s;
}

/* One file of an images folder: case id and channel. */
typedef struct entry {
    char *id;
    char *name;
    int ch;
} entry;

static int cmp_entry(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->ch > y->ch) - (x->ch < y->ch);
}

int vt_nnunet_channel(const char *name, size_t stem_len, size_t *case_len, int *channel)
{
    if (name == NULL || stem_len < 5 || name[stem_len - 5] != '_')
        return 0;
    int ch = 0;
    for (size_t i = stem_len - 4; i < stem_len; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        ch = ch * 10 + (name[i] - '0');
    }
    if (case_len)
        *case_len = stem_len - 5;
    if (channel)
        *channel = ch;
    return 1;
}

/* The channel files of folder @p dir: its CASE_XXXX<ending> names, sorted by case and channel. */
static int list_entries(const vt_dataset *ds, const char *dir, entry **out, size_t *n)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return errno == ENOENT ? 0 : vt__fail_at(NULL, vt__errno_code(errno), ds->raw,
                                                 "cannot list the cases: %s", strerror(errno));
    size_t el = strlen(ds->ending), cap = 0;
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (errno = 0, e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name), idlen;
        int ch;
        if (!vt__ends_with(e->d_name, ds->ending) || !vt_nnunet_channel(e->d_name, len - el, &idlen, &ch) ||
            (size_t)ch >= ds->nchan)
            continue;
        if (vt__grow_items(out, &cap, *n, sizeof **out, 64)) {
            rc = vt__fail_at(NULL, VT_ENOMEM, dir, "out of memory");
            break;
        }
        entry *en = &(*out)[(*n)++];
        en->ch = ch;
        en->id = vt__strndup(e->d_name, idlen);
        en->name = join(dir, e->d_name, NULL);
        if (en->id == NULL || en->name == NULL)
            rc = vt__fail_at(NULL, VT_ENOMEM, dir, "out of memory");
    }
    if (rc == 0 && errno != 0)
        rc = vt__fail_at(NULL, vt__errno_code(errno), ds->raw, "cannot list the cases: %s", strerror(errno));
    closedir(d);
    if (rc == 0)
        qsort(*out, *n, sizeof **out, cmp_entry);
    return rc;
}

/* A new case (zeroed, counted) at the end of ds->cases. */
static dcase *add_case(vt_dataset *ds)
{
    if (vt__grow_items(&ds->cases, &ds->cap, ds->ncases, sizeof *ds->cases, 64))
        return NULL;
    dcase *c = &ds->cases[ds->ncases++];
    memset(c, 0, sizeof *c);
    return c;
}

/* The cases of RAW/@p sub, each with its label file in RAW/labelsTr when @p test is 0. */
static int list_cases(vt_dataset *ds, const char *sub, int test)
{
    char *dir = join(ds->raw, sub, NULL), *labels = join(ds->raw, "labelsTr", NULL);
    entry *en = NULL;
    size_t n = 0;
    int rc = dir && labels ? list_entries(ds, dir, &en, &n) : vt__fail_at(NULL, VT_ENOMEM, ds->raw, "out of memory");
    dcase *c = NULL;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0 && (c == NULL || strcmp(c->id, en[i].id) != 0)) {
            if ((c = add_case(ds)) == NULL || (c->chan = vt__calloc(ds->nchan, sizeof *c->chan)) == NULL)
                rc = vt__fail_at(NULL, VT_ENOMEM, dir, "out of memory");
            else {
                c->id = en[i].id;
                en[i].id = NULL;
                c->test = test;
                char *lp = test ? NULL : join(labels, c->id, ds->ending);
                if (!test && lp == NULL)
                    rc = vt__fail_at(NULL, VT_ENOMEM, dir, "out of memory");
                else if (lp && access(lp, R_OK) == 0)
                    c->label = lp;
                else
                    free(lp);
            }
        }
        if (rc == 0) { /* the entries of one case come together, by channel */
            c->chan[en[i].ch] = en[i].name;
            en[i].name = NULL;
        }
        free(en[i].id);
        free(en[i].name);
    }
    free(en);
    free(dir);
    free(labels);
    return rc;
}

int vt_dataset_open(const char *raw_dir, vt_dataset **out)
{
    if (out)
        *out = NULL;
    if (raw_dir == NULL || out == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_dataset_open: a folder and an output handle must be given");
    vt_dataset *ds = vt__calloc(1, sizeof *ds);
    char *path = join(raw_dir, "dataset.json", NULL);
    if (ds == NULL || path == NULL || (ds->raw = vt__strdup(raw_dir)) == NULL) {
        free(path);
        vt_dataset_close(ds);
        return vt__fail_at(NULL, VT_ENOMEM, raw_dir, "out of memory");
    }
    int rc = vt__read_text(path, (uint64_t)1 << 30, &ds->json, &ds->json_len); /* dataset.json */
    if (rc == 0)
        rc = json_string_value(ds->json, "file_ending", path, &ds->ending);
    if (rc == 0 && ds->ending == NULL && (ds->ending = vt__strdup(".nii.gz")) == NULL)
        rc = vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
    if (rc == 0) {
        int nchan = json_object_size(ds->json, "channel_names");
        if (nchan < 0)
            nchan = json_object_size(ds->json, "modality"); /* nnU-Net v1 */
        if (nchan <= 0)
            rc = vt__fail_at(NULL, VT_EFORMAT, path, "no \"channel_names\" (or \"modality\") object");
        ds->nchan = nchan > 0 ? (size_t)nchan : 0;
    }
    free(path);
    if (rc == 0)
        rc = list_cases(ds, "imagesTr", 0);
    if (rc == 0)
        rc = list_cases(ds, "imagesTs", 1);
    if (rc) {
        vt_dataset_close(ds);
        return rc;
    }
    *out = ds;
    return 0;
}

void vt_dataset_close(vt_dataset *ds)
{
    if (ds == NULL)
        return;
    for (size_t i = 0; i < ds->ncases; i++) {
        dcase *c = &ds->cases[i];
        for (size_t ch = 0; c->chan && ch < ds->nchan; ch++)
            free(c->chan[ch]);
        free(c->chan);
        free(c->id);
        free(c->label);
    }
    free(ds->cases);
    free(ds->raw);
    free(ds->json);
    free(ds->ending);
    free(ds);
}

size_t vt_dataset_ncases(const vt_dataset *ds) { return ds ? ds->ncases : 0; }

static int bad_case(const vt_dataset *ds, size_t i, const char *fn)
{
    if (ds == NULL)
        return vt__fail(NULL, VT_EINVAL, "%s: no dataset", fn);
    return vt__fail_at(NULL, VT_EINVAL, ds->raw, "%s: case %zu of %zu", fn, i, ds->ncases);
}

int vt_dataset_case(const vt_dataset *ds, size_t i, vt_dataset_case_info *info)
{
    if (ds == NULL || i >= ds->ncases || info == NULL)
        return bad_case(ds, i, "vt_dataset_case");
    const dcase *c = &ds->cases[i];
    info->id = c->id;
    info->images = (const char *const *)c->chan;
    info->nimages = ds->nchan;
    info->seg = c->label;
    info->test = c->test;
    return 0;
}

/* ---- the output ------------------------------------------------------------- */

int vt_dataset_store_path(const vt_dataset *ds, size_t i, const char *out_dir, char *buf, size_t len)
{
    if (ds == NULL || i >= ds->ncases || out_dir == NULL)
        return bad_case(ds, i, "vt_dataset_store_path");
    const dcase *c = &ds->cases[i];
    return snprintf(buf, len, "%s/%s%s.vxt", out_dir, c->test ? "imagesTs/" : "", c->id);
}

/* The store path of case @p i, malloc'd, or NULL (the failure recorded). */
static char *store_path(const vt_dataset *ds, size_t i, const char *out_dir)
{
    int n = vt_dataset_store_path(ds, i, out_dir, NULL, 0);
    char *p = n < 0 ? NULL : vt__malloc((size_t)n + 1);
    if (p)
        vt_dataset_store_path(ds, i, out_dir, p, (size_t)n + 1);
    else if (n >= 0)
        vt__fail_at(NULL, VT_ENOMEM, out_dir, "out of memory");
    return p;
}

/* mkdir -p @p path. */
static int mkdirs(const char *path)
{
    char *buf = vt__strdup(path);
    if (buf == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
    int err = 0;
    for (char *p = buf + 1; *p && err == 0; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                err = errno;
            *p = '/';
        }
    if (err == 0 && mkdir(buf, 0777) != 0 && errno != EEXIST)
        err = errno;
    free(buf);
    return err ? vt__fail_at(NULL, vt__errno_code(err), path, "cannot create: %s", strerror(err)) : 0;
}

int vt_dataset_prepare(const vt_dataset *ds, const char *out_dir)
{
    if (ds == NULL || out_dir == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_dataset_prepare: a dataset and a folder must be given");
    int rc = mkdirs(out_dir);
    if (rc == 0 && ds->ncases > 0 && ds->cases[ds->ncases - 1].test) { /* test cases come last */
        char *ts = join(out_dir, "imagesTs", NULL);
        rc = ts ? mkdirs(ts) : vt__fail_at(NULL, VT_ENOMEM, out_dir, "out of memory");
        free(ts);
    }
    if (rc)
        return rc;
    /* dataset.json, copied atomically */
    char *dst = join(out_dir, "dataset.json", NULL);
    if (dst == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, out_dir, "out of memory");
    vt_tmpfile t;
    rc = vt__tmpfile_open(&t, dst, NULL);
    if (rc == 0) {
        int err = vt__pwrite_all(t.fd, ds->json, ds->json_len, 0);
        rc = err ? vt__fail_at(NULL, vt__errno_code(-err), dst, "cannot write: %s", strerror(-err))
                 : vt__tmpfile_publish(&t, NULL);
    }
    vt__tmpfile_discard(&t);
    free(dst);
    return rc;
}

/* The status of the store at @p path for options @p o. */
static int status_of(const char *path, const vt_convert_opts *o, vt_case_status *status)
{
    *status = VT_CASE_MISSING;
    vt_store *st;
    if (vt_open(path, 0, &st) != 0)
        return 0; /* none, or one that does not open: converted (again) */
    int n = vt_convert_opts_string(o, NULL, 0);
    char *how = vt__malloc((size_t)n + 1);
    if (how == NULL) {
        vt_close(st);
        return vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
    }
    vt_convert_opts_string(o, how, (size_t)n + 1);
    vt_meta_type t;
    const void *v;
    size_t len;
    bool same = vt_meta_get(st, "convert.options", &t, &v, &len) == 0 && t == VT_META_STRING &&
                len == (size_t)n && memcmp(v, how, len) == 0;
    free(how);
    vt_close(st);
    *status = same ? VT_CASE_UP_TO_DATE : VT_CASE_OUTDATED;
    return 0;
}

int vt_dataset_case_status(const vt_dataset *ds, size_t i, const char *out_dir, const vt_convert_opts *opts,
                           vt_case_status *status)
{
    if (ds == NULL || i >= ds->ncases || out_dir == NULL || status == NULL)
        return bad_case(ds, i, "vt_dataset_case_status");
    vt_convert_opts def;
    if (opts == NULL) {
        vt_convert_opts_init(&def);
        opts = &def;
    }
    char *path = store_path(ds, i, out_dir);
    if (path == NULL)
        return VT_ENOMEM;
    int rc = status_of(path, opts, status);
    free(path);
    return rc;
}

/* The file channel @p ch of case @p c would have. */
static int missing_channel(const vt_dataset *ds, const dcase *c, size_t ch)
{
    char name[64];
    snprintf(name, sizeof name, "_%04zu", ch);
    size_t n = strlen(ds->raw) + strlen(c->id) + strlen(name) + strlen(ds->ending) + 16;
    char *p = vt__malloc(n);
    if (p == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, ds->raw, "out of memory");
    snprintf(p, n, "%s/%s/%s%s%s", ds->raw, c->test ? "imagesTs" : "imagesTr", c->id, name, ds->ending);
    int rc = vt__fail_at(NULL, VT_EIO, p, "channel %04zu of case %s is missing", ch, c->id);
    free(p);
    return rc;
}

int vt_dataset_convert_case(const vt_dataset *ds, size_t i, const char *out_dir, const vt_convert_opts *opts,
                            vt_case_status *status)
{
    vt_case_status dummy;
    if (status == NULL)
        status = &dummy;
    int rc = vt_dataset_case_status(ds, i, out_dir, opts, status);
    if (rc || *status == VT_CASE_UP_TO_DATE)
        return rc;
    const dcase *c = &ds->cases[i];
    for (size_t ch = 0; ch < ds->nchan; ch++)
        if (c->chan[ch] == NULL)
            return missing_channel(ds, c, ch);
    char *path = store_path(ds, i, out_dir);
    if (path == NULL)
        return VT_ENOMEM;
    char *slash = strrchr(path, '/'); /* the store's folder, made when missing */
    if (slash > path) {
        *slash = 0;
        rc = mkdirs(path);
        *slash = '/';
    }
    if (rc == 0)
        rc = vt_convert_images((const char *const *)c->chan, ds->nchan, c->label, path, opts);
    free(path);
    return rc;
}
