/* The HTTP/1.1 reverse proxy on libuv (see proxy.h).
 *
 * One `pconn` per upstream connection and one `fwd` per forwarded request.
 * A fwd serialises the request head once and writes it with the body
 * (borrowed from the request, which outlives the forward), then parses the
 * response with llhttp in response mode and relays it as it arrives: each
 * read is handed to the writer at once, so the proxy itself never holds more
 * than one read; while the writer reports more than max_buffered bytes
 * queued for a slow client, the upstream is not read (checked by a short
 * poll, since the writer has no drain callback).
 *
 * A streamed request body (req->stream) is started once the request head
 * is on its way and forwarded piece by piece as it arrives (Content-Length
 * kept, else chunked to the upstream); while more than max_buffered body
 * bytes wait for the upstream socket, the client's body is paused. The
 * upstream may answer before the body is complete: the response is relayed
 * as usual, and the connection is then not reused (nor the client's, which
 * the server closes after the response).
 *
 * Idle pooled connections stay read from, so an upstream that closes one is
 * noticed and the connection dropped before anyone reuses it; the race left
 * (a close in flight while the request is sent) is what the one retry of an
 * idempotent request on a fresh connection covers.
 *
 * Ownership: the upstream owns its pooled connections; a fwd owns the
 * connection it uses until it ends (then the connection goes back to the
 * pool or is closed). A pconn is freed when its handles are closed and its
 * writes have called back; the upstream after its last pconn when freed. */
#include "http/proxy.h"

#include <errno.h>
#include <llhttp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/log.h"

#define READ_SIZE (64 * 1024)
#define POLL_MS 5 /* how often a paused relay asks whether the client has caught up */

typedef struct qlink {
    struct qlink *prev, *next;
} qlink;

static void list_init(qlink *l)
{
    l->prev = l->next = l;
}

static void list_push(qlink *head, qlink *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

static void list_remove(qlink *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    list_init(l);
}

#define CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

typedef enum { UP_TCP, UP_UNIX, UP_OPEN } up_kind;

struct http_proxy_upstream {
    uv_loop_t *loop;
    http_proxy_opts o;
    up_kind kind;
    struct sockaddr_storage addr;
    char *path;
    http_proxy_open_cb open;
    void *open_data;
    bool open_connects;   /* UP_OPEN: the callback's socket is unconnected; connect it to addr */
    qlink idle;
    size_t n_idle, n_conns, opened;
    bool freed;
};

typedef enum { T_NONE, T_CONNECT, T_HEADERS, T_READ, T_POLL, T_POOL, T_FAIL } timer_kind;

typedef struct fwd fwd;

typedef struct pconn {
    union {
        uv_handle_t h;
        uv_stream_t s;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } io;
    uv_stream_t *s;          /* &io.s, or the caller's stream */
    void *saved_data;        /* the caller's stream->data, given back at the end */
    uv_timer_t timer;
    uv_connect_t creq;
    http_proxy_upstream *u;  /* NULL for a caller's stream */
    qlink link;              /* on u->idle */
    fwd *f;                  /* the forward using it, NULL when idle */
    char *rbuf;
    int handles, writes;
    size_t body_queued;      /* streamed body bytes written but not yet taken by the socket */
    int open_err;            /* a failure to report from the timer (T_FAIL) */
    unsigned uses;           /* responses completed on it */
    timer_kind tkind;
    bool borrowed, has_stream, connected, closing, reading, idle;
} pconn;

struct fwd {
    http_proxy_upstream *u;
    http_proxy_opts o;
    pconn *c;
    const http_request *req;
    http_writer *w;
    char *head;              /* serialised request line and header section */
    size_t head_len;
    void (*done)(void *data, int status);
    void *data;
    llhttp_t ll;
    buf field, value;
    bool field_done;
    http_headers hdrs;
    size_t hdr_bytes;
    bool head_req, idempotent, retried;
    http_body_stream *bs;    /* the request's streamed body, or NULL */
    bool bs_started, bs_paused, body_done, body_stuck, chunked_body;
    uint64_t body_sent;      /* streamed body bytes handed to an upstream connection */
    bool got_bytes, started, complete, keep_alive, paused;
    int err;                 /* set by a parser callback that stops the parse */
    int err_status;
    const char *err_reason;
};

typedef struct write_req {
    uv_write_t req;
    pconn *c;
    size_t body_len;         /* streamed body bytes in it (counted in c->body_queued) */
    char data[];             /* a body piece, copied: the server reuses its buffers */
} write_req;

static void attempt(fwd *f);
static void finish(fwd *f, int code, int status, const char *reason);
static void pconn_close(pconn *c);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

void http_proxy_opts_defaults(http_proxy_opts *o)
{
    o->connect_timeout_ms = 5 * 1000;
    o->header_timeout_ms = 30 * 1000;
    o->idle_timeout_ms = 60 * 1000;
    o->pool_idle_ms = 30 * 1000;
    o->pool_max = 8;
    o->max_header_bytes = 32 * 1024;
    o->max_buffered = 1024 * 1024;
}

/* ---- header rules ---- */

static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool token_ok(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return true;
}

/* A value that would split the message (CR, LF, NUL) is never sent on. */
static bool value_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return false;
    return true;
}

