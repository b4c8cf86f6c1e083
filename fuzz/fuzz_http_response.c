/* libFuzzer target for the proxy's response path: arbitrary bytes play the
 * upstream server. They are written into one end of a socketpair whose other
 * end the proxy reads (http_proxy_forward_stream on a libuv loop), and the
 * response reaches a writer that checks the contract a tier must keep:
 * start at most once and before any body byte, never more body than the
 * announced Content-Length, end or abort exactly once, done once after it.
 *
 * Input layout: byte 0 picks the request method (GET or HEAD) and the
 * header limit; the rest is what the upstream sent, followed by its EOF.
 * Built with -DATOLL_FUZZ_REPLAY, the file has its own main() that replays
 * the files named on the command line, so a crash becomes a regression test. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "http/proxy.h"

typedef struct capture {
    http_writer w;
    int starts, ends, dones;
    int status;
    int64_t length;   /* as announced to start */
    uint64_t written;
    bool head;
} capture;

static int cap_start(http_writer *w, int status, const http_headers *h, int64_t len)
{
    capture *c = (capture *)w;
    if (c->starts++ || c->ends || status < 200 || status > 999)
        abort();
    c->status = status;
    c->length = len;
    for (size_t i = 0; h && i < h->count; i++)
        if (!h->items[i].name || !h->items[i].value)
            abort();
    return 0;
}

static int cap_write(http_writer *w, const void *data, size_t len)
{
    capture *c = (capture *)w;
    if (!c->starts || c->ends)
        abort();
    c->written += len;
    if (c->length >= 0 && c->written > (uint64_t)c->length)
        abort();
    if (c->head && c->status != 502 && c->status != 504 && c->written)
        abort(); /* a HEAD response relayed with a body */
    return 0;
}

static void cap_end(http_writer *w)
{
    capture *c = (capture *)w;
    if (c->ends++ || !c->starts)
        abort();
}

static void cap_abort(http_writer *w)
{
    capture *c = (capture *)w;
    if (c->ends++)
        abort();
}

static void on_closed(uv_handle_t *h)
{
}

static void on_done(void *data, int status)
{
    capture *c = data;
    if (c->dones++ || c->ends != 1)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t limits[4] = {32, 256, 4096, 32768};
    if (size < 1)
        return 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_pipe_t pipe;
    uv_pipe_init(&loop, &pipe, 0);
    if (uv_pipe_open(&pipe, sv[0]) != 0)
        abort();

    http_proxy_opts o;
    http_proxy_opts_defaults(&o);
    o.max_header_bytes = limits[data[0] & 3];
    http_request req;
    http_request_init(&req);
    req.method = strdup(data[0] & 4 ? "HEAD" : "GET");
    req.target = strdup("/");
    capture c = {.w = {.start = cap_start, .write = cap_write, .end = cap_end, .abort = cap_abort},
                 .head = data[0] & 4};
    http_proxy_req_opts ro = {.done = on_done, .data = &c};
    if (http_proxy_forward_stream((uv_stream_t *)&pipe, &o, &req, &c.w, &ro, NULL) != 0)
        abort();

    /* The upstream's bytes, then its EOF, written as the socket takes them. */
    const char *in = (const char *)data + 1;
    size_t len = size - 1, off = 0;
    bool eof = false;
    while (!c.dones) {
        if (off < len) {
            ssize_t n = send(sv[1], in + off, len - off, MSG_NOSIGNAL);
            if (n > 0)
                off += (size_t)n;
            else if (errno != EAGAIN)
                off = len; /* the proxy has gone */
        } else if (!eof) {
            shutdown(sv[1], SHUT_WR);
            eof = true;
        }
        uv_run(&loop, eof ? UV_RUN_ONCE : UV_RUN_NOWAIT);
    }
    uv_close((uv_handle_t *)&pipe, on_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        abort();
    close(sv[1]);
    http_request_free(&req);
    return 0;
}

#ifdef ATOLL_FUZZ_REPLAY
/* Replays saved inputs: fuzz_http_response_replay FILE... */
int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 1;
        }
        buf b;
        buf_init(&b, BUF_UNLIMITED);
        char tmp[4096];
        size_t n;
        while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
            buf_append(&b, tmp, n);
        fclose(f);
        LLVMFuzzerTestOneInput((const uint8_t *)(b.data ? b.data : ""), b.len);
        buf_free(&b);
        printf("ok %s\n", argv[i]);
    }
    return 0;
}
#endif
