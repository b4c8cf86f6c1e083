/* `atoll serve`: the multi-tenant server. serve_run starts the supervisor
 * with the configured number of worker processes; each worker process
 * (serve_worker) listens on the shared port (SO_REUSEPORT), enters the
 * sandbox, routes each request by Host and path to its tenant, starts the
 * tenant's isolate on its first request (a cold start) and keeps it while
 * it is used, writes one JSON access-log line per request to stdout, and
 * drains on SIGTERM. */
#ifndef ATOLL_SERVER_SERVE_H
#define ATOLL_SERVER_SERVE_H
#include <stdbool.h>

#include "core/err.h"
#include "server/config.h"

typedef struct serve_options {
    bool sandbox;          /* seccomp/namespaces/privilege drop in workers (default true) */
    bool access_log;       /* one JSON line per request on stdout (default true) */
} serve_options;

void serve_options_defaults(serve_options *opt);
/* Runs until SIGTERM/SIGINT has drained every worker; 0 on a clean stop. */
int serve_run(const atoll_config *cfg, const serve_options *opt, err *e);
/* One worker process's life (also usable in-process by tests); returns its exit status. */
int serve_worker(const atoll_config *cfg, const serve_options *opt, int index);

#endif
