/* Tests for src/http/proxy.c: the real atoll HTTP server (on a loop thread)
 * whose handler proxies to a scripted upstream (raw sockets, one thread per
 * upstream connection), driven by a raw TCP client, so both wires are
 * checked: body framings, streaming with a bounded buffer, interim
 * responses, HEAD/204/304, hop-by-hop fields and X-Forwarded-*, keep-alive
 * reuse and the retry on a stale connection, errors (502/504, reset
 * mid-body, client leaving), and Unix-socket and open-callback upstreams. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "http/proxy.h"
#include "http/server.h"

#define MAX_UP_CONNS 16

/* ---- the scripted upstream ---- */

typedef void (*script_fn)(int fd, int index);

typedef struct upstream {
    int tcp_fd, unix_fd;
    int port;
    char path[108];
    script_fn script;
    pthread_t acceptor;
    pthread_t conns[MAX_UP_CONNS];
    atomic_int n_conns;
    atomic_int stop;
    atomic_int saw_close;   /* a script saw its connection end */
    atomic_long sent;       /* body bytes a streaming script has written */
    buf last_req;           /* the last request a script read (under lock) */
    pthread_mutex_t lock;
} upstream;

typedef struct fixture {
    uv_loop_t loop;
    uv_async_t async;
    http_server *s;
    http_proxy_upstream *tcp, *unx, *opened, *down, *full;
    int full_fd, fillers[8];
    pthread_t thread;
    int port;
    atomic_int done_calls;
    atomic_int last_done;
    upstream up;
    http_proxy_opts opts;
} fixture;

static fixture *F;
static uint64_t header_timeout_ms; /* 0: the tests' usual 400 ms */

typedef struct conn_arg {
    int fd, index;
} conn_arg;

static void *conn_main(void *arg)
{
    conn_arg *a = arg;
    F->up.script(a->fd, a->index);
    close(a->fd);
    free(a);
    return NULL;
}

static void *acceptor_main(void *arg)
{
    upstream *u = arg;
    while (!atomic_load(&u->stop)) {
        struct pollfd p[2] = {{.fd = u->tcp_fd, .events = POLLIN}, {.fd = u->unix_fd, .events = POLLIN}};
        if (poll(p, 2, 50) <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            if (!(p[i].revents & POLLIN))
                continue;
            int fd = accept(p[i].fd, NULL, NULL);
            if (fd < 0)
                continue;
            int n = atomic_load(&u->n_conns);
            if (n >= MAX_UP_CONNS) {
                close(fd);
                continue;
            }
            conn_arg *a = xmalloc(sizeof *a);
            a->fd = fd;
            a->index = n;
            pthread_create(&u->conns[n], NULL, conn_main, a);
            atomic_store(&u->n_conns, n + 1);
        }
    }
    return NULL;
}

/* Reads one request (header section and Content-Length body) into *out;
 * 0, or -1 on EOF/error/timeout (5 s). */
static int read_request(int fd, buf *out)
{
    buf_reset(out);
    char tmp[4096];
    size_t need = 0;
    for (;;) {
        char *end = out->data ? strstr(out->data, "\r\n\r\n") : NULL;
        if (end && !need) {
            const char *cl = strcasestr(out->data, "\r\nContent-Length:");
            size_t body = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
            need = (size_t)(end - out->data) + 4 + body;
        }
        if (need && out->len >= need)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0)
            return -1;
        ssize_t n = recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0)
            return -1;
        buf_append(out, tmp, (size_t)n);
    }
    pthread_mutex_lock(&F->up.lock);
    buf_reset(&F->up.last_req);
    buf_append(&F->up.last_req, out->data, out->len);
    pthread_mutex_unlock(&F->up.lock);
    return 0;
}

static int send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int send_str(int fd, const char *s)
{
    return send_all(fd, s, strlen(s));
}

/* Waits for the proxy to close the connection (or 5 s). */
static void wait_eof(int fd)
{
    char tmp[4096];
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0 || recv(fd, tmp, sizeof tmp, 0) <= 0)
            break;
    }
    atomic_store(&F->up.saw_close, 1);
}

/* Answers every request on the connection with the response in `canned`. */
static const char *canned;

static void script_canned(int fd, int index)
{
    buf req;
    buf_init(&req, BUF_UNLIMITED);
    while (read_request(fd, &req) == 0)
        if (send_str(fd, canned) != 0)
            break;
    buf_free(&req);
    atomic_store(&F->up.saw_close, 1);
}

/* Answers once with `canned`, then closes. */
static void script_once(int fd, int index)
{
    buf req;
    buf_init(&req, BUF_UNLIMITED);
    if (read_request(fd, &req) == 0)
        send_str(fd, canned);
    buf_free(&req);
}

static int listen_tcp(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 64), 0);
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* ---- the server under test ---- */

static void on_done(void *data, int status)
{
    atomic_store(&F->last_done, status);
    atomic_fetch_add(&F->done_calls, 1);
}

static int open_upstream(void *data, int *fd);

/* /stream: over a caller's own stream, not pooled; closed by the caller
 * when the forward is done. */
static void stream_closed(uv_handle_t *h)
{
    free(h);
}

