/* The HTTP/1.1 server on libuv (see server.h).
 *
 * One `conn` per TCP connection and one `exchange` per request handed to the
 * handler. A connection answers one request at a time: the next buffered
 * request is parsed only after the previous response has ended, which keeps
 * pipelined responses in order without a queue of exchanges. Input that
 * arrives meanwhile waits in conn->in, and reading stops when too much of it
 * is waiting; likewise the next request waits while too much of the previous
 * responses is still queued for the socket.
 *
 * A streamed request body (cfg.stream_body) is parsed only while its
 * consumer wants it: the handler gets the request at its header section,
 * and body bytes are fed to the parser (and on to the consumer) from reads
 * and from conn->in while the consumer is not paused; a paused consumer
 * stops the socket being read. Consumer errors are delivered from the idle
 * callback (s->notify), since what detects them (a failed write, a close)
 * may run inside a call from the handler.
 *
 * Ownership: the server owns its connections (freed in their close
 * callback, never synchronously, so a conn pointer stays valid for the rest
 * of any callback that closes it). A connection owns its current exchange
 * while it is alive; when the client goes away first, the exchange is
 * detached (ex->c = NULL, the writer then returns -EPIPE) and frees itself
 * when the handler calls end. Either way the exchange lives until end. */
#include "http/server.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/log.h"
#include "http/parser.h"

#define READ_SIZE (64 * 1024)       /* one read from a socket */
#define IN_HIGH_WATER (64 * 1024)   /* unparsed input at which reading stops */
#define OUT_FLUSH (64 * 1024)       /* response bytes buffered before a write even inside the handler */
#define OUT_HIGH_WATER (256 * 1024) /* bytes queued for a socket at which the next request waits */
#define OUT_KEEP (256 * 1024)       /* a larger output buffer is freed rather than kept for reuse */
#define LINGER_MS 2000              /* after an error response, time to drain what the client still sends */

/* An intrusive doubly-linked list (the idea of libuv's QUEUE). */
typedef struct qlink {
    struct qlink *prev, *next;
} qlink;

static void list_init(qlink *l)
{
    l->prev = l->next = l;
}

static bool list_empty(const qlink *l)
{
    return l->next == l;
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

typedef enum { T_NONE, T_HEADERS, T_IDLE, T_BODY, T_CLOSE, T_LINGER } timer_kind;

typedef struct conn conn;
typedef struct exchange exchange;

/* Where a request's body is. The order matters: from B_DONE on, the
 * consumer hears nothing more. */
typedef enum {
    B_NONE,     /* buffered: the body came with the request */
    B_WAITING,  /* streamed, the consumer has not started it yet */
    B_FLOWING,
    B_PAUSED,
    B_DONE,     /* complete: the consumer got end */
    B_FAILED,   /* cannot complete: the consumer gets (or got) error */
    B_DETACHED, /* the response ended first */
} body_state;

/* A TCP or a Unix-socket stream; both are uv_stream_t underneath. */
union sock {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_stream_t stream;
    uv_handle_t handle;
};

struct http_server {
    uv_loop_t *loop;
    http_server_config cfg;
    http_handler_cb handler;
    void *data;
    union sock *listener;  /* owned; freed in its close callback */
    bool unix_socket;      /* listening on a Unix socket: connections are pipes */
    uv_idle_t *resume_idle; /* owned; runs connections queued on `resume` */
    char *rbuf;            /* one read buffer for all connections: reads are consumed at once */
    qlink conns;            /* every open connection */
    qlink resume;           /* connections to continue from the loop, not from inside an end() */
    qlink notify;           /* exchanges whose body consumer is owed an error */
    size_t n_conns, n_exchanges;
    bool draining, done_called;
    void (*drain_done)(void *data);
    void *drain_data;
    time_t date_sec;
    char date[64];         /* "Date: ...\r\n" for date_sec */
};

struct conn {
    union sock io;         /* first: casts between the conn's handle types */
    uv_timer_t timer;
    uv_shutdown_t shutdown;
    http_server *srv;
    qlink all, resume;
    http_parser *parser;   /* owned */
    buf in;                /* read but not yet parsed, while a request is answered */
    buf out;               /* response bytes not yet handed to the socket */
    exchange *cur;         /* the request being answered, if any */
    size_t writes;         /* uv_write requests in flight */
    unsigned requests;     /* requests handed to the handler so far */
    timer_kind tkind;
    int handles;           /* open libuv handles; freed when the last one closes */
    bool reading, peer_closed, close_after_write, shutdown_sent, lingering, closing;
    bool blocked;          /* waiting for queued output to drain before the next request */
    bool queued;           /* on srv->resume */
};

struct exchange {
    http_writer w;         /* first: the handler's pointer is the exchange's */
    http_request req;
    http_server *srv;
    conn *c;               /* NULL once the client has gone */
    int64_t left;          /* Content-Length bytes still owed, -1 when not counted */
    bool started, ended, in_handler;
    bool aborted;          /* ended by abort: no final chunk, the connection closes */
    bool head, bodyless, chunked, keep_alive;
    /* A streamed body (req.stream == &stream). */
    http_body_stream stream;
    http_body_sink sink;
    bool sink_set, notifying;
    body_state bstate;
    int body_err;          /* B_FAILED: the code the consumer is owed */
    uint64_t body_limit;
    qlink notify;          /* on srv->notify */
};

typedef struct write_req {
    uv_write_t req;
    conn *c;
    char *data; /* owned allocation the write points into */
} write_req;

static void conn_close(conn *c);
static void body_fail(exchange *ex, int code);
static void queue_conn(conn *c);
static void conn_close_after_write(conn *c);
static void conn_continue(conn *c);
static size_t conn_feed(conn *c, const char *data, size_t len);

void http_server_config_defaults(http_server_config *cfg)
{
    cfg->max_header_bytes = 32 * 1024;
    cfg->require_host = true;
    cfg->max_body_bytes = 100 * 1024 * 1024;
    cfg->header_timeout_ms = 10 * 1000;
    cfg->idle_timeout_ms = 60 * 1000;
    cfg->body_timeout_ms = 60 * 1000;
    cfg->stream_body = NULL;
}

/* ---- output ---- */

static void append(buf *b, const char *s, size_t len)
{
    buf_append(b, s, len); /* unlimited buffer: cannot fail (allocation aborts) */
}

#define APPEND_LIT(b, s) append((b), (s), sizeof(s) - 1)

static void append_u64(buf *b, uint64_t v, int base)
{
    char tmp[24]; /* 2^64 has 20 decimal digits */
    size_t i = sizeof tmp;
    do {
        tmp[--i] = "0123456789abcdef"[v % (uint64_t)base];
        v /= (uint64_t)base;
    } while (v);
    append(b, tmp + i, sizeof tmp - i);
}

/* The Date header, formatted once per second (RFC 9110 5.6.7, no locale). */
static const char *server_date(http_server *s)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    if (now != s->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        snprintf(s->date, sizeof s->date, "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n",
                 days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        s->date_sec = now;
    }
    return s->date;
}

static void on_write(uv_write_t *req, int status)
{
    write_req *wr = (write_req *)req;
    conn *c = wr->c;
    free(wr->data);
    free(wr);
    c->writes--;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->writes == 0 && c->close_after_write)
        conn_close_after_write(c); /* now shuts down */
    else if (c->blocked && c->io.stream.write_queue_size <= OUT_HIGH_WATER / 2)
        conn_continue(c);
}

