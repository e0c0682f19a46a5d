/* voxtile export: an array of a store back to NIfTI (vt_export_nifti). */
#include "cli.h"
#include "voxtile_convert.h"

#include <getopt.h>
#include <stdio.h>

static const char export_help[] =
    "usage: voxtile export STORE [--array NAME] -o OUT.nii[.gz]\n"
    "\n"
    "Write an array back to NIfTI. A store converted from NIfTI gets its source header\n"
    "back, changed only where the store differs (crop, channels, datatype, scaling).\n"
    "\n"
    "      --array NAME        array to write (default image)\n"
    "  -o, --output FILE       .nii or .nii.gz\n"
    "\n"
    "example: voxtile export case.vxt --array seg -o case_seg.nii.gz\n";

int cmd_export(int argc, char **argv)
{
    static const struct option opts[] = {{"array", required_argument, 0, 'a'},
                                         {"output", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *array = NULL, *out = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'a': array = optarg; break;
        case 'o': out = optarg; break;
        case 'h': fputs(export_help, stdout); return 0;
        default: die_usage("export: bad option");
        }
    }
    if (optind + 1 != argc || out == NULL)
        die_usage("export: expected one store and -o OUT.nii[.gz]");
    int rc = vt_export_nifti(argv[optind], array, out);
    return rc ? lib_error(vt_errmsg(NULL), rc) : 0;
}

