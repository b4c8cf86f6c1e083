/* Request parsing over llhttp (see parser.h). llhttp does the grammar; this
 * file assembles requests from its callbacks, enforces the size limits, and
 * decides which status each kind of bad input gets. The parser pauses llhttp
 * at every event so that the caller decides when to go on (pipelined
 * requests are handled one at a time). */
#include "http/parser.h"

#include <ctype.h>
#include <llhttp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/buf.h"

struct http_parser {
    llhttp_t ll;
    size_t max_header, max_body;
    http_request req;     /* being assembled; owned until taken */
    buf target;           /* request-target so far */
    buf field, value;     /* header field being assembled */
    bool field_done;      /* field name complete: a value (maybe empty) follows */
    size_t section_bytes; /* bytes since the previous request ended, until its header section ends */
    size_t cb_bytes;      /* target + header bytes seen by callbacks, for an early 431 */
    size_t ext_bytes;     /* chunk extensions of this request */
    size_t trailer_bytes; /* trailer section of this request */
    http_parse_phase phase;
    http_parse_event event; /* set by a callback that pauses llhttp */
    bool closed;          /* the last request ended the connection */
    bool keep_alive;      /* of the request being parsed (its struct may be taken early) */
    bool require_host;    /* http_parser_require_host */
    http_parser_sink sink; /* set: the body streams there (http_parser_stream_body) */
    void *sink_ctx;
    int status;           /* set on error */
    const char *reason;
};

static http_parser *from_ll(llhttp_t *ll)
{
    return (http_parser *)ll->data;
}

/* Fails the parse from inside a callback; llhttp then returns HPE_USER. */
static int fail(http_parser *p, int status, const char *reason)
{
    p->status = status;
    p->reason = reason;
    return HPE_USER;
}

/* Counts header-section bytes as callbacks see them, so a single huge feed
 * cannot assemble more than the limit before the section is measured. */
static int count_header_bytes(http_parser *p, size_t len)
{
    p->cb_bytes += len;
    if (p->cb_bytes > p->max_header)
        return fail(p, 431, "header section too large");
    return 0;
}

static int on_message_begin(llhttp_t *ll)
{
    http_parser *p = from_ll(ll);
    http_request_free(&p->req);
    http_request_init(&p->req);
    buf_init(&p->req.body, p->max_body);
    buf_reset(&p->target);
    buf_reset(&p->field);
    buf_reset(&p->value);
    p->field_done = false;
    p->cb_bytes = p->ext_bytes = p->trailer_bytes = 0;
    p->phase = HTTP_PHASE_HEADERS;
    p->sink = NULL;
    p->sink_ctx = NULL;
    return 0;
}

static int on_url(llhttp_t *ll, const char *at, size_t len)
{
    http_parser *p = from_ll(ll);
    int rc = count_header_bytes(p, len);
    if (rc)
        return rc;
    buf_append(&p->target, at, len); /* cannot fail: the buffer is unlimited and the count bounded */
    return 0;
}

/* A field name is a token (RFC 9110 5.1); llhttp in its loose mode lets
 * some other bytes through, such as a space inside the name. */
static bool is_token(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              (ch && strchr("!#$%&'*+-.^_`|~", ch))))
            return false;
    }
    return true;
}

/* Adds the header field assembled so far; trailer fields are dropped, so that
 * nothing sent after the body can pose as a header the handler trusts. */
static int commit_field(http_parser *p)
{
    if (!p->field_done)
        return 0;
    p->field_done = false;
    if (p->phase == HTTP_PHASE_HEADERS) {
        if (!is_token(p->field.data, p->field.len))
            return fail(p, 400, "invalid header field name");
        if (memchr(p->value.data ? p->value.data : "", '\0', p->value.len))
            return fail(p, 400, "NUL in header value");
        http_headers_add(&p->req.headers, p->field.data ? p->field.data : "", p->field.len,
                         p->value.data ? p->value.data : "", p->value.len);
    }
    buf_reset(&p->field);
    buf_reset(&p->value);
    return 0;
}

