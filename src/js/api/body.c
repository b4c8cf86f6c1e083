/* The body shared by Request and Response (the Fetch spec's "Body" mixin):
 * extracting a body from a BodyInit, and the members both prototypes carry:
 * text(), json(), arrayBuffer(), bytes(), blob(), formData(), body and
 * bodyUsed. Bytes in memory are read at once; a stream body is read to its
 * end by streams.js (readAll) and converted when its promise settles. */
#include "js/api/api_internal.h"

#include <string.h>

/* DataView has no public class-id test in QuickJS; its class id is learned
 * once from an instance. */
static JSClassID dataview_class_id;

static int view_bytes(JSContext *ctx, JSValueConst v, const uint8_t **data, size_t *len, bool *is_view)
{
    *is_view = false;
    jsapi_need(ctx, JSAPI_INTRINSIC_TYPED_ARRAYS);
    size_t off, n, per;
    JSValue ab = JS_GetTypedArrayBuffer(ctx, v, &off, &n, &per);
    if (JS_IsException(ab)) {
        JS_FreeValue(ctx, JS_GetException(ctx));
        if (!dataview_class_id) {
            JSValue global = JS_GetGlobalObject(ctx);
            JSValue dv = JS_GetPropertyStr(ctx, global, "DataView");
            JSValue buf0 = JS_NewArrayBufferCopy(ctx, NULL, 0);
            JSValue inst = JS_CallConstructor(ctx, dv, 1, (JSValueConst *)&buf0);
            if (!JS_IsException(inst))
                dataview_class_id = JS_GetClassID(inst);
            else
                JS_FreeValue(ctx, JS_GetException(ctx));
            JS_FreeValue(ctx, inst);
            JS_FreeValue(ctx, buf0);
            JS_FreeValue(ctx, dv);
            JS_FreeValue(ctx, global);
        }
        if (!dataview_class_id || JS_GetClassID(v) != dataview_class_id)
            return 0;
        int64_t o = 0, l = 0;
        JSValue vo = JS_GetPropertyStr(ctx, v, "byteOffset"), vl = JS_GetPropertyStr(ctx, v, "byteLength");
        ab = JS_GetPropertyStr(ctx, v, "buffer");
        int rc = JS_ToInt64(ctx, &o, vo) | JS_ToInt64(ctx, &l, vl);
        JS_FreeValue(ctx, vo);
        JS_FreeValue(ctx, vl);
        if (rc < 0 || JS_IsException(ab)) {
            JS_FreeValue(ctx, ab);
            return -1;
        }
        off = (size_t)o;
        n = (size_t)l;
    }
    size_t ablen;
    uint8_t *p = JS_GetArrayBuffer(ctx, &ablen, ab);
    JS_FreeValue(ctx, ab); /* the view keeps the buffer alive */
    if (!p && JS_HasException(ctx))
        return -1;
    *data = p ? p + off : NULL;
    *len = n;
    *is_view = true;
    return 0;
}

int jsapi_bytes_of(JSContext *ctx, JSValueConst v, const uint8_t **data, size_t *len)
{
    static const uint8_t empty[1];
    if (!JS_IsObject(v))
        return 0;
    uint8_t *p = JS_GetArrayBuffer(ctx, len, v);
    if (p || !JS_HasException(ctx)) {
        *data = p ? p : empty;
        return 1;
    }
    JS_FreeValue(ctx, JS_GetException(ctx));
    bool is_view;
    if (view_bytes(ctx, v, data, len, &is_view) < 0)
        return -1;
    if (is_view && !*data)
        *data = empty;
    return is_view ? 1 : 0;
}

static int set_bytes(JSContext *ctx, jsapi_body *b, const void *data, size_t len)
{
    b->data = js_malloc(ctx, len ? len : 1);
    if (!b->data)
        return -1;
    if (len)
        memcpy(b->data, data, len);
    b->len = len;
    b->present = true;
    return 0;
}

/* The bytes and content type of a Blob, FormData or URLSearchParams, by
 * streams.js; 1 when v is one of them, 0 when not, -1 on exception. */
