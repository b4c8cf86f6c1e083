/* What `atoll bench` shows and writes: the aligned terminal table, a CSV
 * with one line per measured figure, a JSON file with every summary, the
 * machine and the exact commands, and gnuplot charts (PNG and SVG, log
 * scale) of cold start and memory per instance by tier. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"
#include "core/alloc.h"

bench_row *bench_report_add(bench_report *r, const char *runtime, const char *tier, const char *service)
{
    if (r->n_rows == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 8;
        r->rows = xrealloc(r->rows, r->cap * sizeof *r->rows);
    }
    bench_row *row = &r->rows[r->n_rows++];
    memset(row, 0, sizeof *row);
    snprintf(row->runtime, sizeof row->runtime, "%s", runtime);
    snprintf(row->tier, sizeof row->tier, "%s", tier);
    snprintf(row->service, sizeof row->service, "%s", service);
    return row;
}

static void push(char ***list, size_t *n, const char *fmt, va_list ap)
{
    char *s;
    if (vasprintf(&s, fmt, ap) < 0)
        abort();
    *list = xrealloc(*list, (*n + 1) * sizeof **list);
    (*list)[(*n)++] = s;
}

void bench_report_command(bench_report *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    push(&r->commands, &r->n_commands, fmt, ap);
    va_end(ap);
}

void bench_report_missing(bench_report *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    push(&r->missing, &r->n_missing, fmt, ap);
    va_end(ap);
}

void bench_report_free(bench_report *r)
{
    for (size_t i = 0; i < r->n_commands; i++)
        free(r->commands[i]);
    for (size_t i = 0; i < r->n_missing; i++)
        free(r->missing[i]);
    free(r->commands);
    free(r->missing);
    free(r->rows);
    memset(r, 0, sizeof *r);
}

char *bench_sh_quote(const char *s)
{
    size_t n = 3;
    for (const char *c = s; *c; c++)
        n += *c == '\'' ? 4 : 1;
    char *q = xmalloc(n), *o = q;
    *o++ = '\'';
    for (const char *c = s; *c; c++) {
        if (*c == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
        } else {
            *o++ = *c;
        }
    }
    *o++ = '\'';
    *o = 0;
    return q;
}

double bench_per_gb(double mem_kb)
{
    return mem_kb > 0 ? 1024.0 * 1024.0 / mem_kb : 0;
}

const char *bench_boundary(const char *tier)
{
    if (strcmp(tier, "js") == 0)
        return "a QuickJS runtime (own heap, GC, memory cap, CPU budget) inside a shared worker process; "
               "the tenant reaches only the host APIs (fetch to allowed hosts, env, KV), no files or "
               "sockets; the kernel surface is the worker's seccomp allow-list, shared by every tenant "
               "of that process";
    if (strcmp(tier, "wasm") == 0)
        return "a fresh linear memory per request (guard pages, bounds-checked by wasm2c's code) in a "
               "shared worker process; the tenant reaches only WASI calls atoll implements (args, env, "
               "clocks, random, stdio, a read-only preopen); no sockets; kernel surface as for js";
    if (strcmp(tier, "container") == 0)
        return "its own processes in pid/mount/uts/ipc namespaces with a pivot_root'd read-only rootfs, "
               "cgroup limits, dropped capabilities, no_new_privs and a Docker-like seccomp profile; the "
               "tenant runs native code and talks to the kernel directly (hundreds of syscalls allowed); "
               "its own network namespace with only loopback, where atoll (for the peers: the bench) connects to "
               "its server";
    return "";
}

/* Formats a figure in a fixed width: "-" when not measured, a "~" suffix
 * when the spread is too wide to trust. */
static const char *fmt_ms(char *b, size_t n, double v, bool measured, bool wide)
{
    if (!measured)
        snprintf(b, n, "-");
    else if (v >= 100)
        snprintf(b, n, "%.0f%s", v, wide ? "~" : "");
    else if (v >= 1)
        snprintf(b, n, "%.2f%s", v, wide ? "~" : "");
    else
        snprintf(b, n, "%.3f%s", v, wide ? "~" : "");
    return b;
}

