/* The voxtile command-line tool: shared declarations.
 *
 * Each command NAME lives in tools/cmd_NAME.c (dashes as underscores) as
 * `int cmd_NAME(int argc, char **argv)`
 * (argv[0] is the command name) and returns the exit status:
 * 0 success, 1 failure (bad file, failed check), 2 usage error.
 * Errors go to stderr as "voxtile: FILE: what is wrong". */
#ifndef VOXTILE_CLI_H
#define VOXTILE_CLI_H

#include "voxtile.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EXIT_USAGE 2

/* The whole tool: main() of tools/main.c; callable more than once in a
 * process (the fuzz harnesses do), as long as no usage error ends it. */
int vt_cli_main(int argc, char **argv);

int cmd_convert(int argc, char **argv);
int cmd_convert_dataset(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_extract(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_preview(int argc, char **argv);
int cmd_stat_tiles(int argc, char **argv);
int cmd_view(int argc, char **argv);

/* voxtile stats DATASET --fingerprint (stats_fingerprint.c): the exit status. */
int stats_fingerprint(const char *dataset, bool json, const char *out, int jobs);

extern const char *cli_command;

/* "voxtile: <message>\nTry 'voxtile COMMAND --help'." on stderr, exit status 2. */
void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* A library failure (its message names the file) on stderr; returns 1. */
int lib_error(const char *msg, int rc);
/* "voxtile: FILE: what" on stderr; returns 1. */
int file_error(const char *file, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

double now(void);
/* The processors online, at least 1: the default of -j. */
int online_cpus(void);
const char *human(double bytes, char *buf, size_t len);
/* n values on stdout separated by ", " (a shape, tile or grid inside brackets). */
void print_u64s(const uint64_t *v, int n);
void print_u32s(const uint32_t *v, int n);
/* "a,b,c" into up to max integers: the count, or -1. */
int parse_list(const char *s, int64_t *v, int max);
/* An integer option in lo..hi, or a usage error. */
long parse_int(const char *opt, const char *s, long lo, long hi);
/* A number option, or a usage error. */
double parse_double(const char *opt, const char *s);
bool has_suffix(const char *s, const char *suffix);

/* JSON output on stdout. */
void json_string(const char *s);
void json_double(double v);

/* nnU-Net names the channels of a case CASE_0000<ending>, CASE_0001<ending> ...:
 * true when the @p stem_len characters of @p name before its ending end in
 * "_" and four digits; then *case_len is the length of CASE and *channel the
 * number (either may be NULL). The library's vt_nnunet_channel(), which
 * vt_dataset_open() lists cases by. */
bool nnunet_channel(const char *name, size_t stem_len, size_t *case_len, int *channel);

/* The array a command works on: --array NAME, else "image", else the first.
 * On failure prints the error and returns nonzero. */
int open_array(const vt_store *s, const char *name, const vt_array **out);

/* Orientation code ("RAS", "LPS" ...) of the voxel axes x, y, z of a 4x4
 * row-major NIfTI-style affine; false if degenerate. */
bool orientation_code(const double *aff, char code[4]);

/* A progress callback (vt_convert_opts::progress ...) drawing a bar on
 * stderr; @p ctx is an int holding the last percentage drawn, -1 at first. */
void progress_bar(void *ctx, double fraction);

#endif
