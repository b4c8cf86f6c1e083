/* Routes requests to tenants by Host and path, with wrangler's route
 * patterns: "host/path", where the host may start with "*" (any prefix:
 * "*.example.com" is every subdomain, "*example.com" also the apex, "*"
 * every host) and the path may end with "*" (any suffix). A scheme prefix
 * ("https://") is accepted and ignored; the query is never matched.
 * The most specific pattern wins: an exact host before a wildcard one, a
 * longer host before a shorter, an exact path before a prefix, a longer
 * path prefix before a shorter; for equal patterns, the first added. */
#ifndef ATOLL_SERVER_ROUTER_H
#define ATOLL_SERVER_ROUTER_H
#include <stddef.h>

#include "core/err.h"

typedef struct router router;

router *router_new(void);
/* Adds `pattern` routing to `target` (borrowed). Fails with -EINVAL and a
 * message for a malformed pattern. */
int router_add(router *r, const char *pattern, void *target, err *e);
/* The target of a route that matches exactly what `pattern` would match
 * (scheme, port and host case aside), or NULL (also for a bad pattern). */
void *router_find_same(const router *r, const char *pattern);
/* Removes every route to `target`; returns how many were removed. */
size_t router_remove_target(router *r, const void *target);
/* The target of the most specific matching route, or NULL. `host` may carry
 * a ":port" (ignored); `path` may carry a "?query" (ignored). */
void *router_match(const router *r, const char *host, const char *path);
size_t router_count(const router *r);
void router_free(router *r);

#endif
