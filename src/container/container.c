/* The parent's side of a container: prepares everything the child needs
 * (argv, env, scratch space, the cgroup), clones the child into its new
 * namespaces (and cgroup), writes its id maps, lets it go and
 * learns from the sync socket whether it reached exec. Afterwards it
 * signals, waits for and tears down the container (container.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container/internal.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"

struct ctr {
    const ctr_spec *spec; /* borrowed */
    pid_t pid;            /* 0 once reaped */
    int pidfd;
    int status;           /* valid once reaped */
    ctr__cgroup *cg;
};

void ctr_opts_init(ctr_opts *o)
{
    memset(o, 0, sizeof *o);
    o->stdio[0] = o->stdio[1] = o->stdio[2] = -1;
}

static size_t key_len(const char *kv)
{
    return strcspn(kv, "=");
}

/* Appends or replaces KEY=VALUE in a NULL-terminated array sized by the caller. */
static void env_put(char **env, size_t *n, char *kv)
{
    for (size_t i = 0; i < *n; i++)
        if (key_len(env[i]) == key_len(kv) && strncmp(env[i], kv, key_len(kv)) == 0) {
            env[i] = kv;
            return;
        }
    env[(*n)++] = kv;
    env[*n] = NULL;
}

static void launch_free(ctr__launch *l)
{
    /* Only the strings atoll formatted are owned; the rest are borrowed. */
    free(l->listen_fds);
    free(l->listen_pid);
    free(l->envp);
    free(l->argv);
    free(l->scratch);
    free(l->tmp_fds);
}

static int launch_prepare(ctr__launch *l, const ctr_spec *s, const ctr_opts *o, err *e)
{
    size_t n;
    char *const *args = o->args ? o->args : s->args;
    memset(l, 0, sizeof *l);
    l->spec = s;
    if (!args || !args[0])
        return err_set(e, -EINVAL, "process.args: no command to run");
    for (n = 0; args[n]; n++)
        ;
    l->argv = xcalloc(n + 1, sizeof *l->argv);
    memcpy(l->argv, args, n * sizeof *l->argv);

    size_t n_env = 0, extra = 0;
    for (char **p = s->env; *p; p++)
        n_env++;
    for (char *const *p = o->env; p && *p; p++)
        extra++;
    l->envp = xcalloc(n_env + extra + 3, sizeof *l->envp);
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++)
        env_put(l->envp, &k, s->env[i]);
    for (char *const *p = o->env; p && *p; p++) {
        if (!strchr(*p, '='))
            return err_set(e, -EINVAL, "environment entry %s: expected KEY=VALUE", *p);
        env_put(l->envp, &k, *p);
    }
    if (o->listen_fds) {
        l->listen_fds = xasprintf("LISTEN_FDS=%zu", o->n_extra_fds);
        env_put(l->envp, &k, l->listen_fds);
        /* The pid is the child's own, known only after clone (1 in its
         * pid namespace); the child writes it into this room. */
        l->listen_pid = xcalloc(1, 11 + 16);
        memcpy(l->listen_pid, "LISTEN_PID=", 11);
        env_put(l->envp, &k, l->listen_pid);
    }

    const char *path = NULL;
    for (char **p = l->envp; *p; p++)
        if (strncmp(*p, "PATH=", 5) == 0)
            path = *p + 5;
    l->scratch_len = s->max_path + 1;
    size_t exec_len = (path ? strlen(path) : 64) + strlen(l->argv[0]) + 2;
    if (exec_len > l->scratch_len)
        l->scratch_len = exec_len;
    l->scratch = xmalloc(l->scratch_len);
    for (int i = 0; i < 3; i++)
        l->stdio[i] = o->stdio[i];
    l->extra_fds = o->extra_fds;
    l->n_extra_fds = o->n_extra_fds;
    l->tmp_fds = xcalloc(3 + o->n_extra_fds, sizeof *l->tmp_fds);
    l->last_cap = cap_max_bits() - 1;
    if (l->last_cap > 63)
        l->last_cap = 63;
    return 0;
}

