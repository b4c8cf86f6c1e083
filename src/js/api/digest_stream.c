/* crypto.DigestStream as Cloudflare Workers has it: a WritableStream whose
 * `digest` promise resolves to the hash of everything written once the
 * stream closes. The stream itself is the global WritableStream (from the
 * streams work), constructed with a native underlying sink
 * ({write, close, abort}, the Streams standard's interface) and with
 * DigestStream.prototype, which inherits from WritableStream.prototype.
 * Without a WritableStream global, constructing one throws a TypeError. */
#include "js/api/crypto_internal.h"

#include <openssl/err.h>

/* The sink's state: an EVP_MD_CTX, freed with the object. Registered with
 * the runtime on first use only: most workers never hash a stream. */
static JSClassID sink_class_id;

static void sink_finalizer(JSRuntime *rt, JSValue val)
{
    EVP_MD_CTX_free(JS_GetOpaque(val, sink_class_id));
}

static const JSClassDef sink_class = { "DigestStreamSink", .finalizer = sink_finalizer };

enum { SINK_WRITE, SINK_CLOSE, SINK_ABORT };

/* data[0]: the state object; data[1]: resolve; data[2]: reject. */
static JSValue sink_call(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                         int magic, JSValue *data)
{
    EVP_MD_CTX *md = JS_GetOpaque(data[0], sink_class_id);
    if (!md) /* already closed or aborted */
        return JS_ThrowTypeError(ctx, "the DigestStream is closed");
    JSValueConst arg = argc ? argv[0] : JS_UNDEFINED;
    if (magic == SINK_WRITE) {
        cbytes b;
        if (JS_IsString(arg)) {
            size_t n;
            const char *s = JS_ToCStringLen(ctx, &n, arg);
            if (!s)
                return JS_EXCEPTION;
            int ok = EVP_DigestUpdate(md, s, n);
            JS_FreeCString(ctx, s);
            return ok == 1 ? JS_UNDEFINED : crypto_throw(ctx, CRYPTO_OPERATION, "digest failed");
        }
        if (crypto_bytes(ctx, arg, &b, "a DigestStream chunk") < 0)
            return JS_EXCEPTION;
        int ok = EVP_DigestUpdate(md, b.p, b.n);
        crypto_bytes_free(JS_GetRuntime(ctx), &b);
        return ok == 1 ? JS_UNDEFINED : crypto_throw(ctx, CRYPTO_OPERATION, "digest failed");
    }
    JS_SetOpaque(data[0], NULL);
    JSValue r;
    if (magic == SINK_CLOSE) {
        uint8_t out[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        JSValue v = EVP_DigestFinal_ex(md, out, &n) == 1 ? crypto_array_buffer(ctx, out, n)
                                                        : crypto_throw(ctx, CRYPTO_OPERATION,
                                                                       "digest failed");
        ERR_clear_error();
        if (JS_IsException(v)) {
            JSValue exc = JS_GetException(ctx);
            r = JS_Call(ctx, data[2], JS_UNDEFINED, 1, (JSValueConst *)&exc);
            JS_FreeValue(ctx, exc);
        } else {
            r = JS_Call(ctx, data[1], JS_UNDEFINED, 1, (JSValueConst *)&v);
            JS_FreeValue(ctx, v);
        }
    } else {
        r = JS_Call(ctx, data[2], JS_UNDEFINED, 1, &arg);
    }
    EVP_MD_CTX_free(md);
    if (JS_IsException(r))
        return r;
    JS_FreeValue(ctx, r);
    return JS_UNDEFINED;
}

static JSValue writable_stream(JSContext *ctx)
{
    JSValue global = JS_GetGlobalObject(ctx);
    JSValue ws = JS_GetPropertyStr(ctx, global, "WritableStream");
    JS_FreeValue(ctx, global);
    if (!JS_IsException(ws) && !JS_IsConstructor(ctx, ws)) {
        JS_FreeValue(ctx, ws);
        return JS_ThrowTypeError(ctx, "crypto.DigestStream needs WritableStream, which is not "
                                      "available in this build");
    }
    return ws;
}

static JSValue digest_stream_ctor(JSContext *ctx, JSValueConst new_target, int argc,
                                  JSValueConst *argv)
{
    JSValue v = JS_EXCEPTION, ws = JS_UNDEFINED, state = JS_UNDEFINED, sink = JS_UNDEFINED;
    JSValue funcs[2] = { JS_UNDEFINED, JS_UNDEFINED }, promise = JS_UNDEFINED;
    bool node;
    crypto_alg a = crypto_alg_of(ctx, argc ? argv[0] : JS_UNDEFINED, &node);
    if (a == ALG_NONE)
        return JS_EXCEPTION;
    if (!crypto_md(a))
        return crypto_throw(ctx, CRYPTO_NOT_SUPPORTED, "%s is not a digest", crypto_alg_name(a));
    ws = writable_stream(ctx);
    if (JS_IsException(ws))
        return ws;
    JSRuntime *rt = JS_GetRuntime(ctx);
    if (!sink_class_id)
        JS_NewClassID(&sink_class_id);
    if (!JS_IsRegisteredClass(rt, sink_class_id) && JS_NewClass(rt, sink_class_id, &sink_class) < 0)
        goto done;
    state = JS_NewObjectClass(ctx, (int)sink_class_id);
    if (JS_IsException(state))
        goto done;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, crypto_md(a), NULL) != 1) {
        EVP_MD_CTX_free(md);
        crypto_throw(ctx, CRYPTO_OPERATION, "digest failed");
        goto done;
    }
    JS_SetOpaque(state, md);
    promise = JS_NewPromiseCapability(ctx, funcs);
    if (JS_IsException(promise))
        goto done;
    JSValue data[3] = { state, funcs[0], funcs[1] };
    sink = JS_NewObject(ctx);
    static const char *const names[3] = { "write", "close", "abort" };
    for (int i = 0; i < 3 && !JS_IsException(sink); i++) {
        JSValue fn = JS_NewCFunctionData(ctx, sink_call, 1, i, 3, data);
        if (JS_IsException(fn) || JS_SetPropertyStr(ctx, sink, names[i], fn) < 0)
            goto done;
    }
    v = JS_CallConstructor2(ctx, ws, new_target, 1, (JSValueConst *)&sink);
    if (JS_IsException(v))
        goto done;
    if (JS_DefinePropertyValueStr(ctx, v, "digest", JS_DupValue(ctx, promise), JS_PROP_ENUMERABLE) < 0) {
        JS_FreeValue(ctx, v);
        v = JS_EXCEPTION;
    }
