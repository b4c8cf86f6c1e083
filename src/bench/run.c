/* The run behind `atoll bench`: generates the tenants (JavaScript, C
 * compiled to wasm32-wasi, a busybox httpd bundle with the same C compiled
 * natively as a CGI program), starts `atoll serve` (this same binary) on
 * free loopback ports with a temporary state directory, starts containers
 * with `atoll container run`, and the peers (workerd, crun) the same way,
 * and measures each from the client side.
 *
 * Cold starts come from configs holding many tenants that were never
 * requested: the first request to each is a cold start (isolate created,
 * bytecode compiled, or the wasm module's instance made); the memory per
 * idle instance is the growth of the serving processes' proportional set
 * size (PSS) after those first requests, divided by their number. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "core/alloc.h"
#include "core/clock.h"

/* The compute service: the primes below 100,000 by a sieve, the same
 * algorithm in JavaScript and in C. */
#define SIEVE_N 100000

static const char *js_hello =
    "// atoll bench: hello world, tenant %zu\n"
    "const TENANT = %zu;\n"
    "export default {\n"
    "  fetch(request) {\n"
    "    return new Response(\"Hello from atoll!\\n\", { headers: { \"content-type\": \"text/plain\", \"x-tenant\": String(TENANT) } });\n"
    "  },\n"
    "};\n";

static const char *js_compute =
    "// atoll bench: compute, tenant %zu: the primes below N by a sieve (as compute.c)\n"
    "const TENANT = %zu;\n"
    "const N = " "100000" ";\n"
    "export default {\n"
    "  fetch(request) {\n"
    "    const composite = new Uint8Array(N);\n"
    "    let count = 0;\n"
    "    for (let i = 2; i < N; i++) {\n"
    "      if (composite[i]) continue;\n"
    "      count++;\n"
    "      for (let j = i * i; j < N; j += i) composite[j] = 1;\n"
    "    }\n"
    "    return new Response(`primes below ${N}: ${count}\\n`, { headers: { \"content-type\": \"text/plain\", \"x-tenant\": String(TENANT) } });\n"
    "  },\n"
    "};\n";

static const char *c_compute =
    "/* atoll bench: compute, the primes below N by a sieve (as compute.js);\n"
    " * a CGI/WAGI program: compiled to wasm32-wasi for the wasm tier and\n"
    " * natively (static) for busybox httpd in the container tier. */\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#define N 100000\n"
    "int main(void)\n"
    "{\n"
    "    unsigned char *composite = calloc(N, 1);\n"
    "    int count = 0;\n"
    "    if (!composite) return 1;\n"
    "    for (long i = 2; i < N; i++) {\n"
    "        if (composite[i]) continue;\n"
    "        count++;\n"
    "        for (long j = i * i; j < N; j += i) composite[j] = 1;\n"
    "    }\n"
    "    printf(\"Content-Type: text/plain\\r\\n\\r\\nprimes below %d: %d\\n\", N, count);\n"
    "    free(composite);\n"
    "    return 0;\n"
    "}\n";

static const char *c_hello =
    "/* atoll bench: hello world as a WAGI program. */\n"
    "#include <stdio.h>\n"
    "int main(void)\n"
    "{\n"
    "    printf(\"Content-Type: text/plain\\r\\n\\r\\nHello from atoll!\\n\");\n"
    "    return 0;\n"
    "}\n";

/* ---------------------------------------------------------------- helpers */

typedef struct ctx {
    const bench_opts *o;
    bench_report *r;
    char *tmp;              /* everything generated; removed at the end */
    char *logs;             /* servers' stderr, kept in the output directory */
    size_t cold_hello, cold_compute, mem_instances, warm_requests, peer_cold;
    unsigned load_ms, warmup_ms;
    int connections;
    int step, steps;
} ctx;

static void progress(ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void progress(ctx *c, const char *fmt, ...)
{
    if (!c->o->progress)
        return;
    va_list ap;
    va_start(ap, fmt);
    /* On a terminal one line rewritten in place; elsewhere (a log, a pipe)
     * plain lines, without the escape codes that would litter the file. */
    bool tty = isatty(2);
    fprintf(stderr, "%s[%d/%d] ", tty ? "\r\033[K" : "", c->step, c->steps);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (!tty)
        fputc('\n', stderr);
    fflush(stderr);
}

static int write_file(const char *path, const char *data, size_t len, err *e)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return err_set(e, -errno, "%s: %s", path, strerror(errno));
    size_t n = fwrite(data, 1, len, f);
    if (fclose(f) != 0 || n != len)
        return err_set(e, -EIO, "%s: write failed", path);
    return 0;
}

static int write_fmt(err *e, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int write_fmt(err *e, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        return err_set(e, -ENOMEM, "out of memory");
    int rc = write_file(path, s, (size_t)n, e);
    free(s);
    return rc;
}

/* n distinct free ports: every socket stays bound until all are picked,
 * or the kernel may hand out one port twice. */
static void free_ports(int *ports, size_t n)
{
    int *fds = xcalloc(n, sizeof *fds);
    for (size_t i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof a;
        ports[i] = -1;
        if (fds[i] >= 0 && bind(fds[i], (struct sockaddr *)&a, sizeof a) == 0 &&
            getsockname(fds[i], (struct sockaddr *)&a, &len) == 0)
            ports[i] = ntohs(a.sin_port);
    }
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Starts argv[0] with stdout and stderr appended to log (or /dev/null),
 * stdin from /dev/null, in its own process group. */
static pid_t spawn(char *const argv[], const char *log, const char *cwd, char *const extra_env[])
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    setpgid(0, 0);
    int in = open("/dev/null", O_RDONLY);
    int out = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || out < 0)
        _exit(126);
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    if (cwd && chdir(cwd) != 0)
        _exit(126);
    for (size_t i = 0; extra_env && extra_env[i]; i++)
        putenv(extra_env[i]);
    execv(argv[0], argv);
    _exit(127);
}

/* Waits up to ms for pid; SIGKILLs its process group when it outlasts it. */
static void reap(pid_t pid, unsigned ms)
{
    int status;
    for (unsigned i = 0; i < ms; i += 5) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid || (w < 0 && errno == ECHILD))
            return;
        usleep(5000);
    }
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
}

static void stop_server(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    reap(pid, 5000);
}

/* A TCP socket in the network namespace netns (an fd of /proc/PID/ns/net),
 * or in ours when netns < 0. A socket stays in the namespace it was made
 * in, so the thread switches there only for socket(): this is how the
 * bench reaches 127.0.0.1 inside a container. */
