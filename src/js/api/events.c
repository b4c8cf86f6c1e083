/* DOMException (WebIDL), and Event, CustomEvent and EventTarget (DOM
 * Standard) as an isolate has them: no tree, so an event is only ever at
 * its target (no capture or bubble phases; `capture` only tells listeners
 * apart, as the standard's equality of listeners requires). Listeners that
 * throw are logged and do not stop the dispatch. AbortSignal (abort.c)
 * is an EventTarget with extra state in the same struct. */
#include "js/api/api_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"

/* --- DOMException --- */

/* Instances are Error objects made by the Error constructor with
 * DOMException as new.target (as `class DOMException extends Error` would
 * make them): they carry a stack, JS_IsError holds, and logs show
 * "AbortError: message" with the frames. name is an own property beside
 * message; code is derived from name on the prototype. The class below
 * only holds DOMException.prototype. */
const JSClassDef jsapi_domexception_class = { "DOMException", .finalizer = NULL };

static const struct {
    const char *name;
    int code;
} legacy_codes[] = {
    { "IndexSizeError", 1 }, { "HierarchyRequestError", 3 }, { "WrongDocumentError", 4 },
    { "InvalidCharacterError", 5 }, { "NoModificationAllowedError", 7 }, { "NotFoundError", 8 },
    { "NotSupportedError", 9 }, { "InUseAttributeError", 10 }, { "InvalidStateError", 11 },
    { "SyntaxError", 12 }, { "InvalidModificationError", 13 }, { "NamespaceError", 14 },
    { "InvalidAccessError", 15 }, { "TypeMismatchError", 17 }, { "SecurityError", 18 },
    { "NetworkError", 19 }, { "AbortError", 20 }, { "URLMismatchError", 21 },
    { "QuotaExceededError", 22 }, { "TimeoutError", 23 }, { "InvalidNodeTypeError", 24 },
    { "DataCloneError", 25 },
};

/* A DOMException for new_target with message and name (both consumed). */
static JSValue domexc_make(JSContext *ctx, JSValueConst new_target, JSValue message, JSValue name)
{
    JSValue obj = JS_EXCEPTION, err_ctor = JS_UNDEFINED;
    JSValue err = JS_NewError(ctx);
    if (JS_IsException(err))
        goto done;
    err_ctor = JS_GetPropertyStr(ctx, err, "constructor");
    if (!JS_IsConstructor(ctx, err_ctor)) {
        JS_ThrowTypeError(ctx, "DOMException: Error.prototype.constructor is not a constructor");
        goto done;
    }
    obj = JS_CallConstructor2(ctx, err_ctor, new_target, 1, (JSValueConst *)&message);
    if (!JS_IsException(obj) &&
        JS_DefinePropertyValueStr(ctx, obj, "name", JS_DupValue(ctx, name),
                                  JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE) < 0) {
        JS_FreeValue(ctx, obj);
        obj = JS_EXCEPTION;
    }
done:
    JS_FreeValue(ctx, err_ctor);
    JS_FreeValue(ctx, err);
    JS_FreeValue(ctx, message);
    JS_FreeValue(ctx, name);
    return obj;
}

static JSValue domexc_ctor(JSContext *ctx, JSValueConst new_target, int argc, JSValueConst *argv)
{
    JSValue message = argc > 0 && !JS_IsUndefined(argv[0]) ? JS_ToString(ctx, argv[0])
                                                           : JS_NewString(ctx, "");
    if (JS_IsException(message))
        return message;
    JSValue name = argc > 1 && !JS_IsUndefined(argv[1]) ? JS_ToString(ctx, argv[1])
                                                        : JS_NewString(ctx, "Error");
    if (JS_IsException(name)) {
        JS_FreeValue(ctx, message);
        return name;
    }
    return domexc_make(ctx, new_target, message, name);
}

static JSValue domexc_code(JSContext *ctx, JSValueConst this_val)
{
    if (!JS_IsError(ctx, this_val))
        return JS_ThrowTypeError(ctx, "not a DOMException");
    JSValue name = JS_GetPropertyStr(ctx, this_val, "name");
    const char *n = JS_IsString(name) ? JS_ToCString(ctx, name) : NULL;
    JS_FreeValue(ctx, name);
    int code = 0;
    for (size_t k = 0; n && k < sizeof legacy_codes / sizeof legacy_codes[0] && !code; k++)
        if (!strcmp(n, legacy_codes[k].name))
            code = legacy_codes[k].code;
    JS_FreeCString(ctx, n);
    return JS_NewInt32(ctx, code);
}

