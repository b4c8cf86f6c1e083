/* The tenants of one worker process: their configuration (from atoll.jsonc
 * and from deploys recorded in the state directory's journal), the routes
 * to them, their isolates (started on a tenant's first request — a cold
 * start — kept while used, discarded after a limit violation, evicted
 * least-recently-used when the process's isolates outgrow their memory
 * budget), and their counters for metrics.
 *
 * A deploy replaces a tenant's entry: requests already running keep the
 * old entry (and its isolate) until they finish; new requests get the new
 * one at once. Entries are freed from the loop, never inside a request's
 * own callbacks. */
#ifndef ATOLL_SERVER_TENANTS_H
#define ATOLL_SERVER_TENANTS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "core/buf.h"
#include "core/err.h"
#include "js/isolate.h"
#include "kv/kv.h"
#include "server/config.h"

/* Counters of one tenant name, kept across its versions. */
typedef struct tenant_stats {
    uint64_t requests;
    uint64_t status[6];        /* by class: [2] 2xx … [5] 5xx; [0] other */
    uint64_t exceptions;       /* 500 from a throw or rejection */
    uint64_t limit_cpu, limit_memory, limit_wall;
    uint64_t load_errors;
    uint64_t cold_starts;
    uint64_t cpu_ns;
    uint64_t bytes_in, bytes_out;
    uint64_t scheduled_ok, scheduled_errors;
} tenant_stats;

typedef struct tenant {
    const tenant_config *cfg;  /* borrowed from the config file's, or `owned` */
    tenant_config *owned;      /* a deployed version's configuration */
    uint64_t version;          /* deploy version; 0 when from the config file */
    iso_options iso_opts;      /* limits and vars from cfg */
    iso_var *vars;             /* iso_opts.vars: borrows cfg's strings */
    iso_binding *bindings;     /* iso_opts.bindings: KV namespaces */
    struct jsapi_kv_binding *kv; /* their opaques: the table's store, cfg's ids */
    struct cron_expr *crons;   /* triggers.crons, parsed */
    size_t ncrons;
    iso *live;                 /* js: NULL until the next cold start */
    struct wasm_tenant *wasm;  /* wasm: the tier's per-tenant state */
    size_t heap_bytes;         /* live's heap at its last request */
    uint64_t last_used_ns;
    size_t refs;               /* requests in flight holding this entry */
    bool replaced;             /* superseded by a deploy, or deleted */
    tenant_stats *stats;       /* owned by the table */
    struct tenant *lru_prev, *lru_next; /* tenants with a live isolate */
    struct retired *retired;   /* isolates still finishing requests */
} tenant;

typedef struct tenant_table tenant_table;

/* `cfg` must outlive the table; `cordon` selects the tenants this process
 * hosts: a cordon's, or NULL for the default group, which routes every
 * tenant (forwarding the cordoned ones) and runs the others. `kv` is the
 * process's KV store, shared by its tenants' kv_namespaces bindings
 * (borrowed; NULL: a tenant with a KV binding fails to load). */
tenant_table *tenants_new(uv_loop_t *loop, const atoll_config *cfg, const char *cordon, kv_store *kv);
/* Applies every journal entry not yet seen (deploys and deletions). */
void tenants_follow_journal(tenant_table *tt);

/* The tenant routed for this Host and request-target, or NULL. The caller
 * holds it (refs) until tenants_release. */
tenant *tenants_route(tenant_table *tt, const char *host, const char *target);
tenant *tenants_get(tenant_table *tt, const char *name);
/* Starts t's isolate if it has none; *cold says whether it did. */
int tenants_isolate(tenant_table *tt, tenant *t, bool *cold, err *e);
/* A request on t ended with `status`; `used` is the isolate it was
 * dispatched to (NULL: none). Updates counters (a limit by the kind the
 * isolate reports, so every request it failed is counted, whatever status
 * names the limit), discards a broken isolate, schedules cleanup. */
void tenants_release(tenant_table *tt, tenant *t, iso *used, int status);
/* A request on t was forwarded to another process (its cordon's), which
 * counts it: only the hold on t ends here. */
void tenants_forwarded(tenant_table *tt, tenant *t);
/* Runs the cron triggers due in the minute starting at `minute` (UTC). */
void tenants_run_crons(tenant_table *tt, time_t minute);

size_t tenants_count(const tenant_table *tt);
size_t tenants_resident(const tenant_table *tt);
/* Changes whenever a counter may have changed: publish only then. */
uint64_t tenants_generation(const tenant_table *tt);
/* Appends this process's counters as one JSON object to b (for metrics). */
void tenants_metrics_json(tenant_table *tt, buf *b);
void tenants_free(tenant_table *tt);

#endif
