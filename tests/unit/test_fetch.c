/* Unit tests for fetch(): the egress policy (http/egress.c) as pure
 * functions, and the worker fixture fetch_cases.js run in an isolate
 * against an upstream served on loopback by atoll's own HTTP server on the
 * same libuv loop. Every test ends by freeing the isolate, stopping the
 * upstream and running the loop until no handle is left, so leaked JS
 * values show up as QuickJS assertions and leaked memory as LSan reports. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>

#include "core/alloc.h"
#include "core/log.h"
#include "http/egress.h"
#include "http/server.h"
#include "js/isolate.h"
#include "support/capture.h"

#define FIXTURE "tests/fixtures/workers/fetch_cases.js"

static uv_loop_t loop;

/* --- the upstream --- */

#define MAX_SLOW 8

static struct {
    http_server *server;
    int port;
    http_writer *slow[MAX_SLOW]; /* requests to /slow, answered at teardown */
    int nslow;
    int requests;
} up;

static void respond(http_writer *w, int status, const char *location, const char *body)
{
    http_headers h;
    http_headers_init(&h);
    http_headers_add_str(&h, "Content-Type", "text/plain");
    if (location)
        http_headers_add_str(&h, "Location", location);
    http_writer_respond(w, status, &h, body, strlen(body));
    http_headers_free(&h);
}

static void respond_bytes(http_writer *w, const char *body, size_t len)
{
    http_headers h;
    http_headers_init(&h);
    http_writer_respond(w, 200, &h, body, len);
    http_headers_free(&h);
}

static void on_upstream(void *data, http_request *req, http_writer *w)
{
    up.requests++;
    const char *t = req->target;
    if (strcmp(t, "/echo") == 0) {
        /* METHOD target|body|x-test|content-type|authorization */
        const char *xt = http_headers_get(&req->headers, "x-test");
        const char *ct = http_headers_get(&req->headers, "content-type");
        const char *au = http_headers_get(&req->headers, "authorization");
        buf b;
        buf_init(&b, BUF_UNLIMITED);
        buf_printf(&b, "%s %s|", req->method, t);
        for (size_t i = 0; i < req->body.len; i++) /* NUL shows as '0' */
            buf_append(&b, req->body.data[i] ? &req->body.data[i] : "0", 1);
        buf_printf(&b, "|%s|%s|%s", xt ? xt : "-", ct ? ct : "-", au ? au : "-");
        respond(w, 200, NULL, b.data);
        buf_free(&b);
    } else if (t[0] == '/' && t[1] == 'r' && atoi(t + 2) >= 300) {
        respond(w, atoi(t + 2), "/echo", "moved");
    } else if (strcmp(t, "/abs") == 0) {
        char *loc = xasprintf("http://localhost:%d/echo", up.port);
        respond(w, 302, loc, "moved");
        free(loc);
    } else if (strcmp(t, "/loop") == 0) {
        respond(w, 302, "/loop", "again");
    } else if (strcmp(t, "/cookies") == 0) {
        http_headers h;
        http_headers_init(&h);
        http_headers_add_str(&h, "Set-Cookie", "a=1; Path=/");
        http_headers_add_str(&h, "X-Other", "x");
        http_headers_add_str(&h, "Set-Cookie", "b=2, c");
        http_writer_respond(w, 200, &h, "", 0);
        http_headers_free(&h);
    } else if (strcmp(t, "/big") == 0) {
        size_t n = 5u << 20;
        char *big = xmalloc(n);
        memset(big, 'x', n);
        respond_bytes(w, big, n);
        free(big);
    } else if (strcmp(t, "/teapot") == 0) {
        respond(w, 418, NULL, "short and stout");
    } else if (strcmp(t, "/slow") == 0 && up.nslow < MAX_SLOW) {
        up.slow[up.nslow++] = w;
    } else {
        respond(w, 404, NULL, "not found");
    }
}

static int upstream_start(void **state)
{
    err e;
    err_clear(&e);
    memset(&up, 0, sizeof up);
    http_server_config cfg;
    http_server_config_defaults(&cfg);
    if (http_server_new(&loop, &cfg, on_upstream, NULL, &up.server, &e) < 0 ||
        http_server_listen(up.server, "127.0.0.1", 0, &e) < 0)
        fail_msg("upstream: %s", e.msg);
    up.port = http_server_port(up.server);
    return 0;
}