#define DX_CONST(n, v) JS_PROP_INT32_DEF(n, v, JS_PROP_ENUMERABLE)
#define DX_CONSTANTS                                                                            \
    DX_CONST("INDEX_SIZE_ERR", 1), DX_CONST("DOMSTRING_SIZE_ERR", 2),                           \
    DX_CONST("HIERARCHY_REQUEST_ERR", 3), DX_CONST("WRONG_DOCUMENT_ERR", 4),                    \
    DX_CONST("INVALID_CHARACTER_ERR", 5), DX_CONST("NO_DATA_ALLOWED_ERR", 6),                   \
    DX_CONST("NO_MODIFICATION_ALLOWED_ERR", 7), DX_CONST("NOT_FOUND_ERR", 8),                   \
    DX_CONST("NOT_SUPPORTED_ERR", 9), DX_CONST("INUSE_ATTRIBUTE_ERR", 10),                      \
    DX_CONST("INVALID_STATE_ERR", 11), DX_CONST("SYNTAX_ERR", 12),                              \
    DX_CONST("INVALID_MODIFICATION_ERR", 13), DX_CONST("NAMESPACE_ERR", 14),                    \
    DX_CONST("INVALID_ACCESS_ERR", 15), DX_CONST("VALIDATION_ERR", 16),                         \
    DX_CONST("TYPE_MISMATCH_ERR", 17), DX_CONST("SECURITY_ERR", 18), DX_CONST("NETWORK_ERR", 19), \
    DX_CONST("ABORT_ERR", 20), DX_CONST("URL_MISMATCH_ERR", 21),                                \
    DX_CONST("QUOTA_EXCEEDED_ERR", 22), DX_CONST("TIMEOUT_ERR", 23),                            \
    DX_CONST("INVALID_NODE_TYPE_ERR", 24), DX_CONST("DATA_CLONE_ERR", 25)

static const JSCFunctionListEntry domexc_funcs[] = {
    JS_CGETSET_DEF("code", domexc_code, NULL),
    JS_PROP_STRING_DEF("[Symbol.toStringTag]", "DOMException", JS_PROP_CONFIGURABLE),
    DX_CONSTANTS,
};

static const JSCFunctionListEntry domexc_statics[] = { DX_CONSTANTS };

JSValue jsapi_domexception_create(JSContext *ctx)
{
    JSValue ctor = jsapi_make_class(ctx, jsapi_domexception_class_id, "DOMException", domexc_ctor,
                                    0, domexc_funcs, sizeof domexc_funcs / sizeof domexc_funcs[0],
                                    domexc_statics, sizeof domexc_statics / sizeof domexc_statics[0]);
    if (JS_IsException(ctor))
        return ctor;
    /* DOMException.prototype inherits from Error.prototype (WebIDL), so
     * `e instanceof Error` holds and toString() reads "name: message". */
    JSValue err = JS_NewError(ctx);
    JSValue err_proto = JS_IsException(err) ? err : JS_GetPrototype(ctx, err);
    JSValue proto = JS_GetClassProto(ctx, jsapi_domexception_class_id);
    if (!JS_IsException(err_proto))
        JS_SetPrototype(ctx, proto, err_proto);
    JS_FreeValue(ctx, proto);
    JS_FreeValue(ctx, err_proto);
    JS_FreeValue(ctx, err);
    return ctor;
}

JSValue jsapi_domexception_new(JSContext *ctx, const char *name, const char *message)
{
    if (JS_IsException(jsapi_lazy(ctx, JSAPI_DOMEXCEPTION)))
        return JS_EXCEPTION;
    JSValueConst ctor = jsapi_state_of(ctx)->ctors[JSAPI_DOMEXCEPTION];
    JSValue n = JS_NewString(ctx, name), m = JS_NewString(ctx, message);
    if (JS_IsException(n) || JS_IsException(m)) {
        JS_FreeValue(ctx, n);
        JS_FreeValue(ctx, m);
        return JS_EXCEPTION;
    }
    return domexc_make(ctx, ctor, m, n);
}

JSValue jsapi_throw_dom(JSContext *ctx, const char *name, const char *fmt, ...)
{
    char msg[256]; /* vsnprintf truncates; messages are ours */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    JSValue e = jsapi_domexception_new(ctx, name, msg);
    if (JS_IsException(e))
        return e;
    return JS_Throw(ctx, e);
}

