/* `atoll kv get|put|delete|list`: operators' and tests' access to a KV
 * namespace, through the same store (and limits) the server uses. Until the
 * config loader lands, the namespace is named directly:
 *   --state-dir DIR --namespace ID [--redis redis://host:port/db]
 * (with the config: --config atoll.jsonc --binding NAME resolves to the
 * state_dir, the binding's namespace id and kv.redis of the tenant). */
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "kv/kv.h"
#include "server/config.h"

static const char usage[] =
    "usage: atoll kv get    STORE KEY\n"
    "       atoll kv put    STORE KEY (VALUE | --path FILE)\n"
    "                       [--ttl SECONDS | --expiration EPOCH_SECONDS] [--metadata JSON]\n"
    "       atoll kv delete STORE KEY\n"
    "       atoll kv list   STORE [--prefix P] [--limit N [--cursor C]]\n"
    "STORE is --config atoll.jsonc --binding NAME [--tenant NAME] (as `atoll serve` sees it),\n"
    "or --state-dir DIR --namespace ID [--redis URL]:\n"
    "       atoll kv get    --state-dir DIR --namespace ID [--redis URL] KEY\n"
    "       atoll kv put    --state-dir DIR --namespace ID [--redis URL] KEY (VALUE | --path FILE)\n"
    "                       [--ttl SECONDS | --expiration EPOCH_SECONDS] [--metadata JSON]\n"
    "       atoll kv delete --state-dir DIR --namespace ID [--redis URL] KEY\n"
    "       atoll kv list   --state-dir DIR --namespace ID [--redis URL] [--prefix P]\n"
    "                       [--limit N [--cursor C]]\n"
    "get writes the value to stdout; list prints JSON: all keys, or one page with --limit.\n"
    "Options may also follow KEY and VALUE; \"--\" ends them (a key starting with '-').\n";

typedef struct cli {
    uv_loop_t loop;
    kv_store *s;
    bool done;
    int status;
    err e;
    /* list */
    bool paged, first;
    char *cursor;
} cli;

static void finish(cli *c, int status, const err *e)
{
    c->done = true;
    c->status = status;
    if (e)
        c->e = *e;
}

static void on_get(void *data, int status, kv_value *v, const err *e)
{
    cli *c = data;
    if (!status && !v) {
        status = -ENOENT;
        err_set(&c->e, status, "key not found");
        e = &c->e;
    } else if (v && fwrite(v->value, 1, v->len, stdout) != v->len) {
        status = -EIO;
        err_set(&c->e, status, "write: %s", strerror(errno));
        e = &c->e;
    }
    finish(c, status, e);
}

static void on_done(void *data, int status, const err *e)
{
    finish(data, status, e);
}

static void put_json_string(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void on_list(void *data, int status, const kv_list_result *r, const err *e)
{
    cli *c = data;
    if (status) {
        finish(c, status, e);
        return;
    }
    for (size_t i = 0; i < r->count; i++) {
        const kv_key *k = &r->keys[i];
        printf("%s\n  {\"name\": ", c->first ? "" : ",");
        c->first = false;
        put_json_string(k->name, k->name_len);
        if (k->expiration)
            printf(", \"expiration\": %lld", (long long)k->expiration);
        if (k->metadata)
            printf(", \"metadata\": %s", k->metadata);
        putchar('}');
    }
    free(c->cursor);
    c->cursor = r->cursor ? xstrdup(r->cursor) : NULL;
    finish(c, 0, NULL);
}

static void on_closed(void *data)
{
    *(bool *)data = true;
}

static int wait_op(cli *c)
{
    while (!c->done)
        uv_run(&c->loop, UV_RUN_ONCE);
    c->done = false;
    return c->status;
}

/* Reads a file up to one byte more than KV allows, so kv_put reports the
 * size error with Workers KV's message. */
static int read_file(const char *path, buf *out, err *e)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return err_set(e, -errno, "%s: %s", path, strerror(errno));
    buf_init(out, (size_t)KV_MAX_VALUE_BYTES + 1);
    char chunk[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        size_t room = out->max - out->len;
        if (buf_append(out, chunk, n < room ? n : room) || n > room)
            break;
    }
    if (ferror(f))
        rc = err_set(e, -EIO, "%s: read error", path);
    if (f != stdin)
        fclose(f);
    return rc;
}

