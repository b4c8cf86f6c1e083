/* The embedded load generator: N keep-alive connections on one libuv loop,
 * each sending the next GET as soon as the previous response is complete
 * (closed-loop, like wrk), reconnecting when the server closes (busybox
 * httpd does after every response). A warm-up phase is run and not
 * counted; latencies of counted requests are kept for percentiles. Also
 * the parsers for response heads and for wrk's output, tested on fixed
 * data. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <uv.h>

#include "bench/bench.h"
#include "core/alloc.h"
#include "core/clock.h"

/* A response larger than this is an error: the bench's services answer a
 * few bytes, and the buffer must not grow with what a server sends. */
#define MAX_RESPONSE (1u << 20)

int bench_parse_response_head(const char *buf, size_t len, size_t *head_len, int *status,
                              long long *content_length, bool *chunked, bool *close)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
        return len > 65536 ? -1 : 0;
    *head_len = (size_t)(end - buf) + 4;
    *content_length = -1;
    *chunked = false;
    if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ')
        return -1;
    *close = buf[7] == '0'; /* HTTP/1.0 closes unless told otherwise */
    if (!isdigit((unsigned char)buf[9]) || !isdigit((unsigned char)buf[10]) || !isdigit((unsigned char)buf[11]))
        return -1;
    *status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    const char *line = memchr(buf, '\n', (size_t)(end - buf));
    while (line && line < end) {
        line++;
        const char *eol = memchr(line, '\r', (size_t)(end + 2 - line));
        if (!eol)
            break;
        size_t n = (size_t)(eol - line);
        const char *colon = memchr(line, ':', n);
        if (colon) {
            size_t name_len = (size_t)(colon - line);
            const char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            size_t vlen = (size_t)(eol - v);
            if (name_len == 14 && strncasecmp(line, "content-length", 14) == 0) {
                long long cl = 0;
                while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
                    vlen--; /* optional whitespace after a field value (RFC 9110 5.5) */
                if (vlen == 0)
                    return -1;
                for (size_t i = 0; i < vlen; i++) {
                    if (!isdigit((unsigned char)v[i]) || cl > (1LL << 50))
                        return -1;
                    cl = cl * 10 + (v[i] - '0');
                }
                *content_length = cl;
            } else if (name_len == 17 && strncasecmp(line, "transfer-encoding", 17) == 0) {
                *chunked = vlen >= 7 && strncasecmp(v + vlen - 7, "chunked", 7) == 0;
            } else if (name_len == 10 && strncasecmp(line, "connection", 10) == 0) {
                if (vlen >= 5 && strncasecmp(v, "close", 5) == 0)
                    *close = true;
                else if (vlen >= 10 && strncasecmp(v, "keep-alive", 10) == 0)
                    *close = false;
            }
        }
        line = eol + 1;
    }
    return 1;
}

/* wrk prints latencies as 1.23us, 4.56ms, 1.20s, 2.00m or 1.00h
 * (format_time_us in its units.c). */
static int wrk_ms(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s)
        return -1;
    if (strncmp(end, "us", 2) == 0)
        v /= 1000;
    else if (strncmp(end, "ms", 2) == 0)
        ;
    else if (*end == 's')
        v *= 1000;
    else if (*end == 'm')
        v *= 60000;
    else if (*end == 'h')
        v *= 3600000;
    else
        return -1;
    *out = v;
    return 0;
}

/* A count as wrk and its forks print it: plain, or with a k/M/G suffix
 * (wrk's Req/Sec column; some builds format Requests/sec the same way).
 * Without the suffix 1.23k would be read as 1.23. */
static int wrk_count(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v) || v < 0)
        return -1;
    if (*end == 'k' || *end == 'K')
        v *= 1e3, end++;
    else if (*end == 'M')
        v *= 1e6, end++;
    else if (*end == 'G')
        v *= 1e9, end++;
    if (*end && !isspace((unsigned char)*end))
        return -1;
    *out = v;
    return 0;
}

int bench_parse_wrk(const char *text, double *rps, double *p50_ms, double *p99_ms)
{
    bool have_rps = false, have50 = false, have99 = false;
    for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        while (*line == ' ' || *line == '\t')
            line++;
        if (strncmp(line, "Requests/sec:", 13) == 0) {
            have_rps = wrk_count(line + 13 + strspn(line + 13, " \t"), rps) == 0;
        } else if (strncmp(line, "50%", 3) == 0 || strncmp(line, "50.000%", 7) == 0) {
            const char *v = line + strcspn(line, " \t");
            v += strspn(v, " \t");
            have50 = wrk_ms(v, p50_ms) == 0;
        } else if (strncmp(line, "99%", 3) == 0 || strncmp(line, "99.000%", 7) == 0) {
            const char *v = line + strcspn(line, " \t");
            v += strspn(v, " \t");
            have99 = wrk_ms(v, p99_ms) == 0;
        }
    }
    return have_rps && have50 && have99 ? 0 : -1;
}