void jsapi_report_exception(JSContext *ctx, const char *what)
{
    JSValue exc = JS_GetException(ctx);
    jsapi_state *st = jsapi_state_of(ctx);
    buf b;
    buf_init(&b, 64 * 1024);
    jsapi_inspect(ctx, exc, &b);
    if (JS_HasException(ctx))
        JS_FreeValue(ctx, JS_GetException(ctx));
    log_tenant(LOG_ERROR, st ? st->host.name : "?", "uncaught exception in %s: %s", what, b.data ? b.data : "");
    buf_free(&b);
    JS_FreeValue(ctx, exc);
}

double jsapi_now(JSContext *ctx)
{
    jsapi_state *st = jsapi_state_of(ctx);
    return (double)(uv_now(st->host.loop) - st->origin_loop_ms);
}

/* --- Event, CustomEvent --- */

typedef struct event {
    JSAtom type;
    bool bubbles, cancelable, composed, canceled, stop, stop_immediate, dispatching, in_passive;
    int phase;
    double time_stamp;
    JSValue target, current, detail;
} event;

static void event_finalizer(JSRuntime *rt, JSValue val)
{
    event *e = JS_GetOpaque(val, jsapi_event_class_id);
    if (!e)
        return;
    JS_FreeAtomRT(rt, e->type);
    JS_FreeValueRT(rt, e->target);
    JS_FreeValueRT(rt, e->current);
    JS_FreeValueRT(rt, e->detail);
    js_free_rt(rt, e);
}

static void event_mark(JSRuntime *rt, JSValueConst val, JS_MarkFunc *mark)
{
    event *e = JS_GetOpaque(val, jsapi_event_class_id);
    if (!e)
        return;
    JS_MarkValue(rt, e->target, mark);
    JS_MarkValue(rt, e->current, mark);
    JS_MarkValue(rt, e->detail, mark);
}

const JSClassDef jsapi_event_class = { "Event", .finalizer = event_finalizer, .gc_mark = event_mark };

static JSValue event_wrap(JSContext *ctx, JSValueConst new_target, JSAtom type, event **out)
{
    JSValue obj = jsapi_new_instance(ctx, new_target, jsapi_event_class_id);
    event *e = JS_IsException(obj) ? NULL : js_mallocz(ctx, sizeof *e);
    if (!e) {
        JS_FreeAtom(ctx, type);
        JS_FreeValue(ctx, obj);
        return JS_EXCEPTION;
    }
    e->type = type;
    e->target = e->current = JS_NULL;
    e->detail = JS_NULL;
    e->time_stamp = jsapi_now(ctx);
    JS_SetOpaque(obj, e);
    *out = e;
    return obj;
}

/* An event type (a DOMString) as an atom; JS_ATOM_NULL with an exception
 * (ToString refuses symbols). */
static JSAtom type_atom(JSContext *ctx, JSValueConst v)
{
    JSValue s = JS_ToString(ctx, v);
    if (JS_IsException(s))
        return JS_ATOM_NULL;
    JSAtom a = JS_ValueToAtom(ctx, s);
    JS_FreeValue(ctx, s);
    return a;
}

static int init_bool(JSContext *ctx, JSValueConst init, const char *name, bool *out)
{
    *out = false;
    if (JS_IsUndefined(init) || JS_IsNull(init))
        return 0;
    JSValue v = JS_GetPropertyStr(ctx, init, name);
    if (JS_IsException(v))
        return -1;
    *out = JS_ToBool(ctx, v);
    JS_FreeValue(ctx, v);
    return 0;
}

static JSValue event_ctor_common(JSContext *ctx, JSValueConst new_target, int argc,
                                 JSValueConst *argv, bool custom)
{
    if (argc < 1)
        return JS_ThrowTypeError(ctx, "%s constructor: 1 argument required",
                                 custom ? "CustomEvent" : "Event");
    JSValueConst init = argc > 1 ? argv[1] : JS_UNDEFINED;
    if (!JS_IsUndefined(init) && !JS_IsNull(init) && !JS_IsObject(init))
        return JS_ThrowTypeError(ctx, "Event: the init argument must be an object");
    JSAtom type = type_atom(ctx, argv[0]);
    if (type == JS_ATOM_NULL)
        return JS_EXCEPTION;
    event *e;
    JSValue obj = event_wrap(ctx, new_target, type, &e);
    if (JS_IsException(obj))
        return obj;
    if (init_bool(ctx, init, "bubbles", &e->bubbles) < 0 ||
        init_bool(ctx, init, "cancelable", &e->cancelable) < 0 ||
        init_bool(ctx, init, "composed", &e->composed) < 0)
        goto fail;
    if (custom && JS_IsObject(init)) {
        JSValue d = JS_GetPropertyStr(ctx, init, "detail");
        if (JS_IsException(d))
            goto fail;
        e->detail = JS_IsUndefined(d) ? JS_NULL : d;
    }
    return obj;
fail:
    JS_FreeValue(ctx, obj);
    return JS_EXCEPTION;
}

