/* One worker process's tenants (see tenants.h). */
#include "server/tenants.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/file.h"
#include "core/log.h"
#include "core/map.h"
#include "js/api/kv.h"
#include "server/cron.h"
#include "server/router.h"
#include "server/store.h"
#include "server/tier_wasm.h"

#define SWEEP_MS 1000          /* heap accounting, eviction, cleanup */
#define MAX_SETTINGS_BYTES (1u << 20)

typedef struct retired {
    iso *worker;
    struct retired *next;
} retired;

struct tenant_table {
    uv_loop_t *loop;
    const atoll_config *cfg;
    char *cordon;              /* NULL: the default group */
    map by_name;               /* name -> current tenant */
    map stats;                 /* name -> tenant_stats */
    router *routes;            /* -> tenant */
    tenant *lru_head, *lru_tail; /* tenants with a live isolate, most recent first */
    tenant **graveyard;        /* replaced entries still in use */
    size_t ngraveyard, graveyard_cap;
    size_t resident;
    uint64_t journal_offset;
    iso_pool *pool;            /* ready runtimes: a cold start only loads bytecode */
    uint64_t generation;       /* bumped on every counted event */
    kv_store *kv;              /* borrowed: the process's KV store, or NULL */
    uv_timer_t sweep;
    uv_idle_t cleanup;         /* frees retired isolates soon, outside callbacks */
};

/* Whether a tenant of cordon `tenant_cordon` runs in a process of group
 * `group` (NULL: a process that hosts every tenant). */
static bool same_cordon(const char *tenant_cordon, const char *group)
{
    return !group || (tenant_cordon && strcmp(tenant_cordon, group) == 0);
}

static void lru_unlink(tenant_table *tt, tenant *t)
{
    if (!t->live)
        return;
    if (t->lru_prev)
        t->lru_prev->lru_next = t->lru_next;
    else
        tt->lru_head = t->lru_next;
    if (t->lru_next)
        t->lru_next->lru_prev = t->lru_prev;
    else
        tt->lru_tail = t->lru_prev;
    t->lru_prev = t->lru_next = NULL;
}

static void lru_push_front(tenant_table *tt, tenant *t)
{
    t->lru_prev = NULL;
    t->lru_next = tt->lru_head;
    if (tt->lru_head)
        tt->lru_head->lru_prev = t;
    tt->lru_head = t;
    if (!tt->lru_tail)
        tt->lru_tail = t;
}

static void schedule_cleanup(tenant_table *tt);

/* Takes t's isolate out of service; requests in it finish first. */
static void retire_isolate(tenant_table *tt, tenant *t)
{
    if (!t->live)
        return;
    lru_unlink(tt, t);
    retired *r = xmalloc(sizeof *r);
    r->worker = t->live;
    r->next = t->retired;
    t->retired = r;
    t->live = NULL;
    t->heap_bytes = 0;
    tt->resident--;
    schedule_cleanup(tt);
}

static tenant_stats *stats_for(tenant_table *tt, const char *name)
{
    tenant_stats *s = map_get(&tt->stats, name);
    if (!s) {
        s = xcalloc(1, sizeof *s);
        map_put(&tt->stats, name, s);
    }
    return s;
}

