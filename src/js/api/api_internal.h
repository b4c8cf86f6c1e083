/* Declarations shared by the files of src/js/api/ and by no one else: the
 * per-context API state, the class ids, the body that Request and Response
 * share, and the header list behind Headers. */
#ifndef ATOLL_JS_API_INTERNAL_H
#define ATOLL_JS_API_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "js/api/api.h"

/* Lazily created globals; the index into jsapi_state.ctors. */
enum { JSAPI_HEADERS, JSAPI_REQUEST, JSAPI_RESPONSE, JSAPI_CONSOLE, JSAPI_PERFORMANCE, JSAPI_CRYPTO, JSAPI_CRYPTOKEY,
       /* URL, encoding, events (webbasics) */
       JSAPI_URL, JSAPI_URLSEARCHPARAMS, JSAPI_TEXTENCODER, JSAPI_TEXTDECODER,
       JSAPI_DOMEXCEPTION, JSAPI_EVENT, JSAPI_CUSTOMEVENT, JSAPI_EVENTTARGET,
       JSAPI_ABORTCONTROLLER, JSAPI_ABORTSIGNAL,
       JSAPI_NLAZY };

struct jsapi_timer;
struct crypto_pending;

/* Groups of QuickJS intrinsics added on first use (see api.c). */
enum { JSAPI_INTRINSIC_DATE = 1, JSAPI_INTRINSIC_MAPSET = 2, JSAPI_INTRINSIC_WEAKREF = 4,
       JSAPI_INTRINSIC_TYPED_ARRAYS = 8 };

/* Per context; the context's opaque pointer. Owns every JSValue in it. */
/* The bytecode bundles (streams.c loads them): streams.js, blob.js, inspect.js. */
enum { JSAPI_BUNDLE_STREAMS, JSAPI_BUNDLE_BLOB, JSAPI_BUNDLE_INSPECT, JSAPI_NBUNDLES };

typedef struct jsapi_state {
    jsapi_host host;
    JSValue ctors[JSAPI_NLAZY];   /* JS_UNDEFINED until first use */
    struct jsapi_timer *timers;   /* live timers, most recent first */
    uint32_t next_timer_id;
    unsigned intrinsics;          /* JSAPI_INTRINSIC_* groups added so far */
    double now_ms;                /* the clock JavaScript sees (jsapi_set_now) */
    JSValue date_ctor;            /* the engine's Date, behind our wrapper */
    struct jsapi_fetch *fetch;    /* fetch()'s client and transfers; NULL until the first fetch */
    struct crypto_pending *crypto_jobs; /* crypto work on the thread pool (crypto.c) */
    unsigned crypto_njobs;
    /* crypto work waiting for one of those to finish, oldest first */
    struct crypto_pending *crypto_queue, *crypto_queue_tail;
    unsigned crypto_nqueued;
    uint64_t origin_loop_ms;      /* uv_now() at install: performance.now()'s zero */
    double origin_wall_ms;        /* performance.timeOrigin */
    JSValue bundles[JSAPI_NBUNDLES]; /* exports of streams.js, blob.js, inspect.js; JS_UNDEFINED until first use */
    unsigned console_group;       /* console.group() depth: lines are indented 2 spaces a level */
    /* The console's log budget (console.c): bytes it may write now, when
     * it was last refilled (loop ms), and what it dropped since. */
    uint64_t log_tokens, log_refilled, log_dropped_lines, log_dropped_bytes;
    bool log_started;
    uint64_t work;                /* native work since the CPU budget was last read (jsapi_charge_work) */
    bool work_stopped;            /* that read found the budget spent */
} jsapi_state;

static inline jsapi_state *jsapi_state_of(JSContext *ctx) { return JS_GetContextOpaque(ctx); }

/* Native code charges the work it is about to do (bytes hashed, decoded,
 * logged …). Every JSAPI_WORK_CHECK units the CPU budget is read
 * (host.over_cpu): spent, an uncatchable "interrupted" error is thrown
 * and -1 returned — a loop of calls that each take long would otherwise
 * run for minutes between two of the interrupt handler's checks, with
 * every other tenant of the process waiting. 0 otherwise. */
#define JSAPI_WORK_CHECK (1u << 20)
int jsapi_charge_work(JSContext *ctx, uint64_t units);
/* Whether jsapi_charge_work found the budget spent: the exception then
 * pending must propagate, not become a promise rejection. */
bool jsapi_work_stopped(JSContext *ctx);

/* Creates (once) the class behind a lazy global and returns its
 * constructor (or object, for console), borrowed from the state. */
JSValueConst jsapi_lazy(JSContext *ctx, int which);

