/* voxtile preview: orthogonal slices of a store as a PNG, read through the
 * lazy reader (only the tiles a slice crosses are decoded), with window and
 * level, a label overlay, tile grid lines, physical aspect ratio and
 * radiological orientation.
 *
 * Picture rules (docs/cli.md gives them to users; the tests check them):
 * - axis z shows rows y and columns x; axis y shows rows z, columns x; axis x
 *   shows rows z, columns y.
 * - Orientation: when the store has an affine from a NIfTI, NRRD or
 *   MetaImage source, every displayed axis whose voxel index grows towards
 *   R, A or S (the affine column's largest component is positive) is flipped,
 *   so pictures come out the radiological way: patient right on the left,
 *   anterior up in axial slices, superior up in coronal and sagittal ones.
 *   --no-orient shows index 0 at the top left.
 * - Aspect: a voxel of spacing (sr, sc) covers (sr/p, sc/p) output pixels,
 *   p = min(sr, sc), times --zoom: out = max(1, round(n * s / p * zoom)).
 *   Output pixel u samples display coordinate (u + 0.5) * n / out - 0.5:
 *   bilinear for images, the voxel floor((u + 0.5) * n / out) for labels.
 * - Grey = clamp(round((v - (C - W/2)) / W * 255), 0, 255); NaN is 0.
 * - Overlay: label value L != 0 blends label_colour(L) with weight alpha
 *   (default 0.5): round((1 - alpha) * grey + alpha * colour). */
#include "cli.h"
#include "render.h"
#include "display.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char preview_help[] =
    "usage: voxtile preview STORE -o OUT.png [options]\n"
    "\n"
    "Draw an orthogonal slice (or a montage of slices) of an array as a PNG. Only\n"
    "the tiles the slices cross are read. Physical spacing is honoured (anisotropic\n"
    "voxels are not squashed) and, for stores converted from NIfTI/NRRD/MetaImage,\n"
    "slices are shown radiologically (patient right on the left, anterior or\n"
    "superior up).\n"
    "\n"
    "  -o, --output FILE     the PNG to write (replaced atomically)\n"
    "      --array NAME      array to show (default image, else the first); a label\n"
    "                        array is drawn in label colours\n"
    "      --channel C       channel of a 4-d array (default 0)\n"
    "      --axis z|y|x      slice axis: z axial (default), y coronal, x sagittal\n"
    "      --index N         slice number along the axis (default: the middle)\n"
    "      --montage K       K evenly spaced slices side by side, each captioned\n"
    "      --window C,W      grey window centre and width, or a CT preset: soft\n"
    "                        (40,400), lung (-600,1500), bone (400,1800), brain (40,80);\n"
    "                        default: the array's value range\n"
    "      --overlay NAME    blend a label array (e.g. seg) over the slice in colours\n"
    "      --alpha A         overlay opacity 0..1 (default 0.5)\n"
    "      --grid            draw the tile grid\n"
    "      --zoom F          scale factor (default 1: one pixel per finest voxel)\n"
    "      --no-orient       index 0 at the top left, whatever the affine says\n"
    "  -q, --quiet           no summary line\n"
    "\n"
    "example: voxtile preview ct.vxt --axis y --window soft --overlay seg --montage 9 -o ct.png\n";

static const uint8_t grid_colour[3] = {255, 230, 0};

typedef struct view {
    const vt_array *a, *ov;
    vt_array_info ai;
    int lead;            /* leading (channel) axes: ndim - 3 */
    uint64_t channel;
    uint64_t shape[3];   /* z, y, x */
    uint32_t tile[3];
    double spacing[3];
    bool flip[3];        /* per spatial axis */
    int axis, rax, cax;  /* slice axis; displayed row and column axes */
    uint64_t nr, nc;     /* slice rows and columns */
    int out_h, out_w;
    double lo, width;    /* grey window: lo = C - W/2 */
    bool label_colours;  /* the array itself is drawn in label colours */
    double alpha;
    bool grid;
} view;

