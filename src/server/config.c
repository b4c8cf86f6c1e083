/* Loading and validating atoll.jsonc (see config.h). */
#include "server/config.h"

#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <pwd.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/file.h"
#include "core/jsonc.h"
#include "server/cron.h"
#include "server/router.h"

#define MAX_CONFIG_BYTES (64u << 20)

/* What the readers below share: the file being read, for messages. */
typedef struct reader {
    const char *file;
    atoll_config *cfg;
    err *e;
} reader;

static void warn(reader *r, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void warn(reader *r, const char *key, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    atoll_config *cfg = r->cfg;
    cfg->warnings = xrealloc(cfg->warnings, (cfg->nwarnings + 1) * sizeof *cfg->warnings);
    cfg->warnings[cfg->nwarnings++] = xasprintf("%s: %s: %s", r->file, key, msg);
}

static int fail(reader *r, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(reader *r, const char *key, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (key[0] == '\0')
        return err_set(r->e, -EINVAL, "%s: %s", r->file, msg);
    return err_set(r->e, -EINVAL, "%s: %s: %s", r->file, key, msg);
}

static char *key_join(const char *parent, const char *key)
{
    return parent[0] ? xasprintf("%s.%s", parent, key) : xstrdup(key);
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Parses JSONC text (modified in place) into a JSON object. */
static int parse_jsonc(const char *path, char *text, size_t len, json_t **out, err *e)
{
    if (len == 0)
        return err_set(e, -EINVAL, "%s: the file is empty (expected a JSON object)", path);
    int rc = jsonc_to_json(text, len, e);
    if (rc != 0) {
        err_prefix(e, "%s", path);
        return rc;
    }
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return err_set(e, -EINVAL, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return err_set(e, -EINVAL, "%s: expected a JSON object at the top level", path);
    }
    *out = root;
    return 0;
}

static int load_file(const char *path, json_t **out, err *e)
{
    buf text;
    buf_init(&text, MAX_CONFIG_BYTES);
    int rc = file_read_all(path, MAX_CONFIG_BYTES, &text, e);
    if (rc == 0)
        rc = parse_jsonc(path, text.data, text.len, out, e);
    buf_free(&text);
    return rc;
}

static void check_keys(reader *r, json_t *obj, const char *keypath, const char *const *known)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        bool ok = key[0] == '$'; /* "$schema" and the like are for editors */
        for (size_t i = 0; !ok && known[i]; i++)
            ok = strcmp(key, known[i]) == 0;
        if (!ok) {
            char *k = key_join(keypath, key);
            warn(r, k, "unknown key, ignored");
            free(k);
        }
    }
}

static int get_string(reader *r, json_t *obj, const char *keypath, const char *key, bool required,
                      char **out)
{
    json_t *v = json_object_get(obj, key);
    char *k = key_join(keypath, key);
    int rc = 0;
    if (!v) {
        if (required)
            rc = fail(r, k, "missing (expected a string)");
    } else if (!json_is_string(v) || json_string_length(v) == 0) {
        rc = fail(r, k, "expected a non-empty string, found %s", json_is_string(v) ? "\"\"" : json_kind(v));
    } else {
        free(*out);
        *out = xstrdup(json_string_value(v));
    }
    free(k);
    return rc;
}

static int get_uint(reader *r, json_t *obj, const char *keypath, const char *key, uint64_t min,
                    uint64_t max, uint64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    char *k = key_join(keypath, key);
    int rc = 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) < min ||
        (uint64_t)json_integer_value(v) > max)
        rc = fail(r, k, "expected an integer from %llu to %llu, found %s", (unsigned long long)min,
                  (unsigned long long)max, json_is_integer(v) ? "one out of range" : json_kind(v));
    else
        *out = (uint64_t)json_integer_value(v);
    free(k);
    return rc;
}

