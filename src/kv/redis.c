/* The Redis KV backend, for namespaces shared by several atoll nodes:
 * hiredis's async API on the caller's libuv loop (Debian's adapter), one
 * connection per store, reconnected with backoff when it drops.
 *
 * Layout, with P = "atoll:kv:" LEN ":" NS ":" (the namespace id length-
 * prefixed, so no two (namespace, key) pairs share a Redis key):
 *   P "v:" KEY   string: a header (version, expiration, metadata length),
 *                the metadata, then the value; native expiry (SET … EXAT)
 *   P "i"        sorted set of the namespace's keys, all scores 0, so
 *                ZRANGEBYLEX walks them in byte order for list
 *   atoll:kv:expiry  sorted set of LEN ":" NS ":" KEY by expiration, so a
 *                periodic sweep can drop index entries of expired keys
 * Writes are Lua scripts, so each is atomic. Every argument is passed with
 * its length (redisAsyncCommandArgv): keys with any bytes are safe. */
#include <errno.h>
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "kv/kv_internal.h"

#define ROOT "atoll:kv:"
#define EXPIRY_KEY ROOT "expiry"
#define HEADER_BYTES 13 /* version 1, expiration int64 BE, metadata length u32 BE */
#define NO_METADATA 0xffffffffu
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define SWEEP_MAX "1000"

static const char put_lua[] =
    "if ARGV[3] ~= '0' then\n"
    "  redis.call('SET', KEYS[1], ARGV[2], 'EXAT', ARGV[3])\n"
    "  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])\n"
    "else\n"
    "  redis.call('SET', KEYS[1], ARGV[2])\n"
    "  redis.call('ZREM', KEYS[3], ARGV[4])\n"
    "end\n"
    "redis.call('ZADD', KEYS[2], 0, ARGV[1])\n"
    "return 1\n";

static const char delete_lua[] =
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('ZREM', KEYS[2], ARGV[1])\n"
    "redis.call('ZREM', KEYS[3], ARGV[2])\n"
    "return 1\n";

/* Returns {complete, key1, head1, key2, head2, ...}: live keys from the
 * index with the head of their value (header + metadata). An index entry
 * whose value Redis has expired is dropped on the way. */
static const char list_lua[] =
    "local limit = tonumber(ARGV[4])\n"
    "local out = {0}\n"
    "local n = 0\n"
    "local min = ARGV[2]\n"
    "while true do\n"
    "  local batch = redis.call('ZRANGEBYLEX', KEYS[1], min, ARGV[3], 'LIMIT', 0, limit + 1)\n"
    "  for _, k in ipairs(batch) do\n"
    "    local h = redis.call('GETRANGE', ARGV[1] .. k, 0, ARGV[5])\n"
    "    if h == '' then\n"
    "      redis.call('ZREM', KEYS[1], k)\n"
    "    elseif n == limit then\n"
    "      return out\n"
    "    else\n"
    "      out[#out + 1] = k\n"
    "      out[#out + 1] = h\n"
    "      n = n + 1\n"
    "    end\n"
    "  end\n"
    "  if #batch <= limit then\n"
    "    out[1] = 1\n"
    "    return out\n"
    "  end\n"
    "  min = '(' .. batch[#batch]\n"
    "end\n";

static const char sweep_lua[] =
    "local now = tonumber(redis.call('TIME')[1])\n"
    "local ms = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))\n"
    "for _, m in ipairs(ms) do\n"
    "  local c = string.find(m, ':', 1, true)\n"
    "  local n = tonumber(string.sub(m, 1, c - 1))\n"
    "  local base = ARGV[2] .. string.sub(m, 1, c + n + 1)\n"
    "  local k = string.sub(m, c + n + 2)\n"
    "  if redis.call('EXISTS', base .. 'v:' .. k) == 0 then\n"
    "    redis.call('ZREM', base .. 'i', k)\n"
    "  end\n"
    "  redis.call('ZREM', KEYS[1], m)\n"
    "end\n"
    "return #ms\n";

/* Owned by the store (s->impl). */
typedef struct rd {
    kv_store *s;
    char *host;
    int port, db;
    redisAsyncContext *ac; /* NULL between a lost connection and the retry */
    bool connected, finished, timed_out;
    char last_error[128];
    unsigned backoff_ms;
    size_t pending;       /* commands awaiting a reply on behalf of callers */
    uv_async_t keepalive; /* never sent: referenced while ops are pending */
    uv_timer_t retry, sweep, watch;
    uint64_t last_progress, timeout_ns; /* monotonic ns */
    size_t last_io;                      /* io_mark() when last seen */
    int open_handles;
} rd;

