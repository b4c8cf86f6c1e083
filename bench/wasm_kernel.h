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

/* SHA-256 (FIPS 180-4) over 64 MiB: a 1 MiB buffer of xorshift bytes
 * hashed 64 times as one message. 32-bit rotates, shifts and adds. */
#ifndef KERNEL_SHA_ONCE
#define KERNEL_SHA_ONCE
#define KROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
static const uint32_t kernel_sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};
#endif

static void K(kernel_sha_block)(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
               p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = KROR(w[i - 15], 7) ^ KROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = KROR(w[i - 2], 17) ^ KROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (KROR(e, 6) ^ KROR(e, 11) ^ KROR(e, 25)) + ((e & f) ^ (~e & g)) +
                      kernel_sha_k[i] + w[i];
        uint32_t t2 = (KROR(a, 2) ^ KROR(a, 13) ^ KROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

static double K(kernel_sha256)(void)
{
    enum { CHUNK = 1 << 20, TIMES = 64 };
    static uint8_t data[CHUNK + 64];
    uint32_t x = 2463534242u;
    for (uint32_t i = 0; i < CHUNK; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        data[i] = (uint8_t)x;
    }
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    for (int t = 0; t < TIMES; t++)
        for (uint32_t off = 0; off < CHUNK; off += 64)
            K(kernel_sha_block)(h, data + off);
    /* The padding block of a 64 MiB message. */
    uint64_t bits = (uint64_t)CHUNK * TIMES * 8;
    uint8_t *pad = data + CHUNK;
    memset(pad, 0, 64);
    pad[0] = 0x80;
    for (int i = 0; i < 8; i++)
        pad[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    K(kernel_sha_block)(h, pad);
    return (double)h[0] * 4294967296.0 + (double)h[7];
}

static const kernel K(kernels)[] = {
    {"matmul", K(kernel_matmul)},
    {"sieve", K(kernel_sieve)},
    {"hash", K(kernel_hash)},
    {"nbody", K(kernel_nbody)},
    {"sha256", K(kernel_sha256)},
};

#if defined(KERNEL_EXPORTS)
/* For a host that calls the kernels itself (bench/wasm_bench.py: V8 in
 * workerd): clang --target=wasm32-wasi -mexec-model=reactor -DKERNEL_EXPORTS. */
__attribute__((export_name("kernel_count"))) int kernel_count(void)
{
    return (int)(sizeof kernels / sizeof *kernels);
}
__attribute__((export_name("kernel_run"))) double kernel_run(int i)
{
    return kernels[i].fn();
}
#elif defined(KERNEL_NATIVE_MAIN)
/* The native side of bench/wasm_bench.py: `kernel NAME` prints the result
 * and the nanoseconds, as the WAGI guest below does. */
#include <stdio.h>

int main(int argc, char **argv)
{
    for (size_t i = 0; argc > 1 && i < sizeof kernels / sizeof *kernels; i++) {
        if (strcmp(argv[1], kernels[i].name) != 0)
            continue;
        uint64_t t0 = kernel_now_ns();
        double r = kernels[i].fn();
        uint64_t ns = kernel_now_ns() - t0;
        printf("%.17g %llu\n", r, (unsigned long long)ns);
        return 0;
    }
    fprintf(stderr, "usage: kernel NAME\n");
    return 2;
}
#elif defined(__wasm__)
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
