/* Unit tests for src/bench: statistics, the response-head and wrk parsers,
 * CSV/JSON/table writing on fixed data, and the load generator against a
 * tiny in-process server (keep-alive and close-after-each-response). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/bench.h"

static void percentiles_interpolate(void **state)
{
    double v[10];
    for (int i = 0; i < 10; i++)
        v[i] = i + 1;
    assert_float_equal(bench_percentile(v, 10, 50), 5.5, 1e-9);
    assert_float_equal(bench_percentile(v, 10, 90), 9.1, 1e-9);
    assert_float_equal(bench_percentile(v, 10, 99), 9.91, 1e-9);
    assert_float_equal(bench_percentile(v, 10, 0), 1, 1e-9);
    assert_float_equal(bench_percentile(v, 10, 100), 10, 1e-9);
    assert_float_equal(bench_percentile(v, 1, 99), 1, 1e-9);
    assert_float_equal(bench_percentile(v, 0, 50), 0, 1e-9);
    double odd[] = {1, 2, 3};
    assert_float_equal(bench_percentile(odd, 3, 50), 2, 1e-9);
}

static void summary_sorts_and_flags_spread(void **state)
{
    double v[] = {5, 1, 4, 2, 3, 3, 3, 3, 4, 2};
    bench_summary s;
    bench_summarize(v, 10, &s);
    assert_int_equal(s.n, 10);
    assert_float_equal(s.min, 1, 1e-9);
    assert_float_equal(s.max, 5, 1e-9);
    assert_float_equal(s.p50, 3, 1e-9);
    assert_float_equal(s.mean, 3, 1e-9);
    assert_float_equal(s.mad, 1, 1e-9); /* |dev| sorted: 0 0 0 0 1 1 1 1 2 2 -> median 1 */
    assert_true(v[0] <= v[1] && v[8] <= v[9]);
    assert_false(s.too_wide);

    /* A tail ten times the median: a stall dominates, the figure is flagged. */
    double tail[100];
    for (int i = 0; i < 100; i++)
        tail[i] = i >= 98 ? 50 : 1;
    bench_summarize(tail, 100, &s);
    assert_float_equal(s.p50, 1, 1e-9);
    assert_true(s.p99 > 10);
    assert_true(s.too_wide);

    /* Typical samples far from the median. */
    double wide[] = {1, 1, 1, 2, 4, 6, 9, 9, 9, 9}; /* median 5, MAD 4 */
    bench_summarize(wide, 10, &s);
    assert_true(s.too_wide);

    /* Too few samples to say anything. */
    double few[] = {1, 1, 1};
    bench_summarize(few, 3, &s);
    assert_true(s.too_wide);
    bench_summarize(NULL, 0, &s);
    assert_int_equal(s.n, 0);
    assert_true(s.too_wide);
}

