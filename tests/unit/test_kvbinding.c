/* Unit tests for the KVNamespace binding (src/js/api/kv.c): an isolate with
 * env.KV bound to a real store on a real loop, running the API checks of
 * tests/fixtures/kv/api.js against SQLite and Redis, and tearing isolates
 * down with operations still pending (in the store, or still reading a
 * stream value), so that leaked JS values show up as QuickJS assertions
 * and leaked memory as LSan reports. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/alloc.h"
#include "js/api/kv.h"
#include "js/isolate.h"
#include "kv/kv.h"
#include "support/redis_server.h"

#define API "tests/fixtures/kv/api.js"

typedef struct fixture {
    uv_loop_t loop;
    char dir[64];
    bool redis;
    test_redis server;
    kv_store *store;
    jsapi_kv_binding kb;
    iso_binding b;
    iso_options opt;
} fixture;

typedef struct capture {
    http_writer w;
    int status;
    buf body;
    int ends;
} capture;

static int cap_start(http_writer *w, int status, const http_headers *h, int64_t content_length)
{
    ((capture *)w)->status = status;
    return 0;
}

static int cap_write(http_writer *w, const void *data, size_t len)
{
    return buf_append(&((capture *)w)->body, data, len);
}

static void cap_end(http_writer *w)
{
    ((capture *)w)->ends++;
}

/* Dispatches GET target; runs the loop until the response ended. Returns
 * the body (caller frees) and the status in *status. */
static char *get(fixture *f, iso *i, const char *target, int *status)
{
    capture c = {.w = {.start = cap_start, .write = cap_write, .end = cap_end}};
    buf_init(&c.body, BUF_UNLIMITED);
    http_request req;
    http_request_init(&req);
    req.method = xstrdup("GET");
    req.target = xstrdup(target);
    http_headers_add_str(&req.headers, "Host", "kv.test");
    iso_dispatch(i, &req, &c.w);
    while (c.ends == 0 && uv_run(&f->loop, UV_RUN_ONCE))
        ;
    assert_int_equal(c.ends, 1);
    http_request_free(&req);
    *status = c.status;
    buf_append(&c.body, "", 0);
    size_t len;
    return buf_steal(&c.body, &len);
}

static iso *load(fixture *f, const char *ns)
{
    f->kb = (jsapi_kv_binding){.store = f->store, .namespace_id = ns};
    iso *i = NULL;
    err e;
    err_clear(&e);
    if (iso_new(&f->loop, API, &f->opt, &i, &e) != 0)
        fail_msg("iso_new: %s", e.msg);
    return i;
}

static void closed(void *data)
{
    *(bool *)data = true;
}