/* Does the comma-separated list `list` contain `name` (case-insensitive)? */
static bool list_has(const char *list, const char *name, size_t name_len)
{
    while (list && *list) {
        size_t n = strcspn(list, ",");
        size_t b = 0, e = n;
        while (b < e && (list[b] == ' ' || list[b] == '\t'))
            b++;
        while (e > b && (list[e - 1] == ' ' || list[e - 1] == '\t'))
            e--;
        if (e - b == name_len && strncasecmp(list + b, name, name_len) == 0)
            return true;
        list += n;
        if (*list == ',')
            list++;
    }
    return false;
}

/* Hop-by-hop fields (RFC 9110 7.6.1) belong to one connection: the ones
 * named by Connection, and the well-known ones even when not named. */
static bool hop_by_hop(const http_headers *hs, const http_header *h)
{
    static const char *const fixed[] = {"Connection", "Keep-Alive", "TE", "Trailer",
                                        "Transfer-Encoding", "Upgrade"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (strcasecmp(h->name, fixed[i]) == 0)
            return true;
    if (strncasecmp(h->name, "Proxy-", 6) == 0)
        return true;
    for (size_t i = 0; i < hs->count; i++)
        if (strcasecmp(hs->items[i].name, "Connection") == 0 &&
            list_has(hs->items[i].value, h->name, h->name_len))
            return true;
    return false;
}

static void put_field(buf *b, const char *name, const char *value, size_t value_len)
{
    buf_append_str(b, name);
    buf_append(b, ": ", 2);
    buf_append(b, value, value_len);
    buf_append(b, "\r\n", 2);
}

/* The request head as the upstream gets it: HTTP/1.1, hop-by-hop fields
 * dropped, X-Forwarded-* as asked, and the body's framing: a Content-Length
 * for a buffered body or a streamed one of known length, else chunked. */
static int serialise(const http_request *req, const http_proxy_req_opts *ro, bool keep_alive,
                     buf *b)
{
    if (!req->method || !req->target || !token_ok(req->method, strlen(req->method)) ||
        !req->target[0] || strpbrk(req->target, " \t\r\n") || !value_ok(req->target, strlen(req->target)))
        return -EINVAL;
    buf_printf(b, "%s %s HTTP/1.1\r\n", req->method, req->target);
    const http_headers *hs = &req->headers;
    bool have_host = false;
    buf xff;
    buf_init(&xff, BUF_UNLIMITED);
    for (size_t i = 0; i < hs->count; i++) {
        const http_header *h = &hs->items[i];
        if (!token_ok(h->name, h->name_len) || !value_ok(h->value, h->value_len))
            continue;
        if (hop_by_hop(hs, h) || strcasecmp(h->name, "Content-Length") == 0 ||
            strcasecmp(h->name, "Expect") == 0) /* the body is here already: nothing to wait for */
            continue;
        if (ro && ro->client_addr && strcasecmp(h->name, "X-Forwarded-For") == 0) {
            if (xff.len)
                buf_append(&xff, ", ", 2);
            buf_append(&xff, h->value, h->value_len);
            continue;
        }
        if ((ro && ro->proto && strcasecmp(h->name, "X-Forwarded-Proto") == 0) ||
            (ro && ro->forwarded_host && strcasecmp(h->name, "X-Forwarded-Host") == 0))
            continue;
        have_host = have_host || strcasecmp(h->name, "Host") == 0;
        put_field(b, h->name, h->value, h->value_len);
    }
    if (!have_host)
        buf_append_str(b, "Host: \r\n"); /* HTTP/1.1 requires one; empty when unknown */
    if (ro && ro->client_addr && value_ok(ro->client_addr, strlen(ro->client_addr))) {
        if (xff.len)
            buf_append(&xff, ", ", 2);
        buf_append_str(&xff, ro->client_addr);
        put_field(b, "X-Forwarded-For", xff.data, xff.len);
    }
    buf_free(&xff);
    if (ro && ro->proto && token_ok(ro->proto, strlen(ro->proto)))
        put_field(b, "X-Forwarded-Proto", ro->proto, strlen(ro->proto));
    const char *host = http_headers_get(hs, "Host");
    if (ro && ro->forwarded_host && host && value_ok(host, strlen(host)))
        put_field(b, "X-Forwarded-Host", host, strlen(host));
    if (req->stream && req->stream->length >= 0)
        buf_printf(b, "Content-Length: %lld\r\n", (long long)req->stream->length);
    else if (req->stream)
        buf_append_str(b, "Transfer-Encoding: chunked\r\n");
    else if (req->body.len || http_headers_get(hs, "Content-Length") ||
             http_headers_get(hs, "Transfer-Encoding"))
        buf_printf(b, "Content-Length: %zu\r\n", req->body.len);
    if (!keep_alive)
        buf_append_str(b, "Connection: close\r\n");
    buf_append(b, "\r\n", 2);
    return 0;
}

/* ---- the response parser (llhttp callbacks) ---- */

static fwd *from_ll(llhttp_t *ll)
{
    return ll->data;
}

static int stop(fwd *f, int err, int status, const char *reason)
{
    f->err = err;
    f->err_status = status;
    f->err_reason = reason;
    return HPE_USER;
}

static int count(fwd *f, size_t len)
{
    f->hdr_bytes += len;
    if (f->hdr_bytes > f->o.max_header_bytes)
        return stop(f, -E2BIG, 502, "upstream response header section too large");
    return 0;
}

static int on_message_begin(llhttp_t *ll)
{
    fwd *f = from_ll(ll);
    http_headers_free(&f->hdrs);
    http_headers_init(&f->hdrs);
    buf_reset(&f->field);
    buf_reset(&f->value);
    f->field_done = false;
    f->hdr_bytes = 0;
    return 0;
}

static int on_status(llhttp_t *ll, const char *at, size_t len)
{
    return count(from_ll(ll), len);
}

static int commit_field(fwd *f)
{
    if (!f->field_done)
        return 0;
    f->field_done = false;
    http_headers_add(&f->hdrs, f->field.data ? f->field.data : "", f->field.len,
                     f->value.data ? f->value.data : "", f->value.len);
    buf_reset(&f->field);
    buf_reset(&f->value);
    return 0;
}

static int on_header_field(llhttp_t *ll, const char *at, size_t len)
{
    fwd *f = from_ll(ll);
    commit_field(f);
    int rc = count(f, len);
    if (rc == 0)
        buf_append(&f->field, at, len); /* unlimited buffer, bounded by count() */
    return rc;
}

static int on_header_field_complete(llhttp_t *ll)
{
    from_ll(ll)->field_done = true;
    return 0;
}

static int on_header_value(llhttp_t *ll, const char *at, size_t len)
{
    fwd *f = from_ll(ll);
    int rc = count(f, len);
    if (rc == 0)
        buf_append(&f->value, at, len);
    return rc;
}

static int on_header_value_complete(llhttp_t *ll)
{
    return commit_field(from_ll(ll));
}

static int on_headers_complete(llhttp_t *ll)
{
    fwd *f = from_ll(ll);
    commit_field(f);
    int status = ll->status_code;
    if (status == 101)
        return stop(f, -EPROTO, 502, "upstream switched protocols");
    if (status < 100 || status > 999)
        return stop(f, -EPROTO, 502, "bad upstream status");
    /* 1xx, 204 and 304 responses end at their header section whatever
     * their framing fields say (RFC 9112 6.3); llhttp is told so, as for
     * the response to HEAD (it cannot know the request method). */
    if (status < 200)
        return 1; /* an interim response: skipped, the final one follows */
    if ((ll->flags & F_TRANSFER_ENCODING) && !(ll->flags & F_CHUNKED))
        return stop(f, -EPROTO, 502, "unsupported upstream transfer coding");
    int64_t len = -1;
    if (status == 204 || status == 304)
        len = 0;
    else if (ll->flags & F_CONTENT_LENGTH && !(ll->flags & F_CHUNKED))
        len = (int64_t)ll->content_length;
    /* Connection-specific and framing fields are not relayed; the writer
     * frames the body itself. The list is filtered in place, and
     * hop_by_hop looks at Connection, so the copy is taken first. */
    http_headers out;
    http_headers_init(&out);
    for (size_t i = 0; i < f->hdrs.count; i++) {
        const http_header *h = &f->hdrs.items[i];
        if (!hop_by_hop(&f->hdrs, h) && strcasecmp(h->name, "Content-Length") != 0)
            http_headers_add(&out, h->name, h->name_len, h->value, h->value_len);
    }
    f->started = true;
    int rc = f->w->start(f->w, status, &out, len);
    http_headers_free(&out);
    if (rc == -EPIPE)
        return stop(f, -EPIPE, 0, "client gone");
    return f->head_req || status == 204 || status == 304 ? 1 : 0;
}

static int on_body(llhttp_t *ll, const char *at, size_t len)
{
    fwd *f = from_ll(ll);
    /* llhttp frames an interim response like any other, so one that
     * declares a body gets it; no such response is valid. */
    if (!f->started)
        return stop(f, -EPROTO, 502, "body in an interim upstream response");
    int rc = f->w->write(f->w, at, len);
    if (rc == -EPIPE)
        return stop(f, -EPIPE, 0, "client gone");
    return 0;
}

static int on_message_complete(llhttp_t *ll)
{
    fwd *f = from_ll(ll);
    if (ll->status_code < 200)
        return 0;
    f->complete = true;
    f->keep_alive = llhttp_should_keep_alive(ll);
    return HPE_PAUSED; /* what follows is not ours: stop here */
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- connections ---- */

static void timer_set(pconn *c, timer_kind k, uint64_t ms);

static void maybe_free(pconn *c)
{
    if (c->handles > 0 || c->writes > 0)
        return;
    http_proxy_upstream *u = c->u;
    free(c->rbuf);
    free(c);
    if (u) {
        u->n_conns--;
        if (u->freed && u->n_conns == 0) {
            free(u->path);
            free(u);
        }
    }
}

static void on_close(uv_handle_t *h)
{
    pconn *c = h->data;
    c->handles--;
    maybe_free(c);
}

static void pconn_close(pconn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->idle) {
        c->idle = false;
        list_remove(&c->link);
        c->u->n_idle--;
    }
    if (c->borrowed) {
        /* The caller's stream: stop using it and give it back as it was. */
        uv_read_stop(c->s);
        c->s->data = c->saved_data;
    } else if (c->has_stream) {
        c->handles++;
        uv_close(&c->io.h, on_close);
    }
    c->handles++;
    uv_close((uv_handle_t *)&c->timer, on_close);
}

static pconn *pconn_new(uv_loop_t *loop, http_proxy_upstream *u)
{
    pconn *c = xcalloc(1, sizeof *c);
    c->u = u;
    list_init(&c->link);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    if (u)
        u->n_conns++;
    return c;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    pconn *c = h->data;
    if (!c->rbuf)
        c->rbuf = xmalloc(READ_SIZE);
    *b = uv_buf_init(c->rbuf, READ_SIZE);
}

static void fwd_free(fwd *f)
{
    free(f->head);
    buf_free(&f->field);
    buf_free(&f->value);
    http_headers_free(&f->hdrs);
    free(f);
}

/* Ends a forward: the response is ended (or aborted, or replaced by an
 * error page when nothing was sent), the connection pooled or closed. */
static void finish(fwd *f, int code, int status, const char *reason)
{
    pconn *c = f->c;
    if (c) {
        c->f = NULL;
        f->c = NULL;
        if (c->reading && !c->closing) {
            uv_read_stop(c->s);
            c->reading = false;
        }
        timer_set(c, T_NONE, 0);
        http_proxy_upstream *u = c->u;
        /* A body not sent whole leaves the upstream waiting for the rest. */
        bool body_whole = !f->bs || f->body_done;
        bool reuse = code == 0 && f->keep_alive && body_whole && u && !u->freed && c->writes == 0 &&
                     u->n_idle < u->o.pool_max && !c->closing;
        if (reuse) {
            c->uses++;
            c->idle = true;
            list_push(&u->idle, &c->link);
            u->n_idle++;
            /* Read while idle: an upstream that closes is noticed at once. */
            if (uv_read_start(c->s, on_alloc, on_read) == 0)
                c->reading = true;
            timer_set(c, T_POOL, u->o.pool_idle_ms);
            if (!c->reading)
                pconn_close(c);
        } else {
            pconn_close(c);
        }
    }
    if (code == 0) {
        f->w->end(f->w);
    } else if (code == -EPIPE) {
        f->w->end(f->w); /* the client has gone; the writer still expects end */
    } else if (!f->started) {
        log_debug("proxy: %d %s", status, reason);
        http_writer_error(f->w, status, reason);
    } else {
        log_debug("proxy: response aborted: %s", reason);
        http_writer_abort(f->w);
    }
    if (f->done)
        f->done(f->data, code);
    fwd_free(f);
}

/* The connection failed before the response was complete. A request that
 * had no answer at all on a connection that served others before goes
 * again on a fresh one, once, when repeating it is harmless. */
static void conn_failed(pconn *c, int code, int status, const char *reason)
{
    fwd *f = c->f;
    if (!f) {
        pconn_close(c);
        return;
    }
    /* Body bytes already consumed cannot be sent again. */
    bool body_untouched = !f->bs_started || (f->body_sent == 0 && !f->body_done);
    if (code != -ETIMEDOUT && !f->got_bytes && c->uses > 0 && f->u && f->idempotent &&
        !f->retried && !f->u->freed && body_untouched) {
        log_debug("proxy: reused connection failed (%s), retrying on a fresh one", reason);
        f->retried = true;
        if (f->bs_started && !f->bs_paused) { /* nothing may come while reconnecting */
            f->bs_paused = true;
            f->bs->pause(f->bs);
        }
        c->f = NULL;
        f->c = NULL;
        pconn_close(c);
        attempt(f);
        return;
    }
    finish(f, code, status, reason);
}

static void on_timer(uv_timer_t *t)
{
    pconn *c = t->data;
    if (c->closing)
        return;
    fwd *f = c->f;
    switch (c->tkind) {
    case T_CONNECT:
        conn_failed(c, -ETIMEDOUT, 504, "upstream connect timed out");
        break;
    case T_HEADERS:
        conn_failed(c, -ETIMEDOUT, 504, "upstream response timed out");
        break;
    case T_READ:
        conn_failed(c, -ETIMEDOUT, 504, "upstream stalled");
        break;
    case T_FAIL:
        conn_failed(c, c->open_err, 502, "upstream unreachable");
        break;
    case T_POOL:
        pconn_close(c);
        break;
    case T_POLL:
        if (f && http_writer_queued(f->w) <= f->o.max_buffered / 2) {
            f->paused = false;
            if (uv_read_start(c->s, on_alloc, on_read) != 0) {
                conn_failed(c, -EIO, 502, "upstream read failed");
                break;
            }
            c->reading = true;
            timer_set(c, T_READ, f->o.idle_timeout_ms);
        }
        break;
    default:
        break;
    }
}

static void timer_set(pconn *c, timer_kind k, uint64_t ms)
{
    c->tkind = k;
    if (k == T_NONE || c->closing)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, ms, k == T_POLL ? ms : 0);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    pconn *c = s->data;
    if (nread == 0 || c->closing)
        return;
    fwd *f = c->f;
    if (!f) { /* idle in the pool: a close, or bytes nobody asked for */
        pconn_close(c);
        return;
    }
    if (nread < 0) {
        /* llhttp_finish runs on_message_complete, which pauses: its
         * return code says nothing, f->complete does. */
        if (nread == UV_EOF && f->started && llhttp_message_needs_eof(&f->ll)) {
            llhttp_finish(&f->ll);
        }
        if (nread == UV_EOF && f->complete) {
            f->keep_alive = false;
            finish(f, 0, 0, NULL); /* a close-delimited body ends here */
            return;
        }
        if (f->started) {
            conn_failed(c, nread == UV_EOF ? -ECONNRESET : (int)nread, 502,
                        "upstream closed the connection mid-response");
            return;
        }
        conn_failed(c, nread == UV_EOF ? -ECONNRESET : (int)nread, 502,
                    "upstream closed the connection");
        return;
    }
    f->got_bytes = true;
    bool had_headers = f->started;
    llhttp_errno_t e = llhttp_execute(&f->ll, b->base, (size_t)nread);
    if (e == HPE_PAUSED) {
        /* Bytes after the response were not asked for: the connection's
         * framing cannot be trusted for another request. */
        if (llhttp_get_error_pos(&f->ll) != b->base + nread)
            f->keep_alive = false;
        finish(f, 0, 0, NULL);
        return;
    }
    if (e == HPE_USER) {
        finish(f, f->err, f->err_status, f->err_reason);
        return;
    }
    if (e != HPE_OK) {
        finish(f, -EPROTO, 502, "invalid upstream response");
        return;
    }
    if (f->started && (!had_headers || c->tkind == T_READ))
        timer_set(c, T_READ, f->o.idle_timeout_ms);
    if (f->started && http_writer_queued(f->w) > f->o.max_buffered) {
        /* The client is slower than the upstream: stop reading until it
         * catches up, so at most max_buffered waits in the server. */
        uv_read_stop(c->s);
        c->reading = false;
        f->paused = true;
        timer_set(c, T_POLL, POLL_MS);
    }
}

