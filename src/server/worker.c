/* A worker process of `atoll serve` (see worker.h): the request path —
 * route, find or start the tenant's isolate, dispatch, log. */
#include "server/worker.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/file.h"
#include "core/log.h"
#include "core/map.h"
#include "http/server.h"
#include "js/api/kv.h"
#include "js/isolate.h"
#include "kv/kv.h"
#include "sandbox/sandbox.h"
#include "server/cron.h"
#include "server/tenants.h"
#include "server/tier_container.h"
#include "server/tier_wasm.h"
#include "http/proxy.h"

#define METRICS_EVERY_MS 1000

typedef struct worker {
    const atoll_config *cfg;
    const worker_options *opt;
    uv_loop_t loop;
    http_server *http;
    tenant_table *tenants;
    uv_signal_t sigterm, sigint;
    uv_fs_event_t journal_watch;
    uv_timer_t metrics_timer;
    uv_timer_t cron_timer;     /* at each minute, in the process that runs triggers */
    cron_clock cron_clock;     /* which minute the cron timer's next tick runs */
    char *metrics_path;
    uint64_t published_generation;
    http_proxy_upstream *containers; /* the containers process, for container tenants */
    map cordons;               /* cordon name -> http_proxy_upstream of its process */
    bool draining;
    /* Access-log lines of this loop iteration, written together once its
     * I/O is handled: one write for many requests instead of one each. */
    buf access_lines;
    uv_check_t access_flush;
    int pid;
} worker;

/* One request in flight: wraps the server's writer to log and account. */
typedef struct exchange {
    http_writer w;
    http_writer *inner;
    worker *wk;
    tenant *t;             /* NULL when no route matched */
    iso *worker;           /* the isolate answering, for its accounting */
    uint64_t cpu_ns;
    http_request *req;
    uint64_t started_ns;
    uint64_t bytes_out;
    int status;
    bool cold;
    bool forwarded;        /* answered by another process: counted there */
} exchange;

/* The containers process, which runs the container tenants. */
static void open_containers(worker *wk)
{
    char *sock = containers_socket_path(wk->cfg);
    http_proxy_opts po;
    http_proxy_opts_defaults(&po);
    po.header_timeout_ms = 60000; /* includes a container's start */
    err e;
    err_clear(&e);
    if (http_proxy_upstream_unix(&wk->loop, sock, &po, &wk->containers, &e) != 0)
        log_error("worker: containers process: %s", e.msg);
    free(sock);
}

char *worker_cordon_socket(const atoll_config *cfg, const char *cordon)
{
    return xasprintf("%s/run/cordon-%s.sock", cfg->state_dir, cordon);
}

char *worker_metrics_path(const atoll_config *cfg, const char *cordon, int index)
{
    return xasprintf("%s/metrics/%s-%d.json", cfg->state_dir, cordon ? cordon : "default", index);
}

/* Writes the batched access-log lines to stdout, in pieces of whole lines
 * of at most PIPE_BUF bytes: every worker process shares stdout, and a
 * write of up to PIPE_BUF bytes to a pipe is never interleaved with
 * another's, so lines stay whole. */
static void flush_access_log(worker *wk)
{
    buf *b = &wk->access_lines;
    size_t off = 0;
    while (off < b->len) {
        size_t end = off, limit = off + PIPE_BUF < b->len ? off + PIPE_BUF : b->len;
        for (size_t k = off; k < limit; k++)
            if (b->data[k] == '\n')
                end = k + 1;
        if (end == off) { /* a line longer than PIPE_BUF goes out alone */
            const char *nl = memchr(b->data + off, '\n', b->len - off);
            end = nl ? (size_t)(nl - b->data) + 1 : b->len;
        }
        while (off < end) {
            ssize_t n = write(STDOUT_FILENO, b->data + off, end - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) { /* stdout is gone or broken: the lines are dropped */
                buf_reset(b);
                return;
            }
            off += (size_t)n;
        }
    }
    buf_reset(b);
}

static void on_access_flush(uv_check_t *c)
{
    worker *wk = c->data;
    flush_access_log(wk);
    uv_check_stop(c);
}

/* Request body bytes: a streamed body counts what has come so far. */
static size_t bytes_in(const http_request *req)
{
    return req->stream ? (size_t)req->stream->received : req->body.len;
}

