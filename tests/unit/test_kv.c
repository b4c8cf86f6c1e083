/* Unit tests for src/kv: one suite run twice, against the SQLite backend (a
 * temporary state directory) and the Redis backend (a redis-server started
 * on a free loopback port for the group; if it cannot start, the group
 * fails). The stores use a test-only minimum TTL of 1 s (kv_config.min_ttl)
 * so that real expiry takes seconds; limit tests open a second store with
 * Workers KV's real 60 s minimum.
 *
 * The durability test re-executes this binary as a child ("--put-child")
 * that puts keys and reports each acknowledged one on a pipe until the
 * parent SIGKILLs it. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "kv/kv.h"
#include "support/redis_server.h"

typedef struct fixture {
    bool redis;
    char dir[64];
    test_redis server;
    kv_config cfg;
    uv_loop_t loop;
    kv_store *s;
} fixture;

/* --- running the loop until a callback has fired */

static void run_until(fixture *f, const bool *done)
{
    while (!*done)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static void on_timer(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

/* Runs the loop (so sweeps and replies happen) for ms milliseconds. */
static void run_for(fixture *f, uint64_t ms)
{
    uv_timer_t t;
    bool done = false;
    uv_timer_init(&f->loop, &t);
    t.data = &done;
    uv_timer_start(&t, on_timer, ms, 0);
    run_until(f, &done);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* --- synchronous-looking wrappers */

typedef struct result {
    bool done, found;
    int status;
    err e;
    char *value, *metadata;
    size_t len, metadata_len;
    int64_t expiration;
    /* list */
    size_t count;
    char **names;
    size_t *name_lens;
    int64_t *expirations;
    char **metas;
    bool complete;
    char *cursor;
} result;

static void result_free(result *r)
{
    free(r->value);
    free(r->metadata);
    for (size_t i = 0; i < r->count; i++) {
        free(r->names[i]);
        free(r->metas[i]);
    }
    free(r->names);
    free(r->name_lens);
    free(r->expirations);
    free(r->metas);
    free(r->cursor);
    memset(r, 0, sizeof *r);
}

static void on_done(void *data, int status, const err *e)
{
    result *r = data;
    assert_false(r->done);
    r->done = true;
    r->status = status;
    if (e)
        r->e = *e;
    else
        assert_int_equal(status, 0);
}

static void on_get(void *data, int status, kv_value *v, const err *e)
{
    result *r = data;
    on_done(data, status, e);
    if (!v)
        return;
    r->found = true;
    r->value = v->value; /* taken: the store must not free it */
    v->value = NULL;
    r->len = v->len;
    r->metadata = v->metadata ? xstrndup(v->metadata, v->metadata_len) : NULL;
    r->metadata_len = v->metadata_len;
    r->expiration = v->expiration;
}

static void on_list(void *data, int status, const kv_list_result *l, const err *e)
{
    result *r = data;
    on_done(data, status, e);
    if (!l)
        return;
    r->count = l->count;
    r->names = xcalloc(l->count, sizeof *r->names);
    r->name_lens = xcalloc(l->count, sizeof *r->name_lens);
    r->expirations = xcalloc(l->count, sizeof *r->expirations);
    r->metas = xcalloc(l->count, sizeof *r->metas);
    for (size_t i = 0; i < l->count; i++) {
        r->names[i] = xstrndup(l->keys[i].name, l->keys[i].name_len);
        r->name_lens[i] = l->keys[i].name_len;
        r->expirations[i] = l->keys[i].expiration;
        r->metas[i] = l->keys[i].metadata ? xstrdup(l->keys[i].metadata) : NULL;
    }
    r->complete = l->list_complete;
    r->cursor = l->cursor ? xstrdup(l->cursor) : NULL;
    if (l->list_complete)
        assert_null(l->cursor);
    else
        assert_non_null(l->cursor);
}

static void never(void *data, int status, const err *e)
{
    fail_msg("callback after a synchronous failure");
}

static int put_opts(fixture *f, const char *ns, const void *k, size_t kl, const void *v, size_t vl,
                    const kv_put_opts *o, err *e)
{
    result r = {0};
    int rc = kv_put(f->s, ns, k, kl, v, vl, o, on_done, &r, e);
    if (rc)
        return rc;
    run_until(f, &r.done);
    if (r.status && e)
        *e = r.e;
    return r.status;
}

static void put(fixture *f, const char *ns, const char *k, const char *v)
{
    err e = {0};
    int rc = put_opts(f, ns, k, strlen(k), v, strlen(v), NULL, &e);
    if (rc)
        fail_msg("put %s: %s", k, e.msg);
}

/* Fills r; returns the status. */
static int get(fixture *f, const char *ns, const void *k, size_t kl, result *r)
{
    memset(r, 0, sizeof *r);
    int rc = kv_get(f->s, ns, k, kl, on_get, r, &r->e);
    if (rc)
        return rc;
    run_until(f, &r->done);
    return r->status;
}

static void check_value(fixture *f, const char *ns, const void *k, size_t kl, const void *v,
                         size_t vl)
{
    result r;
    assert_int_equal(get(f, ns, k, kl, &r), 0);
    assert_true(r.found);
    assert_int_equal(r.len, vl);
    assert_memory_equal(r.value, v, vl);
    assert_int_equal(((char *)r.value)[vl], '\0');
    result_free(&r);
}

static void check_missing(fixture *f, const char *ns, const void *k, size_t kl)
{
    result r;
    assert_int_equal(get(f, ns, k, kl, &r), 0);
    assert_false(r.found);
    result_free(&r);
}

static int del(fixture *f, const char *ns, const void *k, size_t kl)
{
    result r = {0};
    int rc = kv_delete(f->s, ns, k, kl, on_done, &r, &r.e);
    if (rc)
        return rc;
    run_until(f, &r.done);
    return r.status;
}

static int list(fixture *f, const char *ns, const kv_list_opts *o, result *r)
{
    memset(r, 0, sizeof *r);
    int rc = kv_list(f->s, ns, o, on_list, r, &r->e);
    if (rc)
        return rc;
    run_until(f, &r->done);
    return r->status;
}

/* Keys of a namespace as the backend stores them, expired or not, to see
 * the background sweep at work. */
static long raw_count(fixture *f, const char *ns)
{
    long n = -1;
    if (f->redis) {
        redisContext *c = redisConnect("127.0.0.1", f->server.port);
        assert_non_null(c);
        freeReplyObject(redisCommand(c, "SELECT 1"));
        redisReply *r = redisCommand(c, "ZCARD atoll:kv:%d:%s:i", (int)strlen(ns), ns);
        n = r && r->type == REDIS_REPLY_INTEGER ? (long)r->integer : -1;
        freeReplyObject(r);
        redisFree(c);
    } else {
        char *path = xasprintf("%s/kv.sqlite3", f->dir);
        sqlite3 *db;
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM kv WHERE ns = ?", -1, &st, NULL),
                         SQLITE_OK);
        sqlite3_bind_blob(st, 1, ns, (int)strlen(ns), SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        free(path);
    }
    return n;
}

/* --- group setup: one store per backend */

static int open_store(fixture *f, const kv_config *cfg, kv_store **out)
{
    err e = {0};
    int rc = kv_open(&f->loop, cfg, out, &e);
    if (rc)
        fprintf(stderr, "kv_open: %s\n", e.msg);
    return rc;
}

static void on_closed(void *data)
{
    *(bool *)data = true;
}

static void close_store(fixture *f, kv_store *s)
{
    bool closed = false;
    kv_close(s, on_closed, &closed);
    run_until(f, &closed);
}

static int setup_common(void **state, bool redis)
{
    fixture *f = xcalloc(1, sizeof *f);
    f->redis = redis;
    uv_loop_init(&f->loop);
    snprintf(f->dir, sizeof f->dir, "/tmp/atoll-kv-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->cfg.state_dir = f->dir;
    f->cfg.min_ttl = 1;
    f->cfg.sweep_interval_ms = 200;
    f->cfg.redis_timeout_ms = 500;
    if (redis) {
        if (test_redis_start(&f->server))
            return -1; /* fails the group: a missing Redis is not a skip */
        /* Database 1, so that the SELECT on (re)connect is exercised too. */
        snprintf(f->server.url, sizeof f->server.url, "redis://127.0.0.1:%d/1", f->server.port);
        f->cfg.redis_url = f->server.url;
    }
    *state = f;
    return open_store(f, &f->cfg, &f->s);
}

static int setup_sqlite(void **state)
{
    return setup_common(state, false);
}

static int setup_redis(void **state)
{
    return setup_common(state, true);
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (!f)
        return 0;
    if (f->s)
        close_store(f, f->s);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&f->loop);
    if (rc)
        fprintf(stderr, "uv_loop_close: %s\n", uv_strerror(rc));
    test_redis_stop(&f->server, SIGTERM, 1);
    test_rm_rf(f->dir);
    free(f);
    return rc ? -1 : 0;
}

/* --- tests */

static void roundtrip_binary_keys_and_values(void **state)
{
    fixture *f = *state;
    static const char *const keys[] = {
        "plain", "with space", "'; DROP TABLE kv; --", "*3\r\n$3\r\nSET\r\n$1\r\nx\r\n",
        "\xff\xfe\x80", "unicod\xc3\xa9", ":i", "v:x",
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char v[64];
        int n = snprintf(v, sizeof v, "value %zu", i);
        assert_int_equal(put_opts(f, "rt", keys[i], strlen(keys[i]), v, (size_t)n, NULL, NULL), 0);
    }
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char v[64];
        int n = snprintf(v, sizeof v, "value %zu", i);
        check_value(f, "rt", keys[i], strlen(keys[i]), v, (size_t)n);
    }
    /* NUL bytes inside keys and values, an empty value, a 512-byte key. */
    const char nk[] = "a\0b", nk2[] = "a\0c", nv[] = "\0\1\2\0";
    assert_int_equal(put_opts(f, "rt", nk, 3, nv, 4, NULL, NULL), 0);
    assert_int_equal(put_opts(f, "rt", nk2, 3, "", 0, NULL, NULL), 0);
    check_value(f, "rt", nk, 3, nv, 4);
    check_value(f, "rt", nk2, 3, "", 0);
    check_missing(f, "rt", "a", 1);
    char longkey[KV_MAX_KEY_BYTES];
    memset(longkey, 'k', sizeof longkey);
    assert_int_equal(put_opts(f, "rt", longkey, sizeof longkey, "L", 1, NULL, NULL), 0);
    check_value(f, "rt", longkey, sizeof longkey, "L", 1);
    /* A large binary value, overwritten, then deleted. */
    size_t big = 3 * 1024 * 1024 + 7;
    unsigned char *bv = xmalloc(big);
    for (size_t i = 0; i < big; i++)
        bv[i] = (unsigned char)(i * 131 + 7);
    assert_int_equal(put_opts(f, "rt", "big", 3, bv, big, NULL, NULL), 0);
    check_value(f, "rt", "big", 3, bv, big);
    put(f, "rt", "big", "small");
    check_value(f, "rt", "big", 3, "small", 5);
    assert_int_equal(del(f, "rt", "big", 3), 0);
    check_missing(f, "rt", "big", 3);
    assert_int_equal(del(f, "rt", "big", 3), 0); /* deleting nothing is fine */
    assert_int_equal(del(f, "rt", nk, 3), 0);
    check_missing(f, "rt", nk, 3);
    check_value(f, "rt", nk2, 3, "", 0);
    free(bv);
}

static void metadata_roundtrips(void **state)
{
    fixture *f = *state;
    const char *meta = "{\"a\":1,\"s\":\"x\\u0000y\"}";
    kv_put_opts o = {.metadata = meta, .metadata_len = strlen(meta)};
    assert_int_equal(put_opts(f, "meta", "k", 1, "v", 1, &o, NULL), 0);
    result r;
    assert_int_equal(get(f, "meta", "k", 1, &r), 0);
    assert_true(r.found);
    assert_string_equal(r.metadata, meta);
    assert_int_equal(r.metadata_len, strlen(meta));
    assert_int_equal(r.expiration, 0);
    result_free(&r);
    /* put without metadata drops it */
    put(f, "meta", "k", "v2");
    assert_int_equal(get(f, "meta", "k", 1, &r), 0);
    assert_null(r.metadata);
    result_free(&r);
    /* exactly 1024 bytes is allowed; list shows metadata too */
    char m[KV_MAX_METADATA_BYTES + 1];
    memset(m, 'x', sizeof m);
    m[0] = '"';
    m[KV_MAX_METADATA_BYTES - 1] = '"';
    o.metadata = m;
    o.metadata_len = KV_MAX_METADATA_BYTES;
    assert_int_equal(put_opts(f, "meta", "k2", 2, "v", 1, &o, NULL), 0);
    assert_int_equal(list(f, "meta", NULL, &r), 0);
    assert_int_equal(r.count, 2);
    assert_null(r.metas[0]);
    assert_int_equal(strlen(r.metas[1]), KV_MAX_METADATA_BYTES);
    assert_memory_equal(r.metas[1], m, KV_MAX_METADATA_BYTES);
    assert_true(r.complete);
    result_free(&r);
}

static void expiration_hides_and_sweeps(void **state)
{
    fixture *f = *state;
    int64_t now = (int64_t)(clock_wall_ms() / 1000);
    kv_put_opts ttl = {.has_ttl = true, .expiration_ttl = 2};
    kv_put_opts abs = {.has_expiration = true, .expiration = now + 2};
    kv_put_opts later = {.has_ttl = true, .expiration_ttl = 3600};
    assert_int_equal(put_opts(f, "exp", "ttl", 3, "1", 1, &ttl, NULL), 0);
    assert_int_equal(put_opts(f, "exp", "abs", 3, "2", 1, &abs, NULL), 0);
    assert_int_equal(put_opts(f, "exp", "later", 5, "3", 1, &later, NULL), 0);
    put(f, "exp", "forever", "4");
    /* A key that had an expiration and is put again without one keeps living. */
    assert_int_equal(put_opts(f, "exp", "renewed", 7, "5", 1, &ttl, NULL), 0);
    put(f, "exp", "renewed", "5");
    result r;
    assert_int_equal(get(f, "exp", "ttl", 3, &r), 0);
    assert_true(r.found);
    assert_true(r.expiration >= now + 2 && r.expiration <= now + 3);
    result_free(&r);
    assert_int_equal(get(f, "exp", "abs", 3, &r), 0);
    assert_true(r.found);
    assert_int_equal(r.expiration, now + 2);
    result_free(&r);
    assert_int_equal(list(f, "exp", NULL, &r), 0);
    assert_int_equal(r.count, 5);
    assert_string_equal(r.names[0], "abs");
    assert_int_equal(r.expirations[0], now + 2);
    result_free(&r);

    run_for(f, 3600); /* both have expired; the 200 ms sweep has run */
    check_missing(f, "exp", "ttl", 3);
    check_missing(f, "exp", "abs", 3);
    check_value(f, "exp", "later", 5, "3", 1);
    check_value(f, "exp", "forever", 7, "4", 1);
    check_value(f, "exp", "renewed", 7, "5", 1);
    /* The sweep removed them from the backend, before any list. */
    assert_int_equal(raw_count(f, "exp"), 3);
    assert_int_equal(list(f, "exp", NULL, &r), 0);
    assert_int_equal(r.count, 3);
    assert_string_equal(r.names[0], "forever");
    assert_string_equal(r.names[1], "later");
    assert_string_equal(r.names[2], "renewed");
    assert_true(r.complete);
    result_free(&r);
}

static void expect_error(int rc, const err *e, int code, int status, const char *text)
{
    assert_int_equal(rc, code);
    assert_int_equal(e->code, code);
    assert_int_equal(kv_error_status(code), status);
    if (!strstr(e->msg, text))
        fail_msg("error \"%s\" lacks \"%s\"", e->msg, text);
}

static void limits_are_enforced(void **state)
{
    fixture *f = *state;
    /* A store with Workers KV's real minimum TTL, on the same backend. */
    kv_config cfg = f->cfg;
    cfg.min_ttl = 0;
    kv_store *s;
    assert_int_equal(open_store(f, &cfg, &s), 0);
    err e;
    int64_t now = (int64_t)(clock_wall_ms() / 1000);
    char big[KV_MAX_KEY_BYTES + 1];
    memset(big, 'x', sizeof big);
#define PUT(k, kl, vl, o) kv_put(s, "lim", k, kl, "", vl, o, never, NULL, &e)
    expect_error(PUT("", 0, 0, NULL), &e, KV_EKEY_EMPTY, 400, "KV PUT failed: 400 Key names must not be empty");
    expect_error(PUT(".", 1, 0, NULL), &e, KV_EKEY_ILLEGAL, 400, "Illegal key name \".\"");
    expect_error(kv_get(s, "lim", "..", 2, NULL, NULL, &e), &e, KV_EKEY_ILLEGAL, 400,
                 "KV GET failed: 400 Illegal key name \"..\". Please use a different name.");
    expect_error(kv_delete(s, "lim", big, sizeof big, never, NULL, &e), &e, KV_EKEY_TOO_LONG, 414,
                 "KV DELETE failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.");
    expect_error(PUT("k", 1, KV_MAX_VALUE_BYTES + 1, NULL), &e, KV_EVALUE_TOO_LARGE, 413,
                 "Value length of 26214401 exceeds limit of 26214400.");
    kv_put_opts o = {.metadata = big, .metadata_len = KV_MAX_METADATA_BYTES + 1};
    expect_error(PUT("k", 1, 0, &o), &e, KV_EMETADATA_TOO_LARGE, 413,
                 "Metadata length of 1025 exceeds limit of 1024.");
    o = (kv_put_opts){.has_ttl = true, .expiration_ttl = 0};
    expect_error(PUT("k", 1, 0, &o), &e, KV_ETTL_INVALID, 400,
                 "Invalid expiration_ttl of 0. Please specify integer greater than 0.");
    o.expiration_ttl = -5;
    expect_error(PUT("k", 1, 0, &o), &e, KV_ETTL_INVALID, 400, "expiration_ttl of -5");
    o.expiration_ttl = 59;
    expect_error(PUT("k", 1, 0, &o), &e, KV_ETTL_TOO_SHORT, 400,
                 "Invalid expiration_ttl of 59. Expiration TTL must be at least 60.");
    o = (kv_put_opts){.has_expiration = true, .expiration = now - 1};
    expect_error(PUT("k", 1, 0, &o), &e, KV_EEXPIRATION_PAST, 400,
                 "Please specify integer greater than the current number of seconds");
    o.expiration = now + 30;
    expect_error(PUT("k", 1, 0, &o), &e, KV_EEXPIRATION_TOO_SOON, 400,
                 "Expiration times must be at least 60 seconds in the future.");
    expect_error(kv_get(s, "", "k", 1, NULL, NULL, &e), &e, KV_ENAMESPACE_INVALID, 400, "Namespace");
    kv_list_opts l = {.has_limit = true, .limit = 0};
    expect_error(kv_list(s, "lim", &l, NULL, NULL, &e), &e, KV_ELIMIT_TOO_SMALL, 400,
                 "KV LIST failed: 400 Invalid key_count_limit of 0");
    l.limit = 1001;
    expect_error(kv_list(s, "lim", &l, NULL, NULL, &e), &e, KV_ELIMIT_TOO_LARGE, 400,
                 "Invalid key_count_limit of 1001. Please specify an integer less than 1000.");
    l = (kv_list_opts){.prefix = big, .prefix_len = sizeof big};
    expect_error(kv_list(s, "lim", &l, NULL, NULL, &e), &e, KV_EPREFIX_TOO_LONG, 414, "513");
    l = (kv_list_opts){.cursor = "not a cursor!"};
    expect_error(kv_list(s, "lim", &l, NULL, NULL, &e), &e, KV_ECURSOR_INVALID, 400, "Invalid cursor");
#undef PUT
    /* The boundaries themselves are accepted. */
    result r = {0};
    o = (kv_put_opts){.has_ttl = true, .expiration_ttl = 60};
    assert_int_equal(kv_put(s, "lim", "ok", 2, "v", 1, &o, on_done, &r, &e), 0);
    run_until(f, &r.done);
    assert_int_equal(r.status, 0);
    char *max = xcalloc(1, KV_MAX_VALUE_BYTES);
    r = (result){0};
    o = (kv_put_opts){.has_expiration = true, .expiration = now + 61};
    assert_int_equal(kv_put(s, "lim", "max", 3, max, KV_MAX_VALUE_BYTES, &o, on_done, &r, &e), 0);
    run_until(f, &r.done);
    assert_int_equal(r.status, 0);
    free(max);
    r = (result){0};
    assert_int_equal(kv_get(s, "lim", "max", 3, on_get, &r, &e), 0);
    run_until(f, &r.done);
    assert_true(r.found);
    assert_int_equal(r.len, KV_MAX_VALUE_BYTES);
    assert_int_equal(r.expiration, now + 61);
    result_free(&r);
    close_store(f, s);
    /* Operations on a closing store fail synchronously. */
    assert_string_equal(kv_strerror(KV_ECURSOR_INVALID), "list cursor invalid");
    assert_int_equal(kv_error_status(-ECONNREFUSED), 503);
    assert_int_equal(kv_error_status(-EIO), 500);
}

static int cmp_bytes(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    return strcmp(x, y); /* our generated keys hold no NUL */
}

static void on_put_counted(void *data, int status, const err *e)
{
    size_t *left = data;
    if (status)
        fail_msg("put: %s", e->msg);
    (*left)--;
}

static void list_paginates_in_byte_order(void **state)
{
    fixture *f = *state;
    enum { N = 2500 };
    char **want = xcalloc(N + 8, sizeof *want);
    size_t n = 0, left = 0;
    err e;
    /* Keys out of order, some sharing the "k" prefix only as a byte prefix,
     * high bytes that sort after ASCII, and all put at once. */
    for (int i = 0; i < N; i++) {
        char *k = xasprintf("k%c%04d", "ab\x7f\xc3"[i % 4], (i * 7919) % N);
        want[n++] = k;
    }
    const char *others[] = {"j", "l", "\xff", "\xff\xff", "\xff\xff\x01", "k"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        left++;
        assert_int_equal(kv_put(f->s, "page", others[i], strlen(others[i]), "o", 1, NULL,
                                on_put_counted, &left, &e), 0);
    }
    for (size_t i = 0; i < n; i++) {
        left++;
        assert_int_equal(kv_put(f->s, "page", want[i], strlen(want[i]), want[i], strlen(want[i]),
                                NULL, on_put_counted, &left, &e), 0);
    }
    while (left)
        uv_run(&f->loop, UV_RUN_ONCE);
    want[n++] = xstrdup("k"); /* the prefix itself matches */
    qsort(want, n, sizeof *want, cmp_bytes);

    /* Default limit 1000 with prefix "k": 1000, 1000, 501. */
    kv_list_opts o = {.prefix = "k", .prefix_len = 1};
    size_t seen = 0;
    int pages = 0;
    char *cursor = NULL;
    for (;;) {
        result r;
        o.cursor = cursor;
        assert_int_equal(list(f, "page", &o, &r), 0);
        free(cursor);
        cursor = r.cursor ? xstrdup(r.cursor) : NULL;
        pages++;
        for (size_t i = 0; i < r.count; i++, seen++) {
            assert_true(seen < n);
            assert_string_equal(r.names[i], want[seen]);
        }
        bool complete = r.complete;
        if (!complete)
            assert_int_equal(r.count, 1000);
        result_free(&r);
        if (complete)
            break;
    }
    assert_int_equal(seen, n);
    assert_int_equal(pages, 3);

    /* Small pages under a longer prefix. */
    o = (kv_list_opts){.prefix = "ka00", .prefix_len = 4, .has_limit = true, .limit = 7};
    size_t expect = 0;
    for (size_t i = 0; i < n; i++)
        expect += strncmp(want[i], "ka00", 4) == 0;
    seen = 0;
    cursor = NULL;
    const char *last = "";
    do {
        result r;
        o.cursor = cursor;
        assert_int_equal(list(f, "page", &o, &r), 0);
        free(cursor);
        cursor = r.cursor ? xstrdup(r.cursor) : NULL;
        assert_true(r.count <= 7);
        for (size_t i = 0; i < r.count; i++) {
            assert_int_equal(strncmp(r.names[i], "ka00", 4), 0);
            assert_true(strcmp(r.names[i], last) > 0);
        }
        seen += r.count;
        static char prev[64];
        if (r.count) {
            snprintf(prev, sizeof prev, "%s", r.names[r.count - 1]);
            last = prev;
        }
        result_free(&r);
    } while (cursor);
    assert_int_equal(seen, expect);

    /* Prefixes of 0xff bytes have no successor: the range is open-ended. */
    o = (kv_list_opts){.prefix = "\xff\xff", .prefix_len = 2};
    result r;
    assert_int_equal(list(f, "page", &o, &r), 0);
    assert_int_equal(r.count, 2);
    assert_string_equal(r.names[0], "\xff\xff");
    assert_string_equal(r.names[1], "\xff\xff\x01");
    result_free(&r);
    /* Everything: 2501 + 5 others in one namespace. */
    seen = 0;
    cursor = NULL;
    o = (kv_list_opts){0};
    do {
        o.cursor = cursor;
        assert_int_equal(list(f, "page", &o, &r), 0);
        free(cursor);
        cursor = r.cursor ? xstrdup(r.cursor) : NULL;
        seen += r.count;
        result_free(&r);
    } while (cursor);
    assert_int_equal(seen, n + 5);
    for (size_t i = 0; i < n; i++)
        free(want[i]);
    free(want);
}

static void namespaces_are_isolated(void **state)
{
    fixture *f = *state;
    /* Ids that a naive "ns:key" concatenation would confuse, and ids that
     * look like paths. */
    put(f, "ab", "c:x", "one");
    put(f, "ab:c", "x", "two");
    put(f, "../../etc", "passwd", "three");
    put(f, "ab", "shared", "A");
    put(f, "ab:c", "shared", "B");
    check_value(f, "ab", "c:x", 3, "one", 3);
    check_value(f, "ab:c", "x", 1, "two", 3);
    check_missing(f, "ab", "x", 1);
    check_missing(f, "ab:c", "c:x", 3);
    check_value(f, "../../etc", "passwd", 6, "three", 5);
    assert_int_equal(del(f, "ab", "shared", 6), 0);
    check_value(f, "ab:c", "shared", 6, "B", 1);
    result r;
    assert_int_equal(list(f, "ab", NULL, &r), 0);
    assert_int_equal(r.count, 1);
    assert_string_equal(r.names[0], "c:x");
    result_free(&r);
    assert_int_equal(list(f, "ab:c", NULL, &r), 0);
    assert_int_equal(r.count, 2);
    result_free(&r);
    /* Namespace ids are never paths: the state directory holds only the
     * database (and its WAL files). */
    if (!f->redis) {
        char *cmd = xasprintf("test $(ls -A %s | grep -cv '^kv.sqlite3') -eq 0", f->dir);
        assert_int_equal(system(cmd), 0);
        free(cmd);
    }
}

typedef struct counter {
    size_t done, failed;
    uv_thread_t loop_thread;
} counter;

static void on_any(void *data, int status, const err *e)
{
    counter *c = data;
    uv_thread_t self = uv_thread_self();
    assert_true(uv_thread_equal(&self, &c->loop_thread));
    c->done++;
    c->failed += status != 0;
}

static void on_any_get(void *data, int status, kv_value *v, const err *e)
{
    on_any(data, status, e);
    counter *c = data;
    c->failed += !v || v->len != 5;
}

static void many_outstanding_operations(void **state)
{
    fixture *f = *state;
    enum { N = 3000 };
    counter c = {.loop_thread = uv_thread_self()};
    err e;
    size_t issued = 0;
    char k[32];
    /* N puts at once; then N more puts interleaved with gets of the first
     * N (acknowledged, so they must be seen) and some lists. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            snprintf(k, sizeof k, "c%d-%d", round, i);
            assert_int_equal(kv_put(f->s, "conc", k, strlen(k), "value", 5, NULL, on_any, &c, &e), 0);
            issued++;
            if (round == 1) {
                snprintf(k, sizeof k, "c0-%d", i);
                assert_int_equal(kv_get(f->s, "conc", k, strlen(k), on_any_get, &c, &e), 0);
                issued++;
            }
            if (round == 1 && i % 500 == 0) {
                kv_list_opts o = {.has_limit = true, .limit = 10};
                result *r = xcalloc(1, sizeof *r);
                assert_int_equal(kv_list(f->s, "conc", &o, on_list, r, &e), 0);
                while (!r->done)
                    uv_run(&f->loop, UV_RUN_ONCE);
                assert_int_equal(r->count, 10);
                result_free(r);
                free(r);
            }
        }
        while (c.done < issued)
            uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(c.failed, 0);
    result r;
    assert_int_equal(list(f, "conc", NULL, &r), 0);
    assert_int_equal(r.count, 1000);
    assert_false(r.complete);
    result_free(&r);
}

static void on_close_counted(void *data)
{
    counter *c = data;
    c->failed += 1000000; /* marks "closed"; done must already be complete */
}

static void close_completes_pending_operations(void **state)
{
    fixture *f = *state;
    kv_store *s;
    assert_int_equal(open_store(f, &f->cfg, &s), 0);
    /* Let a Redis store connect first: closing one still connecting cancels. */
    result r = {0};
    err e;
    assert_int_equal(kv_get(s, "close", "x", 1, on_get, &r, &e), 0);
    run_until(f, &r.done);
    assert_int_equal(r.status, 0);
    counter c = {.loop_thread = uv_thread_self()};
    for (int i = 0; i < 200; i++) {
        char k[16];
        snprintf(k, sizeof k, "p%03d", i);
        assert_int_equal(kv_put(s, "close", k, strlen(k), "value", 5, NULL, on_any, &c, &e), 0);
    }
    kv_close(s, on_close_counted, &c);
    assert_int_equal(kv_put(s, "close", "late", 4, "v", 1, NULL, never, NULL, &e), -ECANCELED);
    while (c.failed < 1000000)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(c.done, 200);
    assert_int_equal(c.failed, 1000000);
    check_value(f, "close", "p199", 4, "value", 5);
}

/* --- durability: SIGKILL a writer at random moments */

static void child_put_done(void *data, int status, const err *e)
{
    uint32_t i = (uint32_t)(uintptr_t)data;
    if (status) {
        fprintf(stderr, "child put: %s\n", e->msg);
        _exit(3);
    }
    /* Reported only now: acknowledged means the callback has run. */
    if (write(3, &i, sizeof i) != sizeof i)
        _exit(4);
}

static char *durable_value(uint32_t i)
{
    return xasprintf("durable value %u %0*u", i, (int)(i % 200), i);
}

/* argv: --put-child URL-or-"" STATE_DIR FIRST */
static int put_child(char **argv)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    kv_config cfg = {.state_dir = argv[3], .redis_url = argv[2][0] ? argv[2] : NULL};
    kv_store *s;
    err e;
    if (kv_open(&loop, &cfg, &s, &e)) {
        fprintf(stderr, "child: %s\n", e.msg);
        return 2;
    }
    uint32_t next = (uint32_t)strtoul(argv[4], NULL, 10);
    for (;;) { /* until killed: keep 16 puts in flight */
        for (int j = 0; j < 16; j++, next++) {
            char k[32];
            snprintf(k, sizeof k, "d%08u", next);
            char *v = durable_value(next);
            if (kv_put(s, "durable", k, strlen(k), v, strlen(v), NULL, child_put_done,
                       (void *)(uintptr_t)next, &e)) {
                fprintf(stderr, "child: %s\n", e.msg);
                return 2;
            }
            free(v);
        }
        uv_run(&loop, UV_RUN_ONCE);
    }
}

static void acknowledged_puts_survive_sigkill(void **state)
{
    fixture *f = *state;
    uint32_t *acked = NULL;
    size_t nacked = 0, cap = 0;
    uint32_t first = 0;
    srand((unsigned)time(NULL));
    for (int round = 0; round < 6; round++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        char firstbuf[16];
        snprintf(firstbuf, sizeof firstbuf, "%u", first);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            dup2(p[1], 3);
            char *argv[] = {"/proc/self/exe", "--put-child",
                            f->redis ? f->server.url : "", f->dir, firstbuf, NULL};
            execv("/proc/self/exe", argv);
            _exit(127);
        }
        close(p[1]);
        /* Wait for the first acknowledgement, then kill at a random moment. */
        uint64_t deadline = 0;
        int delay_ms = 20 + rand() % 300;
        bool killed = false;
        for (;;) {
            struct pollfd pfd = {p[0], POLLIN, 0};
            int timeout = -1;
            if (deadline) {
                int64_t left = (int64_t)(deadline - clock_mono_ns()) / 1000000;
                timeout = left > 0 ? (int)left : 0;
            }
            int pr = poll(&pfd, 1, killed ? -1 : timeout);
            if (pr == 0 && !killed) {
                kill(pid, SIGKILL);
                killed = true;
                continue;
            }
            uint32_t i;
            ssize_t got = read(p[0], &i, sizeof i);
            if (got == 0)
                break;
            assert_int_equal(got, sizeof i);
            if (nacked == cap) {
                cap = cap ? cap * 2 : 1024;
                acked = xrealloc(acked, cap * sizeof *acked);
            }
            acked[nacked++] = i;
            if (!deadline)
                deadline = clock_mono_ns() + (uint64_t)delay_ms * 1000000;
        }
        int status;
        waitpid(pid, &status, 0);
        close(p[0]);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        first += 1000000; /* fresh keys for the next child */
    }
    assert_true(nacked > 0);
    /* A fresh store (on SQLite: a new connection recovering the WAL). */
    kv_store *s;
    assert_int_equal(open_store(f, &f->cfg, &s), 0);
    kv_store *saved = f->s;
    f->s = s;
    for (size_t j = 0; j < nacked; j++) {
        char k[32];
        snprintf(k, sizeof k, "d%08u", acked[j]);
        char *v = durable_value(acked[j]);
        check_value(f, "durable", k, strlen(k), v, strlen(v));
        free(v);
    }
    f->s = saved;
    close_store(f, s);
    print_message("%zu acknowledged puts over 6 kills, all present\n", nacked);
    free(acked);
}

