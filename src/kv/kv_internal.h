/* Declarations shared by the KV dispatcher (kv.c) and its backends
 * (sqlite.c, redis.c), as curl's vtls does: the dispatcher validates input
 * and builds one `kv_op` per call; a backend executes it and hands it back
 * with kv__complete(), on the loop thread. */
#ifndef ATOLL_KV_INTERNAL_H
#define ATOLL_KV_INTERNAL_H
#include "kv/kv.h"

typedef enum { KV_OP_GET, KV_OP_PUT, KV_OP_DELETE, KV_OP_LIST } kv_op_type;

/* One operation. Allocated by the dispatcher, owned by the backend between
 * submit and kv__complete(), which calls back and frees it with everything
 * it points to. */
typedef struct kv_op {
    kv_op_type type;
    kv_store *store;
    char *ns; /* namespace id, NUL-terminated */
    size_t ns_len;
    char *key; /* get/put/delete: the key; list: the prefix (may be empty) */
    size_t key_len;
    /* put */
    char *value;
    size_t value_len;
    char *metadata; /* NULL: none */
    size_t metadata_len;
    int64_t expiration; /* absolute seconds, 0: none */
    /* list: keys must be >= lo; when hi is non-NULL, < hi (the prefix's
     * successor). lo already folds in the cursor. */
    char *lo, *hi;
    size_t lo_len, hi_len;
    unsigned limit;
    /* results, filled by the backend */
    int status;
    err e;
    bool found;
    kv_value got;
    kv_list_result list;
    size_t list_cap;
    /* the caller's callback */
    union {
        kv_get_cb get;
        kv_done_cb done;
        kv_list_cb list;
    } cb;
    void *data;
    struct kv_op *next; /* free for the backend's queues */
} kv_op;

typedef struct kv_backend {
    const char *name;
    /* Sets s->impl; on failure leaves nothing behind. */
    int (*open)(kv_store *s, const kv_config *cfg, err *e);
    /* Takes the op (on success only): it will come back through
     * kv__complete(). Fails synchronously when it cannot accept it. */
    int (*submit)(kv_store *s, kv_op *op, err *e);
    /* Completes pending ops, releases everything, then calls kv__closed(). */
    void (*close)(kv_store *s);
} kv_backend;

struct kv_store {
    uv_loop_t *loop;
    const kv_backend *be;
    void *impl;
    bool closing;
    unsigned min_ttl; /* seconds; 60 but in tests */
    unsigned sweep_interval_ms;
    kv_close_cb close_cb;
    void *close_data;
};

extern const kv_backend kv__sqlite_backend;
extern const kv_backend kv__redis_backend;

/* Calls the op's callback with its results (or op->status/op->e) and frees
 * it. Loop thread only. */
void kv__complete(kv_op *op);
/* Called by a backend when close has finished: runs the close callback and
 * frees the store. */
void kv__closed(kv_store *s);
/* Fails op with `code` and a message "KV <OP> failed: <status> <text>". */
void kv__fail(kv_op *op, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Appends a listed key (copying its name and metadata). */
void kv__list_add(kv_op *op, const void *name, size_t name_len, int64_t expiration,
                  const void *metadata, size_t metadata_len, bool has_metadata);
/* Sets list_complete, or the cursor after the last listed key. */
void kv__list_finish(kv_op *op, bool complete);
/* Wall-clock time in whole seconds since the epoch (floor). A key with
 * expiration E is live while now < E. */
int64_t kv__now(void);

#endif
