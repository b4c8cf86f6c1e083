/* The KVNamespace binding (see kv.h): Workers KV's JavaScript API on the
 * C store of kv/kv.h.
 *
 * Every method returns a promise. Its resolving functions live in a
 * pending op linked to the KVNamespace object, which marks them for the GC
 * (gc_mark), so that the context can be torn down with operations still in
 * the store: the object's finalizer then detaches them, and their store
 * callbacks only free the op. A callback for a live object enters the
 * isolate through the host (enter/leave: clock, job queue, limits), settles
 * the promise and leaves.
 *
 * Values read are made in the JS heap (they count against the tenant's
 * cap); values written are copied to host memory for the store, bounded
 * per binding by MAX_INFLIGHT_BYTES. A ReadableStream value is read to the
 * end first (its chunks gathered in host memory, at most the value limit
 * plus one byte, so an oversized stream fails with the store's message).
 *
 * Each call is charged to the request whose code makes it (the host's
 * kv_op budget, Workers' 1,000 per invocation); a store callback resumes
 * that request, so the calls its continuation makes are charged to it. */
#include "js/api/kv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "js/api/api_internal.h"
#include "js/binding.h"

/* Bytes of put values a binding may have in the store at once; a put that
 * would exceed it (with another in flight) is refused. */
#define MAX_INFLIGHT_BYTES (64u << 20)

enum { T_TEXT, T_JSON, T_ARRAY_BUFFER, T_STREAM };
enum { M_GET, M_GET_META, M_PUT, M_DELETE, M_LIST };

typedef struct kvb_op kvb_op;

/* The opaque of a KVNamespace object. */
typedef struct kvb_ns {
    JSContext *ctx;
    kv_store *store;
    char *id;
    kvb_op *ops; /* pending, most recent first */
    size_t inflight_bytes;
} kvb_ns;

struct kvb_op {
    kvb_op *next, *prev;
    kvb_ns *owner; /* NULL once the object is gone: the callback only frees */
    JSValue resolve, reject;
    int method, type;
    size_t bytes;   /* put: counted in owner->inflight_bytes */
    uint64_t req;   /* the request it is charged to (0: none) */
    bool submitted; /* the store has it and will call back */
};

static JSClassID kvns_class_id, kvput_class_id;

/* --- pending ops --- */

static kvb_op *op_new(JSContext *ctx, kvb_ns *ns, int method, JSValue *promise)
{
    JSValue funcs[2];
    *promise = JS_NewPromiseCapability(ctx, funcs);
    if (JS_IsException(*promise))
        return NULL;
    kvb_op *op = xcalloc(1, sizeof *op);
    op->owner = ns;
    op->method = method;
    op->resolve = funcs[0];
    op->reject = funcs[1];
    op->next = ns->ops;
    if (op->next)
        op->next->prev = op;
    ns->ops = op;
    return op;
}

static void op_unlink(kvb_op *op)
{
    kvb_ns *ns = op->owner;
    if (op->prev)
        op->prev->next = op->next;
    else
        ns->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    ns->inflight_bytes -= op->bytes;
    op->next = op->prev = NULL;
}

static void op_free(JSContext *ctx, kvb_op *op)
{
    if (op->owner)
        op_unlink(op);
    JS_FreeValue(ctx, op->resolve);
    JS_FreeValue(ctx, op->reject);
    free(op);
}

/* The op failed before the store took it: its promise is returned rejected
 * with the pending exception. */
static JSValue op_reject_now(JSContext *ctx, kvb_op *op, JSValue promise)
{
    JSValue exc = JS_GetException(ctx);
    JSValue r = JS_Call(ctx, op->reject, JS_UNDEFINED, 1, (JSValueConst *)&exc);
    JS_FreeValue(ctx, exc);
    JS_FreeValue(ctx, r);
    op_free(ctx, op);
    return promise;
}

