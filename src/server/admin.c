/* The admin API process (see admin.h). */
#include "server/admin.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <uv.h>

#include "container/container.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/file.h"
#include "core/log.h"
#include "core/map.h"
#include "http/server.h"
#include "js/isolate.h"
#include "sandbox/sandbox.h"
#include "server/fleet.h"
#include "server/router.h"
#include "server/store.h"
#include "server/tier_container.h"
#include "server/tier_wasm.h"

#define MAX_SCRIPT_BYTES (32u << 20)
#define MAX_METRICS_FILE (64u << 20)

typedef struct admin {
    const atoll_config *cfg;
    const admin_options *opt;
    uv_loop_t loop;
    http_server *http;
    map versions;            /* name -> (uintptr_t) current deployed version */
    /* Every route of the current tenants (config and deployed), to refuse
     * a deploy that takes another tenant's route: only one of the two
     * could be reached there. Targets are the names in `owners`. */
    router *routes;
    map owners;              /* name -> owned copy of the name */
    uint64_t journal_offset;
    uv_signal_t sigterm, sigint;
    bool draining;
    fleet *fleet;            /* deploy.redis: deploys shared with other nodes; NULL: none */
} admin;

static int load_deployed(admin *a, const char *name, uint64_t version, tenant_config *t, err *e);
static const tenant_config *config_tenant(const admin *a, const char *name);

/* Makes `name`'s routes those of t; NULL: those of the config tenant of
 * that name, if any (a deployed version was deleted). */
static void set_routes(admin *a, const char *name, const tenant_config *t)
{
    char *owner = map_get(&a->owners, name);
    if (!owner) {
        owner = xstrdup(name);
        map_put(&a->owners, name, owner);
    }
    router_remove_target(a->routes, owner);
    if (!t)
        t = config_tenant(a, name);
    for (size_t i = 0; t && i < t->nroutes; i++) {
        err e;
        if (!router_find_same(a->routes, t->routes[i]))
            router_add(a->routes, t->routes[i], owner, &e); /* validated when t was read */
    }
}

/* The name of another tenant that already has one of t's routes (which
 * goes to *route), or NULL. */
static const char *route_taken(const admin *a, const char *name, const tenant_config *t, const char **route)
{
    for (size_t i = 0; i < t->nroutes; i++) {
        const char *owner = router_find_same(a->routes, t->routes[i]);
        if (owner && strcmp(owner, name) != 0) {
            *route = t->routes[i];
            return owner;
        }
    }
    return NULL;
}

static void on_journal_entry(void *data, const char *name, uint64_t version)
{
    admin *a = data;
    if (version && (uintptr_t)map_get(&a->versions, name) == version)
        return; /* applied already: a deploy made by this process */
    if (version) {
        map_put(&a->versions, name, (void *)(uintptr_t)version);
        tenant_config t;
        err e;
        if (load_deployed(a, name, version, &t, &e) == 0) {
            set_routes(a, name, &t);
            config_tenant_free(&t);
        }
    } else {
        map_remove(&a->versions, name);
        set_routes(a, name, NULL);
    }
}

static void refresh(admin *a)
{
    err e;
    err_clear(&e);
    if (store_follow(a->cfg->state_dir, &a->journal_offset, on_journal_entry, a, &e) != 0)
        log_error("admin: deploy journal: %s", e.msg);
}

static const tenant_config *config_tenant(const admin *a, const char *name)
{
    for (size_t i = 0; i < a->cfg->nworkers; i++)
        if (strcmp(a->cfg->workers[i].name, name) == 0)
            return &a->cfg->workers[i];
    return NULL;
}

static void respond_json(http_writer *w, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    http_headers h;
    http_headers_init(&h);
    http_headers_add_str(&h, "Content-Type", "application/json");
    buf b;
    buf_init(&b, BUF_UNLIMITED);
    buf_append_str(&b, text ? text : "{}");
    buf_append_str(&b, "\n");
    http_writer_respond(w, status, &h, b.data, b.len);
    buf_free(&b);
    free(text);
    http_headers_free(&h);
}

