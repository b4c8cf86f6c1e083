/* libFuzzer target for the HTTP request path: arbitrary bytes, split in
 * arbitrary pieces, go through the request parser and the request assembly
 * (src/http/parser.c over llhttp). Besides the sanitizers, it checks that the
 * outcome does not depend on how the bytes were split: the same input fed
 * whole and fed in pieces must give the same events, requests and errors.
 *
 * Input layout: byte 0 picks the limits, byte 1 seeds the split points, the
 * rest is what a client sent. Built with -DATOLL_FUZZ_REPLAY, the file has
 * its own main() that replays the files named on the command line (as crun's
 * fuzzers do), so a crash found by the fuzzer becomes a regression test. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "http/parser.h"

/* Feeds `data` in pieces (whole when seed is 0) and writes what happened to
 * `log`, one line per event. */
static void fuzz_run(const char *data, size_t len, size_t max_header, size_t max_body,
                     unsigned seed, buf *log)
{
    http_parser *p = http_parser_new(max_header, max_body);
    size_t off = 0;
    uint32_t rng = seed * 2654435761u + 1;
    while (off < len) {
        size_t piece = len - off;
        if (seed) {
            rng = rng * 1103515245u + 12345u;
            piece = 1 + (rng >> 16) % (piece < 64 ? piece : 64);
        }
        size_t end = off + piece;
        /* Feed this piece until it is consumed or an event asks to stop. */
        while (off < end) {
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
            /* Events happen at the same offset however the input was split. */
            if (ev == HTTP_PARSE_HEADERS) {
                http_request *r = http_parser_request(p);
                if (http_parser_phase(p) != HTTP_PHASE_BODY)
                    abort();
                buf_printf(log, "@%zu headers %s %s %zu\n", off, r->method, r->target,
                           r->headers.count);
            } else if (ev == HTTP_PARSE_REQUEST) {
                http_request r;
                http_parser_take(p, &r);
                if (!r.method || !r.target || r.body.len > max_body ||
                    http_parser_phase(p) != HTTP_PHASE_IDLE)
                    abort();
                buf_printf(log, "@%zu request %s %s %d.%d ka=%d body=%zu:", off, r.method, r.target,
                           r.version_major, r.version_minor, r.keep_alive, r.body.len);
                buf_append(log, r.body.data, r.body.len);
                for (size_t i = 0; i < r.headers.count; i++)
                    buf_printf(log, "\n  %s: %s", r.headers.items[i].name, r.headers.items[i].value);
                buf_printf(log, "\n");
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
    unsigned seed = data[1] ? data[1] : 1;
    const char *in = (const char *)data + 2;
    size_t len = size - 2;
    buf whole, split;
    buf_init(&whole, BUF_UNLIMITED);
    buf_init(&split, BUF_UNLIMITED);
    fuzz_run(in, len, max_header, max_body, 0, &whole);
    fuzz_run(in, len, max_header, max_body, seed, &split);
    if (whole.len != split.len || (whole.len && memcmp(whole.data, split.data, whole.len) != 0)) {
        fprintf(stderr, "whole:\n%s\nsplit:\n%s\n", whole.data ? whole.data : "",
                split.data ? split.data : "");
        abort();
    }
    buf_free(&whole);
    buf_free(&split);
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
