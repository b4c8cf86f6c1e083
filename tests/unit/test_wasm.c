/* Unit tests for src/wasm: guests written in C (tests/fixtures/wasm/)
 * are compiled to wasm32-wasi with clang at test time, then deployed
 * through the real pipeline (wasm2c + cc + cache + dlopen) and run as WAGI
 * requests: CGI round trips, every trap kind, the CPU, wall and memory
 * limits, proc_exit, sleeps, the preopened directory, invalid modules, the
 * cache, the thread-pool wrappers, and the process still serving after
 * each failure. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/err.h"
#include "wasm/wasm.h"

static char tmp[] = "/tmp/atoll-test-wasm.XXXXXX";
static char *cache_dir, *data_dir;
static wasm_module *hello, *echo, *guest, *bigmem;

/* ---- helpers ------------------------------------------------------------ */

static int sh(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd;
    if (vasprintf(&cmd, fmt, ap) < 0)
        abort();
    va_end(ap);
    int rc = system(cmd);
    free(cmd);
    return rc;
}

static bool read_file(const char *path, buf *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(out, chunk, n);
    fclose(f);
    return true;
}

/* Compiles tests/fixtures/wasm/NAME.c to wasm and deploys it. */
static wasm_module *deploy_fixture(const char *name)
{
    char *wasm = xasprintf("%s/%s.wasm", tmp, name);
    if (sh("clang --target=wasm32-wasi -O2 -o %s tests/fixtures/wasm/%s.c", wasm, name) != 0) {
        fprintf(stderr, "cannot build fixture %s\n", name);
        free(wasm);
        return NULL;
    }
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    read_file(wasm, &b);
    wasm_compile_opts opts = {.cache_dir = cache_dir};
    wasm_module *m = NULL;
    err e;
    err_clear(&e);
    if (wasm_module_load(b.data, b.len, &opts, &m, &e) < 0)
        fprintf(stderr, "deploy %s: %s\n", name, e.msg);
    buf_free(&b);
    free(wasm);
    return m;
}

static void request(http_request *r, const char *method, const char *target, const char *body)
{
    http_request_init(r);
    buf_init(&r->body, BUF_UNLIMITED);
    r->method = xstrdup(method);
    r->target = xstrdup(target);
    http_headers_add_str(&r->headers, "Host", "tenant.example:8080");
    if (body)
        buf_append_str(&r->body, body);
}

/* Runs `target` against m with default limits unless cfg is given. */
static void run(const wasm_module *m, const wasm_config *cfg, const char *target,
                wasm_response *resp)
{
    wasm_config def;
    wasm_config_init(&def);
    def.tenant = "test";
    http_request req;
    request(&req, "GET", target, NULL);
    err e;
    err_clear(&e);
    assert_int_equal(wasm_run(m, cfg ? cfg : &def, &req, resp, &e), 0);
    http_request_free(&req);
}

static const char *body_of(wasm_response *resp)
{
    return resp->body.data ? resp->body.data : "";
}

/* The module still answers after whatever happened before. */
static void assert_still_serving(void)
{
    wasm_response resp;
    run(hello, NULL, "/", &resp);
    assert_int_equal(resp.status, 200);
    assert_string_equal(body_of(&resp), "hello from wasm\n");
    wasm_response_free(&resp);
}

/* A writer that keeps what it is given. */
typedef struct capture {
    http_writer w;
    int status;
    http_headers headers;
    buf body;
    bool ended;
} capture;

static int cap_start(http_writer *w, int status, const http_headers *h, int64_t len)
{
    capture *c = (capture *)w;
    c->status = status;
    for (size_t i = 0; h && i < h->count; i++)
        http_headers_add_str(&c->headers, h->items[i].name, h->items[i].value);
    return 0;
}

static int cap_write(http_writer *w, const void *data, size_t len)
{
    return buf_append(&((capture *)w)->body, data, len);
}

static void cap_end(http_writer *w) { ((capture *)w)->ended = true; }

static void capture_init(capture *c)
{
    memset(c, 0, sizeof *c);
    c->w.start = cap_start;
    c->w.write = cap_write;
    c->w.end = cap_end;
    http_headers_init(&c->headers);
    buf_init(&c->body, BUF_UNLIMITED);
}

static void capture_free(capture *c)
{
    http_headers_free(&c->headers);
    buf_free(&c->body);
}

/* ---- setup -------------------------------------------------------------- */