static void on_write(uv_write_t *req, int status);

/* Queues wr on c's stream; on failure frees wr and fails the connection
 * from the loop. Returns whether it was queued. */
static bool queue_write(pconn *c, write_req *wr, const uv_buf_t *bufs, unsigned n)
{
    int rc = uv_write(&wr->req, c->s, bufs, n, on_write);
    if (rc) {
        free(wr);
        c->open_err = rc;
        timer_set(c, T_FAIL, 0);
        return false;
    }
    c->writes++;
    return true;
}

static void on_write(uv_write_t *req, int status)
{
    write_req *wr = (write_req *)req;
    pconn *c = wr->c;
    c->body_queued -= wr->body_len;
    free(wr);
    c->writes--;
    if (c->closing) {
        maybe_free(c);
        return;
    }
    fwd *f = c->f;
    /* An upstream may answer without reading the whole body and close; the
     * read side then decides, unless nothing has come back at all. */
    if (status < 0 && f && !f->got_bytes) {
        conn_failed(c, status, 502, "upstream write failed");
        return;
    }
    if (status < 0 && f && f->bs_started && !f->body_done) {
        /* The upstream takes no more of the body: leave the rest unread (the
         * client's connection closes after the response). */
        f->body_stuck = true;
        if (!f->bs_paused) {
            f->bs_paused = true;
            f->bs->pause(f->bs);
        }
        return;
    }
    if (f && f->bs_paused && !f->body_stuck && f->c == c && c->body_queued <= f->o.max_buffered / 2) {
        f->bs_paused = false;
        f->bs->resume(f->bs);
    }
}

