/* fetch() (WHATWG Fetch, as Workers has it) on the C HTTP client
 * (http/client.h): the input and init become a Request (request.c does the
 * parsing), the URL is checked against the egress policy and the request
 * charged to the running request's subrequest budget, and each hop is one
 * transfer; redirects are followed here so that every hop is checked and
 * charged again. The promise resolves at the final response's head; the
 * body is a ReadableStream fed from the client's write callback, with
 * backpressure: when the stream's queue is full (64 KiB) the transfer
 * pauses until the reader pulls again. A request body that is a stream is
 * uploaded chunked, one read() of it at a time (up_read/up_want).
 *
 * An AbortSignal is accepted duck-typed (`aborted`, `reason`,
 * `addEventListener("abort")`), so AbortController can land separately. */
#include "js/api/api_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "http/client.h"
#include "web/url.h"

#define MAX_REDIRECTS 20

typedef struct fetch_op {
    struct fetch_op *next, *prev;
    JSContext *ctx;
    uint64_t id;
    uint64_t req;                 /* the isolate request it is charged to (0: none) */
    JSValue resolve, reject;      /* the promise fetch() returned */
    JSValue signal, listener;     /* the AbortSignal and our "abort" listener, or undefined */
    char *method, *url, *host, *origin; /* the current hop */
    egress_kind kind;
    http_headers headers;
    uint8_t *body;                /* js_malloc'd (the tenant's heap); kept for 307/308 */
    size_t body_len;
    bool has_body;
    const char *redirect;         /* "follow", "manual" or "error" */
    int hops;
    http_transfer *t;             /* NULL between hops */
    int phase;                    /* PHASE_* */
    JSValue ctl;                  /* the body stream's controller (PHASE_BODY), else undefined */
    bool want_pause;              /* the stream's queue is full: refuse the next chunk */
    bool up_stream, up_done;      /* the request body streams from `reader`; it has ended */
    JSValue reader;               /* its reader, or undefined */
    uint8_t *up;                  /* js_malloc'd: the chunk being sent, up_off of up_len done */
    size_t up_len, up_off;
} fetch_op;

/* Waiting for the final head; resolved, the body streaming into ctl;
 * resolved without a body (HEAD, 204 …), waiting for the transfer's end. */
enum { PHASE_HEAD, PHASE_BODY, PHASE_NOBODY };

typedef struct jsapi_fetch {
    http_client *client;
    fetch_op *ops;
    uint64_t next_id;
} jsapi_fetch;

static void op_free(jsapi_fetch *f, fetch_op *op)
{
    JSContext *ctx = op->ctx;
    if (op->prev)
        op->prev->next = op->next;
    else if (f->ops == op)
        f->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    http_transfer_cancel(op->t);
    JS_FreeValue(ctx, op->resolve);
    JS_FreeValue(ctx, op->reject);
    JS_FreeValue(ctx, op->signal);
    JS_FreeValue(ctx, op->listener);
    JS_FreeValue(ctx, op->ctl);
    JS_FreeValue(ctx, op->reader);
    js_free(ctx, op->up);
    free(op->method);
    free(op->url);
    free(op->host);
    free(op->origin);
    http_headers_free(&op->headers);
    js_free(ctx, op->body);
    free(op);
}

/* Removes our listener from the signal, so a long-lived signal does not
 * keep finished fetches' closures. Runs JavaScript (a duck-typed signal). */
static void unlisten(fetch_op *op)
{
    JSContext *ctx = op->ctx;
    if (!JS_IsObject(op->signal) || JS_IsUndefined(op->listener))
        return;
    JSValue fn = JS_GetPropertyStr(ctx, op->signal, "removeEventListener");
    if (JS_IsFunction(ctx, fn)) {
        JSValue type = JS_NewString(ctx, "abort");
        JSValueConst args[2] = { type, op->listener };
        JSValue r = JS_Call(ctx, fn, op->signal, 2, args);
        JS_FreeValue(ctx, r);
        JS_FreeValue(ctx, type);
    }
    JS_FreeValue(ctx, fn);
    if (JS_HasException(ctx))
        JS_FreeValue(ctx, JS_GetException(ctx));
}

