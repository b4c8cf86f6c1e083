/* `atoll bench`: the isolation trade-off table (js isolates, wasm, containers,
 * and the peers workerd and crun) measured on the operator's machine.
 *
 * Three parts with small interfaces, so that the measurement code can be
 * tested on fixed data without starting anything:
 *   stats.c    percentiles, median, spread warning over samples
 *   loadgen.c  a keep-alive HTTP load generator on a libuv loop, and
 *              parsers for response heads and wrk's output
 *   report.c   the terminal table, CSV, JSON and the gnuplot charts
 *   run.c      starts servers and containers, generates tenants, measures
 *
 * Ownership: a bench_summary owns nothing; a bench_load_result owns its
 * latency array (bench_load_result_free); a bench_report owns its rows. */
#ifndef ATOLL_BENCH_BENCH_H
#define ATOLL_BENCH_BENCH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/err.h"

/* ---- statistics ---- */
typedef struct bench_summary {
    size_t n;
    double min, p50, p90, p99, max, mean;
    double mad;      /* median absolute deviation */
    bool too_wide;   /* spread too wide to trust (see bench_summarize) */
} bench_summary;

/* Percentile p (0..100) of sorted values v[0..n-1], linear interpolation
 * between closest ranks (as numpy's default). n == 0 gives 0. */
double bench_percentile(const double *sorted, size_t n, double p);
/* Sorts v in place and fills s. The spread is flagged too wide when the
 * median absolute deviation exceeds half the median, or p99 exceeds ten
 * times the median, or there are fewer than 5 samples. */
void bench_summarize(double *v, size_t n, bench_summary *s);

/* ---- load generator ---- */
typedef struct bench_load_opts {
    int port;                 /* 127.0.0.1:port */
    const char *host;         /* Host header */
    const char *path;
    int connections;
    unsigned duration_ms;     /* measured phase; 0: stop after max_requests */
    unsigned warmup_ms;       /* requests made but not counted */
    size_t max_requests;      /* 0: unbounded (then duration_ms must be set) */
    unsigned timeout_ms;      /* a request without an answer this long is an error */
    /* When set, makes each connection's socket (e.g. inside a container's
     * network namespace); returns an fd or -errno. */
    int (*make_socket)(void *arg);
    void *socket_arg;
} bench_load_opts;

typedef struct bench_load_result {
    size_t ok;                /* 2xx responses counted */
    size_t errors;            /* non-2xx, resets, timeouts */
    size_t reconnects;        /* server closed a connection (no keep-alive) */
    double elapsed_s;
    double rps;
    double *lat_ms;           /* latency of each counted request, owned */
    size_t n_lat;
} bench_load_result;

int bench_load_run(const bench_load_opts *o, bench_load_result *r, err *e);
void bench_load_result_free(bench_load_result *r);

/* Parses an HTTP/1.x response head in buf[0..len). Returns 1 with the head
 * complete (*head_len bytes, *status, *content_length or -1 when absent,
 * *chunked, *close), 0 when more bytes are needed, -1 when malformed. */
int bench_parse_response_head(const char *buf, size_t len, size_t *head_len, int *status,
                              long long *content_length, bool *chunked, bool *close);

/* Parses `wrk --latency` output: requests/s and the 50% and 99% latency
 * lines in ms. 0, or -1 when a figure is missing. */
int bench_parse_wrk(const char *text, double *rps, double *p50_ms, double *p99_ms);

/* ---- report ---- */
/* One measured service on one runtime: what the table, CSV and JSON hold. */
typedef struct bench_row {
    char runtime[16];         /* "atoll", "workerd", "crun" */
    char tier[16];            /* "js", "wasm", "container" */
    char service[16];         /* "hello", "compute" */
    bench_summary cold_ms, warm_ms;
    double rps, rps_wrk;      /* 0: not measured */
    double mem_kb;            /* per idle instance; 0: not measured */
    size_t mem_instances;
    char note[512];
} bench_row;

typedef struct bench_report {
    bench_row *rows;
    size_t n_rows, cap;
    int cores;
    double load[3];
    char cpu[128];
    char started[32];         /* UTC, ISO 8601 */
    char **commands;          /* exact commands behind the figures */
    size_t n_commands;
    char **missing;           /* peers not available, and why */
    size_t n_missing;
} bench_report;

bench_row *bench_report_add(bench_report *r, const char *runtime, const char *tier, const char *service);
void bench_report_command(bench_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bench_report_missing(bench_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bench_report_free(bench_report *r);

/* s quoted for a POSIX shell ('...' with ' as '\''), allocated: for the
 * commands the bench runs through sh and the ones it writes down. */
char *bench_sh_quote(const char *s);
/* Instances per GB from memory per instance in KB (0 when unknown). */
double bench_per_gb(double mem_kb);
/* The isolation boundary of a tier, in words. */
const char *bench_boundary(const char *tier);

void bench_write_table(FILE *f, const bench_report *r);
int bench_write_csv(FILE *f, const bench_report *r);
int bench_write_json(const char *path, const bench_report *r, err *e);
/* Writes the gnuplot data and script into dir and runs gnuplot (when
 * installed) for cold_start.{png,svg} and memory.{png,svg}; a chart with no
 * measured figure is not drawn (and an old one of that name removed). 1
 * when gnuplot is missing (the data and script are still written), 0 done,
 * <0 error. */
int bench_write_charts(const char *dir, const bench_report *r, err *e);

/* ---- the whole run ---- */
typedef struct bench_opts {
    bool tiers[3];            /* js, wasm, container */
    bool peers;
    bool quick;
    const char *out_dir;
    const char *self;         /* the atoll binary (/proc/self/exe) */
    size_t samples;           /* override of sample counts (tests); 0: default */
    bool progress;            /* progress lines on stderr */
} bench_opts;

int bench_run(const bench_opts *o, bench_report *r, err *e);

#endif
