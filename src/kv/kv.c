/* The KV dispatcher: picks a backend from the config, validates every call
 * against Workers KV's limits (with Workers KV's own error texts), copies
 * the caller's input into a kv_op for the backend, and calls back when the
 * backend hands the op back. */
#include "kv/kv_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/clock.h"

const char *kv_strerror(int code)
{
    switch (code) {
#define KV_ERRNO_TEXT(name, value, status, text) \
    case value:                                  \
        return text;
        KV_ERRNO_MAP(KV_ERRNO_TEXT)
#undef KV_ERRNO_TEXT
    }
    return strerror(-code);
}

int kv_error_status(int code)
{
    switch (code) {
#define KV_ERRNO_STATUS(name, value, status, text) \
    case value:                                    \
        return status;
        KV_ERRNO_MAP(KV_ERRNO_STATUS)
#undef KV_ERRNO_STATUS
    case -ECONNREFUSED:
    case -ECONNRESET:
    case -ENOTCONN:
    case -ECANCELED:
    case -ETIMEDOUT:
        return 503;
    }
    return 500;
}

static const char *op_verb(kv_op_type t)
{
    switch (t) {
    case KV_OP_GET: return "GET";
    case KV_OP_PUT: return "PUT";
    case KV_OP_DELETE: return "DELETE";
    default: return "LIST";
    }
}

/* "KV PUT failed: 413 <text>", the shape of Workers KV's exceptions. */
static int vfail(err *e, kv_op_type t, int code, const char *fmt, va_list ap)
{
    char text[sizeof e->msg];
    vsnprintf(text, sizeof text, fmt, ap);
    return err_set(e, code, "KV %s failed: %d %s", op_verb(t), kv_error_status(code), text);
}

static int fail(err *e, kv_op_type t, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(err *e, kv_op_type t, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(e, t, code, fmt, ap);
    va_end(ap);
    return code;
}

void kv__fail(kv_op *op, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    op->status = vfail(&op->e, op->type, code, fmt, ap);
    va_end(ap);
}

int64_t kv__now(void)
{
    return (int64_t)(clock_wall_ms() / 1000.0);
}

/* --- cursors: base64url of the last key returned, so any bytes survive. */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *cursor_encode(const unsigned char *p, size_t n)
{
    char *out = xmalloc(n / 3 * 4 + 5), *o = out;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = b64[v >> 18];
        *o++ = b64[(v >> 12) & 63];
        *o++ = b64[(v >> 6) & 63];
        *o++ = b64[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = b64[v >> 18];
        *o++ = b64[(v >> 12) & 63];
        if (i + 1 < n)
            *o++ = b64[(v >> 6) & 63];
    }
    *o = '\0';
    return out;
}

/* Decodes into out (room for KV_MAX_KEY_BYTES); -1 when not a cursor. */
static int cursor_decode(const char *s, unsigned char *out, size_t *out_len)
{
    size_t n = strlen(s), len = 0;
    if (n == 0 || n % 4 == 1 || n > (KV_MAX_KEY_BYTES + 2) / 3 * 4)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        const char *c = memchr(b64, s[i], 64);
        if (!c || !s[i])
            return -1;
        acc = acc << 6 | (uint32_t)(c - b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (len == KV_MAX_KEY_BYTES)
                return -1;
            out[len++] = (unsigned char)(acc >> bits);
        }
    }
    if (acc & ((1u << bits) - 1)) /* non-canonical trailing bits */
        return -1;
    *out_len = len;
    return len ? 0 : -1;
}

/* --- results */

void kv__list_add(kv_op *op, const void *name, size_t name_len, int64_t expiration,
                  const void *metadata, size_t metadata_len, bool has_metadata)
{
    kv_list_result *r = &op->list;
    if (r->count == op->list_cap) {
        op->list_cap = op->list_cap ? op->list_cap * 2 : 16;
        r->keys = xrealloc(r->keys, op->list_cap * sizeof *r->keys);
    }
    kv_key *k = &r->keys[r->count++];
    k->name = xstrndup(name, name_len);
    k->name_len = name_len;
    k->expiration = expiration;
    k->metadata = has_metadata ? xstrndup(metadata, metadata_len) : NULL;
    k->metadata_len = has_metadata ? metadata_len : 0;
}

