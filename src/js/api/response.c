/* Response (WHATWG Fetch): status, status text, headers and body of an
 * HTTP response, its static constructors (json, redirect, error), and
 * jsapi_response_send, the one place where a JS Response becomes bytes on
 * an http_writer: at once with a Content-Length, or, for a stream body,
 * chunk by chunk as the stream produces them. */
#include "js/api/api_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

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
    if (r) {
        JS_MarkValue(rt, r->headers, mark);
        jsapi_body_mark(rt, &r->body, mark);
    }
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

/* Response.redirect(url, status = 302): url must parse as an absolute URL
 * (a worker has no base) and Location gets its serialization. */
static JSValue response_redirect(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    int32_t status = 302;
    if (argc > 1 && !JS_IsUndefined(argv[1]) && JS_ToInt32(ctx, &status, argv[1]) < 0)
        return JS_EXCEPTION;
    if (status != 301 && status != 302 && status != 303 && status != 307 && status != 308)
        return JS_ThrowRangeError(ctx, "Invalid redirect status %d", status);
    char *url = jsapi_parse_url(ctx, argc > 0 ? argv[0] : JS_UNDEFINED);
    if (!url)
        return JS_EXCEPTION;
    size_t len = strlen(url);
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
    js_free(ctx, url);
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
    if (jsapi_body_used(ctx, &r->body))
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

/* --- streaming a body to the client ---
 * A sink reads the Response's stream chunk by chunk and writes each chunk
 * as it comes (chunked encoding). It waits while the writer holds more
 * than SINK_HIGH_WATER bytes the client has not taken, so a tenant that
 * produces faster than the client reads cannot grow host memory. The
 * sink's JS object keeps it alive for the promise reactions that point to
 * it; `self` holds it while it runs. */
#define SINK_HIGH_WATER (256 * 1024)
#define SINK_POLL_MS 1

JSClassID jsapi_sink_class_id;

struct jsapi_sink {
    JSContext *ctx;
    http_writer *w;        /* NULL once finished */
    JSValue self, reader;
    uv_timer_t *timer;     /* while waiting for the client; freed on close */
    void (*done)(void *opaque);
    void *opaque;
};

static void sink_finalizer(JSRuntime *rt, JSValue val)
{
    js_free_rt(rt, JS_GetOpaque(val, jsapi_sink_class_id));
}

const JSClassDef jsapi_sink_class = { "ResponseSink", .finalizer = sink_finalizer };

static void timer_closed(uv_handle_t *h) { free(h); }

/* Ends (ok) or aborts the response and releases everything; s may be
 * freed on return. */
static void sink_finish(jsapi_sink *s, bool ok)
{
    JSContext *ctx = s->ctx;
    http_writer *w = s->w;
    if (!w)
        return;
    s->w = NULL;
    JS_FreeValue(ctx, s->reader);
    s->reader = JS_UNDEFINED;
    if (s->timer) {
        uv_close((uv_handle_t *)s->timer, timer_closed);
        s->timer = NULL;
    }
    if (s->done)
        s->done(s->opaque);
    if (ok)
        w->end(w);
    else
        http_writer_abort(w);
    JSValue self = s->self;
    s->self = JS_UNDEFINED;
    JS_FreeValue(ctx, self); /* last: may free s */
}

/* The stream failed or the client went away: log why (if there is a why),
 * cancel the stream with the reason (unless it has errored itself), abort
 * the response. */
static void sink_fail(jsapi_sink *s, JSValueConst reason, const char *what, bool cancel_stream)
{
    JSContext *ctx = s->ctx;
    if (what) {
        buf b;
        buf_init(&b, 64 * 1024);
        jsapi_inspect(ctx, reason, &b);
        log_tenant(LOG_ERROR, jsapi_state_of(ctx)->host.name, "%s: %s", what, b.data ? b.data : "");
        buf_free(&b);
    }
    if (cancel_stream) {
        JSValue cancel = JS_GetPropertyStr(ctx, s->reader, "cancel");
        JSValue r = JS_Call(ctx, cancel, s->reader, 1, &reason);
        JS_FreeValue(ctx, cancel);
        if (JS_IsException(r))
            JS_FreeValue(ctx, JS_GetException(ctx));
        JS_FreeValue(ctx, r);
    }
    sink_finish(s, false);
}

static void sink_read(jsapi_sink *s);

static JSValue sink_on_read(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                            int magic, JSValue *data)
{
    jsapi_sink *s = JS_GetOpaque(data[0], jsapi_sink_class_id);
    JSValueConst arg = argc ? argv[0] : JS_UNDEFINED;
    if (!s || !s->w)
        return JS_UNDEFINED;
    if (magic) {
        sink_fail(s, arg, "The Response body stream failed; the response was cut off", false);
        return JS_UNDEFINED;
    }
    JSValue done = JS_GetPropertyStr(ctx, arg, "done");
    int finished = JS_ToBool(ctx, done);
    JS_FreeValue(ctx, done);
    if (finished) {
        sink_finish(s, true);
        return JS_UNDEFINED;
    }
    JSValue value = JS_GetPropertyStr(ctx, arg, "value");
    const uint8_t *p;
    size_t len;
    int kind = jsapi_bytes_of(ctx, value, &p, &len);
    JS_FreeValue(ctx, value); /* the reader's result still holds it */
    if (kind <= 0) {
        if (kind == 0)
            JS_ThrowTypeError(ctx, "a Response body stream chunk must be a Uint8Array");
        JSValue e = JS_GetException(ctx);
        sink_fail(s, e, "The Response body stream failed; the response was cut off", true);
        JS_FreeValue(ctx, e);
        return JS_UNDEFINED;
    }
    if (len && s->w->write(s->w, p, len) < 0) { /* the client has gone */
        sink_fail(s, JS_UNDEFINED, NULL, true);
        return JS_UNDEFINED;
    }
    sink_read(s);
    return JS_UNDEFINED;
}

static void sink_on_timer(uv_timer_t *t)
{
    jsapi_sink *s = t->data;
    if (http_writer_queued(s->w) > SINK_HIGH_WATER / 2)
        return;
    uv_timer_stop(t);
    jsapi_state *st = jsapi_state_of(s->ctx);
    if (!st->host.enter(st->host.opaque))
        return; /* the isolate is broken: it aborts the sink */
    sink_read(s);
    st->host.leave(st->host.opaque, JS_UNDEFINED, "Uncaught exception in a Response body stream");
}

/* Asks for the next chunk, unless the client has too much to take first. */
static void sink_read(jsapi_sink *s)
{
    JSContext *ctx = s->ctx;
    if (!s->w)
        return;
    if (http_writer_queued(s->w) > SINK_HIGH_WATER) {
        if (!s->timer) {
            s->timer = malloc(sizeof *s->timer);
            if (!s->timer)
                abort(); /* host allocation */
            uv_timer_init(jsapi_state_of(ctx)->host.loop, s->timer);
            s->timer->data = s;
        }
        uv_timer_start(s->timer, sink_on_timer, SINK_POLL_MS, SINK_POLL_MS);
        return;
    }
    JSValue read = JS_GetPropertyStr(ctx, s->reader, "read");
    JSValue p = JS_Call(ctx, read, s->reader, 0, NULL);
    JS_FreeValue(ctx, read);
    JSValue ok = JS_UNDEFINED, ko = JS_UNDEFINED, r = JS_EXCEPTION;
    if (!JS_IsException(p)) {
        ok = JS_NewCFunctionData(ctx, sink_on_read, 1, 0, 1, &s->self);
        ko = JS_NewCFunctionData(ctx, sink_on_read, 1, 1, 1, &s->self);
        if (!JS_IsException(ok) && !JS_IsException(ko))
            r = jsapi_promise_then(ctx, p, ok, ko);
    }
    JS_FreeValue(ctx, ok);
    JS_FreeValue(ctx, ko);
    JS_FreeValue(ctx, p);
    if (JS_IsException(r)) {
        JSValue e = JS_GetException(ctx);
        sink_fail(s, e, "The Response body stream failed; the response was cut off", true);
        JS_FreeValue(ctx, e);
        return;
    }
    JS_FreeValue(ctx, r);
}

void jsapi_sink_abort(JSContext *ctx, jsapi_sink *s)
{
    if (!s || !s->w)
        return;
    s->done = NULL; /* the caller knows */
    sink_finish(s, false);
}

/* Starts streaming r's stream body to w; 1, or 0 when w was answered (and
 * ended) at once because the stream could not be read. */
static int send_stream(JSContext *ctx, jsapi_response *r, const http_headers *hh, http_writer *w,
                       void (*done)(void *opaque), void *opaque, jsapi_sink **out)
{
    JSValue stream = r->body.stream;
    r->body.stream = JS_UNDEFINED;
    r->body.used = true;
    JSValue get = JS_GetPropertyStr(ctx, stream, "getReader");
    JSValue reader = JS_Call(ctx, get, stream, 0, NULL);
    JS_FreeValue(ctx, get);
    JS_FreeValue(ctx, stream); /* the reader holds it */
    JSValue self = JS_UNDEFINED;
    jsapi_sink *s = NULL;
    if (!JS_IsException(reader))
        self = JS_NewObjectClass(ctx, (int)jsapi_sink_class_id);
    if (!JS_IsException(reader) && !JS_IsException(self))
        s = js_mallocz(ctx, sizeof *s);
    if (!s) {
        JSValue e = JS_GetException(ctx);
        buf b;
        buf_init(&b, 4096);
        jsapi_inspect(ctx, e, &b);
        log_tenant(LOG_ERROR, jsapi_state_of(ctx)->host.name, "cannot read the Response body stream: %s",
                   b.data ? b.data : "");
        buf_free(&b);
        JS_FreeValue(ctx, e);
        JS_FreeValue(ctx, reader);
        JS_FreeValue(ctx, self);
        http_writer_error(w, 500, "The worker's Response body stream could not be read.");
        return 0;
    }
    s->ctx = ctx;
    s->w = w;
    s->self = self;
    s->reader = reader;
    s->done = done;
    s->opaque = opaque;
    JS_SetOpaque(self, s);
    *out = s;
    if (w->start(w, r->status, hh, -1) < 0) {
        sink_fail(s, JS_UNDEFINED, NULL, true);
        return 1;
    }
    sink_read(s);
    return 1;
}

/* The largest response header section (names, values, ": " and CRLF) a
 * worker may send. */
#define JSAPI_MAX_RESPONSE_HEADER_BYTES (128u << 10)

int jsapi_response_send(JSContext *ctx, JSValueConst resp, http_writer *w, void (*done)(void *opaque),
                        void *opaque, jsapi_sink **sink)
{
    *sink = NULL;
    jsapi_response *r = JS_GetOpaque(resp, jsapi_response_class_id);
    bool used = r && jsapi_body_used(ctx, &r->body);
    if (!r || used || r->status < 200) {
        /* The caller checks for a Response first; this is the last guard. */
        http_writer_error(w, 500, used ? "The Response body was already used"
                                       : "The worker returned an invalid Response");
        return 0;
    }
    jsapi_headers *h = JS_GetOpaque(r->headers, jsapi_headers_class_id);
    /* As Cloudflare bounds a header section: a worker may not send the
     * client a response head of many megabytes (memory held per
     * connection, clients and proxies that refuse it). */
    size_t head_bytes = 0;
    for (size_t i = 0; h && i < h->count; i++)
        head_bytes += h->items[i].name_len + h->items[i].value_len + 4;
    if (head_bytes > JSAPI_MAX_RESPONSE_HEADER_BYTES) {
        http_writer_error(w, 500, "The worker's Response headers are over 128 KiB.");
        return 0;
    }
    http_headers hh;
    http_headers_init(&hh);
    for (size_t i = 0; h && i < h->count; i++)
        http_headers_add(&hh, h->items[i].name, h->items[i].name_len, h->items[i].value,
                         h->items[i].value_len);
    int rc = 0;
    if (JS_IsObject(r->body.stream)) {
        rc = send_stream(ctx, r, &hh, w, done, opaque, sink);
        http_headers_free(&hh);
        return rc;
    }
    r->body.used = r->body.present;
    rc = w->start(w, r->status, &hh, (int64_t)r->body.len);
    if (rc == 0 && r->body.len)
        rc = w->write(w, r->body.data, r->body.len);
    http_headers_free(&hh);
    jsapi_body_free(JS_GetRuntime(ctx), &r->body);
    w->end(w);
    return 0;
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
