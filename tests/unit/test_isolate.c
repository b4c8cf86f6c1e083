/* Unit tests for src/js: isolates driven through iso_dispatch with a
 * capturing http_writer on a real libuv loop, against the worker fixtures
 * in tests/fixtures/workers/. Every test ends by freeing the isolate and
 * running the loop until no handle is left, so leaks of JS values show up
 * as QuickJS assertions and leaks of memory as LSan reports. */
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

/* --- a writer that records the response --- */

typedef struct capture {
    http_writer w;
    int status;
    http_headers headers;
    int64_t content_length;
    buf body;
    int starts, ends;
} capture;

static int cap_start(http_writer *w, int status, const http_headers *h, int64_t content_length)
{
    capture *c = (capture *)w;
    c->starts++;
    c->status = status;
    c->content_length = content_length;
    for (size_t i = 0; i < h->count; i++)
        http_headers_add(&c->headers, h->items[i].name, h->items[i].name_len, h->items[i].value,
                         h->items[i].value_len);
    return 0;
}

static int cap_write(http_writer *w, const void *data, size_t len)
{
    return buf_append(&((capture *)w)->body, data, len);
}

static void cap_end(http_writer *w) { ((capture *)w)->ends++; }

static void cap_init(capture *c)
{
    memset(c, 0, sizeof *c);
    c->w = (http_writer){ .start = cap_start, .write = cap_write, .end = cap_end };
    http_headers_init(&c->headers);
    buf_init(&c->body, BUF_UNLIMITED);
}

static void cap_free(capture *c)
{
    http_headers_free(&c->headers);
    buf_free(&c->body);
}

static const char *cap_body(capture *c) { return c->body.data ? c->body.data : ""; }

/* --- stderr capture, to check what was logged --- */

static int saved_stderr = -1;
static char log_path[] = "/tmp/atoll-test-log-XXXXXX";

static void logs_begin(void)
{
    if (saved_stderr >= 0) { /* a failed test left stderr redirected */
        dup2(saved_stderr, 2);
        close(saved_stderr);
        unlink(log_path);
    }
    strcpy(log_path, "/tmp/atoll-test-log-XXXXXX");
    int fd = mkstemp(log_path);
    assert_true(fd >= 0);
    fflush(stderr);
    saved_stderr = dup(2);
    dup2(fd, 2);
    close(fd);
}

/* Restores stderr and returns what was logged (caller frees). */
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
    int rc = iso_new(&loop, path, opt, &i, &e);
    if (rc != 0)
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

/* Dispatches one request and runs the loop until its response ended.
 * `headers` is a NULL-terminated list of name, value pairs. */
static void request(iso *i, capture *c, const char *method, const char *target, const char *body,
                    ...)
{
    http_request req;
    http_request_init(&req);
    req.method = xstrdup(method);
    req.target = xstrdup(target);
    http_headers_add_str(&req.headers, "Host", "example.test");
    va_list ap;
    va_start(ap, body);
    for (const char *n; (n = va_arg(ap, const char *)) != NULL;)
        http_headers_add_str(&req.headers, n, va_arg(ap, const char *));
    va_end(ap);
    if (body)
        buf_append_str(&req.body, body);
    cap_init(c);
    iso_dispatch(i, &req, &c->w);
    while (c->ends == 0 && uv_run(&loop, UV_RUN_ONCE))
        ;
    assert_int_equal(c->ends, 1);
    assert_int_equal(c->starts, 1);
    http_request_free(&req);
}

/* Frees the isolate and checks that every libuv handle it had is closed. */
static void finish(iso *i)
{
    iso_free(i);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_false(uv_loop_alive(&loop));
}

static void expect_body(iso *i, const char *target, int status, const char *body)
{
    capture c;
    request(i, &c, "GET", target, NULL, NULL);
    assert_int_equal(c.status, status);
    assert_string_equal(cap_body(&c), body);
    cap_free(&c);
}

