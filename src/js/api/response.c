/* Response (WHATWG Fetch): status, status text, headers and body of an
 * HTTP response, its static constructors (json, redirect, error), and
 * jsapi_response_send, the one place where a JS Response becomes bytes on
 * an http_writer. */
#include "js/api/api_internal.h"

#include <stdio.h>
#include <string.h>

static void response_finalizer(JSRuntime *rt, JSValue val)
{
    jsapi_response *r = JS_GetOpaque(val, jsapi_response_class_id);
    if (!r)
        return;
    js_free_rt(rt, r->status_text);
    js_free_rt(rt, r->url);
    JS_FreeValueRT(rt, r->headers);
    jsapi_body_free(rt, &r->body);
    js_free_rt(rt, r);
}

static void response_mark(JSRuntime *rt, JSValueConst val, JS_MarkFunc *mark)
{
    jsapi_response *r = JS_GetOpaque(val, jsapi_response_class_id);
    if (r)
        JS_MarkValue(rt, r->headers, mark);
}

const JSClassDef jsapi_response_class = { "Response", .finalizer = response_finalizer,
                                          .gc_mark = response_mark };

static jsapi_response *alloc_response(JSContext *ctx, JSValue obj)
{
    jsapi_response *r = js_mallocz(ctx, sizeof *r);
    if (!r)
        return NULL;
    r->headers = JS_UNDEFINED;
    r->status = 200;
    r->type = "default";
    r->status_text = jsapi_strdup(ctx, "", 0);
    r->url = jsapi_strdup(ctx, "", 0);
    JS_SetOpaque(obj, r);
    return r->status_text && r->url ? r : NULL;
}

static bool null_body_status(int s) { return s == 101 || s == 204 || s == 205 || s == 304; }

/* Applies a ResponseInit ({status, statusText, headers}) and a body. */
static int init_response(JSContext *ctx, jsapi_response *r, JSValueConst body, JSValueConst init,
                         const char *default_type)
{
    JSValue v = JS_UNDEFINED;
    if (!JS_IsUndefined(init) && !JS_IsNull(init) && !JS_IsObject(init)) {
        JS_ThrowTypeError(ctx, "Response init must be an object");
        return -1;
    }
    if (JS_IsObject(init)) {
        v = JS_GetPropertyStr(ctx, init, "status");
        if (JS_IsException(v))
            return -1;
        if (!JS_IsUndefined(v)) {
            int32_t s;
            if (JS_ToInt32(ctx, &s, v) < 0)
                goto fail;
            if (s < 200 || s > 599) {
                JS_ThrowRangeError(ctx, "Response status must be in the range 200 to 599, got %d", s);
                goto fail;
            }
            r->status = s;
        }
        JS_FreeValue(ctx, v);
        v = JS_GetPropertyStr(ctx, init, "statusText");
        if (JS_IsException(v))
            return -1;
        if (!JS_IsUndefined(v)) {
            size_t len;
            const char *s = JS_ToCStringLen(ctx, &len, v);
            if (!s)
                goto fail;
            bool ok = true;
            for (size_t i = 0; i < len && ok; i++)
                ok = s[i] == '\t' || ((unsigned char)s[i] >= 0x20 && s[i] != 0x7f);
            if (!ok) {
                JS_ThrowTypeError(ctx, "Invalid statusText");
                JS_FreeCString(ctx, s);
                goto fail;
            }
            js_free(ctx, r->status_text);
            r->status_text = jsapi_strdup(ctx, s, len);
            JS_FreeCString(ctx, s);
            if (!r->status_text)
                goto fail;
        }
        JS_FreeValue(ctx, v);
        v = JS_GetPropertyStr(ctx, init, "headers");
        if (JS_IsException(v))
            return -1;
    }
    r->headers = jsapi_headers_from_init(ctx, v);
    JS_FreeValue(ctx, v);
    v = JS_UNDEFINED;
    if (JS_IsException(r->headers))
        return -1;
    if (!JS_IsUndefined(body) && !JS_IsNull(body)) {
        if (null_body_status(r->status)) {
            JS_ThrowTypeError(ctx, "Response with null body status %d cannot have body", r->status);
            return -1;
        }
        const char *type;
        if (jsapi_body_init(ctx, body, &r->body, &type) < 0)
            return -1;
        if (default_type)
            type = default_type;
        jsapi_headers *h = jsapi_headers_get_list(ctx, r->headers);
        char *ct = jsapi_headers_get(ctx, h, "content-type");
        if (ct)
            js_free(ctx, ct);
        else if (type && jsapi_headers_append(ctx, h, "content-type", 12, type, strlen(type)) < 0)
            return -1;
    }
    return 0;
fail:
    JS_FreeValue(ctx, v);
    return -1;
}