static void stream_done(void *data, int status)
{
    uv_pipe_t *p = data;
    on_done(NULL, status);
    if (strcmp(p->data, "the caller's") != 0) /* given back as it was */
        atomic_store(&F->last_done, -9999);
    uv_close((uv_handle_t *)p, stream_closed);
}

static void forward_on_own_stream(fixture *f, http_request *req, http_writer *w)
{
    int fd;
    uv_pipe_t *p = xmalloc(sizeof *p);
    uv_pipe_init(&f->loop, p, 0);
    err e;
    if (open_upstream(NULL, &fd) != 0 || uv_pipe_open(p, fd) != 0) {
        http_writer_error(w, 500, "test: no stream");
        uv_close((uv_handle_t *)p, stream_closed);
        return;
    }
    p->data = "the caller's";
    http_proxy_req_opts ro = {.done = stream_done, .data = p};
    if (http_proxy_forward_stream((uv_stream_t *)p, &f->opts, req, w, &ro, &e) != 0) {
        http_writer_error(w, 500, e.msg);
        uv_close((uv_handle_t *)p, stream_closed);
    }
}

static void handler(void *data, http_request *req, http_writer *w)
{
    fixture *f = data;
    if (strncmp(req->target, "/stream", 7) == 0) {
        forward_on_own_stream(f, req, w);
        return;
    }
    http_proxy_upstream *u = f->tcp;
    if (strncmp(req->target, "/unix", 5) == 0)
        u = f->unx;
    else if (strncmp(req->target, "/open", 5) == 0)
        u = f->opened;
    else if (strncmp(req->target, "/down", 5) == 0)
        u = f->down;
    else if (strncmp(req->target, "/full", 5) == 0)
        u = f->full;
    http_proxy_req_opts ro = {.client_addr = "10.0.0.1", .proto = "http", .forwarded_host = true,
                              .done = on_done};
    err e;
    if (http_proxy_forward(u, req, w, &ro, &e) != 0)
        http_writer_error(w, 500, e.msg);
}

/* The open callback: a blocking connect to the TCP upstream, as a caller
 * connecting from inside a container's network namespace would. */
static int open_upstream(void *data, int *fd)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)F->up.port)};
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int rc = -errno;
        close(s);
        return rc;
    }
    *fd = s;
    return 0;
}

/* Requests with "sb" in their query have their body streamed. */
static bool stream_when_asked(void *data, const http_request *req, size_t *max_body)
{
    const char *q = strchr(req->target, '?');
    return q && strstr(q, "sb");
}

static void on_drained(void *data)
{
    fixture *f = data;
    http_server_free(f->s);
    f->s = NULL;
    http_proxy_upstream_free(f->tcp);
    http_proxy_upstream_free(f->unx);
    http_proxy_upstream_free(f->opened);
    http_proxy_upstream_free(f->down);
    http_proxy_upstream_free(f->full);
    uv_close((uv_handle_t *)&f->async, NULL);
}

static void on_async(uv_async_t *a)
{
    fixture *f = a->data;
    http_server_drain(f->s, on_drained, f);
}

static void *loop_main(void *arg)
{
    fixture *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void start(script_fn script)
{
    F = xcalloc(1, sizeof *F);
    upstream *u = &F->up;
    u->script = script;
    pthread_mutex_init(&u->lock, NULL);
    buf_init(&u->last_req, BUF_UNLIMITED);
    u->tcp_fd = listen_tcp(&u->port);
    snprintf(u->path, sizeof u->path, "/tmp/atoll-proxy-test-%d.sock", (int)getpid());
    unlink(u->path);
    u->unix_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    strcpy(sun.sun_path, u->path);
    assert_int_equal(bind(u->unix_fd, (struct sockaddr *)&sun, sizeof sun), 0);
    assert_int_equal(listen(u->unix_fd, 64), 0);
    pthread_create(&u->acceptor, NULL, acceptor_main, u);

    http_proxy_opts_defaults(&F->opts);
    F->opts.connect_timeout_ms = 1000;
    F->opts.header_timeout_ms = header_timeout_ms ? header_timeout_ms : 400;
    F->opts.idle_timeout_ms = 400;
    F->opts.max_buffered = 256 * 1024;
    F->opts.pool_idle_ms = 1000;
    assert_int_equal(uv_loop_init(&F->loop), 0);
    assert_int_equal(uv_async_init(&F->loop, &F->async, on_async), 0);
    F->async.data = F;
    err e;
    http_server_config sc;
    http_server_config_defaults(&sc);
    sc.stream_body = stream_when_asked;
    sc.max_body_bytes = (size_t)1 << 30;
    assert_int_equal(http_server_new(&F->loop, &sc, handler, F, &F->s, &e), 0);
    assert_int_equal(http_server_listen(F->s, "127.0.0.1", 0, &e), 0);
    F->port = http_server_port(F->s);
    assert_int_equal(http_proxy_upstream_tcp(&F->loop, "127.0.0.1", u->port, &F->opts, &F->tcp, &e), 0);
    assert_int_equal(http_proxy_upstream_unix(&F->loop, u->path, &F->opts, &F->unx, &e), 0);
    assert_int_equal(http_proxy_upstream_open(&F->loop, open_upstream, NULL, &F->opts, &F->opened, &e), 0);
    /* A port that was free a moment ago: nothing listens there. */
    int dead_port;
    close(listen_tcp(&dead_port));
    assert_int_equal(http_proxy_upstream_tcp(&F->loop, "127.0.0.1", dead_port, &F->opts, &F->down, &e), 0);
    /* A listener that never accepts, its queue filled: further SYNs are
     * dropped, so a connect hangs until its timeout. */
    int full_port;
    F->full_fd = listen_tcp(&full_port);
    listen(F->full_fd, 0);
    for (int i = 0; i < 8; i++) {
        F->fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                 .sin_port = htons((uint16_t)full_port)};
        connect(F->fillers[i], (struct sockaddr *)&sa, sizeof sa);
    }
    assert_int_equal(http_proxy_upstream_tcp(&F->loop, "127.0.0.1", full_port, &F->opts, &F->full, &e), 0);
    pthread_create(&F->thread, NULL, loop_main, F);
}