static void drained(void *data) { *(bool *)data = true; }

static int upstream_stop(void **state)
{
    for (int k = 0; k < up.nslow; k++)
        respond(up.slow[k], 200, NULL, "late");
    bool done = false;
    http_server_drain(up.server, drained, &done);
    while (!done && uv_run(&loop, UV_RUN_ONCE))
        ;
    http_server_free(up.server);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_false(uv_loop_alive(&loop));
    return 0;
}

/* --- a writer that records the response --- */


static iso *load_opt(const iso_options *opt)
{
    err e;
    err_clear(&e);
    iso *i = NULL;
    if (iso_new(&loop, FIXTURE, opt, &i, &e) != 0)
        fail_msg("iso_new: %s", e.msg);
    return i;
}

static iso *load(void)
{
    iso_options opt;
    iso_options_defaults(&opt);
    return load_opt(&opt);
}

static void make_request(http_request *req, const char *path, const char *down)
{
    http_request_init(req);
    req->method = xstrdup("GET");
    req->target = xstrdup(path);
    char *base = xasprintf("http://127.0.0.1:%d", up.port);
    http_headers_add_str(&req->headers, "Host", "worker.test");
    http_headers_add_str(&req->headers, "x-upstream", base);
    if (down)
        http_headers_add_str(&req->headers, "x-down", down);
    free(base);
}

/* Runs one request to the fixture; returns its body (caller frees). */
static char *run(iso *i, const char *path, int *status, const char *down)
{
    http_request req;
    make_request(&req, path, down);
    capture c;
    capture_init(&c);
    iso_dispatch(i, &req, &c.w);
    while (c.ends == 0 && uv_run(&loop, UV_RUN_ONCE))
        ;
    assert_int_equal(c.ends, 1);
    http_request_free(&req);
    *status = c.status;
    buf_append(&c.body, "", 0);
    size_t len;
    return buf_steal(&c.body, &len);
}

/* The fixture's answer to `path` must be 200 with exactly `want`. */
static void expect(iso *i, const char *path, const char *want)
{
    int status;
    char *got = run(i, path, &status, NULL);
    if (status != 200 || strcmp(got, want) != 0)
        fail_msg("%s: status %d, body:\n%s\nwanted:\n%s", path, status, got, want);
    free(got);
}

/* The answer must be 200 and contain each of the NULL-terminated strings. */
static void expect_has(iso *i, const char *path, ...)
{
    int status;
    char *got = run(i, path, &status, NULL);
    if (status != 200)
        fail_msg("%s: status %d: %s", path, status, got);
    va_list ap;
    va_start(ap, path);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;)
        if (!strstr(got, s))
            fail_msg("%s: body lacks '%s':\n%s", path, s, got);
    va_end(ap);
    free(got);
}

static void finish(iso *i)
{
    iso_free(i);
    uv_run(&loop, UV_RUN_NOWAIT);
}

/* --- the egress policy --- */

static struct sockaddr_storage addr(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
        ss.ss_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
        ss.ss_family = AF_INET6;
    else
        fail_msg("bad test address %s", ip);
    return ss;
}

static bool addr_ok(const char *const *allow, egress_kind kind, const char *ip)
{
    struct sockaddr_storage ss = addr(ip);
    const char *why;
    return egress_check_addr(allow, kind, (struct sockaddr *)&ss, &why);
}

