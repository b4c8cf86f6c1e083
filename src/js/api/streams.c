/* Streams, Blob, File and FormData in an isolate: the glue between C and
 * the JavaScript in streams.js and blob.js, which the build compiles to
 * bytecode (jsapi_streams_bc, jsapi_blob_bc). Nothing is loaded when an
 * isolate starts: the global names are accessors that load their bundle on
 * first use (or C code loads it when a body needs it) and then become plain
 * data properties. The natives the bundles get are UTF-8 encode/decode,
 * which Blob, FormData and the encoding streams need whether or not
 * TextEncoder is installed, and, for Blob.stream(), the streams bundle. */
#include "js/api/api_internal.h"

#include <string.h>

extern const uint8_t jsapi_streams_bc[], jsapi_blob_bc[];
extern const size_t jsapi_streams_bc_len, jsapi_blob_bc_len;

static const struct {
    const uint8_t *bc;
    const size_t *len;
} bundles[] = {
    [JSAPI_BUNDLE_STREAMS] = { jsapi_streams_bc, &jsapi_streams_bc_len },
    [JSAPI_BUNDLE_BLOB] = { jsapi_blob_bc, &jsapi_blob_bc_len },
};

/* The globals the bundles define. The lazy ones are accessors from the
 * start; the classes code rarely names (readers, writers, controllers:
 * user code gets them from a stream) are defined when their bundle loads,
 * so an idle isolate pays for 10 accessors, not 15. */
static const struct {
    const char *name;
    uint8_t bundle;
    bool lazy;
} names[] = {
    { "ReadableStream", JSAPI_BUNDLE_STREAMS, true },
    { "WritableStream", JSAPI_BUNDLE_STREAMS, true },
    { "TransformStream", JSAPI_BUNDLE_STREAMS, true },
    { "CountQueuingStrategy", JSAPI_BUNDLE_STREAMS, true },
    { "ByteLengthQueuingStrategy", JSAPI_BUNDLE_STREAMS, true },
    { "TextEncoderStream", JSAPI_BUNDLE_STREAMS, true },
    { "TextDecoderStream", JSAPI_BUNDLE_STREAMS, true },
    { "ReadableStreamDefaultReader", JSAPI_BUNDLE_STREAMS, false },
    { "ReadableStreamDefaultController", JSAPI_BUNDLE_STREAMS, false },
    { "WritableStreamDefaultWriter", JSAPI_BUNDLE_STREAMS, false },
    { "WritableStreamDefaultController", JSAPI_BUNDLE_STREAMS, false },
    { "TransformStreamDefaultController", JSAPI_BUNDLE_STREAMS, false },
    { "Blob", JSAPI_BUNDLE_BLOB, true },
    { "File", JSAPI_BUNDLE_BLOB, true },
    { "FormData", JSAPI_BUNDLE_BLOB, true },
};
#define NNAMES (sizeof names / sizeof names[0])

/* encode(string) -> Uint8Array of its UTF-8 (lone surrogates as U+FFFD). */
static JSValue native_encode(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    size_t len;
    const char *s = JS_ToCStringLen(ctx, &len, argc ? argv[0] : JS_UNDEFINED);
    if (!s)
        return JS_EXCEPTION;
    /* QuickJS writes a lone surrogate as its 3-byte form (ED A0..BF xx);
     * the Encoding spec wants U+FFFD (EF BF BD), which has the same length. */
    uint8_t *copy = NULL;
    for (size_t i = 0; i + 2 < len; i++) {
        if ((uint8_t)s[i] == 0xed && ((uint8_t)s[i + 1] & 0xe0) == 0xa0) {
            if (!copy) {
                copy = js_malloc(ctx, len);
                if (!copy) {
                    JS_FreeCString(ctx, s);
                    return JS_EXCEPTION;
                }
                memcpy(copy, s, len);
            }
            copy[i] = 0xef, copy[i + 1] = 0xbf, copy[i + 2] = 0xbd;
            i += 2;
        }
    }
    jsapi_need(ctx, JSAPI_INTRINSIC_TYPED_ARRAYS);
    JSValue ab = JS_NewArrayBufferCopy(ctx, copy ? copy : (const uint8_t *)s, len);
    js_free(ctx, copy);
    JS_FreeCString(ctx, s);
    if (JS_IsException(ab))
        return ab;
    JSValue global = JS_GetGlobalObject(ctx);
    JSValue u8 = JS_GetPropertyStr(ctx, global, "Uint8Array");
    JSValue r = JS_CallConstructor(ctx, u8, 1, (JSValueConst *)&ab);
    JS_FreeValue(ctx, u8);
    JS_FreeValue(ctx, global);
    JS_FreeValue(ctx, ab);
    return r;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_valid(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    if (c < 0x80)
        return 1;
    size_t need = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (!need || n < need)
        return 0;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f; /* no surrogates */
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t k = 2; k < need; k++)
        if ((p[k] & 0xc0) != 0x80)
            return 0;
    return need;
}