/* --- tests --- */

static void module_hello(void **state)
{
    iso *i = load("hello_module.js");
    capture c;
    request(i, &c, "GET", "/", NULL, NULL);
    assert_int_equal(c.status, 200);
    assert_string_equal(cap_body(&c), "hello module\n");
    assert_int_equal(c.content_length, 13);
    assert_string_equal(http_headers_get(&c.headers, "x-kind"), "module");
    assert_string_equal(http_headers_get(&c.headers, "content-type"), "text/plain;charset=UTF-8");
    assert_int_equal(iso_inflight(i), 0);
    cap_free(&c);
    finish(i);
}

static void service_worker_hello(void **state)
{
    iso *i = load("hello_sw.js");
    expect_body(i, "/path?q=1", 200, "hello sw GET http://example.test/path?q=1");
    finish(i);
}

static void async_handler_awaits_timer(void **state)
{
    iso *i = load("async_timeout.js");
    expect_body(i, "/", 200, "later true 1");
    finish(i);
}

static void relative_imports(void **state)
{
    iso *i = load("imports.js");
    expect_body(i, "/", 200, "hi atoll! 42!");
    finish(i);
}

static void request_is_visible_to_js(void **state)
{
    iso *i = load("echo.js");
    capture c;
    request(i, &c, "POST", "/submit?x=1", "payload \xc3\xa9", "User-Agent", "cmocka", "X-Multi",
            "a", "x-multi", "b", NULL);
    assert_int_equal(c.status, 201);
    assert_string_equal(http_headers_get(&c.headers, "x-echo"), "yes");
    assert_string_equal(http_headers_get(&c.headers, "content-type"), "application/json");
    assert_string_equal(cap_body(&c),
                        "{\"method\":\"POST\",\"url\":\"http://example.test/submit?x=1\","
                        "\"ua\":\"cmocka\",\"multi\":\"a, b\",\"body\":\"payload \xc3\xa9\","
                        "\"bodyUsed\":true}");
    cap_free(&c);
    finish(i);
}

static size_t count_headers(const http_headers *h, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < h->count; i++)
        n += strcasecmp(h->items[i].name, name) == 0;
    return n;
}

static void response_status_headers_body(void **state)
{
    iso *i = load("response_shape.js");
    capture c;
    request(i, &c, "GET", "/teapot", NULL, NULL);
    assert_int_equal(c.status, 418);
    assert_string_equal(cap_body(&c), "teapot");
    assert_int_equal(count_headers(&c.headers, "x-a"), 2);
    assert_int_equal(count_headers(&c.headers, "set-cookie"), 2);
    cap_free(&c);

    request(i, &c, "GET", "/bytes", NULL, NULL);
    assert_int_equal(c.status, 202);
    assert_int_equal(c.content_length, 4);
    assert_memory_equal(c.body.data, "hi\0!", 4);
    assert_null(http_headers_get(&c.headers, "content-type"));
    cap_free(&c);

    request(i, &c, "GET", "/buffer", NULL, NULL);
    assert_string_equal(cap_body(&c), "hi");
    cap_free(&c);

    request(i, &c, "GET", "/redirect", NULL, NULL);
    assert_int_equal(c.status, 301);
    assert_string_equal(http_headers_get(&c.headers, "location"), "https://example.com/next");
    assert_int_equal(c.content_length, 0);
    cap_free(&c);

    request(i, &c, "GET", "/empty", NULL, NULL);
    assert_int_equal(c.status, 204);
    assert_int_equal(c.body.len, 0);
    cap_free(&c);
    finish(i);
}

static void headers_request_response_semantics(void **state)
{
    iso *i = load("headers_semantics.js");
    logs_begin();
    capture c;
    request(i, &c, "GET", "/", NULL, NULL);
    char *logs = logs_end();
    if (c.status != 200)
        fail_msg("status %d; log:\n%s", c.status, logs);
    assert_string_equal(cap_body(&c), "ok");
    free(logs);
    cap_free(&c);
    finish(i);
}

