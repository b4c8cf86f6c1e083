/* An isolate (see isolate.h): one QuickJS runtime + context per tenant,
 * its limits (heap cap through our allocator, stack cap, CPU budget from
 * the interrupt handler, wall-clock budget on a libuv timer), its env,
 * loading a worker (ES module with relative imports, or service-worker
 * script) from the bytecode cache, and dispatching requests to its fetch
 * handler and cron triggers to its scheduled handler. Also the per-loop
 * pool of ready runtimes and the compile-only check for deploys.
 *
 * Every entry into JavaScript goes through enter()/leave(): enter sets the
 * clock JavaScript sees; leave drains the promise job queue, accounts CPU
 * time to the jobs in flight, reports unhandled rejections, and turns a
 * tripped limit into that limit's status for the jobs in flight and a
 * broken isolate. A job is a request or a scheduled event. */
#include "js/isolate.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <quickjs.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "js/api/api.h"
#include "js/binding.h"
#include "js/cache.h"

/* The interrupt handler runs every 10,000 bytecode operations or so; the
 * CPU clock is read on every CPU_POLL_EVERY-th call only. */
#define CPU_POLL_EVERY 4
#define MALLOC_OVERHEAD 8
/* The heap of the runtime that iso_check_script compiles in. */
#define CHECK_MEMORY_LIMIT (256u << 20)

/* The limits, by what iso_limit() calls them. */
enum { LIMIT_NONE, LIMIT_CPU, LIMIT_MEMORY, LIMIT_WALL };
static const struct {
    const char *key, *text;
    int status;
} limits[] = {
    [LIMIT_NONE] = { NULL, "resource", 503 },
    [LIMIT_CPU] = { "cpu", "CPU time", ISO_STATUS_CPU },
    [LIMIT_MEMORY] = { "memory", "memory", ISO_STATUS_MEMORY },
    [LIMIT_WALL] = { "wall", "wall time", ISO_STATUS_WALL },
};

/* A job in flight: a request (w set) or a scheduled event (done set). */
typedef struct iso_req {
    uv_timer_t wall;            /* first: the close callback frees the struct */
    struct iso_req *next, *prev;
    iso *iso;
    uint64_t id;
    http_request *req;
    http_writer *w;
    uint64_t cpu_ns;            /* CPU time spent in JS while this job was in flight */
    uint64_t subrequests;       /* fetches charged to this request */
    uint64_t kv_ops;            /* KV operations charged to this request */
    jsapi_sink *sink;           /* the Response body is streaming: the request stays in flight */
    bool responded;             /* a service worker called respondWith */
    /* scheduled events */
    void (*done)(void *data, int outcome);
    void *done_data;
    char *cron;
    int pending;                /* the handler and its waitUntil promises not yet settled */
    bool failed;
} iso_req;

/* A promise passed to waitUntil, until it settles or its deadline passes. */
typedef struct wait_entry {
    struct wait_entry *next;
    uint64_t id;
    uint64_t job;               /* the scheduled event waiting for it, or 0 */
    uint64_t deadline;          /* on the loop's clock, ms */
} wait_entry;

typedef struct rejection {
    JSValue promise, reason;
} rejection;

struct iso {
    uv_loop_t *loop;
    JSRuntime *rt;
    JSContext *ctx;
    iso_options opt;
    char *name;
    char *path;                 /* absolute */
    bool is_module;
    JSValue handler;            /* module: the default export */
    JSValue fetch;              /* module: default.fetch */
    JSValue scheduled;          /* module: default.scheduled */
    JSValue listeners;          /* service worker: array of fetch listeners */
    JSValue sched_listeners;    /* service worker: array of scheduled listeners */
    bool has_fetch;
    JSValue env;
    JSValue exec_proto;         /* prototype of ctx objects: waitUntil, passThroughOnException */

    iso_req *reqs;
    size_t inflight;
    uint64_t next_id;
    size_t waituntil_pending;
    wait_entry *waits, **waits_tail; /* by deadline */
    uint64_t next_wait_id;
    uv_timer_t *wait_timer;     /* deadline of the first wait; freed in its close callback */

    int depth;                  /* nesting of enter() */
    uint64_t current;           /* the request whose JS runs now (0: unknown) */
    /* The slice of JS running now (see slice_cpu_ns): its start on the
     * monotonic clock, and where the thread's CPU clock was first read in
     * it (anchor_mono 0: not yet). */
    uint64_t slice_mono, anchor_mono, cpu_anchor;
    uint64_t cpu_base;
    uint64_t cpu_total;
    unsigned polls;
    bool loading;
    bool broken, oom, limit_reported;
    int limit;                  /* which limit was exceeded: LIMIT_* */
    /* The request answered last, for iso_request_cpu_ns from its w->end. */
    const http_writer *done_w;
    uint64_t done_cpu;
    bool done_in_slice;

    rejection *rejections;
    size_t nrejections, caprejections;
};

/* --- the capped allocator: QuickJS's default one, plus noting when the
 * cap refused an allocation, so a caught out-of-memory still counts. --- */

static void *iso_js_malloc(JSMallocState *s, size_t size)
{
    if (s->malloc_size + size > s->malloc_limit) {
        ((iso *)s->opaque)->oom = true;
        return NULL;
    }
    void *p = malloc(size);
    if (!p)
        return NULL;
    s->malloc_count++;
    s->malloc_size += malloc_usable_size(p) + MALLOC_OVERHEAD;
    return p;
}

static void iso_js_free(JSMallocState *s, void *p)
{
    if (!p)
        return;
    s->malloc_count--;
    s->malloc_size -= malloc_usable_size(p) + MALLOC_OVERHEAD;
    free(p);
}

static void *iso_js_realloc(JSMallocState *s, void *p, size_t size)
{
    if (!p)
        return size ? iso_js_malloc(s, size) : NULL;
    size_t old = malloc_usable_size(p);
    if (size == 0) {
        iso_js_free(s, p);
        return NULL;
    }
    if (s->malloc_size + size - old > s->malloc_limit) {
        ((iso *)s->opaque)->oom = true;
        return NULL;
    }
    void *q = realloc(p, size);
    if (!q)
        return NULL;
    s->malloc_size += malloc_usable_size(q) - old;
    return q;
}

static size_t iso_js_usable(const void *p) { return malloc_usable_size((void *)p); }

static const JSMallocFunctions iso_mf = { iso_js_malloc, iso_js_free, iso_js_realloc, iso_js_usable };

void iso_options_defaults(iso_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->memory_limit = 128u << 20;
    opt->stack_limit = 512u << 10;
    opt->cpu_ms = 50;
    opt->wall_ms = 30000;
    opt->name = NULL;
    opt->subrequests = 50;
    opt->fetch_allow = NULL;
    opt->fetch_resolve = NULL;
}

/* --- errors and logging --- */

/* "Error: message" and the stack (file:line lines), for logs and err. */
static void describe(JSContext *ctx, JSValueConst exc, buf *b)
{
    jsapi_inspect(ctx, exc, b);
    if (JS_HasException(ctx))
        JS_FreeValue(ctx, JS_GetException(ctx));
}

static void log_exception(iso *i, JSValueConst exc, const char *what)
{
    buf b;
    buf_init(&b, 64 * 1024);
    describe(i->ctx, exc, &b);
    log_tenant(LOG_ERROR, i->name, "%s: %s", what, b.data ? b.data : "");
    buf_free(&b);
}

