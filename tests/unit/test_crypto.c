/* Unit tests for the Web Crypto API (src/js/api/crypto*.c, subtle.c): the
 * worker fixture tests/fixtures/workers/crypto.js runs known-answer
 * vectors, round trips and error paths in JavaScript and answers "ok N" or
 * its failures; these tests drive it through an isolate on a real loop,
 * plus the thread-pool paths (PBKDF2): the result, CPU time charged to the
 * request, and an isolate freed while work is still on the pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "js/isolate.h"
#include "support/capture.h"

#define FIXTURE "tests/fixtures/workers/crypto.js"

static uv_loop_t loop;


static iso *load_file(const char *path, uint64_t cpu_ms, size_t memory_limit)
{
    iso_options opt;
    iso_options_defaults(&opt);
    opt.cpu_ms = cpu_ms;
    if (memory_limit)
        opt.memory_limit = memory_limit;
    err e;
    err_clear(&e);
    iso *i = NULL;
    if (iso_new(&loop, path, &opt, &i, &e) != 0)
        fail_msg("iso_new: %s", e.msg);
    return i;
}

static iso *load(uint64_t cpu_ms) { return load_file(FIXTURE, cpu_ms, 0); }

/* Dispatches GET target; runs the loop until the response ended (or, with
 * wait false, returns at once). The caller frees c->body. */
static void get(iso *i, capture *c, const char *target, bool wait)
{
    http_request req;
    http_request_init(&req);
    req.method = xstrdup("GET");
    req.target = xstrdup(target);
    http_headers_add_str(&req.headers, "Host", "crypto.test");
    capture_init(c);
    iso_dispatch(i, &req, &c->w);
    while (wait && c->ends == 0 && uv_run(&loop, UV_RUN_ONCE))
        ;
    assert_int_equal(c->ends, 1);
    buf_append(&c->body, "", 0);
    http_request_free(&req);
}

static void finish(iso *i)
{
    iso_free(i);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_false(uv_loop_alive(&loop));
}

static void vectors_round_trips_and_errors(void **state)
{
    /* A generous CPU budget: the suite generates RSA keys under ASan. */
    iso *i = load(5000);
    capture c;
    get(i, &c, "/", true);
    if (c.status != 200 || strncmp(c.body.data, "ok ", 3) != 0)
        fail_msg("status %d:\n%s", c.status, c.body.data);
    printf("crypto.js: %s\n", c.body.data);
    buf_free(&c.body);
    finish(i);
}

static void pbkdf2_on_the_thread_pool(void **state)
{
    iso *i = load(5000);
    capture c;
    get(i, &c, "/pbkdf2-pool", true);
    assert_int_equal(c.status, 200);
    /* PBKDF2-HMAC-SHA256("password", "salt", 100000, 32), by Python's hashlib. */
    assert_string_equal(c.body.data, "0394a2ede332c9a13eb82e9b24631604c31df978b4e2f0fbd2c549944f9d79a5");
    buf_free(&c.body);
    get(i, &c, "/pbkdf2-many", true);
    assert_int_equal(c.status, 200);
    assert_string_equal(c.body.data, "AES-CBC,AES-CBC,AES-CBC,AES-CBC");
    buf_free(&c.body);
    finish(i);
}

/* Jobs past the two an isolate may have on the pool wait for them, off the
 * loop (they ran on it, where no CPU check could stop them); past 64
 * waiting, a call is refused. */
static void pool_jobs_queue_and_the_queue_is_bounded(void **state)
{
    iso *i = load(60000);
    capture c;
    get(i, &c, "/pbkdf2-queue", true);
    assert_int_equal(c.status, 200);
    /* PBKDF2-HMAC-SHA1("password", "salt", 20000, 20), by Python's hashlib. */
    assert_string_equal(c.body.data, "66 1 386a32235743637727d7eaf1067633823173df61 OperationError");
    buf_free(&c.body);
    finish(i);
}

static void pool_cpu_time_counts_against_the_budget(void **state)
{
    iso *i = load(1);
    capture c;
    get(i, &c, "/pbkdf2-pool", true);
    assert_int_equal(c.status, 503);
    assert_non_null(strstr(c.body.data, "CPU time"));
    assert_true(iso_broken(i));
    buf_free(&c.body);
    finish(i);
}

static void isolate_freed_with_work_on_the_pool(void **state)
{
    iso *i = load(5000);
    capture c;
    /* The handler answers while its PBKDF2 is still on the pool; the
     * isolate goes at once, and the job comes back to nothing. */
    get(i, &c, "/pbkdf2-abandon", false);
    assert_string_equal(c.body.data, "started");
    buf_free(&c.body);
    finish(i);
}

static void digest_stream(void **state)
{
    iso *i = load_file("tests/fixtures/workers/digest_stream.js", 50, 0);
    capture c;
    get(i, &c, "/", true);
    assert_int_equal(c.status, 200);
    assert_string_equal(c.body.data,
                        "true true ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad "
                        "da39a3ee5e6b4b0d3255bfef95601890afd80709 stop Error "
                        "NotSupportedError TypeError"); /* a write after abort rejects with the abort's reason */
    buf_free(&c.body);
    finish(i);
}

/* Out of memory anywhere in the crypto code: a clean 507, never a crash,
 * a leak or a QuickJS assertion. The caps sweep in small steps so that
 * the failing allocation moves through the code. */
static void out_of_memory_is_clean(void **state)
{
    int served = 0;
    for (size_t cap = 400 << 10; cap < (560 << 10); cap += 1536) {
        iso *i = load_file("tests/fixtures/workers/crypto_oom.js", 5000, cap);
        capture c;
        get(i, &c, "/", true);
        if (c.status != ISO_STATUS_MEMORY)
            fail_msg("cap %zu: status %d: %s", cap, c.status, c.body.data);
        assert_true(iso_broken(i));
        served++;
        buf_free(&c.body);
        finish(i);
    }
    assert_true(served > 50);
}

int main(void)
{
    uv_loop_init(&loop);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vectors_round_trips_and_errors),
        cmocka_unit_test(pbkdf2_on_the_thread_pool),
        cmocka_unit_test(pool_jobs_queue_and_the_queue_is_bounded),
        cmocka_unit_test(pool_cpu_time_counts_against_the_budget),
        cmocka_unit_test(isolate_freed_with_work_on_the_pool),
        cmocka_unit_test(digest_stream),
        cmocka_unit_test(out_of_memory_is_clean),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    iso_cache_clear();
    uv_loop_close(&loop);
    return rc;
}
