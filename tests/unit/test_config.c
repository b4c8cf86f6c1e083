/* Unit tests for src/server/config (atoll.jsonc) and src/core/jsonc. */
#include <errno.h>
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
#include "core/jsonc.h"
#include "server/config.h"

static char dir[] = "/tmp/atoll-config-XXXXXX";

static char *write_file(const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", dir, name);
    for (char *slash = strchr(path + strlen(dir) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        mkdir(path, 0755);
        *slash = '/';
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static int setup(void **state)
{
    if (!mkdtemp(dir))
        return -1;
    free(write_file("a.js", "export default { fetch() { return new Response('a') } }\n"));
    free(write_file("t/b/worker.js", "export default { fetch() { return new Response('b') } }\n"));
    return 0;
}

static int teardown(void **state)
{
    char *cmd = xasprintf("rm -rf '%s'", dir);
    int rc = system(cmd);
    free(cmd);
    return rc == 0 ? 0 : -1;
}

static void jsonc_strips_comments_and_trailing_commas(void **state)
{
    char text[] = "{ // line\n \"a\": \"x // not a comment\", /* block\n */ \"b\": [1, 2,],\n}";
    err e;
    assert_int_equal(jsonc_to_json(text, strlen(text), &e), 0);
    assert_non_null(strstr(text, "\"x // not a comment\""));
    assert_null(strstr(text, "line"));
    assert_null(strstr(text, "block"));
    assert_null(strstr(text, "2,]"));
    assert_int_equal(text[strlen(text) - 1], '}');
    /* Newlines survive, so error positions still match the file. */
    int lines = 0;
    for (char *c = text; *c; c++)
        lines += *c == '\n';
    assert_int_equal(lines, 3);
    char open[] = "{ /* never closed ";
    assert_int_equal(jsonc_to_json(open, strlen(open), &e), -EINVAL);
    assert_non_null(strstr(e.msg, "unterminated"));
}

static void full_config_is_read(void **state)
{
    char *path = write_file("atoll.jsonc",
        "// atoll config\n"
        "{\n"
        "  \"listen\": \"0.0.0.0:9000\",\n"
        "  \"admin\": { \"listen\": \"[::1]:9001\", \"public_metrics\": true },\n"
        "  \"processes\": 3,\n"
        "  \"workers\": [\n"
        "    { \"name\": \"a\", \"main\": \"a.js\", \"routes\": [\"a.test/*\", {\"pattern\": \"x.test/a\", \"zone_name\": \"x.test\"}],\n"
        "      \"vars\": { \"GREETING\": \"hi\", \"N\": 3 }, \"kv_namespaces\": [{\"binding\": \"KV\", \"id\": \"abc\"}],\n"
        "      \"limits\": { \"cpu_ms\": 10, \"memory_mb\": 64 }, \"cordon\": \"blue\",\n"
        "      \"triggers\": { \"crons\": [\"*/5 * * * *\"] }, },\n"
        "    { \"name\": \"b\", \"main\": \"t/b/worker.js\", \"route\": \"b.test/*\", \"tier\": \"js\" },\n"
        "  ],\n"
        "}\n");
    atoll_config cfg;
    err e;
    int rc = config_load(path, &cfg, &e);
    if (rc)
        fail_msg("%s", e.msg);
    assert_string_equal(cfg.listen_ip, "0.0.0.0");
    assert_int_equal(cfg.listen_port, 9000);
    assert_string_equal(cfg.admin_ip, "::1");
    assert_int_equal(cfg.admin_port, 9001);
    assert_true(cfg.public_metrics);
    assert_int_equal(cfg.processes, 3);
    assert_int_equal(cfg.nworkers, 2);
    tenant_config *a = &cfg.workers[0];
    assert_string_equal(a->name, "a");
    assert_non_null(strstr(a->main, "/a.js"));
    assert_int_equal(a->main[0], '/');
    assert_int_equal(a->nroutes, 2);
    assert_string_equal(a->routes[1], "x.test/a");
    assert_int_equal(a->nvars, 2);
    assert_string_equal(a->vars[0].name, "GREETING");
    assert_string_equal(a->vars[0].json, "\"hi\"");
    assert_string_equal(a->vars[1].json, "3");
    assert_int_equal(a->nkv, 1);
    assert_string_equal(a->kv[0].binding, "KV");
    assert_int_equal(a->limits.cpu_ms, 10);
    assert_int_equal(a->limits.memory_mb, 64);
    assert_int_equal(a->limits.wall_ms, 30000);   /* default kept */
    assert_int_equal(a->limits.subrequests, 50);
    assert_string_equal(a->cordon, "blue");
    assert_int_equal(a->ncrons, 1);
    tenant_config *b = &cfg.workers[1];
    assert_int_equal(b->nroutes, 1);
    assert_int_equal(b->tier, TIER_JS);
    assert_int_equal(cfg.nwarnings, 0);
    config_free(&cfg);
    free(path);
}

static void container_keys_are_known(void **state)
{
    char *bundle = xasprintf("%s/bundle", dir);
    mkdir(bundle, 0755);
    char *text = xasprintf("{ \"workers\": [ { \"name\": \"c\", \"tier\": \"container\", \"main\": \"%s\","
                           " \"port\": 8080, \"idle_timeout_s\": 5, \"start_timeout_ms\": 2000 } ] }", bundle);
    char *path = write_file("ctr.jsonc", text);
    atoll_config cfg;
    err e;
    int rc = config_load(path, &cfg, &e);
    if (rc)
        fail_msg("%s", e.msg);
    assert_int_equal(cfg.nwarnings, 0);
    assert_int_equal(cfg.workers[0].container_port, 8080);
    assert_int_equal(cfg.workers[0].idle_timeout_s, 5);
    assert_int_equal(cfg.workers[0].start_timeout_ms, 2000);
    config_free(&cfg);
    free(path);
    free(text);
    free(bundle);
}

static void defaults_apply_to_an_empty_config(void **state)
{
    char *path = write_file("empty.jsonc", "{}\n");
    atoll_config cfg;
    err e;
    assert_int_equal(config_load(path, &cfg, &e), 0);
    assert_string_equal(cfg.listen_ip, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8080);
    assert_int_equal(cfg.admin_port, 8081);
    assert_true(cfg.processes >= 1);
    assert_non_null(strstr(cfg.state_dir, "/.atoll"));
    config_free(&cfg);
    free(path);
}

static void wrangler_file_is_followed(void **state)
{
    free(write_file("t/b/wrangler.jsonc",
                    "{ \"name\": \"from-wrangler\", \"main\": \"worker.js\", \"routes\": [\"w.test/*\"],\n"
                    "  \"compatibility_date\": \"2024-01-01\", \"vars\": { \"A\": \"1\" } }\n"));
    char *path = write_file("w.jsonc",
        "{ \"workers\": [ { \"wrangler\": \"t/b/wrangler.jsonc\", \"name\": \"renamed\" } ] }\n");
    atoll_config cfg;
    err e;
    int rc = config_load(path, &cfg, &e);
    if (rc)
        fail_msg("%s", e.msg);
    assert_int_equal(cfg.nworkers, 1);
    assert_string_equal(cfg.workers[0].name, "renamed");
    assert_non_null(strstr(cfg.workers[0].main, "/t/b/worker.js"));
    assert_string_equal(cfg.workers[0].routes[0], "w.test/*");
    config_free(&cfg);
    free(path);
    /* The entry's vars and KV bindings override the wrangler file's of the
     * same name instead of binding the name twice. */
    free(write_file("t/b/wrangler.jsonc",
                    "{ \"name\": \"w\", \"main\": \"worker.js\", \"vars\": { \"A\": \"1\", \"B\": 2 },\n"
                    "  \"kv_namespaces\": [ { \"binding\": \"K\", \"id\": \"from-wrangler\" } ] }\n"));
    path = write_file("w2.jsonc", "{ \"workers\": [ { \"wrangler\": \"t/b/wrangler.jsonc\", \"vars\": { \"A\": \"2\" },"
                                  " \"kv_namespaces\": [ { \"binding\": \"K\", \"id\": \"from-entry\" } ] } ] }\n");
    rc = config_load(path, &cfg, &e);
    if (rc)
        fail_msg("%s", e.msg);
    assert_int_equal(cfg.workers[0].nvars, 2);
    assert_string_equal(cfg.workers[0].vars[0].name, "A");
    assert_string_equal(cfg.workers[0].vars[0].json, "\"2\"");
    assert_int_equal(cfg.workers[0].nkv, 1);
    assert_string_equal(cfg.workers[0].kv[0].id, "from-entry");
    config_free(&cfg);
    free(path);
}

static void unknown_keys_warn_with_their_path(void **state)
{
    char *path = write_file("warn.jsonc",
        "{ \"colour\": 1, \"workers\": [ { \"name\": \"a\", \"main\": \"a.js\", \"limits\": { \"cpu\": 5 } } ] }\n");
    atoll_config cfg;
    err e;
    assert_int_equal(config_load(path, &cfg, &e), 0);
    assert_int_equal(cfg.nwarnings, 2);
    assert_non_null(strstr(cfg.warnings[0], "warn.jsonc: colour: unknown key"));
    assert_non_null(strstr(cfg.warnings[1], "workers[0].limits.cpu: unknown key"));
    config_free(&cfg);
    free(path);
    /* wrangler's route objects are checked too */
    path = write_file("warn2.jsonc", "{ \"workers\": [ { \"name\": \"a\", \"main\": \"a.js\", \"routes\": [ \"a.test/*\","
                                     " { \"pattern\": \"b.test/*\", \"zone_name\": \"b.test\", \"zone\": 1 } ] } ] }\n");
    assert_int_equal(config_load(path, &cfg, &e), 0);
    assert_int_equal(cfg.nwarnings, 1);
    assert_non_null(strstr(cfg.warnings[0], "workers[0].routes[1].zone: unknown key"));
    config_free(&cfg);
    free(path);
}

static void kv_and_deploy_keys_are_read(void **state)
{
    char *path = write_file("kv.jsonc", "{ \"kv\": { \"redis\": \"redis://127.0.0.1:6380/2\", \"min_ttl\": 1,"
                                        " \"colour\": 1 }, \"deploy\": { \"redis\": \"redis://10.0.0.5\" } }\n");
    atoll_config cfg;
    err e;
    assert_int_equal(config_load(path, &cfg, &e), 0);
    assert_string_equal(cfg.kv_redis, "redis://127.0.0.1:6380/2");
    assert_int_equal(cfg.kv_min_ttl, 1);
    assert_string_equal(cfg.deploy_redis, "redis://10.0.0.5");
    assert_int_equal(cfg.nwarnings, 1);
    assert_non_null(strstr(cfg.warnings[0], "kv.colour: unknown key"));
    config_free(&cfg);
    free(path);
    path = write_file("nokv.jsonc", "{}");
    assert_int_equal(config_load(path, &cfg, &e), 0);
    assert_null(cfg.kv_redis);
    assert_null(cfg.deploy_redis);
    assert_int_equal(cfg.kv_min_ttl, 0);
    config_free(&cfg);
    free(path);
}

/* Each bad config fails with a message naming the file, the key and the fix. */
static void errors_name_file_key_and_expectation(void **state)
{
    static const struct { const char *text, *want; } cases[] = {
        {"{ \"listen\": 8080 }", "listen: expected a non-empty string, found an integer"},
        {"{ \"listen\": \"localhost\" }", "listen: expected \"ip:port\""},
        {"{ \"processes\": 0 }", "processes: expected an integer from 1"},
        {"{ \"workers\": {} }", "workers: expected an array"},
        {"{ \"workers\": [ { \"main\": \"a.js\" } ] }", "workers[0]: missing \"name\""},
        {"{ \"workers\": [ { \"name\": \"a\" } ] }", "missing \"main\""},
        {"{ \"workers\": [ { \"name\": \"a\", \"main\": \"nope.js\" } ] }", "nope.js\": No such file"},
        {"{ \"workers\": [ { \"name\": \"a b\", \"main\": \"a.js\" } ] }", "letters, digits"},
        {"{ \"workers\": [ { \"name\": \"a\", \"main\": \"a.js\", \"tier\": \"vm\" } ] }",
         "workers[0].tier: expected \"js\", \"wasm\" or \"container\""},
        {"{ \"workers\": [ { \"name\": \"a\", \"main\": \"a.js\", \"limits\": { \"cpu_ms\": -1 } } ] }",
         "workers[0].limits.cpu_ms: expected an integer"},
        {"{ \"workers\": [ { \"name\": \"a\", \"main\": \"a.js\", \"routes\": [\"/x\"] } ] }", "no host"},
        {"{ \"workers\": [ { \"name\": \"a\", \"main\": \"a.js\" }, { \"name\": \"a\", \"main\": \"a.js\" } ] }",
         "already defined"},
        {"{ \"workers\": [ { \"name\": \"a\", \"main\": \"a.js\", \"kv_namespaces\": [ { \"binding\": \"K\" } ] } ] }",
         "workers[0].kv_namespaces[0].id: missing"},
        {"{ \"workers\": [ { \"name\": \"a\", \"main\": \"a.js\", \"tier\": \"wasm\", \"vars\": { \"A=B\": 1 } } ] }",
         "workers[0].vars: var \"A=B\": a WebAssembly worker's vars are environment variables"},
        {"{ \"kv\": \"redis://x\" }", "kv: expected an object"},
        {"{ \"kv\": { \"redis\": \"http://x\" } }", "kv.redis: expected \"redis://host[:port][/db]\""},
        {"{ \"kv\": { \"min_ttl\": 0 } }", "kv.min_ttl: expected an integer from 1"},
        {"{ \"deploy\": { \"redis\": 5 } }", "deploy.redis: expected a non-empty string"},
        {"{ \"a\": 1, \"a\": 2 }", "duplicate"},
        {"{ \"workers\": [,] }", "bad.jsonc:1:"},
        {"{ \"workers\": [ { \"name\": \"a\", \"main\": \"a.js\" },, ] }", "bad.jsonc:1:"},
        {"{ \"workers\": [ { \"name\": \"a\", \"main\": \"a.js\", \"routes\": [\"x.test/*\"] },"
         " { \"name\": \"b\", \"main\": \"a.js\", \"routes\": [\"y.test/*\", \"https://X.test:8080/*\"] } ] }",
         "workers[1].routes: route 'https://X.test:8080/*' is already routed to worker \"a\" (workers[0])"},
        {"{ \"workers\": [ { \"name\": \"a\", \"main\": \"a.js\", \"kv_namespaces\": [ { \"binding\": \"K\", \"id\": \"x\" },"
         " { \"binding\": \"K\", \"id\": \"y\" } ] } ] }",
         "workers[0].kv_namespaces[1].binding: \"K\" is already bound by workers[0].kv_namespaces[0]"},
        {"{ \"workers\": [ { \"name\": \"a\", \"main\": \"a.js\", \"vars\": { \"K\": 1 },"
         " \"kv_namespaces\": [ { \"binding\": \"K\", \"id\": \"x\" } ] } ] }",
         "workers[0].kv_namespaces: binding \"K\" is also the name of a var"},
        {"{ \"listen\": ", "bad.jsonc:1:"},
        {"[1]", "expected a JSON object"},
        {"{ \"user\": \"no-such-user-atoll\" }", "user: expected the name or uid of an existing user"},
        {"", "empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *path = write_file("bad.jsonc", cases[i].text);
        atoll_config cfg;
        err e;
        err_clear(&e);
        int rc = config_load(path, &cfg, &e);
        if (rc == 0)
            fail_msg("case %zu loaded: %s", i, cases[i].text);
        if (!strstr(e.msg, cases[i].want) || !strstr(e.msg, "bad.jsonc"))
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, e.msg, cases[i].want);
        free(path);
    }
    atoll_config cfg;
    err e;
    assert_int_equal(config_load("/nonexistent/atoll.jsonc", &cfg, &e), -ENOENT);
    assert_non_null(strstr(e.msg, "/nonexistent/atoll.jsonc: cannot open"));
}

static void listen_addresses_parse(void **state)
{
    char *ip;
    int port;
    assert_int_equal(config_parse_listen("[::]:80", &ip, &port), 0);
    assert_string_equal(ip, "::");
    assert_int_equal(port, 80);
    free(ip);
    assert_int_equal(config_parse_listen(":8080", &ip, &port), 0);
    assert_string_equal(ip, "127.0.0.1");
    free(ip);
    assert_int_equal(config_parse_listen("::1:80", &ip, &port), -EINVAL);
    assert_int_equal(config_parse_listen("1.2.3.4:70000", &ip, &port), -EINVAL);
    assert_int_equal(config_parse_listen("1.2.3.4:", &ip, &port), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(jsonc_strips_comments_and_trailing_commas),
        cmocka_unit_test(full_config_is_read),
        cmocka_unit_test(container_keys_are_known),
        cmocka_unit_test(defaults_apply_to_an_empty_config),
        cmocka_unit_test(wrangler_file_is_followed),
        cmocka_unit_test(unknown_keys_warn_with_their_path),
        cmocka_unit_test(kv_and_deploy_keys_are_read),
        cmocka_unit_test(errors_name_file_key_and_expectation),
        cmocka_unit_test(listen_addresses_parse),
    };
    return cmocka_run_group_tests_name("config", tests, setup, teardown);
}
