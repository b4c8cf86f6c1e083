/* An isolate (see isolate.h): one QuickJS runtime + context per tenant,
 * its limits (heap cap through our allocator, stack cap, CPU budget from
 * the interrupt handler, wall-clock budget on a libuv timer), loading a
 * worker (ES module with relative imports, or service-worker script) from
 * the bytecode cache, and dispatching requests to its fetch handler.
 *
 * Every entry into JavaScript goes through enter()/leave(): leave drains
 * the promise job queue, accounts CPU time to the requests in flight,
 * reports unhandled rejections, and turns a tripped limit into 503s for
 * the requests in flight and a broken isolate. */
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
#include "js/cache.h"

/* The interrupt handler runs every 10,000 bytecode operations or so; the
 * CPU clock is read on every CPU_POLL_EVERY-th call only. */
#define CPU_POLL_EVERY 4
#define MALLOC_OVERHEAD 8

typedef struct iso_req {
    uv_timer_t wall;            /* first: the close callback frees the struct */
    struct iso_req *next, *prev;
    iso *iso;
    uint64_t id;
    http_request *req;
    http_writer *w;
    uint64_t cpu_ns;            /* CPU time spent in JS while this request was in flight */
    bool responded;             /* a service worker called respondWith */
} iso_req;

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
    JSValue listeners;          /* service worker: array of fetch listeners */
    JSValue env;
    JSValue exec_proto;         /* prototype of ctx objects: waitUntil, passThroughOnException */

    iso_req *reqs;
    size_t inflight;
    uint64_t next_id;
    size_t waituntil_pending;

    int depth;                  /* nesting of enter() */
    uint64_t cpu_start, cpu_base;
    unsigned polls;
    bool loading;
    bool broken, oom, limit_reported;
    const char *limit;          /* which limit was exceeded */

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
    opt->memory_limit = 128u << 20;
    opt->stack_limit = 512u << 10;
    opt->cpu_ms = 50;
    opt->wall_ms = 30000;
    opt->name = NULL;
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
    log_error("[%s] %s: %s", i->name, what, b.data ? b.data : "");
    buf_free(&b);
}

static void set_limit(iso *i, const char *what)
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

