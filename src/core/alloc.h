/* Host allocations that cannot fail in practice: these abort on OOM, as
 * redis and crun do. Anything a tenant can make big uses bounded buffers
 * (core/buf.h) or the isolate's own capped allocator instead. */
#ifndef ATOLL_CORE_ALLOC_H
#define ATOLL_CORE_ALLOC_H
#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