void kv__list_finish(kv_op *op, bool complete)
{
    kv_list_result *r = &op->list;
    r->list_complete = complete || r->count == 0;
    if (!r->list_complete) {
        kv_key *last = &r->keys[r->count - 1];
        r->cursor = cursor_encode((const unsigned char *)last->name, last->name_len);
    }
}

static void op_free(kv_op *op)
{
    free(op->ns);
    free(op->key);
    free(op->value);
    free(op->metadata);
    free(op->lo);
    free(op->hi);
    free(op->got.value);
    free(op->got.metadata);
    for (size_t i = 0; i < op->list.count; i++) {
        free(op->list.keys[i].name);
        free(op->list.keys[i].metadata);
    }
    free(op->list.keys);
    free(op->list.cursor);
    free(op);
}

void kv__complete(kv_op *op)
{
    const err *e = op->status ? &op->e : NULL;
    switch (op->type) {
    case KV_OP_GET:
        op->cb.get(op->data, op->status, !op->status && op->found ? &op->got : NULL, e);
        break;
    case KV_OP_LIST:
        op->cb.list(op->data, op->status, op->status ? NULL : &op->list, e);
        break;
    default:
        op->cb.done(op->data, op->status, e);
        break;
    }
    op_free(op);
}

/* --- validation */

static int check_ns(const char *ns, kv_op_type t, err *e)
{
    size_t n = ns ? strlen(ns) : 0;
    if (n == 0 || n > KV_MAX_NAMESPACE_BYTES)
        return fail(e, t, KV_ENAMESPACE_INVALID,
                    "Namespace id must be 1 to %d bytes long.", KV_MAX_NAMESPACE_BYTES);
    return 0;
}

static int check_key(const void *key, size_t len, kv_op_type t, err *e)
{
    if (len == 0)
        return fail(e, t, KV_EKEY_EMPTY, "Key names must not be empty");
    if ((len == 1 && memcmp(key, ".", 1) == 0) || (len == 2 && memcmp(key, "..", 2) == 0))
        return fail(e, t, KV_EKEY_ILLEGAL, "Illegal key name \"%.*s\". Please use a different name.",
                    (int)len, (const char *)key);
    if (len > KV_MAX_KEY_BYTES)
        return fail(e, t, KV_EKEY_TOO_LONG,
                    "UTF-8 encoded length of %zu exceeds key length limit of %d.", len,
                    KV_MAX_KEY_BYTES);
    return 0;
}

static int check_store(kv_store *s, kv_op_type t, err *e)
{
    if (s->closing)
        return fail(e, t, -ECANCELED, "store is closing");
    return 0;
}

static kv_op *op_new(kv_store *s, kv_op_type t, const char *ns, const void *key, size_t key_len,
                     void *data)
{
    kv_op *op = xcalloc(1, sizeof *op);
    op->type = t;
    op->store = s;
    op->ns_len = strlen(ns);
    op->ns = xstrndup(ns, op->ns_len);
    op->key = xstrndup(key ? key : "", key_len);
    op->key_len = key_len;
    op->data = data;
    return op;
}

static int submit(kv_store *s, kv_op *op, err *e)
{
    int rc = s->be->submit(s, op, e);
    if (rc)
        op_free(op);
    return rc;
}

/* --- public operations */

int kv_get(kv_store *s, const char *ns, const void *key, size_t key_len, kv_get_cb cb, void *data,
           err *e)
{
    int rc;
    if ((rc = check_store(s, KV_OP_GET, e)) || (rc = check_ns(ns, KV_OP_GET, e)) ||
        (rc = check_key(key, key_len, KV_OP_GET, e)))
        return rc;
    kv_op *op = op_new(s, KV_OP_GET, ns, key, key_len, data);
    op->cb.get = cb;
    return submit(s, op, e);
}

