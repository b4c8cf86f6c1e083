/* The container tier inside `atoll serve`. Containers need privileges the
 * sandboxed worker processes do not have (namespaces, cgroups, mounts), so
 * one supervised "containers" process runs them: worker processes forward
 * a container tenant's requests to it over a Unix socket in the state
 * directory (naming the tenant in an Atoll-Tenant header, which only that
 * socket trusts), and it proxies each one into the tenant's container.
 *
 * A container starts on its tenant's first request (which waits, bounded
 * by start_timeout_ms), stays while busy, stops after idle_timeout_s
 * without requests (scale to zero), is restarted on the next request if it
 * died (with backoff when it keeps dying), and is stopped — SIGTERM, then
 * SIGKILL after a grace period — when the server shuts down.
 *
 * Its HTTP server is reached one of two ways, as the tenant's config says:
 * socket activation (default: atoll creates the listening socket and hands
 * it over as fd 3 with LISTEN_FDS=1 and LISTEN_PID, the systemd
 * convention), or "port": atoll connects to 127.0.0.1:PORT inside the
 * container's own, otherwise empty, network namespace. */
#ifndef ATOLL_SERVER_TIER_CONTAINER_H
#define ATOLL_SERVER_TIER_CONTAINER_H
#include <stdbool.h>

#include "server/config.h"

/* The socket worker processes forward to; the caller frees it. */
char *containers_socket_path(const atoll_config *cfg);
/* Whether the config has container tenants (then the process is needed). */
bool containers_needed(const atoll_config *cfg);
/* The containers process's life; returns its exit status. */
int containers_main(const atoll_config *cfg);

#endif
