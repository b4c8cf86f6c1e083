/* The development server for `atoll dev` (see devserver.h). */
#include "server/devserver.h"

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"

/* Bounds the number of directories watched, so a worker placed at the top
 * of a huge tree cannot exhaust inotify watches. */
#define MAX_WATCHED_DIRS 256
#define RELOAD_DEBOUNCE_MS 50
#define RETIRED_SWEEP_MS 100

typedef struct retired {
    iso *worker;
    struct retired *next;
} retired;

typedef struct devserver {
    const devserver_options *opt;
    uv_loop_t *loop;
    http_server *http;
    iso *worker;          /* NULL while the worker fails to load */
    char *load_error;     /* why worker is NULL */
    retired *retired;     /* replaced isolates waiting for their requests to end */
    uv_signal_t sigint, sigterm;
    uv_timer_t reload_timer, sweep_timer;
    uv_fs_event_t *watchers;
    size_t nwatchers;
    bool draining;
} devserver;

/* Wraps the server's writer to log the request and to know when an isolate
 * has no more requests in flight. */
typedef struct exchange {
    http_writer w;
    http_writer *inner;
    devserver *dev;
    http_request *req;
    uint64_t started_ns;
    int status;
} exchange;

static void load_worker(devserver *dev, bool reload)
{
    iso *fresh = NULL;
    err e;
    err_clear(&e);
    if (iso_new(dev->loop, dev->opt->script, &dev->opt->isolate, &fresh, &e) != 0) {
        log_error("%s %s: %s", reload ? "reload failed, still serving the previous version" : "load failed",
                  dev->opt->script, e.msg);
        if (!dev->worker) {
            free(dev->load_error);
            dev->load_error = xstrdup(e.msg);
        }
        return;
    }
    if (dev->worker) {
        retired *r = xmalloc(sizeof *r);
        r->worker = dev->worker;
        r->next = dev->retired;
        dev->retired = r;
    }
    dev->worker = fresh;
    free(dev->load_error);
    dev->load_error = NULL;
    if (reload)
        log_info("reloaded %s", dev->opt->script);
}

/* Frees replaced isolates once nothing runs in them any more. */
static void sweep_retired(devserver *dev, bool force)
{
    for (retired **p = &dev->retired; *p;) {
        retired *r = *p;
        if (force || iso_inflight(r->worker) == 0) {
            iso_free(r->worker);
            *p = r->next;
            free(r);
        } else {
            p = &r->next;
        }
    }
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
    return ex->inner->write(ex->inner, data, len);
}

static void ex_finish(exchange *ex, bool aborted);

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

/* Ends the exchange: `aborted` when the response must not be taken for
 * complete (a stream failed mid-body). */
static void ex_finish(exchange *ex, bool aborted)
{
    devserver *dev = ex->dev;
    double ms = (double)(clock_mono_ns() - ex->started_ns) / 1e6;
    if (dev->opt->log_requests)
        log_info("%s %s %d %.2fms", ex->req->method, ex->req->target, ex->status, ms);
    if (aborted)
        http_writer_abort(ex->inner);
    else
        ex->inner->end(ex->inner); /* req is no longer valid after this */
    free(ex);
    /* A limit violation discards the isolate; the next request gets a fresh one. */
    if (dev->worker && iso_broken(dev->worker) && !dev->draining) {
        log_warn("discarding the isolate of %s after a limit violation", dev->opt->script);
        load_worker(dev, true);
    }
    /* Retired isolates are freed from the sweep timer, never here: this may
     * run inside the isolate's own call stack. */
}

static void on_request(void *data, http_request *req, http_writer *w)
{
    devserver *dev = data;
    exchange *ex = xcalloc(1, sizeof *ex);
    ex->w = (http_writer){.start = ex_start, .write = ex_write, .end = ex_end, .abort = ex_abort, .queued = ex_queued};
    ex->inner = w;
    ex->dev = dev;
    ex->req = req;
    ex->started_ns = clock_mono_ns();
    if (!dev->worker) {
        char *msg = xasprintf("The worker failed to load: %s", dev->load_error ? dev->load_error : "unknown error");
        http_writer_error(&ex->w, 500, msg);
        free(msg);
        return;
    }
    /* An isolate that broke a limit between requests (a timer or a
     * waitUntil after the response) is replaced before it would answer
     * this request with that limit's status. */
    if (iso_broken(dev->worker) && !dev->draining) {
        log_warn("discarding the isolate of %s after a limit violation between requests", dev->opt->script);
        load_worker(dev, true);
    }
    iso_dispatch(dev->worker, req, &ex->w);
}

static void on_reload_timer(uv_timer_t *t)
{
    devserver *dev = t->data;
    if (!dev->draining)
        load_worker(dev, true);
}

static void on_sweep_timer(uv_timer_t *t)
{
    sweep_retired(t->data, false);
}

