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
enum { JSAPI_HEADERS, JSAPI_REQUEST, JSAPI_RESPONSE, JSAPI_CONSOLE, JSAPI_NLAZY };

struct jsapi_timer;

/* Groups of QuickJS intrinsics added on first use (see api.c). */
enum { JSAPI_INTRINSIC_DATE = 1, JSAPI_INTRINSIC_MAPSET = 2, JSAPI_INTRINSIC_WEAKREF = 4,
       JSAPI_INTRINSIC_TYPED_ARRAYS = 8 };

/* Per context; the context's opaque pointer. Owns every JSValue in it. */
typedef struct jsapi_state {
    jsapi_host host;
    JSValue ctors[JSAPI_NLAZY];   /* JS_UNDEFINED until first use */
    struct jsapi_timer *timers;   /* live timers, most recent first */
    uint32_t next_timer_id;
    unsigned intrinsics;          /* JSAPI_INTRINSIC_* groups added so far */
    JSValue bundles[2];           /* exports of streams.js, blob.js; JS_UNDEFINED until first use */
} jsapi_state;

static inline jsapi_state *jsapi_state_of(JSContext *ctx) { return JS_GetContextOpaque(ctx); }

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
extern const JSClassDef jsapi_headers_class, jsapi_request_class, jsapi_response_class,
    jsapi_sink_class;

/* Timers and queueMicrotask on the global object. */
int jsapi_timers_install(JSContext *ctx, JSValueConst global);
void jsapi_timers_free(JSContext *ctx);

/* --- streams.c: ReadableStream, WritableStream, TransformStream, the
 * queuing strategies, TextEncoderStream/TextDecoderStream (streams.js),
 * and Blob, File, FormData (blob.js): bytecode bundles loaded on first use. --- */
enum { JSAPI_BUNDLE_STREAMS, JSAPI_BUNDLE_BLOB };
int jsapi_streams_install(JSContext *ctx, JSValueConst global);
/* A bundle's exports (loads it on first call); borrowed, or JS_EXCEPTION. */
JSValueConst jsapi_bundle(JSContext *ctx, int bundle);
/* Calls a bundle's helper `name` (streams: isStream, disturbed, fromBytes,
 * readAll, tee; blob: extract, blob, parseForm); a new value or JS_EXCEPTION. */
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
} jsapi_request;

typedef struct jsapi_response {
    int status;
    char *status_text;  /* js_malloc'd */
    char *url;          /* js_malloc'd, "" unless the response came from fetch() */
    JSValue headers;
    jsapi_body body;
    bool redirected;
    const char *type;   /* "default", "error", ... */
} jsapi_response;

/* Helpers. */
/* obj.length as an integer; 0 or -1 with an exception. */
int jsapi_get_length(JSContext *ctx, JSValueConst obj, int64_t *len);
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