static void stop(void)
{
    uv_async_send(&F->async);
    pthread_join(F->thread, NULL);
    assert_int_equal(uv_loop_close(&F->loop), 0); /* every handle closed */
    upstream *u = &F->up;
    atomic_store(&u->stop, 1);
    pthread_join(u->acceptor, NULL);
    for (int i = 0; i < atomic_load(&u->n_conns); i++)
        pthread_join(u->conns[i], NULL);
    close(u->tcp_fd);
    close(u->unix_fd);
    close(F->full_fd);
    for (int i = 0; i < 8; i++)
        close(F->fillers[i]);
    unlink(u->path);
    buf_free(&u->last_req);
    pthread_mutex_destroy(&u->lock);
    free(F);
    F = NULL;
}

/* ---- the client ---- */

static int client_open(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)F->port)};
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

typedef struct response {
    int status;
    buf raw;       /* everything received */
    char *headers; /* the header section, NUL-terminated inside raw */
    buf body;      /* decoded */
    bool complete; /* framing says the body is whole */
} response;

/* Reads until the server closes (requests carry Connection: close) and
 * decodes the body. */
static response read_response(int fd)
{
    response r = {0};
    buf_init(&r.raw, BUF_UNLIMITED);
    buf_init(&r.body, BUF_UNLIMITED);
    char *tmp = xmalloc(65536);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10000) <= 0)
            break;
        ssize_t n = recv(fd, tmp, 65536, 0);
        if (n <= 0)
            break;
        buf_append(&r.raw, tmp, (size_t)n);
    }
    free(tmp);
    /* The server's own answer to Expect: 100-continue comes first. */
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (r.raw.len >= sizeof cont - 1 && memcmp(r.raw.data, cont, sizeof cont - 1) == 0)
        buf_consume(&r.raw, sizeof cont - 1);
    char *end = r.raw.data ? strstr(r.raw.data, "\r\n\r\n") : NULL;
    if (!end)
        return r;
    *end = '\0';
    r.headers = r.raw.data;
    sscanf(r.raw.data, "HTTP/1.1 %d", &r.status);
    char *b = end + 4;
    size_t left = r.raw.len - (size_t)(b - r.raw.data);
    const char *cl = strcasestr(r.headers, "\r\nContent-Length:");
    if (strcasestr(r.headers, "\r\nTransfer-Encoding: chunked")) {
        for (;;) {
            char *eol = memmem(b, left, "\r\n", 2);
            if (!eol)
                break;
            size_t n = strtoul(b, NULL, 16);
            size_t hl = (size_t)(eol - b) + 2;
            if (left < hl + n + 2)
                break;
            if (n == 0) {
                r.complete = true;
                break;
            }
            buf_append(&r.body, b + hl, n);
            b += hl + n + 2;
            left -= hl + n + 2;
        }
    } else if (cl) {
        size_t n = strtoul(cl + 17, NULL, 10);
        buf_append(&r.body, b, left < n ? left : n);
        r.complete = left >= n;
    } else {
        buf_append(&r.body, b, left);
        r.complete = true;
    }
    return r;
}

static response request(const char *raw)
{
    int fd = client_open();
    assert_int_equal(send_str(fd, raw), 0);
    response r = read_response(fd);
    close(fd);
    return r;
}

static void response_free(response *r)
{
    buf_free(&r->raw);
    buf_free(&r->body);
}

static bool has_header(const response *r, const char *line)
{
    return r->headers && strcasestr(r->headers, line) != NULL;
}

static char *last_request(void)
{
    pthread_mutex_lock(&F->up.lock);
    char *s = xstrdup(F->up.last_req.data ? F->up.last_req.data : "");
    pthread_mutex_unlock(&F->up.lock);
    return s;
}

#define GET(path) "GET " path " HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n"

/* ---- tests ---- */

static void content_length_body(void **state)
{
    canned = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Up: yes\r\n\r\nhello";
    start(script_canned);
    response r = request(GET("/a"));
    assert_int_equal(r.status, 200);
    assert_true(r.complete);
    assert_string_equal(r.body.data, "hello");
    assert_true(has_header(&r, "\r\nX-Up: yes"));
    assert_true(has_header(&r, "\r\nContent-Length: 5"));
    response_free(&r);
    stop();
}