/* ---- the streamed request body ---- */

/* Queues a body piece (with its chunk framing when chunked) for the upstream. */
static void body_write(fwd *f, const char *data, size_t len, bool last)
{
    pconn *c = f->c;
    if (!c || c->closing || f->body_stuck)
        return;
    char size_line[24];
    int sl = 0;
    if (f->chunked_body && len)
        sl = snprintf(size_line, sizeof size_line, "%zx\r\n", len);
    size_t total = (size_t)sl + len + (f->chunked_body && len ? 2 : 0) + (f->chunked_body && last ? 5 : 0);
    if (total == 0)
        return;
    write_req *wr = xmalloc(sizeof *wr + total);
    wr->c = c;
    wr->body_len = total;
    char *p = wr->data;
    memcpy(p, size_line, (size_t)sl);
    p += sl;
    if (len)
        memcpy(p, data, len);
    p += len;
    if (f->chunked_body && len) {
        memcpy(p, "\r\n", 2);
        p += 2;
    }
    if (f->chunked_body && last)
        memcpy(p, "0\r\n\r\n", 5);
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)total);
    if (!queue_write(c, wr, &b, 1))
        return;
    c->body_queued += total;
    /* The header timeout runs from the last body byte sent: a long upload
     * is not a silent upstream. */
    if (c->tkind == T_HEADERS)
        timer_set(c, T_HEADERS, f->o.header_timeout_ms);
    if (c->body_queued > f->o.max_buffered && !f->bs_paused) {
        f->bs_paused = true;
        f->bs->pause(f->bs);
    }
}

