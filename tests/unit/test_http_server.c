/* Tests for src/http/server.c: the real server on a libuv loop (in its own
 * thread, port 0 on loopback) with small test handlers, driven by a raw TCP
 * client, so every byte on the wire is checked: keep-alive, pipelining,
 * chunked bodies both ways, HEAD, 100-continue, error statuses, timeouts, a
 * client that leaves mid-response, and drain. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "http/server.h"

/* ---- the server under test, on a loop thread ---- */

enum { CMD_NONE, CMD_DRAIN };

typedef struct fixture {
    uv_loop_t loop;
    uv_async_t async;
    http_server *s;
    pthread_t thread;
    int port;
    atomic_int cmd;
    atomic_int drained;    /* drain's done callback ran */
    atomic_int epipe;      /* a streaming handler saw -EPIPE */
    atomic_int stream_ended; /* a streaming handler called end */
    atomic_int handled;    /* requests handed to the handler */
    atomic_int write_rc;   /* what a handler's write returned */
    atomic_int body_err;   /* the error a streamed body's consumer got */
    atomic_int paused_data; /* data that came while the consumer was paused */
    atomic_int pauses;     /* times a consumer paused */
} fixture;

static fixture *F;

/* A response that the handler sends later, from a timer: slow answers and
 * streamed chunks. */
typedef struct job {
    uv_timer_t timer;
    http_writer *w;
    int left;     /* chunks still to stream; 0 for a single delayed answer */
    int n;
    bool stream;
} job;

static void job_closed(uv_handle_t *h)
{
    free(h->data);
}

static void job_tick(uv_timer_t *t)
{
    job *j = t->data;
    if (!j->stream) {
        http_headers h;
        http_headers_init(&h);
        http_headers_add_str(&h, "Content-Type", "text/plain");
        http_writer_respond(j->w, 200, &h, "slow", 4);
        http_headers_free(&h);
        uv_close((uv_handle_t *)t, job_closed);
        return;
    }
    char chunk[32];
    int len = snprintf(chunk, sizeof chunk, "chunk %d\n", j->n++);
    int rc = j->w->write(j->w, chunk, (size_t)len);
    if (rc == -EPIPE)
        atomic_store(&F->epipe, 1);
    if (rc != 0 || --j->left == 0) {
        j->w->end(j->w);
        atomic_store(&F->stream_ended, 1);
        uv_close((uv_handle_t *)t, job_closed);
    }
}

static long query_num(const char *target, const char *key, long dflt)
{
    const char *q = strstr(target, key);
    return q ? strtol(q + strlen(key), NULL, 10) : dflt;
}

/* ---- a consumer of streamed bodies (targets /sbody...) ----
 * /sbody          answers at the end: "got N: BODY"
 * /sbody?echo     answers at once (chunked) and echoes each piece as it comes
 * /sbody?pause    pauses after each piece and resumes 1 ms later
 * /sbody?nostart  answers 403 without reading the body
 * limit=N         the body limit for the request
 * Errors: 413 for -EMSGSIZE, else 400; the code goes to F->body_err. */
typedef struct consumer {
    uv_timer_t timer;
    http_request *req;
    http_writer *w;
    buf got;
    bool echo, pause, paused, done;
} consumer;

static void consumer_closed(uv_handle_t *h)
{
    consumer *k = h->data;
    buf_free(&k->got);
    free(k);
}

static void consumer_finish(consumer *k)
{
    k->done = true;
    uv_close((uv_handle_t *)&k->timer, consumer_closed);
}

static void consumer_resume(uv_timer_t *t)
{
    consumer *k = t->data;
    k->paused = false;
    k->req->stream->resume(k->req->stream);
}

static void consumer_data(void *ctx, const char *data, size_t len)
{
    consumer *k = ctx;
    if (k->paused)
        atomic_fetch_add(&F->paused_data, 1);
    buf_append(&k->got, data, len);
    if (k->echo)
        k->w->write(k->w, data, len);
    if (k->pause) {
        k->paused = true;
        atomic_fetch_add(&F->pauses, 1);
        k->req->stream->pause(k->req->stream);
        uv_timer_start(&k->timer, consumer_resume, 1, 0);
    }
}

static void consumer_end(void *ctx)
{
    consumer *k = ctx;
    if (k->echo) {
        k->w->end(k->w);
    } else {
        buf b;
        buf_init(&b, BUF_UNLIMITED);
        buf_printf(&b, "got %zu: ", k->got.len);
        if (k->got.len <= 1000)
            buf_append(&b, k->got.data, k->got.len);
        else /* a big body is checked here: byte i is 'a' + i % 23 */
            for (size_t i = 0; i < k->got.len; i++)
                if (k->got.data[i] != (char)('a' + i % 23)) {
                    buf_printf(&b, "mismatch at %zu", i);
                    break;
                }
        http_writer_respond(k->w, 200, NULL, b.data, b.len);
        buf_free(&b);
    }
    consumer_finish(k);
}

static void consumer_error(void *ctx, int code)
{
    consumer *k = ctx;
    atomic_store(&F->body_err, code);
    if (k->echo)
        http_writer_abort(k->w);
    else
        http_writer_error(k->w, code == -EMSGSIZE ? 413 : 400, "body failed");
    consumer_finish(k);
}

static bool stream_body(void *data, const http_request *req, size_t *max_body)
{
    if (strncmp(req->target, "/sbody", 6) != 0)
        return false;
    long limit = query_num(req->target, "limit=", -1);
    if (limit >= 0)
        *max_body = (size_t)limit;
    return true;
}

