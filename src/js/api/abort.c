/* AbortController and AbortSignal (DOM Standard). A signal is an
 * EventTarget (events.c) whose struct also carries aborted/reason/onabort
 * and its abort algorithms: C closures run before the "abort" event, which
 * is how listeners added with {signal} go away and how AbortSignal.any()
 * follows its sources. AbortSignal.timeout() runs on the isolate's timers. */
#include "js/api/api_internal.h"

#include <math.h>

/* --- AbortSignal --- */

static JSValue signal_ctor(JSContext *ctx, JSValueConst new_target, int argc, JSValueConst *argv)
{
    return JS_ThrowTypeError(ctx, "Illegal constructor: use AbortController or AbortSignal.abort()");
}

/* A new, not yet aborted signal. */
static JSValue new_signal(JSContext *ctx, jsapi_target **out)
{
    JSValueConst ctor = jsapi_lazy(ctx, JSAPI_ABORTSIGNAL);
    if (JS_IsException(ctor))
        return JS_EXCEPTION;
    JSValue proto = JS_GetPropertyStr(ctx, ctor, "prototype");
    if (JS_IsException(proto))
        return proto;
    JSValue obj = jsapi_target_new(ctx, proto, out);
    JS_FreeValue(ctx, proto);
    if (!JS_IsException(obj))
        (*out)->is_signal = true;
    return obj;
}

int jsapi_signal_add_algorithm(JSContext *ctx, jsapi_target *t, JSValue fn)
{
    if (t->nalgorithms == t->capalgorithms) {
        size_t cap = t->capalgorithms ? t->capalgorithms * 2 : 2;
        JSValue *a = js_realloc(ctx, t->algorithms, cap * sizeof *a);
        if (!a) {
            JS_FreeValue(ctx, fn);
            return -1;
        }
        t->algorithms = a, t->capalgorithms = cap;
    }
    t->algorithms[t->nalgorithms++] = fn;
    return 0;
}

/* "Signal abort": reason (consumed; undefined means an AbortError). */
static int signal_abort(JSContext *ctx, JSValueConst obj, JSValue reason)
{
    jsapi_target *t = jsapi_target_of(obj);
    if (!t || t->aborted) {
        JS_FreeValue(ctx, reason);
        return 0;
    }
    if (JS_IsUndefined(reason)) {
        reason = jsapi_domexception_new(ctx, "AbortError", "This operation was aborted");
        if (JS_IsException(reason))
            return -1;
    }
    t->aborted = true;
    t->reason = reason;
    /* The algorithms run once; a new list starts empty. */
    JSValue *algs = t->algorithms;
    size_t n = t->nalgorithms;
    t->algorithms = NULL;
    t->nalgorithms = t->capalgorithms = 0;
    JSValue keep = JS_DupValue(ctx, obj);
    for (size_t i = 0; i < n; i++) {
        JSValue r = JS_Call(ctx, algs[i], JS_UNDEFINED, 0, NULL);
        if (JS_IsException(r))
            jsapi_report_exception(ctx, "an abort algorithm");
        JS_FreeValue(ctx, r);
        JS_FreeValue(ctx, algs[i]);
    }
    js_free(ctx, algs);
    int rc = jsapi_target_fire(ctx, obj, "abort");
    JS_FreeValue(ctx, keep);
    return rc;
}

static jsapi_target *this_signal(JSContext *ctx, JSValueConst this_val)
{
    jsapi_target *t = jsapi_target_of(this_val);
    if (!t || !t->is_signal) {
        JS_ThrowTypeError(ctx, "not an AbortSignal");
        return NULL;
    }
    return t;
}

enum { S_ABORTED, S_REASON, S_ONABORT };

static JSValue signal_get(JSContext *ctx, JSValueConst this_val, int magic)
{
    jsapi_target *t = this_signal(ctx, this_val);
    if (!t)
        return JS_EXCEPTION;
    switch (magic) {
    case S_ABORTED: return JS_NewBool(ctx, t->aborted);
    case S_REASON: return JS_DupValue(ctx, t->reason);
    default: return JS_IsUndefined(t->onabort) ? JS_NULL : JS_DupValue(ctx, t->onabort);
    }
}

static JSValue signal_set_onabort(JSContext *ctx, JSValueConst this_val, JSValueConst val, int magic)
{
    jsapi_target *t = this_signal(ctx, this_val);
    if (!t)
        return JS_EXCEPTION;
    JS_FreeValue(ctx, t->onabort);
    /* An event handler attribute holds functions only (else null). */
    t->onabort = JS_IsFunction(ctx, val) ? JS_DupValue(ctx, val) : JS_UNDEFINED;
    return JS_UNDEFINED;
}

