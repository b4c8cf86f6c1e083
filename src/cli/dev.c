/* `atoll dev`: serves one worker on localhost for development. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/alloc.h"
#include "core/err.h"
#include "server/devserver.h"

static const char dev_usage[] =
    "usage: atoll dev WORKER.js [--port N] [--ip ADDR] [--fetch-allow HOST]... [--no-watch] [--quiet]\n"
    "\n"
    "Serves one worker (an ES module with `export default { fetch }`, or a\n"
    "service-worker script with addEventListener(\"fetch\", ...)) over HTTP,\n"
    "logs one line per request, and reloads the worker when a file in its\n"
    "directory changes. Ctrl-C (SIGINT) or SIGTERM finishes the requests in\n"
    "flight and exits 0.\n"
    "\n"
    "options:\n"
    "  -p, --port N       port to listen on (default 8787; 0 picks a free port)\n"
    "      --ip ADDR      address to listen on (default 127.0.0.1; IPv6 allowed)\n"
    "      --fetch-allow HOST  a host fetch() may reach: example.com, *.example.com, *,\n"
    "                     an IP, or localhost (repeatable; replaces the default,\n"
    "                     loopback only)\n"
    "      --no-watch     do not reload the worker when its files change\n"
    "  -q, --quiet        no log line per request (errors are still logged)\n"
    "  -h, --help         show this help\n";

static int parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int cli_dev(int argc, char **argv)
{
    enum { OPT_IP = 1000, OPT_NO_WATCH, OPT_FETCH_ALLOW };
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'}, {"ip", required_argument, NULL, OPT_IP},
        {"no-watch", no_argument, NULL, OPT_NO_WATCH}, {"quiet", no_argument, NULL, 'q'},
        {"fetch-allow", required_argument, NULL, OPT_FETCH_ALLOW},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    devserver_options opt;
    devserver_options_defaults(&opt);
    int c, rc = 0;
    long port;
    const char **allow = NULL; /* borrowed from argv, NULL-terminated */
    size_t nallow = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "p:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (parse_int(optarg, 0, 65535, &port) != 0) {
                fprintf(stderr, "atoll dev: --port expects a number from 0 to 65535, not '%s'\n", optarg);
                rc = 2;
                goto done;
            }
            opt.port = (int)port;
            break;
        case OPT_FETCH_ALLOW:
            allow = xrealloc(allow, (nallow + 2) * sizeof *allow);
            allow[nallow++] = optarg;
            allow[nallow] = NULL;
            opt.isolate.fetch_allow = allow;
            break;
        case OPT_IP:
            opt.ip = optarg;
            break;
        case OPT_NO_WATCH:
            opt.watch = false;
            break;
        case 'q':
            opt.log_requests = false;
            break;
        case 'h':
            fputs(dev_usage, stdout);
            goto done;
        default:
            fputs(dev_usage, stderr);
            rc = 2;
            goto done;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "atoll dev: expected one WORKER.js\n\n%s", dev_usage);
        rc = 2;
        goto done;
    }
    opt.script = argv[optind];
    struct stat st;
    if (stat(opt.script, &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "atoll dev: %s: no such file\n", opt.script);
        rc = 2;
        goto done;
    }
    err e;
    err_clear(&e);
    if (devserver_run(&opt, &e) != 0) {
        fprintf(stderr, "atoll dev: %s\n", e.msg);
        rc = 1;
    }
done:
    free(allow);
    return rc;
}
