/* `atoll serve`: the multi-tenant server, configured by atoll.jsonc. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/log.h"
#include "server/config.h"
#include "server/serve.h"

static const char serve_usage[] =
    "usage: atoll serve [--config FILE] [--listen ADDR:PORT] [--state-dir DIR] [--processes N]\n"
    "                   [--log-format json|text]\n"
    "                   [--no-sandbox] [--no-access-log]\n"
    "\n"
    "Serves every worker of the configuration (default ./atoll.jsonc): requests are\n"
    "routed by Host and path to their tenant, each tenant runs in its own isolate\n"
    "under its limits, in N worker processes sharing the listening port. One JSON\n"
    "access-log line per request goes to stdout, everything else to stderr.\n"
    "SIGTERM or SIGINT drains in-flight requests, then exits 0.\n"
    "\n"
    "With ATOLL_ADMIN_TOKEN set, the admin API listens on admin.listen (default\n"
    "127.0.0.1:8081): PUT/DELETE /workers/NAME deploys, GET /workers, GET /metrics.\n"
    "\n"
    "options:\n"
    "  -c, --config FILE     the configuration (default ./atoll.jsonc)\n"
    "  -l, --listen A:P      listen here instead of the config's \"listen\"\n"
    "      --state-dir DIR   keep deploys, caches and metrics here instead of the\n"
    "                        config's \"state_dir\" (default: .atoll beside the config)\n"
    "  -p, --processes N     worker processes (default: the config's \"processes\",\n"
    "                        else the number of cores)\n"
    "      --log-format F    json (default): one JSON object per log line, tenants'\n"
    "                        console output tagged with \"tenant\"; text: plain lines\n"
    "      --no-sandbox      run workers without seccomp, namespaces and privilege\n"
    "                        drop (debugging only)\n"
    "      --no-access-log   no access-log lines\n"
    "  -h, --help            show this help\n";

int cli_serve(int argc, char **argv)
{
    enum { OPT_NO_SANDBOX = 1000, OPT_NO_ACCESS_LOG, OPT_LOG_FORMAT, OPT_STATE_DIR };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"processes", required_argument, NULL, 'p'},
        {"no-sandbox", no_argument, NULL, OPT_NO_SANDBOX}, {"no-access-log", no_argument, NULL, OPT_NO_ACCESS_LOG},
        {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
        {"listen", required_argument, NULL, 'l'}, {"state-dir", required_argument, NULL, OPT_STATE_DIR},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    const char *config_path = "atoll.jsonc", *listen = NULL, *state_dir = NULL;
    long processes = 0;
    serve_options opt;
    serve_options_defaults(&opt);
    log_set_json(true);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:p:l:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'p': {
            char *end;
            processes = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || processes < 1 || processes > 1024) {
                fprintf(stderr, "atoll serve: --processes expects a number from 1 to 1024, not '%s'\n", optarg);
                return 2;
            }
            break;
        }
        case OPT_NO_SANDBOX:
            opt.sandbox = false;
            break;
        case 'l':
            listen = optarg;
            break;
        case OPT_STATE_DIR:
            state_dir = optarg;
            break;
        case OPT_LOG_FORMAT:
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0) {
                fprintf(stderr, "atoll serve: --log-format expects json or text, not '%s'\n", optarg);
                return 2;
            }
            log_set_json(strcmp(optarg, "json") == 0);
            break;
        case OPT_NO_ACCESS_LOG:
            opt.access_log = false;
            break;
        case 'h':
            fputs(serve_usage, stdout);
            return 0;
        default:
            fputs(serve_usage, stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "atoll serve: unexpected argument '%s'\n\n%s", argv[optind], serve_usage);
        return 2;
    }
    atoll_config cfg;
    err e;
    err_clear(&e);
    if (config_load(config_path, &cfg, &e) != 0) {
        fprintf(stderr, "atoll serve: %s\n", e.msg);
        return 2;
    }
    for (size_t i = 0; i < cfg.nwarnings; i++)
        log_warn("%s", cfg.warnings[i]);
    if (processes)
        cfg.processes = (int)processes;
    if (listen) {
        char *ip = NULL;
        int port;
        if (config_parse_listen(listen, &ip, &port) != 0) {
            fprintf(stderr, "atoll serve: --listen expects ip:port (e.g. 127.0.0.1:8080), not '%s'\n", listen);
            config_free(&cfg);
            return 2;
        }
        free(cfg.listen_ip);
        cfg.listen_ip = ip;
        cfg.listen_port = port;
    }
    if (state_dir) {
        free(cfg.state_dir);
        cfg.state_dir = realpath(state_dir, NULL);
        if (!cfg.state_dir && mkdir(state_dir, 0750) == 0)
            cfg.state_dir = realpath(state_dir, NULL);
        if (!cfg.state_dir) {
            fprintf(stderr, "atoll serve: --state-dir %s: %s\n", state_dir, strerror(errno));
            config_free(&cfg);
            return 2;
        }
    }
    opt.admin_token = getenv("ATOLL_ADMIN_TOKEN");
    int rc = serve_run(&cfg, &opt, &e);
    if (rc != 0)
        fprintf(stderr, "atoll serve: %s\n", e.msg);
    config_free(&cfg);
    return rc == 0 ? 0 : 1;
}
