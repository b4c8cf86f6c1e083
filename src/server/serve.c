/* `atoll serve` (see serve.h): the state directory, the process groups,
 * and the supervisor that keeps them running. */
#include "server/serve.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/file.h"
#include "core/log.h"
#include "http/server.h"
#include "server/admin.h"
#include "server/store.h"
#include "server/supervisor.h"
#include "server/tier_container.h"
#include "server/tier_wasm.h"
#include "wasm/wasm.h"
#include "server/worker.h"

typedef struct group_ctx {
    const atoll_config *cfg;
    const serve_options *opt;
    const char *cordon;
} group_ctx;

static int run_worker(const supervisor_group *g, int index, void *data)
{
    group_ctx *gc = data;
    /* A cordon's process answers requests forwarded by the default group,
     * which has already logged them. */
    worker_options wo = {.sandbox = gc->opt->sandbox, .access_log = gc->opt->access_log && !gc->cordon,
                         .cordon = gc->cordon,
                         .index = index};
    return worker_main(gc->cfg, &wo);
}

static int run_containers(const supervisor_group *g, int index, void *data)
{
    group_ctx *gc = data;
    return containers_main(gc->cfg);
}

static int run_admin(const supervisor_group *g, int index, void *data)
{
    group_ctx *gc = data;
    admin_options ao = {.token = gc->opt->admin_token, .sandbox = gc->opt->sandbox};
    return admin_main(gc->cfg, &ao);
}

void serve_options_defaults(serve_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->sandbox = true;
    opt->access_log = true;
}

/* The state directory is the one place the server's processes may write. */
static int prepare_state_dir(const atoll_config *cfg, err *e)
{
    char *metrics = xasprintf("%s/metrics", cfg->state_dir);
    char *deploys = xasprintf("%s/deploys", cfg->state_dir);
    char *wasm_cache = xasprintf("%s/wasm-cache", cfg->state_dir);
    char *run = xasprintf("%s/run", cfg->state_dir);
    int rc = file_mkdirs(metrics, 0750, e);
    if (rc == 0)
        rc = file_mkdirs(run, 0750, e);
    if (rc == 0)
        rc = file_mkdirs(wasm_cache, 0750, e);
    if (rc == 0)
        rc = store_init(cfg->state_dir, e);
    if (rc == 0 && geteuid() == 0) {
        const char *paths[] = {cfg->state_dir, metrics, deploys, wasm_cache, run};
        for (size_t i = 0; i < 5 && rc == 0; i++)
            if (chown(paths[i], cfg->worker_uid, cfg->worker_gid) != 0)
                rc = err_set(e, -errno, "chown %s: %s", paths[i], strerror(errno));
        char *journal = xasprintf("%s/journal", cfg->state_dir);
        if (rc == 0 && chown(journal, cfg->worker_uid, cfg->worker_gid) != 0)
            rc = err_set(e, -errno, "chown %s: %s", journal, strerror(errno));
        free(journal);
    }
    /* Counters of processes from an earlier run would be summed as live. */
    DIR *dir = rc == 0 ? opendir(metrics) : NULL;
    struct dirent *ent;
    while (dir && (ent = readdir(dir)) != NULL) {
        if (ent->d_name[0] == '.')
            continue;
        char *stale = xasprintf("%s/%s", metrics, ent->d_name);
        unlink(stale);
        free(stale);
    }
    if (dir)
        closedir(dir);
    free(metrics);
    free(deploys);
    free(wasm_cache);
    free(run);
    if (rc != 0)
        err_prefix(e, "state directory %s", cfg->state_dir);
    return rc;
}

