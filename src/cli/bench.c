/* `atoll bench`: measures the three tiers (and, with --peers, workerd and
 * crun) on this machine and prints the trade-off table; writes CSV, JSON
 * and charts into --out. The measuring lives in src/bench/. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench.h"
#include "cli/cli.h"
#include "core/alloc.h"

static const char *usage_text =
    "usage: atoll bench [--tiers js,wasm,container] [--peers] [--out DIR] [--quick] [--samples N]\n"
    "\n"
    "Runs a hello-world and a compute service (primes below 100,000 by a sieve:\n"
    "the same algorithm in JavaScript, in C compiled to wasm32-wasi, in C in a\n"
    "busybox container) in each tier and measures cold start, warm latency,\n"
    "keep-alive throughput and memory per idle instance at the client.\n"
    "\n"
    "  --tiers LIST   tiers to measure (default js,wasm,container)\n"
    "  --peers        also measure workerd (npm) and crun (Debian), with ratios\n"
    "  --out DIR      results: table.txt, results.csv, results.json, charts\n"
    "                 (default bench-results)\n"
    "  --quick        fewer samples: under two minutes on two cores\n"
    "  --samples N    N samples of everything (tests; env ATOLL_BENCH_SAMPLES)\n"
    "  --no-progress  no progress line on stderr\n";

/* A sample count: a whole number from 1 to 100000 (strtoul would take
 * "abc" as 0, the default, and "-5" as a huge count). */
