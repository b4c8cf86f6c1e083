/* `atoll serve`: the multi-tenant server. serve_run prepares the state
 * directory and starts the supervisor with, for each group of tenants
 * ("default", and one per cordon), the configured number of worker
 * processes (worker.h), plus the admin API process (admin.h) when
 * ATOLL_ADMIN_TOKEN is set. */
#ifndef ATOLL_SERVER_SERVE_H
#define ATOLL_SERVER_SERVE_H
#include <stdbool.h>

#include "core/err.h"
#include "server/config.h"

typedef struct serve_options {
    bool sandbox;          /* seccomp/namespaces/privilege drop in workers (default true) */
    bool access_log;       /* one JSON line per request on stdout (default true) */
    const char *admin_token; /* NULL: no admin API */
} serve_options;

void serve_options_defaults(serve_options *opt);
/* Runs until SIGTERM/SIGINT has drained every process; 0 on a clean stop. */
int serve_run(const atoll_config *cfg, const serve_options *opt, err *e);

#endif
