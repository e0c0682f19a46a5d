/* voxtile view: HTTP through libmicrohttpd (a thread pool on epoll), the
 * listening socket, and a clean stop on SIGINT/SIGTERM.
 *
 * The signals are blocked in every thread before the daemon starts its pool,
 * and the main thread waits for them with sigwait(): no handler runs inside a
 * pool thread, and the stop is an ordinary call (MHD_stop_daemon finishes the
 * requests in progress, closes the connections and joins the threads). */
#include "view.h"
#include "cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct server {
    const view_ctx *ctx;
    bool loopback; /* bound to a loopback address: only loopback Host names are answered */
} server;

typedef struct collect {
    view_request *req;
    bool bad_key;
} collect;

static enum MHD_Result on_arg(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size, const char *value,
                              size_t value_size)
{
    (void)kind;
    collect *c = cls;
    if (strlen(key) != key_size) {
        c->bad_key = true;
        return MHD_NO;
    }
    if (c->req->nparams == VIEW_MAX_PARAMS) {
        c->req->too_many = true;
        return MHD_NO;
    }
    view_param *p = &c->req->params[c->req->nparams++];
    p->key = key;
    p->value = value ? value : "";
    p->len = value ? value_size : 0;
    return MHD_YES;
}

typedef struct owned_body {
    char *body;
    size_t reserved;
} owned_body;

static void free_body(void *cls)
{
    owned_body *o = cls;
    free(o->body);
    if (o->reserved)
        view_release(o->reserved);
    free(o);
}

static enum MHD_Result send_reply(struct MHD_Connection *c, view_reply *r, bool page)
{
    struct MHD_Response *resp;
    if (r->owned) {
        owned_body *o = malloc(sizeof *o);
        if (o == NULL) {
            view_reply_free(r);
            return MHD_NO; /* closes the connection */
        }
        o->body = r->body;
        o->reserved = r->reserved;
        resp = MHD_create_response_from_buffer_with_free_callback_cls(r->len, r->body, free_body, o);
        if (resp == NULL) {
            free_body(o);
            return MHD_NO;
        }
    } else {
        resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_PERSISTENT);
        if (resp == NULL)
            return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->type);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, r->api ? "no-store" : "no-cache");
    if (page)
        MHD_add_response_header(resp, "Content-Security-Policy",
                                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
    if (r->dtype[0])
        MHD_add_response_header(resp, "X-Voxtile-Dtype", r->dtype);
    if (r->shape[0])
        MHD_add_response_header(resp, "X-Voxtile-Shape", r->shape);
    if (r->status == 503)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (r->status == 405)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(c, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* An answer made here (not by view_handle): a static JSON error. */
static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *json)
{
    view_reply r;
    memset(&r, 0, sizeof r);
    r.status = status;
    r.type = "application/json";
    r.body = (char *)json;
    r.len = strlen(json);
    r.api = true;
    return send_reply(c, &r, false);
}

/* The host part of a Host header is a loopback name: localhost, 127.x.x.x or [::1]
 * (any port: an ssh tunnel forwards another one). Refusing other names defeats
 * DNS rebinding: a web page whose name is made to resolve to 127.0.0.1 cannot
 * read the stores through the visitor's browser. */
static bool loopback_host(const char *h)
{
    if (h == NULL)
        return false;
    char name[256];
    size_t n = strlen(h);
    if (n >= sizeof name)
        return false;
    memcpy(name, h, n + 1);
    if (name[0] == '[') {
        char *e = strchr(name, ']');
        if (e == NULL || (e[1] != 0 && e[1] != ':'))
            return false;
        *e = 0;
        struct in6_addr a6;
        return inet_pton(AF_INET6, name + 1, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
    }
    char *colon = strchr(name, ':');
    if (colon)
        *colon = 0;
    if (strcmp(name, "localhost") == 0)
        return true;
    struct in_addr a4;
    return inet_pton(AF_INET, name, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **req_cls)
{
    (void)version;
    (void)upload;
    static int seen;
    const server *sv = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return send_error(c, 405, "{\"error\": \"only GET and HEAD are served\", \"status\": 405}");
    /* answer once the whole request is in (the first call has only its headers): a reply
     * queued earlier makes libmicrohttpd close the connection instead of keeping it alive */
    if (*req_cls == NULL) {
        *req_cls = &seen;
        return MHD_YES;
    }
    if (*upload_size != 0) { /* a body on a GET: read and ignored */
        *upload_size = 0;
        return MHD_YES;
    }
    if (sv->loopback && !loopback_host(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST)))
        return send_error(c, 403,
                          "{\"error\": \"this server answers only to localhost, 127.0.0.1 and [::1] (it is bound to "
                          "a loopback address; see voxtile view --help for --host)\", \"status\": 403}");
    view_request req;
    memset(&req, 0, sizeof req);
    req.path = url;
    collect col = {&req, false};
    MHD_get_connection_values_n(c, MHD_GET_ARGUMENT_KIND, on_arg, &col);
    if (col.bad_key)
        return send_error(c, 400, "{\"error\": \"a parameter name holds a NUL byte\", \"status\": 400}");
    view_reply r;
    view_handle(sv->ctx, &req, &r);
    if (r.status >= 500 && r.status != 503) { /* the path as text: no control characters reach the terminal */
        char shown[256];
        size_t n = 0;
        for (const char *p = url; *p && n + 1 < sizeof shown; p++)
            shown[n++] = (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p;
        shown[n] = 0;
        fprintf(stderr, "voxtile: view: %s: %u %.*s\n", shown, r.status, (int)(r.len < 400 ? r.len : 400), r.body);
    }
    return send_reply(c, &r, !r.api);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    fprintf(stderr, "voxtile: view: %s\n", msg);
}

/* A listening TCP socket on host:port (port 0: any free one); -1 after printing why not. */
static int listen_on(const char *host, unsigned port, bool *loopback, char *url, size_t urllen)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char ps[8];
    snprintf(ps, sizeof ps, "%u", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "voxtile: view: --host %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        fprintf(stderr, "voxtile: view: cannot listen on %s port %u: %s\n", host, port, strerror(err));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char addr[INET6_ADDRSTRLEN] = "?";
    unsigned bound = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, addr, sizeof addr);
            bound = ntohs(a->sin_port);
            *loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, addr, sizeof addr);
            bound = ntohs(a->sin6_port);
            *loopback = IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) != 0;
        }
    }
    if (strchr(addr, ':'))
        snprintf(url, urllen, "http://[%s]:%u/", addr, bound);
    else
        snprintf(url, urllen, "http://%s:%u/", addr, bound);
    return fd;
}

