/* The containers process of `atoll serve` (see tier_container.h). */
#include "server/tier_container.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "container/container.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/file.h"
#include "core/log.h"
#include "core/map.h"
#include "http/proxy.h"
#include "http/server.h"

#define STOP_GRACE_MS 10000
#define READY_POLL_MS 20
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define LOG_LINE_MAX 8192

typedef enum { C_STOPPED, C_STARTING, C_RUNNING, C_STOPPING } ctr_state;

typedef struct pending {
    http_request *req;
    http_writer *w;
    struct pending *next;
} pending;

typedef struct ctenant {
    struct containers *owner;
    const tenant_config *tc;
    ctr_spec *spec;
    ctr *c;
    ctr_state state;
    http_proxy_upstream *up;
    char *sock_path;           /* socket-activation listener */
    uv_poll_t exit_poll;       /* the pidfd: readable when the container exits */
    bool exit_poll_open;
    uv_timer_t timer;          /* idle, readiness polling, stop grace */
    uv_pipe_t logs;            /* the container's stdout and stderr */
    bool logs_open;
    buf log_line;
    pending *queue, **queue_tail;
    size_t inflight;
    uint64_t ready_deadline_ms, started_ms, not_before_ms, backoff_ms;
} ctenant;

typedef struct containers {
    const atoll_config *cfg;
    uv_loop_t loop;
    http_server *http;
    map tenants;               /* name -> ctenant */
    uv_signal_t sigterm, sigint;
    bool stopping;
} containers;

typedef struct forward {
    ctenant *ct;
} forward;

static uint64_t now_ms(void)
{
    return clock_mono_ns() / 1000000u;
}

char *containers_socket_path(const atoll_config *cfg)
{
    return xasprintf("%s/run/containers.sock", cfg->state_dir);
}

bool containers_needed(const atoll_config *cfg)
{
    for (size_t i = 0; i < cfg->nworkers; i++)
        if (cfg->workers[i].tier == TIER_CONTAINER)
            return true;
    return false;
}

static void maybe_exit(containers *cs);

/* ---- the container's output, as tenant log lines ---- */

static void on_log_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    static char chunk[16384];
    b->base = chunk;
    b->len = sizeof chunk;
}

static void flush_log_line(ctenant *ct)
{
    if (ct->log_line.len)
        log_tenant(LOG_INFO, ct->tc->name, "%s", ct->log_line.data);
    buf_reset(&ct->log_line);
}

static void on_log_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    ctenant *ct = s->data;
    if (n < 0) {
        flush_log_line(ct);
        uv_read_stop(s);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (b->base[i] == '\n' || ct->log_line.len >= LOG_LINE_MAX)
            flush_log_line(ct);
        if (b->base[i] != '\n')
            buf_append(&ct->log_line, &b->base[i], 1);
    }
}

static void on_logs_closed(uv_handle_t *h)
{
    ctenant *ct = h->data;
    ct->logs_open = false;
    maybe_exit(ct->owner);
}

/* ---- start, readiness, exit, stop ---- */

static void fail_queue(ctenant *ct, int status, const char *msg)
{
    pending *p = ct->queue;
    ct->queue = NULL;
    ct->queue_tail = &ct->queue;
    while (p) {
        pending *next = p->next;
        http_writer_error(p->w, status, msg);
        free(p);
        p = next;
    }
}

static void on_forward_done(void *data, int status);

static void forward_now(ctenant *ct, http_request *req, http_writer *w)
{
    forward *f = xcalloc(1, sizeof *f);
    f->ct = ct;
    http_proxy_req_opts ro = {.proto = "http", .done = on_forward_done, .data = f};
    err e;
    err_clear(&e);
    ct->inflight++;
    uv_timer_stop(&ct->timer); /* busy: not idle */
    if (http_proxy_forward(ct->up, req, w, &ro, &e) != 0) {
        ct->inflight--;
        free(f);
        http_writer_error(w, 502, "The container could not be reached.");
    }
}

static void flush_queue(ctenant *ct)
{
    pending *p = ct->queue;
    ct->queue = NULL;
    ct->queue_tail = &ct->queue;
    while (p) {
        pending *next = p->next;
        forward_now(ct, p->req, p->w);
        free(p);
        p = next;
    }
}

/* Port mode: a TCP socket made inside the container's network namespace,
 * connected to its 127.0.0.1:PORT. The loop thread enters that namespace
 * only for the socket() call. */
static int open_in_container(void *data, int *out)
{
    ctenant *ct = data;
    if (!ct->c)
        return -ECONNREFUSED;
    int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self < 0)
        return -errno;
    int fd = -1, rc = 0;
    if (setns(ctr_pidfd(ct->c), CLONE_NEWNET) != 0) {
        rc = -errno;
    } else {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            rc = -errno;
        if (setns(self, CLONE_NEWNET) != 0)
            abort(); /* the loop must never stay in a tenant's namespace */
    }
    close(self);
    if (rc != 0)
        return rc;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ct->tc->container_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    /* Loopback inside the namespace: connected or refused at once. */
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    *out = fd;
    return 0;
}