static void throw_gives_500_and_keeps_serving(void **state)
{
    iso *i = load("throws.js");
    logs_begin();
    capture c;
    request(i, &c, "GET", "/throw", NULL, NULL);
    char *logs = logs_end();
    assert_int_equal(c.status, 500);
    assert_non_null(strstr(cap_body(&c), "threw an exception"));
    assert_non_null(strstr(logs, "boom from the handler"));
    assert_non_null(strstr(logs, "throws.js:4")); /* the stack names file:line */
    assert_non_null(strstr(logs, "[throws.js]"));
    free(logs);
    cap_free(&c);
    assert_false(iso_broken(i));
    expect_body(i, "/", 200, "still serving");
    finish(i);
}

static void rejected_promise_gives_500(void **state)
{
    iso *i = load("throws.js");
    logs_begin();
    capture c;
    request(i, &c, "GET", "/reject", NULL, NULL);
    char *logs = logs_end();
    assert_int_equal(c.status, 500);
    assert_non_null(strstr(logs, "TypeError: rejected on purpose"));
    assert_null(strstr(logs, "Unhandled promise rejection"));
    free(logs);
    cap_free(&c);
    expect_body(i, "/", 200, "still serving");
    finish(i);
}

static void non_response_gives_500(void **state)
{
    iso *i = load("throws.js");
    logs_begin();
    capture c;
    request(i, &c, "GET", "/bad", NULL, NULL);
    char *logs = logs_end();
    assert_int_equal(c.status, 500);
    assert_non_null(strstr(cap_body(&c), "did not return a Response"));
    assert_non_null(strstr(logs, "not: 'a response'"));
    free(logs);
    cap_free(&c);
    finish(i);
}

static void sync_throw_gives_500(void **state)
{
    iso *i = load("sync_throw.js");
    logs_begin();
    capture c;
    request(i, &c, "GET", "/throw", NULL, NULL);
    char *logs = logs_end();
    assert_int_equal(c.status, 500);
    assert_non_null(strstr(logs, "RangeError: sync boom"));
    assert_non_null(strstr(logs, "sync_throw.js:4"));
    free(logs);
    cap_free(&c);
    expect_body(i, "/", 200, "fine");
    finish(i);
}

static void infinite_loop_hits_cpu_limit(void **state)
{
    iso_options opt;
    iso_options_defaults(&opt);
    opt.cpu_ms = 20;
    iso *i = load_opt("infinite_loop.js", &opt);
    logs_begin();
    capture c;
    request(i, &c, "GET", "/", NULL, NULL);
    char *logs = logs_end();
    assert_int_equal(c.status, 503);
    assert_non_null(strstr(cap_body(&c), "CPU time limit"));
    assert_non_null(strstr(logs, "exceeded its CPU time limit"));
    assert_true(iso_broken(i));
    free(logs);
    cap_free(&c);
    /* A broken isolate answers 503 at once; its owner discards it. */
    request(i, &c, "GET", "/", NULL, NULL);
    assert_int_equal(c.status, 503);
    cap_free(&c);
    finish(i);
}

static void runaway_allocation_hits_memory_limit(void **state)
{
    iso_options opt;
    iso_options_defaults(&opt);
    opt.memory_limit = 16u << 20;
    iso *i = load_opt("memory_bomb.js", &opt);
    logs_begin();
    capture c;
    request(i, &c, "GET", "/", NULL, NULL);
    char *logs = logs_end();
    assert_int_equal(c.status, 503);
    assert_non_null(strstr(cap_body(&c), "memory limit"));
    assert_true(iso_broken(i));
    assert_true(iso_heap_bytes(i) <= opt.memory_limit);
    free(logs);
    cap_free(&c);
    finish(i);
}

