/* Deploys across nodes through a Redis stream (see fleet.h): two hiredis
 * connections on the admin loop, one that blocks in XREAD for others'
 * changes (reconnected with a delay when it drops), one for XADD, so that
 * publishing never waits behind a blocked read. */
#include "server/fleet.h"

#include <errno.h>
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/file.h"
#include "core/log.h"

#define STREAM "atoll:deploys"
#define RETRY_MS 1000
#define BLOCK_MS "5000"
#define MAX_ID_BYTES 64

struct fleet {
    uv_loop_t *loop;
    char *host;
    int port, db;
    char *state_dir;
    char node[40];              /* this node's id */
    char last_id[MAX_ID_BYTES]; /* the last entry seen, "0-0" at first */
    fleet_apply_cb cb;
    void *data;
    redisAsyncContext *rd, *wr; /* NULL when not connected */
    uv_timer_t retry;           /* reconnects the reader */
    bool closing;
};

/* "redis://host[:port][/db]", as kv.redis. */
static int parse_url(fleet *f, const char *url, err *e)
{
    const char *p = url;
    if (strncmp(p, "redis://", 8) != 0)
        return err_set(e, -EINVAL, "deploy.redis %s: not a redis:// URL", url);
    p += 8;
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || strchr(p, '@'))
        return err_set(e, -EINVAL, "deploy.redis %s: expected redis://host[:port][/db]", url);
    f->host = xstrndup(p, hl);
    f->port = 6379;
    p += hl;
    char *end;
    if (*p == ':') {
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || v < 1 || v > 65535)
            return err_set(e, -EINVAL, "deploy.redis %s: bad port", url);
        f->port = (int)v;
        p = end;
    }
    if (*p == '/' && p[1]) {
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || *end || v < 0 || v > 100000)
            return err_set(e, -EINVAL, "deploy.redis %s: bad database number", url);
        f->db = (int)v;
    }
    return 0;
}

/* STATE/node-id, made on first use. */
static int load_node_id(fleet *f, err *e)
{
    char *path = xasprintf("%s/node-id", f->state_dir);
    buf b;
    buf_init(&b, 64);
    int rc = 0;
    if (file_read_all(path, 64, &b, e) == 0 && b.len >= 16 && b.len < sizeof f->node) {
        memcpy(f->node, b.data, b.len);
        f->node[b.len] = '\0';
    } else {
        unsigned char r[16];
        if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
            rc = err_set(e, -errno, "getrandom: %s", strerror(errno));
        } else {
            for (size_t i = 0; i < sizeof r; i++)
                snprintf(f->node + 2 * i, 3, "%02x", r[i]);
            rc = file_write_atomic(path, f->node, strlen(f->node), e);
        }
    }
    buf_free(&b);
    free(path);
    return rc;
}

static void load_last_id(fleet *f)
{
    char *path = xasprintf("%s/fleet-last-id", f->state_dir);
    buf b;
    buf_init(&b, MAX_ID_BYTES);
    err e;
    snprintf(f->last_id, sizeof f->last_id, "0-0");
    if (file_read_all(path, MAX_ID_BYTES - 1, &b, &e) == 0 && b.len > 0 && b.len < MAX_ID_BYTES &&
        strspn(b.data, "0123456789-") == b.len)
        snprintf(f->last_id, sizeof f->last_id, "%s", b.data);
    buf_free(&b);
    free(path);
}

static void save_last_id(fleet *f)
{
    char *path = xasprintf("%s/fleet-last-id", f->state_dir);
    err e;
    if (file_write_atomic(path, f->last_id, strlen(f->last_id), &e) != 0)
        log_warn("deploy.redis: %s", e.msg);
    free(path);
}

/* --- connections --- */

static void on_select(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR)
        log_warn("deploy.redis: SELECT: %s", r->str);
}

static void on_disconnect(const redisAsyncContext *ac, int status);
static void on_connect(const redisAsyncContext *ac, int status);