static void stop_container(ctenant *ct);

static void on_timer(uv_timer_t *t)
{
    ctenant *ct = t->data;
    if (ct->state == C_STARTING) {
        /* Port mode: is the server listening yet? */
        int fd;
        if (open_in_container(ct, &fd) == 0) {
            close(fd);
            ct->state = C_RUNNING;
            log_tenant(LOG_INFO, ct->tc->name, "container ready after %llu ms",
                       (unsigned long long)(now_ms() - ct->started_ms));
            flush_queue(ct);
        } else if (now_ms() >= ct->ready_deadline_ms) {
            log_tenant(LOG_ERROR, ct->tc->name, "container did not listen on port %d within %llu ms",
                       ct->tc->container_port, (unsigned long long)ct->tc->start_timeout_ms);
            fail_queue(ct, 504, "The container did not start listening in time.");
            stop_container(ct);
        } else {
            uv_timer_start(&ct->timer, on_timer, READY_POLL_MS, 0);
        }
    } else if (ct->state == C_RUNNING && ct->inflight == 0) {
        log_tenant(LOG_INFO, ct->tc->name, "container idle for %llu s: stopping (scale to zero)",
                   (unsigned long long)ct->tc->idle_timeout_s);
        stop_container(ct);
    } else if (ct->state == C_STOPPING && ct->c) {
        log_tenant(LOG_WARN, ct->tc->name, "container ignored SIGTERM for %d ms: SIGKILL", STOP_GRACE_MS);
        ctr_kill(ct->c, SIGKILL);
    }
}

static void on_exit_poll_closed(uv_handle_t *h)
{
    ctenant *ct = h->data;
    ct->exit_poll_open = false;
    maybe_exit(ct->owner);
}

/* The container's process is gone: tear everything of it down. */
static void reap(ctenant *ct)
{
    int status = 0;
    err e;
    err_clear(&e);
    if (ctr_wait(ct->c, false, &status, &e) == -EAGAIN)
        return;
    bool expected = ct->state == C_STOPPING;
    uint64_t lived = now_ms() - ct->started_ms;
    log_tenant(expected ? LOG_INFO : LOG_ERROR, ct->tc->name, "container %s with status %d after %llu ms",
               expected ? "stopped" : "exited", ctr_exit_code(status), (unsigned long long)lived);
    if (ct->exit_poll_open) {
        uv_poll_stop(&ct->exit_poll);
        uv_close((uv_handle_t *)&ct->exit_poll, on_exit_poll_closed);
    }
    ctr_destroy(ct->c);
    ct->c = NULL;
    if (ct->up) {
        http_proxy_upstream_free(ct->up);
        ct->up = NULL;
    }
    if (ct->sock_path)
        unlink(ct->sock_path);
    uv_timer_stop(&ct->timer);
    if (!expected) {
        /* A crash: restart on the next request, backing off if it keeps dying. */
        ct->backoff_ms = lived > 10000 ? BACKOFF_MIN_MS
                         : ct->backoff_ms ? (ct->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ct->backoff_ms * 2)
                                          : BACKOFF_MIN_MS;
        ct->not_before_ms = now_ms() + ct->backoff_ms;
    }
    ct->state = C_STOPPED;
    fail_queue(ct, 502, "The container exited before it answered.");
    maybe_exit(ct->owner);
}

static void on_exit_poll(uv_poll_t *p, int status, int events)
{
    reap(p->data);
}

static void stop_container(ctenant *ct)
{
    if (!ct->c || ct->state == C_STOPPING)
        return;
    ct->state = C_STOPPING;
    ctr_kill(ct->c, SIGTERM);
    uv_timer_start(&ct->timer, on_timer, STOP_GRACE_MS, 0);
}

