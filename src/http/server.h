/* The HTTP/1.1 server: a libuv listener, connections parsed with llhttp,
 * keep-alive and pipelining (responses in request order), limits on header
 * and body size, timeouts for slow clients, and a graceful drain. Each
 * complete request is handed to one handler callback with a writer for the
 * response (see message.h). It knows no JavaScript. */
#ifndef ATOLL_HTTP_SERVER_H
#define ATOLL_HTTP_SERVER_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/err.h"
#include "http/message.h"

typedef struct http_server_config {
    size_t max_header_bytes;      /* request line + header section; over it: 431. Default 32 KiB */
    size_t max_body_bytes;        /* over it: 413. Default 100 MiB */
    uint64_t header_timeout_ms;   /* a request's header section must arrive within this. Default 10 s */
    uint64_t idle_timeout_ms;     /* keep-alive connection without a request. Default 60 s */
    uint64_t body_timeout_ms;     /* no body bytes for this long: close. Default 60 s */
    bool require_host;            /* HTTP/1.1 requests without Host: 400 (RFC 9112). Default true */
    /* Optional (NULL: every body is buffered). Called with the handler's
     * data when a request's header section is complete and a body follows.
     * Returning true hands the request to the handler at once, its body to
     * come through req->stream (see message.h) instead of req->body; the
     * handler may answer before it reads the body. *max_body (preset to
     * max_body_bytes) may be lowered for this request: a streamed body over
     * it fails with -EMSGSIZE. Lowered for a buffered body (returning false),
     * it refuses a Content-Length over it at once with 413. Expect: 100-continue is answered when the
     * body is started, not before. */
    bool (*stream_body)(void *data, const http_request *req, size_t *max_body);
} http_server_config;

void http_server_config_defaults(http_server_config *cfg);

/* Called once per complete request (or once its header section is complete,
 * for a streamed body), in request order per connection. `req`
 * and `w` stay valid until the handler calls w->end (which it must do
 * exactly once, possibly later from another loop callback). What the handler
 * writes before it returns goes out when it returns (a small response in one
 * write); what it writes later goes out at once. If the client has gone, the writer returns
 * -EPIPE (and still expects end). The next request of a connection is never
 * handed over from inside w->end, so a handler is not re-entered. */
typedef void (*http_handler_cb)(void *data, http_request *req, http_writer *w);

typedef struct http_server http_server;

/* The server is owned by the caller and lives on `loop`. Creating one sets
 * SIGPIPE to ignored if it was at its default, since a client leaving
 * mid-response would otherwise kill the process. */
int http_server_new(uv_loop_t *loop, const http_server_config *cfg, http_handler_cb handler,
                    void *data, http_server **out, err *e);
/* Binds and listens (SO_REUSEPORT, so several processes may share a port).
 * port 0 picks a free port; http_server_port tells which. */
int http_server_listen(http_server *s, const char *ip, int port, err *e);
int http_server_port(const http_server *s);
/* Checks, before processes are started to share ip:port, that nothing
 * listens there yet — neither another program nor another atoll, whose
 * SO_REUSEPORT listeners would otherwise silently split the traffic with
 * ours — and that this process may bind it. 0, or a negative errno with
 * the reason in e. Port 0 always passes. */
int http_server_probe_address(const char *ip, int port, err *e);
/* Listens on a Unix socket at `path` (replacing a stale one) with file
 * mode `mode`, for requests between atoll's own processes. */
int http_server_listen_unix(http_server *s, const char *path, int mode, err *e);
/* Stops accepting, closes idle connections, lets in-flight requests finish
 * (their connections close after the response), then calls done once. */
void http_server_drain(http_server *s, void (*done)(void *data), void *data);
/* Frees the server; only after drain's done callback (or if never listened). */
void http_server_free(http_server *s);

#endif