static void set_limit(iso *i, int what)
{
    i->broken = true;
    if (!i->limit)
        i->limit = what;
}

/* The pending exception, logged unless a limit caused it (then the limit
 * is reported once, for all requests). */
static void report_exception(iso *i, const char *what)
{
    JSValue exc = JS_GetException(i->ctx);
    if (!i->broken && !i->oom)
        log_exception(i, exc, what);
    JS_FreeValue(i->ctx, exc);
}

/* The CPU time of the slice that runs now (depth > 0). Reading the
 * thread's CPU clock is a system call — three of them were a tenth of a
 * hello-world request's cost — while the monotonic clock is read from the
 * vDSO. So a slice is charged its wall time until the interrupt handler
 * is first called within it (some 10,000 operations in); by then it has run
 * long enough for a system call not to matter, and anchor_cpu() starts
 * charging the rest exactly. Wall
 * time is never less than the thread's CPU time: the charge can only err
 * upwards, by time the thread was preempted in that first stretch. */
static uint64_t slice_cpu_ns(const iso *i)
{
    if (!i->anchor_mono)
        return clock_mono_ns() - i->slice_mono;
    return (i->anchor_mono - i->slice_mono) + (clock_thread_cpu_ns() - i->cpu_anchor);
}

static void anchor_cpu(iso *i)
{
    if (i->anchor_mono)
        return;
    i->cpu_anchor = clock_thread_cpu_ns();
    i->anchor_mono = clock_mono_ns();
}

static int on_interrupt(JSRuntime *rt, void *opaque)
{
    iso *i = opaque;
    if (i->broken)
        return 1;
    if (i->oom) {
        set_limit(i, LIMIT_MEMORY);
        return 1;
    }
    if (i->depth == 0)
        return 0;
    anchor_cpu(i); /* at the first call of a slice: a few thousand operations in */
    if (!i->opt.cpu_ms || ++i->polls % CPU_POLL_EVERY)
        return 0;
    uint64_t used = i->cpu_base + slice_cpu_ns(i);
    if (used > i->opt.cpu_ms * 1000000u) {
        set_limit(i, LIMIT_CPU);
        return 1;
    }
    return 0;
}

static void on_rejection(JSContext *ctx, JSValueConst promise, JSValueConst reason, JS_BOOL is_handled,
                         void *opaque)
{
    iso *i = opaque;
    if (is_handled) {
        for (size_t k = 0; k < i->nrejections; k++) {
            if (JS_VALUE_GET_PTR(i->rejections[k].promise) == JS_VALUE_GET_PTR(promise)) {
                JS_FreeValue(ctx, i->rejections[k].promise);
                JS_FreeValue(ctx, i->rejections[k].reason);
                i->rejections[k] = i->rejections[--i->nrejections];
                break;
            }
        }
        return;
    }
    if (i->nrejections == i->caprejections) {
        i->caprejections = i->caprejections ? i->caprejections * 2 : 4;
        i->rejections = xrealloc(i->rejections, i->caprejections * sizeof *i->rejections);
    }
    i->rejections[i->nrejections++] =
        (rejection){ JS_DupValue(ctx, promise), JS_DupValue(ctx, reason) };
}

/* Rejections still unhandled once the job queue is empty are logged, as
 * browsers do at the end of a microtask checkpoint. */
static void flush_rejections(iso *i)
{
    for (size_t k = 0; k < i->nrejections; k++) {
        if (!i->broken && !i->loading)
            log_exception(i, i->rejections[k].reason, "Unhandled promise rejection");
        JS_FreeValue(i->ctx, i->rejections[k].promise);
        JS_FreeValue(i->ctx, i->rejections[k].reason);
    }
    i->nrejections = 0;
}

/* --- requests in flight --- */

static void req_closed(uv_handle_t *h) { free(h); }

/* Unlinks r and closes its timer; the struct is freed on the loop. */
static void req_done(iso_req *r)
{
    iso *i = r->iso;
    if (r->prev)
        r->prev->next = r->next;
    else
        i->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    i->inflight--;
    uv_timer_stop(&r->wall);
    uv_close((uv_handle_t *)&r->wall, req_closed);
}

/* Remembers the CPU time of the request about to be answered, for
 * iso_request_cpu_ns called from its w->end. */
static void note_answered(iso_req *r)
{
    iso *i = r->iso;
    i->done_w = r->w;
    i->done_cpu = r->cpu_ns;
    i->done_in_slice = i->depth > 0;
}

/* A scheduled event ended: 0, or the status a request would have got. */
static void event_finish(iso_req *r, int outcome)
{
    iso *i = r->iso;
    void (*done)(void *, int) = r->done;
    void *data = r->done_data;
    if (outcome == 0)
        log_tenant(LOG_INFO, i->name, "scheduled event \"%s\": ok", r->cron);
    else if (i->limit)
        log_tenant(LOG_ERROR, i->name, "scheduled event \"%s\": exceeded the %s limit", r->cron,
                  limits[i->limit].text);
    else
        log_tenant(LOG_ERROR, i->name, "scheduled event \"%s\": failed", r->cron);
    free(r->cron);
    r->cron = NULL;
    req_done(r);
    done(data, outcome);
}

static void req_fail(iso_req *r, int status, const char *message)
{
    http_writer *w = r->w;
    if (!w) {
        event_finish(r, status);
        return;
    }
    note_answered(r);
    jsapi_sink *sink = r->sink;
    JSContext *ctx = r->iso->ctx;
    req_done(r);
    if (sink) /* the status line is out: the client sees the body cut off */
        jsapi_sink_abort(ctx, sink);
    else
        http_writer_error(w, status, message);
}

static iso_req *req_find(iso *i, uint64_t id)
{
    for (iso_req *r = i->reqs; r; r = r->next)
        if (r->id == id)
            return r;
    return NULL;
}

/* A limit was exceeded: every job in flight fails with its status. */
static void fail_all(iso *i)
{
    i->limit_reported = true;
    log_tenant(LOG_ERROR, i->name, "exceeded its %s limit; the isolate is discarded (%zu job(s) in flight)",
               limits[i->limit].text, i->inflight);
    char *msg = xasprintf("The worker exceeded its %s limit.", limits[i->limit].text);
    while (i->reqs)
        req_fail(i->reqs, limits[i->limit].status, msg);
    free(msg);
}

/* --- entering and leaving JavaScript --- */

static bool enter(void *opaque)
{
    iso *i = opaque;
    if (i->broken)
        return false;
    if (i->depth++ == 0) {
        JS_UpdateStackTop(i->rt);
        i->cpu_base = 0;
        for (iso_req *r = i->reqs; r; r = r->next)
            if (r->cpu_ns > i->cpu_base)
                i->cpu_base = r->cpu_ns;
        i->slice_mono = clock_mono_ns();
        i->anchor_mono = 0;
        /* The clock JavaScript sees stands still until it returns to the
         * loop (CLOCK_REALTIME is read from the vDSO: no system call). */
        jsapi_set_now(i->ctx, clock_wall_ms());
    }
    return true;
}

static void drain_jobs(iso *i)
{
    while (!i->broken) {
        JSContext *c;
        int rc = JS_ExecutePendingJob(i->rt, &c);
        if (rc == 0)
            break;
        if (rc < 0)
            report_exception(i, "Uncaught exception in a microtask");
    }
}