static void rd_connect(rd *r);

static const char *verb(const kv_op *op)
{
    static const char *const names[] = {"GET", "PUT", "DELETE", "LIST"};
    return names[op->type];
}

static void hold(rd *r, int delta)
{
    if (r->pending == 0 || delta < 0) /* a reply, or the first op: progress */
        r->last_progress = clock_mono_ns();
    r->pending += delta;
    if (r->s->closing || r->pending)
        uv_ref((uv_handle_t *)&r->keepalive);
    else
        uv_unref((uv_handle_t *)&r->keepalive);
}

/* --- values: header + metadata + value */

static void put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Parses a value's head; -1 when it is not one of ours. */
static int parse_head(const char *p, size_t n, int64_t *expiration, const char **meta,
                      size_t *meta_len, size_t *head_len)
{
    const unsigned char *u = (const unsigned char *)p;
    if (n < HEADER_BYTES || u[0] != 1)
        return -1;
    *expiration = (int64_t)get_be(u + 1, 8);
    uint32_t m = (uint32_t)get_be(u + 9, 4);
    *meta = NULL;
    *meta_len = 0;
    *head_len = HEADER_BYTES;
    if (m != NO_METADATA) {
        if (m > KV_MAX_METADATA_BYTES || n - HEADER_BYTES < m)
            return -1;
        *meta = p + HEADER_BYTES;
        *meta_len = m;
        *head_len += m;
    }
    return 0;
}

/* --- Redis key names */

static void append_base(buf *b, const kv_op *op)
{
    buf_printf(b, ROOT "%zu:", op->ns_len);
    buf_append(b, op->ns, op->ns_len);
    buf_append(b, ":", 1);
}

static char *value_key(const kv_op *op, size_t *len)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    append_base(&b, op);
    buf_append(&b, "v:", 2);
    buf_append(&b, op->key, op->key_len);
    return buf_steal(&b, len);
}

static char *index_key(const kv_op *op, size_t *len)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    append_base(&b, op);
    buf_append(&b, "i", 1);
    return buf_steal(&b, len);
}

static char *expiry_member(const kv_op *op, size_t *len)
{
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    buf_printf(&b, "%zu:", op->ns_len);
    buf_append(&b, op->ns, op->ns_len);
    buf_append(&b, ":", 1);
    buf_append(&b, op->key, op->key_len);
    return buf_steal(&b, len);
}

/* --- replies */

static void reply_get(kv_op *op, redisReply *rep)
{
    if (rep->type == REDIS_REPLY_NIL)
        return;
    int64_t exp;
    const char *meta;
    size_t meta_len, head;
    if (rep->type != REDIS_REPLY_STRING ||
        parse_head(rep->str, (size_t)rep->len, &exp, &meta, &meta_len, &head)) {
        kv__fail(op, -EIO, "redis: unexpected value format");
        return;
    }
    if (exp && exp <= kv__now()) /* Redis expires at the same second; be exact */
        return;
    op->found = true;
    op->got.expiration = exp;
    if (meta) {
        op->got.metadata = xstrndup(meta, meta_len);
        op->got.metadata_len = meta_len;
    }
    op->got.len = (size_t)rep->len - head;
    op->got.value = xstrndup(rep->str + head, op->got.len);
}

static void reply_list(kv_op *op, redisReply *rep)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 || rep->elements % 2 != 1 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER) {
        kv__fail(op, -EIO, "redis: unexpected list reply");
        return;
    }
    /* No second expiry check here: the script saw what Redis had not yet
     * expired, and skipping keys would put the cursor before them. */
    for (size_t i = 1; i + 1 < rep->elements; i += 2) {
        redisReply *k = rep->element[i], *h = rep->element[i + 1];
        int64_t exp;
        const char *meta;
        size_t meta_len, head;
        if (k->type != REDIS_REPLY_STRING || h->type != REDIS_REPLY_STRING ||
            parse_head(h->str, (size_t)h->len, &exp, &meta, &meta_len, &head)) {
            kv__fail(op, -EIO, "redis: unexpected list entry");
            return;
        }
        kv__list_add(op, k->str, (size_t)k->len, exp, meta, meta_len, meta != NULL);
    }
    kv__list_finish(op, rep->element[0]->integer == 1);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    kv_op *op = privdata;
    rd *r = op->store->impl;
    redisReply *rep = reply;
    if (!rep)
        kv__fail(op, r->s->closing ? -ECANCELED : r->timed_out ? -ETIMEDOUT : -ECONNRESET,
                 "redis %s:%d: %s", r->host,
                 r->port, r->last_error[0] ? r->last_error : "connection lost");
    else if (rep->type == REDIS_REPLY_ERROR)
        kv__fail(op, -EIO, "redis: %s", rep->str);
    else if (op->type == KV_OP_GET)
        reply_get(op, rep);
    else if (op->type == KV_OP_LIST)
        reply_list(op, rep);
    hold(r, -1);
    kv__complete(op); /* may call kv_close */
}