static void body_data(void *ctx, const char *data, size_t len)
{
    fwd *f = ctx;
    f->body_sent += len;
    body_write(f, data, len, false);
}

static void body_end(void *ctx)
{
    fwd *f = ctx;
    f->body_done = true;
    body_write(f, NULL, 0, true);
}

/* The client's body failed: the upstream request is abandoned (its
 * connection closed), the client answered or its response aborted. */
static void body_error(void *ctx, int code)
{
    fwd *f = ctx;
    if (code == -EMSGSIZE)
        finish(f, code, 413, "The request body is over the limit.");
    else if (code == -EPROTO)
        finish(f, code, 400, "The request body is malformed.");
    else
        finish(f, code, 400, "The request body did not arrive whole.");
}

/* Sends the request on f->c and starts reading the response. */
static void send_request(fwd *f)
{
    pconn *c = f->c;
    llhttp_init(&f->ll, HTTP_RESPONSE, &settings);
    f->ll.data = f;
    f->got_bytes = f->started = f->complete = f->keep_alive = f->paused = false;
    write_req *wr = xmalloc(sizeof *wr);
    wr->c = c;
    wr->body_len = 0;
    uv_buf_t bufs[2] = {uv_buf_init(f->head, (unsigned)f->head_len),
                        uv_buf_init(f->req->body.data, (unsigned)f->req->body.len)};
    if (!queue_write(c, wr, bufs, !f->bs && f->req->body.len ? 2 : 1))
        return;
    if (!c->reading) {
        int rc = uv_read_start(c->s, on_alloc, on_read);
        if (rc) {
            c->open_err = rc;
            timer_set(c, T_FAIL, 0);
            return;
        }
        c->reading = true;
    }
    timer_set(c, T_HEADERS, f->o.header_timeout_ms);
    if (f->bs && !f->bs_started) {
        f->bs_started = true;
        http_body_sink sink = {.data = body_data, .end = body_end, .error = body_error, .ctx = f};
        f->bs->start(f->bs, &sink);
    } else if (f->bs && f->bs_paused) {
        f->bs_paused = false; /* paused for the retry's reconnect */
        f->bs->resume(f->bs);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    pconn *c = req->data;
    if (c->closing)
        return;
    if (status < 0) {
        conn_failed(c, status, 502, "upstream refused the connection");
        return;
    }
    c->connected = true;
    send_request(c->f);
}

/* The kernel's own receive buffer for an upstream connection grows by
 * autotuning up to net.ipv4.tcp_rmem's maximum (32 MiB on some machines):
 * bytes the proxy has stopped reading (a slow client) would pile up there,
 * outside max_buffered. A fixed size bounds it. */
#define UPSTREAM_RCVBUF (256 * 1024)

static void limit_kernel_buffer(pconn *c)
{
    uv_os_fd_t fd;
    int size = UPSTREAM_RCVBUF;
    if (uv_fileno(&c->io.h, &fd) == 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size); /* best effort: a bound, not a need */
}

/* Opens a fresh connection for u: connecting (T_CONNECT), ready, or failed
 * (T_FAIL reports it from the loop, never from inside http_proxy_forward). */
static pconn *pconn_open(http_proxy_upstream *u)
{
    pconn *c = pconn_new(u->loop, u);
    u->opened++;
    c->s = &c->io.s;
    c->creq.data = c;
    int rc = 0;
    if (u->kind == UP_TCP) {
        uv_tcp_init(u->loop, &c->io.tcp);
        c->has_stream = true;
        c->io.h.data = c;
        rc = uv_tcp_connect(&c->creq, &c->io.tcp, (const struct sockaddr *)&u->addr, on_connect);
    } else if (u->kind == UP_UNIX) {
        uv_pipe_init(u->loop, &c->io.pipe, 0);
        c->has_stream = true;
        c->io.h.data = c;
        uv_pipe_connect(&c->creq, &c->io.pipe, u->path, on_connect);
    } else {
        int fd = -1;
        rc = u->open(u->open_data, &fd);
        if (rc == 0) {
            int domain = 0;
            socklen_t len = sizeof domain;
            if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0)
                domain = AF_INET;
            if (domain == AF_UNIX) {
                uv_pipe_init(u->loop, &c->io.pipe, 0);
                rc = uv_pipe_open(&c->io.pipe, fd);
            } else {
                uv_tcp_init(u->loop, &c->io.tcp);
                rc = uv_tcp_open(&c->io.tcp, fd);
            }
            c->has_stream = true;
            c->io.h.data = c;
            if (rc)
                close(fd); /* not adopted by the handle */
            else if (u->open_connects && domain != AF_UNIX)
                /* Connecting on the loop: a full listen backlog upstream
                 * (SYNs retried for seconds) never stalls it. */
                rc = uv_tcp_connect(&c->creq, &c->io.tcp, (const struct sockaddr *)&u->addr, on_connect);
            else
                c->connected = true;
        } else if (rc > 0 || rc < -4095) {
            rc = -EIO; /* a callback that broke the return convention */
        }
    }
    if (rc == 0)
        limit_kernel_buffer(c);
    if (rc) {
        c->open_err = rc;
        timer_set(c, T_FAIL, 0);
    } else if (!c->connected) {
        timer_set(c, T_CONNECT, u->o.connect_timeout_ms);
    }
    return c;
}