static const char *fmt_num(char *b, size_t n, double v)
{
    if (v <= 0)
        snprintf(b, n, "-");
    else if (v >= 10000)
        snprintf(b, n, "%.0fk", v / 1000);
    else if (v >= 100)
        snprintf(b, n, "%.0f", v);
    else
        snprintf(b, n, "%.1f", v);
    return b;
}

static const bench_row *find_row(const bench_report *r, const char *runtime, const char *tier, const char *service)
{
    for (size_t i = 0; i < r->n_rows; i++)
        if (strcmp(r->rows[i].runtime, runtime) == 0 && strcmp(r->rows[i].tier, tier) == 0 &&
            strcmp(r->rows[i].service, service) == 0)
            return &r->rows[i];
    return NULL;
}

static void ratio(FILE *f, const char *what, double a, double p, bool lower_better)
{
    if (a <= 0 || p <= 0)
        return;
    double x = a / p;
    fprintf(f, "  %-26s %8.3f  (%s)\n", what, x,
            (lower_better ? x < 1 : x > 1) ? "atoll better" : "peer better");
}

void bench_write_table(FILE *f, const bench_report *r)
{
    char a[6][32];
    bool wide_any = false;
    fprintf(f, "atoll bench — %s UTC — %d cores, load %.2f %.2f %.2f — %s\n\n", r->started, r->cores, r->load[0],
            r->load[1], r->load[2], r->cpu);
    /* Each column is as wide as its longest header ("KB/instance": 11), so
     * that the headers stay above their figures. */
    fprintf(f, "%-9s %-9s %-8s %9s %9s %9s %9s %9s %9s %11s %9s\n", "runtime", "tier", "service", "cold p50",
            "cold p99", "warm p50", "warm p99", "req/s", "wrk req/s", "KB/instance", "per GB");
    fprintf(f, "%-9s %-9s %-8s %9s %9s %9s %9s %9s %9s %11s %9s\n", "", "", "", "ms", "ms", "ms", "ms", "", "", "(idle)",
            "");
    for (size_t i = 0; i < r->n_rows; i++) {
        const bench_row *w = &r->rows[i];
        char mem[32], pg[32];
        if (w->mem_kb > 0) {
            snprintf(mem, sizeof mem, "%.0f", w->mem_kb);
            fmt_num(pg, sizeof pg, bench_per_gb(w->mem_kb));
        } else {
            snprintf(mem, sizeof mem, "-");
            snprintf(pg, sizeof pg, "-");
        }
        wide_any |= (w->cold_ms.n && w->cold_ms.too_wide) || (w->warm_ms.n && w->warm_ms.too_wide);
        fprintf(f, "%-9s %-9s %-8s %9s %9s %9s %9s %9s %9s %11s %9s\n", w->runtime, w->tier, w->service,
                fmt_ms(a[0], sizeof a[0], w->cold_ms.p50, w->cold_ms.n > 0, w->cold_ms.too_wide),
                fmt_ms(a[1], sizeof a[1], w->cold_ms.p99, w->cold_ms.n > 0, false),
                fmt_ms(a[2], sizeof a[2], w->warm_ms.p50, w->warm_ms.n > 0, w->warm_ms.too_wide),
                fmt_ms(a[3], sizeof a[3], w->warm_ms.p99, w->warm_ms.n > 0, false), fmt_num(a[4], sizeof a[4], w->rps),
                fmt_num(a[5], sizeof a[5], w->rps_wrk), mem, pg);
    }
    fprintf(f, "\ncold: first request to a tenant never loaded, at the client; warm: 1 keep-alive connection;\n"
               "req/s: the embedded load generator (keep-alive), wrk's figure beside it; KB/instance: resident\n"
               "memory growth / idle instances (PSS for containers).\n");
    if (wide_any)
        fprintf(f, "WARNING: figures marked ~ have a spread too wide to trust (MAD > median/2 or p99 > 10x median);\n"
                   "         rerun on a quieter machine.\n");
    for (size_t i = 0; i < r->n_rows; i++)
        if (r->rows[i].note[0]) {
            int n = (int)strlen(r->rows[i].note);
            while (n > 0 && (r->rows[i].note[n - 1] == ' ' || r->rows[i].note[n - 1] == ';'))
                n--; /* notes are appended with "; " */
            fprintf(f, "note: %s %s %s: %.*s\n", r->rows[i].runtime, r->rows[i].tier, r->rows[i].service, n,
                    r->rows[i].note);
        }

    /* Ratios: atoll against each peer on the same service. */
    static const char *peers[][3] = {
        {"atoll", "workerd", "js"}, {"atoll", "crun", "container"}, {"atoll-run", "crun", "container"}};
    bool header = false;
    for (size_t p = 0; p < 3; p++)
        for (size_t s = 0; s < 2; s++) {
            const char *svc = s ? "compute" : "hello";
            const bench_row *pr = find_row(r, peers[p][1], peers[p][2], svc);
            const bench_row *ar = find_row(r, peers[p][0], peers[p][2], svc);
            if (!pr || !ar)
                continue;
            if (!header)
                fprintf(f, "\nratios atoll/peer (same service, same run):\n");
            header = true;
            fprintf(f, " %s vs %s, %s %s:\n", peers[p][0], peers[p][1], peers[p][2], svc);
            ratio(f, "cold start p50", ar->cold_ms.p50, pr->cold_ms.p50, true);
            ratio(f, "warm latency p50", ar->warm_ms.p50, pr->warm_ms.p50, true);
            ratio(f, "warm latency p99", ar->warm_ms.p99, pr->warm_ms.p99, true);
            ratio(f, "throughput (req/s)", ar->rps, pr->rps, false);
            ratio(f, "memory per instance", ar->mem_kb, pr->mem_kb, true);
        }
    for (size_t i = 0; i < r->n_missing; i++)
        fprintf(f, "%speer missing: %s\n", i == 0 ? "\n" : "", r->missing[i]);

    fprintf(f, "\nisolation boundary:\n");
    static const char *tiers[] = {"js", "wasm", "container"};
    for (size_t t = 0; t < 3; t++) {
        bool present = false;
        for (size_t i = 0; i < r->n_rows; i++)
            present |= strcmp(r->rows[i].tier, tiers[t]) == 0;
        if (present)
            fprintf(f, "  %-9s %s\n", tiers[t], bench_boundary(tiers[t]));
    }
}