static int write_idmap(pid_t pid, const char *file, const ctr__idmap *maps, size_t n,
                       uint32_t self, err *e)
{
    char *text = NULL, *path = xasprintf("/proc/%d/%s", (int)pid, file);
    int rc = 0;
    if (n == 0) {
        /* No mapping in the spec: root in the container is the caller. */
        text = xasprintf("0 %u 1\n", self);
    } else {
        text = xstrdup("");
        for (size_t i = 0; i < n; i++) {
            char *t = xasprintf("%s%u %u %u\n", text, maps[i].inside, maps[i].outside, maps[i].count);
            free(text);
            text = t;
        }
    }
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, text, strlen(text)) < 0)
        rc = err_set(e, -errno, "write %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(text);
    free(path);
    return rc;
}

static unsigned counter;

/* clone3's argument (linux/sched.h's struct clone_args, whose header
 * clashes with glibc's sched.h), up to the cgroup field (5.7). */
struct clone_args3 {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
        set_tid, set_tid_size, cgroup;
};
#define CLONE_INTO_CGROUP_ 0x200000000ULL

int ctr_start(const ctr_spec *s, const ctr_opts *o, ctr **out, err *e)
{
    ctr__launch l;
    ctr *c = xcalloc(1, sizeof *c);
    int sv[2] = {-1, -1}, rc, cgfd = -1;
    char *name = NULL;
    c->spec = s;
    c->pidfd = -1;
    *out = NULL;

    rc = launch_prepare(&l, s, o, e);
    if (rc < 0)
        goto fail;
    if (o->name && (!*o->name || strchr(o->name, '/') || strcmp(o->name, ".") == 0 ||
                    strcmp(o->name, "..") == 0)) {
        rc = err_set(e, -EINVAL, "name %s: not a plain cgroup name", o->name);
        goto fail;
    }
    name = o->name ? xstrdup(o->name) : xasprintf("atoll-%d-%u", (int)getpid(), __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
    rc = ctr__cgroup_create(s, o->ignore_cgroups_path ? NULL : s->cgroups_path, name, &c->cg, e);
    if (rc < 0)
        goto fail;
    rc = ctr__cgroup_join_fds(c->cg, l.join_fds, e);
    if (rc < 0)
        goto fail;
    l.n_join_fds = rc;
    if (ctr__cgroup_version(c->cg)[1] == '2') {
        cgfd = ctr__cgroup_clone_fd(c->cg, e);
        if (cgfd < 0) {
            rc = cgfd;
            goto fail;
        }
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        rc = err_set(e, -errno, "socketpair: %s", strerror(errno));
        goto fail;
    }
    l.sync_fd = sv[1];

    /* A fork-like clone (no new stack): the child continues below on a
     * copy of our memory, in its new namespaces (and, on v2, already in
     * its cgroup); the pidfd comes with it. */
    struct clone_args3 args = {
        .flags = (uint64_t)s->clone_flags | CLONE_PIDFD | (cgfd >= 0 ? CLONE_INTO_CGROUP_ : 0),
        .pidfd = (uint64_t)(uintptr_t)&c->pidfd,
        .exit_signal = SIGCHLD,
        .cgroup = cgfd >= 0 ? (uint64_t)cgfd : 0,
    };
    pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
    if (pid < 0) {
        rc = err_set(e, -errno, "clone3: %s", strerror(errno));
        goto fail;
    }
    if (pid == 0)
        ctr__child(&l);
    c->pid = pid;
    close(sv[1]);
    sv[1] = -1;
    while (l.n_join_fds > 0)
        close(l.join_fds[--l.n_join_fds]);
    if (cgfd >= 0)
        close(cgfd);
    cgfd = -1;
    if (s->clone_flags & CLONE_NEWUSER) {
        rc = write_idmap(pid, "uid_map", s->uid_maps, s->n_uid_maps, geteuid(), e);
        if (rc == 0)
            rc = write_idmap(pid, "gid_map", s->gid_maps, s->n_gid_maps, getegid(), e);
        if (rc < 0)
            goto fail;
    }
    /* Go. A child that already failed has closed its end: its message is
     * read below, so the send's error is not the one to report. */
    send(sv[0], "g", 1, MSG_NOSIGNAL);
    /* EOF: the child exec'd (the socket was close-on-exec). Otherwise
     * an errno and the step that failed. */
    char msg[sizeof(int) + 1100];
    size_t got = 0;
    uint64_t deadline = clock_mono_ns() + (uint64_t)o->start_timeout_ms * 1000000u;
    for (;;) {
        if (o->start_timeout_ms) {
            uint64_t now = clock_mono_ns();
            struct pollfd p = {.fd = sv[0], .events = POLLIN};
            int r = now >= deadline ? 0 : poll(&p, 1, (int)((deadline - now + 999999) / 1000000));
            if (r < 0 && errno == EINTR)
                continue;
            if (r == 0) {
                rc = err_set(e, -ETIMEDOUT, "setup did not finish within %u ms", o->start_timeout_ms);
                goto fail;
            }
        }
        ssize_t r = read(sv[0], msg + got, sizeof msg - 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got == sizeof msg - 1)
            break;
    }
    msg[got] = '\0';
    if (got) {
        int errnum = EIO;
        if (got > sizeof(int))
            memcpy(&errnum, msg, sizeof(int));
        rc = err_set(e, errnum > 0 ? -errnum : -EIO, "%s", got > sizeof(int) ? msg + sizeof(int) : "failed");
        goto fail;
    }
    close(sv[0]);
    launch_free(&l);
    free(name);
    *out = c;
    return 0;
fail:
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    if (c->pid > 0) {
        kill(c->pid, SIGKILL);
        while (waitpid(c->pid, NULL, __WALL) < 0 && errno == EINTR)
            ;
        c->pid = 0;
    }
    if (c->pidfd >= 0)
        close(c->pidfd);
    while (l.n_join_fds > 0)
        close(l.join_fds[--l.n_join_fds]);
    if (cgfd >= 0)
        close(cgfd);
    ctr__cgroup_kill(c->cg);
    ctr__cgroup_destroy(c->cg, NULL);
    if (l.spec)
        launch_free(&l);
    free(name);
    free(c);
    err_prefix(e, "start container");
    return rc;
}

pid_t ctr_pid(const ctr *c)
{
    return c->pid;
}

int ctr_pidfd(const ctr *c)
{
    return c->pidfd;
}

int ctr_kill(ctr *c, int sig)
{
    if (c->pid <= 0)
        return 0;
    /* Through the pidfd: never a recycled pid. */
    if (syscall(SYS_pidfd_send_signal, c->pidfd, sig, NULL, 0) < 0)
        return errno == ESRCH ? 0 : -errno;
    return 0;
}

/* After pid 1 of a pid namespace exits, the kernel kills the rest of it;
 * the cgroup catches anything that escaped that. */
static void teardown(ctr *c)
{
    ctr__cgroup_kill(c->cg);
}

int ctr_wait(ctr *c, bool block, int *status, err *e)
{
    if (c->pid > 0) {
        pid_t r;
        do
            r = waitpid(c->pid, &c->status, block ? 0 : WNOHANG);
        while (r < 0 && errno == EINTR);
        if (r < 0)
            return err_set(e, -errno, "wait for container: %s", strerror(errno));
        if (r == 0)
            return -EAGAIN;
        c->pid = 0;
        teardown(c);
    }
    if (status)
        *status = c->status;
    return 0;
}

int ctr_stop(ctr *c, unsigned grace_ms, int *status, err *e)
{
    if (c->pid > 0) {
        ctr_kill(c, SIGTERM);
        uint64_t deadline = clock_mono_ns() + (uint64_t)grace_ms * 1000000u;
        for (;;) {
            uint64_t now = clock_mono_ns();
            int left = now >= deadline ? 0 : (int)((deadline - now + 999999) / 1000000);
            struct pollfd p = {.fd = c->pidfd, .events = POLLIN};
            int r = poll(&p, 1, left);
            if (r > 0 || left == 0)
                break;
            if (r < 0 && errno != EINTR)
                break;
        }
        if (ctr_wait(c, false, status, NULL) == 0)
            return 0;
        ctr_kill(c, SIGKILL);
    }
    return ctr_wait(c, true, status, e);
}

void ctr_destroy(ctr *c)
{
    if (!c)
        return;
    if (c->pid > 0) {
        ctr_kill(c, SIGKILL);
        ctr_wait(c, true, NULL, NULL);
    }
    if (c->pidfd >= 0)
        close(c->pidfd);
    err e;
    err_clear(&e);
    ctr__cgroup_kill(c->cg);
    if (ctr__cgroup_destroy(c->cg, &e) < 0)
        log_warn("container cleanup: %s", e.msg);
    free(c);
}

int64_t ctr_oom_kills(const ctr *c)
{
    return c ? ctr__cgroup_oom_kills(c->cg) : -1;
}

int ctr_exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 255;
}