static void respond_error(http_writer *w, int status, const char *msg)
{
    respond_json(w, status, json_pack("{s:s}", "error", msg));
}

/* Constant-time comparison, so the token cannot be guessed by timing. */
static bool token_matches(const char *given, size_t given_len, const char *token)
{
    size_t len = strlen(token);
    unsigned char diff = given_len != len;
    for (size_t i = 0; i < given_len; i++)
        diff |= (unsigned char)given[i] ^ (unsigned char)token[i % (len ? len : 1)];
    return diff == 0;
}

static int authorize(admin *a, const http_request *req, http_writer *w)
{
    const char *auth = http_headers_get(&req->headers, "authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) {
        http_headers h;
        http_headers_init(&h);
        http_headers_add_str(&h, "WWW-Authenticate", "Bearer realm=\"atoll admin\"");
        http_headers_add_str(&h, "Content-Type", "application/json");
        static const char body[] = "{\"error\":\"missing bearer token (Authorization: Bearer $ATOLL_ADMIN_TOKEN)\"}\n";
        http_writer_respond(w, 401, &h, body, sizeof body - 1);
        http_headers_free(&h);
        return -1;
    }
    const char *given = auth + 7;
    if (!token_matches(given, strlen(given), a->opt->token)) {
        respond_error(w, 403, "wrong admin token");
        return -1;
    }
    return 0;
}

static json_t *routes_json(const tenant_config *t)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < t->nroutes; i++)
        json_array_append_new(arr, json_string(t->routes[i]));
    return arr;
}

/* Reads a deployed version's settings into a tenant config; 0 or -errno. */
static int load_deployed(admin *a, const char *name, uint64_t version, tenant_config *t, err *e)
{
    char *settings_path = store_settings_path(a->cfg->state_dir, name, version);
    char *script_path = store_find_script(a->cfg->state_dir, name, version);
    char *source = xasprintf("deploy %s v%" PRIu64, name, version);
    buf settings;
    buf_init(&settings, 1u << 20);
    atoll_config warnings = {0};
    int rc = file_read_all(settings_path, 1u << 20, &settings, e);
    if (rc == 0)
        rc = config_tenant_from_json(source, settings.data ? settings.data : "{}", settings.len, name, script_path, t,
                                     &warnings, e);
    config_free(&warnings);
    buf_free(&settings);
    free(settings_path);
    free(script_path);
    free(source);
    return rc;
}

static json_t *describe(admin *a, const char *name)
{
    uint64_t version = (uintptr_t)map_get(&a->versions, name);
    const tenant_config *from_config = config_tenant(a, name);
    if (version) {
        tenant_config t;
        err e;
        if (load_deployed(a, name, version, &t, &e) != 0)
            return json_pack("{s:s,s:I,s:s,s:s}", "name", name, "version", (json_int_t)version, "source", "deploy",
                             "state", "broken");
        json_t *j = json_pack("{s:s,s:I,s:s,s:s,s:s,s:o}", "name", name, "version", (json_int_t)version, "source",
                              "deploy", "state", "deployed", "tier", config_tier_name(t.tier), "routes", routes_json(&t));
        if (t.tier == TIER_CONTAINER)
            json_object_set_new(j, "bundle", json_string(t.main));
        config_tenant_free(&t);
        return j;
    }
    if (from_config)
        return json_pack("{s:s,s:I,s:s,s:s,s:s,s:o}", "name", name, "version", (json_int_t)0, "source", "config",
                         "state", "configured", "tier", config_tier_name(from_config->tier), "routes",
                         routes_json(from_config));
    return NULL;
}

static void list_workers(admin *a, http_writer *w)
{
    json_t *arr = json_array();
    map seen;
    map_init(&seen);
    size_t pos = 0;
    const char *name;
    while (map_next(&a->versions, &pos, &name, NULL)) {
        json_array_append_new(arr, describe(a, name));
        map_put(&seen, name, (void *)1);
    }
    for (size_t i = 0; i < a->cfg->nworkers; i++)
        if (!map_get(&seen, a->cfg->workers[i].name))
            json_array_append_new(arr, describe(a, a->cfg->workers[i].name));
    map_free(&seen);
    respond_json(w, 200, json_pack("{s:o}", "workers", arr));
}