static int get_bool(reader *r, json_t *obj, const char *keypath, const char *key, bool *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v)) {
        char *k = key_join(keypath, key);
        int rc = fail(r, k, "expected true or false, found %s", json_kind(v));
        free(k);
        return rc;
    }
    *out = json_is_true(v);
    return 0;
}

static int get_listen(reader *r, json_t *obj, const char *keypath, const char *key, char **ip, int *port)
{
    char *text = NULL;
    int rc = get_string(r, obj, keypath, key, false, &text);
    if (rc == 0 && text) {
        char *new_ip = NULL;
        if (config_parse_listen(text, &new_ip, port) != 0) {
            char *k = key_join(keypath, key);
            rc = fail(r, k, "expected \"ip:port\" (e.g. \"127.0.0.1:8080\" or \"[::1]:8080\"), found \"%s\"", text);
            free(k);
        } else {
            free(*ip);
            *ip = new_ip;
        }
    }
    free(text);
    return rc;
}

int config_parse_listen(const char *text, char **ip, int *port)
{
    const char *colon = strrchr(text, ':');
    if (!colon)
        return -EINVAL;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || p < 0 || p > 65535)
        return -EINVAL;
    size_t host_len = (size_t)(colon - text);
    if (host_len >= 2 && text[0] == '[' && text[host_len - 1] == ']')
        *ip = xstrndup(text + 1, host_len - 2);
    else if (host_len == 0)
        *ip = xstrdup("127.0.0.1");
    else if (memchr(text, ':', host_len) || memchr(text, '[', host_len))
        return -EINVAL; /* an IPv6 address needs brackets */
    else
        *ip = xstrndup(text, host_len);
    *port = (int)p;
    return 0;
}

bool config_valid_name(const char *s)
{
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_'))
            return false;
    return s[0] != '\0' && strlen(s) <= 63;
}

/* A string or an array of strings (wrangler allows either in places). */
static int get_string_list(reader *r, json_t *obj, const char *keypath, const char *key,
                           const char *object_field, char ***out, size_t *count)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    char *k = key_join(keypath, key);
    int rc = 0;
    if (!json_is_array(v)) {
        rc = fail(r, k, "expected an array, found %s", json_kind(v));
        goto done;
    }
    static const char *const route_keys[] = {"pattern", "zone_name", "zone_id", "custom_domain", NULL};
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item) {
        /* wrangler's route objects: { "pattern": "...", "zone_name": "..." } */
        if (object_field && json_is_object(item)) {
            char *ik = xasprintf("%s[%zu]", k, i);
            check_keys(r, item, ik, route_keys);
            free(ik);
            item = json_object_get(item, object_field);
        }
        if (!item || !json_is_string(item) || json_string_length(item) == 0) {
            rc = fail(r, k, "item %zu: expected a non-empty string%s", i,
                      object_field ? " or an object with \"pattern\"" : "");
            goto done;
        }
        *out = xrealloc(*out, (*count + 1) * sizeof **out);
        (*out)[(*count)++] = xstrdup(json_string_value(item));
    }
done:
    free(k);
    return rc;
}

static int parse_limits(reader *r, json_t *obj, const char *keypath, tenant_limits *l)
{
    json_t *v = json_object_get(obj, "limits");
    if (!v)
        return 0;
    char *k = key_join(keypath, "limits");
    int rc = 0;
    static const char *const known[] = {"cpu_ms", "memory_mb", "wall_ms", "subrequests", "max_body_mb", NULL};
    if (!json_is_object(v)) {
        rc = fail(r, k, "expected an object, found %s", json_kind(v));
        goto done;
    }
    check_keys(r, v, k, known);
    if ((rc = get_uint(r, v, k, "cpu_ms", 1, 300000, &l->cpu_ms)) ||
        (rc = get_uint(r, v, k, "memory_mb", 1, 65536, &l->memory_mb)) ||
        (rc = get_uint(r, v, k, "wall_ms", 1, 86400000, &l->wall_ms)) ||
        (rc = get_uint(r, v, k, "subrequests", 0, 100000, &l->subrequests)) ||
        (rc = get_uint(r, v, k, "max_body_mb", 1, 1 << 20, &l->max_body_mb)))
        goto done;
done:
    free(k);
    return rc;
}