static void leave(void *opaque, JSValue result, const char *what)
{
    iso *i = opaque;
    if (JS_IsException(result))
        report_exception(i, what ? what : "Uncaught exception");
    else
        JS_FreeValue(i->ctx, result);
    if (i->depth > 1) {
        i->depth--;
        return;
    }
    drain_jobs(i);
    i->depth--;
    i->current = 0;
    uint64_t spent = slice_cpu_ns(i);
    i->cpu_total += spent;
    for (iso_req *r = i->reqs; r; r = r->next)
        r->cpu_ns += spent;
    if (i->done_in_slice) { /* answered during this slice: it gets the whole slice */
        i->done_cpu += spent;
        i->done_in_slice = false;
    }
    if (i->oom)
        set_limit(i, LIMIT_MEMORY);
    flush_rejections(i);
    if (i->broken && !i->limit_reported)
        fail_all(i);
}

/* --- the subrequest budget --- */

/* QuickJS has no async context, so the request a fetch belongs to is the
 * one whose code is running: set while its handler runs and while a fetch
 * it started resolves (and the promise jobs that follow run). Code run
 * from elsewhere (a timer) is charged to the most recent request. */
/* The job that I/O started now belongs to (see charge_subrequest), or
 * NULL; sets *req to its id (0: none). */
static iso_req *charged_job(iso *i, uint64_t *req)
{
    uint64_t id = *req ? *req : i->current;
    iso_req *r = id ? req_find(i, id) : NULL;
    if (!r && !*req)
        r = i->reqs;
    *req = r ? r->id : 0;
    return r;
}

static int charge_subrequest(void *opaque, uint64_t *req)
{
    iso *i = opaque;
    if (i->loading)
        return -EPERM;
    iso_req *r = charged_job(i, req);
    if (!r) /* after the response (waitUntil): nothing left to charge */
        return 0;
    if (r->subrequests >= i->opt.subrequests)
        return -EDQUOT;
    r->subrequests++;
    return 0;
}

/* KV operations have their own budget per request, as on Workers. */
static int charge_kv_op(void *opaque, uint64_t *req)
{
    iso *i = opaque;
    iso_req *r = i->loading ? NULL : charged_job(i, req);
    if (!r) {
        *req = 0;
        return 0;
    }
    if (r->kv_ops >= JSAPI_KV_OPS_PER_REQUEST)
        return -EDQUOT;
    r->kv_ops++;
    return 0;
}

static void resume_request(void *opaque, uint64_t req)
{
    iso *i = opaque;
    if (i->depth > 0)
        i->current = req;
}

/* CPU time spent for this isolate on another thread counts as if it had
 * run here; over the budget, the requests in flight get their 503s now
 * (or when the current entry into JS leaves). */
static void charge_cpu(void *opaque, uint64_t ns)
{
    iso *i = opaque;
    bool over = false;
    for (iso_req *r = i->reqs; r; r = r->next) {
        r->cpu_ns += ns;
        over |= i->opt.cpu_ms && r->cpu_ns > i->opt.cpu_ms * 1000000u;
    }
    i->cpu_base += ns;
    if (over) {
        set_limit(i, LIMIT_CPU);
        if (i->depth == 0 && !i->limit_reported)
            fail_all(i);
    }
}

/* Native code did much work since the interrupt handler last looked. */
static bool over_cpu(void *opaque)
{
    iso *i = opaque;
    if (i->broken)
        return true;
    if (i->depth == 0 || !i->opt.cpu_ms)
        return false;
    anchor_cpu(i);
    if (i->cpu_base + slice_cpu_ns(i) > i->opt.cpu_ms * 1000000u) {
        set_limit(i, LIMIT_CPU);
        return true;
    }
    return false;
}

/* --- completing a request --- */

/* A streamed Response body has ended, failed, or lost its client. */
static void stream_done(void *opaque)
{
    iso_req *r = opaque;
    r->sink = NULL;
    req_done(r);
}

/* The handler's outcome for request `id`: a Response is sent; anything
 * else is a 500. A Response whose body streams keeps the request in flight
 * (its CPU and wall budgets still run) until the stream is done. Consumes
 * value. */
static void complete(iso *i, uint64_t id, JSValue value)
{
    iso_req *r = req_find(i, id);
    if (!r) { /* already answered (a limit, or iso_free) */
        JS_FreeValue(i->ctx, value);
        return;
    }
    if (jsapi_is_response(i->ctx, value)) {
        note_answered(r);
        jsapi_sink *sink;
        if (jsapi_response_send(i->ctx, value, r->w, stream_done, r, &sink) == 1)
            r->sink = sink;
        else
            req_done(r);
    } else {
        buf b;
        buf_init(&b, 256);
        jsapi_inspect(i->ctx, value, &b);
        log_tenant(LOG_ERROR, i->name, "the fetch handler did not return a Response (got %s)",
                  b.data ? b.data : "");
        buf_free(&b);
        req_fail(r, 500, "The worker's fetch handler did not return a Response.");
    }
    JS_FreeValue(i->ctx, value);
}

static iso *iso_of(JSContext *ctx) { return JS_GetRuntimeOpaque(JS_GetRuntime(ctx)); }

static uint64_t id_of(JSContext *ctx, JSValueConst v)
{
    int64_t id = 0;
    JS_ToInt64(ctx, &id, v);
    return (uint64_t)id;
}

static JSValue on_handler_ok(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                             int magic, JSValue *data)
{
    complete(iso_of(ctx), id_of(ctx, data[0]), JS_DupValue(ctx, argc ? argv[0] : JS_UNDEFINED));
    return JS_UNDEFINED;
}

static JSValue on_handler_err(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                              int magic, JSValue *data)
{
    iso *i = iso_of(ctx);
    iso_req *r = req_find(i, id_of(ctx, data[0]));
    /* Out of memory is the memory limit (a 503 from leave), not the
     * worker's own exception, as on the synchronous path. */
    if (r && !i->broken && !i->oom) {
        log_exception(i, argc ? argv[0] : JS_UNDEFINED, "Uncaught exception in the fetch handler");
        req_fail(r, 500, "The worker threw an exception.");
    }
    return JS_UNDEFINED;
}

/* Settles request id with the handler's result: a value or a promise of
 * one. Consumes result. */
static void settle(iso *i, uint64_t id, JSValue result)
{
    JSContext *ctx = i->ctx;
    /* A Response (or any non-object) is complete now; promises and other
     * objects, which may be thenables, are awaited. */
    if (jsapi_is_response(ctx, result) || !JS_IsObject(result)) {
        complete(i, id, result);
        return;
    }
    /* Promises and thenables alike go through Promise.resolve(). */
    JSValue p = jsapi_promise_resolve(ctx, result);
    JSValue idv = JS_NewInt64(ctx, (int64_t)id);
    JSValue ok = JS_NewCFunctionData(ctx, on_handler_ok, 1, 0, 1, &idv);
    JSValue ko = JS_NewCFunctionData(ctx, on_handler_err, 1, 0, 1, &idv);
    JSValue r = JS_IsException(p) ? JS_EXCEPTION : jsapi_promise_then(ctx, p, ok, ko);
    if (JS_IsException(r)) {
        report_exception(i, "Cannot await the fetch handler's result");
        iso_req *q = req_find(i, id);
        if (q)
            req_fail(q, 500, "The worker threw an exception.");
    }
    JS_FreeValue(ctx, r);
    JS_FreeValue(ctx, ok);
    JS_FreeValue(ctx, ko);
    JS_FreeValue(ctx, p);
}

