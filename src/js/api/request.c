/* Request (WHATWG Fetch): method, URL, headers and body of an HTTP request,
 * as the fetch handler receives it and as user code constructs it. The
 * body's read methods come from body.c. The URL is parsed by web/url.h and
 * kept serialized; a worker has no base URL, so a relative one is a
 * TypeError, as in Workers. */
#include "js/api/api_internal.h"

#include <string.h>
#include <strings.h>

#include "web/url.h"

static void request_finalizer(JSRuntime *rt, JSValue val)
{
    jsapi_request *r = JS_GetOpaque(val, jsapi_request_class_id);
    if (!r)
        return;
    js_free_rt(rt, r->method);
    js_free_rt(rt, r->url);
    JS_FreeValueRT(rt, r->headers);
    jsapi_body_free(rt, &r->body);
    js_free_rt(rt, r);
}

static void request_mark(JSRuntime *rt, JSValueConst val, JS_MarkFunc *mark)
{
    jsapi_request *r = JS_GetOpaque(val, jsapi_request_class_id);
    if (r) {
        JS_MarkValue(rt, r->headers, mark);
        jsapi_body_mark(rt, &r->body, mark);
    }
}

const JSClassDef jsapi_request_class = { "Request", .finalizer = request_finalizer,
                                         .gc_mark = request_mark };

static jsapi_request *alloc_request(JSContext *ctx, JSValue obj)
{
    jsapi_request *r = js_mallocz(ctx, sizeof *r);
    if (r) {
        r->headers = JS_UNDEFINED;
        JS_SetOpaque(obj, r);
    }
    return r;
}

/* The serialized form of an absolute URL string (js_malloc'd), or NULL
 * with a TypeError. */
static char *parse_url(JSContext *ctx, JSValueConst input)
{
    size_t len;
    const char *s = jsapi_to_usv(ctx, input, &len);
    if (!s)
        return NULL;
    url *u = NULL;
    char *r = NULL;
    if (url_parse_str(s, len, NULL, 0, &u) < 0) {
        JS_ThrowTypeError(ctx, "Invalid URL: '%.200s'", s);
    } else {
        size_t n;
        const char *href = url_get(u, URL_HREF, &n);
        r = jsapi_strdup(ctx, href, n);
        url_free(u);
    }
    JS_FreeCString(ctx, s);
    return r;
}

/* Method names are case-normalized for the standard ones only (Fetch
 * "normalize a method"); forbidden methods are refused. */
static char *take_method(JSContext *ctx, JSValueConst v)
{
    static const char *const normal[] = { "DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH" };
    size_t len;
    const char *s = JS_ToCStringLen(ctx, &len, v);
    if (!s)
        return NULL;
    char *m = NULL;
    bool token = len > 0;
    for (size_t i = 0; token && i < len; i++)
        token = s[i] > 32 && s[i] < 127 && !strchr("\"(),/:;<=>?@[\\]{}", s[i]);
    if (!token) {
        JS_ThrowTypeError(ctx, "Invalid HTTP method: '%s'", s);
    } else if (!strcasecmp(s, "CONNECT") || !strcasecmp(s, "TRACE") || !strcasecmp(s, "TRACK")) {
        JS_ThrowTypeError(ctx, "Forbidden HTTP method: '%s'", s);
    } else {
        m = jsapi_strdup(ctx, s, len);
        for (size_t i = 0; m && i < sizeof normal / sizeof normal[0]; i++)
            if (!strcasecmp(m, normal[i]))
                memcpy(m, normal[i], len);
    }
    JS_FreeCString(ctx, s);
    return m;
}

static JSValue get_opt(JSContext *ctx, JSValueConst init, const char *name)
{
    return JS_IsObject(init) ? JS_GetPropertyStr(ctx, init, name) : JS_UNDEFINED;
}