static int parse_vars(reader *r, json_t *obj, const char *keypath, tenant_config *t)
{
    json_t *v = json_object_get(obj, "vars");
    if (!v)
        return 0;
    if (!json_is_object(v)) {
        char *k = key_join(keypath, "vars");
        int rc = fail(r, k, "expected an object of name: value, found %s", json_kind(v));
        free(k);
        return rc;
    }
    const char *name;
    json_t *value;
    json_object_foreach(v, name, value) {
        /* The config's entry overrides a var of the tenant's wrangler file
         * (one object cannot name a var twice: duplicate keys are errors). */
        size_t at = 0;
        while (at < t->nvars && strcmp(t->vars[at].name, name) != 0)
            at++;
        if (at == t->nvars) {
            t->vars = xrealloc(t->vars, (t->nvars + 1) * sizeof *t->vars);
            t->vars[t->nvars++].name = xstrdup(name);
        } else {
            free(t->vars[at].json);
        }
        t->vars[at].json = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!t->vars[at].json)
            t->vars[at].json = xstrdup("null");
    }
    return 0;
}

static int parse_kv(reader *r, json_t *obj, const char *keypath, tenant_config *t)
{
    json_t *v = json_object_get(obj, "kv_namespaces");
    if (!v)
        return 0;
    char *k = key_join(keypath, "kv_namespaces");
    int rc = 0;
    if (!json_is_array(v)) {
        rc = fail(r, k, "expected an array of { \"binding\", \"id\" }, found %s", json_kind(v));
        goto done;
    }
    static const char *const known[] = {"binding", "id", "preview_id", NULL};
    size_t i, before = t->nkv; /* bindings from an earlier file (wrangler), which these override */
    json_t *item;
    json_array_foreach(v, i, item) {
        char *ik = xasprintf("%s[%zu]", k, i);
        if (!json_is_object(item)) {
            rc = fail(r, ik, "expected an object with \"binding\" and \"id\", found %s", json_kind(item));
            free(ik);
            goto done;
        }
        check_keys(r, item, ik, known);
        kv_binding b = {0};
        if ((rc = get_string(r, item, ik, "binding", true, &b.binding)) ||
            (rc = get_string(r, item, ik, "id", true, &b.id))) {
            free(b.binding);
            free(b.id);
            free(ik);
            goto done;
        }
        size_t at = 0;
        while (at < t->nkv && strcmp(t->kv[at].binding, b.binding) != 0)
            at++;
        if (at >= before && at < t->nkv) {
            char *bk = key_join(ik, "binding");
            rc = fail(r, bk, "\"%s\" is already bound by %s[%zu]", b.binding, k, at - before);
            free(bk);
            free(b.binding);
            free(b.id);
            free(ik);
            goto done;
        }
        free(ik);
        if (at < t->nkv) {
            free(t->kv[at].binding);
            free(t->kv[at].id);
            t->kv[at] = b;
        } else {
            t->kv = xrealloc(t->kv, (t->nkv + 1) * sizeof *t->kv);
            t->kv[t->nkv++] = b;
        }
    }
done:
    free(k);
    return rc;
}

static const char *const tenant_keys[] = {
    "name", "main", "routes", "route", "vars", "kv_namespaces", "limits", "tier", "cordon",
    "triggers", "wrangler", "compatibility_date", "compatibility_flags", "preopen", "fetch_allow",
    "port", "idle_timeout_s", "start_timeout_ms", NULL,
};

/* Reads the tenant keys of `obj` (from `r->file`, relative paths against
 * `base_dir`) into t, overriding what t already holds. */