/* --- ctx.waitUntil, ctx.passThroughOnException, event.respondWith --- */

/* A scheduled event's handler or one of its waitUntil promises settled;
 * the event ends when all have. */
static void event_settle(iso *i, uint64_t id, bool failed)
{
    iso_req *r = req_find(i, id);
    if (!r || r->w)
        return; /* already ended (a limit, or iso_free) */
    r->failed |= failed;
    if (--r->pending == 0)
        event_finish(r, r->failed ? 500 : 0);
}

static void unlink_wait(iso *i, wait_entry **p)
{
    wait_entry *w = *p;
    *p = w->next;
    if (i->waits_tail == &w->next)
        i->waits_tail = p;
    free(w);
}

static void waits_expired(uv_timer_t *t);

static void arm_wait_timer(iso *i)
{
    if (!i->waits || i->waits->deadline == UINT64_MAX)
        return;
    uint64_t now = uv_now(i->loop);
    uv_timer_start(i->wait_timer, waits_expired, i->waits->deadline > now ? i->waits->deadline - now : 0, 0);
}

/* waitUntil promises still pending wall_ms after they were passed are
 * abandoned: the isolate may be evicted without waiting for them. */
static void waits_expired(uv_timer_t *t)
{
    iso *i = t->data;
    uint64_t now = uv_now(i->loop);
    size_t n = 0;
    while (i->waits && i->waits->deadline <= now) {
        unlink_wait(i, &i->waits);
        i->waituntil_pending--;
        n++;
    }
    if (n)
        log_tenant(LOG_WARN, i->name, "%zu waitUntil() promise(s) abandoned: still pending after the wall time "
                   "limit (%llu ms)", n, (unsigned long long)i->opt.wall_ms);
    arm_wait_timer(i);
}

static JSValue on_wait_done(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                            int magic, JSValue *data)
{
    iso *i = iso_of(ctx);
    uint64_t id = id_of(ctx, data[0]);
    wait_entry **p = &i->waits;
    while (*p && (*p)->id != id)
        p = &(*p)->next;
    if (!*p)
        return JS_UNDEFINED; /* abandoned at its deadline */
    uint64_t job = (*p)->job;
    unlink_wait(i, p);
    i->waituntil_pending--;
    if (magic && !i->broken)
        log_exception(i, argc ? argv[0] : JS_UNDEFINED, "A waitUntil() promise rejected");
    if (job)
        event_settle(i, job, magic);
    return JS_UNDEFINED;
}

/* waitUntil(value) for a request (job 0) or a scheduled event. */
static JSValue wait_for(JSContext *ctx, JSValueConst value, uint64_t job)
{
    iso *i = iso_of(ctx);
    JSValue p = jsapi_promise_resolve(ctx, JS_DupValue(ctx, value));
    if (JS_IsException(p))
        return p;
    uint64_t id = ++i->next_wait_id;
    JSValue idv = JS_NewInt64(ctx, (int64_t)id);
    JSValue ok = JS_NewCFunctionData(ctx, on_wait_done, 1, 0, 1, &idv);
    JSValue ko = JS_NewCFunctionData(ctx, on_wait_done, 1, 1, 1, &idv);
    JSValue r = jsapi_promise_then(ctx, p, ok, ko);
    JS_FreeValue(ctx, ok);
    JS_FreeValue(ctx, ko);
    JS_FreeValue(ctx, p);
    if (JS_IsException(r))
        return r;
    JS_FreeValue(ctx, r);
    wait_entry *w = xcalloc(1, sizeof *w);
    w->id = id;
    w->job = job;
    /* Deadlines grow with the call time, so appending keeps the order. */
    w->deadline = i->opt.wall_ms ? uv_now(i->loop) + i->opt.wall_ms : UINT64_MAX;
    *i->waits_tail = w;
    i->waits_tail = &w->next;
    if (!i->wait_timer) {
        i->wait_timer = xmalloc(sizeof *i->wait_timer);
        uv_timer_init(i->loop, i->wait_timer);
        i->wait_timer->data = i;
    }
    if (!uv_is_active((uv_handle_t *)i->wait_timer))
        arm_wait_timer(i);
    i->waituntil_pending++;
    if (job) {
        iso_req *ev = req_find(i, job);
        if (ev)
            ev->pending++;
    }
    return JS_UNDEFINED;
}

static JSValue wait_until(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    return wait_for(ctx, argc ? argv[0] : JS_UNDEFINED, 0);
}

static JSValue event_wait_until(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                                int magic, JSValue *data)
{
    return wait_for(ctx, argc ? argv[0] : JS_UNDEFINED, id_of(ctx, data[0]));
}

static JSValue pass_through(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    return JS_UNDEFINED; /* there is no origin behind atoll to fall through to */
}

static const JSCFunctionListEntry exec_funcs[] = {
    JS_CFUNC_DEF("waitUntil", 1, wait_until),
    JS_CFUNC_DEF("passThroughOnException", 0, pass_through),
};

static JSValue respond_with(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                            int magic, JSValue *data)
{
    iso *i = iso_of(ctx);
    uint64_t id = id_of(ctx, data[0]);
    iso_req *r = req_find(i, id);
    if (!r || r->responded)
        return JS_ThrowTypeError(ctx, "respondWith() was already called for this request");
    r->responded = true;
    settle(i, id, JS_DupValue(ctx, argc ? argv[0] : JS_UNDEFINED));
    return JS_UNDEFINED;
}

/* The length of one of our listener arrays. */
static size_t list_length(JSContext *ctx, JSValueConst list)
{
    int64_t n = 0;
    if (JS_IsUndefined(list))
        return 0;
    JSValue len = JS_GetPropertyStr(ctx, list, "length");
    JS_ToInt64(ctx, &n, len);
    JS_FreeValue(ctx, len);
    return n > 0 ? (size_t)n : 0;
}

static JSValue add_event_listener(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    iso *i = iso_of(ctx);
    const char *type = argc > 0 ? JS_ToCString(ctx, argv[0]) : NULL;
    if (!type)
        return JS_ThrowTypeError(ctx, "addEventListener requires an event type");
    JSValueConst list = !strcmp(type, "fetch") ? i->listeners
                        : !strcmp(type, "scheduled") ? i->sched_listeners : JS_UNDEFINED;
    JS_FreeCString(ctx, type);
    if (argc < 2 || !JS_IsFunction(ctx, argv[1]))
        return JS_ThrowTypeError(ctx, "addEventListener requires a function");
    if (JS_IsUndefined(list))
        return JS_UNDEFINED; /* other events never fire in a worker */
    if (JS_SetPropertyUint32(ctx, list, (uint32_t)list_length(ctx, list), JS_DupValue(ctx, argv[1])) < 0)
        return JS_EXCEPTION;
    return JS_UNDEFINED;
}

/* --- dispatch --- */

static void wall_expired(uv_timer_t *t)
{
    iso_req *r = (iso_req *)t;
    iso *i = r->iso;
    set_limit(i, LIMIT_WALL);
    if (i->depth == 0 && !i->limit_reported)
        fail_all(i);
}

static char *request_url(const http_request *req)
{
    if (!strncasecmp(req->target, "http://", 7) || !strncasecmp(req->target, "https://", 8))
        return xstrdup(req->target);
    const char *host = http_headers_get(&req->headers, "Host");
    if (!host || !*host)
        host = "localhost";
    return xasprintf("http://%s%s", host, req->target[0] == '/' ? req->target : "/");
}