int kv_put(kv_store *s, const char *ns, const void *key, size_t key_len, const void *value,
           size_t value_len, const kv_put_opts *o, kv_done_cb cb, void *data, err *e)
{
    static const kv_put_opts none;
    const kv_put_opts *opts = o ? o : &none;
    const kv_op_type t = KV_OP_PUT;
    int64_t min = s->min_ttl, now = kv__now(), expiration = 0;
    int rc;
    if ((rc = check_store(s, t, e)) || (rc = check_ns(ns, t, e)) ||
        (rc = check_key(key, key_len, t, e)))
        return rc;
    if (opts->has_ttl) {
        if (opts->expiration_ttl <= 0)
            return fail(e, t, KV_ETTL_INVALID,
                        "Invalid expiration_ttl of %lld. Please specify integer greater than 0.",
                        (long long)opts->expiration_ttl);
        if (opts->expiration_ttl < min)
            return fail(e, t, KV_ETTL_TOO_SHORT,
                        "Invalid expiration_ttl of %lld. Expiration TTL must be at least %lld.",
                        (long long)opts->expiration_ttl, (long long)min);
        if (opts->expiration_ttl > INT64_MAX / 2000 - now) /* keeps *1000 math exact */
            return fail(e, t, KV_ETTL_INVALID, "Invalid expiration_ttl of %lld.",
                        (long long)opts->expiration_ttl);
        expiration = now + opts->expiration_ttl;
    } else if (opts->has_expiration) {
        if (opts->expiration <= now)
            return fail(e, t, KV_EEXPIRATION_PAST,
                        "Invalid expiration of %lld. Please specify integer greater than the "
                        "current number of seconds since the UNIX epoch.",
                        (long long)opts->expiration);
        if (opts->expiration < now + min)
            return fail(e, t, KV_EEXPIRATION_TOO_SOON,
                        "Invalid expiration of %lld. Expiration times must be at least %lld "
                        "seconds in the future.",
                        (long long)opts->expiration, (long long)min);
        if (opts->expiration > INT64_MAX / 2000)
            return fail(e, t, KV_EEXPIRATION_PAST, "Invalid expiration of %lld.",
                        (long long)opts->expiration);
        expiration = opts->expiration;
    }
    if (opts->metadata && opts->metadata_len > KV_MAX_METADATA_BYTES)
        return fail(e, t, KV_EMETADATA_TOO_LARGE, "Metadata length of %zu exceeds limit of %d.",
                    opts->metadata_len, KV_MAX_METADATA_BYTES);
    if (value_len > KV_MAX_VALUE_BYTES)
        return fail(e, t, KV_EVALUE_TOO_LARGE, "Value length of %zu exceeds limit of %u.",
                    value_len, KV_MAX_VALUE_BYTES);
    kv_op *op = op_new(s, t, ns, key, key_len, data);
    op->cb.done = cb;
    op->value = xstrndup(value ? value : "", value_len);
    op->value_len = value_len;
    if (opts->metadata) {
        op->metadata = xstrndup(opts->metadata, opts->metadata_len);
        op->metadata_len = opts->metadata_len;
    }
    op->expiration = expiration;
    return submit(s, op, e);
}

int kv_delete(kv_store *s, const char *ns, const void *key, size_t key_len, kv_done_cb cb,
              void *data, err *e)
{
    int rc;
    if ((rc = check_store(s, KV_OP_DELETE, e)) || (rc = check_ns(ns, KV_OP_DELETE, e)) ||
        (rc = check_key(key, key_len, KV_OP_DELETE, e)))
        return rc;
    kv_op *op = op_new(s, KV_OP_DELETE, ns, key, key_len, data);
    op->cb.done = cb;
    return submit(s, op, e);
}

/* The smallest byte string greater than every string starting with p, or
 * NULL (no upper bound) when p is empty or all 0xff. */