static int parse_tenant_keys(reader *r, json_t *obj, const char *keypath, const char *base_dir,
                             tenant_config *t)
{
    int rc;
    check_keys(r, obj, keypath, tenant_keys);
    if ((rc = get_string(r, obj, keypath, "name", false, &t->name)))
        return rc;
    char *main_rel = NULL;
    if ((rc = get_string(r, obj, keypath, "main", false, &main_rel)))
        return rc;
    if (main_rel) {
        free(t->main);
        t->main = main_rel[0] == '/' ? xstrdup(main_rel) : xasprintf("%s/%s", base_dir, main_rel);
        free(main_rel);
        free(t->source);
        t->source = xstrdup(r->file);
    }
    char *tier = NULL;
    if ((rc = get_string(r, obj, keypath, "tier", false, &tier)))
        return rc;
    if (tier) {
        if (strcmp(tier, "js") == 0)
            t->tier = TIER_JS;
        else if (strcmp(tier, "wasm") == 0)
            t->tier = TIER_WASM;
        else if (strcmp(tier, "container") == 0)
            t->tier = TIER_CONTAINER;
        else {
            char *k = key_join(keypath, "tier");
            rc = fail(r, k, "expected \"js\", \"wasm\" or \"container\", found \"%s\"", tier);
            free(k);
        }
        free(tier);
        if (rc)
            return rc;
    }
    if ((rc = get_string(r, obj, keypath, "cordon", false, &t->cordon)))
        return rc;
    if (t->cordon && !config_valid_name(t->cordon)) {
        char *k = key_join(keypath, "cordon");
        rc = fail(r, k, "expected 1 to 63 letters, digits, '-' or '_'");
        free(k);
        return rc;
    }
    char *preopen = NULL;
    if ((rc = get_string(r, obj, keypath, "preopen", false, &preopen)))
        return rc;
    uint64_t port = (uint64_t)t->container_port;
    if ((rc = get_uint(r, obj, keypath, "port", 1, 65535, &port)) ||
        (rc = get_uint(r, obj, keypath, "idle_timeout_s", 1, 86400 * 365, &t->idle_timeout_s)) ||
        (rc = get_uint(r, obj, keypath, "start_timeout_ms", 1, 600000, &t->start_timeout_ms)))
        return rc;
    t->container_port = (int)port;
    if (preopen) {
        free(t->preopen);
        t->preopen = preopen[0] == '/' ? xstrdup(preopen) : xasprintf("%s/%s", base_dir, preopen);
        free(preopen);
    }
    json_t *route = json_object_get(obj, "route");
    if (route) {
        json_t *wrapped = json_array();
        json_array_append(wrapped, route);
        json_t *holder = json_object();
        json_object_set_new(holder, "route", wrapped);
        rc = get_string_list(r, holder, keypath, "route", "pattern", &t->routes, &t->nroutes);
        json_decref(holder);
        if (rc)
            return rc;
    }
    if ((rc = get_string_list(r, obj, keypath, "routes", "pattern", &t->routes, &t->nroutes)))
        return rc;
    if (json_object_get(obj, "fetch_allow")) {
        /* Replaces a list from a wrangler file; [] allows nothing at all. */
        for (size_t i = 0; i < t->nfetch_allow; i++)
            free(t->fetch_allow[i]);
        free(t->fetch_allow);
        t->fetch_allow = NULL;
        t->nfetch_allow = 0;
        if ((rc = get_string_list(r, obj, keypath, "fetch_allow", NULL, &t->fetch_allow, &t->nfetch_allow)))
            return rc;
        t->fetch_allow = xrealloc(t->fetch_allow, (t->nfetch_allow + 1) * sizeof *t->fetch_allow);
        t->fetch_allow[t->nfetch_allow] = NULL;
    }
    if ((rc = parse_vars(r, obj, keypath, t)) || (rc = parse_kv(r, obj, keypath, t)) ||
        (rc = parse_limits(r, obj, keypath, &t->limits)))
        return rc;
    json_t *triggers = json_object_get(obj, "triggers");
    if (triggers) {
        char *k = key_join(keypath, "triggers");
        static const char *const known[] = {"crons", NULL};
        if (!json_is_object(triggers))
            rc = fail(r, k, "expected an object with \"crons\", found %s", json_kind(triggers));
        else {
            check_keys(r, triggers, k, known);
            rc = get_string_list(r, triggers, k, "crons", NULL, &t->crons, &t->ncrons);
        }
        free(k);
    }
    return rc;
}

