/* fuzz_cli_info: arbitrary bytes as a store, through the command-line tool
 * itself (vt_cli_main from tools/cli.c, linked from the CLI's static
 * library): `voxtile dump` (layout and --header, which parse the raw bytes
 * without the library), and, for a file that opens, `info` (text and
 * --json), `dump --tiles`, `verify`, `extract` (an origin box with one voxel
 * of padding, a reflected float16 box over the far corner), `preview` (grid,
 * montage, overlay of the last array) and `stat-tiles`. As in fuzz_open, the
 * checksums are recomputed first so the parsers behind them are reached.
 *
 * The commands' exit status must be 0 or 1: 2 (a usage error) cannot come
 * from a file, and usage errors exit() the process -- a harness failure. */
#include "fuzz_common.h"
#include "../../tools/cli.h"

#include <inttypes.h>

static const char *store;

static int cli(const char *const *args)
{
    char *argv[24];
    int argc = 0;
    argv[argc++] = (char *)"voxtile";
    for (; *args && argc < 23; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    int rc = vt_cli_main(argc, argv);
    fflush(stdout);
    FZ_CHECK(rc == 0 || rc == 1, "voxtile %s exited %d", argv[1], rc);
    return rc;
}

static void setup(void)
{
    store = fz_store_path();
    /* the commands' reports go nowhere; libFuzzer and the sanitizers write to stderr */
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    FZ_CHECK(null >= 0 && dup2(null, STDOUT_FILENO) == STDOUT_FILENO, "cannot send stdout to /dev/null");
    close(null);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (16u << 20))
        return 0;
    if (store == NULL)
        setup();
    if (!fz_put_resealed(data, size, NULL))
        return 0;
    cli((const char *const[]){"dump", store, NULL});
    cli((const char *const[]){"dump", store, "--header", NULL});
    if (cli((const char *const[]){"info", store, NULL}) != 0)
        return 0; /* the rest needs a store that opens */
    cli((const char *const[]){"info", store, "--json", NULL});
    cli((const char *const[]){"dump", store, "--tiles", NULL});
    cli((const char *const[]){"verify", store, "-j", "1", NULL});
    /* boxes from the first array's shape */
    vt_store *s;
    FZ_CHECK(vt_open(store, 0, &s) == 0, "info opened it, vt_open did not: %s", vt_errmsg(NULL));
    const vt_array *a;
    vt_store_array_at(s, 0, &a);
    vt_array_info ai;
    vt_array_info_get(a, &ai);
    char name[VT_NAME_MAX + 1], last[VT_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s", ai.name);
    const vt_array *b;
    vt_store_array_at(s, vt_store_narrays(s) - 1, &b);
    vt_array_info bi;
    vt_array_info_get(b, &bi);
    snprintf(last, sizeof last, "%s", bi.name);
    char st0[160] = "", sz0[160] = "", st1[160] = "", sz1[160] = "";
    size_t o0 = 0, o1 = 0, o2 = 0, o3 = 0;
    for (int d = 0; d < ai.ndim; d++) {
        uint64_t ext = ai.shape[d] < 3 ? ai.shape[d] : 3;
        o0 += (size_t)snprintf(st0 + o0, sizeof st0 - o0, "%s-1", d ? "," : "");
        o1 += (size_t)snprintf(sz0 + o1, sizeof sz0 - o1, "%s%" PRIu64, d ? "," : "", ext + 1);
        o2 += (size_t)snprintf(st1 + o2, sizeof st1 - o2, "%s%" PRIu64, d ? "," : "", ai.shape[d] - ext);
        o3 += (size_t)snprintf(sz1 + o3, sizeof sz1 - o3, "%s%" PRIu64, d ? "," : "", ext + 2);
    }
    vt_close(s);
    const char *npy = fz_path(1, "x.npy"), *png = fz_path(2, "p.png");
    cli((const char *const[]){"extract", store, "--array", name, "--start", st0, "--size", sz0, "-o", npy, NULL});
    cli((const char *const[]){"extract", store, "--array", name, "--start", st1, "--size", sz1, "--dtype", "float16",
                              "--pad", "reflect", "-o", npy, NULL});
    if (ai.ndim >= 3) {
        cli((const char *const[]){"preview", store, "--array", name, "--grid", "--montage", "3", "--overlay", last,
                                  "--zoom", "0.5", "-q", "-o", png, NULL});
        cli((const char *const[]){"preview", store, "--array", name, "--axis", "x", "--window", "soft", "-q", "-o",
                                  png, NULL});
    }
    cli((const char *const[]){"stat-tiles", store, "--array", name, "--cell", "2", "-q", "-o", png, NULL});
    cli((const char *const[]){"stat-tiles", store, "--array", name, "--cell", "2", "--project", "max", "--metric",
                              "bytes", "-q", "-o", png, NULL});
    return 0;
}