static JSValue response_ctor(JSContext *ctx, JSValueConst new_target, int argc, JSValueConst *argv)
{
    JSValue obj = jsapi_new_instance(ctx, new_target, jsapi_response_class_id);
    if (JS_IsException(obj))
        return obj;
    jsapi_response *r = alloc_response(ctx, obj);
    if (!r || init_response(ctx, r, argc > 0 ? argv[0] : JS_UNDEFINED,
                            argc > 1 ? argv[1] : JS_UNDEFINED, NULL) < 0) {
        JS_FreeValue(ctx, obj);
        return JS_EXCEPTION;
    }
    return obj;
}

JSValue jsapi_response_new(JSContext *ctx, jsapi_response **out)
{
    JSValueConst ctor = jsapi_lazy(ctx, JSAPI_RESPONSE);
    if (JS_IsException(ctor))
        return JS_EXCEPTION;
    JSValue obj = JS_NewObjectClass(ctx, (int)jsapi_response_class_id);
    if (JS_IsException(obj))
        return obj;
    *out = alloc_response(ctx, obj);
    if (!*out) {
        JS_FreeValue(ctx, obj);
        return JS_EXCEPTION;
    }
    return obj;
}

/* Response.json(data, init): the body is JSON.stringify(data). */
static JSValue response_json(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    JSValue text = JS_JSONStringify(ctx, argc > 0 ? argv[0] : JS_UNDEFINED, JS_UNDEFINED, JS_UNDEFINED);
    if (JS_IsException(text))
        return text;
    if (JS_IsUndefined(text)) {
        JS_FreeValue(ctx, text);
        return JS_ThrowTypeError(ctx, "Response.json: value is not JSON-serializable");
    }
    jsapi_response *r;
    JSValue obj = jsapi_response_new(ctx, &r);
    if (!JS_IsException(obj) &&
        init_response(ctx, r, text, argc > 1 ? argv[1] : JS_UNDEFINED, "application/json") < 0) {
        JS_FreeValue(ctx, obj);
        obj = JS_EXCEPTION;
    }
    JS_FreeValue(ctx, text);
    return obj;
}

/* Response.redirect(url, status = 302). */
static JSValue response_redirect(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    int32_t status = 302;
    if (argc > 1 && !JS_IsUndefined(argv[1]) && JS_ToInt32(ctx, &status, argv[1]) < 0)
        return JS_EXCEPTION;
    if (status != 301 && status != 302 && status != 303 && status != 307 && status != 308)
        return JS_ThrowRangeError(ctx, "Invalid redirect status %d", status);
    size_t len;
    const char *url = JS_ToCStringLen(ctx, &len, argc > 0 ? argv[0] : JS_UNDEFINED);
    if (!url)
        return JS_EXCEPTION;
    jsapi_response *r;
    JSValue obj = jsapi_response_new(ctx, &r);
    if (JS_IsException(obj))
        goto done;
    r->status = status;
    jsapi_headers *h;
    r->headers = jsapi_headers_new(ctx, &h);
    if (JS_IsException(r->headers) || jsapi_headers_append(ctx, h, "location", 8, url, len) < 0) {
        JS_FreeValue(ctx, obj);
        obj = JS_EXCEPTION;
        goto done;
    }
    h->guard = JSAPI_GUARD_IMMUTABLE;
done:
    JS_FreeCString(ctx, url);
    return obj;
}

/* Response.error(): a network error, status 0, immutable empty headers. */
static JSValue response_error(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    jsapi_response *r;
    JSValue obj = jsapi_response_new(ctx, &r);
    if (JS_IsException(obj))
        return obj;
    r->status = 0;
    r->type = "error";
    jsapi_headers *h;
    r->headers = jsapi_headers_new(ctx, &h);
    if (JS_IsException(r->headers)) {
        JS_FreeValue(ctx, obj);
        return JS_EXCEPTION;
    }
    h->guard = JSAPI_GUARD_IMMUTABLE;
    return obj;
}

enum { GET_STATUS, GET_OK, GET_STATUS_TEXT, GET_HEADERS, GET_REDIRECTED, GET_TYPE, GET_URL };

static JSValue response_get(JSContext *ctx, JSValueConst this_val, int magic)
{
    jsapi_response *r = JS_GetOpaque2(ctx, this_val, jsapi_response_class_id);
    if (!r)
        return JS_EXCEPTION;
    switch (magic) {
    case GET_STATUS: return JS_NewInt32(ctx, r->status);
    case GET_OK: return JS_NewBool(ctx, r->status >= 200 && r->status <= 299);
    case GET_STATUS_TEXT: return JS_NewString(ctx, r->status_text);
    case GET_HEADERS: return JS_DupValue(ctx, r->headers);
    case GET_REDIRECTED: return JS_NewBool(ctx, r->redirected);
    case GET_TYPE: return JS_NewString(ctx, r->type);
    default: return JS_NewString(ctx, r->url);
    }
}