static JSValue event_ctor(JSContext *ctx, JSValueConst new_target, int argc, JSValueConst *argv)
{
    return event_ctor_common(ctx, new_target, argc, argv, false);
}

static JSValue customevent_ctor(JSContext *ctx, JSValueConst new_target, int argc,
                                JSValueConst *argv)
{
    return event_ctor_common(ctx, new_target, argc, argv, true);
}

static event *this_event(JSContext *ctx, JSValueConst this_val)
{
    return JS_GetOpaque2(ctx, this_val, jsapi_event_class_id);
}

enum { EV_TYPE, EV_TARGET, EV_CURRENT, EV_PHASE, EV_BUBBLES, EV_CANCELABLE, EV_DEFAULT_PREVENTED,
       EV_COMPOSED, EV_TRUSTED, EV_TIMESTAMP, EV_RETURN_VALUE, EV_CANCEL_BUBBLE, EV_DETAIL };

static JSValue event_get(JSContext *ctx, JSValueConst this_val, int magic)
{
    event *e = this_event(ctx, this_val);
    if (!e)
        return JS_EXCEPTION;
    switch (magic) {
    case EV_TYPE: return JS_AtomToString(ctx, e->type);
    case EV_TARGET: return JS_DupValue(ctx, e->target);
    case EV_CURRENT: return JS_DupValue(ctx, e->current);
    case EV_PHASE: return JS_NewInt32(ctx, e->phase);
    case EV_BUBBLES: return JS_NewBool(ctx, e->bubbles);
    case EV_CANCELABLE: return JS_NewBool(ctx, e->cancelable);
    case EV_DEFAULT_PREVENTED: return JS_NewBool(ctx, e->canceled);
    case EV_COMPOSED: return JS_NewBool(ctx, e->composed);
    case EV_TRUSTED: return JS_FALSE;
    case EV_TIMESTAMP: return JS_NewFloat64(ctx, e->time_stamp);
    case EV_RETURN_VALUE: return JS_NewBool(ctx, !e->canceled);
    case EV_CANCEL_BUBBLE: return JS_NewBool(ctx, e->stop);
    default: return JS_DupValue(ctx, e->detail);
    }
}

static void prevent_default(event *e)
{
    if (e->cancelable && !e->in_passive)
        e->canceled = true;
}

static JSValue event_set(JSContext *ctx, JSValueConst this_val, JSValueConst val, int magic)
{
    event *e = this_event(ctx, this_val);
    if (!e)
        return JS_EXCEPTION;
    if (magic == EV_RETURN_VALUE && !JS_ToBool(ctx, val))
        prevent_default(e);
    if (magic == EV_CANCEL_BUBBLE && JS_ToBool(ctx, val))
        e->stop = true;
    return JS_UNDEFINED;
}

enum { EM_PREVENT, EM_STOP, EM_STOP_IMMEDIATE, EM_PATH };

static JSValue event_method(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                            int magic)
{
    event *e = this_event(ctx, this_val);
    if (!e)
        return JS_EXCEPTION;
    switch (magic) {
    case EM_PREVENT:
        prevent_default(e);
        break;
    case EM_STOP:
        e->stop = true;
        break;
    case EM_STOP_IMMEDIATE:
        e->stop = e->stop_immediate = true;
        break;
    default: {
        JSValue arr = JS_NewArray(ctx);
        if (!JS_IsException(arr) && e->dispatching)
            JS_SetPropertyUint32(ctx, arr, 0, JS_DupValue(ctx, e->current));
        return arr;
    }
    }
    return JS_UNDEFINED;
}

#define EVENT_PHASES                                                                         \
    JS_PROP_INT32_DEF("NONE", 0, JS_PROP_ENUMERABLE),                                        \
    JS_PROP_INT32_DEF("CAPTURING_PHASE", 1, JS_PROP_ENUMERABLE),                             \
    JS_PROP_INT32_DEF("AT_TARGET", 2, JS_PROP_ENUMERABLE),                                   \
    JS_PROP_INT32_DEF("BUBBLING_PHASE", 3, JS_PROP_ENUMERABLE)