static void response_heads_parse(void **state)
{
    size_t head;
    int status = 0;
    long long cl;
    bool chunked, close;
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ncontent-length: 12\r\n\r\nHello world\n";
    assert_int_equal(bench_parse_response_head(ok, strlen(ok), &head, &status, &cl, &chunked, &close), 1);
    assert_int_equal(status, 200);
    assert_int_equal(cl, 12);
    assert_false(chunked);
    assert_false(close);
    assert_int_equal(head, strlen(ok) - 12);
    /* Incomplete head: more bytes needed. */
    assert_int_equal(bench_parse_response_head(ok, 20, &head, &status, &cl, &chunked, &close), 0);
    const char *ch = "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    assert_int_equal(bench_parse_response_head(ch, strlen(ch), &head, &status, &cl, &chunked, &close), 1);
    assert_int_equal(status, 404);
    assert_int_equal(cl, -1);
    assert_true(chunked);
    assert_true(close);
    const char *h10 = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(bench_parse_response_head(h10, strlen(h10), &head, &status, &cl, &chunked, &close), 1);
    assert_true(close);
    const char *h10ka = "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(bench_parse_response_head(h10ka, strlen(h10ka), &head, &status, &cl, &chunked, &close), 1);
    assert_false(close);
    /* Whitespace after the value is optional whitespace, not a bad length. */
    const char *ows = "HTTP/1.1 200 OK\r\nContent-Length: 7 \t\r\n\r\n";
    assert_int_equal(bench_parse_response_head(ows, strlen(ows), &head, &status, &cl, &chunked, &close), 1);
    assert_int_equal(cl, 7);
    const char *bad[] = {"HTTP/1.1 200 OK\r\nContent-Length:  \r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n","HTTP/1.1 2x0 OK\r\n\r\n", "SIP/2.0 200 OK\r\n\r\n",
                         "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
                         "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(bench_parse_response_head(bad[i], strlen(bad[i]), &head, &status, &cl, &chunked, &close), -1);
}

static void wrk_output_parses(void **state)
{
    const char *out = "Running 1s test @ http://127.0.0.1:8080/\n"
                      "  1 threads and 32 connections\n"
                      "  Thread Stats   Avg      Stdev     Max   +/- Stdev\n"
                      "    Latency   530.12us  101.55us   3.21ms   90.12%\n"
                      "    Req/Sec    60.12k     1.20k   62.00k    80.00%\n"
                      "  Latency Distribution\n"
                      "     50%  512.00us\n"
                      "     75%  560.00us\n"
                      "     90%  620.00us\n"
                      "     99%    1.20ms\n"
                      "  60123 requests in 1.00s, 7.11MB read\n"
                      "Requests/sec:  60123.45\n"
                      "Transfer/sec:      7.11MB\n";
    double rps, p50, p99;
    assert_int_equal(bench_parse_wrk(out, &rps, &p50, &p99), 0);
    assert_float_equal(rps, 60123.45, 1e-6);
    assert_float_equal(p50, 0.512, 1e-9);
    assert_float_equal(p99, 1.2, 1e-9);
    const char *slow = "     50%    1.50s\n     99%    2.00m\nRequests/sec:      3.10\n";
    assert_int_equal(bench_parse_wrk(slow, &rps, &p50, &p99), 0);
    assert_float_equal(p50, 1500, 1e-9);
    assert_float_equal(p99, 120000, 1e-9);
    /* wrk's largest time unit is hours; counts may carry k/M suffixes,
     * which must scale rather than be cut off (1.23k is not 1.23). */
    const char *hours = "     50%    1.00h\n     99%    2.50h\nRequests/sec:      0.01\n";
    assert_int_equal(bench_parse_wrk(hours, &rps, &p50, &p99), 0);
    assert_float_equal(p50, 3600000, 1e-6);
    assert_float_equal(p99, 9000000, 1e-6);
    const char *kilo = "     50%  100.00us\n     99%    1.00ms\nRequests/sec:     61.23k\n";
    assert_int_equal(bench_parse_wrk(kilo, &rps, &p50, &p99), 0);
    assert_float_equal(rps, 61230, 1e-6);
    const char *mega = "\t50.000%  10.00us\n\t99.000%  20.00us\nRequests/sec:\t1.50M\n";
    assert_int_equal(bench_parse_wrk(mega, &rps, &p50, &p99), 0);
    assert_float_equal(rps, 1.5e6, 1e-3);
    assert_float_equal(p50, 0.01, 1e-9);
    assert_float_equal(p99, 0.02, 1e-9);
    /* Unknown units and garbage are no figure, not a wrong one. */
    assert_int_equal(bench_parse_wrk("     50%  1.00xs\n     99%  1.00ms\nRequests/sec: 5\n", &rps, &p50, &p99), -1);
    assert_int_equal(bench_parse_wrk("     50%  1.00us\n     99%  1.00ms\nRequests/sec: 5q\n", &rps, &p50, &p99), -1);
    assert_int_equal(bench_parse_wrk("     50%  1.00us\n     99%  1.00ms\nRequests/sec: nan-ish\n", &rps, &p50, &p99),
                     -1);
    assert_int_equal(bench_parse_wrk("     50%  1.00us\n     99%  1.00ms\nRequests/sec: inf\n", &rps, &p50, &p99), -1);
    /* wrk without --latency, or failed: no figure is made up. */
    assert_int_equal(bench_parse_wrk("Requests/sec:  100\n", &rps, &p50, &p99), -1);
    assert_int_equal(bench_parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n", &rps, &p50, &p99), -1);
}

static void fixed_report(bench_report *r)
{
    memset(r, 0, sizeof *r);
    r->cores = 2;
    snprintf(r->started, sizeof r->started, "2026-11-27T20:00:00Z");
    snprintf(r->cpu, sizeof r->cpu, "test cpu");
    bench_row *w = bench_report_add(r, "atoll", "js", "hello");
    double cold[] = {0.3, 0.4, 0.5, 0.4, 0.4};
    bench_summarize(cold, 5, &w->cold_ms);
    double warm[] = {0.02, 0.02, 0.02, 0.02, 2};
    bench_summarize(warm, 5, &w->warm_ms);
    w->rps = 50000;
    w->mem_kb = 100;
    w->mem_instances = 100;
    bench_row *p = bench_report_add(r, "workerd", "js", "hello");
    double pc[] = {300, 310, 320, 330, 340};
    bench_summarize(pc, 5, &p->cold_ms);
    p->rps = 15000;
    p->mem_kb = 1500;
    bench_report_command(r, "atoll serve --config %s", "x.jsonc");
    bench_report_missing(r, "crun: not installed");
}

static void csv_json_table_write(void **state)
{
    bench_report r;
    fixed_report(&r);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_int_equal(bench_write_csv(f, &r), 0);
    fclose(f);
    assert_non_null(strstr(text, "runtime,tier,service,metric,n,min,p50,p90,p99,max,mean,mad,unit,too_wide\n"));
    assert_non_null(strstr(text, "atoll,js,hello,cold_start,5,0.300000,0.400000,"));
    assert_non_null(strstr(text, "atoll,js,hello,memory_per_instance,100,,100.000000,"));
    assert_non_null(strstr(text, "atoll,js,hello,instances_per_gb,100,,10485.760000,"));
    /* Every line has the header's 14 fields. */
    for (char *line = text; *line; line = strchr(line, '\n') + 1) {
        int commas = 0;
        for (char *c = line; *c && *c != '\n'; c++)
            commas += *c == ',';
        assert_int_equal(commas, 13);
    }
    free(text);

    char path[] = "/tmp/atoll-test-bench-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    err e = {0};
    assert_int_equal(bench_write_json(path, &r, &e), 0);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    unlink(path);
    assert_non_null(root);
    assert_int_equal(json_integer_value(json_object_get(root, "cores")), 2);
    json_t *row = json_array_get(json_object_get(root, "results"), 0);
    assert_string_equal(json_string_value(json_object_get(row, "runtime")), "atoll");
    assert_float_equal(json_real_value(json_object_get(json_object_get(row, "cold_start_ms"), "p50")), 0.4, 1e-9);
    assert_true(json_is_true(json_object_get(json_object_get(row, "warm_latency_ms"), "too_wide")));
    assert_int_equal(json_array_size(json_object_get(root, "commands")), 1);
    assert_int_equal(json_array_size(json_object_get(root, "peers_missing")), 1);
    assert_non_null(json_string_value(json_object_get(json_object_get(root, "isolation_boundary"), "js")));
    json_decref(root);

    f = open_memstream(&text, &len);
    bench_write_table(f, &r);
    fclose(f);
    assert_non_null(strstr(text, "2 cores"));
    /* Aligned: each header ends in the column where the figures below it
     * end (right-aligned), e.g. "KB/instance" over "100" and "per GB" over
     * the per-GB figure. */
    const char *hdr = strstr(text, "runtime "), *line = strstr(text, "\natoll ");
    assert_non_null(hdr);
    assert_non_null(line);
    line++;
    const char *hdr_end = strchr(hdr, '\n'), *line_end = strchr(line, '\n');
    assert_int_equal(hdr_end - hdr, line_end - line);
    const char *kb = strstr(hdr, "KB/instance"), *mem = strstr(line, " 100 ");
    assert_non_null(kb);
    assert_non_null(mem);
    assert_int_equal(kb + strlen("KB/instance") - hdr, mem + 4 - line);
    assert_non_null(strstr(text, "0.020~")); /* the warm p50 whose tail is too wide */
    assert_non_null(strstr(text, "WARNING"));
    assert_non_null(strstr(text, "cold start p50                0.001  (atoll better)"));
    assert_non_null(strstr(text, "peer missing: crun: not installed"));
    assert_non_null(strstr(text, "isolation boundary"));
    free(text);
    assert_float_equal(bench_per_gb(0), 0, 1e-9);
    bench_report_free(&r);
}

/* A server on a thread: answers every request on a connection with a
 * fixed response; closes after each when asked to (as busybox httpd). */
typedef struct srv {
    int fd;
    bool close_each;
    int port;
} srv;

static void *serve(void *arg)
{
    srv *s = arg;
    for (;;) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char buf[4096];
        size_t got = 0;
        for (;;) {
            ssize_t n = read(c, buf + got, sizeof buf - got);
            if (n <= 0)
                break;
            got += (size_t)n;
            char *end;
            while ((end = memmem(buf, got, "\r\n\r\n", 4))) {
                size_t used = (size_t)(end - buf) + 4;
                memmove(buf, buf + used, got - used);
                got -= used;
                const char *resp = s->close_each ? "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
                                                 : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                if (write(c, resp, strlen(resp)) < 0)
                    break;
                if (s->close_each)
                    goto next;
            }
            if (got == sizeof buf)
                break;
        }
    next:
        close(c);
    }
}

static void loadgen_counts(bool close_each)
{
    srv s = {.close_each = close_each};
    s.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(s.fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s.fd, 16), 0);
    getsockname(s.fd, (struct sockaddr *)&a, &len);
    s.port = ntohs(a.sin_port);
    pthread_t t;
    pthread_create(&t, NULL, serve, &s);

    bench_load_opts o = {.port = s.port, .host = "test", .path = "/", .connections = 1, .max_requests = 200,
                         .timeout_ms = 2000};
    bench_load_result r;
    err e = {0};
    assert_int_equal(bench_load_run(&o, &r, &e), 0);
    assert_int_equal(r.ok, 200);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.n_lat, 200);
    assert_true(r.rps > 0);
    if (close_each)
        assert_true(r.reconnects >= 199);
    else
        assert_int_equal(r.reconnects, 0);
    bench_load_result_free(&r);

    /* A timed run with a warm-up counts only the measured window. */
    bench_load_opts timed = {.port = s.port, .host = "test", .path = "/", .connections = 1, .duration_ms = 100,
                             .warmup_ms = 50, .timeout_ms = 2000};
    assert_int_equal(bench_load_run(&timed, &r, &e), 0);
    assert_true(r.ok > 0);
    assert_true(r.elapsed_s >= 0.09 && r.elapsed_s < 1);
    bench_load_result_free(&r);
    shutdown(s.fd, SHUT_RDWR);
    close(s.fd);
    pthread_join(t, NULL);
}