typedef struct gen gen;

typedef struct conn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    gen *g;
    char *buf;
    size_t len, cap;
    uint64_t t_start;   /* when the current request was sent; 0: none */
    bool closing;
} conn;

struct gen {
    const bench_load_opts *o;
    bench_load_result *r;
    uv_loop_t loop;
    uv_timer_t phase, watchdog;
    struct sockaddr_in addr;
    char *request;
    size_t request_len;
    uint64_t t_measure;  /* 0 during the warm-up */
    size_t cap_lat;
    bool done;
    int live;            /* connections open or opening */
};

static void conn_open(gen *g);

static void on_closed(uv_handle_t *h)
{
    conn *c = h->data;
    gen *g = c->g;
    free(c->buf);
    free(c);
    g->live--;
    if (!g->done)
        conn_open(g);
}

static void conn_close(conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void stop(gen *g)
{
    if (g->done)
        return;
    g->done = true;
    g->r->elapsed_s = g->t_measure ? (double)(clock_mono_ns() - g->t_measure) / 1e9 : 0;
    uv_timer_stop(&g->phase);
    uv_timer_stop(&g->watchdog);
}

static void count(gen *g, conn *c, bool ok)
{
    uint64_t now = clock_mono_ns();
    /* Responses completed inside the measured window count, as in wrk:
     * with many connections and slow responses, counting only requests
     * sent inside the window would leave its first part empty. */
    if (g->t_measure && !g->done) {
        if (ok) {
            g->r->ok++;
            if (g->r->n_lat == g->cap_lat) {
                g->cap_lat = g->cap_lat ? 2 * g->cap_lat : 4096;
                g->r->lat_ms = xrealloc(g->r->lat_ms, g->cap_lat * sizeof *g->r->lat_ms);
            }
            g->r->lat_ms[g->r->n_lat++] = (double)(now - c->t_start) / 1e6;
        } else {
            g->r->errors++;
        }
        if (g->o->max_requests && g->r->ok + g->r->errors >= g->o->max_requests)
            stop(g);
    }
    c->t_start = 0;
}

static void send_request(conn *c);

static void on_written(uv_write_t *w, int status)
{
    conn *c = w->data;
    if (status < 0 && !c->closing) {
        count(c->g, c, false);
        conn_close(c);
    }
}

static void send_request(conn *c)
{
    gen *g = c->g;
    if (g->done) {
        conn_close(c);
        return;
    }
    c->len = 0;
    c->t_start = clock_mono_ns();
    uv_buf_t b = uv_buf_init(g->request, (unsigned)g->request_len);
    c->write.data = c;
    if (uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        count(g, c, false);
        conn_close(c);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    conn *c = h->data;
    if (c->cap - c->len < 4096) {
        size_t cap = c->cap ? c->cap * 2 : 8192;
        if (cap > MAX_RESPONSE + 8192)
            cap = MAX_RESPONSE + 8192;
        c->buf = xrealloc(c->buf, cap);
        c->cap = cap;
    }
    *b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

/* 1: the response in c->buf is complete; 0: need more; -1: bad. *close
 * tells whether the server will close the connection after it. */
static int response_complete(conn *c, bool eof, bool *close)
{
    size_t head_len;
    int status;
    long long cl;
    bool chunked;
    int rc = bench_parse_response_head(c->buf, c->len, &head_len, &status, &cl, &chunked, close);
    if (rc <= 0)
        return rc;
    if (status < 200 || status > 299)
        return -1;
    if (cl >= 0)
        return c->len - head_len >= (size_t)cl ? 1 : 0;
    if (chunked)
        return c->len >= head_len + 5 && memcmp(c->buf + c->len - 5, "0\r\n\r\n", 5) == 0 ? 1 : 0;
    *close = true; /* delimited by the end of the connection */
    return eof ? 1 : 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    conn *c = s->data;
    gen *g = c->g;
    if (c->closing)
        return;
    bool eof = n == UV_EOF;
    if (n < 0 && !eof) {
        if (c->t_start)
            count(g, c, false);
        conn_close(c);
        return;
    }
    if (n > 0)
        c->len += (size_t)n;
    if (!c->t_start) { /* bytes nobody asked for, or the close after a response */
        if (eof)
            g->r->reconnects++;
        conn_close(c);
        return;
    }
    bool close = false;
    int rc = response_complete(c, eof, &close);
    if (rc == 0 && !eof && c->len < MAX_RESPONSE)
        return;
    count(g, c, rc == 1);
    if (rc == 1 && !close && !eof) {
        send_request(c);
        return;
    }
    if (rc == 1)
        g->r->reconnects++;
    conn_close(c);
}

static void on_connect(uv_connect_t *req, int status)
{
    conn *c = req->data;
    gen *g = c->g;
    if (status < 0) {
        /* Refused connections count as errors, and a server that refuses
         * everything ends the run instead of spinning on reconnects. */
        if (g->t_measure && !g->done) {
            g->r->errors++;
            if ((g->o->max_requests && g->r->ok + g->r->errors >= g->o->max_requests) ||
                (g->r->ok == 0 && g->r->errors >= 1000))
                stop(g);
        }
        conn_close(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    send_request(c);
}

static void conn_open(gen *g)
{
    conn *c = xcalloc(1, sizeof *c);
    c->g = g;
    uv_tcp_init(&g->loop, &c->tcp);
    c->tcp.data = c;
    c->connect.data = c;
    g->live++;
    int fd = g->o->make_socket ? g->o->make_socket(g->o->socket_arg) : 0;
    if (fd < 0 || (fd > 0 && uv_tcp_open(&c->tcp, fd) != 0)) {
        if (fd > 0)
            close(fd);
        g->r->errors++;
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        if (!g->done && g->t_measure)
            stop(g); /* no socket now, none later: do not spin */
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&g->addr, on_connect) != 0) {
        /* Counted as an error; on_closed does not reopen once done. */
        g->r->errors++;
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    }
}

static void on_phase(uv_timer_t *t)
{
    gen *g = t->data;
    if (!g->t_measure) {
        g->t_measure = clock_mono_ns();
        if (g->o->duration_ms)
            uv_timer_start(&g->phase, on_phase, g->o->duration_ms, 0);
        return;
    }
    stop(g);
}

static void close_conn_walk(uv_handle_t *h, void *arg)
{
    gen *g = arg;
    if (h == (uv_handle_t *)&g->phase || h == (uv_handle_t *)&g->watchdog) {
        if (!uv_is_closing(h))
            uv_close(h, NULL);
        return;
    }
    if (h->type == UV_TCP)
        conn_close(h->data);
}

/* Requests that never answer (a stuck server) become errors instead of
 * holding the run forever. */
static void on_watchdog(uv_timer_t *t)
{
    gen *g = t->data;
    if (g->done) {
        uv_walk(&g->loop, close_conn_walk, g);
        return;
    }
    (void)g;
}

static void check_timeouts(uv_handle_t *h, void *arg)
{
    gen *g = arg;
    if (h->type != UV_TCP || uv_is_closing(h))
        return;
    conn *c = h->data;
    uint64_t now = clock_mono_ns();
    if (c->t_start && now - c->t_start > (uint64_t)g->o->timeout_ms * 1000000ull) {
        count(g, c, false);
        conn_close(c);
    }
}

static void on_tick(uv_timer_t *t)
{
    gen *g = t->data;
    uv_walk(&g->loop, check_timeouts, g);
    on_watchdog(t);
}

int bench_load_run(const bench_load_opts *o, bench_load_result *r, err *e)
{
    memset(r, 0, sizeof *r);
    if (o->connections < 1 || (!o->duration_ms && !o->max_requests))
        return err_set(e, -EINVAL, "load generator: connections and a duration or a request count are needed");
    gen g = {.o = o, .r = r};
    int rc = uv_loop_init(&g.loop);
    if (rc != 0)
        return err_set(e, rc, "uv_loop_init: %s", uv_strerror(rc));
    uv_ip4_addr("127.0.0.1", o->port, &g.addr);
    g.request = xasprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: atoll-bench\r\n\r\n", o->path, o->host);
    g.request_len = strlen(g.request);
    uv_timer_init(&g.loop, &g.phase);
    uv_timer_init(&g.loop, &g.watchdog);
    g.phase.data = g.watchdog.data = &g;
    if (o->warmup_ms)
        uv_timer_start(&g.phase, on_phase, o->warmup_ms, 0);
    else
        on_phase(&g.phase);
    uv_timer_start(&g.watchdog, on_tick, 50, 50);
    for (int i = 0; i < o->connections; i++)
        conn_open(&g);
    /* Runs until stop() and the watchdog have closed every handle. */
    while (uv_run(&g.loop, UV_RUN_ONCE) != 0) {
        if (g.done && !uv_is_closing((uv_handle_t *)&g.watchdog))
            uv_walk(&g.loop, close_conn_walk, &g);
    }
    /* The loop also ends once stop() left only stopped timers: close what
     * is left so that the loop (and its memory) can be closed. */
    g.done = true;
    uv_walk(&g.loop, close_conn_walk, &g);
    uv_run(&g.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&g.loop) != 0)
        abort(); /* a handle left open is a bug here, not a condition */
    free(g.request);
    r->rps = r->elapsed_s > 0 ? (double)r->ok / r->elapsed_s : 0;
    return 0;
}

void bench_load_result_free(bench_load_result *r)
{
    free(r->lat_ms);
    r->lat_ms = NULL;
    r->n_lat = 0;
}