/* decode(bytes, fatal) -> string; invalid input is U+FFFD, or a TypeError when fatal. */
static JSValue native_decode(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    size_t off, len, per;
    JSValue ab = JS_GetTypedArrayBuffer(ctx, argc ? argv[0] : JS_UNDEFINED, &off, &len, &per);
    if (JS_IsException(ab))
        return ab;
    size_t ablen;
    const uint8_t *p = JS_GetArrayBuffer(ctx, &ablen, ab);
    JS_FreeValue(ctx, ab); /* the view keeps it alive */
    if (!p) {
        if (JS_HasException(ctx))
            return JS_EXCEPTION;
        return JS_NewStringLen(ctx, "", 0); /* detached */
    }
    p += off;
    bool valid = true;
    for (size_t i = 0; i < len && valid;) {
        size_t k = utf8_valid(p + i, len - i);
        valid = k > 0;
        i += k;
    }
    if (!valid && argc > 1 && JS_ToBool(ctx, argv[1]))
        return JS_ThrowTypeError(ctx, "The encoded data was not valid utf-8");
    return JS_NewStringLen(ctx, (const char *)p, len);
}

/* streams() -> the streams bundle's exports (for Blob.stream()). */
static JSValue native_streams(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    return JS_DupValue(ctx, jsapi_bundle(ctx, JSAPI_BUNDLE_STREAMS));
}

static const JSCFunctionListEntry natives_funcs[] = {
    JS_CFUNC_DEF("encode", 1, native_encode),
    JS_CFUNC_DEF("decode", 2, native_decode),
    JS_CFUNC_DEF("streams", 0, native_streams),
};

JSValueConst jsapi_bundle(JSContext *ctx, int bundle)
{
    jsapi_state *st = jsapi_state_of(ctx);
    if (!JS_IsUndefined(st->bundles[bundle]))
        return st->bundles[bundle];
    jsapi_need(ctx, JSAPI_INTRINSIC_TYPED_ARRAYS);
    JSValue natives = JS_UNDEFINED, fn = JS_UNDEFINED, exports = JS_EXCEPTION;
    JSValue code = JS_ReadObject(ctx, bundles[bundle].bc, *bundles[bundle].len, JS_READ_OBJ_BYTECODE);
    if (JS_IsException(code))
        goto done;
    fn = JS_EvalFunction(ctx, code); /* takes code; the script's value is the factory */
    if (JS_IsException(fn))
        goto done;
    natives = JS_NewObject(ctx);
    if (JS_IsException(natives))
        goto done;
    JS_SetPropertyFunctionList(ctx, natives, natives_funcs, sizeof natives_funcs / sizeof natives_funcs[0]);
    exports = JS_Call(ctx, fn, JS_UNDEFINED, 1, (JSValueConst *)&natives);
done:
    JS_FreeValue(ctx, natives);
    JS_FreeValue(ctx, fn);
    if (JS_IsException(exports))
        return JS_EXCEPTION;
    st->bundles[bundle] = exports;
    JSValue globals = JS_GetPropertyStr(ctx, exports, "globals");
    JSValue global = JS_GetGlobalObject(ctx);
    for (size_t k = 0; k < NNAMES && !JS_IsException(globals); k++) {
        if (names[k].bundle != bundle || names[k].lazy)
            continue;
        JSAtom a = JS_NewAtom(ctx, names[k].name);
        if (JS_GetOwnProperty(ctx, NULL, global, a) == 0) /* user code may have its own */
            JS_DefinePropertyValue(ctx, global, a, JS_GetPropertyStr(ctx, globals, names[k].name),
                                   JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE);
        JS_FreeAtom(ctx, a);
    }
    JS_FreeValue(ctx, global);
    JS_FreeValue(ctx, globals);
    return exports;
}

