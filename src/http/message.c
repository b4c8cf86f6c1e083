/* The request/response model shared by the server and the tiers (see message.h). */
#include "http/message.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"

void http_headers_init(http_headers *h)
{
    h->items = NULL;
    h->count = h->cap = 0;
}

void http_headers_add(http_headers *h, const char *name, size_t name_len, const char *value,
                      size_t value_len)
{
    if (h->count == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 8;
        h->items = xrealloc(h->items, h->cap * sizeof *h->items);
    }
    /* Optional whitespace around a field value is not part of it (RFC 9110 5.5). */
    while (value_len && (value[0] == ' ' || value[0] == '\t')) {
        value++;
        value_len--;
    }
    while (value_len && (value[value_len - 1] == ' ' || value[value_len - 1] == '\t'))
        value_len--;
    http_header *f = &h->items[h->count++];
    f->name = xstrndup(name, name_len);
    f->name_len = name_len;
    f->value = xstrndup(value, value_len);
    f->value_len = value_len;
}

void http_headers_add_str(http_headers *h, const char *name, const char *value)
{
    http_headers_add(h, name, strlen(name), value, strlen(value));
}

const char *http_headers_get(const http_headers *h, const char *name)
{
    for (size_t i = 0; i < h->count; i++)
        if (strcasecmp(h->items[i].name, name) == 0)
            return h->items[i].value;
    return NULL;
}

size_t http_headers_remove(http_headers *h, const char *name)
{
    size_t kept = 0, removed = 0;
    for (size_t i = 0; i < h->count; i++) {
        if (strcasecmp(h->items[i].name, name) == 0) {
            free(h->items[i].name);
            free(h->items[i].value);
            removed++;
        } else {
            h->items[kept++] = h->items[i];
        }
    }
    h->count = kept;
    return removed;
}

void http_headers_free(http_headers *h)
{
    for (size_t i = 0; i < h->count; i++) {
        free(h->items[i].name);
        free(h->items[i].value);
    }
    free(h->items);
    http_headers_init(h);
}

void http_request_init(http_request *r)
{
    memset(r, 0, sizeof *r);
    r->version_major = 1;
    r->version_minor = 1;
    http_headers_init(&r->headers);
    buf_init(&r->body, BUF_UNLIMITED);
}

void http_request_free(http_request *r)
{
    free(r->method);
    free(r->target);
    http_headers_free(&r->headers);
    buf_free(&r->body);
    r->method = r->target = NULL;
}

int http_writer_respond(http_writer *w, int status, const http_headers *headers, const void *body,
                        size_t len)
{
    int rc = w->start(w, status, headers, (int64_t)len);
    if (rc == 0 && len)
        rc = w->write(w, body, len);
    w->end(w);
    return rc;
}

void http_writer_abort(http_writer *w)
{
    if (w->abort)
        w->abort(w);
    else
        w->end(w);
}

size_t http_writer_pending(http_writer *w)
{
    return w->pending ? w->pending(w) : 0;
}

int http_writer_error(http_writer *w, int status, const char *message)
{
    http_headers h;
    http_headers_init(&h);
    http_headers_add_str(&h, "Content-Type", "text/html; charset=utf-8");
    char *page = xasprintf("<!doctype html><title>%d %s</title><h1>%d %s</h1><p>%s</p>\n", status,
                           http_status_reason(status), status, http_status_reason(status), message);
    int rc = http_writer_respond(w, status, &h, page, strlen(page));
    free(page);
    http_headers_free(&h);
    return rc;
}

const char *http_status_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    default: return "Unknown";
    }
}