/* --- Redis only: the connection comes back after the server restarts */

static void redis_reconnects(void **state)
{
    fixture *f = *state;
    put(f, "re", "before", "1");
    test_redis_stop(&f->server, SIGKILL, 0);
    /* The loss is seen on the next command; ops fail with 503 codes. */
    result r;
    int rc = get(f, "re", "before", 6, &r);
    assert_true(rc == -ECONNRESET || rc == -ENOTCONN || rc == -ECONNREFUSED);
    assert_int_equal(kv_error_status(rc), 503);
    assert_non_null(strstr(r.e.msg, "KV GET failed: 503"));
    result_free(&r);
    assert_int_equal(test_redis_start(&f->server), 0); /* same port, empty data */
    bool ok = false;
    for (int i = 0; i < 100 && !ok; i++) {
        run_for(f, 100);
        err e = {0};
        ok = put_opts(f, "re", "after", 5, "2", 1, NULL, &e) == 0;
    }
    assert_true(ok);
    check_value(f, "re", "after", 5, "2", 1);
}

/* --- Redis only: a server that stops answering does not hold ops forever */

static void redis_times_out_on_a_stopped_server(void **state)
{
    fixture *f = *state;
    put(f, "to", "k", "1");
    kill(f->server.pid, SIGSTOP);
    uint64_t t0 = clock_mono_ns();
    result r;
    int rc = get(f, "to", "k", 1, &r);
    uint64_t waited_ms = (clock_mono_ns() - t0) / 1000000;
    kill(f->server.pid, SIGCONT);
    assert_int_equal(rc, -ETIMEDOUT);
    assert_int_equal(kv_error_status(rc), 503);
    assert_non_null(strstr(r.e.msg, "KV GET failed: 503 redis 127.0.0.1:"));
    assert_non_null(strstr(r.e.msg, "no reply within 500 ms"));
    assert_true(waited_ms >= 400 && waited_ms < 3000);
    result_free(&r);
    bool ok = false;
    for (int i = 0; i < 100 && !ok; i++) {
        run_for(f, 100);
        ok = get(f, "to", "k", 1, &r) == 0 && r.found;
        result_free(&r);
    }
    assert_true(ok);
}

