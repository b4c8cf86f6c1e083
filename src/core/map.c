/* String-keyed hash map (see map.h). */
#include "core/map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

static char tombstone;
#define MAP_TOMBSTONE (&tombstone)

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211u;
    }
    return h;
}

void map_init(map *m)
{
    memset(m, 0, sizeof *m);
}

/* The slot holding key, or the slot where it would go. */
static map_slot *find(const map *m, const char *key, bool for_insert)
{
    size_t mask = m->cap - 1;
    map_slot *first_free = NULL;
    for (size_t i = hash(key) & mask;; i = (i + 1) & mask) {
        map_slot *s = &m->slots[i];
        if (!s->key)
            return for_insert && first_free ? first_free : s;
        if (s->key == MAP_TOMBSTONE) {
            if (!first_free)
                first_free = s;
        } else if (strcmp(s->key, key) == 0) {
            return s;
        }
    }
}

static void grow(map *m)
{
    map_slot *old = m->slots;
    size_t old_cap = m->cap;
    m->cap = old_cap ? old_cap * 2 : 16;
    /* Rehashing drops tombstones; shrink-free growth is enough here. */
    while (m->count * 2 >= m->cap)
        m->cap *= 2;
    m->slots = xcalloc(m->cap, sizeof *m->slots);
    m->used = m->count;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].key && old[i].key != MAP_TOMBSTONE)
            *find(m, old[i].key, true) = old[i];
    free(old);
}

void *map_get(const map *m, const char *key)
{
    if (!m->cap)
        return NULL;
    map_slot *s = find(m, key, false);
    return s->key ? s->value : NULL;
}

void *map_put(map *m, const char *key, void *value)
{
    if ((m->used + 1) * 4 >= m->cap * 3)
        grow(m);
    map_slot *s = find(m, key, true);
    if (s->key && s->key != MAP_TOMBSTONE) {
        void *old = s->value;
        s->value = value;
        return old;
    }
    if (!s->key)
        m->used++;
    s->key = xstrdup(key);
    s->value = value;
    m->count++;
    return NULL;
}

void *map_remove(map *m, const char *key)
{
    if (!m->cap)
        return NULL;
    map_slot *s = find(m, key, false);
    if (!s->key)
        return NULL;
    void *value = s->value;
    free(s->key);
    s->key = MAP_TOMBSTONE;
    s->value = NULL;
    m->count--;
    return value;
}

bool map_next(const map *m, size_t *pos, const char **key, void **value)
{
    for (; *pos < m->cap; (*pos)++) {
        map_slot *s = &m->slots[*pos];
        if (s->key && s->key != MAP_TOMBSTONE) {
            if (key)
                *key = s->key;
            if (value)
                *value = s->value;
            (*pos)++;
            return true;
        }
    }
    return false;
}

void map_free(map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != MAP_TOMBSTONE)
            free(m->slots[i].key);
    free(m->slots);
    map_init(m);
}
