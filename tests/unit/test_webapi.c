/* Behaviour tests for the Web API families of src/js/api/ that are not
 * Fetch: URL and URLSearchParams (with the web-platform-tests URL data run
 * through JavaScript), encoding, DOMException, events, AbortController,
 * structuredClone, performance and navigator. Each test runs a worker
 * fixture in a real isolate and frees it, so a JS value leaked by a
 * binding trips QuickJS's assertion at JS_FreeRuntime and a leaked
 * allocation shows up in LSan.
 *
 * The WPT data is found at $ATOLL_CONFORMANCE/wpt-url or at
 * <repo>/../shared/conformance/wpt-url; a missing file fails the test. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include "core/alloc.h"
#include "core/file.h"
#include "core/log.h"
#include "js/isolate.h"
#include "support/capture.h"

#define FIXTURES "tests/fixtures/workers/"

static uv_loop_t loop;

/* --- a writer that records the response --- */


static iso *load_limited(const char *fixture, size_t memory_limit)
{
    iso_options opt;
    iso_options_defaults(&opt);
    opt.memory_limit = memory_limit;
    /* The conformance runs and the hostile-input sweep take longer than a
     * request's CPU budget, more so under the sanitizers. */
    opt.cpu_ms = 0;
    char *path = xasprintf(FIXTURES "%s", fixture);
    err e;
    err_clear(&e);
    iso *i = NULL;
    if (iso_new(&loop, path, &opt, &i, &e) != 0)
        fail_msg("iso_new(%s): %s", path, e.msg);
    free(path);
    return i;
}

static iso *load(const char *fixture)
{
    iso_options opt;
    iso_options_defaults(&opt);
    return load_limited(fixture, opt.memory_limit);
}

/* Dispatches one request; returns the body (caller frees), *status set. */
static char *request(iso *i, const char *method, const char *target, const char *body,
                     size_t body_len, int *status)
{
    http_request req;
    http_request_init(&req);
    req.method = xstrdup(method);
    req.target = xstrdup(target);
    http_headers_add_str(&req.headers, "Host", "example.test");
    if (body)
        buf_append(&req.body, body, body_len);
    capture c;
    capture_init(&c);
    iso_dispatch(i, &req, &c.w);
    while (c.ends == 0 && uv_run(&loop, UV_RUN_ONCE))
        ;
    assert_int_equal(c.ends, 1);
    http_request_free(&req);
    buf_append(&c.body, "", 1);
    *status = c.status;
    size_t len;
    return buf_steal(&c.body, &len);
}

static void finish(iso *i)
{
    iso_free(i);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_false(uv_loop_alive(&loop));
}

/* The whole file as a NUL-terminated string (caller frees), or NULL. */
static char *slurp(const char *path, size_t max, size_t *len)
{
    buf b;
    buf_init(&b, max + 1);
    err e;
    err_clear(&e);
    if (file_read_all(path, max, &b, &e) != 0 || buf_append(&b, "", 1) != 0) {
        buf_free(&b);
        return NULL;
    }
    char *s = buf_steal(&b, len);
    (*len)--;
    return s;
}

/* --- stderr capture: listener errors are logged, not thrown --- */

static char *run_quietly(iso *i, const char *target, int *status, char **logs)
{
    char path[] = "/tmp/atoll-webapi-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    close(fd);
    char *body = request(i, "GET", target, NULL, 0, status);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    size_t len;
    *logs = slurp(path, 1 << 20, &len);
    if (!*logs)
        *logs = xstrdup("");
    unlink(path);
    return body;
}

/* --- tests --- */

static void web_apis_behave(void **state)
{
    iso *i = load("webapi.js");
    int status;
    char *logs;
    char *body = run_quietly(i, "/", &status, &logs);
    if (status != 200 || strncmp(body, "ok ", 3) != 0)
        fail_msg("status %d:\n%s\nlog:\n%s", status, body, logs);
    print_message("web API behaviour: %s cases\n", body + 3);
    /* The listener that throws is reported, and the dispatch went on. */
    assert_non_null(strstr(logs, "uncaught exception in an event listener: Error: listener error is logged"));
    free(body);
    free(logs);
    finish(i);
}

static void hostile_input_never_crashes(void **state)
{
    iso *i = load("webapi_garbage.js");
    int status;
    char *logs;
    char *body = run_quietly(i, "/", &status, &logs);
    if (status != 200 || strncmp(body, "survived ", 9) != 0)
        fail_msg("status %d: %s\nlog:\n%s", status, body, logs);
    print_message("hostile input: %s calls\n", body + 9);
    free(body);
    free(logs);
    finish(i);
}

