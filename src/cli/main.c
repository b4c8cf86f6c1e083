/* atoll's command-line entry point: a table of subcommands. */
#include <stdio.h>
#include <string.h>

int cli_container(int argc, char **argv);

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "container") == 0)
        return cli_container(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "version") == 0) {
        printf("atoll 0.1.0\n");
        return 0;
    }
    fprintf(stderr, "usage: atoll <command>\n");
    return 2;
}
