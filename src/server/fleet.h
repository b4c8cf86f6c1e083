/* Deploys shared by a fleet of atoll nodes through Redis (config
 * `deploy.redis`): the admin process of each node appends every deploy and
 * deletion it accepts to one Redis stream, and applies the entries other
 * nodes appended to its own state directory (as if they had been made
 * through its own admin API), so stateless nodes behind any load balancer
 * serve the same tenants.
 *
 * Stream "atoll:deploys", one entry per change, fields: node (the id of the
 * node that made it, kept in STATE/node-id), op ("put" or "delete"), name,
 * wasm ("0"/"1"), script, settings (JSON). Each node remembers the last
 * entry it has seen in STATE/fleet-last-id, so a restarted node catches up
 * from there and a new node replays the whole stream. Versions are each
 * node's own (a node numbers the deploys it applies). Everything runs on
 * the admin process's loop (hiredis async); Redis being away only delays
 * the exchange: publishing is best effort (logged), reading resumes on
 * reconnection. */
#ifndef ATOLL_SERVER_FLEET_H
#define ATOLL_SERVER_FLEET_H
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "core/err.h"

typedef struct fleet fleet;

typedef struct fleet_change {
    bool remove;          /* a deletion: only name is set */
    const char *name;
    bool wasm;
    const char *script;
    size_t script_len;
    const char *settings; /* JSON text */
    size_t settings_len;
} fleet_change;

/* Called on the loop for each change another node published. */
typedef void (*fleet_apply_cb)(void *data, const fleet_change *c);

/* Starts following the stream at `url` ("redis://host[:port][/db]").
 * The caller owns *out until fleet_close. */
int fleet_open(uv_loop_t *loop, const char *url, const char *state_dir, fleet_apply_cb cb, void *data,
               fleet **out, err *e);
/* Appends a change this node made. Best effort: failures are logged. */
void fleet_publish(fleet *f, const fleet_change *c);
/* Closes the connections; run the loop until idle afterwards. */
void fleet_close(fleet *f);

#endif