static void egress_hosts(void **state)
{
    assert_int_equal(egress_check_host(NULL, "localhost"), EGRESS_LOOPBACK);
    assert_int_equal(egress_check_host(NULL, "api.localhost"), EGRESS_LOOPBACK);
    assert_int_equal(egress_check_host(NULL, "127.0.0.1"), EGRESS_LOOPBACK);
    assert_int_equal(egress_check_host(NULL, "127.8.9.10"), EGRESS_LOOPBACK);
    assert_int_equal(egress_check_host(NULL, "[::1]"), EGRESS_LOOPBACK);
    assert_int_equal(egress_check_host(NULL, "example.com"), EGRESS_DENIED);
    assert_int_equal(egress_check_host(NULL, "10.0.0.1"), EGRESS_DENIED);
    assert_int_equal(egress_check_host(NULL, "localhost.evil.com"), EGRESS_DENIED);

    const char *const allow[] = { "example.com", "*.api.test", "10.1.2.3", "[fd00::1]", NULL };
    assert_int_equal(egress_check_host(allow, "example.com"), EGRESS_NAME);
    assert_int_equal(egress_check_host(allow, "www.example.com"), EGRESS_DENIED);
    assert_int_equal(egress_check_host(allow, "a.api.test"), EGRESS_NAME);
    assert_int_equal(egress_check_host(allow, "a.b.api.test"), EGRESS_NAME);
    assert_int_equal(egress_check_host(allow, "api.test"), EGRESS_DENIED);
    assert_int_equal(egress_check_host(allow, "evilapi.test"), EGRESS_DENIED);
    assert_int_equal(egress_check_host(allow, "10.1.2.3"), EGRESS_LITERAL);
    assert_int_equal(egress_check_host(allow, "[fd00::1]"), EGRESS_LITERAL);
    /* An explicit list replaces the default: loopback only if listed. */
    assert_int_equal(egress_check_host(allow, "localhost"), EGRESS_DENIED);
    const char *const all[] = { "*", "localhost", NULL };
    assert_int_equal(egress_check_host(all, "anything.example"), EGRESS_NAME);
    assert_int_equal(egress_check_host(all, "localhost"), EGRESS_LOOPBACK);
}

static void egress_addresses(void **state)
{
    const char *const allow[] = { "example.com", "10.1.2.3", NULL };
    assert_true(addr_ok(NULL, EGRESS_LOOPBACK, "127.0.0.1"));
    assert_true(addr_ok(NULL, EGRESS_LOOPBACK, "::1"));
    assert_false(addr_ok(NULL, EGRESS_LOOPBACK, "93.184.216.34"));
    assert_true(addr_ok(allow, EGRESS_NAME, "93.184.216.34"));
    assert_true(addr_ok(allow, EGRESS_NAME, "2606:2800:220:1::1"));
    static const char *const internal[] = {
        "127.0.0.1", "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
        "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fd00::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1", "ff02::1",
    };
    for (size_t k = 0; k < sizeof internal / sizeof internal[0]; k++)
        if (addr_ok(allow, EGRESS_NAME, internal[k]))
            fail_msg("%s allowed for a listed name", internal[k]);
    assert_true(addr_ok(allow, EGRESS_NAME, "172.32.0.1"));
    /* An address listed itself may be reached through a name. */
    assert_true(addr_ok(allow, EGRESS_NAME, "10.1.2.3"));
}

/* --- fetch() in a worker --- */

static void get_and_post(void **state)
{
    iso *i = load();
    expect(i, "/get", "200 OK true text/plain false true GET /echo||a b|-|secret");
    expect(i, "/post", "POST /echo|hello body|-|text/x-test|-");
    expect(i, "/post-bytes", "PUT /echo|hi0!|-|-|-");
    expect(i, "/post-empty", "POST /echo||-|-|-");
    expect(i, "/request-object", "true PATCH /echo|from a Request|req|text/plain;charset=UTF-8|-");
    expect(i, "/head", "200 [] 17");
    expect(i, "/status", "418 I'm a teapot false short and stout");
    finish(i);
}

static void set_cookie_kept_apart(void **state)
{
    iso *i = load();
    expect(i, "/cookies", "[\"a=1; Path=/\",\"b=2, c\"] a=1; Path=/, b=2, c");
    finish(i);
}

static void redirects(void **state)
{
    iso *i = load();
    expect(i, "/follow",
           "301:200:true:/echo:GET /echo||-|-|-\n"
           "302:200:true:/echo:GET /echo||-|-|-\n"
           "303:200:true:/echo:GET /echo||-|-|-\n"
           "307:200:true:/echo:POST /echo|payload|-|text/plain;charset=UTF-8|-\n"
           "308:200:true:/echo:POST /echo|payload|-|text/plain;charset=UTF-8|-");
    expect(i, "/follow-get", "true GET /echo||kept|-|-");
    expect(i, "/cross-origin", "true GET /echo||kept|-|-");
    expect(i, "/manual", "302 false /echo /r302");
    expect_has(i, "/redirect-error", "TypeError: ", "redirect mode is 'error'", NULL);
    expect_has(i, "/redirect-loop", "TypeError: ", "too many redirects", NULL);
    expect_has(i, "/redirect-bad-mode", "TypeError: Invalid redirect mode", NULL);
    finish(i);
}

