/* structuredClone(value, {transfer}) (HTML Standard's structured clone,
 * serialize and deserialize in one pass) for the types QuickJS has:
 * primitives, plain objects, arrays, Date, RegExp, Map, Set, ArrayBuffer,
 * typed arrays and DataView, Error types and primitive wrappers, with
 * shared and circular references kept; transferred ArrayBuffers are
 * detached. Anything else (functions, symbols, Promise, WeakMap, host
 * objects, including the bundles' Blob, FormData and streams) is a
 * DataCloneError DOMException. */
#include "js/api/api_internal.h"

#include <stdio.h>
#include <string.h>

/* QuickJS's built-in class ids (quickjs.c, 2025-04-26), which quickjs.h
 * does not export; test_webapi clones one of each, so a drift shows. */
enum {
    QJS_OBJECT = 1, QJS_ARRAY = 2, QJS_ERROR = 3, QJS_NUMBER = 4, QJS_STRING = 5,
    QJS_BOOLEAN = 6, QJS_DATE = 10, QJS_REGEXP = 18, QJS_ARRAY_BUFFER = 19,
    QJS_UINT8C_ARRAY = 21, QJS_FLOAT64_ARRAY = 31, QJS_DATAVIEW = 32, QJS_BIG_INT = 33,
    QJS_MAP = 34, QJS_SET = 35,
};

/* C stack the recursion may use: deep enough for any real data, and far
 * from the end of the stack however deep the caller already is (QuickJS
 * keeps JavaScript within its own 512 KiB). */
#define STACK_BUDGET (256 * 1024)

/* The memory: source object -> its clone, a small open-addressed table. */
typedef struct clone_state {
    JSContext *ctx;
    void **keys;
    JSValue *vals;
    size_t cap, count;
    uintptr_t stack_top; /* frame address where the clone started */
} clone_state;

static size_t slot(const clone_state *s, void *key)
{
    size_t h = ((uintptr_t)key >> 4) * 0x9E3779B97F4A7C15ull;
    size_t i = h & (s->cap - 1);
    while (s->keys[i] && s->keys[i] != key)
        i = (i + 1) & (s->cap - 1);
    return i;
}

static JSValue memory_get(clone_state *s, JSValueConst v)
{
    if (!s->cap)
        return JS_UNINITIALIZED;
    size_t i = slot(s, JS_VALUE_GET_PTR(v));
    return s->keys[i] ? JS_DupValue(s->ctx, s->vals[i]) : JS_UNINITIALIZED;
}

static bool memory_has(const clone_state *s, JSValueConst v)
{
    return s->cap && s->keys[slot(s, JS_VALUE_GET_PTR(v))];
}