static void script_chunked(int fd, int index)
{
    buf req;
    buf_init(&req, BUF_UNLIMITED);
    if (read_request(fd, &req) == 0) {
        send_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
        usleep(20000);
        send_str(fd, "lo\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
    }
    wait_eof(fd);
    buf_free(&req);
}

static void chunked_body(void **state)
{
    start(script_chunked);
    response r = request(GET("/c"));
    assert_int_equal(r.status, 200);
    assert_true(r.complete);
    assert_string_equal(r.body.data, "hello world");
    response_free(&r);
    stop();
}

static void close_delimited_body(void **state)
{
    canned = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end";
    start(script_once);
    response r = request(GET("/d"));
    assert_int_equal(r.status, 200);
    assert_true(r.complete);
    assert_true(has_header(&r, "Transfer-Encoding: chunked")); /* re-framed for the client */
    assert_string_equal(r.body.data, "until the end");
    response_free(&r);
    stop();
}

#define BIG (32 * 1024 * 1024)

static void script_big(int fd, int index)
{
    buf req;
    buf_init(&req, BUF_UNLIMITED);
    int small = 64 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    while (read_request(fd, &req) == 0) {
        bool chunked = strstr(req.data, "chunked=1") != NULL;
        send_str(fd, chunked ? "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             : "HTTP/1.1 200 OK\r\nContent-Length: 33554432\r\n\r\n");
        char *block = xmalloc(65536);
        for (long off = 0; off < BIG; off += 65536) {
            for (int i = 0; i < 65536; i++)
                block[i] = (char)('a' + (off + i) % 26);
            if (chunked && send_str(fd, "10000\r\n") != 0)
                break;
            if (send_all(fd, block, 65536) != 0)
                break;
            if (chunked && send_str(fd, "\r\n") != 0)
                break;
            atomic_store(&F->up.sent, off + 65536);
        }
        if (chunked)
            send_str(fd, "0\r\n\r\n");
        free(block);
    }
    buf_free(&req);
}

/* A client that does not read holds the upstream back: the proxy buffers a
 * bounded amount, not the whole body. */
static void big_body(const char *raw)
{
    int fd = client_open();
    int small = 64 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    assert_int_equal(send_str(fd, raw), 0);
    /* The upstream is held back: it stalls after socket buffers on the way
     * (several MB on loopback, kernel autotuned) plus max_buffered, far
     * from the whole body. */
    long sent = -1, now = 0;
    for (int i = 0; i < 30 && (now != sent || now == 0); i++) {
        sent = now;
        usleep(200000);
        now = atomic_load(&F->up.sent);
    }
    if (now != sent || sent >= BIG * 3 / 4)
        fail_msg("upstream sent %ld bytes to a client that reads nothing", sent);
    response r = read_response(fd);
    close(fd);
    assert_int_equal(r.status, 200);
    assert_true(r.complete);
    assert_int_equal(r.body.len, BIG);
    for (long i = 0; i < BIG; i += 4099)
        assert_int_equal(r.body.data[i], (char)('a' + i % 26));
    response_free(&r);
}

static void large_bodies_are_streamed_with_bounded_buffering(void **state)
{
    start(script_big);
    big_body(GET("/big"));
    atomic_store(&F->up.sent, 0);
    big_body(GET("/big?chunked=1"));
    assert_int_equal(atomic_load(&F->up.n_conns), 1);
    stop();
}

static void interim_responses_are_skipped(void **state)
{
    canned = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
             "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    start(script_canned);
    response r = request("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n"
                         "Connection: close\r\n\r\nabc");
    assert_int_equal(r.status, 201);
    assert_string_equal(r.body.data, "ok");
    assert_false(has_header(&r, "Link:"));
    char *up = last_request();
    assert_non_null(strstr(up, "\r\n\r\nabc"));
    assert_null(strcasestr(up, "Expect:"));
    free(up);
    response_free(&r);
    stop();
}

static void script_bodyless(int fd, int index)
{
    buf req;
    buf_init(&req, BUF_UNLIMITED);
    while (read_request(fd, &req) == 0) {
        const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"; /* HEAD: no body */
        if (strstr(req.data, "/204"))
            resp = "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n";
        else if (strstr(req.data, "/304"))
            resp = "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n";
        if (send_str(fd, resp) != 0)
            break;
    }
    buf_free(&req);
}

static void head_204_304_have_no_body(void **state)
{
    start(script_bodyless);
    response r = request("HEAD /h HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Content-Length: 100"));
    assert_int_equal(r.body.len, 0);
    response_free(&r);
    r = request(GET("/204"));
    assert_int_equal(r.status, 204);
    assert_true(has_header(&r, "X-A: 1"));
    assert_int_equal(r.raw.len, strlen(r.raw.data) + 4); /* nothing after the header section */
    response_free(&r);
    r = request(GET("/304"));
    assert_int_equal(r.status, 304);
    assert_true(has_header(&r, "ETag: \"x\""));
    response_free(&r);
    /* All three on one upstream connection: the bodyless framing kept it usable. */
    assert_int_equal(atomic_load(&F->up.n_conns), 1);
    stop();
}

static void hop_by_hop_fields_and_forwarded_headers(void **state)
{
    canned = "HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\n"
             "Proxy-Thing: p\r\nX-Kept: k\r\nContent-Length: 0\r\n\r\n";
    start(script_canned);
    response r = request("POST /hop?q=1 HTTP/1.1\r\nHost: example.test\r\nConnection: close, X-Foo\r\n"
                         "X-Foo: drop\r\nKeep-Alive: 300\r\nTE: trailers\r\nUpgrade: h2c\r\n"
                         "Proxy-Authorization: x\r\nX-Forwarded-For: 1.2.3.4\r\n"
                         "X-Forwarded-Proto: https\r\nX-Keep: me\r\nContent-Length: 4\r\n\r\nbody");
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "X-Kept: k"));
    assert_false(has_header(&r, "X-Secret"));
    assert_false(has_header(&r, "Keep-Alive"));
    assert_false(has_header(&r, "Proxy-Thing"));
    char *up = last_request();
    assert_non_null(strstr(up, "POST /hop?q=1 HTTP/1.1\r\n"));
    assert_non_null(strstr(up, "\r\nHost: example.test\r\n"));
    assert_non_null(strstr(up, "\r\nX-Keep: me\r\n"));
    assert_non_null(strstr(up, "\r\nX-Forwarded-For: 1.2.3.4, 10.0.0.1\r\n"));
    assert_non_null(strstr(up, "\r\nX-Forwarded-Proto: http\r\n"));
    assert_non_null(strstr(up, "\r\nX-Forwarded-Host: example.test\r\n"));
    assert_non_null(strstr(up, "\r\nContent-Length: 4\r\n"));
    assert_non_null(strstr(up, "\r\n\r\nbody"));
    const char *gone[] = {"X-Foo", "Keep-Alive", "TE:", "Upgrade", "Proxy-Authorization",
                          "Connection: close", "https"};
    for (size_t i = 0; i < sizeof gone / sizeof *gone; i++)
        if (strcasestr(up, gone[i]))
            fail_msg("%s reached the upstream:\n%s", gone[i], up);
    free(up);
    response_free(&r);
    stop();
}