/* --- SQLite only: several processes opening a new file at once
 *
 * What `atoll serve` does when its worker processes start together: each
 * opens the state directory's database, which the first of them creates.
 * SQLite does not wait on a lock where waiting could deadlock (two
 * connections that both want to turn a new file into WAL mode), so the
 * store must retry itself; without that one of them failed with
 * "database is locked" now and then. */

/* argv: --open-child STATE_DIR. Waits for a byte on fd 3, then opens,
 * puts, closes. */
static int open_child(char **argv)
{
    char go;
    if (read(3, &go, 1) != 1)
        return 4;
    uv_loop_t loop;
    uv_loop_init(&loop);
    kv_config cfg = {.state_dir = argv[2]};
    kv_store *s;
    err e;
    if (kv_open(&loop, &cfg, &s, &e)) {
        fprintf(stderr, "child %d: %s\n", (int)getpid(), e.msg);
        uv_loop_close(&loop);
        return 2;
    }
    bool done = false;
    char key[32];
    snprintf(key, sizeof key, "pid%d", (int)getpid());
    result r = {0};
    if (kv_put(s, "opens", key, strlen(key), "v", 1, NULL, on_done, &r, &e)) {
        fprintf(stderr, "child put: %s\n", e.msg);
        return 2;
    }
    while (!r.done)
        uv_run(&loop, UV_RUN_ONCE);
    int status = r.status;
    if (status)
        fprintf(stderr, "child put: %s\n", r.e.msg);
    kv_close(s, on_closed, &done);
    while (!done)
        uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop))
        return 5;
    return status ? 3 : 0;
}

