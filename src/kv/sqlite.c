/* The SQLite KV backend: one database file in the state directory, WAL mode
 * with synchronous=FULL, so that the event loop never waits on the disk:
 * - a writer thread with its own connection runs puts and deletes, all that
 *   is queued in one transaction (group commit: one fsync for many puts),
 *   and hands them back through a uv_async_t only after COMMIT returned, so
 *   an acknowledged put survives a crash;
 * - a reader thread with a second connection runs gets and lists, which WAL
 *   lets proceed during a write, so a get never waits behind an fsync.
 * A read sees every write whose callback has run (it is committed); a read
 * issued while a put is still pending may or may not see it. */
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "kv/kv_internal.h"

/* Ops per transaction: bounds how long one batch delays the next. */
#define BATCH_MAX 512
/* Expired rows deleted per sweep transaction. */
#define SWEEP_MAX 10000

/* Keys and namespaces are bound as BLOBs (compared with memcmp, so any
 * bytes are safe and order is byte order). A rowid table, not WITHOUT
 * ROWID, because values can be megabytes. */
static const char schema[] =
    "CREATE TABLE IF NOT EXISTS kv ("
    " ns BLOB NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,"
    " metadata TEXT, expiration INTEGER, PRIMARY KEY (ns, key));"
    "CREATE INDEX IF NOT EXISTS kv_expiration ON kv (expiration)"
    " WHERE expiration IS NOT NULL;";

enum { ST_GET, ST_PUT, ST_DELETE, ST_LIST, ST_SWEEP, ST_COUNT };
static const char *const sql[ST_COUNT] = {
    [ST_GET] = "SELECT value, metadata, expiration FROM kv WHERE ns = ?1 AND key = ?2"
               " AND (expiration IS NULL OR expiration > ?3)",
    [ST_PUT] = "INSERT INTO kv (ns, key, value, metadata, expiration) VALUES (?1, ?2, ?3, ?4, ?5)"
               " ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value,"
               " metadata = excluded.metadata, expiration = excluded.expiration",
    [ST_DELETE] = "DELETE FROM kv WHERE ns = ?1 AND key = ?2",
    [ST_LIST] = "SELECT key, metadata, expiration FROM kv WHERE ns = ?1 AND key >= ?2"
                " AND (?3 IS NULL OR key < ?3) AND (expiration IS NULL OR expiration > ?4)"
                " ORDER BY key LIMIT ?5",
    [ST_SWEEP] = "DELETE FROM kv WHERE rowid IN (SELECT rowid FROM kv"
                 " WHERE expiration <= ?1 LIMIT ?2)",
};

enum { WRITER, READER, LANES };

struct sq;

/* A thread with its own connection and queue. db and stmt belong to the
 * thread while it runs; todo and exited are under sq.mu. */
typedef struct lane {
    struct sq *q;
    bool writer;
    sqlite3 *db;
    sqlite3_stmt *stmt[ST_COUNT];
    uv_thread_t thread;
    bool started, exited;
    uv_cond_t cv;
    kv_op *todo, *todo_tail; /* loop -> thread */
} lane;

/* Owned by the store (s->impl). */
typedef struct sq {
    kv_store *s;
    lane lanes[LANES];
    uv_async_t async; /* threads -> loop: ops done, or a thread exited */
    uv_timer_t sweep; /* loop: asks the writer to sweep */
    int open_handles;
    size_t pending; /* ops submitted, not yet completed: keep the loop alive */
    uv_mutex_t mu;
    kv_op *done, *done_tail; /* threads -> loop */
    bool sweep_wanted, quit;
} sq;

static void append(kv_op **head, kv_op **tail, kv_op *list)
{
    if (!list)
        return;
    if (*tail)
        (*tail)->next = list;
    else
        *head = list;
    while (list->next)
        list = list->next;
    *tail = list;
}

static int db_fail(lane *l, kv_op *op)
{
    kv__fail(op, -EIO, "sqlite: %s", sqlite3_errmsg(l->db));
    return op->status;
}

/* Binds a byte string as a BLOB; SQLite reads a NULL pointer as SQL NULL,
 * so empty strings get a non-NULL one. */
static int bind_bytes(sqlite3_stmt *st, int i, const void *p, size_t n)
{
    return sqlite3_bind_blob64(st, i, p ? p : "", n, SQLITE_STATIC);
}

