/* Unit tests for src/sandbox: each test forks a child that enters the
 * sandbox and reports what it could and could not do through its exit
 * status (the child leaves with _exit, so sanitizer exit hooks, which would
 * need ptrace, never run inside the sandbox). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>
#include <cmocka.h>

#include "sandbox/sandbox.h"

/* Runs fn in a child sandboxed with opt (NULL: the defaults); returns its wait status. */
static int in_sandbox_with(const sandbox_options *given, int (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sandbox_options opt;
        sandbox_options_defaults(&opt);
        if (given)
            opt = *given;
        err e;
        if (sandbox_enter(&opt, NULL, &e) != 0) {
            fprintf(stderr, "%s\n", e.msg);
            _exit(100);
        }
        _exit(fn());
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static int in_sandbox(int (*fn)(void))
{
    return in_sandbox_with(NULL, fn);
}

static int read_status_field(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    int value = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, strlen(field)) == 0)
            value = atoi(line + strlen(field) + 1);
    fclose(f);
    return value;
}

static int check_restrictions(void)
{
    if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
        return 1;
    if (read_status_field("Seccomp:") != 2) /* 2: filter mode */
        return 2;
    if (geteuid() == 0 || getuid() == 0)
        return 3;
    if (read_status_field("CapEff:") != 0)
        return 4;
    return 0;
}

static void enters_filter_mode_without_privileges(void **state)
{
    int status = in_sandbox(check_restrictions);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static int do_execve(void)
{
    char *argv[] = {"/bin/true", NULL};
    execve("/bin/true", argv, NULL);
    return 10; /* not reached: the filter kills the process */
}

static void execve_kills_the_process(void **state)
{
    int status = in_sandbox(do_execve);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSYS);
}

static int do_mount(void)
{
    mount("none", "/tmp", "tmpfs", 0, NULL);
    return 10;
}

static void mount_kills_the_process(void **state)
{
    int status = in_sandbox(do_mount);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSYS);
}

static int forbidden_calls_fail_cleanly(void)
{
    if (socket(AF_PACKET, SOCK_RAW, 0) != -1 || errno != EPERM)
        return 1;
    if (socket(AF_NETLINK, SOCK_RAW, 0) != -1 || errno != EPERM)
        return 2;
    if (fork() != -1 || errno != EPERM) /* a new process, not a thread */
        return 3;
    if (kill(1, 0) != -1 || errno != EPERM)
        return 4;
    int fd = socket(AF_INET, SOCK_STREAM, 0); /* outbound fetch() needs this */
    if (fd < 0)
        return 5;
    close(fd);
    return 0;
}

static void forbidden_calls_fail_with_eperm(void **state)
{
    int status = in_sandbox(forbidden_calls_fail_cleanly);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static int work_done;
static void work(uv_work_t *req) { work_done = 1; }
static void after_work(uv_work_t *req, int status) { work_done += status == 0; }
static void on_timer(uv_timer_t *t) { uv_close((uv_handle_t *)t, NULL); }

static int event_loop_runs(void)
{
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return 1;
    uv_timer_t timer;
    uv_timer_init(&loop, &timer);
    uv_timer_start(&timer, on_timer, 10, 0);
    uv_work_t req;
    if (uv_queue_work(&loop, &req, work, after_work) != 0) /* starts the thread pool */
        return 2;
    uv_run(&loop, UV_RUN_DEFAULT);
    if (work_done != 2)
        return 3;
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0)
        return 4;
    close(fd);
    return uv_loop_close(&loop) == 0 ? 0 : 5;
}

static void libuv_loop_and_thread_pool_work_inside(void **state)
{
    int status = in_sandbox(event_loop_runs);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static char writable_dir[] = "/tmp/atoll-sbx-XXXXXX";
static char readonly_dir[] = "/tmp/atoll-sbx-ro-XXXXXX";

static int writes_only_where_allowed(void)
{
    char *inside = NULL, *outside = NULL;
    if (asprintf(&inside, "%s/ok", writable_dir) < 0 || asprintf(&outside, "%s/no", readonly_dir) < 0)
        return 1;
    int fd = open(outside, O_CREAT | O_WRONLY, 0600);
    if (fd >= 0 || errno != EROFS)
        return 2;
    fd = open(inside, O_CREAT | O_WRONLY, 0600);
    if (fd < 0)
        return 3;
    close(fd);
    if (geteuid() != 0 || read_status_field("CapEff:") != 0) /* root kept, powerless */
        return 4;
    return 0;
}

static void filesystem_is_read_only_but_the_state_dir(void **state)
{
    if (geteuid() != 0)
        skip(); /* mount namespaces need root here */
    assert_non_null(mkdtemp(writable_dir));
    assert_non_null(mkdtemp(readonly_dir));
    const char *writable[] = {writable_dir, NULL};
    sandbox_options opt;
    sandbox_options_defaults(&opt);
    opt.uid = 0;
    opt.gid = 0;
    opt.writable = writable;
    int status = in_sandbox_with(&opt, writes_only_where_allowed);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The host's view is unchanged. */
    char *probe = NULL;
    assert_true(asprintf(&probe, "%s/host", readonly_dir) > 0);
    int fd = open(probe, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    unlink(probe);
    free(probe);
    probe = NULL;
    assert_true(asprintf(&probe, "%s/ok", writable_dir) > 0);
    assert_int_equal(unlink(probe), 0); /* written from inside, visible outside */
    free(probe);
    rmdir(writable_dir);
    rmdir(readonly_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(enters_filter_mode_without_privileges),
        cmocka_unit_test(execve_kills_the_process),
        cmocka_unit_test(mount_kills_the_process),
        cmocka_unit_test(forbidden_calls_fail_with_eperm),
        cmocka_unit_test(libuv_loop_and_thread_pool_work_inside),
        cmocka_unit_test(filesystem_is_read_only_but_the_state_dir),
    };
    return cmocka_run_group_tests_name("sandbox", tests, NULL, NULL);
}