static void access_log(const exchange *ex)
{
    worker *wk = ex->wk;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    buf *line = &wk->access_lines;
    buf_printf(line, "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"tenant\":", tm.tm_year + 1900,
               tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    if (ex->t)
        buf_append_json_string(line, ex->t->cfg->name);
    else
        buf_append_str(line, "null");
    buf_append_str(line, ",\"method\":");
    buf_append_json_string(line, ex->req->method);
    buf_append_str(line, ",\"path\":");
    buf_append_json_string(line, ex->req->target);
    const char *limit = ex->worker && ex->status >= 503 ? iso_limit(ex->worker) : NULL;
    buf_printf(line, ",\"status\":%d,\"bytes_in\":%zu,\"bytes_out\":%" PRIu64 ",\"cpu_us\":%" PRIu64
                     ",\"wall_us\":%" PRIu64 ",\"cold\":%s,\"limit\":",
               ex->status, bytes_in(ex->req), ex->bytes_out, ex->cpu_ns / 1000,
               (clock_mono_ns() - ex->started_ns) / 1000, ex->cold ? "true" : "false");
    if (limit)
        buf_append_json_string(line, limit);
    else
        buf_append_str(line, "null");
    buf_printf(line, ",\"pid\":%d}\n", wk->pid);
    if (line->len >= 64 * 1024)
        flush_access_log(wk);
    else if (!uv_is_active((uv_handle_t *)&wk->access_flush))
        uv_check_start(&wk->access_flush, on_access_flush);
}

static int ex_start(http_writer *w, int status, const http_headers *headers, int64_t content_length)
{
    exchange *ex = (exchange *)w;
    ex->status = status;
    return ex->inner->start(ex->inner, status, headers, content_length);
}

static int ex_write(http_writer *w, const void *data, size_t len)
{
    exchange *ex = (exchange *)w;
    ex->bytes_out += len;
    return ex->inner->write(ex->inner, data, len);
}

/* Ends the exchange: `aborted` when the response must not be taken for
 * complete (a stream failed mid-body). */
static void ex_finish(exchange *ex, bool aborted)
{
    if (ex->worker)
        ex->cpu_ns = iso_request_cpu_ns(ex->worker, &ex->w); /* valid until the end */
    if (ex->wk->opt->access_log)
        access_log(ex);
    if (ex->t && !ex->forwarded) {
        ex->t->stats->bytes_in += bytes_in(ex->req);
        ex->t->stats->bytes_out += ex->bytes_out;
        ex->t->stats->cpu_ns += ex->cpu_ns;
    }
    if (aborted)
        http_writer_abort(ex->inner);
    else
        ex->inner->end(ex->inner); /* req is gone after this */
    if (ex->t && ex->forwarded)
        tenants_forwarded(ex->wk->tenants, ex->t);
    else if (ex->t)
        tenants_release(ex->wk->tenants, ex->t, ex->worker, aborted && ex->status < 500 ? 502 : ex->status);
    free(ex);
}

static void ex_end(http_writer *w)
{
    ex_finish((exchange *)w, false);
}

static void ex_abort(http_writer *w)
{
    ex_finish((exchange *)w, true);
}

static size_t ex_queued(http_writer *w)
{
    return http_writer_queued(((exchange *)w)->inner);
}

/* Another process answers a cordon's tenants and container tenants: their
 * bodies stream through this one as they arrive (the proxy forwards them
 * with backpressure), under the tenant's limit counted as bytes flow. The
 * isolates' tiers get the whole body. */
static bool stream_body(void *data, const http_request *req, size_t *max_body)
{
    worker *wk = data;
    if (!wk->tenants)
        return false;
    const char *host = http_headers_get(&req->headers, "host");
    tenant *t = tenants_route(wk->tenants, host ? host : "", req->target);
    if (!t)
        return false;
    /* The tenant's own limit, also for the bodies that are buffered: a
     * Content-Length over it is refused before the client sends the body. */
    size_t limit = (size_t)t->cfg->limits.max_body_mb << 20;
    if (limit < *max_body)
        *max_body = limit;
    return (t->cfg->cordon && !wk->opt->cordon) || t->cfg->tier == TIER_CONTAINER;
}

static void on_request(void *data, http_request *req, http_writer *w)
{
    worker *wk = data;
    exchange *ex = xcalloc(1, sizeof *ex);
    ex->w = (http_writer){.start = ex_start, .write = ex_write, .end = ex_end, .abort = ex_abort, .queued = ex_queued};
    ex->inner = w;
    ex->wk = wk;
    ex->req = req;
    ex->started_ns = clock_mono_ns();

    const char *host = http_headers_get(&req->headers, "host");
    tenant *t = tenants_route(wk->tenants, host ? host : "", req->target);
    ex->t = t;
    if (!t) {
        http_writer_error(&ex->w, 404, "No worker is routed for this host and path.");
        return;
    }
    size_t limit = (size_t)t->cfg->limits.max_body_mb << 20;
    if (req->body.len > limit || (req->stream && req->stream->length > (int64_t)limit)) {
        http_writer_error(&ex->w, 413, "The request body is over this worker's limit (limits.max_body_mb).");
        return;
    }
    if (t->cfg->cordon && !wk->opt->cordon) {
        /* Another process group runs this tenant: never this process. */
        http_proxy_upstream *up = map_get(&wk->cordons, t->cfg->cordon);
        http_proxy_req_opts ro = {.proto = "http"};
        err e;
        err_clear(&e);
        ex->forwarded = true;
        if (!up || http_proxy_forward(up, req, &ex->w, &ro, &e) != 0)
            http_writer_error(&ex->w, 502, "The worker's cordon has no running process.");
        return;
    }
    if (t->cfg->tier == TIER_CONTAINER) {
        /* The containers process runs it; only that socket trusts this header. */
        http_headers_remove(&req->headers, "atoll-tenant");
        http_headers_add_str(&req->headers, "Atoll-Tenant", t->cfg->name);
        err e;
        err_clear(&e);
        http_proxy_req_opts ro = {.proto = "http"};
        if (!wk->containers)
            open_containers(wk); /* the first container tenant came by a deploy */
        if (!wk->containers || http_proxy_forward(wk->containers, req, &ex->w, &ro, &e) != 0)
            http_writer_error(&ex->w, 502, "The container tier is not available.");
        return;
    }
    if (t->wasm) {
        tier_wasm_dispatch(t->wasm, req, &ex->w, &ex->cold);
        if (ex->cold)
            t->stats->cold_starts++;
        return;
    }
    err e;
    err_clear(&e);
    if (tenants_isolate(wk->tenants, t, &ex->cold, &e) != 0) {
        log_error("tenant %s: load %s: %s", t->cfg->name, t->cfg->main, e.msg);
        http_writer_error(&ex->w, 500, "The worker failed to load; the error is in the server log.");
        return;
    }
    ex->worker = t->live;
    iso_dispatch(t->live, req, &ex->w);
}

static void publish_metrics(worker *wk, bool always)
{
    /* Building the counters of thousands of tenants costs: only when something changed. */
    uint64_t gen = tenants_generation(wk->tenants);
    if (!always && gen == wk->published_generation)
        return;
    wk->published_generation = gen;
    buf b;
    buf_init(&b, 64u << 20);
    tenants_metrics_json(wk->tenants, &b);
    err e;
    if (b.data && file_replace(wk->metrics_path, b.data, b.len, &e) != 0)
        log_warn("metrics: %s", e.msg);
    buf_free(&b);
}

static void on_metrics_timer(uv_timer_t *t)
{
    publish_metrics(t->data, false);
}

/* Cron triggers fire once per deployment, not once per process: only the
 * first worker process of the default group runs them. */
static void schedule_cron_tick(worker *wk);

static void on_cron_tick(uv_timer_t *t)
{
    worker *wk = t->data;
    time_t minute = cron_clock_due(&wk->cron_clock, time(NULL));
    if (minute != (time_t)-1) /* else an early tick: it waits for the boundary */
        tenants_run_crons(wk->tenants, minute);
    schedule_cron_tick(wk);
}

static void schedule_cron_tick(worker *wk)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    uv_update_time(&wk->loop); /* the timer counts from the loop's cached time */
    uv_timer_start(&wk->cron_timer, on_cron_tick, cron_clock_delay_ms(&wk->cron_clock, now_ms), 0);
}