/* Settles the promise with v (consumed) and frees op. */
static void settle(jsapi_fetch *f, fetch_op *op, bool ok, JSValue v)
{
    JSContext *ctx = op->ctx;
    unlisten(op);
    JSValue r = JS_Call(ctx, ok ? op->resolve : op->reject, JS_UNDEFINED, 1, (JSValueConst *)&v);
    JS_FreeValue(ctx, r);
    JS_FreeValue(ctx, v);
    op_free(f, op);
}

/* Rejects with the pending exception. */
static void settle_exception(jsapi_fetch *f, fetch_op *op)
{
    settle(f, op, false, JS_GetException(op->ctx));
}

/* A DOMException named AbortError when DOMException exists, else an Error
 * with that name. */
static JSValue abort_error(JSContext *ctx)
{
    static const char msg[] = "The operation was aborted.";
    JSValue global = JS_GetGlobalObject(ctx);
    JSValue ctor = JS_GetPropertyStr(ctx, global, "DOMException");
    JS_FreeValue(ctx, global);
    JSValue e;
    if (JS_IsConstructor(ctx, ctor)) {
        JSValue args[2] = { JS_NewString(ctx, msg), JS_NewString(ctx, "AbortError") };
        e = JS_CallConstructor(ctx, ctor, 2, (JSValueConst *)args);
        JS_FreeValue(ctx, args[0]);
        JS_FreeValue(ctx, args[1]);
    } else {
        if (JS_HasException(ctx))
            JS_FreeValue(ctx, JS_GetException(ctx));
        e = JS_NewError(ctx);
        JS_SetPropertyStr(ctx, e, "name", JS_NewString(ctx, "AbortError"));
        JS_SetPropertyStr(ctx, e, "message", JS_NewString(ctx, msg));
    }
    JS_FreeValue(ctx, ctor);
    return e;
}

/* The signal's reason, or an AbortError. */
static JSValue abort_reason(JSContext *ctx, JSValueConst signal)
{
    JSValue reason = JS_GetPropertyStr(ctx, signal, "reason");
    if (JS_IsException(reason))
        return JS_GetException(ctx);
    if (!JS_IsUndefined(reason))
        return reason;
    return abort_error(ctx);
}

/* --- the target of a hop --- */

/* Parses input (against base) and checks it against the egress policy;
 * sets the op's url, host, origin and kind. -1 with a TypeError. */
static int set_target(JSContext *ctx, fetch_op *op, const char *input, const char *base)
{
    jsapi_state *st = jsapi_state_of(ctx);
    url *u = NULL;
    if (url_parse_str(input, strlen(input), base, base ? strlen(base) : 0, &u) < 0) {
        JS_ThrowTypeError(ctx, "fetch(): invalid URL: '%s'", input);
        return -1;
    }
    const char *proto = url_get(u, URL_PROTOCOL, NULL);
    const char *host = url_get(u, URL_HOSTNAME, NULL);
    if (strcmp(proto, "http:") != 0 && strcmp(proto, "https:") != 0) {
        JS_ThrowTypeError(ctx, "fetch(): only http: and https: URLs are supported, not '%s'", proto);
        goto fail;
    }
    egress_kind kind = egress_check_host(st->host.fetch_allow, host);
    if (kind == EGRESS_DENIED) {
        JS_ThrowTypeError(ctx,
                          "fetch() to host '%s' is not allowed: it is not in this worker's fetch "
                          "allow-list (the fetch_allow setting; by default only loopback hosts)",
                          host);
        goto fail;
    }
    url_set(u, URL_HASH, "", 0); /* the fragment is never sent */
    free(op->url);
    free(op->host);
    free(op->origin);
    op->url = xstrdup(url_get(u, URL_HREF, NULL));
    op->host = xstrdup(host);
    op->origin = xstrdup(url_get(u, URL_ORIGIN, NULL));
    op->kind = kind;
    url_free(u);
    return 0;
fail:
    url_free(u);
    return -1;
}

static int charge(JSContext *ctx, fetch_op *op)
{
    jsapi_state *st = jsapi_state_of(ctx);
    uint64_t req = op->req;
    int rc = st->host.subrequest(st->host.opaque, &req);
    if (rc == -EPERM) {
        JS_ThrowTypeError(ctx, "fetch() cannot run at the top level of a worker: subrequests are "
                               "made while handling a request");
        return -1;
    }
    if (rc < 0) {
        JS_ThrowTypeError(ctx, "Too many subrequests: a request may make at most %" PRIu64
                               " (the subrequests limit)", st->host.subrequests);
        return -1;
    }
    op->req = req;
    return 0;
}

