/* voxtile extract: a box read through the lazy reader into a .npy. */
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

static const char extract_help[] =
    "usage: voxtile extract STORE --start C,Z,Y,X --size C,Z,Y,X -o OUT.npy [options]\n"
    "\n"
    "Read a box through the lazy reader and save it as .npy. The box may start\n"
    "below 0 and run past the shape; outside voxels come from the pad mode.\n"
    "\n"
    "      --array NAME        array to read (default: image, else the first)\n"
    "      --start LIST        first voxel, one entry per dimension\n"
    "      --size LIST         box extent, one entry per dimension\n"
    "      --dtype T           output dtype (uint8 int8 uint16 int16 uint32 int32\n"
    "                          float16 float32 float64; default: stored)\n"
    "      --pad M             constant (default), edge or reflect\n"
    "      --pad-value V       value of constant padding (default 0)\n"
    "      --raw               floating output keeps the stored values: no NIfTI\n"
    "                          scl_slope/scl_inter applied (they are by default)\n"
    "  -o, --output FILE       .npy to write\n"
    "\n"
    "example: voxtile extract ct.vxt --start 0,-16,40,40 --size 1,64,64,64 --dtype float16 -o patch.npy\n";

static const char *npy_descr(vt_dtype d)
{
    switch (d) {
    case VT_U8: return "|u1";
    case VT_I8: return "|i1";
    case VT_U16: return "<u2";
    case VT_I16: return "<i2";
    case VT_U32: return "<u4";
    case VT_I32: return "<i4";
    case VT_F16: return "<f2";
    case VT_F32: return "<f4";
    case VT_F64: return "<f8";
    default: return NULL;
    }
}