static const JSCFunctionListEntry event_funcs[] = {
    JS_CGETSET_MAGIC_DEF("type", event_get, NULL, EV_TYPE),
    JS_CGETSET_MAGIC_DEF("target", event_get, NULL, EV_TARGET),
    JS_CGETSET_MAGIC_DEF("srcElement", event_get, NULL, EV_TARGET),
    JS_CGETSET_MAGIC_DEF("currentTarget", event_get, NULL, EV_CURRENT),
    JS_CGETSET_MAGIC_DEF("eventPhase", event_get, NULL, EV_PHASE),
    JS_CGETSET_MAGIC_DEF("bubbles", event_get, NULL, EV_BUBBLES),
    JS_CGETSET_MAGIC_DEF("cancelable", event_get, NULL, EV_CANCELABLE),
    JS_CGETSET_MAGIC_DEF("defaultPrevented", event_get, NULL, EV_DEFAULT_PREVENTED),
    JS_CGETSET_MAGIC_DEF("composed", event_get, NULL, EV_COMPOSED),
    JS_CGETSET_MAGIC_DEF("isTrusted", event_get, NULL, EV_TRUSTED),
    JS_CGETSET_MAGIC_DEF("timeStamp", event_get, NULL, EV_TIMESTAMP),
    JS_CGETSET_MAGIC_DEF("returnValue", event_get, event_set, EV_RETURN_VALUE),
    JS_CGETSET_MAGIC_DEF("cancelBubble", event_get, event_set, EV_CANCEL_BUBBLE),
    JS_CFUNC_MAGIC_DEF("preventDefault", 0, event_method, EM_PREVENT),
    JS_CFUNC_MAGIC_DEF("stopPropagation", 0, event_method, EM_STOP),
    JS_CFUNC_MAGIC_DEF("stopImmediatePropagation", 0, event_method, EM_STOP_IMMEDIATE),
    JS_CFUNC_MAGIC_DEF("composedPath", 0, event_method, EM_PATH),
    JS_PROP_STRING_DEF("[Symbol.toStringTag]", "Event", JS_PROP_CONFIGURABLE),
    EVENT_PHASES,
};

static const JSCFunctionListEntry event_statics[] = { EVENT_PHASES };

JSValue jsapi_event_create(JSContext *ctx)
{
    return jsapi_make_class(ctx, jsapi_event_class_id, "Event", event_ctor, 1, event_funcs,
                            sizeof event_funcs / sizeof event_funcs[0], event_statics,
                            sizeof event_statics / sizeof event_statics[0]);
}

static const JSCFunctionListEntry customevent_funcs[] = {
    JS_CGETSET_MAGIC_DEF("detail", event_get, NULL, EV_DETAIL),
    JS_PROP_STRING_DEF("[Symbol.toStringTag]", "CustomEvent", JS_PROP_CONFIGURABLE),
};

/* A constructor whose instances have the class of `parent_ctor`'s class
 * but their own prototype (CustomEvent of Event, AbortSignal of
 * EventTarget): C code that creates one takes its prototype from the
 * constructor's "prototype", which is read-only. */
static JSValue make_subclass(JSContext *ctx, JSValueConst parent_ctor, const char *name,
                             JSCFunction *ctor, int length, const JSCFunctionListEntry *funcs,
                             size_t nfuncs, const JSCFunctionListEntry *statics, size_t nstatics)
{
    JSValue parent_proto = JS_GetPropertyStr(ctx, parent_ctor, "prototype");
    if (JS_IsException(parent_proto))
        return parent_proto;
    JSValue proto = JS_NewObjectProto(ctx, parent_proto);
    JS_FreeValue(ctx, parent_proto);
    if (JS_IsException(proto))
        return proto;
    JS_SetPropertyFunctionList(ctx, proto, funcs, (int)nfuncs);
    JSValue fn = JS_NewCFunction2(ctx, ctor, name, length, JS_CFUNC_constructor, 0);
    if (JS_IsException(fn)) {
        JS_FreeValue(ctx, proto);
        return fn;
    }
    if (nstatics)
        JS_SetPropertyFunctionList(ctx, fn, statics, (int)nstatics);
    JS_SetPrototype(ctx, fn, parent_ctor);
    JS_SetConstructor(ctx, fn, proto);
    JS_FreeValue(ctx, proto);
    return fn;
}

JSValue jsapi_customevent_create(JSContext *ctx)
{
    JSValueConst parent = jsapi_lazy(ctx, JSAPI_EVENT);
    if (JS_IsException(parent))
        return JS_EXCEPTION;
    return make_subclass(ctx, parent, "CustomEvent", customevent_ctor, 1, customevent_funcs,
                         sizeof customevent_funcs / sizeof customevent_funcs[0], NULL, 0);
}

/* --- EventTarget --- */

static void free_listener(JSRuntime *rt, jsapi_listener *l)
{
    JS_FreeAtomRT(rt, l->type);
    JS_FreeValueRT(rt, l->callback);
}