static char *successor(const char *p, size_t n, size_t *out_len)
{
    while (n > 0 && (unsigned char)p[n - 1] == 0xff)
        n--;
    if (n == 0)
        return NULL;
    char *s = xstrndup(p, n);
    s[n - 1] = (char)((unsigned char)s[n - 1] + 1);
    *out_len = n;
    return s;
}

int kv_list(kv_store *s, const char *ns, const kv_list_opts *o, kv_list_cb cb, void *data, err *e)
{
    static const kv_list_opts none;
    const kv_list_opts *opts = o ? o : &none;
    const kv_op_type t = KV_OP_LIST;
    unsigned char after[KV_MAX_KEY_BYTES];
    size_t after_len = 0;
    int rc;
    if ((rc = check_store(s, t, e)) || (rc = check_ns(ns, t, e)))
        return rc;
    if (opts->has_limit && opts->limit < 1)
        return fail(e, t, KV_ELIMIT_TOO_SMALL,
                    "Invalid key_count_limit of %lld. Please specify an integer greater than 0.",
                    (long long)opts->limit);
    if (opts->has_limit && opts->limit > KV_MAX_LIST_LIMIT)
        return fail(e, t, KV_ELIMIT_TOO_LARGE,
                    "Invalid key_count_limit of %lld. Please specify an integer less than %d.",
                    (long long)opts->limit, KV_MAX_LIST_LIMIT);
    size_t plen = opts->prefix ? opts->prefix_len : 0;
    if (plen > KV_MAX_KEY_BYTES)
        return fail(e, t, KV_EPREFIX_TOO_LONG,
                    "UTF-8 encoded length of %zu exceeds key length limit of %d.", plen,
                    KV_MAX_KEY_BYTES);
    if (opts->cursor && opts->cursor[0] && cursor_decode(opts->cursor, after, &after_len))
        return fail(e, t, KV_ECURSOR_INVALID, "Invalid cursor \"%.64s\".", opts->cursor);

    kv_op *op = op_new(s, t, ns, opts->prefix, plen, data);
    op->cb.list = cb;
    op->limit = opts->has_limit ? (unsigned)opts->limit : KV_MAX_LIST_LIMIT;
    /* Start at the prefix, or just after the cursor's key when that is
     * further: key + "\0" is the smallest string greater than key. */
    int cmp = memcmp(after, op->key, after_len < plen ? after_len : plen);
    if (after_len && (cmp > 0 || (cmp == 0 && after_len >= plen))) {
        op->lo = xmalloc(after_len + 1);
        memcpy(op->lo, after, after_len);
        op->lo[after_len] = '\0';
        op->lo_len = after_len + 1;
    } else {
        op->lo = xstrndup(op->key, plen);
        op->lo_len = plen;
    }
    op->hi = successor(op->key, plen, &op->hi_len);
    return submit(s, op, e);
}

/* --- the store */

int kv_open(uv_loop_t *loop, const kv_config *cfg, kv_store **out, err *e)
{
    kv_store *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    s->min_ttl = cfg->min_ttl ? cfg->min_ttl : KV_MIN_TTL_SECONDS;
    s->sweep_interval_ms = cfg->sweep_interval_ms ? cfg->sweep_interval_ms : 60000;
    s->be = cfg->redis_url ? &kv__redis_backend : &kv__sqlite_backend;
    int rc = s->be->open(s, cfg, e);
    if (rc) {
        err_prefix(e, "open KV store (%s)", s->be->name);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void kv_close(kv_store *s, kv_close_cb cb, void *data)
{
    if (s->closing)
        return;
    s->closing = true;
    s->close_cb = cb;
    s->close_data = data;
    s->be->close(s);
}

void kv__closed(kv_store *s)
{
    kv_close_cb cb = s->close_cb;
    void *data = s->close_data;
    free(s);
    if (cb)
        cb(data);
}

const char *kv_backend_name(const kv_store *s)
{
    return s->be->name;
}