static int parse_samples(const char *s, const char *what, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (!isdigit((unsigned char)*s) || *end || errno || v < 1 || v > 100000) {
        fprintf(stderr, "atoll bench: %s: '%s' is not a sample count (1 to 100000)\n", what, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_tiers(const char *s, bool tiers[3])
{
    static const char *names[] = {"js", "wasm", "container"};
    memset(tiers, 0, 3 * sizeof *tiers);
    char *copy = xstrdup(s), *save = NULL;
    int rc = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int k = -1;
        for (int i = 0; i < 3; i++)
            if (strcmp(t, names[i]) == 0)
                k = i;
        if (k < 0) {
            fprintf(stderr, "atoll bench: unknown tier '%s' (js, wasm, container)\n", t);
            rc = -1;
            break;
        }
        tiers[k] = true;
    }
    free(copy);
    if (rc == 0 && !tiers[0] && !tiers[1] && !tiers[2]) {
        fprintf(stderr, "atoll bench: --tiers '%s' names no tier (js, wasm, container)\n", s);
        rc = -1;
    }
    return rc;
}

int cli_bench(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"tiers", required_argument, NULL, 't'}, {"peers", no_argument, NULL, 'p'},
        {"out", required_argument, NULL, 'o'},   {"quick", no_argument, NULL, 'q'},
        {"samples", required_argument, NULL, 's'}, {"no-progress", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    bench_opts o = {.tiers = {true, true, true}, .out_dir = "bench-results", .progress = true};
    const char *env = getenv("ATOLL_BENCH_SAMPLES");
    if (env && *env && parse_samples(env, "ATOLL_BENCH_SAMPLES", &o.samples) != 0)
        return 2;
    int c;
    while ((c = getopt_long(argc, argv, "t:po:qs:nh", longopts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (parse_tiers(optarg, o.tiers) != 0)
                return 2;
            break;
        case 'p': o.peers = true; break;
        case 'o': o.out_dir = optarg; break;
        case 'q': o.quick = true; break;
        case 's':
            if (parse_samples(optarg, "--samples", &o.samples) != 0)
                return 2;
            break;
        case 'n': o.progress = false; break;
        case 'h': fputs(usage_text, stdout); return 0;
        default: fputs(usage_text, stderr); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "atoll bench: unexpected argument '%s'\n", argv[optind]);
        fputs(usage_text, stderr);
        return 2;
    }
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "atoll bench: cannot find this binary (/proc/self/exe)\n");
        return 1;
    }
    self[n] = 0;
    o.self = self;
    /* The output directory is checked before the run, not after minutes of
     * measuring: it must be (or become) a directory we can write into. */
    if (mkdir(o.out_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "atoll bench: --out %s: cannot create the directory: %s\n", o.out_dir, strerror(errno));
        return 1;
    }
    struct stat st;
    if (stat(o.out_dir, &st) != 0) {
        fprintf(stderr, "atoll bench: --out %s: %s\n", o.out_dir, strerror(errno));
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "atoll bench: --out %s: exists and is not a directory\n", o.out_dir);
        return 1;
    }
    char *out_abs = realpath(o.out_dir, NULL);
    char *probe = out_abs ? xasprintf("%s/.atoll-bench-probe", out_abs) : NULL;
    int pfd = probe ? open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
    if (pfd < 0) {
        fprintf(stderr, "atoll bench: --out %s: cannot write there: %s\n", o.out_dir, strerror(errno));
        free(probe);
        free(out_abs);
        return 1;
    }
    close(pfd);
    unlink(probe);
    free(probe);
    o.out_dir = out_abs;

    bench_report r = {0};
    err e = {0};
    int rc = bench_run(&o, &r, &e);
    if (rc != 0)
        fprintf(stderr, "atoll bench: %s (partial results follow)\n", e.msg);
    /* The command line itself, first among the commands. */
    char *line = xstrdup("atoll bench");
    for (int i = 1; i < argc; i++) {
        /* Quoted where the shell would split or expand it: rerunnable. */
        bool plain = argv[i][0] && strspn(argv[i], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                    "0123456789-_=.,/:+@%") == strlen(argv[i]);
        char *q = plain ? xstrdup(argv[i]) : bench_sh_quote(argv[i]);
        char *next = xasprintf("%s %s", line, q);
        free(q);
        free(line);
        line = next;
    }
    bench_report_command(&r, "%s", line);
    free(line);

    bench_write_table(stdout, &r);
    char *p = xasprintf("%s/table.txt", out_abs);
    FILE *f = fopen(p, "w");
    if (f) {
        bench_write_table(f, &r);
        fprintf(f, "\ncommands:\n");
        for (size_t i = 0; i < r.n_commands; i++)
            fprintf(f, "  %s\n", r.commands[i]);
        fclose(f);
    }
    free(p);
    p = xasprintf("%s/results.csv", out_abs);
    f = fopen(p, "w");
    if (!f || bench_write_csv(f, &r) != 0)
        rc = rc ? rc : -1;
    if (f)
        fclose(f);
    free(p);
    p = xasprintf("%s/results.json", out_abs);
    if (bench_write_json(p, &r, &e) != 0) {
        fprintf(stderr, "atoll bench: %s\n", e.msg);
        rc = rc ? rc : -1;
    }
    free(p);
    int ch = bench_write_charts(out_abs, &r, &e);
    if (ch < 0)
        fprintf(stderr, "atoll bench: charts: %s\n", e.msg);
    else if (ch == 1)
        fprintf(stderr, "atoll bench: gnuplot is not installed: no charts (apt-get install gnuplot-nox)\n");
    printf("\ncommands (also in %s/table.txt):\n", out_abs);
    for (size_t i = 0; i < r.n_commands; i++)
        printf("  %s\n", r.commands[i]);
    /* Only the charts that were drawn: one without data is not. */
    printf("results: %s/{table.txt,results.csv,results.json", out_abs);
    static const char *charts[] = {"cold_start.png", "cold_start.svg", "memory.png", "memory.svg"};
    for (size_t i = 0; ch == 0 && i < sizeof charts / sizeof *charts; i++) {
        p = xasprintf("%s/%s", out_abs, charts[i]);
        if (access(p, F_OK) == 0)
            printf(",%s", charts[i]);
        free(p);
    }
    printf("}\n");
    bench_report_free(&r);
    free(out_abs);
    return rc == 0 ? 0 : 1;
}
