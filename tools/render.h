/* Pictures for the CLI (preview, stat-tiles): an RGB canvas, a 5x7 pixel
 * font, colour maps, and PNG output through libpng, published atomically. */
#ifndef VOXTILE_RENDER_H
#define VOXTILE_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The pictures' background and text colours. */
extern const uint8_t render_bg[3], render_ink[3];

typedef struct canvas {
    int w, h;
    uint8_t *rgb; /* w*h*3, row-major, top row first */
} canvas;

/* A w x h canvas filled with colour c; false when out of memory. */
bool canvas_init(canvas *cv, int w, int h, const uint8_t c[3]);
void canvas_free(canvas *cv);
/* Fill a rectangle (clipped to the canvas). */
void canvas_rect(canvas *cv, int x, int y, int w, int h, const uint8_t c[3]);
/* Blend colour c over one pixel with weight alpha (0..1); clipped. */
void canvas_blend(canvas *cv, int x, int y, const uint8_t c[3], double alpha);
/* Text in the 5x7 font, each font pixel scale x scale, left-top at (x, y);
 * letters are drawn upper-case (except 'x'); unknown characters as '?'. */
void canvas_text(canvas *cv, int x, int y, const char *s, const uint8_t c[3], int scale);
/* Width and height in pixels of a text line drawn at scale. */
int text_width(const char *s, int scale);
int text_height(int scale);

/* Colour of label value v (v != 0): a fixed table of 20 distinct colours
 * for 1..20, then colours spread by the golden angle in hue (docs/cli.md). */
void label_colour(int64_t v, uint8_t c[3]);
/* Colour of t in 0..1 on the heat scale (dark violet, blue, teal, green,
 * yellow: the viridis anchors). */
void heat_colour(double t, uint8_t c[3]);

/* Write a PNG: channels 1 (grey, pix w*h) or 3 (RGB, pix w*h*3), with tEXt
 * chunks from keys/values (n pairs). Written to a temporary next to path
 * and renamed: path holds the whole picture or is untouched. On failure
 * prints "voxtile: PATH: what" and returns 1. */
int png_write(const char *path, const uint8_t *pix, int w, int h, int channels, const char *const *keys,
              const char *const *values, int n);

#endif