static void consume(fixture *f, http_request *req, http_writer *w)
{
    if (strstr(req->target, "nostart")) {
        http_writer_error(w, 403, "not wanted");
        return;
    }
    consumer *k = xcalloc(1, sizeof *k);
    k->req = req;
    k->w = w;
    buf_init(&k->got, BUF_UNLIMITED);
    k->echo = strstr(req->target, "echo") != NULL;
    k->pause = strstr(req->target, "pause") != NULL;
    uv_timer_init(&f->loop, &k->timer);
    k->timer.data = k;
    http_body_sink sink = {.data = consumer_data, .end = consumer_end, .error = consumer_error, .ctx = k};
    req->stream->start(req->stream, &sink);
    if (k->echo) /* after start: a response before it would say the connection closes */
        w->start(w, 200, NULL, -1);
}

static void handler(void *data, http_request *req, http_writer *w)
{
    fixture *f = data;
    atomic_fetch_add(&f->handled, 1);
    if (req->stream) {
        consume(f, req, w);
        return;
    }
    if (strncmp(req->target, "/slow", 5) == 0 || strncmp(req->target, "/stream", 7) == 0) {
        job *j = xcalloc(1, sizeof *j);
        j->w = w;
        j->stream = req->target[2] == 't';
        j->left = (int)query_num(req->target, "n=", 3);
        uv_timer_init(&f->loop, &j->timer);
        j->timer.data = j;
        uint64_t ms = (uint64_t)query_num(req->target, "ms=", 10);
        if (j->stream)
            w->start(w, 200, NULL, -1);
        uv_timer_start(&j->timer, job_tick, ms, j->stream ? ms : 0);
        return;
    }
    /* Tenants that get the framing wrong must not corrupt the connection. */
    if (strcmp(req->target, "/long") == 0) { /* more than its Content-Length */
        w->start(w, 200, NULL, 3);
        atomic_store(&f->write_rc, w->write(w, "abcdef", 6));
        w->end(w);
        return;
    }
    if (strcmp(req->target, "/short") == 0) { /* less than its Content-Length */
        w->start(w, 200, NULL, 10);
        w->write(w, "abcde", 5);
        w->end(w);
        return;
    }
    if (strcmp(req->target, "/nocontent") == 0) { /* a body where none may be */
        w->start(w, 204, NULL, -1);
        w->write(w, "x", 1);
        w->end(w);
        return;
    }
    if (strcmp(req->target, "/noend-start") == 0) {
        w->end(w); /* no start: the writer answers 500 */
        return;
    }
    /* Echo: method, target, version, headers, then the body. */
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    buf_printf(&b, "%s %s HTTP/%d.%d\n", req->method, req->target, req->version_major,
               req->version_minor);
    for (size_t i = 0; i < req->headers.count; i++)
        buf_printf(&b, "%s: %s\n", req->headers.items[i].name, req->headers.items[i].value);
    buf_printf(&b, "\n");
    buf_append(&b, req->body.data, req->body.len);
    http_headers h;
    http_headers_init(&h);
    http_headers_add_str(&h, "Content-Type", "text/plain");
    http_headers_add_str(&h, "Content-Length", "999"); /* the writer's own must win */
    if (strstr(req->target, "inject")) /* a tenant trying to split the response */
        http_headers_add_str(&h, "X-Bad", "a\r\nInjected: yes");
    http_writer_respond(w, 200, &h, b.data, b.len);
    http_headers_free(&h);
    buf_free(&b);
}

static void on_drained(void *data)
{
    fixture *f = data;
    atomic_store(&f->drained, 1);
    http_server_free(f->s);
    f->s = NULL;
    uv_close((uv_handle_t *)&f->async, NULL);
}

static void on_async(uv_async_t *a)
{
    fixture *f = a->data;
    if (atomic_exchange(&f->cmd, CMD_NONE) == CMD_DRAIN && f->s)
        http_server_drain(f->s, on_drained, f);
}

static void *loop_main(void *arg)
{
    fixture *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void start_server_at(const http_server_config *cfg, const char *ip)
{
    F = xcalloc(1, sizeof *F);
    assert_int_equal(uv_loop_init(&F->loop), 0);
    assert_int_equal(uv_async_init(&F->loop, &F->async, on_async), 0);
    F->async.data = F;
    err e;
    err_clear(&e);
    assert_int_equal(http_server_new(&F->loop, cfg, handler, F, &F->s, &e), 0);
    int rc = http_server_listen(F->s, ip, 0, &e);
    if (rc)
        fail_msg("listen: %s", e.msg);
    F->port = http_server_port(F->s);
    assert_true(F->port > 0);
    assert_int_equal(pthread_create(&F->thread, NULL, loop_main, F), 0);
}

static void start_server(const http_server_config *cfg)
{
    start_server_at(cfg, "127.0.0.1");
}

static void request_drain(void)
{
    atomic_store(&F->cmd, CMD_DRAIN);
    uv_async_send(&F->async);
}

static void wait_for(atomic_int *flag, int ms)
{
    for (int i = 0; i < ms && !atomic_load(flag); i++)
        usleep(1000);
}

/* Drains (if the test did not), joins the loop thread, and checks that every
 * handle was closed. */
static void stop_server(void)
{
    if (!atomic_load(&F->drained))
        request_drain();
    wait_for(&F->drained, 10000);
    assert_true(atomic_load(&F->drained));
    pthread_join(F->thread, NULL);
    assert_int_equal(uv_loop_close(&F->loop), 0);
    free(F);
    F = NULL;
}

static http_server_config small_config(void)
{
    http_server_config cfg;
    http_server_config_defaults(&cfg);
    return cfg;
}

/* ---- a raw HTTP client ---- */

typedef struct client {
    int fd;
    buf in; /* received, not yet consumed */
} client;

typedef struct response {
    int status;
    http_headers headers;
    buf body;
    bool chunked;
} response;

static void client_open_at(client *c, const char *ip, int port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, ip, &a->sin6_addr);
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, ip, &a->sin_addr);
        len = sizeof *a;
    }
    c->fd = socket(ss.ss_family, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&ss, len), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    buf_init(&c->in, BUF_UNLIMITED);
}

