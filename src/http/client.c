/* This file implements the outbound HTTP client (see client.h): the
 * standard curl + libuv integration (CURLMOPT_SOCKETFUNCTION watches
 * curl's sockets with uv_poll handles, CURLMOPT_TIMERFUNCTION drives one
 * uv_timer), one easy handle per transfer, response headers parsed from
 * curl's header callback, and the egress check in the open-socket
 * callback, where the address curl resolved is finally known. */
#include "http/client.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "core/alloc.h"

/* As many simultaneous connections per client as Workers allows; more
 * transfers wait in curl's queue. */
#define MAX_CONNECTIONS 6

struct http_client {
    uv_timer_t timer;          /* first: its close callback frees the client */
    uv_loop_t *loop;
    CURLM *multi;
    http_transfer *transfers;  /* live, most recent first */
    struct sock_ctx *socks;    /* watched sockets */
    bool closing;              /* inside curl_multi_cleanup */
    bool flushing, flush_again; /* inside stream_flush; asked to scan again */
    size_t buffered, max_buffered; /* response body bytes held by all transfers */
};

typedef struct sock_ctx {
    uv_poll_t poll;            /* first: its close callback frees the struct */
    struct sock_ctx *next, *prev;
    http_client *c;
    curl_socket_t fd;
} sock_ctx;

struct http_transfer {
    struct http_transfer *next, *prev;
    http_client *c;
    CURL *easy;
    struct curl_slist *headers, *resolve;
    const char *const *allow;
    egress_kind kind;
    http_response res;
    bool too_big;
    char refused[160];         /* why the egress check refused an address */
    char errbuf[CURL_ERROR_SIZE];
    http_transfer_cb cb;
    void *opaque;
    /* Streaming. curl's callbacks only record (the head, body bytes in
     * `pending`); stream_flush hands them on after curl returns to us, so
     * the owner's callbacks never run inside curl (they may start, cancel
     * or resume transfers, which curl forbids from its callbacks). */
    http_transfer_head_cb on_head; /* streaming when set */
    http_transfer_data_cb on_data;
    buf pending;                   /* body bytes received, not yet handed on */
    bool head_ready, head_sent;    /* the final head has arrived; on_head has been called */
    bool discard;                  /* on_head asked for the body to be dropped */
    bool held;                     /* on_data refused `pending`: wait for a resume */
    bool paused;                   /* curl is paused (CURL_WRITEFUNC_PAUSE) */
    bool in_cb;                    /* inside on_head/on_data */
    bool cancelled;                /* cancelled inside them: freed after they return */
    bool finished;                 /* curl is done; cb waits until `pending` is handed on */
    http_transfer_read_cb upload_read; /* a streaming upload when set */
    http_transfer_want_cb upload_want;
    bool upload_paused, upload_wanted; /* upload_read had nothing; upload_want was called */
    int done_rc;
    char *done_error;
};

/* Body bytes a streaming transfer holds before it pauses curl. */
#define STREAM_PENDING_MAX (64 * 1024)

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static void global_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* --- sockets and the timer --- */

static void sock_closed(uv_handle_t *h) { free(h); }

static void sock_forget(sock_ctx *s)
{
    http_client *c = s->c;
    if (s->prev)
        s->prev->next = s->next;
    else
        c->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, sock_closed);
}

static void check_done(http_client *c);

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_ctx *s = (sock_ctx *)h;
    http_client *c = s->c;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    check_done(c); /* and hands streaming transfers' bytes on */
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    http_client *c = userp;
    sock_ctx *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            if (!c->closing)
                curl_multi_assign(c->multi, fd, NULL);
            sock_forget(s);
        }
        return 0;
    }
    if (!s) {
        s = xcalloc(1, sizeof *s);
        if (uv_poll_init_socket(c->loop, &s->poll, fd) < 0) {
            free(s);
            return -1;
        }
        s->c = c;
        s->fd = fd;
        s->next = c->socks;
        if (s->next)
            s->next->prev = s;
        c->socks = s;
        curl_multi_assign(c->multi, fd, s);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, on_poll);
    return 0;
}

static void on_timeout(uv_timer_t *t)
{
    http_client *c = (http_client *)t;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    http_client *c = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else /* 0 too goes through the loop: curl must not be re-entered from here */
        uv_timer_start(&c->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

http_client *http_client_new(uv_loop_t *loop, size_t max_buffered)
{
    pthread_once(&global_once, global_init);
    http_client *c = xcalloc(1, sizeof *c);
    c->loop = loop;
    c->max_buffered = max_buffered;
    c->multi = curl_multi_init();
    if (!c->multi)
        abort();
    uv_timer_init(loop, &c->timer);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)MAX_CONNECTIONS);
    return c;
}