static int socket_in(int netns)
{
    static int host_ns = -1;
    if (netns < 0)
        return socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (host_ns < 0 && (host_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC)) < 0)
        return -errno;
    if (setns(netns, CLONE_NEWNET) != 0)
        return -errno;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), saved = errno;
    if (setns(host_ns, CLONE_NEWNET) != 0)
        abort(); /* stuck in a container's namespace: nothing after is right */
    return fd < 0 ? -saved : fd;
}

static int loadgen_socket(void *arg)
{
    return socket_in(*(int *)arg);
}

/* One request on a fresh connection (Connection: close). Returns the
 * status, or -errno (-ECONNREFUSED while nothing listens yet). */
static int http_once(int netns, int port, const char *host, const char *path, unsigned timeout_ms)
{
    int fd = socket_in(netns);
    if (fd < 0)
        return fd;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1, rc;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    char *req = xasprintf("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nUser-Agent: atoll-bench\r\n\r\n", path,
                          host);
    size_t len = strlen(req);
    rc = write(fd, req, len) == (ssize_t)len ? 0 : -EIO;
    free(req);
    size_t cap = 4096, got = 0;
    char *buf = xmalloc(cap);
    uint64_t deadline = clock_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
    int status = -EIO;
    while (rc == 0) {
        size_t head_len;
        long long cl;
        bool chunked, cls;
        int h = bench_parse_response_head(buf, got, &head_len, &status, &cl, &chunked, &cls);
        if (h < 0) {
            status = -EPROTO;
            break;
        }
        if (h == 1 && cl >= 0 && got - head_len >= (size_t)cl)
            break;
        uint64_t now = clock_mono_ns();
        if (now >= deadline) {
            status = -ETIMEDOUT;
            break;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)((deadline - now) / 1000000 + 1)) <= 0)
            continue;
        if (cap - got < 1024) {
            if (cap >= (1u << 20)) {
                status = -E2BIG;
                break;
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (h != 1)
                status = n == 0 ? -ECONNRESET : -errno;
            break;
        }
        got += (size_t)n;
    }
    free(buf);
    close(fd);
    return rc < 0 ? rc : status;
}

/* Polls until something answers 2xx on port (a server starting). Returns
 * the ms from t0 to that answer, or a negative errno. */
static double wait_ready(int port, const char *host, const char *path, uint64_t t0, unsigned timeout_ms, pid_t pid)
{
    for (;;) {
        int st = http_once(-1, port, host, path, timeout_ms);
        uint64_t now = clock_mono_ns();
        if (st >= 200 && st < 300)
            return (double)(now - t0) / 1e6;
        if (now - t0 > (uint64_t)timeout_ms * 1000000ull)
            return -ETIMEDOUT;
        if (pid > 0 && waitpid(pid, NULL, WNOHANG) == pid)
            return -ECHILD;
        /* Refused: nothing listens yet; poll often, the figure is in ms. */
        usleep(st == -ECONNREFUSED ? 200 : 2000);
    }
}

/* The deepest first-born descendant of pid (the container's process under
 * its runner), from /proc/PID/task/PID/children: cheap enough to poll. */
static pid_t leaf_of(pid_t pid)
{
    for (int depth = 0; depth < 8; depth++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
        FILE *f = fopen(path, "r");
        int child = 0;
        if (!f)
            return pid;
        if (fscanf(f, "%d", &child) != 1)
            child = 0;
        fclose(f);
        if (child <= 0)
            return pid;
        pid = child;
    }
    return pid;
}

/* Polls until the container under runner answers 2xx on its own
 * 127.0.0.1:port. *netns gets an fd of its network namespace (owned by
 * the caller). Returns the ms from t0, or a negative errno. */
static double wait_container(pid_t runner, int port, const char *path, uint64_t t0, unsigned timeout_ms, int *netns)
{
    struct stat host;
    *netns = -1;
    if (stat("/proc/self/ns/net", &host) != 0)
        return -errno;
    for (;;) {
        uint64_t now = clock_mono_ns();
        if (now - t0 > (uint64_t)timeout_ms * 1000000ull)
            return -ETIMEDOUT;
        if (waitpid(runner, NULL, WNOHANG) == runner)
            return -ECHILD;
        if (*netns < 0) {
            char p[64];
            struct stat st;
            snprintf(p, sizeof p, "/proc/%d/ns/net", (int)leaf_of(runner));
            int fd = open(p, O_RDONLY | O_CLOEXEC);
            /* Still in our namespace: the container is not set up yet. */
            if (fd >= 0 && fstat(fd, &st) == 0 && st.st_ino != host.st_ino)
                *netns = fd;
            else if (fd >= 0)
                close(fd);
            if (*netns < 0) {
                usleep(200);
                continue;
            }
        }
        int status = http_once(*netns, port, "localhost", path, timeout_ms);
        if (status >= 200 && status < 300)
            return (double)(clock_mono_ns() - t0) / 1e6;
        usleep(status == -ECONNREFUSED ? 200 : 2000);
    }
}

/* ------------------------------------------------------- process memory */

static long read_kb_field(const char *path, const char *field)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[256];
    long v = 0;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0) {
            v = strtol(line + n, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command may hold spaces and parens */
    int ppid = 0;
    if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
        return 0;
    return ppid;
}

/* Every descendant of roots (and the roots): *out, owned by the caller. */
static size_t descendants(const pid_t *roots, size_t n_roots, pid_t **out)
{
    size_t n = 0, cap = n_roots + 16;
    pid_t *v = xmalloc(cap * sizeof *v);
    for (size_t i = 0; i < n_roots; i++)
        v[n++] = roots[i];
    DIR *d = opendir("/proc");
    if (!d) {
        *out = v;
        return n;
    }
    pid_t *all = NULL, *par = NULL;
    size_t n_all = 0, cap_all = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        if (n_all == cap_all) {
            cap_all = cap_all ? 2 * cap_all : 512;
            all = xrealloc(all, cap_all * sizeof *all);
            par = xrealloc(par, cap_all * sizeof *par);
        }
        all[n_all] = (pid_t)pid;
        par[n_all++] = parent_of((pid_t)pid);
    }
    closedir(d);
    /* Breadth-first over the parent links, so deep trees are found. */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n_all; j++)
            if (par[j] == v[i]) {
                if (n == cap) {
                    cap *= 2;
                    v = xrealloc(v, cap * sizeof *v);
                }
                v[n++] = all[j];
            }
    free(all);
    free(par);
    *out = v;
    return n;
}

/* The proportional set size of the trees under roots, in KB. PSS splits
 * pages shared between processes (busybox's text in every container, the
 * atoll binary in supervisor and workers) so that sums are honest. */
static double tree_pss_kb(const pid_t *roots, size_t n_roots)
{
    pid_t *v;
    size_t n = descendants(roots, n_roots, &v);
    double kb = 0;
    for (size_t i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)v[i]);
        kb += (double)read_kb_field(path, "Pss:");
    }
    free(v);
    return kb;
}

