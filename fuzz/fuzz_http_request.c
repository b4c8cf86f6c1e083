/* libFuzzer target for the HTTP request path: arbitrary bytes, split in
 * arbitrary pieces, go through the request parser and the request assembly
 * (src/http/parser.c over llhttp). Besides the sanitizers, it checks that the
 * outcome does not depend on how the bytes were split: the same input fed
 * whole and fed in pieces must give the same events, requests and errors.
 *
 * A third run streams each body through a sink (http_parser_stream_body, as
 * the server does for container tenants) that pauses the feed now and then:
 * it must see the same requests, bodies and errors as the buffered runs.
 *
 * Input layout: byte 0 picks the limits (bits 0-3) and whether HTTP/1.1
 * requests need a Host (bit 4), byte 1 seeds the split points, the rest is
 * what a client sent. Built with -DATOLL_FUZZ_REPLAY, the file has
 * its own main() that replays the files named on the command line (as crun's
 * fuzzers do), so a crash found by the fuzzer becomes a regression test. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "http/parser.h"

/* The streamed run's sink: collects the body under the body limit and
 * pauses the feed every few pieces. */
typedef struct fuzz_sink_state {
    buf body;
    size_t max_body;
    unsigned pieces;
} fuzz_sink_state;

static int fuzz_sink(void *ctx, const char *data, size_t len)
{
    fuzz_sink_state *st = ctx;
    if (len > st->max_body - st->body.len)
        return HTTP_SINK_TOO_LARGE;
    buf_append(&st->body, data, len);
    return ++st->pieces % 3 == 0 ? HTTP_SINK_PAUSE : HTTP_SINK_OK;
}

static void fuzz_log_request(buf *log, size_t off, const http_request *r, const char *body, size_t body_len)
{
    buf_printf(log, "@%zu request %s %s %d.%d ka=%d body=%zu:", off, r->method, r->target, r->version_major,
               r->version_minor, r->keep_alive, body_len);
    buf_append(log, body, body_len);
    for (size_t i = 0; i < r->headers.count; i++)
        buf_printf(log, "\n  %s: %s", r->headers.items[i].name, r->headers.items[i].value);
    buf_printf(log, "\n");
}

/* Feeds `data` in pieces (whole when seed is 0), bodies streamed to a sink
 * when `stream`, and writes what happened to `log`, one line per event. */
static void fuzz_run(const char *data, size_t len, size_t max_header, size_t max_body, bool require_host,
                     unsigned seed, bool stream, buf *log)
{
    http_parser *p = http_parser_new(max_header, max_body);
    http_parser_require_host(p, require_host);
    fuzz_sink_state st = {.max_body = max_body};
    buf_init(&st.body, BUF_UNLIMITED);
    http_request streamed;
    bool streaming = false;
    size_t off = 0;
    uint32_t rng = seed * 2654435761u + 1;
    while (off < len) {
        size_t piece = len - off;
        if (seed) {
            rng = rng * 1103515245u + 12345u;
            piece = 1 + (rng >> 16) % (piece < 64 ? piece : 64);
        }
        size_t end = off + piece;
        /* Feed this piece until it is consumed or an event asks to stop; a
         * pause may come on the piece's last byte, and then a zero-length
         * feed resumes the parser (the end of that body is still to come). */
        bool resume = false;
        while (off < end || resume) {
            resume = false;
            size_t used = 0;
            http_parse_event ev = http_parser_feed(p, data + off, end - off, &used);
            if (used > end - off)
                abort();
            off += used;
            if (ev == HTTP_PARSE_MORE) {
                if (off != end)
                    abort(); /* MORE means everything was consumed */
                break;
            }
            if (ev == HTTP_PARSE_PAUSED) {
                if (!streaming)
                    abort(); /* only a sink pauses */
                resume = true;
                continue;
            }
            /* Events happen at the same offset however the input was split. */
            if (ev == HTTP_PARSE_HEADERS) {
                http_request *r = http_parser_request(p);
                if (http_parser_phase(p) != HTTP_PHASE_BODY)
                    abort();
                buf_printf(log, "@%zu headers %s %s %zu\n", off, r->method, r->target,
                           r->headers.count);
                if (stream) {
                    buf_reset(&st.body);
                    http_parser_stream_body(p, &streamed, fuzz_sink, &st);
                    streaming = true;
                }
            } else if (ev == HTTP_PARSE_REQUEST && streaming) {
                if (http_parser_phase(p) != HTTP_PHASE_IDLE || streamed.body.len)
                    abort();
                fuzz_log_request(log, off, &streamed, st.body.data, st.body.len);
                http_request_free(&streamed);
                streaming = false;
            } else if (ev == HTTP_PARSE_REQUEST) {
                http_request r;
                http_parser_take(p, &r);
                if (!r.method || !r.target || r.body.len > max_body ||
                    http_parser_phase(p) != HTTP_PHASE_IDLE)
                    abort();
                fuzz_log_request(log, off, &r, r.body.data, r.body.len);
                http_request_free(&r);
            } else {
                int st = http_parser_status(p);
                if (st != 400 && st != 413 && st != 431 && st != 501 && st != 505)
                    abort();
                buf_printf(log, "error %d\n", st);
                /* Errors are final. */
                size_t again = 1;
                if (http_parser_feed(p, data, len, &again) != HTTP_PARSE_ERROR || again != 0)
                    abort();
                goto done;
            }
        }
    }
done:
    if (streaming)
        http_request_free(&streamed);
    buf_free(&st.body);
    http_parser_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t headers[4] = {64, 300, 4096, 32768};
    static const size_t bodies[4] = {0, 10, 1000, 1 << 20};
    if (size < 2)
        return 0;
    size_t max_header = headers[data[0] & 3], max_body = bodies[(data[0] >> 2) & 3];
    bool require_host = data[0] & 16;
    unsigned seed = data[1] ? data[1] : 1;
    const char *in = (const char *)data + 2;
    size_t len = size - 2;
    buf whole, split, streamed;
    buf_init(&whole, BUF_UNLIMITED);
    buf_init(&split, BUF_UNLIMITED);
    buf_init(&streamed, BUF_UNLIMITED);
    fuzz_run(in, len, max_header, max_body, require_host, 0, false, &whole);
    fuzz_run(in, len, max_header, max_body, require_host, seed, false, &split);
    fuzz_run(in, len, max_header, max_body, require_host, seed, true, &streamed);
    const buf *other[2] = {&split, &streamed};
    for (int k = 0; k < 2; k++)
        if (whole.len != other[k]->len || (whole.len && memcmp(whole.data, other[k]->data, whole.len) != 0)) {
            fprintf(stderr, "whole:\n%s\n%s:\n%s\n", whole.data ? whole.data : "", k ? "streamed" : "split",
                    other[k]->data ? other[k]->data : "");
            abort();
        }
    buf_free(&whole);
    buf_free(&split);
    buf_free(&streamed);
    return 0;
}

#ifdef ATOLL_FUZZ_REPLAY
/* Replays saved inputs: fuzz_http_request_replay FILE... */
int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 1;
        }
        buf b;
        buf_init(&b, BUF_UNLIMITED);
        char tmp[4096];
        size_t n;
        while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
            buf_append(&b, tmp, n);
        fclose(f);
        LLVMFuzzerTestOneInput((const uint8_t *)(b.data ? b.data : ""), b.len);
        buf_free(&b);
        printf("ok %s\n", argv[i]);
    }
    return 0;
}
#endif