/* Adds a group of intrinsics if it is not there yet; C code calls this
 * before it creates, say, an ArrayBuffer. */
void jsapi_need(JSContext *ctx, unsigned group);

extern JSClassID jsapi_headers_class_id, jsapi_request_class_id, jsapi_response_class_id,
    jsapi_sink_class_id;

JSValue jsapi_headers_create(JSContext *ctx);
JSValue jsapi_request_create(JSContext *ctx);
JSValue jsapi_response_create(JSContext *ctx);
JSValue jsapi_console_create(JSContext *ctx);
JSValue jsapi_performance_create(JSContext *ctx);
/* Replaces the Date the engine just added with one on the host's clock. */
void jsapi_clock_patch_date(JSContext *ctx);
JSValue jsapi_crypto_create(JSContext *ctx);
JSValue jsapi_cryptokey_create(JSContext *ctx);
void jsapi_crypto_free(JSContext *ctx);
extern JSClassID jsapi_cryptokey_class_id;
extern const JSClassDef jsapi_cryptokey_class;
extern const JSClassDef jsapi_headers_class, jsapi_request_class, jsapi_response_class,
    jsapi_sink_class;

/* Timers and queueMicrotask on the global object. */
int jsapi_timers_install(JSContext *ctx, JSValueConst global);
void jsapi_timers_free(JSContext *ctx);
/* setTimeout(fn, ms) for C code (AbortSignal.timeout): not affected by
 * user code replacing the global. The timer id, or JS_EXCEPTION. */
JSValue jsapi_set_timeout(JSContext *ctx, JSValueConst fn, double ms);

/* --- URL, encoding, events, structuredClone (url.c, encoding.c,
 * events.c, abort.c, clone.c, global.c) --- */
extern JSClassID jsapi_url_class_id, jsapi_params_class_id, jsapi_encoder_class_id,
    jsapi_decoder_class_id, jsapi_domexception_class_id, jsapi_event_class_id,
    jsapi_target_class_id, jsapi_controller_class_id, jsapi_params_iter_class_id;
extern const JSClassDef jsapi_url_class, jsapi_params_class, jsapi_encoder_class,
    jsapi_decoder_class, jsapi_domexception_class, jsapi_event_class, jsapi_target_class,
    jsapi_controller_class, jsapi_params_iter_class;
JSValue jsapi_url_create(JSContext *ctx);
JSValue jsapi_params_create(JSContext *ctx);
JSValue jsapi_encoder_create(JSContext *ctx);
JSValue jsapi_decoder_create(JSContext *ctx);
JSValue jsapi_domexception_create(JSContext *ctx);
JSValue jsapi_event_create(JSContext *ctx);
JSValue jsapi_customevent_create(JSContext *ctx);
JSValue jsapi_target_create(JSContext *ctx);
JSValue jsapi_controller_create(JSContext *ctx);
JSValue jsapi_signal_create(JSContext *ctx);
/* A new AbortSignal that is not aborted (abort.c). */
JSValue jsapi_signal_new(JSContext *ctx);
/* Global functions and objects that cost nothing until touched (QuickJS
 * instantiates function-list entries on first access): atob, btoa,
 * structuredClone, performance, navigator. */
extern const JSCFunctionListEntry jsapi_global_funcs[];
extern const size_t jsapi_global_funcs_count;
JSValue jsapi_atob(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv);
JSValue jsapi_btoa(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv);
JSValue jsapi_structured_clone(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv);

/* --- EventTarget (events.c), which AbortSignal (abort.c) extends. --- */
typedef struct jsapi_listener {
    uint64_t id;
    JSAtom type;
    JSValue callback; /* a function, or an object with handleEvent */
    bool capture, once, passive;
} jsapi_listener;

typedef struct jsapi_target {
    jsapi_listener *items;
    size_t count, cap;
    uint64_t next_id;
    /* AbortSignal only */
    bool is_signal, aborted;
    JSValue reason, onabort;
    JSValue *algorithms; /* functions called (no arguments) on abort, before the event */
    size_t nalgorithms, capalgorithms;
} jsapi_target;

/* The EventTarget behind obj (also an AbortSignal), or NULL (no exception). */
jsapi_target *jsapi_target_of(JSValueConst obj);
/* A new EventTarget-class object with prototype proto; *out its state. */
JSValue jsapi_target_new(JSContext *ctx, JSValueConst proto, jsapi_target **out);
/* Fires a plain Event of `type` at target (listener errors are logged).
 * 0, or -1 with an exception. */