/* new Request(input, init): input is a URL string or a Request to copy. */
static JSValue request_ctor(JSContext *ctx, JSValueConst new_target, int argc, JSValueConst *argv)
{
    JSValueConst input = argc > 0 ? argv[0] : JS_UNDEFINED;
    JSValueConst init = argc > 1 ? argv[1] : JS_UNDEFINED;
    JSValue v = JS_UNDEFINED;
    JSValue obj = jsapi_new_instance(ctx, new_target, jsapi_request_class_id);
    if (JS_IsException(obj))
        return obj;
    jsapi_request *r = alloc_request(ctx, obj);
    if (!r)
        goto fail;

    jsapi_request *src = JS_GetOpaque(input, jsapi_request_class_id);
    if (src) {
        if (jsapi_body_used(ctx, &src->body)) {
            JS_ThrowTypeError(ctx, "Cannot construct a Request with a Request whose body is already used");
            goto fail;
        }
        r->url = jsapi_strdup(ctx, src->url, strlen(src->url));
        r->method = jsapi_strdup(ctx, src->method, strlen(src->method));
        r->redirect = src->redirect;
        if (!r->url || !r->method)
            goto fail;
    } else {
        /* A URL object (or anything else) counts by its string value. */
        r->url = parse_url(ctx, input);
        if (!r->url)
            goto fail;
        r->method = jsapi_strdup(ctx, "GET", 3);
        if (!r->url || !r->method)
            goto fail;
    }

    v = get_opt(ctx, init, "method");
    if (JS_IsException(v))
        goto fail;
    if (!JS_IsUndefined(v)) {
        char *m = take_method(ctx, v);
        if (!m)
            goto fail;
        js_free(ctx, r->method);
        r->method = m;
    }
    JS_FreeValue(ctx, v);

    v = get_opt(ctx, init, "redirect");
    if (JS_IsException(v))
        goto fail;
    if (!JS_IsUndefined(v)) {
        static const char *const modes[] = { "follow", "manual", "error" };
        const char *s = JS_ToCString(ctx, v);
        if (!s)
            goto fail;
        r->redirect = NULL;
        for (size_t i = 0; i < 3 && !r->redirect; i++)
            if (strcmp(s, modes[i]) == 0)
                r->redirect = modes[i];
        if (!r->redirect)
            JS_ThrowTypeError(ctx, "Invalid redirect mode: '%s' (follow, manual or error)", s);
        JS_FreeCString(ctx, s);
        if (!r->redirect)
            goto fail;
    }
    JS_FreeValue(ctx, v);

    v = get_opt(ctx, init, "headers");
    if (JS_IsException(v))
        goto fail;
    if (!JS_IsUndefined(v))
        r->headers = jsapi_headers_from_init(ctx, v);
    else if (src)
        r->headers = jsapi_headers_clone(ctx, src->headers);
    else
        r->headers = jsapi_headers_new(ctx, NULL);
    if (JS_IsException(r->headers))
        goto fail;
    jsapi_headers_get_list(ctx, r->headers)->guard = JSAPI_GUARD_NONE;
    JS_FreeValue(ctx, v);

    v = get_opt(ctx, init, "body");
    if (JS_IsException(v))
        goto fail;
    bool has_body = !JS_IsUndefined(v) && !JS_IsNull(v);
    if (has_body && (!strcmp(r->method, "GET") || !strcmp(r->method, "HEAD"))) {
        JS_ThrowTypeError(ctx, "Request with GET/HEAD method cannot have body");
        goto fail;
    }
    if (!JS_IsUndefined(v)) {
        const char *type;
        if (jsapi_body_init(ctx, v, &r->body, &type) < 0)
            goto fail;
        jsapi_headers *h = jsapi_headers_get_list(ctx, r->headers);
        char *ct = jsapi_headers_get(ctx, h, "content-type");
        if (ct)
            js_free(ctx, ct);
        else if (type && jsapi_headers_append(ctx, h, "content-type", 12, type, strlen(type)) < 0)
            goto fail;
    } else if (src && src->body.present) {
        /* The body moves to the new Request; the input counts as used. */
        r->body = src->body;
        memset(&src->body, 0, sizeof src->body);
        src->body.used = true;
    }
    JS_FreeValue(ctx, v);
    return obj;
fail:
    JS_FreeValue(ctx, v);
    JS_FreeValue(ctx, obj);
    return JS_EXCEPTION;
}

static jsapi_request *this_request(JSContext *ctx, JSValueConst this_val)
{
    return JS_GetOpaque2(ctx, this_val, jsapi_request_class_id);
}

enum { GET_URL, GET_METHOD, GET_HEADERS, GET_REDIRECT };

static JSValue request_get(JSContext *ctx, JSValueConst this_val, int magic)
{
    jsapi_request *r = this_request(ctx, this_val);
    if (!r)
        return JS_EXCEPTION;
    switch (magic) {
    case GET_URL: return JS_NewString(ctx, r->url);
    case GET_METHOD: return JS_NewString(ctx, r->method);
    case GET_HEADERS: return JS_DupValue(ctx, r->headers);
    default: return JS_NewString(ctx, r->redirect ? r->redirect : "follow");
    }
}