/* Containers' init ignores SIGTERM (pid 1 without a handler): kill the
 * leaves of the runner's tree, so that the runner (atoll or crun) reaps
 * them and removes what it set up, then wait for it. */
static void stop_container(pid_t runner)
{
    pid_t *v;
    size_t n = descendants(&runner, 1, &v);
    for (size_t i = 1; i < n; i++)
        kill(v[i], SIGKILL);
    free(v);
    reap(runner, 3000);
}

static double now_loadavg(double load[3])
{
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
            load[0] = load[1] = load[2] = 0;
        fclose(f);
    }
    return load[0];
}

/* ------------------------------------------------------------ measuring */

/* Warm latency (1 connection, sequential) and throughput (c->connections,
 * keep-alive) on a serving URL; wrk's figure too when wrk is installed. */
static int measure_warm(ctx *c, bench_row *row, int netns, int port, const char *host, const char *path,
                        err *e)
{
    bench_load_opts lo = {.port = port, .host = host, .path = path, .connections = 1, .warmup_ms = c->warmup_ms,
                          .max_requests = c->warm_requests, .timeout_ms = 5000,
                          .make_socket = netns >= 0 ? loadgen_socket : NULL, .socket_arg = &netns};
    bench_load_result lr;
    progress(c, "%s %s %s: warm latency (%zu sequential requests)", row->runtime, row->tier, row->service,
             c->warm_requests);
    int rc = bench_load_run(&lo, &lr, e);
    if (rc != 0)
        return rc;
    bench_summarize(lr.lat_ms, lr.n_lat, &row->warm_ms);
    if (lr.errors)
        snprintf(row->note + strlen(row->note), sizeof row->note - strlen(row->note), "%zu errors in warm requests; ",
                 lr.errors);
    bench_load_result_free(&lr);

    progress(c, "%s %s %s: throughput (%d connections, %.1f s)", row->runtime, row->tier, row->service,
             c->connections, c->load_ms / 1000.0);
    bench_load_opts to = {.port = port, .host = host, .path = path, .connections = c->connections,
                          .warmup_ms = c->warmup_ms, .duration_ms = c->load_ms, .timeout_ms = 5000,
                          .make_socket = netns >= 0 ? loadgen_socket : NULL, .socket_arg = &netns};
    rc = bench_load_run(&to, &lr, e);
    if (rc != 0)
        return rc;
    row->rps = lr.rps;
    if (lr.ok == 0)
        snprintf(row->note + strlen(row->note), sizeof row->note - strlen(row->note),
                 "throughput: no response completed in the %.1f s window (%d connections); ", c->load_ms / 1000.0,
                 c->connections);
    if (lr.errors)
        snprintf(row->note + strlen(row->note), sizeof row->note - strlen(row->note),
                 "%zu errors under load; ", lr.errors);
    bench_load_result_free(&lr);

    if (access("/usr/bin/wrk", X_OK) == 0) {
        progress(c, "%s %s %s: wrk", row->runtime, row->tier, row->service);
        char ns[64] = "";
        /* wrk, too, runs inside the container's network namespace: the one
         * our fd holds (a pid there may be a CGI process gone by now). */
        if (netns >= 0)
            snprintf(ns, sizeof ns, "nsenter --net=/proc/%d/fd/%d ", (int)getpid(), netns);
        char *cmd = xasprintf("%swrk -t1 -c%d -d%us --latency -H 'Host: %s' http://127.0.0.1:%d%s 2>&1", ns, c->connections,
                              (c->load_ms + 999) / 1000, host, port, path);
        FILE *p = popen(cmd, "r");
        free(cmd);
        if (p) {
            char *text = NULL;
            size_t cap = 0;
            FILE *m = open_memstream(&text, &cap);
            char b[1024];
            size_t n;
            while ((n = fread(b, 1, sizeof b, p)) > 0)
                fwrite(b, 1, n, m);
            pclose(p);
            fclose(m);
            double rps, p50, p99;
            if (bench_parse_wrk(text, &rps, &p50, &p99) == 0) {
                row->rps_wrk = rps;
                if (rps <= 0)
                    snprintf(row->note + strlen(row->note), sizeof row->note - strlen(row->note),
                             "wrk: 0 requests/s; ");
            }
            else /* say why instead of an empty cell */
                snprintf(row->note + strlen(row->note), sizeof row->note - strlen(row->note),
                         "wrk gave no figure (%.60s); ", text ? text : "");
            free(text);
        }
    }
    return 0;
}

/* Cold starts: the first request to each of n tenants (hosts "<prefix>N.bench"). */
static int measure_cold_tenants(ctx *c, bench_row *row, int port, const char *prefix, const char *path, size_t n,
                                err *e)
{
    double *v = xcalloc(n, sizeof *v);
    size_t got = 0;
    for (size_t i = 0; i < n; i++) {
        char host[64];
        snprintf(host, sizeof host, "%s%zu.bench", prefix, i);
        if (i % 10 == 0)
            progress(c, "%s %s %s: cold starts %zu/%zu", row->runtime, row->tier, row->service, i, n);
        uint64_t t0 = clock_mono_ns();
        int st = http_once(-1, port, host, path, 10000);
        double ms = (double)(clock_mono_ns() - t0) / 1e6;
        if (st < 200 || st > 299) {
            free(v);
            return err_set(e, -EIO, "%s %s: cold request to %s answered %d", row->runtime, row->tier, host, st);
        }
        v[got++] = ms;
        /* A pause, as between real cold starts: the pool of ready runtimes
         * refills between them, as it would in service. */
        usleep(10000);
    }
    bench_summarize(v, got, &row->cold_ms);
    free(v);
    return 0;
}

/* ---------------------------------------------------------- atoll serve */

static int build_wasm(ctx *c, const char *name, const char *src, err *e)
{
    char *c_path = xasprintf("%s/%s.c", c->tmp, name), *w_path = xasprintf("%s/%s.wasm", c->tmp, name);
    char *log = xasprintf("%s/build.log", c->logs), *q_log = bench_sh_quote(log);
    char *cmd = xasprintf("clang --target=wasm32-wasi -O2 -o '%s' '%s' 2>>%s", w_path, c_path, q_log);
    free(log);
    free(q_log);
    int rc = 0;
    (void)src; /* written by keep_source */
    if (system(cmd) != 0)
        rc = err_set(e, -EIO, "clang --target=wasm32-wasi failed (see %s/build.log)", c->logs);
    if (rc == 0)
        bench_report_command(c->r, "clang --target=wasm32-wasi -O2 -o %s.wasm %s.c", name, name);
    free(c_path);
    free(w_path);
    free(cmd);
    return rc;
}