int jsapi_target_fire(JSContext *ctx, JSValueConst target, const char *type);
/* Adds fn (consumed) to the signal's abort algorithms. 0 or -1 (OOM). */
int jsapi_signal_add_algorithm(JSContext *ctx, jsapi_target *t, JSValue fn);
/* A constructor whose instances share the class of parent_ctor's but have
 * their own prototype, which inherits from parent_ctor.prototype. */
JSValue jsapi_subclass(JSContext *ctx, JSValueConst parent_ctor, const char *name, JSCFunction *ctor,
                       int length, const JSCFunctionListEntry *funcs, size_t nfuncs,
                       const JSCFunctionListEntry *statics, size_t nstatics);
/* Logs the pending exception as uncaught in `what` and clears it. */
void jsapi_report_exception(JSContext *ctx, const char *what);
/* Milliseconds since the isolate's time origin, advancing only between
 * loop iterations (performance.now(), Event.timeStamp). */
double jsapi_now(JSContext *ctx);

/* A new DOMException (name, message) as a value; JS_EXCEPTION on failure. */
JSValue jsapi_domexception_new(JSContext *ctx, const char *name, const char *message);
/* Throws a new DOMException; returns JS_EXCEPTION. */
JSValue jsapi_throw_dom(JSContext *ctx, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The string value of v as UTF-8 with lone surrogates replaced by U+FFFD
 * (WebIDL's USVString); free with JS_FreeCString. NULL with an exception. */
const char *jsapi_to_usv(JSContext *ctx, JSValueConst v, size_t *len);
/* The bytes of an ArrayBuffer or ArrayBuffer view (BufferSource): 1 and
 * *data, *len set; 0 when v is neither; -1 with an exception. *data stays
 * valid while v is alive and no JS runs. */
int jsapi_buffer_source(JSContext *ctx, JSValueConst v, const uint8_t **data, size_t *len);
/* A new Uint8Array holding a copy of data. */
JSValue jsapi_new_uint8array(JSContext *ctx, const uint8_t *data, size_t len);

/* --- streams.c: ReadableStream, WritableStream, TransformStream, the
 * queuing strategies, TextEncoderStream/TextDecoderStream (streams.js),
 * and Blob, File, FormData (blob.js), console's formatter (inspect.js):
 * bytecode bundles loaded on first use. --- */
int jsapi_streams_install(JSContext *ctx, JSValueConst global);
/* A bundle's exports (loads it on first call); borrowed, or JS_EXCEPTION. */
JSValueConst jsapi_bundle(JSContext *ctx, int bundle);
/* Calls a bundle's helper `name` (streams: isStream, disturbed, fromBytes, fromHost,
 * readAll, tee; blob: extract, blob, parseForm; inspect: format, inspect); a new value or JS_EXCEPTION. */
JSValue jsapi_bundle_call(JSContext *ctx, int bundle, const char *name, int argc, JSValueConst *argv);
/* v is a ReadableStream (false, without loading anything, before the
 * streams bundle is loaded: no stream can exist yet). */
bool jsapi_is_stream(JSContext *ctx, JSValueConst v);

/* --- Headers: an ordered list of (lower-case name, value) pairs. --- */
typedef enum { JSAPI_GUARD_NONE, JSAPI_GUARD_IMMUTABLE } jsapi_guard;

typedef struct jsapi_header {
    char *name;   /* lower case; js_malloc'd with value in one block */
    char *value;
    size_t name_len, value_len;
} jsapi_header;

typedef struct jsapi_headers {
    jsapi_header *items;
    size_t count, cap;
    jsapi_guard guard;
} jsapi_headers;

/* A new, empty Headers object; *out points into it. */
JSValue jsapi_headers_new(JSContext *ctx, jsapi_headers **out);
/* A new Headers filled from a HeadersInit value (undefined: empty). */
JSValue jsapi_headers_from_init(JSContext *ctx, JSValueConst init);
jsapi_headers *jsapi_headers_get_list(JSContext *ctx, JSValueConst obj);
/* 0 or -1 with a JS exception (out of memory). Name and value must be valid. */
int jsapi_headers_append(JSContext *ctx, jsapi_headers *h, const char *name, size_t name_len,
                         const char *value, size_t value_len);
/* Combined value of `name` (lower case) in a js_malloc'd string, or NULL. */
char *jsapi_headers_get(JSContext *ctx, const jsapi_headers *h, const char *name);
/* A copy (new Headers object with the same list and guard). */
JSValue jsapi_headers_clone(JSContext *ctx, JSValueConst obj);

/* --- Body: the bytes of a Request or Response, either complete in memory
 * (`data`) or a ReadableStream (`stream`: a stream body, or in-memory bytes
 * once the `body` getter has turned them into a stream). --- */
typedef struct jsapi_body {
    uint8_t *data;  /* js_malloc'd: a tenant's bodies count against its heap cap */
    size_t len;
    JSValue stream; /* a ReadableStream when JS_IsObject; then data is NULL */
    char *type;     /* js_malloc'd content type a FormData body implies, or NULL */
    bool present;   /* false: a null body */
    bool used;      /* disturbed: read once already */
} jsapi_body;

/* Fills b from a BodyInit (string, ArrayBuffer, view, Blob, FormData,
 * URLSearchParams, ReadableStream, null/undefined, or anything else by its
 * string value); *content_type gets the type the body implies (a static
 * string or b->type) or NULL. 0, or -1 with an exception. */
int jsapi_body_init(JSContext *ctx, JSValueConst v, jsapi_body *b, const char **content_type);
/* A copy for clone(): a stream body is teed (from gets one branch). */
int jsapi_body_copy(JSContext *ctx, jsapi_body *from, jsapi_body *to);
void jsapi_body_free(JSRuntime *rt, jsapi_body *b);
void jsapi_body_mark(JSRuntime *rt, const jsapi_body *b, JS_MarkFunc *mark);
/* The body of a Request or Response object, or NULL (exception thrown). */
jsapi_body *jsapi_body_of(JSContext *ctx, JSValueConst obj);
/* The bytes of an ArrayBuffer or ArrayBufferView (borrowed from v): 1, or
 * 0 when v is neither, or -1 with an exception. */
int jsapi_bytes_of(JSContext *ctx, JSValueConst v, const uint8_t **data, size_t *len);
/* True when the body can no longer be read (read, or its stream disturbed or locked). */
bool jsapi_body_used(JSContext *ctx, const jsapi_body *b);

/* Methods that Request.prototype and Response.prototype share (text(),
 * json(), arrayBuffer(), bytes(), blob(), formData(), body, bodyUsed). */
extern const JSCFunctionListEntry jsapi_body_funcs[];
extern const size_t jsapi_body_funcs_count;

typedef struct jsapi_request {
    char *method;   /* js_malloc'd, upper case for the standard methods */
    char *url;      /* js_malloc'd, absolute */
    JSValue headers;
    jsapi_body body;
    const char *redirect;  /* static: "follow" (NULL means it too), "manual" or "error" */
    JSValue signal;        /* its AbortSignal; undefined until asked for (then a fresh one) */
} jsapi_request;

/* The serialized form of an absolute URL (input by its string value),
 * js_malloc'd, or NULL with a TypeError (request.c). */
char *jsapi_parse_url(JSContext *ctx, JSValueConst input);
/* The request's signal, made on first use; a new reference (request.c). */
JSValue jsapi_request_signal(JSContext *ctx, jsapi_request *r);

typedef struct jsapi_response {
    int status;
    char *status_text;  /* js_malloc'd */
    char *url;          /* js_malloc'd, "" unless the response came from fetch() */
    JSValue headers;
    jsapi_body body;
    bool redirected;
    const char *type;   /* "default", "error", ... */
} jsapi_response;

/* A new Response (status 200, no headers object yet, no body); *out
 * points into it. */
JSValue jsapi_response_new(JSContext *ctx, jsapi_response **out);

/* fetch() on the global object (fetch.c), and cancelling its transfers. */
int jsapi_fetch_install(JSContext *ctx, JSValueConst global);
void jsapi_fetch_free(JSContext *ctx);

/* Helpers. */
/* obj.length as an integer; 0 or -1 with an exception. */
int jsapi_get_length(JSContext *ctx, JSValueConst obj, int64_t *len);
/* obj[Symbol.iterator] (owned): undefined when obj is not iterable (a
 * record, for WebIDL's sequence-or-record inits), JS_EXCEPTION on error. */
JSValue jsapi_iterator_method(JSContext *ctx, JSValueConst obj);
char *jsapi_strdup(JSContext *ctx, const char *s, size_t len); /* NUL-terminated, js_malloc'd */
/* Creates the prototype (funcs should include [Symbol.toStringTag]) and the
 * constructor (callable only with new), and sets the class prototype. */
JSValue jsapi_make_class(JSContext *ctx, JSClassID id, const char *name, JSCFunction *ctor,
                         int length, const JSCFunctionListEntry *funcs, size_t nfuncs,
                         const JSCFunctionListEntry *statics, size_t nstatics);
/* An object of class id whose prototype comes from new_target (subclassing)
 * or, when new_target is undefined, the class prototype. */
JSValue jsapi_new_instance(JSContext *ctx, JSValueConst new_target, JSClassID id);

#endif
