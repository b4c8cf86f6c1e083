/* Worker-process sandbox: namespaces, capabilities, no_new_privs, seccomp
 * (see sandbox.h). The allow-list is written for what atoll's workers do:
 * a libuv event loop (epoll, sockets, timers, a thread pool), QuickJS
 * (memory), reading scripts and writing its state directory, outbound
 * connections for fetch(). It also covers what AddressSanitizer needs, so
 * the test suite runs sandboxed workers under the sanitizers. */
#include "sandbox/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

void sandbox_options_defaults(sandbox_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->namespaces = true;
    opt->readonly_root = true;
    opt->drop_user = true;
    opt->uid = 65534;
    opt->gid = 65534;
    opt->seccomp = true;
}

pid_t sandbox_fork(bool new_pid_namespace)
{
    if (new_pid_namespace) {
        pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD | CLONE_NEWPID, NULL, NULL, NULL, NULL);
        if (pid >= 0 || (errno != EPERM && errno != EINVAL && errno != ENOSPC))
            return pid;
    }
    return fork();
}

/* Every mount below "/" read-only, in one call where the kernel has
 * mount_setattr (5.12+); paths in `writable` are bind-mounted over
 * themselves first, so they become mounts of their own that stay writable. */
static int make_root_readonly(const char *const *writable, err *e)
{
    for (const char *const *p = writable; p && *p; p++)
        if (mount(*p, *p, NULL, MS_BIND | MS_REC, NULL) != 0)
            return err_set(e, -errno, "sandbox: bind %s: %s", *p, strerror(errno));
    struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};
    if (syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &ro, sizeof ro) != 0)
        return err_set(e, -errno, "sandbox: make / read-only (mount_setattr): %s", strerror(errno));
    struct mount_attr rw = {.attr_clr = MOUNT_ATTR_RDONLY};
    for (const char *const *p = writable; p && *p; p++)
        if (syscall(SYS_mount_setattr, AT_FDCWD, *p, AT_RECURSIVE, &rw, sizeof rw) != 0)
            return err_set(e, -errno, "sandbox: keep %s writable: %s", *p, strerror(errno));
    return 0;
}

static int enter_namespaces(const sandbox_options *opt, const char **skipped, err *e)
{
    if (unshare(CLONE_NEWNS | CLONE_NEWIPC) != 0) {
        if (errno == EPERM || errno == EINVAL) {
            if (skipped)
                *skipped = "mount and ipc namespaces (not permitted here)";
            return 0;
        }
        return err_set(e, -errno, "sandbox: unshare mount+ipc namespaces: %s", strerror(errno));
    }
    /* Mount events in here must never propagate back to the host. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        /* A chroot whose root is not a mount point: the namespace exists but
         * mounts cannot be made private, so nothing is mounted in it. */
        if (errno == EINVAL) {
            if (skipped)
                *skipped = "read-only filesystem (\"/\" is not a mount point, e.g. a plain chroot)";
            return 0;
        }
        return err_set(e, -errno, "sandbox: make mounts private: %s", strerror(errno));
    }
    return opt->readonly_root ? make_root_readonly(opt->writable, e) : 0;
}

static int drop_privileges(const sandbox_options *opt, err *e)
{
    /* The bounding set first: while we still may (CAP_SETPCAP). */
    for (int cap = 0; cap <= 63; cap++) {
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0)
            break; /* past the last capability this kernel knows */
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EPERM)
            return err_set(e, -errno, "sandbox: drop capability %d from the bounding set: %s", cap, strerror(errno));
    }
    if (opt->drop_user && geteuid() == 0 && opt->uid != 0) {
        if (setgroups(0, NULL) != 0)
            return err_set(e, -errno, "sandbox: setgroups: %s", strerror(errno));
        if (setresgid(opt->gid, opt->gid, opt->gid) != 0)
            return err_set(e, -errno, "sandbox: setresgid %u: %s", (unsigned)opt->gid, strerror(errno));
        if (setresuid(opt->uid, opt->uid, opt->uid) != 0)
            return err_set(e, -errno, "sandbox: setresuid %u: %s", (unsigned)opt->uid, strerror(errno));
    }
    /* Whatever the user, keep no effective, permitted or inheritable capability. */
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &hdr, data) != 0)
        return err_set(e, -errno, "sandbox: clear capabilities: %s", strerror(errno));
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return err_set(e, -errno, "sandbox: set no_new_privs: %s", strerror(errno));
    return 0;
}