static void on_done(void *opaque, int rc, const char *error, http_response *res);
static int on_head(void *opaque, http_response *res);
static int on_data(void *opaque, const void *data, size_t len);
static int up_read(void *opaque, void *dst, size_t cap, size_t *n);
static void up_want(void *opaque);
static fetch_op *find_op(jsapi_fetch *f, uint64_t id);

/* Starts the current hop; -1 with a TypeError. */
static int start_hop(JSContext *ctx, fetch_op *op)
{
    jsapi_state *st = jsapi_state_of(ctx);
    http_transfer_opts o = {
        .method = op->method, .url = op->url, .host = op->host, .headers = &op->headers,
        .body = op->body, .body_len = op->body_len, .has_body = op->has_body,
.allow = st->host.fetch_allow, .kind = op->kind,
        .resolve = st->host.fetch_resolve, .on_head = on_head, .on_data = on_data,
    };
    if (op->up_stream) {
        o.upload_read = up_read;
        o.upload_want = up_want;
    }
    const char *error;
    if (http_transfer_start(st->fetch->client, &o, on_done, op, &op->t, &error) < 0) {
        JS_ThrowTypeError(ctx, "fetch() to %s failed: %s", op->url, error);
        return -1;
    }
    return 0;
}

/* --- completion --- */

static bool is_redirect(int s) { return s == 301 || s == 302 || s == 303 || s == 307 || s == 308; }
static bool null_body_status(int s) { return s == 101 || s == 204 || s == 205 || s == 304; }

/* Follows a redirect (Fetch "HTTP-redirect fetch"); -1 with a TypeError. */
static int follow(JSContext *ctx, fetch_op *op, int status, const char *location)
{
    if (strcmp(op->redirect, "error") == 0) {
        JS_ThrowTypeError(ctx, "fetch() to %s was redirected (status %d) and its redirect mode is 'error'",
                          op->url, status);
        return -1;
    }
    if (op->hops >= MAX_REDIRECTS) {
        JS_ThrowTypeError(ctx, "fetch(): too many redirects (more than %d), last from %s", MAX_REDIRECTS,
                          op->url);
        return -1;
    }
    char *old_origin = xstrdup(op->origin);
    char *base = xstrdup(op->url);
    int rc = set_target(ctx, op, location, base);
    free(base);
    if (rc == 0)
        rc = charge(ctx, op);
    if (rc == 0) {
        op->hops++;
        /* 301/302 turn POST into GET, 303 anything but HEAD; the body and
         * the headers that describe it go. */
        bool to_get = ((status == 301 || status == 302) && strcmp(op->method, "POST") == 0) ||
                      (status == 303 && strcmp(op->method, "GET") != 0 && strcmp(op->method, "HEAD") != 0);
        if (!to_get && op->up_stream) {
            /* Fetch: a body that was a stream cannot be sent again. */
            JS_ThrowTypeError(ctx, "fetch() to %s: cannot follow a %d redirect with a streamed request body",
                              op->url, status);
            free(old_origin);
            return -1;
        }
        if (to_get) {
            op->up_stream = false;
            free(op->method);
            op->method = xstrdup("GET");
            js_free(ctx, op->body);
            op->body = NULL;
            op->body_len = 0;
            op->has_body = false;
            static const char *const body_headers[] = { "content-encoding", "content-language",
                                                        "content-location", "content-type" };
            for (size_t i = 0; i < sizeof body_headers / sizeof body_headers[0]; i++)
                http_headers_remove(&op->headers, body_headers[i]);
        }
        /* Credentials are not sent to another origin. */
        if (strcmp(old_origin, op->origin) != 0)
            http_headers_remove(&op->headers, "authorization");
        rc = start_hop(ctx, op);
    }
    free(old_origin);
    return rc;
}

/* The body stream's pull (data[0]: the op's id): the reader wants more. */
static JSValue on_pull(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv, int magic,
                       JSValue *data)
{
    jsapi_state *st = jsapi_state_of(ctx);
    int64_t id = 0;
    JS_ToInt64(ctx, &id, data[0]);
    fetch_op *op = find_op(st->fetch, (uint64_t)id);
    if (op && op->phase == PHASE_BODY) {
        op->want_pause = false;
        http_transfer_resume(op->t); /* may deliver the paused chunk right here */
    }
    return JS_UNDEFINED;
}

