/* A JavaScript isolate: one QuickJS runtime + context for one tenant's
 * worker, with its own heap cap, stack cap and budgets, driven by the
 * server's libuv loop (promise jobs drained on the loop, timers are libuv
 * timers owned by the isolate). Date.now(), new Date() and
 * performance.now() read a clock that is set when the loop enters the
 * isolate and stands still while JavaScript runs (a timing defence, as on
 * Workers). It loads a Workers ES module
 * (`export default { fetch(request, env, ctx) }`, relative imports resolved
 * from disk) or a service-worker script (`addEventListener("fetch", ...)`),
 * and answers http_requests through http_writers. */
#ifndef ATOLL_JS_ISOLATE_H
#define ATOLL_JS_ISOLATE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/err.h"
#include "http/message.h"

typedef struct iso iso;
typedef struct iso_pool iso_pool;

/* A plain env binding (a wrangler "vars" entry; secrets are vars too):
 * env[name] is JSON.parse(json), so "\"text\"" is a string and "42" a number.
 * The same layout as server/config.h's var_binding. */
typedef struct iso_var {
    const char *name;
    const char *json;
} iso_var;

/* A native env binding (a KV namespace, ...): env[name] is made by the
 * constructor registered for `kind` (see js/binding.h), given `opaque`. */
typedef struct iso_binding {
    const char *name;
    const char *kind;
    void *opaque;          /* borrowed: must outlive every isolate made with it */
} iso_binding;

typedef struct iso_options {
    size_t memory_limit;   /* bytes of JS heap; default 128 MiB (0: unlimited) */
    size_t stack_limit;    /* bytes of JS stack; default 512 KiB (0: the default) */
    uint64_t cpu_ms;       /* CPU time per request; default 50 ms (0: unlimited) */
    uint64_t wall_ms;      /* wall time per request, scheduled event and waitUntil()
                              promise; default 30 s (0: unlimited) */
    const char *name;      /* tenant name for logs; default: the script's file name */
    const iso_var *vars;   /* env vars; read during iso_new only */
    size_t nvars;
    const iso_binding *bindings; /* native env bindings; the array is read during iso_new only */
    size_t nbindings;
    iso_pool *pool;        /* take a ready runtime from it (same loop); NULL: make one */
    uint64_t subrequests;  /* fetch() calls (and redirects followed) per request; default 50 (0: none) */
    /* Hosts fetch() may reach (http/egress.h patterns: "example.com",
     * "*.example.com", "*", an IP, "localhost" for loopback), NULL-terminated;
     * default NULL: loopback only. Borrowed: must outlive the isolate. */
    const char *const *fetch_allow;
    /* "host:port:address" DNS pins for fetch(), as curl --resolve; NULL: none. Borrowed. */
    const char *const *fetch_resolve;
} iso_options;

void iso_options_defaults(iso_options *opt);

/* Creates an isolate on `loop` and loads `script_path`. A syntax error, a
 * missing import or a throw at top level fails with the message and the
 * JS stack (file:line) in e. `env` holds opt's vars and bindings as
 * read-only properties of a non-extensible object; a service-worker script
 * sees them as globals too, as on Workers. */
int iso_new(uv_loop_t *loop, const char *script_path, const iso_options *opt, iso **out, err *e);

/* Parses and compiles `path` (a module with its relative imports, or a
 * script, detected as iso_new does) without running it, in a throwaway
 * runtime with a memory cap: the check before a deploy is accepted. A
 * syntax error or missing import fails with "file:line: message" in e.
 * The compiled bytecode stays in the cache for the first iso_new. */
int iso_check_script(const char *path, err *e);

/* A pool of ready runtimes (runtime + context + Web API installed, no
 * tenant code) for one loop, so that iso_new for a cold tenant only loads
 * bytecode and evaluates it. The pool refills itself from an idle handle
 * when the loop has nothing else to do; a pooled runtime is never reused
 * after a tenant had it. Limits are set when a runtime is taken. */
