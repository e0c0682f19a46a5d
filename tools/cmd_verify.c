/* voxtile verify */
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

/* ---- verify ------------------------------------------------------------- */

static const char verify_help[] =
    "usage: voxtile verify STORE...\n"
    "\n"
    "Check every structure and every tile (checksum, decode, min/max) of each store.\n"
    "Prints 'FILE: ok' or the first problem of each; exits 0 only when all are ok.\n"
    "\n"
    "example: voxtile verify cases/*.vxt\n";

int cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(verify_help, stdout);
            return 0;
        }
        die_usage("verify: bad option");
    }
    if (optind >= argc)
        die_usage("verify: expected at least one store");
    int bad = 0, total = argc - optind;
    for (int i = optind; i < argc; i++) {
        vt_store *s;
        int rc = vt_open(argv[i], 0, &s);
        if (rc) {
            lib_error(vt_errmsg(NULL), rc);
            bad++;
            continue;
        }
        uint64_t tiles = 0;
        for (size_t k = 0; k < vt_store_narrays(s) && rc == 0; k++) {
            const vt_array *a;
            vt_array_info ai;
            vt_store_array_at(s, k, &a);
            vt_array_info_get(a, &ai);
            rc = vt_verify_array(a, NULL);
            if (rc)
                lib_error(vt_errmsg(s), rc);
            tiles += ai.ntiles;
        }
        if (rc == 0)
            printf("%s: ok (%zu arrays, %" PRIu64 " tiles)\n", argv[i], vt_store_narrays(s), tiles);
        else
            bad++;
        vt_close(s);
    }
    if (total > 1)
        printf("%d of %d stores ok\n", total - bad, total);
    return bad ? 1 : 0;
}