static char *dir_of(const char *path)
{
    char *copy = xstrdup(path);
    char *dir = xstrdup(dirname(copy));
    free(copy);
    char resolved[PATH_MAX];
    if (realpath(dir, resolved)) {
        free(dir);
        dir = xstrdup(resolved);
    }
    return dir;
}

void config_tenant_free(tenant_config *t)
{
    free(t->name);
    free(t->main);
    free(t->cordon);
    free(t->preopen);
    free(t->source);
    for (size_t i = 0; i < t->nroutes; i++)
        free(t->routes[i]);
    free(t->routes);
    for (size_t i = 0; i < t->nvars; i++) {
        free(t->vars[i].name);
        free(t->vars[i].json);
    }
    free(t->vars);
    for (size_t i = 0; i < t->nkv; i++) {
        free(t->kv[i].binding);
        free(t->kv[i].id);
    }
    free(t->kv);
    for (size_t i = 0; i < t->ncrons; i++)
        free(t->crons[i]);
    free(t->crons);
    for (size_t i = 0; i < t->nfetch_allow; i++)
        free(t->fetch_allow[i]);
    free(t->fetch_allow);
}

static int validate_tenant(reader *r, const char *keypath, tenant_config *t);

static void tenant_defaults(tenant_config *t);

static int parse_tenant(reader *r, json_t *entry, const char *keypath, const char *base_dir, tenant_config *t)
{
    tenant_defaults(t);
    if (!json_is_object(entry))
        return fail(r, keypath, "expected an object describing a worker, found %s", json_kind(entry));
    int rc;
    char *wrangler = NULL;
    if ((rc = get_string(r, entry, keypath, "wrangler", false, &wrangler)))
        return rc;
    if (wrangler) {
        /* The tenant's own wrangler file first, then the keys beside "wrangler". */
        char *path = wrangler[0] == '/' ? xstrdup(wrangler) : xasprintf("%s/%s", base_dir, wrangler);
        free(wrangler);
        json_t *root = NULL;
        rc = load_file(path, &root, r->e);
        if (rc != 0) {
            err_prefix(r->e, "%s: %s.wrangler", r->file, keypath);
            free(path);
            return rc;
        }
        char *wdir = dir_of(path);
        reader wr = {.file = path, .cfg = r->cfg, .e = r->e};
        rc = parse_tenant_keys(&wr, root, "", wdir, t);
        free(wdir);
        json_decref(root);
        if (rc) {
            free(path);
            return rc;
        }
        free(path);
    }
    if ((rc = parse_tenant_keys(r, entry, keypath, base_dir, t)))
        return rc;
    return validate_tenant(r, keypath, t);
}

