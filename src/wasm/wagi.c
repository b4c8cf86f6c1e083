/* WAGI, the HTTP contract of the wasm tier: a request becomes CGI
 * environment variables, arguments and stdin for a fresh instance; the
 * instance's stdout is parsed as a CGI response. Also the thread-pool
 * wrappers that keep compiles and runs off the event loop. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "wasm/internal.h"

#define DEFAULT_OUTPUT (16u << 20)

void wasm_config_init(wasm_config *c)
{
    memset(c, 0, sizeof *c);
    c->limits.cpu_ms = 50;
    c->limits.wall_ms = 30000;
    c->limits.memory_pages = 2048;
    c->limits.max_output = DEFAULT_OUTPUT;
}

const char *wasm_trap_name(wasm_trap t)
{
    switch (t) {
    case WASM_TRAP_NONE: return "none";
    case WASM_TRAP_OOB: return "out of bounds memory access";
    case WASM_TRAP_INT_OVERFLOW: return "integer overflow";
    case WASM_TRAP_DIV_BY_ZERO: return "integer divide by zero";
    case WASM_TRAP_INVALID_CONVERSION: return "invalid conversion to integer";
    case WASM_TRAP_UNREACHABLE: return "unreachable";
    case WASM_TRAP_CALL_INDIRECT: return "indirect call type mismatch";
    case WASM_TRAP_EXHAUSTION: return "call stack exhausted";
    case WASM_TRAP_CPU_LIMIT: return "cpu time limit exceeded";
    case WASM_TRAP_WALL_LIMIT: return "wall time limit exceeded";
    case WASM_TRAP_MEMORY_LIMIT: return "memory limit exceeded";
    case WASM_TRAP_HOST: return "host error";
    }
    return "unknown";
}

/* ---- the request as CGI variables -------------------------------------- */

typedef struct strvec {
    char **v; /* owned, NULL-terminated */
    size_t n, cap;
} strvec;

static void strvec_push(strvec *s, char *str)
{
    if (s->n + 2 > s->cap) {
        s->cap = s->cap ? s->cap * 2 : 32;
        s->v = xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = str;
    s->v[s->n] = NULL;
}

static bool strvec_has(const strvec *s, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < s->n; i++)
        if (strncmp(s->v[i], name, len) == 0 && s->v[i][len] == '=')
            return true;
    return false;
}