static int run_get(lane *l, kv_op *op)
{
    sqlite3_stmt *st = l->stmt[ST_GET];
    bind_bytes(st, 1, op->ns, op->ns_len);
    bind_bytes(st, 2, op->key, op->key_len);
    sqlite3_bind_int64(st, 3, kv__now());
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        const void *v = sqlite3_column_blob(st, 0);
        op->found = true;
        op->got.value = xstrndup(v ? v : "", n);
        op->got.len = n;
        if (sqlite3_column_type(st, 1) != SQLITE_NULL) {
            const unsigned char *m = sqlite3_column_text(st, 1);
            op->got.metadata_len = (size_t)sqlite3_column_bytes(st, 1);
            op->got.metadata = xstrndup((const char *)m, op->got.metadata_len);
        }
        op->got.expiration = sqlite3_column_int64(st, 2);
        rc = SQLITE_DONE;
    }
    if (rc != SQLITE_DONE)
        db_fail(l, op);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return 0; /* a failed read does not spoil the batch's writes */
}

static int run_put(lane *l, kv_op *op)
{
    sqlite3_stmt *st = l->stmt[ST_PUT];
    bind_bytes(st, 1, op->ns, op->ns_len);
    bind_bytes(st, 2, op->key, op->key_len);
    bind_bytes(st, 3, op->value, op->value_len);
    if (op->metadata)
        sqlite3_bind_text64(st, 4, op->metadata, op->metadata_len, SQLITE_STATIC, SQLITE_UTF8);
    if (op->expiration)
        sqlite3_bind_int64(st, 5, op->expiration);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(l, op);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int run_delete(lane *l, kv_op *op)
{
    sqlite3_stmt *st = l->stmt[ST_DELETE];
    bind_bytes(st, 1, op->ns, op->ns_len);
    bind_bytes(st, 2, op->key, op->key_len);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(l, op);
    sqlite3_reset(st);
    return rc;
}

static int run_list(lane *l, kv_op *op)
{
    sqlite3_stmt *st = l->stmt[ST_LIST];
    bind_bytes(st, 1, op->ns, op->ns_len);
    bind_bytes(st, 2, op->lo, op->lo_len);
    if (op->hi)
        bind_bytes(st, 3, op->hi, op->hi_len);
    sqlite3_bind_int64(st, 4, kv__now());
    sqlite3_bind_int64(st, 5, (sqlite3_int64)op->limit + 1); /* one more: is there a next page? */
    int rc;
    bool complete = true;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (op->list.count == op->limit) {
            complete = false;
            continue;
        }
        const void *m = sqlite3_column_type(st, 1) == SQLITE_NULL ? NULL : sqlite3_column_text(st, 1);
        kv__list_add(op, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0),
                     sqlite3_column_int64(st, 2), m, m ? (size_t)sqlite3_column_bytes(st, 1) : 0,
                     m != NULL);
    }
    if (rc == SQLITE_DONE)
        kv__list_finish(op, complete);
    else
        db_fail(l, op);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return 0;
}

static bool is_write(const kv_op *op)
{
    return op->type == KV_OP_PUT || op->type == KV_OP_DELETE;
}

/* Runs ops in one transaction. If a write fails, or COMMIT does, the whole
 * batch fails: no put is acknowledged unless it is committed. */
