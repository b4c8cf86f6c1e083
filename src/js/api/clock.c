/* The clock JavaScript sees: Date.now(), new Date(), Date() and
 * performance.now() all read jsapi_state.now_ms, which the host sets when
 * the loop enters the isolate and which stands still while JavaScript
 * runs, so a tenant cannot time its own code (a Spectre-style timing
 * defence, as Workers does). QuickJS has no clock hook, so the engine's
 * Date constructor is wrapped: a call without arguments passes the frozen
 * time to it. As on Workers, performance.timeOrigin is 0 and
 * performance.now() equals Date.now(). */
#include "js/api/api_internal.h"

#include "core/clock.h"

void jsapi_set_now(JSContext *ctx, double wall_ms)
{
    jsapi_state *st = jsapi_state_of(ctx);
    if (st)
        st->now_ms = wall_ms;
}

static double now_of(JSContext *ctx)
{
    jsapi_state *st = jsapi_state_of(ctx);
    /* Before the host first set it (it sets it on every entry). */
    if (!st->now_ms)
        st->now_ms = clock_wall_ms();
    return st->now_ms;
}

static JSValue frozen_now(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    return JS_NewFloat64(ctx, (double)(int64_t)now_of(ctx));
}

/* new Date(...) and Date(): with no arguments, the frozen time. */
static JSValue date_ctor(JSContext *ctx, JSValueConst new_target, int argc, JSValueConst *argv)
{
    jsapi_state *st = jsapi_state_of(ctx);
    JSValue now = JS_NewFloat64(ctx, (double)(int64_t)now_of(ctx));
    if (JS_IsUndefined(new_target)) { /* called as a function: a string, as Date() returns */
        JSValue d = JS_CallConstructor(ctx, st->date_ctor, 1, (JSValueConst *)&now);
        if (JS_IsException(d))
            return d;
        JSValue s = JS_ToString(ctx, d);
        JS_FreeValue(ctx, d);
        return s;
    }
    if (argc == 0)
        return JS_CallConstructor2(ctx, st->date_ctor, new_target, 1, (JSValueConst *)&now);
    return JS_CallConstructor2(ctx, st->date_ctor, new_target, argc, argv);
}

void jsapi_clock_patch_date(JSContext *ctx)
{
    jsapi_state *st = jsapi_state_of(ctx);
    JSValue global = JS_GetGlobalObject(ctx);
    JSValue orig = JS_GetPropertyStr(ctx, global, "Date");
    JSValue proto = JS_GetPropertyStr(ctx, orig, "prototype");
    JSValue wrap = JS_NewCFunction2(ctx, date_ctor, "Date", 7, JS_CFUNC_constructor_or_func, 0);
    if (JS_IsException(orig) || JS_IsException(proto) || JS_IsException(wrap))
        goto done;
    JS_SetConstructor(ctx, wrap, proto);
    const char *statics[] = { "UTC", "parse" };
    for (size_t k = 0; k < sizeof statics / sizeof statics[0]; k++)
        JS_DefinePropertyValueStr(ctx, wrap, statics[k], JS_GetPropertyStr(ctx, orig, statics[k]),
                                  JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE);
    JS_DefinePropertyValueStr(ctx, wrap, "now", JS_NewCFunction(ctx, frozen_now, "now", 0),
                              JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE);
    JS_DefinePropertyValueStr(ctx, global, "Date", JS_DupValue(ctx, wrap),
                              JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE);
    JS_FreeValue(ctx, st->date_ctor);
    st->date_ctor = JS_DupValue(ctx, orig);
done:
    if (JS_HasException(ctx))
        JS_FreeValue(ctx, JS_GetException(ctx));
    JS_FreeValue(ctx, wrap);
    JS_FreeValue(ctx, proto);
    JS_FreeValue(ctx, orig);
    JS_FreeValue(ctx, global);
}

static JSValue time_origin(JSContext *ctx, JSValueConst this_val) { return JS_NewFloat64(ctx, 0); }

static const JSCFunctionListEntry performance_funcs[] = {
    JS_CFUNC_DEF("now", 0, frozen_now),
    JS_CGETSET_DEF("timeOrigin", time_origin, NULL),
    JS_PROP_STRING_DEF("[Symbol.toStringTag]", "Performance", JS_PROP_CONFIGURABLE),
};

JSValue jsapi_performance_create(JSContext *ctx)
{
    JSValue p = JS_NewObject(ctx);
    if (!JS_IsException(p))
        JS_SetPropertyFunctionList(ctx, p, performance_funcs,
                                   sizeof performance_funcs / sizeof performance_funcs[0]);
    return p;
}