static int extract(JSContext *ctx, JSValueConst v, jsapi_body *b, const char **content_type)
{
    JSValue r = jsapi_bundle_call(ctx, JSAPI_BUNDLE_BLOB, "extract", 1, &v);
    if (JS_IsException(r))
        return -1;
    if (JS_IsUndefined(r))
        return 0;
    int rc = -1;
    JSValue bytes = JS_GetPropertyUint32(ctx, r, 0), type = JS_GetPropertyUint32(ctx, r, 1);
    const uint8_t *data;
    size_t len;
    bool is_view;
    if (JS_IsException(bytes) || JS_IsException(type) || view_bytes(ctx, bytes, &data, &len, &is_view) < 0 ||
        set_bytes(ctx, b, data, len) < 0)
        goto done;
    if (JS_IsString(type)) {
        size_t tl;
        const char *t = JS_ToCStringLen(ctx, &tl, type);
        if (!t)
            goto done;
        b->type = jsapi_strdup(ctx, t, tl);
        JS_FreeCString(ctx, t);
        if (!b->type)
            goto done;
        *content_type = b->type;
    }
    rc = 1;
done:
    JS_FreeValue(ctx, bytes);
    JS_FreeValue(ctx, type);
    JS_FreeValue(ctx, r);
    return rc;
}

int jsapi_body_init(JSContext *ctx, JSValueConst v, jsapi_body *b, const char **content_type)
{
    memset(b, 0, sizeof *b);
    b->stream = JS_UNDEFINED;
    *content_type = NULL;
    if (JS_IsUndefined(v) || JS_IsNull(v))
        return 0;
    if (JS_IsObject(v)) {
        if (JS_GetOpaque(v, jsapi_request_class_id) || JS_GetOpaque(v, jsapi_response_class_id)) {
            JS_ThrowTypeError(ctx, "a Request or Response is not a valid body");
            return -1;
        }
        size_t len;
        uint8_t *p = JS_GetArrayBuffer(ctx, &len, v);
        if (p || !JS_HasException(ctx))
            return set_bytes(ctx, b, p, len);
        JS_FreeValue(ctx, JS_GetException(ctx));
        const uint8_t *data;
        bool is_view;
        if (view_bytes(ctx, v, &data, &len, &is_view) < 0)
            return -1;
        if (is_view)
            return set_bytes(ctx, b, data, len);
        if (jsapi_is_stream(ctx, v)) {
            JSValue d = jsapi_bundle_call(ctx, JSAPI_BUNDLE_STREAMS, "disturbed", 1, &v);
            int bad = JS_ToBool(ctx, d);
            JS_FreeValue(ctx, d);
            if (bad) {
                JS_ThrowTypeError(ctx, "The ReadableStream body is locked or has been read");
                return -1;
            }
            b->stream = JS_DupValue(ctx, v);
            b->present = true;
            return 0;
        }
        int rc = extract(ctx, v, b, content_type);
        if (rc != 0)
            return rc < 0 ? -1 : 0;
    }
    /* Strings, and anything else by its string value. */
    size_t len;
    const char *s = JS_ToCStringLen(ctx, &len, v);
    if (!s)
        return -1;
    int rc = set_bytes(ctx, b, s, len);
    JS_FreeCString(ctx, s);
    *content_type = "text/plain;charset=UTF-8";
    return rc;
}

int jsapi_body_copy(JSContext *ctx, jsapi_body *from, jsapi_body *to)
{
    memset(to, 0, sizeof *to);
    to->stream = JS_UNDEFINED;
    if (!JS_IsObject(from->stream))
        return from->present ? set_bytes(ctx, to, from->data, from->len) : 0;
    JSValue pair = jsapi_bundle_call(ctx, JSAPI_BUNDLE_STREAMS, "tee", 1, (JSValueConst *)&from->stream);
    if (JS_IsException(pair))
        return -1;
    JSValue a = JS_GetPropertyUint32(ctx, pair, 0), b = JS_GetPropertyUint32(ctx, pair, 1);
    JS_FreeValue(ctx, pair);
    if (JS_IsException(a) || JS_IsException(b)) {
        JS_FreeValue(ctx, a);
        JS_FreeValue(ctx, b);
        return -1;
    }
    JS_FreeValue(ctx, from->stream);
    from->stream = a;
    to->stream = b;
    to->present = true;
    return 0;
}

void jsapi_body_free(JSRuntime *rt, jsapi_body *b)
{
    js_free_rt(rt, b->data);
    js_free_rt(rt, b->type);
    JS_FreeValueRT(rt, b->stream);
    b->data = NULL;
    b->type = NULL;
    b->stream = JS_UNDEFINED;
    b->len = 0;
}

void jsapi_body_mark(JSRuntime *rt, const jsapi_body *b, JS_MarkFunc *mark)
{
    JS_MarkValue(rt, b->stream, mark);
}

