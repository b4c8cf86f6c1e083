/* The process-wide bytecode cache: each script or module file is compiled
 * once to QuickJS bytecode, keyed by its absolute path, mtime and size, so
 * a second isolate for the same worker only deserializes bytecode (the cold
 * start headline), and a changed file (atoll dev) is compiled afresh. */
#ifndef ATOLL_JS_CACHE_H
#define ATOLL_JS_CACHE_H
#include <stdbool.h>
#include <stdint.h>
#include <quickjs.h>

#include "core/err.h"

typedef enum { ISO_CODE_DETECT, ISO_CODE_MODULE, ISO_CODE_SCRIPT } iso_code_kind;

/* Loads the file at abs_path into ctx as a compiled (not yet evaluated)
 * function or module: from the cache when the file is unchanged, else by
 * compiling the source (which is then cached). *is_module tells which it
 * was (for ISO_CODE_DETECT: a module if it has import/export, or .mjs).
 * Returns the function object, or JS_EXCEPTION with the JS exception
 * pending (a syntax error), or JS_EXCEPTION with no exception pending and
 * e filled (file unreadable). */
JSValue iso_cache_load(JSContext *ctx, const char *abs_path, iso_code_kind kind, bool *is_module,
                       err *e);

#endif