/* The incoming request's URL is the parser's serialization. */
static void request_url_is_normalized(void **state)
{
    iso *i = load("echo.js");
    int status;
    char *body = request(i, "GET", "/a/./x/../b?q=%7e", NULL, 0, &status);
    assert_int_equal(status, 201);
    assert_non_null(strstr(body, "\"url\":\"http://example.test/a/b?q=%7e\""));
    free(body);
    finish(i);
}

/* web/url allocates outside the JS heap; the bindings charge it to the
 * cap, so holding large URLs ends in the memory limit, not in the host's
 * memory running out. */
static void large_urls_count_against_the_heap_cap(void **state)
{
    static const char *const targets[] = { "/?kind=url", "/?kind=params" };
    for (size_t k = 0; k < 2; k++) {
        iso *i = load_limited("url_memory.js", 64u << 20);
        int status;
        char *logs;
        char *body = run_quietly(i, targets[k], &status, &logs);
        if (status != ISO_STATUS_MEMORY)
            fail_msg("%s: status %d: %s", targets[k], status, body);
        assert_true(iso_broken(i));
        assert_non_null(strstr(logs, "memory"));
        free(body);
        free(logs);
        finish(i);
    }
}

/* Reads DIR/wpt-url/NAME, from $ATOLL_CONFORMANCE, ../shared/conformance
 * (tests run from the repository's root) or beside the binary's tree. */
static char *read_data(const char *name, size_t *len)
{
    const char *dirs[3] = { getenv("ATOLL_CONFORMANCE"), "../shared/conformance", NULL };
    char exe[PATH_MAX];
    char *rel = NULL;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        rel = xasprintf("%s/../../../../shared/conformance", exe); /* build/asan/tests/ */
        dirs[2] = rel;
    }
    char *text = NULL;
    for (int k = 0; k < 3 && !text; k++) {
        if (!dirs[k])
            continue;
        char *path = xasprintf("%s/wpt-url/%s", dirs[k], name);
        text = slurp(path, 16u << 20, len);
        free(path);
    }
    free(rel);
    return text;
}

static void wpt_file_through_js(const char *name)
{
    size_t len;
    char *data = read_data(name, &len);
    if (!data)
        fail_msg("conformance data %s not found: set ATOLL_CONFORMANCE or put "
                 "shared/conformance beside the repository", name);
    iso *i = load("wpt_url.js");
    char *target = xasprintf("/?file=%s", name);
    int status;
    char *body = request(i, "POST", target, data, len, &status);
    free(target);
    free(data);
    if (status != 200)
        fail_msg("status %d: %s", status, body);
    json_error_t jerr;
    json_t *r = json_loads(body, 0, &jerr);
    assert_non_null(r);
    json_int_t passed = json_integer_value(json_object_get(r, "passed"));
    json_int_t total = json_integer_value(json_object_get(r, "total"));
    print_message("wpt-url through JS, %s: %lld/%lld passed\n", name, (long long)passed,
                  (long long)total);
    size_t k;
    json_t *f;
    json_array_foreach(json_object_get(r, "failures"), k, f)
        print_message("  FAIL %s\n", json_string_value(f));
    assert_true(total > 0);
    assert_int_equal(passed, total);
    json_decref(r);
    free(body);
    finish(i);
}

static void wpt_urltestdata(void **state) { wpt_file_through_js("urltestdata.json"); }
static void wpt_setters(void **state) { wpt_file_through_js("setters_tests.json"); }
static void wpt_toascii(void **state) { wpt_file_through_js("toascii.json"); }
static void wpt_percent_encoding(void **state) { wpt_file_through_js("percent-encoding.json"); }

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
        cmocka_unit_test(web_apis_behave),
        cmocka_unit_test(hostile_input_never_crashes),
        cmocka_unit_test(large_urls_count_against_the_heap_cap),
        cmocka_unit_test(request_url_is_normalized),
        cmocka_unit_test(wpt_urltestdata),
        cmocka_unit_test(wpt_setters),
        cmocka_unit_test(wpt_toascii),
        cmocka_unit_test(wpt_percent_encoding),
    };
    return cmocka_run_group_tests_name("webapi", tests, setup, teardown);
}