static bool parse_int(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return false;
    *out = v;
    return true;
}

/* --config/--binding/--tenant: the store and namespace `atoll serve` gives
 * that binding. The strings stay owned by conf. */
static int resolve_binding(const char *path, const char *binding, const char *tenant, atoll_config *conf,
                           kv_config *cfg, const char **ns, err *e)
{
    int rc = config_load(path, conf, e);
    if (rc)
        return rc;
    const tenant_config *found = NULL;
    const char *id = NULL;
    buf names;
    buf_init(&names, BUF_UNLIMITED);
    for (size_t i = 0; i < conf->nworkers; i++) {
        const tenant_config *t = &conf->workers[i];
        if (tenant && strcmp(t->name, tenant) != 0)
            continue;
        for (size_t k = 0; k < t->nkv; k++) {
            if (strcmp(t->kv[k].binding, binding) != 0)
                continue;
            buf_printf(&names, "%s%s", names.len ? ", " : "", t->name);
            if (!found || strcmp(id, t->kv[k].id) != 0) {
                if (found)
                    rc = -EINVAL;
                found = t;
                id = t->kv[k].id;
            }
        }
    }
    if (rc)
        err_set(e, rc, "%s: several tenants bind \"%s\" to different namespaces (%s); choose one with --tenant",
                path, binding, names.data);
    else if (!found)
        rc = tenant ? err_set(e, -ENOENT, "%s: tenant \"%s\" binds no KV namespace \"%s\"", path, tenant, binding)
                    : err_set(e, -ENOENT, "%s: no tenant binds a KV namespace \"%s\"", path, binding);
    buf_free(&names);
    if (rc)
        return rc;
    *ns = id;
    cfg->state_dir = conf->state_dir;
    cfg->redis_url = conf->kv_redis;
    cfg->min_ttl = (unsigned)conf->kv_min_ttl;
    /* The server makes it on its first start; the CLI may come first. */
    if (!cfg->redis_url)
        mkdir(conf->state_dir, 0755);
    return 0;
}