static void csv_summary(FILE *f, const bench_row *w, const char *metric, const bench_summary *s)
{
    if (!s->n)
        return;
    fprintf(f, "%s,%s,%s,%s,%zu,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,ms,%d\n", w->runtime, w->tier, w->service, metric,
            s->n, s->min, s->p50, s->p90, s->p99, s->max, s->mean, s->mad, s->too_wide);
}

static void csv_value(FILE *f, const bench_row *w, const char *metric, double v, size_t n, const char *unit)
{
    if (v <= 0)
        return;
    fprintf(f, "%s,%s,%s,%s,%zu,,%.6f,,,,,,%s,0\n", w->runtime, w->tier, w->service, metric, n, v, unit);
}

int bench_write_csv(FILE *f, const bench_report *r)
{
    fprintf(f, "runtime,tier,service,metric,n,min,p50,p90,p99,max,mean,mad,unit,too_wide\n");
    for (size_t i = 0; i < r->n_rows; i++) {
        const bench_row *w = &r->rows[i];
        csv_summary(f, w, "cold_start", &w->cold_ms);
        csv_summary(f, w, "warm_latency", &w->warm_ms);
        csv_value(f, w, "throughput", w->rps, 1, "req/s");
        csv_value(f, w, "throughput_wrk", w->rps_wrk, 1, "req/s");
        csv_value(f, w, "memory_per_instance", w->mem_kb, w->mem_instances, "KB");
        csv_value(f, w, "instances_per_gb", bench_per_gb(w->mem_kb), w->mem_instances, "instances");
    }
    return ferror(f) ? -EIO : 0;
}