JSValue jsapi_bundle_call(JSContext *ctx, int bundle, const char *name, int argc, JSValueConst *argv)
{
    JSValueConst ex = jsapi_bundle(ctx, bundle);
    if (JS_IsException(ex))
        return JS_EXCEPTION;
    JSValue f = JS_GetPropertyStr(ctx, ex, name);
    if (JS_IsException(f))
        return f;
    JSValue r = JS_Call(ctx, f, JS_UNDEFINED, argc, argv);
    JS_FreeValue(ctx, f);
    return r;
}

bool jsapi_is_stream(JSContext *ctx, JSValueConst v)
{
    jsapi_state *st = jsapi_state_of(ctx);
    if (!JS_IsObject(v) || JS_IsUndefined(st->bundles[JSAPI_BUNDLE_STREAMS]))
        return false; /* no ReadableStream can exist before the bundle is loaded */
    JSValue r = jsapi_bundle_call(ctx, JSAPI_BUNDLE_STREAMS, "isStream", 1, &v);
    bool yes = JS_ToBool(ctx, r) > 0;
    JS_FreeValue(ctx, r);
    return yes;
}

/* The value of the global `names[k]` from the bundle; replaces the
 * accessor with a data property (as api.c's lazy globals do). */
static JSValue streams_get(JSContext *ctx, JSValueConst this_val, int magic)
{
    JSValueConst ex = jsapi_bundle(ctx, names[magic].bundle);
    if (JS_IsException(ex))
        return JS_EXCEPTION;
    JSValue globals = JS_GetPropertyStr(ctx, ex, "globals");
    if (JS_IsException(globals))
        return globals;
    JSValue v = JS_GetPropertyStr(ctx, globals, names[magic].name);
    JSValue global = JS_GetGlobalObject(ctx);
    if (!JS_IsException(v))
        JS_DefinePropertyValueStr(ctx, global, names[magic].name, JS_DupValue(ctx, v),
                                  JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE);
    JS_FreeValue(ctx, global);
    JS_FreeValue(ctx, globals);
    return v;
}

static JSValue streams_set(JSContext *ctx, JSValueConst this_val, JSValueConst val, int magic)
{
    JSValue global = JS_GetGlobalObject(ctx);
    JS_DefinePropertyValueStr(ctx, global, names[magic].name, JS_DupValue(ctx, val),
                              JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE);
    JS_FreeValue(ctx, global);
    return JS_UNDEFINED;
}

/* One function is both getter and setter of a lazy name (a setter is
 * called with the value, a getter without): half the objects of a
 * getter/setter pair, and nameless (no atom per accessor). */
static JSValue streams_accessor(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                                int magic)
{
    return argc ? streams_set(ctx, this_val, argv[0], magic) : streams_get(ctx, this_val, magic);
}

int jsapi_streams_install(JSContext *ctx, JSValueConst global)
{
    for (size_t k = 0; k < NNAMES; k++) {
        if (!names[k].lazy)
            continue;
        JSValue fn = JS_NewCFunctionMagic(ctx, streams_accessor, "", 0, JS_CFUNC_generic_magic, (int)k);
        JSAtom a = JS_NewAtom(ctx, names[k].name);
        int rc = JS_DefinePropertyGetSet(ctx, global, a, JS_DupValue(ctx, fn), fn, JS_PROP_CONFIGURABLE);
        JS_FreeAtom(ctx, a);
        if (rc < 0)
            return -1;
    }
    return 0;
}