/* Hands c->out to the socket: written at once when the socket takes it (the
 * common case: no allocation), else queued with uv_write. */
static void conn_flush(conn *c)
{
    if (c->closing || c->out.len == 0)
        return;
    size_t done = 0;
    if (c->writes == 0) {
        uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
        int n = uv_try_write(&c->io.stream, &b, 1);
        if (n < 0 && n != UV_EAGAIN) {
            conn_close(c);
            return;
        }
        done = n > 0 ? (size_t)n : 0;
        if (done == c->out.len) {
            if (c->out.cap > OUT_KEEP)
                buf_free(&c->out);
            else
                buf_reset(&c->out);
            return;
        }
    }
    size_t len;
    write_req *wr = xmalloc(sizeof *wr);
    wr->c = c;
    wr->data = buf_steal(&c->out, &len);
    uv_buf_t b = uv_buf_init(wr->data + done, (unsigned)(len - done));
    if (uv_write(&wr->req, &c->io.stream, &b, 1, on_write) != 0) {
        free(wr->data);
        free(wr);
        conn_close(c);
        return;
    }
    c->writes++;
}

/* A response the server makes itself (errors, timeouts); the connection
 * closes after it. */
static void conn_error(conn *c, int status, const char *reason)
{
    log_debug("http: %d %s", status, reason);
    const char *phrase = http_status_reason(status);
    buf *o = &c->out;
    APPEND_LIT(o, "HTTP/1.1 ");
    append_u64(o, (uint64_t)status, 10);
    APPEND_LIT(o, " ");
    buf_append_str(o, phrase);
    APPEND_LIT(o, "\r\n");
    buf_append_str(o, server_date(c->srv));
    APPEND_LIT(o, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: ");
    append_u64(o, strlen(phrase) + 1, 10);
    APPEND_LIT(o, "\r\nConnection: close\r\n\r\n");
    buf_append_str(o, phrase);
    APPEND_LIT(o, "\n");
    conn_flush(c);
    conn_close_after_write(c);
}

/* ---- the writer ---- */

static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* A field a tenant set that would break the framing (CR, LF, NUL) or is not
 * a token is dropped, so that no tenant can split a response. */
static bool field_ok(const http_header *h)
{
    if (h->name_len == 0)
        return false;
    for (size_t i = 0; i < h->name_len; i++)
        if (!is_tchar((unsigned char)h->name[i]))
            return false;
    for (size_t i = 0; i < h->value_len; i++)
        if (h->value[i] == '\r' || h->value[i] == '\n' || h->value[i] == '\0')
            return false;
    return true;
}

/* Framing and hop-by-hop fields are the writer's own. */
static bool field_is_ours(const char *name)
{
    return strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Transfer-Encoding") == 0 ||
           strcasecmp(name, "Connection") == 0 || strcasecmp(name, "Keep-Alive") == 0;
}

static int w_start(http_writer *w, int status, const http_headers *headers, int64_t content_length)
{
    exchange *ex = (exchange *)w;
    if (ex->started || ex->ended)
        return -EINVAL;
    ex->started = true;
    conn *c = ex->c;
    if (!c)
        return -EPIPE;
    int rc = 0;
    if (status < 200 || status > 999) { /* 1xx cannot be a final response */
        status = 500;
        rc = -EINVAL;
    }
    bool v10 = ex->req.version_minor == 0;
    ex->bodyless = status == 204 || status == 304;
    ex->keep_alive = ex->keep_alive && !ex->srv->draining;
    /* A body nobody reads (or that failed) is not waited for: say that the
     * connection closes. One being read may still end in time. */
    if (ex->bstate == B_WAITING || ex->bstate == B_FAILED)
        ex->keep_alive = false;
    ex->left = -1;
    if (content_length >= 0) {
        if (!ex->head && !ex->bodyless)
            ex->left = content_length;
    } else if (!v10) {
        ex->chunked = !ex->head && !ex->bodyless;
    } else if (!ex->head && !ex->bodyless) {
        ex->keep_alive = false; /* HTTP/1.0 without a length: the close ends the body */
    }

    buf *o = &c->out;
    APPEND_LIT(o, "HTTP/1.1 ");
    append_u64(o, (uint64_t)status, 10);
    APPEND_LIT(o, " ");
    buf_append_str(o, http_status_reason(status));
    APPEND_LIT(o, "\r\n");
    bool have_date = false;
    for (size_t i = 0; headers && i < headers->count; i++) {
        const http_header *h = &headers->items[i];
        if (field_is_ours(h->name))
            continue;
        if (!field_ok(h)) {
            log_warn("http: dropped a response header field with invalid characters");
            continue;
        }
        have_date = have_date || strcasecmp(h->name, "Date") == 0;
        append(o, h->name, h->name_len);
        APPEND_LIT(o, ": ");
        append(o, h->value, h->value_len);
        APPEND_LIT(o, "\r\n");
    }
    if (!have_date)
        buf_append_str(o, server_date(ex->srv));
    if (!ex->bodyless) {
        if (content_length >= 0) {
            APPEND_LIT(o, "Content-Length: ");
            append_u64(o, (uint64_t)content_length, 10);
            APPEND_LIT(o, "\r\n");
        } else if (!v10) {
            APPEND_LIT(o, "Transfer-Encoding: chunked\r\n");
        }
    }
    if (!ex->keep_alive)
        APPEND_LIT(o, "Connection: close\r\n\r\n");
    else if (v10)
        APPEND_LIT(o, "Connection: keep-alive\r\n\r\n");
    else
        APPEND_LIT(o, "\r\n");
    /* A streamed response shows its headers at once; a sized one waits for its body. */
    if (!ex->in_handler && content_length < 0)
        conn_flush(c);
    return rc;
}

static int w_write(http_writer *w, const void *data, size_t len)
{
    exchange *ex = (exchange *)w;
    if (!ex->started || ex->ended)
        return -EINVAL;
    conn *c = ex->c;
    if (!c)
        return -EPIPE;
    if (len == 0 || ex->head || ex->bodyless)
        return 0;
    int rc = 0;
    buf *o = &c->out;
    if (ex->left >= 0) {
        if ((uint64_t)len > (uint64_t)ex->left) { /* more than promised: the rest would be a new response */
            len = (size_t)ex->left;
            rc = -EINVAL;
        }
        ex->left -= (int64_t)len;
        append(o, data, len);
    } else if (ex->chunked) {
        append_u64(o, len, 16);
        APPEND_LIT(o, "\r\n");
        append(o, data, len);
        APPEND_LIT(o, "\r\n");
    } else {
        append(o, data, len);
    }
    if (!ex->in_handler || o->len >= OUT_FLUSH)
        conn_flush(c);
    return c->closing ? -EPIPE : rc;
}

/* The response has ended and the handler has returned: flushes, frees the
 * exchange, and returns its connection (NULL if gone) for the caller to go on. */
static conn *exchange_finish(exchange *ex)
{
    http_server *s = ex->srv;
    conn *c = ex->c;
    if (ex->bstate != B_NONE && ex->bstate != B_DONE) {
        /* The rest of the body is not read: its framing is lost. */
        ex->keep_alive = false;
        ex->bstate = B_DETACHED;
    }
    if (ex->notifying)
        list_remove(&ex->notify);
    bool keep = ex->keep_alive;
    http_request_free(&ex->req);
    free(ex);
    s->n_exchanges--;
    if (!c)
        return NULL;
    c->cur = NULL;
    conn_flush(c);
    if (!keep || s->draining)
        conn_close_after_write(c);
    return c;
}

static void check_drained(http_server *s);
static void on_resume(uv_idle_t *idle);

/* Continues c from the loop (on_resume). */
static void queue_conn(conn *c)
{
    if (c->queued || c->closing)
        return;
    c->queued = true;
    list_push(&c->srv->resume, &c->resume);
    uv_idle_start(c->srv->resume_idle, on_resume);
}

static void w_end(http_writer *w)
{
    exchange *ex = (exchange *)w;
    if (ex->ended)
        return;
    if (!ex->started && ex->c)
        w_start(w, 500, NULL, 0); /* ended without an answer */
    ex->ended = true;
    if (ex->aborted)
        ex->keep_alive = false; /* the close tells the client the response is incomplete */
    else if (ex->c) {
        if (ex->chunked)
            APPEND_LIT(&ex->c->out, "0\r\n\r\n");
        if (ex->left > 0)
            ex->keep_alive = false; /* shorter than its Content-Length: the framing is lost */
    }
    if (ex->in_handler)
        return; /* dispatch() finishes it when the handler returns */
    http_server *s = ex->srv;
    conn *c = exchange_finish(ex);
    if (!c) {
        check_drained(s);
        return;
    }
    /* Parsing the next request from here would call the handler from inside
     * whatever code called end; so buffered input waits for the loop. */
    if (c->in.len && !c->closing && !c->close_after_write)
        queue_conn(c);
    else
        conn_continue(c);
}

/* ---- connections ---- */

static uint64_t timeout_ms(conn *c, timer_kind k)
{
    switch (k) {
    case T_HEADERS: return c->srv->cfg.header_timeout_ms;
    case T_IDLE: return c->srv->cfg.idle_timeout_ms;
    case T_BODY: return c->srv->cfg.body_timeout_ms;
    case T_CLOSE: return c->srv->cfg.idle_timeout_ms;
    case T_LINGER: return LINGER_MS;
    default: return 0;
    }
}

static void on_timeout(uv_timer_t *t);

static void set_timer(conn *c, timer_kind k)
{
    c->tkind = k;
    if (k == T_NONE)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timeout, timeout_ms(c, k), 0);
}

