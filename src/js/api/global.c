/* The small globals of the Web API surface: performance (now(),
 * timeOrigin), navigator (userAgent), and the function-list entries for
 * atob, btoa and structuredClone. All are QuickJS function-list entries,
 * which the engine instantiates on first access, so an isolate that never
 * names them pays one property each. performance.now() reads the loop's
 * clock, which libuv updates once per loop iteration: as in Workers, time
 * stands still while JavaScript runs (a Spectre-style timing defence). */
#include "js/api/api_internal.h"

static JSValue perf_now(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    return JS_NewFloat64(ctx, jsapi_now(ctx));
}

static JSValue perf_time_origin(JSContext *ctx, JSValueConst this_val)
{
    return JS_NewFloat64(ctx, jsapi_state_of(ctx)->origin_wall_ms);
}

static const JSCFunctionListEntry perf_funcs[] = {
    JS_CFUNC_DEF("now", 0, perf_now),
    JS_CGETSET_DEF("timeOrigin", perf_time_origin, NULL),
    JS_PROP_STRING_DEF("[Symbol.toStringTag]", "Performance", JS_PROP_CONFIGURABLE),
};

static const JSCFunctionListEntry navigator_funcs[] = {
    JS_PROP_STRING_DEF("userAgent", "atoll", JS_PROP_ENUMERABLE),
    JS_PROP_STRING_DEF("[Symbol.toStringTag]", "Navigator", JS_PROP_CONFIGURABLE),
};

const JSCFunctionListEntry jsapi_global_funcs[] = {
    JS_CFUNC_DEF("atob", 1, jsapi_atob),
    JS_CFUNC_DEF("btoa", 1, jsapi_btoa),
    JS_CFUNC_DEF("structuredClone", 1, jsapi_structured_clone),
    JS_OBJECT_DEF("performance", perf_funcs, sizeof perf_funcs / sizeof perf_funcs[0],
                  JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE),
    JS_OBJECT_DEF("navigator", navigator_funcs, sizeof navigator_funcs / sizeof navigator_funcs[0],
                  JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE),
};
const size_t jsapi_global_funcs_count = sizeof jsapi_global_funcs / sizeof jsapi_global_funcs[0];