static tenant *tenant_create(tenant_table *tt, const tenant_config *cfg, tenant_config *owned, uint64_t version)
{
    tenant *t = xcalloc(1, sizeof *t);
    t->cfg = owned ? owned : cfg;
    t->owned = owned;
    t->version = version;
    t->stats = stats_for(tt, t->cfg->name);
    iso_options_defaults(&t->iso_opts);
    t->iso_opts.name = t->cfg->name;
    t->iso_opts.memory_limit = (size_t)t->cfg->limits.memory_mb << 20;
    t->iso_opts.cpu_ms = t->cfg->limits.cpu_ms;
    t->iso_opts.wall_ms = t->cfg->limits.wall_ms;
    t->iso_opts.pool = tt->pool;
    t->vars = xcalloc(t->cfg->nvars + 1, sizeof *t->vars);
    for (size_t i = 0; i < t->cfg->nvars; i++)
        t->vars[i] = (iso_var){.name = t->cfg->vars[i].name, .json = t->cfg->vars[i].json};
    t->iso_opts.vars = t->vars;
    t->iso_opts.nvars = t->cfg->nvars;
    /* A tenant reaches only the namespaces its own config binds. */
    t->kv = xcalloc(t->cfg->nkv + 1, sizeof *t->kv);
    t->bindings = xcalloc(t->cfg->nkv + 1, sizeof *t->bindings);
    for (size_t i = 0; i < t->cfg->nkv; i++) {
        t->kv[i] = (jsapi_kv_binding){.store = tt->kv, .namespace_id = t->cfg->kv[i].id};
        t->bindings[i] = (iso_binding){.name = t->cfg->kv[i].binding, .kind = JSAPI_KV_KIND, .opaque = &t->kv[i]};
    }
    t->iso_opts.bindings = t->bindings;
    t->iso_opts.nbindings = t->cfg->nkv;
    t->crons = xcalloc(t->cfg->ncrons + 1, sizeof *t->crons);
    for (size_t i = 0; i < t->cfg->ncrons; i++) {
        err e;
        if (cron_parse(t->cfg->crons[i], &t->crons[t->ncrons], &e) == 0) /* validated at load */
            t->ncrons++;
    }
    t->iso_opts.subrequests = t->cfg->limits.subrequests;
    t->iso_opts.fetch_allow = (const char *const *)t->cfg->fetch_allow;
    if (t->cfg->tier == TIER_WASM)
        t->wasm = tier_wasm_new(tt->loop, tt->cfg, t->cfg, t->stats);
    for (size_t i = 0; i < t->cfg->nroutes; i++) {
        err e;
        if (router_add(tt->routes, t->cfg->routes[i], t, &e) != 0)
            log_error("tenant %s: %s", t->cfg->name, e.msg); /* validated earlier: not expected */
    }
    return t;
}

static void tenant_destroy(tenant *t)
{
    if (t->live)
        iso_free(t->live);
    tier_wasm_free(t->wasm);
    free(t->vars);
    free(t->bindings);
    free(t->kv);
    free(t->crons);
    for (retired *r = t->retired, *next; r; r = next) {
        next = r->next;
        iso_free(r->worker);
        free(r);
    }
    if (t->owned) {
        config_tenant_free(t->owned);
        free(t->owned);
    }
    free(t);
}

/* Moves a replaced or deleted entry out of routing; it is freed once its
 * requests have ended. */
static void bury(tenant_table *tt, tenant *t)
{
    router_remove_target(tt->routes, t);
    t->replaced = true;
    retire_isolate(tt, t);
    if (tt->ngraveyard == tt->graveyard_cap) {
        tt->graveyard_cap = tt->graveyard_cap ? tt->graveyard_cap * 2 : 16;
        tt->graveyard = xrealloc(tt->graveyard, tt->graveyard_cap * sizeof *tt->graveyard);
    }
    tt->graveyard[tt->ngraveyard++] = t;
    schedule_cleanup(tt);
}

/* Frees retired isolates with nothing left to do, and buried entries
 * nobody uses any more. Runs from the loop only. */
static void cleanup(tenant_table *tt)
{
    size_t pos = 0;
    void *value;
    while (map_next(&tt->by_name, &pos, NULL, &value)) {
        tenant *t = value;
        for (retired **p = &t->retired; *p;) {
            retired *r = *p;
            if (iso_inflight(r->worker) == 0 && iso_waituntil_pending(r->worker) == 0) {
                iso_free(r->worker);
                *p = r->next;
                free(r);
            } else {
                p = &r->next;
            }
        }
    }
    size_t kept = 0;
    for (size_t i = 0; i < tt->ngraveyard; i++) {
        tenant *t = tt->graveyard[i];
        bool busy = t->refs > 0 || (t->wasm && tier_wasm_busy(t->wasm));
        for (retired *r = t->retired; r && !busy; r = r->next)
            busy = iso_inflight(r->worker) > 0 || iso_waituntil_pending(r->worker) > 0;
        if (busy)
            tt->graveyard[kept++] = t;
        else
            tenant_destroy(t);
    }
    tt->ngraveyard = kept;
}

static void on_cleanup(uv_idle_t *idle)
{
    tenant_table *tt = idle->data;
    uv_idle_stop(idle);
    cleanup(tt);
}

static void schedule_cleanup(tenant_table *tt)
{
    if (!uv_is_active((uv_handle_t *)&tt->cleanup))
        uv_idle_start(&tt->cleanup, on_cleanup);
}

/* Heap accounting and eviction: idle isolates, least recently used first,
 * while this process's isolates hold more than the budget. */