/* The body stream's cancel: the transfer goes. */
static JSValue on_cancel(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv, int magic,
                         JSValue *data)
{
    jsapi_state *st = jsapi_state_of(ctx);
    int64_t id = 0;
    JS_ToInt64(ctx, &id, data[0]);
    fetch_op *op = find_op(st->fetch, (uint64_t)id);
    if (op && op->phase == PHASE_BODY) {
        unlisten(op);
        op_free(st->fetch, op);
    }
    return JS_UNDEFINED;
}

/* A ReadableStream for the op's body; its controller goes to op->ctl. */
static JSValue body_stream(JSContext *ctx, fetch_op *op)
{
    JSValue idv = JS_NewInt64(ctx, (int64_t)op->id);
    JSValue args[2] = { JS_NewCFunctionData(ctx, on_pull, 0, 0, 1, &idv),
                        JS_NewCFunctionData(ctx, on_cancel, 1, 0, 1, &idv) };
    JSValue pair = jsapi_bundle_call(ctx, JSAPI_BUNDLE_STREAMS, "fromHost", 2, (JSValueConst *)args);
    JS_FreeValue(ctx, args[0]);
    JS_FreeValue(ctx, args[1]);
    if (JS_IsException(pair))
        return pair;
    JSValue stream = JS_GetPropertyUint32(ctx, pair, 0);
    JS_FreeValue(ctx, op->ctl);
    op->ctl = JS_GetPropertyUint32(ctx, pair, 1);
    JS_FreeValue(ctx, pair);
    return stream;
}

/* The Response for res; its body is res's buffered bytes, or (stream) a
 * ReadableStream the transfer feeds. */
static JSValue make_response(JSContext *ctx, fetch_op *op, http_response *res, bool stream)
{
    jsapi_response *r;
    JSValue obj = jsapi_response_new(ctx, &r);
    if (JS_IsException(obj))
        return obj;
    r->status = res->status;
    r->redirected = op->hops > 0;
    js_free(ctx, r->status_text);
    r->status_text = jsapi_strdup(ctx, res->status_text, strlen(res->status_text));
    js_free(ctx, r->url);
    r->url = jsapi_strdup(ctx, op->url, strlen(op->url));
    if (!r->status_text || !r->url)
        goto fail;
    jsapi_headers *h;
    r->headers = jsapi_headers_new(ctx, &h);
    if (JS_IsException(r->headers))
        goto fail;
    for (size_t i = 0; i < res->headers.count; i++) {
        const http_header *f = &res->headers.items[i];
        if (jsapi_headers_append(ctx, h, f->name, f->name_len, f->value, f->value_len) < 0)
            goto fail;
    }
    h->guard = JSAPI_GUARD_IMMUTABLE;
    if (stream) {
        r->body.stream = body_stream(ctx, op);
        if (JS_IsException(r->body.stream)) {
            r->body.stream = JS_UNDEFINED;
            goto fail;
        }
        r->body.present = true;
    } else if (strcmp(op->method, "HEAD") != 0 && !null_body_status(res->status)) {
        r->body.data = js_malloc(ctx, res->body.len ? res->body.len : 1);
        if (!r->body.data)
            goto fail;
        if (res->body.len)
            memcpy(r->body.data, res->body.data, res->body.len);
        r->body.len = res->body.len;
        r->body.present = true;
    }
    return obj;
fail:
    JS_FreeValue(ctx, obj);
    return JS_EXCEPTION;
}

static void throw_network_error(JSContext *ctx, fetch_op *op, int rc, const char *error)
{
    jsapi_state *st = jsapi_state_of(ctx);
    if (rc == -EACCES)
        JS_ThrowTypeError(ctx,
                          "fetch() to host '%s' is not allowed: %s (fetch_allow lets names reach "
                          "public addresses only; list an IP address to allow it)",
                          op->host, error);
    else if (rc == -E2BIG)
        JS_ThrowTypeError(ctx, "fetch(): the response body from %s is larger than this worker may "
                               "buffer (%zu bytes for all its fetches at once)",
                          op->url, st->host.fetch_max_body);
    else
        JS_ThrowTypeError(ctx, "Network connection lost: %s: %s", op->url, error);
}

