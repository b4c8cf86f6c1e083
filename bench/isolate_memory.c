/* Benchmark 8(c): memory per idle isolate. Creates N resident isolates of
 * a worker (default 1,000 of examples/hello/worker.js), each having served
 * one request, and prints the growth of the process's resident set per
 * isolate and QuickJS's own count of each isolate's heap.
 *
 *   build/release/bench/isolate_memory [WORKER.js] [N]
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "js/isolate.h"

typedef struct sink {
    http_writer w;
    int status;
    bool ended;
} sink;

static int sink_start(http_writer *w, int status, const http_headers *h, int64_t len)
{
    ((sink *)w)->status = status;
    return 0;
}
static int sink_write(http_writer *w, const void *data, size_t len) { return 0; }
static void sink_end(http_writer *w) { ((sink *)w)->ended = true; }

/* Resident set size in bytes, from /proc/self/statm. */
static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static void serve_one(uv_loop_t *loop, iso *i)
{
    http_request req;
    http_request_init(&req);
    req.method = xstrdup("GET");
    req.target = xstrdup("/");
    sink s = { .w = { .start = sink_start, .write = sink_write, .end = sink_end } };
    iso_dispatch(i, &req, &s.w);
    while (!s.ended && uv_run(loop, UV_RUN_ONCE))
        ;
    if (s.status != 200) {
        fprintf(stderr, "isolate_memory: unexpected status %d\n", s.status);
        exit(1);
    }
    http_request_free(&req);
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "examples/hello/worker.js";
    int n = argc > 2 ? atoi(argv[2]) : 1000;
    if (n < 1)
        n = 1;
    uv_loop_t loop;
    uv_loop_init(&loop);
    iso_options opt;
    iso_options_defaults(&opt);
    err e;

    /* Warm up: the bytecode cache and the allocator's first arenas. */
    iso *warm;
    if (iso_new(&loop, path, &opt, &warm, &e) != 0) {
        fprintf(stderr, "isolate_memory: %s\n", e.msg);
        return 1;
    }
    serve_one(&loop, warm);
    iso_free(warm);
    uv_run(&loop, UV_RUN_DEFAULT);
    malloc_trim(0);

    size_t before = rss_bytes();
    iso **isos = xcalloc((size_t)n, sizeof *isos);
    size_t heap = 0;
    for (int k = 0; k < n; k++) {
        if (iso_new(&loop, path, &opt, &isos[k], &e) != 0) {
            fprintf(stderr, "isolate_memory: %s\n", e.msg);
            return 1;
        }
        serve_one(&loop, isos[k]);
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    for (int k = 0; k < n; k++)
        heap += iso_heap_bytes(isos[k]);
    size_t after = rss_bytes();

    printf("memory per idle isolate: %s, %d resident isolates, each served one request\n", path, n);
    printf("  RSS growth: %.1f MiB total, %.1f KiB per isolate\n", (after - before) / 1048576.0,
           (after - before) / 1024.0 / n);
    printf("  QuickJS heap (JS_ComputeMemoryUsage malloc_size): %.1f KiB per isolate\n",
           heap / 1024.0 / n);

    for (int k = 0; k < n; k++)
        iso_free(isos[k]);
    uv_run(&loop, UV_RUN_DEFAULT);
    free(isos);
    iso_cache_clear();
    uv_loop_close(&loop);
    return 0;
}