bool jsapi_body_used(JSContext *ctx, const jsapi_body *b)
{
    if (b->used)
        return true;
    if (!JS_IsObject(b->stream))
        return false;
    JSValue d = jsapi_bundle_call(ctx, JSAPI_BUNDLE_STREAMS, "disturbed", 1, (JSValueConst *)&b->stream);
    bool used = JS_ToBool(ctx, d) > 0;
    JS_FreeValue(ctx, d);
    return used;
}

jsapi_body *jsapi_body_of(JSContext *ctx, JSValueConst obj)
{
    jsapi_request *rq = JS_GetOpaque(obj, jsapi_request_class_id);
    if (rq)
        return &rq->body;
    jsapi_response *rs = JS_GetOpaque(obj, jsapi_response_class_id);
    if (rs)
        return &rs->body;
    JS_ThrowTypeError(ctx, "not a Request or Response");
    return NULL;
}

static JSValue rejected(JSContext *ctx)
{
    JSValue funcs[2];
    JSValue p = JS_NewPromiseCapability(ctx, funcs);
    if (JS_IsException(p))
        return p;
    JSValue exc = JS_GetException(ctx);
    JSValue r = JS_Call(ctx, funcs[1], JS_UNDEFINED, 1, (JSValueConst *)&exc);
    JS_FreeValue(ctx, r);
    JS_FreeValue(ctx, exc);
    JS_FreeValue(ctx, funcs[0]);
    JS_FreeValue(ctx, funcs[1]);
    return p;
}

enum { READ_TEXT, READ_JSON, READ_ARRAY_BUFFER, READ_BYTES, READ_BLOB, READ_FORM_DATA };

