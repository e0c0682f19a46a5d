/* A main for the fuzz harnesses without libFuzzer: replays inputs through
 * LLVMFuzzerTestOneInput, once each. Arguments are files or folders (every
 * regular file in a folder, recursively, in name order; names starting with
 * '.' and README* are skipped). This is what the 'fuzz-regress' test suite
 * runs on the committed corpora (tests/fuzz/corpus/<harness>/).
 *
 *   fuzz_open [-v] PATH...      -v: name each input before running it
 *
 * A harness reports a problem by crashing (abort, or a sanitizer's report);
 * the name of the input being run is printed first. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);
/* sanitizer runtimes call this before they end the process with a report */
__attribute__((weak)) void __sanitizer_set_death_callback(void (*cb)(void));

static char current[4096];
static int verbose;
static size_t ninputs;
static double slowest;
static char slowest_name[4096];

static void say_current(void)
{
    if (current[0]) {
        static const char pre[] = "\nstandalone: the failing input is ";
        ssize_t r = write(2, pre, sizeof pre - 1);
        r = write(2, current, strlen(current));
        r = write(2, "\n", 1);
        (void)r;
    }
}

static void on_signal(int sig)
{
    say_current();
    signal(sig, SIG_DFL);
    raise(sig);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "standalone: %s: %s\n", path, strerror(errno));
        return 1;
    }
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    size_t k;
    while (buf && (k = fread(buf + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            unsigned char *b2 = realloc(buf, cap * 2);
            if (b2 == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b2;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf == NULL) {
        fprintf(stderr, "standalone: %s: out of memory\n", path);
        return 1;
    }
    snprintf(current, sizeof current, "%s", path);
    if (verbose)
        fprintf(stderr, "running %s (%zu bytes)\n", path, n);
    /* an exact copy, so that ASan sees reads past the input */
    unsigned char *exact = malloc(n ? n : 1);
    memcpy(exact, buf, n);
    free(buf);
    double t0 = now();
    LLVMFuzzerTestOneInput(exact, n);
    double dt = now() - t0;
    free(exact);
    if (dt > slowest) {
        slowest = dt;
        snprintf(slowest_name, sizeof slowest_name, "%s", path);
    }
    current[0] = 0;
    ninputs++;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "standalone: %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path);
    DIR *d = opendir(path);
    if (d == NULL) {
        fprintf(stderr, "standalone: %s: %s\n", path, strerror(errno));
        return 1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strncmp(e->d_name, "README", 6) == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, cap * sizeof *names);
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char *p;
        if (asprintf(&p, "%s/%s", path, names[i]) < 0)
            return 1;
        rc |= run_path(p);
        free(p);
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    /* abort() (a harness's check) is ours to report; with a sanitizer, its own
     * handlers report crashes and call the death callback */
    signal(SIGABRT, on_signal);
    if (__sanitizer_set_death_callback)
        __sanitizer_set_death_callback(say_current);
    else {
        static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            signal(sigs[i], on_signal);
    }
    int rc = 0, npaths = 0;
    double t0 = now();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0) {
            verbose = 1;
            continue;
        }
        if (argv[i][0] == '-') /* libFuzzer flags (-runs=0 ...) are accepted and ignored */
            continue;
        npaths++;
        rc |= run_path(argv[i]);
    }
    if (npaths == 0) {
        fprintf(stderr, "usage: %s [-v] FILE_OR_FOLDER...\n", argv[0]);
        return 2;
    }
    printf("%s: %zu inputs in %.2f s", argv[0], ninputs, now() - t0);
    if (ninputs)
        printf(" (slowest %.3f s: %s)", slowest, slowest_name);
    printf("\n");
    return rc;
}