static bool is_source_file(const char *name)
{
    static const char *const exts[] = {".js", ".mjs", ".cjs", ".json", ".wasm", ".txt", ".html"};
    const char *dot = name ? strrchr(name, '.') : NULL;
    if (!dot)
        return false;
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (strcmp(dot, exts[i]) == 0)
            return true;
    return false;
}

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    devserver *dev = h->data;
    if (status < 0 || !is_source_file(filename))
        return;
    /* Editors write a file in several steps; reload once they are done. */
    uv_timer_start(&dev->reload_timer, on_reload_timer, RELOAD_DEBOUNCE_MS, 0);
}

static void watch_tree(devserver *dev, const char *dir, int depth)
{
    if (dev->nwatchers >= MAX_WATCHED_DIRS || depth > 8)
        return;
    uv_fs_event_t *h = &dev->watchers[dev->nwatchers];
    uv_fs_event_init(dev->loop, h);
    h->data = dev;
    int rc = uv_fs_event_start(h, on_fs_event, dir, 0);
    if (rc != 0) {
        log_warn("cannot watch %s for changes: %s", dir, uv_strerror(rc));
        uv_close((uv_handle_t *)h, NULL);
        return;
    }
    dev->nwatchers++;
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (ent->d_name[0] == '.' || strcmp(ent->d_name, "node_modules") == 0)
            continue;
        char *path = xasprintf("%s/%s", dir, ent->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            watch_tree(dev, path, depth + 1);
        free(path);
    }
    closedir(d);
}

static void on_drained(void *data)
{
    devserver *dev = data;
    uv_stop(dev->loop);
}

static void on_signal(uv_signal_t *s, int signum)
{
    devserver *dev = s->data;
    if (dev->draining) {
        log_warn("second signal: exiting without waiting for in-flight requests");
        exit(1);
    }
    dev->draining = true;
    log_info("%s received: finishing in-flight requests", signum == SIGINT ? "SIGINT" : "SIGTERM");
    http_server_drain(dev->http, on_drained, dev);
}

void devserver_options_defaults(devserver_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->ip = "127.0.0.1";
    opt->port = 8787;
    opt->watch = true;
    opt->log_requests = true;
    iso_options_defaults(&opt->isolate);
    http_server_config_defaults(&opt->http);
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int devserver_run(const devserver_options *opt, err *e)
{
    devserver dev = {.opt = opt, .loop = uv_default_loop()};
    int rc = http_server_new(dev.loop, &opt->http, on_request, &dev, &dev.http, e);
    if (rc != 0)
        return rc;
    /* Not sharing the port with a running server through SO_REUSEPORT. */
    rc = http_server_probe_address(opt->ip, opt->port, e);
    if (rc == 0)
        rc = http_server_listen(dev.http, opt->ip, opt->port, e);
    if (rc != 0) {
        http_server_free(dev.http);
        return rc;
    }
    load_worker(&dev, false);

    uv_timer_init(dev.loop, &dev.reload_timer);
    uv_timer_init(dev.loop, &dev.sweep_timer);
    dev.reload_timer.data = dev.sweep_timer.data = &dev;
    uv_timer_start(&dev.sweep_timer, on_sweep_timer, RETIRED_SWEEP_MS, RETIRED_SWEEP_MS);
    uv_unref((uv_handle_t *)&dev.sweep_timer);
    uv_signal_init(dev.loop, &dev.sigint);
    uv_signal_init(dev.loop, &dev.sigterm);
    dev.sigint.data = dev.sigterm.data = &dev;
    uv_signal_start(&dev.sigint, on_signal, SIGINT);
    uv_signal_start(&dev.sigterm, on_signal, SIGTERM);

    dev.watchers = xcalloc(MAX_WATCHED_DIRS, sizeof *dev.watchers);
    if (opt->watch) {
        char *copy = xstrdup(opt->script);
        watch_tree(&dev, dirname(copy), 0);
        free(copy);
    }

    log_info("serving %s on http://%s:%d/%s", opt->script, opt->ip, http_server_port(dev.http),
             opt->watch ? " (reloading on change)" : "");
    uv_run(dev.loop, UV_RUN_DEFAULT);

    /* Drained: release everything, then let the close callbacks run. */
    for (size_t i = 0; i < dev.nwatchers; i++)
        close_handle((uv_handle_t *)&dev.watchers[i]);
    close_handle((uv_handle_t *)&dev.reload_timer);
    close_handle((uv_handle_t *)&dev.sweep_timer);
    close_handle((uv_handle_t *)&dev.sigint);
    close_handle((uv_handle_t *)&dev.sigterm);
    if (dev.worker)
        iso_free(dev.worker);
    sweep_retired(&dev, true);
    uv_run(dev.loop, UV_RUN_DEFAULT);
    http_server_free(dev.http);
    free(dev.watchers);
    free(dev.load_error);
    log_info("stopped");
    return 0;
}