static void on_sweep(uv_timer_t *timer)
{
    tenant_table *tt = timer->data;
    size_t total = 0;
    for (tenant *t = tt->lru_head; t; t = t->lru_next) {
        t->heap_bytes = iso_heap_bytes(t->live);
        total += t->heap_bytes;
    }
    size_t budget = (size_t)tt->cfg->isolate_memory_budget_mb << 20;
    for (tenant *t = tt->lru_tail, *prev; t && total > budget; t = prev) {
        prev = t->lru_prev;
        if (t->refs > 0 || iso_inflight(t->live) > 0 || iso_waituntil_pending(t->live) > 0)
            continue;
        total -= t->heap_bytes;
        lru_unlink(tt, t);
        iso_free(t->live);
        t->live = NULL;
        t->heap_bytes = 0;
        tt->resident--;
    }
    cleanup(tt);
}

tenant_table *tenants_new(uv_loop_t *loop, const atoll_config *cfg, const char *cordon, kv_store *kv)
{
    tenant_table *tt = xcalloc(1, sizeof *tt);
    tt->loop = loop;
    tt->kv = kv;
    tt->cfg = cfg;
    tt->cordon = cordon ? xstrdup(cordon) : NULL;
    map_init(&tt->by_name);
    map_init(&tt->stats);
    tt->routes = router_new();
    tt->pool = iso_pool_new(loop, 0);
    for (size_t i = 0; i < cfg->nworkers; i++) {
        const tenant_config *tc = &cfg->workers[i];
        if (!same_cordon(tc->cordon, cordon))
            continue;
        map_put(&tt->by_name, tc->name, tenant_create(tt, tc, NULL, 0));
    }
    uv_timer_init(loop, &tt->sweep);
    tt->sweep.data = tt;
    uv_timer_start(&tt->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    uv_unref((uv_handle_t *)&tt->sweep);
    uv_idle_init(loop, &tt->cleanup);
    tt->cleanup.data = tt;
    return tt;
}

/* One journal entry: a deploy (version > 0) or a deletion. */
static void apply_entry(void *data, const char *name, uint64_t version)
{
    tenant_table *tt = data;
    tenant *old = map_get(&tt->by_name, name);
    if (version == 0) {
        if (old) {
            map_remove(&tt->by_name, name);
            bury(tt, old);
            log_info("tenant %s: deleted", name);
        }
        return;
    }
    if (old && old->version == version)
        return;
    const char *state = tt->cfg->state_dir;
    char *settings_path = store_settings_path(state, name, version);
    char *script_path = store_find_script(state, name, version);
    char *source = xasprintf("deploy %s v%" PRIu64, name, version);
    buf settings;
    buf_init(&settings, MAX_SETTINGS_BYTES);
    err e;
    err_clear(&e);
    tenant_config *cfg = xcalloc(1, sizeof *cfg);
    atoll_config warnings = {0};
    int rc = file_read_all(settings_path, MAX_SETTINGS_BYTES, &settings, &e);
    if (rc == 0)
        rc = config_tenant_from_json(source, settings.data ? settings.data : "{}", settings.len, name, script_path,
                                     cfg, &warnings, &e);
    config_free(&warnings);
    if (rc != 0) {
        log_error("tenant %s: cannot apply %s: %s", name, source, e.msg);
        free(cfg);
    } else if (!same_cordon(cfg->cordon, tt->cordon)) {
        /* Now served by another group of processes (or another tier). */
        if (old) {
            map_remove(&tt->by_name, name);
            bury(tt, old);
        }
        config_tenant_free(cfg);
        free(cfg);
    } else {
        if (old)
            bury(tt, old); /* before the new routes, so they never coexist */
        map_put(&tt->by_name, name, tenant_create(tt, NULL, cfg, version));
    }
    buf_free(&settings);
    free(settings_path);
    free(script_path);
    free(source);
}

void tenants_follow_journal(tenant_table *tt)
{
    err e;
    err_clear(&e);
    if (store_follow(tt->cfg->state_dir, &tt->journal_offset, apply_entry, tt, &e) != 0)
        log_error("deploy journal: %s", e.msg);
}

tenant *tenants_route(tenant_table *tt, const char *host, const char *target)
{
    tenant *t = router_match(tt->routes, host, target);
    if (t)
        t->refs++;
    return t;
}

tenant *tenants_get(tenant_table *tt, const char *name)
{
    return map_get(&tt->by_name, name);
}

/* Counts a limit violation by the status a job got or, failing that, by
 * the kind the isolate reports. */
static void count_limit(tenant_stats *s, int status, const char *limit)
{
    if (status == ISO_STATUS_MEMORY || (limit && strcmp(limit, "memory") == 0))
        s->limit_memory++;
    else if (status == ISO_STATUS_WALL || (limit && strcmp(limit, "wall") == 0))
        s->limit_wall++;
    else
        s->limit_cpu++;
}

int tenants_isolate(tenant_table *tt, tenant *t, bool *cold, err *e)
{
    *cold = false;
    if (t->live && iso_broken(t->live)) {
        /* It went over a limit after its last response (a microtask loop,
         * a waitUntil), so no request's end retired it; dispatching to it
         * would fail a request that did nothing wrong. With nothing in
         * flight, no request counted the violation either. */
        const char *limit = iso_limit(t->live);
        if (iso_inflight(t->live) == 0)
            count_limit(t->stats, 0, limit);
        log_tenant(LOG_WARN, t->cfg->name,
                   "isolate discarded after exceeding its %s limit between requests (no request in flight)",
                   limit ? limit : "resource");
        retire_isolate(tt, t);
        tt->generation++;
    }
    if (t->live) {
        lru_unlink(tt, t);
        lru_push_front(tt, t);
        return 0;
    }
    int rc = iso_new(tt->loop, t->cfg->main, &t->iso_opts, &t->live, e);
    if (rc != 0) {
        t->live = NULL;
        t->stats->load_errors++;
        tt->generation++;
        return rc;
    }
    *cold = true;
    t->stats->cold_starts++;
    tt->resident++;
    lru_push_front(tt, t);
    return 0;
}

/* The end of anything that held t (a request, a scheduled event) that ran
 * in isolate `used` (NULL: none): counts a limit by the kind the isolate
 * reports — every request a broken isolate failed counts, the first one
 * retires it — and cleans up later. Returns true when a limit was hit. */
static bool settle(tenant_table *tt, tenant *t, iso *used, int status)
{
    tt->generation++;
    t->refs--;
    t->last_used_ns = clock_mono_ns();
    tenant_stats *s = t->stats;
    bool limit_hit = false;
    if (used && status >= 500 && iso_broken(used)) {
        const char *limit = iso_limit(used);
        count_limit(s, status, limit);
        limit_hit = true;
        if (used == t->live) {
            log_tenant(LOG_WARN, t->cfg->name, "isolate discarded after exceeding its %s limit (status %d)",
                       limit ? limit : "resource", status);
            retire_isolate(tt, t);
        }
    }
    if (t->replaced || t->retired)
        schedule_cleanup(tt);
    return limit_hit;
}

void tenants_release(tenant_table *tt, tenant *t, iso *used, int status)
{
    tenant_stats *s = t->stats;
    s->requests++;
    s->status[status >= 200 && status < 600 ? status / 100 : 0]++;
    if (!settle(tt, t, used, status) && status == 500)
        s->exceptions++;
}

void tenants_forwarded(tenant_table *tt, tenant *t)
{
    t->refs--;
    if (t->replaced || t->retired)
        schedule_cleanup(tt);
}

typedef struct scheduled_run {
    tenant_table *tt;
    tenant *t;
    iso *worker;
    char *cron;
} scheduled_run;

static void on_scheduled_done(void *data, int outcome)
{
    scheduled_run *run = data;
    if (outcome == 0)
        run->t->stats->scheduled_ok++;
    else
        run->t->stats->scheduled_errors++;
    log_tenant(outcome ? LOG_WARN : LOG_INFO, run->t->cfg->name, "scheduled \"%s\": %s", run->cron,
               outcome == 0 ? "ok" : outcome == 500 ? "failed" : "limit exceeded");
    settle(run->tt, run->t, run->worker, outcome);
    free(run->cron);
    free(run);
}

static void fire(tenant_table *tt, tenant *t, const char *cron, time_t minute)
{
    bool cold;
    err e;
    err_clear(&e);
    if (tenants_isolate(tt, t, &cold, &e) != 0) {
        log_tenant(LOG_ERROR, t->cfg->name, "scheduled \"%s\": load: %s", cron, e.msg);
        t->stats->scheduled_errors++;
        return;
    }
    scheduled_run *run = xcalloc(1, sizeof *run);
    run->tt = tt;
    run->t = t;
    run->cron = xstrdup(cron);
    run->worker = t->live;
    t->refs++;
    int rc = iso_scheduled(t->live, cron, (double)minute * 1000.0, on_scheduled_done, run);
    if (rc != 0) {
        t->refs--;
        t->stats->scheduled_errors++;
        log_tenant(LOG_ERROR, t->cfg->name, "scheduled \"%s\": %s", cron,
                   rc == -ENOENT ? "the worker has no scheduled handler" : "the isolate could not run it");
        free(run->cron);
        free(run);
    }
}

void tenants_run_crons(tenant_table *tt, time_t minute)
{
    size_t pos = 0;
    void *value;
    while (map_next(&tt->by_name, &pos, NULL, &value)) {
        tenant *t = value;
        /* A cordoned tenant's triggers run in its cordon's process. */
        bool here = tt->cordon ? t->cfg->cordon && strcmp(t->cfg->cordon, tt->cordon) == 0 : !t->cfg->cordon;
        for (size_t i = 0; i < t->ncrons && !t->wasm && here; i++)
            if (cron_next(&t->crons[i], minute - 60) == minute)
                fire(tt, t, t->cfg->crons[i], minute);
    }
}

uint64_t tenants_generation(const tenant_table *tt)
{
    return tt->generation + tt->resident;
}

size_t tenants_count(const tenant_table *tt)
{
    return tt->by_name.count;
}

size_t tenants_resident(const tenant_table *tt)
{
    return tt->resident;
}

/* Resident set size of this process, from /proc/self/statm. */
static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

void tenants_metrics_json(tenant_table *tt, buf *b)
{
    buf_printf(b, "{\"pid\":%d,\"resident\":%zu,\"rss_bytes\":%" PRIu64 ",\"tenants\":{", (int)getpid(),
               tt->resident, rss_bytes());
    size_t pos = 0, n = 0;
    const char *name;
    void *value;
    while (map_next(&tt->stats, &pos, &name, &value)) {
        tenant_stats *s = value;
        tenant *t = map_get(&tt->by_name, name);
        if (n++)
            buf_append_str(b, ",");
        buf_append_json_string(b, name);
        buf_printf(b,
                   ":{\"requests\":%" PRIu64 ",\"s2xx\":%" PRIu64 ",\"s3xx\":%" PRIu64 ",\"s4xx\":%" PRIu64
                   ",\"s5xx\":%" PRIu64 ",\"exceptions\":%" PRIu64 ",\"limit_cpu\":%" PRIu64
                   ",\"limit_memory\":%" PRIu64 ",\"limit_wall\":%" PRIu64 ",\"load_errors\":%" PRIu64
                   ",\"cold_starts\":%" PRIu64 ",\"cpu_ns\":%" PRIu64 ",\"bytes_in\":%" PRIu64
                   ",\"bytes_out\":%" PRIu64 ",\"scheduled_ok\":%" PRIu64 ",\"scheduled_errors\":%" PRIu64
                   ",\"resident\":%d,\"heap_bytes\":%zu}",
                   s->requests, s->status[2], s->status[3], s->status[4], s->status[5], s->exceptions,
                   s->limit_cpu, s->limit_memory, s->limit_wall, s->load_errors, s->cold_starts, s->cpu_ns,
                   s->bytes_in, s->bytes_out, s->scheduled_ok, s->scheduled_errors, t && (t->live || (t->wasm && tier_wasm_loaded(t->wasm))) ? 1 : 0,
                   t ? t->heap_bytes : 0);
    }
    buf_append_str(b, "}}");
}

static void on_closed_free(uv_handle_t *h)
{
    tenant_table *tt = h->data;
    if (h == (uv_handle_t *)&tt->cleanup)
        free(tt);
}

void tenants_free(tenant_table *tt)
{
    size_t pos = 0;
    void *value;
    while (map_next(&tt->by_name, &pos, NULL, &value))
        tenant_destroy(value);
    for (size_t i = 0; i < tt->ngraveyard; i++)
        tenant_destroy(tt->graveyard[i]);
    free(tt->graveyard);
    pos = 0;
    while (map_next(&tt->stats, &pos, NULL, &value))
        free(value);
    map_free(&tt->by_name);
    map_free(&tt->stats);
    router_free(tt->routes);
    iso_pool_free(tt->pool);
    free(tt->cordon);
    uv_close((uv_handle_t *)&tt->sweep, NULL);
    uv_close((uv_handle_t *)&tt->cleanup, on_closed_free); /* closed after sweep: frees tt */
}