/* --- transfers --- */

static void transfer_free(http_transfer *t)
{
    http_client *c = t->c;
    if (t->prev)
        t->prev->next = t->next;
    else
        c->transfers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    c->buffered -= t->res.body.len;
    curl_multi_remove_handle(c->multi, t->easy);
    curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->headers);
    curl_slist_free_all(t->resolve);
    free(t->res.status_text);
    http_headers_free(&t->res.headers);
    buf_free(&t->res.body);
    buf_free(&t->pending);
    free(t->done_error);
    free(t);
}

static void finish(http_transfer *t, int rc, const char *error);

/* Hands the streaming transfers' heads and pending bytes to their owners,
 * outside curl's callbacks; a transfer curl is done with is finished once
 * its bytes are taken. Scans again from the start after every callback,
 * since a callback may start, cancel or resume transfers. */
static void stream_flush(http_client *c)
{
    if (c->flushing) {
        c->flush_again = true;
        return;
    }
    c->flushing = true;
    for (bool again = true; again;) {
        again = false;
        for (http_transfer *t = c->transfers; t; t = t->next) {
            if (t->cancelled)
                continue;
            if (t->upload_read && t->upload_paused && !t->upload_wanted && !t->finished) {
                t->upload_wanted = true;
                t->in_cb = true;
                t->upload_want(t->opaque);
                t->in_cb = false;
                if (t->cancelled)
                    transfer_free(t);
                again = true;
                break;
            }
            if (!t->on_head)
                continue;
            if (t->head_ready && !t->head_sent) {
                t->head_sent = true;
                if (!t->res.status_text)
                    t->res.status_text = xstrdup("");
                t->in_cb = true;
                t->discard = t->on_head(t->opaque, &t->res) != 0;
                t->in_cb = false;
            } else if (t->head_sent && !t->discard && !t->held && t->pending.len) {
                buf chunk = t->pending; /* a resume inside on_data may add more */
                buf_init(&t->pending, BUF_UNLIMITED);
                t->in_cb = true;
                int rc = t->on_data(t->opaque, chunk.data, chunk.len);
                t->in_cb = false;
                if (rc != 0 && !t->cancelled) {
                    t->held = true;
                    buf_append(&chunk, t->pending.data, t->pending.len);
                    buf_free(&t->pending);
                    t->pending = chunk;
                } else {
                    buf_free(&chunk);
                }
            } else if (t->finished && (t->discard || !t->pending.len)) {
                finish(t, t->done_rc, t->done_error); /* frees t */
                again = true;
                break;
            } else {
                continue;
            }
            if (t->cancelled && !t->in_cb)
                transfer_free(t);
            again = true;
            break;
        }
        if (c->flush_again) {
            c->flush_again = false;
            again = true;
        }
    }
    c->flushing = false;
}

static int errno_of(CURLcode code)
{
    switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST: return -ENOENT;
    case CURLE_COULDNT_CONNECT: return -ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
    default: return -EIO;
    }
}

static void check_done(http_client *c)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        http_transfer *t = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        if (t->cancelled || t->finished)
            continue; /* freed by whoever cancelled it / waiting in stream_flush */
        CURLcode code = m->data.result;
        int rc = 0;
        const char *error = NULL;
        if (t->refused[0]) {
            rc = -EACCES;
            error = t->refused;
        } else if (t->too_big) {
            rc = -E2BIG;
            error = "the response bodies being buffered exceed the limit";
        } else if (code != CURLE_OK) {
            rc = errno_of(code);
            error = t->errbuf[0] ? t->errbuf : curl_easy_strerror(code);
        }
        if (t->on_head && !t->finished) {
            /* A streaming transfer ends after its bytes are handed on. */
            t->finished = true;
            t->done_rc = rc;
            t->done_error = error ? xstrdup(error) : NULL;
            continue;
        }
        finish(t, rc, error);
    }
    stream_flush(c);
}

/* Calls the transfer's callback and frees it. The callback may start or
 * cancel transfers: curl_multi_info_read copes with handles removed since. */
static void finish(http_transfer *t, int rc, const char *error)
{
    if (!t->res.status_text)
        t->res.status_text = xstrdup("");
    t->in_cb = true;
    if (t->cb)
        t->cb(t->opaque, rc, error, rc ? NULL : &t->res);
    transfer_free(t);
}

/* curl decodes what it asked for (CURLOPT_ACCEPT_ENCODING): the body the
 * worker sees is no longer in that encoding, nor of that length, so the
 * fields that said so go — a worker passing the response on would
 * otherwise label plain bytes gzip. Called at the end of the final head. */