/* Validates, stages and publishes (in the journal) the next version of
 * `name`: for the admin API and for changes from other nodes. 0, or the
 * HTTP status to report in *status with e. */
static int deploy_version(admin *a, const char *name, bool wasm, const char *script, size_t script_len,
                          const char *settings, uint64_t *out_version, atoll_config *warnings, int *status, err *e)
{
    uint64_t version = (uintptr_t)map_get(&a->versions, name) + 1;
    *status = 400;
    tenant_config t;
    bool parsed = false; /* t is to be freed */
    char *script_path = store_script_path(a->cfg->state_dir, name, version, wasm);
    char *source = xasprintf("deploy %s", name);
    int rc = store_stage(a->cfg->state_dir, name, version, wasm, script, script_len, settings, strlen(settings), e);
    if (rc != 0) {
        *status = 500;
        goto done;
    }
    if ((rc = config_tenant_from_json(source, settings, strlen(settings), name, script_path, &t, warnings, e)) != 0)
        goto discard;
    parsed = true;
    const char *route = NULL, *owner = route_taken(a, name, &t, &route);
    if (owner) {
        *status = 409;
        rc = err_set(e, -EEXIST, "routes: route '%s' is already routed to worker \"%s\"", route, owner);
        goto discard;
    }
    tenant_tier tier = t.tier;
    bool cordon_known = !t.cordon;
    for (size_t i = 0; t.cordon && i < a->cfg->nworkers && !cordon_known; i++)
        cordon_known = a->cfg->workers[i].cordon && strcmp(a->cfg->workers[i].cordon, t.cordon) == 0;
    if (!cordon_known) {
        rc = err_set(e, -EINVAL, "cordon: a cordon's processes start with the server: name one that a worker in "
                                 "the config file already uses");
        goto discard;
    }
    if (tier == TIER_WASM && !wasm) {
        rc = err_set(e, -EINVAL, "a wasm worker is deployed with Content-Type: application/wasm");
        goto discard;
    }
    if (tier == TIER_CONTAINER) {
        /* The containers process runs it: only when the server runs as root. */
        char *sock = containers_socket_path(a->cfg);
        bool served = access(sock, F_OK) == 0;
        free(sock);
        ctr_spec *spec = NULL;
        if (!served) {
            *status = 503;
            rc = err_set(e, -ENOTSUP, "container workers need atoll serve to run as root (namespaces, cgroups)");
        } else if ((rc = ctr_spec_load(t.main, &spec, e)) != 0) {
            err_prefix(e, "bundle %s", t.main);
        }
        ctr_spec_free(spec);
        if (rc != 0)
            goto discard;
    } else if ((rc = wasm ? tier_wasm_compile(a->cfg, script_path, e) : iso_check_script(script_path, e)) != 0) {
        /* A module is compiled here, once, into the cache the workers load from. */
        goto discard;
    }
    if ((rc = store_commit(a->cfg->state_dir, name, version, e)) != 0) {
        *status = 500;
        goto discard;
    }
    map_put(&a->versions, name, (void *)(uintptr_t)version);
    set_routes(a, name, &t);
    log_info("admin: deployed %s v%" PRIu64, name, version);
    *out_version = version;
    goto done;
discard:
    store_discard(a->cfg->state_dir, name, version);
done:
    if (parsed)
        config_tenant_free(&t);
    free(script_path);
    free(source);
    return rc;
}

