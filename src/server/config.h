/* atoll's configuration: `atoll.jsonc` (JSON with comments and trailing
 * commas). Per tenant, wrangler's keys where one exists (name, main,
 * routes, vars, kv_namespaces, limits.cpu_ms, triggers.crons) plus atoll's
 * own (tier, limits.memory_mb/wall_ms/subrequests/max_body_mb, cordon,
 * fetch_allow); a
 * tenant may instead point to its own wrangler.jsonc/wrangler.json with
 * "wrangler": "path" (keys beside it override the file's). Every error
 * names the file, the key path and what was expected; unknown keys are
 * collected as warnings. The config owns every string in it. */
#ifndef ATOLL_SERVER_CONFIG_H
#define ATOLL_SERVER_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef enum { TIER_JS, TIER_WASM, TIER_CONTAINER } tenant_tier;

typedef struct tenant_limits {
    uint64_t cpu_ms;        /* CPU time per request; default 50 */
    uint64_t memory_mb;     /* isolate heap; default 128 */
    uint64_t wall_ms;       /* wall time per request; default 30000 */
    uint64_t subrequests;   /* outbound fetches per request; default 50 */
    uint64_t max_body_mb;   /* request body; default 100 */
} tenant_limits;

typedef struct var_binding {
    char *name;
    char *json;             /* the value as JSON text ("\"text\"", "42", "{...}") */
} var_binding;

typedef struct kv_binding {
    char *binding;          /* the name in env */
    char *id;               /* the namespace id */
} kv_binding;

typedef struct tenant_config {
    char *name;
    char *main;             /* absolute path of the entry module */
    tenant_tier tier;
    char **routes;          /* wrangler route patterns */
    size_t nroutes;
    var_binding *vars;
    size_t nvars;
    kv_binding *kv;
    size_t nkv;
    char **crons;           /* five-field cron expressions, UTC */
    size_t ncrons;
    tenant_limits limits;
    char **fetch_allow;     /* hosts fetch() may reach (http/egress.h), NULL-terminated;
                               NULL: the default, loopback only */
    size_t nfetch_allow;
    char *cordon;           /* process group; NULL: the shared default */
    char *preopen;          /* wasm: a host directory the module may read ("preopen") */
    int container_port;     /* container: its server's port inside it ("port"); 0: socket activation */
    uint64_t idle_timeout_s;  /* container: stopped after this long without requests; default 60 */
    uint64_t start_timeout_ms; /* container: how long a request waits for a start; default 10000 */
    char *source;           /* the file this tenant was read from */
} tenant_config;

typedef struct atoll_config {
    char *path;             /* the config file */
    char *listen_ip;        /* default 127.0.0.1 */
    int listen_port;        /* default 8080 */
    char *admin_ip;         /* default 127.0.0.1 */
    int admin_port;         /* default 8081 */
    bool public_metrics;    /* /metrics without the admin token */
    int processes;          /* default: number of cores */
    char *state_dir;        /* default ./.atoll */
    unsigned worker_uid;    /* "user": whom worker processes run as (when started as root);
                               default: the owner of the config file */
    unsigned worker_gid;
    uint64_t isolate_memory_budget_mb; /* idle isolates evicted above it; default 1024 */
    char *kv_redis;         /* kv.redis: KV namespaces in Redis ("redis://host:port/db");
                               NULL: SQLite in state_dir */
    uint64_t kv_min_ttl;    /* kv.min_ttl: the least expirationTtl in seconds (tests);
                               0: Workers KV's 60 */
    char *deploy_redis;     /* deploy.redis: admin deploys published to other nodes; NULL: none */
    tenant_config *workers;
    size_t nworkers;
    char **warnings;        /* unknown keys etc., each "FILE: KEY: message" */
    size_t nwarnings;
} atoll_config;

void tenant_limits_defaults(tenant_limits *l);
/* Loads and validates `path`. On failure `cfg` holds nothing to free and
 * e says "FILE: KEY.PATH: what was expected". */
int config_load(const char *path, atoll_config *cfg, err *e);
/* Splits "ip:port", "[v6]:port" or ":port" (ip defaults to 127.0.0.1). */
int config_parse_listen(const char *text, char **ip, int *port);
/* A tenant from an admin-API deploy: `json` is an object with the tenant
 * keys (routes, vars, kv_namespaces, limits, tier, cordon, triggers); name
 * and main are given. Unknown keys are added to warnings->warnings.
 * `source` names the deploy in messages. */
int config_tenant_from_json(const char *source, const char *json, size_t len, const char *name,
                            const char *main_path, tenant_config *t, atoll_config *warnings, err *e);
void config_tenant_free(tenant_config *t);
bool config_valid_name(const char *name);
const char *config_tier_name(tenant_tier tier);
void config_free(atoll_config *cfg);

#endif
