/* The CLI's subcommands: each is a thin layer (one file per command) that
 * parses its options and calls into the library. Each returns the process
 * exit status: 0 success, 1 failure, 2 usage error. */
#ifndef ATOLL_CLI_H
#define ATOLL_CLI_H

#define ATOLL_VERSION "0.1.0"

int cli_bench(int argc, char **argv);
int cli_container(int argc, char **argv);
int cli_dev(int argc, char **argv);
int cli_kv(int argc, char **argv);
int cli_run(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_version(int argc, char **argv);
int cli_wasm(int argc, char **argv);

/* The per-user cache of compiled WebAssembly modules for `atoll run` and
 * `atoll wasm`: $XDG_CACHE_HOME/atoll/wasm, else ~/.cache/atoll/wasm.
 * Caller frees. */
char *cli_wasm_cache_dir(void);

/* True when argv holds -h or --help (before any "--"). */
int cli_wants_help(int argc, char **argv);

#endif