static JSValue signal_throw_if_aborted(JSContext *ctx, JSValueConst this_val, int argc,
                                       JSValueConst *argv)
{
    jsapi_target *t = this_signal(ctx, this_val);
    if (!t)
        return JS_EXCEPTION;
    if (t->aborted)
        return JS_Throw(ctx, JS_DupValue(ctx, t->reason));
    return JS_UNDEFINED;
}

static JSValue signal_abort_static(JSContext *ctx, JSValueConst this_val, int argc,
                                   JSValueConst *argv)
{
    jsapi_target *t;
    JSValue obj = new_signal(ctx, &t);
    if (JS_IsException(obj))
        return obj;
    if (signal_abort(ctx, obj, JS_DupValue(ctx, argc > 0 ? argv[0] : JS_UNDEFINED)) < 0) {
        JS_FreeValue(ctx, obj);
        return JS_EXCEPTION;
    }
    return obj;
}

/* Timer callback of AbortSignal.timeout(): data[0] is the signal. */
static JSValue on_timeout(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                          int magic, JSValue *data)
{
    JSValue reason = jsapi_domexception_new(ctx, "TimeoutError", "The operation timed out");
    if (JS_IsException(reason))
        return reason;
    return signal_abort(ctx, data[0], reason) < 0 ? JS_EXCEPTION : JS_UNDEFINED;
}

static JSValue signal_timeout(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    double ms;
    if (argc < 1)
        return JS_ThrowTypeError(ctx, "AbortSignal.timeout: 1 argument required");
    if (JS_ToFloat64(ctx, &ms, argv[0]) < 0)
        return JS_EXCEPTION;
    /* [EnforceRange] unsigned long long */
    if (!isfinite(ms) || ms < 0 || ms > 9007199254740991.0)
        return JS_ThrowTypeError(ctx, "AbortSignal.timeout: the delay must be a non-negative number");
    jsapi_target *t;
    JSValue obj = new_signal(ctx, &t);
    if (JS_IsException(obj))
        return obj;
    JSValue fn = JS_NewCFunctionData(ctx, on_timeout, 0, 0, 1, (JSValueConst *)&obj);
    JSValue id = JS_IsException(fn) ? fn : jsapi_set_timeout(ctx, fn, trunc(ms));
    JS_FreeValue(ctx, fn);
    if (JS_IsException(id)) {
        JS_FreeValue(ctx, obj);
        return id;
    }
    return obj;
}

/* Abort algorithm of a signal made by any(): data is [result, source]. */
static JSValue follow_source(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                             int magic, JSValue *data)
{
    jsapi_target *src = jsapi_target_of(data[1]);
    if (!src)
        return JS_UNDEFINED;
    return signal_abort(ctx, data[0], JS_DupValue(ctx, src->reason)) < 0 ? JS_EXCEPTION
                                                                         : JS_UNDEFINED;
}

static JSValue signal_any(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    if (argc < 1)
        return JS_ThrowTypeError(ctx, "AbortSignal.any: 1 argument required");
    JSValue global = JS_GetGlobalObject(ctx);
    JSValue array = JS_GetPropertyStr(ctx, global, "Array");
    JSValue from = JS_GetPropertyStr(ctx, array, "from");
    JS_FreeValue(ctx, global);
    JSValue list = JS_Call(ctx, from, array, 1, argv);
    JS_FreeValue(ctx, from);
    JS_FreeValue(ctx, array);
    if (JS_IsException(list))
        return list;
    JSValue obj = JS_UNDEFINED, item = JS_UNDEFINED;
    int64_t n;
    if (jsapi_get_length(ctx, list, &n) < 0)
        goto fail;
    for (int64_t i = 0; i < n; i++) {
        item = JS_GetPropertyUint32(ctx, list, (uint32_t)i);
        jsapi_target *s = jsapi_target_of(item);
        if (!s || !s->is_signal) {
            JS_ThrowTypeError(ctx, "AbortSignal.any: every item must be an AbortSignal");
            goto fail;
        }
        JS_FreeValue(ctx, item);
        item = JS_UNDEFINED;
    }
    jsapi_target *t;
    obj = new_signal(ctx, &t);
    if (JS_IsException(obj))
        goto fail;
    for (int64_t i = 0; i < n; i++) {
        item = JS_GetPropertyUint32(ctx, list, (uint32_t)i);
        jsapi_target *s = jsapi_target_of(item);
        if (!s)
            goto fail;
        if (s->aborted) {
            t->aborted = true;
            t->reason = JS_DupValue(ctx, s->reason);
            JS_FreeValue(ctx, item);
            break;
        }
        JSValue data[2] = { obj, item };
        JSValue fn = JS_NewCFunctionData(ctx, follow_source, 0, 0, 2, (JSValueConst *)data);
        if (JS_IsException(fn) || jsapi_signal_add_algorithm(ctx, s, fn) < 0)
            goto fail;
        JS_FreeValue(ctx, item);
        item = JS_UNDEFINED;
    }
    JS_FreeValue(ctx, list);
    return obj;
fail:
    JS_FreeValue(ctx, item);
    JS_FreeValue(ctx, obj);
    JS_FreeValue(ctx, list);
    return JS_EXCEPTION;
}

