/* The HTTP request/response model that the server hands to the tiers: a
 * parsed request, and a writer through which a tier sends its response
 * (all at once with Content-Length, or streamed chunked). It knows nothing
 * of sockets or of JavaScript, so the same model serves the HTTP server,
 * `atoll run` (no socket) and the tests. */
#ifndef ATOLL_HTTP_MESSAGE_H
#define ATOLL_HTTP_MESSAGE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct http_header {
    char *name;   /* owned, NUL-terminated, as received (case preserved) */
    char *value;  /* owned, NUL-terminated, surrounding whitespace trimmed */
    size_t name_len, value_len;
} http_header;

/* An ordered list of header fields; duplicates are kept as sent. */
typedef struct http_headers {
    http_header *items;
    size_t count, cap;
} http_headers;

void http_headers_init(http_headers *h);
void http_headers_add(http_headers *h, const char *name, size_t name_len, const char *value,
                      size_t value_len);
void http_headers_add_str(http_headers *h, const char *name, const char *value);
/* The first field named `name` (ASCII case-insensitive), or NULL. Borrowed. */
const char *http_headers_get(const http_headers *h, const char *name);
/* Removes every field named `name`; returns how many were removed. */
size_t http_headers_remove(http_headers *h, const char *name);
void http_headers_free(http_headers *h);

/* A request body that arrives while the request is already being handled
 * (the server's stream_body choice, see server.h), so that a proxy can pass
 * it on without holding it whole. The consumer calls start once with its
 * callbacks; then data comes as the client sends it (chunked framing
 * removed), then exactly one of end or error. Callbacks come from the
 * event loop, never from inside start, pause or resume; after pause returns
 * no data comes until resume. The server stops reading the client while
 * the consumer is paused, so a fast client cannot make it buffer more than
 * one socket read. The stream belongs to the request: once the response has
 * ended (w->end or abort), no callback comes any more, and a body not read
 * to its end makes the connection close after the response. error's code:
 * -ECONNRESET (the client went away or stalled), -EMSGSIZE (over the body
 * limit: answer 413 if the response has not started), -EPROTO (bad
 * chunked framing). */
typedef struct http_body_sink {
    void (*data)(void *ctx, const char *data, size_t len);
    void (*end)(void *ctx);
    void (*error)(void *ctx, int code);
    void *ctx;
} http_body_sink;

typedef struct http_body_stream http_body_stream;
struct http_body_stream {
    int64_t length;     /* the Content-Length, or -1 when the client sends chunked */
    uint64_t received;  /* body bytes delivered so far */
    /* Sends "100 Continue" first when the client asked for it (and no
     * response has started). The sink is copied. */
    void (*start)(http_body_stream *s, const http_body_sink *sink);
    void (*pause)(http_body_stream *s);
    void (*resume)(http_body_stream *s);
};

typedef struct http_request {
    char *method;        /* owned, e.g. "GET" */
    char *target;        /* owned, request-target as sent, e.g. "/a/b?q=1" */
    int version_major;   /* 1 */
    int version_minor;   /* 0 or 1 */
    http_headers headers;
    buf body;            /* the complete body (chunked encoding already removed) */
    http_body_stream *stream; /* non-NULL: the body streams through it and `body` stays
                                 empty; borrowed from whoever made the request */
    bool keep_alive;     /* the connection may carry another request after this one */
} http_request;

void http_request_init(http_request *r);
void http_request_free(http_request *r); /* frees the members, not r */

/* How a tier answers a request. Call start once, write any number of times,
 * then end exactly once; after end the writer may be freed by its owner.
 * Return values are 0 or a negative errno (-EPIPE when the client has gone;
 * the tier may stop producing the body but must still call end). */
typedef struct http_writer http_writer;
struct http_writer {
    /* content_length >= 0 sends that Content-Length; -1 streams the body
     * (chunked on HTTP/1.1, close-delimited on HTTP/1.0). Framing headers
     * in `headers` (Content-Length, Transfer-Encoding, Connection) are
     * replaced by the writer's own. */
    int (*start)(http_writer *w, int status, const http_headers *headers, int64_t content_length);
    int (*write)(http_writer *w, const void *data, size_t len);
    void (*end)(http_writer *w);
    /* Optional (NULL when a writer cannot do it; use the helpers below).
     * abort ends the response as failed instead of end: the client must
     * not take it for complete (no final chunk; the connection closes).
     * queued tells how many body bytes were accepted but not yet taken by
     * the client, so that a producer that streams (a proxy) can stop
     * reading its source while the client is slow. */
    void (*abort)(http_writer *w);
    size_t (*queued)(http_writer *w);
};

/* start + write + end with a Content-Length body. */
int http_writer_respond(http_writer *w, int status, const http_headers *headers, const void *body,
                        size_t len);
/* A short HTML error page, e.g. 500 "Worker threw an exception". */
int http_writer_error(http_writer *w, int status, const char *message);

/* w->abort, or w->end for a writer without abort. */
void http_writer_abort(http_writer *w);
/* w->queued, or 0 for a writer that cannot tell. */
size_t http_writer_queued(http_writer *w);

/* "OK" for 200 etc.; "Unknown" for codes without a standard phrase. */
const char *http_status_reason(int status);

#endif
