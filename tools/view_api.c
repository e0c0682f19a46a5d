/* voxtile view: the routes of the page's API, independent of the HTTP library.
 *
 *   GET /                       the page (and /view.js, /view.css): embedded files
 *   GET /api/stores             {"version", "stores": [{"id", "name", "file_size", "arrays": [names]}]}
 *   GET /api/array?store=S&array=NAME[&level=K]
 *                               one array: dtype, shape, tiles, value range, scaling, labels,
 *                               spacing, affine, display flips, pyramid levels
 *   GET /api/slice?store=S&array=NAME&axis=z|y|x&index=I[&level=K][&channel=C][&dtype=T]
 *                               one slice as raw little-endian values, C order (rows, cols)
 *
 * Stores are addressed by their position in the command line; array names are
 * looked up in the store's directory. Nothing here touches the file system:
 * no request can name a file. Every parameter is checked: integers are plain
 * decimal digits in range, unknown or repeated parameters are refused (400),
 * a store, array, channel or slice that does not exist is 404, a damaged tile
 * is 500 with the reader's message, and a server over its in-flight slice
 * budget answers 503 (the page retries). */
#include "view.h"
#include "display.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a growable text buffer --------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool failed; /* out of memory: the reply becomes a 500 */
} sbuf;

static void sb_grow(sbuf *b, size_t more)
{
    if (b->failed)
        return;
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        b->failed = true;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void sb_put(sbuf *b, const char *s, size_t n)
{
    sb_grow(b, n);
    if (b->failed)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof tmp) {
        sb_put(b, tmp, (size_t)n);
        return;
    }
    sb_grow(b, (size_t)n);
    if (b->failed)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (of at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t k;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        k = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        k = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        k = 4, min = 0x10000;
    else
        return 0;
    if (n < k)
        return 0;
    unsigned v = c & (0x3f >> (k - 1));
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    return k;
}

/* A JSON string of n bytes: quotes, backslashes and control characters
 * escaped, bytes that are not UTF-8 (names from a hostile store, a request)
 * replaced by U+FFFD, so the reply is always valid JSON. */
static void sb_json_n(sbuf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    sb_put(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_put(b, e, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            sb_printf(b, "\\u%04x", c);
            i++;
        } else {
            size_t k = utf8_len(p + i, n - i);
            if (k == 0) {
                sb_str(b, "\\ufffd");
                i++;
            } else {
                sb_put(b, s + i, k);
                i += k;
            }
        }
    }
    sb_put(b, "\"", 1);
}

static void sb_json(sbuf *b, const char *s) { sb_json_n(b, s, strlen(s)); }

static void sb_double(sbuf *b, double v)
{
    if (isfinite(v))
        sb_printf(b, "%.17g", v);
    else
        sb_str(b, "null");
}

static void sb_u64s(sbuf *b, const uint64_t *v, int n)
{
    sb_put(b, "[", 1);
    for (int i = 0; i < n; i++)
        sb_printf(b, "%s%llu", i ? "," : "", (unsigned long long)v[i]);
    sb_put(b, "]", 1);
}

static void sb_doubles(sbuf *b, const double *v, int n)
{
    sb_put(b, "[", 1);
    for (int i = 0; i < n; i++) {
        if (i)
            sb_put(b, ",", 1);
        sb_double(b, v[i]);
    }
    sb_put(b, "]", 1);
}

/* ---- replies ------------------------------------------------------------ */

static void reply_json(view_reply *r, unsigned status, sbuf *b)
{
    if (b->failed) {
        free(b->p);
        r->status = 500;
        r->type = "application/json";
        r->body = (char *)"{\"error\": \"out of memory\", \"status\": 500}";
        r->len = strlen(r->body);
        r->owned = false;
        r->api = true;
        return;
    }
    r->status = status;
    r->type = "application/json";
    r->body = b->p ? b->p : (char *)"";
    r->len = b->len;
    r->owned = b->p != NULL;
    r->api = true;
}

static void reply_error(view_reply *r, unsigned status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reply_error(view_reply *r, unsigned status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sbuf b = {0};
    sb_str(&b, "{\"error\": ");
    sb_json(&b, msg);
    sb_printf(&b, ", \"status\": %u}", status);
    reply_json(r, status, &b);
}

void view_reply_free(view_reply *r)
{
    if (r->owned)
        free(r->body);
    if (r->reserved)
        view_release(r->reserved);
    r->body = NULL;
    r->owned = false;
    r->reserved = 0;
}

static atomic_size_t inflight;
static atomic_bool served;

bool view_take_served(void) { return atomic_exchange(&served, false); }

void view_release(size_t bytes) { atomic_fetch_sub(&inflight, bytes); }

static bool reserve(size_t bytes)
{
    size_t cur = atomic_load(&inflight);
    do {
        if (cur > VIEW_INFLIGHT_BYTES || bytes > VIEW_INFLIGHT_BYTES - cur)
            return false;
    } while (!atomic_compare_exchange_weak(&inflight, &cur, cur + bytes));
    return true;
}

/* ---- parameters --------------------------------------------------------- */

/* A printable form of a parameter value for error messages (cut, NUL shown as \0). */
static const char *shown(const view_param *p, char *buf, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < p->len && o + 8 < len; i++) {
        unsigned char c = (unsigned char)p->value[i];
        if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", c);
        else
            buf[o++] = (char)c;
    }
    if (o + 8 >= len && p->len)
        o += (size_t)snprintf(buf + o, len - o, "...");
    buf[o] = 0;
    return buf;
}

static const view_param *param(const view_request *q, const char *key)
{
    for (int i = 0; i < q->nparams; i++)
        if (strcmp(q->params[i].key, key) == 0)
            return &q->params[i];
    return NULL;
}

/* Refuse parameters not in allowed (NULL-terminated) and repeated ones. */
static bool check_params(const view_request *q, const char *const *allowed, view_reply *r)
{
    if (q->too_many) {
        reply_error(r, 400, "too many parameters (at most %d)", VIEW_MAX_PARAMS);
        return false;
    }
    for (int i = 0; i < q->nparams; i++) {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, q->params[i].key) == 0;
        if (!ok) {
            char list[256] = "";
            size_t o = 0;
            for (const char *const *a = allowed; *a; a++)
                o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", o ? ", " : "", *a);
            reply_error(r, 400, "unknown parameter '%.64s' (this route takes %s)", q->params[i].key,
                        allowed[0] ? list : "none");
            return false;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(q->params[j].key, q->params[i].key) == 0) {
                reply_error(r, 400, "parameter '%s' given twice", q->params[i].key);
                return false;
            }
    }
    return true;
}