static void processes_opening_a_new_file_at_once_all_succeed(void **state)
{
    fixture *f = *state;
    enum { ROUNDS = 10, CHILDREN = 6 };
    for (int round = 0; round < ROUNDS; round++) {
        char *dir = xasprintf("%s/race%d", f->dir, round);
        assert_int_equal(mkdir(dir, 0700), 0);
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pids[CHILDREN];
        for (int i = 0; i < CHILDREN; i++) {
            pids[i] = fork();
            assert_true(pids[i] >= 0);
            if (pids[i] == 0) {
                dup2(p[0], 3);
                char *argv[] = {"/proc/self/exe", "--open-child", dir, NULL};
                execv("/proc/self/exe", argv);
                _exit(127);
            }
        }
        close(p[0]);
        usleep(50 * 1000); /* let them all reach the read */
        assert_int_equal(write(p[1], "gggggggg", CHILDREN), CHILDREN); /* go, all at once */
        close(p[1]);
        for (int i = 0; i < CHILDREN; i++) {
            int status;
            assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("round %d: child %d exited with status %#x", round, i, status);
        }
        char *path = xasprintf("%s/kv.sqlite3", dir);
        sqlite3 *db;
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM kv", -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), CHILDREN);
        sqlite3_finalize(st);
        sqlite3_close(db);
        free(path);
        free(dir);
    }
}

