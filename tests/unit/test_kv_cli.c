/* Unit tests for `atoll kv` (src/cli/kv.c, compiled into this test since
 * the CLI is not part of libatoll): put, get, list and delete against a
 * SQLite state directory, with stdout captured in a temporary file. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli/kv.c"
#include "support/redis_server.h"

static char dir[64];

/* Runs `atoll kv ARGS...` and returns its exit status; *out gets stdout. */
static int run(char **out, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, out);
    argv[argc++] = "kv";
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 31;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    fflush(stdout);
    FILE *tmp = tmpfile();
    int saved = dup(1);
    dup2(fileno(tmp), 1);
    int rc = cli_kv(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    long n = ftell(tmp) >= 0 ? lseek(fileno(tmp), 0, SEEK_END) : 0;
    *out = calloc(1, (size_t)n + 1);
    lseek(fileno(tmp), 0, SEEK_SET);
    if (n > 0 && read(fileno(tmp), *out, (size_t)n) != n)
        n = 0;
    fclose(tmp);
    return rc;
}

#define NS "--state-dir", dir, "--namespace", "cli-ns"

static void put_get_list_delete(void **state)
{
    char *out;
    assert_int_equal(run(&out, "put", NS, "greeting", "hello world", NULL), 0);
    free(out);
    assert_int_equal(run(&out, "put", NS, "--ttl", "3600", "--metadata", "{\"v\":1}", "other",
                         "x", NULL), 0);
    free(out);
    assert_int_equal(run(&out, "get", NS, "greeting", NULL), 0);
    assert_string_equal(out, "hello world");
    free(out);
    assert_int_equal(run(&out, "list", NS, NULL), 0);
    assert_non_null(strstr(out, "{\"name\": \"greeting\"}"));
    assert_non_null(strstr(out, "\"name\": \"other\", \"expiration\": "));
    assert_non_null(strstr(out, "\"metadata\": {\"v\":1}}"));
    free(out);
    assert_int_equal(run(&out, "list", NS, "--limit", "1", NULL), 0);
    assert_non_null(strstr(out, "greeting"));
    assert_null(strstr(out, "other"));
    free(out);
    assert_int_equal(run(&out, "delete", NS, "greeting", NULL), 0);
    free(out);
    assert_int_equal(run(&out, "get", NS, "greeting", NULL), 1); /* not found */
    free(out);
}

static void errors_and_usage(void **state)
{
    char *out;
    assert_int_equal(run(&out, "put", NS, "--ttl", "5", "k", "v", NULL), 1); /* below 60 s */
    free(out);
    assert_int_equal(run(&out, "put", NS, ".", "v", NULL), 1);
    free(out);
    assert_int_equal(run(&out, "get", NS, NULL), 2);
    free(out);
    assert_int_equal(run(&out, "frobnicate", NS, "k", NULL), 2);
    free(out);
    assert_int_equal(run(&out, "get", "--namespace", "x", "k", NULL), 2);
    free(out);
    /* metadata must be JSON: getWithMetadata and list parse it */
    assert_int_equal(run(&out, "put", NS, "--metadata", "{bad", "mk", "v", NULL), 2);
    free(out);
    assert_int_equal(run(&out, "get", NS, "mk", NULL), 1);
    free(out);
}

/* Options may come after the key and value, as in the README. */
static void options_after_arguments(void **state)
{
    char *out;
    assert_int_equal(run(&out, "--help", NULL), 0); /* atoll kv --help */
    assert_non_null(strstr(out, "usage: atoll kv get"));
    free(out);
    assert_int_equal(run(&out, "put", NS, "late", "v", "--ttl", "3600", "--metadata", "{\"a\":1}", NULL), 0);
    free(out);
    assert_int_equal(run(&out, "list", NS, "--prefix", "late", NULL), 0);
    if (!strstr(out, "\"name\": \"late\", \"expiration\": ") || !strstr(out, "\"metadata\": {\"a\":1}"))
        fail_msg("list: %s", out);
    free(out);
    assert_int_equal(run(&out, "put", NS, "--", "-dash", "v", NULL), 0);
    free(out);
    assert_int_equal(run(&out, "get", NS, "--", "-dash", NULL), 0);
    assert_string_equal(out, "v");
    free(out);
}

static void put_from_file(void **state)
{
    char *path = xasprintf("%s/value.bin", dir), *out;
    FILE *f = fopen(path, "wb");
    fwrite("a\0b", 1, 3, f);
    fclose(f);
    assert_int_equal(run(&out, "put", NS, "--path", path, "file", NULL), 0);
    free(out);
    assert_int_equal(run(&out, "get", NS, "file", NULL), 0);
    assert_memory_equal(out, "a\0b", 3);
    free(out);
    free(path);
}

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/atoll-kvcli-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    test_rm_rf(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_get_list_delete),
        cmocka_unit_test(errors_and_usage),
        cmocka_unit_test(options_after_arguments),
        cmocka_unit_test(put_from_file),
    };
    return cmocka_run_group_tests_name("kv/cli", tests, setup, teardown);
}
