/* setTimeout/clearTimeout/setInterval/clearInterval on libuv timers owned
 * by the isolate, and queueMicrotask on QuickJS's job queue. A timer's
 * handle is freed in its close callback, after the isolate may be gone, so
 * the timer holds nothing of the isolate once closed. */
#include "js/api/api_internal.h"

#include <stdlib.h>

#include "core/alloc.h"

typedef struct jsapi_timer {
    uv_timer_t handle;         /* first: the close callback frees the struct */
    struct jsapi_timer *next, *prev;
    JSContext *ctx;
    uint32_t id;
    bool repeat;
    JSValue fn;
    int argc;
    JSValue *argv;
} jsapi_timer;

static void timer_closed(uv_handle_t *h) { free(h); }

static void unlink_timer(jsapi_state *st, jsapi_timer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        st->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->next = t->prev = NULL;
}

/* Drops the timer's values and closes its handle (freed on the loop). */
static void destroy_timer(jsapi_state *st, jsapi_timer *t)
{
    unlink_timer(st, t);
    JS_FreeValue(t->ctx, t->fn);
    for (int i = 0; i < t->argc; i++)
        JS_FreeValue(t->ctx, t->argv[i]);
    free(t->argv);
    uv_timer_stop(&t->handle);
    uv_close((uv_handle_t *)&t->handle, timer_closed);
}

static void timer_fired(uv_timer_t *h)
{
    jsapi_timer *t = (jsapi_timer *)h;
    JSContext *ctx = t->ctx;
    jsapi_state *st = jsapi_state_of(ctx);
    if (!st->host.enter(st->host.opaque)) {
        destroy_timer(st, t);
        return;
    }
    /* The call may clear this very timer; keep what it needs. */
    JSValue fn = JS_DupValue(ctx, t->fn);
    int argc = t->argc;
    JSValue *argv = argc ? xmalloc(sizeof *argv * (size_t)argc) : NULL;
    for (int i = 0; i < argc; i++)
        argv[i] = JS_DupValue(ctx, t->argv[i]);
    if (!t->repeat)
        destroy_timer(st, t);
    JSValue r = JS_Call(ctx, fn, JS_UNDEFINED, argc, (JSValueConst *)argv);
    JS_FreeValue(ctx, fn);
    for (int i = 0; i < argc; i++)
        JS_FreeValue(ctx, argv[i]);
    free(argv);
    st->host.leave(st->host.opaque, r, "timer callback");
}

static JSValue set_timer(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                         int repeat)
{
    jsapi_state *st = jsapi_state_of(ctx);
    if (argc < 1 || !JS_IsFunction(ctx, argv[0]))
        return JS_ThrowTypeError(ctx, "%s: the callback must be a function",
                                 repeat ? "setInterval" : "setTimeout");
    double ms = 0;
    if (argc > 1 && JS_ToFloat64(ctx, &ms, argv[1]) < 0)
        return JS_EXCEPTION;
    if (!(ms >= 0)) /* also NaN */
        ms = 0;
    if (ms > 2147483647.0)
        ms = 2147483647.0;
    jsapi_timer *t = xcalloc(1, sizeof *t);
    uv_timer_init(st->host.loop, &t->handle);
    t->ctx = ctx;
    t->id = st->next_timer_id++;
    if (!st->next_timer_id)
        st->next_timer_id = 1;
    t->repeat = repeat;
    t->fn = JS_DupValue(ctx, argv[0]);
    t->argc = argc > 2 ? argc - 2 : 0;
    t->argv = t->argc ? xmalloc(sizeof *t->argv * (size_t)t->argc) : NULL;
    for (int i = 0; i < t->argc; i++)
        t->argv[i] = JS_DupValue(ctx, argv[i + 2]);
    t->next = st->timers;
    if (t->next)
        t->next->prev = t;
    st->timers = t;
    uint64_t delay = (uint64_t)ms;
    /* The loop's clock is cached from the start of this iteration; JS may
     * have run for a while since, and the delay counts from now. */
    uv_update_time(st->host.loop);
    /* Browsers clamp repeating timers to at least 1 ms; a 0 ms interval
     * would otherwise spin the loop. */
    uv_timer_start(&t->handle, timer_fired, delay, repeat ? (delay ? delay : 1) : 0);
    return JS_NewUint32(ctx, t->id);
}

JSValue jsapi_set_timeout(JSContext *ctx, JSValueConst fn, double ms)
{
    JSValueConst argv[2] = { fn, JS_NewFloat64(ctx, ms) };
    return set_timer(ctx, JS_UNDEFINED, 2, argv, 0);
}

static JSValue clear_timer(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    jsapi_state *st = jsapi_state_of(ctx);
    uint32_t id;
    if (argc < 1 || !JS_IsNumber(argv[0]) || JS_ToUint32(ctx, &id, argv[0]) < 0)
        return JS_UNDEFINED;
    for (jsapi_timer *t = st->timers; t; t = t->next) {
        if (t->id == id) {
            destroy_timer(st, t);
            break;
        }
    }
    return JS_UNDEFINED;
}

static JSValue microtask_job(JSContext *ctx, int argc, JSValueConst *argv)
{
    return JS_Call(ctx, argv[0], JS_UNDEFINED, 0, NULL);
}

static JSValue queue_microtask(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    if (argc < 1 || !JS_IsFunction(ctx, argv[0]))
        return JS_ThrowTypeError(ctx, "queueMicrotask: the callback must be a function");
    if (JS_EnqueueJob(ctx, microtask_job, 1, argv) < 0)
        return JS_EXCEPTION;
    return JS_UNDEFINED;
}

static const JSCFunctionListEntry timer_funcs[] = {
    JS_CFUNC_MAGIC_DEF("setTimeout", 2, set_timer, 0),
    JS_CFUNC_MAGIC_DEF("setInterval", 2, set_timer, 1),
    JS_CFUNC_DEF("clearTimeout", 1, clear_timer),
    JS_CFUNC_DEF("clearInterval", 1, clear_timer),
    JS_CFUNC_DEF("queueMicrotask", 1, queue_microtask),
};

int jsapi_timers_install(JSContext *ctx, JSValueConst global)
{
    JS_SetPropertyFunctionList(ctx, global, timer_funcs, sizeof timer_funcs / sizeof timer_funcs[0]);
    return JS_HasException(ctx) ? -1 : 0;
}

void jsapi_timers_free(JSContext *ctx)
{
    jsapi_state *st = jsapi_state_of(ctx);
    while (st->timers)
        destroy_timer(st, st->timers);
}