/* The checks every tenant passes, from a file or from a deploy. */
static int validate_tenant(reader *r, const char *keypath, tenant_config *t)
{
    int rc = 0;
    if (!t->name)
        return fail(r, keypath, "missing \"name\"");
    if (!config_valid_name(t->name))
        return fail(r, keypath, "name \"%s\": expected 1 to 63 letters, digits, '-' or '_'", t->name);
    if (!t->main)
        return fail(r, keypath, "worker \"%s\": missing \"main\" (the path of its entry module)", t->name);
    struct stat st;
    if (stat(t->main, &st) != 0)
        return fail(r, keypath, "worker \"%s\": main \"%s\": %s", t->name, t->main, strerror(errno));
    if (t->tier != TIER_CONTAINER && !S_ISREG(st.st_mode))
        return fail(r, keypath, "worker \"%s\": main \"%s\": not a regular file", t->name, t->main);
    if (t->tier == TIER_CONTAINER && !S_ISDIR(st.st_mode))
        return fail(r, keypath, "worker \"%s\": main \"%s\": expected an OCI bundle directory (rootfs and config.json)",
                    t->name, t->main);
    for (size_t i = 0; i < t->ncrons; i++) {
        cron_expr c;
        err ce;
        if (cron_parse(t->crons[i], &c, &ce) != 0)
            return fail(r, keypath, "worker \"%s\": triggers.crons[%zu]: %s", t->name, i, ce.msg);
    }
    /* A wasm tenant gets its vars as environment variables NAME=VALUE: a
     * name with '=' (or an empty one) would read back as another. */
    for (size_t j = 0; t->tier == TIER_WASM && j < t->nvars; j++)
        if (!t->vars[j].name[0] || strchr(t->vars[j].name, '=')) {
            char *k = key_join(keypath, "vars");
            rc = fail(r, k, "var \"%s\": a WebAssembly worker's vars are environment variables, whose names "
                            "cannot be empty or contain '='", t->vars[j].name);
            free(k);
            return rc;
        }
    /* env has one namespace: a var and a KV binding of the same name would
     * hide one another. */
    for (size_t i = 0; i < t->nkv; i++)
        for (size_t j = 0; j < t->nvars; j++)
            if (strcmp(t->kv[i].binding, t->vars[j].name) == 0) {
                char *k = key_join(keypath, "kv_namespaces");
                rc = fail(r, k, "binding \"%s\" is also the name of a var in \"vars\" (env has one namespace)",
                          t->kv[i].binding);
                free(k);
                return rc;
            }
    router *check = router_new();
    for (size_t i = 0; i < t->nroutes && rc == 0; i++) {
        err re;
        if (router_add(check, t->routes[i], t, &re) != 0)
            rc = fail(r, keypath, "worker \"%s\": %s", t->name, re.msg);
    }
    router_free(check);
    return rc;
}

static void tenant_defaults(tenant_config *t)
{
    tenant_limits_defaults(&t->limits);
    t->idle_timeout_s = 60;
    t->start_timeout_ms = 10000;
}

/* Two tenants with the same route: only one could ever be reached there
 * (the first added), so the file is refused instead. Routes are the same
 * when they match the same requests (scheme, port and host case aside). */
static int check_route_owners(reader *r, const atoll_config *cfg)
{
    router *seen = router_new();
    int rc = 0;
    for (size_t i = 0; i < cfg->nworkers && rc == 0; i++) {
        const tenant_config *t = &cfg->workers[i];
        for (size_t j = 0; j < t->nroutes && rc == 0; j++) {
            const tenant_config *owner = router_find_same(seen, t->routes[j]);
            if (owner && owner != t) {
                char keypath[64];
                snprintf(keypath, sizeof keypath, "workers[%zu].routes", i);
                rc = fail(r, keypath, "route '%s' is already routed to worker \"%s\" (workers[%zu])",
                          t->routes[j], owner->name, (size_t)(owner - cfg->workers));
            } else if (!owner) {
                err re;
                router_add(seen, t->routes[j], (void *)t, &re); /* validated already */
            }
        }
    }
    router_free(seen);
    return rc;
}

void tenant_limits_defaults(tenant_limits *l)
{
    /* Cloudflare Workers' paid plan, where it has a figure. */
    l->cpu_ms = 50;
    l->memory_mb = 128;
    l->wall_ms = 30000;
    l->subrequests = 50;
    l->max_body_mb = 100;
}

static const char *const top_keys[] = {
    "listen", "admin", "workers", "processes", "state_dir", "isolate_memory_budget_mb", "user", "kv", "deploy", NULL,
};

