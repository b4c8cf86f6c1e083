/* Unit tests for src/core: bounded buffers and error context. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/map.h"
#include <stdio.h>

static void buf_grows_and_stays_terminated(void **state)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(buf_append(&b, "ab", 2), 0);
    assert_int_equal(b.len, 2000);
    assert_int_equal(b.data[b.len], '\0');
    assert_int_equal(buf_printf(&b, "%d-%s", 42, "x"), 0);
    assert_string_equal(b.data + 2000, "42-x");
    buf_consume(&b, 1999);
    assert_string_equal(b.data, "b42-x");
    buf_free(&b);
}

static void buf_refuses_to_exceed_its_maximum(void **state)
{
    buf b;
    buf_init(&b, 10);
    assert_int_equal(buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(buf_append(&b, "x", 1), -E2BIG);
    assert_int_equal(b.len, 10);
    assert_int_equal(buf_printf(&b, "%s", "more"), -E2BIG);
    assert_memory_equal(b.data, "0123456789", 10);
    buf_free(&b);
}

static void err_collects_context(void **state)
{
    err e;
    err_clear(&e);
    assert_int_equal(err_set(&e, -ENOENT, "open %s", "a.js"), -ENOENT);
    assert_int_equal(err_prefix(&e, "load worker"), -ENOENT);
    assert_string_equal(e.msg, "load worker: open a.js");
    assert_int_equal(err_set(NULL, -EINVAL, "ignored"), -EINVAL);
}

static void json_strings_are_escaped(void **state)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    assert_int_equal(buf_append_json_string(&b, "a\"b\\c\nd\x01\xc3\xa9"), 0);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\nd\\u0001\xc3\xa9\"");
    buf_free(&b);
    buf_init(&b, 4);
    assert_int_equal(buf_append_json_string(&b, "too long"), -E2BIG);
    buf_free(&b);
}

static void map_puts_gets_removes_and_iterates(void **state)
{
    map m;
    map_init(&m);
    static int values[5000];
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "tenant-%d", i);
        assert_null(map_put(&m, key, &values[i]));
    }
    assert_int_equal(m.count, 5000);
    assert_ptr_equal(map_get(&m, "tenant-4321"), &values[4321]);
    assert_ptr_equal(map_put(&m, "tenant-7", &values[8]), &values[7]);
    assert_ptr_equal(map_get(&m, "tenant-7"), &values[8]);
    for (int i = 0; i < 5000; i += 2) {
        snprintf(key, sizeof key, "tenant-%d", i);
        assert_non_null(map_remove(&m, key));
    }
    assert_null(map_get(&m, "tenant-10"));
    assert_null(map_remove(&m, "tenant-10"));
    assert_ptr_equal(map_get(&m, "tenant-11"), &values[11]);
    /* Reinserting after removals reuses tombstones and keeps lookups right. */
    assert_null(map_put(&m, "tenant-10", &values[10]));
    size_t seen = 0, pos = 0;
    const char *k;
    void *v;
    while (map_next(&m, &pos, &k, &v))
        seen++;
    assert_int_equal(seen, 2501);
    assert_int_equal(m.count, 2501);
    map_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buf_grows_and_stays_terminated),
        cmocka_unit_test(buf_refuses_to_exceed_its_maximum),
        cmocka_unit_test(err_collects_context),
        cmocka_unit_test(map_puts_gets_removes_and_iterates),
        cmocka_unit_test(json_strings_are_escaped),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
