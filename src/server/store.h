/* Deployed workers, persisted in the state directory so that deploys
 * survive restarts:
 *   STATE/deploys/NAME/VERSION.js     the script
 *   STATE/deploys/NAME/VERSION.json   its settings (routes, vars, limits …)
 *   STATE/journal                     one line per change, appended:
 *                                     "put NAME VERSION" or "delete NAME"
 * Files are written atomically and synced before their journal line is
 * appended and synced, so a journal entry never points at a partial file.
 * Only the admin process writes; worker processes follow the journal from
 * the offset they have read up to (they watch the directory for changes). */
#ifndef ATOLL_SERVER_STORE_H
#define ATOLL_SERVER_STORE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

int store_init(const char *state_dir, err *e);
/* Writes a version's files without publishing them (so the admin API can
 * validate the files where workers will read them); store_commit then
 * appends the journal line, store_discard removes the files instead. */
int store_stage(const char *state_dir, const char *name, uint64_t version, bool wasm, const void *script,
                size_t script_len, const char *settings, size_t settings_len, err *e);
int store_commit(const char *state_dir, const char *name, uint64_t version, err *e);
void store_discard(const char *state_dir, const char *name, uint64_t version);
int store_delete(const char *state_dir, const char *name, err *e);

/* Called per journal entry; version 0 means the worker was deleted. */
typedef void (*store_entry_cb)(void *data, const char *name, uint64_t version);
/* Reads complete journal lines from *offset on, advancing it. */
int store_follow(const char *state_dir, uint64_t *offset, store_entry_cb cb, void *data, err *e);

/* Paths of a version's files; the caller frees them. A script is
 * VERSION.js, a WebAssembly module VERSION.wasm (`wasm` says which). */
char *store_script_path(const char *state_dir, const char *name, uint64_t version, bool wasm);
/* The path of whichever of the two exists (VERSION.js when neither). */
char *store_find_script(const char *state_dir, const char *name, uint64_t version);
char *store_settings_path(const char *state_dir, const char *name, uint64_t version);

#endif