/* The final head of a hop: unless it is a redirect to follow, fetch()
 * resolves now with a Response whose body streams. */
static int on_head(void *opaque, http_response *res)
{
    fetch_op *op = opaque;
    JSContext *ctx = op->ctx;
    jsapi_state *st = jsapi_state_of(ctx);
    jsapi_fetch *f = st->fetch;
    const char *location = http_headers_get(&res->headers, "location");
    if (is_redirect(res->status) && location && strcmp(op->redirect, "manual") != 0)
        return 1; /* on_done follows it */
    if (!st->host.enter(st->host.opaque))
        return 1; /* on_done frees the op */
    st->host.resume(st->host.opaque, op->req);
    bool has_body = strcmp(op->method, "HEAD") != 0 && !null_body_status(res->status);
    int rc = has_body ? 0 : 1;
    JSValue resp = make_response(ctx, op, res, has_body);
    if (JS_IsException(resp)) {
        settle_exception(f, op); /* frees op and cancels the transfer */
        rc = 1;
    } else {
        op->phase = has_body ? PHASE_BODY : PHASE_NOBODY;
        JSValue resolve = op->resolve;
        op->resolve = JS_UNDEFINED;
        JS_FreeValue(ctx, op->reject);
        op->reject = JS_UNDEFINED;
        if (!has_body)
            unlisten(op);
        JSValue r = JS_Call(ctx, resolve, JS_UNDEFINED, 1, (JSValueConst *)&resp);
        JS_FreeValue(ctx, r);
        JS_FreeValue(ctx, resolve);
        JS_FreeValue(ctx, resp);
    }
    /* The promise jobs leave() runs may free op (cancel, abort). */
    st->host.leave(st->host.opaque, JS_UNDEFINED, "fetch");
    return rc;
}

/* A chunk of the body: into the stream; 1 (refused, the transfer pauses)
 * while the stream's queue is full. */
static int on_data(void *opaque, const void *data, size_t len)
{
    fetch_op *op = opaque;
    JSContext *ctx = op->ctx;
    jsapi_state *st = jsapi_state_of(ctx);
    if (op->phase != PHASE_BODY || !JS_IsObject(op->ctl))
        return 0;
    if (op->want_pause)
        return 1;
    if (!st->host.enter(st->host.opaque))
        return 0;
    st->host.resume(st->host.opaque, op->req);
    JSValue u8 = jsapi_new_uint8array(ctx, data, len);
    JSValue fn = JS_IsException(u8) ? JS_EXCEPTION : JS_GetPropertyStr(ctx, op->ctl, "enqueue");
    JSValue r = JS_IsException(fn) ? JS_EXCEPTION : JS_Call(ctx, fn, op->ctl, 1, (JSValueConst *)&u8);
    JS_FreeValue(ctx, fn);
    JS_FreeValue(ctx, u8);
    if (JS_IsException(r)) {
        /* The reader cancelled (or memory ran out): drop the rest. */
        JS_FreeValue(ctx, JS_GetException(ctx));
    } else {
        JSValue ds = JS_GetPropertyStr(ctx, op->ctl, "desiredSize");
        double d = 1;
        if (JS_IsNumber(ds))
            JS_ToFloat64(ctx, &d, ds);
        JS_FreeValue(ctx, ds);
        if (d <= 0)
            op->want_pause = true;
    }
    JS_FreeValue(ctx, r);
    st->host.leave(st->host.opaque, JS_UNDEFINED, "fetch");
    return 0;
}