/* A required (or, with required false, optional: *v unchanged when absent)
 * non-negative integer: decimal digits only, no sign, no leading zero, at most max. */
static bool uint_param(const view_request *q, const char *key, bool required, uint64_t max, uint64_t *v,
                       view_reply *r)
{
    const view_param *p = param(q, key);
    char buf[80];
    if (p == NULL) {
        if (required)
            reply_error(r, 400, "missing parameter '%s'", key);
        return !required;
    }
    bool ok = p->len >= 1 && p->len <= 19 && !(p->len > 1 && p->value[0] == '0');
    uint64_t x = 0;
    for (size_t i = 0; ok && i < p->len; i++) {
        char c = p->value[i];
        ok = c >= '0' && c <= '9';
        x = x * 10 + (uint64_t)(c - '0');
    }
    if (!ok || x > max) {
        reply_error(r, 400, "parameter '%s': '%s' is not an integer in 0..%llu", key, shown(p, buf, sizeof buf),
                    (unsigned long long)max);
        return false;
    }
    *v = x;
    return true;
}

/* ---- stores and arrays -------------------------------------------------- */

static bool get_store(const view_ctx *ctx, const view_request *q, const vt_store **s, uint64_t *id, view_reply *r)
{
    if (!uint_param(q, "store", true, UINT32_MAX, id, r))
        return false;
    if (*id >= ctx->nstores) {
        reply_error(r, 404, "no store %llu (this server has %zu: 0..%zu)", (unsigned long long)*id, ctx->nstores,
                    ctx->nstores - 1);
        return false;
    }
    *s = ctx->stores[*id];
    return true;
}