static void deep_recursion_is_a_clean_error(void **state)
{
    iso *i = load("deep_recursion.js");
    logs_begin();
    capture c;
    request(i, &c, "GET", "/", NULL, NULL);
    char *logs = logs_end();
    assert_int_equal(c.status, 500);
    assert_non_null(strstr(logs, "InternalError: stack overflow"));
    assert_non_null(strstr(logs, "more"));
    free(logs);
    cap_free(&c);
    expect_body(i, "/caught", 200, "caught InternalError");
    assert_false(iso_broken(i));
    finish(i);
}

static void expect_load_error(const char *fixture, const char *want1, const char *want2)
{
    char *path = xasprintf(FIXTURES "%s", fixture);
    iso_options opt;
    iso_options_defaults(&opt);
    err e;
    err_clear(&e);
    iso *i = NULL;
    int rc = iso_new(&loop, path, &opt, &i, &e);
    assert_true(rc < 0);
    assert_null(i);
    if (!strstr(e.msg, want1) || (want2 && !strstr(e.msg, want2)))
        fail_msg("%s: error message lacks '%s'/'%s': %s", fixture, want1, want2 ? want2 : "", e.msg);
    free(path);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_false(uv_loop_alive(&loop));
}

static void load_errors_name_file_and_line(void **state)
{
    expect_load_error("bad_syntax.js", "SyntaxError", "bad_syntax.js:3");
    expect_load_error("missing_import.js", "does_not_exist.js", "missing_import.js:2");
    expect_load_error("no_handler.js", "no_handler.js:1", "fetch");
    expect_load_error("top_level_throw.js", "thrown at top level 1", "top_level_throw.js:3");
    expect_load_error("sw_no_listener.js", "sw_no_listener.js:1", "\"fetch\" event listener");
    expect_load_error("no_such_file.js", "No such file", NULL);
}

static void wait_until_runs_after_response(void **state)
{
    iso *i = load("wait_until.js");
    logs_begin();
    capture c;
    request(i, &c, "GET", "/", NULL, NULL);
    assert_string_equal(cap_body(&c), "responded");
    cap_free(&c);
    assert_int_equal(iso_inflight(i), 0);
    assert_int_equal(iso_waituntil_pending(i), 1); /* the timer; the rejection settled already */
    while (iso_waituntil_pending(i) && uv_run(&loop, UV_RUN_ONCE))
        ;
    char *logs = logs_end();
    assert_int_equal(iso_waituntil_pending(i), 0);
    assert_non_null(strstr(logs, "background failure"));
    free(logs);
    expect_body(i, "/log", 200, "respond,after");
    finish(i);
}

static void second_isolate_uses_cached_bytecode(void **state)
{
    iso_cache_clear();
    iso *a = load("imports.js");
    iso_cache_info first;
    iso_cache_stats(&first);
    assert_int_equal(first.entries, 4); /* the worker and its three modules */
    assert_int_equal(first.misses, 4);
    assert_int_equal(first.hits, 0);
    iso *b = load("imports.js");
    iso_cache_info second;
    iso_cache_stats(&second);
    assert_int_equal(second.misses, 4);
    assert_int_equal(second.hits, 4);
    expect_body(a, "/", 200, "hi atoll! 42!");
    expect_body(b, "/", 200, "hi atoll! 42!");
    finish(a);
    finish(b);
}

static void changed_file_is_recompiled(void **state)
{
    char dir[] = "/tmp/atoll-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/worker.js", dir);
    FILE *f = fopen(path, "w");
    fputs("export default { fetch() { return new Response('v1'); } };\n", f);
    fclose(f);
    iso_options opt;
    iso_options_defaults(&opt);
    err e;
    iso *i;
    assert_int_equal(iso_new(&loop, path, &opt, &i, &e), 0);
    expect_body(i, "/", 200, "v1");
    finish(i);
    f = fopen(path, "w");
    fputs("export default { fetch() { return new Response('version 2'); } };\n", f);
    fclose(f);
    assert_int_equal(iso_new(&loop, path, &opt, &i, &e), 0);
    expect_body(i, "/", 200, "version 2");
    finish(i);
    unlink(path);
    rmdir(dir);
    free(path);
}