static void keep_alive_reuses_upstream_connections(void **state)
{
    canned = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    start(script_canned);
    for (int i = 0; i < 5; i++) {
        response r = request(i % 2 ? GET("/k") : "POST /k HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx");
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body.data, "ok");
        response_free(&r);
    }
    assert_int_equal(atomic_load(&F->up.n_conns), 1);
    stop();
}

/* The first connection answers once, then takes the next request and
 * closes without a word: the pooled connection was stale. */
static void script_stale(int fd, int index)
{
    buf req;
    buf_init(&req, BUF_UNLIMITED);
    if (index == 0) {
        if (read_request(fd, &req) == 0)
            send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
        read_request(fd, &req);
    } else {
        while (read_request(fd, &req) == 0)
            if (send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh") != 0)
                break;
    }
    buf_free(&req);
}

static void stale_pooled_connection_is_retried_once(void **state)
{
    start(script_stale);
    response r = request(GET("/s"));
    assert_string_equal(r.body.data, "first");
    response_free(&r);
    r = request(GET("/s"));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "fresh");
    response_free(&r);
    assert_int_equal(atomic_load(&F->up.n_conns), 2);
    stop();
}

static void stale_non_idempotent_request_is_not_retried(void **state)
{
    start(script_stale);
    response r = request(GET("/s"));
    assert_string_equal(r.body.data, "first");
    response_free(&r);
    r = request("POST /s HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx");
    assert_int_equal(r.status, 502);
    response_free(&r);
    assert_int_equal(atomic_load(&F->up.n_conns), 1);
    stop();
}

/* Keep-alive promised, then closed: the pool notices before reuse, so even
 * a POST (never retried) succeeds on a fresh connection. */