/* A new job in flight, its wall clock running. */
static iso_req *job_new(iso *i)
{
    iso_req *r = xcalloc(1, sizeof *r);
    r->iso = i;
    r->id = ++i->next_id;
    r->next = i->reqs;
    if (r->next)
        r->next->prev = r;
    i->reqs = r;
    i->inflight++;
    uv_timer_init(i->loop, &r->wall);
    if (i->opt.wall_ms)
        uv_timer_start(&r->wall, wall_expired, i->opt.wall_ms, 0);
    return r;
}

void iso_dispatch(iso *i, http_request *req, http_writer *w)
{
    if (i->broken) {
        char *msg = xasprintf("The worker exceeded its %s limit.", limits[i->limit].text);
        http_writer_error(w, limits[i->limit].status, msg);
        free(msg);
        return;
    }
    if (!i->has_fetch) {
        log_tenant(LOG_ERROR, i->name, "a request came in, but the worker has no fetch handler");
        http_writer_error(w, 500, "The worker has no fetch handler.");
        return;
    }
    JSContext *ctx = i->ctx;
    iso_req *r = job_new(i);
    r->req = req;
    r->w = w;

    uint64_t id = r->id;
    enter(i);
    i->current = id;
    char *url = request_url(req);
    JSValue jsreq = jsapi_request_from_http(ctx, req, url);
    free(url);
    JSValue result = JS_EXCEPTION;
    if (JS_IsException(jsreq))
        goto called;
    if (i->is_module) {
        JSValue exec = JS_NewObjectProto(ctx, i->exec_proto);
        if (!JS_IsException(exec)) {
            JSValueConst args[3] = { jsreq, i->env, exec };
            result = JS_Call(ctx, i->fetch, i->handler, 3, args);
        }
        JS_FreeValue(ctx, exec);
    } else {
        JSValue ev = JS_NewObjectProto(ctx, i->exec_proto);
        JSValue idv = JS_NewInt64(ctx, (int64_t)id);
        JS_SetPropertyStr(ctx, ev, "type", JS_NewString(ctx, "fetch"));
        JS_SetPropertyStr(ctx, ev, "request", JS_DupValue(ctx, jsreq));
        JS_SetPropertyStr(ctx, ev, "respondWith", JS_NewCFunctionData(ctx, respond_with, 1, 0, 1, &idv));
        int64_t n = 0;
        JSValue len = JS_GetPropertyStr(ctx, i->listeners, "length");
        JS_ToInt64(ctx, &n, len);
        JS_FreeValue(ctx, len);
        result = JS_UNDEFINED;
        for (int64_t k = 0; k < n && !JS_IsException(result); k++) {
            JSValue fn = JS_GetPropertyUint32(ctx, i->listeners, (uint32_t)k);
            JS_FreeValue(ctx, result);
            result = JS_Call(ctx, fn, JS_UNDEFINED, 1, (JSValueConst *)&ev);
            JS_FreeValue(ctx, fn);
        }
        JS_FreeValue(ctx, ev);
        if (!JS_IsException(result)) {
            JS_FreeValue(ctx, result);
            result = JS_UNDEFINED;
            r = req_find(i, id);
            if (r && !r->responded) {
                log_tenant(LOG_ERROR, i->name, "no fetch listener called respondWith()");
                req_fail(r, 500, "The worker did not respond to the request.");
            }
        }
    }
called:
    JS_FreeValue(ctx, jsreq);
    if (JS_IsException(result)) {
        JSValue exc = JS_GetException(ctx);
        r = req_find(i, id);
        if (r && !i->broken && !i->oom) {
            log_exception(i, exc, "Uncaught exception in the fetch handler");
            req_fail(r, 500, "The worker threw an exception.");
        }
        JS_FreeValue(ctx, exc);
    } else if (i->is_module) {
        settle(i, id, result);
    }
    leave(i, JS_UNDEFINED, NULL);
}

/* --- scheduled events (cron triggers) --- */

static JSValue on_event_ok(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                           int magic, JSValue *data)
{
    event_settle(iso_of(ctx), id_of(ctx, data[0]), false);
    return JS_UNDEFINED;
}

static JSValue on_event_err(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                            int magic, JSValue *data)
{
    iso *i = iso_of(ctx);
    if (req_find(i, id_of(ctx, data[0])) && !i->broken)
        log_exception(i, argc ? argv[0] : JS_UNDEFINED, "Uncaught exception in the scheduled handler");
    event_settle(i, id_of(ctx, data[0]), true);
    return JS_UNDEFINED;
}

static JSValue no_retry(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    return JS_UNDEFINED; /* atoll never retries a failed cron run */
}

bool iso_has_scheduled(const iso *i)
{
    if (i->is_module)
        return JS_IsFunction(i->ctx, i->scheduled);
    return list_length(i->ctx, i->sched_listeners) > 0;
}

int iso_scheduled(iso *i, const char *cron, double scheduled_time_ms,
                  void (*done)(void *data, int outcome), void *data)
{
    if (i->broken)
        return -EAGAIN;
    if (!iso_has_scheduled(i))
        return -ENOENT;
    JSContext *ctx = i->ctx;
    iso_req *r = job_new(i);
    r->done = done;
    r->done_data = data;
    r->cron = xstrdup(cron);
    r->pending = 1; /* the handler itself */
    uint64_t id = r->id;
    enter(i);
    JSValue idv = JS_NewInt64(ctx, (int64_t)id);
    /* The controller; for a service worker also the event. */
    JSValue ev = JS_NewObject(ctx);
    JS_SetPropertyStr(ctx, ev, "type", JS_NewString(ctx, "scheduled"));
    JS_SetPropertyStr(ctx, ev, "cron", JS_NewString(ctx, cron));
    JS_SetPropertyStr(ctx, ev, "scheduledTime", JS_NewFloat64(ctx, scheduled_time_ms));
    JS_SetPropertyStr(ctx, ev, "noRetry", JS_NewCFunction(ctx, no_retry, "noRetry", 0));
    JSValue wait = JS_NewCFunctionData(ctx, event_wait_until, 1, 0, 1, &idv);
    JSValue result = JS_UNDEFINED;
    if (i->is_module) {
        JSValue exec = JS_NewObject(ctx);
        JS_SetPropertyStr(ctx, exec, "waitUntil", JS_DupValue(ctx, wait));
        JS_SetPropertyStr(ctx, exec, "passThroughOnException",
                          JS_NewCFunction(ctx, pass_through, "passThroughOnException", 0));
        JSValueConst args[3] = { ev, i->env, exec };
        result = JS_Call(ctx, i->scheduled, i->handler, 3, args);
        JS_FreeValue(ctx, exec);
    } else {
        JS_SetPropertyStr(ctx, ev, "waitUntil", JS_DupValue(ctx, wait));
        size_t n = list_length(ctx, i->sched_listeners);
        for (size_t k = 0; k < n && !JS_IsException(result); k++) {
            JSValue fn = JS_GetPropertyUint32(ctx, i->sched_listeners, (uint32_t)k);
            JS_FreeValue(ctx, result);
            result = JS_Call(ctx, fn, JS_UNDEFINED, 1, (JSValueConst *)&ev);
            JS_FreeValue(ctx, fn);
        }
        if (!JS_IsException(result)) {
            JS_FreeValue(ctx, result);
            result = JS_UNDEFINED; /* listeners' return values mean nothing */
        }
    }
    JS_FreeValue(ctx, wait);
    JS_FreeValue(ctx, ev);
    if (JS_IsException(result)) {
        JSValue exc = JS_GetException(ctx);
        if (req_find(i, id) && !i->broken && !i->oom) {
            log_exception(i, exc, "Uncaught exception in the scheduled handler");
            event_settle(i, id, true);
        }
        JS_FreeValue(ctx, exc);
    } else {
        JSValue p = jsapi_promise_resolve(ctx, result);
        JSValue ok = JS_NewCFunctionData(ctx, on_event_ok, 1, 0, 1, &idv);
        JSValue ko = JS_NewCFunctionData(ctx, on_event_err, 1, 0, 1, &idv);
        JSValue t = JS_IsException(p) ? JS_EXCEPTION : jsapi_promise_then(ctx, p, ok, ko);
        if (JS_IsException(t)) { /* out of memory: leave() reports the limit */
            JS_FreeValue(ctx, JS_GetException(ctx));
            event_settle(i, id, true);
        }
        JS_FreeValue(ctx, t);
        JS_FreeValue(ctx, ok);
        JS_FreeValue(ctx, ko);
        JS_FreeValue(ctx, p);
    }
    leave(i, JS_UNDEFINED, NULL);
    return 0;
}