static void free_with_request_in_flight_answers_503(void **state)
{
    iso *i = load("never_answers.js");
    http_request req;
    http_request_init(&req);
    req.method = xstrdup("GET");
    req.target = xstrdup("/");
    capture c;
    cap_init(&c);
    iso_dispatch(i, &req, &c.w);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(c.ends, 0);
    assert_int_equal(iso_inflight(i), 1);
    finish(i);
    assert_int_equal(c.ends, 1);
    assert_int_equal(c.status, 503);
    cap_free(&c);
    http_request_free(&req);
}

static void wall_time_limit(void **state)
{
    iso_options opt;
    iso_options_defaults(&opt);
    opt.wall_ms = 30;
    iso *i = load_opt("never_answers.js", &opt);
    logs_begin();
    capture c;
    request(i, &c, "GET", "/", NULL, NULL);
    char *logs = logs_end();
    assert_int_equal(c.status, 503);
    assert_non_null(strstr(cap_body(&c), "wall time limit"));
    assert_true(iso_broken(i));
    free(logs);
    cap_free(&c);
    finish(i);
}

static void console_and_timers(void **state)
{
    iso *i = load("console_timers.js");
    logs_begin();
    capture c;
    request(i, &c, "GET", "/", NULL, NULL);
    char *logs = logs_end();
    assert_string_equal(cap_body(&c), "n=3 function function");
    if (!strstr(logs, "[console_timers.js] plain 1 { a: [ 1, 'two' ], b: { c: null } } Headers { 'x': 'y' }"))
        fail_msg("console line not as expected:\n%s", logs);
    assert_non_null(strstr(logs, "warn  [console_timers.js] warned"));
    assert_non_null(strstr(logs, "Error: logged error"));
    assert_non_null(strstr(logs, "console_timers.js:6"));
    free(logs);
    cap_free(&c);
    finish(i);
}

static void global_scope(void **state)
{
    iso *i = load("globals.js");
    expect_body(i, "/", 200,
                "undefined undefined a 1 function function function 1970-01-01T00:00:00.000Z 2 4 "
                "replaced function function true 5");
    finish(i);
}

static void cpu_limit_applies_while_loading(void **state)
{
    char *path = xasprintf(FIXTURES "top_level_loop.js");
    iso_options opt;
    iso_options_defaults(&opt);
    opt.cpu_ms = 20;
    err e;
    err_clear(&e);
    iso *i = NULL;
    logs_begin();
    int rc = iso_new(&loop, path, &opt, &i, &e);
    free(logs_end());
    assert_true(rc < 0);
    assert_non_null(strstr(e.msg, "CPU time limit"));
    free(path);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_false(uv_loop_alive(&loop));
}

static void unhandled_rejection_is_logged(void **state)
{
    iso *i = load("unhandled.js");
    logs_begin();
    capture c;
    request(i, &c, "GET", "/", NULL, NULL);
    char *logs = logs_end();
    assert_string_equal(cap_body(&c), "answered");
    assert_non_null(strstr(logs, "Unhandled promise rejection: Error: nobody handles this"));
    assert_null(strstr(logs, "handled later"));
    free(logs);
    cap_free(&c);
    finish(i);
}

/* CPU time is counted per request across awaits, not per slice. */
static void cpu_budget_is_per_request(void **state)
{
    iso_options opt;
    iso_options_defaults(&opt);
    opt.cpu_ms = 50;
    iso *i = load_opt("cpu_chunks.js", &opt);
    expect_body(i, "/3", 200, "done 3"); /* 15 ms: within budget */
    logs_begin();
    capture c;
    request(i, &c, "GET", "/100", NULL, NULL); /* 500 ms in 5 ms slices */
    free(logs_end());
    assert_int_equal(c.status, 503);
    assert_non_null(strstr(cap_body(&c), "CPU time limit"));
    assert_true(iso_broken(i));
    cap_free(&c);
    finish(i);
}

