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

typedef struct http_request {
    char *method;        /* owned, e.g. "GET" */
    char *target;        /* owned, request-target as sent, e.g. "/a/b?q=1" */
    int version_major;   /* 1 */
    int version_minor;   /* 0 or 1 */
    http_headers headers;
    buf body;            /* the complete body (chunked encoding already removed) */
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
    /* Optional (NULL: the writer cannot). abort ends a response whose body
     * failed half-way: the client sees it cut off (the connection closes,
     * no final chunk), never a complete-looking body; it replaces end.
     * pending says how many bytes were written but not yet taken by the
     * client, so a producer can wait instead of queueing without bound. */
    void (*abort)(http_writer *w);
    size_t (*pending)(http_writer *w);
};

/* w->abort, or w->end where the writer has no abort. */
void http_writer_abort(http_writer *w);
/* w->pending, or 0 where the writer does not say. */
size_t http_writer_pending(http_writer *w);

/* start + write + end with a Content-Length body. */
int http_writer_respond(http_writer *w, int status, const http_headers *headers, const void *body,
                        size_t len);
/* A short HTML error page, e.g. 500 "Worker threw an exception". */
int http_writer_error(http_writer *w, int status, const char *message);

/* "OK" for 200 etc.; "Unknown" for codes without a standard phrase. */
const char *http_status_reason(int status);

#endif