/* Throws an Error (not a subclass) with a formatted message. */
static void throw_error(JSContext *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void throw_error(JSContext *ctx, const char *fmt, ...)
{
    char msg[sizeof(((err *)0)->msg) + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    JSValue e = JS_NewError(ctx);
    if (JS_IsException(e))
        return;
    JS_DefinePropertyValueStr(ctx, e, "message", JS_NewString(ctx, msg), JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE);
    JS_Throw(ctx, e);
}

/* Throws what the store reported: Workers throws a TypeError for an empty
 * or "."/".." key and an Error for the rest, each with KV's own text. */
static void throw_store_error(JSContext *ctx, int code, const err *e)
{
    const char *msg = e && e->msg[0] ? e->msg : kv_strerror(code);
    if (code == KV_EKEY_EMPTY || code == KV_EKEY_ILLEGAL)
        JS_ThrowTypeError(ctx, "%s", msg);
    else
        throw_error(ctx, "%s", msg);
}

/* Enters the isolate for a store callback; NULL when the op is orphaned or
 * the isolate broken (the op is then freed). */
static JSContext *op_enter(kvb_op *op)
{
    if (!op->owner) {
        free(op);
        return NULL;
    }
    JSContext *ctx = op->owner->ctx;
    op_unlink(op);
    jsapi_state *st = jsapi_state_of(ctx);
    op->owner = NULL;
    if (!st || !st->host.enter(st->host.opaque)) {
        op_free(ctx, op);
        return NULL;
    }
    /* What runs now continues that request: the KV operations it starts
     * are charged to it. */
    if (st->host.resume)
        st->host.resume(st->host.opaque, op->req);
    return ctx;
}

/* Charges op to its request's budget of KV operations (Workers allows
 * 1,000 per invocation). 0, or -1 with Workers' error pending. */
static int op_charge(JSContext *ctx, kvb_op *op)
{
    jsapi_state *st = jsapi_state_of(ctx);
    uint64_t req = 0;
    if (!st || !st->host.kv_op)
        return 0;
    if (st->host.kv_op(st->host.opaque, &req) < 0) {
        throw_error(ctx, "Too many API requests by single worker invocation.");
        return -1;
    }
    op->req = req;
    return 0;
}

/* Settles the op's promise with v (consumed) or, when v is JS_EXCEPTION,
 * with the pending exception; frees the op and leaves the isolate. */
static void op_settle(JSContext *ctx, kvb_op *op, JSValue v)
{
    jsapi_state *st = jsapi_state_of(ctx);
    JSValue r;
    if (JS_IsException(v)) {
        JSValue exc = JS_GetException(ctx);
        r = JS_Call(ctx, op->reject, JS_UNDEFINED, 1, (JSValueConst *)&exc);
        JS_FreeValue(ctx, exc);
    } else {
        r = JS_Call(ctx, op->resolve, JS_UNDEFINED, 1, (JSValueConst *)&v);
        JS_FreeValue(ctx, v);
    }
    op_free(ctx, op);
    st->host.leave(st->host.opaque, r, "KV");
}

/* --- values --- */

static JSValue make_uint8(JSContext *ctx, const void *p, size_t n)
{
    jsapi_need(ctx, JSAPI_INTRINSIC_TYPED_ARRAYS);
    JSValue ab = JS_NewArrayBufferCopy(ctx, p, n);
    if (JS_IsException(ab))
        return ab;
    JSValue global = JS_GetGlobalObject(ctx);
    JSValue u8 = JS_GetPropertyStr(ctx, global, "Uint8Array");
    JSValue v = JS_CallConstructor(ctx, u8, 1, (JSValueConst *)&ab);
    JS_FreeValue(ctx, u8);
    JS_FreeValue(ctx, global);
    JS_FreeValue(ctx, ab);
    return v;
}

/* start(controller) of the one-chunk source behind a "stream" get. */
static JSValue stream_start(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv, int magic,
                            JSValue *data)
{
    JSValueConst c = argc > 0 ? argv[0] : JS_UNDEFINED;
    JSValue enqueue = JS_GetPropertyStr(ctx, c, "enqueue");
    JSValue r = JS_Call(ctx, enqueue, c, 1, (JSValueConst *)&data[0]);
    JS_FreeValue(ctx, enqueue);
    if (JS_IsException(r))
        return r;
    JS_FreeValue(ctx, r);
    JSValue close = JS_GetPropertyStr(ctx, c, "close");
    r = JS_Call(ctx, close, c, 0, NULL);
    JS_FreeValue(ctx, close);
    return r;
}

/* A ReadableStream of one Uint8Array chunk, from the global constructor
 * (the streams API provides it; without it, a TypeError says so). */
static JSValue make_stream(JSContext *ctx, const void *p, size_t n)
{
    JSValue global = JS_GetGlobalObject(ctx);
    JSValue ctor = JS_GetPropertyStr(ctx, global, "ReadableStream");
    JS_FreeValue(ctx, global);
    if (!JS_IsConstructor(ctx, ctor)) {
        JS_FreeValue(ctx, ctor);
        return JS_ThrowTypeError(ctx, "KV get(key, \"stream\"): this runtime has no ReadableStream");
    }
    JSValue chunk = make_uint8(ctx, p, n), src = JS_UNDEFINED, start = JS_UNDEFINED, v = JS_EXCEPTION;
    if (JS_IsException(chunk))
        goto out;
    start = JS_NewCFunctionData(ctx, stream_start, 1, 0, 1, (JSValueConst *)&chunk);
    src = JS_NewObject(ctx);
    if (JS_IsException(start) || JS_IsException(src))
        goto out;
    if (JS_SetPropertyStr(ctx, src, "start", JS_DupValue(ctx, start)) < 0)
        goto out;
    v = JS_CallConstructor(ctx, ctor, 1, (JSValueConst *)&src);
out:
    JS_FreeValue(ctx, src);
    JS_FreeValue(ctx, start);
    JS_FreeValue(ctx, chunk);
    JS_FreeValue(ctx, ctor);
    return v;
}

static JSValue make_value(JSContext *ctx, int type, const kv_value *v)
{
    switch (type) {
    case T_JSON:
        /* v->value is NUL-terminated past len (kv.h). */
        return JS_ParseJSON(ctx, v->value, v->len, "<kv>");
    case T_ARRAY_BUFFER:
        jsapi_need(ctx, JSAPI_INTRINSIC_TYPED_ARRAYS);
        return JS_NewArrayBufferCopy(ctx, v->value, v->len);
    case T_STREAM:
        return make_stream(ctx, v->value, v->len);
    default:
        return JS_NewStringLen(ctx, v->value, v->len);
    }
}

static JSValue make_metadata(JSContext *ctx, const char *m, size_t n)
{
    return m ? JS_ParseJSON(ctx, m, n, "<kv metadata>") : JS_NULL;
}

/* --- store callbacks --- */

static void on_get(void *data, int status, kv_value *v, const err *e)
{
    kvb_op *op = data;
    JSContext *ctx = op_enter(op);
    if (!ctx)
        return;
    JSValue res;
    if (status) {
        throw_store_error(ctx, status, e);
        res = JS_EXCEPTION;
    } else {
        JSValue value = v ? make_value(ctx, op->type, v) : JS_NULL;
        if (op->method == M_GET || JS_IsException(value)) {
            res = value;
        } else {
            JSValue meta = v ? make_metadata(ctx, v->metadata, v->metadata_len) : JS_NULL;
            res = JS_NewObject(ctx);
            if (JS_IsException(meta) || JS_IsException(res) ||
                JS_DefinePropertyValueStr(ctx, res, "value", value, JS_PROP_C_W_E) < 0 ||
                JS_DefinePropertyValueStr(ctx, res, "metadata", meta, JS_PROP_C_W_E) < 0 ||
                JS_DefinePropertyValueStr(ctx, res, "cacheStatus", JS_NULL, JS_PROP_C_W_E) < 0) {
                /* JS_DefinePropertyValue consumed what it was given. */
                if (JS_IsException(meta) || JS_IsException(res)) {
                    JS_FreeValue(ctx, value);
                    JS_FreeValue(ctx, meta);
                }
                JS_FreeValue(ctx, res);
                res = JS_EXCEPTION;
            }
        }
    }
    op_settle(ctx, op, res);
}

static void on_done(void *data, int status, const err *e)
{
    kvb_op *op = data;
    JSContext *ctx = op_enter(op);
    if (!ctx)
        return;
    if (status) {
        throw_store_error(ctx, status, e);
        op_settle(ctx, op, JS_EXCEPTION);
    } else {
        op_settle(ctx, op, JS_UNDEFINED);
    }
}

static JSValue make_key(JSContext *ctx, const kv_key *k)
{
    JSValue o = JS_NewObject(ctx);
    if (JS_IsException(o))
        return o;
    if (JS_DefinePropertyValueStr(ctx, o, "name", JS_NewStringLen(ctx, k->name, k->name_len), JS_PROP_C_W_E) < 0)
        goto fail;
    if (k->expiration &&
        JS_DefinePropertyValueStr(ctx, o, "expiration", JS_NewInt64(ctx, k->expiration), JS_PROP_C_W_E) < 0)
        goto fail;
    if (k->metadata) {
        JSValue m = make_metadata(ctx, k->metadata, k->metadata_len);
        if (JS_IsException(m) || JS_DefinePropertyValueStr(ctx, o, "metadata", m, JS_PROP_C_W_E) < 0)
            goto fail;
    }
    return o;
fail:
    JS_FreeValue(ctx, o);
    return JS_EXCEPTION;
}

static void on_list(void *data, int status, const kv_list_result *r, const err *e)
{
    kvb_op *op = data;
    JSContext *ctx = op_enter(op);
    if (!ctx)
        return;
    if (status) {
        throw_store_error(ctx, status, e);
        op_settle(ctx, op, JS_EXCEPTION);
        return;
    }
    JSValue res = JS_NewObject(ctx), keys = JS_NewArray(ctx);
    if (JS_IsException(res) || JS_IsException(keys))
        goto fail;
    for (size_t i = 0; i < r->count; i++) {
        JSValue k = make_key(ctx, &r->keys[i]);
        if (JS_IsException(k) || JS_DefinePropertyValueUint32(ctx, keys, (uint32_t)i, k, JS_PROP_C_W_E) < 0)
            goto fail;
    }
    JSValue kv = keys;
    keys = JS_UNDEFINED;
    if (JS_DefinePropertyValueStr(ctx, res, "keys", kv, JS_PROP_C_W_E) < 0 ||
        JS_DefinePropertyValueStr(ctx, res, "list_complete", JS_NewBool(ctx, r->list_complete), JS_PROP_C_W_E) < 0)
        goto fail;
    if (!r->list_complete && r->cursor &&
        JS_DefinePropertyValueStr(ctx, res, "cursor", JS_NewString(ctx, r->cursor), JS_PROP_C_W_E) < 0)
        goto fail;
    if (JS_DefinePropertyValueStr(ctx, res, "cacheStatus", JS_NULL, JS_PROP_C_W_E) < 0)
        goto fail;
    op_settle(ctx, op, res);
    return;
fail:
    JS_FreeValue(ctx, keys);
    JS_FreeValue(ctx, res);
    op_settle(ctx, op, JS_EXCEPTION);
}

/* --- arguments --- */

static kvb_ns *ns_of(JSContext *ctx, JSValueConst this_val)
{
    return JS_GetOpaque2(ctx, this_val, kvns_class_id);
}

/* A rejected promise with the pending exception (a method never throws). */
static JSValue rejected(JSContext *ctx)
{
    JSValue exc = JS_GetException(ctx);
    JSValue funcs[2];
    JSValue p = JS_NewPromiseCapability(ctx, funcs);
    if (JS_IsException(p)) {
        JS_FreeValue(ctx, exc);
        return p;
    }
    JSValue r = JS_Call(ctx, funcs[1], JS_UNDEFINED, 1, (JSValueConst *)&exc);
    JS_FreeValue(ctx, r);
    JS_FreeValue(ctx, exc);
    JS_FreeValue(ctx, funcs[0]);
    JS_FreeValue(ctx, funcs[1]);
    return p;
}

/* The type of a get: "text" (default), "json", "arrayBuffer", "stream",
 * given as a string or as {type, cacheTtl}. -1 with an exception. */
static int parse_get_type(JSContext *ctx, JSValueConst arg, const char *verb)
{
    JSValue t = JS_UNDEFINED;
    if (JS_IsObject(arg)) {
        JSValue ttl = JS_GetPropertyStr(ctx, arg, "cacheTtl");
        if (JS_IsException(ttl))
            return -1;
        if (!JS_IsUndefined(ttl)) {
            int64_t n = 0;
            int rc = JS_ToInt64(ctx, &n, ttl);
            JS_FreeValue(ctx, ttl);
            if (rc < 0)
                return -1;
            /* Accepted and checked as Workers does; there is no edge cache
             * in front of the store to apply it to. */
            if (n < 60) {
                throw_error(ctx, "KV %s failed: 400 Invalid cache_ttl of %lld. Cache TTL must be at least 60.",
                                   verb, (long long)n);
                return -1;
            }
        }
        t = JS_GetPropertyStr(ctx, arg, "type");
        if (JS_IsException(t))
            return -1;
    } else {
        t = JS_DupValue(ctx, arg);
    }
    if (JS_IsUndefined(t) || JS_IsNull(t))
        return T_TEXT;
    const char *s = JS_ToCString(ctx, t);
    JS_FreeValue(ctx, t);
    if (!s)
        return -1;
    int type = !strcmp(s, "text")          ? T_TEXT
               : !strcmp(s, "json")        ? T_JSON
               : !strcmp(s, "arrayBuffer") ? T_ARRAY_BUFFER
               : !strcmp(s, "stream")      ? T_STREAM
                                           : -1;
    JS_FreeCString(ctx, s);
    if (type < 0)
        JS_ThrowTypeError(ctx, "Unknown response type. Possible types are \"text\", \"arrayBuffer\", \"json\", "
                               "and \"stream\".");
    return type;
}

/* --- methods --- */

/* One get or getWithMetadata of `key`. It is charged to the request's
 * budget when `charge`; otherwise it continues the request *req (the
 * keys of a bulk get after the first, which Workers counts as one). */
static JSValue get_one(JSContext *ctx, kvb_ns *ns, JSValueConst key_val, int type, int method, bool charge,
                       uint64_t *req)
{
    size_t klen;
    const char *key = JS_ToCStringLen(ctx, &klen, key_val);
    if (!key)
        return rejected(ctx);
    JSValue promise;
    kvb_op *op = op_new(ctx, ns, method, &promise);
    if (!op) {
        JS_FreeCString(ctx, key);
        return promise;
    }
    op->type = type;
    if (charge && op_charge(ctx, op) < 0) {
        JS_FreeCString(ctx, key);
        return op_reject_now(ctx, op, promise);
    }
    if (charge)
        *req = op->req;
    else
        op->req = *req;
    err e;
    int rc = kv_get(ns->store, ns->id, key, klen, on_get, op, &e);
    op->submitted = rc == 0;
    JS_FreeCString(ctx, key);
    if (rc) {
        throw_store_error(ctx, rc, &e);
        return op_reject_now(ctx, op, promise);
    }
    return promise;
}

/* then() of a bulk get: the values, in key order, into a Map by key. */
static JSValue bulk_to_map(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv, int magic,
                           JSValue *data)
{
    JSValueConst keys = data[0], values = argc > 0 ? argv[0] : JS_UNDEFINED;
    JSValue global = JS_GetGlobalObject(ctx);
    JSValue ctor = JS_GetPropertyStr(ctx, global, "Map");
    JS_FreeValue(ctx, global);
    JSValue map = JS_CallConstructor(ctx, ctor, 0, NULL);
    JS_FreeValue(ctx, ctor);
    if (JS_IsException(map))
        return map;
    JSValue set = JS_GetPropertyStr(ctx, map, "set");
    int64_t n = 0;
    jsapi_get_length(ctx, keys, &n); /* our own array of strings */
    for (int64_t i = 0; i < n; i++) {
        JSValue kv[2] = {JS_GetPropertyUint32(ctx, keys, (uint32_t)i), JS_GetPropertyUint32(ctx, values, (uint32_t)i)};
        JSValue r = JS_Call(ctx, set, map, 2, (JSValueConst *)kv);
        JS_FreeValue(ctx, kv[0]);
        JS_FreeValue(ctx, kv[1]);
        if (JS_IsException(r)) {
            JS_FreeValue(ctx, set);
            JS_FreeValue(ctx, map);
            return r;
        }
        JS_FreeValue(ctx, r);
    }
    JS_FreeValue(ctx, set);
    return map;
}

/* get(keys[]) and getWithMetadata(keys[]): Workers' bulk read of up to 100
 * keys (text or json), one operation of the request's budget, resolving to
 * a Map from each key to what a get of that key gives. */
static JSValue get_bulk(JSContext *ctx, kvb_ns *ns, JSValueConst keys_in, int type, int method)
{
    const char *verb = method == M_GET ? "GET_BULK" : "GET_BULK_WITH_METADATA";
    int64_t n = 0;
    if (jsapi_get_length(ctx, keys_in, &n) < 0)
        return rejected(ctx);
    if (n < 1 || n > 100) {
        throw_error(ctx, "KV %s failed: 400 You can request between 1 and 100 keys (got %lld).", verb,
                    (long long)n);
        return rejected(ctx);
    }
    if (type != T_TEXT && type != T_JSON) {
        JS_ThrowTypeError(ctx, "KV %s: a bulk read returns \"text\" or \"json\" values only", verb);
        return rejected(ctx);
    }
    /* The keys as strings, copied: the caller may change its array. */
    JSValue keys = JS_NewArray(ctx), promises = JS_NewArray(ctx);
    JSValue result = JS_EXCEPTION;
    uint64_t req = 0;
    for (int64_t i = 0; i < n; i++) {
        JSValue k = JS_GetPropertyUint32(ctx, keys_in, (uint32_t)i);
        JSValue ks = JS_IsException(k) ? JS_EXCEPTION : JS_ToString(ctx, k);
        JS_FreeValue(ctx, k);
        if (JS_IsException(ks) || JS_SetPropertyInt64(ctx, keys, i, JS_DupValue(ctx, ks)) < 0) {
            JS_FreeValue(ctx, ks);
            result = rejected(ctx);
            goto out;
        }
        JSValue p = get_one(ctx, ns, ks, type, method, i == 0, &req);
        JS_FreeValue(ctx, ks);
        if (JS_IsException(p) || JS_SetPropertyInt64(ctx, promises, i, p) < 0) {
            result = rejected(ctx);
            goto out;
        }
    }
    JSValue global = JS_GetGlobalObject(ctx);
    JSValue promise_ctor = JS_GetPropertyStr(ctx, global, "Promise");
    JS_FreeValue(ctx, global);
    JSValue all_fn = JS_GetPropertyStr(ctx, promise_ctor, "all");
    JSValue all = JS_Call(ctx, all_fn, promise_ctor, 1, (JSValueConst *)&promises);
    JS_FreeValue(ctx, all_fn);
    JS_FreeValue(ctx, promise_ctor);
    if (JS_IsException(all)) {
        result = rejected(ctx);
        goto out;
    }
    JSValue to_map = JS_NewCFunctionData(ctx, bulk_to_map, 1, 0, 1, (JSValueConst *)&keys);
    JSValue then = JS_GetPropertyStr(ctx, all, "then");
    result = JS_Call(ctx, then, all, 1, (JSValueConst *)&to_map);
    JS_FreeValue(ctx, then);
    JS_FreeValue(ctx, to_map);
    JS_FreeValue(ctx, all);
    if (JS_IsException(result))
        result = rejected(ctx);
out:
    JS_FreeValue(ctx, keys);
    JS_FreeValue(ctx, promises);
    return result;
}

static JSValue kv_get_method(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv, int magic)
{
    kvb_ns *ns = ns_of(ctx, this_val);
    if (!ns)
        return rejected(ctx);
    JSValueConst key = argc > 0 ? argv[0] : JS_UNDEFINED;
    int type = parse_get_type(ctx, argc > 1 ? argv[1] : JS_UNDEFINED, "GET");
    if (type < 0)
        return rejected(ctx);
    if (JS_IsArray(ctx, key) > 0)
        return get_bulk(ctx, ns, key, type, magic);
    uint64_t req = 0;
    return get_one(ctx, ns, key, type, magic, true, &req);
}

/* put's options: {expiration, expirationTtl, metadata}. Strings it
 * allocates (metadata) are js_malloc'd and freed by put_opts_free. */
static int parse_put_opts(JSContext *ctx, JSValueConst arg, kv_put_opts *o)
{
    memset(o, 0, sizeof *o);
    if (JS_IsUndefined(arg) || JS_IsNull(arg))
        return 0;
    if (!JS_IsObject(arg)) {
        JS_ThrowTypeError(ctx, "KV put(): options must be an object");
        return -1;
    }
    static const char *const names[] = {"expiration", "expirationTtl"};
    for (int k = 0; k < 2; k++) {
        JSValue v = JS_GetPropertyStr(ctx, arg, names[k]);
        if (JS_IsException(v))
            return -1;
        if (JS_IsUndefined(v) || JS_IsNull(v))
            continue;
        double d;
        int rc = JS_ToFloat64(ctx, &d, v);
        JS_FreeValue(ctx, v);
        if (rc < 0)
            return -1;
        /* NaN and fractions become whole seconds as Workers' integer
         * conversion makes them; out of range is left to the store. */
        int64_t n = d != d ? 0 : d >= 9.2e18 ? INT64_MAX : d <= -9.2e18 ? INT64_MIN : (int64_t)d;
        if (k == 0) {
            o->has_expiration = true;
            o->expiration = n;
        } else {
            o->has_ttl = true;
            o->expiration_ttl = n;
        }
    }
    JSValue m = JS_GetPropertyStr(ctx, arg, "metadata");
    if (JS_IsException(m))
        return -1;
    if (!JS_IsUndefined(m) && !JS_IsNull(m)) {
        JSValue json = JS_JSONStringify(ctx, m, JS_UNDEFINED, JS_UNDEFINED);
        JS_FreeValue(ctx, m);
        if (JS_IsException(json))
            return -1;
        if (JS_IsUndefined(json)) {
            JS_ThrowTypeError(ctx, "KV put(): metadata must be serializable to JSON");
            return -1;
        }
        size_t n;
        const char *s = JS_ToCStringLen(ctx, &n, json);
        JS_FreeValue(ctx, json);
        if (!s)
            return -1;
        o->metadata = s;
        o->metadata_len = n;
    } else {
        JS_FreeValue(ctx, m);
    }
    return 0;
}

static void put_opts_free(JSContext *ctx, kv_put_opts *o)
{
    if (o->metadata)
        JS_FreeCString(ctx, o->metadata);
    o->metadata = NULL;
}

/* Hands a put to the store: 0, or non-zero with an exception pending (the
 * caller rejects op). The store copies the bytes. */
static int start_put(JSContext *ctx, kvb_ns *ns, kvb_op *op, const char *key, size_t klen, const void *value,
                     size_t vlen, const kv_put_opts *o)
{
    err e;
    int rc;
    /* A stream's buffer counted as in flight while it was read; now the
     * value does. */
    ns->inflight_bytes -= op->bytes;
    op->bytes = 0;
    /* An oversized value gets the store's 413, whatever is in flight. */
    if (ns->inflight_bytes > 0 && vlen <= KV_MAX_VALUE_BYTES && ns->inflight_bytes + vlen > MAX_INFLIGHT_BYTES)
        rc = err_set(&e, -EAGAIN,
                     "KV PUT failed: 503 too many bytes of values in flight (%zu); await earlier puts first",
                     ns->inflight_bytes);
    else
        rc = kv_put(ns->store, ns->id, key, klen, value, vlen, o, on_done, op, &e);
    if (rc == 0) {
        op->submitted = true;
        op->bytes = vlen;
        ns->inflight_bytes += vlen;
        return 0;
    }
    throw_store_error(ctx, rc, &e);
    return rc;
}

/* --- put with a ReadableStream value: read it to the end, then put. --- */

/* The opaque of a KVPutStream object, which the read callbacks carry. */
typedef struct kvb_stream {
    JSValue ns_obj; /* keeps the KVNamespace (and so op) alive */
    JSValue reader;
    kvb_op *op;
    char *key;
    size_t klen;
    kv_put_opts o; /* metadata malloc'd */
    buf data;
    bool finished;
} kvb_stream;

static void kvput_finalizer(JSRuntime *rt, JSValue val)
{
    kvb_stream *s = JS_GetOpaque(val, kvput_class_id);
    if (!s)
        return;
    JS_FreeValueRT(rt, s->ns_obj);
    JS_FreeValueRT(rt, s->reader);
    free(s->key);
    free((char *)s->o.metadata);
    buf_free(&s->data);
    free(s);
}

static void kvput_mark(JSRuntime *rt, JSValueConst val, JS_MarkFunc *mark)
{
    kvb_stream *s = JS_GetOpaque(val, kvput_class_id);
    if (s) {
        JS_MarkValue(rt, s->ns_obj, mark);
        JS_MarkValue(rt, s->reader, mark);
    }
}

static const JSClassDef kvput_class = {"KVPutStream", .finalizer = kvput_finalizer, .gc_mark = kvput_mark};

static int stream_pump(JSContext *ctx, JSValueConst state);

/* Ends the read: the op is rejected with the pending exception. */
static void stream_fail(JSContext *ctx, kvb_stream *s)
{
    s->finished = true;
    kvb_op *op = s->op;
    s->op = NULL;
    if (op && op->owner)
        op_reject_now(ctx, op, JS_UNDEFINED);
    else
        JS_FreeValue(ctx, JS_GetException(ctx));
}

/* Gives up on the stream (reader.cancel(), when it has one) and rejects
 * the put with the exception pending, whatever cancel() does. */
static void stream_cancel(JSContext *ctx, kvb_stream *s)
{
    JSValue exc = JS_GetException(ctx);
    JSValue cancel = JS_GetPropertyStr(ctx, s->reader, "cancel");
    if (JS_IsFunction(ctx, cancel))
        JS_FreeValue(ctx, JS_Call(ctx, cancel, s->reader, 1, (JSValueConst *)&exc));
    JS_FreeValue(ctx, cancel);
    if (JS_HasException(ctx))
        JS_FreeValue(ctx, JS_GetException(ctx));
    JS_Throw(ctx, exc);
    stream_fail(ctx, s);
}

/* reader.read() settled: data[0] is the KVPutStream, magic 1 for rejection. */
static JSValue stream_on_read(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv, int magic,
                              JSValue *data)
{
    kvb_stream *s = JS_GetOpaque(data[0], kvput_class_id);
    JSValueConst res = argc > 0 ? argv[0] : JS_UNDEFINED;
    if (!s || s->finished || !s->op || !s->op->owner)
        return JS_UNDEFINED;
    if (magic) {
        JS_Throw(ctx, JS_DupValue(ctx, res));
        stream_fail(ctx, s);
        return JS_UNDEFINED;
    }
    JSValue done = JS_GetPropertyStr(ctx, res, "done");
    int is_done = JS_ToBool(ctx, done);
    JS_FreeValue(ctx, done);
    if (is_done < 0) {
        stream_fail(ctx, s);
        return JS_UNDEFINED;
    }
    if (is_done) {
        s->finished = true;
        kvb_op *op = s->op;
        s->op = NULL;
        if (start_put(ctx, op->owner, op, s->key, s->klen, s->data.data ? s->data.data : "", s->data.len, &s->o))
            op_reject_now(ctx, op, JS_UNDEFINED);
        return JS_UNDEFINED;
    }
    JSValue chunk = JS_GetPropertyStr(ctx, res, "value");
    size_t off = 0, n = 0, per;
    uint8_t *p = NULL;
    JSValue ab = JS_GetTypedArrayBuffer(ctx, chunk, &off, &n, &per);
    if (!JS_IsException(ab)) {
        size_t total;
        p = JS_GetArrayBuffer(ctx, &total, ab);
        JS_FreeValue(ctx, ab);
    } else {
        JS_FreeValue(ctx, JS_GetException(ctx));
        p = JS_GetArrayBuffer(ctx, &n, chunk);
    }
    JS_FreeValue(ctx, chunk);
    if (!p && n == 0 && JS_HasException(ctx)) {
        JS_FreeValue(ctx, JS_GetException(ctx));
        JS_ThrowTypeError(ctx, "KV put(): a stream value must yield ArrayBuffer or ArrayBufferView chunks");
        stream_fail(ctx, s);
        return JS_UNDEFINED;
    }
    kvb_ns *ns = s->op->owner;
    if (ns->inflight_bytes > s->op->bytes && ns->inflight_bytes + n > MAX_INFLIGHT_BYTES) {
        /* Streams being read count against the same bound as puts. */
        throw_error(ctx, "KV PUT failed: 503 too many bytes of values in flight (%zu); await earlier puts first",
                    ns->inflight_bytes);
        stream_cancel(ctx, s);
        return JS_UNDEFINED;
    }
    if (s->data.len + n > KV_MAX_VALUE_BYTES) {
        /* Too large: the store's own message, without buffering more. */
        err e;
        err_clear(&e);
        int rc = kv_put(s->op->owner->store, s->op->owner->id, s->key, s->klen, NULL, s->data.len + n, &s->o,
                        on_done, NULL, &e);
        throw_store_error(ctx, rc ? rc : -EFBIG, &e);
        stream_cancel(ctx, s);
        return JS_UNDEFINED;
    }
    if (n) {
        buf_append(&s->data, p + off, n);
        s->op->bytes += n;
        ns->inflight_bytes += n;
    }
    if (stream_pump(ctx, data[0]) < 0)
        stream_fail(ctx, s);
    return JS_UNDEFINED;
}

/* reader.read().then(on_read, on_error). 0, or -1 with an exception. */
static int stream_pump(JSContext *ctx, JSValueConst state)
{
    kvb_stream *s = JS_GetOpaque(state, kvput_class_id);
    JSValue read = JS_GetPropertyStr(ctx, s->reader, "read");
    JSValue p = JS_Call(ctx, read, s->reader, 0, NULL);
    JS_FreeValue(ctx, read);
    if (JS_IsException(p))
        return -1;
    JSValue ok = JS_NewCFunctionData(ctx, stream_on_read, 1, 0, 1, &state);
    JSValue bad = JS_NewCFunctionData(ctx, stream_on_read, 1, 1, 1, &state);
    JSValue r = JS_IsException(ok) || JS_IsException(bad) ? JS_EXCEPTION : jsapi_promise_then(ctx, p, ok, bad);
    JS_FreeValue(ctx, ok);
    JS_FreeValue(ctx, bad);
    JS_FreeValue(ctx, p);
    if (JS_IsException(r))
        return -1;
    JS_FreeValue(ctx, r);
    return 0;
}

/* Starts reading `stream` for op; on failure the exception is pending and
 * the caller rejects op. */
static int put_stream(JSContext *ctx, JSValueConst this_val, kvb_op *op, JSValueConst stream, const char *key,
                      size_t klen, const kv_put_opts *o)
{
    JSValue get_reader = JS_GetPropertyStr(ctx, stream, "getReader");
    JSValue reader = JS_Call(ctx, get_reader, stream, 0, NULL);
    JS_FreeValue(ctx, get_reader);
    if (JS_IsException(reader))
        return -1;
    if (!JS_IsRegisteredClass(JS_GetRuntime(ctx), kvput_class_id))
        JS_NewClass(JS_GetRuntime(ctx), kvput_class_id, &kvput_class);
    JSValue state = JS_NewObjectClass(ctx, (int)kvput_class_id);
    if (JS_IsException(state)) {
        JS_FreeValue(ctx, reader);
        return -1;
    }
    kvb_stream *s = xcalloc(1, sizeof *s);
    s->ns_obj = JS_DupValue(ctx, this_val);
    s->reader = reader;
    s->op = op;
    s->key = xstrndup(key, klen);
    s->klen = klen;
    s->o = *o;
    s->o.metadata = o->metadata ? xstrndup(o->metadata, o->metadata_len) : NULL;
    buf_init(&s->data, BUF_UNLIMITED);
    JS_SetOpaque(state, s);
    int rc = stream_pump(ctx, state);
    if (rc < 0)
        s->op = NULL; /* the caller rejects it */
    JS_FreeValue(ctx, state);
    return rc;
}

static bool is_stream(JSContext *ctx, JSValueConst v)
{
    if (!JS_IsObject(v))
        return false;
    JSValue f = JS_GetPropertyStr(ctx, v, "getReader");
    bool yes = JS_IsFunction(ctx, f);
    JS_FreeValue(ctx, f);
    if (JS_HasException(ctx))
        JS_FreeValue(ctx, JS_GetException(ctx));
    return yes;
}

/* ArrayBuffer or an ArrayBuffer view. */
static bool is_buffer(JSContext *ctx, JSValueConst v)
{
    if (!JS_IsObject(v))
        return false;
    jsapi_need(ctx, JSAPI_INTRINSIC_TYPED_ARRAYS);
    JSValue global = JS_GetGlobalObject(ctx);
    JSValue ab = JS_GetPropertyStr(ctx, global, "ArrayBuffer");
    JSValue is_view = JS_GetPropertyStr(ctx, ab, "isView");
    JSValue r = JS_Call(ctx, is_view, ab, 1, &v);
    bool yes = JS_ToBool(ctx, r) > 0 || JS_IsInstanceOf(ctx, v, ab) > 0;
    JS_FreeValue(ctx, r);
    JS_FreeValue(ctx, is_view);
    JS_FreeValue(ctx, ab);
    JS_FreeValue(ctx, global);
    if (JS_HasException(ctx))
        JS_FreeValue(ctx, JS_GetException(ctx));
    return yes;
}

static JSValue kv_put_method(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    kvb_ns *ns = ns_of(ctx, this_val);
    if (!ns)
        return rejected(ctx);
    JSValueConst value = argc > 1 ? argv[1] : JS_UNDEFINED;
    size_t klen, vlen = 0;
    const char *key = NULL, *str = NULL;
    jsapi_body body = {0};
    kv_put_opts o = {0};
    JSValue promise = JS_UNDEFINED;
    kvb_op *op = NULL;
    bool stream = false;
    if (!(key = JS_ToCStringLen(ctx, &klen, argc > 0 ? argv[0] : JS_UNDEFINED)))
        goto fail;
    if (JS_IsString(value)) {
        if (!(str = JS_ToCStringLen(ctx, &vlen, value)))
            goto fail;
    } else if (is_buffer(ctx, value)) {
        const char *ct;
        if (jsapi_body_init(ctx, value, &body, &ct) < 0)
            goto fail;
        str = (const char *)body.data;
        vlen = body.len;
    } else if (is_stream(ctx, value)) {
        stream = true;
    } else {
        JS_ThrowTypeError(ctx, "KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams "
                               "as values.");
        goto fail;
    }
    if (parse_put_opts(ctx, argc > 2 ? argv[2] : JS_UNDEFINED, &o) < 0)
        goto fail;
    if (!(op = op_new(ctx, ns, M_PUT, &promise)))
        goto fail;
    int rc = op_charge(ctx, op);
    if (rc == 0)
        rc = stream ? put_stream(ctx, this_val, op, value, key, klen, &o)
                     : start_put(ctx, ns, op, key, klen, str ? str : "", vlen, &o);
    if (rc)
        promise = op_reject_now(ctx, op, promise);
    JS_FreeCString(ctx, key);
    if (!stream && JS_IsString(value))
        JS_FreeCString(ctx, str);
    jsapi_body_free(JS_GetRuntime(ctx), &body);
    put_opts_free(ctx, &o);
    return promise;
fail:
    if (key)
        JS_FreeCString(ctx, key);
    if (str && JS_IsString(value))
        JS_FreeCString(ctx, str);
    jsapi_body_free(JS_GetRuntime(ctx), &body);
    put_opts_free(ctx, &o);
    return JS_IsException(promise) ? promise : rejected(ctx);
}

static JSValue kv_delete_method(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    kvb_ns *ns = ns_of(ctx, this_val);
    if (!ns)
        return rejected(ctx);
    size_t klen;
    const char *key = JS_ToCStringLen(ctx, &klen, argc > 0 ? argv[0] : JS_UNDEFINED);
    if (!key)
        return rejected(ctx);
    JSValue promise;
    kvb_op *op = op_new(ctx, ns, M_DELETE, &promise);
    if (!op) {
        JS_FreeCString(ctx, key);
        return promise;
    }
    if (op_charge(ctx, op) < 0) {
        JS_FreeCString(ctx, key);
        return op_reject_now(ctx, op, promise);
    }
    err e;
    int rc = kv_delete(ns->store, ns->id, key, klen, on_done, op, &e);
    op->submitted = rc == 0;
    JS_FreeCString(ctx, key);
    if (rc) {
        throw_store_error(ctx, rc, &e);
        return op_reject_now(ctx, op, promise);
    }
    return promise;
}

static JSValue kv_list_method(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    kvb_ns *ns = ns_of(ctx, this_val);
    if (!ns)
        return rejected(ctx);
    JSValueConst arg = argc > 0 ? argv[0] : JS_UNDEFINED;
    kv_list_opts o = {0};
    const char *prefix = NULL, *cursor = NULL;
    JSValue promise = JS_UNDEFINED;
    if (JS_IsObject(arg)) {
        JSValue v = JS_GetPropertyStr(ctx, arg, "prefix");
        if (JS_IsException(v))
            goto fail;
        if (!JS_IsUndefined(v) && !JS_IsNull(v)) {
            prefix = JS_ToCStringLen(ctx, &o.prefix_len, v);
            o.prefix = prefix;
        }
        JS_FreeValue(ctx, v);
        if (JS_HasException(ctx))
            goto fail;
        v = JS_GetPropertyStr(ctx, arg, "limit");
        if (JS_IsException(v))
            goto fail;
        if (!JS_IsUndefined(v) && !JS_IsNull(v)) {
            double d;
            int rc = JS_ToFloat64(ctx, &d, v);
            JS_FreeValue(ctx, v);
            if (rc < 0)
                goto fail;
            o.has_limit = true;
            o.limit = d != d ? 0 : d > 1e9 ? 1000000000 : d < -1e9 ? -1000000000 : (int64_t)d;
        }
        v = JS_GetPropertyStr(ctx, arg, "cursor");
        if (JS_IsException(v))
            goto fail;
        if (!JS_IsUndefined(v) && !JS_IsNull(v))
            o.cursor = cursor = JS_ToCString(ctx, v);
        JS_FreeValue(ctx, v);
        if (JS_HasException(ctx))
            goto fail;
    } else if (!JS_IsUndefined(arg) && !JS_IsNull(arg)) {
        JS_ThrowTypeError(ctx, "KV list(): options must be an object");
        goto fail;
    }
    kvb_op *op = op_new(ctx, ns, M_LIST, &promise);
    if (!op)
        goto fail;
    if (op_charge(ctx, op) < 0) {
        promise = op_reject_now(ctx, op, promise);
        JS_FreeCString(ctx, prefix);
        JS_FreeCString(ctx, cursor);
        return promise;
    }
    err e;
    int rc = kv_list(ns->store, ns->id, &o, on_list, op, &e);
    op->submitted = rc == 0;
    if (rc) {
        throw_store_error(ctx, rc, &e);
        promise = op_reject_now(ctx, op, promise);
    }
    JS_FreeCString(ctx, prefix);
    JS_FreeCString(ctx, cursor);
    return promise;
fail:
    JS_FreeCString(ctx, prefix);
    JS_FreeCString(ctx, cursor);
    return JS_IsException(promise) ? promise : rejected(ctx);
}

/* --- the class --- */

static void kvns_finalizer(JSRuntime *rt, JSValue val)
{
    kvb_ns *ns = JS_GetOpaque(val, kvns_class_id);
    if (!ns)
        return;
    /* Ops still in the store: their callbacks will only free them. Ops
     * not in it yet (a put still reading its stream) go now: no JS runs
     * after a context's teardown to hand them over. */
    for (kvb_op *op = ns->ops, *next; op; op = next) {
        next = op->next;
        JS_FreeValueRT(rt, op->resolve);
        JS_FreeValueRT(rt, op->reject);
        op->resolve = op->reject = JS_UNDEFINED;
        op->owner = NULL;
        op->next = op->prev = NULL;
        if (!op->submitted)
            free(op);
    }
    free(ns->id);
    free(ns);
}

static void kvns_mark(JSRuntime *rt, JSValueConst val, JS_MarkFunc *mark)
{
    kvb_ns *ns = JS_GetOpaque(val, kvns_class_id);
    for (kvb_op *op = ns ? ns->ops : NULL; op; op = op->next) {
        JS_MarkValue(rt, op->resolve, mark);
        JS_MarkValue(rt, op->reject, mark);
    }
}

static const JSClassDef kvns_class = {"KVNamespace", .finalizer = kvns_finalizer, .gc_mark = kvns_mark};

static const JSCFunctionListEntry kvns_funcs[] = {
    JS_CFUNC_MAGIC_DEF("get", 2, kv_get_method, M_GET),
    JS_CFUNC_MAGIC_DEF("getWithMetadata", 2, kv_get_method, M_GET_META),
    JS_CFUNC_DEF("put", 3, kv_put_method),
    JS_CFUNC_DEF("delete", 1, kv_delete_method),
    JS_CFUNC_DEF("list", 1, kv_list_method),
    JS_PROP_STRING_DEF("[Symbol.toStringTag]", "KVNamespace", JS_PROP_CONFIGURABLE),
};

static JSValue create(JSContext *ctx, uv_loop_t *loop, const iso_binding *b)
{
    const jsapi_kv_binding *kb = b->opaque;
    if (!kb || !kb->store || !kb->namespace_id)
        return JS_ThrowTypeError(ctx, "KV namespace binding \"%s\": no KV store is open", b->name);
    JSRuntime *rt = JS_GetRuntime(ctx);
    if (!JS_IsRegisteredClass(rt, kvns_class_id))
        JS_NewClass(rt, kvns_class_id, &kvns_class);
    JSValue proto = JS_GetClassProto(ctx, kvns_class_id);
    if (!JS_IsObject(proto)) {
        JS_FreeValue(ctx, proto);
        proto = JS_NewObject(ctx);
        if (JS_IsException(proto))
            return proto;
        JS_SetPropertyFunctionList(ctx, proto, kvns_funcs, sizeof kvns_funcs / sizeof kvns_funcs[0]);
        JS_SetClassProto(ctx, kvns_class_id, JS_DupValue(ctx, proto));
    }
    JSValue obj = JS_NewObjectProtoClass(ctx, proto, kvns_class_id);
    JS_FreeValue(ctx, proto);
    if (JS_IsException(obj))
        return obj;
    kvb_ns *ns = xcalloc(1, sizeof *ns);
    ns->ctx = ctx;
    ns->store = kb->store;
    ns->id = xstrdup(kb->namespace_id);
    JS_SetOpaque(obj, ns);
    return obj;
}

int jsapi_kv_register(void)
{
    if (!kvns_class_id) {
        JS_NewClassID(&kvns_class_id);
        JS_NewClassID(&kvput_class_id);
    }
    return iso_binding_register(JSAPI_KV_KIND, create);
}
