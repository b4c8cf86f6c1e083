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
#include "server/store.h"

#define STOP_GRACE_MS 10000
#define READY_POLL_MS 20     /* at most; the first polls come sooner */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define LOG_LINE_MAX 8192
#define DRAIN_MAX_MS 30000     /* an old version's requests, after a deploy */
#define MAX_SETTINGS_BYTES (1u << 20)

typedef enum { C_STOPPED, C_STARTING, C_RUNNING, C_STOPPING } ctr_state;

typedef struct pending {
    http_request *req;
    http_writer *w;
    struct pending *next;
} pending;

/* The container's stdout and stderr: a pipe read into tenant log lines.
 * One per start, so that a restart never reuses a handle still closing. */
typedef struct logpipe {
    uv_pipe_t pipe;
    struct containers *owner;
    char *tenant;
    buf line;
    struct logpipe *prev, *next;
} logpipe;

typedef struct ctenant {
    struct containers *owner;
    const tenant_config *tc;   /* the config file's, or `owned` */
    tenant_config *owned;      /* a deployed version's */
    uint64_t version;          /* deploy version; 0 from the config file */
    bool retired;              /* replaced by a deploy, or deleted: drains, stops, is freed */
    bool freeing;
    bool timer_open;
    struct ctenant *next_retired;
    int64_t oom_seen;          /* OOM kills already reported */
    ctr_spec *spec;
    ctr *c;
    ctr_state state;
    http_proxy_upstream *up;
    char *sock_path;           /* socket-activation listener */
    uv_poll_t exit_poll;       /* the pidfd: readable when the container exits */
    bool exit_poll_open;
    uv_timer_t timer;          /* idle, readiness polling, drain, stop grace */
    pending *queue, **queue_tail;
    size_t inflight;
    uint64_t ready_deadline_ms, started_ms, not_before_ms, backoff_ms;
    uint64_t poll_ms;          /* port mode: next readiness poll, doubling up to READY_POLL_MS */
} ctenant;

typedef struct containers {
    const atoll_config *cfg;
    uv_loop_t loop;
    http_server *http;
    map tenants;               /* name -> current ctenant */
    ctenant *retired;          /* old versions still draining or stopping */
    logpipe *logs;             /* open log pipes */
    uint64_t journal_offset;
    uv_fs_event_t journal_watch;
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

static void ctenant_check_retired(ctenant *ct);

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

static void flush_log_line(logpipe *lp)
{
    if (lp->line.len)
        log_tenant(LOG_INFO, lp->tenant, "%s", lp->line.data);
    buf_reset(&lp->line);
}

static void on_logpipe_closed(uv_handle_t *h)
{
    logpipe *lp = h->data;
    containers *cs = lp->owner;
    if (lp->prev)
        lp->prev->next = lp->next;
    else
        cs->logs = lp->next;
    if (lp->next)
        lp->next->prev = lp->prev;
    buf_free(&lp->line);
    free(lp->tenant);
    free(lp);
    maybe_exit(cs);
}

static void on_log_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    logpipe *lp = s->data;
    if (n < 0) {
        /* Every writer is gone: the container has exited. */
        flush_log_line(lp);
        uv_read_stop(s);
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, on_logpipe_closed);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (b->base[i] == '\n' || lp->line.len >= LOG_LINE_MAX)
            flush_log_line(lp);
        if (b->base[i] != '\n')
            buf_append(&lp->line, &b->base[i], 1);
    }
}

/* Reads fd (the read end) into log lines of `tenant`; takes the fd. */
static void open_logpipe(containers *cs, const char *tenant, int fd)
{
    logpipe *lp = xcalloc(1, sizeof *lp);
    lp->owner = cs;
    lp->tenant = xstrdup(tenant);
    buf_init(&lp->line, LOG_LINE_MAX + 1);
    uv_pipe_init(&cs->loop, &lp->pipe, 0);
    lp->pipe.data = lp;
    lp->next = cs->logs;
    if (cs->logs)
        cs->logs->prev = lp;
    cs->logs = lp;
    if (uv_pipe_open(&lp->pipe, fd) != 0) {
        close(fd);
        uv_close((uv_handle_t *)&lp->pipe, on_logpipe_closed);
        return;
    }
    uv_read_start((uv_stream_t *)&lp->pipe, on_log_alloc, on_log_read);
}

/* ---- start, readiness, exit, stop ---- */

/* The kernel's OOM killer killed a process of the container (its memory
 * limit was hit): say so in the log, once per kill. */
static bool report_oom(ctenant *ct, const char *what)
{
    int64_t kills = ct->c ? ctr_oom_kills(ct->c) : -1;
    if (kills <= ct->oom_seen)
        return false;
    log_tenant(LOG_ERROR, ct->tc->name,
               "container out of memory: the kernel's OOM killer killed %lld process(es) of it at its memory "
               "limit (linux.resources.memory.limit in %s/config.json); %s",
               (long long)(kills - ct->oom_seen), ct->tc->main, what);
    ct->oom_seen = kills;
    return true;
}

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

