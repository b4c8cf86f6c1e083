/* atoll's command-line entry point: a table of subcommands, each in its own
 * file, as crun does. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"bench", cli_bench, "measure the tiers (and peers) on this machine: the isolation trade-off table"},
    {"container", cli_container, "run an OCI bundle in the foreground, like `crun run`"},
    {"dev", cli_dev, "serve one worker locally, reloading it when its files change"},
    {"kv", cli_kv, "read and write a KV namespace from the shell (get, put, delete, list)"},
    {"run", cli_run, "invoke a worker once, without a socket, and print the response"},
    {"serve", cli_serve, "serve every worker of atoll.jsonc: routing, limits, worker processes"},
    {"wasm", cli_wasm, "run a WASI module once as a WAGI handler (debugging)"},
    {"version", cli_version, "print the versions of atoll and its libraries"},
};

static void usage(FILE *out)
{
    fprintf(out, "atoll — an edge-function platform: Workers-style JavaScript isolates on one HTTP server\n\n"
                 "usage: atoll <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'atoll <command> --help' documents each command's options.\n");
}

int cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return 0;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)
        return cli_version(1, argv + 1);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "atoll: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
