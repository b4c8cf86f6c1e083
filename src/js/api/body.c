/* The body shared by Request and Response (the Fetch spec's "Body" mixin):
 * extracting bytes from a BodyInit, and the read methods text(), json(),
 * arrayBuffer(), bytes() and bodyUsed that both prototypes carry. Reads
 * return promises, as they will when the body becomes a stream. */
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

int jsapi_body_init(JSContext *ctx, JSValueConst v, jsapi_body *b, const char **content_type)
{
    memset(b, 0, sizeof *b);
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
    }
    /* Strings, and for now anything else by its string value (URLSearchParams,
     * Blob, FormData and streams come with the Web API issue). */
    size_t len;
    const char *s = JS_ToCStringLen(ctx, &len, v);
    if (!s)
        return -1;
    int rc = set_bytes(ctx, b, s, len);
    JS_FreeCString(ctx, s);
    *content_type = "text/plain;charset=UTF-8";
    return rc;
}

int jsapi_body_copy(JSContext *ctx, const jsapi_body *from, jsapi_body *to)
{
    memset(to, 0, sizeof *to);
    return from->present ? set_bytes(ctx, to, from->data, from->len) : 0;
}

void jsapi_body_free(JSRuntime *rt, jsapi_body *b)
{
    js_free_rt(rt, b->data);
    b->data = NULL;
    b->len = 0;
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

enum { READ_TEXT, READ_JSON, READ_ARRAY_BUFFER, READ_BYTES };

static JSValue body_read(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv, int magic)
{
    jsapi_body *b = jsapi_body_of(ctx, this_val);
    if (!b)
        return rejected(ctx);
    if (b->used) {
        JS_ThrowTypeError(ctx, "Body has already been used");
        return rejected(ctx);
    }
    b->used = true;
    jsapi_need(ctx, JSAPI_INTRINSIC_TYPED_ARRAYS);
    static const uint8_t empty[1];
    const uint8_t *data = b->present ? b->data : empty;
    size_t len = b->present ? b->len : 0;
    JSValue v;
    switch (magic) {
    case READ_TEXT:
        v = JS_NewStringLen(ctx, (const char *)data, len);
        break;
    case READ_JSON: {
        /* JS_ParseJSON wants a NUL-terminated buffer. */
        char *s = jsapi_strdup(ctx, (const char *)data, len);
        v = s ? JS_ParseJSON(ctx, s, len, "<body>") : JS_EXCEPTION;
        js_free(ctx, s);
        break;
    }
    case READ_ARRAY_BUFFER:
        v = JS_NewArrayBufferCopy(ctx, data, len);
        break;
    default: {
        JSValue ab = JS_NewArrayBufferCopy(ctx, data, len);
        if (JS_IsException(ab)) {
            v = ab;
            break;
        }
        JSValue global = JS_GetGlobalObject(ctx);
        JSValue u8 = JS_GetPropertyStr(ctx, global, "Uint8Array");
        v = JS_CallConstructor(ctx, u8, 1, (JSValueConst *)&ab);
        JS_FreeValue(ctx, u8);
        JS_FreeValue(ctx, global);
        JS_FreeValue(ctx, ab);
        break;
    }
    }
    /* The bytes are no longer needed once read. */
    jsapi_body_free(JS_GetRuntime(ctx), b);
    if (JS_IsException(v))
        return rejected(ctx);
    return jsapi_promise_resolve(ctx, v);
}

static JSValue body_used(JSContext *ctx, JSValueConst this_val)
{
    jsapi_body *b = jsapi_body_of(ctx, this_val);
    return b ? JS_NewBool(ctx, b->used) : JS_EXCEPTION;
}

const JSCFunctionListEntry jsapi_body_funcs[] = {
    JS_CFUNC_MAGIC_DEF("text", 0, body_read, READ_TEXT),
    JS_CFUNC_MAGIC_DEF("json", 0, body_read, READ_JSON),
    JS_CFUNC_MAGIC_DEF("arrayBuffer", 0, body_read, READ_ARRAY_BUFFER),
    JS_CFUNC_MAGIC_DEF("bytes", 0, body_read, READ_BYTES),
    JS_CGETSET_DEF("bodyUsed", body_used, NULL),
};
const size_t jsapi_body_funcs_count = sizeof jsapi_body_funcs / sizeof jsapi_body_funcs[0];
