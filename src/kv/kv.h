/* The KV store behind Workers KV bindings: namespaces of binary keys holding
 * a value, optional metadata JSON text and an optional expiration, with the
 * limits Workers KV documents. Every operation is asynchronous on the
 * caller's libuv loop and never blocks it: SQLite work runs on two threads
 * of the store's own (a writer, a reader), Redis is spoken through hiredis's
 * async API on the loop.
 *
 * Ordering: an operation sees every write whose callback has run. Ops still
 * pending together complete in no promised order (Redis happens to keep
 * submission order; SQLite does not between reads and writes).
 *
 * Rules, as libuv's:
 * - A function that fails synchronously returns a negative code, fills `e`,
 *   and never calls its callback. Otherwise the callback runs exactly once,
 *   on the loop thread, from the loop (never from inside the call).
 * - Codes are negative errno values (backend trouble: -EIO, -ECONNREFUSED,
 *   -ENOTCONN, -ECANCELED …) or the KV_E* codes below (invalid input).
 *   kv_error_status() maps a code to the HTTP status Workers KV reports and
 *   the err message is the full text Workers KV throws, e.g.
 *   "KV PUT failed: 413 Value length of 26214401 exceeds limit of 26214400.",
 *   so a JS binding can `throw new Error(e->msg)` as is.
 *
 * Ownership: the caller owns every buffer it passes in (the store copies what
 * it keeps); the store owns every result it hands to a callback, valid only
 * during that callback — except that a get callback may take `v->value`
 * (malloc'd) by setting it to NULL, and then free() it itself. */
#ifndef ATOLL_KV_KV_H
#define ATOLL_KV_KV_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/err.h"

/* Workers KV's documented limits. */
#define KV_MAX_KEY_BYTES 512
#define KV_MAX_VALUE_BYTES (25u * 1024 * 1024)
#define KV_MAX_METADATA_BYTES 1024
#define KV_MIN_TTL_SECONDS 60
#define KV_MAX_LIST_LIMIT 1000
/* Ours: namespace ids come from the config, any bytes but NUL. */
#define KV_MAX_NAMESPACE_BYTES 256

/* X(name, value, HTTP status, description): one table makes the codes,
 * kv_strerror() and kv_error_status(). Values sit far from errno's range. */
#define KV_ERRNO_MAP(X)                                                          \
    X(KV_EKEY_EMPTY, -4001, 400, "key is empty")                                \
    X(KV_EKEY_ILLEGAL, -4002, 400, "key is \".\" or \"..\"")                    \
    X(KV_EKEY_TOO_LONG, -4003, 414, "key longer than 512 bytes")                \
    X(KV_EVALUE_TOO_LARGE, -4004, 413, "value larger than 25 MiB")              \
    X(KV_EMETADATA_TOO_LARGE, -4005, 413, "metadata longer than 1024 bytes")    \
    X(KV_ETTL_INVALID, -4006, 400, "expirationTtl not positive")                \
    X(KV_ETTL_TOO_SHORT, -4007, 400, "expirationTtl below 60 seconds")          \
    X(KV_EEXPIRATION_PAST, -4008, 400, "expiration not in the future")          \
    X(KV_EEXPIRATION_TOO_SOON, -4009, 400, "expiration less than 60 s ahead")   \
    X(KV_ELIMIT_TOO_SMALL, -4010, 400, "list limit below 1")                    \
    X(KV_ELIMIT_TOO_LARGE, -4011, 400, "list limit above 1000")                 \
    X(KV_EPREFIX_TOO_LONG, -4012, 414, "list prefix longer than 512 bytes")     \
    X(KV_ECURSOR_INVALID, -4013, 400, "list cursor invalid")                    \
    X(KV_ENAMESPACE_INVALID, -4014, 400, "namespace id empty or too long")

enum {
#define KV_ERRNO_ENUM(name, value, status, text) name = value,
    KV_ERRNO_MAP(KV_ERRNO_ENUM)
#undef KV_ERRNO_ENUM
};

/* A static description of any code (KV_E* or negative errno). */
const char *kv_strerror(int code);
/* 400/413/414 for invalid input, 503 for an unreachable backend, 500 else. */
int kv_error_status(int code);

typedef struct kv_store kv_store;

