/* voxtile: the command dispatcher (tools/main.c calls it; so do the fuzz harnesses). */
#include "cli.h"

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

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *what;
} commands[] = {
    {"convert", cmd_convert, "convert images (.nii[.gz], .nrrd, .mha, .npy, raw) and a segmentation to a store"},
    {"convert-dataset", cmd_convert_dataset, "convert an nnU-Net raw dataset folder, case by case, in parallel"},
    {"info", cmd_info, "summarise a store (--json for machines)"},
    {"dump", cmd_dump, "the file's layout, its tile index (--tiles) or raw header fields (--header)"},
    {"verify", cmd_verify, "check every checksum and structure of stores"},
    {"extract", cmd_extract, "read a box (padded, converted) into a .npy"},
    {"export", cmd_export, "write an array back to NIfTI (.nii, .nii.gz)"},
    {"preview", cmd_preview, "draw slices (window, label overlay, tile grid, montage) as a PNG"},
    {"stat-tiles", cmd_stat_tiles, "a heat map of the compression ratio of every tile, as a PNG"},
    {"stats", cmd_stats, "shapes, spacings, sizes of a dataset; cases over a memory budget"},
    {"view", cmd_view, "look through stores in a web browser: slices, windows, labels, values (HTTP server)"},
};

static void main_help(void)
{
    printf("usage: voxtile COMMAND [options]\n"
           "\n"
           "Tiled, compressed, checksummed storage for 3-D/4-D medical images.\n"
           "\n"
           "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        printf("  %-16s %s\n", commands[i].name, commands[i].what);
    printf("\n"
           "'voxtile COMMAND --help' explains each; 'man voxtile' has them all.\n"
           "Exit status: 0 success, 1 failure (bad or damaged input, failed check), 2 usage error.\n"
           "\n"
           "example: voxtile convert ct.nii.gz -o ct.vxt && voxtile info ct.vxt\n");
}

int vt_cli_main(int argc, char **argv)
{
    cli_command = NULL;
    if (argc < 2)
        die_usage("missing command");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        main_help();
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("voxtile %s (format %d)\n", vt_version_string(), VT_FORMAT_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(cmd, commands[i].name) == 0) {
            cli_command = cmd;
            optind = 0; /* glibc: full getopt reinitialisation, for a second call in one process */
            return commands[i].run(argc - 1, argv + 1);
        }
    die_usage("unknown command '%s'", cmd);
}