static JSValue request_clone(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    jsapi_request *r = this_request(ctx, this_val);
    if (!r)
        return JS_EXCEPTION;
    if (jsapi_body_used(ctx, &r->body))
        return JS_ThrowTypeError(ctx, "Cannot clone a Request whose body is already used");
    JSValue proto = JS_GetPrototype(ctx, this_val);
    if (JS_IsException(proto))
        return proto;
    JSValue obj = JS_NewObjectProtoClass(ctx, proto, jsapi_request_class_id);
    JS_FreeValue(ctx, proto);
    if (JS_IsException(obj))
        return obj;
    jsapi_request *c = alloc_request(ctx, obj);
    if (!c)
        goto fail;
    c->url = jsapi_strdup(ctx, r->url, strlen(r->url));
    c->method = jsapi_strdup(ctx, r->method, strlen(r->method));
    c->redirect = r->redirect;
    if (!c->url || !c->method)
        goto fail;
    c->headers = jsapi_headers_clone(ctx, r->headers);
    if (JS_IsException(c->headers) || jsapi_body_copy(ctx, &r->body, &c->body) < 0)
        goto fail;
    return obj;
fail:
    JS_FreeValue(ctx, obj);
    return JS_EXCEPTION;
}

JSValue jsapi_request_from_http(JSContext *ctx, const http_request *req, const char *url)
{
    JSValueConst ctor = jsapi_lazy(ctx, JSAPI_REQUEST);
    if (JS_IsException(ctor))
        return JS_EXCEPTION;
    JSValue obj = JS_NewObjectClass(ctx, (int)jsapi_request_class_id);
    if (JS_IsException(obj))
        return obj;
    jsapi_request *r = alloc_request(ctx, obj);
    if (!r)
        goto fail;
    r->method = jsapi_strdup(ctx, req->method, strlen(req->method));
    /* Serialized as the URL parser has it (dot segments resolved, host
     * lower-cased), so request.url equals new URL(request.url).href; a
     * Host header that does not parse leaves the string as it came. */
    struct url *parsed = NULL; /* `url` is the parameter here */
    if (url_parse_str(url, strlen(url), NULL, 0, &parsed) == 0) {
        size_t n;
        const char *href = url_get(parsed, URL_HREF, &n);
        r->url = jsapi_strdup(ctx, href, n);
        url_free(parsed);
    } else {
        r->url = jsapi_strdup(ctx, url, strlen(url));
    }
    if (!r->method || !r->url)
        goto fail;
    jsapi_headers *h;
    r->headers = jsapi_headers_new(ctx, &h);
    if (JS_IsException(r->headers))
        goto fail;
    for (size_t i = 0; i < req->headers.count; i++) {
        const http_header *f = &req->headers.items[i];
        if (jsapi_headers_append(ctx, h, f->name, f->name_len, f->value, f->value_len) < 0)
            goto fail;
    }
    h->guard = JSAPI_GUARD_IMMUTABLE;
    if (req->body.len || (strcmp(req->method, "GET") && strcmp(req->method, "HEAD"))) {
        r->body.present = true;
        r->body.data = js_malloc(ctx, req->body.len ? req->body.len : 1);
        if (!r->body.data)
            goto fail;
        if (req->body.len)
            memcpy(r->body.data, req->body.data, req->body.len);
        r->body.len = req->body.len;
    }
    return obj;
fail:
    JS_FreeValue(ctx, obj);
    return JS_EXCEPTION;
}

static const JSCFunctionListEntry request_funcs[] = {
    JS_CGETSET_MAGIC_DEF("url", request_get, NULL, GET_URL),
    JS_CGETSET_MAGIC_DEF("method", request_get, NULL, GET_METHOD),
    JS_CGETSET_MAGIC_DEF("headers", request_get, NULL, GET_HEADERS),
    JS_CGETSET_MAGIC_DEF("redirect", request_get, NULL, GET_REDIRECT),
    JS_CFUNC_DEF("clone", 0, request_clone),
    JS_PROP_STRING_DEF("[Symbol.toStringTag]", "Request", JS_PROP_CONFIGURABLE),
};

JSValue jsapi_request_create(JSContext *ctx)
{
    JSValue ctor = jsapi_make_class(ctx, jsapi_request_class_id, "Request", request_ctor, 1,
                                    request_funcs, sizeof request_funcs / sizeof request_funcs[0],
                                    NULL, 0);
    if (JS_IsException(ctor))
        return ctor;
    JSValue proto = JS_GetClassProto(ctx, jsapi_request_class_id);
    JS_SetPropertyFunctionList(ctx, proto, jsapi_body_funcs, (int)jsapi_body_funcs_count);
    JS_FreeValue(ctx, proto);
    return ctor;
}
