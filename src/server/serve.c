/* The multi-tenant server (see serve.h): the worker process's request path
 * — route, find or start the tenant's isolate, dispatch, log — and the
 * glue that runs N of them under the supervisor. */
#include "server/serve.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>
#include <uv.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "http/server.h"
#include "js/isolate.h"
#include "sandbox/sandbox.h"
#include "server/router.h"
#include "server/supervisor.h"

typedef struct tenant {
    const tenant_config *cfg;
    iso *live;                 /* NULL until its first request, or after a discard */
    iso_options iso_opts;
    struct retired_iso *retired;
    uint64_t requests, errors, cold_starts;
} tenant;

typedef struct retired_iso {
    iso *worker;
    struct retired_iso *next;
} retired_iso;

typedef struct worker {
    const atoll_config *cfg;
    const serve_options *opt;
    int index;
    uv_loop_t *loop;
    http_server *http;
    router *routes;
    tenant *tenants;
    size_t ntenants;
    uv_signal_t sigterm, sigint;
    uv_timer_t sweep;      /* frees retired isolates outside their own callbacks */
    bool draining;
} worker;

/* One request in flight: wraps the server's writer to log and account. */
typedef struct exchange {
    http_writer w;
    http_writer *inner;
    worker *wk;
    tenant *t;             /* NULL when no route matched */
    http_request *req;
    uint64_t started_ns;
    uint64_t bytes_out;
    int status;
    bool cold;
} exchange;

static void sweep_retired(tenant *t)
{
    for (retired_iso **p = &t->retired; *p;) {
        retired_iso *r = *p;
        if (iso_inflight(r->worker) == 0) {
            iso_free(r->worker);
            *p = r->next;
            free(r);
        } else {
            p = &r->next;
        }
    }
}

/* Takes the isolate out of service; requests still in it finish first. */
static void retire_isolate(tenant *t)
{
    if (!t->live)
        return;
    retired_iso *r = xmalloc(sizeof *r);
    r->worker = t->live;
    r->next = t->retired;
    t->retired = r;
    t->live = NULL;
}

static void append_json_string(buf *b, const char *s)
{
    buf_append_str(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            buf_printf(b, "\\%c", c);
        else if (c < 0x20)
            buf_printf(b, "\\u%04x", c);
        else
            buf_append(b, s, 1);
    }
    buf_append_str(b, "\"");
}

static void access_log(const exchange *ex)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    buf line;
    buf_init(&line, 1 << 20);
    buf_printf(&line, "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"tenant\":", tm.tm_year + 1900,
               tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    if (ex->t)
        append_json_string(&line, ex->t->cfg->name);
    else
        buf_append_str(&line, "null");
    buf_append_str(&line, ",\"method\":");
    append_json_string(&line, ex->req->method);
    buf_append_str(&line, ",\"path\":");
    append_json_string(&line, ex->req->target);
    buf_printf(&line, ",\"status\":%d,\"bytes_in\":%zu,\"bytes_out\":%" PRIu64 ",\"wall_us\":%" PRIu64
                      ",\"cold\":%s,\"pid\":%d}\n",
               ex->status, ex->req->body.len, ex->bytes_out, (clock_mono_ns() - ex->started_ns) / 1000,
               ex->cold ? "true" : "false", (int)getpid());
    fwrite(line.data, 1, line.len, stdout);
    fflush(stdout);
    buf_free(&line);
}