static void drop_decoded_framing(http_transfer *t)
{
    const char *enc = http_headers_get(&t->res.headers, "content-encoding");
    if (!enc)
        return;
    static const char *const decoded[] = {"gzip", "x-gzip", "deflate", "br", "zstd", "identity"};
    /* "gzip, br": every coding listed must be one curl undid. */
    const char *p = enc;
    while (*p) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, " \t,");
        if (n == 0)
            break;
        bool known = false;
        for (size_t k = 0; k < sizeof decoded / sizeof decoded[0] && !known; k++)
            known = strlen(decoded[k]) == n && strncasecmp(p, decoded[k], n) == 0;
        if (!known)
            return;
        p += n;
    }
    http_headers_remove(&t->res.headers, "content-encoding");
    http_headers_remove(&t->res.headers, "content-length");
}

/* Status lines start a new header block (1xx responses come first). */
static size_t on_header(char *data, size_t size, size_t n, void *userp)
{
    http_transfer *t = userp;
    size_t len = size * n;
    size_t end = len;
    while (end && (data[end - 1] == '\r' || data[end - 1] == '\n'))
        end--;
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        http_headers_free(&t->res.headers);
        http_headers_init(&t->res.headers);
        free(t->res.status_text);
        long status = 0;
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
        t->res.status = (int)status;
        /* "HTTP/1.1 200 OK": the reason is what follows the second space. */
        const char *sp = memchr(data, ' ', end);
        const char *sp2 = sp ? memchr(sp + 1, ' ', end - (size_t)(sp + 1 - data)) : NULL;
        t->res.status_text = sp2 ? xstrndup(sp2 + 1, end - (size_t)(sp2 + 1 - data)) : xstrdup("");
        return len;
    }
    const char *colon = memchr(data, ':', end);
    if (end == 0 && t->res.status >= 200) { /* the blank line ending the final head */
        drop_decoded_framing(t);
        if (t->on_head)
            t->head_ready = true;
        return len;
    }
    if (!colon || colon == data)
        return len; /* the blank line ending the block, or an obsolete folded line */
    size_t name_len = (size_t)(colon - data);
    const char *v = colon + 1;
    size_t vlen = end - name_len - 1;
    while (vlen && (*v == ' ' || *v == '\t'))
        v++, vlen--;
    while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        vlen--;
    http_headers_add(&t->res.headers, data, name_len, v, vlen);
    return len;
}

/* Buffered, or, when the transfer streams, kept in `pending` for
 * stream_flush; while the owner holds back (or 64 KiB wait) the transfer
 * pauses with CURL_WRITEFUNC_PAUSE, and curl delivers the same bytes again
 * once it is resumed. */
static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
    http_transfer *t = userp;
    size_t len = size * n;
    if (t->on_data) {
        if (t->discard)
            return len;
        if (t->held || t->pending.len >= STREAM_PENDING_MAX) {
            t->paused = true;
            return CURL_WRITEFUNC_PAUSE;
        }
        buf_append(&t->pending, data, len);
        return len;
    }
    if (len > t->c->max_buffered - t->c->buffered) {
        t->too_big = true;
        return 0;
    }
    buf_append(&t->res.body, data, len);
    t->c->buffered += len;
    return len;
}

/* A streaming upload's bytes, from the owner's buffer. */
static size_t on_upload(char *dst, size_t size, size_t n, void *userp)
{
    http_transfer *t = userp;
    size_t got = 0;
    if (t->upload_read(t->opaque, dst, size * n, &got) != 0) {
        t->upload_paused = true;
        return CURL_READFUNC_PAUSE;
    }
    return got;
}

/* The egress check on the address curl is about to connect to. */
static curl_socket_t on_open_socket(void *userp, curlsocktype purpose, struct curl_sockaddr *a)
{
    http_transfer *t = userp;
    const char *why;
    if (!egress_check_addr(t->allow, t->kind, &a->addr, &why)) {
        char ip[64];
        egress_addr_str(&a->addr, ip, sizeof ip);
        snprintf(t->refused, sizeof t->refused, "the host resolved to %s, %s", ip, why);
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static bool is_framing(const char *name)
{
    static const char *const names[] = { "host", "content-length", "transfer-encoding", "connection",
                                         "keep-alive", "upgrade", "expect", "te", "trailer" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i]) == 0)
            return true;
    return false;
}

