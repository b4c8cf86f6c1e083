/* The development server behind `atoll dev`: one worker served over HTTP on
 * one loop, one log line per request, and the worker reloaded when a file
 * in its directory tree changes. A worker that fails to load (or reload)
 * is reported and answered with a 500 page until it is fixed; the server
 * itself keeps running. SIGINT/SIGTERM drain in-flight requests, then
 * devserver_run returns 0. */
#ifndef ATOLL_SERVER_DEVSERVER_H
#define ATOLL_SERVER_DEVSERVER_H
#include <stdbool.h>

#include "core/err.h"
#include "http/server.h"
#include "js/isolate.h"

typedef struct devserver_options {
    const char *script;      /* path of the worker's main module or script */
    const char *ip;          /* default 127.0.0.1 */
    int port;                /* default 8787; 0 picks a free port */
    bool watch;              /* reload on file changes (default true) */
    bool log_requests;       /* one log line per request (default true) */
    iso_options isolate;
    http_server_config http;
} devserver_options;

void devserver_options_defaults(devserver_options *opt);
/* Serves until SIGINT or SIGTERM. Fails only when it cannot start (e.g. the
 * address is in use), with the reason in e. */
int devserver_run(const devserver_options *opt, err *e);

#endif