static int setup(void **state)
{
    if (!mkdtemp(tmp))
        return -1;
    cache_dir = xasprintf("%s/cache", tmp);
    data_dir = xasprintf("%s/data", tmp);
    if (sh("mkdir -p %s && printf 'hi from a file\\n' > %s/hello.txt && "
           "printf secret > %s/secret.txt && ln -s .. %s/escape",
           data_dir, data_dir, tmp, data_dir) != 0)
        return -1;
    hello = deploy_fixture("hello");
    echo = deploy_fixture("echo");
    guest = deploy_fixture("guest");
    bigmem = deploy_fixture("bigmem");
    return hello && echo && guest && bigmem ? 0 : -1;
}

static int teardown(void **state)
{
    wasm_module_free(hello);
    wasm_module_free(echo);
    wasm_module_free(guest);
    wasm_module_free(bigmem);
    sh("rm -rf %s", tmp);
    free(cache_dir);
    free(data_dir);
    return 0;
}

/* ---- tests -------------------------------------------------------------- */

static void hello_answers_with_cgi_headers_and_body(void **state)
{
    wasm_config cfg;
    wasm_config_init(&cfg);
    http_request req;
    request(&req, "GET", "/", NULL);
    capture c;
    capture_init(&c);
    assert_int_equal(wasm_handle(hello, &cfg, &req, &c.w), 0);
    assert_true(c.ended);
    assert_int_equal(c.status, 200);
    assert_string_equal(http_headers_get(&c.headers, "Content-Type"), "text/plain");
    assert_string_equal(c.body.data, "hello from wasm\n");
    capture_free(&c);
    http_request_free(&req);
}

static void echo_sees_request_vars_and_stdin(void **state)
{
    wasm_var vars[] = {{"GREETING", "hej"}, {"REQUEST_METHOD", "spoofed"}};
    wasm_config cfg;
    wasm_config_init(&cfg);
    cfg.script_name = "/app";
    cfg.vars = vars;
    cfg.nvars = 2;
    http_request req;
    request(&req, "POST", "/app/some%20path/x?a=1&b=two", "the posted body");
    http_headers_add_str(&req.headers, "X-Test", "abc");
    http_headers_add_str(&req.headers, "Accept", "text/html");
    http_headers_add_str(&req.headers, "Accept", "*/*");
    http_headers_add_str(&req.headers, "Content-Type", "text/plain");
    http_headers_add_str(&req.headers, "Proxy", "http://evil");
    wasm_response resp;
    err e;
    err_clear(&e);
    assert_int_equal(wasm_run(echo, &cfg, &req, &resp, &e), 0);
    assert_int_equal(resp.status, 201);
    assert_string_equal(http_headers_get(&resp.headers, "X-Echo"), "yes");
    const char *b = body_of(&resp);
    assert_non_null(strstr(b, "REQUEST_METHOD=POST\n"));
    assert_non_null(strstr(b, "SCRIPT_NAME=/app\n"));
    assert_non_null(strstr(b, "PATH_INFO=/some path/x\n"));
    assert_non_null(strstr(b, "X_RAW_PATH_INFO=/some%20path/x\n"));
    assert_non_null(strstr(b, "QUERY_STRING=a=1&b=two\n"));
    assert_non_null(strstr(b, "HTTP_X_TEST=abc\n"));
    assert_non_null(strstr(b, "HTTP_ACCEPT=text/html, */*\n"));
    assert_non_null(strstr(b, "CONTENT_TYPE=text/plain\n"));
    assert_non_null(strstr(b, "CONTENT_LENGTH=15\n"));
    assert_non_null(strstr(b, "SERVER_NAME=tenant.example\n"));
    assert_non_null(strstr(b, "SERVER_PORT=8080\n"));
    assert_non_null(strstr(b, "SERVER_PROTOCOL=HTTP/1.1\n"));
    assert_non_null(strstr(b, "X_FULL_URL=http://tenant.example:8080/app/some%20path/x?a=1&b=two\n"));
    assert_non_null(strstr(b, "GREETING=hej\n"));
    assert_non_null(strstr(b, "HTTP_PROXY=(unset)\n"));
    assert_non_null(strstr(b, "argc=1 argv0=/app\n"));
    assert_non_null(strstr(b, "stdin=the posted body"));
    wasm_response_free(&resp);
    http_request_free(&req);
}