static json_t *json_summary(const bench_summary *s)
{
    if (!s->n)
        return json_null();
    return json_pack("{s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:b}", "n", (json_int_t)s->n, "min", s->min, "p50", s->p50,
                     "p90", s->p90, "p99", s->p99, "max", s->max, "mean", s->mean, "mad", s->mad, "too_wide",
                     s->too_wide);
}

int bench_write_json(const char *path, const bench_report *r, err *e)
{
    json_t *rows = json_array(), *cmds = json_array(), *missing = json_array(), *bounds = json_object();
    for (size_t i = 0; i < r->n_rows; i++) {
        const bench_row *w = &r->rows[i];
        json_array_append_new(
            rows, json_pack("{s:s,s:s,s:s,s:o,s:o,s:f,s:f,s:f,s:I,s:f,s:s}", "runtime", w->runtime, "tier", w->tier,
                            "service", w->service, "cold_start_ms", json_summary(&w->cold_ms), "warm_latency_ms",
                            json_summary(&w->warm_ms), "throughput_rps", w->rps, "throughput_wrk_rps", w->rps_wrk,
                            "memory_per_instance_kb", w->mem_kb, "memory_instances", (json_int_t)w->mem_instances,
                            "instances_per_gb", bench_per_gb(w->mem_kb), "note", w->note));
        json_object_set_new(bounds, w->tier, json_string(bench_boundary(w->tier)));
    }
    for (size_t i = 0; i < r->n_commands; i++)
        json_array_append_new(cmds, json_string(r->commands[i]));
    for (size_t i = 0; i < r->n_missing; i++)
        json_array_append_new(missing, json_string(r->missing[i]));
    json_t *root = json_pack("{s:s,s:i,s:[f,f,f],s:s,s:o,s:o,s:o,s:o}", "started", r->started, "cores", r->cores,
                             "load", r->load[0], r->load[1], r->load[2], "cpu", r->cpu, "results", rows,
                             "isolation_boundary", bounds, "commands", cmds, "peers_missing", missing);
    int rc = 0;
    if (!root || json_dump_file(root, path, JSON_INDENT(2)) != 0)
        rc = err_set(e, -EIO, "%s: cannot write", path);
    json_decref(root);
    return rc;
}

/* One bar per runtime/tier/service: the label and the value. Returns the
 * number of bars. */
static size_t write_dat(FILE *f, const bench_report *r, bool memory)
{
    size_t bars = 0;
    for (size_t i = 0; i < r->n_rows; i++) {
        const bench_row *w = &r->rows[i];
        double v = memory ? w->mem_kb : w->cold_ms.p50;
        if (v <= 0 || (memory && strcmp(w->service, "hello") != 0))
            continue;
        if (memory)
            fprintf(f, "\"%s\\n%s\" %g\n", w->runtime, w->tier, v);
        else
            fprintf(f, "\"%s\\n%s\\n%s\" %g %g\n", w->runtime, w->tier, w->service, v, w->cold_ms.p99);
        bars++;
    }
    return bars;
}

/* The script in parts: a chart without data is left out, since gnuplot
 * stops at an empty data file and would take the other chart with it. */
static const char *gp_head =
    "# gnuplot script written by atoll bench; rerun with: gnuplot charts.gp\n"
    "do for [fmt in \"png svg\"] {\n"
    "  if (fmt eq \"png\") { set terminal pngcairo size 1200,650 font \"DejaVu Sans,12\" } "
    "else { set terminal svg size 1200,650 font \"DejaVu Sans,12\" dynamic }\n"
    "  set style data histograms\n"
    "  set style histogram clustered gap 1\n"
    "  set style fill solid 0.85 border -1\n"
    "  set boxwidth 0.9\n"
    "  set logscale y 10\n"
    "  set grid ytics mytics\n"
    "  set key top left\n"
    "  set xtics font \",11\"\n"
    "  set bmargin 6\n";