static void on_sweep(uv_timer_t *timer)
{
    worker *wk = timer->data;
    for (size_t i = 0; i < wk->ntenants; i++)
        sweep_retired(&wk->tenants[i]);
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

/* The response is over: ended, or aborted (its body failed half-way). */
static void ex_finish(exchange *ex, bool aborted)
{
    tenant *t = ex->t;
    if (ex->wk->opt->access_log)
        access_log(ex);
    if (aborted)
        http_writer_abort(ex->inner);
    else
        ex->inner->end(ex->inner); /* req is gone after this */
    if (t) {
        if (ex->status >= 500 || aborted)
            t->errors++;
        /* A limit violation discards the isolate; the next request starts afresh. */
        if (t->live && iso_broken(t->live)) {
            log_warn("tenant %s: isolate discarded after a limit violation", t->cfg->name);
            retire_isolate(t);
        }
        /* This may run inside the isolate's own call stack (it answered from
         * JS), so retired isolates are freed from the loop, never here. */
        if (t->retired && !uv_is_active((uv_handle_t *)&ex->wk->sweep))
            uv_timer_start(&ex->wk->sweep, on_sweep, 0, 0);
    }
    free(ex);
}

static void ex_end(http_writer *w) { ex_finish((exchange *)w, false); }
static void ex_abort(http_writer *w) { ex_finish((exchange *)w, true); }
static size_t ex_pending(http_writer *w) { return http_writer_pending(((exchange *)w)->inner); }

static void on_request(void *data, http_request *req, http_writer *w)
{
    worker *wk = data;
    exchange *ex = xcalloc(1, sizeof *ex);
    ex->w = (http_writer){.start = ex_start, .write = ex_write, .end = ex_end, .abort = ex_abort,
                          .pending = ex_pending};
    ex->inner = w;
    ex->wk = wk;
    ex->req = req;
    ex->started_ns = clock_mono_ns();

    const char *host = http_headers_get(&req->headers, "host");
    tenant *t = router_match(wk->routes, host ? host : "", req->target);
    ex->t = t;
    if (!t) {
        http_writer_error(&ex->w, 404, "No worker is routed for this host and path.");
        return;
    }
    t->requests++;
    if (req->body.len > t->cfg->limits.max_body_mb * 1024 * 1024) {
        http_writer_error(&ex->w, 413, "The request body is over this worker's limit (limits.max_body_mb).");
        return;
    }
    if (!t->live) {
        err e;
        err_clear(&e);
        if (iso_new(wk->loop, t->cfg->main, &t->iso_opts, &t->live, &e) != 0) {
            log_error("tenant %s: load %s: %s", t->cfg->name, t->cfg->main, e.msg);
            t->live = NULL;
            http_writer_error(&ex->w, 500, "The worker failed to load; the error is in the server log.");
            return;
        }
        t->cold_starts++;
        ex->cold = true;
    }
    iso_dispatch(t->live, req, &ex->w);
}

static void on_drained(void *data)
{
    worker *wk = data;
    uv_stop(wk->loop);
}

static void on_signal(uv_signal_t *s, int signum)
{
    worker *wk = s->data;
    if (wk->draining)
        return;
    wk->draining = true;
    http_server_drain(wk->http, on_drained, wk);
}

void serve_options_defaults(serve_options *opt)
{
    opt->sandbox = true;
    opt->access_log = true;
}

static void build_tenants(worker *wk)
{
    const atoll_config *cfg = wk->cfg;
    wk->routes = router_new();
    wk->tenants = xcalloc(cfg->nworkers, sizeof *wk->tenants);
    for (size_t i = 0; i < cfg->nworkers; i++) {
        const tenant_config *tc = &cfg->workers[i];
        if (tc->tier != TIER_JS)
            continue; /* other tiers are served by their own issue's code */
        tenant *t = &wk->tenants[wk->ntenants++];
        t->cfg = tc;
        iso_options_defaults(&t->iso_opts);
        t->iso_opts.name = tc->name;
        t->iso_opts.memory_limit = (size_t)tc->limits.memory_mb * 1024 * 1024;
        t->iso_opts.cpu_ms = tc->limits.cpu_ms;
        t->iso_opts.wall_ms = tc->limits.wall_ms;
        for (size_t r = 0; r < tc->nroutes; r++) {
            err e;
            if (router_add(wk->routes, tc->routes[r], t, &e) != 0)
                log_error("tenant %s: %s", tc->name, e.msg); /* validated at load: not reached */
        }
    }
}

int serve_worker(const atoll_config *cfg, const serve_options *opt, int index)
{
    worker wk = {.cfg = cfg, .opt = opt, .index = index};
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        log_error("worker %d: cannot create an event loop", index);
        return 1;
    }
    wk.loop = &loop;
    build_tenants(&wk);

    http_server_config hc;
    http_server_config_defaults(&hc);
    uint64_t max_body_mb = 1;
    for (size_t i = 0; i < cfg->nworkers; i++)
        if (cfg->workers[i].limits.max_body_mb > max_body_mb)
            max_body_mb = cfg->workers[i].limits.max_body_mb;
    hc.max_body_bytes = (size_t)max_body_mb * 1024 * 1024;
    err e;
    err_clear(&e);
    int status = 1;
    if (http_server_new(&loop, &hc, on_request, &wk, &wk.http, &e) != 0 ||
        http_server_listen(wk.http, cfg->listen_ip, cfg->listen_port, &e) != 0) {
        log_error("worker %d: %s", index, e.msg);
        goto done;
    }
    if (opt->sandbox) {
        sandbox_options so;
        sandbox_options_defaults(&so);
        so.uid = cfg->worker_uid;
        so.gid = cfg->worker_gid;
        const char *writable[] = {cfg->state_dir, NULL};
        so.writable = writable;
        const char *skipped = NULL;
        if (sandbox_enter(&so, &skipped, &e) != 0) {
            log_error("worker %d: %s", index, e.msg);
            goto done;
        }
        if (skipped && index == 0)
            log_warn("sandbox: skipped %s", skipped);
    }
    uv_timer_init(&loop, &wk.sweep);
    wk.sweep.data = &wk;
    uv_signal_init(&loop, &wk.sigterm);
    uv_signal_init(&loop, &wk.sigint);
    wk.sigterm.data = wk.sigint.data = &wk;
    uv_signal_start(&wk.sigterm, on_signal, SIGTERM);
    uv_signal_start(&wk.sigint, on_signal, SIGINT);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&wk.sigterm, NULL);
    uv_close((uv_handle_t *)&wk.sigint, NULL);
    uv_close((uv_handle_t *)&wk.sweep, NULL);
    status = 0;

