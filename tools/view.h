/* voxtile view: a local HTTP server with one page and a small JSON + binary
 * API over stores opened read-only (docs/cli.md, "view").
 *
 * tools/cmd_view.c   options, opening the stores, the stub of a build without libmicrohttpd
 * tools/view_api.c   the routes: request (path + query) -> reply, no HTTP library involved
 * tools/view_http.c  libmicrohttpd around view_api, the listening socket, signals
 * tools/view/        the page (index.html, view.js, view.css), embedded at build time
 *                    by tools/view/embed.py into view_assets.c */
#ifndef VOXTILE_VIEW_H
#define VOXTILE_VIEW_H

#include "voxtile.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The stores being served, addressed by their position in the command line. */
typedef struct view_ctx {
    vt_store **stores;
    const char **names; /* what the page shows of each: the file name without its folder */
    size_t nstores;
} view_ctx;

/* One query parameter (already percent-decoded; may hold NUL bytes, hence len). */
typedef struct view_param {
    const char *key;
    const char *value;
    size_t len;
} view_param;

#define VIEW_MAX_PARAMS 16

typedef struct view_request {
    const char *path; /* without the query */
    view_param params[VIEW_MAX_PARAMS];
    int nparams;
    bool too_many; /* more than VIEW_MAX_PARAMS parameters */
} view_request;

/* A reply: status, content type, body. The body is either static (an embedded
 * asset, not freed) or malloc'ed (freed by view_reply_free, or handed over). */
typedef struct view_reply {
    unsigned status;
    const char *type;
    char *body;
    size_t len;
    bool owned;
    bool api;           /* an API reply (not cached by the browser) */
    char dtype[16];     /* slices: X-Voxtile-Dtype */
    char shape[48];     /* slices: X-Voxtile-Shape "rows,cols" */
    size_t reserved;    /* slices: bytes counted against the in-flight budget */
} view_reply;

/* Answer one GET request. Never fails: errors are replies (400, 404, 500,
 * 503) with a JSON body {"error": "...", "status": N}. Thread-safe. */
void view_handle(const view_ctx *ctx, const view_request *req, view_reply *out);
void view_reply_free(view_reply *r);
/* Give back the in-flight bytes a slice reply reserved (when its body is freed). */
void view_release(size_t bytes);

/* Whether slices were read since the last call (the server then lets go of the
 * stores' pages when idle, vt_store_release). */
bool view_take_served(void);

/* Limits of slice replies: one slice, and all slice bodies not yet sent. */
#define VIEW_MAX_SLICE_BYTES ((size_t)32 << 20)
#define VIEW_INFLIGHT_BYTES ((size_t)64 << 20)

/* The embedded page (view_assets.c, generated). */
typedef struct view_asset {
    const char *path; /* "/", "/view.js" ... */
    const char *type;
    const unsigned char *data;
    size_t len;
} view_asset;
extern const view_asset view_assets[];
extern const size_t view_nassets;

/* Serve until SIGINT or SIGTERM; returns the exit status (0 after a signal).
 * port 0 picks a free port. open_browser: run xdg-open on the URL. */
int view_serve(const view_ctx *ctx, const char *host, unsigned port, bool open_browser);

#endif
