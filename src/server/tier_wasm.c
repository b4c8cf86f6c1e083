/* The WebAssembly tier inside `atoll serve` (see tier_wasm.h). */
#include "server/tier_wasm.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/file.h"
#include "core/log.h"
#include "server/tenants.h"
#include "wasm/wasm.h"

#define MAX_MODULE_BYTES (256u << 20)

typedef struct pending {
    http_request *req;
    http_writer *w;
    struct pending *next;
} pending;

typedef struct run {
    wasm_run_req q;        /* first: the callback gets &q */
    wasm_tenant *wt;
} run;

struct wasm_tenant {
    uv_loop_t *loop;
    const atoll_config *cfg;
    const tenant_config *tc;
    tenant_stats *stats;
    wasm_config wcfg;
    wasm_var *vars;
    wasm_module *mod;      /* NULL until loaded */
    wasm_load_req load;
    buf bytes;             /* the module while it loads */
    char *cache_dir;       /* borrowed by the load request until it completes */
    bool loading;
    char *load_error;      /* set when loading failed: every request gets a 500 */
    pending *queue, **queue_tail;
    size_t running;
};

static char *cache_dir(const atoll_config *cfg)
{
    return xasprintf("%s/wasm-cache", cfg->state_dir);
}

int tier_wasm_compile(const atoll_config *cfg, const char *path, err *e)
{
    buf bytes;
    buf_init(&bytes, MAX_MODULE_BYTES);
    int rc = file_read_all(path, MAX_MODULE_BYTES, &bytes, e);
    if (rc == 0) {
        char *dir = cache_dir(cfg);
        wasm_compile_opts opts = {.cache_dir = dir};
        wasm_module *m = NULL;
        rc = wasm_module_load(bytes.data ? bytes.data : "", bytes.len, &opts, &m, e);
        if (rc == 0)
            wasm_module_free(m);
        else
            err_prefix(e, "%s", path);
        free(dir);
    }
    buf_free(&bytes);
    return rc;
}

/* `vars` become environment variables: strings as they are, other JSON
 * values as their JSON text. */
static char *var_value(const char *json)
{
    json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
    char *out = v && json_is_string(v) ? xstrdup(json_string_value(v)) : xstrdup(json);
    json_decref(v);
    return out;
}

wasm_tenant *tier_wasm_new(uv_loop_t *loop, const atoll_config *cfg, const tenant_config *tc,
                           tenant_stats *stats)
{
    wasm_tenant *wt = xcalloc(1, sizeof *wt);
    wt->loop = loop;
    wt->stats = stats;
    wt->cfg = cfg;
    wt->tc = tc;
    wt->queue_tail = &wt->queue;
    wasm_config_init(&wt->wcfg);
    wt->wcfg.tenant = tc->name;
    wt->wcfg.preopen_dir = tc->preopen;
    wt->wcfg.limits.cpu_ms = tc->limits.cpu_ms;
    wt->wcfg.limits.wall_ms = tc->limits.wall_ms;
    wt->wcfg.limits.memory_pages = (uint32_t)(tc->limits.memory_mb * 16); /* 64 KiB pages */
    wt->vars = xcalloc(tc->nvars + 1, sizeof *wt->vars);
    for (size_t i = 0; i < tc->nvars; i++)
        wt->vars[i] = (wasm_var){.name = tc->vars[i].name, .value = var_value(tc->vars[i].json)};
    wt->wcfg.vars = wt->vars;
    wt->wcfg.nvars = tc->nvars;
    buf_init(&wt->bytes, MAX_MODULE_BYTES);
    wt->cache_dir = cache_dir(cfg);
    return wt;
}

static void on_run_done(wasm_run_req *q, int status)
{
    run *r = (run *)q;
    tenant_stats *s = r->wt->stats;
    if (s) {
        s->cpu_ns += q->resp.cpu_ns;
        if (q->resp.trap == WASM_TRAP_CPU_LIMIT)
            s->limit_cpu++;
        else if (q->resp.trap == WASM_TRAP_WALL_LIMIT)
            s->limit_wall++;
        else if (q->resp.trap == WASM_TRAP_MEMORY_LIMIT)
            s->limit_memory++;
    }
    r->wt->running--;
    free(r);
}

static void start_run(wasm_tenant *wt, http_request *req, http_writer *w)
{
    if (!wt->mod) {
        http_writer_error(w, 500, wt->load_error ? wt->load_error : "The WebAssembly module is not loaded.");
        return;
    }
    run *r = xcalloc(1, sizeof *r);
    r->wt = wt;
    wt->running++;
    if (wasm_run_async(wt->loop, &r->q, wt->mod, &wt->wcfg, req, w, on_run_done) != 0) {
        wt->running--;
        free(r);
        /* 500, not 503: for this tier 503 means its CPU limit (tenants.c counts it). */
        http_writer_error(w, 500, "The server could not start the WebAssembly instance.");
    }
}

static void on_loaded(wasm_load_req *q, int status, wasm_module *mod)
{
    wasm_tenant *wt = q->data;
    wt->loading = false;
    buf_free(&wt->bytes);
    if (status == 0) {
        wt->mod = mod;
    } else {
        log_tenant(LOG_ERROR, wt->tc->name, "load %s: %s", wt->tc->main, q->error.msg);
        if (wt->stats)
            wt->stats->load_errors++;
        wt->load_error = xasprintf("The WebAssembly module failed to load: %s", q->error.msg);
    }
    pending *p = wt->queue;
    wt->queue = NULL;
    wt->queue_tail = &wt->queue;
    while (p) {
        pending *next = p->next;
        start_run(wt, p->req, p->w);
        free(p);
        p = next;
    }
}

void tier_wasm_dispatch(wasm_tenant *wt, http_request *req, http_writer *w, bool *cold)
{
    *cold = false;
    if (wt->mod || wt->load_error) {
        start_run(wt, req, w);
        return;
    }
    pending *p = xcalloc(1, sizeof *p);
    p->req = req;
    p->w = w;
    *wt->queue_tail = p;
    wt->queue_tail = &p->next;
    if (wt->loading)
        return;
    *cold = true;
    err e;
    err_clear(&e);
    wasm_compile_opts opts = {.cache_dir = wt->cache_dir};
    wt->loading = true;
    wt->load.data = wt;
    int rc = file_read_all(wt->tc->main, MAX_MODULE_BYTES, &wt->bytes, &e);
    if (rc == 0)
        rc = wasm_module_load_async(wt->loop, &wt->load, wt->bytes.data ? wt->bytes.data : "", wt->bytes.len,
                                    &opts, on_loaded);
    if (rc != 0) {
        wt->load.status = rc;
        if (!e.msg[0])
            err_set(&e, rc, "cannot start loading: %s", strerror(-rc));
        wt->load.error = e;
        on_loaded(&wt->load, rc, NULL);
    }
}

bool tier_wasm_busy(const wasm_tenant *wt)
{
    return wt->loading || wt->running > 0 || wt->queue;
}

bool tier_wasm_loaded(const wasm_tenant *wt)
{
    return wt->mod != NULL;
}

void tier_wasm_free(wasm_tenant *wt)
{
    if (!wt)
        return;
    if (wt->mod)
        wasm_module_free(wt->mod);
    for (size_t i = 0; i < wt->wcfg.nvars; i++)
        free((char *)wt->vars[i].value);
    free(wt->vars);
    free(wt->load_error);
    free(wt->cache_dir);
    buf_free(&wt->bytes);
    free(wt);
}