/* Picks the timer for what the connection waits for. The header timer runs
 * from the first byte of a request (from the accept for the first one) and is
 * not extended by further bytes, which is what defeats slowloris; the body
 * timer restarts whenever body bytes arrive. */
static void conn_update_timer(conn *c, bool progress)
{
    if (c->closing || c->close_after_write || c->lingering)
        return;
    timer_kind k = T_NONE;
    if (!c->cur) {
        switch (http_parser_phase(c->parser)) {
        case HTTP_PHASE_IDLE: k = c->requests ? T_IDLE : T_HEADERS; break;
        case HTTP_PHASE_HEADERS: k = T_HEADERS; break;
        case HTTP_PHASE_BODY: k = T_BODY; break;
        }
    } else if (c->cur->bstate == B_FLOWING) {
        k = T_BODY; /* waiting for the client; a paused or unstarted body waits for the handler */
    }
    if (k != c->tkind || (k == T_BODY && progress))
        set_timer(c, k);
}

static void on_timeout(uv_timer_t *t)
{
    conn *c = t->data;
    if (c->closing)
        return;
    if (c->tkind == T_HEADERS && http_parser_phase(c->parser) == HTTP_PHASE_HEADERS)
        conn_error(c, 408, "header section timed out");
    else
        conn_close(c); /* idle, stalled body, or a client that does not read */
}