static void subrequest_limit(void **state)
{
    iso *i = load();
    expect_has(i, "/subrequests", "50 ok, then TypeError: Too many subrequests", "at most 50", NULL);
    /* The budget is per request: the next one starts afresh. */
    expect(i, "/get", "200 OK true text/plain false true GET /echo||a b|-|secret");
    finish(i);

    iso_options opt;
    iso_options_defaults(&opt);
    opt.subrequests = 3;
    i = load_opt(&opt);
    expect_has(i, "/subrequests", "3 ok, then TypeError: Too many subrequests", NULL);
    /* Each redirect followed is a subrequest too. */
    expect_has(i, "/redirect-charged", "200 GET /echo", "\nTypeError: Too many subrequests", NULL);
    finish(i);
}

/* Two requests in flight at once each have their own budget: the fetches
 * that continue one request's code are charged to it. */
static void budget_per_concurrent_request(void **state)
{
    iso_options opt;
    iso_options_defaults(&opt);
    opt.subrequests = 3;
    iso *i = load_opt(&opt);
    http_request ra, rb;
    make_request(&ra, "/three", NULL);
    make_request(&rb, "/three", NULL);
    capture a, b;
    capture_init(&a);
    capture_init(&b);
    iso_dispatch(i, &ra, &a.w);
    iso_dispatch(i, &rb, &b.w);
    while ((a.ends == 0 || b.ends == 0) && uv_run(&loop, UV_RUN_ONCE))
        ;
    buf_append(&a.body, "", 0);
    buf_append(&b.body, "", 0);
    assert_string_equal(a.body.data, "200,200,200");
    assert_string_equal(b.body.data, "200,200,200");
    buf_free(&a.body);
    buf_free(&b.body);
    http_request_free(&ra);
    http_request_free(&rb);
    finish(i);
}

static void refused_hosts(void **state)
{
    iso *i = load();
    expect_has(i, "/denied", "TypeError: ", "'example.com'", "fetch_allow", NULL);
    expect_has(i, "/scheme", "TypeError: ", "only http: and https:", NULL);
    expect_has(i, "/invalid", "TypeError: ", NULL);
    expect_has(i, "/localhost", "200 GET /echo", NULL);
    expect_has(i, "/ipv6", "TypeError: Network connection lost", NULL); /* allowed; nothing listens */
    expect_has(i, "/resolve", "TypeError: ", "'api.example.test'", NULL);
    finish(i);
    assert_int_equal(up.requests, 1);
}

/* A listed name that resolves to a loopback address is refused after
 * resolution; listing the address itself allows it. */
static void dns_name_to_forbidden_address(void **state)
{
    char *pin = xasprintf("api.example.test:%d:127.0.0.1", up.port);
    const char *const resolve[] = { pin, NULL };
    const char *const allow[] = { "*.example.test", NULL };
    iso_options opt;
    iso_options_defaults(&opt);
    opt.fetch_allow = allow;
    opt.fetch_resolve = resolve;
    iso *i = load_opt(&opt);
    expect_has(i, "/resolve", "TypeError: ", "'api.example.test'", "resolved to 127.0.0.1",
               "loopback", NULL);
    /* With its own list, the default loopback permission is gone too. */
    expect_has(i, "/loopback", "TypeError: ", "'127.0.0.1' is not allowed", NULL);
    finish(i);
    assert_int_equal(up.requests, 0);

    const char *const allow2[] = { "*.example.test", "127.0.0.1", NULL };
    opt.fetch_allow = allow2;
    i = load_opt(&opt);
    expect_has(i, "/resolve", "200 GET /echo", NULL);
    finish(i);
    free(pin);
}