static redisAsyncContext *connect_to(fleet *f)
{
    redisAsyncContext *ac = redisAsyncConnect(f->host, f->port);
    if (!ac || ac->err) {
        log_warn("deploy.redis %s:%d: %s", f->host, f->port, ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        return NULL;
    }
    if (redisLibuvAttach(ac, f->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = f;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (f->db)
        redisAsyncCommand(ac, on_select, NULL, "SELECT %d", f->db);
    return ac;
}

static void start_read(fleet *f);

static void on_retry(uv_timer_t *t)
{
    fleet *f = t->data;
    if (!f->closing && !f->rd && (f->rd = connect_to(f)))
        start_read(f);
    if (!f->rd && !f->closing)
        uv_timer_start(&f->retry, on_retry, RETRY_MS, 0);
}

static void lost(fleet *f, const redisAsyncContext *ac)
{
    if (ac == f->rd) {
        f->rd = NULL;
        if (!f->closing)
            uv_timer_start(&f->retry, on_retry, RETRY_MS, 0);
    } else if (ac == f->wr) {
        f->wr = NULL; /* made anew by the next publish */
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    fleet *f = ac->data;
    if (status != REDIS_OK) {
        log_warn("deploy.redis %s:%d: connect: %s", f->host, f->port, ac->errstr);
        lost(f, ac); /* hiredis frees ac after this */
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    fleet *f = ac->data;
    if (status != REDIS_OK && !f->closing)
        log_warn("deploy.redis %s:%d: disconnected: %s", f->host, f->port, ac->errstr);
    lost(f, ac);
}

/* --- reading others' changes --- */

static const redisReply *field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING && strcmp(fields->element[i]->str, name) == 0 &&
            fields->element[i + 1]->type == REDIS_REPLY_STRING)
            return fields->element[i + 1];
    return NULL;
}

static void apply_entry(fleet *f, const redisReply *entry)
{
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 || entry->element[0]->type != REDIS_REPLY_STRING ||
        entry->element[1]->type != REDIS_REPLY_ARRAY)
        return;
    const redisReply *fields = entry->element[1];
    const redisReply *node = field(fields, "node"), *op = field(fields, "op"), *name = field(fields, "name");
    if (node && op && name && strcmp(node->str, f->node) != 0) {
        const redisReply *wasm = field(fields, "wasm"), *script = field(fields, "script"),
                         *settings = field(fields, "settings");
        fleet_change c = {.remove = strcmp(op->str, "delete") == 0, .name = name->str};
        if (!c.remove) {
            c.wasm = wasm && strcmp(wasm->str, "1") == 0;
            c.script = script ? script->str : "";
            c.script_len = script ? (size_t)script->len : 0;
            c.settings = settings ? settings->str : "{}";
            c.settings_len = settings ? (size_t)settings->len : 2;
        }
        log_info("deploy.redis: %s %s from node %s", c.remove ? "deletion of" : "deploy of", c.name, node->str);
        f->cb(f->data, &c);
    }
    if ((size_t)entry->element[0]->len < sizeof f->last_id) {
        memcpy(f->last_id, entry->element[0]->str, (size_t)entry->element[0]->len + 1);
        save_last_id(f);
    }
}

static void on_read(redisAsyncContext *ac, void *reply, void *privdata)
{
    fleet *f = ac->data;
    redisReply *r = reply;
    if (!r || f->closing)
        return; /* the disconnect callback reconnects */
    if (r->type == REDIS_REPLY_ERROR) {
        log_warn("deploy.redis: XREAD: %s", r->str);
    } else if (r->type == REDIS_REPLY_ARRAY) {
        /* [[stream, [[id, [field, value, ...]], ...]]] */
        for (size_t s = 0; s < r->elements; s++) {
            const redisReply *st = r->element[s];
            if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 || st->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            for (size_t i = 0; i < st->element[1]->elements; i++)
                apply_entry(f, st->element[1]->element[i]);
        }
    }
    if (f->rd == ac)
        start_read(f);
}

static void start_read(fleet *f)
{
    const char *argv[] = {"XREAD", "COUNT", "16", "BLOCK", BLOCK_MS, "STREAMS", STREAM, f->last_id};
    size_t lens[8];
    for (int i = 0; i < 8; i++)
        lens[i] = strlen(argv[i]);
    redisAsyncCommandArgv(f->rd, on_read, NULL, 8, argv, lens);
}

/* --- publishing --- */

static void on_published(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply *r = reply;
    char *name = privdata;
    if (!r)
        log_warn("deploy.redis: %s was not published: connection lost", name);
    else if (r->type == REDIS_REPLY_ERROR)
        log_warn("deploy.redis: %s was not published: %s", name, r->str);
    free(name);
}

void fleet_publish(fleet *f, const fleet_change *c)
{
    if (f->closing)
        return;
    if (!f->wr && !(f->wr = connect_to(f))) {
        log_warn("deploy.redis: %s was not published: cannot connect", c->name);
        return;
    }
    const char *argv[16] = {"XADD", STREAM, "*", "node", f->node, "op", c->remove ? "delete" : "put", "name", c->name};
    size_t lens[16];
    int argc = 9;
    if (!c->remove) {
        argv[argc++] = "wasm";
        argv[argc++] = c->wasm ? "1" : "0";
        argv[argc++] = "script";
        argv[argc++] = c->script;
        argv[argc++] = "settings";
        argv[argc++] = c->settings;
    }
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (!c->remove) {
        lens[12] = c->script_len;
        lens[14] = c->settings_len;
    }
    if (redisAsyncCommandArgv(f->wr, on_published, xstrdup(c->name), argc, argv, lens) != REDIS_OK)
        log_warn("deploy.redis: %s was not published", c->name);
}

/* --- lifetime --- */

int fleet_open(uv_loop_t *loop, const char *url, const char *state_dir, fleet_apply_cb cb, void *data, fleet **out,
               err *e)
{
    fleet *f = xcalloc(1, sizeof *f);
    f->loop = loop;
    f->cb = cb;
    f->data = data;
    f->state_dir = xstrdup(state_dir);
    int rc = parse_url(f, url, e);
    if (rc == 0)
        rc = load_node_id(f, e);
    if (rc) {
        free(f->host);
        free(f->state_dir);
        free(f);
        return rc;
    }
    load_last_id(f);
    uv_timer_init(loop, &f->retry);
    f->retry.data = f;
    on_retry(&f->retry);
    *out = f;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    fleet *f = h->data;
    free(f->host);
    free(f->state_dir);
    free(f);
}

void fleet_close(fleet *f)
{
    if (!f)
        return;
    f->closing = true;
    uv_timer_stop(&f->retry);
    /* Pending callbacks run now with no reply; the contexts are gone after. */
    if (f->rd)
        redisAsyncFree(f->rd);
    if (f->wr)
        redisAsyncFree(f->wr);
    f->rd = f->wr = NULL;
    uv_close((uv_handle_t *)&f->retry, on_timer_closed);
}
