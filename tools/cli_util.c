/* Helpers shared by the commands of the voxtile CLI. */
#include "cli.h"
#include "voxtile_convert.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stdarg.h>
#include <time.h>

/* The command being run (set by vt_cli_main), for the usage hint. */
const char *cli_command;

void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("voxtile: ", stderr);
    vfprintf(stderr, fmt, ap);
    if (cli_command)
        fprintf(stderr, "\nTry 'voxtile %s --help'.\n", cli_command);
    else
        fputs("\nTry 'voxtile --help'.\n", stderr);
    va_end(ap);
    fflush(stdout);
    exit(EXIT_USAGE);
}

int file_error(const char *file, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "voxtile: %s: ", file);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

/* A library failure: its message names the file. */
int lib_error(const char *msg, int rc)
{
    fprintf(stderr, "voxtile: %s\n", msg && msg[0] ? msg : vt_strerror(rc));
    return 1;
}

double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void print_u64s(const uint64_t *v, int n)
{
    for (int d = 0; d < n; d++)
        printf("%s%" PRIu64, d ? ", " : "", v[d]);
}

void print_u32s(const uint32_t *v, int n)
{
    for (int d = 0; d < n; d++)
        printf("%s%" PRIu32, d ? ", " : "", v[d]);
}

const char *human(double bytes, char *buf, size_t len)
{
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.2f %s" : "%.0f %s", bytes, units[u]);
    return buf;
}

/* Parse "a,b,c" into up to max integers; returns the count or -1. */
int parse_list(const char *s, int64_t *v, int max)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        if (n == max)
            return -1;
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno)
            return -1;
        v[n++] = x;
        if (*end == ',')
            p = end + 1;
        else if (*end == 0)
            p = end;
        else
            return -1;
    }
    return n;
}

long parse_int(const char *opt, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi)
        die_usage("%s: '%s' is not an integer in %ld..%ld", opt, s, lo, hi);
    return v;
}


void json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

void json_double(double v)
{
    if (isnan(v) || isinf(v))
        printf("null");
    else
        printf("%.17g", v);
}

bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}


double parse_double(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v))
        die_usage("%s: '%s' is not a number", opt, s);
    return v;
}

int open_array(const vt_store *s, const char *name, const vt_array **out)
{
    int rc;
    if (name)
        rc = vt_store_array(s, name, out);
    else if ((rc = vt_store_array(s, "image", out)) != 0)
        rc = vt_store_array_at(s, 0, out);
    if (rc)
        lib_error(vt_errmsg(s), rc);
    return rc;
}

bool nnunet_channel(const char *name, size_t stem_len, size_t *case_len, int *channel)
{
    return vt_nnunet_channel(name, stem_len, case_len, channel) != 0;
}

void progress_bar(void *ctx, double f)
{
    int *last = ctx;
    int pct = (int)(f * 100);
    if (pct == *last)
        return;
    *last = pct;
    int n = pct / 4;
    fprintf(stderr, "\r[%.*s%*s] %3d%%", n, "=========================", 25 - n, "", pct);
    if (pct >= 100)
        fputc('\n', stderr);
    fflush(stderr);
}