static void on_conn_close(uv_handle_t *h)
{
    conn *c = h->data;
    if (--c->handles > 0)
        return;
    http_server *s = c->srv;
    list_remove(&c->all);
    http_parser_free(c->parser);
    buf_free(&c->in);
    buf_free(&c->out);
    free(c);
    s->n_conns--;
    check_drained(s);
}

/* Closes at once, dropping queued output; an exchange in flight is detached. */
static void conn_close(conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->cur) {
        body_fail(c->cur, -ECONNRESET);
        c->cur->c = NULL;
        c->cur = NULL;
    }
    if (c->queued) {
        c->queued = false;
        list_remove(&c->resume);
    }
    uv_close(&c->io.handle, on_conn_close);
    uv_close((uv_handle_t *)&c->timer, on_conn_close);
}

static void on_linger_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    if (nread < 0)
        conn_close(st->data); /* the client has closed too */
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    conn *c = h->data;
    *b = uv_buf_init(c->srv->rbuf, READ_SIZE);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn *c = req->data;
    if (c->closing)
        return;
    if (status < 0 || c->peer_closed || c->srv->draining) {
        conn_close(c);
        return;
    }
    /* Closing with unread input would send a reset that can destroy the
     * response before the client reads it; so read and discard for a while
     * (the lingering close of nginx and Apache). */
    c->lingering = true;
    set_timer(c, T_LINGER);
    if (uv_read_start(&c->io.stream, on_alloc, on_linger_read) != 0)
        conn_close(c);
}

/* Ends the connection gracefully: no more requests, queued output is
 * written, then the write side is shut down. */
static void conn_close_after_write(conn *c)
{
    if (c->closing)
        return;
    if (!c->close_after_write) {
        c->close_after_write = true;
        if (c->reading)
            uv_read_stop(&c->io.stream);
        c->reading = false;
        set_timer(c, T_CLOSE);
    }
    if (c->writes || c->shutdown_sent)
        return;
    c->shutdown_sent = true;
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, &c->io.stream, on_shutdown) != 0)
        conn_close(c);
}