int serve_run(const atoll_config *cfg, const serve_options *opt, err *e)
{
    int rc = prepare_state_dir(cfg, e);
    if (rc != 0)
        return rc;
    /* A taken port would otherwise only show as workers dying in a loop. */
    if ((rc = http_server_probe_address(cfg->listen_ip, cfg->listen_port, e)) != 0)
        return rc;
    if (opt->admin_token && opt->admin_token[0] &&
        (rc = http_server_probe_address(cfg->admin_ip, cfg->admin_port, e)) != 0)
        return err_prefix(e, "admin.listen");
    /* Worker processes load compiled modules from the cache but may not run
     * the toolchain that keys it: ask it once here, before they fork. */
    err probe;
    err_clear(&probe);
    if (wasm_toolchain_probe(NULL, &probe) != 0)
        log_warn("%s: WebAssembly tenants cannot be served", probe.msg);
    /* WebAssembly modules compile at deploy time, here for the config's
     * tenants: a module that does not compile keeps the server from starting. */
    for (size_t i = 0; i < cfg->nworkers; i++) {
        const tenant_config *t = &cfg->workers[i];
        if (t->tier != TIER_WASM)
            continue;
        log_info("compiling %s (%s)", t->main, t->name);
        if ((rc = tier_wasm_compile(cfg, t->main, e)) != 0)
            return err_prefix(e, "worker %s", t->name);
    }
    /* One group for the tenants without a cordon, one per cordon: tenants
     * of different cordons never share a process. The default group holds
     * the public listener and forwards a cordoned tenant's requests to its
     * cordon's process over a Unix socket. */
    size_t ncordons = 0;
    const char **cordons = xcalloc(cfg->nworkers + 1, sizeof *cordons);
    for (size_t i = 0; i < cfg->nworkers; i++) {
        const char *c = cfg->workers[i].cordon;
        bool seen = false;
        for (size_t j = 0; c && j < ncordons && !seen; j++)
            seen = strcmp(cordons[j], c) == 0;
        if (c && !seen)
            cordons[ncordons++] = c;
    }
    supervisor_group *groups = xcalloc(ncordons + 3, sizeof *groups);
    group_ctx *ctx = xcalloc(ncordons + 3, sizeof *ctx);
    size_t ngroups = 0;
    ctx[ngroups] = (group_ctx){.cfg = cfg, .opt = opt, .cordon = NULL};
    groups[ngroups] = (supervisor_group){.name = "default", .processes = cfg->processes, .run = run_worker,
                                         .data = &ctx[ngroups]};
    ngroups++;
    for (size_t i = 0; i < ncordons; i++) {
        ctx[ngroups] = (group_ctx){.cfg = cfg, .opt = opt, .cordon = cordons[i]};
        groups[ngroups] = (supervisor_group){.name = cordons[i], .processes = 1, .run = run_worker,
                                             .data = &ctx[ngroups]};
        ngroups++;
    }
    /* Also when deploys may bring container tenants later (admin API). */
    bool admin = opt->admin_token && opt->admin_token[0];
    if (containers_needed(cfg) || (admin && geteuid() == 0)) {
        if (geteuid() != 0) {
            log_error("container tenants need atoll serve to run as root (namespaces, cgroups): they answer 502");
        } else {
            /* Unsandboxed: it makes namespaces and cgroups. Tenant code runs
             * only inside the containers it starts. */
            ctx[ngroups] = (group_ctx){.cfg = cfg, .opt = opt};
            groups[ngroups] = (supervisor_group){.name = "containers", .processes = 1, .run = run_containers,
                                                 .data = &ctx[ngroups]};
            ngroups++;
        }
    }
    if (opt->admin_token && opt->admin_token[0]) {
        ctx[ngroups] = (group_ctx){.cfg = cfg, .opt = opt};
        groups[ngroups] = (supervisor_group){.name = "admin", .processes = 1, .run = run_admin, .data = &ctx[ngroups]};
        ngroups++;
    } else {
        log_warn("admin API disabled: set ATOLL_ADMIN_TOKEN to enable it on %s:%d", cfg->admin_ip, cfg->admin_port);
    }
    log_info("atoll serve: %zu worker(s) on http://%s:%d/ in %d process(es)", cfg->nworkers, cfg->listen_ip,
             cfg->listen_port, cfg->processes);
    fflush(NULL);
    rc = supervisor_run(groups, ngroups, e);
    free(groups);
    free(ctx);
    free(cordons);
    return rc;
}
