/* voxtile stat-tiles: where the bytes go -- a heat map of the compression
 * ratio (or stored bytes) of every tile, from the tile index alone. */
#include "cli.h"
#include "render.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char stat_tiles_help[] =
    "usage: voxtile stat-tiles STORE -o OUT.png [options]\n"
    "\n"
    "Where the bytes go: a heat map of the tile grid, one panel per z tile-slab (a\n"
    "tile row along z), one cell per tile, coloured by its compression ratio (or\n"
    "stored bytes) on a log scale; constant tiles, which take no bytes, are grey.\n"
    "A colour bar gives the scale. Channels of a 4-d array are summed. The summary\n"
    "on stdout lists the tiles that take the most bytes.\n"
    "\n"
    "  -o, --output FILE     the PNG to write (replaced atomically)\n"
    "      --array NAME      array (default image, else the first)\n"
    "      --metric M        ratio (default: raw/stored) or bytes (stored bytes)\n"
    "      --project P       one panel instead of one per slab: max (the largest value\n"
    "                        along z) or sum (ratio: all raw / all stored along z;\n"
    "                        bytes: their sum)\n"
    "      --cell N          pixels per tile cell (default: fits panels to ~256 px)\n"
    "  -q, --quiet           no summary\n"
    "\n"
    "example: voxtile stat-tiles ct.vxt -o tiles.png --project sum\n";

enum { PROJECT_NONE, PROJECT_MAX, PROJECT_SUM };

/* What the command line asks for. */
typedef struct stat_args {
    const char *path, *out, *name;
    int bytes_metric; /* stored bytes instead of the ratio */
    int project;      /* PROJECT_* */
    int cell, quiet;
} stat_args;

/* The tile grid's numbers: per cell (z, y, x of the grid's last three axes,
 * channels summed) the raw and stored bytes, the five tiles that take the
 * most, and per panel cell the value drawn (NaN: constant, no bytes). */
typedef struct tile_map {
    vt_array_info ai;
    uint64_t g[3];            /* grid (z, y, x); missing axes 1 */
    double *raw, *stored;     /* g[0] * g[1] * g[2] */
    uint64_t top[5], top_bytes[5];
    int ntop;
    uint64_t npanel;          /* 1 when projected, else g[0] */
    double *val;              /* npanel * g[1] * g[2] */
    double lo, hi;            /* range of the values, for the colour scale */
} tile_map;