int config_load(const char *path, atoll_config *cfg, err *e)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->path = xstrdup(path);
    cfg->listen_ip = xstrdup("127.0.0.1");
    cfg->listen_port = 8080;
    cfg->admin_ip = xstrdup("127.0.0.1");
    cfg->admin_port = 8081;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->processes = cores > 0 ? (int)cores : 1;
    cfg->isolate_memory_budget_mb = 1024;
    cfg->state_dir = NULL;

    json_t *root = NULL;
    int rc = load_file(path, &root, e);
    if (rc != 0)
        goto fail;
    reader r = {.file = path, .cfg = cfg, .e = e};
    char *base_dir = dir_of(path);
    check_keys(&r, root, "", top_keys);
    uint64_t processes = (uint64_t)cfg->processes;
    if ((rc = get_listen(&r, root, "", "listen", &cfg->listen_ip, &cfg->listen_port)) ||
        (rc = get_uint(&r, root, "", "processes", 1, 1024, &processes)) ||
        (rc = get_string(&r, root, "", "state_dir", false, &cfg->state_dir)) ||
        (rc = get_uint(&r, root, "", "isolate_memory_budget_mb", 1, 1 << 24, &cfg->isolate_memory_budget_mb)))
        goto fail_dir;
    cfg->processes = (int)processes;
    if (!cfg->state_dir)
        cfg->state_dir = xasprintf("%s/.atoll", base_dir);
    else if (cfg->state_dir[0] != '/') {
        char *abs = xasprintf("%s/%s", base_dir, cfg->state_dir);
        free(cfg->state_dir);
    free(cfg->kv_redis);
    free(cfg->deploy_redis);
        cfg->state_dir = abs;
    }
    /* Workers run as the config's owner unless "user" names someone else. */
    struct stat cst;
    if (stat(path, &cst) == 0) {
        cfg->worker_uid = cst.st_uid;
        cfg->worker_gid = cst.st_gid;
    }
    json_t *user = json_object_get(root, "user");
    if (user) {
        struct passwd *pw = NULL;
        if (json_is_string(user))
            pw = getpwnam(json_string_value(user));
        else if (json_is_integer(user) && json_integer_value(user) >= 0 && json_integer_value(user) < 0xFFFFFFFFll)
            pw = getpwuid((uid_t)json_integer_value(user));
        if (!pw) {
            rc = fail(&r, "user", "expected the name or uid of an existing user (e.g. \"nobody\")");
            goto fail_dir;
        }
        cfg->worker_uid = pw->pw_uid;
        cfg->worker_gid = pw->pw_gid;
    }
    json_t *admin = json_object_get(root, "admin");
    if (admin) {
        static const char *const known[] = {"listen", "public_metrics", NULL};
        if (!json_is_object(admin)) {
            rc = fail(&r, "admin", "expected an object, found %s", json_kind(admin));
            goto fail_dir;
        }
        check_keys(&r, admin, "admin", known);
        if ((rc = get_listen(&r, admin, "admin", "listen", &cfg->admin_ip, &cfg->admin_port)) ||
            (rc = get_bool(&r, admin, "admin", "public_metrics", &cfg->public_metrics)))
            goto fail_dir;
    }
    /* kv: {redis, min_ttl}; deploy: {redis} (shared by the nodes of a fleet). */
    static const char *const sections[] = {"kv", "deploy"};
    for (int k = 0; k < 2; k++) {
        static const char *const kv_known[] = {"redis", "min_ttl", NULL}, *const deploy_known[] = {"redis", NULL};
        json_t *sec = json_object_get(root, sections[k]);
        if (!sec)
            continue;
        if (!json_is_object(sec)) {
            rc = fail(&r, sections[k], "expected an object, found %s", json_kind(sec));
            goto fail_dir;
        }
        check_keys(&r, sec, sections[k], k == 0 ? kv_known : deploy_known);
        char **url = k == 0 ? &cfg->kv_redis : &cfg->deploy_redis;
        if ((rc = get_string(&r, sec, sections[k], "redis", false, url)))
            goto fail_dir;
        if (*url && strncmp(*url, "redis://", 8) != 0) {
            rc = fail(&r, k == 0 ? "kv.redis" : "deploy.redis", "expected \"redis://host[:port][/db]\"");
            goto fail_dir;
        }
        if (k == 0 && (rc = get_uint(&r, sec, "kv", "min_ttl", 1, 60, &cfg->kv_min_ttl)))
            goto fail_dir;
    }
    json_t *workers = json_object_get(root, "workers");
    if (workers && !json_is_array(workers)) {
        rc = fail(&r, "workers", "expected an array of workers, found %s", json_kind(workers));
        goto fail_dir;
    }
    size_t i;
    json_t *entry;
    cfg->workers = xcalloc(workers ? json_array_size(workers) : 0, sizeof *cfg->workers);
    json_array_foreach(workers, i, entry) {
        char keypath[64];
        snprintf(keypath, sizeof keypath, "workers[%zu]", i);
        tenant_config *t = &cfg->workers[cfg->nworkers++];
        if ((rc = parse_tenant(&r, entry, keypath, base_dir, t)))
            goto fail_dir;
        for (size_t j = 0; j + 1 < cfg->nworkers; j++)
            if (strcmp(cfg->workers[j].name, t->name) == 0) {
                rc = fail(&r, keypath, "a worker named \"%s\" is already defined (workers[%zu])", t->name, j);
                goto fail_dir;
            }
    }
    if ((rc = check_route_owners(&r, cfg)))
        goto fail_dir;
    free(base_dir);
    json_decref(root);
    return 0;

