/* One worker process of `atoll serve`: it listens on the shared port
 * (SO_REUSEPORT), enters the sandbox, routes each request to its tenant
 * (see tenants.h), writes one JSON access-log line per request to stdout,
 * forwards the requests of cordoned tenants to their cordon's process (a
 * cordon's process listens on a Unix socket instead of the public port),
 * follows the deploy journal, publishes its counters for the admin
 * process's /metrics, and drains on SIGTERM. */
#ifndef ATOLL_SERVER_WORKER_H
#define ATOLL_SERVER_WORKER_H
#include <stdbool.h>

#include "server/config.h"

typedef struct worker_options {
    bool sandbox;          /* seccomp, namespaces, no privileges (default true) */
    bool access_log;       /* JSON lines on stdout (default true) */
    const char *cordon;    /* the tenants this process hosts; NULL: those without a cordon */
    int index;             /* this process's number in its group */
} worker_options;

/* Runs the worker until drained; returns its exit status. */
int worker_main(const atoll_config *cfg, const worker_options *opt);
/* The Unix socket a cordon's process listens on (the caller frees it). */
char *worker_cordon_socket(const atoll_config *cfg, const char *cordon);
/* Where a worker publishes its counters (the caller frees the path). */
char *worker_metrics_path(const atoll_config *cfg, const char *cordon, int index);

#endif