/* The array of parameters array (and level: NAME@K). */
static bool get_array(const vt_store *s, const view_request *q, const vt_array **a, view_reply *r)
{
    const view_param *p = param(q, "array");
    char buf[80];
    if (p == NULL) {
        reply_error(r, 400, "missing parameter 'array'");
        return false;
    }
    if (p->len == 0 || p->len > VT_NAME_MAX || memchr(p->value, 0, p->len)) {
        reply_error(r, 400, "parameter 'array': '%s' is not an array name (1..%d bytes)", shown(p, buf, sizeof buf),
                    VT_NAME_MAX);
        return false;
    }
    uint64_t level = 0;
    if (!uint_param(q, "level", false, 64, &level, r))
        return false;
    char name[VT_NAME_MAX + 8];
    if (level)
        snprintf(name, sizeof name, "%s@%llu", p->value, (unsigned long long)level);
    else
        snprintf(name, sizeof name, "%s", p->value);
    if (vt_store_array(s, name, a) != 0) {
        sbuf b = {0};
        sb_json(&b, name); /* the name as the store would spell it, escaped */
        reply_error(r, 404, "no array %s in this store", b.failed ? "?" : b.p);
        free(b.p);
        return false;
    }
    return true;
}

static bool meta_f64(const vt_store *s, const char *key, size_t n, const double **out)
{
    vt_meta_type t;
    const void *d;
    size_t cnt;
    if (vt_meta_get(s, key, &t, &d, &cnt) != 0 || t != VT_META_F64 || cnt != n)
        return false;
    *out = d;
    return true;
}

/* The name without an "@K" level suffix (K decimal digits), and K. */
static int split_level(const char *name, char *base, size_t len)
{
    snprintf(base, len, "%s", name);
    char *at = strrchr(base, '@');
    if (at == NULL || at[1] == 0 || at == base)
        return 0;
    long k = 0;
    for (const char *c = at + 1; *c; c++) {
        if (*c < '0' || *c > '9' || k > 1000)
            return 0;
        k = k * 10 + (*c - '0');
    }
    if (k < 1)
        return 0;
    *at = 0;
    return (int)k;
}

/* Spacing (z, y, x) of a 3-d-or-more array: "NAME.spacing" for a level, "image@K.spacing"
 * for a level of another array on the same grid, else the store's "spacing" stretched by
 * the shape ratio to the base array; 1 mm where nothing says. */
static void array_spacing(const vt_store *s, const vt_array_info *ai, double sp[3])
{
    const double *m;
    char base[VT_NAME_MAX + 1], key[VT_NAME_MAX + 32];
    int level = split_level(ai->name, base, sizeof base);
    sp[0] = sp[1] = sp[2] = 1;
    if (level) {
        snprintf(key, sizeof key, "%s.spacing", ai->name);
        bool found = meta_f64(s, key, 3, &m);
        if (!found) {
            snprintf(key, sizeof key, "image@%d.spacing", level);
            found = meta_f64(s, key, 3, &m);
        }
        if (found) {
            for (int k = 0; k < 3; k++)
                if (isfinite(m[k]) && m[k] > 0)
                    sp[k] = m[k];
            return;
        }
    }
    if (meta_f64(s, "spacing", 3, &m))
        for (int k = 0; k < 3; k++)
            if (isfinite(m[k]) && m[k] > 0)
                sp[k] = m[k];
    const vt_array *b;
    vt_array_info bi;
    if (level && vt_store_array(s, base, &b) == 0 && vt_array_info_get(b, &bi) == 0 && bi.ndim == ai->ndim)
        for (int k = 0; k < 3; k++) {
            double n0 = (double)bi.shape[bi.ndim - 3 + k], n1 = (double)ai->shape[ai->ndim - 3 + k];
            sp[k] *= n0 / n1;
        }
}

/* The affine of an array (its level's, else the store's), or NULL. */
static const double *array_affine(const vt_store *s, const char *name)
{
    const double *m;
    char base[VT_NAME_MAX + 1], key[VT_NAME_MAX + 32];
    int level = split_level(name, base, sizeof base);
    if (level) {
        snprintf(key, sizeof key, "%s.affine", name);
        if (meta_f64(s, key, 16, &m))
            return m;
        snprintf(key, sizeof key, "image@%d.affine", level);
        return meta_f64(s, key, 16, &m) ? m : NULL;
    }
    return meta_f64(s, "affine", 16, &m) ? m : NULL;
}