static void on_done(void *opaque, int rc, const char *error, http_response *res)
{
    fetch_op *op = opaque;
    JSContext *ctx = op->ctx;
    jsapi_state *st = jsapi_state_of(ctx);
    jsapi_fetch *f = st->fetch;
    op->t = NULL; /* the client frees it after this callback */
    if (!st->host.enter(st->host.opaque)) {
        op_free(f, op);
        return;
    }
    st->host.resume(st->host.opaque, op->req);
    const char *location = res ? http_headers_get(&res->headers, "location") : NULL;
    if (op->phase != PHASE_HEAD) {
        /* Resolved at the head already: the body ends (or fails) now. */
        if (op->phase == PHASE_BODY && JS_IsObject(op->ctl)) {
            JSValue arg = JS_UNDEFINED;
            if (rc < 0) {
                throw_network_error(ctx, op, rc, error);
                arg = JS_GetException(ctx);
            }
            JSValue fn = JS_GetPropertyStr(ctx, op->ctl, rc < 0 ? "error" : "close");
            JSValue r = JS_Call(ctx, fn, op->ctl, rc < 0 ? 1 : 0, (JSValueConst *)&arg);
            JS_FreeValue(ctx, fn);
            JS_FreeValue(ctx, arg);
            if (JS_IsException(r)) /* already cancelled or errored by the reader */
                JS_FreeValue(ctx, JS_GetException(ctx));
            JS_FreeValue(ctx, r);
        }
        unlisten(op);
        op_free(f, op);
    } else if (rc < 0) {
        throw_network_error(ctx, op, rc, error);
        settle_exception(f, op);
    } else if (is_redirect(res->status) && location && strcmp(op->redirect, "manual") != 0) {
        if (follow(ctx, op, res->status, location) < 0)
            settle_exception(f, op);
    } else {
        JSValue resp = make_response(ctx, op, res, false);
        if (JS_IsException(resp))
            settle_exception(f, op);
        else
            settle(f, op, true, resp);
    }
    st->host.leave(st->host.opaque, JS_UNDEFINED, "fetch");
}

/* --- abort --- */

static fetch_op *find_op(jsapi_fetch *f, uint64_t id)
{
    for (fetch_op *op = f ? f->ops : NULL; op; op = op->next)
        if (op->id == id)
            return op;
    return NULL;
}

static JSValue on_abort(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv, int magic,
                        JSValue *data)
{
    jsapi_state *st = jsapi_state_of(ctx);
    int64_t id = 0;
    JS_ToInt64(ctx, &id, data[0]);
    fetch_op *op = find_op(st->fetch, (uint64_t)id);
    if (!op)
        return JS_UNDEFINED;
    http_transfer_cancel(op->t);
    op->t = NULL;
    if (op->phase == PHASE_HEAD) {
        settle(st->fetch, op, false, abort_reason(ctx, op->signal));
        return JS_UNDEFINED;
    }
    /* Aborted while the body streams: the stream errors with the reason. */
    if (op->phase == PHASE_BODY && JS_IsObject(op->ctl)) {
        JSValue reason = abort_reason(ctx, op->signal);
        JSValue fn = JS_GetPropertyStr(ctx, op->ctl, "error");
        JSValue r = JS_Call(ctx, fn, op->ctl, 1, (JSValueConst *)&reason);
        if (JS_IsException(r))
            JS_FreeValue(ctx, JS_GetException(ctx));
        JS_FreeValue(ctx, r);
        JS_FreeValue(ctx, fn);
        JS_FreeValue(ctx, reason);
    }
    unlisten(op);
    op_free(st->fetch, op);
    return JS_UNDEFINED;
}

/* Takes the Request's signal (init.signal, else the input Request's); if
 * it is already aborted, -1 with its reason thrown. */
static int take_signal(JSContext *ctx, fetch_op *op, jsapi_request *rq)
{
    if (!JS_IsObject(rq->signal))
        return 0;
    JSValue signal = JS_DupValue(ctx, rq->signal);
    op->signal = signal;
    JSValue aborted = JS_GetPropertyStr(ctx, signal, "aborted");
    int is = JS_ToBool(ctx, aborted);
    JS_FreeValue(ctx, aborted);
    if (is < 0)
        return -1;
    if (is) {
        JS_Throw(ctx, abort_reason(ctx, signal));
        return -1;
    }
    return 0;
}

static int listen_abort(JSContext *ctx, fetch_op *op)
{
    if (!JS_IsObject(op->signal))
        return 0;
    JSValue add = JS_GetPropertyStr(ctx, op->signal, "addEventListener");
    if (JS_IsException(add))
        return -1;
    int rc = 0;
    if (JS_IsFunction(ctx, add)) {
        JSValue idv = JS_NewInt64(ctx, (int64_t)op->id);
        op->listener = JS_NewCFunctionData(ctx, on_abort, 1, 0, 1, &idv);
        JSValue type = JS_NewString(ctx, "abort");
        JSValueConst args[2] = { type, op->listener };
        JSValue r = JS_Call(ctx, add, op->signal, 2, args);
        rc = JS_IsException(r) ? -1 : 0;
        JS_FreeValue(ctx, r);
        JS_FreeValue(ctx, type);
    }
    JS_FreeValue(ctx, add);
    return rc;
}

