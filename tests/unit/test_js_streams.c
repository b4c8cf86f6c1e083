/* Unit tests for streams in the js tier: the Streams/Blob/FormData
 * semantics fixture run inside an isolate, and Responses whose body is a
 * ReadableStream sent through a recording http_writer chunk by chunk
 * (order, errors mid-way, limits while streaming, backpressure from the
 * writer, a client that goes away). Every test frees its isolate and runs
 * the loop dry, so leaked JS values trip QuickJS's assertions and leaked
 * memory LSan. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/alloc.h"
#include "core/log.h"
#include "js/isolate.h"

#define FIXTURES "tests/fixtures/workers/"

static uv_loop_t loop;

/* --- a writer that records each write, and can hold the body back --- */

typedef struct rec {
    http_writer w;
    int status, starts, ends, aborts;
    int64_t content_length;
    buf body;
    size_t writes;
    size_t taken;        /* bytes the "client" has taken; pending = body.len - taken */
    bool hold;           /* the client does not read */
    int fail_after;      /* writes after which write returns -EPIPE (0: never) */
} rec;

static int rec_start(http_writer *w, int status, const http_headers *h, int64_t content_length)
{
    rec *r = (rec *)w;
    r->starts++;
    r->status = status;
    r->content_length = content_length;
    return 0;
}

static int rec_write(http_writer *w, const void *data, size_t len)
{
    rec *r = (rec *)w;
    if (r->fail_after && (int)r->writes >= r->fail_after)
        return -EPIPE;
    r->writes++;
    return buf_append(&r->body, data, len);
}

static void rec_end(http_writer *w) { ((rec *)w)->ends++; }
static void rec_abort(http_writer *w) { ((rec *)w)->aborts++; }

static size_t rec_queued(http_writer *w)
{
    rec *r = (rec *)w;
    if (!r->hold)
        r->taken = r->body.len;
    return r->body.len - r->taken;
}

static void rec_init(rec *r)
{
    memset(r, 0, sizeof *r);
    r->w = (http_writer){ .start = rec_start, .write = rec_write, .end = rec_end, .abort = rec_abort,
                          .queued = rec_queued };
    buf_init(&r->body, BUF_UNLIMITED);
}

static const char *rec_body(rec *r) { return r->body.data ? r->body.data : ""; }

/* --- stderr capture --- */

static int saved_stderr = -1;
static char log_path[] = "/tmp/atoll-test-log-XXXXXX";

static void logs_begin(void)
{
    strcpy(log_path, "/tmp/atoll-test-log-XXXXXX");
    int fd = mkstemp(log_path);
    assert_true(fd >= 0);
    fflush(stderr);
    saved_stderr = dup(2);
    dup2(fd, 2);
    close(fd);
}

static char *logs_end(void)
{
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    saved_stderr = -1;
    FILE *f = fopen(log_path, "r");
    assert_non_null(f);
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&b, chunk, n);
    buf_append(&b, "", 0);
    fclose(f);
    unlink(log_path);
    size_t len;
    return buf_steal(&b, &len);
}

/* --- helpers --- */

static iso *load_opt(const char *fixture, const iso_options *opt)
{
    char *path = xasprintf(FIXTURES "%s", fixture);
    err e;
    err_clear(&e);
    iso *i = NULL;
    if (iso_new(&loop, path, opt, &i, &e) != 0)
        fail_msg("iso_new(%s): %s", path, e.msg);
    free(path);
    return i;
}

static iso *load(const char *fixture)
{
    iso_options opt;
    iso_options_defaults(&opt);
    return load_opt(fixture, &opt);
}

static void dispatch(iso *i, http_request *req, rec *r, const char *method, const char *target,
                     const char *body)
{
    http_request_init(req);
    req->method = xstrdup(method);
    req->target = xstrdup(target);
    http_headers_add_str(&req->headers, "Host", "example.test");
    if (body)
        buf_append_str(&req->body, body);
    iso_dispatch(i, req, &r->w);
}

static bool over(rec *r) { return r->ends || r->aborts; }

/* Runs the loop until the response is over (ended or aborted). */
static void run_until_over(rec *r)
{
    while (!over(r) && uv_run(&loop, UV_RUN_ONCE))
        ;
    assert_true(over(r));
    assert_int_equal(r->ends + r->aborts, 1);
}

