/* voxtile export: an array of a store back to NIfTI (vt_export_nifti), or a
 * prediction back on a case's source grid (vt_export_like). */
#include "cli.h"
#include "voxtile_convert.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char export_help[] =
    "usage: voxtile export STORE [--array NAME] -o OUT.nii[.gz]\n"
    "       voxtile export PRED.vxt --like CASE.vxt [--argmax] [--order O] -o OUT.nii[.gz]\n"
    "\n"
    "Write an array back to NIfTI. A store converted from NIfTI gets its source header\n"
    "back, changed only where the store differs (crop, channels, datatype, scaling).\n"
    "With --like, the array is a prediction made on CASE.vxt's grid: it is resampled back\n"
    "to the source's spacing (undoing convert --spacing), uncropped with background around\n"
    "it, and written with the source's header and affine, streaming.\n"
    "\n"
    "      --array NAME        array to write (default image; with --like: pred, or the\n"
    "                          only array)\n"
    "      --like CASE.vxt     the store of the case the prediction was made on\n"
    "      --argmax            the index of the largest channel, after resampling (labels)\n"
    "      --order O           float channels: linear (default, as nnU-Net) or cubic\n"
    "  -o, --output FILE       .nii or .nii.gz\n"
    "  -q, --quiet             no progress bar\n"
    "\n"
    "example: voxtile export case.vxt --array seg -o case_seg.nii.gz\n"
    "         voxtile export pred.vxt --like case.vxt --argmax -o case_pred.nii.gz\n";

int cmd_export(int argc, char **argv)
{
    static const struct option opts[] = {{"array", required_argument, 0, 'a'},
                                         {"output", required_argument, 0, 'o'},
                                         {"like", required_argument, 0, 'L'},
                                         {"argmax", no_argument, 0, 'M'},
                                         {"order", required_argument, 0, 'O'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *array = NULL, *out = NULL, *like = NULL;
    vt_export_opts eo;
    vt_export_opts_init(&eo);
    int c, quiet = 0, order_given = 0;
    while ((c = getopt_long(argc, argv, "o:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'a': array = optarg; break;
        case 'o': out = optarg; break;
        case 'L': like = optarg; break;
        case 'M': eo.argmax = 1; break;
        case 'O':
            order_given = 1;
            if (strcmp(optarg, "linear") == 0)
                eo.order = VT_RESAMPLE_LINEAR;
            else if (strcmp(optarg, "cubic") == 0)
                eo.order = VT_RESAMPLE_CUBIC;
            else
                die_usage("--order: expected linear or cubic, got '%s'", optarg);
            break;
        case 'q': quiet = 1; break;
        case 'h': fputs(export_help, stdout); return 0;
        default: die_usage("export: bad option");
        }
    }
    if (optind + 1 != argc || out == NULL)
        die_usage("export: expected one store and -o OUT.nii[.gz]");
    if (like == NULL && (eo.argmax || order_given))
        die_usage("export: --argmax and --order map a prediction back: they need --like CASE.vxt");
    int last = -1;
    if (!quiet && isatty(STDERR_FILENO)) {
        eo.progress = progress_bar;
        eo.progress_ctx = &last;
    }
    int rc = vt_export_like(argv[optind], array, like, &eo, out); /* no --like: the array as stored */
    if (last >= 0 && last < 100)
        fputc('\n', stderr);
    return rc ? lib_error(vt_errmsg(NULL), rc) : 0;
}