/* Writes the config of one tier: tenants hello, compute, hN (cold hello)
 * and cN (cold compute), each routed by its own host. */
static int write_serve_config(ctx *c, const char *tier, const char *dir, int port, err *e)
{
    bool js = strcmp(tier, "js") == 0;
    char *path = xasprintf("%s/atoll.jsonc", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        int rc = err_set(e, -errno, "%s: %s", path, strerror(errno));
        free(path);
        return rc;
    }
    /* Paths relative to the config, so that the copy kept under
     * OUT/tenants/ runs as it is after the temporary directory is gone. */
    fprintf(f, "// generated by atoll bench\n{\n  \"listen\": \"127.0.0.1:%d\",\n  \"processes\": 1,\n"
               "  \"state_dir\": \"state\",\n  \"workers\": [\n", port);
    size_t n_hello = c->mem_instances > c->cold_hello ? c->mem_instances : c->cold_hello;
    for (int kind = 0; kind < 2; kind++) {
        size_t n = kind ? c->cold_compute : n_hello;
        const char *svc = kind ? "compute" : "hello", *pre = kind ? "c" : "h";
        for (size_t i = 0; i <= n; i++) {
            char name[32];
            if (i == n)
                snprintf(name, sizeof name, "%s", svc);
            else
                snprintf(name, sizeof name, "%s%zu", pre, i);
            if (js) {
                char *src = xasprintf("%s/%s.js", dir, name);
                int rc = write_fmt(e, src, kind ? js_compute : js_hello, i, i);
                free(src);
                if (rc != 0) {
                    fclose(f);
                    free(path);
                    return rc;
                }
                fprintf(f, "    { \"name\": \"%s\", \"main\": \"%s.js\", \"routes\": [\"%s.bench/*\"] },\n", name, name,
                        name);
            } else {
                fprintf(f, "    { \"name\": \"%s\", \"tier\": \"wasm\", \"main\": \"../%s.wasm\", \"routes\": [\"%s.bench/*\"] },\n",
                        name, svc, name);
            }
        }
    }
    fprintf(f, "  ],\n}\n");
    int rc = fclose(f) == 0 ? 0 : err_set(e, -EIO, "%s: write failed", path);
    free(path);
    return rc;
}

static int bench_serve_tier(ctx *c, const char *tier, err *e)
{
    char *dir = xasprintf("%s/%s", c->tmp, tier), *cfg = NULL, *log = NULL;
    pid_t pid = -1;
    int rc = 0, port = free_port();
    mkdir(dir, 0755);
    if ((rc = write_serve_config(c, tier, dir, port, e)) != 0)
        goto fail;
    cfg = xasprintf("%s/atoll.jsonc", dir);
    log = xasprintf("%s/serve-%s.log", c->logs, tier);
    char *argv[] = {(char *)c->o->self, "serve", "--config", cfg, "--processes", "1", "--no-access-log", NULL};
    char *kept = xasprintf("%s/tenants/%s/atoll.jsonc", c->o->out_dir, tier), *q_kept = bench_sh_quote(kept);
    bench_report_command(c->r, "%s serve --config %s --processes 1 --no-access-log   # %s tier, generated config",
                         c->o->self, q_kept, tier);
    free(kept);
    free(q_kept);
    c->step++;
    progress(c, "atoll %s: starting atoll serve", tier);
    uint64_t t0 = clock_mono_ns();
    pid = spawn(argv, log, dir, NULL);
    double ready = wait_ready(port, "hello.bench", "/", t0, 120000, pid);
    if (ready < 0) {
        rc = err_set(e, -EIO, "atoll serve (%s tier) did not answer (see %s)", tier, log);
        goto fail;
    }
    if (http_once(-1, port, "compute.bench", "/", 10000) != 200) {
        rc = err_set(e, -EIO, "atoll serve (%s tier): the compute tenant fails (see %s)", tier, log);
        goto fail;
    }
    bench_row *hello = bench_report_add(c->r, "atoll", tier, "hello");
    bench_row *compute = bench_report_add(c->r, "atoll", tier, "compute");
    usleep(200000);
    double before = tree_pss_kb(&pid, 1);
    size_t n_hello = c->mem_instances > c->cold_hello ? c->mem_instances : c->cold_hello;
    if ((rc = measure_cold_tenants(c, hello, port, "h", "/", n_hello, e)) != 0)
        goto fail;
    usleep(200000);
    double after = tree_pss_kb(&pid, 1);
    hello->mem_kb = (after - before) / (double)n_hello;
    hello->mem_instances = n_hello;
    if (strcmp(tier, "wasm") == 0)
        snprintf(hello->note, sizeof hello->note,
                 "all tenants deploy the same module bytes, so they share one compiled module: memory is the "
                 "per-tenant cost only; ");
    if (hello->mem_kb <= 0) { /* below what PSS can show: say so, do not print 0 */
        hello->mem_kb = 0;
        snprintf(hello->note + strlen(hello->note), sizeof hello->note - strlen(hello->note),
                 "memory growth not measurable (%.0f KB over %zu tenants); ", after - before, n_hello);
    }
    if ((rc = measure_cold_tenants(c, compute, port, "c", "/", c->cold_compute, e)) != 0)
        goto fail;
    c->step++;
    if ((rc = measure_warm(c, hello, -1, port, "hello.bench", "/", e)) != 0)
        goto fail;
    c->step++;
    rc = measure_warm(c, compute, -1, port, "compute.bench", "/", e);
fail:
    if (pid > 0)
        stop_server(pid);
    free(dir);
    free(cfg);
    free(log);
    return rc;
}

/* ------------------------------------------------------------ containers */

/* The bundle's root filesystem, shared read-only by every instance:
 * busybox (static) for httpd, the page, and the compute CGI program. */
static int build_rootfs(ctx *c, err *e)
{
    char *log = xasprintf("%s/build.log", c->logs), *q_log = bench_sh_quote(log);
    char *cmd = xasprintf(
        "set -e; r='%s/rootfs'; mkdir -p $r/bin $r/proc $r/dev $r/tmp $r/www/cgi-bin; cp /bin/busybox $r/bin/; "
        "printf 'Hello from atoll!\\n' > $r/www/index.html; "
        "cc -O2 -static -o $r/www/cgi-bin/compute '%s/compute.c' 2>>%s",
        c->tmp, c->tmp, q_log);
    free(log);
    free(q_log);
    int rc = 0;
    if (access("/bin/busybox", X_OK) != 0)
        rc = err_set(e, -ENOENT, "/bin/busybox is missing (apt-get install busybox-static)");
    else if (system(cmd) != 0)
        rc = err_set(e, -EIO, "building the container rootfs failed (see %s/build.log)", c->logs);
    else
        bench_report_command(c->r, "cc -O2 -static -o rootfs/www/cgi-bin/compute compute.c; rootfs: /bin/busybox, "
                                   "www/index.html");
    free(cmd);
    return rc;
}