/* Header and trailer bytes: headers count towards max_header_bytes, and the
 * trailer section (after the body) gets a budget of the same size. */
static int count_field_bytes(http_parser *p, size_t len)
{
    if (p->phase == HTTP_PHASE_HEADERS)
        return count_header_bytes(p, len);
    /* 400, as for any other fault in the trailer section: llhttp reports
     * those at their position, while this count depends on how the bytes
     * were split, so one status keeps the outcome independent of it. */
    p->trailer_bytes += len;
    if (p->trailer_bytes > p->max_header)
        return fail(p, 400, "trailer section too large");
    return 0;
}

static int on_header_field(llhttp_t *ll, const char *at, size_t len)
{
    http_parser *p = from_ll(ll);
    int rc = commit_field(p);
    if (rc == 0)
        rc = count_field_bytes(p, len);
    if (rc)
        return rc;
    if (p->phase == HTTP_PHASE_HEADERS)
        buf_append(&p->field, at, len);
    return 0;
}

static int on_header_field_complete(llhttp_t *ll)
{
    from_ll(ll)->field_done = true;
    return 0;
}

static int on_header_value(llhttp_t *ll, const char *at, size_t len)
{
    http_parser *p = from_ll(ll);
    int rc = count_field_bytes(p, len);
    if (rc)
        return rc;
    if (p->phase == HTTP_PHASE_HEADERS)
        buf_append(&p->value, at, len);
    return 0;
}

static int on_header_value_complete(llhttp_t *ll)
{
    return commit_field(from_ll(ll));
}

/* Transfer-Encoding: only "chunked", once, as the last coding, is
 * understood; any other coding (gzip, chunked not last) gets 501. */
static int check_transfer_encoding(http_parser *p)
{
    int chunked = 0, others = 0;
    bool chunked_last = false;
    for (size_t i = 0; i < p->req.headers.count; i++) {
        const http_header *h = &p->req.headers.items[i];
        if (strcasecmp(h->name, "Transfer-Encoding") != 0)
            continue;
        const char *s = h->value;
        while (*s) {
            size_t n = strcspn(s, ",");
            size_t b = 0, e = n;
            while (b < e && (s[b] == ' ' || s[b] == '\t'))
                b++;
            while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t'))
                e--;
            if (e > b) {
                bool is_chunked = e - b == 7 && strncasecmp(s + b, "chunked", 7) == 0;
                chunked += is_chunked;
                others += !is_chunked;
                chunked_last = is_chunked;
            }
            s += n;
            if (*s == ',')
                s++;
        }
    }
    if (others || (chunked && !chunked_last))
        return fail(p, 501, "unsupported Transfer-Encoding");
    if (chunked > 1)
        return fail(p, 400, "chunked applied twice");
    return 0;
}

/* A Host value as RFC 3986's authority without userinfo: reg-name or IP
 * literal characters and a port. Anything else ('/', '?', '@', blanks …)
 * would make the URL the worker sees differ from what was routed. */
static bool valid_host(const char *s)
{
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || strchr("-._~!$&'()*+,;=%:[]", *s)))
            return false;
    return true;
}

/* RFC 9112 3.2: a request in absolute-form ("GET http://host/p") is taken
 * for its origin-form, with Host replaced by the target's authority; a
 * request may carry one Host at most, and its value must be a valid
 * authority. 0, or a fail(). */