static void client_open(client *c)
{
    client_open_at(c, "127.0.0.1", F->port);
}

static void client_close(client *c)
{
    close(c->fd);
    buf_free(&c->in);
}

static void client_send_n(client *c, const char *data, size_t len)
{
    while (len) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        data += n;
        len -= (size_t)n;
    }
}

static void client_send(client *c, const char *s)
{
    client_send_n(c, s, strlen(s));
}

/* Reads more bytes; 0 at EOF (or reset), -1 on timeout. */
static int client_fill(client *c)
{
    char tmp[16384];
    ssize_t n = recv(c->fd, tmp, sizeof tmp, 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET))
        return 0;
    if (n < 0)
        return -1;
    buf_append(&c->in, tmp, (size_t)n);
    return 1;
}

/* A line ending in CRLF, without it; NULL at EOF. Caller frees. */
static char *client_line(client *c)
{
    for (;;) {
        char *eol = c->in.data ? strstr(c->in.data, "\r\n") : NULL;
        if (eol) {
            char *line = xstrndup(c->in.data, (size_t)(eol - c->in.data));
            buf_consume(&c->in, (size_t)(eol - c->in.data) + 2);
            return line;
        }
        if (client_fill(c) <= 0)
            return NULL;
    }
}

static bool client_bytes(client *c, size_t n, buf *out)
{
    while (c->in.len < n)
        if (client_fill(c) <= 0)
            return false;
    buf_append(out, c->in.data, n);
    buf_consume(&c->in, n);
    return true;
}

static void response_free(response *r)
{
    http_headers_free(&r->headers);
    buf_free(&r->body);
}

static const char *hdr(const response *r, const char *name)
{
    return http_headers_get(&r->headers, name);
}

/* Reads one response; false at EOF before a status line. `head`: the
 * response to a HEAD request has no body whatever its headers say. */
static bool read_response(client *c, response *r, bool head)
{
    memset(r, 0, sizeof *r);
    http_headers_init(&r->headers);
    buf_init(&r->body, BUF_UNLIMITED);
    char *line = client_line(c);
    if (!line)
        return false;
    assert_true(strncmp(line, "HTTP/1.1 ", 9) == 0);
    r->status = atoi(line + 9);
    free(line);
    while ((line = client_line(c)) && *line) {
        char *colon = strchr(line, ':');
        assert_non_null(colon);
        http_headers_add(&r->headers, line, (size_t)(colon - line), colon + 1, strlen(colon + 1));
        free(line);
    }
    assert_non_null(line);
    free(line);
    if (head || r->status < 200 || r->status == 204 || r->status == 304)
        return true;
    const char *te = hdr(r, "Transfer-Encoding"), *cl = hdr(r, "Content-Length");
    if (te) {
        assert_string_equal(te, "chunked");
        assert_null(cl);
        r->chunked = true;
        for (;;) {
            line = client_line(c);
            assert_non_null(line);
            size_t n = strtoul(line, NULL, 16);
            free(line);
            if (n == 0)
                break;
            assert_true(client_bytes(c, n, &r->body));
            line = client_line(c);
            assert_non_null(line);
            assert_string_equal(line, "");
            free(line);
        }
        line = client_line(c);
        assert_non_null(line);
        assert_string_equal(line, ""); /* no trailers */
        free(line);
    } else if (cl) {
        assert_true(client_bytes(c, strtoul(cl, NULL, 10), &r->body));
    } else {
        while (client_fill(c) > 0) /* close-delimited */
            ;
        buf_append(&r->body, c->in.data, c->in.len);
        buf_reset(&c->in);
    }
    return true;
}

/* The server closed: EOF (or reset) with nothing more to read. */
static void expect_closed(client *c)
{
    assert_int_equal(c->in.len, 0);
    int rc = client_fill(c);
    assert_int_equal(rc, 0);
}

static response get(client *c, const char *req, bool head)
{
    response r;
    client_send(c, req);
    assert_true(read_response(c, &r, head));
    return r;
}

/* ---- the tests ---- */

static void keep_alive_serves_several_requests(void **state)
{
    http_server_config cfg = small_config();
    start_server(&cfg);
    client c;
    client_open(&c);
    for (int i = 0; i < 3; i++) {
        char req[128];
        snprintf(req, sizeof req, "GET /inject/%d?x=y HTTP/1.1\r\nHost: a\r\nX-N: %d\r\n\r\n", i, i);
        response r = get(&c, req, false);
        assert_int_equal(r.status, 200);
        char want[128];
        snprintf(want, sizeof want, "GET /inject/%d?x=y HTTP/1.1\nHost: a\nX-N: %d\n\n", i, i);
        assert_string_equal(r.body.data, want);
        assert_non_null(hdr(&r, "Date"));
        assert_true(strlen(hdr(&r, "Date")) == 29 && strstr(hdr(&r, "Date"), " GMT"));
        assert_null(hdr(&r, "Connection"));
        assert_null(hdr(&r, "X-Bad")); /* a value with CRLF is never sent */
        assert_null(hdr(&r, "Injected"));
        assert_int_equal(strtoul(hdr(&r, "Content-Length"), NULL, 10), r.body.len);
        response_free(&r);
    }
    client_close(&c);
    stop_server();
}