static int make_listener(const char *path, err *e)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return err_set(e, -ENAMETOOLONG, "socket path %s is too long", path);
    strcpy(sa.sun_path, path);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return err_set(e, -errno, "socket: %s", strerror(errno));
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 128) != 0) {
        int rc = err_set(e, -errno, "listen on %s: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    return fd;
}

static int start_container(ctenant *ct, err *e)
{
    containers *cs = ct->owner;
    int rc = 0, listen_fd = -1, logp[2] = {-1, -1};
    if (!ct->spec && (rc = ctr_spec_load(ct->tc->main, &ct->spec, e)) != 0)
        return err_prefix(e, "bundle %s", ct->tc->main);
    if (pipe2(logp, O_CLOEXEC) != 0)
        return err_set(e, -errno, "pipe: %s", strerror(errno));
    ctr_opts o;
    ctr_opts_init(&o);
    o.stdio[1] = o.stdio[2] = logp[1];
    o.start_timeout_ms = (unsigned)ct->tc->start_timeout_ms;
    if (!ct->tc->container_port) {
        free(ct->sock_path);
        ct->sock_path = xasprintf("%s/run/ctr-%s.sock", cs->cfg->state_dir, ct->tc->name);
        if ((listen_fd = make_listener(ct->sock_path, e)) < 0) {
            rc = listen_fd;
            goto done;
        }
        o.extra_fds = &listen_fd;
        o.n_extra_fds = 1;
        o.listen_fds = true;
    }
    rc = ctr_start(ct->spec, &o, &ct->c, e);
    if (rc != 0) {
        err_prefix(e, "start container");
        goto done;
    }
    ct->started_ms = now_ms();
    http_proxy_opts po;
    http_proxy_opts_defaults(&po);
    po.connect_timeout_ms = ct->tc->start_timeout_ms;
    rc = ct->tc->container_port ? http_proxy_upstream_open(&cs->loop, open_in_container, ct, &po, &ct->up, e)
                                : http_proxy_upstream_unix(&cs->loop, ct->sock_path, &po, &ct->up, e);
    if (rc != 0) {
        ctr_destroy(ct->c);
        ct->c = NULL;
        goto done;
    }
    uv_poll_init(&cs->loop, &ct->exit_poll, ctr_pidfd(ct->c));
    ct->exit_poll.data = ct;
    ct->exit_poll_open = true;
    uv_poll_start(&ct->exit_poll, UV_READABLE, on_exit_poll);
    uv_pipe_init(&cs->loop, &ct->logs, 0);
    ct->logs.data = ct;
    if (uv_pipe_open(&ct->logs, logp[0]) == 0) {
        logp[0] = -1;
        ct->logs_open = true;
        uv_read_start((uv_stream_t *)&ct->logs, on_log_alloc, on_log_read);
    } else {
        uv_close((uv_handle_t *)&ct->logs, NULL);
    }
    log_tenant(LOG_INFO, ct->tc->name, "container started (pid %d, %s)", (int)ctr_pid(ct->c),
               ct->tc->container_port ? "port" : "socket activation");
done:
    if (listen_fd >= 0)
        close(listen_fd); /* the container holds its own copy */
    if (logp[0] >= 0)
        close(logp[0]);
    close(logp[1]);
    return rc;
}

/* ---- requests from the worker processes ---- */

static void on_forward_done(void *data, int status)
{
    forward *f = data;
    ctenant *ct = f->ct;
    free(f);
    ct->inflight--;
    if (ct->inflight == 0 && ct->state == C_RUNNING && !ct->owner->stopping)
        uv_timer_start(&ct->timer, on_timer, ct->tc->idle_timeout_s * 1000, 0);
}

static void on_request(void *data, http_request *req, http_writer *w)
{
    containers *cs = data;
    const char *name = http_headers_get(&req->headers, "atoll-tenant");
    ctenant *ct = name ? map_get(&cs->tenants, name) : NULL;
    if (!ct) {
        http_writer_error(w, 404, "No container tenant by that name.");
        return;
    }
    http_headers_remove(&req->headers, "atoll-tenant");
    if (cs->stopping || ct->state == C_STOPPING) {
        http_writer_error(w, 503, "The container is stopping.");
        return;
    }
    if (ct->state == C_RUNNING) {
        forward_now(ct, req, w);
        return;
    }
    pending *p = xcalloc(1, sizeof *p);
    p->req = req;
    p->w = w;
    *ct->queue_tail = p;
    ct->queue_tail = &p->next;
    if (ct->state == C_STARTING)
        return;
    if (now_ms() < ct->not_before_ms) {
        fail_queue(ct, 503, "The container keeps exiting; it is restarted after a pause.");
        return;
    }
    err e;
    err_clear(&e);
    if (start_container(ct, &e) != 0) {
        log_tenant(LOG_ERROR, ct->tc->name, "%s", e.msg);
        ct->not_before_ms = now_ms() + BACKOFF_MIN_MS;
        fail_queue(ct, 502, "The container failed to start; the error is in the server log.");
        return;
    }
    if (ct->tc->container_port) {
        ct->state = C_STARTING;
        ct->ready_deadline_ms = now_ms() + ct->tc->start_timeout_ms;
        uv_timer_start(&ct->timer, on_timer, 0, 0);
    } else {
        ct->state = C_RUNNING; /* connections wait in the listener's backlog */
        flush_queue(ct);
    }
}

/* ---- the process ---- */

static void on_drained(void *data)
{
    containers *cs = data;
    size_t pos = 0;
    void *value;
    while (map_next(&cs->tenants, &pos, NULL, &value))
        stop_container(value);
    maybe_exit(cs);
}

/* Leaves the loop once the server is drained and every container is gone. */
static void maybe_exit(containers *cs)
{
    if (!cs->stopping)
        return;
    size_t pos = 0;
    void *value;
    while (map_next(&cs->tenants, &pos, NULL, &value)) {
        ctenant *ct = value;
        if (ct->c || ct->exit_poll_open)
            return;
    }
    uv_stop(&cs->loop);
}

static void on_signal(uv_signal_t *s, int signum)
{
    containers *cs = s->data;
    if (cs->stopping)
        return;
    cs->stopping = true;
    http_server_drain(cs->http, on_drained, cs);
}

static void close_tenant(ctenant *ct)
{
    uv_close((uv_handle_t *)&ct->timer, NULL);
    if (ct->logs_open)
        uv_close((uv_handle_t *)&ct->logs, on_logs_closed);
}

int containers_main(const atoll_config *cfg)
{
    containers cs = {.cfg = cfg};
    map_init(&cs.tenants);
    if (uv_loop_init(&cs.loop) != 0)
        return 1;
    int removed = ctr_sweep_stale();
    if (removed > 0)
        log_info("containers: removed %d cgroup(s) left by an earlier run", removed);
    for (size_t i = 0; i < cfg->nworkers; i++) {
        const tenant_config *tc = &cfg->workers[i];
        if (tc->tier != TIER_CONTAINER)
            continue;
        ctenant *ct = xcalloc(1, sizeof *ct);
        ct->owner = &cs;
        ct->tc = tc;
        ct->queue_tail = &ct->queue;
        buf_init(&ct->log_line, LOG_LINE_MAX + 1);
        uv_timer_init(&cs.loop, &ct->timer);
        ct->timer.data = ct;
        map_put(&cs.tenants, tc->name, ct);
    }
    char *run_dir = xasprintf("%s/run", cfg->state_dir);
    char *sock = containers_socket_path(cfg);
    http_server_config hc;
    http_server_config_defaults(&hc);
    hc.max_body_bytes = 1024u << 20;
    err e;
    err_clear(&e);
    int status = 1;
    if (file_mkdirs(run_dir, 0750, &e) != 0 || http_server_new(&cs.loop, &hc, on_request, &cs, &cs.http, &e) != 0 ||
        http_server_listen_unix(cs.http, sock, 0660, &e) != 0) {
        log_error("containers: %s", e.msg);
        goto done;
    }
    /* Worker processes run as the config's owner: they must reach the socket. */
    if (geteuid() == 0 && (chown(run_dir, cfg->worker_uid, cfg->worker_gid) != 0 ||
                           chown(sock, cfg->worker_uid, cfg->worker_gid) != 0))
        log_warn("containers: chown %s: %s", sock, strerror(errno));
    uv_signal_init(&cs.loop, &cs.sigterm);
    uv_signal_init(&cs.loop, &cs.sigint);
    cs.sigterm.data = cs.sigint.data = &cs;
    uv_signal_start(&cs.sigterm, on_signal, SIGTERM);
    uv_signal_start(&cs.sigint, on_signal, SIGINT);
    uv_run(&cs.loop, UV_RUN_DEFAULT);
    status = 0;
done:
    {
        size_t pos = 0;
        void *value;
        while (map_next(&cs.tenants, &pos, NULL, &value)) {
            ctenant *ct = value;
            if (ct->c) { /* not stopped in time, or an early failure */
                ctr_destroy(ct->c);
                ct->c = NULL;
            }
            if (ct->up)
                http_proxy_upstream_free(ct->up);
            if (ct->exit_poll_open) {
                uv_poll_stop(&ct->exit_poll);
                uv_close((uv_handle_t *)&ct->exit_poll, NULL);
            }
            close_tenant(ct);
        }
        if (cs.sigterm.loop)
            uv_close((uv_handle_t *)&cs.sigterm, NULL);
        if (cs.sigint.loop)
            uv_close((uv_handle_t *)&cs.sigint, NULL);
        cs.stopping = false; /* close callbacks must not stop the loop now */
        uv_run(&cs.loop, UV_RUN_NOWAIT);
        if (cs.http)
            http_server_free(cs.http);
        uv_run(&cs.loop, UV_RUN_NOWAIT);
        uv_loop_close(&cs.loop);
        pos = 0;
        while (map_next(&cs.tenants, &pos, NULL, &value)) {
            ctenant *ct = value;
            ctr_spec_free(ct->spec);
            if (ct->sock_path)
                unlink(ct->sock_path);
            free(ct->sock_path);
            buf_free(&ct->log_line);
            fail_queue(ct, 503, "The server is shutting down.");
            free(ct);
        }
        map_free(&cs.tenants);
    }
    unlink(sock);
    free(sock);
    free(run_dir);
    return status;
}
