/* `atoll container run BUNDLE [-- ARGS]`: runs an OCI bundle in the
 * foreground, like `crun run`, for debugging and benchmarks. stdio is
 * inherited, SIGINT/SIGTERM/SIGHUP/SIGQUIT are forwarded to the
 * container's process (a second one sends SIGKILL), and atoll exits with its status (128+signal when
 * it was killed; 125 when atoll itself failed, as docker does). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli/cli.h"
#include "container/container.h"

#define EXIT_ATOLL_FAILED 125

static void usage(FILE *f)
{
    fprintf(f,
            "usage: atoll container run BUNDLE [-- ARGS...]\n"
            "\n"
            "Runs the OCI bundle BUNDLE (a directory with config.json and its rootfs)\n"
            "in the foreground and exits with the status of its process (128+N when\n"
            "killed by signal N, %d when atoll could not start it). ARGS replace\n"
            "process.args. SIGINT, SIGTERM, SIGHUP and SIGQUIT are forwarded to it;\n"
            "a second one kills it (it runs as pid 1, which ignores unhandled signals).\n",
            EXIT_ATOLL_FAILED);
}

static int run(const char *bundle, char **args)
{
    ctr_spec *spec = NULL;
    ctr *c = NULL;
    err e;
    int code = EXIT_ATOLL_FAILED, sfd = -1, status = 0, forwarded = 0;
    sigset_t fwd, old;

    err_clear(&e);
    if (ctr_spec_load(bundle, &spec, &e) < 0) {
        fprintf(stderr, "atoll: %s\n", e.msg);
        return EXIT_ATOLL_FAILED;
    }
    /* Blocked before the start so that a signal arriving meanwhile is
     * forwarded rather than killing atoll and orphaning the container. */
    sigemptyset(&fwd);
    sigaddset(&fwd, SIGINT);
    sigaddset(&fwd, SIGTERM);
    sigaddset(&fwd, SIGHUP);
    sigaddset(&fwd, SIGQUIT);
    sigprocmask(SIG_BLOCK, &fwd, &old);
    sfd = signalfd(-1, &fwd, SFD_CLOEXEC);
    if (sfd < 0) {
        fprintf(stderr, "atoll: signalfd: %s\n", strerror(errno));
        goto out;
    }
    /* Cheap, and the only chance to clean up after a SIGKILLed atoll. */
    ctr_sweep_stale();
    ctr_opts o;
    ctr_opts_init(&o);
    o.args = args && args[0] ? args : NULL;
    if (ctr_start(spec, &o, &c, &e) < 0) {
        fprintf(stderr, "atoll: %s\n", e.msg);
        goto out;
    }
    for (;;) {
        struct pollfd p[2] = {{.fd = ctr_pidfd(c), .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "atoll: poll: %s\n", strerror(errno));
            break;
        }
        if (p[1].revents & POLLIN) {
            struct signalfd_siginfo si;
            /* The process is pid 1 of its namespace: without a handler it
             * ignores SIGTERM and SIGINT. A second one kills it. */
            if (read(sfd, &si, sizeof si) == sizeof si)
                ctr_kill(c, ++forwarded > 1 ? SIGKILL : (int)si.ssi_signo);
        }
        if (p[0].revents & POLLIN)
            break;
    }
    if (ctr_wait(c, true, &status, &e) < 0)
        fprintf(stderr, "atoll: %s\n", e.msg);
    else
        code = ctr_exit_code(status);
out:
    ctr_destroy(c);
    ctr_spec_free(spec);
    if (sfd >= 0)
        close(sfd);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return code;
}

int cli_container(int argc, char **argv)
{
    /* argv[0] is "container". */
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "run") != 0) {
        fprintf(stderr, "atoll container: unknown command %s\n", argv[1]);
        usage(stderr);
        return 2;
    }
    if (argc >= 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc < 3 || argv[2][0] == '-') {
        usage(stderr);
        return 2;
    }
    char **args = NULL;
    if (argc > 3) {
        if (strcmp(argv[3], "--") != 0) {
            usage(stderr);
            return 2;
        }
        args = argv + 4;
    }
    return run(argv[2], args);
}
