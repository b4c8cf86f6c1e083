/* KV benchmark: put and get throughput and latency (p50/p99) for the
 * SQLite backend (a temporary state directory) and the Redis backend (a
 * redis-server started on a free loopback port for the run). Each phase
 * runs with 1 operation in flight (latency as a single caller sees it) and
 * with many in flight (throughput, as many isolates on one loop see it).
 *
 * usage: kv_bench [OPS [VALUE_BYTES [IN_FLIGHT]]]   (default 20000 100 64) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tests/support/redis_server.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "kv/kv.h"

typedef struct bench {
    uv_loop_t *loop;
    kv_store *s;
    bool put;
    size_t ops, issued, done, in_flight, keys;
    char *value;
    size_t value_len;
    uint64_t *lat; /* ns per op */
    uint64_t *start;
    struct bench **slots; /* op i's callback data is &slots[i], which holds the bench */
} bench;

static void issue(bench *b);

static void finished(bench *b, size_t i, int status, const err *e)
{
    if (status) {
        fprintf(stderr, "kv_bench: %s\n", e->msg);
        exit(1);
    }
    b->lat[i] = clock_mono_ns() - b->start[i];
    b->done++;
    issue(b);
}

/* Callback data points into b->slots, so the op number is its index: no
 * allocation per op. */
static void on_done(void *data, int status, const err *e)
{
    bench **slot = data;
    finished(*slot, (size_t)(slot - (*slot)->slots), status, e);
}

static void on_get(void *data, int status, kv_value *v, const err *e)
{
    bench **slot = data;
    if (!status && !v) {
        fprintf(stderr, "kv_bench: key missing\n");
        exit(1);
    }
    finished(*slot, (size_t)(slot - (*slot)->slots), status, e);
}

static void issue(bench *b)
{
    while (b->issued < b->ops && b->issued - b->done < b->in_flight) {
        size_t i = b->issued++;
        char key[32];
        int n = snprintf(key, sizeof key, "bench-%08zu", i % b->keys);
        err e;
        b->slots[i] = b;
        b->start[i] = clock_mono_ns();
        int rc = b->put ? kv_put(b->s, "bench", key, (size_t)n, b->value, b->value_len, NULL,
                                 on_done, &b->slots[i], &e)
                        : kv_get(b->s, "bench", key, (size_t)n, on_get, &b->slots[i], &e);
        if (rc) {
            fprintf(stderr, "kv_bench: %s\n", e.msg);
            exit(1);
        }
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *backend, const char *what, bench *b, size_t in_flight, double secs)
{
    qsort(b->lat, b->ops, sizeof *b->lat, cmp_u64);
    printf("%-7s %-13s in_flight=%-3zu %9.0f ops/s   p50 %8.1f us   p99 %8.1f us\n", backend,
           what, in_flight, (double)b->ops / secs, (double)b->lat[b->ops / 2] / 1e3,
           (double)b->lat[b->ops * 99 / 100] / 1e3);
    fflush(stdout);
}

static void start(bench *b, bool put, size_t in_flight)
{
    b->put = put;
    b->in_flight = in_flight;
    b->issued = b->done = 0;
    issue(b);
}

static void phase(const char *backend, bench *b, bool put, size_t in_flight)
{
    uint64_t t0 = clock_mono_ns();
    start(b, put, in_flight);
    while (b->done < b->ops)
        uv_run(b->loop, UV_RUN_ONCE);
    report(backend, put ? "put" : "get", b, in_flight, (double)(clock_mono_ns() - t0) / 1e9);
}

/* One get at a time, as a request would make it, while puts stream with
 * `in_flight` outstanding: the cost of a get under write load. */
static void mixed(const char *backend, bench *gets, bench *puts, size_t in_flight)
{
    uint64_t t0 = clock_mono_ns();
    start(puts, true, in_flight);
    start(gets, false, 1);
    while (gets->done < gets->ops)
        uv_run(gets->loop, UV_RUN_ONCE);
    report(backend, "get|puts", gets, 1, (double)(clock_mono_ns() - t0) / 1e9);
    puts->ops = puts->issued; /* stop issuing; drain */
    while (puts->done < puts->issued)
        uv_run(puts->loop, UV_RUN_ONCE);
}

static void bench_init(bench *b, uv_loop_t *loop, kv_store *s, size_t ops, size_t value_len)
{
    *b = (bench){.loop = loop, .s = s, .ops = ops, .keys = ops < 10000 ? ops : 10000,
                 .value_len = value_len};
    b->value = xmalloc(value_len);
    memset(b->value, 'v', value_len);
    b->lat = xcalloc(ops, sizeof *b->lat);
    b->start = xcalloc(ops, sizeof *b->start);
    b->slots = xcalloc(ops, sizeof *b->slots);
}

static void bench_free(bench *b)
{
    free(b->value);
    free(b->lat);
    free(b->start);
    free(b->slots);
}

static void on_closed(void *data)
{
    *(bool *)data = true;
}

static void run(const char *backend, const kv_config *cfg, size_t ops, size_t value_len,
                size_t in_flight)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    kv_store *s;
    err e;
    if (kv_open(&loop, cfg, &s, &e)) {
        fprintf(stderr, "kv_bench: %s\n", e.msg);
        exit(1);
    }
    bench b, w;
    bench_init(&b, &loop, s, ops, value_len);
    phase(backend, &b, true, 1);
    phase(backend, &b, true, in_flight);
    phase(backend, &b, false, 1);
    phase(backend, &b, false, in_flight);
    bench_init(&w, &loop, s, ops * 100, value_len);
    mixed(backend, &b, &w, in_flight);
    bench_free(&w);
    bench_free(&b);
    bool closed = false;
    kv_close(s, on_closed, &closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

int main(int argc, char **argv)
{
    size_t ops = argc > 1 ? strtoul(argv[1], NULL, 10) : 20000;
    size_t value_len = argc > 2 ? strtoul(argv[2], NULL, 10) : 100;
    size_t in_flight = argc > 3 ? strtoul(argv[3], NULL, 10) : 64;
    if (!ops || !in_flight) {
        fprintf(stderr, "usage: kv_bench [OPS [VALUE_BYTES [IN_FLIGHT]]]\n");
        return 2;
    }
    printf("kv_bench: %zu ops per phase, %zu-byte values, keys cycling over %zu\n", ops,
           value_len, ops < 10000 ? ops : (size_t)10000);

    char dir[] = "/tmp/atoll-kvbench-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    kv_config sq = {.state_dir = dir};
    run("sqlite", &sq, ops, value_len, in_flight);
    test_rm_rf(dir);

    test_redis r = {0};
    if (test_redis_start(&r)) {
        fprintf(stderr, "kv_bench: cannot start redis-server\n");
        return 1;
    }
    kv_config rc = {.redis_url = r.url};
    run("redis", &rc, ops, value_len, in_flight);
    test_redis_stop(&r, SIGTERM, 1);
    return 0;
}
