/* `atoll wasm MODULE.wasm [TARGET]`: deploys a WebAssembly module through
 * the wasm tier (compiling it into the cache unless already there) and
 * runs one WAGI request against it, printing the HTTP response. A debugging
 * tool with the tier's knobs (vars, preopen, limits); `atoll run` is the
 * everyday way to call a module once. The request
 * body is read from stdin when it is not a terminal. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/err.h"
#include "http/message.h"
#include "wasm/wasm.h"

typedef struct print_writer {
    http_writer w;
} print_writer;

static int pw_start(http_writer *w, int status, const http_headers *h, int64_t len)
{
    printf("HTTP/1.1 %d %s\r\n", status, http_status_reason(status));
    for (size_t i = 0; h && i < h->count; i++)
        printf("%s: %s\r\n", h->items[i].name, h->items[i].value);
    if (len >= 0)
        printf("Content-Length: %lld\r\n", (long long)len);
    printf("\r\n");
    return 0;
}

static int pw_write(http_writer *w, const void *data, size_t len)
{
    return fwrite(data, 1, len, stdout) == len ? 0 : -EIO;
}

static void pw_end(http_writer *w) { fflush(stdout); }

static int read_all(FILE *f, buf *b)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (buf_append(b, chunk, n) < 0)
            return -E2BIG;
    return ferror(f) ? -EIO : 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: atoll wasm MODULE.wasm [TARGET] [options]\n"
            "  TARGET            request path and query, default /\n"
            "  --method M        default GET (POST when a body is piped in)\n"
            "  --header 'N: V'   a request header (repeatable)\n"
            "  --var NAME=VALUE  a config var, as an environment variable (repeatable)\n"
            "  --dir HOST[:GUEST] preopen HOST read-only as GUEST (default /)\n"
            "  --cache DIR       compiled-module cache, default $XDG_CACHE_HOME/atoll/wasm\n"
            "  --cpu-ms N --wall-ms N --memory-pages N   limits\n");
}

char *cli_wasm_cache_dir(void)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && xdg[0] == '/')
        return xasprintf("%s/atoll/wasm", xdg);
    return xasprintf("%s/.cache/atoll/wasm", home && home[0] ? home : "/tmp");
}

int cli_wasm(int argc, char **argv)
{
    const char *path = NULL, *target = "/", *method = NULL, *cache = NULL;
    wasm_config cfg;
    wasm_config_init(&cfg);
    cfg.tenant = "cli";
    wasm_var vars[64];
    http_request req;
    http_request_init(&req);
    buf_init(&req.body, 64u << 20);
    char *cache_owned = NULL, *dir_owned = NULL;
    wasm_module *m = NULL;
    buf bytes;
    buf_init(&bytes, 256u << 20);
    int rc = 2;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--method") && v) {
            method = v, i++;
        } else if (!strcmp(a, "--header") && v && strchr(v, ':')) {
            const char *colon = strchr(v, ':');
            http_headers_add(&req.headers, v, (size_t)(colon - v), colon + 1, strlen(colon + 1));
            i++;
        } else if (!strcmp(a, "--var") && v && strchr(v, '=') && cfg.nvars < 64) {
            char *eq = strchr(v, '=');
            *eq = '\0';
            vars[cfg.nvars].name = v;
            vars[cfg.nvars++].value = eq + 1;
            i++;
        } else if (!strcmp(a, "--dir") && v) {
            dir_owned = xstrdup(v);
            char *colon = strchr(dir_owned, ':');
            if (colon) {
                *colon = '\0';
                cfg.preopen_guest = colon + 1;
            }
            cfg.preopen_dir = dir_owned;
            i++;
        } else if (!strcmp(a, "--cache") && v) {
            cache = v, i++;
        } else if (!strcmp(a, "--cpu-ms") && v) {
            cfg.limits.cpu_ms = strtoull(v, NULL, 10), i++;
        } else if (!strcmp(a, "--wall-ms") && v) {
            cfg.limits.wall_ms = strtoull(v, NULL, 10), i++;
        } else if (!strcmp(a, "--memory-pages") && v) {
            cfg.limits.memory_pages = (uint32_t)strtoul(v, NULL, 10), i++;
        } else if (a[0] == '-') {
            usage();
            goto done;
        } else if (!path) {
            path = a;
        } else {
            target = a;
        }
    }
    if (!path) {
        usage();
        goto done;
    }
    cfg.vars = vars;
    rc = 1;
    FILE *f = fopen(path, "rb");
    if (!f || read_all(f, &bytes) < 0) {
        fprintf(stderr, "atoll wasm: read %s: %s\n", path, f ? "too large" : strerror(errno));
        if (f)
            fclose(f);
        goto done;
    }
    fclose(f);
    if (!isatty(0) && read_all(stdin, &req.body) < 0) {
        fprintf(stderr, "atoll wasm: request body too large\n");
        goto done;
    }
    if (!cache)
        cache = cache_owned = cli_wasm_cache_dir();
    wasm_compile_opts opts = {.cache_dir = cache};
    err e;
    err_clear(&e);
    if (wasm_module_load(bytes.data, bytes.len, &opts, &m, &e) < 0) {
        fprintf(stderr, "atoll wasm: %s\n", e.msg);
        goto done;
    }
    req.method = xstrdup(method ? method : req.body.len ? "POST" : "GET");
    req.target = xstrdup(target);
    if (!http_headers_get(&req.headers, "Host"))
        http_headers_add_str(&req.headers, "Host", "localhost");
    print_writer pw = {{.start = pw_start, .write = pw_write, .end = pw_end}};
    rc = wasm_handle(m, &cfg, &req, &pw.w) < 0 ? 1 : 0;
done:
    wasm_module_free(m);
    http_request_free(&req);
    buf_free(&bytes);
    free(cache_owned);
    free(dir_owned);
    return rc;
}