/* Puts f on a connection: a pooled one unless this is the retry. */
static void attempt(fwd *f)
{
    http_proxy_upstream *u = f->u;
    pconn *c = NULL;
    if (!f->retried && u->n_idle) {
        c = CONTAINER_OF(u->idle.next, pconn, link);
        list_remove(&c->link);
        c->idle = false;
        u->n_idle--;
        timer_set(c, T_NONE, 0);
        c->f = f;
        f->c = c;
        send_request(f);
        return;
    }
    c = pconn_open(u);
    c->f = f;
    f->c = c;
    if (c->connected && c->tkind != T_FAIL)
        send_request(f);
}

/* ---- public ---- */

static fwd *fwd_new(const http_proxy_opts *o, const http_request *req, http_writer *w,
                    const http_proxy_req_opts *ro, bool keep_alive, err *e)
{
    buf head;
    buf_init(&head, BUF_UNLIMITED);
    if (serialise(req, ro, keep_alive, &head) != 0) {
        buf_free(&head);
        err_set(e, -EINVAL, "proxy: request cannot be forwarded (bad method or target)");
        return NULL;
    }
    fwd *f = xcalloc(1, sizeof *f);
    f->o = *o;
    f->req = req;
    f->w = w;
    f->head = buf_steal(&head, &f->head_len);
    if (ro) {
        f->done = ro->done;
        f->data = ro->data;
    }
    buf_init(&f->field, BUF_UNLIMITED);
    buf_init(&f->value, BUF_UNLIMITED);
    http_headers_init(&f->hdrs);
    f->head_req = strcmp(req->method, "HEAD") == 0;
    f->bs = req->stream;
    f->chunked_body = req->stream && req->stream->length < 0;
    static const char *const idem[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
    for (size_t i = 0; i < sizeof idem / sizeof *idem; i++)
        f->idempotent = f->idempotent || strcmp(req->method, idem[i]) == 0;
    return f;
}

int http_proxy_forward(http_proxy_upstream *u, const http_request *req, http_writer *w,
                       const http_proxy_req_opts *ro, err *e)
{
    if (!u || !req || !w || u->freed)
        return err_set(e, -EINVAL, "proxy: no upstream");
    fwd *f = fwd_new(&u->o, req, w, ro, u->o.pool_max > 0, e);
    if (!f)
        return -EINVAL;
    f->u = u;
    attempt(f);
    return 0;
}

int http_proxy_forward_stream(uv_stream_t *stream, const http_proxy_opts *o,
                              const http_request *req, http_writer *w,
                              const http_proxy_req_opts *ro, err *e)
{
    http_proxy_opts defaults;
    if (!o) {
        http_proxy_opts_defaults(&defaults);
        o = &defaults;
    }
    if (!stream || !req || !w)
        return err_set(e, -EINVAL, "proxy: no stream");
    fwd *f = fwd_new(o, req, w, ro, false, e);
    if (!f)
        return -EINVAL;
    pconn *c = pconn_new(stream->loop, NULL);
    c->borrowed = c->connected = true;
    c->s = stream;
    c->saved_data = stream->data;
    stream->data = c;
    c->f = f;
    f->c = c;
    send_request(f);
    return 0;
}

static int upstream_new(uv_loop_t *loop, const http_proxy_opts *o, up_kind kind,
                        http_proxy_upstream **out)
{
    http_proxy_upstream *u = xcalloc(1, sizeof *u);
    u->loop = loop;
    if (o)
        u->o = *o;
    else
        http_proxy_opts_defaults(&u->o);
    u->kind = kind;
    list_init(&u->idle);
    *out = u;
    return 0;
}

int http_proxy_upstream_tcp(uv_loop_t *loop, const char *ip, int port, const http_proxy_opts *o,
                            http_proxy_upstream **out, err *e)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (!loop || !ip || !out || port <= 0 || port > 65535)
        return err_set(e, -EINVAL, "proxy upstream: bad address");
    if (uv_ip4_addr(ip, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&ss) != 0)
        return err_set(e, -EINVAL, "proxy upstream: bad address '%s'", ip);
    upstream_new(loop, o, UP_TCP, out);
    (*out)->addr = ss;
    return 0;
}