static void on_headers(conn *c)
{
    http_request *r = http_parser_request(c->parser);
    const char *expect = http_headers_get(&r->headers, "Expect");
    /* The client waits for this before sending the body; a request refused
     * on its headers (413) never gets here. */
    if (expect && r->version_minor >= 1 && strcasecmp(expect, "100-continue") == 0) {
        APPEND_LIT(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
        conn_flush(c);
    }
}

/* Ends the response without its final chunk, then closes: a truncated body
 * that a client can tell from a complete one (except close-delimited HTTP/1.0). */
static void w_abort(http_writer *w)
{
    exchange *ex = (exchange *)w;
    if (ex->ended)
        return;
    ex->aborted = ex->started;
    w_end(w);
}

/* Response bytes not yet taken by the client's socket. */
static size_t w_queued(http_writer *w)
{
    exchange *ex = (exchange *)w;
    if (!ex->c)
        return 0;
    return ex->c->out.len + ex->c->io.stream.write_queue_size;
}

static const http_writer writer_ops = {
    .start = w_start, .write = w_write, .end = w_end, .abort = w_abort, .queued = w_queued};

static exchange *exchange_new(conn *c)
{
    exchange *ex = xcalloc(1, sizeof *ex);
    ex->w = writer_ops;
    ex->srv = c->srv;
    ex->c = c;
    ex->left = -1;
    list_init(&ex->notify);
    return ex;
}

/* After the handler or a body callback returned, inside conn_feed: finishes
 * an exchange that ended meanwhile (conn_feed then goes on with the next
 * request), else sends what was written. False when the exchange is gone. */
static bool exchange_settle(exchange *ex)
{
    http_server *s = ex->srv;
    ex->in_handler = false;
    if (ex->ended) {
        if (!exchange_finish(ex))
            check_drained(s);
        return false;
    }
    if (ex->c)
        conn_flush(ex->c);
    return true;
}

/* Hands ex (its request taken from the parser) to the handler. */
static void run_handler(conn *c, exchange *ex)
{
    http_server *s = c->srv;
    c->cur = ex;
    c->requests++;
    s->n_exchanges++;
    conn_update_timer(c, false);
    ex->in_handler = true;
    s->handler(s->data, &ex->req, &ex->w);
    exchange_settle(ex);
}

static void dispatch(conn *c)
{
    exchange *ex = exchange_new(c);
    http_parser_take(c->parser, &ex->req);
    ex->head = strcmp(ex->req.method, "HEAD") == 0;
    ex->keep_alive = ex->req.keep_alive && !c->srv->draining;
    run_handler(c, ex);
}

/* ---- streamed request bodies ---- */

static exchange *stream_exchange(http_body_stream *st)
{
    return CONTAINER_OF(st, exchange, stream);
}

/* Owes the consumer an error, delivered from the loop. */
static void queue_notify(exchange *ex)
{
    if (ex->notifying)
        return;
    ex->notifying = true;
    list_push(&ex->srv->notify, &ex->notify);
    uv_idle_start(ex->srv->resume_idle, on_resume);
}

/* The body of ex cannot complete; its consumer gets `code` (at once if
 * started, else when it starts) and the connection closes after the
 * response. Nothing for a buffered or already finished body. */
static void body_fail(exchange *ex, int code)
{
    if (ex->bstate == B_NONE || ex->bstate >= B_DONE)
        return;
    bool started = ex->bstate != B_WAITING;
    ex->bstate = B_FAILED;
    ex->body_err = code;
    ex->keep_alive = false;
    if (started)
        queue_notify(ex);
}

static void bs_start(http_body_stream *st, const http_body_sink *sink)
{
    exchange *ex = stream_exchange(st);
    if (ex->sink_set || !sink)
        return;
    ex->sink = *sink;
    ex->sink_set = true;
    if (ex->bstate == B_FAILED) { /* failed before it was wanted */
        queue_notify(ex);
        return;
    }
    if (ex->bstate != B_WAITING)
        return;
    ex->bstate = B_FLOWING;
    conn *c = ex->c;
    if (!c)
        return;
    /* The client waits for this before it sends the body: now is when the
     * body is wanted (a handler that answers without it never sends it). */
    const char *expect = http_headers_get(&ex->req.headers, "Expect");
    if (!ex->started && expect && ex->req.version_minor >= 1 && strcasecmp(expect, "100-continue") == 0) {
        APPEND_LIT(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
        if (!ex->in_handler)
            conn_flush(c);
    }
    queue_conn(c); /* buffered body bytes go out from the loop, not from inside start */
}

static void bs_pause(http_body_stream *st)
{
    exchange *ex = stream_exchange(st);
    if (ex->bstate != B_FLOWING)
        return;
    ex->bstate = B_PAUSED;
    conn *c = ex->c;
    if (c && c->reading) {
        uv_read_stop(&c->io.stream); /* the kernel's buffer, then the client's window, fill up */
        c->reading = false;
    }
    if (c)
        conn_update_timer(c, false);
}

static void bs_resume(http_body_stream *st)
{
    exchange *ex = stream_exchange(st);
    if (ex->bstate != B_PAUSED)
        return;
    ex->bstate = B_FLOWING;
    if (ex->c)
        queue_conn(ex->c);
}

/* The parser's sink for a streamed body: counts against the limit and
 * passes the bytes on; stops the feed when the consumer paused or ended. */
static int body_sink(void *ctx, const char *data, size_t len)
{
    conn *c = ctx;
    exchange *ex = c->cur;
    if (!ex || ex->bstate != B_FLOWING || ex->ended)
        return HTTP_SINK_PAUSE;
    if (ex->stream.received + len > ex->body_limit)
        return HTTP_SINK_TOO_LARGE;
    ex->stream.received += len;
    ex->sink.data(ex->sink.ctx, data, len);
    return ex->bstate == B_FLOWING && !ex->ended && !c->closing ? HTTP_SINK_OK : HTTP_SINK_PAUSE;
}

/* A request whose handler wants its body streamed: handed over now. */
static void dispatch_streamed(conn *c, size_t limit)
{
    exchange *ex = exchange_new(c);
    http_parser_stream_body(c->parser, &ex->req, body_sink, c);
    ex->head = strcmp(ex->req.method, "HEAD") == 0;
    ex->keep_alive = ex->req.keep_alive && !c->srv->draining;
    ex->bstate = B_WAITING;
    ex->body_limit = limit;
    ex->stream.start = bs_start;
    ex->stream.pause = bs_pause;
    ex->stream.resume = bs_resume;
    ex->stream.length = -1;
    const char *cl = http_headers_get(&ex->req.headers, "Content-Length");
    if (!http_headers_get(&ex->req.headers, "Transfer-Encoding") && cl)
        ex->stream.length = strtoll(cl, NULL, 10); /* checked by llhttp */
    if (ex->stream.length > (int64_t)limit)
        body_fail(ex, -EMSGSIZE); /* said at start: not a byte is read */
    ex->req.stream = &ex->stream;
    run_handler(c, ex);
}

/* Feeds a streamed body: returns true to go on feeding, false to stop. */
static bool feed_body(conn *c, exchange *ex, const char *data, size_t len, size_t *off)
{
    size_t used;
    ex->in_handler = true; /* an end from a callback is finished below */
    http_parse_event ev = http_parser_feed(c->parser, data + *off, len - *off, &used);
    *off += used;
    if (ev == HTTP_PARSE_REQUEST) {
        http_request rest; /* the head went to the handler already */
        http_parser_take(c->parser, &rest);
        http_request_free(&rest);
        if (ex->bstate == B_FLOWING || ex->bstate == B_PAUSED) {
            ex->bstate = B_DONE;
            if (!ex->ended)
                ex->sink.end(ex->sink.ctx);
        }
    } else if (ev == HTTP_PARSE_ERROR) {
        body_fail(ex, http_parser_status(c->parser) == 413 ? -EMSGSIZE : -EPROTO);
    }
    if (!exchange_settle(ex))
        return true; /* gone: the next request, if the connection goes on */
    return ev != HTTP_PARSE_MORE;
}

/* Parses and dispatches requests from `data`, and feeds a streamed body
 * while its consumer takes it; returns how many bytes were consumed. */
static size_t conn_feed(conn *c, const char *data, size_t len)
{
    http_server *s = c->srv;
    size_t off = 0;
    while (!c->closing && !c->close_after_write) {
        if (c->cur) {
            /* The body waits for its consumer, or the next request for the response. */
            if (c->cur->bstate != B_FLOWING || !feed_body(c, c->cur, data, len, &off))
                break;
            continue;
        }
        /* Responses can be much larger than requests: a client that pipelines
         * without reading must not make the server queue without bound. */
        if (c->io.stream.write_queue_size > OUT_HIGH_WATER) {
            c->blocked = true;
            break;
        }
        size_t used;
        http_parse_event ev = http_parser_feed(c->parser, data + off, len - off, &used);
        off += used;
        if (ev == HTTP_PARSE_MORE)
            break;
        if (ev == HTTP_PARSE_HEADERS) {
            size_t limit = s->cfg.max_body_bytes;
            http_request *r = http_parser_request(c->parser);
            const char *length = http_headers_get(&r->headers, "content-length");
            if (s->cfg.stream_body && s->cfg.stream_body(s->data, r, &limit)) {
                dispatch_streamed(c, limit);
            } else if (length && strtoull(length, NULL, 10) > limit) {
                /* Over this request's own limit, known from its headers: refused
                 * before the client sends it (no 100 Continue). */
                conn_error(c, 413, "Content-Length over the body limit");
                break;
            } else {
                on_headers(c);
            }
        } else if (ev == HTTP_PARSE_REQUEST) {
            dispatch(c);
        } else {
            conn_error(c, http_parser_status(c->parser), http_parser_reason(c->parser));
        }
    }
    return off;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b);

static void conn_start_reading(conn *c)
{
    if (c->reading || c->peer_closed || c->closing || c->close_after_write ||
        c->in.len >= IN_HIGH_WATER || (c->cur && c->cur->bstate == B_PAUSED))
        return;
    if (uv_read_start(&c->io.stream, on_alloc, on_read) != 0) {
        conn_close(c);
        return;
    }
    c->reading = true;
}

/* Goes on after a response, or when a streamed body is wanted again:
 * parses buffered requests (unless too much output is still queued) or
 * feeds the body, reads again, and sets the timer. */
static void conn_continue(conn *c)
{
    if (c->closing || c->close_after_write)
        return;
    if (c->cur && c->cur->bstate == B_NONE)
        return;
    if (!c->cur) {
        c->blocked = c->io.stream.write_queue_size > OUT_HIGH_WATER;
        if (c->blocked)
            return; /* on_write comes back here */
    }
    /* A body paused at its last byte completes on an empty feed. */
    if (c->in.len || (c->cur && c->cur->bstate == B_FLOWING)) {
        size_t used = conn_feed(c, c->in.data, c->in.len);
        buf_consume(&c->in, used);
    }
    if (c->closing || c->close_after_write)
        return;
    if (c->peer_closed) {
        if (!c->cur) {
            conn_close_after_write(c); /* nothing more will come */
            return;
        }
        if (c->in.len == 0)
            body_fail(c->cur, -ECONNRESET); /* a body still owed never comes */
    }
    conn_start_reading(c);
    conn_update_timer(c, false);
}

static void on_resume(uv_idle_t *idle)
{
    http_server *s = idle->data;
    /* Errors owed to body consumers: the exchange may end inside. */
    while (!list_empty(&s->notify)) {
        exchange *ex = CONTAINER_OF(s->notify.next, exchange, notify);
        list_remove(&ex->notify);
        ex->notifying = false;
        int code = ex->body_err;
        ex->body_err = 0;
        if (ex->bstate != B_FAILED || !code || !ex->sink_set)
            continue;
        ex->in_handler = true;
        ex->sink.error(ex->sink.ctx, code);
        conn *c = ex->c;
        if (!exchange_settle(ex) && c)
            queue_conn(c); /* what it had buffered waits for the loop */
    }
    qlink batch;
    list_init(&batch);
    if (!list_empty(&s->resume)) { /* take the whole queue: continuing may queue again */
        batch.next = s->resume.next;
        batch.prev = s->resume.prev;
        batch.next->prev = &batch;
        batch.prev->next = &batch;
        list_init(&s->resume);
    }
    while (!list_empty(&batch)) {
        conn *c = CONTAINER_OF(batch.next, conn, resume);
        list_remove(&c->resume);
        c->queued = false;
        conn_continue(c);
    }
    if (list_empty(&s->resume) && list_empty(&s->notify))
        uv_idle_stop(idle);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    conn *c = st->data;
    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        if (nread != UV_EOF) {
            conn_close(c); /* reset: an exchange in flight is detached */
            return;
        }
        c->peer_closed = true;
        uv_read_stop(st);
        c->reading = false;
        /* A half-closed client still gets the answers to what it sent. */
        if (!c->cur && !c->queued && !c->blocked)
            conn_close_after_write(c);
        else if (c->cur && !c->queued && c->in.len == 0)
            body_fail(c->cur, -ECONNRESET); /* its body ends short */
        return;
    }
    size_t n = (size_t)nread;
    bool direct = !c->queued && c->in.len == 0 && (c->cur ? c->cur->bstate == B_FLOWING : !c->blocked);
    if (direct) {
        size_t used = conn_feed(c, b->base, n);
        if (used < n && !c->closing && !c->close_after_write)
            append(&c->in, b->base + used, n - used);
    } else {
        append(&c->in, b->base, n);
    }
    if (c->closing || c->close_after_write)
        return;
    if ((c->in.len >= IN_HIGH_WATER || (c->cur && c->cur->bstate == B_PAUSED)) && c->reading) {
        uv_read_stop(st); /* a pipelining client waits for its answers, a streamed body for its consumer */
        c->reading = false;
    }
    conn_update_timer(c, true);
}

static void on_connection(uv_stream_t *listener, int status)
{
    http_server *s = listener->data;
    if (status < 0) {
        log_warn("http: accept: %s", uv_strerror(status));
        return;
    }
    conn *c = xcalloc(1, sizeof *c);
    c->srv = s;
    if (s->unix_socket)
        uv_pipe_init(s->loop, &c->io.pipe, 0);
    else
        uv_tcp_init(s->loop, &c->io.tcp);
    uv_timer_init(s->loop, &c->timer);
    c->io.handle.data = c->timer.data = c;
    c->handles = 2;
    c->parser = http_parser_new(s->cfg.max_header_bytes, s->cfg.max_body_bytes);
    http_parser_require_host(c->parser, s->cfg.require_host);
    buf_init(&c->in, BUF_UNLIMITED);
    buf_init(&c->out, BUF_UNLIMITED);
    list_init(&c->resume);
    list_push(&s->conns, &c->all);
    s->n_conns++;
    if (uv_accept(listener, &c->io.stream) != 0) {
        conn_close(c);
        return;
    }
    if (!s->unix_socket)
        uv_tcp_nodelay(&c->io.tcp, 1); /* responses are written whole; do not delay them */
    conn_start_reading(c);
    set_timer(c, T_HEADERS);
}

/* ---- the server ---- */

static void free_handle(uv_handle_t *h)
{
    free(h);
}

int http_server_new(uv_loop_t *loop, const http_server_config *cfg, http_handler_cb handler,
                    void *data, http_server **out, err *e)
{
    if (!loop || !handler || !out)
        return err_set(e, -EINVAL, "http server: missing loop or handler");
    /* libuv writes with write(2): a client gone mid-response would raise
     * SIGPIPE and kill the whole process instead of failing one write with
     * EPIPE. A server cannot live with the default action. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    http_server *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    if (cfg)
        s->cfg = *cfg;
    else
        http_server_config_defaults(&s->cfg);
    s->handler = handler;
    s->data = data;
    s->rbuf = xmalloc(READ_SIZE);
    list_init(&s->conns);
    list_init(&s->resume);
    list_init(&s->notify);
    s->resume_idle = xmalloc(sizeof *s->resume_idle);
    uv_idle_init(loop, s->resume_idle);
    s->resume_idle->data = s;
    s->date_sec = -1;
    *out = s;
    return 0;
}

int http_server_listen(http_server *s, const char *ip, int port, err *e)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    int rc;
    if (s->listener || s->draining)
        return err_set(e, -EINVAL, "listen: already listening");
    if (port < 0 || port > 65535)
        return err_set(e, -EINVAL, "listen: bad port %d", port);
    if (uv_ip4_addr(ip, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&ss) != 0)
        return err_set(e, -EINVAL, "listen: bad address '%s'", ip);
    s->listener = xmalloc(sizeof *s->listener);
    uv_tcp_init_ex(s->loop, &s->listener->tcp, ss.ss_family);
    s->listener->handle.data = s;
    uv_os_fd_t fd;
    int one = 1;
    rc = uv_fileno(&s->listener->handle, &fd);
    if (rc == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
        rc = -errno;
    if (rc) {
        err_set(e, rc, "listen: SO_REUSEPORT: %s", uv_strerror(rc));
        goto fail;
    }
    rc = uv_tcp_bind(&s->listener->tcp, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen(&s->listener->stream, SOMAXCONN, on_connection);
    if (rc) {
        err_set(e, rc, "listen on %s port %d: %s", ip, port, uv_strerror(rc));
        goto fail;
    }
    return 0;
fail:
    uv_close(&s->listener->handle, free_handle);
    s->listener = NULL;
    return rc;
}

int http_server_probe_address(const char *ip, int port, err *e)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (port == 0)
        return 0;
    if (uv_ip4_addr(ip, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&ss) != 0)
        return err_set(e, -EINVAL, "listen: bad address '%s'", ip);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return err_set(e, -errno, "listen: socket: %s", strerror(errno));
    /* SO_REUSEADDR as libuv sets it (a port in TIME_WAIT is free), but no
     * SO_REUSEPORT: then any listener on the port, ours or not, conflicts. */
    int one = 1, rc = 0;
    socklen_t len = ss.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&ss, len) != 0)
        rc = -errno;
    close(fd);
    if (rc == -EADDRINUSE)
        return err_set(e, rc, "listen on %s port %d: address already in use (another server, or another "
                       "atoll serve, listens there)", ip, port);
    if (rc)
        return err_set(e, rc, "listen on %s port %d: %s", ip, port, strerror(-rc));
    return 0;
}