static void loadgen_keep_alive(void **state)
{
    loadgen_counts(false);
}

static void loadgen_reconnects(void **state)
{
    loadgen_counts(true);
}

static void loadgen_refused_is_an_error(void **state)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd); /* nothing listens there now */
    bench_load_opts o = {.port = ntohs(a.sin_port), .host = "x", .path = "/", .connections = 2, .max_requests = 10,
                         .timeout_ms = 1000};
    bench_load_result r;
    err e = {0};
    assert_int_equal(bench_load_run(&o, &r, &e), 0);
    assert_int_equal(r.ok, 0);
    assert_true(r.errors >= 10);
    bench_load_result_free(&r);
    bench_load_opts none = {.port = 1, .host = "x", .path = "/", .connections = 0};
    assert_int_not_equal(bench_load_run(&none, &r, &e), 0);
}

static void shell_quoting(void **state)
{
    char *q = bench_sh_quote("/tmp/o'ut dir");
    assert_string_equal(q, "'/tmp/o'\\''ut dir'");
    free(q);
    q = bench_sh_quote("");
    assert_string_equal(q, "''");
    free(q);
    /* Through sh: the word comes back as it went in. */
    q = bench_sh_quote("a'b $HOME `x` \"c\"");
    char *cmd = NULL;
    assert_true(asprintf(&cmd, "printf %%s %s", q) > 0);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char got[128] = "";
    assert_non_null(fgets(got, sizeof got, p));
    pclose(p);
    assert_string_equal(got, "a'b $HOME `x` \"c\"");
    free(cmd);
    free(q);
}