static void upstream_down(void **state)
{
    /* A port that was just free: nothing listens there. */
    uv_tcp_t probe;
    uv_tcp_init(&loop, &probe);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    uv_tcp_bind(&probe, (struct sockaddr *)&sa, 0);
    int len = sizeof sa;
    uv_tcp_getsockname(&probe, (struct sockaddr *)&sa, &len);
    uv_close((uv_handle_t *)&probe, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    char *down = xasprintf("http://127.0.0.1:%d", ntohs(sa.sin_port));
    iso *i = load();
    int status;
    char *got = run(i, "/down", &status, down);
    assert_int_equal(status, 200);
    if (!strstr(got, "TypeError: Network connection lost"))
        fail_msg("got %s", got);
    free(got);
    free(down);
    finish(i);
}

static void abort_signal(void **state)
{
    iso *i = load();
    expect_has(i, "/abort", "AbortError: ", "listeners=0", NULL);
    expect(i, "/abort-reason", "RangeError: custom reason");
    expect_has(i, "/pre-aborted", "AbortError: ", NULL);
    expect(i, "/signal-unused", "200 listeners=0");
    finish(i);
}

static void many_concurrent_fetches(void **state)
{
    iso *i = load();
    expect(i, "/concurrent", "40/40");
    finish(i);
}

static void wall_limit_while_waiting(void **state)
{
    iso_options opt;
    iso_options_defaults(&opt);
    opt.wall_ms = 200;
    iso *i = load_opt(&opt);
    int status;
    char *got = run(i, "/slow", &status, NULL);
    assert_int_equal(status, ISO_STATUS_WALL);
    assert_non_null(strstr(got, "wall time limit"));
    assert_true(iso_broken(i));
    free(got);
    finish(i); /* cancels the transfer still waiting on the upstream */
}

/* A response body larger than the heap streams through it. */
static void response_body_streams_past_the_heap_cap(void **state)
{
    iso_options opt;
    iso_options_defaults(&opt);
    opt.memory_limit = 4u << 20;
    iso *i = load_opt(&opt);
    expect(i, "/big", "200 5242880 bytes");
    assert_false(iso_broken(i));
    finish(i);
}

static void no_fetch_at_top_level(void **state)
{
    iso_options opt;
    iso_options_defaults(&opt);
    err e;
    err_clear(&e);
    iso *i = NULL;
    assert_true(iso_new(&loop, "tests/fixtures/workers/fetch_top_level.js", &opt, &i, &e) < 0);
    if (!strstr(e.msg, "TypeError") || !strstr(e.msg, "top level"))
        fail_msg("load error: %s", e.msg);
}

static void free_cancels_transfers(void **state)
{
    iso *i = load();
    int status;
    char *got = run(i, "/background", &status, NULL);
    assert_string_equal(got, "answered");
    free(got);
    assert_int_equal(iso_waituntil_pending(i), 1);
    finish(i);
}

int main(void)
{
    uv_loop_init(&loop);
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(egress_hosts),
        cmocka_unit_test(egress_addresses),
        cmocka_unit_test_setup_teardown(get_and_post, upstream_start, upstream_stop),
        cmocka_unit_test_setup_teardown(set_cookie_kept_apart, upstream_start, upstream_stop),
        cmocka_unit_test_setup_teardown(redirects, upstream_start, upstream_stop),
        cmocka_unit_test_setup_teardown(subrequest_limit, upstream_start, upstream_stop),
        cmocka_unit_test_setup_teardown(budget_per_concurrent_request, upstream_start, upstream_stop),
        cmocka_unit_test_setup_teardown(refused_hosts, upstream_start, upstream_stop),
        cmocka_unit_test_setup_teardown(dns_name_to_forbidden_address, upstream_start, upstream_stop),
        cmocka_unit_test_setup_teardown(upstream_down, upstream_start, upstream_stop),
        cmocka_unit_test_setup_teardown(abort_signal, upstream_start, upstream_stop),
        cmocka_unit_test_setup_teardown(many_concurrent_fetches, upstream_start, upstream_stop),
        cmocka_unit_test_setup_teardown(wall_limit_while_waiting, upstream_start, upstream_stop),
        cmocka_unit_test_setup_teardown(response_body_streams_past_the_heap_cap, upstream_start, upstream_stop),
        cmocka_unit_test_setup_teardown(no_fetch_at_top_level, upstream_start, upstream_stop),
        cmocka_unit_test_setup_teardown(free_cancels_transfers, upstream_start, upstream_stop),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    iso_cache_clear();
    uv_loop_close(&loop);
    return rc;
}