int cmd_extract(int argc, char **argv)
{
    static const struct option opts[] = {
        {"array", required_argument, 0, 'a'}, {"start", required_argument, 0, 's'},
        {"size", required_argument, 0, 'z'},  {"dtype", required_argument, 0, 'd'},
        {"pad", required_argument, 0, 'p'},   {"pad-value", required_argument, 0, 'v'},
        {"output", required_argument, 0, 'o'}, {"raw", no_argument, 0, 'r'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    const char *name = NULL, *out = NULL;
    bool raw = false;
    int64_t start[VT_MAX_DIMS], size[VT_MAX_DIMS];
    int nstart = -1, nsize = -1, c;
    vt_read_opts ro;
    vt_read_opts_init(&ro);
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'a': name = optarg; break;
        case 's':
            if ((nstart = parse_list(optarg, start, VT_MAX_DIMS)) < 1)
                die_usage("--start: expected a list of integers, got '%s'", optarg);
            break;
        case 'z':
            if ((nsize = parse_list(optarg, size, VT_MAX_DIMS)) < 1)
                die_usage("--size: expected a list of integers, got '%s'", optarg);
            break;
        case 'd':
            if (vt_dtype_parse(optarg, &ro.dtype) != 0)
                die_usage("--dtype: unknown dtype '%s'", optarg);
            break;
        case 'p':
            if (strcmp(optarg, "constant") == 0)
                ro.pad = VT_PAD_CONSTANT;
            else if (strcmp(optarg, "edge") == 0)
                ro.pad = VT_PAD_EDGE;
            else if (strcmp(optarg, "reflect") == 0)
                ro.pad = VT_PAD_REFLECT;
            else
                die_usage("--pad: expected constant, edge or reflect, got '%s'", optarg);
            break;
        case 'v': {
            char *end;
            ro.pad_value = strtod(optarg, &end);
            if (end == optarg || *end)
                die_usage("--pad-value: '%s' is not a number", optarg);
            break;
        }
        case 'o': out = optarg; break;
        case 'r': raw = true; break;
        case 'h': fputs(extract_help, stdout); return 0;
        default: die_usage("extract: bad option");
        }
    }
    if (optind + 1 != argc)
        die_usage("extract: expected one store");
    if (out == NULL || nstart < 0 || nsize < 0)
        die_usage("extract: --start, --size and -o are required");
    vt_store *s;
    int rc = vt_open(argv[optind], 0, &s);
    if (rc)
        return lib_error(vt_errmsg(NULL), rc);
    const vt_array *a = NULL;
    if (name)
        rc = vt_store_array(s, name, &a);
    else if (vt_store_array(s, "image", &a) != 0)
        rc = vt_store_array_at(s, 0, &a);
    if (rc) {
        lib_error(vt_errmsg(s), rc);
        vt_close(s);
        return 1;
    }
    vt_array_info ai;
    vt_array_info_get(a, &ai);
    vt_dtype dd = ro.dtype == VT_DTYPE_SAME ? ai.dtype : ro.dtype;
    /* floating output of a scaled NIfTI image: physical values, as nibabel's get_fdata() */
    bool floating = dd == VT_F16 || dd == VT_BF16 || dd == VT_F32 || dd == VT_F64;
    if (floating && !raw && vt_array_scaling(a, &ro.scale, &ro.offset))
        ro.transform = 1;
    const char *descr = npy_descr(dd);
    int nd = ai.ndim;
    if (nstart != nd || nsize != nd) {
        fprintf(stderr, "voxtile: %s: array '%s' has %d dimensions; --start and --size need %d entries\n",
                argv[optind], ai.name, nd, nd);
        vt_close(s);
        return EXIT_USAGE;
    }
    if (descr == NULL) {
        fprintf(stderr, "voxtile: %s: %s has no .npy dtype; choose another --dtype\n", out,
                vt_dtype_name(dd));
        vt_close(s);
        return 1;
    }
    uint64_t usize[VT_MAX_DIMS], slab = 1;
    size_t es = vt_dtype_size(dd);
    for (int d = 0; d < nd; d++) {
        if (size[d] < 1)
            die_usage("--size: every extent must be >= 1");
        usize[d] = (uint64_t)size[d];
        if (d > 0)
            slab *= usize[d];
    }
    /* header */
    char shape[256];
    size_t o = 0;
    for (int d = 0; d < nd; d++)
        o += (size_t)snprintf(shape + o, sizeof shape - o, "%" PRIu64 ",%s", usize[d],
                              d < nd - 1 ? " " : "");
    if (nd > 1)
        shape[o - 1] = 0; /* numpy writes (a, b) but (a,) */
    char hdr[512];
    int hl = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                      descr, shape);
    int total = 10 + hl + 1;
    int padded = (total + 63) / 64 * 64;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", out, (int)getpid());
    FILE *f = fopen(tmp, "wbx");
    if (f == NULL) {
        fprintf(stderr, "voxtile: %s: cannot create: %s\n", tmp, strerror(errno));
        vt_close(s);
        return 1;
    }
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
    uint16_t hlen = (uint16_t)(padded - 10);
    memcpy(pre + 8, &hlen, 2);
    fwrite(pre, 1, 10, f);
    fwrite(hdr, 1, (size_t)hl, f);
    for (int i = 10 + hl; i < padded - 1; i++)
        fputc(' ', f);
    fputc('\n', f);
    /* slabs along axis 0, about 64 MiB each */
    uint64_t per = slab * es;
    uint64_t step = per >= (64u << 20) ? 1 : (64u << 20) / per;
    if (step > usize[0])
        step = usize[0];
    void *buf = malloc((size_t)(per * step));
    rc = buf ? 0 : VT_ENOMEM;
    for (uint64_t z = 0; z < usize[0] && rc == 0; z += step) {
        int64_t st[VT_MAX_DIMS];
        uint64_t sz[VT_MAX_DIMS];
        memcpy(st, start, sizeof st);
        memcpy(sz, usize, sizeof sz);
        st[0] = start[0] + (int64_t)z;
        sz[0] = usize[0] - z < step ? usize[0] - z : step;
        rc = vt_read(a, st, sz, &ro, buf);
        if (rc)
            lib_error(vt_errmsg(s), rc);
        else if (fwrite(buf, es, (size_t)(sz[0] * slab), f) != sz[0] * slab)
            rc = VT_EIO;
    }
    free(buf);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        rc = rc ? rc : VT_EIO;
    if (fclose(f) != 0)
        rc = rc ? rc : VT_EIO;
    if (rc == 0 && rename(tmp, out) != 0)
        rc = VT_EIO;
    if (rc) {
        if (rc == VT_EIO || rc == VT_ENOMEM)
            fprintf(stderr, "voxtile: %s: cannot write: %s\n", out, strerror(errno));
        unlink(tmp);
        vt_close(s);
        return 1;
    }
    vt_close(s);
    return 0;
}