int cli_kv(int argc, char **argv)
{
    static const struct option opts[] = {
        {"state-dir", required_argument, NULL, 'd'}, {"namespace", required_argument, NULL, 'n'},
        {"redis", required_argument, NULL, 'r'},     {"ttl", required_argument, NULL, 't'},
        {"expiration", required_argument, NULL, 'x'}, {"metadata", required_argument, NULL, 'm'},
        {"path", required_argument, NULL, 'p'},      {"prefix", required_argument, NULL, 'P'},
        {"limit", required_argument, NULL, 'l'},     {"cursor", required_argument, NULL, 'c'},
        {"config", required_argument, NULL, 'C'},   {"binding", required_argument, NULL, 'B'},
        {"tenant", required_argument, NULL, 'T'},   {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *config_path = NULL, *binding = NULL, *tenant = NULL;
    atoll_config conf = {0};
    kv_config cfg = {0};
    const char *ns = NULL, *path = NULL, *cmd = NULL;
    kv_put_opts put = {0};
    kv_list_opts lo = {0};
    cli c = {.first = true};
    buf value;
    buf_init(&value, BUF_UNLIMITED);
    int opt, rc = 2;

    /* argv[0] is "kv"; the subcommand comes next. */
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc < 2 || argv[1][0] == '-') {
        fputs(usage, stderr);
        return 2;
    }
    cmd = argv[1];
    optind = 0; /* glibc: start afresh, whoever parsed before */
    /* Options may follow the key and value, as the README's examples put
     * them ("put KEY --path FILE --ttl N"); "--" ends them before a key
     * that starts with '-'. */
    while ((opt = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'd': cfg.state_dir = optarg; break;
        case 'n': ns = optarg; break;
        case 'r': cfg.redis_url = optarg; break;
        case 'm': put.metadata = optarg; put.metadata_len = strlen(optarg); break;
        case 'p': path = optarg; break;
        case 'P': lo.prefix = optarg; lo.prefix_len = strlen(optarg); break;
        case 'c': lo.cursor = optarg; break;
        case 't':
            put.has_ttl = parse_int(optarg, &put.expiration_ttl);
            if (!put.has_ttl)
                goto usage;
            break;
        case 'x':
            put.has_expiration = parse_int(optarg, &put.expiration);
            if (!put.has_expiration)
                goto usage;
            break;
        case 'l':
            lo.has_limit = c.paged = parse_int(optarg, &lo.limit);
            if (!lo.has_limit)
                goto usage;
            break;
        case 'C': config_path = optarg; break;
        case 'B': binding = optarg; break;
        case 'T': tenant = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        default: goto usage;
        }
    }
    char **rest = argv + 1 + optind;
    int nrest = argc - 1 - optind;
    bool is_get = !strcmp(cmd, "get"), is_put = !strcmp(cmd, "put"),
         is_del = !strcmp(cmd, "delete"), is_list = !strcmp(cmd, "list");
    err e = {0};
    if (config_path || binding) {
        if (!config_path || !binding || ns || cfg.state_dir || cfg.redis_url)
            goto usage;
        if ((rc = resolve_binding(config_path, binding, tenant, &conf, &cfg, &ns, &e))) {
            fprintf(stderr, "atoll kv %s: %s\n", cmd, e.msg);
            config_free(&conf);
            buf_free(&value);
            return 1;
        }
    }
    if (!ns || (!cfg.state_dir && !cfg.redis_url) || !(is_get || is_put || is_del || is_list)) {
        config_free(&conf);
        goto usage;
    }
    if (((is_get || is_del) && nrest != 1) || (is_list && nrest != 0) ||
        (is_put && nrest != (path ? 1 : 2))) {
        config_free(&conf);
        goto usage;
    }

    if (is_put && put.metadata) {
        /* Readers parse it as JSON (getWithMetadata, list): refuse what
         * they could not. */
        json_error_t jerr;
        json_t *m = json_loadb(put.metadata, put.metadata_len, JSON_DECODE_ANY, &jerr);
        if (!m) {
            fprintf(stderr, "atoll kv put: --metadata: expected JSON: %s\n", jerr.text);
            config_free(&conf);
            buf_free(&value);
            return 2;
        }
        json_decref(m);
    }
    if (is_put && path && (rc = read_file(path, &value, &e)))
        goto report;
    if (is_put && !path)
        buf_append_str(&value, rest[1]);
    uv_loop_init(&c.loop);
    if ((rc = kv_open(&c.loop, &cfg, &c.s, &e)))
        goto close_loop;
    const char *key = nrest ? rest[0] : NULL;
    size_t key_len = key ? strlen(key) : 0;
    if (is_get)
        rc = kv_get(c.s, ns, key, key_len, on_get, &c, &e);
    else if (is_put)
        rc = kv_put(c.s, ns, key, key_len, value.data, value.len, &put, on_done, &c, &e);
    else if (is_del)
        rc = kv_delete(c.s, ns, key, key_len, on_done, &c, &e);
    else
        printf("[");
    if (is_list) {
        /* Every page, unless one page was asked for with --limit. */
        do {
            if ((rc = kv_list(c.s, ns, &lo, on_list, &c, &e)) || (rc = wait_op(&c)))
                break;
            lo.cursor = c.cursor;
        } while (c.cursor && !c.paged);
        printf("%s]\n", c.first ? "" : "\n");
        if (!rc && c.paged && c.cursor)
            fprintf(stderr, "cursor: %s\n", c.cursor);
    } else if (!rc) {
        rc = wait_op(&c);
    }
    if (rc && c.e.code)
        e = c.e;
    bool closed = false;
    kv_close(c.s, on_closed, &closed);
    while (!closed)
        uv_run(&c.loop, UV_RUN_ONCE);
close_loop:
    uv_run(&c.loop, UV_RUN_DEFAULT);
    uv_loop_close(&c.loop);
    free(c.cursor);
report:
    fflush(stdout);
    buf_free(&value);
    config_free(&conf);
    if (rc) {
        fprintf(stderr, "atoll kv %s: %s\n", cmd, e.msg);
        return 1;
    }
    return 0;
usage:
    buf_free(&value);
    fputs(usage, stderr);
    return 2;
}