static void path_info_is_decoded_but_never_holds_nul(void **state)
{
    wasm_response resp;
    run(echo, NULL, "/%41b%2", &resp);
    assert_non_null(strstr(body_of(&resp), "PATH_INFO=/Ab%2\n"));
    wasm_response_free(&resp);
    run(echo, NULL, "/%00x%zz?q", &resp);
    assert_non_null(strstr(body_of(&resp), "PATH_INFO=/%00x%zz\n"));
    assert_non_null(strstr(body_of(&resp), "QUERY_STRING=q\n"));
    wasm_response_free(&resp);
}

static void large_bodies_round_trip_and_output_is_capped(void **state)
{
    size_t n = 4u << 20;
    char *big = xmalloc(n + 1);
    memset(big, 'x', n);
    big[n] = '\0';
    wasm_config cfg;
    wasm_config_init(&cfg);
    http_request req;
    request(&req, "POST", "/", big);
    wasm_response resp;
    err e;
    err_clear(&e);
    assert_int_equal(wasm_run(echo, &cfg, &req, &resp, &e), 0);
    assert_int_equal(resp.status, 201);
    const char *at = strstr(body_of(&resp), "stdin=");
    assert_non_null(at);
    assert_int_equal(strlen(at + 6), n);
    wasm_response_free(&resp);
    cfg.limits.max_output = 1 << 20; /* the echo is bigger */
    assert_int_equal(wasm_run(echo, &cfg, &req, &resp, &e), 0);
    assert_int_equal(resp.status, 500);
    assert_non_null(resp.error);
    wasm_response_free(&resp);
    http_request_free(&req);
    free(big);
}