static void open_reports_bad_config(void **state)
{
    fixture *f = *state;
    kv_store *s;
    err e = {0};
    kv_config cfg = {.state_dir = "/nonexistent/atoll"};
    assert_int_equal(kv_open(&f->loop, &cfg, &s, &e), -EIO);
    assert_non_null(strstr(e.msg, "open KV store (sqlite): open /nonexistent/atoll/kv.sqlite3"));
    cfg = (kv_config){.redis_url = "http://x"};
    assert_int_equal(kv_open(&f->loop, &cfg, &s, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "not a redis:// URL"));
    cfg = (kv_config){.redis_url = "redis://127.0.0.1:99999"};
    assert_int_equal(kv_open(&f->loop, &cfg, &s, &e), -EINVAL);
}

#define SUITE(...)                                                     \
    {                                                                  \
        cmocka_unit_test(roundtrip_binary_keys_and_values),            \
        cmocka_unit_test(metadata_roundtrips),                         \
        cmocka_unit_test(expiration_hides_and_sweeps),                 \
        cmocka_unit_test(limits_are_enforced),                         \
        cmocka_unit_test(list_paginates_in_byte_order),                \
        cmocka_unit_test(namespaces_are_isolated),                     \
        cmocka_unit_test(many_outstanding_operations),                 \
        cmocka_unit_test(close_completes_pending_operations),          \
        cmocka_unit_test(acknowledged_puts_survive_sigkill),           \
        cmocka_unit_test(open_reports_bad_config), __VA_ARGS__             \
    }

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--put-child") == 0)
        return put_child(argv);
    if (argc == 3 && strcmp(argv[1], "--open-child") == 0)
        return open_child(argv);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest sqlite_tests[] =
        SUITE(cmocka_unit_test(processes_opening_a_new_file_at_once_all_succeed));
    const struct CMUnitTest redis_tests[] =
        SUITE(cmocka_unit_test(redis_reconnects), cmocka_unit_test(redis_times_out_on_a_stopped_server));
    int failed = cmocka_run_group_tests_name("kv/sqlite", sqlite_tests, setup_sqlite, teardown);
    failed += cmocka_run_group_tests_name("kv/redis", redis_tests, setup_redis, teardown);
    return failed;
}
