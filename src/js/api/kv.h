/* Workers KV bindings in an isolate: the native env binding kind
 * "kv_namespace" (see js/binding.h). env[name] is a KVNamespace object
 * with get, getWithMetadata, put, delete and list, each returning a promise
 * settled from the store's callback on the isolate's loop (kv/kv.h): no
 * call ever blocks the loop. A binding reaches exactly one namespace of
 * one store, both fixed by the host; JavaScript never names a namespace. */
#ifndef ATOLL_JS_API_KV_H
#define ATOLL_JS_API_KV_H
#include "kv/kv.h"

#define JSAPI_KV_KIND "kv_namespace"

/* The opaque of an iso_binding of kind JSAPI_KV_KIND. Borrowed by every
 * isolate made with it: the store and the id must outlive them. A NULL
 * store makes env[name] fail to build (the isolate does not load). */
typedef struct jsapi_kv_binding {
    kv_store *store;
    const char *namespace_id;
} jsapi_kv_binding;

/* Registers the kind with js/binding.h; call once at startup. 0 or -ENOSPC. */
int jsapi_kv_register(void);

#endif