/* Read slice k of array a as doubles, rows nr x cols nc. */
static int read_slice(const view *v, const vt_array *a, uint64_t k, double *out)
{
    int64_t start[VT_MAX_DIMS] = {0};
    uint64_t size[VT_MAX_DIMS];
    for (int d = 0; d < v->lead; d++) {
        start[d] = d == v->lead - 1 ? (int64_t)v->channel : 0;
        size[d] = 1;
    }
    for (int d = 0; d < 3; d++) {
        start[v->lead + d] = d == v->axis ? (int64_t)k : 0;
        size[v->lead + d] = d == v->axis ? 1 : v->shape[d];
    }
    vt_read_opts o;
    vt_read_opts_init(&o);
    o.dtype = VT_F64;
    /* physical values (a scaled NIfTI's HU), which the windows assume */
    o.transform = vt_array_scaling(a, &o.scale, &o.offset);
    return vt_read(a, start, size, &o, out);
}

static double bilinear(const double *img, uint64_t nr, uint64_t nc, bool fr, bool fc, double r, double c)
{
    double r0f = floor(r), c0f = floor(c);
    double wr = r - r0f, wc = c - c0f;
    int64_t r0 = (int64_t)r0f, c0 = (int64_t)c0f;
    int64_t rr[2] = {r0, r0 + 1}, cc[2] = {c0, c0 + 1};
    double acc = 0;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            int64_t y = rr[i] < 0 ? 0 : rr[i] >= (int64_t)nr ? (int64_t)nr - 1 : rr[i];
            int64_t x = cc[j] < 0 ? 0 : cc[j] >= (int64_t)nc ? (int64_t)nc - 1 : cc[j];
            if (fr)
                y = (int64_t)nr - 1 - y;
            if (fc)
                x = (int64_t)nc - 1 - x;
            double w = (i ? wr : 1 - wr) * (j ? wc : 1 - wc);
            if (w != 0)
                acc += w * img[(uint64_t)y * nc + (uint64_t)x];
        }
    return acc;
}

static uint64_t nearest(uint64_t u, uint64_t n, int out, bool flip)
{
    uint64_t i = (uint64_t)floor(((double)u + 0.5) * (double)n / out);
    if (i >= n)
        i = n - 1;
    return flip ? n - 1 - i : i;
}

static uint8_t grey(const view *v, double x)
{
    if (isnan(x))
        return 0;
    double g = round((x - v->lo) / v->width * 255);
    return (uint8_t)(g < 0 ? 0 : g > 255 ? 255 : g);
}

/* Draw one slice at (x0, y0) of the canvas. */
static void draw_slice(const view *v, const double *img, const double *lab, canvas *cv, int x0, int y0)
{
    bool fr = v->flip[v->rax], fc = v->flip[v->cax];
    for (int u = 0; u < v->out_h; u++) {
        double r = ((double)u + 0.5) * (double)v->nr / v->out_h - 0.5;
        uint64_t rn = nearest((uint64_t)u, v->nr, v->out_h, fr);
        for (int w = 0; w < v->out_w; w++) {
            uint64_t cn = nearest((uint64_t)w, v->nc, v->out_w, fc);
            uint8_t px[3];
            if (v->label_colours) {
                double L = img[rn * v->nc + cn];
                if (L == 0 || isnan(L))
                    px[0] = px[1] = px[2] = 0;
                else
                    label_colour((int64_t)L, px);
            } else {
                double c = ((double)w + 0.5) * (double)v->nc / v->out_w - 0.5;
                px[0] = px[1] = px[2] = grey(v, bilinear(img, v->nr, v->nc, fr, fc, r, c));
            }
            uint8_t *p = cv->rgb + 3 * ((size_t)(y0 + u) * (size_t)cv->w + (size_t)(x0 + w));
            memcpy(p, px, 3);
            if (lab) {
                double L = lab[rn * v->nc + cn];
                if (L != 0 && !isnan(L)) {
                    uint8_t col[3];
                    label_colour((int64_t)L, col);
                    canvas_blend(cv, x0 + w, y0 + u, col, v->alpha);
                }
            }
        }
    }
    if (v->grid) { /* a line on the first output pixel at or after each tile boundary */
        for (uint64_t b = v->tile[v->rax]; b < v->nr; b += v->tile[v->rax]) {
            uint64_t db = fr ? v->nr - b : b;
            int u = (int)ceil((double)db * v->out_h / (double)v->nr - 1e-9);
            for (int w = 0; w < v->out_w; w++)
                canvas_blend(cv, x0 + w, y0 + u, grid_colour, 0.6);
        }
        for (uint64_t b = v->tile[v->cax]; b < v->nc; b += v->tile[v->cax]) {
            uint64_t db = fc ? v->nc - b : b;
            int w = (int)ceil((double)db * v->out_w / (double)v->nc - 1e-9);
            for (int u = 0; u < v->out_h; u++)
                canvas_blend(cv, x0 + w, y0 + u, grid_colour, 0.6);
        }
    }
}