static void target_finalizer(JSRuntime *rt, JSValue val)
{
    jsapi_target *t = JS_GetOpaque(val, jsapi_target_class_id);
    if (!t)
        return;
    for (size_t i = 0; i < t->count; i++)
        free_listener(rt, &t->items[i]);
    js_free_rt(rt, t->items);
    for (size_t i = 0; i < t->nalgorithms; i++)
        JS_FreeValueRT(rt, t->algorithms[i]);
    js_free_rt(rt, t->algorithms);
    JS_FreeValueRT(rt, t->reason);
    JS_FreeValueRT(rt, t->onabort);
    js_free_rt(rt, t);
}

static void target_mark(JSRuntime *rt, JSValueConst val, JS_MarkFunc *mark)
{
    jsapi_target *t = JS_GetOpaque(val, jsapi_target_class_id);
    if (!t)
        return;
    for (size_t i = 0; i < t->count; i++)
        JS_MarkValue(rt, t->items[i].callback, mark);
    for (size_t i = 0; i < t->nalgorithms; i++)
        JS_MarkValue(rt, t->algorithms[i], mark);
    JS_MarkValue(rt, t->reason, mark);
    JS_MarkValue(rt, t->onabort, mark);
}

const JSClassDef jsapi_target_class = { "EventTarget", .finalizer = target_finalizer,
                                        .gc_mark = target_mark };

jsapi_target *jsapi_target_of(JSValueConst obj)
{
    return JS_GetOpaque(obj, jsapi_target_class_id);
}

static JSValue target_wrap(JSContext *ctx, JSValueConst new_target, JSValueConst proto,
                           jsapi_target **out)
{
    JSValue obj = JS_IsUndefined(proto) ? jsapi_new_instance(ctx, new_target, jsapi_target_class_id)
                                        : JS_NewObjectProtoClass(ctx, proto, jsapi_target_class_id);
    jsapi_target *t = JS_IsException(obj) ? NULL : js_mallocz(ctx, sizeof *t);
    if (!t) {
        JS_FreeValue(ctx, obj);
        return JS_EXCEPTION;
    }
    t->reason = t->onabort = JS_UNDEFINED;
    t->next_id = 1;
    JS_SetOpaque(obj, t);
    *out = t;
    return obj;
}

JSValue jsapi_target_new(JSContext *ctx, JSValueConst proto, jsapi_target **out)
{
    return target_wrap(ctx, JS_UNDEFINED, proto, out);
}

static JSValue target_ctor(JSContext *ctx, JSValueConst new_target, int argc, JSValueConst *argv)
{
    jsapi_target *t;
    return target_wrap(ctx, new_target, JS_UNDEFINED, &t);
}

static jsapi_target *this_target(JSContext *ctx, JSValueConst this_val)
{
    /* Methods called on the global object (addEventListener is the
     * isolate's own there) or elsewhere get a TypeError. */
    return JS_GetOpaque2(ctx, this_val, jsapi_target_class_id);
}

typedef struct listen_opts {
    bool capture, once, passive;
    JSValue signal;
} listen_opts;

static int read_options(JSContext *ctx, JSValueConst v, listen_opts *o, bool full)
{
    memset(o, 0, sizeof *o);
    o->signal = JS_UNDEFINED;
    if (!JS_IsObject(v)) {
        o->capture = JS_ToBool(ctx, v);
        return 0;
    }
    if (init_bool(ctx, v, "capture", &o->capture) < 0)
        return -1;
    if (!full)
        return 0;
    if (init_bool(ctx, v, "once", &o->once) < 0 || init_bool(ctx, v, "passive", &o->passive) < 0)
        return -1;
    o->signal = JS_GetPropertyStr(ctx, v, "signal");
    if (JS_IsException(o->signal))
        return -1;
    if (!JS_IsUndefined(o->signal)) {
        jsapi_target *s = jsapi_target_of(o->signal);
        if (!s || !s->is_signal) {
            JS_FreeValue(ctx, o->signal);
            o->signal = JS_UNDEFINED;
            JS_ThrowTypeError(ctx, "addEventListener: signal must be an AbortSignal");
            return -1;
        }
    }
    return 0;
}

static long find_listener(const jsapi_target *t, JSAtom type, JSValueConst cb, bool capture)
{
    for (size_t i = 0; i < t->count; i++) {
        const jsapi_listener *l = &t->items[i];
        if (l->type == type && l->capture == capture &&
            JS_VALUE_GET_PTR(l->callback) == JS_VALUE_GET_PTR(cb))
            return (long)i;
    }
    return -1;
}