typedef struct kv_config {
    /* SQLite (default): the database is STATE_DIR/kv.sqlite3; the directory
     * must exist. Ignored when redis_url is set. */
    const char *state_dir;
    /* Redis: "redis://host[:port][/db]" (no auth, no TLS). Needs Redis >= 6.2. */
    const char *redis_url;
    /* Test hook: the minimum expirationTtl and expiration lead in seconds;
     * 0 means Workers KV's 60. Tests set 1 to exercise real expiry quickly. */
    unsigned min_ttl;
    /* How often expired keys are swept away; 0 means every 60 s. */
    unsigned sweep_interval_ms;
    /* Redis: with operations pending and no reply for this long, the
     * connection is dropped (they fail with -ETIMEDOUT) and made anew;
     * 0 means 5000. hiredis 0.14 has no timeouts of its own. */
    unsigned redis_timeout_ms;
} kv_config;

/* A found value. expiration is seconds since the Unix epoch, 0 for none.
 * metadata is the JSON text given to put, or NULL when none was given. */
typedef struct kv_value {
    void *value; /* malloc'd; NUL-terminated past len for convenience */
    size_t len;
    char *metadata; /* NUL-terminated */
    size_t metadata_len;
    int64_t expiration;
} kv_value;

typedef struct kv_put_opts {
    bool has_expiration; /* expiration: absolute, seconds since the epoch */
    int64_t expiration;
    bool has_ttl; /* expiration_ttl: seconds from now; wins over expiration */
    int64_t expiration_ttl;
    const char *metadata; /* JSON text as JSON.stringify made it, or NULL */
    size_t metadata_len;
} kv_put_opts;

typedef struct kv_list_opts {
    const void *prefix; /* NULL or prefix_len 0: every key */
    size_t prefix_len;
    bool has_limit; /* default KV_MAX_LIST_LIMIT */
    int64_t limit;
    const char *cursor; /* NULL, or the cursor of the previous page */
} kv_list_opts;

typedef struct kv_key {
    char *name; /* NUL-terminated past name_len; may contain NULs */
    size_t name_len;
    int64_t expiration; /* 0: none */
    char *metadata;     /* NULL: none */
    size_t metadata_len;
} kv_key;

/* Keys in byte order. cursor is NULL when list_complete. A page may hold
 * fewer than `limit` keys while list_complete is false, as in Workers KV. */
typedef struct kv_list_result {
    kv_key *keys;
    size_t count;
    bool list_complete;
    char *cursor;
} kv_list_result;

typedef void (*kv_close_cb)(void *data);
/* status 0 with v NULL: no such key (or it expired). */
typedef void (*kv_get_cb)(void *data, int status, kv_value *v, const err *e);
typedef void (*kv_done_cb)(void *data, int status, const err *e);
typedef void (*kv_list_cb)(void *data, int status, const kv_list_result *r, const err *e);

/* Opens a store on `loop`. The caller owns *out until kv_close. Opening
 * SQLite (schema, WAL recovery) is done here, synchronously, once; Redis
 * connects in the background and operations wait for it. */
int kv_open(uv_loop_t *loop, const kv_config *cfg, kv_store **out, err *e);
/* Stops accepting operations; those already accepted complete (puts are
 * committed, or fail with -ECANCELED when a Redis connection cannot send
 * them), then cb runs and the store is freed. Run the loop until it is idle
 * before uv_loop_close. cb may be NULL. */
void kv_close(kv_store *s, kv_close_cb cb, void *data);
/* "sqlite" or "redis". */
const char *kv_backend_name(const kv_store *s);

/* `ns` is a namespace id (NUL-terminated); keys, values, prefixes are bytes. */
int kv_get(kv_store *s, const char *ns, const void *key, size_t key_len, kv_get_cb cb, void *data,
           err *e);
/* cb runs only after the write is durable in the backend (SQLite: committed
 * to the WAL with synchronous=FULL). opts may be NULL. */
int kv_put(kv_store *s, const char *ns, const void *key, size_t key_len, const void *value,
           size_t value_len, const kv_put_opts *opts, kv_done_cb cb, void *data, err *e);
int kv_delete(kv_store *s, const char *ns, const void *key, size_t key_len, kv_done_cb cb,
              void *data, err *e);
/* opts may be NULL. */
int kv_list(kv_store *s, const char *ns, const kv_list_opts *opts, kv_list_cb cb, void *data,
            err *e);

#endif