/* --- operations */

static int rd_submit(kv_store *s, kv_op *op, err *e)
{
    rd *r = s->impl;
    if (!r->ac)
        return err_set(e, -ENOTCONN, "KV %s failed: 503 redis %s:%d: not connected (%s)",
                       verb(op), r->host, r->port, r->last_error[0] ? r->last_error : "reconnecting");
    const char *argv[10];
    size_t lens[10];
    int argc = 0;
    char *own[5] = {0}; /* what argv points to that we allocated */
    char expbuf[24], limbuf[24], headbuf[24];
#define ARG(p, n) (argv[argc] = (p), lens[argc] = (n), argc++)
#define ARGS(str) ARG(str, strlen(str))
    switch (op->type) {
    case KV_OP_GET:
        ARGS("GET");
        own[0] = value_key(op, &lens[argc]);
        argv[argc++] = own[0];
        break;
    case KV_OP_PUT: {
        size_t ml = op->metadata ? op->metadata_len : 0, n = HEADER_BYTES + ml + op->value_len;
        unsigned char *blob = xmalloc(n);
        blob[0] = 1;
        put_be(blob + 1, (uint64_t)op->expiration, 8);
        put_be(blob + 9, op->metadata ? (uint32_t)ml : NO_METADATA, 4);
        memcpy(blob + HEADER_BYTES, op->metadata ? op->metadata : "", ml);
        memcpy(blob + HEADER_BYTES + ml, op->value, op->value_len);
        /* The op's copy of the value is no longer needed: halve the peak. */
        free(op->value);
        op->value = NULL;
        snprintf(expbuf, sizeof expbuf, "%" PRId64, op->expiration);
        ARGS("EVAL");
        ARGS(put_lua);
        ARGS("3");
        own[0] = value_key(op, &lens[argc]);
        argv[argc++] = own[0];
        own[1] = index_key(op, &lens[argc]);
        argv[argc++] = own[1];
        ARGS(EXPIRY_KEY);
        ARG(op->key, op->key_len);
        own[2] = (char *)blob;
        ARG(own[2], n);
        ARGS(expbuf);
        own[3] = expiry_member(op, &lens[argc]);
        argv[argc++] = own[3];
        break;
    }
    case KV_OP_DELETE:
        ARGS("EVAL");
        ARGS(delete_lua);
        ARGS("3");
        own[0] = value_key(op, &lens[argc]);
        argv[argc++] = own[0];
        own[1] = index_key(op, &lens[argc]);
        argv[argc++] = own[1];
        ARGS(EXPIRY_KEY);
        ARG(op->key, op->key_len);
        own[2] = expiry_member(op, &lens[argc]);
        argv[argc++] = own[2];
        break;
    case KV_OP_LIST: {
        buf b;
        ARGS("EVAL");
        ARGS(list_lua);
        ARGS("1");
        own[0] = index_key(op, &lens[argc]);
        argv[argc++] = own[0];
        buf_init(&b, BUF_UNLIMITED);
        append_base(&b, op);
        buf_append(&b, "v:", 2);
        own[1] = buf_steal(&b, &lens[argc]);
        argv[argc++] = own[1];
        buf_init(&b, BUF_UNLIMITED);
        buf_append(&b, "[", 1);
        buf_append(&b, op->lo, op->lo_len);
        own[2] = buf_steal(&b, &lens[argc]);
        argv[argc++] = own[2];
        if (op->hi) {
            buf_init(&b, BUF_UNLIMITED);
            buf_append(&b, "(", 1);
            buf_append(&b, op->hi, op->hi_len);
            own[3] = buf_steal(&b, &lens[argc]);
            argv[argc++] = own[3];
        } else {
            ARGS("+");
        }
        snprintf(limbuf, sizeof limbuf, "%u", op->limit);
        ARGS(limbuf);
        snprintf(headbuf, sizeof headbuf, "%d", HEADER_BYTES + KV_MAX_METADATA_BYTES - 1);
        ARGS(headbuf);
        break;
    }
    }
#undef ARG
#undef ARGS
    int rc = redisAsyncCommandArgv(r->ac, on_reply, op, argc, argv, lens);
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        free(own[i]);
    if (rc != REDIS_OK)
        return err_set(e, -ENOTCONN, "KV %s failed: 503 redis %s:%d: connection closing",
                       verb(op), r->host, r->port);
    hold(r, +1);
    return 0;
}