/* --- fetch(input, init) --- */

/* A ReadableStream request body streams (chunked): curl's read callback
 * takes bytes from op->up; when they run out the upload pauses and
 * up_want reads the next chunk from the stream (outside curl), then
 * resumes the transfer. data[0] is the op's id; magic 1 is a read()'s
 * fulfilment, 0 its rejection. */
static JSValue on_up_chunk(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv,
                           int magic, JSValue *data)
{
    jsapi_state *st = jsapi_state_of(ctx);
    int64_t id = 0;
    JS_ToInt64(ctx, &id, data[0]);
    fetch_op *op = find_op(st->fetch, (uint64_t)id);
    if (!op || !op->up_stream) /* aborted meanwhile, or the body was dropped by a redirect */
        return JS_UNDEFINED;
    JSValueConst res = argc > 0 ? argv[0] : JS_UNDEFINED;
    JSValue failure = JS_UNDEFINED;
    if (!magic) {
        failure = JS_DupValue(ctx, res);
    } else {
        JSValue done = JS_GetPropertyStr(ctx, res, "done");
        int is_done = JS_ToBool(ctx, done);
        JS_FreeValue(ctx, done);
        if (is_done) {
            op->up_done = true;
        } else {
            JSValue value = JS_GetPropertyStr(ctx, res, "value");
            const uint8_t *p;
            size_t len;
            int k = jsapi_buffer_source(ctx, value, &p, &len);
            if (k == 1) {
                js_free(ctx, op->up);
                op->up = js_malloc(ctx, len ? len : 1);
                if (op->up) {
                    memcpy(op->up, p, len);
                    op->up_len = len;
                    op->up_off = 0;
                } else {
                    failure = JS_GetException(ctx);
                }
            } else {
                if (k == 0)
                    JS_ThrowTypeError(ctx, "fetch(): a request body stream chunk is not an ArrayBuffer or ArrayBufferView");
                failure = JS_GetException(ctx);
            }
            JS_FreeValue(ctx, value);
        }
    }
    if (!JS_IsUndefined(failure) || JS_IsException(failure)) {
        if (op->phase == PHASE_HEAD) {
            settle(st->fetch, op, false, failure);
        } else {
            JS_FreeValue(ctx, failure);
            unlisten(op);
            op_free(st->fetch, op);
        }
        return JS_UNDEFINED;
    }
    http_transfer_resume(op->t);
    return JS_UNDEFINED;
}

static int up_read(void *opaque, void *dst, size_t cap, size_t *n)
{
    fetch_op *op = opaque;
    if (op->up_off < op->up_len) {
        size_t k = op->up_len - op->up_off < cap ? op->up_len - op->up_off : cap;
        memcpy(dst, op->up + op->up_off, k);
        op->up_off += k;
        *n = k;
        return 0;
    }
    if (op->up_done) {
        *n = 0;
        return 0;
    }
    return 1;
}

static void up_want(void *opaque)
{
    fetch_op *op = opaque;
    JSContext *ctx = op->ctx;
    jsapi_state *st = jsapi_state_of(ctx);
    if (!st->host.enter(st->host.opaque))
        return;
    st->host.resume(st->host.opaque, op->req);
    JSValue fn = JS_GetPropertyStr(ctx, op->reader, "read");
    JSValue p = JS_IsException(fn) ? JS_EXCEPTION : JS_Call(ctx, fn, op->reader, 0, NULL);
    JS_FreeValue(ctx, fn);
    JSValue r = JS_UNDEFINED;
    if (!JS_IsException(p)) {
        JSValue idv = JS_NewInt64(ctx, (int64_t)op->id);
        JSValue cbs[2] = { JS_NewCFunctionData(ctx, on_up_chunk, 1, 1, 1, &idv),
                           JS_NewCFunctionData(ctx, on_up_chunk, 1, 0, 1, &idv) };
        r = jsapi_promise_then(ctx, p, cbs[0], cbs[1]);
        JS_FreeValue(ctx, cbs[0]);
        JS_FreeValue(ctx, cbs[1]);
    }
    JS_FreeValue(ctx, p);
    /* An exception here (a broken stream) is reported by leave(). */
    st->host.leave(st->host.opaque, JS_IsException(p) ? JS_EXCEPTION : r, "fetch");
}

