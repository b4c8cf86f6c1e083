/* Native env bindings: the registry that turns an iso_binding of some kind
 * (a KV namespace, ...) into the JavaScript value an isolate puts in
 * env[name]. Each kind registers its constructor once, at startup, before
 * any isolate is made; the isolate knows no kind by name. */
#ifndef ATOLL_JS_BINDING_H
#define ATOLL_JS_BINDING_H
#include <quickjs.h>
#include <uv.h>

#include "js/isolate.h"

/* Makes env[b->name] for an isolate on `loop`: a new value, or
 * JS_EXCEPTION with an exception pending (iso_new then fails with it). */
typedef JSValue iso_binding_create_fn(JSContext *ctx, uv_loop_t *loop, const iso_binding *b);

/* Registers (or replaces) the constructor for `kind` (a static string).
 * Not thread-safe: call before the loops start. 0, or -ENOSPC when the
 * table of kinds is full. */
int iso_binding_register(const char *kind, iso_binding_create_fn *create);
/* The constructor for kind, or NULL. */
iso_binding_create_fn *iso_binding_lookup(const char *kind);

#endif
