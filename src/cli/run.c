/* `atoll run`: invokes a worker once without a socket — builds the request
 * from the command line, dispatches it to a fresh isolate on a private loop,
 * and prints the response like curl. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cli/cli.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "http/message.h"
#include "js/isolate.h"

static const char run_usage[] =
    "usage: atoll run WORKER.js [options] URL_OR_PATH\n"
    "\n"
    "Invokes the worker's fetch handler once, without opening a socket, and prints\n"
    "the response body. URL_OR_PATH is a full URL (http://example.com/a?b=1) or a\n"
    "path (/a?b=1, host 'localhost').\n"
    "\n"
    "options:\n"
    "  -X, --request METHOD   request method (default GET, or POST with -d)\n"
    "  -H, --header 'N: v'    add a request header (repeatable)\n"
    "  -d, --data BODY        request body; @FILE reads it from FILE, @- from stdin\n"
    "  -i, --include          print the status line and headers before the body\n"
    "  -h, --help             show this help\n"
    "\n"
    "exit status: 0 for a 2xx or 3xx response, 1 for any other status or a\n"
    "streamed body that failed half-way,\n"
    "2 for a usage error or a worker that fails to load (error on stderr).\n";

/* Collects the response; the body streams to stdout as the worker writes it. */
typedef struct run_writer {
    http_writer w;
    bool include_head;
    bool head_only;
    bool ended;
    bool aborted;   /* the body failed half-way: cut off */
    int status;
} run_writer;

static int run_start(http_writer *w, int status, const http_headers *headers, int64_t content_length)
{
    run_writer *rw = (run_writer *)w;
    rw->status = status;
    if (rw->include_head) {
        printf("HTTP/1.1 %d %s\r\n", status, http_status_reason(status));
        for (size_t i = 0; i < headers->count; i++)
            printf("%s: %s\r\n", headers->items[i].name, headers->items[i].value);
        if (content_length >= 0 && !http_headers_get(headers, "content-length"))
            printf("content-length: %lld\r\n", (long long)content_length);
        printf("\r\n");
    }
    return 0;
}

static int run_write(http_writer *w, const void *data, size_t len)
{
    run_writer *rw = (run_writer *)w;
    if (rw->head_only)
        return 0;
    return fwrite(data, 1, len, stdout) == len ? 0 : -EPIPE;
}

static void run_end(http_writer *w)
{
    run_writer *rw = (run_writer *)w;
    fflush(stdout);
    rw->ended = true;
}

static void run_abort(http_writer *w)
{
    run_end(w);
    ((run_writer *)w)->aborted = true;
}

static int read_body(const char *arg, buf *body)
{
    if (arg[0] != '@')
        return buf_append_str(body, arg);
    FILE *f = strcmp(arg + 1, "-") == 0 ? stdin : fopen(arg + 1, "rb");
    if (!f) {
        fprintf(stderr, "atoll run: cannot read %s: %s\n", arg + 1, strerror(errno));
        return -errno;
    }
    char chunk[16384];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = buf_append(body, chunk, n);
    if (ferror(f))
        rc = -EIO;
    if (f != stdin)
        fclose(f);
    return rc;
}

/* Splits URL_OR_PATH into the Host header and the request-target. */
static int parse_target(const char *url, char **host, char **target)
{
    const char *rest = url;
    if (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0) {
        const char *authority = strstr(url, "://") + 3;
        size_t len = strcspn(authority, "/?#");
        if (len == 0)
            return -EINVAL;
        *host = xstrndup(authority, len);
        rest = authority + len;
    } else if (url[0] == '/') {
        *host = xstrdup("localhost");
    } else {
        return -EINVAL;
    }
    size_t len = strcspn(rest, "#"); /* a fragment is never sent */
    *target = len == 0 || rest[0] == '?' ? xasprintf("/%.*s", (int)len, rest) : xstrndup(rest, len);
    return 0;
}

int cli_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"request", required_argument, NULL, 'X'}, {"header", required_argument, NULL, 'H'},
        {"data", required_argument, NULL, 'd'},    {"include", no_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    http_request req;
    http_request_init(&req);
    const char *method = NULL;
    bool include = false, have_body = false;
    int status = 2, opt;
    char *host = NULL;
    uv_loop_t loop;
    bool loop_ready = false;
    iso *worker = NULL;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "X:H:d:ih", longopts, NULL)) != -1) {
        switch (opt) {
        case 'X':
            method = optarg;
            break;
        case 'H': {
            const char *colon = strchr(optarg, ':');
            if (!colon || colon == optarg) {
                fprintf(stderr, "atoll run: bad header '%s' (expected 'Name: value')\n", optarg);
                goto done;
            }
            http_headers_add(&req.headers, optarg, (size_t)(colon - optarg), colon + 1, strlen(colon + 1));
            break;
        }
        case 'd':
            have_body = true;
            if (read_body(optarg, &req.body) != 0)
                goto done;
            break;
        case 'i':
            include = true;
            break;
        case 'h':
            fputs(run_usage, stdout);
            status = 0;
            goto done;
        default:
            fputs(run_usage, stderr);
            goto done;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "atoll run: expected WORKER.js and URL_OR_PATH\n\n%s", run_usage);
        goto done;
    }
    const char *script = argv[optind], *url = argv[optind + 1];
    if (parse_target(url, &host, &req.target) != 0) {
        fprintf(stderr, "atoll run: '%s' is neither an http(s) URL nor a path starting with '/'\n", url);
        goto done;
    }
    req.method = xstrdup(method ? method : have_body ? "POST" : "GET");
    for (char *c = req.method; *c; c++)
        if (*c < 'A' || *c > 'Z') {
            fprintf(stderr, "atoll run: bad method '%s'\n", req.method);
            goto done;
        }
    if (!http_headers_get(&req.headers, "host"))
        http_headers_add_str(&req.headers, "Host", host);
    if (have_body && !http_headers_get(&req.headers, "content-length")) {
        char len[32];
        snprintf(len, sizeof len, "%zu", req.body.len);
        http_headers_add_str(&req.headers, "Content-Length", len);
    }

    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "atoll run: cannot create an event loop\n");
        goto done;
    }
    loop_ready = true;
    iso_options opts;
    iso_options_defaults(&opts);
    err e;
    err_clear(&e);
    if (iso_new(&loop, script, &opts, &worker, &e) != 0) {
        fprintf(stderr, "atoll run: %s\n", e.msg);
        goto done;
    }
    run_writer rw = {
        .w = {.start = run_start, .write = run_write, .end = run_end, .abort = run_abort},
        .include_head = include,
        .head_only = strcmp(req.method, "HEAD") == 0,
    };
    iso_dispatch(worker, &req, &rw.w);
    while (!rw.ended && uv_run(&loop, UV_RUN_ONCE))
        ;
    if (!rw.ended) {
        fprintf(stderr, "atoll run: the worker never answered\n");
        status = 1;
        goto done;
    }
    if (rw.aborted) {
        fprintf(stderr, "atoll run: the response body was cut off (see the error above)\n");
        status = 1;
        goto done;
    }
    status = rw.status >= 200 && rw.status < 400 ? 0 : 1;

done:
    if (worker)
        iso_free(worker);
    if (loop_ready) {
        uv_run(&loop, UV_RUN_NOWAIT); /* lets the isolate's handles close */
        if (uv_loop_close(&loop) != 0)
            log_debug("atoll run: loop still had handles at exit");
    }
    free(host);
    http_request_free(&req);
    return status;
}