static int check_host(http_parser *p)
{
    http_request *r = &p->req;
    const char *t = r->target;
    size_t scheme = !strncasecmp(t, "http://", 7) ? 7 : !strncasecmp(t, "https://", 8) ? 8 : 0;
    if (scheme) {
        const char *auth = t + scheme;
        size_t n = strcspn(auth, "/?#");
        if (n == 0)
            return fail(p, 400, "absolute-form target without a host");
        char *host = xstrndup(auth, n);
        char *path = auth[n] == '/' ? xstrdup(auth + n) : xasprintf("/%s", auth + n);
        http_headers_remove(&r->headers, "Host");
        http_headers_add_str(&r->headers, "Host", host);
        free(host);
        free(r->target);
        r->target = path;
    }
    size_t count = 0;
    const char *value = NULL;
    for (size_t i = 0; i < r->headers.count; i++)
        if (strcasecmp(r->headers.items[i].name, "Host") == 0) {
            count++;
            value = r->headers.items[i].value;
        }
    /* RFC 9112 3.2: an HTTP/1.1 request without Host is a 400 (HTTP/1.0
     * clients may omit it: they are routed as host ""). */
    if (p->require_host && count == 0 && r->version_major == 1 && r->version_minor >= 1)
        return fail(p, 400, "HTTP/1.1 request without a Host header");
    if (count > 1)
        return fail(p, 400, "more than one Host header");
    if (value && !valid_host(value))
        return fail(p, 400, "invalid Host header");
    return 0;
}

static int on_headers_complete(llhttp_t *ll)
{
    http_parser *p = from_ll(ll);
    int rc = commit_field(p);
    if (rc)
        return rc;
    http_request *r = &p->req;
    r->method = xstrdup(llhttp_method_name((llhttp_method_t)ll->method));
    r->target = buf_steal(&p->target, NULL);
    r->version_major = ll->http_major;
    r->version_minor = ll->http_minor;
    if (ll->http_major != 1 || ll->http_minor > 1)
        return fail(p, 505, "HTTP version not supported");
    rc = check_transfer_encoding(p);
    if (rc)
        return rc;
    rc = check_host(p);
    if (rc)
        return rc;
    bool chunked = ll->flags & F_CHUNKED;
    /* A Transfer-Encoding that llhttp did not read as a final chunked (say,
     * one folded over two lines) would make it read the body until EOF;
     * framing that two readers may see differently is refused. */
    if ((ll->flags & F_TRANSFER_ENCODING) && !chunked)
        return fail(p, 400, "ambiguous Transfer-Encoding");
    if (!chunked && ll->content_length > p->max_body)
        return fail(p, 413, "Content-Length over the body limit");
    /* An Upgrade or CONNECT hands the connection to another protocol, which
     * atoll does not speak: answer the request, then close. */
    r->keep_alive = llhttp_should_keep_alive(ll) && !ll->upgrade;
    p->keep_alive = r->keep_alive;
    p->phase = HTTP_PHASE_BODY;
    if (!chunked && ll->content_length == 0)
        return 0; /* no body: go straight on to the request event */
    p->event = HTTP_PARSE_HEADERS;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *ll, const char *at, size_t len)
{
    http_parser *p = from_ll(ll);
    if (p->sink) {
        if (len == 0)
            return 0; /* llhttp reports an empty span when a feed starts inside the body */
        int rc = p->sink(p->sink_ctx, at, len);
        if (rc == HTTP_SINK_TOO_LARGE)
            return fail(p, 413, "body over the limit");
        if (rc == HTTP_SINK_PAUSE) {
            /* llhttp stops after this span and resumes after it. */
            p->event = HTTP_PARSE_PAUSED;
            return HPE_PAUSED;
        }
        return 0;
    }
    if (buf_append(&p->req.body, at, len) != 0)
        return fail(p, 413, "body over the limit");
    return 0;
}

/* Extensions are parsed by llhttp and ignored here; they are only counted, so
 * that a chunk header cannot be endless. */
static int on_chunk_extension(llhttp_t *ll, const char *at, size_t len)
{
    http_parser *p = from_ll(ll);
    p->ext_bytes += len;
    if (p->ext_bytes > p->max_header)
        return fail(p, 400, "chunk extensions too long");
    return 0;
}

static int on_message_complete(llhttp_t *ll)
{
    http_parser *p = from_ll(ll);
    p->phase = HTTP_PHASE_IDLE;
    p->event = HTTP_PARSE_REQUEST;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_chunk_extension_name = on_chunk_extension,
    .on_chunk_extension_value = on_chunk_extension,
    .on_message_complete = on_message_complete,
};

