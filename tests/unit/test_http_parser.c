/* Tests for src/http/parser.c: requests assembled from bytes, every limit
 * and error status, chunked bodies, pipelining, keep-alive rules, and the
 * same outcome whatever pieces the bytes arrive in. Also replays the fuzz
 * seed corpus (fuzz/corpus/http) through the fuzz target. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/buf.h"
#include "http/parser.h"

/* The fuzz target, without its main(): replayed below. */
#include "../../fuzz/fuzz_http_request.c"

#define MAXH 1024
#define MAXB 100

/* Feeds `in` in pieces of `step` bytes (0: whole, or split once at `at` when
 * step is negative) and returns a log of the events, one per line, which the
 * caller frees. */
static char *parse_log(const char *in, size_t len, long step, size_t at, size_t maxh, size_t maxb)
{
    buf log;
    buf_init(&log, BUF_UNLIMITED);
    http_parser *p = http_parser_new(maxh, maxb);
    size_t off = 0;
    while (off < len) {
        size_t end = len;
        if (step > 0)
            end = off + (size_t)step < len ? off + (size_t)step : len;
        else if (step < 0 && off < at)
            end = at;
        bool stop = false;
        while (!stop) {
            size_t used;
            http_parse_event ev = http_parser_feed(p, in + off, end - off, &used);
            assert_true(used <= end - off);
            off += used;
            switch (ev) {
            case HTTP_PARSE_MORE:
                assert_int_equal(off, end);
                stop = true;
                break;
            case HTTP_PARSE_HEADERS:
                buf_printf(&log, "headers %s\n", http_parser_request(p)->target);
                break;
            case HTTP_PARSE_REQUEST: {
                http_request r;
                http_parser_take(p, &r);
                buf_printf(&log, "%s %s %d.%d ka=%d", r.method, r.target, r.version_major,
                           r.version_minor, r.keep_alive);
                for (size_t i = 0; i < r.headers.count; i++)
                    buf_printf(&log, " [%s=%s]", r.headers.items[i].name, r.headers.items[i].value);
                buf_printf(&log, " body=%s\n", r.body.data ? r.body.data : "");
                http_request_free(&r);
                break;
            }
            case HTTP_PARSE_ERROR:
                buf_printf(&log, "error %d\n", http_parser_status(p));
                http_parser_free(p);
                return buf_steal(&log, NULL);
            case HTTP_PARSE_PAUSED:
                fail_msg("paused without a body sink");
                break;
            }
        }
    }
    http_parser_free(p);
    return buf_steal(&log, NULL);
}

static char *parse(const char *in)
{
    return parse_log(in, strlen(in), 0, 0, MAXH, MAXB);
}

#define EXPECT_PARSE(in, want)                  \
    do {                                        \
        char *got_ = parse(in);                 \
        assert_string_equal(got_, want);        \
        free(got_);                             \
    } while (0)

static void simple_get(void **state)
{
    EXPECT_PARSE("GET /a/b?q=1 HTTP/1.1\r\nHost: x\r\nX-Dup: 1\r\nx-dup:  2 \r\nEmpty:\r\n\r\n",
                 "GET /a/b?q=1 1.1 ka=1 [Host=x] [X-Dup=1] [x-dup=2] [Empty=] body=\n");
}

