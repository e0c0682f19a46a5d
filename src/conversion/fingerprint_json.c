/* The dataset fingerprint as a file: nnU-Net's dataset_fingerprint.json keys
 * plus voxtile's under "voxtile" (vt_fingerprint_json, vt_fingerprint_save),
 * and a strict reader of such files, voxtile's or nnU-Net's
 * (vt_fingerprint_load): a small JSON parser into a tree, then the keys
 * checked one by one, every error naming the file, line and column. */
#include "fingerprint.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- writing ---------------------------------------------------------------- */

typedef struct text {
    char *p;
    size_t len, cap;
    bool oom;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0 || t->oom)
        return;
    if (t->len + (size_t)n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        char *p = vt__realloc(t->p, cap);
        if (p == NULL) {
            t->oom = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
    if ((size_t)n < sizeof small) {
        memcpy(t->p + t->len, small, (size_t)n + 1);
    } else {
        va_start(ap, fmt);
        vsnprintf(t->p + t->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    t->len += (size_t)n;
}

/* The shortest text that reads back as @p v (as Python's repr: "3.0", not
 * "3"), null when not finite. */
static void put_num(text *t, double v)
{
    if (!isfinite(v)) {
        put(t, "null");
        return;
    }
    char b[40];
    int digits = 1;
    for (; digits < 17; digits++) {
        snprintf(b, sizeof b, "%.*g", digits, v);
        if (strtod(b, NULL) == v)
            break;
    }
    snprintf(b, sizeof b, "%.*g", digits, v);
    double a = fabs(v);
    if (strchr(b, 'e') && a >= 1e-4 && a < 1e16) /* 3000, not 3e+03 */
        snprintf(b, sizeof b, "%.*f", digits - 1 - (int)floor(log10(a)) > 0 ? digits - 1 - (int)floor(log10(a)) : 0,
                 v);
    put(t, "%s%s", b, strpbrk(b, ".e") ? "" : ".0");
}

static void put_str(text *t, const char *s)
{
    if (s == NULL) {
        put(t, "null");
        return;
    }
    put(t, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            put(t, "\\%c", c);
        else if (c < 0x20)
            put(t, "\\u%04x", c);
        else
            put(t, "%c", c);
    }
    put(t, "\"");
}

static void put_nums(text *t, const double *v, int n)
{
    put(t, "[");
    for (int i = 0; i < n; i++) {
        put(t, i ? ", " : "");
        put_num(t, v[i]);
    }
    put(t, "]");
}

static void put_ints(text *t, const void *v, int n, bool is_signed)
{
    put(t, "[");
    for (int i = 0; i < n; i++) {
        if (is_signed)
            put(t, "%s%lld", i ? ", " : "", (long long)((const int64_t *)v)[i]);
        else
            put(t, "%s%llu", i ? ", " : "", (unsigned long long)((const uint64_t *)v)[i]);
    }
    put(t, "]");
}

static void put_json(const vt_fingerprint *fp, text *t)
{
    const vt_fingerprint_summary *s = &fp->sum;
    put(t, "{\n    \"foreground_intensity_properties_per_channel\": {");
    for (uint64_t c = 0; c < fp->channels; c++) {
        const vt_fingerprint_stats *o = &fp->stats[c];
        const struct {
            const char *key;
            double v;
        } f[] = {{"max", o->max}, {"mean", o->mean}, {"median", o->median}, {"min", o->min},
                 {"percentile_00_5", o->percentile_00_5}, {"percentile_99_5", o->percentile_99_5},
                 {"std", o->std}};
        put(t, "%s\n        \"%llu\": {", c ? "," : "", (unsigned long long)c);
        for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
            put(t, "%s\n            \"%s\": ", k ? "," : "", f[k].key);
            put_num(t, f[k].v);
        }
        put(t, "\n        }");
    }
    put(t, "\n    },\n    \"median_relative_size_after_cropping\": ");
    put_num(t, s->median_relative_size_after_cropping);
    put(t, ",\n    \"shapes_after_crop\": [");
    for (size_t i = 0; i < fp->ncases; i++) {
        put(t, "%s\n        ", i ? "," : "");
        put_ints(t, fp->cases[i].after, 3, false);
    }
    put(t, "\n    ],\n    \"spacings\": [");
    for (size_t i = 0; i < fp->ncases; i++) {
        put(t, "%s\n        ", i ? "," : "");
        put_nums(t, fp->cases[i].spacing, 3);
    }
    put(t, "\n    ],\n    \"voxtile\": {\n        \"anisotropic_axis\": ");
    if (s->anisotropic_axis >= 0)
        put(t, "%d", s->anisotropic_axis);
    else
        put(t, "null");
    put(t, ",\n        \"cases\": [");
    for (size_t i = 0; i < fp->ncases; i++) {
        const vt__fp_case *k = &fp->cases[i];
        bool known = k->shape[0] != 0;
        put(t, "%s\n            {\"crop\": ", i ? "," : "");
        if (known)
            put_ints(t, k->crop, 6, true);
        else
            put(t, "null");
        put(t, ", \"image\": ");
        put_str(t, k->image);
        put(t, ", \"seg\": ");
        put_str(t, k->seg);
        put(t, ", \"shape\": ");
        if (known)
            put_ints(t, k->shape, 3, false);
        else
            put(t, "null");
        put(t, "}");
    }
    put(t, "\n        ],\n        \"channels\": {");
    for (uint64_t c = 0; c < fp->channels; c++) {
        const vt_fingerprint_stats *o = &fp->stats[c];
        put(t, "%s\n            \"%llu\": {\"count\": %llu, \"nan_count\": %llu, \"percentile_error\": ", c ? "," : "",
            (unsigned long long)c, (unsigned long long)o->count, (unsigned long long)o->nan_count);
        put_num(t, o->percentile_error);
        put(t, "}");
    }
    put(t, "\n        },\n        \"median_shape_after_crop\": ");
    put_nums(t, s->median_shape, 3);
    put(t, ",\n        \"median_spacing\": ");
    put_nums(t, s->median_spacing, 3);
    put(t, ",\n        \"percentiles\": \"numpy's linear method over every foreground voxel; exact where "
           "percentile_error is 0, else off by at most percentile_error (2^20-bin float32 histogram)\"");
    put(t, ",\n        \"target_spacing\": ");
    put_nums(t, s->target_spacing, 3);
    put(t, ",\n        \"target_spacing_rule\": ");
    if (s->anisotropic_axis >= 0)
        put(t, "\"anisotropic: axis %d takes the 10th percentile of its spacings\"", s->anisotropic_axis);
    else
        put(t, "\"median spacing\"");
    put(t, ",\n        \"version\": 1\n    }\n}\n");
}

/* The text, malloc'd, under the lock; NULL when out of memory. */
static char *json_text(vt_fingerprint *fp, size_t *len)
{
    text t = {0};
    pthread_mutex_lock(&fp->lock);
    if (vt__fp_refresh(fp) == 0)
        put_json(fp, &t);
    else
        t.oom = true;
    pthread_mutex_unlock(&fp->lock);
    if (t.oom) {
        free(t.p);
        return NULL;
    }
    *len = t.len;
    return t.p;
}

long long vt_fingerprint_json(vt_fingerprint *fp, char *buf, size_t len)
{
    if (fp == NULL || (buf == NULL && len))
        return vt__fail(NULL, VT_EINVAL, "vt_fingerprint_json: NULL argument");
    size_t n;
    char *s = json_text(fp, &n);
    if (s == NULL)
        return vt__fail(NULL, VT_ENOMEM, "vt_fingerprint_json: out of memory");
    if (len) {
        size_t k = n < len - 1 ? n : len - 1;
        memcpy(buf, s, k);
        buf[k] = 0;
    }
    free(s);
    return (long long)n;
}

int vt_fingerprint_save(vt_fingerprint *fp, const char *path)
{
    if (fp == NULL || path == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_fingerprint_save: NULL argument");
    size_t n;
    char *s = json_text(fp, &n);
    if (s == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
    vt_tmpfile tf;
    int rc = vt__tmpfile_open(&tf, path, NULL);
    if (rc == 0) {
        int e = vt__pwrite_all(tf.fd, s, n, 0);
        if (e)
            rc = vt__fail_at(NULL, vt__errno_code(-e), path, "cannot write: %s", strerror(-e));
    }
    if (rc == 0)
        rc = vt__tmpfile_publish(&tf, NULL);
    vt__tmpfile_discard(&tf);
    free(s);
    return rc;
}

/* ---- reading: JSON into a tree ---------------------------------------------- */

enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct jval {
    int type, line, col;
    double num;
    char *str;           /* J_STR */
    struct jval *items;  /* J_ARR, J_OBJ */
    char **keys;         /* J_OBJ */
    size_t n;
} jval;

typedef struct jparser {
    const char *path;
    const char *p, *end, *line_start;
    int line, depth;
} jparser;

#define JSON_MAX_DEPTH 64
#define JSON_MAX_BYTES ((size_t)1 << 30)

static void jfree(jval *v)
{
    for (size_t i = 0; v->items && i < v->n; i++) {
        jfree(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
}

static int jfail(const jparser *jp, int line, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int jfail(const jparser *jp, int line, int col, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return vt__fail_at(NULL, VT_EFORMAT, jp->path, "line %d, column %d: %s", line, col, msg);
}

static int col_of(const jparser *jp) { return (int)(jp->p - jp->line_start) + 1; }

#define JFAIL(jp, ...) jfail(jp, (jp)->line, col_of(jp), __VA_ARGS__)

static void skip_space(jparser *jp)
{
    for (; jp->p < jp->end; jp->p++) {
        if (*jp->p == '\n') {
            jp->line++;
            jp->line_start = jp->p + 1;
        } else if (*jp->p != ' ' && *jp->p != '\t' && *jp->p != '\r') {
            break;
        }
    }
}

static bool literal(jparser *jp, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(jp->end - jp->p) < n || memcmp(jp->p, word, n) != 0)
        return false;
    jp->p += n;
    return true;
}

static void put_utf8(char *out, size_t *o, uint32_t cp)
{
    if (cp < 0x80) {
        out[(*o)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*o)++] = (char)(0xc0 | cp >> 6);
        out[(*o)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out[(*o)++] = (char)(0xe0 | cp >> 12);
        out[(*o)++] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[(*o)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        out[(*o)++] = (char)(0xf0 | cp >> 18);
        out[(*o)++] = (char)(0x80 | (cp >> 12 & 0x3f));
        out[(*o)++] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[(*o)++] = (char)(0x80 | (cp & 0x3f));
    }
}

static int hex4(jparser *jp, uint32_t *cp)
{
    *cp = 0;
    for (int i = 0; i < 4; i++, jp->p++) {
        char c = jp->p < jp->end ? *jp->p : 0;
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return JFAIL(jp, "\\u needs four hexadecimal digits");
        *cp = *cp << 4 | (uint32_t)d;
    }
    return 0;
}

/* A string at jp->p (the opening quote), unescaped into *out (malloc'd). */
static int parse_string(jparser *jp, char **out)
{
    const char *start = ++jp->p;
    size_t cap = 16;
    for (const char *q = start; q < jp->end && *q != '"'; q++)
        cap++;
    char *s = vt__malloc(cap + 4);
    if (s == NULL)
        return vt__fail_at(NULL, VT_ENOMEM, jp->path, "out of memory");
    size_t o = 0;
    for (;;) {
        if (jp->p >= jp->end) {
            free(s);
            return JFAIL(jp, "the string has no closing quote");
        }
        unsigned char c = (unsigned char)*jp->p;
        if (c == '"')
            break;
        if (c < 0x20) {
            free(s);
            return JFAIL(jp, "a control character (0x%02x) inside a string", c);
        }
        if (o + 4 >= cap) { /* escapes only shrink, \u may grow (surrogates: 6 -> 4) */
            char *n = vt__realloc(s, 2 * cap + 4);
            if (n == NULL) {
                free(s);
                return vt__fail_at(NULL, VT_ENOMEM, jp->path, "out of memory");
            }
            s = n;
            cap *= 2;
        }
        if (c != '\\') {
            s[o++] = (char)c;
            jp->p++;
            continue;
        }
        jp->p++;
        char e = jp->p < jp->end ? *jp->p : 0;
        const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t", *hit = e ? strchr(from, e) : NULL;
        if (hit) {
            s[o++] = to[hit - from];
            jp->p++;
            continue;
        }
        if (e != 'u') {
            free(s);
            return JFAIL(jp, "unknown escape '\\%c'", e ? e : '?');
        }
        jp->p++;
        uint32_t cp, lo;
        int rc = hex4(jp, &cp);
        if (rc == 0 && cp >= 0xd800 && cp < 0xdc00) { /* a surrogate pair */
            if (jp->end - jp->p < 2 || jp->p[0] != '\\' || jp->p[1] != 'u')
                rc = JFAIL(jp, "a high surrogate \\u%04x without its low half", cp);
            else if ((jp->p += 2, rc = hex4(jp, &lo)) == 0 && (lo < 0xdc00 || lo > 0xdfff))
                rc = JFAIL(jp, "\\u%04x is not a low surrogate", lo);
            else if (rc == 0)
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (rc == 0 && cp >= 0xdc00 && cp < 0xe000) {
            rc = JFAIL(jp, "a low surrogate \\u%04x without its high half", cp);
        }
        if (rc) {
            free(s);
            return rc;
        }
        put_utf8(s, &o, cp);
    }
    jp->p++;
    s[o] = 0;
    *out = s;
    return 0;
}

/* A number (RFC 8259's grammar, or NaN, Infinity, -Infinity as Python writes them). */
static int parse_number(jparser *jp, jval *v)
{
    v->type = J_NUM;
    if (literal(jp, "NaN")) {
        v->num = NAN;
        return 0;
    }
    if (literal(jp, "Infinity")) {
        v->num = INFINITY;
        return 0;
    }
    if (literal(jp, "-Infinity")) {
        v->num = -INFINITY;
        return 0;
    }
    const char *s = jp->p, *q = s;
#define DIGITS(q) ((q) < jp->end && *(q) >= '0' && *(q) <= '9')
    if (q < jp->end && *q == '-')
        q++;
    if (!DIGITS(q))
        return JFAIL(jp, "expected a value");
    if (*q == '0')
        q++;
    else
        while (DIGITS(q))
            q++;
    if (q < jp->end && *q == '.') {
        if (!DIGITS(q + 1))
            return jfail(jp, jp->line, col_of(jp) + (int)(q + 1 - s), "expected a digit after '.'");
        for (q++; DIGITS(q); q++)
            ;
    }
    if (q < jp->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < jp->end && (*q == '+' || *q == '-'))
            q++;
        if (!DIGITS(q))
            return jfail(jp, jp->line, col_of(jp) + (int)(q - s), "expected a digit in the exponent");
        while (DIGITS(q))
            q++;
    }
#undef DIGITS
    char buf[64];
    if ((size_t)(q - s) >= sizeof buf)
        return JFAIL(jp, "a number of more than %zu characters", sizeof buf - 1);
    memcpy(buf, s, (size_t)(q - s));
    buf[q - s] = 0;
    v->num = strtod(buf, NULL);
    jp->p = q;
    return 0;
}

static int parse_value(jparser *jp, jval *v);

/* The members of an array or object (jp->p after the bracket). */
static int parse_members(jparser *jp, jval *v, bool object)
{
    char close = object ? '}' : ']';
    size_t cap = 0;
    skip_space(jp);
    if (jp->p < jp->end && *jp->p == close) {
        jp->p++;
        return 0;
    }
    for (;;) {
        if (v->n == cap) {
            cap = cap ? 2 * cap : 4;
            jval *items = vt__realloc(v->items, cap * sizeof *items);
            char **keys = items && object ? vt__realloc(v->keys, cap * sizeof *keys) : NULL;
            if (items)
                v->items = items;
            if (keys)
                v->keys = keys;
            if (items == NULL || (object && keys == NULL))
                return vt__fail_at(NULL, VT_ENOMEM, jp->path, "out of memory");
        }
        jval *item = &v->items[v->n];
        memset(item, 0, sizeof *item);
        skip_space(jp);
        if (object) {
            v->keys[v->n] = NULL;
            if (jp->p >= jp->end || *jp->p != '"')
                return JFAIL(jp, "expected a key (a string in double quotes)");
            int line = jp->line, col = col_of(jp);
            char *key;
            int rc = parse_string(jp, &key);
            if (rc)
                return rc;
            for (size_t i = 0; i < v->n; i++)
                if (strcmp(v->keys[i], key) == 0) {
                    free(key);
                    return jfail(jp, line, col, "the key \"%s\" comes twice in one object", v->keys[i]);
                }
            v->keys[v->n] = key;
            skip_space(jp);
            if (jp->p >= jp->end || *jp->p != ':') {
                v->n++;
                return JFAIL(jp, "expected ':' after the key");
            }
            jp->p++;
        }
        v->n++;
        int rc = parse_value(jp, item);
        if (rc)
            return rc;
        skip_space(jp);
        if (jp->p < jp->end && *jp->p == ',') {
            jp->p++;
            continue;
        }
        if (jp->p < jp->end && *jp->p == close) {
            jp->p++;
            return 0;
        }
        return JFAIL(jp, "expected ',' or '%c'", close);
    }
}

static int parse_value(jparser *jp, jval *v)
{
    skip_space(jp);
    v->line = jp->line;
    v->col = col_of(jp);
    if (jp->p >= jp->end)
        return JFAIL(jp, "the file ends where a value should be");
    char c = *jp->p;
    if (c == '{' || c == '[') {
        if (++jp->depth > JSON_MAX_DEPTH)
            return JFAIL(jp, "nested more than %d deep", JSON_MAX_DEPTH);
        jp->p++;
        v->type = c == '{' ? J_OBJ : J_ARR;
        int rc = parse_members(jp, v, c == '{');
        jp->depth--;
        return rc;
    }
    if (c == '"') {
        v->type = J_STR;
        return parse_string(jp, &v->str);
    }
    if (literal(jp, "null")) {
        v->type = J_NULL;
        return 0;
    }
    if (literal(jp, "true") || literal(jp, "false")) {
        v->type = J_BOOL;
        v->num = jp->p[-1] == 'e' && jp->p[-2] == 'u';
        return 0;
    }
    return parse_number(jp, v);
}

/* ---- reading: the fingerprint's keys ----------------------------------------- */

static const jval *member(const jval *obj, const char *key)
{
    for (size_t i = 0; obj->type == J_OBJ && i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return &obj->items[i];
    return NULL;
}

#define VFAIL(jp, v, ...) jfail(jp, (v)->line, (v)->col, __VA_ARGS__)

/* A number, null as NaN. */
static int get_num(const jparser *jp, const jval *v, const char *what, double *out)
{
    if (v->type == J_NULL) {
        *out = NAN;
        return 0;
    }
    if (v->type != J_NUM)
        return VFAIL(jp, v, "%s must be a number", what);
    *out = v->num;
    return 0;
}

/* An integer in [0, 2^53] (@p neg: in [-2^53, 2^53]). */
static int get_int(const jparser *jp, const jval *v, const char *what, bool neg, int64_t *out)
{
    double lim = 9007199254740992.0;
    if (v->type != J_NUM || v->num != floor(v->num) || v->num > lim || v->num < (neg ? -lim : 0))
        return VFAIL(jp, v, "%s must be an integer%s", what, neg ? "" : " >= 0");
    *out = (int64_t)v->num;
    return 0;
}

static const jval *need(const jparser *jp, const jval *obj, const char *key, int type, const char *what, int *rc)
{
    static const char *const names[] = {"null", "true or false", "a number", "a string", "a list", "an object"};
    const jval *v = member(obj, key);
    if (v == NULL)
        *rc = VFAIL(jp, obj, "%s has no \"%s\"", what, key);
    else if (v->type != type)
        *rc = VFAIL(jp, v, "\"%s\" must be %s", key, names[type]);
    return *rc ? NULL : v;
}

/* "0", "1" ... as numbers; -1 for anything else ("01", "x"). */
static long channel_key(const char *k)
{
    if (k[0] < '0' || k[0] > '9' || (k[0] == '0' && k[1]) || strlen(k) > 6)
        return -1;
    for (const char *p = k; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    return atol(k);
}

static int load_channels(vt_fingerprint *fp, const jparser *jp, const jval *root)
{
    static const char *const keys[] = {"max", "mean", "median", "min", "percentile_00_5", "percentile_99_5", "std"};
    int rc = 0;
    const jval *fg = need(jp, root, "foreground_intensity_properties_per_channel", J_OBJ, "the file", &rc);
    if (rc)
        return rc;
    if (fg->n == 0)
        return VFAIL(jp, fg, "\"foreground_intensity_properties_per_channel\" has no channel");
    if (vt__fp_set_channels(fp, fg->n))
        return vt__fail_at(NULL, VT_ENOMEM, jp->path, "out of memory");
    for (size_t i = 0; i < fg->n; i++) {
        long c = channel_key(fg->keys[i]);
        if (c < 0 || (size_t)c >= fg->n)
            return VFAIL(jp, &fg->items[i], "channel \"%s\": channels are \"0\" .. \"%zu\"", fg->keys[i], fg->n - 1);
        const jval *ch = &fg->items[i];
        if (ch->type != J_OBJ)
            return VFAIL(jp, ch, "channel \"%s\" must be an object", fg->keys[i]);
        vt_fingerprint_stats *o = &fp->stats[c];
        double *dst[] = {&o->max, &o->mean, &o->median, &o->min, &o->percentile_00_5, &o->percentile_99_5, &o->std};
        char what[64];
        snprintf(what, sizeof what, "channel \"%s\"", fg->keys[i]);
        for (size_t k = 0; k < sizeof keys / sizeof keys[0] && rc == 0; k++) {
            const jval *v = member(ch, keys[k]);
            rc = v ? get_num(jp, v, keys[k], dst[k]) : VFAIL(jp, ch, "%s has no \"%s\"", what, keys[k]);
        }
        o->percentile_error = NAN; /* unless voxtile's keys say */
        if (rc)
            return rc;
    }
    return 0;
}

/* A list of @p n numbers (integers when @p ints) into @p out. */
static int get_list(const jparser *jp, const jval *v, size_t n, bool ints, bool neg, const char *what, double *out)
{
    if (v->type != J_ARR || v->n != n)
        return VFAIL(jp, v, "%s must be a list of %zu %s", what, n, ints ? "integers" : "numbers");
    for (size_t i = 0; i < n; i++) {
        int64_t k;
        int rc = ints ? get_int(jp, &v->items[i], what, neg, &k) : get_num(jp, &v->items[i], what, &out[i]);
        if (rc)
            return rc;
        if (ints)
            out[i] = (double)k;
    }
    return 0;
}

static int load_cases(vt_fingerprint *fp, const jparser *jp, const jval *root)
{
    int rc = 0;
    const jval *sp = need(jp, root, "spacings", J_ARR, "the file", &rc);
    const jval *sh = rc ? NULL : need(jp, root, "shapes_after_crop", J_ARR, "the file", &rc);
    const jval *rel = rc ? NULL : need(jp, root, "median_relative_size_after_cropping", J_NUM, "the file", &rc);
    if (rc)
        return rc;
    if (sp->n != sh->n)
        return VFAIL(jp, sh, "%zu shapes_after_crop for %zu spacings", sh->n, sp->n);
    fp->sum.median_relative_size_after_cropping = rel->num;
    for (size_t i = 0; i < sp->n; i++) {
        vt__fp_case *k = vt__fp_case_slot(fp);
        if (k == NULL)
            return vt__fail_at(NULL, VT_ENOMEM, jp->path, "out of memory");
        double a[3], b[3];
        if ((rc = get_list(jp, &sp->items[i], 3, false, false, "a spacing", a)) != 0 ||
            (rc = get_list(jp, &sh->items[i], 3, true, false, "a shape", b)) != 0)
            return rc;
        for (int d = 0; d < 3; d++) {
            if (!(a[d] > 0) || !isfinite(a[d]))
                return VFAIL(jp, &sp->items[i], "a spacing must be 3 positive numbers");
            k->spacing[d] = a[d];
            k->after[d] = (uint64_t)b[d];
        }
        k->seq = i;
        fp->ncases++;
    }
    return 0;
}

/* voxtile's own keys, when there: per channel counts and error bounds, per
 * case paths, shape and crop box. */
static int load_voxtile(vt_fingerprint *fp, const jparser *jp, const jval *root)
{
    const jval *vx = member(root, "voxtile");
    if (vx == NULL)
        return 0;
    if (vx->type != J_OBJ)
        return VFAIL(jp, vx, "\"voxtile\" must be an object");
    int rc = 0;
    const jval *chans = member(vx, "channels"), *cases = member(vx, "cases");
    if (chans && chans->type != J_OBJ)
        return VFAIL(jp, chans, "\"channels\" must be an object");
    for (size_t i = 0; chans && i < chans->n && rc == 0; i++) {
        long c = channel_key(chans->keys[i]);
        const jval *ch = &chans->items[i];
        if (c < 0 || (uint64_t)c >= fp->channels)
            return VFAIL(jp, ch, "channel \"%s\": channels are \"0\" .. \"%llu\"", chans->keys[i],
                         (unsigned long long)fp->channels - 1);
        int64_t n = 0, nan = 0;
        const jval *v;
        if ((v = need(jp, ch, "count", J_NUM, "a channel", &rc)) != NULL && (rc = get_int(jp, v, "count", false, &n)) == 0 &&
            (v = need(jp, ch, "nan_count", J_NUM, "a channel", &rc)) != NULL &&
            (rc = get_int(jp, v, "nan_count", false, &nan)) == 0 && (v = member(ch, "percentile_error")) != NULL)
            rc = get_num(jp, v, "percentile_error", &fp->stats[c].percentile_error);
        fp->stats[c].count = (uint64_t)n;
        fp->stats[c].nan_count = (uint64_t)nan;
    }
    if (rc || cases == NULL)
        return rc;
    if (cases->type != J_ARR || cases->n != fp->ncases)
        return VFAIL(jp, cases, "\"cases\" must be a list of %zu objects, one per spacing", fp->ncases);
    for (size_t i = 0; i < cases->n; i++) {
        const jval *c = &cases->items[i];
        vt__fp_case *k = &fp->cases[i];
        if (c->type != J_OBJ)
            return VFAIL(jp, c, "a case must be an object");
        const char *names[2] = {"image", "seg"};
        char **dst[2] = {&k->image, &k->seg};
        for (int s = 0; s < 2; s++) {
            const jval *v = member(c, names[s]);
            if (v == NULL || v->type == J_NULL)
                continue;
            if (v->type != J_STR)
                return VFAIL(jp, v, "\"%s\" must be a string or null", names[s]);
            if ((*dst[s] = vt__strdup(v->str)) == NULL)
                return vt__fail_at(NULL, VT_ENOMEM, jp->path, "out of memory");
        }
        const jval *shape = member(c, "shape"), *crop = member(c, "crop");
        if (shape == NULL || crop == NULL || shape->type == J_NULL || crop->type == J_NULL)
            continue;
        double s[3], b[6];
        if ((rc = get_list(jp, shape, 3, true, false, "a case's shape", s)) != 0 ||
            (rc = get_list(jp, crop, 6, true, true, "a case's crop", b)) != 0)
            return rc;
        for (int d = 0; d < 3; d++) {
            if (s[d] < 1 || b[2 * d] < 0 || b[2 * d + 1] > s[d] || b[2 * d + 1] - b[2 * d] != (double)k->after[d])
                return VFAIL(jp, crop, "the crop box does not fit the shape (%g, %g, %g) and the shape after "
                             "cropping", s[0], s[1], s[2]);
            k->shape[d] = (uint64_t)s[d];
            k->crop[2 * d] = (int64_t)b[2 * d];
            k->crop[2 * d + 1] = (int64_t)b[2 * d + 1];
        }
    }
    return 0;
}

int vt_fingerprint_load(const char *path, vt_fingerprint **out)
{
    if (out)
        *out = NULL;
    if (path == NULL || out == NULL)
        return vt__fail(NULL, VT_EINVAL, "vt_fingerprint_load: NULL argument");
    char *buf = NULL;
    size_t len = 0;
    int rc = vt__read_text(path, JSON_MAX_BYTES, &buf, &len);
    if (rc)
        return rc;
    jparser jp = {path, buf, buf + len, buf, 1, 0};
    jval root;
    memset(&root, 0, sizeof root);
    rc = parse_value(&jp, &root);
    if (rc == 0) {
        skip_space(&jp);
        if (jp.p < jp.end)
            rc = JFAIL(&jp, "more after the end of the JSON value");
    }
    if (rc == 0 && root.type != J_OBJ)
        rc = VFAIL(&jp, &root, "a fingerprint is a JSON object");
    vt_fingerprint *fp = rc ? NULL : vt__fp_alloc(true);
    if (rc == 0 && fp == NULL)
        rc = vt__fail_at(NULL, VT_ENOMEM, path, "out of memory");
    if (rc == 0)
        rc = load_channels(fp, &jp, &root);
    if (rc == 0)
        rc = load_cases(fp, &jp, &root);
    if (rc == 0)
        rc = load_voxtile(fp, &jp, &root);
    jfree(&root);
    free(buf);
    if (rc) {
        vt_fingerprint_free(fp);
        return rc;
    }
    *out = fp;
    return 0;
}
