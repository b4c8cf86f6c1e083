/* Test support: an http_writer that records what a tier answered — the
 * status, the body, and how many times end was called — for unit tests
 * that drive an isolate without a socket. Header-only (static inline), as
 * tests/support/redis_server.h, so each test binary takes what it uses. */
#ifndef ATOLL_TESTS_CAPTURE_H
#define ATOLL_TESTS_CAPTURE_H
#include <stdint.h>
#include <string.h>

#include "core/buf.h"
#include "http/message.h"

typedef struct capture {
    http_writer w;   /* first: the writer is the capture */
    int status;
    buf body;
    int ends;
} capture;

static inline int capture_start(http_writer *w, int status, const http_headers *h, int64_t content_length)
{
    ((capture *)w)->status = status;
    return 0;
}

static inline int capture_write(http_writer *w, const void *data, size_t len)
{
    return buf_append(&((capture *)w)->body, data, len);
}

static inline void capture_end(http_writer *w)
{
    ((capture *)w)->ends++;
}

/* An empty capture; the caller frees c->body. */
static inline void capture_init(capture *c)
{
    memset(c, 0, sizeof *c);
    c->w = (http_writer){.start = capture_start, .write = capture_write, .end = capture_end};
    buf_init(&c->body, BUF_UNLIMITED);
}

#endif
