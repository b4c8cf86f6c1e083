/* The small globals of the Web API surface: navigator (userAgent), and
 * the function-list entries for atob, btoa and structuredClone. All are
 * QuickJS function-list entries, which the engine instantiates on first
 * access, so an isolate that never names them pays one property each.
 * (performance lives in clock.c, on the same frozen clock as Date.) */
#include "js/api/api_internal.h"

/* Workers' own value: libraries tell runtimes apart by it (Hono's
 * getRuntimeKey() says "workerd" and its env() adapter then hands the app
 * its bindings), and atoll runs Workers code. */
static const JSCFunctionListEntry navigator_funcs[] = {
    JS_PROP_STRING_DEF("userAgent", "Cloudflare-Workers", JS_PROP_ENUMERABLE),
    JS_PROP_STRING_DEF("[Symbol.toStringTag]", "Navigator", JS_PROP_CONFIGURABLE),
};

const JSCFunctionListEntry jsapi_global_funcs[] = {
    JS_CFUNC_DEF("atob", 1, jsapi_atob),
    JS_CFUNC_DEF("btoa", 1, jsapi_btoa),
    JS_CFUNC_DEF("structuredClone", 1, jsapi_structured_clone),
    JS_OBJECT_DEF("navigator", navigator_funcs, sizeof navigator_funcs / sizeof navigator_funcs[0],
                  JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE),
};
const size_t jsapi_global_funcs_count = sizeof jsapi_global_funcs / sizeof jsapi_global_funcs[0];