/* --- loading --- */

/* 1-based line of the first quoted occurrence of spec in the file, or 0. */
static int import_line(const char *path, const char *spec)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char *line = NULL;
    size_t cap = 0;
    int n = 0, found = 0;
    size_t sl = strlen(spec);
    while (!found && getline(&line, &cap, f) >= 0) {
        n++;
        for (char *p = line; (p = strstr(p, spec)) != NULL; p++)
            if (p > line && (p[-1] == '"' || p[-1] == '\'' || p[-1] == '`') && p[sl] == p[-1])
                found = n;
    }
    free(line);
    fclose(f);
    return found;
}

static char *normalize(JSContext *ctx, const char *base, const char *spec, void *opaque)
{
    bool relative = !strncmp(spec, "./", 2) || !strncmp(spec, "../", 3) || spec[0] == '/';
    if (!relative) {
        JS_ThrowReferenceError(ctx,
                               "Cannot resolve module '%s' imported at %s:%d: only relative imports "
                               "are supported (bundle dependencies with esbuild or wrangler)",
                               spec, base, import_line(base, spec));
        return NULL;
    }
    char *joined;
    if (spec[0] == '/') {
        joined = xstrdup(spec);
    } else {
        const char *slash = strrchr(base, '/');
        joined = xasprintf("%.*s/%s", slash ? (int)(slash - base) : 1, slash ? base : ".", spec);
    }
    char *real = realpath(joined, NULL);
    free(joined);
    if (!real) {
        JS_ThrowReferenceError(ctx, "Cannot find module '%s' imported at %s:%d", spec, base,
                               import_line(base, spec));
        return NULL;
    }
    /* Modules come from the main module's directory tree, as wrangler
     * uploads them: in a server of many tenants, an absolute or ../ import
     * (or a symlink) must not load another tenant's code or any other file
     * the process can read. */
    const char *main = opaque ? *(char *const *)opaque : NULL;
    const char *cut = main ? strrchr(main, '/') : NULL;
    size_t root = cut ? (size_t)(cut - main) : 0;
    if (cut && (strncmp(real, main, root) != 0 || real[root] != '/')) {
        JS_ThrowReferenceError(ctx,
                               "Cannot import '%s' at %s:%d: it is outside the worker's directory %.*s "
                               "(modules must be beside or below the main module)",
                               spec, base, import_line(base, spec), (int)(root ? root : 1), root ? main : "/");
        free(real);
        return NULL;
    }
    char *out = js_malloc(ctx, strlen(real) + 1);
    if (out)
        strcpy(out, real);
    free(real);
    return out;
}

static JSModuleDef *load_module(JSContext *ctx, const char *name, void *opaque)
{
    err e;
    err_clear(&e);
    bool is_module;
    JSValue fn = iso_cache_load(ctx, name, ISO_CODE_MODULE, &is_module, &e);
    if (JS_IsException(fn)) {
        if (!JS_HasException(ctx))
            JS_ThrowReferenceError(ctx, "Cannot load module %s", e.msg);
        return NULL;
    }
    JSModuleDef *m = JS_VALUE_GET_PTR(fn);
    JS_FreeValue(ctx, fn);
    return m;
}

/* The pending exception as an error message with its stack. */
static int exception_to_err(iso *i, err *e)
{
    JSValue exc = JS_GetException(i->ctx);
    buf b;
    buf_init(&b, sizeof e->msg);
    describe(i->ctx, exc, &b);
    JS_FreeValue(i->ctx, exc);
    err_set(e, -EINVAL, "%s", b.data ? b.data : "exception");
    buf_free(&b);
    return -EINVAL;
}

static int limit_err(iso *i, err *e)
{
    return err_set(e, -EDQUOT, "the worker exceeded its %s limit while loading",
                   limits[i->limit ? i->limit : LIMIT_MEMORY].text);
}

/* env: vars and native bindings as read-only properties of an object
 * that cannot be extended, shared by every request. */
static int build_env(iso *i, const iso_options *opt, err *e)
{
    JSContext *ctx = i->ctx;
    i->env = JS_NewObject(ctx);
    if (JS_IsException(i->env))
        return limit_err(i, e);
    for (size_t k = 0; k < opt->nvars + opt->nbindings; k++) {
        const char *name;
        JSValue v;
        if (k < opt->nvars) {
            const iso_var *var = &opt->vars[k];
            name = var->name;
            const char *json = var->json ? var->json : "null";
            v = JS_ParseJSON(ctx, json, strlen(json), name);
        } else {
            const iso_binding *b = &opt->bindings[k - opt->nvars];
            name = b->name;
            iso_binding_create_fn *create = iso_binding_lookup(b->kind);
            if (!create)
                return err_set(e, -EINVAL, "env.%s: no binding of kind \"%s\" is known", name, b->kind);
            v = create(ctx, i->loop, b);
        }
        if (JS_IsException(v) ||
            JS_DefinePropertyValueStr(ctx, i->env, name, v, JS_PROP_ENUMERABLE | JS_PROP_THROW) < 0) {
            exception_to_err(i, e);
            return err_prefix(e, "env.%s", name);
        }
    }
    if (JS_PreventExtensions(ctx, i->env) < 0)
        return exception_to_err(i, e);
    return 0;
}

/* A service-worker script sees its env bindings as globals, as on Workers. */
static int env_to_globals(iso *i)
{
    JSContext *ctx = i->ctx;
    JSPropertyEnum *props = NULL;
    uint32_t n = 0;
    if (JS_GetOwnPropertyNames(ctx, &props, &n, i->env, JS_GPN_STRING_MASK) < 0)
        return -1;
    JSValue global = JS_GetGlobalObject(ctx);
    int rc = 0;
    for (uint32_t k = 0; k < n; k++) {
        JSValue v = JS_GetProperty(ctx, i->env, props[k].atom);
        if (rc == 0 && JS_DefinePropertyValue(ctx, global, props[k].atom, v, JS_PROP_ENUMERABLE | JS_PROP_THROW) < 0)
            rc = -1;
        else if (rc)
            JS_FreeValue(ctx, v);
        JS_FreeAtom(ctx, props[k].atom);
    }
    js_free(ctx, props);
    JS_FreeValue(ctx, global);
    return rc;
}