/* One instance's bundle: a config.json naming the shared rootfs by its
 * absolute path. The instance has its own network namespace and httpd
 * listens on its 127.0.0.1:port; the bench connects from inside that
 * namespace (socket_in), as the router will once containers are served
 * through it (socket activation is being added on main). */
static char *write_bundle(ctx *c, size_t i, int port, err *e)
{
    char *dir = xasprintf("%s/ctr/i%zu", c->tmp, i), *cfg = xasprintf("%s/config.json", dir);
    mkdir(dir, 0755);
    int rc = write_fmt(
        e, cfg,
        "{\n  \"ociVersion\": \"1.0.2\",\n"
        "  \"process\": {\"terminal\": false, \"user\": {\"uid\": 0, \"gid\": 0},\n"
        "    \"args\": [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"127.0.0.1:%d\", \"-h\", \"/www\"],\n"
        "    \"env\": [\"PATH=/bin\"], \"cwd\": \"/\", \"noNewPrivileges\": true},\n"
        "  \"root\": {\"path\": \"%s/rootfs\", \"readonly\": true},\n"
        "  \"hostname\": \"bench%zu\",\n"
        "  \"mounts\": [\n"
        "    {\"destination\": \"/proc\", \"type\": \"proc\", \"source\": \"proc\"},\n"
        "    {\"destination\": \"/dev\", \"type\": \"tmpfs\", \"source\": \"tmpfs\", \"options\": [\"nosuid\", \"mode=755\", \"size=1024k\"]},\n"
        "    {\"destination\": \"/tmp\", \"type\": \"tmpfs\", \"source\": \"tmpfs\", \"options\": [\"nosuid\", \"size=1024k\"]}\n"
        "  ],\n"
        "  \"linux\": {\n"
        "    \"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"network\"}, {\"type\": \"ipc\"}, {\"type\": \"uts\"}, {\"type\": \"mount\"}],\n"
        "    \"resources\": {\"memory\": {\"limit\": 67108864}, \"pids\": {\"limit\": 512}},\n"
        "    \"maskedPaths\": [\"/proc/kcore\", \"/proc/keys\"],\n"
        "    \"readonlyPaths\": [\"/proc/sys\", \"/proc/sysrq-trigger\"]\n"
        "  }\n}\n",
        port, c->tmp, i);
    free(cfg);
    if (rc != 0) {
        free(dir);
        return NULL;
    }
    return dir;
}

/* The argv that starts one bundle: `atoll container run DIR`, or crun as
 * /work/shared/peers/crun-run runs it (a private mount namespace without
 * the cgroup v2 mount this machine's hybrid layout has). */
static void container_argv(ctx *c, bool crun, const char *bundle, size_t i, char **argv, char **owned)
{
    *owned = NULL;
    if (!crun) {
        argv[0] = (char *)c->o->self;
        argv[1] = "container";
        argv[2] = "run";
        argv[3] = (char *)bundle;
        argv[4] = NULL;
        return;
    }
    *owned = xasprintf("if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi; "
                       "exec crun --cgroup-manager=disabled run --bundle '%s' atoll-bench-%d-%zu",
                       bundle, (int)getpid(), i);
    argv[0] = "/usr/bin/unshare";
    argv[1] = "-m";
    argv[2] = "--propagation";
    argv[3] = "private";
    argv[4] = "/bin/sh";
    argv[5] = "-c";
    argv[6] = *owned;
    argv[7] = NULL;
}

static int bench_containers(ctx *c, bool crun, err *e)
{
    const char *rt = crun ? "crun" : "atoll-run";
    size_t n = c->mem_instances, n_compute = c->cold_compute;
    if (n < c->cold_hello + n_compute)
        n = c->cold_hello + n_compute;
    pid_t *pids = xcalloc(n, sizeof *pids);
    int *netns = xcalloc(n, sizeof *netns);
    const int port = 8080; /* every instance in its own network namespace */
    double *cold_h = xcalloc(n, sizeof *cold_h), *cold_c = xcalloc(n, sizeof *cold_c);
    size_t nh = 0, nc = 0, started = 0;
    int rc = 0;
    char *log = xasprintf("%s/containers-%s.log", c->logs, rt);
    bench_row *hello = bench_report_add(c->r, rt, "container", "hello");
    bench_row *compute = bench_report_add(c->r, rt, "container", "compute");
    if (crun)
        bench_report_command(c->r, "unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified; exec crun "
                                   "--cgroup-manager=disabled run --bundle BUNDLE ID'   # as /work/shared/peers/crun-run");
    else
        bench_report_command(c->r, "%s container run BUNDLE   # busybox httpd -f -p 127.0.0.1:PORT -h /www, "
                                   "%zu instances", c->o->self, n);
    c->step++;
    for (size_t i = 0; i < n; i++) {
        char *argv[8], *owned;
        netns[i] = -1;
        char *bundle = write_bundle(c, i, port, e);
        if (!bundle) {
            rc = e->code;
            goto fail;
        }
        container_argv(c, crun, bundle, i, argv, &owned);
        /* The first n_compute instances get the compute CGI as their
         * first request, the rest the static page. */
        bool is_compute = i < n_compute;
        if (i % 5 == 0)
            progress(c, "%s container: cold starts %zu/%zu", rt, i, n);
        uint64_t t0 = clock_mono_ns();
        pids[i] = spawn(argv, log, NULL, NULL);
        started = i + 1;
        double ms = wait_container(pids[i], port, is_compute ? "/cgi-bin/compute" : "/index.html", t0, 20000,
                                   &netns[i]);
        free(bundle);
        free(owned);
        if (ms < 0) {
            rc = err_set(e, -EIO, "%s container %zu did not answer (see %s)", rt, i, log);
            goto fail;
        }
        if (is_compute)
            cold_c[nc++] = ms;
        else
            cold_h[nh++] = ms;
    }
    bench_summarize(cold_h, nh, &hello->cold_ms);
    bench_summarize(cold_c, nc, &compute->cold_ms);
    usleep(200000);
    hello->mem_kb = tree_pss_kb(pids, n) / (double)n;
    hello->mem_instances = n;
    snprintf(hello->note, sizeof hello->note, "memory: PSS of the runner and httpd per instance; kernel memory "
                                              "(namespaces, cgroups) not counted; ");
    /* Instance n-1 was requested once only: measure it warm. */
    c->step++;
    if ((rc = measure_warm(c, hello, netns[n - 1], port, "localhost", "/index.html", e)) != 0)
        goto fail;
    c->step++;
    rc = measure_warm(c, compute, netns[n - 1], port, "localhost", "/cgi-bin/compute", e);
fail:
    progress(c, "%s container: stopping %zu instances", rt, started);
    for (size_t i = 0; i < started; i++) {
        stop_container(pids[i]);
        if (netns[i] >= 0)
            close(netns[i]);
    }
    free(pids);
    free(netns);
    free(cold_h);
    free(cold_c);
    free(log);
    return rc;
}