static int on_interrupt(JSRuntime *rt, void *opaque)
{
    iso *i = opaque;
    if (i->broken)
        return 1;
    if (i->oom) {
        set_limit(i, "memory");
        return 1;
    }
    if (!i->opt.cpu_ms || i->depth == 0 || ++i->polls % CPU_POLL_EVERY)
        return 0;
    uint64_t used = i->cpu_base + (clock_thread_cpu_ns() - i->cpu_start);
    if (used > i->opt.cpu_ms * 1000000u) {
        set_limit(i, "CPU time");
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

static void req_fail(iso_req *r, int status, const char *message)
{
    http_writer *w = r->w;
    req_done(r);
    http_writer_error(w, status, message);
}

static iso_req *req_find(iso *i, uint64_t id)
{
    for (iso_req *r = i->reqs; r; r = r->next)
        if (r->id == id)
            return r;
    return NULL;
}

/* A limit was exceeded: every request in flight gets a 503 naming it. */
static void fail_all(iso *i)
{
    i->limit_reported = true;
    log_error("[%s] exceeded its %s limit; the isolate is discarded (%zu request(s) in flight)",
              i->name, i->limit, i->inflight);
    char *msg = xasprintf("The worker exceeded its %s limit.", i->limit);
    while (i->reqs)
        req_fail(i->reqs, 503, msg);
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
        i->cpu_start = clock_thread_cpu_ns();
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
    uint64_t spent = clock_thread_cpu_ns() - i->cpu_start;
    for (iso_req *r = i->reqs; r; r = r->next)
        r->cpu_ns += spent;
    if (i->oom)
        set_limit(i, "memory");
    flush_rejections(i);
    if (i->broken && !i->limit_reported)
        fail_all(i);
}

/* --- completing a request --- */

/* The handler's outcome for request `id`: a Response is sent; anything
 * else is a 500. Consumes value. */
static void complete(iso *i, uint64_t id, JSValue value)
{
    iso_req *r = req_find(i, id);
    if (!r) { /* already answered (a limit, or iso_free) */
        JS_FreeValue(i->ctx, value);
        return;
    }
    if (jsapi_is_response(i->ctx, value)) {
        http_writer *w = r->w;
        req_done(r);
        jsapi_response_send(i->ctx, value, w);
    } else {
        buf b;
        buf_init(&b, 256);
        jsapi_inspect(i->ctx, value, &b);
        log_error("[%s] the fetch handler did not return a Response (got %s)", i->name,
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
    if (r && !i->broken) {
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

static JSValue on_wait_done(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                            int magic, JSValue *data)
{
    iso *i = iso_of(ctx);
    if (magic && !i->broken)
        log_exception(i, argc ? argv[0] : JS_UNDEFINED, "A waitUntil() promise rejected");
    i->waituntil_pending--;
    return JS_UNDEFINED;
}

static JSValue wait_until(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    iso *i = iso_of(ctx);
    JSValue p = jsapi_promise_resolve(ctx, JS_DupValue(ctx, argc ? argv[0] : JS_UNDEFINED));
    if (JS_IsException(p))
        return p;
    JSValue ok = JS_NewCFunctionData(ctx, on_wait_done, 1, 0, 0, NULL);
    JSValue ko = JS_NewCFunctionData(ctx, on_wait_done, 1, 1, 0, NULL);
    JSValue r = jsapi_promise_then(ctx, p, ok, ko);
    JS_FreeValue(ctx, ok);
    JS_FreeValue(ctx, ko);
    JS_FreeValue(ctx, p);
    if (JS_IsException(r))
        return r;
    JS_FreeValue(ctx, r);
    i->waituntil_pending++;
    return JS_UNDEFINED;
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

static JSValue add_event_listener(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    iso *i = iso_of(ctx);
    const char *type = argc > 0 ? JS_ToCString(ctx, argv[0]) : NULL;
    if (!type)
        return JS_ThrowTypeError(ctx, "addEventListener requires an event type");
    bool fetch = strcmp(type, "fetch") == 0;
    JS_FreeCString(ctx, type);
    if (argc < 2 || !JS_IsFunction(ctx, argv[1]))
        return JS_ThrowTypeError(ctx, "addEventListener requires a function");
    if (!fetch)
        return JS_UNDEFINED; /* "scheduled" and others come with later issues */
    int64_t n = 0;
    JSValue len = JS_GetPropertyStr(ctx, i->listeners, "length");
    JS_ToInt64(ctx, &n, len);
    JS_FreeValue(ctx, len);
    if (JS_SetPropertyUint32(ctx, i->listeners, (uint32_t)n, JS_DupValue(ctx, argv[1])) < 0)
        return JS_EXCEPTION;
    return JS_UNDEFINED;
}

/* --- dispatch --- */

static void wall_expired(uv_timer_t *t)
{
    iso_req *r = (iso_req *)t;
    iso *i = r->iso;
    set_limit(i, "wall time");
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

void iso_dispatch(iso *i, http_request *req, http_writer *w)
{
    if (i->broken) {
        char *msg = xasprintf("The worker exceeded its %s limit.", i->limit ? i->limit : "resource");
        http_writer_error(w, 503, msg);
        free(msg);
        return;
    }
    JSContext *ctx = i->ctx;
    iso_req *r = xcalloc(1, sizeof *r);
    r->iso = i;
    r->id = ++i->next_id;
    r->req = req;
    r->w = w;
    r->next = i->reqs;
    if (r->next)
        r->next->prev = r;
    i->reqs = r;
    i->inflight++;
    uv_timer_init(i->loop, &r->wall);
    if (i->opt.wall_ms)
        uv_timer_start(&r->wall, wall_expired, i->opt.wall_ms, 0);

    uint64_t id = r->id;
    enter(i);
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
                log_error("[%s] no fetch listener called respondWith()", i->name);
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
    return err_set(e, -EDQUOT, "the worker exceeded its %s limit while loading", i->limit ? i->limit : "memory");
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
        i->fetch = JS_IsObject(i->handler) ? JS_GetPropertyStr(ctx, i->handler, "fetch") : JS_UNDEFINED;
        if (!JS_IsFunction(ctx, i->fetch))
            rc = err_set(e, -EINVAL,
                         "%s:1: the module has no default export with a fetch(request, env, ctx) "
                         "method (export default { async fetch(request, env, ctx) { ... } })",
                         i->path);
    } else {
        JSValue global = JS_GetGlobalObject(ctx);
        i->listeners = JS_NewArray(ctx);
        JS_SetPropertyStr(ctx, global, "addEventListener",
                          JS_NewCFunction(ctx, add_event_listener, "addEventListener", 2));
        JS_FreeValue(ctx, global);
        JSValue res = JS_EvalFunction(ctx, fn);
        if (JS_IsException(res)) {
            rc = i->broken ? limit_err(i, e) : exception_to_err(i, e);
            goto out;
        }
        JS_FreeValue(ctx, res);
        drain_jobs(i);
        int64_t n = 0;
        JSValue len = JS_GetPropertyStr(ctx, i->listeners, "length");
        JS_ToInt64(ctx, &n, len);
        JS_FreeValue(ctx, len);
        if (i->broken || i->oom)
            rc = limit_err(i, e);
        else if (n == 0)
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

int iso_new(uv_loop_t *loop, const char *script_path, const iso_options *opt, iso **out, err *e)
{
    iso *i = xcalloc(1, sizeof *i);
    i->loop = loop;
    i->opt = *opt;
    i->handler = i->fetch = i->listeners = i->env = i->exec_proto = JS_UNDEFINED;
    int rc;
    i->path = realpath(script_path, NULL);
    if (!i->path) {
        rc = err_set(e, -errno, "%s: %s", script_path, strerror(errno));
        free(i);
        return rc;
    }
    if (opt->name) {
        i->name = xstrdup(opt->name);
    } else {
        const char *slash = strrchr(script_path, '/');
        i->name = xstrdup(slash ? slash + 1 : script_path);
    }
    i->rt = JS_NewRuntime2(&iso_mf, i);
    if (!i->rt)
        abort(); /* host allocation: cannot fail in practice */
    JS_SetRuntimeOpaque(i->rt, i);
    /* 0 would turn QuickJS's stack check off: deep recursion would then
     * crash the process instead of throwing. */
    JS_SetMaxStackSize(i->rt, opt->stack_limit ? opt->stack_limit : 512u << 10);
    JS_SetInterruptHandler(i->rt, on_interrupt, i);
    JS_SetHostPromiseRejectionTracker(i->rt, on_rejection, i);
    JS_SetModuleLoaderFunc(i->rt, normalize, load_module, i);
    jsapi_register_classes(i->rt);

    i->ctx = jsapi_new_context(i->rt);
    if (!i->ctx)
        abort();
    jsapi_host host = { .loop = loop, .name = i->name, .opaque = i, .enter = enter, .leave = leave };
    if (jsapi_install(i->ctx, &host) < 0)
        abort();
    i->env = JS_NewObject(i->ctx);
    i->exec_proto = JS_NewObject(i->ctx);
    JS_SetPropertyFunctionList(i->ctx, i->exec_proto, exec_funcs, sizeof exec_funcs / sizeof exec_funcs[0]);
    JS_SetMemoryLimit(i->rt, opt->memory_limit ? opt->memory_limit : (size_t)-1);

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
const char *iso_limit(const iso *i) { return i->broken ? i->limit : NULL; }
size_t iso_waituntil_pending(const iso *i) { return i->waituntil_pending; }

size_t iso_heap_bytes(const iso *i)
{
    JSMemoryUsage u;
    JS_ComputeMemoryUsage(i->rt, &u);
    return (size_t)u.malloc_size;
}

void iso_free(iso *i)
{
    if (!i)
        return;
    while (i->reqs)
        req_fail(i->reqs, 503, "The worker was shut down before it answered.");
    if (i->ctx) {
        JSContext *ctx = i->ctx;
        jsapi_uninstall(ctx);
        i->broken = true; /* nothing may run from here on */
        i->loading = true;
        flush_rejections(i);
        free(i->rejections);
        JS_FreeValue(ctx, i->handler);
        JS_FreeValue(ctx, i->fetch);
        JS_FreeValue(ctx, i->listeners);
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