/* Everything fetch() does before the first transfer; -1 with an exception. */
static int prepare(JSContext *ctx, fetch_op *op, JSValueConst input, JSValueConst init)
{
    JSValueConst ctor = jsapi_lazy(ctx, JSAPI_REQUEST);
    if (JS_IsException(ctor))
        return -1;
    JSValueConst args[2] = { input, init };
    JSValue reqobj = JS_CallConstructor(ctx, ctor, 2, args);
    if (JS_IsException(reqobj))
        return -1;
    int rc = -1;
    jsapi_request *rq = JS_GetOpaque(reqobj, jsapi_request_class_id);
    if (take_signal(ctx, op, rq) < 0 || set_target(ctx, op, rq->url, NULL) < 0 || charge(ctx, op) < 0)
        goto done;
    op->method = xstrdup(rq->method);
    op->redirect = rq->redirect ? rq->redirect : "follow";
    jsapi_headers *h = jsapi_headers_get_list(ctx, rq->headers);
    for (size_t i = 0; h && i < h->count; i++)
        http_headers_add(&op->headers, h->items[i].name, h->items[i].name_len, h->items[i].value,
                         h->items[i].value_len);
    if (rq->body.present && JS_IsObject(rq->body.stream)) {
        op->has_body = true;
        op->up_stream = true;
        JSValue fn = JS_GetPropertyStr(ctx, rq->body.stream, "getReader");
        op->reader = JS_IsException(fn) ? JS_EXCEPTION : JS_Call(ctx, fn, rq->body.stream, 0, NULL);
        JS_FreeValue(ctx, fn);
        if (JS_IsException(op->reader)) {
            op->reader = JS_UNDEFINED;
            goto done;
        }
    } else if (rq->body.present) {
        op->has_body = true;
        op->body_len = rq->body.len;
        op->body = rq->body.data; /* moved: the Request is ours and goes now */
        rq->body.data = NULL;
        rq->body.len = 0;
        rq->body.used = true;
    }
    rc = listen_abort(ctx, op);
done:
    JS_FreeValue(ctx, reqobj);
    return rc;
}

static JSValue js_fetch(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    jsapi_state *st = jsapi_state_of(ctx);
    if (!st->fetch) {
        st->fetch = xcalloc(1, sizeof *st->fetch);
        st->fetch->client = http_client_new(st->host.loop, st->host.fetch_max_body);
    }
    jsapi_fetch *f = st->fetch;
    JSValue funcs[2];
    JSValue promise = JS_NewPromiseCapability(ctx, funcs);
    if (JS_IsException(promise))
        return promise;
    fetch_op *op = xcalloc(1, sizeof *op);
    op->ctx = ctx;
    op->id = ++f->next_id;
    op->resolve = funcs[0];
    op->reject = funcs[1];
    op->signal = op->listener = op->ctl = op->reader = JS_UNDEFINED;
    http_headers_init(&op->headers);
    op->next = f->ops;
    if (op->next)
        op->next->prev = op;
    f->ops = op;
    /* fetch() never throws: every failure rejects the promise. */
    if (prepare(ctx, op, argc > 0 ? argv[0] : JS_UNDEFINED, argc > 1 ? argv[1] : JS_UNDEFINED) < 0 ||
        start_hop(ctx, op) < 0)
        settle_exception(f, op);
    return promise;
}

static const JSCFunctionListEntry fetch_funcs[] = {
    JS_CFUNC_DEF("fetch", 2, js_fetch),
};

int jsapi_fetch_install(JSContext *ctx, JSValueConst global)
{
    JS_SetPropertyFunctionList(ctx, global, fetch_funcs, 1);
    return JS_HasException(ctx) ? -1 : 0;
}

void jsapi_fetch_free(JSContext *ctx)
{
    jsapi_state *st = jsapi_state_of(ctx);
    jsapi_fetch *f = st->fetch;
    if (!f)
        return;
    while (f->ops)
        op_free(f, f->ops);
    http_client_free(f->client);
    free(f);
    st->fetch = NULL;
}