static JSValue response_clone(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    jsapi_response *r = JS_GetOpaque2(ctx, this_val, jsapi_response_class_id);
    if (!r)
        return JS_EXCEPTION;
    if (r->body.used)
        return JS_ThrowTypeError(ctx, "Cannot clone a Response whose body is already used");
    JSValue proto = JS_GetPrototype(ctx, this_val);
    if (JS_IsException(proto))
        return proto;
    JSValue obj = JS_NewObjectProtoClass(ctx, proto, jsapi_response_class_id);
    JS_FreeValue(ctx, proto);
    if (JS_IsException(obj))
        return obj;
    jsapi_response *c = alloc_response(ctx, obj);
    if (!c)
        goto fail;
    c->status = r->status;
    c->type = r->type;
    c->redirected = r->redirected;
    js_free(ctx, c->status_text);
    c->status_text = jsapi_strdup(ctx, r->status_text, strlen(r->status_text));
    js_free(ctx, c->url);
    c->url = jsapi_strdup(ctx, r->url, strlen(r->url));
    if (!c->status_text || !c->url)
        goto fail;
    c->headers = jsapi_headers_clone(ctx, r->headers);
    if (JS_IsException(c->headers) || jsapi_body_copy(ctx, &r->body, &c->body) < 0)
        goto fail;
    return obj;
fail:
    JS_FreeValue(ctx, obj);
    return JS_EXCEPTION;
}

bool jsapi_is_response(JSContext *ctx, JSValueConst v)
{
    return JS_GetOpaque(v, jsapi_response_class_id) != NULL;
}

int jsapi_response_send(JSContext *ctx, JSValueConst resp, http_writer *w)
{
    jsapi_response *r = JS_GetOpaque(resp, jsapi_response_class_id);
    if (!r || r->body.used || r->status < 200) {
        /* The caller checks for a Response first; this is the last guard. */
        return http_writer_error(w, 500, r && r->body.used ? "The Response body was already used"
                                                           : "The worker returned an invalid Response");
    }
    http_headers hh;
    http_headers_init(&hh);
    jsapi_headers *h = JS_GetOpaque(r->headers, jsapi_headers_class_id);
    for (size_t i = 0; h && i < h->count; i++)
        http_headers_add(&hh, h->items[i].name, h->items[i].name_len, h->items[i].value,
                         h->items[i].value_len);
    r->body.used = r->body.present;
    int rc = w->start(w, r->status, &hh, (int64_t)r->body.len);
    if (rc == 0 && r->body.len)
        rc = w->write(w, r->body.data, r->body.len);
    http_headers_free(&hh);
    jsapi_body_free(JS_GetRuntime(ctx), &r->body);
    w->end(w);
    return rc;
}

static const JSCFunctionListEntry response_funcs[] = {
    JS_CGETSET_MAGIC_DEF("status", response_get, NULL, GET_STATUS),
    JS_CGETSET_MAGIC_DEF("ok", response_get, NULL, GET_OK),
    JS_CGETSET_MAGIC_DEF("statusText", response_get, NULL, GET_STATUS_TEXT),
    JS_CGETSET_MAGIC_DEF("headers", response_get, NULL, GET_HEADERS),
    JS_CGETSET_MAGIC_DEF("redirected", response_get, NULL, GET_REDIRECTED),
    JS_CGETSET_MAGIC_DEF("type", response_get, NULL, GET_TYPE),
    JS_CGETSET_MAGIC_DEF("url", response_get, NULL, GET_URL),
    JS_CFUNC_DEF("clone", 0, response_clone),
    JS_PROP_STRING_DEF("[Symbol.toStringTag]", "Response", JS_PROP_CONFIGURABLE),
};

static const JSCFunctionListEntry response_statics[] = {
    JS_CFUNC_DEF("json", 1, response_json),
    JS_CFUNC_DEF("redirect", 1, response_redirect),
    JS_CFUNC_DEF("error", 0, response_error),
};

JSValue jsapi_response_create(JSContext *ctx)
{
    JSValue ctor = jsapi_make_class(ctx, jsapi_response_class_id, "Response", response_ctor, 0,
                                    response_funcs, sizeof response_funcs / sizeof response_funcs[0],
                                    response_statics,
                                    sizeof response_statics / sizeof response_statics[0]);
    if (JS_IsException(ctor))
        return ctor;
    JSValue proto = JS_GetClassProto(ctx, jsapi_response_class_id);
    JS_SetPropertyFunctionList(ctx, proto, jsapi_body_funcs, (int)jsapi_body_funcs_count);
    JS_FreeValue(ctx, proto);
    return ctor;
}
