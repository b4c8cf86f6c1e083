/* Installs the Web API into a context (see api.h): registers the classes,
 * puts lazy accessors on the global object for the constructors, and holds
 * the small helpers the API families share. A lazy accessor replaces itself
 * with a plain data property on first access, so user code sees ordinary
 * writable globals. */
#include "js/api/api_internal.h"

#include <errno.h>
#include <string.h>

#include "core/alloc.h"

JSClassID jsapi_headers_class_id, jsapi_request_class_id, jsapi_response_class_id;

static JSValue (*const lazy_create[JSAPI_NLAZY])(JSContext *) = {
    [JSAPI_HEADERS] = jsapi_headers_create,
    [JSAPI_REQUEST] = jsapi_request_create,
    [JSAPI_RESPONSE] = jsapi_response_create,
    [JSAPI_CONSOLE] = jsapi_console_create,
};
static const char *const lazy_name[JSAPI_NLAZY] = {
    [JSAPI_HEADERS] = "Headers",
    [JSAPI_REQUEST] = "Request",
    [JSAPI_RESPONSE] = "Response",
    [JSAPI_CONSOLE] = "console",
};

void jsapi_register_classes(JSRuntime *rt)
{
    /* Class ids are process-wide; JS_NewClassID is idempotent per variable. */
    JS_NewClassID(&jsapi_headers_class_id);
    JS_NewClassID(&jsapi_request_class_id);
    JS_NewClassID(&jsapi_response_class_id);
    JS_NewClass(rt, jsapi_headers_class_id, &jsapi_headers_class);
    JS_NewClass(rt, jsapi_request_class_id, &jsapi_request_class);
    JS_NewClass(rt, jsapi_response_class_id, &jsapi_response_class);
}

JSValueConst jsapi_lazy(JSContext *ctx, int which)
{
    jsapi_state *st = jsapi_state_of(ctx);
    if (JS_IsUndefined(st->ctors[which])) {
        JSValue v = lazy_create[which](ctx);
        if (JS_IsException(v))
            return v;
        st->ctors[which] = v;
    }
    return st->ctors[which];
}

static JSValue lazy_get(JSContext *ctx, JSValueConst this_val, int magic)
{
    JSValue v = JS_DupValue(ctx, jsapi_lazy(ctx, magic));
    if (JS_IsException(v))
        return v;
    JSValue global = JS_GetGlobalObject(ctx);
    JS_DefinePropertyValueStr(ctx, global, lazy_name[magic], JS_DupValue(ctx, v),
                              JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE);
    JS_FreeValue(ctx, global);
    return v;
}

static JSValue lazy_set(JSContext *ctx, JSValueConst this_val, JSValueConst val, int magic)
{
    JSValue global = JS_GetGlobalObject(ctx);
    JS_DefinePropertyValueStr(ctx, global, lazy_name[magic], JS_DupValue(ctx, val),
                              JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE);
    JS_FreeValue(ctx, global);
    return JS_UNDEFINED;
}

static const JSCFunctionListEntry lazy_globals[] = {
    JS_CGETSET_MAGIC_DEF("Headers", lazy_get, lazy_set, JSAPI_HEADERS),
    JS_CGETSET_MAGIC_DEF("Request", lazy_get, lazy_set, JSAPI_REQUEST),
    JS_CGETSET_MAGIC_DEF("Response", lazy_get, lazy_set, JSAPI_RESPONSE),
    JS_CGETSET_MAGIC_DEF("console", lazy_get, lazy_set, JSAPI_CONSOLE),
};

int jsapi_install(JSContext *ctx, const jsapi_host *host)
{
    jsapi_state *st = js_mallocz(ctx, sizeof *st);
    if (!st)
        return -ENOMEM;
    st->host = *host;
    st->next_timer_id = 1;
    for (int i = 0; i < JSAPI_NLAZY; i++)
        st->ctors[i] = JS_UNDEFINED;
    JS_SetContextOpaque(ctx, st);

    JSValue global = JS_GetGlobalObject(ctx);
    JS_SetPropertyFunctionList(ctx, global, lazy_globals,
                               sizeof lazy_globals / sizeof lazy_globals[0]);
    int rc = jsapi_timers_install(ctx, global);
    if (rc == 0)
        rc = JS_SetPropertyStr(ctx, global, "self", JS_DupValue(ctx, global)) < 0 ? -1 : 0;
    JS_FreeValue(ctx, global);
    return rc < 0 ? -ENOMEM : 0;
}