static void run_batch(lane *l, kv_op *batch)
{
    bool writes = false;
    for (kv_op *op = batch; op; op = op->next)
        writes |= is_write(op);
    const char *begin = writes ? "BEGIN IMMEDIATE" : "BEGIN";
    if (sqlite3_exec(l->db, begin, NULL, NULL, NULL) != SQLITE_OK) {
        for (kv_op *op = batch; op; op = op->next)
            db_fail(l, op);
        return;
    }
    kv_op *bad = NULL;
    for (kv_op *op = batch; op && !bad; op = op->next) {
        int rc = 0;
        switch (op->type) {
        case KV_OP_GET: rc = run_get(l, op); break;
        case KV_OP_PUT: rc = run_put(l, op); break;
        case KV_OP_DELETE: rc = run_delete(l, op); break;
        case KV_OP_LIST: rc = run_list(l, op); break;
        }
        if (rc)
            bad = op;
    }
    if (!bad && sqlite3_exec(l->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
        return;
    /* Nothing of the batch is committed: every op fails, reads included
     * (they may have seen the batch's own uncommitted writes). */
    char *why = xstrdup(sqlite3_errmsg(l->db));
    sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
    for (kv_op *op = batch; op; op = op->next)
        if (op != bad)
            kv__fail(op, -EIO, "sqlite: %s (transaction rolled back)", why);
    free(why);
}

static void run_sweep(lane *l)
{
    sqlite3_stmt *st = l->stmt[ST_SWEEP];
    sqlite3_bind_int64(st, 1, kv__now());
    sqlite3_bind_int64(st, 2, SWEEP_MAX);
    if (sqlite3_step(st) != SQLITE_DONE)
        log_warn("kv: sqlite sweep: %s", sqlite3_errmsg(l->db));
    sqlite3_reset(st);
}

static void worker(void *arg)
{
    lane *l = arg;
    sq *q = l->q;
    uv_mutex_lock(&q->mu);
    for (;;) {
        while (!l->todo && !(l->writer && q->sweep_wanted) && !q->quit)
            uv_cond_wait(&l->cv, &q->mu);
        if (!l->todo && q->quit)
            break;
        kv_op *batch = l->todo, *last = batch;
        for (int n = 1; last && last->next && n < BATCH_MAX; n++)
            last = last->next;
        if (last) {
            l->todo = last->next;
            if (!l->todo)
                l->todo_tail = NULL;
            last->next = NULL;
        }
        bool sweep = l->writer && q->sweep_wanted; /* between batches: load cannot starve it */
        if (sweep)
            q->sweep_wanted = false;
        uv_mutex_unlock(&q->mu);
        if (batch)
            run_batch(l, batch);
        if (sweep)
            run_sweep(l);
        uv_mutex_lock(&q->mu);
        append(&q->done, &q->done_tail, batch);
        uv_async_send(&q->async);
    }
    l->exited = true;
    uv_mutex_unlock(&q->mu);
    uv_async_send(&q->async);
}

static void release(sq *q)
{
    for (int i = 0; i < LANES; i++) {
        lane *l = &q->lanes[i];
        for (int j = 0; j < ST_COUNT; j++)
            sqlite3_finalize(l->stmt[j]);
        sqlite3_close(l->db);
        uv_cond_destroy(&l->cv);
    }
    uv_mutex_destroy(&q->mu);
}

static void handle_closed(uv_handle_t *h)
{
    sq *q = h->data;
    if (--q->open_handles > 0)
        return;
    kv_store *s = q->s;
    release(q);
    free(q);
    if (s) /* NULL: kv_open failed after the handles existed */
        kv__closed(s);
}

/* Stops the threads that run (after they drained their queues), then
 * closes the handles; the store is freed in handle_closed. */
static void shut_down(sq *q)
{
    uv_mutex_lock(&q->mu);
    q->quit = true;
    for (int i = 0; i < LANES; i++)
        uv_cond_signal(&q->lanes[i].cv);
    uv_mutex_unlock(&q->mu);
    for (int i = 0; i < LANES; i++)
        if (q->lanes[i].started)
            uv_thread_join(&q->lanes[i].thread);
    uv_close((uv_handle_t *)&q->async, handle_closed);
    uv_close((uv_handle_t *)&q->sweep, handle_closed);
}

static void on_async(uv_async_t *a)
{
    sq *q = a->data;
    uv_mutex_lock(&q->mu);
    kv_op *done = q->done;
    q->done = q->done_tail = NULL;
    uv_mutex_unlock(&q->mu);
    while (done) {
        kv_op *next = done->next;
        if (--q->pending == 0 && !q->s->closing)
            uv_unref((uv_handle_t *)&q->async);
        kv__complete(done); /* may call kv_close */
        done = next;
    }
    uv_mutex_lock(&q->mu);
    bool exited = q->lanes[WRITER].exited && q->lanes[READER].exited && !q->done;
    uv_mutex_unlock(&q->mu);
    if (exited && !uv_is_closing((uv_handle_t *)&q->async))
        shut_down(q); /* the threads have exited: joining does not wait */
}

static void on_sweep(uv_timer_t *t)
{
    sq *q = t->data;
    uv_mutex_lock(&q->mu);
    q->sweep_wanted = true;
    uv_cond_signal(&q->lanes[WRITER].cv);
    uv_mutex_unlock(&q->mu);
}

static int sq_submit(kv_store *s, kv_op *op, err *e)
{
    sq *q = s->impl;
    lane *l = &q->lanes[op->type == KV_OP_PUT || op->type == KV_OP_DELETE ? WRITER : READER];
    op->next = NULL;
    if (q->pending++ == 0)
        uv_ref((uv_handle_t *)&q->async);
    uv_mutex_lock(&q->mu);
    append(&l->todo, &l->todo_tail, op);
    uv_cond_signal(&l->cv);
    uv_mutex_unlock(&q->mu);
    return 0;
}

static void sq_close(kv_store *s)
{
    sq *q = s->impl;
    uv_timer_stop(&q->sweep);
    uv_ref((uv_handle_t *)&q->async); /* until the threads have exited */
    uv_mutex_lock(&q->mu);
    q->quit = true;
    for (int i = 0; i < LANES; i++)
        uv_cond_signal(&q->lanes[i].cv);
    uv_mutex_unlock(&q->mu);
    /* on_async finishes the close once both threads drained and exited. */
}

/* How long opening waits for another connection's lock. */
#define BUSY_TIMEOUT_MS 5000

/* sqlite3_exec that retries while the database is busy. SQLite does not
 * call the busy handler where waiting could deadlock — two connections that
 * both read and then want to write, as when several worker processes open a
 * new file together and each turns it into WAL mode and creates the schema —
 * so those statements are retried here, as long as the busy timeout. */
static int exec_when_free(sqlite3 *db, const char *statements, char **msg)
{
    for (int waited_ms = 0;; waited_ms += 5) {
        int rc = sqlite3_exec(db, statements, NULL, NULL, msg);
        if (((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED) ||
            waited_ms >= BUSY_TIMEOUT_MS)
            return rc;
        sqlite3_free(*msg);
        *msg = NULL;
        sqlite3_sleep(5);
    }
}

/* Opens one lane's connection. The writer comes first: it sets WAL mode
 * (persistent in the file) and creates the schema. */
static int open_lane(lane *l, const char *path, err *e)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    char *msg = NULL;
    if (sqlite3_open_v2(path, &l->db, flags, NULL) != SQLITE_OK)
        return err_set(e, -EIO, "open %s: %s", path,
                       l->db ? sqlite3_errmsg(l->db) : "out of memory");
    /* Several processes (the server's workers, `atoll kv`) share the file. */
    sqlite3_busy_timeout(l->db, BUSY_TIMEOUT_MS);
    const char *setup = l->writer ? "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                                  : "PRAGMA query_only = 1;";
    if (exec_when_free(l->db, setup, &msg) ||
        (l->writer && exec_when_free(l->db, schema, &msg))) {
        int rc = err_set(e, -EIO, "%s: %s", path, msg ? msg : sqlite3_errmsg(l->db));
        sqlite3_free(msg);
        return rc;
    }
    for (int i = 0; i < ST_COUNT; i++)
        if (sqlite3_prepare_v3(l->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &l->stmt[i], NULL))
            return err_set(e, -EIO, "%s: prepare: %s", path, sqlite3_errmsg(l->db));
    return 0;
}

static int sq_open(kv_store *s, const kv_config *cfg, err *e)
{
    if (!cfg->state_dir || !cfg->state_dir[0])
        return err_set(e, -EINVAL, "no state directory configured");
    sq *q = xcalloc(1, sizeof *q);
    char *path = xasprintf("%s/kv.sqlite3", cfg->state_dir);
    int rc;
    q->s = s;
    /* Primitives that cannot fail on Linux short of exhausted resources. */
    if (uv_mutex_init(&q->mu) || uv_cond_init(&q->lanes[WRITER].cv) ||
        uv_cond_init(&q->lanes[READER].cv))
        abort();
    for (int i = 0; i < LANES; i++) {
        q->lanes[i].q = q;
        q->lanes[i].writer = i == WRITER;
        if ((rc = open_lane(&q->lanes[i], path, e)))
            goto fail;
    }
    if ((rc = uv_async_init(s->loop, &q->async, on_async))) {
        err_set(e, rc, "async: %s", uv_strerror(rc));
        goto fail;
    }
    q->async.data = q;
    uv_unref((uv_handle_t *)&q->async); /* referenced while ops are pending */
    uv_timer_init(s->loop, &q->sweep);
    q->sweep.data = q;
    uv_unref((uv_handle_t *)&q->sweep); /* the sweep alone keeps no loop alive */
    q->open_handles = 2;
    for (int i = 0; i < LANES; i++) {
        if ((rc = uv_thread_create(&q->lanes[i].thread, worker, &q->lanes[i]))) {
            err_set(e, rc, "thread: %s", uv_strerror(rc));
            q->s = NULL; /* q is freed once the handles have closed */
            shut_down(q);
            free(path);
            return rc;
        }
        q->lanes[i].started = true;
    }
    s->impl = q;
    uv_timer_start(&q->sweep, on_sweep, s->sweep_interval_ms, s->sweep_interval_ms);
    free(path);
    return 0;
fail:
    release(q);
    free(path);
    free(q);
    return rc;
}

const kv_backend kv__sqlite_backend = {
    .name = "sqlite",
    .open = sq_open,
    .submit = sq_submit,
    .close = sq_close,
};