/* Charts: a chart with no measured figure is not drawn and leaves no chart
 * of an earlier run behind; the script keeps a decade below the smallest
 * bar (autoscale's floor just under it drew a sliver). */
static void charts_skip_empty(void **state)
{
    char dir[] = "/tmp/atoll-test-charts-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/memory.png", dir);
    FILE *old = fopen(path, "w");
    assert_non_null(old);
    fputs("an old chart", old);
    fclose(old);
    bench_report r = {0};
    bench_row *w = bench_report_add(&r, "atoll", "js", "hello");
    double cold[] = {0.3, 0.4, 0.5, 0.4, 0.4};
    bench_summarize(cold, 5, &w->cold_ms); /* cold start measured, memory not */
    /* A second row whose memory lies far outside the cold-start range:
     * each chart's range must come from its own data. */
    bench_row *m = bench_report_add(&r, "atoll", "wasm", "hello");
    bench_summarize(cold, 5, &m->cold_ms);
    m->mem_kb = 250;
    err e = {0};
    int rc = bench_write_charts(dir, &r, &e);
    assert_true(rc == 0 || rc == 1); /* 1: gnuplot is not installed */
    snprintf(path, sizeof path, "%s/charts.gp", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char script[8192];
    size_t n = fread(script, 1, sizeof script - 1, f);
    script[n] = 0;
    fclose(f);
    assert_non_null(strstr(script, "cold_start.dat"));
    assert_non_null(strstr(script, "memory.dat"));
    assert_non_null(strstr(script, "set yrange [10**floor(log10(P50_min/2))"));
    if (rc == 0) {
        static const char *drawn[] = {"cold_start.png", "cold_start.svg", "memory.png", "memory.svg"};
        for (int i = 0; i < 4; i++) {
            snprintf(path, sizeof path, "%s/%s", dir, drawn[i]);
            assert_int_equal(access(path, F_OK), 0);
        }
    }
    /* Without any memory figure, no memory chart. */
    m->mem_kb = 0;
    rc = bench_write_charts(dir, &r, &e);
    assert_true(rc == 0 || rc == 1);
    snprintf(path, sizeof path, "%s/memory.png", dir);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof path, "%s/charts.gp", dir);
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(script, 1, sizeof script - 1, f);
    script[n] = 0;
    fclose(f);
    assert_null(strstr(script, "memory.dat"));
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/cold_start.png", dir);
        assert_int_equal(access(path, F_OK), 0);
    }
    char *cmd = NULL;
    assert_true(asprintf(&cmd, "rm -rf %s", dir) > 0);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    bench_report_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(percentiles_interpolate),
        cmocka_unit_test(summary_sorts_and_flags_spread),
        cmocka_unit_test(response_heads_parse),
        cmocka_unit_test(wrk_output_parses),
        cmocka_unit_test(csv_json_table_write),
        cmocka_unit_test(shell_quoting),
        cmocka_unit_test(charts_skip_empty),
        cmocka_unit_test(loadgen_keep_alive),
        cmocka_unit_test(loadgen_reconnects),
        cmocka_unit_test(loadgen_refused_is_an_error),
    };
    return cmocka_run_group_tests_name("bench", tests, NULL, NULL);
}