static void closed_pooled_connection_is_not_reused(void **state)
{
    canned = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    start(script_once);
    response r = request(GET("/x"));
    assert_int_equal(r.status, 200);
    response_free(&r);
    usleep(100000);
    r = request("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "ok");
    response_free(&r);
    assert_int_equal(atomic_load(&F->up.n_conns), 2);
    stop();
}

static void upstream_down_is_502(void **state)
{
    start(script_canned);
    response r = request(GET("/down"));
    assert_int_equal(r.status, 502);
    response_free(&r);
    assert_int_equal(atomic_load(&F->done_calls), 1);
    assert_true(atomic_load(&F->last_done) < 0);
    stop();
}

static void script_silent(int fd, int index)
{
    buf req;
    buf_init(&req, BUF_UNLIMITED);
    if (read_request(fd, &req) == 0 && strstr(req.data, "/stall"))
        send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    wait_eof(fd);
    buf_free(&req);
}

static void upstream_timeouts(void **state)
{
    start(script_silent);
    response r = request(GET("/t"));
    assert_int_equal(r.status, 504);
    response_free(&r);
    /* Stalled mid-body: the response has started, so it is cut short. */
    r = request(GET("/stall"));
    assert_int_equal(r.status, 200);
    assert_false(r.complete);
    assert_string_equal(r.body.data, "abc");
    response_free(&r);
    assert_true(atomic_load(&F->up.saw_close));
    stop();
}

static void connect_timeout_is_504(void **state)
{
    start(script_canned);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    response r = request(GET("/full"));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(r.status, 504);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(s >= 0.9 && s < 5); /* connect_timeout_ms is 1 s here */
    response_free(&r);
    stop();
}

static void idle_pooled_connections_time_out(void **state)
{
    canned = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    start(script_canned);
    response r = request(GET("/i"));
    assert_int_equal(r.status, 200);
    response_free(&r);
    /* pool_idle_ms is 1 s here; the script itself would wait 5 s */
    for (int i = 0; i < 300 && !atomic_load(&F->up.saw_close); i++)
        usleep(10000);
    assert_true(atomic_load(&F->up.saw_close));
    stop();
}

static void garbage_is_502(void **state)
{
    const char *bad[] = {
        "garbage\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        canned = bad[i];
        start(script_once);
        response r = request(GET("/g"));
        if (r.status != 502)
            fail_msg("upstream sent %s: client got %d", bad[i], r.status);
        response_free(&r);
        stop();
    }
}

static void script_huge_headers(int fd, int index)
{
    buf req;
    buf_init(&req, BUF_UNLIMITED);
    if (read_request(fd, &req) == 0) {
        send_str(fd, "HTTP/1.1 200 OK\r\n");
        char line[1024];
        memset(line, 'a', sizeof line);
        memcpy(line, "X-Big: ", 7);
        memcpy(line + sizeof line - 2, "\r\n", 2);
        for (int i = 0; i < 100; i++) /* 100 KB of header section */
            if (send_all(fd, line, sizeof line) != 0)
                break;
    }
    wait_eof(fd);
    buf_free(&req);
}

static void oversized_response_headers_are_502(void **state)
{
    start(script_huge_headers);
    response r = request(GET("/huge"));
    assert_int_equal(r.status, 502);
    response_free(&r);
    stop();
}

static void script_reset(int fd, int index)
{
    buf req;
    buf_init(&req, BUF_UNLIMITED);
    if (read_request(fd, &req) == 0) {
        if (strstr(req.data, "chunked"))
            send_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
        else
            send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nhello");
        usleep(50000);
        struct linger l = {.l_onoff = 1, .l_linger = 0}; /* close with a reset */
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    buf_free(&req);
}

static void reset_mid_body_closes_the_client(void **state)
{
    start(script_reset);
    response r = request(GET("/r"));
    assert_int_equal(r.status, 200);
    assert_false(r.complete);
    assert_string_equal(r.body.data, "hello");
    response_free(&r);
    r = request(GET("/r?chunked"));
    assert_int_equal(r.status, 200);
    assert_false(r.complete); /* no final chunk: the client can tell */
    assert_string_equal(r.body.data, "hello");
    response_free(&r);
    stop();
}

static void script_endless(int fd, int index)
{
    buf req;
    buf_init(&req, BUF_UNLIMITED);
    if (read_request(fd, &req) == 0 &&
        send_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") == 0) {
        for (int i = 0; i < 2000; i++) { /* at most 10 s */
            if (send_str(fd, "4\r\ntick\r\n") != 0) {
                atomic_store(&F->up.saw_close, 1);
                break;
            }
            usleep(5000);
        }
    }
    buf_free(&req);
}

static void client_leaving_closes_the_upstream(void **state)
{
    start(script_endless);
    int fd = client_open();
    assert_int_equal(send_str(fd, GET("/endless")), 0);
    char tmp[256];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_true(poll(&p, 1, 5000) == 1);
    assert_true(recv(fd, tmp, sizeof tmp, 0) > 0);
    close(fd);
    for (int i = 0; i < 500 && !atomic_load(&F->up.saw_close); i++)
        usleep(10000);
    assert_true(atomic_load(&F->up.saw_close));
    assert_int_equal(atomic_load(&F->last_done), -EPIPE);
    stop();
}

static void unix_and_open_callback_upstreams(void **state)
{
    canned = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nunix";
    start(script_canned);
    for (int i = 0; i < 3; i++) {
        response r = request(GET("/unix"));
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body.data, "unix");
        response_free(&r);
        r = request(GET("/open"));
        assert_int_equal(r.status, 200);
        response_free(&r);
    }
    /* one pooled connection each */
    assert_int_equal(atomic_load(&F->up.n_conns), 2);
    stop();
}

static void callers_own_stream(void **state)
{
    canned = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nstream";
    start(script_canned);
    for (int i = 0; i < 2; i++) {
        response r = request(GET("/stream"));
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body.data, "stream");
        response_free(&r);
    }
    assert_int_equal(atomic_load(&F->up.n_conns), 2); /* never pooled */
    assert_int_equal(atomic_load(&F->last_done), 0);
    stop();
}