/* The container tier through the router: `atoll serve` with container
 * tenants in port mode (httpd listens on 127.0.0.1:8080 inside each
 * container's own network namespace and atoll connects there), each
 * started on its first request like a tenant of any tier. The memory is
 * the PSS growth of the whole serve tree (workers, the containers process
 * and every container's processes) over the idle instances. */
static int bench_serve_containers(ctx *c, err *e)
{
    char *dir = xasprintf("%s/ctr-serve", c->tmp), *cfg = xasprintf("%s/atoll.jsonc", dir);
    char *log = xasprintf("%s/serve-container.log", c->logs), *ready = xasprintf("%s/ready.js", dir);
    size_t n_hello = c->mem_instances > c->cold_hello ? c->mem_instances : c->cold_hello, n = n_hello + c->cold_compute;
    pid_t pid = -1;
    int rc = 0, port = free_port();
    mkdir(dir, 0755);
    if ((rc = write_fmt(e, ready, js_hello, (size_t)0, (size_t)0)) != 0)
        goto fail;
    FILE *f = fopen(cfg, "w");
    if (!f) {
        rc = err_set(e, -errno, "%s: %s", cfg, strerror(errno));
        goto fail;
    }
    /* idle_timeout_s: no instance may scale to zero while it is counted. */
    fprintf(f, "// generated by atoll bench\n{\n  \"listen\": \"127.0.0.1:%d\",\n  \"processes\": 1,\n"
               "  \"state_dir\": \"%s/state\",\n  \"workers\": [\n"
               "    { \"name\": \"ready\", \"main\": \"ready.js\", \"routes\": [\"ready.bench/*\"] },\n",
            port, dir);
    for (size_t i = 0; i < n; i++) {
        char *bundle = write_bundle(c, 1000000 + i, 8080, e);
        if (!bundle) {
            fclose(f);
            rc = e->code;
            goto fail;
        }
        bool compute = i >= n_hello;
        fprintf(f, "    { \"name\": \"%s%zu\", \"tier\": \"container\", \"main\": \"%s\", \"routes\": [\"%s%zu.bench/*\"], "
                   "\"port\": 8080, \"idle_timeout_s\": 3600 },\n",
                compute ? "c" : "h", compute ? i - n_hello : i, bundle, compute ? "c" : "h", compute ? i - n_hello : i);
        free(bundle);
    }
    fprintf(f, "  ],\n}\n");
    if (fclose(f) != 0) {
        rc = err_set(e, -EIO, "%s: write failed", cfg);
        goto fail;
    }
    char *argv[] = {(char *)c->o->self, "serve", "--config", cfg, "--processes", "1", "--no-access-log", NULL};
    bench_report_command(c->r, "%s serve --config %s --processes 1 --no-access-log   # container tier: %zu tenants "
                               "\"tier\": \"container\", \"port\": 8080 (busybox httpd); config and bundles live in "
                               "a temporary directory removed after the run (atoll bench --tiers container makes them "
                               "again)", c->o->self, cfg, n);
    c->step++;
    progress(c, "atoll container: starting atoll serve");
    pid = spawn(argv, log, dir, NULL);
    if (wait_ready(port, "ready.bench", "/", clock_mono_ns(), 120000, pid) < 0) {
        rc = err_set(e, -EIO, "atoll serve (container tier) did not answer (see %s)", log);
        goto fail;
    }
    bench_row *hello = bench_report_add(c->r, "atoll", "container", "hello");
    bench_row *compute = bench_report_add(c->r, "atoll", "container", "compute");
    usleep(200000);
    double before = tree_pss_kb(&pid, 1);
    if ((rc = measure_cold_tenants(c, hello, port, "h", "/index.html", n_hello, e)) != 0)
        goto fail;
    usleep(300000);
    double after = tree_pss_kb(&pid, 1);
    hello->mem_kb = after > before ? (after - before) / (double)n_hello : 0;
    hello->mem_instances = n_hello;
    snprintf(hello->note, sizeof hello->note, "memory: PSS growth of the serve tree (httpd in each container); "
                                              "kernel memory (namespaces, cgroups) not counted; ");
    if ((rc = measure_cold_tenants(c, compute, port, "c", "/cgi-bin/compute", c->cold_compute, e)) != 0)
        goto fail;
    c->step++;
    if ((rc = measure_warm(c, hello, -1, port, "h0.bench", "/index.html", e)) != 0)
        goto fail;
    c->step++;
    rc = measure_warm(c, compute, -1, port, "c0.bench", "/cgi-bin/compute", e);
fail:
    if (pid > 0) {
        progress(c, "atoll container: stopping atoll serve and %zu containers", n);
        /* httpd as pid 1 ignores SIGTERM: serve stops it with SIGKILL after
         * its 10 s grace. */
        kill(pid, SIGTERM);
        reap(pid, 20000);
    }
    free(dir);
    free(cfg);
    free(log);
    free(ready);
    return rc;
}

/* ---------------------------------------------------------------- workerd */

static char *find_workerd(void)
{
    const char *cache = getenv("PEERS_CACHE"), *home = getenv("HOME");
    char *dir = cache ? xstrdup(cache) : xasprintf("%s/.cache/atoll-peers", home ? home : "/root");
    char *bin = xasprintf("%s/node_modules/workerd/bin/workerd", dir);
    if (access(bin, X_OK) != 0 && access("/usr/bin/npm", X_OK) == 0) {
        /* As /work/shared/peers/workerd-serve installs it. */
        char *q = bench_sh_quote(dir);
        char *cmd = xasprintf("mkdir -p %s && cd %s && { [ -f package.json ] || npm init -y >/dev/null; } && "
                              "npm install --no-audit --no-fund workerd >/dev/null 2>&1", q, q);
        free(q);
        if (system(cmd) != 0) {
            free(cmd);
            free(bin);
            free(dir);
            return NULL;
        }
        free(cmd);
    }
    free(dir);
    if (access(bin, X_OK) != 0) {
        free(bin);
        return NULL;
    }
    return bin;
}

/* A workerd config serving n copies of the hello module (sockets
 * ports[0..n)) and, when with_compute, the compute module (ports[n]). */