static void each_trap_kind_answers_500_and_the_process_keeps_serving(void **state)
{
    static const struct {
        const char *query;
        wasm_trap trap;
    } cases[] = {
        {"oob", WASM_TRAP_OOB},
        {"unreachable", WASM_TRAP_UNREACHABLE},
        {"stack", WASM_TRAP_EXHAUSTION},
        {"div0", WASM_TRAP_DIV_BY_ZERO},
        {"overflow", WASM_TRAP_INT_OVERFLOW},
        {"conversion", WASM_TRAP_INVALID_CONVERSION},
        {"indirect", WASM_TRAP_CALL_INDIRECT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char target[64];
        snprintf(target, sizeof target, "/?%s", cases[i].query);
        wasm_response resp;
        run(guest, NULL, target, &resp);
        if (resp.trap != cases[i].trap)
            fail_msg("%s: trap %s, want %s", cases[i].query, wasm_trap_name(resp.trap),
                     wasm_trap_name(cases[i].trap));
        assert_int_equal(resp.status, 500);
        assert_non_null(resp.error);
        wasm_response_free(&resp);
        assert_still_serving();
    }
}

static void the_trap_kind_is_logged(void **state)
{
    char *path = xasprintf("%s/log", tmp);
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    wasm_response resp;
    run(guest, NULL, "/?div0", &resp);
    wasm_response_free(&resp);
    run(guest, NULL, "/?stderr", &resp);
    wasm_response_free(&resp);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    buf log;
    buf_init(&log, BUF_UNLIMITED);
    read_file(path, &log);
    assert_non_null(strstr(log.data, "wasm[test]: GET /?div0: trap: integer divide by zero"));
    assert_non_null(strstr(log.data, "wasm[test] first line"));
    assert_non_null(strstr(log.data, "wasm[test] second line"));
    buf_free(&log);
    free(path);
}

static void an_infinite_loop_is_stopped_by_the_cpu_limit(void **state)
{
    wasm_response resp;
    run(guest, NULL, "/?loop", &resp);
    assert_int_equal(resp.trap, WASM_TRAP_CPU_LIMIT);
    assert_int_equal(resp.status, 503); /* as the JavaScript tier's CPU limit */
    /* 50 ms budget; the sanitizers and a busy machine leave slack. */
    assert_true(resp.cpu_ns >= 45000000u);
    assert_true(resp.wall_ns < 1000000000u);
    wasm_response_free(&resp);
    assert_still_serving();
}

static void a_loop_spinning_in_host_calls_is_stopped_too(void **state)
{
    wasm_response resp;
    run(guest, NULL, "/?hostloop", &resp);
    assert_int_equal(resp.trap, WASM_TRAP_CPU_LIMIT);
    assert_true(resp.wall_ns < 1000000000u);
    wasm_response_free(&resp);
    assert_still_serving();
}

static wasm_module *load_wat(const char *wat, err *e);

/* One fd_write of 64 MiB without a newline to stderr: the host searched
 * the rest of the chunk for a newline at every 4 KiB line it cut, seconds
 * of host work that no limit could stop. Now the search stops at the
 * line's length and nothing is read past the logged lines' cap. */
static void a_stderr_flood_costs_the_host_little(void **state)
{
    err e;
    err_clear(&e);
    wasm_module *m = load_wat(
        "(module (import \"wasi_snapshot_preview1\" \"fd_write\""
        "  (func $w (param i32 i32 i32 i32) (result i32)))"
        " (memory (export \"memory\") 1025)"
        " (data (i32.const 67108880) \"Content-Type: text/plain\\n\\nsurvived\\n\")"
        " (func (export \"_start\")"
        "  (i32.store (i32.const 67108864) (i32.const 0))"
        "  (i32.store (i32.const 67108868) (i32.const 67108864))"
        "  (drop (call $w (i32.const 2) (i32.const 67108864) (i32.const 1) (i32.const 67108872)))"
        "  (i32.store (i32.const 67108864) (i32.const 67108880))"
        "  (i32.store (i32.const 67108868) (i32.const 35))"
        "  (drop (call $w (i32.const 1) (i32.const 67108864) (i32.const 1) (i32.const 67108872)))))",
        &e);
    assert_non_null(m);
    wasm_config cfg;
    wasm_config_init(&cfg);
    cfg.tenant = "test";
    cfg.limits.cpu_ms = 2000;
    fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    dup2(null, 2); /* the 1000 lines of 4 KiB that are logged */
    wasm_response resp;
    run(m, &cfg, "/", &resp);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(null);
    assert_int_equal(resp.trap, WASM_TRAP_NONE);
    assert_int_equal(resp.status, 200);
    assert_string_equal(body_of(&resp), "survived\n");
    assert_true(resp.wall_ns < 1000000000u);
    wasm_response_free(&resp);
    wasm_module_free(m);
}

/* One fd_read of a file with 64 Mi empty iovecs is 64 Mi read(2) calls
 * inside one host call: the CPU limit must stop it midway, not after. */
static void a_huge_iovec_array_is_stopped_by_the_cpu_limit(void **state)
{
    err e;
    err_clear(&e);
    wasm_module *m = load_wat(
        "(module (import \"wasi_snapshot_preview1\" \"path_open\""
        "  (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))"
        " (import \"wasi_snapshot_preview1\" \"fd_read\""
        "  (func $read (param i32 i32 i32 i32) (result i32)))"
        " (memory (export \"memory\") 8192)"
        " (data (i32.const 16) \"hello.txt\")"
        " (func (export \"_start\")"
        "  (if (call $open (i32.const 3) (i32.const 0) (i32.const 16) (i32.const 9) (i32.const 0)"
        "       (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 8)) (then unreachable))"
        "  (loop $l (drop (call $read (i32.load (i32.const 8)) (i32.const 65536)"
        "                  (i32.const 67100000) (i32.const 32))) (br $l))))",
        &e);
    assert_non_null(m);
    wasm_config cfg;
    wasm_config_init(&cfg);
    cfg.tenant = "test";
    cfg.preopen_dir = data_dir;
    cfg.preopen_guest = "/data";
    cfg.limits.cpu_ms = 100;
    cfg.limits.memory_pages = 8192;
    wasm_response resp;
    run(m, &cfg, "/", &resp);
    assert_int_equal(resp.trap, WASM_TRAP_CPU_LIMIT);
    assert_true(resp.wall_ns < 1000000000u);
    wasm_response_free(&resp);
    wasm_module_free(m);
    assert_still_serving();
}

static void a_sleep_past_the_wall_limit_is_stopped(void **state)
{
    wasm_config cfg;
    wasm_config_init(&cfg);
    cfg.limits.wall_ms = 200;
    wasm_response resp;
    run(guest, &cfg, "/?sleepforever", &resp);
    assert_int_equal(resp.trap, WASM_TRAP_WALL_LIMIT);
    assert_int_equal(resp.status, 504);
    assert_true(resp.wall_ns >= 190000000u && resp.wall_ns < 2000000000u);
    wasm_response_free(&resp);
    assert_still_serving();
}

static void a_short_sleep_uses_poll_oneoff(void **state)
{
    wasm_response resp;
    run(guest, NULL, "/?sleep", &resp);
    assert_int_equal(resp.trap, WASM_TRAP_NONE);
    assert_string_equal(body_of(&resp), "slept\n");
    assert_true(resp.wall_ns >= 20000000u);
    assert_true(resp.cpu_ns < 20000000u); /* slept, did not spin */
    wasm_response_free(&resp);
}

static void memory_above_the_cap_is_refused(void **state)
{
    wasm_config cfg;
    wasm_config_init(&cfg);
    cfg.limits.memory_pages = 256; /* 16 MiB; the guest asks for 64 */
    wasm_response resp;
    run(guest, &cfg, "/?memory", &resp);
    assert_int_equal(resp.trap, WASM_TRAP_NONE);
    assert_string_equal(body_of(&resp), "malloc failed\n");
    wasm_response_free(&resp);
    cfg.limits.memory_pages = 2048;
    run(guest, &cfg, "/?memory", &resp);
    assert_string_equal(body_of(&resp), "allocated\n");
    wasm_response_free(&resp);
    /* A module whose initial memory is above the cap cannot start. */
    cfg.limits.memory_pages = 256;
    run(bigmem, &cfg, "/", &resp);
    assert_int_equal(resp.trap, WASM_TRAP_MEMORY_LIMIT);
    assert_int_equal(resp.status, 507);
    wasm_response_free(&resp);
    run(bigmem, NULL, "/", &resp);
    assert_int_equal(resp.status, 200);
    assert_string_equal(body_of(&resp), "1\n");
    wasm_response_free(&resp);
    assert_still_serving();
}

static void proc_exit_is_a_clean_end_with_a_code(void **state)
{
    wasm_response resp;
    run(guest, NULL, "/?exit", &resp);
    assert_int_equal(resp.trap, WASM_TRAP_NONE);
    assert_int_equal(resp.exit_code, 3);
    assert_int_equal(resp.status, 200);
    assert_string_equal(body_of(&resp), "exiting\n");
    wasm_response_free(&resp);
}

static void each_request_gets_a_fresh_memory(void **state)
{
    for (int i = 0; i < 3; i++) {
        wasm_response resp;
        run(guest, NULL, "/?counter", &resp);
        assert_string_equal(body_of(&resp), "counter=1\n");
        wasm_response_free(&resp);
        run(guest, NULL, "/?scribble", &resp);
        assert_string_equal(body_of(&resp), "clean\n");
        wasm_response_free(&resp);
        run(guest, NULL, "/?smallscribble", &resp);
        assert_string_equal(body_of(&resp), "clean\n");
        wasm_response_free(&resp);
        run(echo, NULL, "/", &resp); /* another module in between */
        wasm_response_free(&resp);
    }
}

static void malformed_cgi_output_and_redirects(void **state)
{
    wasm_response resp;
    run(guest, NULL, "/?noheaders", &resp);
    assert_int_equal(resp.status, 500);
    assert_non_null(resp.error);
    wasm_response_free(&resp);
    run(guest, NULL, "/?splitheader", &resp); /* a bare CR must not split the response */
    assert_int_equal(resp.status, 500);
    assert_null(http_headers_get(&resp.headers, "Set-Cookie"));
    wasm_response_free(&resp);
    run(guest, NULL, "/?redirect", &resp);
    assert_int_equal(resp.status, 302);
    assert_string_equal(http_headers_get(&resp.headers, "Location"), "https://example.com/");
    wasm_response_free(&resp);
}

static void the_preopened_directory_is_read_only_and_closed_below(void **state)
{
    wasm_config cfg;
    wasm_config_init(&cfg);
    cfg.preopen_dir = data_dir;
    cfg.preopen_guest = "/data";
    wasm_response resp;
    run(guest, &cfg, "/?files", &resp);
    assert_int_equal(resp.status, 200);
    const char *b = body_of(&resp);
    assert_non_null(strstr(b, "read=hi from a file\n"));
    assert_null(strstr(b, "OPENED"));
    assert_non_null(strstr(b, "dotdot="));
    assert_non_null(strstr(b, "symlink="));
    assert_non_null(strstr(b, "create="));
    assert_non_null(strstr(b, "[hello.txt]"));
    assert_non_null(strstr(b, "raw=76,76,76\n")); /* ENOTCAPABLE from the host itself */
    assert_non_null(strstr(b, "\nstat=15\n")); /* stat() answers, as open() does */
    assert_null(strstr(b, "stat_escape=OPENED"));
    wasm_response_free(&resp);
    /* Without a preopened directory there is no file system at all. */
    run(guest, NULL, "/?files", &resp);
    assert_non_null(strstr(body_of(&resp), "read=FAILED\n"));
    wasm_response_free(&resp);
}

static void an_invalid_module_is_rejected_with_a_clear_message(void **state)
{
    wasm_compile_opts opts = {.cache_dir = cache_dir};
    wasm_module *m = NULL;
    err e;
    err_clear(&e);
    static const char truncated[] = "\0asm\1\0\0\0\1\5\1\x60\0";
    assert_int_equal(wasm_module_load(truncated, sizeof truncated - 1, &opts, &m, &e), -EINVAL);
    assert_null(m);
    assert_non_null(strstr(e.msg, "invalid module"));
    assert_non_null(strstr(e.msg, "section"));
    err_clear(&e);
    assert_int_equal(wasm_module_load("hello", 5, &opts, &m, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "magic"));
}

static wasm_module *load_wat(const char *wat, err *e)
{
    char *src = xasprintf("%s/m.wat", tmp), *bin = xasprintf("%s/m.wasm", tmp);
    FILE *f = fopen(src, "w");
    fputs(wat, f);
    fclose(f);
    wasm_module *m = NULL;
    if (sh("wat2wasm %s -o %s", src, bin) == 0) {
        buf b;
        buf_init(&b, BUF_UNLIMITED);
        read_file(bin, &b);
        wasm_compile_opts opts = {.cache_dir = cache_dir};
        wasm_module_load(b.data, b.len, &opts, &m, e);
        buf_free(&b);
    }
    free(src);
    free(bin);
    return m;
}

static void unsupported_imports_and_exports_are_rejected(void **state)
{
    err e;
    err_clear(&e);
    assert_null(load_wat("(module (import \"env\" \"launch\" (func)) (memory (export \"memory\") 1)"
                         " (func (export \"_start\")))", &e));
    assert_non_null(strstr(e.msg, "imports env.launch"));
    err_clear(&e);
    assert_null(load_wat("(module (import \"wasi_snapshot_preview1\" \"fd_write\" (func (param i32)))"
                         " (memory (export \"memory\") 1) (func (export \"_start\")))", &e));
    assert_non_null(strstr(e.msg, "fd_write with a wrong signature"));
    err_clear(&e);
    assert_null(load_wat("(module (memory (export \"memory\") 1))", &e));
    assert_non_null(strstr(e.msg, "_start"));
    /* Kinds and signatures the host would call or read wrongly: a
     * `_start` with parameters read the host's registers as arguments. */
    err_clear(&e);
    assert_null(load_wat("(module (memory (export \"memory\") 1) (func (export \"_start\")"
                         " (param i64 i64 i64 i64 i64 i64 i64 i64)))", &e));
    assert_non_null(strstr(e.msg, "`_start` is not a function without parameters or results"));
    err_clear(&e);
    assert_null(load_wat("(module (memory (export \"memory\") 1) (export \"_start\" (memory 0)))",
                         &e));
    assert_non_null(strstr(e.msg, "`_start` is not a function"));
    err_clear(&e);
    assert_null(load_wat("(module (memory 1) (func (export \"memory\")) (func (export \"_start\")))",
                         &e));
    assert_non_null(strstr(e.msg, "the `memory` export is not a memory"));
    /* Non-function imports, and a module name too long for the old
     * sscanf buffer, went unchecked until cc or the linker failed. */
    err_clear(&e);
    assert_null(load_wat("(module (import \"wasi_snapshot_preview1\" \"fd_read\" (global i32))"
                         " (memory (export \"memory\") 1) (func (export \"_start\")))", &e));
    assert_non_null(strstr(e.msg, "fd_read as a memory, table or global"));
    err_clear(&e);
    char *longmod = xasprintf("(module (import \"%0200d\" \"fd_write\" (func))"
                              " (memory (export \"memory\") 1) (func (export \"_start\")))", 0);
    assert_null(load_wat(longmod, &e));
    assert_non_null(strstr(e.msg, "only wasi_snapshot_preview1 is provided"));
    free(longmod);
    err_clear(&e);
    assert_null(load_wat("(module (memory (export \"memory\") 1) (func (export \"_start\")"
                         " (drop (i32x4.splat (i32.const 1)))))", &e));
    assert_non_null(strstr(e.msg, "SIMD"));
}

static void names_that_would_close_a_c_comment_are_refused(void **state)
{
    err e;
    /* wasm2c copies import and export names into C comments as they are:
     * a name that closed the comment was compiled, and its constructor
     * ran in the host at dlopen. */
    char *marker = xasprintf("%s/injected", tmp);
    char *inject = xasprintf(
        "(module (memory (export \"memory\") 1) (func (export \"_start\"))"
        " (func (export \"x' */\\n#ifndef ONCE\\n#define ONCE\\n__attribute__((constructor))"
        " static void pwn(void) { extern int creat(const char *, unsigned);"
        " creat(\\\"%s\\\", 0644); }\\n#endif\\n/*\")))", marker);
    err_clear(&e);
    assert_null(load_wat(inject, &e));
    assert_non_null(strstr(e.msg, "export name \"x\" holds a control character, a quote or"));
    assert_int_equal(access(marker, F_OK), -1);
    free(inject);
    err_clear(&e);
    assert_null(load_wat("(module (import \"wasi_snapshot_preview1\" \"fd_write */ int x; /*\""
                         " (func)) (memory (export \"memory\") 1) (func (export \"_start\")))", &e));
    assert_non_null(strstr(e.msg, "import name \"fd_write \" holds"));
    free(marker);
}

/* A data segment costs cc about 125 bytes of memory per byte: 4 MiB of
 * data took 500 MB, so a module of 256 MiB would have taken the
 * machine's memory. The tools run under a memory limit, lowered here. */
static void the_compiler_runs_under_a_memory_limit(void **state)
{
    enum { DATA = 4 << 20 };
    static const uint8_t head[] = {
        0, 'a', 's', 'm', 1, 0, 0, 0,
        1, 4, 1, 0x60, 0, 0,                            /* type: () -> () */
        3, 2, 1, 0,                                     /* one function */
        5, 4, 1, 0, 0x80, 1,                            /* memory: 128 pages */
        7, 19, 2, 6, 'm', 'e', 'm', 'o', 'r', 'y', 2, 0, 6, '_', 's', 't', 'a', 'r', 't', 0, 0,
        10, 4, 1, 2, 0, 0x0b,                           /* an empty body */
        11, 0x89, 0x80, 0x80, 0x02,                     /* data: 9 + DATA bytes */
        1, 0, 0x41, 0, 0x0b, 0x80, 0x80, 0x80, 0x02,    /* at 0, DATA bytes */
    };
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    buf_append(&b, head, sizeof head);
    for (size_t i = 0; i < DATA; i++) {
        uint8_t v = (uint8_t)(i * 7 + 1);
        buf_append(&b, &v, 1);
    }
    setenv("ATOLL_WASM_TOOL_MEMORY_MB", "300", 1);
    wasm_compile_opts opts = {.cache_dir = cache_dir};
    wasm_module *m = NULL;
    err e;
    err_clear(&e);
    assert_true(wasm_module_load(b.data, b.len, &opts, &m, &e) < 0);
    unsetenv("ATOLL_WASM_TOOL_MEMORY_MB");
    assert_null(m);
    assert_non_null(strstr(e.msg, "memory exhausted"));
    buf_free(&b);
}

static void the_same_bytes_again_compile_nothing(void **state)
{
    struct stat before, after;
    assert_int_equal(stat(wasm_module_path(hello), &before), 0);
    uint64_t compiles = wasm_compile_count();
    wasm_module *again = deploy_fixture("hello");
    assert_non_null(again);
    assert_true(wasm_module_was_cached(again));
    assert_int_equal(wasm_compile_count(), compiles);
    assert_string_equal(wasm_module_path(again), wasm_module_path(hello));
    assert_int_equal(stat(wasm_module_path(again), &after), 0);
    assert_int_equal(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
    assert_int_equal(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
    wasm_response resp;
    run(again, NULL, "/", &resp);
    assert_string_equal(body_of(&resp), "hello from wasm\n");
    wasm_response_free(&resp);
    wasm_module_free(again);
    assert_still_serving(); /* the first handle is still loaded */
}

/* Runs on several threads at once, a runaway among them. */
static void *thread_main(void *arg)
{
    const char *target = arg;
    for (int i = 0; i < 3; i++) {
        wasm_response resp;
        run(guest, NULL, target, &resp);
        if (strcmp(target, "/?loop") == 0)
            assert_int_equal(resp.trap, WASM_TRAP_CPU_LIMIT);
        else
            assert_string_equal(body_of(&resp), "counter=1\n");
        wasm_response_free(&resp);
        /* Faults on threads other than main: their own stacks and guards. */
        run(guest, NULL, "/?stack", &resp);
        assert_int_equal(resp.trap, WASM_TRAP_EXHAUSTION);
        wasm_response_free(&resp);
        run(guest, NULL, "/?oob", &resp);
        assert_int_equal(resp.trap, WASM_TRAP_OOB);
        wasm_response_free(&resp);
    }
    return NULL;
}

static void concurrent_runs_keep_to_their_own(void **state)
{
    pthread_t t[4];
    const char *targets[4] = {"/?loop", "/?counter", "/?counter", "/?loop"};
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, thread_main, (void *)targets[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
}

static wasm_module *async_mod;
static int async_runs;

static void on_run(wasm_run_req *q, int status)
{
    assert_int_equal(status, 0);
    async_runs++;
}

static void on_load(wasm_load_req *q, int status, wasm_module *m)
{
    assert_int_equal(status, 0);
    async_mod = m;
}

static void the_thread_pool_wrappers_load_and_run(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    char *wasm = xasprintf("%s/hello.wasm", tmp);
    assert_true(read_file(wasm, &b));
    wasm_compile_opts opts = {.cache_dir = cache_dir};
    wasm_load_req lq;
    assert_int_equal(wasm_module_load_async(&loop, &lq, b.data, b.len, &opts, on_load), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_non_null(async_mod);

    wasm_config cfg;
    wasm_config_init(&cfg);
    http_request req;
    request(&req, "GET", "/", NULL);
    capture c;
    capture_init(&c);
    wasm_run_req rq;
    assert_int_equal(wasm_run_async(&loop, &rq, async_mod, &cfg, &req, &c.w, on_run), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(async_runs, 1);
    assert_int_equal(c.status, 200);
    assert_string_equal(c.body.data, "hello from wasm\n");
    capture_free(&c);
    http_request_free(&req);
    wasm_module_free(async_mod);
    buf_free(&b);
    free(wasm);
    uv_loop_close(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hello_answers_with_cgi_headers_and_body),
        cmocka_unit_test(echo_sees_request_vars_and_stdin),
        cmocka_unit_test(path_info_is_decoded_but_never_holds_nul),
        cmocka_unit_test(each_trap_kind_answers_500_and_the_process_keeps_serving),
        cmocka_unit_test(the_trap_kind_is_logged),
        cmocka_unit_test(an_infinite_loop_is_stopped_by_the_cpu_limit),
        cmocka_unit_test(a_loop_spinning_in_host_calls_is_stopped_too),
        cmocka_unit_test(a_stderr_flood_costs_the_host_little),
        cmocka_unit_test(a_huge_iovec_array_is_stopped_by_the_cpu_limit),
        cmocka_unit_test(a_sleep_past_the_wall_limit_is_stopped),
        cmocka_unit_test(large_bodies_round_trip_and_output_is_capped),
        cmocka_unit_test(a_short_sleep_uses_poll_oneoff),
        cmocka_unit_test(memory_above_the_cap_is_refused),
        cmocka_unit_test(proc_exit_is_a_clean_end_with_a_code),
        cmocka_unit_test(each_request_gets_a_fresh_memory),
        cmocka_unit_test(malformed_cgi_output_and_redirects),
        cmocka_unit_test(the_preopened_directory_is_read_only_and_closed_below),
        cmocka_unit_test(an_invalid_module_is_rejected_with_a_clear_message),
        cmocka_unit_test(unsupported_imports_and_exports_are_rejected),
        cmocka_unit_test(names_that_would_close_a_c_comment_are_refused),
        cmocka_unit_test(the_compiler_runs_under_a_memory_limit),
        cmocka_unit_test(the_same_bytes_again_compile_nothing),
        cmocka_unit_test(concurrent_runs_keep_to_their_own),
        cmocka_unit_test(the_thread_pool_wrappers_load_and_run),
    };
    return cmocka_run_group_tests_name("wasm", tests, setup, teardown);
}