/* System calls a worker may make. */
static const int allowed[] = {
    /* files and descriptors */
    SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev), SCMP_SYS(pread64),
    SCMP_SYS(pwrite64), SCMP_SYS(preadv), SCMP_SYS(pwritev), SCMP_SYS(close), SCMP_SYS(fstat),
    SCMP_SYS(newfstatat), SCMP_SYS(statx), SCMP_SYS(lseek), SCMP_SYS(openat), SCMP_SYS(readlinkat),
    SCMP_SYS(getdents64), SCMP_SYS(fcntl), SCMP_SYS(dup), SCMP_SYS(dup3), SCMP_SYS(pipe2),
    SCMP_SYS(fsync), SCMP_SYS(fdatasync), SCMP_SYS(ftruncate), SCMP_SYS(renameat), SCMP_SYS(renameat2),
    SCMP_SYS(unlinkat), SCMP_SYS(mkdirat), SCMP_SYS(faccessat), SCMP_SYS(faccessat2), SCMP_SYS(getcwd),
    SCMP_SYS(flock), SCMP_SYS(fallocate), SCMP_SYS(close_range),
#ifdef __NR_open
    SCMP_SYS(open), SCMP_SYS(stat), SCMP_SYS(lstat), SCMP_SYS(access), SCMP_SYS(readlink),
    SCMP_SYS(pipe), SCMP_SYS(dup2), SCMP_SYS(rename), SCMP_SYS(unlink), SCMP_SYS(mkdir),
    SCMP_SYS(poll), SCMP_SYS(select), SCMP_SYS(epoll_wait), SCMP_SYS(epoll_create),
#endif
    /* memory */
    SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mprotect), SCMP_SYS(mremap), SCMP_SYS(madvise),
    SCMP_SYS(brk), SCMP_SYS(mincore), SCMP_SYS(membarrier),
    /* event loop, timers, signals */
    SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_pwait2),
    SCMP_SYS(eventfd2), SCMP_SYS(timerfd_create), SCMP_SYS(timerfd_settime), SCMP_SYS(timerfd_gettime),
    SCMP_SYS(ppoll), SCMP_SYS(pselect6), SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigreturn), SCMP_SYS(sigaltstack), SCMP_SYS(rt_sigtimedwait), SCMP_SYS(signalfd4),
    SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres), SCMP_SYS(gettimeofday), SCMP_SYS(nanosleep),
    SCMP_SYS(clock_nanosleep), SCMP_SYS(restart_syscall), SCMP_SYS(rt_sigpending),
    /* per-thread CPU and wall timers of WebAssembly instances */
    SCMP_SYS(timer_create), SCMP_SYS(timer_settime), SCMP_SYS(timer_gettime), SCMP_SYS(timer_delete),
    SCMP_SYS(timer_getoverrun),
    /* sockets: serving, and outbound fetch() */
    SCMP_SYS(accept), SCMP_SYS(accept4), SCMP_SYS(recvfrom), SCMP_SYS(recvmsg), SCMP_SYS(recvmmsg),
    SCMP_SYS(sendto), SCMP_SYS(sendmsg), SCMP_SYS(sendmmsg), SCMP_SYS(shutdown), SCMP_SYS(getsockname),
    SCMP_SYS(getpeername), SCMP_SYS(setsockopt), SCMP_SYS(getsockopt), SCMP_SYS(connect),
    SCMP_SYS(socketpair),
    /* threads (libuv's pool; clone is limited to threads below) and process */
    SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(get_robust_list), SCMP_SYS(rseq),
    SCMP_SYS(set_tid_address), SCMP_SYS(gettid), SCMP_SYS(getpid), SCMP_SYS(getppid),
    SCMP_SYS(sched_yield), SCMP_SYS(sched_getaffinity), SCMP_SYS(exit), SCMP_SYS(exit_group),
    SCMP_SYS(getrandom), SCMP_SYS(uname), SCMP_SYS(getrusage), SCMP_SYS(sysinfo), SCMP_SYS(times),
    SCMP_SYS(prlimit64), SCMP_SYS(getrlimit), SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid),
    SCMP_SYS(getegid), SCMP_SYS(getresuid), SCMP_SYS(getresgid), SCMP_SYS(getgroups),
    SCMP_SYS(arch_prctl), SCMP_SYS(prctl), SCMP_SYS(wait4),
};

