/* Unit tests for src/server/supervisor: workers start, a killed worker is
 * replaced, and SIGTERM drains every worker before the supervisor returns. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "server/supervisor.h"

static int report_fd; /* workers write "group index pid\n" here when they start */
static volatile sig_atomic_t got_term;

static void on_term(int sig) { got_term = 1; }

static int worker(const supervisor_group *g, int index, void *data)
{
    signal(SIGTERM, on_term);
    char line[64];
    int n = snprintf(line, sizeof line, "%s %d %d\n", g->name, index, (int)getpid());
    if (write(report_fd, line, (size_t)n) != n)
        return 3;
    while (!got_term)
        pause();
    return 0; /* drained */
}

/* Reads one report line within 5 s; returns the pid. */
static int read_report(int fd, char *group, int *index)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char line[64];
    size_t len = 0;
    while (len < sizeof line - 1) {
        if (poll(&p, 1, 5000) != 1)
            return -1;
        if (read(fd, &line[len], 1) != 1)
            return -1;
        if (line[len++] == '\n')
            break;
    }
    line[len] = '\0';
    int pid;
    if (sscanf(line, "%15s %d %d", group, index, &pid) != 3)
        return -1;
    return pid;
}

static void replaces_dead_workers_and_drains_on_sigterm(void **state)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    report_fd = fds[1];
    supervisor_group groups[] = {
        {.name = "default", .processes = 2, .run = worker},
        {.name = "blue", .processes = 1, .run = worker},
    };
    fflush(NULL);
    pid_t sup = fork();
    assert_true(sup >= 0);
    if (sup == 0) {
        close(fds[0]);
        err e;
        _exit(supervisor_run(groups, 2, &e) == 0 ? 0 : 1);
    }
    close(fds[1]);

    int pids[3] = {0}, blue = 0, dflt = 0;
    for (int i = 0; i < 3; i++) {
        char group[16];
        int index;
        pids[i] = read_report(fds[0], group, &index);
        assert_true(pids[i] > 0);
        blue += strcmp(group, "blue") == 0;
        dflt += strcmp(group, "default") == 0;
    }
    assert_int_equal(blue, 1);
    assert_int_equal(dflt, 2);

    /* A worker killed outright is replaced by a new process of its group. */
    assert_int_equal(kill(pids[0], SIGKILL), 0);
    char group[16];
    int index;
    int replacement = read_report(fds[0], group, &index);
    assert_true(replacement > 0);
    assert_int_not_equal(replacement, pids[0]);

    /* SIGTERM: every worker drains, then the supervisor returns 0. */
    assert_int_equal(kill(sup, SIGTERM), 0);
    int status;
    assert_int_equal(waitpid(sup, &status, 0), sup);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    for (int i = 1; i < 3; i++)
        assert_int_equal(kill(pids[i], 0), -1); /* gone */
    assert_int_equal(kill(replacement, 0), -1);
    close(fds[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(replaces_dead_workers_and_drains_on_sigterm),
    };
    return cmocka_run_group_tests_name("supervisor", tests, NULL, NULL);
}
