/* A hash map from NUL-terminated string keys to borrowed pointers (open
 * addressing, FNV-1a). The map copies keys and owns the copies; values
 * are the caller's. */
#ifndef ATOLL_CORE_MAP_H
#define ATOLL_CORE_MAP_H
#include <stdbool.h>
#include <stddef.h>

typedef struct map_slot {
    char *key;       /* NULL: empty; MAP_TOMBSTONE: deleted */
    void *value;
} map_slot;

typedef struct map {
    map_slot *slots;
    size_t cap, count, used; /* used counts tombstones too */
} map;

void map_init(map *m);
void *map_get(const map *m, const char *key);
/* Inserts or replaces; returns the previous value or NULL. */
void *map_put(map *m, const char *key, void *value);
/* Removes; returns the value or NULL. */
void *map_remove(map *m, const char *key);
/* Iteration: for (size_t i = 0; map_next(m, &i, &key, &value);) */
bool map_next(const map *m, size_t *pos, const char **key, void **value);
void map_free(map *m);

#endif
