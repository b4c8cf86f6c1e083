/* The admin API process of `atoll serve`, on admin.listen (loopback by
 * default). Every call needs `Authorization: Bearer $ATOLL_ADMIN_TOKEN`
 * (GET /metrics may be public with admin.public_metrics):
 *   PUT    /workers/NAME   deploy or replace: the body is the script, or a
 *                          JSON object {"script": "...", routes, vars,
 *                          limits, …} (the tenant keys of atoll.jsonc), or
 *                          a WebAssembly module (Content-Type:
 *                          application/wasm) with its settings as JSON in
 *                          an Atoll-Settings header, or a container:
 *                          {"tier": "container", "main": "/abs/bundle",
 *                          routes, port, idle_timeout_s, …} naming a
 *                          bundle directory on the server (its config.json
 *                          is parsed at deploy; bundles are not uploaded)
 *   DELETE /workers/NAME
 *   GET    /workers        tenants with version and source
 *   GET    /workers/NAME
 *   GET    /metrics        Prometheus text, summed over worker processes
 * Deploys are validated (settings and a compile of the script), written
 * to the state directory, then published in the journal that every worker
 * follows: new requests get the new version at once, requests already
 * running finish on the old one. */
#ifndef ATOLL_SERVER_ADMIN_H
#define ATOLL_SERVER_ADMIN_H
#include <stdbool.h>

#include "server/config.h"

typedef struct admin_options {
    const char *token;     /* required; the caller refuses to start without one */
    bool sandbox;
} admin_options;

/* Runs the admin API until SIGTERM/SIGINT; returns the exit status. */
int admin_main(const atoll_config *cfg, const admin_options *opt);

#endif