iso_pool *iso_pool_new(uv_loop_t *loop, size_t size); /* size 0: ISO_POOL_DEFAULT */
#define ISO_POOL_DEFAULT 4
/* Runtimes ready now. */
size_t iso_pool_ready(const iso_pool *p);
/* Fills the pool now instead of when the loop is idle (startup, benchmarks). */
void iso_pool_fill(iso_pool *p);
/* Frees the pooled runtimes; the pool itself is freed when its idle handle
 * has closed (run the loop once more). Isolates taken from it live on. */
void iso_pool_free(iso_pool *p);

/* Runs the worker's fetch handler for `req` and sends its Response to `w`.
 * The request URL is http://<Host header or "localhost"><target>. If the
 * handler throws, rejects or returns no Response, `w` gets a 500 with a
 * short page and the stack is logged; if the isolate exceeds a limit,
 * every request in it gets the limit's status (ISO_STATUS_*) and a page
 * naming the limit.
 * req and w must stay valid until w->end. w->end may be called from
 * inside this call or later from a loop callback; it must not free the
 * isolate (do that from a later loop callback). */
void iso_dispatch(iso *i, http_request *req, http_writer *w);

/* Statuses for a limit exceeded (an uncaught exception is a 500; a stack
 * overflow is a catchable InternalError, so a 500 when nobody catches it). */
#define ISO_STATUS_CPU 503
#define ISO_STATUS_WALL 504
#define ISO_STATUS_MEMORY 507

/* Requests and scheduled events dispatched and not yet ended. */
size_t iso_inflight(const iso *i);
/* True after a limit was exceeded: the isolate must be discarded. */
bool iso_broken(const iso *i);
/* Which limit was exceeded: "cpu", "memory", "wall", or NULL. */
const char *iso_limit(const iso *i);

/* CPU time that JavaScript spent for the request answered through w, in
 * ns: valid from iso_dispatch until w->end returns (call it from w->end
 * for the access log); 0 for a writer the isolate does not know. Costs one
 * clock read when called while JavaScript is running, none otherwise. */
uint64_t iso_request_cpu_ns(const iso *i, const http_writer *w);
/* CPU time the isolate has spent in JavaScript since it was created
 * (loading, requests, timers, scheduled events), for metrics. */
uint64_t iso_cpu_ns_total(const iso *i);

/* Runs the worker's scheduled handler for a cron trigger:
 * `default.scheduled(controller, env, ctx)` of a module, or the
 * "scheduled" event listeners of a service-worker script, with
 * controller = { cron, scheduledTime, type, noRetry() }, under the same
 * CPU and wall limits as a request. When the handler's promise and every
 * promise it passed to waitUntil have settled, or a limit ended it, the
 * outcome is logged and done(data, outcome) is called once: 0 when it
 * succeeded, else the status a request would have got (500 for an
 * exception, ISO_STATUS_* for a limit). done may run before iso_scheduled
 * returns; it must not free the isolate. Returns 0, or -ENOENT (no
 * scheduled handler) / -EAGAIN (the isolate is broken) without calling done. */
int iso_scheduled(iso *i, const char *cron, double scheduled_time_ms,
                  void (*done)(void *data, int outcome), void *data);
/* True when the worker has a scheduled handler. */
bool iso_has_scheduled(const iso *i);
/* Frees the isolate. Requests still in flight are answered 503 first.
 * Its libuv handles are closed; run the loop once more to release them. */
void iso_free(iso *i);

/* Promises passed to ctx.waitUntil / event.waitUntil not yet settled: the
 * isolate still has work after its responses (do not evict it yet). A
 * promise still pending wall_ms after waitUntil() is abandoned (logged and
 * no longer counted), so this always drops back to 0. */
size_t iso_waituntil_pending(const iso *i);
/* Bytes of JS heap the isolate holds now (QuickJS's own accounting). */
size_t iso_heap_bytes(const iso *i);

/* The process-wide bytecode cache behind iso_new (see js/cache.h). */
typedef struct iso_cache_info {
    size_t entries;      /* files cached */
    size_t bytes;        /* bytecode held */
    uint64_t hits, misses;
} iso_cache_info;
void iso_cache_stats(iso_cache_info *info);
/* Drops every cached file (tests, benchmarks; at exit for leak checkers). */
void iso_cache_clear(void);

#endif