static void bad_requests_fail_synchronously(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    http_proxy_upstream *u;
    err e;
    assert_int_equal(http_proxy_upstream_tcp(&loop, "nope", 80, NULL, &u, &e), -EINVAL);
    assert_int_equal(http_proxy_upstream_unix(&loop, "", NULL, &u, &e), -ENAMETOOLONG);
    assert_int_equal(http_proxy_upstream_tcp(&loop, "127.0.0.1", 9, NULL, &u, &e), 0);
    http_request req;
    http_request_init(&req);
    req.method = xstrdup("GET");
    req.target = xstrdup("/a b");
    http_writer w = {0}; /* never called */
    assert_int_equal(http_proxy_forward(u, &req, &w, NULL, &e), -EINVAL);
    http_request_free(&req);
    http_proxy_upstream_free(u);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- streamed request bodies ---- */

/* Reads the request head, then echoes the raw bytes that follow (the
 * body as framed on the wire) in a chunked response as they come, until
 * the end of a chunked body or EOF. */
static void script_echo_raw(int fd, int index)
{
    buf req;
    buf_init(&req, BUF_UNLIMITED);
    char tmp[65536];
    char *end = NULL;
    while (!end) {
        ssize_t n = recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0)
            goto out;
        buf_append(&req, tmp, (size_t)n);
        end = strstr(req.data, "\r\n\r\n");
    }
    pthread_mutex_lock(&F->up.lock);
    buf_reset(&F->up.last_req);
    buf_append(&F->up.last_req, req.data, (size_t)(end + 4 - req.data));
    pthread_mutex_unlock(&F->up.lock);
    send_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    buf seen;
    buf_init(&seen, BUF_UNLIMITED);
    size_t have = req.len - (size_t)(end + 4 - req.data);
    buf_append(&seen, end + 4, have);
    char line[32];
    if (have) {
        snprintf(line, sizeof line, "%zx\r\n", have);
        send_str(fd, line);
        send_all(fd, end + 4, have);
        send_str(fd, "\r\n");
    }
    while (!(seen.len >= 5 && memcmp(seen.data + seen.len - 5, "0\r\n\r\n", 5) == 0)) {
        ssize_t n = recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0)
            break;
        buf_append(&seen, tmp, (size_t)n);
        snprintf(line, sizeof line, "%zx\r\n", (size_t)n);
        send_str(fd, line);
        send_all(fd, tmp, (size_t)n);
        send_str(fd, "\r\n");
    }
    send_str(fd, "0\r\n\r\n");
    buf_free(&seen);
out:
    buf_free(&req);
}

/* Reads from fd until `want` appears in what was read (5 s at most). */
static bool read_until(int fd, buf *got, const char *want)
{
    char tmp[4096];
    while (!got->data || !memmem(got->data, got->len, want, strlen(want))) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0)
            return false;
        ssize_t n = recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0)
            return false;
        buf_append(got, tmp, (size_t)n);
    }
    return true;
}

static void streamed_body_is_forwarded_as_it_arrives(void **state)
{
    start(script_echo_raw);
    int fd = client_open();
    assert_int_equal(send_str(fd, "POST /a?sb HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                                  "Connection: close\r\n\r\n5\r\nfirst\r\n"), 0);
    buf got;
    buf_init(&got, BUF_UNLIMITED);
    /* The upstream saw the first piece, chunked, before the client sent more. */
    assert_true(read_until(fd, &got, "5\r\nfirst\r\n"));
    char *head = last_request();
    assert_non_null(strstr(head, "POST /a?sb HTTP/1.1\r\n"));
    assert_non_null(strstr(head, "\r\nTransfer-Encoding: chunked\r\n"));
    assert_null(strcasestr(head, "Content-Length"));
    free(head);
    assert_int_equal(send_str(fd, "6\r\nsecond\r\n0\r\n\r\n"), 0);
    assert_true(read_until(fd, &got, "6\r\nsecond\r\n"));
    /* The body's last chunk as the upstream saw it, echoed inside a chunk, then the response's. */
    assert_true(read_until(fd, &got, "0\r\n\r\n\r\n0\r\n\r\n"));
    buf_free(&got);
    close(fd);
    for (int i = 0; i < 500 && atomic_load(&F->done_calls) == 0; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&F->last_done), 0);
    stop();

    /* A Content-Length body keeps its length. */
    start(script_echo_raw);
    fd = client_open();
    assert_int_equal(send_str(fd, "PUT /a?sb HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n"
                                  "Connection: close\r\n\r\n01234"), 0);
    buf_init(&got, BUF_UNLIMITED);
    assert_true(read_until(fd, &got, "01234"));
    head = last_request();
    assert_non_null(strstr(head, "\r\nContent-Length: 10\r\n"));
    assert_null(strstr(head, "Transfer-Encoding"));
    free(head);
    assert_int_equal(send_str(fd, "56789"), 0);
    assert_true(read_until(fd, &got, "56789"));
    buf_free(&got);
    close(fd);
    stop();
}

#define STALL_BODY ((size_t)96 << 20)

static atomic_long up_received;

/* Reads a Content-Length body: 1 MiB, then nothing for a second, then the
 * rest as fast as it comes; answers with the count. */
static void script_stall(int fd, int index)
{
    char *tmp = xmalloc(65536);
    size_t head_done = 0, got = 0;
    buf req;
    buf_init(&req, BUF_UNLIMITED);
    bool stalled = false;
    for (;;) {
        ssize_t n = recv(fd, tmp, 65536, 0);
        if (n <= 0)
            break;
        if (!head_done) {
            buf_append(&req, tmp, (size_t)n);
            char *end = strstr(req.data, "\r\n\r\n");
            if (!end)
                continue;
            head_done = (size_t)(end + 4 - req.data);
            got = req.len - head_done;
        } else {
            got += (size_t)n;
        }
        atomic_store(&up_received, (long)got);
        if (!stalled && got >= (1 << 20)) {
            stalled = true;
            usleep(1000 * 1000);
        }
        if (got >= STALL_BODY)
            break;
    }
    char resp[128];
    snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%09zu", 9, got);
    send_str(fd, resp);
    free(tmp);
    buf_free(&req);
}

static void slow_upstream_pushes_back_on_the_client(void **state)
{
    atomic_store(&up_received, 0);
    header_timeout_ms = 3000; /* the upstream's pause is not a timeout */
    start(script_stall);
    header_timeout_ms = 0;
    int fd = client_open();
    char head[160];
    snprintf(head, sizeof head, "PUT /big?sb HTTP/1.1\r\nHost: h\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
             STALL_BODY);
    assert_int_equal(send_str(fd, head), 0);
    char *piece = xcalloc(1, 65536);
    size_t sent = 0, sent_in_stall = 0;
    struct timespec t0 = {0}, now;
    while (sent < STALL_BODY) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 100) == 1) {
            ssize_t n = send(fd, piece, STALL_BODY - sent < 65536 ? STALL_BODY - sent : 65536, MSG_NOSIGNAL);
            assert_true(n > 0);
            sent += (size_t)n;
        }
        if (!t0.tv_sec && atomic_load(&up_received) >= (1 << 20))
            clock_gettime(CLOCK_MONOTONIC, &t0);
        clock_gettime(CLOCK_MONOTONIC, &now);
        /* Sent while the upstream read nothing: only what buffers hold. */
        if (t0.tv_sec && now.tv_sec - t0.tv_sec + (now.tv_nsec - t0.tv_nsec) / 1e9 < 0.9)
            sent_in_stall = sent;
    }
    free(piece);
    response r = read_response(fd);
    close(fd);
    assert_int_equal(r.status, 200);
    char want[16];
    snprintf(want, sizeof want, "%09zu", STALL_BODY);
    assert_string_equal(r.body.data, want);
    response_free(&r);
    /* Kernel buffers hold some MB on loopback; not the whole body. */
    assert_true(sent_in_stall < STALL_BODY / 4); /* about 10 MiB here */
    stop();
}

