/* voxtile convert: images and a segmentation to one store. */
#include "cli.h"
#include "store_options.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char convert_help[] =
    "usage: voxtile convert IMAGE [IMAGE2 ...] [--seg LABEL] -o OUT.vxt [options]\n"
    "\n"
    "Convert images to a store, streaming in bounded memory. Several images become\n"
    "the channels of one image array (nnU-Net's case_0000, case_0001 ...); --seg adds\n"
    "a label array 'seg' with its label index. Inputs: .nii, .nii.gz, .hdr/.img,\n"
    ".nrrd, .nhdr, .mha, .mhd, .npy, and raw files with --raw-shape and --raw-dtype.\n"
    "A single .npy without crop or --dtype keeps any rank.\n"
    "\n"
    "  -o, --output FILE         store to write (replaced atomically)\n"
    "      --seg FILE            segmentation (same voxel grid as the images)\n"
    "      --crop Z0:Z1,Y0:Y1,X0:X1  keep this box of the source\n"
    "      --crop-nonzero        crop to the non-zero voxels of the images (nnU-Net)\n"
    "      --crop-to-label [M]   crop to the segmentation's foreground plus M voxels\n"
    "      --dtype T             store the image as T (float16, int16 ...); values must fit\n"
    "      --apply-scaling       store NIfTI scl_slope/scl_inter applied (float32)\n"
    "      --raw-shape [C,]Z,Y,X shape of .raw, .raw.gz, .bin inputs; with --raw-dtype T,\n"
    "                            --raw-offset N, --raw-big-endian, --raw-spacing Z,Y,X and\n"
    "                            --raw-seg-dtype T (a raw segmentation, default uint8)\n"
    "      --levels N            add pyramid levels image@1..image@N (and seg@k): each halves\n"
    "                            the axes whose spacing is within 3x the finest (Lanczos-3)\n"
    "      --spacing Z,Y,X       resample to this voxel size in mm after cropping (nnU-Net's\n"
    "                            shape rule); the segmentation by label vote\n"
    "      --order O             image interpolation: cubic (default) or linear\n"
    "      --separate-z M        a low-resolution axis on its own, nearest: auto (default: when\n"
    "                            the spacing is anisotropic > 3x), on, off; on/linear, auto/linear\n"
    "      --normalize N         record normalisation for readers: ct (needs --fingerprint or\n"
    "                            --norm-params), zscore (each case's mean and std) or none\n"
    "      --fingerprint FILE    ct's parameters per image channel from a dataset fingerprint\n"
    "                            (stats --fingerprint, or nnU-Net's): 0.5/99.5 percentiles, mean, std\n"
    "      --norm-params L,H,M,S clip bounds, mean and std per image channel (CT scheme)\n"
    "      --tile Z,Y,X          tile shape (default 16,16,16)\n"
    "      --codec C             lz4hc (default), lz4 or none\n"
    "      --level N             LZ4HC level 1..12 (default 4) / LZ4 acceleration (default 1)\n"
    "      --shuffle M           byte shuffle: auto (default), on or off\n"
    "      --array NAME          image array name (default image)\n"
    "  -j, --threads N           compression threads (default: all cores)\n"
    "  -q, --quiet               no progress bar and no summary\n"
    "\n"
    "example: voxtile convert case_0000.nii.gz case_0001.nii.gz --seg case.nii.gz --crop-nonzero -o case.vxt\n";

int cmd_convert(int argc, char **argv)
{
    static const struct option opts[] = {STORE_OPTIONS,
                                         {"output", required_argument, 0, 'o'},
                                         {"threads", required_argument, 0, 'j'},
                                         {"seg", required_argument, 0, 'S'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    vt_convert_opts o;
    vt_convert_opts_init(&o);
    o.threads = online_cpus();
    const char *out = NULL, *seg = NULL;
    int c, quiet = 0;
    while ((c = getopt_long(argc, argv, "o:j:qh", opts, NULL)) != -1) {
        if (store_option(c, &o, argc, argv))
            continue;
        switch (c) {
        case 'o': out = optarg; break;
        case 'S': seg = optarg; break;
        case 'j': o.threads = (int)parse_int("-j", optarg, 1, 1024); break;
        case 'q': quiet = 1; break;
        case 'h': fputs(convert_help, stdout); return 0;
        default: die_usage("convert: bad option");
        }
    }
    if (optind >= argc)
        die_usage("convert: expected at least one input image");
    if (out == NULL)
        die_usage("convert: -o OUT.vxt is required");
    if (o.crop_mode == VT_CROP_LABEL && seg == NULL)
        die_usage("convert: --crop-to-label needs --seg LABEL");
    store_options_done(&o, "convert");
    if (o.codec == VT_CODEC_NONE)
        o.level = 0;
    int last = -1;
    if (!quiet && isatty(STDERR_FILENO)) {
        o.progress = progress_bar;
        o.progress_ctx = &last;
    }
    const char *const *in = (const char *const *)(argv + optind);
    size_t nin = (size_t)(argc - optind);
    double t0 = now();
    int rc = nin == 1 && seg == NULL ? vt_convert(in[0], out, &o) : vt_convert_images(in, nin, seg, out, &o);
    if (last >= 0 && last < 100)
        fputc('\n', stderr);
    if (rc)
        return lib_error(vt_errmsg(NULL), rc);
    double dt = now() - t0;
    if (quiet)
        return 0;
    vt_store *s;
    rc = vt_open(out, 0, &s);
    if (rc)
        return lib_error(vt_errmsg(NULL), rc);
    for (size_t i = 0; i < vt_store_narrays(s); i++) {
        const vt_array *a;
        vt_array_info ai;
        vt_store_array_at(s, i, &a);
        vt_array_info_get(a, &ai);
        char b1[32], b2[32];
        printf("%s: '%s' %s (", out, ai.name, vt_dtype_name(ai.dtype));
        print_u64s(ai.shape, ai.ndim);
        printf(") %s stored of %s raw, ratio %.3f", human((double)ai.stored_bytes, b1, sizeof b1),
               human((double)ai.raw_bytes, b2, sizeof b2),
               (double)ai.raw_bytes / (double)(ai.stored_bytes ? ai.stored_bytes : 1));
        if (vt_label_count(a))
            printf(", %zu labels", vt_label_count(a));
        printf("\n");
    }
    printf("%s: converted %zu image%s%s in %.2f s with %d thread%s\n", out, nin, nin == 1 ? "" : "s",
           seg ? " and a segmentation" : "", dt, o.threads, o.threads == 1 ? "" : "s");
    vt_close(s);
    return 0;
}