static const JSCFunctionListEntry signal_funcs[] = {
    JS_CGETSET_MAGIC_DEF("aborted", signal_get, NULL, S_ABORTED),
    JS_CGETSET_MAGIC_DEF("reason", signal_get, NULL, S_REASON),
    JS_CGETSET_MAGIC_DEF("onabort", signal_get, signal_set_onabort, S_ONABORT),
    JS_CFUNC_DEF("throwIfAborted", 0, signal_throw_if_aborted),
    JS_PROP_STRING_DEF("[Symbol.toStringTag]", "AbortSignal", JS_PROP_CONFIGURABLE),
};

static const JSCFunctionListEntry signal_statics[] = {
    JS_CFUNC_DEF("abort", 0, signal_abort_static),
    JS_CFUNC_DEF("timeout", 1, signal_timeout),
    JS_CFUNC_DEF("any", 1, signal_any),
};

JSValue jsapi_signal_create(JSContext *ctx)
{
    JSValueConst parent = jsapi_lazy(ctx, JSAPI_EVENTTARGET);
    if (JS_IsException(parent))
        return JS_EXCEPTION;
    return jsapi_subclass(ctx, parent, "AbortSignal", signal_ctor, 0, signal_funcs,
                          sizeof signal_funcs / sizeof signal_funcs[0], signal_statics,
                          sizeof signal_statics / sizeof signal_statics[0]);
}

/* --- AbortController --- */

static void controller_finalizer(JSRuntime *rt, JSValue val)
{
    JSValue *signal = JS_GetOpaque(val, jsapi_controller_class_id);
    if (!signal)
        return;
    JS_FreeValueRT(rt, *signal);
    js_free_rt(rt, signal);
}

static void controller_mark(JSRuntime *rt, JSValueConst val, JS_MarkFunc *mark)
{
    JSValue *signal = JS_GetOpaque(val, jsapi_controller_class_id);
    if (signal)
        JS_MarkValue(rt, *signal, mark);
}

const JSClassDef jsapi_controller_class = { "AbortController", .finalizer = controller_finalizer,
                                            .gc_mark = controller_mark };

static JSValue controller_ctor(JSContext *ctx, JSValueConst new_target, int argc, JSValueConst *argv)
{
    JSValue obj = jsapi_new_instance(ctx, new_target, jsapi_controller_class_id);
    if (JS_IsException(obj))
        return obj;
    JSValue *signal = js_malloc(ctx, sizeof *signal);
    if (!signal)
        goto fail;
    jsapi_target *t;
    *signal = new_signal(ctx, &t);
    if (JS_IsException(*signal)) {
        js_free(ctx, signal);
        goto fail;
    }
    JS_SetOpaque(obj, signal);
    return obj;
fail:
    JS_FreeValue(ctx, obj);
    return JS_EXCEPTION;
}

static JSValue controller_signal(JSContext *ctx, JSValueConst this_val)
{
    JSValue *signal = JS_GetOpaque2(ctx, this_val, jsapi_controller_class_id);
    return signal ? JS_DupValue(ctx, *signal) : JS_EXCEPTION;
}

static JSValue controller_abort(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    JSValue *signal = JS_GetOpaque2(ctx, this_val, jsapi_controller_class_id);
    if (!signal)
        return JS_EXCEPTION;
    JSValue reason = JS_DupValue(ctx, argc > 0 ? argv[0] : JS_UNDEFINED);
    return signal_abort(ctx, *signal, reason) < 0 ? JS_EXCEPTION : JS_UNDEFINED;
}

static const JSCFunctionListEntry controller_funcs[] = {
    JS_CGETSET_DEF("signal", controller_signal, NULL),
    JS_CFUNC_DEF("abort", 0, controller_abort),
    JS_PROP_STRING_DEF("[Symbol.toStringTag]", "AbortController", JS_PROP_CONFIGURABLE),
};

JSValue jsapi_controller_create(JSContext *ctx)
{
    return jsapi_make_class(ctx, jsapi_controller_class_id, "AbortController", controller_ctor, 0,
                            controller_funcs, sizeof controller_funcs / sizeof controller_funcs[0],
                            NULL, 0);
}