static void on_journal_change(uv_fs_event_t *h, const char *filename, int events, int status)
{
    worker *wk = h->data;
    if (status == 0 && filename && strcmp(filename, "journal") == 0)
        tenants_follow_journal(wk->tenants);
}

static void on_drained(void *data)
{
    worker *wk = data;
    uv_stop(&wk->loop);
}

static void on_signal(uv_signal_t *s, int signum)
{
    worker *wk = s->data;
    if (wk->draining)
        return;
    wk->draining = true;
    http_server_drain(wk->http, on_drained, wk);
}

#ifdef ATOLL_TEST_HOOKS
#include <sys/socket.h>
#include <sys/wait.h>
/* Test builds only (make test): proves the seccomp filter is in effect in a
 * live worker, from inside it, when ATOLL_TEST_SANDBOX_PROBE is set:
 * "eperm" makes calls outside the allow-list and logs each outcome;
 * "execve" makes a call that must kill the process (SIGSYS). */
static void sandbox_probe(const char *what)
{
    if (!what)
        return;
    if (strcmp(what, "execve") == 0) {
        char *argv[] = {"/bin/true", NULL};
        execve("/bin/true", argv, NULL);
        log_error("sandbox probe: execve returned: %s", strerror(errno));
        return;
    }
    static const char *const names[] = {"getsid", "socket(AF_PACKET)", "socket(AF_NETLINK)", "fork", "kill(1)"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        long rc;
        errno = 0;
        switch (k) {
        case 0: rc = getsid(0); break;
        case 1: rc = socket(AF_PACKET, SOCK_RAW, 0); break;
        case 2: rc = socket(AF_NETLINK, SOCK_RAW, 0); break;
        case 3: rc = fork(); break;
        default: rc = kill(1, 0); break;
        }
        if (rc == 0 && k == 3)
            _exit(0); /* the child of a fork that should have failed */
        if (rc >= 0) {
            log_error("sandbox probe: allowed %s", names[k]);
            if (k == 1 || k == 2)
                close((int)rc);
            if (k == 3)
                waitpid((pid_t)rc, NULL, 0);
        } else {
            log_info("sandbox probe: %s refused: %s", names[k], errno == EPERM ? "EPERM" : strerror(errno));
        }
    }
}
#endif