int http_server_listen_unix(http_server *s, const char *path, int mode, err *e)
{
    if (s->listener || s->draining)
        return err_set(e, -EINVAL, "listen: already listening");
    unlink(path); /* a socket left by an earlier run */
    s->listener = xmalloc(sizeof *s->listener);
    uv_pipe_init(s->loop, &s->listener->pipe, 0);
    s->listener->handle.data = s;
    s->unix_socket = true;
    int rc = uv_pipe_bind(&s->listener->pipe, path);
    if (rc == 0 && chmod(path, (mode_t)mode) != 0)
        rc = -errno;
    if (rc == 0)
        rc = uv_listen(&s->listener->stream, SOMAXCONN, on_connection);
    if (rc) {
        err_set(e, rc, "listen on %s: %s", path, uv_strerror(rc));
        uv_close(&s->listener->handle, free_handle);
        s->listener = NULL;
        s->unix_socket = false;
        return rc;
    }
    return 0;
}

int http_server_port(const http_server *s)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (!s->listener || s->unix_socket || uv_tcp_getsockname(&s->listener->tcp, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void check_drained(http_server *s)
{
    if (!s->draining || s->done_called || s->listener || s->n_conns || s->n_exchanges)
        return;
    s->done_called = true;
    if (s->drain_done)
        s->drain_done(s->drain_data);
}

static void on_listener_close(uv_handle_t *h)
{
    http_server *s = h->data;
    free(h);
    s->listener = NULL;
    check_drained(s);
}

void http_server_drain(http_server *s, void (*done)(void *data), void *data)
{
    if (s->draining)
        return;
    s->draining = true;
    s->drain_done = done;
    s->drain_data = data;
    if (s->listener)
        uv_close(&s->listener->handle, on_listener_close);
    for (qlink *l = s->conns.next; l != &s->conns; l = l->next) {
        conn *c = CONTAINER_OF(l, conn, all);
        if (c->closing)
            continue;
        if (c->lingering)
            conn_close(c);
        else if (!c->cur && http_parser_phase(c->parser) == HTTP_PHASE_IDLE)
            conn_close_after_write(c); /* idle: answers already queued still go out */
    }
    check_drained(s);
}

void http_server_free(http_server *s)
{
    if (!s)
        return;
    if (s->n_conns || s->n_exchanges)
        log_error("http: server freed with %zu connections and %zu requests open", s->n_conns,
                  s->n_exchanges);
    if (s->listener)
        uv_close(&s->listener->handle, free_handle);
    uv_close((uv_handle_t *)s->resume_idle, free_handle);
    free(s->rbuf);
    free(s);
}