done:
    for (size_t i = 0; i < wk.ntenants; i++) {
        tenant *t = &wk.tenants[i];
        if (t->live)
            iso_free(t->live);
        for (retired_iso *r = t->retired, *next; r; r = next) {
            next = r->next;
            iso_free(r->worker);
            free(r);
        }
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    if (wk.http)
        http_server_free(wk.http);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
    router_free(wk.routes);
    free(wk.tenants);
    return status;
}

typedef struct run_ctx {
    const atoll_config *cfg;
    const serve_options *opt;
} run_ctx;

static int run_group_worker(const supervisor_group *g, int index, void *data)
{
    run_ctx *rc = data;
    return serve_worker(rc->cfg, rc->opt, index);
}

int serve_run(const atoll_config *cfg, const serve_options *opt, err *e)
{
    /* The state directory is the one place workers may write. */
    if (mkdir(cfg->state_dir, 0750) != 0 && errno != EEXIST)
        return err_set(e, -errno, "create the state directory %s: %s", cfg->state_dir, strerror(errno));
    if (geteuid() == 0 && chown(cfg->state_dir, cfg->worker_uid, cfg->worker_gid) != 0)
        return err_set(e, -errno, "chown the state directory %s: %s", cfg->state_dir, strerror(errno));
    run_ctx ctx = {.cfg = cfg, .opt = opt};
    supervisor_group group = {.name = "default", .processes = cfg->processes, .run = run_group_worker, .data = &ctx};
    log_info("atoll serve: %zu worker(s) on http://%s:%d/ in %d process(es)", cfg->nworkers, cfg->listen_ip,
             cfg->listen_port, cfg->processes);
    fflush(NULL);
    return supervisor_run(&group, 1, e);
}