/* --- connection */

static void handle_closed(uv_handle_t *h)
{
    rd *r = h->data;
    if (--r->open_handles > 0)
        return;
    kv_store *s = r->s;
    free(r->host);
    free(r);
    kv__closed(s);
}

static void finish_close(rd *r)
{
    if (r->finished)
        return;
    r->finished = true;
    uv_close((uv_handle_t *)&r->keepalive, handle_closed);
    uv_close((uv_handle_t *)&r->retry, handle_closed);
    uv_close((uv_handle_t *)&r->sweep, handle_closed);
    uv_close((uv_handle_t *)&r->watch, handle_closed);
}

static void on_retry(uv_timer_t *t)
{
    rd_connect(t->data);
}

static void schedule_retry(rd *r)
{
    uv_timer_start(&r->retry, on_retry, r->backoff_ms, 0);
    r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    rd *r = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees ac after this returns, failing its queued commands. */
        snprintf(r->last_error, sizeof r->last_error, "%s", ac->errstr);
        log_warn("kv: redis %s:%d: connect: %s", r->host, r->port, ac->errstr);
        r->ac = NULL;
        if (r->s->closing)
            finish_close(r);
        else
            schedule_retry(r);
        return;
    }
    r->connected = true;
    r->backoff_ms = BACKOFF_MIN_MS;
    r->last_error[0] = '\0';
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    rd *r = ac->data;
    r->ac = NULL;
    r->connected = false;
    if (r->s->closing) {
        finish_close(r);
        return;
    }
    if (!r->timed_out) {
        snprintf(r->last_error, sizeof r->last_error, "%s",
                 ac->err ? ac->errstr : "connection closed");
        log_warn("kv: redis %s:%d: disconnected: %s; reconnecting", r->host, r->port,
                 r->last_error);
    }
    schedule_retry(r);
}

static void on_admin_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply *rep = reply;
    if (rep && rep->type == REDIS_REPLY_ERROR)
        log_warn("kv: redis %s: %s", (const char *)privdata, rep->str);
}

