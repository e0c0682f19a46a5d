/* voxtile convert-dataset: an nnU-Net raw dataset folder, one store per
 * case, cases converted in parallel processes. */
#include "cli.h"
#include "store_options.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char dataset_help[] =
    "usage: voxtile convert-dataset RAW_DIR -o OUT_DIR [-j N] [store options]\n"
    "\n"
    "Convert an nnU-Net raw dataset folder (dataset.json, imagesTr/CASE_XXXX.nii.gz,\n"
    "labelsTr/CASE.nii.gz, optional imagesTs/) to one store per case: OUT_DIR/CASE.vxt\n"
    "(with 'seg' when a label exists) and OUT_DIR/imagesTs/CASE.vxt, plus a copy of\n"
    "dataset.json. Cases run in parallel; a rerun skips cases already converted with\n"
    "the same store options (and converts again those made with others); a failing\n"
    "case is reported and the others go on (exit status 1 if any failed).\n"
    "\n"
    "  -o, --output DIR          output folder (created)\n"
    "  -j, --jobs N              cases converted at once (default: all cores)\n"
    "  store options as for convert: --crop-nonzero, --crop-to-label [M], --levels N,\n"
    "  --dtype T, --tile Z,Y,X, --codec C, --level N, --shuffle M, --apply-scaling\n"
    "\n"
    "example: voxtile convert-dataset nnUNet_raw/Dataset001_Liver -o stores/Dataset001 -j 8 --crop-nonzero\n";

/* The string value of "key" in JSON text (first occurrence), malloc'd, or NULL. */
static char *json_string_value(const char *text, const char *key)
{
    char pat[256];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(text, pat);
    if (p == NULL)
        return NULL;
    p += strlen(pat);
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ':')
        p++;
    if (*p != '"')
        return NULL;
    const char *e = strchr(p + 1, '"');
    return e ? strndup(p + 1, (size_t)(e - p - 1)) : NULL;
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

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 8192;
            char *n = realloc(buf, cap);
            if (n == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = n;
        }
        size_t k = fread(buf + len, 1, 4096, f);
        len += k;
        if (k < 4096)
            break;
    }
    fclose(f);
    buf[len] = 0;
    return buf;
}

typedef struct dcase {
    char *id;
    char **chan; /* channel files, by channel number */
    int nchan;
    char *label;
    char *out;
} dcase;

static int cmp_case(const void *a, const void *b)
{
    return strcmp(((const dcase *)a)->id, ((const dcase *)b)->id);
}

/* The cases of one images folder: CASE_XXXX<ending> grouped by CASE. */
static int list_cases(const char *dir, const char *ending, int nchan, const char *labels_dir,
                      const char *out_dir, dcase **cases, size_t *ncases)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    size_t el = strlen(ending);
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name), idlen;
        int ch;
        if (!has_suffix(e->d_name, ending) || !nnunet_channel(e->d_name, n - el, &idlen, &ch))
            continue;
        char *id = strndup(e->d_name, idlen);
        dcase *c = NULL;
        for (size_t i = 0; i < *ncases; i++)
            if (strcmp((*cases)[i].id, id) == 0 && strncmp((*cases)[i].out, out_dir, strlen(out_dir)) == 0 &&
                (*cases)[i].out[strlen(out_dir)] == '/' && strchr((*cases)[i].out + strlen(out_dir) + 1, '/') == NULL)
                c = &(*cases)[i];
        if (c == NULL) {
            dcase *nc = realloc(*cases, (*ncases + 1) * sizeof *nc);
            if (nc == NULL) {
                closedir(d);
                return -1;
            }
            *cases = nc;
            c = &nc[(*ncases)++];
            memset(c, 0, sizeof *c);
            c->id = id;
            c->nchan = nchan;
            c->chan = calloc((size_t)nchan, sizeof *c->chan);
            size_t ol = strlen(out_dir) + strlen(id) + 8;
            c->out = malloc(ol);
            snprintf(c->out, ol, "%s/%s.vxt", out_dir, id);
            if (labels_dir) {
                size_t ll = strlen(labels_dir) + strlen(id) + el + 2;
                char *lp = malloc(ll);
                snprintf(lp, ll, "%s/%s%s", labels_dir, id, ending);
                if (access(lp, R_OK) == 0)
                    c->label = lp;
                else
                    free(lp);
            }
        } else
            free(id);
        if (ch < c->nchan && c->chan[ch] == NULL) {
            size_t pl = strlen(dir) + n + 2;
            c->chan[ch] = malloc(pl);
            snprintf(c->chan[ch], pl, "%s/%s", dir, e->d_name);
        }
    }
    closedir(d);
    return 0;
}