static void close_if_open(uv_handle_t *h)
{
    if (h->loop && !uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_kv_closed(void *data)
{
    *(bool *)data = true;
}

int worker_main(const atoll_config *cfg, const worker_options *opt)
{
    worker wk = {.cfg = cfg, .opt = opt, .published_generation = UINT64_MAX};
    map_init(&wk.cordons);
    const char *group = opt->cordon ? opt->cordon : "default";
    /* WebAssembly instances run on libuv's thread pool and may sleep up to
     * their wall limit: more threads than libuv's default four. */
    setenv("UV_THREADPOOL_SIZE", "16", 0);
    if (uv_loop_init(&wk.loop) != 0) {
        log_error("worker %s/%d: cannot create an event loop", group, opt->index);
        return 1;
    }
    kv_store *kv = NULL;
    bool kv_closed = false;
    wk.metrics_path = worker_metrics_path(cfg, opt->cordon, opt->index);
    wk.pid = (int)getpid();
    buf_init(&wk.access_lines, SIZE_MAX);
    uv_check_init(&wk.loop, &wk.access_flush);
    wk.access_flush.data = &wk;

    http_server_config hc;
    http_server_config_defaults(&hc);
    uint64_t max_body_mb = 100;
    for (size_t i = 0; i < cfg->nworkers; i++)
        if (cfg->workers[i].limits.max_body_mb > max_body_mb)
            max_body_mb = cfg->workers[i].limits.max_body_mb;
    hc.max_body_bytes = (size_t)max_body_mb << 20;
    hc.stream_body = stream_body;
    err e;
    err_clear(&e);
    int status = 1;
    int lrc = http_server_new(&wk.loop, &hc, on_request, &wk, &wk.http, &e);
    if (lrc == 0 && opt->cordon) {
        /* A cordon's process is reached only through the default group. */
        char *sock = worker_cordon_socket(cfg, opt->cordon);
        lrc = http_server_listen_unix(wk.http, sock, 0600, &e);
        free(sock);
    } else if (lrc == 0) {
        lrc = http_server_listen(wk.http, cfg->listen_ip, cfg->listen_port, &e);
    }
    if (lrc != 0) {
        log_error("worker %s/%d: %s", group, opt->index, e.msg);
        goto done;
    }
    if (!opt->cordon) {
        for (size_t i = 0; i < cfg->nworkers; i++) {
            const char *c = cfg->workers[i].cordon;
            if (!c || map_get(&wk.cordons, c))
                continue;
            char *sock = worker_cordon_socket(cfg, c);
            http_proxy_opts po;
            http_proxy_opts_defaults(&po);
            po.header_timeout_ms = 60000;
            http_proxy_upstream *up = NULL;
            if (http_proxy_upstream_unix(&wk.loop, sock, &po, &up, &e) == 0)
                map_put(&wk.cordons, c, up);
            else
                log_error("worker %s/%d: cordon %s: %s", group, opt->index, c, e.msg);
            free(sock);
        }
    }
    if (containers_needed(cfg))
        open_containers(&wk);
    /* Deploys: the admin process appends to the journal in the state directory. */
    uv_fs_event_init(&wk.loop, &wk.journal_watch);
    wk.journal_watch.data = &wk;
    int rc = uv_fs_event_start(&wk.journal_watch, on_journal_change, cfg->state_dir, 0);
    if (rc != 0)
        log_warn("worker %s/%d: cannot watch %s for deploys: %s", group, opt->index, cfg->state_dir, uv_strerror(rc));
    if (opt->sandbox) {
        sandbox_options so;
        sandbox_options_defaults(&so);
        so.uid = cfg->worker_uid;
        so.gid = cfg->worker_gid;
        so.allow_inotify = true;
        const char *writable[] = {cfg->state_dir, NULL};
        so.writable = writable;
        const char *skipped = NULL;
        if (sandbox_enter(&so, &skipped, &e) != 0) {
            log_error("worker %s/%d: %s", group, opt->index, e.msg);
            goto done;
        }
        if (skipped && opt->index == 0)
            log_warn("sandbox: skipped %s", skipped);
    }
#ifdef ATOLL_TEST_HOOKS
    sandbox_probe(getenv("ATOLL_TEST_SANDBOX_PROBE"));
#endif
    /* Only now may threads start (the KV store's, libuv's pool): the
     * sandbox must be entered while this process has a single thread. One
     * KV store per process, shared by its tenants' bindings. */
    kv_config kc = {.state_dir = cfg->state_dir, .redis_url = cfg->kv_redis, .min_ttl = (unsigned)cfg->kv_min_ttl};
    err ke;
    err_clear(&ke);
    jsapi_kv_register();
    if (kv_open(&wk.loop, &kc, &kv, &ke) != 0)
        log_error("worker %s/%d: %s; KV bindings will not load", group, opt->index, ke.msg);
    wk.tenants = tenants_new(&wk.loop, cfg, opt->cordon, kv);
    tenants_follow_journal(wk.tenants);
    uv_timer_init(&wk.loop, &wk.metrics_timer);
    wk.metrics_timer.data = &wk;
    uv_timer_start(&wk.metrics_timer, on_metrics_timer, 0, METRICS_EVERY_MS);
    uv_unref((uv_handle_t *)&wk.metrics_timer);
    uv_timer_init(&wk.loop, &wk.cron_timer);
    wk.cron_timer.data = &wk;
    if (opt->index == 0) { /* each group's first process runs its tenants' triggers */
        cron_clock_init(&wk.cron_clock, time(NULL));
        schedule_cron_tick(&wk);
        uv_unref((uv_handle_t *)&wk.cron_timer);
    }
    uv_signal_init(&wk.loop, &wk.sigterm);
    uv_signal_init(&wk.loop, &wk.sigint);
    wk.sigterm.data = wk.sigint.data = &wk;
    uv_signal_start(&wk.sigterm, on_signal, SIGTERM);
    uv_signal_start(&wk.sigint, on_signal, SIGINT);
    uv_run(&wk.loop, UV_RUN_DEFAULT);
    publish_metrics(&wk, true);
    status = 0;

done:
    flush_access_log(&wk);
    close_if_open((uv_handle_t *)&wk.access_flush);
    close_if_open((uv_handle_t *)&wk.sigterm);
    close_if_open((uv_handle_t *)&wk.sigint);
    close_if_open((uv_handle_t *)&wk.metrics_timer);
    close_if_open((uv_handle_t *)&wk.cron_timer);
    close_if_open((uv_handle_t *)&wk.journal_watch);
    if (wk.tenants)
        tenants_free(wk.tenants);
    if (wk.containers)
        http_proxy_upstream_free(wk.containers);
    {
        size_t pos = 0;
        void *up;
        while (map_next(&wk.cordons, &pos, NULL, &up))
            http_proxy_upstream_free(up);
        map_free(&wk.cordons);
    }
    /* Puts already accepted are committed (or fail) before the store goes. */
    if (kv) {
        kv_close(kv, on_kv_closed, &kv_closed);
        while (!kv_closed)
            uv_run(&wk.loop, UV_RUN_ONCE);
    }
    uv_run(&wk.loop, UV_RUN_NOWAIT);
    if (wk.http)
        http_server_free(wk.http);
    uv_run(&wk.loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&wk.loop) != 0)
        log_debug("worker %s/%d: loop still had handles", group, opt->index);
    flush_access_log(&wk); /* lines of requests that ended while closing */
    buf_free(&wk.access_lines);
    free(wk.metrics_path);
    return status;
}