static int load_worker(iso *i, err *e)
{
    JSContext *ctx = i->ctx;
    JSValue fn = iso_cache_load(ctx, i->path, ISO_CODE_DETECT, &i->is_module, e);
    if (JS_IsException(fn))
        return JS_HasException(ctx) ? exception_to_err(i, e) : e->code;
    int rc = 0;
    JSValue ns = JS_UNDEFINED;
    i->loading = true;
    enter(i);
    if (i->is_module) {
        JSModuleDef *m = JS_VALUE_GET_PTR(fn);
        if (JS_ResolveModule(ctx, fn) < 0) {
            JS_FreeValue(ctx, fn);
            rc = exception_to_err(i, e);
            goto out;
        }
        JSValue res = JS_EvalFunction(ctx, fn);
        if (JS_IsException(res)) {
            rc = i->broken ? limit_err(i, e) : exception_to_err(i, e);
            goto out;
        }
        drain_jobs(i);
        if (i->broken || i->oom) {
            JS_FreeValue(ctx, res);
            rc = limit_err(i, e);
            goto out;
        }
        JSPromiseStateEnum st = JS_PromiseState(ctx, res);
        if (st == JS_PROMISE_REJECTED) {
            JSValue reason = JS_PromiseResult(ctx, res);
            JS_Throw(ctx, reason);
            rc = exception_to_err(i, e);
        } else if (st == JS_PROMISE_PENDING) {
            rc = err_set(e, -EINVAL, "%s: top-level await did not settle", i->path);
        }
        JS_FreeValue(ctx, res);
        if (rc)
            goto out;
        ns = JS_GetModuleNamespace(ctx, m);
        i->handler = JS_GetPropertyStr(ctx, ns, "default");
        if (JS_IsObject(i->handler)) {
            i->fetch = JS_GetPropertyStr(ctx, i->handler, "fetch");
            i->scheduled = JS_GetPropertyStr(ctx, i->handler, "scheduled");
        }
        i->has_fetch = JS_IsFunction(ctx, i->fetch);
        if (JS_HasException(ctx)) /* a throwing getter */
            rc = exception_to_err(i, e);
        else if (!i->has_fetch && !JS_IsFunction(ctx, i->scheduled))
            rc = err_set(e, -EINVAL,
                         "%s:1: the module has no default export with a fetch(request, env, ctx) "
                         "method (export default { async fetch(request, env, ctx) { ... } })",
                         i->path);
    } else {
        JSValue global = JS_GetGlobalObject(ctx);
        i->listeners = JS_NewArray(ctx);
        i->sched_listeners = JS_NewArray(ctx);
        JS_SetPropertyStr(ctx, global, "addEventListener",
                          JS_NewCFunction(ctx, add_event_listener, "addEventListener", 2));
        JS_FreeValue(ctx, global);
        if (env_to_globals(i) < 0) {
            JS_FreeValue(ctx, fn);
            rc = exception_to_err(i, e);
            goto out;
        }
        JSValue res = JS_EvalFunction(ctx, fn);
        if (JS_IsException(res)) {
            rc = i->broken ? limit_err(i, e) : exception_to_err(i, e);
            goto out;
        }
        JS_FreeValue(ctx, res);
        drain_jobs(i);
        i->has_fetch = list_length(ctx, i->listeners) > 0;
        if (i->broken || i->oom)
            rc = limit_err(i, e);
        else if (!i->has_fetch && !list_length(ctx, i->sched_listeners))
            rc = err_set(e, -EINVAL,
                         "%s:1: the script neither exports a default handler nor adds a \"fetch\" "
                         "event listener",
                         i->path);
    }
out:
    JS_FreeValue(ctx, ns);
    leave(i, JS_UNDEFINED, NULL);
    i->loading = false;
    return rc;
}

/* A runtime with its context and the Web API installed, no tenant yet:
 * what the pool keeps ready. Its heap is unlimited until iso_new sets the
 * tenant's cap. */
static iso *iso_blank(uv_loop_t *loop)
{
    iso *i = xcalloc(1, sizeof *i);
    i->loop = loop;
    i->handler = i->fetch = i->scheduled = i->listeners = i->sched_listeners = JS_UNDEFINED;
    i->env = i->exec_proto = JS_UNDEFINED;
    i->waits_tail = &i->waits;
    i->rt = JS_NewRuntime2(&iso_mf, i);
    if (!i->rt)
        abort(); /* host allocation: cannot fail in practice */
    JS_SetRuntimeOpaque(i->rt, i);
    JS_SetInterruptHandler(i->rt, on_interrupt, i);
    JS_SetHostPromiseRejectionTracker(i->rt, on_rejection, i);
    /* normalize confines imports to the main module's directory: it reads
     * i->path, set when a tenant's script is loaded. */
    JS_SetModuleLoaderFunc(i->rt, normalize, load_module, &i->path);
    jsapi_register_classes(i->rt);

    i->ctx = jsapi_new_context(i->rt);
    if (!i->ctx)
        abort();
    jsapi_host host = { .loop = loop, .name = "", .opaque = i, .enter = enter, .leave = leave,
                        .subrequest = charge_subrequest, .kv_op = charge_kv_op, .resume = resume_request, .charge_cpu = charge_cpu,
                        .over_cpu = over_cpu };
    if (jsapi_install(i->ctx, &host) < 0)
        abort();
    i->exec_proto = JS_NewObject(i->ctx);
    JS_SetPropertyFunctionList(i->ctx, i->exec_proto, exec_funcs, sizeof exec_funcs / sizeof exec_funcs[0]);
    return i;
}

static iso *pool_take(iso_pool *p, uv_loop_t *loop);

int iso_new(uv_loop_t *loop, const char *script_path, const iso_options *opt, iso **out, err *e)
{
    char *path = realpath(script_path, NULL);
    if (!path)
        return err_set(e, -errno, "%s: %s", script_path, strerror(errno));
    iso *i = opt->pool ? pool_take(opt->pool, loop) : NULL;
    if (!i)
        i = iso_blank(loop);
    i->path = path;
    i->opt = *opt;
    /* Borrowed arrays are read here only. */
    i->opt.vars = NULL;
    i->opt.bindings = NULL;
    i->opt.nvars = i->opt.nbindings = 0;
    i->opt.pool = NULL;
    i->opt.name = NULL;
    if (opt->name) {
        i->name = xstrdup(opt->name);
    } else {
        const char *slash = strrchr(script_path, '/');
        i->name = xstrdup(slash ? slash + 1 : script_path);
    }
    jsapi_set_name(i->ctx, i->name);
    jsapi_set_fetch_policy(i->ctx, opt->fetch_allow, opt->fetch_resolve,
                           opt->memory_limit ? opt->memory_limit : 128u << 20, opt->subrequests);
    /* 0 would turn QuickJS's stack check off: deep recursion would then
     * crash the process instead of throwing. */
    JS_SetMaxStackSize(i->rt, opt->stack_limit ? opt->stack_limit : 512u << 10);
    JS_SetMemoryLimit(i->rt, opt->memory_limit ? opt->memory_limit : (size_t)-1);

    int rc = build_env(i, opt, e);
    if (rc == 0)
        rc = load_worker(i, e);
    if (rc < 0) {
        err_prefix(e, "load %s", script_path);
        iso_free(i);
        return rc;
    }
    *out = i;
    return 0;
}

