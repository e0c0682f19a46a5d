/* Canvas, font, colour maps and PNG output for the CLI's pictures. */
#include "render.h"
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const uint8_t render_bg[3] = {24, 24, 24}, render_ink[3] = {230, 230, 230};

bool canvas_init(canvas *cv, int w, int h, const uint8_t c[3])
{
    cv->w = w;
    cv->h = h;
    cv->rgb = NULL;
    if (w < 1 || h < 1 || (size_t)w > SIZE_MAX / 3 / (size_t)h)
        return false;
    cv->rgb = malloc((size_t)w * (size_t)h * 3);
    if (cv->rgb == NULL)
        return false;
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++)
        memcpy(cv->rgb + 3 * i, c, 3);
    return true;
}

void canvas_free(canvas *cv)
{
    free(cv->rgb);
    cv->rgb = NULL;
}

void canvas_rect(canvas *cv, int x, int y, int w, int h, const uint8_t c[3])
{
    int x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    int x1 = x + w > cv->w ? cv->w : x + w, y1 = y + h > cv->h ? cv->h : y + h;
    for (int yy = y0; yy < y1; yy++)
        for (int xx = x0; xx < x1; xx++)
            memcpy(cv->rgb + 3 * ((size_t)yy * (size_t)cv->w + (size_t)xx), c, 3);
}

void canvas_blend(canvas *cv, int x, int y, const uint8_t c[3], double alpha)
{
    if (x < 0 || y < 0 || x >= cv->w || y >= cv->h)
        return;
    uint8_t *p = cv->rgb + 3 * ((size_t)y * (size_t)cv->w + (size_t)x);
    for (int k = 0; k < 3; k++)
        p[k] = (uint8_t)lround((1 - alpha) * p[k] + alpha * c[k]);
}

/* 5 x 7 glyphs, drawn row by row ('#' = ink). */
static const struct glyph {
    char c;
    const char *rows;
} glyphs[] = {
    {' ', "....." "....." "....." "....." "....." "....." "....."},
    {'%', "##..." "##..#" "...#." "..#.." ".#..." "#..##" "...##"},
    {'(', "...#." "..#.." ".#..." ".#..." ".#..." "..#.." "...#."},
    {')', ".#..." "..#.." "...#." "...#." "...#." "..#.." ".#..."},
    {'+', "....." "..#.." "..#.." "#####" "..#.." "..#.." "....."},
    {',', "....." "....." "....." "....." ".##.." "..#.." ".#..."},
    {'-', "....." "....." "....." "#####" "....." "....." "....."},
    {'.', "....." "....." "....." "....." "....." ".##.." ".##.."},
    {'/', "....." "....#" "...#." "..#.." ".#..." "#...." "....."},
    {'0', ".###." "#...#" "#..##" "#.#.#" "##..#" "#...#" ".###."},
    {'1', "..#.." ".##.." "..#.." "..#.." "..#.." "..#.." ".###."},
    {'2', ".###." "#...#" "....#" "...#." "..#.." ".#..." "#####"},
    {'3', "#####" "...#." "..#.." "...#." "....#" "#...#" ".###."},
    {'4', "...#." "..##." ".#.#." "#..#." "#####" "...#." "...#."},
    {'5', "#####" "#...." "####." "....#" "....#" "#...#" ".###."},
    {'6', "..##." ".#..." "#...." "####." "#...#" "#...#" ".###."},
    {'7', "#####" "....#" "...#." "..#.." ".#..." ".#..." ".#..."},
    {'8', ".###." "#...#" "#...#" ".###." "#...#" "#...#" ".###."},
    {'9', ".###." "#...#" "#...#" ".####" "....#" "...#." ".##.."},
    {':', "....." ".##.." ".##.." "....." ".##.." ".##.." "....."},
    {'<', "...#." "..#.." ".#..." "#...." ".#..." "..#.." "...#."},
    {'=', "....." "....." "#####" "....." "#####" "....." "....."},
    {'>', ".#..." "..#.." "...#." "....#" "...#." "..#.." ".#..."},
    {'A', ".###." "#...#" "#...#" "#####" "#...#" "#...#" "#...#"},
    {'B', "####." "#...#" "#...#" "####." "#...#" "#...#" "####."},
    {'C', ".###." "#...#" "#...." "#...." "#...." "#...#" ".###."},
    {'D', "###.." "#..#." "#...#" "#...#" "#...#" "#..#." "###.."},
    {'E', "#####" "#...." "#...." "####." "#...." "#...." "#####"},
    {'F', "#####" "#...." "#...." "####." "#...." "#...." "#...."},
    {'G', ".###." "#...#" "#...." "#.###" "#...#" "#...#" ".####"},
    {'H', "#...#" "#...#" "#...#" "#####" "#...#" "#...#" "#...#"},
    {'I', ".###." "..#.." "..#.." "..#.." "..#.." "..#.." ".###."},
    {'J', "..###" "...#." "...#." "...#." "...#." "#..#." ".##.."},
    {'K', "#...#" "#..#." "#.#.." "##..." "#.#.." "#..#." "#...#"},
    {'L', "#...." "#...." "#...." "#...." "#...." "#...." "#####"},
    {'M', "#...#" "##.##" "#.#.#" "#.#.#" "#...#" "#...#" "#...#"},
    {'N', "#...#" "#...#" "##..#" "#.#.#" "#..##" "#...#" "#...#"},
    {'O', ".###." "#...#" "#...#" "#...#" "#...#" "#...#" ".###."},
    {'P', "####." "#...#" "#...#" "####." "#...." "#...." "#...."},
    {'Q', ".###." "#...#" "#...#" "#...#" "#.#.#" "#..#." ".##.#"},
    {'R', "####." "#...#" "#...#" "####." "#.#.." "#..#." "#...#"},
    {'S', ".####" "#...." "#...." ".###." "....#" "....#" "####."},
    {'T', "#####" "..#.." "..#.." "..#.." "..#.." "..#.." "..#.."},
    {'U', "#...#" "#...#" "#...#" "#...#" "#...#" "#...#" ".###."},
    {'V', "#...#" "#...#" "#...#" "#...#" "#...#" ".#.#." "..#.."},
    {'W', "#...#" "#...#" "#...#" "#.#.#" "#.#.#" "#.#.#" ".#.#."},
    {'X', "#...#" "#...#" ".#.#." "..#.." ".#.#." "#...#" "#...#"},
    {'Y', "#...#" "#...#" ".#.#." "..#.." "..#.." "..#.." "..#.."},
    {'Z', "#####" "....#" "...#." "..#.." ".#..." "#...." "#####"},
    {'_', "....." "....." "....." "....." "....." "....." "#####"},
    {'x', "....." "....." "#...#" ".#.#." "..#.." ".#.#." "#...#"},
};