static void rd_connect(rd *r)
{
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (!ac || ac->err) {
        snprintf(r->last_error, sizeof r->last_error, "%s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_retry(r);
        return;
    }
    if (redisLibuvAttach(ac, r->s->loop) != REDIS_OK) {
        snprintf(r->last_error, sizeof r->last_error, "cannot attach to the event loop");
        redisAsyncFree(ac);
        schedule_retry(r);
        return;
    }
    /* Only pending ops keep the loop alive (see hold()), not the socket. */
    uv_unref((uv_handle_t *)&((redisLibuvEvents *)ac->ev.data)->handle);
    ac->data = r;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
    /* Queued now, sent first once connected, before any op. */
    if (r->db)
        redisAsyncCommand(ac, on_admin_reply, "SELECT", "SELECT %d", r->db);
}

/* Changes whenever bytes move: the output buffer drains, the reader's
 * buffer fills. A 25 MiB value in transit is progress, not a hang. */
static size_t io_mark(const redisAsyncContext *ac)
{
    const redisContext *c = &ac->c;
    return sdslen(c->obuf) * 31 + (c->reader ? c->reader->len + c->reader->pos : 0);
}

/* A server that stops answering (stopped, partitioned, blackholed connect)
 * would otherwise hold every op forever. */
static void on_watch(uv_timer_t *t)
{
    rd *r = t->data;
    if (!r->ac || !r->pending)
        return;
    size_t mark = io_mark(r->ac);
    if (mark != r->last_io) {
        r->last_io = mark;
        r->last_progress = clock_mono_ns();
        return;
    }
    if (clock_mono_ns() - r->last_progress < r->timeout_ns)
        return;
    snprintf(r->last_error, sizeof r->last_error, "no reply within %llu ms",
             (unsigned long long)(r->timeout_ns / 1000000));
    log_warn("kv: redis %s:%d: %s; reconnecting", r->host, r->port, r->last_error);
    redisAsyncContext *ac = r->ac;
    bool was_connected = r->connected;
    if (!was_connected)
        r->ac = NULL; /* no disconnect callback comes for a connecting context */
    r->timed_out = true;
    redisAsyncFree(ac); /* fails pending ops; on_disconnect schedules the retry */
    r->timed_out = false;
    if (!was_connected && !r->s->closing)
        schedule_retry(r);
}

static void on_sweep(uv_timer_t *t)
{
    rd *r = t->data;
    if (!r->connected)
        return;
    const char *argv[] = {"EVAL", sweep_lua, "1", EXPIRY_KEY, SWEEP_MAX, ROOT};
    size_t lens[6];
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    redisAsyncCommandArgv(r->ac, on_admin_reply, "sweep", 6, argv, lens);
}

/* "redis://host[:port][/db]" */
static int parse_url(rd *r, const char *url, err *e)
{
    const char *p = url;
    if (strncmp(p, "redis://", 8) != 0)
        return err_set(e, -EINVAL, "%s: not a redis:// URL", url);
    p += 8;
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || strchr(p, '@'))
        return err_set(e, -EINVAL, "%s: expected redis://host[:port][/db] (no credentials)", url);
    r->host = xstrndup(p, hl);
    r->port = 6379;
    p += hl;
    char *end;
    if (*p == ':') {
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || v < 1 || v > 65535)
            return err_set(e, -EINVAL, "%s: bad port", url);
        r->port = (int)v;
        p = end;
    }
    if (*p == '/' && p[1]) {
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || *end || v < 0 || v > 100000)
            return err_set(e, -EINVAL, "%s: bad database number", url);
        r->db = (int)v;
    } else if (*p && strcmp(p, "/") != 0) {
        return err_set(e, -EINVAL, "%s: unexpected \"%s\"", url, p);
    }
    return 0;
}

static int rd_open(kv_store *s, const kv_config *cfg, err *e)
{
    rd *r = xcalloc(1, sizeof *r);
    r->s = s;
    r->backoff_ms = BACKOFF_MIN_MS;
    int rc = parse_url(r, cfg->redis_url, e);
    if (rc) {
        free(r->host);
        free(r);
        return rc;
    }
    if ((rc = uv_async_init(s->loop, &r->keepalive, NULL))) {
        free(r->host);
        free(r);
        return err_set(e, rc, "async: %s", uv_strerror(rc));
    }
    uv_timer_init(s->loop, &r->retry);
    uv_timer_init(s->loop, &r->sweep);
    uv_timer_init(s->loop, &r->watch);
    r->keepalive.data = r->retry.data = r->sweep.data = r->watch.data = r;
    r->open_handles = 4;
    r->timeout_ns = (uint64_t)(cfg->redis_timeout_ms ? cfg->redis_timeout_ms : 5000) * 1000000;
    uv_unref((uv_handle_t *)&r->watch);
    uv_unref((uv_handle_t *)&r->keepalive);
    uv_unref((uv_handle_t *)&r->retry);
    uv_unref((uv_handle_t *)&r->sweep);
    s->impl = r;
    uv_timer_start(&r->sweep, on_sweep, s->sweep_interval_ms, s->sweep_interval_ms);
    uint64_t tick = r->timeout_ns / 1000000 / 4 + 1;
    uv_timer_start(&r->watch, on_watch, tick, tick);
    rd_connect(r);
    return 0;
}

static void rd_close(kv_store *s)
{
    rd *r = s->impl;
    uv_timer_stop(&r->retry);
    uv_timer_stop(&r->sweep);
    uv_timer_stop(&r->watch);
    uv_ref((uv_handle_t *)&r->keepalive); /* until closed */
    redisAsyncContext *ac = r->ac;
    if (!ac) {
        finish_close(r);
    } else if (r->connected) {
        /* Waits for pending replies, then on_disconnect finishes. */
        redisAsyncDisconnect(ac);
    } else {
        /* Still connecting: queued commands fail with -ECANCELED. */
        r->ac = NULL;
        redisAsyncFree(ac);
        finish_close(r);
    }
}

const kv_backend kv__redis_backend = {
    .name = "redis",
    .open = rd_open,
    .submit = rd_submit,
    .close = rd_close,
};
