/* The registry of native env binding kinds (see binding.h): a small fixed
 * table, filled at startup and read when isolates build their env. */
#include "js/binding.h"

#include <errno.h>
#include <string.h>

#define MAX_KINDS 16

static struct {
    const char *kind;
    iso_binding_create_fn *create;
} kinds[MAX_KINDS];
static size_t nkinds;

int iso_binding_register(const char *kind, iso_binding_create_fn *create)
{
    for (size_t k = 0; k < nkinds; k++) {
        if (strcmp(kinds[k].kind, kind) == 0) {
            kinds[k].create = create;
            return 0;
        }
    }
    if (nkinds == MAX_KINDS)
        return -ENOSPC;
    kinds[nkinds].kind = kind;
    kinds[nkinds].create = create;
    nkinds++;
    return 0;
}

iso_binding_create_fn *iso_binding_lookup(const char *kind)
{
    for (size_t k = 0; k < nkinds; k++)
        if (strcmp(kinds[k].kind, kind) == 0)
            return kinds[k].create;
    return NULL;
}