static void on_stop(uv_timer_t *t) { uv_stop(t->loop); }

/* Runs the loop for about `ms` milliseconds. */
static void run_for(uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, on_stop, ms, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static void finish(iso *i)
{
    iso_free(i);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_false(uv_loop_alive(&loop));
}

/* --- tests --- */

static void semantics_fixture_passes(void **state)
{
    iso *i = load("streams_semantics.js");
    logs_begin();
    http_request req;
    rec r;
    rec_init(&r);
    dispatch(i, &req, &r, "POST", "/", "incoming");
    run_until_over(&r);
    char *logs = logs_end();
    if (r.status != 200 || strcmp(rec_body(&r), "ok") != 0)
        fail_msg("status %d: %s\nlog:\n%s", r.status, rec_body(&r), logs);
    assert_null(strstr(logs, "Unhandled"));
    free(logs);
    buf_free(&r.body);
    http_request_free(&req);
    finish(i);
}

static void stream_body_is_written_as_produced(void **state)
{
    iso *i = load("streams_response.js");
    http_request req;
    rec r;
    rec_init(&r);
    dispatch(i, &req, &r, "GET", "/chunks", NULL);
    /* The first chunk is written while the stream is still producing. */
    while (r.writes == 0 && uv_run(&loop, UV_RUN_ONCE))
        ;
    assert_int_equal(r.starts, 1);
    assert_int_equal(r.content_length, -1); /* streamed: chunked */
    assert_string_equal(rec_body(&r), "chunk0;");
    assert_int_equal(r.ends, 0);
    assert_int_equal(iso_inflight(i), 1); /* in flight until the stream is done */
    run_until_over(&r);
    assert_int_equal(r.ends, 1);
    assert_int_equal(r.writes, 3);
    assert_string_equal(rec_body(&r), "chunk0;chunk1;chunk2;");
    assert_int_equal(iso_inflight(i), 0);
    buf_free(&r.body);
    http_request_free(&req);

    /* A TransformStream's readable side as the body. */
    rec_init(&r);
    dispatch(i, &req, &r, "GET", "/pipe", NULL);
    run_until_over(&r);
    assert_int_equal(r.ends, 1);
    assert_string_equal(rec_body(&r), "ABC");
    buf_free(&r.body);
    http_request_free(&req);
    finish(i);
}

static void stream_error_aborts_the_response(void **state)
{
    iso *i = load("streams_response.js");
    logs_begin();
    http_request req;
    rec r;
    rec_init(&r);
    dispatch(i, &req, &r, "GET", "/error", NULL);
    run_until_over(&r);
    char *logs = logs_end();
    assert_int_equal(r.aborts, 1); /* cut off, never a complete-looking body */
    assert_int_equal(r.ends, 0);
    assert_string_equal(rec_body(&r), "first;");
    assert_non_null(strstr(logs, "the stream broke"));
    assert_null(strstr(logs, "Unhandled"));
    assert_false(iso_broken(i)); /* a tenant error, not a limit */
    assert_int_equal(iso_inflight(i), 0);
    free(logs);
    buf_free(&r.body);
    http_request_free(&req);

    /* Chunks that are not bytes fail the same way. */
    logs_begin();
    rec_init(&r);
    dispatch(i, &req, &r, "GET", "/strings", NULL);
    run_until_over(&r);
    logs = logs_end();
    assert_int_equal(r.aborts, 1);
    assert_non_null(strstr(logs, "must be a Uint8Array"));
    free(logs);
    buf_free(&r.body);
    http_request_free(&req);
    finish(i);
}

static void endless_stream_hits_the_wall_time_limit(void **state)
{
    iso_options opt;
    iso_options_defaults(&opt);
    opt.wall_ms = 100;
    iso *i = load_opt("streams_response.js", &opt);
    logs_begin();
    http_request req;
    rec r;
    rec_init(&r);
    dispatch(i, &req, &r, "GET", "/forever-timer", NULL);
    run_until_over(&r);
    char *logs = logs_end();
    assert_int_equal(r.aborts, 1);
    assert_true(r.writes > 3);
    assert_true(iso_broken(i));
    assert_non_null(strstr(logs, "wall time limit"));
    free(logs);
    buf_free(&r.body);
    http_request_free(&req);
    finish(i);
}

static void endless_stream_hits_the_cpu_limit(void **state)
{
    iso *i = load("streams_response.js");
    logs_begin();
    http_request req;
    rec r;
    rec_init(&r);
    dispatch(i, &req, &r, "GET", "/forever-cpu", NULL);
    run_until_over(&r);
    char *logs = logs_end();
    assert_int_equal(r.aborts, 1);
    assert_true(iso_broken(i));
    assert_non_null(strstr(logs, "CPU time limit"));
    free(logs);
    buf_free(&r.body);
    http_request_free(&req);
    finish(i);
}

static void producer_waits_for_a_slow_client(void **state)
{
    iso *i = load("streams_response.js");
    http_request req;
    rec r;
    rec_init(&r);
    r.hold = true; /* the client reads nothing */
    dispatch(i, &req, &r, "GET", "/big", NULL);
    run_for(60);
    /* A bounded amount is queued: the sink's high-water mark plus one chunk,
     * not the 4 MiB the stream would produce. */
    assert_true(r.body.len > 0);
    assert_true(r.body.len <= 256 * 1024 + 65536);
    assert_int_equal(over(&r), false);
    r.hold = false;
    run_until_over(&r);
    assert_int_equal(r.ends, 1);
    assert_int_equal(r.body.len, 64 * 65536);
    assert_false(iso_broken(i));
    buf_free(&r.body);
    http_request_free(&req);
    finish(i);
}

static void client_gone_cancels_the_stream(void **state)
{
    iso *i = load("streams_response.js");
    logs_begin();
    http_request req;
    rec r;
    rec_init(&r);
    r.fail_after = 2;
    dispatch(i, &req, &r, "GET", "/cancel", NULL);
    run_until_over(&r);
    char *logs = logs_end();
    assert_int_equal(r.aborts, 1);
    assert_int_equal(r.writes, 2);
    assert_non_null(strstr(logs, "cancelled by the client going away"));
    assert_int_equal(iso_inflight(i), 0);
    free(logs);
    buf_free(&r.body);
    http_request_free(&req);
    finish(i);
}

static void free_while_streaming_aborts(void **state)
{
    iso *i = load("streams_response.js");
    http_request req;
    rec r;
    rec_init(&r);
    dispatch(i, &req, &r, "GET", "/forever-timer", NULL);
    while (r.writes < 2 && uv_run(&loop, UV_RUN_ONCE))
        ;
    iso_free(i);
    assert_int_equal(r.aborts, 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_false(uv_loop_alive(&loop));
    buf_free(&r.body);
    http_request_free(&req);
}

static void free_while_waiting_for_the_client(void **state)
{
    iso *i = load("streams_response.js");
    http_request req;
    rec r;
    rec_init(&r);
    r.hold = true;
    dispatch(i, &req, &r, "GET", "/big", NULL);
    run_for(20); /* the sink is polling the writer now */
    assert_true(r.body.len > 0);
    assert_int_equal(over(&r), false);
    iso_free(i);
    assert_int_equal(r.aborts, 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_false(uv_loop_alive(&loop));
    buf_free(&r.body);
    http_request_free(&req);
}

static int setup(void **state)
{
    log_set_level(LOG_DEBUG);
    return uv_loop_init(&loop);
}

static int teardown(void **state)
{
    iso_cache_clear();
    return uv_loop_close(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(semantics_fixture_passes),
        cmocka_unit_test(stream_body_is_written_as_produced),
        cmocka_unit_test(stream_error_aborts_the_response),
        cmocka_unit_test(endless_stream_hits_the_wall_time_limit),
        cmocka_unit_test(endless_stream_hits_the_cpu_limit),
        cmocka_unit_test(producer_waits_for_a_slow_client),
        cmocka_unit_test(client_gone_cancels_the_stream),
        cmocka_unit_test(free_while_streaming_aborts),
        cmocka_unit_test(free_while_waiting_for_the_client),
    };
    return cmocka_run_group_tests_name("js_streams", tests, setup, teardown);
}
