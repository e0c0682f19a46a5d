/* Text headers (NRRD, MetaImage; text.c): a line reader for the header at the
 * start of a file, and the parsers of its tokens. */
#ifndef VT_TEXT_H
#define VT_TEXT_H

#include "internal.h"

/* Longest line of a text header, in bytes. */
#define VT_TEXT_LINE_MAX (1u << 20)

/* Reads the text header at the start of a file line by line. The bytes read
 * so far are in buf[0, len); pos is where the next line starts, which once
 * the caller has seen the header's last line is where the data begin. */
typedef struct vt_lines {
    const char *path;
    int fd;
    unsigned char *buf;
    size_t len, cap, pos;
    size_t max;        /* longest header accepted */
    bool eof;
    unsigned lineno;   /* of the line last returned, from 1 */
    char *line;        /* copy of that line, NUL-terminated */
    size_t line_cap;
} vt_lines;

/* Open @p path for reading a header of at most @p max bytes. */
VT_INTERNAL int vt__lines_open(vt_lines *r, const char *path, size_t max);
/* The next line without its "\n" or "\r\n", NUL-terminated, in r->line (valid
 * until the next call): 1; 0 at the end of the file; or an error (a line
 * over VT_TEXT_LINE_MAX bytes or holding a NUL byte, a header over max). */
VT_INTERNAL int vt__lines_next(vt_lines *r, char **line);
VT_INTERNAL void vt__lines_close(vt_lines *r);

/* @p name (a data file named in a header) as a path: relative names are taken
 * relative to the folder of @p header_path. malloc'd; NULL when out of memory. */
VT_INTERNAL char *vt__path_beside(const char *header_path, const char *name);

/* Tokens and numbers of header values. */
VT_INTERNAL bool vt__text_space(char c); /* blank other than a line end */
VT_INTERNAL char *vt__text_trim(char *s); /* blanks cut at both ends, in place */
/* Next blank-separated token of *p: its start in *tok, its length (0 at the end). */
VT_INTERNAL size_t vt__text_token(const char **p, const char **tok);
/* A whole token of @p n bytes as an integer (optional sign), overflow-checked. */
VT_INTERNAL bool vt__text_i64(const char *t, size_t n, int64_t *v);
/* A whole token of @p n bytes as a finite number. */
VT_INTERNAL bool vt__text_f64(const char *t, size_t n, double *v);

#endif
