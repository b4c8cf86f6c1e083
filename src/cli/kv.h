/* The `atoll kv` subcommand (src/cli/kv.c), for the CLI's command table. */
#ifndef ATOLL_CLI_KV_H
#define ATOLL_CLI_KV_H

/* argv[0] is "kv", argv[1] the action (get, put, delete, list). Returns the
 * process exit status: 0, 1 on a failed operation, 2 on a usage error. */
int cli_kv(int argc, char **argv);

#endif
