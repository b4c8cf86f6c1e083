/* A JavaScript isolate: one QuickJS runtime + context for one tenant's
 * worker, with its own heap cap, stack cap and budgets, driven by the
 * server's libuv loop (promise jobs drained on the loop, timers are libuv
 * timers owned by the isolate). It loads a Workers ES module
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

typedef struct iso_options {
    size_t memory_limit;   /* bytes of JS heap; default 128 MiB (0: unlimited) */
    size_t stack_limit;    /* bytes of JS stack; default 512 KiB (0: the default) */
    uint64_t cpu_ms;       /* CPU time per request; default 50 ms (0: unlimited) */
    uint64_t wall_ms;      /* wall time per request; default 30 s (0: unlimited) */
    const char *name;      /* tenant name for logs; default: the script's file name */
} iso_options;

void iso_options_defaults(iso_options *opt);

typedef struct iso iso;

/* Creates an isolate on `loop` and loads `script_path`. A syntax error, a
 * missing import or a throw at top level fails with the message and the
 * JS stack (file:line) in e. */
int iso_new(uv_loop_t *loop, const char *script_path, const iso_options *opt, iso **out, err *e);

/* Runs the worker's fetch handler for `req` and sends its Response to `w`.
 * The request URL is http://<Host header or "localhost"><target>. If the
 * handler throws, rejects, returns no Response or exceeds a limit, `w` gets
 * a 500 (or 503 for limits) with a short page and the stack is logged.
 * req and w must stay valid until w->end. w->end may be called from
 * inside this call or later from a loop callback; it must not free the
 * isolate (do that from a later loop callback). */
void iso_dispatch(iso *i, http_request *req, http_writer *w);

/* Compiles the script at `path` (module or service-worker script) without
 * running it, for deploys; a syntax error fails with file:line: message. */
int iso_check_script(const char *path, err *e);

/* Requests dispatched and not yet ended. */
size_t iso_inflight(const iso *i);
/* True after a limit was exceeded: the isolate must be discarded. */
bool iso_broken(const iso *i);
/* Which limit it exceeded ("CPU time", "memory", "wall time"), or NULL. */
const char *iso_limit(const iso *i);
/* Frees the isolate. Requests still in flight are answered 503 first.
 * Its libuv handles are closed; run the loop once more to release them. */
void iso_free(iso *i);

/* Promises passed to ctx.waitUntil / event.waitUntil not yet settled: the
 * isolate still has work after its responses (do not evict it yet). */
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
