/* The supervisor: the parent process of `atoll serve`. It starts the worker
 * processes (in groups, one group per cordon), replaces any worker that
 * dies (logging how it died, with backoff when one keeps dying), and on
 * SIGTERM/SIGINT asks every worker to drain (SIGTERM), waits for them, and
 * returns. It runs no tenant code itself and keeps no event loop, so a
 * crash in a worker can never take it down. */
#ifndef ATOLL_SERVER_SUPERVISOR_H
#define ATOLL_SERVER_SUPERVISOR_H
#include <stddef.h>

#include "core/err.h"

typedef struct supervisor_group {
    const char *name;     /* the cordon's name, for logs ("default" for the shared group) */
    int processes;        /* how many worker processes this group keeps running */
    /* Runs in the child; its return value is the worker's exit status. */
    int (*run)(const struct supervisor_group *group, int index, void *data);
    void *data;
} supervisor_group;

/* Runs until SIGTERM or SIGINT and every worker has exited; returns 0, or a
 * negative errno when no worker could be started. */
int supervisor_run(const supervisor_group *groups, size_t ngroups, err *e);

#endif