/* System calls that only an exploit would make: the process dies. */
static const int fatal[] = {
    SCMP_SYS(execve), SCMP_SYS(execveat), SCMP_SYS(ptrace), SCMP_SYS(process_vm_readv),
    SCMP_SYS(process_vm_writev), SCMP_SYS(mount), SCMP_SYS(umount2), SCMP_SYS(pivot_root),
    SCMP_SYS(chroot), SCMP_SYS(unshare), SCMP_SYS(setns), SCMP_SYS(init_module),
    SCMP_SYS(finit_module), SCMP_SYS(delete_module), SCMP_SYS(kexec_load), SCMP_SYS(bpf),
    SCMP_SYS(perf_event_open), SCMP_SYS(add_key), SCMP_SYS(request_key), SCMP_SYS(keyctl),
    SCMP_SYS(userfaultfd), SCMP_SYS(reboot), SCMP_SYS(swapon), SCMP_SYS(swapoff),
    SCMP_SYS(setuid), SCMP_SYS(setgid), SCMP_SYS(setresuid), SCMP_SYS(setresgid), SCMP_SYS(capset),
};

static int install_seccomp(const sandbox_options *opt, err *e)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (!ctx)
        return err_set(e, -ENOMEM, "sandbox: seccomp_init failed");
    int rc = 0;
    const char *step = "allow";
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0] && rc == 0; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
    step = "kill rule";
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0] && rc == 0; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, fatal[i], 0);
    if (rc)
        goto fail;
    step = "socket families";
    /* New sockets: IP for outbound fetch(), Unix for local services; no raw
     * sockets, netlink or packet sockets. */
    static const int families[] = {AF_INET, AF_INET6, AF_UNIX};
    for (size_t i = 0; i < sizeof families / sizeof families[0] && rc == 0; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)families[i]));
    if (rc)
        goto fail;
    step = "threads";
    /* clone only for threads (libuv's pool); clone3 cannot be inspected, so
     * it reports ENOSYS and glibc falls back to clone. */
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                          SCMP_A0(SCMP_CMP_MASKED_EQ, (scmp_datum_t)CLONE_THREAD, (scmp_datum_t)CLONE_THREAD));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    if (rc)
        goto fail;
    step = "ioctl";
    static const unsigned long ioctls[] = {FIONBIO, FIONREAD, FIOCLEX, FIONCLEX, TCGETS, TIOCGWINSZ};
    for (size_t i = 0; i < sizeof ioctls / sizeof ioctls[0] && rc == 0; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)ioctls[i]));
    if (rc)
        goto fail;
    step = "signals to itself";
    /* abort() and raise() signal the calling process only. */
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
    if (rc)
        goto fail;
    if (opt->allow_inotify) {
        step = "inotify";
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(inotify_init1), 0);
        if (rc == 0)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(inotify_add_watch), 0);
        if (rc == 0)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(inotify_rm_watch), 0);
        if (rc)
            goto fail;
    }
    step = "load";
    rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1); /* every thread, should one exist */
    if (rc == 0)
        rc = seccomp_load(ctx);
    if (rc)
        goto fail;
    seccomp_release(ctx);
    return 0;
fail:
    seccomp_release(ctx);
    return err_set(e, rc, "sandbox: seccomp %s: %s", step, strerror(-rc));
}

/* Threads of this process, from /proc/self/status (0 if unknown). */
static int thread_count(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[128];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Threads:", 8) == 0)
            n = atoi(line + 8);
    fclose(f);
    return n;
}

int sandbox_enter(const sandbox_options *opt, const char **skipped, err *e)
{
    int rc;
    if (skipped)
        *skipped = NULL;
    /* Namespaces, capabilities and no_new_privs are per thread: a thread
     * started earlier would keep them all. */
    if (thread_count() > 1)
        return err_set(e, -EBUSY, "sandbox: the process already has %d threads; enter the sandbox before starting any",
                       thread_count());
    if (opt->namespaces && geteuid() == 0 && (rc = enter_namespaces(opt, skipped, e)) != 0)
        return rc;
    if ((rc = drop_privileges(opt, e)) != 0)
        return rc;
    if (opt->seccomp && (rc = install_seccomp(opt, e)) != 0)
        return rc;
    return 0;
}
