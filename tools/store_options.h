/* The options of convert and convert-dataset that say how a store is
 * written (tile, codec, crop, dtype, levels, raw inputs ...): one table and
 * one parser for both commands. */
#ifndef VOXTILE_STORE_OPTIONS_H
#define VOXTILE_STORE_OPTIONS_H

#include "voxtile_convert.h"

#include <getopt.h>
#include <stdbool.h>

/* Options shared by convert and convert-dataset: how the store is written. */
#define STORE_OPTIONS                                                                                  \
    {"tile", required_argument, 0, 't'}, {"codec", required_argument, 0, 'c'},                        \
        {"level", required_argument, 0, 'l'}, {"shuffle", required_argument, 0, 's'},                 \
        {"array", required_argument, 0, 'a'}, {"crop", required_argument, 0, 'C'},                    \
        {"crop-nonzero", no_argument, 0, 'N'}, {"crop-to-label", optional_argument, 0, 'L'},          \
        {"dtype", required_argument, 0, 'd'}, {"apply-scaling", no_argument, 0, 'A'},                 \
        {"levels", required_argument, 0, 'V'}, {"raw-shape", required_argument, 0, 1001},           \
        {"raw-dtype", required_argument, 0, 1002}, {"raw-offset", required_argument, 0, 1003},       \
        {"raw-big-endian", no_argument, 0, 1004}, {"raw-spacing", required_argument, 0, 1005},      \
        {"raw-seg-dtype", required_argument, 0, 1006}, {"spacing", required_argument, 0, 1010},     \
        {"order", required_argument, 0, 1011}, {"separate-z", required_argument, 0, 1012},            \
        {"normalize", required_argument, 0, 1013}, {"norm-params", required_argument, 0, 1014},         \
        {"fingerprint", required_argument, 0, 1015}

/* Apply the store option @p c (getopt_long's value, its argument in optarg)
 * to @p o; false when @p c is not a store option. A bad value is a usage
 * error (die_usage). */
bool store_option(int c, vt_convert_opts *o, int argc, char **argv);

/* After the last option: the checks that need all of them (--normalize ct
 * with its parameters; parameters only with it), as usage errors of @p cmd. */
void store_options_done(const vt_convert_opts *o, const char *cmd);

#endif
