/* The Web API surface that an isolate's global scope offers (Headers,
 * Request, Response, console, timers, queueMicrotask as native classes on
 * QuickJS; streams, Blob, File, FormData as build-time bytecode). The isolate installs it once per context; everything else it
 * needs from the isolate (the loop, the tenant name, how to enter and leave
 * JavaScript from a loop callback) comes through a jsapi_host, so the API
 * families do not know the isolate's internals.
 *
 * Constructors are created lazily, on first use of their global name or
 * when C code first needs the class, so an idle isolate pays only for what
 * its code touched (cold start and memory per isolate are the product's
 * headline). */
#ifndef ATOLL_JS_API_H
#define ATOLL_JS_API_H
#include <stdbool.h>
#include <stdint.h>
#include <quickjs.h>
#include <uv.h>

#include "core/err.h"
#include "http/message.h"

/* KV operations one request (or scheduled event) may make, as Workers
 * allows per invocation. */
#define JSAPI_KV_OPS_PER_REQUEST 1000

typedef struct jsapi_host {
    uv_loop_t *loop;
    const char *name;  /* tenant name for console lines; borrowed for the context's life */
    void *opaque;
    /* Called before C code enters JavaScript from a loop callback (a timer
     * firing); false means the isolate is broken and no JS may run. */
    bool (*enter)(void *opaque);
    /* Called after it: consumes `result`; an exception is reported with
     * `what` as context; then promise jobs are drained and limits checked. */
    void (*leave)(void *opaque, JSValue result, const char *what);

    /* fetch(): the egress allow-list and DNS pins (http/egress.h; borrowed
     * for the context's life, NULL: defaults), the cap on response bodies
     * buffered by all of the context's fetches at once, and
     * the per-request subrequest budget (for messages). */
    const char *const *fetch_allow;
    const char *const *fetch_resolve;
    size_t fetch_max_body;
    uint64_t subrequests;
    /* Charges one subrequest to request *req (0: the request whose code is
     * running) and sets *req to the request charged (0: none in flight).
     * 0, -EDQUOT when that request has spent its budget, or -EPERM while
     * the worker is loading (no I/O at the top level, as in Workers). */
    int (*subrequest)(void *opaque, uint64_t *req);
    /* Charges one KV operation (get, getWithMetadata, put, delete, list)
     * to request *req as subrequest() does, against a fixed budget of
     * JSAPI_KV_OPS_PER_REQUEST (Workers' limit per invocation). 0, or
     * -EDQUOT when that request has spent it. Optional. */
    int (*kv_op)(void *opaque, uint64_t *req);
    /* Called after enter(): the JavaScript about to run continues request
     * `req`, so fetches it starts are charged to that request. */
    void (*resume)(void *opaque, uint64_t req);
    /* Charges CPU time spent for the isolate off the loop thread (crypto
     * work on libuv's thread pool) to its requests in flight; may trip
     * the CPU limit. Optional. */
    void (*charge_cpu)(void *opaque, uint64_t ns);
    /* Reads the CPU budget now, for native code that did much work since
     * the interrupt handler last looked (it runs every so many bytecode
     * operations, however long each takes): true when the budget is spent
     * (the limit is then tripped). Optional. */
    bool (*over_cpu)(void *opaque);
} jsapi_host;

/* Registers the native classes with a runtime (once per runtime, before
 * jsapi_install on any of its contexts). */
void jsapi_register_classes(JSRuntime *rt);
/* Creates a context with the intrinsics every worker needs at once;
 * Date, Map/Set/WeakMap/WeakSet, WeakRef/FinalizationRegistry and the
 * typed arrays are added by jsapi_install on first use. */
JSContext *jsapi_new_context(JSRuntime *rt);
/* Installs the global scope into ctx (uses the context opaque pointer).
 * `host` is copied. 0 or -ENOMEM. */
int jsapi_install(JSContext *ctx, const jsapi_host *host);
/* The tenant name console lines carry (borrowed for the context's life),
 * for a context installed before its tenant was known (a pooled runtime). */
void jsapi_set_name(JSContext *ctx, const char *name);
/* The tenant's fetch() policy (see jsapi_host), set when a pooled context
 * is given to a tenant. The arrays are borrowed for the context's life. */
void jsapi_set_fetch_policy(JSContext *ctx, const char *const *allow, const char *const *resolve, size_t max_body,
                            uint64_t subrequests);
/* Sets the clock that Date.now(), new Date() and performance.now() read,
 * in ms since the epoch. The host sets it when the loop enters JavaScript;
 * it stands still while JavaScript runs (a timing defence, as on Workers). */
void jsapi_set_now(JSContext *ctx, double wall_ms);

/* Cancels timers (their handles close on the loop) and drops every value
 * the API holds; call before JS_FreeContext. */
void jsapi_uninstall(JSContext *ctx);

/* A new Request object for an incoming request with the given absolute URL. */
JSValue jsapi_request_from_http(JSContext *ctx, const http_request *req, const char *url);
/* True when v is a Response. */
bool jsapi_is_response(JSContext *ctx, JSValueConst v);
/* Sends a Response to w: status, headers, body; the one place where a JS
 * Response becomes HTTP. Marks the body used. A body in memory goes with a
 * Content-Length and w is ended before this returns: 0. A ReadableStream
 * body goes out chunked as it is produced: 1, *sink is set, and when the
 * stream has ended, failed, or the client has gone, done(opaque) is called
 * just before w is ended (or aborted, cutting the response off). */
typedef struct jsapi_sink jsapi_sink;
int jsapi_response_send(JSContext *ctx, JSValueConst resp, http_writer *w, void (*done)(void *opaque),
                        void *opaque, jsapi_sink **sink);
/* Stops a streaming response (a limit, or the isolate going away): w is
 * aborted; done is not called. No JavaScript runs. */
void jsapi_sink_abort(JSContext *ctx, jsapi_sink *s);

/* Appends a readable rendering of v (as console.log shows it) to b. */
void jsapi_inspect(JSContext *ctx, JSValueConst v, buf *b);

/* A promise resolved with v (consumed), as Promise.resolve(v) does. */
JSValue jsapi_promise_resolve(JSContext *ctx, JSValue v);
/* promise.then(on_ok, on_err); consumes nothing; returns the new promise. */
JSValue jsapi_promise_then(JSContext *ctx, JSValueConst promise, JSValueConst on_ok,
                           JSValueConst on_err);

#endif