static void content_length_body(void **state)
{
    EXPECT_PARSE("POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
                 "headers /p\nPOST /p 1.1 ka=1 [Content-Length=5] body=hello\n");
    EXPECT_PARSE("POST /p HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                 "POST /p 1.1 ka=1 [Content-Length=0] body=\n");
}

static void chunked_body_with_extensions_and_trailers(void **state)
{
    EXPECT_PARSE("POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3;c=\"d e\"\r\nabc\r\nA;flag;x=y\r\n0123456789\r\n0;last=1\r\nX-Trailer: t\r\n\r\n",
                 "headers /c\nPOST /c 1.1 ka=1 [Transfer-Encoding=chunked] body=abc0123456789\n");
    EXPECT_PARSE("POST /c HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n",
                 "headers /c\nPOST /c 1.1 ka=1 [Transfer-Encoding=Chunked] body=\n");
    EXPECT_PARSE("POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "headers /c\nerror 400\n");
}

static void pipelined_requests_in_one_buffer(void **state)
{
    const char *in = "GET /1 HTTP/1.1\r\n\r\n"
                     "POST /2 HTTP/1.1\r\nContent-Length: 2\r\n\r\nok"
                     "\r\n" /* a stray CRLF between requests is allowed */
                     "GET /3 HTTP/1.1\r\n\r\n";
    EXPECT_PARSE(in, "GET /1 1.1 ka=1 body=\nheaders /2\nPOST /2 1.1 ka=1 [Content-Length=2] body=ok\n"
                     "GET /3 1.1 ka=1 body=\n");
    /* The parser stops at each request, so the caller can answer it first. */
    http_parser *p = http_parser_new(MAXH, MAXB);
    size_t used;
    assert_int_equal(http_parser_feed(p, in, strlen(in), &used), HTTP_PARSE_REQUEST);
    assert_int_equal(used, strlen("GET /1 HTTP/1.1\r\n\r\n"));
    assert_string_equal(http_parser_request(p)->target, "/1");
    assert_int_equal(http_parser_phase(p), HTTP_PHASE_IDLE);
    http_parser_free(p);
}

static void keep_alive_rules(void **state)
{
    EXPECT_PARSE("GET / HTTP/1.0\r\n\r\n", "GET / 1.0 ka=0 body=\n");
    EXPECT_PARSE("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                 "GET / 1.0 ka=1 [Connection=keep-alive] body=\n");
    EXPECT_PARSE("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", "GET / 1.1 ka=0 [Connection=close] body=\n");
    EXPECT_PARSE("GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
                 "GET / 1.1 ka=0 [Connection=Upgrade] [Upgrade=websocket] body=\n");
    /* Nothing after a request that ends the connection is parsed. */
    EXPECT_PARSE("GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.1\r\n\r\n", "GET /a 1.0 ka=0 body=\n");
    EXPECT_PARSE("GET /a HTTP/1.1\r\nConnection: close\r\n\r\nGARBAGE",
                 "GET /a 1.1 ka=0 [Connection=close] body=\n");
}

/* Builds a GET whose header section is exactly `size` bytes. */
static char *request_of_size(size_t size)
{
    const char *head = "GET / HTTP/1.1\r\nX: ", *tail = "\r\n\r\n";
    size_t fixed = strlen(head) + strlen(tail);
    assert_true(size > fixed);
    char *r = malloc(size + 1);
    strcpy(r, head);
    memset(r + strlen(head), 'v', size - fixed);
    strcpy(r + size - strlen(tail), tail);
    return r;
}

static void header_section_limit_is_exact(void **state)
{
    char *ok = request_of_size(MAXH), *big = request_of_size(MAXH + 1);
    char *got = parse(ok);
    assert_non_null(strstr(got, "GET / 1.1"));
    free(got);
    EXPECT_PARSE(big, "error 431\n");
    /* Byte by byte too. */
    got = parse_log(big, strlen(big), 1, 0, MAXH, MAXB);
    assert_string_equal(got, "error 431\n");
    free(got);
    free(ok);
    free(big);
    /* Many small fields count as much as one large one. */
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    buf_printf(&b, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 200; i++)
        buf_printf(&b, "X%d: y\r\n", i);
    buf_printf(&b, "\r\n");
    EXPECT_PARSE(b.data, "error 431\n");
    buf_free(&b);
    /* An endless request line is cut off too. */
    char line[4096];
    memset(line, 'a', sizeof line);
    memcpy(line, "GET /", 5);
    got = parse_log(line, sizeof line, 100, 0, MAXH, MAXB);
    assert_string_equal(got, "error 431\n");
    free(got);
}

static void body_limit(void **state)
{
    char req[512];
    char body[MAXB + 2];
    memset(body, 'b', sizeof body);
    body[MAXB] = 0;
    snprintf(req, sizeof req, "POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s", MAXB, body);
    char *got = parse(req);
    assert_non_null(strstr(got, "body=bbbb"));
    free(got);
    /* Over the limit by Content-Length: refused before the body, without a
     * headers event (so no 100 Continue). */
    EXPECT_PARSE("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", "error 413\n");
    EXPECT_PARSE("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", "error 400\n");
    /* Over the limit while receiving chunks. */
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    buf_printf(&b, "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 11; i++)
        buf_printf(&b, "a\r\n0123456789\r\n");
    buf_printf(&b, "0\r\n\r\n");
    EXPECT_PARSE(b.data, "headers /c\nerror 413\n");
    buf_free(&b);
}

static void transfer_encoding_rules(void **state)
{
    EXPECT_PARSE("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "error 501\n");
    EXPECT_PARSE("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "error 501\n");
    EXPECT_PARSE("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "error 501\n");
    EXPECT_PARSE("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
                 "error 501\n");
    EXPECT_PARSE("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                 "error 400\n");
    /* Both framings at once is how requests are smuggled. */
    EXPECT_PARSE("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", "error 400\n");
}

static void malformed_requests(void **state)
{
    EXPECT_PARSE("GARBAGE\r\n\r\n", "error 400\n");
    EXPECT_PARSE("GET / HTTP/1.1\r\nNo colon\r\n\r\n", "error 400\n");
    EXPECT_PARSE("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", "error 400\n");
    EXPECT_PARSE("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "error 400\n");
    EXPECT_PARSE("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", "error 400\n");
    EXPECT_PARSE("GET /a b HTTP/1.1\r\n\r\n", "error 400\n");
    EXPECT_PARSE("GET / HTTP/2.0\r\n\r\n", "error 505\n");
    EXPECT_PARSE("GET / HTTP/1.9\r\n\r\n", "error 505\n");
    const char nul[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
    char *got = parse_log(nul, sizeof nul - 1, 0, 0, MAXH, MAXB);
    assert_string_equal(got, "error 400\n");
    free(got);
    /* Errors are final: nothing more is consumed. */
    http_parser *p = http_parser_new(MAXH, MAXB);
    size_t used;
    assert_int_equal(http_parser_feed(p, "BAD\r\n\r\n", 7, &used), HTTP_PARSE_ERROR);
    assert_int_equal(http_parser_status(p), 400);
    assert_int_equal(http_parser_feed(p, "GET / HTTP/1.1\r\n\r\n", 18, &used), HTTP_PARSE_ERROR);
    assert_int_equal(used, 0);
    http_parser_free(p);
}

/* RFC 9112 3.2: one Host at most, a valid authority (else the URL a
 * worker sees would differ from what was routed: "Host: a/admin?" made
 * "http://a/admin?/public" of a request routed by "/public"); a target in
 * absolute-form is taken for its path, its authority for Host. */
static void host_rules_and_absolute_form(void **state)
{
    EXPECT_PARSE("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "error 400\n");
    EXPECT_PARSE("GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n", "error 400\n");
    EXPECT_PARSE("GET /public HTTP/1.1\r\nHost: a/admin?\r\n\r\n", "error 400\n");
    EXPECT_PARSE("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", "error 400\n");
    EXPECT_PARSE("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "error 400\n");
    EXPECT_PARSE("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", "GET / 1.1 ka=1 [Host=[::1]:8080] body=\n");
    EXPECT_PARSE("GET / HTTP/1.1\r\nHost: \r\n\r\n", "GET / 1.1 ka=1 [Host=] body=\n");
    EXPECT_PARSE("GET HTTP://h.test:81/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n",
                 "GET /p?q=1 1.1 ka=1 [Host=h.test:81] body=\n");
    EXPECT_PARSE("GET https://h.test?q HTTP/1.1\r\n\r\n", "GET /?q 1.1 ka=1 [Host=h.test] body=\n");
    EXPECT_PARSE("GET http:///p HTTP/1.1\r\nHost: a\r\n\r\n", "error 400\n");
    /* Without Host: a 400 for HTTP/1.1 when required (as servers do), never
     * for HTTP/1.0; an absolute-form target brings its own. */
    static const struct { const char *in; http_parse_event ev; } cases[] = {
        {"GET / HTTP/1.1\r\n\r\n", HTTP_PARSE_ERROR},
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_PARSE_REQUEST},
        {"GET / HTTP/1.0\r\n\r\n", HTTP_PARSE_REQUEST},
        {"GET http://h.test/ HTTP/1.1\r\n\r\n", HTTP_PARSE_REQUEST},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        http_parser *p = http_parser_new(MAXH, MAXB);
        http_parser_require_host(p, true);
        size_t used;
        http_parse_event ev = http_parser_feed(p, cases[k].in, strlen(cases[k].in), &used);
        if (ev != cases[k].ev)
            fail_msg("%s: event %d, expected %d", cases[k].in, ev, cases[k].ev);
        if (ev == HTTP_PARSE_ERROR)
            assert_int_equal(http_parser_status(p), 400);
        if (ev == HTTP_PARSE_REQUEST) {
            http_request r;
            http_parser_take(p, &r);
            http_request_free(&r);
        }
        http_parser_free(p);
    }
}

static void chunk_extensions_and_trailers_are_bounded(void **state)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    buf_printf(&b, "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;x=");
    for (int i = 0; i < MAXH + 10; i++)
        buf_append(&b, "v", 1);
    buf_printf(&b, "\r\na\r\n0\r\n\r\n");
    EXPECT_PARSE(b.data, "headers /c\nerror 400\n");
    buf_reset(&b);
    buf_printf(&b, "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: ");
    for (int i = 0; i < MAXH + 10; i++)
        buf_append(&b, "v", 1);
    buf_printf(&b, "\r\n\r\n");
    EXPECT_PARSE(b.data, "headers /c\nerror 400\n");
    buf_free(&b);
}

static void phases(void **state)
{
    http_parser *p = http_parser_new(MAXH, MAXB);
    size_t used;
    assert_int_equal(http_parser_phase(p), HTTP_PHASE_IDLE);
    assert_int_equal(http_parser_feed(p, "POST / HT", 9, &used), HTTP_PARSE_MORE);
    assert_int_equal(http_parser_phase(p), HTTP_PHASE_HEADERS);
    const char *rest = "TP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi";
    assert_int_equal(http_parser_feed(p, rest, strlen(rest), &used), HTTP_PARSE_HEADERS);
    assert_int_equal(http_parser_phase(p), HTTP_PHASE_BODY);
    assert_string_equal(http_headers_get(&http_parser_request(p)->headers, "expect"), "100-continue");
    assert_int_equal(used, strlen(rest) - 2);
    assert_int_equal(http_parser_feed(p, "", 0, &used), HTTP_PARSE_MORE);
    assert_int_equal(http_parser_feed(p, "hi", 2, &used), HTTP_PARSE_REQUEST);
    assert_int_equal(http_parser_phase(p), HTTP_PHASE_IDLE);
    http_request r;
    http_parser_take(p, &r);
    assert_string_equal(r.body.data, "hi");
    http_request_free(&r);
    http_parser_free(p);
}

/* Inputs whose outcome must not depend on how they are split. */
static const char *const split_inputs[] = {
    "GET /a HTTP/1.1\r\nHost: x\r\nEmpty:\r\nX: a\r\n b\r\n\r\n"
    "POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
    "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2;e=f\r\nxy\r\n0\r\nT: 1\r\n\r\n"
    "GET /d HTTP/1.0\r\n\r\nGET /never HTTP/1.1\r\n\r\n",
    "GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    "POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n",
    "GET / HTTP/1.1\r\n\r\nBAD REQUEST\r\n\r\n",
    "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    "40\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n"
    "40\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n0\r\n\r\n",
};

static void same_outcome_at_every_split(void **state)
{
    for (size_t k = 0; k < sizeof split_inputs / sizeof *split_inputs; k++) {
        const char *in = split_inputs[k];
        size_t len = strlen(in);
        char *whole = parse_log(in, len, 0, 0, MAXH, MAXB);
        assert_true(strlen(whole) > 0);
        for (size_t at = 1; at < len; at++) {
            char *got = parse_log(in, len, -1, at, MAXH, MAXB);
            if (strcmp(got, whole) != 0)
                fail_msg("input %zu split at %zu:\n%s\nwhole:\n%s", k, at, got, whole);
            free(got);
        }
        char *bytes = parse_log(in, len, 1, 0, MAXH, MAXB);
        assert_string_equal(bytes, whole);
        free(bytes);
        free(whole);
    }
    /* And the header limit at every split of a section one byte too large. */
    char *big = request_of_size(300);
    for (size_t at = 1; at < 300; at++) {
        char *got = parse_log(big, 300, -1, at, 299, MAXB);
        assert_string_equal(got, "error 431\n");
        free(got);
    }
    free(big);
}

static void fuzz_seed_corpus_replays(void **state)
{
    DIR *d = opendir("fuzz/corpus/http");
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, "fuzz/corpus/http/%s", de->d_name);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        buf b;
        buf_init(&b, BUF_UNLIMITED);
        char tmp[4096];
        size_t got;
        while ((got = fread(tmp, 1, sizeof tmp, f)) > 0)
            buf_append(&b, tmp, got);
        fclose(f);
        LLVMFuzzerTestOneInput((const uint8_t *)(b.data ? b.data : ""), b.len);
        buf_free(&b);
        n++;
    }
    closedir(d);
    assert_true(n >= 10);
}

/* A streamed body: the sink gets every body byte (framing removed) and may
 * stop the feed after any piece; the request after it is parsed as usual. */
typedef struct sink_state {
    buf got;
    int pieces;
    bool pause;
    size_t limit;
} sink_state;

static int test_sink(void *ctx, const char *data, size_t len)
{
    sink_state *st = ctx;
    if (st->got.len + len > st->limit)
        return HTTP_SINK_TOO_LARGE;
    buf_append(&st->got, data, len);
    st->pieces++;
    return st->pause ? HTTP_SINK_PAUSE : HTTP_SINK_OK;
}

/* Feeds `in` in steps of `step` bytes; returns "head|body|next-target" or
 * "error N". */
static char *stream_parse(const char *in, size_t step, bool pause, size_t limit, int *pauses)
{
    size_t len = strlen(in);
    http_parser *p = http_parser_new(4096, 16);
    sink_state st = {.pause = pause, .limit = limit};
    buf_init(&st.got, BUF_UNLIMITED);
    http_request head;
    http_request_init(&head);
    buf out;
    buf_init(&out, BUF_UNLIMITED);
    size_t off = 0;
    *pauses = 0;
    bool again = false; /* paused: feed again, even with nothing left */
    while (off < len || again) {
        again = false;
        size_t end = off + step < len ? off + step : len;
        size_t used;
        http_parse_event ev = http_parser_feed(p, in + off, end - off, &used);
        off += used;
        if (ev == HTTP_PARSE_HEADERS) {
            http_parser_stream_body(p, &head, test_sink, &st);
            buf_printf(&out, "%s %s|", head.method, head.target);
        } else if (ev == HTTP_PARSE_PAUSED) {
            (*pauses)++;
            again = true;
        } else if (ev == HTTP_PARSE_REQUEST) {
            http_request r;
            http_parser_take(p, &r);
            if (r.method) { /* the request after the streamed one */
                buf_printf(&out, "|%s %s ka=%d", r.method, r.target, r.keep_alive);
            } else {
                assert_int_equal(r.body.len, 0);
                buf_append(&out, st.got.data ? st.got.data : "", st.got.len);
            }
            http_request_free(&r);
        } else if (ev == HTTP_PARSE_ERROR) {
            buf_reset(&out);
            buf_printf(&out, "error %d", http_parser_status(p));
            break;
        }
    }
    http_request_free(&head);
    buf_free(&st.got);
    http_parser_free(p);
    return buf_steal(&out, NULL);
}

static void streamed_body_goes_to_the_sink(void **state)
{
    static const char chunked[] = "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n"
                                  "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
    static const char sized[] = "PUT /sized HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world"
                                "GET /next HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    static const char alone[] = "PUT /sized HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world";
    /* Over the parser's own limit (16): the sink decides. */
    static const char big[] = "POST /big HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "28\r\n0123456789012345678901234567890123456789\r\n0\r\n\r\n";
    for (size_t step = 1; step <= sizeof chunked; step += 7) {
        for (int pause = 0; pause < 2; pause++) {
            int pauses;
            char *r = stream_parse(chunked, step, pause, 1000, &pauses);
            assert_string_equal(r, "POST /up|hello world|GET /next ka=1");
            free(r);
            if (pause)
                assert_true(pauses >= 3); /* at least once per chunk */
            else
                assert_int_equal(pauses, 0);
            r = stream_parse(sized, step, pause, 1000, &pauses);
            assert_string_equal(r, "PUT /sized|hello world|GET /next ka=0");
            free(r);
            /* Paused at its last byte, with nothing after it: an empty feed ends it. */
            r = stream_parse(alone, step, pause, 1000, &pauses);
            assert_string_equal(r, "PUT /sized|hello world");
            free(r);
        }
    }
    int pauses;
    char *r = stream_parse(big, 1000, false, 1000, &pauses);
    assert_string_equal(r, "POST /big|0123456789012345678901234567890123456789");
    free(r);
    r = stream_parse(big, 7, false, 20, &pauses);
    assert_string_equal(r, "error 413");
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(simple_get),
        cmocka_unit_test(content_length_body),
        cmocka_unit_test(chunked_body_with_extensions_and_trailers),
        cmocka_unit_test(pipelined_requests_in_one_buffer),
        cmocka_unit_test(keep_alive_rules),
        cmocka_unit_test(header_section_limit_is_exact),
        cmocka_unit_test(body_limit),
        cmocka_unit_test(transfer_encoding_rules),
        cmocka_unit_test(malformed_requests),
        cmocka_unit_test(host_rules_and_absolute_form),
        cmocka_unit_test(chunk_extensions_and_trailers_are_bounded),
        cmocka_unit_test(phases),
        cmocka_unit_test(same_outcome_at_every_split),
        cmocka_unit_test(fuzz_seed_corpus_replays),
        cmocka_unit_test(streamed_body_goes_to_the_sink),
    };
    return cmocka_run_group_tests_name("http_parser", tests, NULL, NULL);
}