static void deploy(admin *a, const char *name, const http_request *req, http_writer *w)
{
    const char *type = http_headers_get(&req->headers, "content-type");
    const char *script = req->body.data ? req->body.data : "";
    size_t script_len = req->body.len;
    char *settings = NULL;
    json_t *doc = NULL;
    uint64_t previous = (uintptr_t)map_get(&a->versions, name);
    if (script_len > MAX_SCRIPT_BYTES) {
        respond_error(w, 413, "the script is over 32 MiB");
        return;
    }
    bool wasm = type && strncasecmp(type, "application/wasm", 16) == 0;
    if (wasm) {
        /* A module's settings come in a header, as JSON; "tier" is implied. */
        const char *given = http_headers_get(&req->headers, "atoll-settings");
        json_t *s = given ? json_loads(given, JSON_REJECT_DUPLICATES, NULL) : json_object();
        if (!s || !json_is_object(s)) {
            respond_error(w, 400, "the Atoll-Settings header must hold a JSON object");
            json_decref(s);
            return;
        }
        json_object_set_new(s, "tier", json_string("wasm"));
        settings = json_dumps(s, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(s);
    } else if (type && strstr(type, "json")) {
        json_error_t jerr;
        doc = json_loadb(script, script_len, JSON_REJECT_DUPLICATES, &jerr);
        json_t *s = doc ? json_object_get(doc, "script") : NULL;
        json_t *tier = doc ? json_object_get(doc, "tier") : NULL;
        bool bundle = json_is_string(tier) && strcmp(json_string_value(tier), "container") == 0;
        if (!doc || !json_is_object(doc) || (!bundle && !json_is_string(s))) {
            char msg[300];
            snprintf(msg, sizeof msg, "expected a JSON object with a \"script\" string%s%s", doc ? "" : ": ",
                     doc ? "" : jerr.text);
            respond_error(w, 400, msg);
            json_decref(doc);
            return;
        }
        if (bundle) {
            /* A container: "main" names its bundle on this server's filesystem. */
            json_t *m = json_object_get(doc, "main");
            if (!json_is_string(m) || json_string_value(m)[0] != '/') {
                respond_error(w, 400, "a container worker needs \"main\": the absolute path of its OCI bundle "
                                      "directory on the server (bundles are not uploaded)");
                json_decref(doc);
                return;
            }
            script = "";
            script_len = 0;
        } else {
            script = json_string_value(s);
            script_len = json_string_length(s);
        }
        json_t *rest = json_deep_copy(doc);
        json_object_del(rest, "script");
        settings = json_dumps(rest, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(rest);
    } else if (previous) {
        /* A bare script keeps the settings of the version it replaces. */
        buf old;
        buf_init(&old, 1u << 20);
        char *path = store_settings_path(a->cfg->state_dir, name, previous);
        err e;
        if (file_read_all(path, 1u << 20, &old, &e) == 0 && old.data)
            settings = xstrdup(old.data);
        free(path);
        buf_free(&old);
    }
    if (!settings)
        settings = xstrdup("{}");

    atoll_config warnings = {0};
    uint64_t version;
    int status;
    err e;
    err_clear(&e);
    if (deploy_version(a, name, wasm, script, script_len, settings, &version, &warnings, &status, &e) != 0) {
        respond_error(w, status, e.msg);
    } else {
        json_t *reply = describe(a, name);
        json_t *warn = json_array();
        for (size_t i = 0; i < warnings.nwarnings; i++)
            json_array_append_new(warn, json_string(warnings.warnings[i]));
        json_object_set_new(reply, "warnings", warn);
        respond_json(w, previous || config_tenant(a, name) ? 200 : 201, reply);
        if (a->fleet)
            fleet_publish(a->fleet, &(fleet_change){.name = name, .wasm = wasm, .script = script,
                                                    .script_len = script_len, .settings = settings,
                                                    .settings_len = strlen(settings)});
    }
    config_free(&warnings);
    free(settings);
    json_decref(doc);
}

static void delete_worker(admin *a, const char *name, http_writer *w)
{
    if (!map_get(&a->versions, name)) {
        respond_error(w, config_tenant(a, name) ? 409 : 404,
                      config_tenant(a, name) ? "this worker comes from the config file; remove it there"
                                             : "no such worker");
        return;
    }
    err e;
    err_clear(&e);
    if (store_delete(a->cfg->state_dir, name, &e) != 0) {
        respond_error(w, 500, e.msg);
        return;
    }
    on_journal_entry(a, name, 0);
    log_info("admin: deleted %s", name);
    respond_json(w, 200, json_pack("{s:s,s:b}", "name", name, "deleted", 1));
    if (a->fleet)
        fleet_publish(a->fleet, &(fleet_change){.remove = true, .name = name});
}

/* Sums the counters every worker process publishes into Prometheus text. */
static void metrics(admin *a, http_writer *w)
{
    static const char *const fields[] = {"requests", "s2xx", "s3xx", "s4xx", "s5xx", "exceptions", "limit_cpu",
                                         "limit_memory", "limit_wall", "load_errors", "cold_starts", "cpu_ns",
                                         "bytes_in", "bytes_out", "resident", "heap_bytes", "scheduled_ok",
                                         "scheduled_errors"};
    enum { NF = sizeof fields / sizeof fields[0] };
    json_t *sum = json_object(); /* tenant -> [NF] */
    uint64_t processes = 0, resident = 0, rss = 0;
    char *dir_path = xasprintf("%s/metrics", a->cfg->state_dir);
    DIR *dir = opendir(dir_path);
    struct dirent *ent;
    while (dir && (ent = readdir(dir)) != NULL) {
        size_t len = strlen(ent->d_name);
        if (len < 6 || strcmp(ent->d_name + len - 5, ".json") != 0)
            continue;
        char *path = xasprintf("%s/%s", dir_path, ent->d_name);
        json_t *doc = json_load_file(path, 0, NULL);
        free(path);
        if (!doc)
            continue;
        processes++;
        resident += (uint64_t)json_integer_value(json_object_get(doc, "resident"));
        rss += (uint64_t)json_integer_value(json_object_get(doc, "rss_bytes"));
        const char *tenant;
        json_t *counters;
        json_object_foreach(json_object_get(doc, "tenants"), tenant, counters) {
            json_t *acc = json_object_get(sum, tenant);
            if (!acc) {
                acc = json_array();
                for (size_t i = 0; i < NF; i++)
                    json_array_append_new(acc, json_integer(0));
                json_object_set_new(sum, tenant, acc);
            }
            for (size_t i = 0; i < NF; i++) {
                json_t *slot = json_array_get(acc, i);
                json_integer_set(slot, json_integer_value(slot) + json_integer_value(json_object_get(counters, fields[i])));
            }
        }
        json_decref(doc);
    }
    if (dir)
        closedir(dir);
    free(dir_path);

    buf b;
    buf_init(&b, 256u << 20);
    buf_printf(&b, "# HELP atoll_worker_processes Worker processes reporting.\n# TYPE atoll_worker_processes gauge\n"
                   "atoll_worker_processes %" PRIu64 "\n", processes);
    buf_printf(&b, "# HELP atoll_isolates_resident Isolates loaded in worker processes.\n"
                   "# TYPE atoll_isolates_resident gauge\natoll_isolates_resident %" PRIu64 "\n", resident);
    buf_printf(&b, "# HELP atoll_process_resident_bytes Resident memory of the worker processes.\n"
                   "# TYPE atoll_process_resident_bytes gauge\natoll_process_resident_bytes %" PRIu64 "\n", rss);
    static const struct {
        const char *metric, *help, *type, *label;
        int field;
    } series[] = {
        {"atoll_requests_total", "Requests answered, by tenant and status class.", "counter", "class=\"2xx\"", 1},
        {"atoll_requests_total", NULL, NULL, "class=\"3xx\"", 2},
        {"atoll_requests_total", NULL, NULL, "class=\"4xx\"", 3},
        {"atoll_requests_total", NULL, NULL, "class=\"5xx\"", 4},
        {"atoll_errors_total", "Failed requests, by tenant and kind.", "counter", "kind=\"exception\"", 5},
        {"atoll_errors_total", NULL, NULL, "kind=\"cpu\"", 6},
        {"atoll_errors_total", NULL, NULL, "kind=\"memory\"", 7},
        {"atoll_errors_total", NULL, NULL, "kind=\"wall\"", 8},
        {"atoll_errors_total", NULL, NULL, "kind=\"load\"", 9},
        {"atoll_cold_starts_total", "Isolates started for a request.", "counter", NULL, 10},
        {"atoll_cpu_seconds_total", "CPU time spent in tenants' code (JavaScript and WebAssembly).", "counter", NULL, 11},
        {"atoll_request_bytes_total", "Request body bytes received.", "counter", NULL, 12},
        {"atoll_response_bytes_total", "Response body bytes sent.", "counter", NULL, 13},
        {"atoll_tenant_isolates_resident", "Isolates of the tenant loaded now.", "gauge", NULL, 14},
        {"atoll_isolate_heap_bytes", "JavaScript heap held by the tenant's isolates.", "gauge", NULL, 15},
        {"atoll_scheduled_total", "Cron triggers run, by tenant and outcome.", "counter", "outcome=\"ok\"", 16},
        {"atoll_scheduled_total", NULL, NULL, "outcome=\"error\"", 17},
    };
    for (size_t s = 0; s < sizeof series / sizeof series[0]; s++) {
        if (series[s].help)
            buf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", series[s].metric, series[s].help, series[s].metric,
                       series[s].type);
        const char *tenant;
        json_t *acc;
        json_object_foreach(sum, tenant, acc) {
            json_int_t v = json_integer_value(json_array_get(acc, (size_t)series[s].field));
            buf_printf(&b, "%s{tenant=\"%s\"%s%s} ", series[s].metric, tenant, series[s].label ? "," : "",
                       series[s].label ? series[s].label : "");
            if (series[s].field == 11)
                buf_printf(&b, "%.6f\n", (double)v / 1e9);
            else
                buf_printf(&b, "%" PRId64 "\n", (int64_t)v);
        }
    }
    json_decref(sum);
    http_headers h;
    http_headers_init(&h);
    http_headers_add_str(&h, "Content-Type", "text/plain; version=0.0.4");
    http_writer_respond(w, 200, &h, b.data ? b.data : "", b.len);
    http_headers_free(&h);
    buf_free(&b);
}

static void on_request(void *data, http_request *req, http_writer *w)
{
    admin *a = data;
    const char *path = req->target;
    size_t path_len = strcspn(path, "?");
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    if (path_len == 8 && strncmp(path, "/metrics", 8) == 0 && get) {
        if (a->cfg->public_metrics || authorize(a, req, w) == 0)
            metrics(a, w);
        return;
    }
    if (authorize(a, req, w) != 0)
        return;
    refresh(a);
    if (path_len == 8 && strncmp(path, "/workers", 8) == 0) {
        if (get)
            list_workers(a, w);
        else
            respond_error(w, 405, "use GET /workers, or PUT/DELETE /workers/NAME");
        return;
    }
    if (path_len > 9 && strncmp(path, "/workers/", 9) == 0) {
        char *name = xstrndup(path + 9, path_len - 9);
        if (!config_valid_name(name))
            respond_error(w, 400, "a worker name is 1 to 63 letters, digits, '-' or '_'");
        else if (strcmp(req->method, "PUT") == 0 || strcmp(req->method, "POST") == 0)
            deploy(a, name, req, w);
        else if (strcmp(req->method, "DELETE") == 0)
            delete_worker(a, name, w);
        else if (get) {
            json_t *j = describe(a, name);
            if (j)
                respond_json(w, 200, j);
            else
                respond_error(w, 404, "no such worker");
        } else
            respond_error(w, 405, "use GET, PUT or DELETE");
        free(name);
        return;
    }
    respond_error(w, 404, "not an admin endpoint: try /workers or /metrics");
}

static void on_drained(void *data)
{
    admin *a = data;
    uv_stop(&a->loop);
}

static void on_signal(uv_signal_t *s, int signum)
{
    admin *a = s->data;
    if (a->draining)
        return;
    a->draining = true;
    http_server_drain(a->http, on_drained, a);
}

/* A change another node published: applied here as if made through this
 * node's admin API (but not published again). */
static void on_fleet_change(void *data, const fleet_change *c)
{
    admin *a = data;
    err e;
    err_clear(&e);
    if (!config_valid_name(c->name)) {
        log_warn("deploy.redis: ignoring a change to an invalid name");
        return;
    }
    if (c->remove) {
        if (map_get(&a->versions, c->name) && store_delete(a->cfg->state_dir, c->name, &e) == 0) {
            on_journal_entry(a, c->name, 0);
            log_info("admin: deleted %s (from another node)", c->name);
        } else if (e.msg[0]) {
            log_error("deploy.redis: delete %s: %s", c->name, e.msg);
        }
        return;
    }
    /* Settings are NUL-terminated by hiredis; the JSON must be one string. */
    if (strlen(c->settings) != c->settings_len) {
        log_warn("deploy.redis: %s: settings with a NUL byte ignored", c->name);
        return;
    }
    atoll_config warnings = {0};
    uint64_t version;
    int status;
    if (deploy_version(a, c->name, c->wasm, c->script, c->script_len, c->settings, &version, &warnings, &status,
                       &e) != 0)
        log_error("deploy.redis: deploy of %s from another node failed: %s", c->name, e.msg);
    config_free(&warnings);
}

int admin_main(const atoll_config *cfg, const admin_options *opt)
{
    admin a = {.cfg = cfg, .opt = opt};
    /* The compiler's temporary files go where this process may write. */
    char *tmp = xasprintf("%s/wasm-cache", cfg->state_dir);
    setenv("TMPDIR", tmp, 1);
    free(tmp);
    map_init(&a.versions);
    if (uv_loop_init(&a.loop) != 0)
        return 1;
    map_init(&a.owners);
    a.routes = router_new();
    for (size_t i = 0; i < cfg->nworkers; i++)
        set_routes(&a, cfg->workers[i].name, NULL);
    refresh(&a);
    http_server_config hc;
    http_server_config_defaults(&hc);
    hc.max_body_bytes = MAX_SCRIPT_BYTES * 2; /* a script inside JSON grows with escaping */
    err e;
    err_clear(&e);
    int status = 1;
    if (http_server_new(&a.loop, &hc, on_request, &a, &a.http, &e) != 0 ||
        http_server_listen(a.http, cfg->admin_ip, cfg->admin_port, &e) != 0) {
        log_error("admin API: %s", e.msg);
        goto done;
    }
    if (cfg->deploy_redis &&
        fleet_open(&a.loop, cfg->deploy_redis, cfg->state_dir, on_fleet_change, &a, &a.fleet, &e) != 0) {
        log_error("admin API: %s", e.msg);
        goto done;
    }
    if (opt->sandbox) {
        sandbox_options so;
        sandbox_options_defaults(&so);
        so.uid = cfg->worker_uid;
        so.gid = cfg->worker_gid;
        const char *writable[] = {cfg->state_dir, NULL};
        so.writable = writable;
        /* Deploys compile WebAssembly modules with wasm2c and cc: this
         * process must exec them, which the workers' allow-list forbids.
         * It gets the container tier's default profile instead: exec
         * allowed, the dangerous calls Docker's profile blocks refused. */
        so.seccomp = false;
        if (sandbox_enter(&so, NULL, &e) != 0 || ctr_default_seccomp_install(&e) != 0) {
            log_error("admin API: %s", e.msg);
            goto done;
        }
    }
    log_info("admin API on http://%s:%d/ (token required)", cfg->admin_ip, http_server_port(a.http));
    uv_signal_init(&a.loop, &a.sigterm);
    uv_signal_init(&a.loop, &a.sigint);
    a.sigterm.data = a.sigint.data = &a;
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&a.sigterm, NULL);
    uv_close((uv_handle_t *)&a.sigint, NULL);
    status = 0;
done:
    fleet_close(a.fleet);
    uv_run(&a.loop, UV_RUN_NOWAIT);
    if (a.http)
        http_server_free(a.http);
    uv_run(&a.loop, UV_RUN_NOWAIT);
    uv_loop_close(&a.loop);
    map_free(&a.versions);
    router_free(a.routes);
    size_t pos = 0;
    void *owner;
    while (map_next(&a.owners, &pos, NULL, &owner))
        free(owner);
    map_free(&a.owners);
    return status;
}
