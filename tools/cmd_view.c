/* voxtile view: look through stores in a web browser, slice by slice.
 *
 * A small HTTP server (libmicrohttpd) serves one page and a JSON + binary API
 * (tools/view_api.c); every slice is one vt_read of a one-voxel-thick box, so
 * only the tiles it crosses are decoded and a store of any size opens at once.
 * Built only with libmicrohttpd (meson option -Dview); without it the command
 * still parses its options and says it was left out. */
#include "cli.h"
#include "view.h"

#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char view_help[] =
    "usage: voxtile view STORE... [--port N] [--host ADDR] [--open]\n"
    "\n"
    "Serve a web page to look through stores: axial, coronal and sagittal slices\n"
    "with physical aspect and radiological orientation, window presets and\n"
    "window/level drag, the label overlay with a legend, the tile grid, voxel\n"
    "index, world position, value and label under the mouse, a case switcher\n"
    "(one entry per STORE). Slices come from the lazy reader: only the tiles a\n"
    "slice crosses are decoded, and a coarse pyramid level (convert --levels) is\n"
    "shown while the full one loads. Ctrl-C stops the server.\n"
    "\n"
    "      --port N       TCP port (default 8800; 0 picks a free one)\n"
    "      --host ADDR    address to listen on (default 127.0.0.1: this machine only).\n"
    "                     Another address (0.0.0.0, ::, a LAN address) lets anyone who\n"
    "                     can reach it read every array of the given stores, with no\n"
    "                     password and no encryption. To look from another machine,\n"
    "                     prefer an ssh tunnel: ssh -L 8800:localhost:8800 SERVER\n"
    "      --open         open the page in the desktop's browser (xdg-open)\n"
    "\n"
    "The API (docs/cli.md): /api/stores, /api/array?store=S&array=NAME,\n"
    "/api/slice?store=S&array=NAME&axis=z|y|x&index=I[&level=K][&channel=C][&dtype=T]\n"
    "(raw little-endian values). Stores are addressed by their position in this\n"
    "command line; nothing else on the machine is served.\n"
    "\n"
    "example: voxtile view stores/*.vxt --port 8800   # then browse http://localhost:8800/\n";

#ifdef VT_HAVE_VIEW
/* The file name without its folders. */
static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s && s[1] ? s + 1 : path;
}
#endif

int cmd_view(int argc, char **argv)
{
    static const struct option opts[] = {{"port", required_argument, 0, 'p'},
                                         {"host", required_argument, 0, 'H'},
                                         {"open", no_argument, 0, 'O'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    long port = 8800;
    const char *host = "127.0.0.1";
    bool open_browser = false;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': port = parse_int("--port", optarg, 0, 65535); break;
        case 'H':
            if (optarg[0] == 0 || strlen(optarg) > 255)
                die_usage("--host: expected an address such as 127.0.0.1, 0.0.0.0 or ::1");
            host = optarg;
            break;
        case 'O': open_browser = true; break;
        case 'h': fputs(view_help, stdout); return 0;
        default: die_usage("view: bad option");
        }
    }
    if (optind >= argc)
        die_usage("view: expected one or more stores");
#ifndef VT_HAVE_VIEW
    (void)port;
    (void)host;
    (void)open_browser;
    fprintf(stderr, "voxtile: view: this voxtile was built without the viewer (meson option -Dview, which needs "
                    "libmicrohttpd); install libmicrohttpd-dev and rebuild with -Dview=enabled\n");
    return 1;
#else
    /* slice buffers (up to a few MiB) go back to the system when freed, rather than
     * raising glibc's dynamic mmap threshold and staying in the heap of each thread */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    size_t n = (size_t)(argc - optind);
    view_ctx ctx;
    ctx.nstores = 0;
    ctx.stores = calloc(n, sizeof *ctx.stores);
    ctx.names = calloc(n, sizeof *ctx.names);
    int status = 1;
    if (ctx.stores == NULL || ctx.names == NULL) {
        fprintf(stderr, "voxtile: view: out of memory\n");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const char *path = argv[optind + (int)i];
        int rc = vt_open(path, 0, &ctx.stores[i]);
        if (rc) {
            lib_error(vt_errmsg(NULL), rc);
            goto done;
        }
        ctx.names[i] = base_name(path);
        ctx.nstores++;
    }
    status = view_serve(&ctx, host, (unsigned)port, open_browser);
done:
    for (size_t i = 0; i < ctx.nstores; i++)
        vt_close(ctx.stores[i]);
    free(ctx.stores);
    free(ctx.names);
    return status;
#endif
}