done:
    JS_FreeValue(ctx, ws);
    JS_FreeValue(ctx, state);
    JS_FreeValue(ctx, sink);
    JS_FreeValue(ctx, promise);
    JS_FreeValue(ctx, funcs[0]);
    JS_FreeValue(ctx, funcs[1]);
    return v;
}

JSValue jsapi_digest_stream_create(JSContext *ctx)
{
    JSValue ctor = JS_NewCFunction2(ctx, digest_stream_ctor, "DigestStream", 1,
                                    JS_CFUNC_constructor, 0);
    if (JS_IsException(ctor))
        return ctor;
    /* DigestStream.prototype inherits from WritableStream.prototype when
     * there is one; `instanceof WritableStream` then holds. */
    JSValue ws = writable_stream(ctx);
    JSValue parent = JS_IsException(ws) ? JS_NULL : JS_GetPropertyStr(ctx, ws, "prototype");
    if (JS_IsException(ws))
        JS_FreeValue(ctx, JS_GetException(ctx));
    JS_FreeValue(ctx, ws);
    if (JS_IsException(parent)) {
        JS_FreeValue(ctx, ctor);
        return parent;
    }
    JSValue proto = JS_NewObjectProto(ctx, JS_IsObject(parent) ? parent : JS_NULL);
    JS_FreeValue(ctx, parent);
    if (JS_IsException(proto)) {
        JS_FreeValue(ctx, ctor);
        return proto;
    }
    JS_DefinePropertyValueStr(ctx, proto, "constructor", JS_DupValue(ctx, ctor),
                              JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE);
    JS_DefinePropertyValueStr(ctx, ctor, "prototype", proto, 0);
    return ctor;
}
