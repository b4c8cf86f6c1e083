/* The compute kernels of bench/wasm_compute.c, one source for both sides:
 * included natively by the benchmark, and compiled on its own with
 * `clang --target=wasm32-wasi -x c` into a WAGI guest (the main below)
 * that runs the kernel named by the query string and prints its checksum
 * and the nanoseconds it took. K(name) names the functions, so that the
 * benchmark can include the file twice: with and without the native
 * compiler's auto-vectorization (wasm2c 1.0.32 has no SIMD to match it). */
#ifndef K
#define K(name) name
#endif
#ifndef ATOLL_BENCH_WASM_KERNEL_H
#define ATOLL_BENCH_WASM_KERNEL_H
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define MAT_N 200

typedef struct kernel {
    const char *name;
    double (*fn)(void);
} kernel;

static uint64_t kernel_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
#endif

/* Dense matrix multiply, the kernel the wasm tier's issue was measured on. */
static double K(kernel_matmul)(void)
{
    static double a[MAT_N][MAT_N], b[MAT_N][MAT_N], c[MAT_N][MAT_N];
    for (int i = 0; i < MAT_N; i++)
        for (int j = 0; j < MAT_N; j++) {
            a[i][j] = (double)(i * MAT_N + j) / (MAT_N * MAT_N);
            b[i][j] = (double)(j * MAT_N + i) / (MAT_N * MAT_N);
        }
    double sum = 0;
    for (int rep = 0; rep < 5; rep++) {
        for (int i = 0; i < MAT_N; i++)
            for (int j = 0; j < MAT_N; j++) {
                double s = 0;
                for (int k = 0; k < MAT_N; k++)
                    s += a[i][k] * b[k][j];
                c[i][j] = s;
            }
        sum += c[rep][MAT_N - 1 - rep];
        a[rep][rep] += c[rep][rep] * 1e-9;
    }
    return sum;
}

/* Sieve of Eratosthenes: byte loads and stores over 8 MB of memory. */
static double K(kernel_sieve)(void)
{
    enum { LIMIT = 8 * 1000 * 1000 };
    static uint8_t composite[LIMIT];
    uint64_t count = 0;
    for (int rep = 0; rep < 3; rep++) {
        memset(composite, 0, sizeof composite);
        count = 0;
        for (uint32_t i = 2; i < LIMIT; i++) {
            if (composite[i])
                continue;
            count++;
            for (uint64_t j = (uint64_t)i * i; j < LIMIT; j += i)
                composite[j] = 1;
        }
    }
    return (double)count;
}

/* FNV-1a and xorshift over a 4 MB buffer: integer arithmetic and loads. */
static double K(kernel_hash)(void)
{
    enum { LEN = 4 << 20 };
    static uint32_t data[LEN / 4];
    uint32_t x = 2463534242u;
    for (uint32_t i = 0; i < LEN / 4; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        data[i] = x;
    }
    uint64_t h = 1469598103934665603ull;
    for (int rep = 0; rep < 8; rep++)
        for (uint32_t i = 0; i < LEN / 4; i++) {
            h ^= data[i] + (uint32_t)rep;
            h *= 1099511628211ull;
        }
    return (double)(h >> 11);
}

/* The n-body simulation of the Benchmarks Game: floating point, no memory. */
static double K(kernel_nbody)(void)
{
    enum { BODIES = 5, STEPS = 1000000 };
    double x[BODIES] = {0, 4.84, 8.34, 12.89, 15.37}, y[BODIES] = {0, -1.16, 4.12, -15.11, -25.91},
           z[BODIES] = {0, -0.10, -0.40, -0.22, 0.17}, vx[BODIES] = {0, 0.606, -1.010, 1.082, 0.979},
           vy[BODIES] = {0, 2.81, 1.82, 0.868, 0.594}, vz[BODIES] = {0, -0.02, 0.008, -0.01, -0.034},
           m[BODIES] = {39.47, 0.037, 0.011, 0.0017, 0.002};
    const double dt = 0.01;
    for (int s = 0; s < STEPS; s++) {
        for (int i = 0; i < BODIES; i++)
            for (int j = i + 1; j < BODIES; j++) {
                double dx = x[i] - x[j], dy = y[i] - y[j], dz = z[i] - z[j];
                double d2 = dx * dx + dy * dy + dz * dz, mag = dt / (d2 * sqrt(d2));
                vx[i] -= dx * m[j] * mag, vy[i] -= dy * m[j] * mag, vz[i] -= dz * m[j] * mag;
                vx[j] += dx * m[i] * mag, vy[j] += dy * m[i] * mag, vz[j] += dz * m[i] * mag;
            }
        for (int i = 0; i < BODIES; i++)
            x[i] += dt * vx[i], y[i] += dt * vy[i], z[i] += dt * vz[i];
    }
    return x[0] + y[1] + z[2];
}

static const kernel K(kernels)[] = {
    {"matmul", K(kernel_matmul)},
    {"sieve", K(kernel_sieve)},
    {"hash", K(kernel_hash)},
    {"nbody", K(kernel_nbody)},
};

#ifdef __wasm__
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    const char *q = getenv("QUERY_STRING");
    for (size_t i = 0; q && i < sizeof kernels / sizeof *kernels; i++) {
        if (strcmp(q, kernels[i].name) != 0)
            continue;
        uint64_t t0 = kernel_now_ns();
        double r = kernels[i].fn();
        uint64_t ns = kernel_now_ns() - t0;
        printf("Content-Type: text/plain\n\n%.17g %llu\n", r, (unsigned long long)ns);
        return 0;
    }
    printf("Status: 404\nContent-Type: text/plain\n\nno such kernel\n");
    return 0;
}
#endif