static void pipelined_responses_keep_request_order(void **state)
{
    http_server_config cfg = small_config();
    start_server(&cfg);
    client c;
    client_open(&c);
    client_send(&c, "GET /slow?ms=150 HTTP/1.1\r\nHost: a\r\n\r\n"
                    "POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                    "GET /three HTTP/1.1\r\nHost: a\r\n\r\n"
                    "GET /slow?ms=1 HTTP/1.1\r\nHost: a\r\n\r\n"
                    "GET /five HTTP/1.1\r\nHost: a\r\n\r\n");
    response r;
    assert_true(read_response(&c, &r, false));
    assert_string_equal(r.body.data, "slow");
    response_free(&r);
    assert_true(read_response(&c, &r, false));
    assert_non_null(strstr(r.body.data, "POST /two"));
    assert_non_null(strstr(r.body.data, "\n\nabc"));
    response_free(&r);
    assert_true(read_response(&c, &r, false));
    assert_non_null(strstr(r.body.data, "GET /three"));
    response_free(&r);
    assert_true(read_response(&c, &r, false));
    assert_string_equal(r.body.data, "slow");
    response_free(&r);
    assert_true(read_response(&c, &r, false));
    assert_non_null(strstr(r.body.data, "GET /five"));
    response_free(&r);
    assert_int_equal(atomic_load(&F->handled), 5);
    client_close(&c);
    stop_server();
}

static void chunked_request_and_response(void **state)
{
    http_server_config cfg = small_config();
    start_server(&cfg);
    client c;
    client_open(&c);
    response r = get(&c,
                     "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n",
                     false);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "\n\nhello world"));
    assert_null(strstr(r.body.data, "X-Trailer")); /* trailers are not headers */
    response_free(&r);
    r = get(&c, "GET /stream?n=3&ms=5 HTTP/1.1\r\nHost: a\r\n\r\n", false);
    assert_int_equal(r.status, 200);
    assert_true(r.chunked);
    assert_string_equal(r.body.data, "chunk 0\nchunk 1\nchunk 2\n");
    response_free(&r);
    /* Still usable afterwards. */
    r = get(&c, "GET /after HTTP/1.1\r\nHost: a\r\n\r\n", false);
    assert_non_null(strstr(r.body.data, "GET /after"));
    response_free(&r);
    client_close(&c);
    stop_server();
}

static void head_has_length_but_no_body(void **state)
{
    http_server_config cfg = small_config();
    start_server(&cfg);
    client c;
    client_open(&c);
    response g = get(&c, "GET /h HTTP/1.1\r\nHost: a\r\n\r\n", false);
    response h = get(&c, "HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n", true);
    assert_int_equal(h.status, 200);
    /* The echo of "HEAD" is one byte longer than that of "GET". */
    assert_int_equal(strtoul(hdr(&h, "Content-Length"), NULL, 10), g.body.len + 1);
    /* No body bytes: the next thing on the wire is the next response. */
    response n = get(&c, "GET /next HTTP/1.1\r\nHost: a\r\n\r\n", false);
    assert_int_equal(n.status, 200);
    assert_non_null(strstr(n.body.data, "GET /next"));
    response h2 = get(&c, "HEAD /stream?n=2&ms=1 HTTP/1.1\r\nHost: a\r\n\r\n", true);
    assert_string_equal(hdr(&h2, "Transfer-Encoding"), "chunked");
    response n2 = get(&c, "GET /next2 HTTP/1.1\r\nHost: a\r\n\r\n", false);
    assert_non_null(strstr(n2.body.data, "GET /next2"));
    response_free(&g);
    response_free(&h);
    response_free(&n);
    response_free(&h2);
    response_free(&n2);
    client_close(&c);
    stop_server();
}

static void expect_100_continue(void **state)
{
    http_server_config cfg = small_config();
    cfg.max_body_bytes = 100;
    start_server(&cfg);
    client c;
    client_open(&c);
    client_send(&c, "PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    response r;
    assert_true(read_response(&c, &r, false));
    assert_int_equal(r.status, 100);
    assert_int_equal(atomic_load(&F->handled), 0);
    response_free(&r);
    client_send(&c, "12345");
    assert_true(read_response(&c, &r, false));
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "\n\n12345"));
    response_free(&r);
    client_close(&c);

    /* Too large: 413 at once, without 100, and the connection closes. */
    client_open(&c);
    client_send(&c, "PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 101\r\n\r\n");
    assert_true(read_response(&c, &r, false));
    assert_int_equal(r.status, 413);
    assert_string_equal(hdr(&r, "Connection"), "close");
    response_free(&r);
    expect_closed(&c);
    client_close(&c);
    stop_server();
}

/* Sends `req` on a new connection; expects `status`, Connection: close, then
 * the close. */
static void expect_refused(const char *req, size_t len, int status)
{
    client c;
    client_open(&c);
    client_send_n(&c, req, len);
    response r;
    assert_true(read_response(&c, &r, false));
    assert_int_equal(r.status, status);
    assert_string_equal(hdr(&r, "Connection"), "close");
    assert_non_null(hdr(&r, "Date"));
    response_free(&r);
    expect_closed(&c);
    client_close(&c);
}