static void remove_listener_at(JSContext *ctx, jsapi_target *t, size_t i)
{
    free_listener(JS_GetRuntime(ctx), &t->items[i]);
    memmove(&t->items[i], &t->items[i + 1], (t->count - i - 1) * sizeof *t->items);
    t->count--;
}

/* The abort algorithm of a listener added with a signal: data is
 * [target, listener id]. */
static JSValue remove_by_signal(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                                int magic, JSValue *data)
{
    jsapi_target *t = jsapi_target_of(data[0]);
    int64_t id;
    if (t && JS_ToInt64(ctx, &id, data[1]) == 0) {
        for (size_t i = 0; i < t->count; i++) {
            if (t->items[i].id == (uint64_t)id) {
                remove_listener_at(ctx, t, i);
                break;
            }
        }
    }
    return JS_UNDEFINED;
}

static JSValue target_add(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    jsapi_target *t = this_target(ctx, this_val);
    if (!t)
        return JS_EXCEPTION;
    if (argc < 2)
        return JS_ThrowTypeError(ctx, "addEventListener: 2 arguments required");
    JSValueConst cb = argv[1];
    if (!JS_IsNull(cb) && !JS_IsUndefined(cb) && !JS_IsObject(cb))
        return JS_ThrowTypeError(ctx, "addEventListener: the listener must be an object or null");
    listen_opts o;
    if (read_options(ctx, argc > 2 ? argv[2] : JS_UNDEFINED, &o, true) < 0)
        return JS_EXCEPTION;
    JSAtom type = JS_IsNull(cb) || JS_IsUndefined(cb) ? JS_ATOM_NULL : type_atom(ctx, argv[0]);
    jsapi_target *sig = jsapi_target_of(o.signal);
    if (type == JS_ATOM_NULL || (sig && sig->aborted) || find_listener(t, type, cb, o.capture) >= 0) {
        JS_FreeAtom(ctx, type);
        JS_FreeValue(ctx, o.signal);
        return JS_HasException(ctx) ? JS_EXCEPTION : JS_UNDEFINED;
    }
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4;
        jsapi_listener *items = js_realloc(ctx, t->items, cap * sizeof *items);
        if (!items) {
            JS_FreeAtom(ctx, type);
            JS_FreeValue(ctx, o.signal);
            return JS_EXCEPTION;
        }
        t->items = items, t->cap = cap;
    }
    uint64_t id = t->next_id++;
    t->items[t->count++] = (jsapi_listener){ id, type, JS_DupValue(ctx, cb), o.capture, o.once,
                                            o.passive };
    if (sig) {
        JSValue data[2] = { JS_DupValue(ctx, this_val), JS_NewInt64(ctx, (int64_t)id) };
        JSValue fn = JS_NewCFunctionData(ctx, remove_by_signal, 0, 0, 2, data);
        JS_FreeValue(ctx, data[0]);
        int rc = JS_IsException(fn) ? -1 : jsapi_signal_add_algorithm(ctx, sig, fn);
        JS_FreeValue(ctx, o.signal);
        if (rc < 0)
            return JS_EXCEPTION;
    }
    return JS_UNDEFINED;
}

static JSValue target_remove(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    jsapi_target *t = this_target(ctx, this_val);
    if (!t)
        return JS_EXCEPTION;
    if (argc < 2)
        return JS_ThrowTypeError(ctx, "removeEventListener: 2 arguments required");
    listen_opts o;
    if (read_options(ctx, argc > 2 ? argv[2] : JS_UNDEFINED, &o, false) < 0)
        return JS_EXCEPTION;
    if (!JS_IsObject(argv[1]))
        return JS_UNDEFINED;
    JSAtom type = type_atom(ctx, argv[0]);
    if (type == JS_ATOM_NULL)
        return JS_EXCEPTION;
    long i = find_listener(t, type, argv[1], o.capture);
    if (i >= 0)
        remove_listener_at(ctx, t, (size_t)i);
    JS_FreeAtom(ctx, type);
    return JS_UNDEFINED;
}

/* Calls one listener; an exception is logged, not propagated. */
static void call_listener(JSContext *ctx, JSValueConst cb, JSValueConst target, JSValueConst ev)
{
    JSValue r;
    if (JS_IsFunction(ctx, cb)) {
        r = JS_Call(ctx, cb, target, 1, &ev);
    } else {
        JSValue fn = JS_GetPropertyStr(ctx, cb, "handleEvent");
        if (JS_IsException(fn))
            r = fn;
        else if (!JS_IsFunction(ctx, fn))
            r = JS_ThrowTypeError(ctx, "the event listener has no handleEvent method");
        else
            r = JS_Call(ctx, fn, cb, 1, &ev);
        JS_FreeValue(ctx, fn);
    }
    if (JS_IsException(r))
        jsapi_report_exception(ctx, "an event listener");
    JS_FreeValue(ctx, r);
}

