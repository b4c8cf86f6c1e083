/* The WebAssembly tier inside `atoll serve`: a tenant with "tier": "wasm"
 * has a WASI module as its main. Modules are compiled (wasm2c + cc) when
 * deployed — by the supervisor for the config file's tenants, by the admin
 * process for the admin API's — into the content-addressed cache in the
 * state directory, so a worker process only loads the cached shared object
 * on a tenant's first request (its cold start, off the event loop) and runs
 * each request in a fresh instance on libuv's thread pool. */
#ifndef ATOLL_SERVER_TIER_WASM_H
#define ATOLL_SERVER_TIER_WASM_H
#include <stdbool.h>
#include <uv.h>

#include "core/err.h"
#include "http/message.h"
#include "server/config.h"

typedef struct wasm_tenant wasm_tenant;
struct tenant_stats;

/* Compiles the module at `path` into the cache (or finds it there). */
int tier_wasm_compile(const atoll_config *cfg, const char *path, err *e);

/* Per-tenant state; `tc` and `stats` must outlive it. The tier adds its
 * load failures, its instances' CPU time and its limit traps (answered 503
 * CPU, 504 wall, 507 memory, as the JS tier's limits) to `stats`: the
 * status alone cannot tell them from a module that answers 503 itself. */
wasm_tenant *tier_wasm_new(uv_loop_t *loop, const atoll_config *cfg, const tenant_config *tc,
                           struct tenant_stats *stats);
/* Answers req through w; the first call loads the module (a cold start,
 * reported through *cold). */
void tier_wasm_dispatch(wasm_tenant *wt, http_request *req, http_writer *w, bool *cold);
/* Requests queued or running: the tenant cannot be freed yet. */
bool tier_wasm_busy(const wasm_tenant *wt);
bool tier_wasm_loaded(const wasm_tenant *wt);
void tier_wasm_free(wasm_tenant *wt);

#endif
