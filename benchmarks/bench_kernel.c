/* The sampler's AVX2 kernel alone (src/store/sample_avx2.c, compiled into
 * this program): ns per output voxel of a rotated, scaled 128^3 patch over
 * synthetic decoded tiles, rows and blocks in the sampler's order. No store,
 * no decoding, no row loop around it: what the kernel's own instructions
 * cost, to compare a change to the kernel before measuring whole pairs.
 *
 *   build/benchmarks/bench_kernel [ARRAYS [SCALE [ANGLE]]]
 *
 * ARRAYS 1: a float32 image; 2 (default): and int16 labels. SCALE (default
 * 0.9) and ANGLE (radians about two axes, default 0.4) shape the map. Prints
 * the best and the median of 9 runs (CPU time of this process). */
#include "sample_vec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sample_avx2.c"

enum { T = 10, E = 17, NS = T * T * T, RUNS = 9 }; /* 10^3 tiles of 16^3 + apron: a 160^3 source */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int narr = argc > 1 ? atoi(argv[1]) : 2;
    double scale = argc > 2 ? atof(argv[2]) : 0.9, ang = argc > 3 ? atof(argv[3]) : 0.4;
    if (narr < 1 || narr > 2 || !(scale > 0 && scale < 1.2) || !isfinite(ang)) {
        fprintf(stderr, "usage: bench_kernel [ARRAYS 1|2 [SCALE 0..1.2 [ANGLE]]]\n");
        return 2;
    }
    if (!__builtin_cpu_supports("avx2")) {
        fprintf(stderr, "bench_kernel: this CPU has no AVX2\n");
        return 1;
    }
    size_t cells = (size_t)NS * E * E * E;
    float *fa = malloc(cells * sizeof *fa);
    int16_t *ia = malloc(cells * sizeof *ia);
    int32_t *table = malloc(NS * sizeof *table), *base = malloc(NS * sizeof *base);
    if (!fa || !ia || !table || !base) {
        fprintf(stderr, "bench_kernel: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < cells; i++) {
        fa[i] = (float)(i % 1000) * 0.01f;
        ia[i] = (int16_t)(i / 5000 % 3); /* runs of labels: some voxels' taps differ (votes) */
    }
    for (int s = 0; s < NS; s++) {
        table[s] = s;
        base[s] = s * E * E * E;
    }
    /* a rotation about z then x, scaled, centred on the source */
    double c = cos(ang), sn = sin(ang), m[3][3];
    double a[3][3] = {{c, 0, sn}, {0, 1, 0}, {-sn, 0, c}}, b[3][3] = {{1, 0, 0}, {0, c, -sn}, {0, sn, c}};
    vt_vec_group g;
    memset(&g, 0, sizeof g);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            m[i][j] = 0;
            for (int k = 0; k < 3; k++)
                m[i][j] += a[i][k] * b[k][j];
            m[i][j] *= scale;
        }
    for (int d = 0; d < 3; d++) {
        for (int e = 0; e < 3; e++)
            g.m[4 * d + e] = m[d][e];
        g.m[4 * d + 3] = 79.5 - (m[d][0] + m[d][1] + m[d][2]) * 63.5;
        g.nlast[d] = T * 16 - 2;
        g.shift[d] = 4;
        g.dn[d] = T;
    }
    g.table = table;
    g.st1 = E;
    g.st0 = E * E;
    g.narr = narr;
    float rf[16];
    int32_t ri[16];
    g.a[0].kind = VT_VEC_LINEAR;
    g.a[0].arena = fa;
    g.a[0].base = base;
    g.a[0].rf = rf;
    g.a[1].kind = VT_VEC_LABEL16;
    g.a[1].arena = ia;
    g.a[1].base = base;
    g.a[1].ri = ri;
    int64_t iz[16], iy[16], ix[16];
    double fz[16], fy[16], fx[16], t[RUNS], sink = 0;
    uint32_t votes[VT_VEC_MAX_ARRAYS];
    unsigned long done = 0, voted = 0;
    for (int r = 0; r < RUNS; r++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
        done = voted = 0;
        for (int bz = 0; bz < 128; bz += 16) /* 16^3 blocks, rows of 16, as the sampler */
            for (int by = 0; by < 128; by += 16)
                for (int bx = 0; bx < 128; bx += 16)
                    for (int k = bz; k < bz + 16; k++)
                        for (int j = by; j < by + 16; j++) {
                            unsigned dn = vt__sample_row_avx2(&g, k, j, bx, 16, iz, iy, ix, fz, fy, fx, votes);
                            done += (unsigned long)__builtin_popcount(dn);
                            voted += narr > 1 ? (unsigned long)__builtin_popcount(votes[1]) : 0;
                            sink += (double)rf[3];
                        }
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
        t[r] = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    }
    qsort(t, RUNS, sizeof *t, cmp_double);
    double nv = 128.0 * 128 * 128;
    printf("%d array%s, scale %g, angle %g: best %.2f ns, median %.2f ns per voxel (%.1f ms per 128^3); "
           "groups of 8 done %lu of %d, label voxels voted %lu (%g)\n",
           narr, narr > 1 ? "s" : "", scale, ang, t[0] * 1e9 / nv, t[RUNS / 2] * 1e9 / nv, t[RUNS / 2] * 1e3, done,
           128 * 128 * 16, voted, sink);
    free(fa);
    free(ia);
    free(table);
    free(base);
    return 0;
}