static int mkdirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(buf, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

/* Convert one case (in a child process); 0 on success. */
static int convert_case(const dcase *c, const vt_convert_opts *o)
{
    for (int i = 0; i < c->nchan; i++)
        if (c->chan[i] == NULL) {
            fprintf(stderr, "voxtile: case %s: channel %04d is missing\n", c->id, i);
            return 1;
        }
    int rc = vt_convert_images((const char *const *)c->chan, (size_t)c->nchan, c->label, c->out, o);
    if (rc) {
        fprintf(stderr, "voxtile: case %s: %s\n", c->id, vt_errmsg(NULL));
        return 1;
    }
    return 0;
}

int cmd_convert_dataset(int argc, char **argv)
{
    static const struct option opts[] = {STORE_OPTIONS,
                                         {"output", required_argument, 0, 'o'},
                                         {"jobs", required_argument, 0, 'j'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    vt_convert_opts o;
    vt_convert_opts_init(&o);
    int jobs = online_cpus(), c, quiet = 0;
    const char *out = NULL;
    while ((c = getopt_long(argc, argv, "o:j:qh", opts, NULL)) != -1) {
        if (store_option(c, &o, argc, argv))
            continue;
        switch (c) {
        case 'o': out = optarg; break;
        case 'j': jobs = (int)parse_int("-j", optarg, 1, 1024); break;
        case 'q': quiet = 1; break;
        case 'h': fputs(dataset_help, stdout); return 0;
        default: die_usage("convert-dataset: bad option");
        }
    }
    if (optind + 1 != argc || out == NULL)
        die_usage("convert-dataset: expected RAW_DIR and -o OUT_DIR");
    const char *raw = argv[optind];
    char path[4096];
    snprintf(path, sizeof path, "%s/dataset.json", raw);
    char *json = read_text(path);
    if (json == NULL) {
        fprintf(stderr, "voxtile: %s: cannot read: %s\n", path, strerror(errno));
        return 1;
    }
    char *ending = json_string_value(json, "file_ending");
    int nchan = json_object_size(json, "channel_names");
    if (nchan < 0)
        nchan = json_object_size(json, "modality"); /* nnU-Net v1 */
    if (nchan <= 0) {
        fprintf(stderr, "voxtile: %s: no \"channel_names\" (or \"modality\") object\n", path);
        free(json);
        free(ending);
        return 1;
    }
    if (mkdirs(out) != 0) {
        fprintf(stderr, "voxtile: %s: cannot create: %s\n", out, strerror(errno));
        free(json);
        free(ending);
        return 1;
    }
    const char *end = ending ? ending : ".nii.gz";
    dcase *cases = NULL;
    size_t ncases = 0;
    char dir[4096], lab[4096], outs[4096];
    snprintf(dir, sizeof dir, "%s/imagesTr", raw);
    snprintf(lab, sizeof lab, "%s/labelsTr", raw);
    int rc = list_cases(dir, end, nchan, lab, out, &cases, &ncases);
    snprintf(dir, sizeof dir, "%s/imagesTs", raw);
    snprintf(outs, sizeof outs, "%s/imagesTs", out);
    size_t ntr = ncases;
    if (rc == 0)
        rc = list_cases(dir, end, nchan, NULL, outs, &cases, &ncases);
    if (rc == 0 && ncases > ntr && mkdirs(outs) != 0)
        rc = -1;
    qsort(cases, ntr, sizeof *cases, cmp_case);
    qsort(cases + ntr, ncases - ntr, sizeof *cases, cmp_case);
    if (rc != 0) {
        fprintf(stderr, "voxtile: %s: cannot list the cases: %s\n", raw, strerror(errno));
        free(json);
        free(ending);
        return 1;
    }
    /* dataset.json, copied atomically */
    char tmp[4200], dst[4200];
    snprintf(dst, sizeof dst, "%s/dataset.json", out);
    snprintf(tmp, sizeof tmp, "%s/.dataset.json.tmp.%d", out, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (f == NULL || fputs(json, f) < 0 || fclose(f) != 0 || rename(tmp, dst) != 0) {
        fprintf(stderr, "voxtile: %s: cannot write: %s\n", dst, strerror(errno));
        unlink(tmp);
        free(json);
        free(ending);
        return 1;
    }
    free(json);
    o.threads = 1;
    char how[512]; /* a store made with other options is converted again */
    vt_convert_opts_string(&o, how, sizeof how);
    size_t done = 0, skipped = 0, failed = 0, running = 0, next = 0, redone = 0;
    pid_t *pids = calloc(ncases ? ncases : 1, sizeof *pids);
    double t0 = now();
    while (next < ncases || running > 0) {
        while (next < ncases && running < (size_t)jobs) {
            dcase *k = &cases[next++];
            vt_store *st;
            if (vt_open(k->out, 0, &st) == 0) { /* finished by an earlier run: the same options? */
                vt_meta_type t;
                const void *v;
                size_t n;
                bool same = vt_meta_get(st, "convert.options", &t, &v, &n) == 0 && t == VT_META_STRING &&
                            n == strlen(how) && memcmp(v, how, n) == 0;
                vt_close(st);
                if (same) {
                    skipped++;
                    continue;
                }
                redone++;
            }
            fflush(NULL);
            pid_t pid = fork();
            if (pid < 0) {
                fprintf(stderr, "voxtile: cannot start a process: %s\n", strerror(errno));
                failed++;
                continue;
            }
            if (pid == 0)
                _exit(convert_case(k, &o));
            pids[next - 1] = pid;
            running++;
        }
        if (running == 0)
            break;
        int status;
        pid_t pid = wait(&status);
        if (pid < 0)
            break;
        running--;
        for (size_t i = 0; i < ncases; i++)
            if (pids[i] == pid) {
                bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
                if (!ok && !(WIFEXITED(status)))
                    fprintf(stderr, "voxtile: case %s: the converter died (signal %d)\n", cases[i].id,
                            WIFSIGNALED(status) ? WTERMSIG(status) : 0);
                if (ok)
                    done++;
                else
                    failed++;
                if (!quiet && isatty(STDERR_FILENO))
                    fprintf(stderr, "\r%zu of %zu cases", done + skipped + failed, ncases);
            }
    }
    if (!quiet && isatty(STDERR_FILENO))
        fputc('\n', stderr);
    if (!quiet)
        printf("%s: %zu cases: %zu converted (%zu again: made with other options), %zu already there, %zu failed, "
               "in %.1f s with %d jobs\n",
               out, ncases, done, redone, skipped, failed, now() - t0, jobs);
    for (size_t i = 0; i < ncases; i++) {
        for (int ch = 0; ch < cases[i].nchan; ch++)
            free(cases[i].chan[ch]);
        free(cases[i].chan);
        free(cases[i].id);
        free(cases[i].label);
        free(cases[i].out);
    }
    free(cases);
    free(pids);
    free(ending);
    return failed ? 1 : 0;
}