/* Step 1: the command line; usage errors end the process. Returns 1 after --help. */
static int parse_args(int argc, char **argv, stat_args *sa)
{
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'}, {"array", required_argument, 0, 'a'},
        {"metric", required_argument, 0, 'm'}, {"project", required_argument, 0, 'p'},
        {"cell", required_argument, 0, 'c'},   {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    memset(sa, 0, sizeof *sa);
    int c;
    while ((c = getopt_long(argc, argv, "o:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': sa->out = optarg; break;
        case 'a': sa->name = optarg; break;
        case 'm':
            if (strcmp(optarg, "ratio") != 0 && strcmp(optarg, "bytes") != 0)
                die_usage("--metric: expected ratio or bytes, got '%s'", optarg);
            sa->bytes_metric = optarg[0] == 'b';
            break;
        case 'p':
            if (strcmp(optarg, "max") != 0 && strcmp(optarg, "sum") != 0)
                die_usage("--project: expected max or sum, got '%s'", optarg);
            sa->project = optarg[0] == 'm' ? PROJECT_MAX : PROJECT_SUM;
            break;
        case 'c': sa->cell = (int)parse_int("--cell", optarg, 1, 256); break;
        case 'q': sa->quiet = 1; break;
        case 'h': fputs(stat_tiles_help, stdout); return 1;
        default: die_usage("stat-tiles: bad option");
        }
    }
    if (optind + 1 != argc || sa->out == NULL)
        die_usage("stat-tiles: expected one store and -o OUT.png");
    sa->path = argv[optind];
    return 0;
}

/* Step 2: every tile's index entry summed into its cell, and the five
 * tiles with the most stored bytes; an exit status. */
static int gather(const vt_store *s, const vt_array *a, const stat_args *sa, tile_map *m)
{
    vt_array_info *ai = &m->ai;
    vt_array_info_get(a, ai);
    /* the grid's last three axes (fewer for 1-d/2-d arrays: missing ones are 1) */
    m->g[0] = m->g[1] = m->g[2] = 1;
    int k0 = ai->ndim > 3 ? ai->ndim - 3 : 0;
    for (int d = k0; d < ai->ndim; d++)
        m->g[3 - (ai->ndim - d)] = ai->grid[d];
    const uint64_t *g = m->g;
    if (g[1] * g[2] > 4096 * 4096)
        return file_error(sa->path, "a %" PRIu64 " x %" PRIu64 " tile grid is too large to draw", g[1], g[2]);
    uint64_t ncell = g[0] * g[1] * g[2];
    m->raw = calloc(ncell, sizeof *m->raw);
    m->stored = calloc(ncell, sizeof *m->stored);
    if (m->raw == NULL || m->stored == NULL)
        return file_error(sa->path, "out of memory");
    for (uint64_t t = 0; t < ai->ntiles; t++) {
        vt_tile_info ti;
        int rc = vt_tile_get(a, t, &ti);
        if (rc)
            return lib_error(vt_errmsg(s), rc);
        uint64_t z = ai->ndim >= 3 ? ti.coord[ai->ndim - 3] : 0, y = ai->ndim >= 2 ? ti.coord[ai->ndim - 2] : 0,
                 x = ti.coord[ai->ndim - 1];
        uint64_t i = (z * g[1] + y) * g[2] + x;
        m->raw[i] += (double)ti.raw_size;
        m->stored[i] += (double)ti.stored_size;
        /* the five tiles with the most stored bytes */
        int pos = m->ntop;
        while (pos > 0 && m->top_bytes[pos - 1] < ti.stored_size)
            pos--;
        if (pos < 5) {
            for (int j = (m->ntop < 5 ? m->ntop : 4); j > pos; j--) {
                m->top[j] = m->top[j - 1];
                m->top_bytes[j] = m->top_bytes[j - 1];
            }
            m->top[pos] = t;
            m->top_bytes[pos] = ti.stored_size;
            if (m->ntop < 5)
                m->ntop++;
        }
    }
    return 0;
}

/* Step 3: the value of each panel cell -- per z tile-slab, or projected
 * over z -- and their range; an exit status. */
static int panel_values(const stat_args *sa, tile_map *m)
{
    const uint64_t *g = m->g;
    m->npanel = sa->project ? 1 : g[0];
    m->val = malloc(m->npanel * g[1] * g[2] * sizeof *m->val);
    if (m->val == NULL)
        return file_error(sa->path, "out of memory");
    for (uint64_t pz = 0; pz < m->npanel; pz++)
        for (uint64_t yx = 0; yx < g[1] * g[2]; yx++) {
            double v = (double)NAN, r = 0, b = 0;
            uint64_t z0 = sa->project ? 0 : pz, z1 = sa->project ? g[0] : pz + 1;
            for (uint64_t z = z0; z < z1; z++) {
                uint64_t i = z * g[1] * g[2] + yx;
                double cellv = m->stored[i] > 0 ? (sa->bytes_metric ? m->stored[i] : m->raw[i] / m->stored[i])
                                                : (double)NAN;
                if (sa->project == PROJECT_MAX && !isnan(cellv))
                    v = isnan(v) || cellv > v ? cellv : v;
                r += m->raw[i];
                b += m->stored[i];
            }
            if (sa->project != PROJECT_MAX)
                v = b > 0 ? (sa->bytes_metric ? b : r / b) : (double)NAN;
            m->val[pz * g[1] * g[2] + yx] = v;
        }
    m->lo = INFINITY;
    m->hi = -INFINITY;
    for (uint64_t i = 0; i < m->npanel * g[1] * g[2]; i++)
        if (!isnan(m->val[i])) {
            m->lo = m->val[i] < m->lo ? m->val[i] : m->lo;
            m->hi = m->val[i] > m->hi ? m->val[i] : m->hi;
        }
    if (m->lo > m->hi)
        m->lo = m->hi = 1;
    return 0;
}

/* Step 4: the panels, one cell per tile on a log colour scale, the colour
 * bar and the constant-tile swatch; then the PNG and, unless quiet, the
 * summary; an exit status. */
static int draw(const vt_array *a, const stat_args *sa, const tile_map *m)
{
    const vt_array_info *ai = &m->ai;
    const uint64_t *g = m->g;
    double llo = log(m->lo > 0 ? m->lo : 1e-9), lhi = log(m->hi > 0 ? m->hi : 1e-9);
    uint64_t longest = g[1] > g[2] ? g[1] : g[2];
    int cell = sa->cell;
    if (cell == 0)
        cell = (int)(256 / longest) < 2 ? 2 : (int)(256 / longest) > 24 ? 24 : (int)(256 / longest);
    int pw = (int)g[2] * cell, ph = (int)g[1] * cell, scale = 1;
    int cols = (int)ceil(sqrt((double)m->npanel)), rows = (int)((m->npanel + (uint64_t)cols - 1) / (uint64_t)cols);
    int gap = 6, cap = text_height(scale) + 4;
    int W = cols * pw + (cols + 1) * gap, barh = 12, legend = barh + 2 * text_height(scale) + 16;
    if (W < 260)
        W = 260;
    int H = rows * (ph + cap + gap) + gap + legend;
    if ((double)W * H > 1e8)
        return file_error(sa->path, "the picture would be %d x %d pixels; use --project or a smaller --cell", W, H);
    canvas cv = {0, 0, NULL};
    if (!canvas_init(&cv, W, H, render_bg))
        return file_error(sa->path, "out of memory for a %d x %d picture", W, H);
    static const uint8_t constant[3] = {150, 150, 150};
    for (uint64_t pz = 0; pz < m->npanel; pz++) {
        int x0 = gap + (int)(pz % (uint64_t)cols) * (pw + gap);
        int y0 = gap + (int)(pz / (uint64_t)cols) * (ph + cap + gap) + cap;
        char caption[64];
        if (sa->project)
            snprintf(caption, sizeof caption, "%s OVER Z", sa->project == PROJECT_MAX ? "MAX" : "SUM");
        else {
            int za = ai->ndim >= 3 ? ai->ndim - 3 : 0;
            uint64_t z1 = (pz + 1) * ai->tile[za];
            snprintf(caption, sizeof caption, "Z %" PRIu64 "-%" PRIu64, pz * ai->tile[za],
                     (z1 < ai->shape[za] ? z1 : ai->shape[za]) - 1);
        }
        canvas_text(&cv, x0, y0 - cap + 2, caption, render_ink, scale);
        for (uint64_t y = 0; y < g[1]; y++)
            for (uint64_t x = 0; x < g[2]; x++) {
                double v = m->val[(pz * g[1] + y) * g[2] + x];
                uint8_t col[3];
                if (isnan(v))
                    memcpy(col, constant, 3);
                else
                    heat_colour(lhi > llo ? (log(v) - llo) / (lhi - llo) : 1, col);
                canvas_rect(&cv, x0 + (int)x * cell, y0 + (int)y * cell, cell - (cell >= 6), cell - (cell >= 6), col);
            }
    }
    /* colour bar with its ends, and the constant-tile swatch */
    int by = H - legend + 4, bw = W - 2 * gap;
    for (int x = 0; x < bw; x++) {
        uint8_t col[3];
        heat_colour((double)x / (bw - 1), col);
        canvas_rect(&cv, gap + x, by, 1, barh, col);
    }
    char t1[64], t2[64], t3[64];
    snprintf(t1, sizeof t1, sa->bytes_metric ? "%.0f B" : "%.2fx", m->lo);
    snprintf(t2, sizeof t2, sa->bytes_metric ? "%.0f B" : "%.2fx", m->hi);
    canvas_text(&cv, gap, by + barh + 3, t1, render_ink, scale);
    canvas_text(&cv, W - gap - text_width(t2, scale), by + barh + 3, t2, render_ink, scale);
    snprintf(t3, sizeof t3, "%s, LOG SCALE", sa->bytes_metric ? "STORED BYTES" : "RATIO");
    canvas_text(&cv, (W - text_width(t3, scale)) / 2, by + barh + 3, t3, render_ink, scale);
    int sy = by + barh + 3 + text_height(scale) + 3;
    canvas_rect(&cv, gap, sy, 7, 7, constant);
    canvas_text(&cv, gap + 10, sy, "CONSTANT TILE (NO BYTES)", render_ink, scale);
    char desc[512], version[64];
    snprintf(version, sizeof version, "voxtile %s", vt_version_string());
    snprintf(desc, sizeof desc, "array '%s', %s per tile, %s; range %g to %g", ai->name,
             sa->bytes_metric ? "stored bytes" : "compression ratio",
             sa->project == PROJECT_MAX   ? "max over z"
             : sa->project == PROJECT_SUM ? "summed over z"
                                          : "one panel per z tile-slab",
             m->lo, m->hi);
    const char *keys[] = {"Software", "Source", "Description"};
    const char *values[] = {version, sa->path, desc};
    int status = png_write(sa->out, cv.rgb, W, H, 3, keys, values, 3);
    canvas_free(&cv);
    if (status != 0 || sa->quiet)
        return status;
    char b1[32], b2[32];
    printf("%s: %d x %d px, %s\n", sa->out, W, H, desc);
    printf("array '%s': %s stored of %s raw, ratio %.3f; %" PRIu64 " of %" PRIu64 " tiles constant\n", ai->name,
           human((double)ai->stored_bytes, b1, sizeof b1), human((double)ai->raw_bytes, b2, sizeof b2),
           (double)ai->raw_bytes / (double)(ai->stored_bytes ? ai->stored_bytes : 1), ai->constant_tiles, ai->ntiles);
    for (int i = 0; i < m->ntop && m->top_bytes[i] > 0; i++) {
        vt_tile_info ti;
        vt_tile_get(a, m->top[i], &ti);
        printf("  tile %" PRIu64 " (", m->top[i]);
        for (int d = 0; d < ai->ndim; d++)
            printf("%s%" PRIu64, d ? "," : "", ti.coord[d]);
        printf("): %u bytes, ratio %.2f\n", ti.stored_size, (double)ti.raw_size / ti.stored_size);
    }
    return 0;
}

/* parse the command line, open the store, gather the tiles' numbers, draw */
int cmd_stat_tiles(int argc, char **argv)
{
    stat_args sa;
    if (parse_args(argc, argv, &sa) != 0)
        return 0; /* --help */
    vt_store *s;
    int rc = vt_open(sa.path, 0, &s);
    if (rc)
        return lib_error(vt_errmsg(NULL), rc);
    const vt_array *a;
    tile_map m;
    memset(&m, 0, sizeof m);
    int status = open_array(s, sa.name, &a) != 0 ? 1 : 0;
    if (status == 0)
        status = gather(s, a, &sa, &m);
    if (status == 0)
        status = panel_values(&sa, &m);
    if (status == 0)
        status = draw(a, &sa, &m);
    free(m.raw);
    free(m.stored);
    free(m.val);
    vt_close(s);
    return status;
}