void jsapi_uninstall(JSContext *ctx)
{
    jsapi_state *st = jsapi_state_of(ctx);
    if (!st)
        return;
    jsapi_timers_free(ctx);
    for (int i = 0; i < JSAPI_NLAZY; i++)
        JS_FreeValue(ctx, st->ctors[i]);
    JS_SetContextOpaque(ctx, NULL);
    js_free(ctx, st);
}

char *jsapi_strdup(JSContext *ctx, const char *s, size_t len)
{
    char *p = js_malloc(ctx, len + 1);
    if (!p)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

int jsapi_get_length(JSContext *ctx, JSValueConst obj, int64_t *len)
{
    JSValue v = JS_GetPropertyStr(ctx, obj, "length");
    if (JS_IsException(v))
        return -1;
    int rc = JS_ToInt64(ctx, len, v);
    JS_FreeValue(ctx, v);
    return rc;
}

JSValue jsapi_make_class(JSContext *ctx, JSClassID id, const char *name, JSCFunction *ctor,
                         int length, const JSCFunctionListEntry *funcs, size_t nfuncs,
                         const JSCFunctionListEntry *statics, size_t nstatics)
{
    JSValue proto = JS_NewObject(ctx);
    if (JS_IsException(proto))
        return proto;
    JS_SetPropertyFunctionList(ctx, proto, funcs, (int)nfuncs);
    JSValue fn = JS_NewCFunction2(ctx, ctor, name, length, JS_CFUNC_constructor, 0);
    if (JS_IsException(fn))
        goto fail;
    if (nstatics)
        JS_SetPropertyFunctionList(ctx, fn, statics, (int)nstatics);
    JS_SetConstructor(ctx, fn, proto);
    JS_SetClassProto(ctx, id, proto); /* takes proto */
    return fn;
fail:
    JS_FreeValue(ctx, proto);
    return JS_EXCEPTION;
}

JSValue jsapi_new_instance(JSContext *ctx, JSValueConst new_target, JSClassID id)
{
    JSValue proto;
    if (JS_IsUndefined(new_target)) {
        proto = JS_GetClassProto(ctx, id);
    } else {
        proto = JS_GetPropertyStr(ctx, new_target, "prototype");
        if (JS_IsException(proto))
            return proto;
        if (!JS_IsObject(proto)) {
            JS_FreeValue(ctx, proto);
            proto = JS_GetClassProto(ctx, id);
        }
    }
    JSValue obj = JS_NewObjectProtoClass(ctx, proto, id);
    JS_FreeValue(ctx, proto);
    return obj;
}

JSValue jsapi_promise_resolve(JSContext *ctx, JSValue v)
{
    JSValue funcs[2];
    JSValue p = JS_NewPromiseCapability(ctx, funcs);
    if (JS_IsException(p)) {
        JS_FreeValue(ctx, v);
        return p;
    }
    JSValue r = JS_Call(ctx, funcs[0], JS_UNDEFINED, 1, (JSValueConst *)&v);
    JS_FreeValue(ctx, v);
    JS_FreeValue(ctx, funcs[0]);
    JS_FreeValue(ctx, funcs[1]);
    if (JS_IsException(r)) {
        JS_FreeValue(ctx, p);
        return r;
    }
    JS_FreeValue(ctx, r);
    return p;
}

JSValue jsapi_promise_then(JSContext *ctx, JSValueConst promise, JSValueConst on_ok,
                           JSValueConst on_err)
{
    JSValue then = JS_GetPropertyStr(ctx, promise, "then");
    if (JS_IsException(then))
        return then;
    JSValueConst args[2] = { on_ok, on_err };
    JSValue r = JS_Call(ctx, then, promise, 2, args);
    JS_FreeValue(ctx, then);
    return r;
}