/* ---- routes ------------------------------------------------------------- */

static void route_stores(const view_ctx *ctx, const view_request *q, view_reply *r)
{
    static const char *const allowed[] = {NULL};
    if (!check_params(q, allowed, r))
        return;
    sbuf b = {0};
    sb_str(&b, "{\"version\": ");
    sb_json(&b, vt_version_string());
    sb_str(&b, ", \"stores\": [");
    for (size_t i = 0; i < ctx->nstores; i++) {
        const vt_store *s = ctx->stores[i];
        sb_printf(&b, "%s{\"id\": %zu, \"name\": ", i ? ", " : "", i);
        sb_json(&b, ctx->names[i]);
        sb_printf(&b, ", \"file_size\": %llu, \"arrays\": [", (unsigned long long)vt_store_file_size(s));
        size_t n = vt_store_narrays(s);
        for (size_t k = 0; k < n; k++) {
            const vt_array *a;
            vt_array_info ai;
            if (vt_store_array_at(s, k, &a) != 0 || vt_array_info_get(a, &ai) != 0)
                continue;
            if (k)
                sb_str(&b, ", ");
            sb_json(&b, ai.name);
        }
        sb_str(&b, "]}");
    }
    sb_str(&b, "]}");
    reply_json(r, 200, &b);
}

/* The labels of a label array: [[value, voxels], ...], at most this many. */
#define VIEW_MAX_LABELS 65536

static void array_json(sbuf *b, const vt_store *s, uint64_t sid, const vt_array *a)
{
    vt_array_info ai;
    vt_array_info_get(a, &ai);
    char base[VT_NAME_MAX + 1];
    int level = split_level(ai.name, base, sizeof base);
    sb_printf(b, "{\"store\": %llu, \"name\": ", (unsigned long long)sid);
    sb_json(b, ai.name);
    sb_str(b, ", \"base\": ");
    sb_json(b, base);
    sb_printf(b, ", \"level\": %d, \"dtype\": ", level);
    sb_json(b, vt_dtype_name(ai.dtype));
    sb_printf(b, ", \"ndim\": %d, \"shape\": ", ai.ndim);
    sb_u64s(b, ai.shape, ai.ndim);
    uint64_t tile[VT_MAX_DIMS];
    for (int d = 0; d < ai.ndim; d++)
        tile[d] = ai.tile[d];
    sb_str(b, ", \"tile\": ");
    sb_u64s(b, tile, ai.ndim);
    sb_str(b, ", \"grid\": ");
    sb_u64s(b, ai.grid, ai.ndim);
    sb_str(b, ", \"min\": ");
    sb_double(b, ai.min);
    sb_str(b, ", \"max\": ");
    sb_double(b, ai.max);
    sb_str(b, ", \"fill\": ");
    sb_double(b, ai.fill);
    double slope, inter;
    if (vt_array_scaling(a, &slope, &inter)) {
        sb_str(b, ", \"scaling\": {\"slope\": ");
        sb_double(b, slope);
        sb_str(b, ", \"inter\": ");
        sb_double(b, inter);
        sb_str(b, "}");
    } else
        sb_str(b, ", \"scaling\": null");
    size_t nl = vt_label_count(a);
    if (nl) {
        sb_str(b, ", \"labels\": [");
        size_t shown_n = nl < VIEW_MAX_LABELS ? nl : VIEW_MAX_LABELS;
        for (size_t i = 0; i < shown_n; i++) {
            vt_label_info li;
            if (vt_label_get(a, i, &li) != 0)
                break;
            sb_printf(b, "%s[%lld, %llu]", i ? ", " : "", (long long)li.value, (unsigned long long)li.voxels);
        }
        sb_printf(b, "], \"labels_truncated\": %s", nl > shown_n ? "true" : "false");
    } else
        sb_str(b, ", \"labels\": null");
    if (ai.ndim >= 3) {
        double sp[3];
        array_spacing(s, &ai, sp);
        sb_str(b, ", \"spacing\": ");
        sb_doubles(b, sp, 3);
        const double *aff = array_affine(s, ai.name);
        sb_str(b, ", \"affine\": ");
        if (aff)
            sb_doubles(b, aff, 16);
        else
            sb_str(b, "null");
        bool flip[3];
        display_flips(s, array_affine(s, base), flip);
        sb_printf(b, ", \"flip\": [%s, %s, %s]", flip[0] ? "true" : "false", flip[1] ? "true" : "false",
                  flip[2] ? "true" : "false");
        /* the pyramid: this array's base and every BASE@K on a grid of the same rank */
        sb_str(b, ", \"levels\": [");
        int count = 0;
        for (int k = 0; k <= 64; k++) {
            char name[VT_NAME_MAX + 8];
            if (k)
                snprintf(name, sizeof name, "%s@%d", base, k);
            else
                snprintf(name, sizeof name, "%s", base);
            const vt_array *la;
            vt_array_info li;
            if (vt_store_array(s, name, &la) != 0 || vt_array_info_get(la, &li) != 0 || li.ndim != ai.ndim) {
                if (k)
                    break;
                continue;
            }
            double lsp[3];
            array_spacing(s, &li, lsp);
            sb_printf(b, "%s{\"level\": %d, \"name\": ", count++ ? ", " : "", k);
            sb_json(b, li.name);
            sb_str(b, ", \"shape\": ");
            sb_u64s(b, li.shape, li.ndim);
            sb_str(b, ", \"spacing\": ");
            sb_doubles(b, lsp, 3);
            sb_str(b, "}");
        }
        sb_str(b, "]");
    }
    vt_meta_type t;
    const void *fmt;
    size_t fl;
    sb_str(b, ", \"format\": ");
    if (vt_meta_get(s, "format", &t, &fmt, &fl) == 0 && t == VT_META_STRING)
        sb_json(b, fmt);
    else
        sb_str(b, "null");
    sb_str(b, "}");
}