static void bad_input_gets_status_and_close(void **state)
{
    http_server_config cfg = small_config();
    cfg.max_header_bytes = 1024;
    cfg.max_body_bytes = 64;
    start_server(&cfg);
    /* An idle keep-alive connection must not be harmed by the others. */
    client other;
    client_open(&other);
    response r = get(&other, "GET /before HTTP/1.1\r\nHost: a\r\n\r\n", false);
    response_free(&r);

    expect_refused("GARBAGE\r\n\r\n", 11, 400);
    expect_refused("GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n", 39, 400);
    expect_refused("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 64, 400);
    char big[2048];
    int n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: %01500d\r\n\r\n", 0);
    expect_refused(big, (size_t)n, 431);
    expect_refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65\r\n\r\n", 48, 413);
    const char *chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "40\r\n" "0123456789012345678901234567890123456789012345678901234567890123"
                          "\r\n1\r\nx\r\n0\r\n\r\n";
    expect_refused(chunked, strlen(chunked), 413);
    const char *gz = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n";
    expect_refused(gz, strlen(gz), 501);
    const char *nl = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
    expect_refused(nl, strlen(nl), 501);
    expect_refused("GET / HTTP/2.0\r\n\r\n", 18, 505);
    expect_refused("GET / HTTP/1.1\r\n\r\n", 18, 400); /* RFC 9112: HTTP/1.1 needs Host */

    /* A bad request after a good one on the same connection: the good one is
     * answered first. */
    client c;
    client_open(&c);
    client_send(&c, "GET /ok HTTP/1.1\r\nHost: a\r\n\r\nBAD\r\n\r\n");
    assert_true(read_response(&c, &r, false));
    assert_int_equal(r.status, 200);
    response_free(&r);
    assert_true(read_response(&c, &r, false));
    assert_int_equal(r.status, 400);
    response_free(&r);
    expect_closed(&c);
    client_close(&c);

    r = get(&other, "GET /after HTTP/1.1\r\nHost: a\r\n\r\n", false);
    assert_int_equal(r.status, 200);
    response_free(&r);
    client_close(&other);
    stop_server();
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void slow_headers_time_out_with_408(void **state)
{
    http_server_config cfg = small_config();
    cfg.header_timeout_ms = 200;
    start_server(&cfg);
    client c;
    client_open(&c);
    double t0 = now_ms();
    /* A byte every 20 ms, as slowloris does, for longer than the timeout:
     * bytes must not extend the deadline. */
    const char *part = "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for (const char *p = part; *p; p++) {
        struct pollfd pfd = {.fd = c.fd, .events = POLLIN};
        if (poll(&pfd, 1, 20) > 0)
            break; /* the server answered */
        client_send_n(&c, p, 1);
    }
    response r;
    assert_true(read_response(&c, &r, false));
    double dt = now_ms() - t0;
    assert_int_equal(r.status, 408);
    assert_string_equal(hdr(&r, "Connection"), "close");
    assert_true(dt >= 150 && dt < 800);
    response_free(&r);
    expect_closed(&c);
    client_close(&c);

    /* A connection that never sends anything is closed silently. */
    client_open(&c);
    expect_closed(&c);
    client_close(&c);
    stop_server();
}

static void idle_and_stalled_connections_close(void **state)
{
    http_server_config cfg = small_config();
    cfg.idle_timeout_ms = 150;
    cfg.body_timeout_ms = 150;
    start_server(&cfg);
    client c;
    client_open(&c);
    response r = get(&c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", false);
    response_free(&r);
    double t0 = now_ms();
    expect_closed(&c); /* idle keep-alive: closed without a response */
    assert_true(now_ms() - t0 >= 100);
    client_close(&c);

    client_open(&c);
    client_send(&c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab");
    expect_closed(&c);
    assert_int_equal(atomic_load(&F->handled), 1);
    client_close(&c);
    stop_server();
}

static void http10_and_connection_close(void **state)
{
    http_server_config cfg = small_config();
    start_server(&cfg);
    client c;
    /* HTTP/1.0 closes unless asked to keep alive. */
    client_open(&c);
    response r = get(&c, "GET /a HTTP/1.0\r\n\r\n", false);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "HTTP/1.0"));
    assert_string_equal(hdr(&r, "Connection"), "close");
    response_free(&r);
    expect_closed(&c);
    client_close(&c);

    client_open(&c);
    r = get(&c, "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", false);
    assert_string_equal(hdr(&r, "Connection"), "keep-alive");
    response_free(&r);
    /* A streamed response to HTTP/1.0 is delimited by the close. */
    r = get(&c, "GET /stream?n=2&ms=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", false);
    assert_null(hdr(&r, "Transfer-Encoding"));
    assert_null(hdr(&r, "Content-Length"));
    assert_string_equal(hdr(&r, "Connection"), "close");
    assert_string_equal(r.body.data, "chunk 0\nchunk 1\n");
    response_free(&r);
    client_close(&c);

    /* Connection: close on HTTP/1.1: answered, said so, closed; a request
     * pipelined after it is not answered. */
    client_open(&c);
    r = get(&c, "GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n", false);
    assert_string_equal(hdr(&r, "Connection"), "close");
    response_free(&r);
    expect_closed(&c);
    client_close(&c);

    /* A handler that ends without starting gets a 500. */
    client_open(&c);
    r = get(&c, "GET /noend-start HTTP/1.1\r\nHost: a\r\n\r\n", false);
    assert_int_equal(r.status, 500);
    response_free(&r);
    client_close(&c);
    stop_server();
}

static void handler_framing_mistakes_are_contained(void **state)
{
    http_server_config cfg = small_config();
    start_server(&cfg);
    client c;
    client_open(&c);
    response r = get(&c, "GET /long HTTP/1.1\r\nHost: a\r\n\r\n", false);
    assert_string_equal(r.body.data, "abc");
    assert_int_equal(atomic_load(&F->write_rc), -EINVAL);
    response_free(&r);
    r = get(&c, "GET /nocontent HTTP/1.1\r\nHost: a\r\n\r\n", false);
    assert_int_equal(r.status, 204);
    assert_null(hdr(&r, "Content-Length"));
    assert_null(hdr(&r, "Transfer-Encoding"));
    response_free(&r);
    /* Both left the connection in sync: the next response parses. */
    r = get(&c, "GET /next HTTP/1.1\r\nHost: a\r\n\r\n", false);
    assert_non_null(strstr(r.body.data, "GET /next"));
    response_free(&r);
    /* A body shorter than promised: the close tells the client. */
    client_send(&c, "GET /short HTTP/1.1\r\nHost: a\r\n\r\n");
    char *line = client_line(&c);
    assert_string_equal(line, "HTTP/1.1 200 OK");
    free(line);
    while ((line = client_line(&c)) && *line)
        free(line);
    free(line);
    while (client_fill(&c) > 0)
        ;
    assert_int_equal(c.in.len, 5);
    assert_memory_equal(c.in.data, "abcde", 5);
    client_close(&c);
    stop_server();
}

static void client_leaving_mid_response_is_survived(void **state)
{
    http_server_config cfg = small_config();
    start_server(&cfg);
    client c;
    client_open(&c);
    client_send(&c, "GET /stream?n=100000&ms=2 HTTP/1.1\r\nHost: a\r\n\r\n");
    char *line = client_line(&c);
    assert_non_null(line);
    assert_string_equal(line, "HTTP/1.1 200 OK");
    free(line);
    /* Leave with a reset, mid-body. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    client_close(&c);
    wait_for(&F->stream_ended, 5000);
    assert_true(atomic_load(&F->stream_ended));
    assert_true(atomic_load(&F->epipe));
    /* The server goes on serving. */
    client_open(&c);
    response r = get(&c, "GET /still HTTP/1.1\r\nHost: a\r\n\r\n", false);
    assert_int_equal(r.status, 200);
    response_free(&r);
    client_close(&c);
    stop_server();
}

static void client_closing_mid_response_is_survived(void **state)
{
    http_server_config cfg = small_config();
    start_server(&cfg);
    client c;
    client_open(&c);
    client_send(&c, "GET /stream?n=100000&ms=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_int_equal(client_fill(&c), 1);
    client_close(&c); /* an orderly close this time: the server learns of it from a failed write */
    wait_for(&F->stream_ended, 5000);
    assert_true(atomic_load(&F->stream_ended));
    assert_true(atomic_load(&F->epipe));
    stop_server();
}

static void drain_finishes_in_flight_then_calls_done(void **state)
{
    http_server_config cfg = small_config();
    start_server(&cfg);
    client idle, busy;
    client_open(&idle);
    response r = get(&idle, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", false);
    response_free(&r);
    client_open(&busy);
    client_send(&busy, "GET /slow?ms=300 HTTP/1.1\r\nHost: a\r\n\r\n");
    wait_for(&F->handled, 2000);
    while (atomic_load(&F->handled) < 2)
        usleep(1000);
    request_drain();
    expect_closed(&idle); /* idle keep-alive: closed at once */
    assert_false(atomic_load(&F->drained));
    assert_true(read_response(&busy, &r, false));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "slow");
    assert_string_equal(hdr(&r, "Connection"), "close");
    response_free(&r);
    expect_closed(&busy);
    wait_for(&F->drained, 5000);
    assert_true(atomic_load(&F->drained));
    /* No longer listening. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)F->port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_not_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    close(fd);
    client_close(&idle);
    client_close(&busy);
    stop_server();
}

static void pipelining_client_that_never_reads_is_bounded(void **state)
{
    http_server_config cfg = small_config();
    start_server(&cfg);
    client c;
    client_open(&c);
    int sz = 4096;
    setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    /* Send requests without reading until the server stops taking them. */
    const char *req = "GET /flood HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t sent = 0;
    int flags = MSG_NOSIGNAL | MSG_DONTWAIT;
    double t0 = now_ms();
    while (now_ms() - t0 < 3000) {
        ssize_t n = send(c.fd, req, strlen(req), flags);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {.fd = c.fd, .events = POLLOUT};
            if (poll(&p, 1, 300) == 0)
                break; /* the server stopped reading: back-pressure works */
            continue;
        }
        assert_true(n > 0);
        sent += (size_t)n;
    }
    assert_true(now_ms() - t0 < 3000);
    int handled = atomic_load(&F->handled);
    print_message("sent %zu requests, the server handled %d before pushing back\n", sent / strlen(req), handled);
    assert_true(handled > 0);
    assert_true((size_t)handled < sent / strlen(req));
    /* Reading the answers lets the server go on. */
    response r;
    assert_true(read_response(&c, &r, false));
    assert_int_equal(r.status, 200);
    response_free(&r);
    client_close(&c);
    stop_server();
}

/* Every fuzz seed (requests good and bad, pipelined, split oddly) sent to the
 * real server, followed by a half-close: the server answers what it can and
 * closes, never stalls, and keeps serving. */
static void fuzz_seeds_against_the_server(void **state)
{
    http_server_config cfg = small_config();
    cfg.max_header_bytes = 300;
    cfg.max_body_bytes = 1000;
    start_server(&cfg);
    DIR *d = opendir("fuzz/corpus/http");
    assert_non_null(d);
    struct dirent *de;
    int files = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, "fuzz/corpus/http/%s", de->d_name);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        char data[8192];
        size_t n = fread(data, 1, sizeof data, f);
        fclose(f);
        client c;
        client_open(&c);
        if (n > 2)
            client_send_n(&c, data + 2, n - 2); /* the first two bytes steer the fuzzer */
        shutdown(c.fd, SHUT_WR);
        int rc;
        while ((rc = client_fill(&c)) > 0)
            ;
        if (rc < 0)
            fail_msg("%s: the server neither answered nor closed", path);
        client_close(&c);
        files++;
    }
    closedir(d);
    assert_true(files >= 10);
    client c;
    client_open(&c);
    response r = get(&c, "GET /alive HTTP/1.1\r\nHost: a\r\n\r\n", false);
    assert_int_equal(r.status, 200);
    response_free(&r);
    client_close(&c);
    stop_server();
}