static bool parse_window(const char *s, double *c, double *w)
{
    static const struct {
        const char *name;
        double c, w;
    } presets[] = {{"soft", 40, 400}, {"lung", -600, 1500}, {"bone", 400, 1800}, {"brain", 40, 80}};
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(s, presets[i].name) == 0) {
            *c = presets[i].c;
            *w = presets[i].w;
            return true;
        }
    char *end;
    *c = strtod(s, &end);
    if (end == s || *end != ',')
        return false;
    const char *p = end + 1;
    *w = strtod(p, &end);
    return end != p && *end == 0 && isfinite(*c) && isfinite(*w) && *w > 0;
}

/* Spacing (z, y, x) and the per-axis flips from the store's metadata. */
static void geometry(const vt_store *s, bool orient, double spacing[3], bool flip[3])
{
    vt_meta_type t;
    const void *d;
    size_t n;
    spacing[0] = spacing[1] = spacing[2] = 1;
    flip[0] = flip[1] = flip[2] = false;
    if (vt_meta_get(s, "spacing", &t, &d, &n) == 0 && t == VT_META_F64 && n == 3) {
        const double *sp = d;
        for (int k = 0; k < 3; k++)
            if (sp[k] > 0 && isfinite(sp[k]))
                spacing[k] = sp[k];
    }
    if (orient && vt_meta_get(s, "affine", &t, &d, &n) == 0 && t == VT_META_F64 && n == 16)
        display_flips(s, d, flip);
}

/* What the command line asks for. */
typedef struct preview_args {
    const char *path, *out, *name, *ovname, *window;
    long channel, index, montage;
    double zoom;
    double wc, ww; /* --window */
    bool orient;
    int quiet;
} preview_args;

