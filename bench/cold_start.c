/* Benchmark 8(b): isolate cold start. Repeatedly creates an isolate for a
 * worker (runtime + context + Web API), loads the worker (from the
 * bytecode cache after the first time) and answers its first request, then
 * frees it. Prints the first, uncached time and p50/p99 of the rest, in
 * microseconds: without the pool of ready runtimes (every cold start makes
 * its runtime) and with it (the pool refills while the loop is idle, between
 * cold starts, as in the server).
 *
 *   build/release/bench/cold_start [WORKER.js] [ITERATIONS] [nopool|pool|both]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "js/isolate.h"

typedef struct sink {
    http_writer w;
    int status;
    size_t bytes;
    bool ended;
} sink;

static int sink_start(http_writer *w, int status, const http_headers *h, int64_t len)
{
    ((sink *)w)->status = status;
    return 0;
}
static int sink_write(http_writer *w, const void *data, size_t len)
{
    ((sink *)w)->bytes += len;
    return 0;
}
static void sink_end(http_writer *w) { ((sink *)w)->ended = true; }

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* One cold start; returns its duration in ns, or 0 on failure. */
static uint64_t cold_start(uv_loop_t *loop, const char *path, iso_pool *pool, uint64_t *load_ns)
{
    iso_options opt;
    iso_options_defaults(&opt);
    opt.pool = pool;
    /* The loop was idle since the last cold start: the pool is full. */
    while (pool && iso_pool_ready(pool) < ISO_POOL_DEFAULT)
        uv_run(loop, UV_RUN_NOWAIT);
    http_request req;
    http_request_init(&req);
    req.method = xstrdup("GET");
    req.target = xstrdup("/");
    http_headers_add_str(&req.headers, "Host", "bench.test");
    sink s = { .w = { .start = sink_start, .write = sink_write, .end = sink_end } };

    uint64_t t0 = clock_mono_ns();
    iso *i;
    err e;
    if (iso_new(loop, path, &opt, &i, &e) != 0) {
        fprintf(stderr, "cold_start: %s\n", e.msg);
        exit(1);
    }
    uint64_t t1 = clock_mono_ns();
    iso_dispatch(i, &req, &s.w);
    while (!s.ended && uv_run(loop, UV_RUN_ONCE))
        ;
    uint64_t t2 = clock_mono_ns();
    if (s.status != 200 || s.bytes == 0) {
        fprintf(stderr, "cold_start: unexpected response %d (%zu bytes)\n", s.status, s.bytes);
        exit(1);
    }
    iso_free(i);
    uv_run(loop, UV_RUN_DEFAULT);
    http_request_free(&req);
    *load_ns = t1 - t0;
    return t2 - t0;
}

static void run(uv_loop_t *loop, const char *path, int n, bool pooled)
{
    iso_pool *pool = pooled ? iso_pool_new(loop, ISO_POOL_DEFAULT) : NULL;
    iso_cache_clear();
    uint64_t first_load;
    uint64_t first = cold_start(loop, path, pool, &first_load);

    uint64_t *total = xcalloc((size_t)n, sizeof *total), *load = xcalloc((size_t)n, sizeof *load);
    for (int k = 0; k < n; k++)
        total[k] = cold_start(loop, path, pool, &load[k]);
    qsort(total, (size_t)n, sizeof *total, cmp_u64);
    qsort(load, (size_t)n, sizeof *load, cmp_u64);

    iso_cache_info ci;
    iso_cache_stats(&ci);
    printf("isolate cold start %s: %s, %d iterations (%s + load + first request)\n",
           pooled ? "WITH the pool" : "without a pool", path, n,
           pooled ? "take a ready runtime" : "create runtime + install APIs");
    printf("  first (compile, uncached): %8.1f us  (load %.1f us)\n", first / 1e3, first_load / 1e3);
    printf("  cached bytecode:   p50 %8.1f us  p99 %8.1f us  min %8.1f us  max %8.1f us\n",
           total[n / 2] / 1e3, total[(size_t)(n * 0.99)] / 1e3, total[0] / 1e3, total[n - 1] / 1e3);
    printf("  of which iso_new:  p50 %8.1f us  p99 %8.1f us\n", load[n / 2] / 1e3,
           load[(size_t)(n * 0.99)] / 1e3);
    printf("  bytecode cache: %zu file(s), %zu bytes, %llu hits, %llu misses\n", ci.entries, ci.bytes,
           (unsigned long long)ci.hits, (unsigned long long)ci.misses);
    free(total);
    free(load);
    iso_pool_free(pool);
    uv_run(loop, UV_RUN_DEFAULT);
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "examples/hello/worker.js";
    int n = argc > 2 ? atoi(argv[2]) : 1000;
    const char *mode = argc > 3 ? argv[3] : "both";
    if (n < 1)
        n = 1;
    uv_loop_t loop;
    uv_loop_init(&loop);
    if (strcmp(mode, "pool") != 0)
        run(&loop, path, n, false);
    if (strcmp(mode, "nopool") != 0)
        run(&loop, path, n, true);
    iso_cache_clear();
    uv_loop_close(&loop);
    return 0;
}