/* Two requests in flight in one isolate at once, answered independently. */
static void concurrent_requests(void **state)
{
    iso *i = load("async_timeout.js");
    http_request req[2];
    capture c[2];
    for (int k = 0; k < 2; k++) {
        http_request_init(&req[k]);
        req[k].method = xstrdup("GET");
        req[k].target = xstrdup("/");
        cap_init(&c[k]);
        iso_dispatch(i, &req[k], &c[k].w);
    }
    assert_int_equal(iso_inflight(i), 2);
    while ((c[0].ends == 0 || c[1].ends == 0) && uv_run(&loop, UV_RUN_ONCE))
        ;
    for (int k = 0; k < 2; k++) {
        assert_int_equal(c[k].ends, 1);
        assert_string_equal(cap_body(&c[k]), "later true 1");
        cap_free(&c[k]);
        http_request_free(&req[k]);
    }
    assert_int_equal(iso_inflight(i), 0);
    finish(i);
}

static void service_worker_async(void **state)
{
    iso *i = load("sw_async.js");
    logs_begin();
    capture c;
    request(i, &c, "GET", "/", NULL, NULL);
    assert_string_equal(cap_body(&c), "sw async 0 fetch");
    cap_free(&c);
    while (iso_waituntil_pending(i) && uv_run(&loop, UV_RUN_ONCE))
        ;
    request(i, &c, "GET", "/", NULL, NULL);
    assert_string_equal(cap_body(&c), "sw async 1 fetch");
    cap_free(&c);
    request(i, &c, "GET", "/none", NULL, NULL);
    char *logs = logs_end();
    assert_int_equal(c.status, 500);
    assert_non_null(strstr(cap_body(&c), "did not respond"));
    assert_non_null(strstr(logs, "second respondWith: TypeError"));
    assert_non_null(strstr(logs, "no fetch listener called respondWith()"));
    free(logs);
    cap_free(&c);
    finish(i);
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
        cmocka_unit_test(module_hello),
        cmocka_unit_test(service_worker_hello),
        cmocka_unit_test(async_handler_awaits_timer),
        cmocka_unit_test(relative_imports),
        cmocka_unit_test(request_is_visible_to_js),
        cmocka_unit_test(response_status_headers_body),
        cmocka_unit_test(headers_request_response_semantics),
        cmocka_unit_test(throw_gives_500_and_keeps_serving),
        cmocka_unit_test(rejected_promise_gives_500),
        cmocka_unit_test(non_response_gives_500),
        cmocka_unit_test(sync_throw_gives_500),
        cmocka_unit_test(infinite_loop_hits_cpu_limit),
        cmocka_unit_test(runaway_allocation_hits_memory_limit),
        cmocka_unit_test(deep_recursion_is_a_clean_error),
        cmocka_unit_test(load_errors_name_file_and_line),
        cmocka_unit_test(wait_until_runs_after_response),
        cmocka_unit_test(second_isolate_uses_cached_bytecode),
        cmocka_unit_test(changed_file_is_recompiled),
        cmocka_unit_test(free_with_request_in_flight_answers_503),
        cmocka_unit_test(wall_time_limit),
        cmocka_unit_test(console_and_timers),
        cmocka_unit_test(global_scope),
        cmocka_unit_test(cpu_limit_applies_while_loading),
        cmocka_unit_test(unhandled_rejection_is_logged),
        cmocka_unit_test(cpu_budget_is_per_request),
        cmocka_unit_test(concurrent_requests),
        cmocka_unit_test(service_worker_async),
    };
    return cmocka_run_group_tests_name("isolate", tests, setup, teardown);
}
