/* Host/path routing with wrangler's patterns (see router.h).
 *
 * Routes with an exact host are kept in a hash table keyed by host, so a
 * lookup with thousands of tenants costs one hash probe plus a short scan;
 * wildcard-host routes are few in practice and kept in one list. Each list
 * is sorted most specific first, so the first match wins. */
#include "server/router.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

typedef struct route {
    char *host;        /* lower-case; for wildcard hosts, the part after '*' */
    char *path;        /* starts with '/'; for prefix paths, the part before '*' */
    bool host_wild;
    bool path_prefix;
    size_t order;      /* insertion order, the last tie-breaker */
    void *target;
} route;

typedef struct route_list {
    route *items;
    size_t count, cap;
} route_list;

typedef struct bucket {
    char *host;        /* NULL when empty */
    route_list routes;
} bucket;

struct router {
    bucket *table;     /* open addressing, power-of-two size */
    size_t table_size, hosts;
    route_list wild;   /* routes with a wildcard host */
    size_t added;
};

static uint64_t hash_host(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211u;
    }
    return h;
}

/* Negative when a is more specific than b. */
static int compare_routes(const void *pa, const void *pb)
{
    const route *a = pa, *b = pb;
    if (a->host_wild != b->host_wild)
        return a->host_wild ? 1 : -1;
    size_t ha = strlen(a->host), hb = strlen(b->host);
    if (ha != hb)
        return ha > hb ? -1 : 1;
    if (a->path_prefix != b->path_prefix)
        return a->path_prefix ? 1 : -1;
    size_t pa_len = strlen(a->path), pb_len = strlen(b->path);
    if (pa_len != pb_len)
        return pa_len > pb_len ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

static void list_add(route_list *l, route r)
{
    if (l->count == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4;
        l->items = xrealloc(l->items, l->cap * sizeof *l->items);
    }
    l->items[l->count++] = r;
    qsort(l->items, l->count, sizeof *l->items, compare_routes);
}

static void route_free(route *r)
{
    free(r->host);
    free(r->path);
}

static bucket *find_bucket(const router *r, const char *host, size_t len, bool *found)
{
    size_t mask = r->table_size - 1;
    for (size_t i = hash_host(host, len) & mask;; i = (i + 1) & mask) {
        bucket *b = &r->table[i];
        if (!b->host) {
            *found = false;
            return b;
        }
        if (strlen(b->host) == len && memcmp(b->host, host, len) == 0) {
            *found = true;
            return b;
        }
    }
}

static void grow_table(router *r)
{
    bucket *old = r->table;
    size_t old_size = r->table_size;
    r->table_size = old_size ? old_size * 2 : 64;
    r->table = xcalloc(r->table_size, sizeof *r->table);
    for (size_t i = 0; i < old_size; i++) {
        if (!old[i].host)
            continue;
        bool found;
        *find_bucket(r, old[i].host, strlen(old[i].host), &found) = old[i];
    }
    free(old);
}

router *router_new(void)
{
    router *r = xcalloc(1, sizeof *r);
    grow_table(r);
    return r;
}

static bool valid_host_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_' || c == ':' || c == '[' ||
           c == ']' || (unsigned char)c >= 0x80;
}

/* Parses pattern into *rt (host and path allocated). 0, or -EINVAL with a
 * message. */
static int parse_route(const char *pattern, route *rt, err *e)
{
    const char *p = pattern;
    if (strncmp(p, "http://", 7) == 0)
        p += 7;
    else if (strncmp(p, "https://", 8) == 0)
        p += 8;
    const char *slash = strchr(p, '/');
    size_t host_len = slash ? (size_t)(slash - p) : strlen(p);
    if (host_len == 0)
        return err_set(e, -EINVAL, "route '%s': no host (expected host/path, e.g. example.com/*)", pattern);
    *rt = (route){0};
    if (p[0] == '*') {
        rt->host_wild = true;
        p++;
        host_len--;
    }
    for (size_t i = 0; i < host_len; i++)
        if (!valid_host_char(p[i]))
            return err_set(e, -EINVAL, "route '%s': '%c' is not allowed in a host (a '*' may only start it)",
                           pattern, p[i]);
    /* A port in the pattern is not matched: requests are routed by host name. */
    size_t name_len = host_len;
    if (p[0] == '[') { /* an IPv6 literal: its name ends with the bracket */
        const char *close = memchr(p, ']', host_len);
        name_len = close ? (size_t)(close - p) + 1 : host_len;
    } else {
        const char *colon = memchr(p, ':', host_len);
        name_len = colon ? (size_t)(colon - p) : host_len;
    }
    const char *path = slash ? slash : "/*";
    size_t path_len = strcspn(path, "?");
    if (path[path_len] == '?')
        return err_set(e, -EINVAL, "route '%s': a query cannot be matched", pattern);
    const char *star = memchr(path, '*', path_len);
    if (star && star != path + path_len - 1)
        return err_set(e, -EINVAL, "route '%s': '*' may only end the path", pattern);
    rt->path_prefix = star != NULL;
    rt->path = xstrndup(path, star ? path_len - 1 : path_len);
    rt->host = xstrndup(p, name_len);
    for (char *c = rt->host; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return 0;
}

int router_add(router *r, const char *pattern, void *target, err *e)
{
    route rt;
    int rc = parse_route(pattern, &rt, e);
    if (rc != 0)
        return rc;
    rt.order = r->added++;
    rt.target = target;

    if (rt.host_wild) {
        list_add(&r->wild, rt);
        return 0;
    }
    if ((r->hosts + 1) * 2 > r->table_size)
        grow_table(r);
    bool found;
    bucket *b = find_bucket(r, rt.host, strlen(rt.host), &found);
    if (!found) {
        b->host = xstrdup(rt.host);
        r->hosts++;
    }
    list_add(&b->routes, rt);
    return 0;
}

static bool same_route(const route *a, const route *b)
{
    return a->host_wild == b->host_wild && a->path_prefix == b->path_prefix && strcmp(a->host, b->host) == 0 &&
           strcmp(a->path, b->path) == 0;
}

void *router_find_same(const router *r, const char *pattern)
{
    route rt;
    err e;
    if (parse_route(pattern, &rt, &e) != 0)
        return NULL;
    const route_list *l = &r->wild;
    if (!rt.host_wild) {
        bool found;
        const bucket *b = find_bucket(r, rt.host, strlen(rt.host), &found);
        l = found ? &b->routes : NULL;
    }
    void *target = NULL;
    for (size_t i = 0; l && i < l->count && !target; i++)
        if (same_route(&l->items[i], &rt))
            target = l->items[i].target;
    route_free(&rt);
    return target;
}

static size_t remove_from(route_list *l, const void *target)
{
    size_t kept = 0, removed = 0;
    for (size_t i = 0; i < l->count; i++) {
        if (l->items[i].target == target) {
            route_free(&l->items[i]);
            removed++;
        } else {
            l->items[kept++] = l->items[i];
        }
    }
    l->count = kept;
    return removed;
}

size_t router_remove_target(router *r, const void *target)
{
    /* Emptied buckets stay (with their host) so probe chains stay intact. */
    size_t removed = remove_from(&r->wild, target);
    for (size_t i = 0; i < r->table_size; i++)
        if (r->table[i].host)
            removed += remove_from(&r->table[i].routes, target);
    return removed;
}

static bool path_matches(const route *rt, const char *path, size_t path_len)
{
    size_t n = strlen(rt->path);
    if (rt->path_prefix)
        return path_len >= n && memcmp(path, rt->path, n) == 0;
    return path_len == n && memcmp(path, rt->path, n) == 0;
}

static void *first_match(const route_list *l, const char *host, size_t host_len, const char *path,
                         size_t path_len)
{
    for (size_t i = 0; i < l->count; i++) {
        const route *rt = &l->items[i];
        if (rt->host_wild) {
            size_t n = strlen(rt->host);
            if (host_len < n || memcmp(host + host_len - n, rt->host, n) != 0)
                continue;
        }
        if (path_matches(rt, path, path_len))
            return rt->target;
    }
    return NULL;
}

void *router_match(const router *r, const char *host, const char *path)
{
    /* Host names compare case-insensitively; the port is not part of the match. */
    char lower[256];
    size_t host_len = 0;
    if (host[0] == '[') {
        const char *end = strchr(host, ']');
        host_len = end ? (size_t)(end - host) + 1 : strlen(host);
    } else {
        host_len = strcspn(host, ":");
    }
    if (host_len >= sizeof lower)
        return NULL; /* longer than any DNS name: no route can match */
    for (size_t i = 0; i < host_len; i++)
        lower[i] = (char)tolower((unsigned char)host[i]);
    lower[host_len] = '\0';
    size_t path_len = strcspn(path, "?");

    bool found;
    const bucket *b = find_bucket(r, lower, host_len, &found);
    void *exact = found ? first_match(&b->routes, lower, host_len, path, path_len) : NULL;
    if (exact)
        return exact;
    return first_match(&r->wild, lower, host_len, path, path_len);
}

size_t router_count(const router *r)
{
    size_t n = r->wild.count;
    for (size_t i = 0; i < r->table_size; i++)
        n += r->table[i].routes.count;
    return n;
}

void router_free(router *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->wild.count; i++)
        route_free(&r->wild.items[i]);
    free(r->wild.items);
    for (size_t i = 0; i < r->table_size; i++) {
        bucket *b = &r->table[i];
        for (size_t j = 0; j < b->routes.count; j++)
            route_free(&b->routes.items[j]);
        free(b->routes.items);
        free(b->host);
    }
    free(r->table);
    free(r);
}
