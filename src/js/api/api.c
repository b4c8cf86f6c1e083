/* Installs the Web API into a context (see api.h): registers the classes,
 * puts lazy accessors on the global object for the constructors, and holds
 * the small helpers the API families share. A lazy accessor replaces itself
 * with a plain data property on first access, so user code sees ordinary
 * writable globals. */
#include "js/api/api_internal.h"

#include <errno.h>
#include <string.h>

#include "core/alloc.h"
#include "core/clock.h"

JSClassID jsapi_headers_class_id, jsapi_request_class_id, jsapi_response_class_id;
JSClassID jsapi_cryptokey_class_id;
JSClassID jsapi_url_class_id, jsapi_params_class_id, jsapi_encoder_class_id,
    jsapi_decoder_class_id, jsapi_domexception_class_id, jsapi_event_class_id,
    jsapi_target_class_id, jsapi_controller_class_id, jsapi_params_iter_class_id;

static JSValue (*const lazy_create[JSAPI_NLAZY])(JSContext *) = {
    [JSAPI_HEADERS] = jsapi_headers_create,
    [JSAPI_REQUEST] = jsapi_request_create,
    [JSAPI_RESPONSE] = jsapi_response_create,
    [JSAPI_CONSOLE] = jsapi_console_create,
    [JSAPI_PERFORMANCE] = jsapi_performance_create,
    [JSAPI_CRYPTO] = jsapi_crypto_create,
    [JSAPI_CRYPTOKEY] = jsapi_cryptokey_create,
    [JSAPI_URL] = jsapi_url_create,
    [JSAPI_URLSEARCHPARAMS] = jsapi_params_create,
    [JSAPI_TEXTENCODER] = jsapi_encoder_create,
    [JSAPI_TEXTDECODER] = jsapi_decoder_create,
    [JSAPI_DOMEXCEPTION] = jsapi_domexception_create,
    [JSAPI_EVENT] = jsapi_event_create,
    [JSAPI_CUSTOMEVENT] = jsapi_customevent_create,
    [JSAPI_EVENTTARGET] = jsapi_target_create,
    [JSAPI_ABORTCONTROLLER] = jsapi_controller_create,
    [JSAPI_ABORTSIGNAL] = jsapi_signal_create,
};
static const char *const lazy_name[JSAPI_NLAZY] = {
    [JSAPI_HEADERS] = "Headers",
    [JSAPI_REQUEST] = "Request",
    [JSAPI_RESPONSE] = "Response",
    [JSAPI_CONSOLE] = "console",
    [JSAPI_PERFORMANCE] = "performance",
    [JSAPI_CRYPTO] = "crypto",
    [JSAPI_CRYPTOKEY] = "CryptoKey",
    [JSAPI_URL] = "URL",
    [JSAPI_URLSEARCHPARAMS] = "URLSearchParams",
    [JSAPI_TEXTENCODER] = "TextEncoder",
    [JSAPI_TEXTDECODER] = "TextDecoder",
    [JSAPI_DOMEXCEPTION] = "DOMException",
    [JSAPI_EVENT] = "Event",
    [JSAPI_CUSTOMEVENT] = "CustomEvent",
    [JSAPI_EVENTTARGET] = "EventTarget",
    [JSAPI_ABORTCONTROLLER] = "AbortController",
    [JSAPI_ABORTSIGNAL] = "AbortSignal",
};