/* Step 1: the command line; usage errors end the process. Returns 1 after --help. */
static int parse_args(int argc, char **argv, preview_args *pa, view *v)
{
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'}, {"array", required_argument, 0, 'a'},
        {"channel", required_argument, 0, 'c'}, {"axis", required_argument, 0, 'x'},
        {"index", required_argument, 0, 'i'},   {"montage", required_argument, 0, 'm'},
        {"window", required_argument, 0, 'w'},  {"overlay", required_argument, 0, 'O'},
        {"alpha", required_argument, 0, 'A'},   {"grid", no_argument, 0, 'g'},
        {"zoom", required_argument, 0, 'z'},    {"no-orient", no_argument, 0, 'N'},
        {"quiet", no_argument, 0, 'q'},         {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    memset(pa, 0, sizeof *pa);
    pa->index = -1;
    pa->montage = 1;
    pa->zoom = 1;
    pa->orient = true;
    v->alpha = 0.5;
    int c;
    while ((c = getopt_long(argc, argv, "o:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': pa->out = optarg; break;
        case 'a': pa->name = optarg; break;
        case 'c': pa->channel = parse_int("--channel", optarg, 0, INT32_MAX); break;
        case 'x':
            if (strlen(optarg) != 1 || !strchr("zyx", optarg[0]))
                die_usage("--axis: expected z, y or x, got '%s'", optarg);
            v->axis = optarg[0] == 'z' ? 0 : optarg[0] == 'y' ? 1 : 2;
            break;
        case 'i': pa->index = parse_int("--index", optarg, 0, INT32_MAX); break;
        case 'm': pa->montage = parse_int("--montage", optarg, 1, 256); break;
        case 'w': pa->window = optarg; break;
        case 'O': pa->ovname = optarg; break;
        case 'A':
            v->alpha = parse_double("--alpha", optarg);
            if (v->alpha < 0 || v->alpha > 1)
                die_usage("--alpha: expected 0..1, got '%s'", optarg);
            break;
        case 'g': v->grid = true; break;
        case 'z':
            pa->zoom = parse_double("--zoom", optarg);
            if (!(pa->zoom > 0 && pa->zoom <= 64))
                die_usage("--zoom: expected a factor in (0, 64], got '%s'", optarg);
            break;
        case 'N': pa->orient = false; break;
        case 'q': pa->quiet = 1; break;
        case 'h': fputs(preview_help, stdout); return 1;
        default: die_usage("preview: bad option");
        }
    }
    if (optind + 1 != argc || pa->out == NULL)
        die_usage("preview: expected one store and -o OUT.png");
    if (pa->window && !parse_window(pa->window, &pa->wc, &pa->ww))
        die_usage("--window: expected C,W with W > 0 or soft, lung, bone, brain; got '%s'", pa->window);
    if (pa->index >= 0 && pa->montage > 1)
        die_usage("preview: --index and --montage exclude each other");
    pa->path = argv[optind];
    return 0;
}

/* Step 2: the array, its channel and overlay, and the slice's axes; an exit
 * status on failure (0 when all is well). */
static int choose_slices(const vt_store *s, preview_args *pa, view *v)
{
    const char *path = pa->path;
    if (open_array(s, pa->name, &v->a) != 0)
        return 1;
    vt_array_info_get(v->a, &v->ai);
    if (v->ai.ndim < 3)
        return file_error(path, "array '%s' has %d dimension%s; preview needs 3 (z, y, x) or more", v->ai.name,
                          v->ai.ndim, v->ai.ndim == 1 ? "" : "s");
    v->lead = v->ai.ndim - 3;
    uint64_t nchan = v->lead ? v->ai.shape[v->lead - 1] : 1;
    for (int d = 0; d < v->lead - 1; d++)
        if (v->ai.shape[d] != 1)
            return file_error(path, "array '%s' has %d dimensions with more than one channel axis", v->ai.name,
                              v->ai.ndim);
    if ((uint64_t)pa->channel >= nchan) {
        fprintf(stderr, "voxtile: %s: array '%s' has %" PRIu64 " channel%s; --channel %ld is out of range\n", path,
                v->ai.name, nchan, nchan == 1 ? "" : "s", pa->channel);
        return EXIT_USAGE;
    }
    v->channel = (uint64_t)pa->channel;
    for (int d = 0; d < 3; d++) {
        v->shape[d] = v->ai.shape[v->lead + d];
        v->tile[d] = v->ai.tile[v->lead + d];
    }
    if (pa->ovname) {
        if (open_array(s, pa->ovname, &v->ov) != 0)
            return 1;
        vt_array_info oi;
        vt_array_info_get(v->ov, &oi);
        bool same = oi.ndim >= 3;
        for (int d = 0; d < 3 && same; d++)
            same = oi.shape[oi.ndim - 3 + d] == v->shape[d];
        for (int d = 0; d < oi.ndim - 3 && same; d++)
            same = oi.shape[d] == 1;
        if (!same)
            return file_error(path, "overlay '%s' does not have the spatial shape of '%s'", oi.name, v->ai.name);
    }
    v->rax = v->axis == 0 ? 1 : 0;
    v->cax = v->axis == 2 ? 1 : 2;
    v->nr = v->shape[v->rax];
    v->nc = v->shape[v->cax];
    if (v->nr > (UINT64_C(1) << 25) / v->nc) /* the slice is read whole, as doubles */
        return file_error(path, "a %" PRIu64 " x %" PRIu64 " slice is too large to draw (at most 2^25 voxels)",
                          v->nr, v->nc);
    uint64_t naxis = v->shape[v->axis];
    if (pa->index >= 0 && (uint64_t)pa->index >= naxis) {
        fprintf(stderr, "voxtile: %s: --index %ld is outside 0..%" PRIu64 " along %c\n", path, pa->index,
                naxis - 1, "zyx"[v->axis]);
        return EXIT_USAGE;
    }
    if ((uint64_t)pa->montage > naxis)
        pa->montage = (long)naxis;
    return 0;
}

/* Step 3: the picture of one slice -- orientation, physical aspect, size --
 * and the grey window; an exit status on failure. */
static int fit_picture(const vt_store *s, preview_args *pa, view *v)
{
    geometry(s, pa->orient, v->spacing, v->flip);
    double sr = v->spacing[v->rax], sc = v->spacing[v->cax], p = sr < sc ? sr : sc;
    double oh = round((double)v->nr * sr / p * pa->zoom), ow = round((double)v->nc * sc / p * pa->zoom);
    if (oh > 16384 || ow > 16384) {
        /* with --zoom above 1 the command line asked for it; otherwise the store's shape
         * and spacing do (a hostile spacing can ask for 1e300 pixels) */
        double fit = 16384 / (oh > ow ? oh : ow) * pa->zoom;
        fprintf(stderr, "voxtile: %s: a %.6g x %.6g pixel slice (spacing %g x %g mm) is too large to draw "
                "(at most 16384 pixels a side)", pa->path, ow, oh, sc, sr);
        if (fit >= 1e-3)
            fprintf(stderr, "; try --zoom %.3g", floor(fit * 1000) / 1000);
        fputc('\n', stderr);
        return pa->zoom > 1 ? EXIT_USAGE : EXIT_FAILURE;
    }
    v->out_h = oh < 1 ? 1 : (int)oh;
    v->out_w = ow < 1 ? 1 : (int)ow;
    v->label_colours = vt_label_count(v->a) > 0 && pa->window == NULL;
    if (pa->window) {
        v->lo = pa->wc - pa->ww / 2;
        v->width = pa->ww;
        return 0;
    }
    double mn = isnan(v->ai.min) ? 0 : v->ai.min, mx = isnan(v->ai.max) ? 1 : v->ai.max;
    double slope, inter;
    if (vt_array_scaling(v->a, &slope, &inter)) { /* the range of the values drawn */
        double a = mn * slope + inter, b = mx * slope + inter;
        mn = a < b ? a : b;
        mx = a < b ? b : a;
    }
    v->lo = mn;
    v->width = mx > mn ? mx - mn : 1;
    pa->wc = v->lo + v->width / 2;
    pa->ww = v->width;
    return 0;
}

/* Step 4: read and draw the slice (or the montage's), write the PNG and
 * say what it shows; an exit status. */
static int draw(const vt_store *s, const preview_args *pa, const view *v)
{
    const char *path = pa->path;
    long montage = pa->montage;
    uint64_t naxis = v->shape[v->axis];
    double sr = v->spacing[v->rax], sc = v->spacing[v->cax], p = sr < sc ? sr : sc;
    /* layout: one slice alone; a montage in a grid with a caption strip over each */
    int cols = 1, rows = 1, gap = 0, cap = 0, scale = v->out_w >= 200 ? 2 : 1;
    if (montage > 1) {
        cols = (int)ceil(sqrt((double)montage));
        rows = (int)((montage + cols - 1) / cols);
        gap = 4;
        cap = text_height(scale) + 4;
    }
    int W = cols * v->out_w + (cols + 1) * gap, H = rows * (v->out_h + cap + gap) + gap;
    int status = 1, rc;
    double *img = NULL, *lab = NULL;
    canvas cv = {0, 0, NULL};
    if (!canvas_init(&cv, W, H, render_bg) || (img = malloc(v->nr * v->nc * sizeof *img)) == NULL ||
        (v->ov && (lab = malloc(v->nr * v->nc * sizeof *lab)) == NULL)) {
        file_error(path, "out of memory for a %d x %d picture", W, H);
        goto done;
    }
    char slices[512] = "";
    size_t sl = 0;
    for (long i = 0; i < montage; i++) {
        uint64_t k = montage > 1     ? (uint64_t)floor(((double)i + 0.5) * (double)naxis / (double)montage)
                     : pa->index >= 0 ? (uint64_t)pa->index
                                      : naxis / 2;
        if ((rc = read_slice(v, v->a, k, img)) != 0 || (v->ov && (rc = read_slice(v, v->ov, k, lab)) != 0)) {
            lib_error(vt_errmsg(s), rc);
            goto done;
        }
        int x0 = gap + (int)(i % cols) * (v->out_w + gap), y0 = gap + (int)(i / cols) * (v->out_h + cap + gap) + cap;
        draw_slice(v, img, lab, &cv, x0, y0);
        if (montage > 1) {
            char caption[32];
            snprintf(caption, sizeof caption, "%c %" PRIu64, "ZYX"[v->axis], k);
            canvas_text(&cv, x0, y0 - cap + 2, caption, render_ink, scale);
        }
        if (sl < sizeof slices - 24)
            sl += (size_t)snprintf(slices + sl, sizeof slices - sl, "%s%" PRIu64, i ? "," : "", k);
    }
    /* grey unless something is in colour */
    bool colour = v->ov || v->grid || v->label_colours;
    uint8_t *pix = cv.rgb;
    if (!colour)
        for (size_t i = 0; i < (size_t)W * (size_t)H; i++)
            pix[i] = cv.rgb[3 * i];
    char desc[1024], version[64];
    snprintf(version, sizeof version, "voxtile %s", vt_version_string());
    snprintf(desc, sizeof desc,
             "array '%s' channel %" PRIu64 ", axis %c, slice%s %s of %" PRIu64 ", window %g,%g, spacing %g x %g mm, "
             "%g mm per pixel, %s",
             v->ai.name, v->channel, "zyx"[v->axis], montage > 1 ? "s" : "", slices, naxis, pa->wc, pa->ww, sr, sc,
             p / pa->zoom,
             pa->orient && (v->flip[0] || v->flip[1] || v->flip[2]) ? "radiological orientation" : "index order");
    const char *keys[] = {"Software", "Source", "Description"};
    const char *values[] = {version, path, desc};
    if (png_write(pa->out, pix, W, H, colour ? 3 : 1, keys, values, 3) != 0)
        goto done;
    if (!pa->quiet)
        printf("%s: %d x %d px, %s\n", pa->out, W, H, desc);
    status = 0;
done:
    canvas_free(&cv);
    free(img);
    free(lab);
    return status;
}

/* parse the command line, open the store, choose the slices, fit the
 * picture, draw it */
int cmd_preview(int argc, char **argv)
{
    preview_args pa;
    view v;
    memset(&v, 0, sizeof v);
    if (parse_args(argc, argv, &pa, &v) != 0)
        return 0; /* --help */
    vt_store *s;
    int rc = vt_open(pa.path, 0, &s);
    if (rc)
        return lib_error(vt_errmsg(NULL), rc);
    int status = choose_slices(s, &pa, &v);
    if (status == 0)
        status = fit_picture(s, &pa, &v);
    if (status == 0)
        status = draw(s, &pa, &v);
    vt_close(s);
    return status;
}