static const char *gp_cold =
    "  # The y range spans whole decades with room below the smallest bar and\n"
    "  # above the tallest label: autoscale put the floor just under the\n"
    "  # smallest value, which drew that bar as a sliver.\n"
    "  # stats honours the y range in force: the other chart's would hide points.\n"
    "  set autoscale y\n"
    "  stats \"cold_start.dat\" using 2 nooutput name \"P50\"\n"
    "  stats \"cold_start.dat\" using 3 nooutput name \"P99\"\n"
    "  set yrange [10**floor(log10(P50_min/2)):10**ceil(log10(P99_max*1.5))]\n"
    "  set output \"cold_start.\".fmt\n"
    "  set title \"Cold start at the client: first request to a tenant never loaded (log scale, lower is better)\"\n"
    "  set ylabel \"milliseconds\"\n"
    "  plot \"cold_start.dat\" using 2:xtic(1) title \"p50\" lc rgb \"#2b7bba\", "
    "\"\" using 3 title \"p99\" lc rgb \"#f28e2b\", "
    "\"\" using ($0-0.15):($2*1.25):(sprintf(\"%.3g\",$2)) with labels notitle font \",10\"\n";
static const char *gp_memory =
    "  set autoscale y\n"
    "  stats \"memory.dat\" using 2 nooutput name \"MEM\"\n"
    "  set yrange [10**floor(log10(MEM_min/2)):10**ceil(log10(MEM_max*1.5))]\n"
    "  unset key  # one series, named by the title and the y label\n"
    "  set output \"memory.\".fmt\n"
    "  set title \"Memory per idle hello-world instance (log scale, lower is better)\"\n"
    "  set ylabel \"KB per instance\"\n"
    "  plot \"memory.dat\" using 2:xtic(1) notitle lc rgb \"#59a14f\", "
    "\"\" using 0:($2*1.25):(sprintf(\"%.0f KB\",$2)) with labels notitle font \",10\"\n";
static const char *gp_tail =
    "  unset output\n"
    "}\n";

int bench_write_charts(const char *dir, const bench_report *r, err *e)
{
    static const char *names[] = {"cold_start.dat", "memory.dat", "charts.gp"};
    static const char *charts[] = {"cold_start.png", "cold_start.svg", "memory.png", "memory.svg"};
    size_t bars[2] = {0, 0};
    /* Charts of an earlier run into the same directory would pass for this
     * run's when this one has no data for them. */
    for (int i = 0; i < 4; i++) {
        char *p = xasprintf("%s/%s", dir, charts[i]);
        unlink(p);
        free(p);
    }
    for (int i = 0; i < 3; i++) {
        char *p = xasprintf("%s/%s", dir, names[i]);
        FILE *f = fopen(p, "w");
        if (!f) {
            int rc = err_set(e, -errno, "%s: %s", p, strerror(errno));
            free(p);
            return rc;
        }
        free(p);
        if (i == 2)
            fprintf(f, "%s%s%s%s", gp_head, bars[0] ? gp_cold : "", bars[1] ? gp_memory : "", gp_tail);
        else
            bars[i] = write_dat(f, r, i == 1);
        fclose(f);
    }
    if (!bars[0] && !bars[1])
        return 0; /* nothing measured: nothing to draw */
    pid_t pid = fork();
    if (pid < 0)
        return err_set(e, -errno, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (chdir(dir) != 0)
            _exit(126);
        execlp("gnuplot", "gnuplot", "charts.gp", (char *)NULL);
        _exit(errno == ENOENT ? 127 : 126);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return 1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return err_set(e, -EIO, "gnuplot failed on %s/charts.gp", dir);
    return 0;
}
