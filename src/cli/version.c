/* `atoll version`: atoll's version and those of the libraries it embeds. */
#include <llhttp.h>
#include <stdio.h>
#include <uv.h>

#include "cli/cli.h"

int cli_version(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        printf("usage: atoll version\n\nPrints the versions of atoll, QuickJS, libuv and llhttp.\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "atoll version: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    printf("atoll %s\n", ATOLL_VERSION);
    printf("quickjs 2025-04-26\n");
    printf("libuv %s\n", uv_version_string());
    printf("llhttp %d.%d.%d\n", LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR, LLHTTP_VERSION_PATCH);
    return 0;
}
