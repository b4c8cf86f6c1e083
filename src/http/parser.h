/* The HTTP/1.1 request parser: assembles http_requests from bytes over
 * llhttp, with limits on the header section and the body. It knows no
 * sockets, so the server, the unit tests and the fuzzer drive the same code:
 * feed it bytes in any pieces, and it stops at each event (header section
 * complete, request complete, error) and says how much it consumed. */
#ifndef ATOLL_HTTP_PARSER_H
#define ATOLL_HTTP_PARSER_H
#include <stdbool.h>
#include <stddef.h>

#include "http/message.h"

typedef struct http_parser http_parser;

typedef enum http_parse_event {
    HTTP_PARSE_MORE,     /* every byte given was consumed; feed more */
    HTTP_PARSE_HEADERS,  /* the header section of a request with a body is complete and
                            within limits: http_parser_request() has method, target and
                            headers (the moment to answer Expect: 100-continue) */
    HTTP_PARSE_REQUEST,  /* a request is complete: take it with http_parser_take() */
    HTTP_PARSE_ERROR,    /* bad input: answer http_parser_status() and close the connection */
    HTTP_PARSE_PAUSED,   /* a streamed body's sink asked to stop: feed the rest (from *used
                            on) later */
} http_parse_event;

typedef enum http_parse_phase {
    HTTP_PHASE_IDLE,     /* between requests (nothing of the next one seen yet) */
    HTTP_PHASE_HEADERS,  /* inside a request line or header section */
    HTTP_PHASE_BODY,     /* header section complete, body not yet */
} http_parse_phase;

/* The parser owns the request it is assembling until it is taken. */
http_parser *http_parser_new(size_t max_header_bytes, size_t max_body_bytes);
void http_parser_free(http_parser *p);
/* RFC 9112 3.2: refuse (400) an HTTP/1.1 request without a Host header.
 * Off by default, so that a test can feed the shortest requests; servers
 * turn it on. */
void http_parser_require_host(http_parser *p, bool on);

/* Consumes bytes until the next event; *used says how many (the rest must be
 * fed again, after handling the event). A zero-length feed is valid. After a
 * request that ends the connection (keep_alive false: Connection: close,
 * HTTP/1.0 without keep-alive, an Upgrade or CONNECT), further input is
 * consumed and ignored. After HTTP_PARSE_ERROR, nothing more is consumed. */
http_parse_event http_parser_feed(http_parser *p, const char *data, size_t len, size_t *used);

/* The request being assembled (after HTTP_PARSE_HEADERS) or just completed
 * (after HTTP_PARSE_REQUEST). Borrowed from the parser. */
http_request *http_parser_request(http_parser *p);
/* After HTTP_PARSE_REQUEST: moves the request into *out (the caller frees it
 * with http_request_free). */
void http_parser_take(http_parser *p, http_request *out);

/* What a body sink returns: go on, stop the feed here (HTTP_PARSE_PAUSED;
 * the bytes after this piece are fed again later), or fail the request as
 * too large (HTTP_PARSE_ERROR, status 413). */
enum { HTTP_SINK_OK = 0, HTTP_SINK_PAUSE = 1, HTTP_SINK_TOO_LARGE = -1 };
typedef int (*http_parser_sink)(void *ctx, const char *data, size_t len);

/* After HTTP_PARSE_HEADERS: this request's body goes to `sink` piece by
 * piece as it is parsed (chunked framing removed), instead of being
 * collected, so the caller can hand the request on before its body has
 * arrived. The request (method, target, headers; an empty body) moves into
 * *out at once. The end of the body is still HTTP_PARSE_REQUEST, with nothing
 * to take. The parser's own body limit does not apply: the sink counts. */
void http_parser_stream_body(http_parser *p, http_request *out, http_parser_sink sink, void *ctx);

http_parse_phase http_parser_phase(const http_parser *p);
/* After HTTP_PARSE_ERROR: the status to answer (400, 413, 431, 501, 505) and
 * a short reason for logs. */
int http_parser_status(const http_parser *p);
const char *http_parser_reason(const http_parser *p);

#endif