static char *workerd_config(ctx *c, const char *name, size_t n, bool with_compute, int *ports, err *e)
{
    char *dir = xasprintf("%s/workerd-%s", c->tmp, name), *path = xasprintf("%s/config.capnp", dir);
    mkdir(dir, 0755);
    size_t total = n + (with_compute ? 1 : 0);
    int rc = 0;
    for (size_t i = 0; i < total && rc == 0; i++) {
        char *js = xasprintf("%s/w%zu.js", dir, i);
        rc = write_fmt(e, js, i < n ? js_hello : js_compute, i, i);
        free(js);
    }
    FILE *f = rc == 0 ? fopen(path, "w") : NULL;
    if (!f) {
        if (rc == 0)
            err_set(e, -errno, "%s: %s", path, strerror(errno));
        free(path);
        free(dir);
        return NULL;
    }
    fprintf(f, "using Workerd = import \"/workerd/workerd.capnp\";\nconst config :Workerd.Config = (\n  services = [");
    for (size_t i = 0; i < total; i++)
        fprintf(f, "%s(name = \"s%zu\", worker = .w%zu)", i ? ", " : " ", i, i);
    fprintf(f, " ],\n  sockets = [");
    free_ports(ports, total);
    for (size_t i = 0; i < total; i++) {
        fprintf(f, "%s(name = \"h%zu\", address = \"127.0.0.1:%d\", http = (), service = \"s%zu\")", i ? ", " : " ",
                i, ports[i], i);
    }
    fprintf(f, " ],\n);\n");
    for (size_t i = 0; i < total; i++)
        fprintf(f, "const w%zu :Workerd.Worker = (\n  modules = [ (name = \"w.js\", esModule = embed \"w%zu.js\") ],\n"
                   "  compatibilityDate = \"2024-01-01\",\n);\n", i, i);
    fclose(f);
    free(path);
    return dir;
}

static pid_t workerd_start(ctx *c, const char *bin, const char *dir, const char *log)
{
    char *argv[] = {(char *)bin, "serve", "config.capnp", NULL};
    return spawn(argv, log, dir, NULL);
}

static int bench_workerd(ctx *c, err *e)
{
    char *bin = find_workerd();
    if (!bin) {
        bench_report_missing(c->r, "workerd: not installed and `npm install workerd` failed or npm is missing");
        return 0;
    }
    int rc = 0;
    size_t n_mem = c->mem_instances;
    int *ports = xcalloc(n_mem + 2, sizeof *ports);
    double *cold = xcalloc(c->peer_cold, sizeof *cold);
    char *log = xasprintf("%s/workerd.log", c->logs), *dir = NULL;
    pid_t pid = -1;
    bench_row *hello = bench_report_add(c->r, "workerd", "js", "hello");
    bench_row *compute = bench_report_add(c->r, "workerd", "js", "compute");
    bench_report_command(c->r, "%s serve config.capnp   # one socket per worker, as /work/shared/peers/workerd-serve",
                         bin);
    snprintf(hello->note, sizeof hello->note,
             "cold start = a workerd process start + first request (workerd cannot add a worker to a running process); ");

    /* Cold starts: a fresh process each time, one module. */
    c->step++;
    for (int kind = 0; kind < 2; kind++) {
        bench_row *row = kind ? compute : hello;
        size_t n = kind ? c->peer_cold / 2 + 1 : c->peer_cold;
        size_t got = 0;
        for (size_t i = 0; i < n; i++) {
            progress(c, "workerd js %s: cold starts %zu/%zu", row->service, i, n);
            free(dir);
            dir = workerd_config(c, kind ? "cold-c" : "cold-h", kind ? 0 : 1, kind, ports, e);
            if (!dir) {
                rc = e->code;
                goto fail;
            }
            uint64_t t0 = clock_mono_ns();
            pid = workerd_start(c, bin, dir, log);
            double ms = wait_ready(ports[0], "localhost", "/", t0, 30000, pid);
            stop_server(pid);
            pid = -1;
            if (ms < 0) {
                rc = err_set(e, -EIO, "workerd did not answer (see %s)", log);
                goto fail;
            }
            cold[got++] = ms;
        }
        bench_summarize(cold, got, &row->cold_ms);
    }

    /* Memory: one process with 1 hello worker against one with n_mem. */
    double pss[2] = {0, 0};
    size_t counts[2] = {1, n_mem};
    for (int k = 0; k < 2; k++) {
        progress(c, "workerd js hello: memory with %zu workers", counts[k]);
        free(dir);
        dir = workerd_config(c, k ? "mem" : "base", counts[k], true, ports, e);
        if (!dir) {
            rc = e->code;
            goto fail;
        }
        pid = workerd_start(c, bin, dir, log);
        if (wait_ready(ports[0], "localhost", "/", clock_mono_ns(), 60000, pid) < 0) {
            rc = err_set(e, -EIO, "workerd did not answer (see %s)", log);
            goto fail;
        }
        for (size_t i = 0; i <= counts[k]; i++)
            http_once(-1, ports[i], "localhost", "/", 10000);
        usleep(200000);
        pss[k] = tree_pss_kb(&pid, 1);
        if (k == 0) {
            /* The small process serves the warm figures. */
            c->step++;
            if ((rc = measure_warm(c, hello, -1, ports[0], "localhost", "/", e)) != 0)
                goto fail;
            c->step++;
            if ((rc = measure_warm(c, compute, -1, ports[1], "localhost", "/", e)) != 0)
                goto fail;
        }
        stop_server(pid);
        pid = -1;
    }
    hello->mem_kb = (pss[1] - pss[0]) / (double)(n_mem - 1);
    hello->mem_instances = n_mem;
    if (hello->mem_kb <= 0) {
        hello->mem_kb = 0;
        snprintf(hello->note + strlen(hello->note), sizeof hello->note - strlen(hello->note),
                 "memory growth not measurable; ");
    }
fail:
    if (pid > 0)
        stop_server(pid);
    free(bin);
    free(ports);
    free(cold);
    free(log);
    free(dir);
    return rc;
}

/* ------------------------------------------------------------------ run */

static int keep_source(ctx *c, const char *name, const char *src, err *e)
{
    char *tmp = xasprintf("%s/%s", c->tmp, name), *dir = xasprintf("%s/tenants", c->o->out_dir);
    char *kept = xasprintf("%s/%s", dir, name);
    mkdir(dir, 0755);
    int rc = write_file(tmp, src, strlen(src), e);
    if (rc == 0)
        rc = write_file(kept, src, strlen(src), e);
    free(tmp);
    free(dir);
    free(kept);
    return rc;
}