fail_dir:
    free(base_dir);
fail:
    json_decref(root);
    config_free(cfg);
    return rc;
}

int config_tenant_from_json(const char *source, const char *json, size_t len, const char *name,
                            const char *main_path, tenant_config *t, atoll_config *warnings, err *e)
{
    memset(t, 0, sizeof *t);
    tenant_defaults(t);
    char *text = xstrndup(json, len);
    json_t *root = NULL;
    int rc = parse_jsonc(source, text, len, &root, e);
    free(text);
    if (rc != 0)
        return rc;
    reader r = {.file = source, .cfg = warnings, .e = e};
    /* name and main come from the deploy itself, not from the settings —
     * except a container's bundle, a directory on the server named by an
     * absolute "main" (bundles are not uploaded). */
    json_t *tier = json_object_get(root, "tier"), *bundle = json_object_get(root, "main");
    bool is_bundle = json_is_string(tier) && strcmp(json_string_value(tier), "container") == 0 &&
                     json_is_string(bundle) && json_string_value(bundle)[0] == '/';
    t->main = xstrdup(is_bundle ? json_string_value(bundle) : main_path);
    json_object_del(root, "name");
    json_object_del(root, "main");
    json_object_del(root, "wrangler");
    t->name = xstrdup(name);
    t->source = xstrdup(source);
    rc = parse_tenant_keys(&r, root, "", "/", t);
    if (rc == 0)
        rc = validate_tenant(&r, "", t);
    json_decref(root);
    if (rc != 0)
        config_tenant_free(t);
    return rc;
}

const char *config_tier_name(tenant_tier tier)
{
    switch (tier) {
    case TIER_WASM: return "wasm";
    case TIER_CONTAINER: return "container";
    default: return "js";
    }
}

void config_free(atoll_config *cfg)
{
    free(cfg->path);
    free(cfg->listen_ip);
    free(cfg->admin_ip);
    free(cfg->state_dir);
    free(cfg->kv_redis);
    free(cfg->deploy_redis);
    for (size_t i = 0; i < cfg->nworkers; i++)
        config_tenant_free(&cfg->workers[i]);
    free(cfg->workers);
    for (size_t i = 0; i < cfg->nwarnings; i++)
        free(cfg->warnings[i]);
    free(cfg->warnings);
    memset(cfg, 0, sizeof *cfg);
}
