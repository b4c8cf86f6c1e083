/* Benchmark of the wasm tier: the same compute kernels (wasm_kernel.h)
 * compiled natively and to WebAssembly through the tier's own pipeline
 * (clang --target=wasm32-wasi, then wasm2c + cc -O2), timed in one run;
 * prints both and the speed ratio (target: wasm >= 0.8x native), against
 * native code with and without auto-vectorization. Also the
 * per-request cost of a fresh instance and the one-time compile.
 * Run from the repository root: build/release/bench/wasm_compute [reps] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "wasm/wasm.h"

/* The kernels twice: as the compiler builds them by default, and without
 * auto-vectorization, which the wasm side cannot have (no SIMD in Debian
 * 12's wasm2c); both ratios are printed. */
#define K(name) name
#include "wasm_kernel.h"
#undef K
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-tree-vectorize")
#endif
#define K(name) scalar_##name
#include "wasm_kernel.h"
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Runs one request; returns the response body (caller frees) and its wall time. */
static char *request(const wasm_module *m, const wasm_config *cfg, const char *query,
                     uint64_t *wall_ns)
{
    http_request req;
    http_request_init(&req);
    buf_init(&req.body, 0);
    req.method = xstrdup("GET");
    req.target = xasprintf("/?%s", query);
    wasm_response resp;
    err e;
    err_clear(&e);
    char *body = NULL;
    if (wasm_run(m, cfg, &req, &resp, &e) < 0)
        fprintf(stderr, "run: %s\n", e.msg);
    else if (resp.trap)
        fprintf(stderr, "%s: trap: %s\n", query, wasm_trap_name(resp.trap));
    else
        body = xstrdup(resp.body.data ? resp.body.data : "");
    *wall_ns = resp.wall_ns;
    wasm_response_free(&resp);
    http_request_free(&req);
    return body;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    if (reps < 1)
        reps = 1;
    log_set_level(LOG_WARN);
    char dir[] = "/tmp/atoll-bench-wasm.XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char *wasm = xasprintf("%s/kernel.wasm", dir), *cache = xasprintf("%s/cache", dir);
    char *cmd = xasprintf("clang --target=wasm32-wasi -O2 -x c bench/wasm_kernel.h -o %s", wasm);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot build the wasm kernel (run from the repository root)\n");
        return 1;
    }
    buf bytes;
    buf_init(&bytes, BUF_UNLIMITED);
    FILE *f = fopen(wasm, "rb");
    char chunk[65536];
    size_t n;
    while (f && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&bytes, chunk, n);
    if (f)
        fclose(f);

    wasm_compile_opts opts = {.cache_dir = cache};
    wasm_module *m = NULL, *again = NULL;
    err e;
    err_clear(&e);
    uint64_t t0 = clock_mono_ns();
    if (wasm_module_load(bytes.data, bytes.len, &opts, &m, &e) < 0) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    uint64_t compile_ns = clock_mono_ns() - t0;
    t0 = clock_mono_ns();
    wasm_module_load(bytes.data, bytes.len, &opts, &again, &e);
    uint64_t cached_ns = clock_mono_ns() - t0;

    wasm_config cfg;
    wasm_config_init(&cfg);
    cfg.limits.cpu_ms = 600000;
    cfg.limits.wall_ms = 600000;

    printf("%-8s %10s %10s %10s %11s %8s %8s\n", "kernel", "native ms", "scalar ms", "wasm ms",
           "request ms", "vs nat.", "vs scal.");
    double log_native = 0, log_scalar = 0;
    size_t nk = sizeof kernels / sizeof *kernels;
    for (size_t k = 0; k < nk; k++) {
        uint64_t best[4] = {UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX};
        double results[3] = {0};
        /* Interleaved, best of `reps`: the machine's noise hits all sides. */
        for (int r = 0; r < reps; r++) {
            uint64_t s = kernel_now_ns();
            results[0] = kernels[k].fn();
            uint64_t d = kernel_now_ns() - s;
            best[0] = d < best[0] ? d : best[0];
            s = kernel_now_ns();
            results[1] = scalar_kernels[k].fn();
            d = kernel_now_ns() - s;
            best[1] = d < best[1] ? d : best[1];
            uint64_t wall;
            char *body = request(m, &cfg, kernels[k].name, &wall);
            unsigned long long ns = 0;
            if (!body || sscanf(body, "%lf %llu", &results[2], &ns) != 2)
                return 1;
            free(body);
            best[2] = ns < best[2] ? ns : best[2];
            best[3] = wall < best[3] ? wall : best[3];
        }
        double vs_native = (double)best[0] / (double)best[2];
        double vs_scalar = (double)best[1] / (double)best[2];
        log_native += log(vs_native);
        log_scalar += log(vs_scalar);
        printf("%-8s %10.2f %10.2f %10.2f %11.2f %7.2fx %7.2fx%s\n", kernels[k].name,
               best[0] / 1e6, best[1] / 1e6, best[2] / 1e6, best[3] / 1e6, vs_native, vs_scalar,
               results[0] == results[2] && results[1] == results[2] ? "" : "  (results differ!)");
    }
    printf("%-8s %52.2fx %7.2fx   (wasm speed / native speed)\n", "geomean",
           exp(log_native / (double)nk), exp(log_scalar / (double)nk));

    /* A fresh instance per request: instantiate, _start (404 path), teardown. */
    enum { RUNS = 2000 };
    static uint64_t lat[RUNS];
    for (int i = 0; i < RUNS; i++) {
        uint64_t s = clock_mono_ns(), wall;
        free(request(m, &cfg, "none", &wall));
        lat[i] = clock_mono_ns() - s;
    }
    qsort(lat, RUNS, sizeof *lat, cmp_u64);
    printf("per request (fresh instance, tiny response): p50 %.1f us, p99 %.1f us\n",
           lat[RUNS / 2] / 1e3, lat[RUNS * 99 / 100] / 1e3);

    /* The same for examples/wasm-hello (printf, a small memory): what a
     * hello-world request costs the tier. */
    free(cmd);
    char *hello = xasprintf("%s/hello.wasm", dir);
    cmd = xasprintf("clang --target=wasm32-wasi -O2 examples/wasm-hello/hello.c -o %s", hello);
    buf hb;
    buf_init(&hb, BUF_UNLIMITED);
    wasm_module *hm = NULL;
    if (system(cmd) == 0 && (f = fopen(hello, "rb"))) {
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
            buf_append(&hb, chunk, n);
        fclose(f);
        if (wasm_module_load(hb.data, hb.len, &opts, &hm, &e) == 0) {
            for (int i = 0; i < RUNS; i++) {
                uint64_t s = clock_mono_ns(), wall;
                free(request(hm, &cfg, "name=bench", &wall));
                lat[i] = clock_mono_ns() - s;
            }
            qsort(lat, RUNS, sizeof *lat, cmp_u64);
            printf("per request, examples/wasm-hello: p50 %.1f us, p99 %.1f us\n", lat[RUNS / 2] / 1e3,
                   lat[RUNS * 99 / 100] / 1e3);
        }
    }
    wasm_module_free(hm);
    buf_free(&hb);
    free(hello);
    printf("deploy: compile %.0f ms (%zu-byte module), cached load %.2f ms\n", compile_ns / 1e6,
           bytes.len, cached_ns / 1e6);

    wasm_module_free(again);
    wasm_module_free(m);
    buf_free(&bytes);
    free(cmd);
    cmd = xasprintf("rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    free(cmd);
    free(wasm);
    free(cache);
    return 0;
}