void jsapi_register_classes(JSRuntime *rt)
{
    /* Class ids are process-wide; JS_NewClassID is idempotent per variable. */
    JS_NewClassID(&jsapi_headers_class_id);
    JS_NewClassID(&jsapi_request_class_id);
    JS_NewClassID(&jsapi_response_class_id);
    JS_NewClassID(&jsapi_cryptokey_class_id); /* its class: on first use (crypto_key.c) */
    JS_NewClassID(&jsapi_sink_class_id);
    JS_NewClass(rt, jsapi_headers_class_id, &jsapi_headers_class);
    JS_NewClass(rt, jsapi_request_class_id, &jsapi_request_class);
    JS_NewClass(rt, jsapi_response_class_id, &jsapi_response_class);
    JS_NewClass(rt, jsapi_sink_class_id, &jsapi_sink_class);

    static const struct {
        JSClassID *id;
        const JSClassDef *def;
    } more[] = {
        { &jsapi_url_class_id, &jsapi_url_class },
        { &jsapi_params_class_id, &jsapi_params_class },
        { &jsapi_params_iter_class_id, &jsapi_params_iter_class },
        { &jsapi_encoder_class_id, &jsapi_encoder_class },
        { &jsapi_decoder_class_id, &jsapi_decoder_class },
        { &jsapi_domexception_class_id, &jsapi_domexception_class },
        { &jsapi_event_class_id, &jsapi_event_class },
        { &jsapi_target_class_id, &jsapi_target_class },
        { &jsapi_controller_class_id, &jsapi_controller_class },
    };
    for (size_t k = 0; k < sizeof more / sizeof more[0]; k++) {
        JS_NewClassID(more[k].id);
        JS_NewClass(rt, *more[k].id, more[k].def);
    }
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

/* Each lazy global is one C function serving as both its getter (called
 * with no argument) and its setter (one argument): half the objects of a
 * getter/setter pair, and every isolate pays for each name it never uses.
 * The tables below keep QuickJS's function-list format for readability;
 * only their names and magics are used. */
static JSValue lazy_access(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                           int magic)
{
    return argc == 0 ? lazy_get(ctx, this_val, magic) : lazy_set(ctx, this_val, argv[0], magic);
}

static int define_accessors(JSContext *ctx, JSValueConst global, const JSCFunctionListEntry *list,
                            size_t n, JSCFunctionMagic *fn)
{
    for (size_t k = 0; k < n; k++) {
        JSValue f = JS_NewCFunctionMagic(ctx, fn, list[k].name, 1, JS_CFUNC_generic_magic,
                                         list[k].magic);
        if (JS_IsException(f))
            return -1;
        JSAtom a = JS_NewAtom(ctx, list[k].name);
        int rc = a == JS_ATOM_NULL ? -1
                                   : JS_DefinePropertyGetSet(ctx, global, a, JS_DupValue(ctx, f), f,
                                                             JS_PROP_CONFIGURABLE);
        if (a == JS_ATOM_NULL)
            JS_FreeValue(ctx, f);
        JS_FreeAtom(ctx, a);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static const JSCFunctionListEntry lazy_globals[] = {
    JS_CGETSET_MAGIC_DEF("Headers", lazy_get, lazy_set, JSAPI_HEADERS),
    JS_CGETSET_MAGIC_DEF("Request", lazy_get, lazy_set, JSAPI_REQUEST),
    JS_CGETSET_MAGIC_DEF("Response", lazy_get, lazy_set, JSAPI_RESPONSE),
    JS_CGETSET_MAGIC_DEF("console", lazy_get, lazy_set, JSAPI_CONSOLE),
    JS_CGETSET_MAGIC_DEF("performance", lazy_get, lazy_set, JSAPI_PERFORMANCE),
    JS_CGETSET_MAGIC_DEF("crypto", lazy_get, lazy_set, JSAPI_CRYPTO),
    JS_CGETSET_MAGIC_DEF("CryptoKey", lazy_get, lazy_set, JSAPI_CRYPTOKEY),
    JS_CGETSET_MAGIC_DEF("URL", lazy_get, lazy_set, JSAPI_URL),
    JS_CGETSET_MAGIC_DEF("URLSearchParams", lazy_get, lazy_set, JSAPI_URLSEARCHPARAMS),
    JS_CGETSET_MAGIC_DEF("TextEncoder", lazy_get, lazy_set, JSAPI_TEXTENCODER),
    JS_CGETSET_MAGIC_DEF("TextDecoder", lazy_get, lazy_set, JSAPI_TEXTDECODER),
    JS_CGETSET_MAGIC_DEF("DOMException", lazy_get, lazy_set, JSAPI_DOMEXCEPTION),
    JS_CGETSET_MAGIC_DEF("Event", lazy_get, lazy_set, JSAPI_EVENT),
    JS_CGETSET_MAGIC_DEF("CustomEvent", lazy_get, lazy_set, JSAPI_CUSTOMEVENT),
    JS_CGETSET_MAGIC_DEF("EventTarget", lazy_get, lazy_set, JSAPI_EVENTTARGET),
    JS_CGETSET_MAGIC_DEF("AbortController", lazy_get, lazy_set, JSAPI_ABORTCONTROLLER),
    JS_CGETSET_MAGIC_DEF("AbortSignal", lazy_get, lazy_set, JSAPI_ABORTSIGNAL),
};

/* Intrinsics by group, added on first use of one of their global names:
 * together a quarter of a fresh context's time and memory, and most
 * workers never touch a typed array or a WeakRef. The engine itself needs
 * none of them to run code that does not name them. */
static const struct {
    const char *name;
    unsigned group;
} lazy_intrinsics[] = {
    { "Date", JSAPI_INTRINSIC_DATE },
    { "Map", JSAPI_INTRINSIC_MAPSET },
    { "Set", JSAPI_INTRINSIC_MAPSET },
    { "WeakMap", JSAPI_INTRINSIC_MAPSET },
    { "WeakSet", JSAPI_INTRINSIC_MAPSET },
    { "WeakRef", JSAPI_INTRINSIC_WEAKREF },
    { "FinalizationRegistry", JSAPI_INTRINSIC_WEAKREF },
    { "ArrayBuffer", JSAPI_INTRINSIC_TYPED_ARRAYS },
    { "DataView", JSAPI_INTRINSIC_TYPED_ARRAYS },
    { "Uint8ClampedArray", JSAPI_INTRINSIC_TYPED_ARRAYS },
    { "Int8Array", JSAPI_INTRINSIC_TYPED_ARRAYS },
    { "Uint8Array", JSAPI_INTRINSIC_TYPED_ARRAYS },
    { "Int16Array", JSAPI_INTRINSIC_TYPED_ARRAYS },
    { "Uint16Array", JSAPI_INTRINSIC_TYPED_ARRAYS },
    { "Int32Array", JSAPI_INTRINSIC_TYPED_ARRAYS },
    { "Uint32Array", JSAPI_INTRINSIC_TYPED_ARRAYS },
    { "BigInt64Array", JSAPI_INTRINSIC_TYPED_ARRAYS },
    { "BigUint64Array", JSAPI_INTRINSIC_TYPED_ARRAYS },
    { "Float32Array", JSAPI_INTRINSIC_TYPED_ARRAYS },
    { "Float64Array", JSAPI_INTRINSIC_TYPED_ARRAYS },
};
#define NLAZY_INTRINSICS (sizeof lazy_intrinsics / sizeof lazy_intrinsics[0])

JSContext *jsapi_new_context(JSRuntime *rt)
{
    JSContext *ctx = JS_NewContextRaw(rt);
    if (!ctx)
        return NULL;
    JS_AddIntrinsicBaseObjects(ctx);
    JS_AddIntrinsicEval(ctx);
    JS_AddIntrinsicStringNormalize(ctx);
    JS_AddIntrinsicRegExp(ctx);
    JS_AddIntrinsicJSON(ctx);
    JS_AddIntrinsicProxy(ctx);
    JS_AddIntrinsicPromise(ctx);
    return ctx;
}

void jsapi_need(JSContext *ctx, unsigned group)
{
    jsapi_state *st = jsapi_state_of(ctx);
    if (!st || (st->intrinsics & group))
        return;
    st->intrinsics |= group;
    /* The intrinsic defines its globals as data properties, replacing our
     * accessors for the names of its group. */
    switch (group) {
    case JSAPI_INTRINSIC_DATE:
        JS_AddIntrinsicDate(ctx);
        jsapi_clock_patch_date(ctx);
        break;
    case JSAPI_INTRINSIC_MAPSET:
        JS_AddIntrinsicMapSet(ctx);
        break;
    case JSAPI_INTRINSIC_WEAKREF:
        JS_AddIntrinsicWeakRef(ctx);
        break;
    case JSAPI_INTRINSIC_TYPED_ARRAYS: {
        JS_AddIntrinsicTypedArrays(ctx);
        /* No shared memory and no threads in an isolate (DESIGN.md). */
        JSValue global = JS_GetGlobalObject(ctx);
        JSAtom a = JS_NewAtom(ctx, "SharedArrayBuffer");
        JS_DeleteProperty(ctx, global, a, 0);
        JS_FreeAtom(ctx, a);
        a = JS_NewAtom(ctx, "Atomics");
        JS_DeleteProperty(ctx, global, a, 0);
        JS_FreeAtom(ctx, a);
        JS_FreeValue(ctx, global);
        break;
    }
    }
}

static JSValue intrinsic_get(JSContext *ctx, JSValueConst this_val, int magic)
{
    jsapi_need(ctx, lazy_intrinsics[magic].group);
    JSValue global = JS_GetGlobalObject(ctx);
    JSValue v = JS_GetPropertyStr(ctx, global, lazy_intrinsics[magic].name);
    JS_FreeValue(ctx, global);
    return v;
}

static JSValue intrinsic_set(JSContext *ctx, JSValueConst this_val, JSValueConst val, int magic)
{
    jsapi_need(ctx, lazy_intrinsics[magic].group);
    JSValue global = JS_GetGlobalObject(ctx);
    JS_DefinePropertyValueStr(ctx, global, lazy_intrinsics[magic].name, JS_DupValue(ctx, val),
                              JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE);
    JS_FreeValue(ctx, global);
    return JS_UNDEFINED;
}

static JSValue intrinsic_access(JSContext *ctx, JSValueConst this_val, int argc,
                                JSValueConst *argv, int magic)
{
    return argc == 0 ? intrinsic_get(ctx, this_val, magic)
                     : intrinsic_set(ctx, this_val, argv[0], magic);
}

static int install_lazy_intrinsics(JSContext *ctx, JSValueConst global)
{
    JSCFunctionListEntry list[NLAZY_INTRINSICS];
    for (size_t k = 0; k < NLAZY_INTRINSICS; k++)
        list[k] = (JSCFunctionListEntry)JS_CGETSET_MAGIC_DEF(lazy_intrinsics[k].name, intrinsic_get,
                                                             intrinsic_set, (int16_t)k);
    return define_accessors(ctx, global, list, NLAZY_INTRINSICS, intrinsic_access);
}

int jsapi_install(JSContext *ctx, const jsapi_host *host)
{
    jsapi_state *st = js_mallocz(ctx, sizeof *st);
    if (!st)
        return -ENOMEM;
    st->host = *host;
    st->next_timer_id = 1;
    st->origin_loop_ms = uv_now(host->loop);
    st->origin_wall_ms = clock_wall_ms();
    for (int i = 0; i < JSAPI_NLAZY; i++)
        st->ctors[i] = JS_UNDEFINED;
    st->date_ctor = JS_UNDEFINED;
    for (int k = 0; k < JSAPI_NBUNDLES; k++)
        st->bundles[k] = JS_UNDEFINED;
    JS_SetContextOpaque(ctx, st);

    JSValue global = JS_GetGlobalObject(ctx);
    int rc = define_accessors(ctx, global, lazy_globals, sizeof lazy_globals / sizeof lazy_globals[0],
                              lazy_access);
    if (rc == 0)
        rc = install_lazy_intrinsics(ctx, global);
    if (rc == 0)
        rc = jsapi_timers_install(ctx, global);
    if (rc == 0) {
        JS_SetPropertyFunctionList(ctx, global, jsapi_global_funcs, (int)jsapi_global_funcs_count);
        rc = JS_HasException(ctx) ? -1 : 0;
    }
    if (rc == 0)
        rc = jsapi_fetch_install(ctx, global);
    if (rc == 0)
        rc = jsapi_streams_install(ctx, global);
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
    jsapi_fetch_free(ctx);
    jsapi_crypto_free(ctx);
    for (int i = 0; i < JSAPI_NLAZY; i++)
        JS_FreeValue(ctx, st->ctors[i]);
    JS_FreeValue(ctx, st->date_ctor);
    for (int k = 0; k < JSAPI_NBUNDLES; k++)
        JS_FreeValue(ctx, st->bundles[k]);
    JS_SetContextOpaque(ctx, NULL);
    js_free(ctx, st);
}

void jsapi_set_name(JSContext *ctx, const char *name)
{
    jsapi_state *st = jsapi_state_of(ctx);
    if (st)
        st->host.name = name;
}

void jsapi_set_fetch_policy(JSContext *ctx, const char *const *allow, const char *const *resolve, size_t max_body,
                            uint64_t subrequests)
{
    jsapi_state *st = jsapi_state_of(ctx);
    if (!st)
        return;
    st->host.fetch_allow = allow;
    st->host.fetch_resolve = resolve;
    st->host.fetch_max_body = max_body;
    st->host.subrequests = subrequests;
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

JSValue jsapi_iterator_method(JSContext *ctx, JSValueConst obj)
{
    /* No public atom for Symbol.iterator: take it from Symbol. */
    JSValue global = JS_GetGlobalObject(ctx);
    JSValue symbol = JS_GetPropertyStr(ctx, global, "Symbol");
    JS_FreeValue(ctx, global);
    JSValue sym = JS_GetPropertyStr(ctx, symbol, "iterator");
    JS_FreeValue(ctx, symbol);
    JSAtom a = JS_ValueToAtom(ctx, sym);
    JS_FreeValue(ctx, sym);
    JSValue m = a == JS_ATOM_NULL ? JS_EXCEPTION : JS_GetProperty(ctx, obj, a);
    JS_FreeAtom(ctx, a);
    return m;
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

int jsapi_charge_work(JSContext *ctx, uint64_t units)
{
    jsapi_state *st = jsapi_state_of(ctx);
    if (!st || !st->host.over_cpu)
        return 0;
    if (!st->work_stopped) {
        st->work += units;
        if (st->work < JSAPI_WORK_CHECK)
            return 0;
        st->work = 0;
        if (!st->host.over_cpu(st->host.opaque))
            return 0;
        st->work_stopped = true;
    }
    /* As QuickJS's own interrupt: an InternalError no catch can stop. */
    JS_ThrowInternalError(ctx, "interrupted");
    JSValue exc = JS_GetException(ctx);
    JS_SetUncatchableError(ctx, exc, true);
    JS_Throw(ctx, exc);
    return -1;
}

bool jsapi_work_stopped(JSContext *ctx)
{
    jsapi_state *st = jsapi_state_of(ctx);
    return st && st->work_stopped;
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