static struct curl_slist *header_list(const http_headers *h, bool has_body)
{
    struct curl_slist *l = NULL;
    bool has_type = false, has_accept = false;
    for (size_t i = 0; h && i < h->count; i++) {
        const http_header *f = &h->items[i];
        if (is_framing(f->name))
            continue;
        has_type |= strcasecmp(f->name, "content-type") == 0;
        has_accept |= strcasecmp(f->name, "accept") == 0;
        /* "Name;" is how curl sends a header with an empty value. */
        char *line = f->value_len ? xasprintf("%s: %s", f->name, f->value) : xasprintf("%s;", f->name);
        l = curl_slist_append(l, line);
        free(line);
    }
    /* curl's own defaults that fetch() does not send. */
    l = curl_slist_append(l, "Expect:");
    if (has_body && !has_type)
        l = curl_slist_append(l, "Content-Type:");
    if (!has_accept)
        l = curl_slist_append(l, "Accept: */*");
    return l;
}

/* curl must connect to the host that the policy checked. */
static bool same_host(const char *url, const char *host)
{
    CURLU *u = curl_url();
    char *h = NULL;
    bool ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK && strcasecmp(h, host) == 0;
    curl_free(h);
    curl_url_cleanup(u);
    return ok;
}

int http_transfer_start(http_client *c, const http_transfer_opts *o, http_transfer_cb cb, void *opaque,
                        http_transfer **out, const char **error)
{
    if (!same_host(o->url, o->host)) {
        *error = "the URL's host is ambiguous";
        return -EINVAL;
    }
    http_transfer *t = xcalloc(1, sizeof *t);
    t->c = c;
    t->cb = cb;
    t->opaque = opaque;
    t->allow = o->allow;
    t->kind = o->kind;
    if (o->on_head && o->on_data) {
        t->on_head = o->on_head;
        t->on_data = o->on_data;
    }
    http_headers_init(&t->res.headers);
    buf_init(&t->res.body, BUF_UNLIMITED);
    buf_init(&t->pending, BUF_UNLIMITED);
    t->easy = curl_easy_init();
    if (!t->easy)
        abort();
    CURL *e = t->easy;
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_URL, o->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROXY, ""); /* never a proxy from the environment */
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t);
    curl_easy_setopt(e, CURLOPT_USERAGENT, NULL);
    /* As Workers' fetch: compressed responses are asked for and arrive
     * decoded (a worker's own Accept-Encoding replaces the one sent). */
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip, deflate, br");
    /* Cancelling during DNS must not wait for the resolver thread (that
     * would block the loop for as long as the lookup takes). */
    curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
    for (const char *const *p = o->resolve; p && *p; p++)
        t->resolve = curl_slist_append(t->resolve, *p);
    if (t->resolve)
        curl_easy_setopt(e, CURLOPT_RESOLVE, t->resolve);

    if (o->upload_read && o->upload_want) {
        t->upload_read = o->upload_read;
        t->upload_want = o->upload_want;
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, o->method);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_upload);
        curl_easy_setopt(e, CURLOPT_READDATA, t);
    } else if (strcmp(o->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(o->method, "GET") != 0 || o->has_body) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, o->method);
        if (o->has_body) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, o->body_len ? (const char *)o->body : "");
        }
    }
    t->headers = header_list(o->headers, o->has_body);
    if (t->upload_read) /* a body of unknown length */
        t->headers = curl_slist_append(t->headers, "Transfer-Encoding: chunked");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);

    t->next = c->transfers;
    if (t->next)
        t->next->prev = t;
    c->transfers = t;
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        *error = "cannot start the transfer";
        t->cb = NULL;
        transfer_free(t);
        return -EIO;
    }
    *out = t;
    return 0;
}

void http_transfer_cancel(http_transfer *t)
{
    if (t && t->in_cb) {
        /* Inside its own on_head/on_data: freed when that returns. */
        t->cancelled = true;
        t->cb = NULL;
        return;
    }
    if (t)
        transfer_free(t);
}

void http_transfer_resume(http_transfer *t)
{
    if (!t || t->cancelled || t->finished)
        return;
    bool cont = false;
    if (t->upload_paused) {
        t->upload_paused = t->upload_wanted = false;
        cont = true;
    }
    if (t->on_data) {
        t->held = false;
        if (t->paused) {
            t->paused = false;
            cont = true;
        }
    }
    /* Both directions: a side with nothing to do pauses itself again. curl
     * may deliver paused bytes right here (into pending). */
    if (cont)
        curl_easy_pause(t->easy, CURLPAUSE_CONT);
    if (t->on_data)
        stream_flush(t->c);
}

static void client_closed(uv_handle_t *h) { free(h); }

void http_client_free(http_client *c)
{
    if (!c)
        return;
    while (c->transfers)
        transfer_free(c->transfers);
    /* Closing the cached connections reports their sockets as removed. */
    c->closing = true;
    curl_multi_cleanup(c->multi);
    while (c->socks)
        sock_forget(c->socks);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, client_closed);
}