static int setup_common(void **state, bool redis)
{
    fixture *f = xcalloc(1, sizeof *f);
    assert_int_equal(jsapi_kv_register(), 0);
    uv_loop_init(&f->loop);
    snprintf(f->dir, sizeof f->dir, "/tmp/atoll-kvb-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    kv_config cfg = {.state_dir = f->dir};
    if (redis) {
        if (test_redis_start(&f->server))
            return -1;
        snprintf(f->server.url, sizeof f->server.url, "redis://127.0.0.1:%d/2", f->server.port);
        cfg.redis_url = f->server.url;
        f->redis = true;
    }
    err e;
    if (kv_open(&f->loop, &cfg, &f->store, &e) != 0) {
        fprintf(stderr, "kv_open: %s\n", e.msg);
        return -1;
    }
    f->b = (iso_binding){.name = "KV", .kind = JSAPI_KV_KIND, .opaque = &f->kb};
    iso_options_defaults(&f->opt);
    f->opt.cpu_ms = 0; /* ASan makes the 25 MiB checks slow */
    f->opt.bindings = &f->b;
    f->opt.nbindings = 1;
    *state = f;
    return 0;
}

static int setup_sqlite(void **state) { return setup_common(state, false); }
static int setup_redis(void **state) { return setup_common(state, true); }

static int teardown(void **state)
{
    fixture *f = *state;
    bool done = false;
    kv_close(f->store, closed, &done);
    while (!done)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    if (f->redis)
        test_redis_stop(&f->server, SIGTERM, 1);
    test_rm_rf(f->dir);
    free(f);
    return 0;
}

static void the_api_passes_its_checks(void **state)
{
    fixture *f = *state;
    iso *i = load(f, "ns-unit");
    int status;
    char *body = get(f, i, "/run?tag=unit", &status);
    if (status != 200 || strcmp(body, "ok") != 0)
        fail_msg("status %d: %s", status, body);
    free(body);
    iso_free(i);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void namespaces_are_separate(void **state)
{
    fixture *f = *state;
    iso *a = load(f, "ns-a"), *b = load(f, "ns-b");
    int status;
    free(get(f, a, "/put?key=k&value=from-a", &status));
    assert_int_equal(status, 200);
    char *body = get(f, b, "/get?key=k", &status);
    assert_int_equal(status, 404);
    free(body);
    body = get(f, a, "/get?key=k", &status);
    assert_string_equal(body, "from-a");
    free(body);
    iso_free(a);
    iso_free(b);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* The isolate goes while a put is in the store and another still reads a
 * stream that never ends: the store's callback only frees its op, and
 * nothing is leaked. */
static void free_with_operations_pending(void **state)
{
    fixture *f = *state;
    iso *i = load(f, "ns-pending");
    int status;
    free(get(f, i, "/hang?key=h", &status));
    assert_int_equal(status, 200);
    free(get(f, i, "/fire?key=f", &status));
    assert_int_equal(status, 200);
    iso_free(i); /* the fired put may still be in the store */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    i = load(f, "ns-pending");
    char *body = get(f, i, "/get?key=f", &status);
    assert_string_equal(body, "fire-and-forget");
    free(body);
    iso_free(i);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* Workers' 1,000 KV operations per invocation, counted per request: two
 * requests in flight at once each get their own budget (an operation's
 * callback continues the request that started it), the 1,001st rejects
 * with Workers' error, and the next request starts afresh. */
static void kv_operations_are_limited_per_request(void **state)
{
    fixture *f = *state;
    iso *i = load(f, "ns-ops");
    capture c[2];
    http_request req[2];
    const char *targets[2] = {"/ops?key=a&n=700", "/ops?key=b&n=700"};
    for (int k = 0; k < 2; k++) {
        c[k] = (capture){.w = {.start = cap_start, .write = cap_write, .end = cap_end}};
        buf_init(&c[k].body, BUF_UNLIMITED);
        http_request_init(&req[k]);
        req[k].method = xstrdup("GET");
        req[k].target = xstrdup(targets[k]);
        http_headers_add_str(&req[k].headers, "Host", "kv.test");
        iso_dispatch(i, &req[k], &c[k].w);
    }
    while ((c[0].ends == 0 || c[1].ends == 0) && uv_run(&f->loop, UV_RUN_ONCE))
        ;
    for (int k = 0; k < 2; k++) {
        assert_int_equal(c[k].ends, 1);
        buf_append(&c[k].body, "", 0);
        if (c[k].status != 200 || strcmp(c[k].body.data, "done 700") != 0)
            fail_msg("request %d: status %d: %s", k, c[k].status, c[k].body.data);
        buf_free(&c[k].body);
        http_request_free(&req[k]);
    }
    int status;
    char *body = get(f, i, "/ops?key=c&n=1000", &status);
    if (status != 200 || strcmp(body, "done 1000") != 0)
        fail_msg("1000 operations: status %d: %s", status, body);
    free(body);
    body = get(f, i, "/ops?key=d&n=1001", &status);
    if (status != 429 || strcmp(body, "1000 Error: Too many API requests by single worker invocation.") != 0)
        fail_msg("1001 operations: status %d: %s", status, body);
    free(body);
    body = get(f, i, "/ops?key=e&n=3", &status);
    assert_string_equal(body, "done 3");
    free(body);
    /* A bulk get is one operation, whatever its number of keys. */
    body = get(f, i, "/bulk-ops?n=1000", &status);
    if (status != 200 || strcmp(body, "done 1000") != 0)
        fail_msg("1000 bulk gets: status %d: %s", status, body);
    free(body);
    body = get(f, i, "/bulk-ops?n=1001", &status);
    if (status != 429 || strcmp(body, "1000 Error: Too many API requests by single worker invocation.") != 0)
        fail_msg("1001 bulk gets: status %d: %s", status, body);
    free(body);
    iso_free(i);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void no_store_fails_the_load(void **state)
{
    fixture *f = *state;
    f->kb = (jsapi_kv_binding){.store = NULL, .namespace_id = "x"};
    iso *i = NULL;
    err e;
    err_clear(&e);
    assert_int_not_equal(iso_new(&f->loop, API, &f->opt, &i, &e), 0);
    assert_non_null(strstr(e.msg, "no KV store is open"));
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

int main(void)
{
    const struct CMUnitTest sqlite_tests[] = {
        cmocka_unit_test_setup_teardown(the_api_passes_its_checks, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(namespaces_are_separate, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(free_with_operations_pending, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(kv_operations_are_limited_per_request, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(no_store_fails_the_load, setup_sqlite, teardown),
    };
    const struct CMUnitTest redis_tests[] = {
        cmocka_unit_test_setup_teardown(the_api_passes_its_checks, setup_redis, teardown),
        cmocka_unit_test_setup_teardown(namespaces_are_separate, setup_redis, teardown),
        cmocka_unit_test_setup_teardown(free_with_operations_pending, setup_redis, teardown),
        cmocka_unit_test_setup_teardown(kv_operations_are_limited_per_request, setup_redis, teardown),
    };
    int failed = cmocka_run_group_tests_name("kvbinding/sqlite", sqlite_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("kvbinding/redis", redis_tests, NULL, NULL);
    iso_cache_clear();
    return failed;
}