/* The dispatch algorithm for a target without parents. */
static int dispatch(JSContext *ctx, JSValueConst target_obj, JSValueConst ev_obj, event *e)
{
    jsapi_target *t = jsapi_target_of(target_obj);
    if (e->dispatching) {
        jsapi_throw_dom(ctx, "InvalidStateError", "The event is already being dispatched");
        return -1;
    }
    e->dispatching = true;
    JS_FreeValue(ctx, e->target);
    JS_FreeValue(ctx, e->current);
    e->target = JS_DupValue(ctx, target_obj);
    e->current = JS_DupValue(ctx, target_obj);
    e->phase = 2; /* AT_TARGET */

    if (t->is_signal && JS_IsFunction(ctx, t->onabort)) {
        JSAtom abort = JS_NewAtom(ctx, "abort");
        if (e->type == abort) {
            JSValue h = JS_DupValue(ctx, t->onabort);
            call_listener(ctx, h, target_obj, ev_obj);
            JS_FreeValue(ctx, h);
        }
        JS_FreeAtom(ctx, abort);
    }
    /* Listeners added during the dispatch do not run; removed ones do not
     * run either, so each is looked up again by id before its turn. */
    size_t n = 0;
    uint64_t *ids = js_malloc(ctx, (t->count + 1) * sizeof *ids);
    int rc = ids ? 0 : -1;
    for (size_t i = 0; ids && i < t->count; i++)
        if (t->items[i].type == e->type)
            ids[n++] = t->items[i].id;
    for (size_t k = 0; k < n && !e->stop_immediate; k++) {
        size_t i = 0;
        while (i < t->count && t->items[i].id != ids[k])
            i++;
        if (i == t->count)
            continue;
        JSValue cb = JS_DupValue(ctx, t->items[i].callback);
        bool passive = t->items[i].passive;
        if (t->items[i].once)
            remove_listener_at(ctx, t, i);
        e->in_passive = passive;
        call_listener(ctx, cb, target_obj, ev_obj);
        e->in_passive = false;
        JS_FreeValue(ctx, cb);
    }
    js_free(ctx, ids);
    e->dispatching = false;
    e->phase = 0;
    e->stop = e->stop_immediate = false;
    JS_FreeValue(ctx, e->current);
    e->current = JS_NULL;
    return rc;
}

static JSValue target_dispatch(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    if (!this_target(ctx, this_val))
        return JS_EXCEPTION;
    event *e = argc > 0 ? JS_GetOpaque(argv[0], jsapi_event_class_id) : NULL;
    if (!e)
        return JS_ThrowTypeError(ctx, "dispatchEvent: the argument must be an Event");
    if (dispatch(ctx, this_val, argv[0], e) < 0)
        return JS_EXCEPTION;
    return JS_NewBool(ctx, !e->canceled);
}

int jsapi_target_fire(JSContext *ctx, JSValueConst target, const char *type)
{
    if (JS_IsException(jsapi_lazy(ctx, JSAPI_EVENT)))
        return -1;
    event *e;
    JSValue ev = event_wrap(ctx, JS_UNDEFINED, JS_NewAtom(ctx, type), &e);
    if (JS_IsException(ev))
        return -1;
    int rc = dispatch(ctx, target, ev, e);
    JS_FreeValue(ctx, ev);
    return rc;
}

static const JSCFunctionListEntry target_funcs[] = {
    JS_CFUNC_DEF("addEventListener", 2, target_add),
    JS_CFUNC_DEF("removeEventListener", 2, target_remove),
    JS_CFUNC_DEF("dispatchEvent", 1, target_dispatch),
    JS_PROP_STRING_DEF("[Symbol.toStringTag]", "EventTarget", JS_PROP_CONFIGURABLE),
};

JSValue jsapi_target_create(JSContext *ctx)
{
    return jsapi_make_class(ctx, jsapi_target_class_id, "EventTarget", target_ctor, 0, target_funcs,
                            sizeof target_funcs / sizeof target_funcs[0], NULL, 0);
}

JSValue jsapi_subclass(JSContext *ctx, JSValueConst parent_ctor, const char *name, JSCFunction *ctor,
                       int length, const JSCFunctionListEntry *funcs, size_t nfuncs,
                       const JSCFunctionListEntry *statics, size_t nstatics)
{
    return make_subclass(ctx, parent_ctor, name, ctor, length, funcs, nfuncs, statics, nstatics);
}