static JSValue new_u8(JSContext *ctx, const uint8_t *data, size_t len)
{
    JSValue ab = JS_NewArrayBufferCopy(ctx, data, len);
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

/* The value a read method resolves with, from the body's bytes. `u8` is
 * a Uint8Array of them when the caller has one (else undefined); `type`
 * the Content-Type (a string or null) for blob() and formData(). */
static JSValue convert(JSContext *ctx, int magic, const uint8_t *data, size_t len, JSValueConst u8,
                       JSValueConst type)
{
    switch (magic) {
    case READ_TEXT:
        return JS_NewStringLen(ctx, (const char *)data, len);
    case READ_JSON: {
        /* JS_ParseJSON wants a NUL-terminated buffer. */
        char *s = jsapi_strdup(ctx, (const char *)data, len);
        JSValue v = s ? JS_ParseJSON(ctx, s, len, "<body>") : JS_EXCEPTION;
        js_free(ctx, s);
        return v;
    }
    case READ_ARRAY_BUFFER:
        return JS_NewArrayBufferCopy(ctx, data, len);
    default:
        break;
    }
    JSValue bytes = JS_IsUndefined(u8) ? new_u8(ctx, data, len) : JS_DupValue(ctx, u8);
    if (JS_IsException(bytes) || magic == READ_BYTES)
        return bytes;
    JSValueConst args[2] = { bytes, type };
    JSValue v = jsapi_bundle_call(ctx, JSAPI_BUNDLE_BLOB, magic == READ_BLOB ? "blob" : "parseForm", 2, args);
    JS_FreeValue(ctx, bytes);
    return v;
}

/* A stream body has been read to its end: argv[0] is a Uint8Array. */
static JSValue stream_read_done(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                                int magic, JSValue *data)
{
    const uint8_t *p;
    size_t len;
    bool is_view;
    if (view_bytes(ctx, argv[0], &p, &len, &is_view) < 0)
        return JS_EXCEPTION;
    static const uint8_t empty[1];
    return convert(ctx, magic, is_view && p ? p : empty, is_view ? len : 0, argv[0], data[0]);
}

/* The Content-Type of this Request or Response, as a string or null. */
static JSValue content_type_of(JSContext *ctx, JSValueConst obj)
{
    JSValue headers = JS_UNDEFINED;
    jsapi_request *rq = JS_GetOpaque(obj, jsapi_request_class_id);
    jsapi_response *rs = rq ? NULL : JS_GetOpaque(obj, jsapi_response_class_id);
    headers = rq ? rq->headers : rs ? rs->headers : JS_UNDEFINED;
    jsapi_headers *h = JS_GetOpaque(headers, jsapi_headers_class_id);
    char *t = h ? jsapi_headers_get(ctx, h, "content-type") : NULL;
    if (!t)
        return JS_NULL;
    JSValue v = JS_NewString(ctx, t);
    js_free(ctx, t);
    return v;
}

static JSValue body_read(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv, int magic)
{
    jsapi_body *b = jsapi_body_of(ctx, this_val);
    if (!b)
        return rejected(ctx);
    if (jsapi_body_used(ctx, b)) {
        JS_ThrowTypeError(ctx, "Body has already been used");
        return rejected(ctx);
    }
    b->used = true;
    jsapi_need(ctx, JSAPI_INTRINSIC_TYPED_ARRAYS);
    JSValue type = magic == READ_BLOB || magic == READ_FORM_DATA ? content_type_of(ctx, this_val) : JS_NULL;
    if (JS_IsObject(b->stream)) {
        JSValue p = jsapi_bundle_call(ctx, JSAPI_BUNDLE_STREAMS, "readAll", 1, (JSValueConst *)&b->stream);
        if (JS_IsException(p)) {
            JS_FreeValue(ctx, type);
            return rejected(ctx);
        }
        JSValue done = JS_NewCFunctionData(ctx, stream_read_done, 1, magic, 1, &type);
        JS_FreeValue(ctx, type);
        JSValue r = JS_IsException(done) ? JS_EXCEPTION : jsapi_promise_then(ctx, p, done, JS_UNDEFINED);
        JS_FreeValue(ctx, done);
        JS_FreeValue(ctx, p);
        return JS_IsException(r) ? rejected(ctx) : r;
    }
    static const uint8_t empty[1];
    JSValue v = convert(ctx, magic, b->present && b->data ? b->data : empty, b->present ? b->len : 0,
                        JS_UNDEFINED, type);
    JS_FreeValue(ctx, type);
    /* The bytes are no longer needed once read. */
    jsapi_body_free(JS_GetRuntime(ctx), b);
    if (JS_IsException(v))
        return rejected(ctx);
    return jsapi_promise_resolve(ctx, v);
}

static JSValue body_used(JSContext *ctx, JSValueConst this_val)
{
    jsapi_body *b = jsapi_body_of(ctx, this_val);
    return b ? JS_NewBool(ctx, jsapi_body_used(ctx, b)) : JS_EXCEPTION;
}

/* `body`: null, or a ReadableStream; bytes in memory become a stream on
 * first access (and are then read through it). */
static JSValue body_stream(JSContext *ctx, JSValueConst this_val)
{
    jsapi_body *b = jsapi_body_of(ctx, this_val);
    if (!b)
        return JS_EXCEPTION;
    if (JS_IsObject(b->stream))
        return JS_DupValue(ctx, b->stream);
    if (!b->present)
        return JS_NULL;
    jsapi_need(ctx, JSAPI_INTRINSIC_TYPED_ARRAYS);
    static const uint8_t empty[1];
    JSValue u8 = new_u8(ctx, b->data ? b->data : empty, b->used ? 0 : b->len);
    if (JS_IsException(u8))
        return u8;
    JSValue s = jsapi_bundle_call(ctx, JSAPI_BUNDLE_STREAMS, "fromBytes", 1, (JSValueConst *)&u8);
    JS_FreeValue(ctx, u8);
    if (JS_IsException(s))
        return s;
    js_free(ctx, b->data);
    b->data = NULL;
    b->len = 0;
    b->stream = JS_DupValue(ctx, s);
    return s;
}

const JSCFunctionListEntry jsapi_body_funcs[] = {
    JS_CFUNC_MAGIC_DEF("text", 0, body_read, READ_TEXT),
    JS_CFUNC_MAGIC_DEF("json", 0, body_read, READ_JSON),
    JS_CFUNC_MAGIC_DEF("arrayBuffer", 0, body_read, READ_ARRAY_BUFFER),
    JS_CFUNC_MAGIC_DEF("bytes", 0, body_read, READ_BYTES),
    JS_CFUNC_MAGIC_DEF("blob", 0, body_read, READ_BLOB),
    JS_CFUNC_MAGIC_DEF("formData", 0, body_read, READ_FORM_DATA),
    JS_CGETSET_DEF("body", body_stream, NULL),
    JS_CGETSET_DEF("bodyUsed", body_used, NULL),
};
const size_t jsapi_body_funcs_count = sizeof jsapi_body_funcs / sizeof jsapi_body_funcs[0];