static void listens_on_ipv6(void **state)
{
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = probe >= 0 && bind(probe, (struct sockaddr *)&a, sizeof a) == 0;
    if (probe >= 0)
        close(probe);
    if (!ok)
        skip(); /* no IPv6 loopback on this machine */
    http_server_config cfg = small_config();
    start_server_at(&cfg, "::1");
    client c;
    client_open_at(&c, "::1", F->port);
    response r = get(&c, "GET /v6 HTTP/1.1\r\nHost: a\r\n\r\n", false);
    assert_int_equal(r.status, 200);
    response_free(&r);
    client_close(&c);
    stop_server();
}

static void listen_checks_address_and_shares_port(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    http_server *s;
    err e;
    err_clear(&e);
    assert_int_equal(http_server_new(&loop, NULL, handler, NULL, &s, &e), 0);
    assert_int_equal(http_server_listen(s, "not-an-ip", 0, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "not-an-ip"));
    assert_int_equal(http_server_listen(s, "127.0.0.1", 70000, &e), -EINVAL);
    /* SO_REUSEPORT: a second server (another process, in production) can
     * listen on the same port. */
    assert_int_equal(http_server_listen(s, "127.0.0.1", 0, &e), 0);
    http_server *s2;
    assert_int_equal(http_server_new(&loop, NULL, handler, NULL, &s2, &e), 0);
    int rc = http_server_listen(s2, "127.0.0.1", http_server_port(s), &e);
    if (rc)
        fail_msg("second listen: %s", e.msg);
    assert_int_equal(http_server_port(s2), http_server_port(s));
    http_server_free(s2);
    http_server_free(s);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- streamed request bodies ---- */

static http_server_config stream_config(void)
{
    http_server_config cfg = small_config();
    cfg.stream_body = stream_body;
    cfg.max_body_bytes = 64 << 20;
    return cfg;
}

/* Reads a status line and header section of a chunked response, and then
 * exactly one chunk's data into out. */
static void read_chunk(client *c, buf *out)
{
    char *line = client_line(c);
    assert_non_null(line);
    size_t n = strtoul(line, NULL, 16);
    free(line);
    assert_true(n > 0);
    assert_true(client_bytes(c, n, out));
    line = client_line(c);
    assert_string_equal(line, "");
    free(line);
}

static void streamed_body_reaches_the_handler_as_it_arrives(void **state)
{
    http_server_config cfg = stream_config();
    start_server(&cfg);
    client c;
    client_open(&c);
    /* The first piece is answered before the rest is sent. */
    client_send(&c, "POST /sbody?echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    char *line = client_line(&c);
    assert_string_equal(line, "HTTP/1.1 200 OK");
    free(line);
    while ((line = client_line(&c)) && *line)
        free(line);
    free(line);
    buf got;
    buf_init(&got, BUF_UNLIMITED);
    read_chunk(&c, &got);
    assert_int_equal(got.len, 5);
    assert_memory_equal(got.data, "hello", 5);
    client_send(&c, "6\r\n world\r\n0\r\n\r\n");
    read_chunk(&c, &got);
    assert_memory_equal(got.data, "hello world", 11);
    line = client_line(&c); /* the last chunk */
    assert_string_equal(line, "0");
    free(line);
    line = client_line(&c);
    assert_string_equal(line, "");
    free(line);
    buf_free(&got);
    /* The connection goes on: a Content-Length body, then a plain request
     * pipelined right behind it. */
    client_send(&c, "PUT /sbody HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                    "GET /after HTTP/1.1\r\nHost: a\r\n\r\n");
    response r;
    assert_true(read_response(&c, &r, false));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "got 3: abc");
    response_free(&r);
    assert_true(read_response(&c, &r, false));
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.data, "GET /after"));
    response_free(&r);
    /* 100-continue is sent when the body is wanted. */
    client_send(&c, "PUT /sbody HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    assert_true(read_response(&c, &r, false));
    assert_int_equal(r.status, 100);
    response_free(&r);
    client_send(&c, "ok");
    assert_true(read_response(&c, &r, false));
    assert_string_equal(r.body.data, "got 2: ok");
    response_free(&r);
    client_close(&c);
    assert_int_equal(atomic_load(&F->body_err), 0);
    stop_server();
}

typedef struct sender {
    int fd;
    size_t len;
    bool chunked;
} sender;

/* Sends a body of `len` bytes of the 'a' + i % 23 pattern, in 64 KiB
 * pieces (chunks when chunked). */
static void *send_body(void *arg)
{
    sender *sd = arg;
    char *piece = xmalloc(65536 + 32);
    for (size_t off = 0; off < sd->len;) {
        size_t n = sd->len - off < 65536 ? sd->len - off : 65536;
        size_t h = sd->chunked ? (size_t)sprintf(piece, "%zx\r\n", n) : 0;
        for (size_t i = 0; i < n; i++)
            piece[h + i] = (char)('a' + (off + i) % 23);
        if (sd->chunked)
            memcpy(piece + h + n, "\r\n", 2);
        size_t total = h + n + (sd->chunked ? 2 : 0);
        if (send(sd->fd, piece, total, MSG_NOSIGNAL) != (ssize_t)total)
            break;
        off += n;
    }
    if (sd->chunked)
        send(sd->fd, "0\r\n\r\n", 5, MSG_NOSIGNAL);
    free(piece);
    return NULL;
}

static void paused_consumer_gets_nothing_until_it_resumes(void **state)
{
    http_server_config cfg = stream_config();
    start_server(&cfg);
    for (int chunked = 0; chunked < 2; chunked++) {
        client c;
        client_open(&c);
        size_t len = 3 << 20;
        char head[200];
        if (chunked)
            snprintf(head, sizeof head, "POST /sbody?pause HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
        else
            snprintf(head, sizeof head, "POST /sbody?pause HTTP/1.1\r\nHost: a\r\nContent-Length: %zu\r\n\r\n", len);
        client_send(&c, head);
        sender sd = {.fd = c.fd, .len = len, .chunked = chunked};
        pthread_t t;
        pthread_create(&t, NULL, send_body, &sd);
        response r;
        assert_true(read_response(&c, &r, false));
        pthread_join(t, NULL);
        assert_int_equal(r.status, 200);
        char want[64];
        snprintf(want, sizeof want, "got %zu: ", len);
        assert_string_equal(r.body.data, want); /* every byte, in order */
        response_free(&r);
        client_close(&c);
    }
    assert_int_equal(atomic_load(&F->paused_data), 0);
    assert_true(atomic_load(&F->pauses) > 20);
    stop_server();
}

static void streamed_body_over_its_limit_is_413(void **state)
{
    http_server_config cfg = stream_config();
    start_server(&cfg);
    /* Content-Length over the request's limit: refused before a byte is
     * read (no 100 Continue), and the connection closes. */
    client c;
    client_open(&c);
    client_send(&c, "PUT /sbody?limit=10 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n");
    response r;
    assert_true(read_response(&c, &r, false));
    assert_int_equal(r.status, 413);
    assert_string_equal(hdr(&r, "Connection"), "close");
    response_free(&r);
    expect_closed(&c);
    client_close(&c);
    assert_int_equal(atomic_load(&F->body_err), -EMSGSIZE);
    atomic_store(&F->body_err, 0);
    /* Chunked: counted as it flows. */
    client_open(&c);
    client_send(&c, "POST /sbody?limit=10 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "6\r\n123456\r\n6\r\n789012\r\n0\r\n\r\n");
    assert_true(read_response(&c, &r, false));
    assert_int_equal(r.status, 413);
    response_free(&r);
    expect_closed(&c);
    client_close(&c);
    assert_int_equal(atomic_load(&F->body_err), -EMSGSIZE);
    /* Bad chunk framing: the consumer hears -EPROTO. */
    client_open(&c);
    client_send(&c, "POST /sbody HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    assert_true(read_response(&c, &r, false));
    assert_int_equal(r.status, 400);
    response_free(&r);
    expect_closed(&c);
    client_close(&c);
    assert_int_equal(atomic_load(&F->body_err), -EPROTO);
    stop_server();
}

static void client_leaving_mid_body_is_an_error_for_the_consumer(void **state)
{
    http_server_config cfg = stream_config();
    start_server(&cfg);
    client c;
    client_open(&c);
    client_send(&c, "PUT /sbody HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\nonly this");
    usleep(50 * 1000);
    shutdown(c.fd, SHUT_WR); /* the rest never comes */
    response r;
    assert_true(read_response(&c, &r, false));
    assert_int_equal(r.status, 400);
    response_free(&r);
    client_close(&c);
    assert_int_equal(atomic_load(&F->body_err), -ECONNRESET);
    atomic_store(&F->body_err, 0);
    /* A reset, while the consumer echoes. */
    client_open(&c);
    client_send(&c, "PUT /sbody?echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\nonly this");
    usleep(50 * 1000);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    client_close(&c);
    wait_for(&F->body_err, 2000);
    assert_int_equal(atomic_load(&F->body_err), -ECONNRESET);
    stop_server();
}

static void answer_without_reading_the_body_closes_after_it(void **state)
{
    http_server_config cfg = stream_config();
    start_server(&cfg);
    client c;
    client_open(&c);
    client_send(&c, "PUT /sbody?nostart HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 100000\r\n\r\n");
    response r;
    assert_true(read_response(&c, &r, false)); /* no 100 first */
    assert_int_equal(r.status, 403);
    assert_string_equal(hdr(&r, "Connection"), "close");
    response_free(&r);
    expect_closed(&c);
    client_close(&c);
    assert_int_equal(atomic_load(&F->handled), 1);
    stop_server();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keep_alive_serves_several_requests),
        cmocka_unit_test(pipelined_responses_keep_request_order),
        cmocka_unit_test(chunked_request_and_response),
        cmocka_unit_test(head_has_length_but_no_body),
        cmocka_unit_test(expect_100_continue),
        cmocka_unit_test(bad_input_gets_status_and_close),
        cmocka_unit_test(slow_headers_time_out_with_408),
        cmocka_unit_test(idle_and_stalled_connections_close),
        cmocka_unit_test(http10_and_connection_close),
        cmocka_unit_test(handler_framing_mistakes_are_contained),
        cmocka_unit_test(client_leaving_mid_response_is_survived),
        cmocka_unit_test(client_closing_mid_response_is_survived),
        cmocka_unit_test(drain_finishes_in_flight_then_calls_done),
        cmocka_unit_test(pipelining_client_that_never_reads_is_bounded),
        cmocka_unit_test(fuzz_seeds_against_the_server),
        cmocka_unit_test(listens_on_ipv6),
        cmocka_unit_test(listen_checks_address_and_shares_port),
        cmocka_unit_test(streamed_body_reaches_the_handler_as_it_arrives),
        cmocka_unit_test(paused_consumer_gets_nothing_until_it_resumes),
        cmocka_unit_test(streamed_body_over_its_limit_is_413),
        cmocka_unit_test(client_leaving_mid_body_is_an_error_for_the_consumer),
        cmocka_unit_test(answer_without_reading_the_body_closes_after_it),
    };
    return cmocka_run_group_tests_name("http_server", tests, NULL, NULL);
}