/* Port mode: a TCP socket made inside the container's network namespace.
 * The loop thread enters that namespace only for the socket() call; the
 * proxy then connects it to 127.0.0.1:PORT asynchronously, so a server
 * whose listen backlog is full (SYNs retried for seconds) never stalls the
 * loop. */
static int socket_in_container(void *data, int *out)
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
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            rc = -errno;
        if (setns(self, CLONE_NEWNET) != 0)
            abort(); /* the loop must never stay in a tenant's namespace */
    }
    close(self);
    if (rc != 0)
        return rc;
    *out = fd;
    return 0;
}

/* Readiness while the container starts: is its server listening yet? On
 * loopback a connect to a listening port (with room in its backlog) or to
 * a closed one completes at once. */
static bool listening_in_container(ctenant *ct)
{
    int fd;
    if (socket_in_container(ct, &fd) != 0)
        return false;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ct->tc->container_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    /* Blocking, so the answer is known now (refused or accepted). */
    int flags = fcntl(fd, F_GETFL);
    bool ok = flags >= 0 && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0 &&
              connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static void stop_container(ctenant *ct);

static void on_timer(uv_timer_t *t)
{
    ctenant *ct = t->data;
    if (ct->state == C_STARTING) {
        /* Port mode: is the server listening yet? */
        if (listening_in_container(ct)) {
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
            /* A small server listens within a few ms: poll soon, then back off. */
            ct->poll_ms = ct->poll_ms ? (ct->poll_ms * 2 > READY_POLL_MS ? READY_POLL_MS : ct->poll_ms * 2) : 1;
            uv_timer_start(&ct->timer, on_timer, ct->poll_ms, 0);
        }
    } else if (ct->retired && ct->state == C_RUNNING) {
        log_tenant(LOG_WARN, ct->tc->name, "old version still busy %d ms after a deploy: stopping it",
                   DRAIN_MAX_MS);
        stop_container(ct);
    } else if (ct->state == C_RUNNING && ct->inflight == 0) {
        log_tenant(LOG_INFO, ct->tc->name, "container idle for %llu s: stopping (scale to zero)",
                   (unsigned long long)ct->tc->idle_timeout_s);
        stop_container(ct);
    } else if (ct->state == C_STOPPING && ct->c) {
        log_tenant(LOG_WARN, ct->tc->name, "container ignored SIGTERM for %d ms: SIGKILL", STOP_GRACE_MS);
        ctr_kill(ct->c, SIGKILL);
    }
}

static void ctenant_maybe_free(ctenant *ct);

static void on_exit_poll_closed(uv_handle_t *h)
{
    ctenant *ct = h->data;
    ct->exit_poll_open = false;
    if (ct->freeing)
        ctenant_maybe_free(ct);
    else
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
    log_tenant(expected ? LOG_INFO : LOG_ERROR, ct->tc->name, "container%s %s with status %d after %llu ms",
               ct->retired ? " (old version)" : "", expected ? "stopped" : "exited", ctr_exit_code(status),
               (unsigned long long)lived);
    report_oom(ct, "its main process died");
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
    ctenant_check_retired(ct);
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
    /* Below atoll's own cgroup, by a name of atoll's: a tenant's bundle
     * does not choose where its limits go, and an old version draining
     * after a deploy must not share its cgroup with the new one. */
    o.ignore_cgroups_path = true;
    if (!ct->tc->container_port) {
        free(ct->sock_path);
        /* Per version: an old one may still drain while the new one starts. */
        ct->sock_path = xasprintf("%s/run/ctr-%s-%llu.sock", cs->cfg->state_dir, ct->tc->name,
                                  (unsigned long long)ct->version);
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
    rc = ct->tc->container_port ? http_proxy_upstream_open_connect(&cs->loop, socket_in_container, ct, "127.0.0.1",
                                                                   ct->tc->container_port, &po, &ct->up, e)
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
    open_logpipe(cs, ct->tc->name, logp[0]);
    logp[0] = -1;
    ct->oom_seen = 0; /* a new cgroup */
    if (ct->version)
        log_tenant(LOG_INFO, ct->tc->name, "container started (pid %d, %s, deploy v%llu)", (int)ctr_pid(ct->c),
                   ct->tc->container_port ? "port" : "socket activation", (unsigned long long)ct->version);
    else
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

/* ---- tenants: from the config file and from deploys ---- */

static ctenant *ctenant_new(containers *cs, const tenant_config *tc, tenant_config *owned, uint64_t version)
{
    ctenant *ct = xcalloc(1, sizeof *ct);
    ct->owner = cs;
    ct->tc = owned ? owned : tc;
    ct->owned = owned;
    ct->version = version;
    ct->queue_tail = &ct->queue;
    uv_timer_init(&cs->loop, &ct->timer);
    ct->timer.data = ct;
    ct->timer_open = true;
    map_put(&cs->tenants, ct->tc->name, ct);
    return ct;
}

static void on_ctenant_timer_closed(uv_handle_t *h)
{
    ctenant *ct = h->data;
    ct->timer_open = false;
    ctenant_maybe_free(ct);
}

/* Frees a retired tenant once its handles have closed. */
static void ctenant_maybe_free(ctenant *ct)
{
    if (!ct->freeing || ct->timer_open || ct->exit_poll_open)
        return;
    containers *cs = ct->owner;
    for (ctenant **p = &cs->retired; *p; p = &(*p)->next_retired)
        if (*p == ct) {
            *p = ct->next_retired;
            break;
        }
    ctr_spec_free(ct->spec);
    if (ct->sock_path)
        unlink(ct->sock_path);
    free(ct->sock_path);
    if (ct->owned) {
        config_tenant_free(ct->owned);
        free(ct->owned);
    }
    free(ct);
    maybe_exit(cs);
}

/* A retired version: stopped once its last request has ended (or after
 * DRAIN_MAX_MS), freed once stopped. */
static void ctenant_check_retired(ctenant *ct)
{
    if (!ct->retired || ct->freeing)
        return;
    if (!ct->c && ct->state == C_STOPPED && !ct->queue && ct->inflight == 0) {
        ct->freeing = true;
        uv_timer_stop(&ct->timer);
        if (ct->up) {
            http_proxy_upstream_free(ct->up);
            ct->up = NULL;
        }
        uv_close((uv_handle_t *)&ct->timer, on_ctenant_timer_closed);
        return;
    }
    if (ct->state == C_RUNNING && ct->inflight == 0 && !ct->queue) {
        log_tenant(LOG_INFO, ct->tc->name, "old version%s drained: stopping its container",
                   ct->version ? "" : " (from the config file)");
        stop_container(ct);
    }
}

/* Takes a tenant out of service (a new version replaces it, or it was
 * deleted): new requests no longer reach it; those in flight finish. */
static void ctenant_retire(containers *cs, ctenant *ct)
{
    map_remove(&cs->tenants, ct->tc->name);
    ct->retired = true;
    ct->next_retired = cs->retired;
    cs->retired = ct;
    if (ct->state == C_RUNNING && ct->inflight > 0)
        uv_timer_start(&ct->timer, on_timer, DRAIN_MAX_MS, 0);
    ctenant_check_retired(ct);
}

/* One journal entry: a deploy (version > 0) or a deletion. */
static void apply_entry(void *data, const char *name, uint64_t version)
{
    containers *cs = data;
    ctenant *old = map_get(&cs->tenants, name);
    if (version == 0) {
        if (old) {
            log_tenant(LOG_INFO, name, "deleted: its container stops once its requests have ended");
            ctenant_retire(cs, old);
        }
        return;
    }
    if (old && old->version == version)
        return;
    const char *state = cs->cfg->state_dir;
    char *settings_path = store_settings_path(state, name, version);
    char *script_path = store_find_script(state, name, version);
    char *source = xasprintf("deploy %s v%llu", name, (unsigned long long)version);
    buf settings;
    buf_init(&settings, MAX_SETTINGS_BYTES);
    err e;
    err_clear(&e);
    tenant_config *tc = xcalloc(1, sizeof *tc);
    atoll_config warnings = {0};
    int rc = file_read_all(settings_path, MAX_SETTINGS_BYTES, &settings, &e);
    if (rc == 0)
        rc = config_tenant_from_json(source, settings.data ? settings.data : "{}", settings.len, name, script_path,
                                     tc, &warnings, &e);
    config_free(&warnings);
    if (rc != 0) {
        log_error("containers: %s: cannot apply %s: %s", name, source, e.msg);
        free(tc);
    } else if (tc->tier != TIER_CONTAINER) {
        if (old) /* now served by another tier */
            ctenant_retire(cs, old);
        config_tenant_free(tc);
        free(tc);
    } else {
        if (old) {
            log_tenant(LOG_INFO, name, "deploy v%llu: new requests go to the new version; the old one drains",
                       (unsigned long long)version);
            ctenant_retire(cs, old);
        }
        ctenant_new(cs, NULL, tc, version);
    }
    buf_free(&settings);
    free(settings_path);
    free(script_path);
    free(source);
}

static void follow_journal(containers *cs)
{
    err e;
    err_clear(&e);
    if (store_follow(cs->cfg->state_dir, &cs->journal_offset, apply_entry, cs, &e) != 0)
        log_error("containers: deploy journal: %s", e.msg);
}

static void on_journal_change(uv_fs_event_t *h, const char *filename, int events, int status)
{
    containers *cs = h->data;
    if (status == 0 && filename && strcmp(filename, "journal") == 0)
        follow_journal(cs);
}

/* ---- requests from the worker processes ---- */

static void on_forward_done(void *data, int status)
{
    forward *f = data;
    ctenant *ct = f->ct;
    free(f);
    ct->inflight--;
    if (status != 0)
        report_oom(ct, "a request failed with a 502");
    if (ct->retired)
        ctenant_check_retired(ct);
    else if (ct->inflight == 0 && ct->state == C_RUNNING && !ct->owner->stopping)
        uv_timer_start(&ct->timer, on_timer, ct->tc->idle_timeout_s * 1000, 0);
}

/* Every request here goes on to a container: its body streams through
 * (the worker has applied the tenant's limit already). */
static bool stream_body(void *data, const http_request *req, size_t *max_body)
{
    return true;
}

static void on_request(void *data, http_request *req, http_writer *w)
{
    containers *cs = data;
    const char *name = http_headers_get(&req->headers, "atoll-tenant");
    ctenant *ct = name ? map_get(&cs->tenants, name) : NULL;
    if (!ct && name) {
        /* A worker may have read a deploy before we were told of it. */
        follow_journal(cs);
        ct = map_get(&cs->tenants, name);
    }
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
        ct->poll_ms = 0;
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
    for (ctenant *ct = cs->retired; ct; ct = ct->next_retired)
        stop_container(ct);
    maybe_exit(cs);
}

/* Leaves the loop once the server is drained, every container is gone and
 * its output has been read. */
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
    for (ctenant *ct = cs->retired; ct; ct = ct->next_retired)
        if (ct->c || ct->exit_poll_open)
            return;
    if (cs->logs)
        return;
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

/* At exit: whatever is left of a tenant (the loop is stopped). */
static void ctenant_teardown(ctenant *ct)
{
    if (ct->c) { /* not stopped in time, or an early failure */
        ctr_destroy(ct->c);
        ct->c = NULL;
    }
    if (ct->up)
        http_proxy_upstream_free(ct->up);
    ct->up = NULL;
    if (ct->exit_poll_open) {
        uv_poll_stop(&ct->exit_poll);
        uv_close((uv_handle_t *)&ct->exit_poll, NULL);
        ct->exit_poll_open = false;
    }
    if (ct->timer_open && !uv_is_closing((uv_handle_t *)&ct->timer))
        uv_close((uv_handle_t *)&ct->timer, NULL);
    ct->timer_open = false;
}

static void ctenant_final_free(ctenant *ct)
{
    ctr_spec_free(ct->spec);
    if (ct->sock_path)
        unlink(ct->sock_path);
    free(ct->sock_path);
    fail_queue(ct, 503, "The server is shutting down.");
    if (ct->owned) {
        config_tenant_free(ct->owned);
        free(ct->owned);
    }
    free(ct);
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
        if (tc->tier == TIER_CONTAINER)
            ctenant_new(&cs, tc, NULL, 0);
    }
    /* Deploys: the admin process appends to the journal in the state directory. */
    follow_journal(&cs);
    uv_fs_event_init(&cs.loop, &cs.journal_watch);
    cs.journal_watch.data = &cs;
    int wrc = uv_fs_event_start(&cs.journal_watch, on_journal_change, cfg->state_dir, 0);
    if (wrc != 0)
        log_warn("containers: cannot watch %s for deploys: %s", cfg->state_dir, uv_strerror(wrc));
    char *run_dir = xasprintf("%s/run", cfg->state_dir);
    char *sock = containers_socket_path(cfg);
    http_server_config hc;
    http_server_config_defaults(&hc);
    hc.max_body_bytes = 1024u << 20;
    hc.stream_body = stream_body;
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
        while (map_next(&cs.tenants, &pos, NULL, &value))
            ctenant_teardown(value);
        for (ctenant *ct = cs.retired; ct; ct = ct->next_retired)
            ctenant_teardown(ct);
        for (logpipe *lp = cs.logs; lp; lp = lp->next)
            if (!uv_is_closing((uv_handle_t *)&lp->pipe))
                uv_close((uv_handle_t *)&lp->pipe, on_logpipe_closed);
        if (cs.journal_watch.loop)
            uv_close((uv_handle_t *)&cs.journal_watch, NULL);
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
        while (map_next(&cs.tenants, &pos, NULL, &value))
            ctenant_final_free(value);
        for (ctenant *ct = cs.retired, *next; ct; ct = next) {
            next = ct->next_retired;
            ctenant_final_free(ct);
        }
        map_free(&cs.tenants);
    }
    unlink(sock);
    free(sock);
    free(run_dir);
    return status;
}