static void rm_rf(const char *path)
{
    char *q = bench_sh_quote(path), *cmd = xasprintf("rm -rf %s", q);
    free(q);
    if (system(cmd) != 0)
        fprintf(stderr, "atoll bench: could not remove %s\n", path);
    free(cmd);
}

int bench_run(const bench_opts *o, bench_report *r, err *e)
{
    ctx c = {.o = o, .r = r};
    int rc = 0;
    /* Sample counts: --quick keeps the run under two minutes on 2 cores;
     * o->samples shrinks everything for tests. Cold starts never below 30
     * and idle instances never below 100 unless a test asks. */
    if (o->quick) {
        c.cold_hello = 30, c.cold_compute = 30, c.mem_instances = 100, c.warm_requests = 300;
        c.load_ms = 1000, c.warmup_ms = 200, c.peer_cold = 10;
    } else {
        c.cold_hello = 100, c.cold_compute = 50, c.mem_instances = 300, c.warm_requests = 3000;
        c.load_ms = 5000, c.warmup_ms = 1000, c.peer_cold = 30;
    }
    if (o->samples) {
        c.cold_hello = c.cold_compute = c.peer_cold = o->samples;
        c.mem_instances = o->samples < 2 ? 2 : o->samples;
        c.warm_requests = o->samples * 10;
        c.load_ms = 300, c.warmup_ms = 50;
    }
    c.connections = 32;
    bench_report_command(r, "cold start: the first request to each of %zu never-requested hello tenants (and %zu "
                            "compute), one fresh connection each, 10 ms apart; memory: PSS growth of the serving "
                            "processes over those tenants (/proc/PID/smaps_rollup)",
                         c.mem_instances > c.cold_hello ? c.mem_instances : c.cold_hello, c.cold_compute);
    bench_report_command(r, "warm latency: embedded load generator, 1 keep-alive connection, %zu sequential requests "
                            "after a %u ms warm-up; throughput: %d keep-alive connections for %u ms after a %u ms "
                            "warm-up",
                         c.warm_requests, c.warmup_ms, c.connections, c.load_ms, c.warmup_ms);
    if (access("/usr/bin/wrk", X_OK) == 0)
        bench_report_command(r, "wrk -t1 -c%d -d%us --latency -H 'Host: TENANT' http://127.0.0.1:PORT/PATH   "
                                "(containers: under nsenter --net=/proc/PID/ns/net)",
                             c.connections, (c.load_ms + 999) / 1000);
    c.steps = 0;
    for (int t = 0; t < 3; t++)
        c.steps += o->tiers[t] ? 3 : 0;
    if (o->peers) /* workerd; atoll container run and crun */
        c.steps += (o->tiers[0] ? 3 : 0) + (o->tiers[2] ? 6 : 0);

    r->cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    now_loadavg(r->load);
    time_t now = time(NULL);
    strftime(r->started, sizeof r->started, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    FILE *ci = fopen("/proc/cpuinfo", "r");
    if (ci) {
        char line[256];
        while (fgets(line, sizeof line, ci))
            if (strncmp(line, "model name", 10) == 0) {
                char *v = strchr(line, ':');
                if (v) {
                    v += strspn(v + 1, " ") + 1;
                    v[strcspn(v, "\n")] = 0;
                    snprintf(r->cpu, sizeof r->cpu, "%s", v);
                }
                break;
            }
        fclose(ci);
    }

    char tmpl[] = "/tmp/atoll-bench-XXXXXX";
    if (!mkdtemp(tmpl))
        return err_set(e, -errno, "mkdtemp: %s", strerror(errno));
    chmod(tmpl, 0755);
    c.tmp = xstrdup(tmpl);
    c.logs = xasprintf("%s/logs", o->out_dir);
    mkdir(c.logs, 0755);
    char *ctr = xasprintf("%s/ctr", c.tmp);
    mkdir(ctr, 0755);
    free(ctr);

    /* Tenants' sources: built from the temporary directory, copies kept
     * beside the results for reproduction. */
    if ((rc = keep_source(&c, "compute.c", c_compute, e)) != 0 || (rc = keep_source(&c, "hello.c", c_hello, e)) != 0)
        goto fail;
    bench_report_command(r, "sources and generated configs: %s/tenants/", o->out_dir);
    if (o->tiers[1] && ((rc = build_wasm(&c, "hello", c_hello, e)) != 0 || (rc = build_wasm(&c, "compute", c_compute, e)) != 0))
        goto fail;
    if (o->tiers[0] && (rc = bench_serve_tier(&c, "js", e)) != 0)
        goto fail;
    if (o->tiers[0] && o->peers && (rc = bench_workerd(&c, e)) != 0)
        goto fail;
    if (o->tiers[1] && (rc = bench_serve_tier(&c, "wasm", e)) != 0)
        goto fail;
    if (o->tiers[2]) {
        if ((rc = build_rootfs(&c, e)) != 0)
            goto fail;
        if (geteuid() != 0) {
            bench_report_missing(r, "container tier: needs root (namespaces, cgroups); skipped");
        } else {
            if ((rc = bench_serve_containers(&c, e)) != 0)
                goto fail;
            /* `atoll container run` beside `crun run`: the like-for-like pair. */
            if (o->peers && (rc = bench_containers(&c, false, e)) != 0)
                goto fail;
            if (o->peers) {
                if (access("/usr/bin/crun", X_OK) != 0)
                    bench_report_missing(r, "crun: not installed (apt-get install crun)");
                else if ((rc = bench_containers(&c, true, e)) != 0)
                    goto fail;
            }
        }
    }
    if (o->peers && !o->tiers[0])
        bench_report_missing(r, "workerd: compared with the js tier only (add js to --tiers)");
fail:
    if (o->progress)
        fprintf(stderr, isatty(2) ? "\r\033[K" : "");
    /* The generated configs, beside the results (the rest is bulky). */
    /* The js and wasm tiers whole (configs with relative paths, scripts,
     * modules), so that the serve commands written down run as they are;
     * the container tier's bundles are regenerated by the bench. */
    char *q_out = bench_sh_quote(o->out_dir);
    char *keep = xasprintf("cd '%s' && for d in js wasm; do [ -d $d ] && rm -rf %s/tenants/$d && cp -r $d %s/tenants/ "
                           "&& rm -rf %s/tenants/$d/state; done; for f in hello.wasm compute.wasm ctr/i0/config.json "
                           "workerd-base/config.capnp; do [ -f $f ] && cp $f %s/tenants/$(echo $f | tr / -); done; "
                           "true", c.tmp, q_out, q_out, q_out, q_out);
    free(q_out);
    if (system(keep) != 0)
        fprintf(stderr, "atoll bench: could not keep the generated configs\n");
    free(keep);
    rm_rf(c.tmp);
    free(c.tmp);
    free(c.logs);
    return rc;
}