/* Remembers clone (borrowed; the table holds its own reference). */
static int memory_put(clone_state *s, JSValueConst v, JSValueConst clone)
{
    if ((s->count + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        void **keys = js_mallocz(s->ctx, cap * sizeof *keys);
        JSValue *vals = js_malloc(s->ctx, cap * sizeof *vals);
        if (!keys || !vals) {
            js_free(s->ctx, keys);
            js_free(s->ctx, vals);
            return -1;
        }
        clone_state grown = { .ctx = s->ctx, .keys = keys, .vals = vals, .cap = cap };
        for (size_t i = 0; i < s->cap; i++) {
            if (s->keys[i]) {
                size_t j = slot(&grown, s->keys[i]);
                keys[j] = s->keys[i];
                vals[j] = s->vals[i];
            }
        }
        js_free(s->ctx, s->keys);
        js_free(s->ctx, s->vals);
        s->keys = keys, s->vals = vals, s->cap = cap;
    }
    size_t i = slot(s, JS_VALUE_GET_PTR(v));
    s->keys[i] = JS_VALUE_GET_PTR(v);
    s->vals[i] = JS_DupValue(s->ctx, clone);
    s->count++;
    return 0;
}

static void memory_free(clone_state *s)
{
    for (size_t i = 0; i < s->cap; i++)
        if (s->keys[i])
            JS_FreeValue(s->ctx, s->vals[i]);
    js_free(s->ctx, s->keys);
    js_free(s->ctx, s->vals);
}

static JSValue data_clone_error(JSContext *ctx, const char *what)
{
    return jsapi_throw_dom(ctx, "DataCloneError", "%s could not be cloned", what);
}

static JSValue clone_value(clone_state *s, JSValueConst v);
static JSValue global_ctor(JSContext *ctx, const char *name);

/* Blob, FormData, ReadableStream … are JavaScript classes of the bundles,
 * so QuickJS sees ordinary objects; copied as such they would lose their
 * private state and come out as husks whose methods throw. They are
 * platform objects that this structuredClone does not serialize: throws a
 * DataCloneError naming the class and returns -1 for one of them (only
 * objects with a prototype other than Object's are looked at, and only
 * bundles already loaded: before that no such object exists). */
static int refuse_platform_object(JSContext *ctx, JSValueConst v)
{
    JSValue proto = JS_GetPrototype(ctx, v);
    if (JS_IsException(proto))
        return -1;
    JSValue object = global_ctor(ctx, "Object");
    JSValue object_proto = JS_IsException(object) ? JS_EXCEPTION : JS_GetPropertyStr(ctx, object, "prototype");
    JS_FreeValue(ctx, object);
    if (JS_IsException(object_proto)) {
        JS_FreeValue(ctx, proto);
        return -1;
    }
    bool plain = JS_IsNull(proto) || JS_VALUE_GET_PTR(proto) == JS_VALUE_GET_PTR(object_proto);
    JS_FreeValue(ctx, proto);
    JS_FreeValue(ctx, object_proto);
    if (plain)
        return 0;
    jsapi_state *st = jsapi_state_of(ctx);
    static const int bundles[] = {JSAPI_BUNDLE_BLOB, JSAPI_BUNDLE_STREAMS};
    for (size_t b = 0; b < sizeof bundles / sizeof *bundles; b++) {
        if (JS_IsUndefined(st->bundles[bundles[b]]))
            continue;
        JSValue globals = JS_GetPropertyStr(ctx, st->bundles[bundles[b]], "globals");
        JSPropertyEnum *props = NULL;
        uint32_t n = 0;
        if (JS_IsException(globals) ||
            JS_GetOwnPropertyNames(ctx, &props, &n, globals, JS_GPN_STRING_MASK | JS_GPN_ENUM_ONLY) < 0) {
            JS_FreeValue(ctx, globals);
            return -1;
        }
        int rc = 0;
        for (uint32_t i = 0; i < n && rc == 0; i++) {
            JSValue ctor = JS_GetProperty(ctx, globals, props[i].atom);
            int is = JS_IsException(ctor) ? -1 : JS_IsFunction(ctx, ctor) ? JS_IsInstanceOf(ctx, v, ctor) : 0;
            JS_FreeValue(ctx, ctor);
            if (is < 0) {
                rc = -1;
            } else if (is > 0) {
                const char *name = JS_AtomToCString(ctx, props[i].atom);
                char what[96];
                snprintf(what, sizeof what, "%s object", name ? name : "This platform");
                JS_FreeCString(ctx, name);
                data_clone_error(ctx, what);
                rc = -1;
            }
        }
        for (uint32_t i = 0; i < n; i++)
            JS_FreeAtom(ctx, props[i].atom);
        js_free(ctx, props);
        JS_FreeValue(ctx, globals);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* A global constructor by name, for the types without a C constructor. */
static JSValue global_ctor(JSContext *ctx, const char *name)
{
    JSValue global = JS_GetGlobalObject(ctx);
    JSValue c = JS_GetPropertyStr(ctx, global, name);
    JS_FreeValue(ctx, global);
    return c;
}

static JSValue construct(JSContext *ctx, const char *name, int argc, JSValueConst *argv)
{
    JSValue c = global_ctor(ctx, name);
    if (JS_IsException(c))
        return c;
    JSValue r = JS_CallConstructor(ctx, c, argc, argv);
    JS_FreeValue(ctx, c);
    return r;
}

/* Copies the own enumerable string-keyed properties of v onto out. */
static int copy_props(clone_state *s, JSValueConst v, JSValueConst out)
{
    JSContext *ctx = s->ctx;
    JSPropertyEnum *props;
    uint32_t n;
    if (JS_GetOwnPropertyNames(ctx, &props, &n, v, JS_GPN_STRING_MASK | JS_GPN_ENUM_ONLY) < 0)
        return -1;
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        JSValue pv = JS_GetProperty(ctx, v, props[i].atom);
        JSValue c = JS_IsException(pv) ? pv : clone_value(s, pv);
        JS_FreeValue(ctx, pv);
        if (JS_IsException(c) || JS_DefinePropertyValue(ctx, out, props[i].atom, c, JS_PROP_C_W_E) < 0)
            rc = -1;
    }
    for (uint32_t i = 0; i < n; i++)
        JS_FreeAtom(ctx, props[i].atom);
    js_free(ctx, props);
    return rc;
}

/* Map and Set: entries through their own iterator protocol. */
static int copy_entries(clone_state *s, JSValueConst v, JSValueConst out, bool is_map)
{
    JSContext *ctx = s->ctx;
    JSValue arr = JS_UNDEFINED, adder = JS_UNDEFINED;
    JSValue from = JS_UNDEFINED, array = global_ctor(ctx, "Array");
    int rc = -1;
    if (JS_IsException(array))
        goto done;
    from = JS_GetPropertyStr(ctx, array, "from");
    arr = JS_IsException(from) ? JS_EXCEPTION : JS_Call(ctx, from, array, 1, &v);
    adder = JS_GetPropertyStr(ctx, out, is_map ? "set" : "add");
    int64_t n;
    if (JS_IsException(arr) || JS_IsException(adder) || jsapi_get_length(ctx, arr, &n) < 0)
        goto done;
    for (int64_t i = 0; i < n; i++) {
        JSValue e = JS_GetPropertyUint32(ctx, arr, (uint32_t)i);
        JSValue args[2] = { JS_UNDEFINED, JS_UNDEFINED };
        int bad = JS_IsException(e);
        if (!bad && is_map) {
            JSValue k = JS_GetPropertyUint32(ctx, e, 0), val = JS_GetPropertyUint32(ctx, e, 1);
            args[0] = JS_IsException(k) ? k : clone_value(s, k);
            args[1] = JS_IsException(args[0]) || JS_IsException(val) ? JS_EXCEPTION : clone_value(s, val);
            JS_FreeValue(ctx, k);
            JS_FreeValue(ctx, val);
        } else if (!bad) {
            args[0] = clone_value(s, e);
        }
        JS_FreeValue(ctx, e);
        bad = bad || JS_IsException(args[0]) || JS_IsException(args[1]);
        JSValue r = bad ? JS_EXCEPTION : JS_Call(ctx, adder, out, is_map ? 2 : 1, (JSValueConst *)args);
        JS_FreeValue(ctx, args[0]);
        JS_FreeValue(ctx, args[1]);
        if (JS_IsException(r))
            goto done;
        JS_FreeValue(ctx, r);
    }
    rc = 0;
done:
    JS_FreeValue(ctx, adder);
    JS_FreeValue(ctx, arr);
    JS_FreeValue(ctx, from);
    JS_FreeValue(ctx, array);
    return rc;
}

static JSValue clone_buffer(JSContext *ctx, JSValueConst v)
{
    size_t len;
    uint8_t *p = JS_GetArrayBuffer(ctx, &len, v);
    if (!p) {
        /* QuickJS throws a TypeError for a detached buffer; the standard
         * says DataCloneError. */
        if (JS_HasException(ctx))
            JS_FreeValue(ctx, JS_GetException(ctx));
        return data_clone_error(ctx, "A detached ArrayBuffer");
    }
    return JS_NewArrayBufferCopy(ctx, p, len);
}

/* A typed array or DataView over the clone of its buffer. */
static JSValue clone_view(clone_state *s, JSValueConst v, JSClassID id)
{
    JSContext *ctx = s->ctx;
    JSValue ab = JS_GetPropertyStr(ctx, v, "buffer");
    JSValue off = JS_GetPropertyStr(ctx, v, "byteOffset");
    JSValue len = JS_GetPropertyStr(ctx, v, id == QJS_DATAVIEW ? "byteLength" : "length");
    JSValue cab = JS_IsException(ab) ? JS_EXCEPTION : clone_value(s, ab);
    JSValue r = JS_EXCEPTION;
    if (!JS_IsException(cab) && !JS_IsException(off) && !JS_IsException(len)) {
        JSValueConst args[3] = { cab, off, len };
        if (id == QJS_DATAVIEW)
            r = construct(ctx, "DataView", 3, args);
        else
            r = JS_NewTypedArray(ctx, 3, args, (JSTypedArrayEnum)(id - QJS_UINT8C_ARRAY));
    }
    JS_FreeValue(ctx, cab);
    JS_FreeValue(ctx, ab);
    JS_FreeValue(ctx, off);
    JS_FreeValue(ctx, len);
    return r;
}

/* Whether v inherits from DOMException.prototype (then it clones as one). */
static bool is_domexception(JSContext *ctx, JSValueConst v)
{
    JSValueConst ctor = jsapi_state_of(ctx)->ctors[JSAPI_DOMEXCEPTION];
    return !JS_IsUndefined(ctor) && JS_IsInstanceOf(ctx, v, ctor) > 0;
}

static JSValue clone_domexception(JSContext *ctx, JSValueConst v)
{
    JSValue n = JS_GetPropertyStr(ctx, v, "name"), m = JS_GetPropertyStr(ctx, v, "message");
    const char *ns = JS_IsException(n) ? NULL : JS_ToCString(ctx, n);
    const char *ms = ns && !JS_IsException(m) ? JS_ToCString(ctx, m) : NULL;
    JSValue r = ms ? jsapi_domexception_new(ctx, ns, ms) : JS_EXCEPTION;
    JS_FreeCString(ctx, ns);
    JS_FreeCString(ctx, ms);
    JS_FreeValue(ctx, n);
    JS_FreeValue(ctx, m);
    return r;
}

static JSValue clone_error(clone_state *s, JSValueConst v)
{
    JSContext *ctx = s->ctx;
    if (is_domexception(ctx, v))
        return clone_domexception(ctx, v);
    static const char *const names[] = { "EvalError", "RangeError", "ReferenceError",
                                         "SyntaxError", "TypeError", "URIError" };
    const char *ctor = "Error";
    JSValue name = JS_GetPropertyStr(ctx, v, "name");
    const char *n = JS_IsException(name) ? NULL : JS_ToCString(ctx, name);
    JS_FreeValue(ctx, name);
    if (!n)
        return JS_EXCEPTION;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (!strcmp(n, names[k]))
            ctor = names[k];
    JS_FreeCString(ctx, n);
    JSValue out = construct(ctx, ctor, 0, NULL);
    if (JS_IsException(out))
        return out;
    static const char *const own[] = { "message", "stack", "cause" };
    for (size_t k = 0; k < sizeof own / sizeof own[0]; k++) {
        JSAtom a = JS_NewAtom(ctx, own[k]);
        JSPropertyDescriptor d;
        int has = JS_GetOwnProperty(ctx, &d, v, a);
        if (has > 0) {
            JSValue c = k < 2 ? JS_ToString(ctx, d.value) : clone_value(s, d.value);
            JS_FreeValue(ctx, d.value);
            JS_FreeValue(ctx, d.getter);
            JS_FreeValue(ctx, d.setter);
            if (JS_IsException(c) ||
                JS_DefinePropertyValue(ctx, out, a, c, JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE) < 0)
                has = -1;
        }
        JS_FreeAtom(ctx, a);
        if (has < 0) {
            JS_FreeValue(ctx, out);
            return JS_EXCEPTION;
        }
    }
    return out;
}

static JSValue clone_object(clone_state *s, JSValueConst v)
{
    JSContext *ctx = s->ctx;
    JSClassID id = JS_GetClassID(v);
    JSValue out;
    switch (id) {
    case QJS_OBJECT:
        if (refuse_platform_object(ctx, v) < 0)
            return JS_EXCEPTION;
        out = JS_NewObject(ctx);
        break;
    case QJS_ARRAY: {
        int64_t len;
        if (jsapi_get_length(ctx, v, &len) < 0)
            return JS_EXCEPTION;
        out = JS_NewArray(ctx);
        if (!JS_IsException(out) &&
            JS_SetPropertyStr(ctx, out, "length", JS_NewInt64(ctx, len)) < 0) {
            JS_FreeValue(ctx, out);
            return JS_EXCEPTION;
        }
        break;
    }
    case QJS_DATE: {
        double t;
        if (JS_ToFloat64(ctx, &t, v) < 0)
            return JS_EXCEPTION;
        return JS_NewDate(ctx, t);
    }
    case QJS_NUMBER: case QJS_STRING: case QJS_BOOLEAN: case QJS_BIG_INT: {
        JSValue fn = JS_GetPropertyStr(ctx, v, "valueOf");
        JSValue prim = JS_IsException(fn) ? fn : JS_Call(ctx, fn, v, 0, NULL);
        JS_FreeValue(ctx, fn);
        if (JS_IsException(prim))
            return prim;
        /* Object(prim) */
        out = construct(ctx, "Object", 1, (JSValueConst *)&prim);
        JS_FreeValue(ctx, prim);
        return out;
    }
    case QJS_REGEXP: {
        JSValue args[2] = { JS_GetPropertyStr(ctx, v, "source"), JS_GetPropertyStr(ctx, v, "flags") };
        out = JS_IsException(args[0]) || JS_IsException(args[1])
                  ? JS_EXCEPTION
                  : construct(ctx, "RegExp", 2, (JSValueConst *)args);
        JS_FreeValue(ctx, args[0]);
        JS_FreeValue(ctx, args[1]);
        return out;
    }
    case QJS_ARRAY_BUFFER:
        return clone_buffer(ctx, v);
    case QJS_MAP: case QJS_SET:
        out = construct(ctx, id == QJS_MAP ? "Map" : "Set", 0, NULL);
        if (JS_IsException(out) || memory_put(s, v, out) < 0 ||
            copy_entries(s, v, out, id == QJS_MAP) < 0) {
            JS_FreeValue(ctx, out);
            return JS_EXCEPTION;
        }
        return out;
    case QJS_ERROR:
        return clone_error(s, v);
    default:
        if ((id >= QJS_UINT8C_ARRAY && id <= QJS_FLOAT64_ARRAY) || id == QJS_DATAVIEW)
            return clone_view(s, v, id);
        return data_clone_error(ctx, JS_IsFunction(ctx, v) ? "A function" : "This object");
    }
    if (JS_IsException(out))
        return out;
    /* Remembered before the properties, so cycles find it. */
    if (memory_put(s, v, out) < 0 || copy_props(s, v, out) < 0) {
        JS_FreeValue(ctx, out);
        return JS_EXCEPTION;
    }
    return out;
}

static JSValue clone_value(clone_state *s, JSValueConst v)
{
    if (JS_IsSymbol(v))
        return data_clone_error(s->ctx, "A symbol");
    if (!JS_IsObject(v))
        return JS_DupValue(s->ctx, v);
    JSValue seen = memory_get(s, v);
    if (!JS_IsUninitialized(seen))
        return seen;
    /* Stacks grow down on every platform atoll runs on. */
    if (s->stack_top - (uintptr_t)__builtin_frame_address(0) > STACK_BUDGET)
        return data_clone_error(s->ctx, "An object nested this deeply");
    JSValue out = clone_object(s, v);
    /* Types without properties to copy are remembered here. */
    if (!JS_IsException(out) && !memory_has(s, v) && memory_put(s, v, out) < 0) {
        JS_FreeValue(s->ctx, out);
        return JS_EXCEPTION;
    }
    return out;
}

/* The transfer list: each an ArrayBuffer, once; their clones are new
 * buffers with the bytes, and the originals are detached afterwards. */
static int read_transfer(clone_state *s, JSValueConst opts, JSValue *list, int64_t *n)
{
    JSContext *ctx = s->ctx;
    *list = JS_UNDEFINED;
    *n = 0;
    if (JS_IsUndefined(opts) || JS_IsNull(opts))
        return 0;
    if (!JS_IsObject(opts)) {
        JS_ThrowTypeError(ctx, "structuredClone: options must be an object");
        return -1;
    }
    JSValue t = JS_GetPropertyStr(ctx, opts, "transfer");
    if (JS_IsException(t))
        return -1;
    if (JS_IsUndefined(t))
        return 0;
    JSValue array = global_ctor(ctx, "Array");
    JSValue from = JS_GetPropertyStr(ctx, array, "from");
    *list = JS_Call(ctx, from, array, 1, (JSValueConst *)&t);
    JS_FreeValue(ctx, from);
    JS_FreeValue(ctx, array);
    JS_FreeValue(ctx, t);
    if (JS_IsException(*list) || jsapi_get_length(ctx, *list, n) < 0)
        return -1;
    for (int64_t i = 0; i < *n; i++) {
        JSValue b = JS_GetPropertyUint32(ctx, *list, (uint32_t)i);
        int rc = 0;
        if (JS_GetClassID(b) != QJS_ARRAY_BUFFER) {
            data_clone_error(ctx, "A transferred value that is not an ArrayBuffer");
            rc = -1;
        } else if (memory_has(s, b)) {
            data_clone_error(ctx, "An ArrayBuffer listed twice for transfer");
            rc = -1;
        } else {
            JSValue c = clone_buffer(ctx, b);
            rc = JS_IsException(c) || memory_put(s, b, c) < 0 ? -1 : 0;
            JS_FreeValue(ctx, c);
        }
        JS_FreeValue(ctx, b);
        if (rc < 0)
            return -1;
    }
    return 0;
}

JSValue jsapi_structured_clone(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    if (argc < 1)
        return JS_ThrowTypeError(ctx, "structuredClone: 1 argument required");
    /* No intrinsics are added here: a Date, Map or typed array in the
     * input means its group is in the context already, and the global
     * constructors used for Map, Set and DataView add theirs on lookup. */
    clone_state s = { .ctx = ctx, .stack_top = (uintptr_t)__builtin_frame_address(0) };
    JSValue list;
    int64_t n;
    JSValue out = JS_EXCEPTION;
    if (read_transfer(&s, argc > 1 ? argv[1] : JS_UNDEFINED, &list, &n) == 0)
        out = clone_value(&s, argv[0]);
    if (!JS_IsException(out)) {
        for (int64_t i = 0; i < n; i++) {
            JSValue b = JS_GetPropertyUint32(ctx, list, (uint32_t)i);
            JS_DetachArrayBuffer(ctx, b);
            JS_FreeValue(ctx, b);
        }
    }
    JS_FreeValue(ctx, list);
    memory_free(&s);
    return out;
}