int view_serve(const view_ctx *ctx, const char *host, unsigned port, bool open_browser)
{
    /* a client that goes away must not kill the server */
    signal(SIGPIPE, SIG_IGN);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL); /* inherited by every thread started below */
    /* a shell starts background jobs with SIGINT ignored: `kill -INT` must still stop the server */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);

    server sv = {ctx, false};
    char url[128];
    int fd = listen_on(host, port, &sv.loopback, url, sizeof url);
    if (fd < 0)
        return 1;
    int threads = online_cpus();
    threads = threads < 2 ? 2 : threads > 8 ? 8 : threads;
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, &sv,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
        MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "voxtile: view: cannot start the HTTP server on %s\n", url);
        close(fd);
        return 1;
    }
    printf("voxtile view: serving %zu store%s at %s (%s; Ctrl-C stops)\n", ctx->nstores,
           ctx->nstores == 1 ? "" : "s", url,
           sv.loopback ? "this machine only" : "reachable from other machines: no password, no encryption");
    fflush(stdout);
    pid_t browser = -1;
    if (open_browser) {
        /* the browser must not inherit the blocked signals nor the ignored SIGPIPE */
        char *args[] = {(char *)"xdg-open", url, NULL};
        extern char **environ;
        posix_spawnattr_t at;
        sigset_t none, dfl;
        sigemptyset(&none);
        sigemptyset(&dfl);
        sigaddset(&dfl, SIGPIPE);
        sigaddset(&dfl, SIGINT);
        sigaddset(&dfl, SIGTERM);
        int rc = posix_spawnattr_init(&at);
        if (rc == 0) {
            posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
            posix_spawnattr_setsigmask(&at, &none);
            posix_spawnattr_setsigdefault(&at, &dfl);
            rc = posix_spawnp(&browser, "xdg-open", NULL, &at, args, environ);
            posix_spawnattr_destroy(&at);
        }
        if (rc != 0) {
            fprintf(stderr, "voxtile: view: cannot run xdg-open (%s); open %s yourself\n", strerror(rc), url);
            browser = -1;
        }
    }
    /* Wait for a signal. Meanwhile, once a second after slices were read, let go of the
     * stores' pages (vt_store_release): they stay in the page cache, but the resident size
     * of an idle server drops back to a few MiB instead of the part of each file looked at. */
    int sig;
    for (;;) {
        struct timespec second = {1, 0};
        sig = sigtimedwait(&stop, NULL, &second);
        if (sig > 0)
            break;
        if (sig < 0 && errno != EAGAIN && errno != EINTR) {
            fprintf(stderr, "voxtile: view: waiting for signals: %s\n", strerror(errno));
            sig = SIGTERM;
            break;
        }
        if (view_take_served())
            for (size_t i = 0; i < ctx->nstores; i++)
                vt_store_release(ctx->stores[i]);
    }
    fprintf(stderr, "voxtile: view: %s, stopping\n", sig == SIGINT ? "interrupted" : "terminated");
    MHD_stop_daemon(d); /* closes the listening socket it was given */
    if (browser > 0)
        waitpid(browser, NULL, WNOHANG);
    return 0;
}