static void setenv_(strvec *s, const char *name, const char *value)
{
    strvec_push(s, xasprintf("%s=%s", name, value ? value : ""));
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* RFC 3875 wants PATH_INFO decoded; %00 stays encoded (no NUL in C strings). */
static char *percent_decode(const char *s, size_t n)
{
    char *out = xmalloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 &&
            (lo = hexval(s[i + 2])) >= 0 && (hi | lo)) {
            *o++ = (char)(hi << 4 | lo);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/* HTTP_ACCEPT_LANGUAGE for Accept-Language; NULL for names CGI cannot carry. */
static char *cgi_header_name(const char *name)
{
    size_t n = strlen(name);
    char *out = xmalloc(n + 6), *o = out + 5;
    memcpy(out, "HTTP_", 5);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (isalnum(c))
            *o++ = (char)toupper(c);
        else if (c == '-')
            *o++ = '_';
        else {
            free(out);
            return NULL;
        }
    }
    *o = '\0';
    return out;
}

static void build_env(const wasm_config *cfg, const http_request *req, strvec *env)
{
    const char *target = req->target ? req->target : "/";
    const char *q = strchr(target, '?');
    size_t path_len = q ? (size_t)(q - target) : strlen(target);
    size_t pre = strlen(cfg->script_name);
    const char *rest = target;
    if (pre && path_len >= pre && strncmp(target, cfg->script_name, pre) == 0)
        rest += pre;
    size_t rest_len = path_len - (size_t)(rest - target);
    char *raw = xstrndup(rest, rest_len), *path_info = percent_decode(rest, rest_len);

    const char *host = http_headers_get(&req->headers, "Host");
    char *server_name = NULL, *port = NULL;
    if (cfg->server_name) {
        server_name = xstrdup(cfg->server_name);
    } else if (host && *host) {
        const char *colon = host[0] == '[' ? strstr(host, "]:") : strrchr(host, ':');
        if (colon && host[0] == '[')
            colon++;
        server_name = colon ? xstrndup(host, (size_t)(colon - host)) : xstrdup(host);
        if (colon && !cfg->server_port)
            port = xstrdup(colon + 1);
    } else {
        server_name = xstrdup("localhost");
    }
    if (!port)
        port = xasprintf("%d", cfg->server_port ? cfg->server_port : 80);

    char proto[16];
    snprintf(proto, sizeof proto, "HTTP/%d.%d", req->version_major, req->version_minor);
    char length[32];
    snprintf(length, sizeof length, "%zu", req->body.len);

    setenv_(env, "GATEWAY_INTERFACE", "CGI/1.1");
    setenv_(env, "SERVER_SOFTWARE", "atoll");
    setenv_(env, "SERVER_PROTOCOL", proto);
    setenv_(env, "SERVER_NAME", server_name);
    setenv_(env, "SERVER_PORT", port);
    setenv_(env, "REQUEST_METHOD", req->method ? req->method : "GET");
    setenv_(env, "SCRIPT_NAME", cfg->script_name);
    setenv_(env, "PATH_INFO", path_info);
    setenv_(env, "PATH_TRANSLATED", path_info);
    setenv_(env, "X_RAW_PATH_INFO", raw);
    setenv_(env, "QUERY_STRING", q ? q + 1 : "");
    strvec_push(env, xasprintf("X_MATCHED_ROUTE=%s/...", cfg->script_name));
    strvec_push(env, xasprintf("X_FULL_URL=http://%s%s", host && *host ? host : server_name, target));
    setenv_(env, "REMOTE_ADDR", cfg->remote_addr);
    setenv_(env, "REMOTE_HOST", cfg->remote_addr);
    setenv_(env, "AUTH_TYPE", "");
    setenv_(env, "REMOTE_USER", "");
    setenv_(env, "CONTENT_LENGTH", length);
    const char *type = http_headers_get(&req->headers, "Content-Type");
    if (type)
        setenv_(env, "CONTENT_TYPE", type);

    for (size_t i = 0; i < req->headers.count; i++) {
        const http_header *h = &req->headers.items[i];
        /* Content-* are above; Proxy would set HTTP_PROXY for the guest's
         * HTTP clients (the "httpoxy" hole). */
        if (!strcasecmp(h->name, "Content-Type") || !strcasecmp(h->name, "Content-Length") ||
            !strcasecmp(h->name, "Proxy"))
            continue;
        char *name = cgi_header_name(h->name);
        if (!name)
            continue;
        if (strvec_has(env, name)) { /* repeated fields join as one list */
            size_t len = strlen(name);
            for (size_t k = 0; k < env->n; k++) {
                if (strncmp(env->v[k], name, len) == 0 && env->v[k][len] == '=') {
                    char *joined = xasprintf("%s, %s", env->v[k], h->value);
                    free(env->v[k]);
                    env->v[k] = joined;
                    break;
                }
            }
        } else {
            setenv_(env, name, h->value);
        }
        free(name);
    }
    /* Tenant vars cannot shadow what describes the request. */
    for (size_t i = 0; i < cfg->nvars; i++)
        if (!strvec_has(env, cfg->vars[i].name))
            setenv_(env, cfg->vars[i].name, cfg->vars[i].value);
    free(raw);
    free(path_info);
    free(server_name);
    free(port);
}

static void strvec_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* ---- the CGI response -------------------------------------------------- */

/* A field name is an RFC 9110 token; a value has no control characters
 * but tab, so the guest cannot split the response it is part of. */
static bool valid_field(const char *name, size_t nlen, const char *value, size_t vlen)
{
    for (size_t i = 0; i < nlen; i++)
        if (!isalnum((unsigned char)name[i]) && !strchr("!#$%&'*+-.^_`|~", name[i]))
            return false;
    for (size_t i = 0; i < vlen; i++)
        if (((unsigned char)value[i] < 0x20 && value[i] != '\t') || value[i] == 0x7f)
            return false;
    return true;
}

/* Headers up to the first empty line; returns NULL or why it is not CGI. */
static const char *parse_cgi(buf *out, wasm_response *resp)
{
    const char *s = out->data ? out->data : "", *end = s + out->len, *p = s;
    bool typed = false, status_set = false, location = false;
    resp->status = 200;
    for (;;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return out->len ? "no empty line after the CGI headers" : "no output";
        size_t len = (size_t)(nl - p);
        if (len && p[len - 1] == '\r')
            len--;
        if (len == 0) {
            p = nl + 1;
            break;
        }
        const char *colon = memchr(p, ':', len);
        if (!colon || colon == p)
            return "a CGI header line without a name";
        size_t nlen = (size_t)(colon - p);
        const char *v = colon + 1;
        size_t vlen = len - nlen - 1;
        if (!valid_field(p, nlen, v, vlen))
            return "a CGI header with a bad name or control characters";
        if (nlen == 6 && !strncasecmp(p, "Status", 6)) {
            while (vlen && (*v == ' ' || *v == '\t'))
                v++, vlen--;
            int code = 0;
            for (size_t i = 0; i < 3; i++) {
                if (i >= vlen || !isdigit((unsigned char)v[i]))
                    return "a Status header without a three-digit code";
                code = code * 10 + (v[i] - '0');
            }
            if (code < 200 || code > 599)
                return "a Status outside 200-599";
            resp->status = code;
            status_set = true;
        } else {
            if (nlen == 12 && !strncasecmp(p, "Content-Type", 12))
                typed = true;
            if (nlen == 8 && !strncasecmp(p, "Location", 8))
                location = true;
            http_headers_add(&resp->headers, p, nlen, v, vlen);
        }
        p = nl + 1;
    }
    if (!typed && !location && !status_set)
        return "no Content-Type, Location or Status header";
    if (location && !status_set)
        resp->status = 302;
    buf_consume(out, (size_t)(p - s));
    return NULL;
}

/* ---- one run ----------------------------------------------------------- */

int wasm_run(const wasm_module *m, const wasm_config *cfg_in, const http_request *req,
             wasm_response *resp, err *e)
{
    memset(resp, 0, sizeof *resp);
    http_headers_init(&resp->headers);
    buf_init(&resp->body, BUF_UNLIMITED);
    resp->status = 500;

    /* Defaults filled in a copy, so a zeroed config works too. */
    wasm_config cfg = *cfg_in;
    if (!cfg.tenant)
        cfg.tenant = "wasm";
    if (!cfg.script_name)
        cfg.script_name = "";
    if (!cfg.preopen_guest)
        cfg.preopen_guest = "/";
    if (!cfg.remote_addr)
        cfg.remote_addr = "127.0.0.1";
    if (!cfg.limits.cpu_ms)
        cfg.limits.cpu_ms = 50;
    if (!cfg.limits.wall_ms)
        cfg.limits.wall_ms = 30000;
    if (!cfg.limits.memory_pages)
        cfg.limits.memory_pages = 2048;
    if (!cfg.limits.max_output)
        cfg.limits.max_output = DEFAULT_OUTPUT;

    wasm__run *r = xcalloc(1, sizeof *r);
    r->mod = m;
    r->cfg = &cfg;
    for (size_t i = 0; i < WASM_MAX_FILES; i++)
        r->files[i].fd = -1;
    buf_init(&r->out, cfg.limits.max_output);
    buf_init(&r->errline, BUF_UNLIMITED); /* bounded by wasi.c */
    strvec argv = {0}, env = {0};
    strvec_push(&argv, xstrdup(cfg.script_name[0] ? cfg.script_name : cfg.tenant));
    build_env(&cfg, req, &env);
    r->argv = argv.v;
    r->argc = argv.n;
    r->envp = env.v;
    r->envc = env.n;
    r->stdin_data = &req->body;
    int rc = 0;
    if (cfg.preopen_dir) {
        int fd = open(cfg.preopen_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
            rc = err_set(e, -errno, "wasm[%s]: preopen %s: %s", cfg.tenant, cfg.preopen_dir,
                         strerror(errno));
            goto done;
        }
        r->files[0].fd = fd;
        r->files[0].dir = true;
    }

    uint64_t t0 = clock_mono_ns(), c0 = clock_thread_cpu_ns();
    rc = wasm__execute(r, e);
    wasm__wasi_flush(r);
    resp->wall_ns = clock_mono_ns() - t0;
    resp->cpu_ns = clock_thread_cpu_ns() - c0;
    if (rc < 0)
        goto done;
    resp->trap = r->trap;
    resp->exit_code = r->exit_code;
    const char *method = req->method ? req->method : "-", *target = req->target ? req->target : "-";
    if (r->memory_denied)
        log_warn("wasm[%s]: %s %s: memory.grow refused at the limit of %u pages", cfg.tenant, method,
                 target, cfg.limits.memory_pages);
    if (r->trap != WASM_TRAP_NONE) {
        log_error("wasm[%s]: %s %s: trap: %s", cfg.tenant, method, target, wasm_trap_name(r->trap));
        /* The limits answer as the JavaScript tier's do (README, Limits):
         * the status names the limit, and the server counts it by status. */
        switch (r->trap) {
        case WASM_TRAP_CPU_LIMIT:
            resp->status = 503;
            resp->error = "The WebAssembly module exceeded its CPU time limit (limits.cpu_ms)";
            break;
        case WASM_TRAP_WALL_LIMIT:
            resp->status = 504;
            resp->error = "The WebAssembly module exceeded its wall-clock limit (limits.wall_ms)";
            break;
        case WASM_TRAP_MEMORY_LIMIT:
            resp->status = 507;
            resp->error = "The WebAssembly module needs more memory than its limit (limits.memory_mb)";
            break;
        default:
            resp->error = "The WebAssembly module trapped";
            break;
        }
        goto done;
    }
    if (r->out_overflow) {
        log_error("wasm[%s]: %s %s: output over %zu bytes", cfg.tenant, method, target,
                  cfg.limits.max_output);
        resp->error = "The WebAssembly module's response is too large";
        goto done;
    }
    const char *why = parse_cgi(&r->out, resp);
    if (why) {
        log_error("wasm[%s]: %s %s: bad CGI response: %s%s", cfg.tenant, method, target, why,
                  r->exited && r->exit_code ? " (it exited with an error code)" : "");
        http_headers_free(&resp->headers);
        resp->status = 500;
        resp->error = "The WebAssembly module sent no valid CGI response";
        goto done;
    }
    if (r->exit_code)
        log_warn("wasm[%s]: %s %s: exited with code %d", cfg.tenant, method, target, r->exit_code);
    buf_free(&resp->body);
    resp->body = r->out; /* the body is what follows the headers */
    buf_init(&r->out, 0);
done:
    wasm__wasi_close(r);
    strvec_free(r->argv);
    strvec_free(r->envp);
    buf_free(&r->out);
    buf_free(&r->errline);
    free(r);
    return rc;
}

int wasm_response_send(const wasm_response *resp, http_writer *w)
{
    if (resp->error)
        return http_writer_error(w, resp->status, resp->error);
    return http_writer_respond(w, resp->status, &resp->headers, resp->body.data, resp->body.len);
}

void wasm_response_free(wasm_response *resp)
{
    http_headers_free(&resp->headers);
    buf_free(&resp->body);
}

int wasm_handle(const wasm_module *m, const wasm_config *cfg, const http_request *req,
                http_writer *w)
{
    wasm_response resp;
    err e;
    err_clear(&e);
    int rc = wasm_run(m, cfg, req, &resp, &e);
    if (rc < 0) {
        log_error("%s", e.msg);
        http_writer_error(w, 500, "The WebAssembly module could not run");
    } else {
        rc = wasm_response_send(&resp, w);
    }
    wasm_response_free(&resp);
    return rc;
}

/* ---- off the event loop ------------------------------------------------ */

static void load_work(uv_work_t *work)
{
    wasm_load_req *q = work->data;
    q->status = wasm_module_load(q->bytes, q->len, &q->opts, &q->mod, &q->error);
}

static void load_done(uv_work_t *work, int status)
{
    wasm_load_req *q = work->data;
    if (status < 0) { /* cancelled before it ran */
        wasm_module_free(q->mod);
        q->mod = NULL;
        err_set(&q->error, status, "wasm module: %s", uv_strerror(status));
        q->status = status;
    }
    q->cb(q, q->status, q->mod);
}

int wasm_module_load_async(uv_loop_t *loop, wasm_load_req *q, const void *bytes, size_t len,
                           const wasm_compile_opts *opts, wasm_load_cb cb)
{
    q->bytes = bytes;
    q->len = len;
    q->opts = *opts;
    q->mod = NULL;
    q->cb = cb;
    q->status = 0;
    err_clear(&q->error);
    q->work.data = q;
    return uv_queue_work(loop, &q->work, load_work, load_done);
}

static void run_work(uv_work_t *work)
{
    wasm_run_req *q = work->data;
    err e;
    err_clear(&e);
    q->status = wasm_run(q->mod, q->cfg, q->req, &q->resp, &e);
    if (q->status < 0)
        log_error("%s", e.msg);
}

static void run_done(uv_work_t *work, int status)
{
    wasm_run_req *q = work->data;
    if (status < 0 || q->status < 0) {
        http_writer_error(q->w, 500, "The WebAssembly module could not run");
        if (status < 0)
            q->status = status;
    } else {
        q->status = wasm_response_send(&q->resp, q->w);
    }
    if (status >= 0)
        wasm_response_free(&q->resp);
    q->cb(q, q->status);
}

int wasm_run_async(uv_loop_t *loop, wasm_run_req *q, const wasm_module *m, const wasm_config *cfg,
                   const http_request *hreq, http_writer *w, wasm_run_cb cb)
{
    q->mod = m;
    q->cfg = cfg;
    q->req = hreq;
    q->w = w;
    q->cb = cb;
    q->status = 0;
    memset(&q->resp, 0, sizeof q->resp);
    q->work.data = q;
    return uv_queue_work(loop, &q->work, run_work, run_done);
}
