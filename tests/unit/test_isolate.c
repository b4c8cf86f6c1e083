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
#include "core/clock.h"
#include "core/log.h"
#include "js/binding.h"
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
    uint64_t cpu_at_end;   /* iso_request_cpu_ns from w->end, when cpu_probe is set */
} capture;

static iso *cpu_probe;

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

static void cap_end(http_writer *w)
{
    capture *c = (capture *)w;
    c->ends++;
    if (cpu_probe)
        c->cpu_at_end = iso_request_cpu_ns(cpu_probe, w);
}

static void cap_init(capture *c)
{
    memset(c, 0, sizeof *c);
    c->w = (http_writer){.start = cap_start, .write = cap_write, .end = cap_end};
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
    assert_string_equal(iso_limit(i), "cpu");
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
    assert_int_equal(c.status, 507);
    assert_non_null(strstr(cap_body(&c), "memory limit"));
    assert_string_equal(iso_limit(i), "memory");
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

/* A tenant's modules come from its main module's directory tree: an import
 * by ../, by absolute path or through a symlink pointing out read any file
 * the process could (another tenant's code, say). */
static void imports_stay_in_the_worker_directory(void **state)
{
    expect_load_error("confined/static_escape.js", "outside the worker's directory", "static_escape.js:3");
    err e;
    err_clear(&e);
    assert_true(iso_check_script(FIXTURES "confined/static_escape.js", &e) < 0);
    if (!strstr(e.msg, "outside the worker's directory"))
        fail_msg("%s", e.msg);
    const char *link = FIXTURES "confined/escape_link.js";
    unlink(link);
    assert_int_equal(symlink("../hello_module.js", link), 0);
    char *outside = realpath(FIXTURES "hello_module.js", NULL);
    assert_non_null(outside);
    iso *i = load("confined/dynamic.js");
    expect_body(i, "/?spec=./inner.js", 200, "loaded inner");
    const char *refused[] = {"../hello_module.js", outside, "./escape_link.js", "/etc/passwd"};
    for (size_t k = 0; k < sizeof refused / sizeof *refused; k++) {
        char *target = xasprintf("/?spec=%s", refused[k]);
        capture c;
        request(i, &c, "GET", target, NULL, NULL);
        assert_int_equal(c.status, 200);
        if (!strstr(cap_body(&c), "ReferenceError: Cannot import") ||
            !strstr(cap_body(&c), "outside the worker's directory"))
            fail_msg("%s: %s", refused[k], cap_body(&c));
        cap_free(&c);
        free(target);
    }
    finish(i);
    unlink(link);
    free(outside);
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
    assert_int_equal(c.status, 504);
    assert_non_null(strstr(cap_body(&c), "wall time limit"));
    assert_string_equal(iso_limit(i), "wall");
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
    expect_body(i, "/3", 200, "done 3"); /* a few ms: within budget */
    assert_null(iso_limit(i));
    logs_begin();
    capture c;
    request(i, &c, "GET", "/1000", NULL, NULL); /* far more, in short slices */
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

/* --- env --- */

static JSValue make_test_binding(JSContext *ctx, uv_loop_t *lp, const iso_binding *b)
{
    JSValue o = JS_NewObject(ctx);
    JS_SetPropertyStr(ctx, o, "kind", JS_NewString(ctx, b->opaque));
    return o;
}

static const iso_var test_vars[] = {
    { "TEXT", "\"hello\"" }, { "NUM", "41" }, { "OBJ", "{\"a\":[1,\"two\"]}" },
    { "FLAG", "true" }, { "NOTHING", "null" },
};

static void env_options(iso_options *opt, iso_binding *b)
{
    iso_options_defaults(opt);
    assert_int_equal(iso_binding_register("test", make_test_binding), 0);
    *b = (iso_binding){ "NATIVE", "test", "native-kind" };
    opt->vars = test_vars;
    opt->nvars = sizeof test_vars / sizeof test_vars[0];
    opt->bindings = b;
    opt->nbindings = 1;
}

static void env_vars_and_bindings(void **state)
{
    iso_options opt;
    iso_binding b;
    env_options(&opt, &b);
    iso *i = load_opt("env.js", &opt);
    expect_body(i, "/", 200,
                "string hello 42 two true  native-kind TEXT+NUM+OBJ+FLAG+NOTHING+NATIVE "
                "TypeError TypeError TypeError hello true");
    finish(i);
    i = load_opt("env_sw.js", &opt);
    expect_body(i, "/", 200, "hello 82 object");
    finish(i);
}

static void env_errors(void **state)
{
    iso_options opt;
    iso_options_defaults(&opt);
    iso_var bad = { "BROKEN", "{not json" };
    opt.vars = &bad;
    opt.nvars = 1;
    err e;
    iso *i = NULL;
    assert_true(iso_new(&loop, FIXTURES "env.js", &opt, &i, &e) < 0);
    assert_null(i);
    if (!strstr(e.msg, "env.BROKEN") || !strstr(e.msg, "SyntaxError"))
        fail_msg("%s", e.msg);
    iso_options_defaults(&opt);
    iso_binding b = { "KV", "no-such-kind", NULL };
    opt.bindings = &b;
    opt.nbindings = 1;
    assert_true(iso_new(&loop, FIXTURES "env.js", &opt, &i, &e) < 0);
    assert_non_null(strstr(e.msg, "no-such-kind"));
    iso_var dup[] = { { "A", "1" }, { "A", "2" } };
    iso_options_defaults(&opt);
    opt.vars = dup;
    opt.nvars = 2;
    assert_true(iso_new(&loop, FIXTURES "env.js", &opt, &i, &e) < 0);
    assert_non_null(strstr(e.msg, "env.A"));
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_false(uv_loop_alive(&loop));
}

/* --- the clock --- */

static void clock_stands_still_while_js_runs(void **state)
{
    iso_options opt;
    iso_options_defaults(&opt);
    opt.cpu_ms = 0;
    iso *i = load_opt("clock.js", &opt);
    expect_body(i, "/", 200, "0 0 0 true true true true 0 86400000 5 function true 0");
    finish(i);
}

/* --- CPU accounting --- */

static void cpu_time_per_request_and_total(void **state)
{
    iso_options opt;
    iso_options_defaults(&opt);
    opt.cpu_ms = 0;
    iso *i = load_opt("cpu_report.js", &opt);
    uint64_t loaded = iso_cpu_ns_total(i);
    cpu_probe = i;
    uint64_t t0 = clock_thread_cpu_ns(), w0 = clock_mono_ns();
    capture c;
    request(i, &c, "GET", "/", NULL, NULL);
    uint64_t spent = clock_thread_cpu_ns() - t0, wall = clock_mono_ns() - w0;
    cpu_probe = NULL;
    assert_int_equal(c.status, 200);
    /* The handler's loop dominates the request's CPU time. A slice's first
     * few thousand operations are charged their wall time (isolate.c's
     * slice_cpu_ns), so the charge is bounded by the wall time, and by the
     * thread's CPU time only where nothing preempted the thread. */
    assert_true(c.cpu_at_end > 0);
    assert_true(c.cpu_at_end <= wall);
    assert_true(c.cpu_at_end >= spent / 4);
    assert_true(iso_cpu_ns_total(i) - loaded >= c.cpu_at_end / 2);
    /* The last request answered, until the next: now with its whole slice. */
    assert_true(iso_request_cpu_ns(i, &c.w) >= c.cpu_at_end);
    assert_true(iso_request_cpu_ns(i, &c.w) <= wall);
    assert_int_equal(iso_request_cpu_ns(i, NULL), 0);
    cap_free(&c);
    finish(i);
}

/* --- scheduled events --- */

typedef struct outcome {
    int calls, value;
} outcome;

static void on_done(void *data, int value)
{
    outcome *o = data;
    o->calls++;
    o->value = value;
}

static void run_scheduled(iso *i, const char *cron, outcome *o)
{
    memset(o, 0, sizeof *o);
    assert_int_equal(iso_scheduled(i, cron, 1700000000000.0, on_done, o), 0);
    while (o->calls == 0 && uv_run(&loop, UV_RUN_ONCE))
        ;
    assert_int_equal(o->calls, 1);
}

static void scheduled_module(void **state)
{
    iso_options opt;
    iso_binding b;
    env_options(&opt, &b);
    opt.cpu_ms = 50;
    iso *i = load_opt("scheduled.js", &opt);
    assert_true(iso_has_scheduled(i));
    outcome o;
    logs_begin();
    run_scheduled(i, "*/5 * * * *", &o);
    assert_int_equal(o.value, 0);
    run_scheduled(i, "async", &o);
    assert_int_equal(o.value, 0);
    assert_int_equal(iso_inflight(i), 0);
    run_scheduled(i, "throw", &o);
    assert_int_equal(o.value, 500);
    run_scheduled(i, "reject-later", &o);
    assert_int_equal(o.value, 500); /* a waitUntil promise rejected */
    char *logs = logs_end();
    assert_non_null(strstr(logs, "scheduled event \"*/5 * * * *\": ok"));
    assert_non_null(strstr(logs, "cron failed on purpose"));
    assert_non_null(strstr(logs, "scheduled event \"throw\": failed"));
    free(logs);
    assert_false(iso_broken(i));
    expect_body(i, "/", 200,
                "*/5 * * * *@1700000000000:function:hello,async@1700000000000:function:hello,"
                "awaited,waited,throw@1700000000000:function:hello,"
                "reject-later@1700000000000:function:hello");
    logs_begin();
    run_scheduled(i, "spin", &o);
    free(logs_end());
    assert_int_equal(o.value, ISO_STATUS_CPU);
    assert_string_equal(iso_limit(i), "cpu");
    assert_int_equal(iso_scheduled(i, "again", 0, on_done, &o), -EAGAIN);
    finish(i);
}

static void scheduled_service_worker(void **state)
{
    iso *i = load("scheduled_sw.js");
    assert_true(iso_has_scheduled(i));
    outcome o;
    logs_begin();
    run_scheduled(i, "0 * * * *", &o);
    capture c;
    request(i, &c, "GET", "/", NULL, NULL); /* no fetch listener */
    char *logs = logs_end();
    assert_int_equal(o.value, 0);
    assert_non_null(strstr(logs, "sw scheduled scheduled 0 * * * * 1700000000000"));
    assert_int_equal(c.status, 500);
    free(logs);
    cap_free(&c);
    finish(i);

    i = load("hello_module.js");
    assert_false(iso_has_scheduled(i));
    assert_int_equal(iso_scheduled(i, "x", 0, on_done, &o), -ENOENT);
    finish(i);
}

/* The wall limit applies to a scheduled event as to a request. */
static void scheduled_event_wall_limit(void **state)
{
    iso_options opt;
    iso_options_defaults(&opt);
    opt.wall_ms = 30;
    iso *i = load_opt("scheduled.js", &opt);
    outcome o;
    logs_begin();
    run_scheduled(i, "hang", &o);
    char *logs = logs_end();
    assert_int_equal(o.value, ISO_STATUS_WALL);
    assert_string_equal(iso_limit(i), "wall");
    assert_non_null(strstr(logs, "scheduled event \"hang\": exceeded the wall time limit"));
    free(logs);
    finish(i);
}

/* A scheduled event in flight when the isolate is freed still ends once. */
static void scheduled_event_ends_on_free(void **state)
{
    iso *i = load("scheduled.js");
    outcome o = { 0, 0 };
    assert_int_equal(iso_scheduled(i, "async", 0, on_done, &o), 0);
    assert_int_equal(iso_inflight(i), 1);
    logs_begin();
    finish(i);
    free(logs_end());
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.value, 503);
}

/* --- waitUntil is bounded --- */

static void wait_until_is_abandoned_after_the_wall_limit(void **state)
{
    iso_options opt;
    iso_options_defaults(&opt);
    opt.wall_ms = 30;
    iso *i = load_opt("wait_forever.js", &opt);
    expect_body(i, "/", 200, "answered");
    assert_int_equal(iso_waituntil_pending(i), 1);
    logs_begin();
    while (iso_waituntil_pending(i) && uv_run(&loop, UV_RUN_ONCE))
        ;
    char *logs = logs_end();
    assert_int_equal(iso_waituntil_pending(i), 0);
    assert_non_null(strstr(logs, "1 waitUntil() promise(s) abandoned"));
    assert_false(iso_broken(i));
    free(logs);
    finish(i);
}

/* --- the compile-only check --- */

static void check_script_compiles_without_running(void **state)
{
    err e;
    err_clear(&e);
    iso_cache_clear();
    assert_int_equal(iso_check_script(FIXTURES "imports.js", &e), 0);
    /* The check compiled the worker and its imports: loading it hits the cache. */
    iso *i = load("imports.js");
    iso_cache_info ci;
    iso_cache_stats(&ci);
    assert_int_equal(ci.misses, 4);
    assert_int_equal(ci.hits, 4);
    expect_body(i, "/", 200, "hi atoll! 42!");
    finish(i);
    assert_int_equal(iso_check_script(FIXTURES "hello_sw.js", &e), 0);
    /* Compiling runs nothing: a top-level throw or loop is not seen. */
    assert_int_equal(iso_check_script(FIXTURES "top_level_throw.js", &e), 0);
    assert_int_equal(iso_check_script(FIXTURES "top_level_loop.js", &e), 0);
    assert_true(iso_check_script(FIXTURES "bad_syntax.js", &e) < 0);
    if (!strstr(e.msg, FIXTURES "bad_syntax.js:3: SyntaxError"))
        fail_msg("%s", e.msg);
    assert_true(iso_check_script(FIXTURES "missing_import.js", &e) < 0);
    if (!strstr(e.msg, "does_not_exist.js") || !strstr(e.msg, "missing_import.js:2"))
        fail_msg("%s", e.msg);
    assert_true(iso_check_script(FIXTURES "no_such_file.js", &e) < 0);
    assert_non_null(strstr(e.msg, "No such file"));
}

/* --- the pool --- */

static void pool_gives_ready_runtimes(void **state)
{
    iso_pool *p = iso_pool_new(&loop, 2);
    assert_int_equal(iso_pool_ready(p), 0);
    uv_run(&loop, UV_RUN_NOWAIT); /* the loop is idle: it fills one per iteration */
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(iso_pool_ready(p), 2);
    iso_options opt;
    iso_options_defaults(&opt);
    opt.pool = p;
    iso *a = load_opt("hello_module.js", &opt);
    assert_int_equal(iso_pool_ready(p), 1);
    /* Limits are the tenant's, set when it is taken. */
    opt.memory_limit = 16u << 20;
    iso *b = load_opt("memory_bomb.js", &opt);
    assert_int_equal(iso_pool_ready(p), 0);
    iso *c = load_opt("hello_sw.js", &opt); /* empty pool: made on the spot */
    expect_body(a, "/", 200, "hello module\n");
    expect_body(c, "/x", 200, "hello sw GET http://example.test/x");
    logs_begin();
    capture cap;
    request(b, &cap, "GET", "/", NULL, NULL);
    free(logs_end());
    assert_int_equal(cap.status, ISO_STATUS_MEMORY);
    cap_free(&cap);
    for (int k = 0; k < 4; k++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(iso_pool_ready(p), 2);
    iso_free(a);
    iso_free(b);
    iso_free(c);
    iso_pool_free(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_false(uv_loop_alive(&loop));

    p = iso_pool_new(&loop, 0);
    iso_pool_fill(p);
    assert_int_equal(iso_pool_ready(p), ISO_POOL_DEFAULT);
    iso_pool_free(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_false(uv_loop_alive(&loop));
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
        cmocka_unit_test(imports_stay_in_the_worker_directory),
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
        cmocka_unit_test(env_vars_and_bindings),
        cmocka_unit_test(env_errors),
        cmocka_unit_test(clock_stands_still_while_js_runs),
        cmocka_unit_test(cpu_time_per_request_and_total),
        cmocka_unit_test(scheduled_module),
        cmocka_unit_test(scheduled_service_worker),
        cmocka_unit_test(scheduled_event_wall_limit),
        cmocka_unit_test(scheduled_event_ends_on_free),
        cmocka_unit_test(wait_until_is_abandoned_after_the_wall_limit),
        cmocka_unit_test(check_script_compiles_without_running),
        cmocka_unit_test(pool_gives_ready_runtimes),
    };
    return cmocka_run_group_tests_name("isolate", tests, setup, teardown);
}