http_parser *http_parser_new(size_t max_header_bytes, size_t max_body_bytes)
{
    http_parser *p = xcalloc(1, sizeof *p);
    llhttp_init(&p->ll, HTTP_REQUEST, &settings);
    p->ll.data = p;
    /* llhttp would answer "chunked, gzip" with a parse error (400); letting it
     * through means check_transfer_encoding() refuses every coding other than
     * a final chunked, with 501 as RFC 9112 6.1 asks. */
    llhttp_set_lenient_transfer_encoding(&p->ll, 1);
    p->max_header = max_header_bytes;
    p->max_body = max_body_bytes;
    http_request_init(&p->req);
    buf_init(&p->target, BUF_UNLIMITED);
    buf_init(&p->field, BUF_UNLIMITED);
    buf_init(&p->value, BUF_UNLIMITED);
    p->phase = HTTP_PHASE_IDLE;
    return p;
}

void http_parser_require_host(http_parser *p, bool on)
{
    p->require_host = on;
}

void http_parser_free(http_parser *p)
{
    if (!p)
        return;
    http_request_free(&p->req);
    buf_free(&p->target);
    buf_free(&p->field);
    buf_free(&p->value);
    free(p);
}

/* The status for an error that llhttp found itself. */
static int status_for(llhttp_errno_t e)
{
    switch (e) {
    case HPE_INVALID_VERSION: return 505;
    default: return 400;
    }
}

http_parse_event http_parser_feed(http_parser *p, const char *data, size_t len, size_t *used)
{
    *used = 0;
    if (p->status)
        return HTTP_PARSE_ERROR;
    if (p->closed) {
        *used = len;
        return HTTP_PARSE_MORE;
    }
    if (!data)
        data = "";
    bool in_section = p->phase != HTTP_PHASE_BODY;
    p->event = HTTP_PARSE_MORE;
    llhttp_errno_t e = llhttp_execute(&p->ll, data, len);
    size_t n = len;
    if (e != HPE_OK)
        n = (size_t)(llhttp_get_error_pos(&p->ll) - data);
    *used = n;
    /* Every byte from the end of the previous request to the end of this
     * header section counts, whatever the pieces it arrived in, so the limit
     * does not depend on how the client split its writes. */
    if (in_section) {
        p->section_bytes += n;
        if (p->section_bytes > p->max_header) {
            p->status = 431;
            p->reason = "header section too large";
            return HTTP_PARSE_ERROR;
        }
    }
    switch (e) {
    case HPE_OK:
        return HTTP_PARSE_MORE;
    case HPE_PAUSED:
        llhttp_resume(&p->ll);
        if (p->event == HTTP_PARSE_HEADERS) {
            p->section_bytes = 0;
        } else if (p->event == HTTP_PARSE_REQUEST) {
            p->section_bytes = 0;
            p->closed = !p->keep_alive;
        }
        return p->event;
    default:
        if (p->status) /* failed by a callback, whatever code llhttp gives it */
            return HTTP_PARSE_ERROR;
        p->status = status_for(e);
        p->reason = llhttp_get_error_reason(&p->ll);
        if (!p->reason)
            p->reason = llhttp_errno_name(e);
        return HTTP_PARSE_ERROR;
    }
}

http_request *http_parser_request(http_parser *p)
{
    return &p->req;
}

void http_parser_stream_body(http_parser *p, http_request *out, http_parser_sink sink, void *ctx)
{
    p->sink = sink;
    p->sink_ctx = ctx;
    http_parser_take(p, out);
}

void http_parser_take(http_parser *p, http_request *out)
{
    *out = p->req;
    http_request_init(&p->req);
}

http_parse_phase http_parser_phase(const http_parser *p)
{
    return p->phase;
}

int http_parser_status(const http_parser *p)
{
    return p->status;
}

const char *http_parser_reason(const http_parser *p)
{
    return p->reason ? p->reason : "";
}