/* Answers 413 from the head alone and closes, the body unread. */
static void script_refuse(int fd, int index)
{
    char tmp[4096];
    buf req;
    buf_init(&req, BUF_UNLIMITED);
    while (!req.data || !strstr(req.data, "\r\n\r\n")) {
        ssize_t n = recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0)
            break;
        buf_append(&req, tmp, (size_t)n);
    }
    send_str(fd, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbig!");
    buf_free(&req);
}

static void early_upstream_answer_ends_the_exchange(void **state)
{
    start(script_refuse);
    int fd = client_open();
    assert_int_equal(send_str(fd, "PUT /a?sb HTTP/1.1\r\nHost: h\r\nContent-Length: 8000000\r\n\r\nsome"), 0);
    response r = read_response(fd); /* until the server closes: it must */
    close(fd);
    assert_int_equal(r.status, 413);
    assert_true(r.complete);
    assert_string_equal(r.body.data, "big!");
    response_free(&r);
    for (int i = 0; i < 500 && atomic_load(&F->done_calls) == 0; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&F->done_calls), 1);
    assert_int_equal(http_proxy_upstream_idle(F->tcp), 0); /* not pooled */
    stop();
}

static void script_wait_close(int fd, int index)
{
    wait_eof(fd);
}

static void client_leaving_mid_body_aborts_the_upstream(void **state)
{
    start(script_wait_close);
    int fd = client_open();
    assert_int_equal(send_str(fd, "PUT /a?sb HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\npart"), 0);
    usleep(100 * 1000);
    close(fd);
    for (int i = 0; i < 500 && !atomic_load(&F->up.saw_close); i++)
        usleep(10000);
    assert_true(atomic_load(&F->up.saw_close));
    for (int i = 0; i < 500 && atomic_load(&F->done_calls) == 0; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&F->done_calls), 1);
    assert_int_equal(atomic_load(&F->last_done), -ECONNRESET);
    stop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(content_length_body),
        cmocka_unit_test(chunked_body),
        cmocka_unit_test(close_delimited_body),
        cmocka_unit_test(large_bodies_are_streamed_with_bounded_buffering),
        cmocka_unit_test(interim_responses_are_skipped),
        cmocka_unit_test(head_204_304_have_no_body),
        cmocka_unit_test(hop_by_hop_fields_and_forwarded_headers),
        cmocka_unit_test(keep_alive_reuses_upstream_connections),
        cmocka_unit_test(stale_pooled_connection_is_retried_once),
        cmocka_unit_test(stale_non_idempotent_request_is_not_retried),
        cmocka_unit_test(closed_pooled_connection_is_not_reused),
        cmocka_unit_test(upstream_down_is_502),
        cmocka_unit_test(upstream_timeouts),
        cmocka_unit_test(connect_timeout_is_504),
        cmocka_unit_test(idle_pooled_connections_time_out),
        cmocka_unit_test(garbage_is_502),
        cmocka_unit_test(oversized_response_headers_are_502),
        cmocka_unit_test(reset_mid_body_closes_the_client),
        cmocka_unit_test(client_leaving_closes_the_upstream),
        cmocka_unit_test(unix_and_open_callback_upstreams),
        cmocka_unit_test(callers_own_stream),
        cmocka_unit_test(bad_requests_fail_synchronously),
        cmocka_unit_test(streamed_body_is_forwarded_as_it_arrives),
        cmocka_unit_test(slow_upstream_pushes_back_on_the_client),
        cmocka_unit_test(early_upstream_answer_ends_the_exchange),
        cmocka_unit_test(client_leaving_mid_body_aborts_the_upstream),
    };
    return cmocka_run_group_tests_name("http_proxy", tests, NULL, NULL);
}
