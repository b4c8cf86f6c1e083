/* An outbound HTTP client: libcurl's multi interface driven by a libuv
 * loop (curl's sockets watched with uv_poll, its timeout on a uv_timer),
 * so transfers never block the loop. It knows no JavaScript; js/api/fetch.c
 * builds fetch() on it.
 *
 * One http_client per owner (an isolate makes one on its first fetch), so
 * the connections and DNS pins of one tenant are never shared with another,
 * and freeing the client cancels all of its transfers at once.
 *
 * A transfer is one request/response exchange: redirects are returned,
 * not followed (the Fetch layer follows them and re-checks its policy at
 * every hop). Every address curl is about to connect to, after DNS, goes
 * through the transfer's egress check (http/egress.h). Response bodies are
 * buffered, all of a client's together up to a cap (outside any JS heap,
 * so it bounds what a tenant's fetches hold in host memory), unless the
 * transfer streams: then the head is handed over as soon as it is complete
 * and the body chunk by chunk as it arrives, with backpressure (a chunk
 * refused pauses the transfer until http_transfer_resume). */
#ifndef ATOLL_HTTP_CLIENT_H
#define ATOLL_HTTP_CLIENT_H
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "core/buf.h"
#include "http/egress.h"
#include "http/message.h"

typedef struct http_client http_client;
typedef struct http_transfer http_transfer;

typedef struct http_response {
    int status;
    char *status_text;     /* owned; "" for HTTP/2 */
    http_headers headers;  /* as received, duplicates (Set-Cookie) kept */
    buf body;              /* the complete body */
} http_response;

/* rc is 0 with a response, or a negative errno with `error` saying what
 * happened: -EACCES (an address refused by the egress policy), -E2BIG
 * (the client's buffered bodies would exceed its cap), -ECONNREFUSED, -ENOENT (host not found),
 * -ETIMEDOUT, -EIO (anything else). `res` belongs to the transfer, which
 * is freed when the callback returns; take what you keep (buf_steal). */
typedef void (*http_transfer_cb)(void *opaque, int rc, const char *error, http_response *res);
/* Streaming: the final head (status >= 200, headers; body empty) as soon as
 * it has arrived. Returns 0 to have the body delivered to the data
 * callback, 1 to have it discarded. Called at most once, from a loop
 * callback; the transfer callback still follows (with an empty body). */
typedef int (*http_transfer_head_cb)(void *opaque, http_response *res);
/* Streaming: one chunk of the body. Returns 0 (taken) or 1 (not taken:
 * the transfer pauses and the same bytes come again after
 * http_transfer_resume, possibly from inside that call). */
typedef int (*http_transfer_data_cb)(void *opaque, const void *data, size_t len);
/* Streaming upload: copy at most cap bytes of the request body to dst and
 * return 0 with *n set (*n == 0: the body is complete), or 1 when no bytes
 * are ready (the upload pauses). Called inside curl: no JavaScript. */
typedef int (*http_transfer_read_cb)(void *opaque, void *dst, size_t cap, size_t *n);
/* Streaming upload: the upload is paused and wants bytes; called outside
 * curl, once per pause. The owner calls http_transfer_resume once it has
 * some (or the body is complete). */
typedef void (*http_transfer_want_cb)(void *opaque);

typedef struct http_transfer_opts {
    const char *method;            /* "GET", "HEAD", "POST", ... */
    const char *url;               /* absolute http: or https: URL, WHATWG-serialized */
    const char *host;              /* its host as checked; curl must parse the same */
    const http_headers *headers;   /* request headers; framing ones are curl's */
    const void *body;              /* borrowed until the callback or the cancel */
    size_t body_len;
    bool has_body;
    const char *const *allow;      /* egress allow-list (NULL: default) */
    egress_kind kind;              /* what egress_check_host said about host */
    const char *const *resolve;    /* "host:port:address" pins as curl --resolve, or NULL */
    http_transfer_head_cb on_head; /* both set: the response streams (see above) */
    http_transfer_data_cb on_data;
    http_transfer_read_cb upload_read; /* both set: the request body streams (chunked); */
    http_transfer_want_cb upload_want; /* body/body_len are then unused */
} http_transfer_opts;

/* A client on `loop` whose transfers may buffer at most `max_buffered`
 * bytes of response bodies at once. Aborts on out-of-memory. */
http_client *http_client_new(uv_loop_t *loop, size_t max_buffered);
/* Cancels every transfer (their callbacks are not called) and frees the
 * client; its handles close on the loop. */
void http_client_free(http_client *c);

/* Starts a transfer; cb is called once from a loop callback, never from
 * inside this call. 0, or a negative errno with a message in *error
 * (static) and cb never called. */
int http_transfer_start(http_client *c, const http_transfer_opts *o, http_transfer_cb cb, void *opaque,
                        http_transfer **out, const char **error);
/* Cancels a transfer whose callback has not run; cb is never called. */
void http_transfer_cancel(http_transfer *t);
/* Resumes a streaming transfer paused by its data callback or its upload;
 * a no-op when it is not paused. The paused bytes may be delivered before
 * it returns. */
void http_transfer_resume(http_transfer *t);

#endif