static void route_array(const view_ctx *ctx, const view_request *q, view_reply *r)
{
    static const char *const allowed[] = {"store", "array", "level", NULL};
    const vt_store *s;
    const vt_array *a;
    uint64_t sid;
    if (!check_params(q, allowed, r) || !get_store(ctx, q, &s, &sid, r) || !get_array(s, q, &a, r))
        return;
    sbuf b = {0};
    array_json(&b, s, sid, a);
    reply_json(r, 200, &b);
}

static void route_slice(const view_ctx *ctx, const view_request *q, view_reply *r)
{
    static const char *const allowed[] = {"store", "array", "level", "axis", "index", "channel", "dtype", NULL};
    const vt_store *s;
    const vt_array *a;
    uint64_t sid, index = 0, channel = 0;
    char buf[80];
    if (!check_params(q, allowed, r) || !get_store(ctx, q, &s, &sid, r) || !get_array(s, q, &a, r))
        return;
    const view_param *ax = param(q, "axis");
    if (ax == NULL) {
        reply_error(r, 400, "missing parameter 'axis'");
        return;
    }
    if (ax->len != 1 || !strchr("zyx", ax->value[0]) || ax->value[0] == 0) {
        reply_error(r, 400, "parameter 'axis': expected z, y or x, got '%s'", shown(ax, buf, sizeof buf));
        return;
    }
    int axis = ax->value[0] == 'z' ? 0 : ax->value[0] == 'y' ? 1 : 2;
    if (!uint_param(q, "index", true, INT64_MAX, &index, r) || !uint_param(q, "channel", false, INT64_MAX, &channel, r))
        return;
    vt_read_opts o;
    vt_read_opts_init(&o);
    vt_array_info ai;
    vt_array_info_get(a, &ai);
    vt_dtype dt = ai.dtype;
    const view_param *dp = param(q, "dtype");
    if (dp) {
        if (dp->len > 15 || memchr(dp->value, 0, dp->len) || vt_dtype_parse(dp->value, &dt) != 0) {
            reply_error(r, 400, "parameter 'dtype': '%s' is not a dtype (uint8 int8 uint16 int16 uint32 int32 "
                        "float16 bfloat16 float32 float64)", shown(dp, buf, sizeof buf));
            return;
        }
        /* as the Python reader: a floating output gets the NIfTI scaling */
        if (dt == VT_F16 || dt == VT_BF16 || dt == VT_F32 || dt == VT_F64)
            o.transform = vt_array_scaling(a, &o.scale, &o.offset);
        o.dtype = dt;
    }
    if (ai.ndim < 3) {
        reply_error(r, 400, "array '%s' has %d dimension%s; slices need 3 (z, y, x) or more", ai.name, ai.ndim,
                    ai.ndim == 1 ? "" : "s");
        return;
    }
    int lead = ai.ndim - 3;
    for (int d = 0; d + 1 < lead; d++)
        if (ai.shape[d] != 1) {
            reply_error(r, 400, "array '%s' has more than one channel axis", ai.name);
            return;
        }
    uint64_t nchan = lead ? ai.shape[lead - 1] : 1;
    if (channel >= nchan) {
        reply_error(r, 404, "channel %llu is past the array: '%s' has %llu channel%s", (unsigned long long)channel,
                    ai.name, (unsigned long long)nchan, nchan == 1 ? "" : "s");
        return;
    }
    uint64_t n = ai.shape[lead + axis];
    if (index >= n) {
        reply_error(r, 404, "index %llu is past the array: '%s' has %llu slices along %c (0..%llu)",
                    (unsigned long long)index, ai.name, (unsigned long long)n, "zyx"[axis],
                    (unsigned long long)(n - 1));
        return;
    }
    int rax = axis == 0 ? 1 : 0, cax = axis == 2 ? 1 : 2;
    uint64_t rows = ai.shape[lead + rax], cols = ai.shape[lead + cax];
    size_t es = vt_dtype_size(dt);
    if (rows > VIEW_MAX_SLICE_BYTES / es / cols) {
        reply_error(r, 400, "a %llu x %llu slice of %s is too large to serve (at most %zu MiB)",
                    (unsigned long long)rows, (unsigned long long)cols, vt_dtype_name(dt), VIEW_MAX_SLICE_BYTES >> 20);
        return;
    }
    size_t bytes = (size_t)(rows * cols) * es;
    if (!reserve(bytes)) {
        reply_error(r, 503, "busy: too many slices being sent; try again");
        return;
    }
    char *out = malloc(bytes ? bytes : 1);
    if (out == NULL) {
        view_release(bytes);
        reply_error(r, 500, "out of memory for a %zu-byte slice", bytes);
        return;
    }
    int64_t start[VT_MAX_DIMS] = {0};
    uint64_t size[VT_MAX_DIMS];
    for (int d = 0; d < lead; d++)
        size[d] = 1;
    if (lead)
        start[lead - 1] = (int64_t)channel;
    for (int d = 0; d < 3; d++) {
        start[lead + d] = d == axis ? (int64_t)index : 0;
        size[lead + d] = d == axis ? 1 : ai.shape[lead + d];
    }
    int rc = vt_read(a, start, size, &o, out);
    if (rc != 0) {
        const char *msg = vt_errmsg(s);
        free(out);
        view_release(bytes);
        reply_error(r, 500, "%s", msg && msg[0] ? msg : vt_strerror(rc));
        return;
    }
    atomic_store(&served, true);
    r->status = 200;
    r->type = "application/octet-stream";
    r->body = out;
    r->len = bytes;
    r->owned = true;
    r->api = true;
    r->reserved = bytes;
    snprintf(r->dtype, sizeof r->dtype, "%s", vt_dtype_name(dt));
    snprintf(r->shape, sizeof r->shape, "%llu,%llu", (unsigned long long)rows, (unsigned long long)cols);
}

void view_handle(const view_ctx *ctx, const view_request *req, view_reply *out)
{
    memset(out, 0, sizeof *out);
    const char *p = req->path;
    if (strcmp(p, "/api/stores") == 0)
        route_stores(ctx, req, out);
    else if (strcmp(p, "/api/array") == 0)
        route_array(ctx, req, out);
    else if (strcmp(p, "/api/slice") == 0)
        route_slice(ctx, req, out);
    else {
        for (size_t i = 0; i < view_nassets; i++)
            if (strcmp(p, view_assets[i].path) == 0) {
                out->status = 200;
                out->type = view_assets[i].type;
                out->body = (char *)view_assets[i].data;
                out->len = view_assets[i].len;
                return;
            }
        reply_error(out, 404, "not found: the page is /, the API /api/stores, /api/array, /api/slice");
    }
}