size_t iso_inflight(const iso *i) { return i->inflight; }
bool iso_broken(const iso *i) { return i->broken; }
const char *iso_limit(const iso *i) { return limits[i->limit].key; }
size_t iso_waituntil_pending(const iso *i) { return i->waituntil_pending; }
uint64_t iso_cpu_ns_total(const iso *i) { return i->cpu_total; }

uint64_t iso_request_cpu_ns(const iso *i, const http_writer *w)
{
    uint64_t base;
    bool in_slice;
    const iso_req *r = i->reqs;
    while (r && r->w != w)
        r = r->next;
    if (r) {
        base = r->cpu_ns;
        in_slice = i->depth > 0;
    } else if (w && w == i->done_w) {
        base = i->done_cpu;
        in_slice = i->done_in_slice && i->depth > 0;
    } else {
        return 0;
    }
    /* The slice now running has not been added to any job yet. */
    return in_slice ? base + slice_cpu_ns(i) : base;
}

size_t iso_heap_bytes(const iso *i)
{
    JSMemoryUsage u;
    JS_ComputeMemoryUsage(i->rt, &u);
    return (size_t)u.malloc_size;
}

static void wait_timer_closed(uv_handle_t *h) { free(h); }

void iso_free(iso *i)
{
    if (!i)
        return;
    while (i->reqs)
        req_fail(i->reqs, 503, "The worker was shut down before it answered.");
    while (i->waits)
        unlink_wait(i, &i->waits);
    i->waituntil_pending = 0;
    if (i->wait_timer)
        uv_close((uv_handle_t *)i->wait_timer, wait_timer_closed);
    if (i->ctx) {
        JSContext *ctx = i->ctx;
        jsapi_uninstall(ctx);
        i->broken = true; /* nothing may run from here on */
        i->loading = true;
        flush_rejections(i);
        free(i->rejections);
        JS_FreeValue(ctx, i->handler);
        JS_FreeValue(ctx, i->fetch);
        JS_FreeValue(ctx, i->scheduled);
        JS_FreeValue(ctx, i->listeners);
        JS_FreeValue(ctx, i->sched_listeners);
        JS_FreeValue(ctx, i->env);
        JS_FreeValue(ctx, i->exec_proto);
        JS_FreeContext(ctx);
    }
    if (i->rt)
        JS_FreeRuntime(i->rt);
    free(i->name);
    free(i->path);
    free(i);
}

/* --- the pool of ready runtimes --- */

struct iso_pool {
    uv_idle_t idle;     /* first: the close callback frees the pool */
    uv_loop_t *loop;
    iso **ready;
    size_t count, size;
};

/* One runtime per loop iteration, so refilling never holds up requests
 * for more than one runtime's creation (~60 us). */
static void pool_refill(uv_idle_t *h)
{
    iso_pool *p = (iso_pool *)h;
    if (p->count < p->size)
        p->ready[p->count++] = iso_blank(p->loop);
    if (p->count == p->size)
        uv_idle_stop(h);
}

iso_pool *iso_pool_new(uv_loop_t *loop, size_t size)
{
    iso_pool *p = xcalloc(1, sizeof *p);
    p->loop = loop;
    p->size = size ? size : ISO_POOL_DEFAULT;
    p->ready = xcalloc(p->size, sizeof *p->ready);
    uv_idle_init(loop, &p->idle);
    uv_idle_start(&p->idle, pool_refill);
    return p;
}

/* A ready runtime, or NULL (empty, or a pool of another loop). */
static iso *pool_take(iso_pool *p, uv_loop_t *loop)
{
    if (p->loop != loop)
        return NULL;
    if (!uv_is_active((uv_handle_t *)&p->idle))
        uv_idle_start(&p->idle, pool_refill);
    return p->count ? p->ready[--p->count] : NULL;
}

size_t iso_pool_ready(const iso_pool *p) { return p->count; }

void iso_pool_fill(iso_pool *p)
{
    while (p->count < p->size)
        p->ready[p->count++] = iso_blank(p->loop);
    uv_idle_stop(&p->idle);
}

static void pool_closed(uv_handle_t *h)
{
    iso_pool *p = (iso_pool *)h;
    free(p->ready);
    free(p);
}

void iso_pool_free(iso_pool *p)
{
    if (!p)
        return;
    while (p->count)
        iso_free(p->ready[--p->count]);
    uv_close((uv_handle_t *)&p->idle, pool_closed);
}

/* --- the compile-only check for deploys --- */

/* The pending exception as "file:line: Name: message", the file and line
 * from the first frame of its stack (a syntax error has one). */
static int check_error(JSContext *ctx, const char *shown, const char *abs, err *e)
{
    JSValue exc = JS_GetException(ctx);
    const char *msg = JS_ToCString(ctx, exc);
    JSValue stack = JS_IsObject(exc) ? JS_GetPropertyStr(ctx, exc, "stack") : JS_UNDEFINED;
    const char *st = JS_IsString(stack) ? JS_ToCString(ctx, stack) : NULL;
    const char *at = st ? strstr(st, "at ") : NULL;
    int rc;
    if (at) {
        /* The frame is "FILE:LINE:COL" (or "FILE:LINE"): strip the numbers. */
        at += 3;
        const char *end = at + strcspn(at, "\n"), *line = NULL;
        for (int k = 0; k < 2; k++) {
            const char *colon = memrchr(at, ':', (size_t)(end - at));
            if (!colon || colon[1] < '0' || colon[1] > '9')
                break;
            line = colon + 1;
            end = colon;
        }
        int flen = (int)(end - at);
        bool main = strlen(abs) == (size_t)flen && !strncmp(abs, at, (size_t)flen);
        rc = err_set(e, -EINVAL, "%.*s:%d: %s", main ? (int)strlen(shown) : flen, main ? shown : at,
                     line ? atoi(line) : 1, msg ? msg : "error");
    } else {
        rc = err_set(e, -EINVAL, "%s: %s", shown, msg ? msg : "error");
    }
    JS_FreeCString(ctx, st);
    JS_FreeValue(ctx, stack);
    JS_FreeCString(ctx, msg);
    JS_FreeValue(ctx, exc);
    return rc;
}

int iso_check_script(const char *path, err *e)
{
    char *abs = realpath(path, NULL);
    if (!abs)
        return err_set(e, -errno, "%s: %s", path, strerror(errno));
    JSRuntime *rt = JS_NewRuntime();
    if (!rt)
        abort();
    /* A deploy cannot make the host compile without bound. */
    JS_SetMemoryLimit(rt, CHECK_MEMORY_LIMIT);
    JS_SetMaxStackSize(rt, 512u << 10);
    JS_SetModuleLoaderFunc(rt, normalize, load_module, &abs);
    JSContext *ctx = jsapi_new_context(rt);
    if (!ctx)
        abort();
    bool is_module;
    int rc = 0;
    JSValue fn = iso_cache_load(ctx, abs, ISO_CODE_DETECT, &is_module, e);
    if (JS_IsException(fn))
        rc = JS_HasException(ctx) ? check_error(ctx, path, abs, e) : e->code;
    else if (is_module && JS_ResolveModule(ctx, fn) < 0) /* compiles the imports, runs nothing */
        rc = check_error(ctx, path, abs, e);
    JS_FreeValue(ctx, fn);
    JS_FreeContext(ctx);
    JS_FreeRuntime(rt);
    free(abs);
    return rc;
}
