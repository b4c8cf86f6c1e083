/* The HTTP/1.1 reverse proxy: forwards one http_request to an upstream
 * HTTP/1.1 server over a byte stream (TCP or Unix socket) and relays the
 * response to an http_writer as it arrives, body streamed both ways. The
 * container tier uses it to reach a server inside a container, and cordons
 * to pass a request to another worker process.
 *
 * An http_proxy_upstream is one destination with a small pool of idle
 * keep-alive connections. Fresh connections come from a TCP address, a Unix
 * path, or a caller's open callback that returns an already-connected fd
 * (say, a socket made in a container's network namespace). A request that
 * fails on a reused connection before any response byte is retried once on
 * a fresh connection when its method is idempotent (and, for a streamed
 * body, before any of it was consumed: those bytes cannot be sent again).
 *
 * A request whose body streams (req->stream, see message.h) is forwarded as
 * the body arrives: with its Content-Length when the client sent one, else
 * chunked. While more than max_buffered body bytes wait for the upstream,
 * the client's body is paused. An upstream may answer before it has read
 * the whole body: the response is relayed, and neither connection is then
 * reused. A body that fails (client gone, over its limit: -EMSGSIZE gives
 * 413, bad framing 400) abandons the upstream request.
 *
 * Errors reach the client as 502 (refused, reset, garbage) or 504 (timeouts)
 * when nothing was sent yet; once the response has started, the client's
 * response is aborted (its connection closes, no final chunk). */
#ifndef ATOLL_HTTP_PROXY_H
#define ATOLL_HTTP_PROXY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/err.h"
#include "http/message.h"

typedef struct http_proxy_opts {
    uint64_t connect_timeout_ms;  /* fresh connection established within this. Default 5 s */
    uint64_t header_timeout_ms;   /* response header section, from the request sent (for a
                                     streamed body, from the last body bytes sent). Default 30 s */
    uint64_t idle_timeout_ms;     /* no upstream bytes for this long mid-response. Default 60 s */
    uint64_t pool_idle_ms;        /* idle pooled connection kept this long. Default 30 s */
    size_t pool_max;              /* idle connections kept; 0 disables reuse. Default 8 */
    size_t max_header_bytes;      /* response status line + headers; over it: 502. Default 32 KiB */
    size_t max_buffered;          /* response bytes queued for a slow client before the
                                     upstream is no longer read, and streamed request body
                                     bytes queued for the upstream before the client's body is
                                     paused. Default 1 MiB */
} http_proxy_opts;

void http_proxy_opts_defaults(http_proxy_opts *o);

/* What one forward adds to the request. The strings are borrowed for the
 * duration of the http_proxy_forward call (they are copied into the
 * request bytes at once). */
typedef struct http_proxy_req_opts {
    const char *client_addr;  /* appended to X-Forwarded-For; NULL: header untouched */
    const char *proto;        /* "http"/"https": sets X-Forwarded-Proto; NULL: untouched */
    bool forwarded_host;      /* sets X-Forwarded-Host to the request's Host */
    /* Called once when the forward is over (after w->end or abort), with 0
     * or the negative errno that failed it; may be NULL. Never called when
     * http_proxy_forward fails synchronously. */
    void (*done)(void *data, int status);
    void *data;
} http_proxy_req_opts;

typedef struct http_proxy_upstream http_proxy_upstream;

/* Makes a connected, blocking or non-blocking, stream socket; the proxy owns
 * it afterwards. Returns 0 or a negative errno. */
typedef int (*http_proxy_open_cb)(void *data, int *fd);

/* An upstream, owned by the caller and living on `loop`. ip is IPv4 or IPv6. */
int http_proxy_upstream_tcp(uv_loop_t *loop, const char *ip, int port, const http_proxy_opts *o,
                            http_proxy_upstream **out, err *e);
int http_proxy_upstream_unix(uv_loop_t *loop, const char *path, const http_proxy_opts *o,
                             http_proxy_upstream **out, err *e);
int http_proxy_upstream_open(uv_loop_t *loop, http_proxy_open_cb open, void *open_data,
                             const http_proxy_opts *o, http_proxy_upstream **out, err *e);
/* Like http_proxy_upstream_open, but the callback returns a socket that is
 * not connected yet (e.g. made in a container's network namespace) and the
 * proxy connects it to ip:port on the loop, bounded by connect_timeout_ms:
 * an upstream whose listen backlog is full never stalls the loop. */
int http_proxy_upstream_open_connect(uv_loop_t *loop, http_proxy_open_cb open, void *open_data,
                                     const char *ip, int port, const http_proxy_opts *o,
                                     http_proxy_upstream **out, err *e);
/* Closes the idle connections. Forwards in flight go on and free their
 * connections when they end; the upstream itself is freed after the last one. */
void http_proxy_upstream_free(http_proxy_upstream *u);

/* Connections opened so far, and idle ones in the pool now (for tests and
 * metrics). */
size_t http_proxy_upstream_opened(const http_proxy_upstream *u);
size_t http_proxy_upstream_idle(const http_proxy_upstream *u);

/* Forwards req and answers through w (start, write..., end or abort).
 * `req` and `w` must stay valid until w->end/abort is called, which is how
 * the HTTP server's handler contract works already. On a synchronous
 * failure (-EINVAL: a request the proxy cannot forward), nothing was
 * written to w and ro->done is not called; the caller answers. */
int http_proxy_forward(http_proxy_upstream *u, const http_request *req, http_writer *w,
                       const http_proxy_req_opts *ro, err *e);

/* Forwards over one connected stream that the caller owns, without pooling:
 * a uv_tcp_t or uv_pipe_t already connected on the upstream's loop. The
 * stream is read and written until ro->done, after which the caller closes
 * it (the proxy never reuses it, as its state may be mid-response). */
int http_proxy_forward_stream(uv_stream_t *stream, const http_proxy_opts *o,
                              const http_request *req, http_writer *w,
                              const http_proxy_req_opts *ro, err *e);

#endif