int http_proxy_upstream_unix(uv_loop_t *loop, const char *path, const http_proxy_opts *o,
                             http_proxy_upstream **out, err *e)
{
    if (!loop || !path || !out)
        return err_set(e, -EINVAL, "proxy upstream: no path");
    if (!path[0] || strlen(path) >= sizeof ((struct sockaddr_un *)0)->sun_path)
        return err_set(e, -ENAMETOOLONG, "proxy upstream: bad socket path '%s'", path);
    upstream_new(loop, o, UP_UNIX, out);
    (*out)->path = xstrdup(path);
    return 0;
}

int http_proxy_upstream_open_connect(uv_loop_t *loop, http_proxy_open_cb open, void *open_data,
                                     const char *ip, int port, const http_proxy_opts *o,
                                     http_proxy_upstream **out, err *e)
{
    http_proxy_upstream *u;
    int rc = http_proxy_upstream_tcp(loop, ip, port, o, &u, e); /* checks and stores the address */
    if (rc != 0)
        return rc;
    if (!open) {
        http_proxy_upstream_free(u);
        return err_set(e, -EINVAL, "proxy upstream: no open callback");
    }
    u->kind = UP_OPEN;
    u->open = open;
    u->open_data = open_data;
    u->open_connects = true;
    *out = u;
    return 0;
}

int http_proxy_upstream_open(uv_loop_t *loop, http_proxy_open_cb open, void *open_data,
                             const http_proxy_opts *o, http_proxy_upstream **out, err *e)
{
    if (!loop || !open || !out)
        return err_set(e, -EINVAL, "proxy upstream: no open callback");
    upstream_new(loop, o, UP_OPEN, out);
    (*out)->open = open;
    (*out)->open_data = open_data;
    return 0;
}

void http_proxy_upstream_free(http_proxy_upstream *u)
{
    if (!u || u->freed)
        return;
    u->freed = true;
    while (u->n_idle)
        pconn_close(CONTAINER_OF(u->idle.next, pconn, link));
    if (u->n_conns == 0) {
        free(u->path);
        free(u);
    }
}

size_t http_proxy_upstream_opened(const http_proxy_upstream *u)
{
    return u->opened;
}

size_t http_proxy_upstream_idle(const http_proxy_upstream *u)
{
    return u->n_idle;
}