static const char *glyph(char c)
{
    if (c >= 'a' && c <= 'z' && c != 'x')
        c = (char)(c - 'a' + 'A');
    for (size_t i = 0; i < sizeof glyphs / sizeof glyphs[0]; i++)
        if (glyphs[i].c == c)
            return glyphs[i].rows;
    return NULL;
}

int text_width(const char *s, int scale)
{
    size_t n = strlen(s);
    return n ? (int)(n * 6 - 1) * scale : 0;
}

int text_height(int scale) { return 7 * scale; }

void canvas_text(canvas *cv, int x, int y, const char *s, const uint8_t c[3], int scale)
{
    static const char unknown[] = ".###." "#...#" "...#." "..#.." "..#.." "....." "..#..";
    for (; *s; s++, x += 6 * scale) {
        const char *g = glyph(*s);
        if (g == NULL)
            g = unknown;
        for (int r = 0; r < 7; r++)
            for (int k = 0; k < 5; k++)
                if (g[r * 5 + k] == '#')
                    canvas_rect(cv, x + k * scale, y + r * scale, scale, scale, c);
    }
}

/* ---- colours ------------------------------------------------------------ */

void label_colour(int64_t v, uint8_t c[3])
{
    /* 1..20: distinct, saturated colours, ordered so that neighbouring values differ strongly */
    static const uint8_t table[20][3] = {
        {230, 25, 75},   {60, 180, 75},   {255, 225, 25},  {0, 130, 200},   {245, 130, 48},
        {145, 30, 180},  {70, 240, 240},  {240, 50, 230},  {210, 245, 60},  {250, 190, 212},
        {0, 128, 128},   {220, 190, 255}, {170, 110, 40},  {255, 250, 200}, {128, 0, 0},
        {170, 255, 195}, {128, 128, 0},   {255, 215, 180}, {0, 0, 128},     {255, 255, 255},
    };
    if (v >= 1 && v <= 20) {
        memcpy(c, table[v - 1], 3);
        return;
    }
    /* others: hue by the golden angle, full saturation, value 0.95 */
    double h = fmod((double)(v < 0 ? -v : v) * 0.6180339887498949, 1.0) * 6;
    int i = (int)h;
    double f = h - i, V = 0.95 * 255, p = 0, q = V * (1 - f), t = V * f;
    double rgb[6][3] = {{V, t, p}, {q, V, p}, {p, V, t}, {p, q, V}, {t, p, V}, {V, p, q}};
    for (int k = 0; k < 3; k++)
        c[k] = (uint8_t)lround(rgb[i % 6][k]);
}

void heat_colour(double t, uint8_t c[3])
{
    static const double anchor[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    if (!(t > 0))
        t = 0;
    if (t > 1)
        t = 1;
    double x = t * 4;
    int i = (int)x;
    if (i > 3)
        i = 3;
    double f = x - i;
    for (int k = 0; k < 3; k++)
        c[k] = (uint8_t)lround(anchor[i][k] + f * (anchor[i + 1][k] - anchor[i][k]));
}

/* ---- PNG ---------------------------------------------------------------- */

typedef struct png_err {
    char msg[200];
} png_err;

static void on_error(png_structp png, png_const_charp msg)
{
    png_err *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

int png_write(const char *path, const uint8_t *pix, int w, int h, int channels, const char *const *keys,
              const char *const *values, int n)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wbxe");
    if (f == NULL)
        return file_error(tmp, "cannot create: %s", strerror(errno));
    png_err err = {""};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_textp text = calloc((size_t)(n > 0 ? n : 1), sizeof *text);
    volatile int ok = png && info && text;
    if (ok && setjmp(png_jmpbuf(png)) == 0) {
        png_init_io(png, f);
        png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8,
                     channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        for (int i = 0; i < n; i++) {
            text[i].compression = PNG_TEXT_COMPRESSION_NONE;
            text[i].key = (char *)keys[i];
            text[i].text = (char *)values[i];
        }
        if (n > 0)
            png_set_text(png, info, text, n);
        png_write_info(png, info);
        for (int y = 0; y < h; y++)
            png_write_row(png, pix + (size_t)y * (size_t)w * (size_t)channels);
        png_write_end(png, info);
    } else
        ok = 0;
    png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
    free(text);
    int saved = errno;
    if (ok && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        ok = 0, saved = errno;
    if (fclose(f) != 0 && ok)
        ok = 0, saved = errno;
    if (ok && rename(tmp, path) != 0)
        ok = 0, saved = errno;
    if (!ok) {
        unlink(tmp);
        return file_error(path, "cannot write the picture: %s", err.msg[0] ? err.msg : strerror(saved));
    }
    return 0;
}
