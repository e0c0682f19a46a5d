/* read_patches: the C API in one page. Opens a store, reads random patches
 * that may stick out of the volume (reflect-padded, converted to float16 on
 * the way, as a training data loader wants them), and reports what they cost.
 *
 *   read_patches STORE [PATCHES=200] [EDGE=64]
 */
#include "voxtile.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Stored bytes of the tiles a box touches (what reading it decodes). */
static uint64_t bytes_touched(const vt_array *a, const vt_array_info *ai, const int64_t *start,
                              const uint64_t *size, uint64_t *tiles)
{
    uint64_t sum = 0;
    *tiles = 0;
    for (uint64_t t = 0; t < ai->ntiles; t++) {
        vt_tile_info ti;
        vt_tile_get(a, t, &ti);
        int hit = 1;
        for (int d = 0; d < ai->ndim && hit; d++) {
            int64_t lo = start[d] < 0 ? 0 : start[d];
            int64_t hi = start[d] + (int64_t)size[d];
            hit = (int64_t)ti.start[d] < hi && (int64_t)(ti.start[d] + ti.extent[d]) > lo;
        }
        if (hit) {
            sum += ti.stored_size;
            (*tiles)++;
        }
    }
    return sum;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: read_patches STORE [PATCHES=200] [EDGE=64]\n");
        return 2;
    }
    int patches = argc > 2 ? atoi(argv[2]) : 200;
    uint64_t edge = argc > 3 ? (uint64_t)atoi(argv[3]) : 64;

    vt_store *store;
    int rc = vt_open(argv[1], 0, &store);
    if (rc) {
        fprintf(stderr, "read_patches: %s\n", vt_errmsg(NULL));
        return 1;
    }
    const vt_array *image;
    if (vt_store_array(store, "image", &image) != 0) {
        fprintf(stderr, "read_patches: %s\n", vt_errmsg(store));
        vt_close(store);
        return 1;
    }
    vt_array_info ai;
    vt_array_info_get(image, &ai);
    if (ai.ndim != 4) {
        fprintf(stderr, "read_patches: %s: expected a (c, z, y, x) image\n", argv[1]);
        vt_close(store);
        return 1;
    }

    /* one patch buffer, reused: (1, edge, edge, edge) float16 */
    uint64_t size[4] = {1, edge, edge, edge};
    uint16_t *patch = malloc(edge * edge * edge * sizeof *patch);
    vt_read_opts opts;
    vt_read_opts_init(&opts);
    opts.dtype = VT_F16;
    opts.pad = VT_PAD_REFLECT;

    srand(1);
    double total = 0, worst = 0;
    uint64_t touched = 0, tiles = 0, outside = 0;
    for (int i = 0; i < patches; i++) {
        int64_t start[4] = {0};
        for (int d = 1; d < 4; d++) /* anywhere, up to half a patch outside */
            start[d] = (int64_t)(rand() % (int)(ai.shape[d] + edge)) - (int64_t)edge / 2;
        double t1 = now();
        rc = vt_read(image, start, size, &opts, patch);
        double dt = now() - t1;
        if (rc) {
            fprintf(stderr, "read_patches: %s\n", vt_errmsg(store));
            break;
        }
        total += dt;
        worst = dt > worst ? dt : worst;
        uint64_t nt;
        touched += bytes_touched(image, &ai, start, size, &nt);
        tiles += nt;
        for (int d = 1; d < 4; d++)
            outside += start[d] < 0 || start[d] + (int64_t)edge > (int64_t)ai.shape[d];
    }
    if (rc == 0) {
        double mb = 1024.0 * 1024.0;
        printf("%s: image %s (%" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64 "), %" PRIu64
               " tiles of (%u, %u, %u, %u), %.2f MiB stored for %.2f MiB raw (ratio %.2f)\n",
               argv[1], vt_dtype_name(ai.dtype), ai.shape[0], ai.shape[1], ai.shape[2], ai.shape[3],
               ai.ntiles, ai.tile[0], ai.tile[1], ai.tile[2], ai.tile[3], ai.stored_bytes / mb,
               ai.raw_bytes / mb, (double)ai.raw_bytes / (double)ai.stored_bytes);
        printf("read %d random %" PRIu64 "^3 float16 patches, reflect-padded where they leave the "
               "volume (%" PRIu64 " patch sides outside)\n",
               patches, edge, outside);
        printf("  %.0f patches/s (vt_read alone: mean %.3f ms, worst %.3f ms per patch)\n",
               patches / total, 1e3 * total / patches, 1e3 * worst);
        printf("  each patch decoded on average %.1f tiles = %.1f KiB of the %.1f KiB file "
               "(%.1f%%): a patch costs what the patch costs\n",
               (double)tiles / patches, (double)touched / patches / 1024,
               (double)vt_store_file_size(store) / 1024,
               100.0 * (double)touched / patches / (double)vt_store_file_size(store));
    }
    free(patch);
    vt_close(store);
    return rc ? 1 : 0;
}
