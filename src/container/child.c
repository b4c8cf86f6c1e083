/* The container's side of the start: runs in the process cloned into the
 * new namespaces, between clone and exec. It joins its cgroup (v1; on v2
 * clone3 put it there), waits for the parent to write its uid/gid maps,
 * then builds the
 * container's filesystem (private mounts, the rootfs bound onto itself,
 * the spec's mounts, /proc, a minimal /dev, pivot_root, read-only
 * remounts), sets hostname and loopback, drops privileges (bounding set,
 * uid/gid, capabilities, no_new_privs, seccomp) and execs the process.
 *
 * The parent may be multi-threaded, so nothing here allocates: all memory
 * it needs was prepared by the parent (ctr__launch). Mount targets inside
 * the rootfs are resolved with openat2(RESOLVE_IN_ROOT), so a tenant's
 * symlink cannot point a mount at the host's files. The first failure is
 * written to the sync socket as "STEP: message" and ends the child; a
 * successful exec closes the socket (it is close-on-exec), which tells the
 * parent the container runs. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "container/internal.h"

static int sync_fd = -1;

/* Reports errnum and "STEP: message" to the parent and exits. */
__attribute__((noreturn, format(printf, 2, 3)))
static void fail(int errnum, const char *fmt, ...)
{
    char buf[sizeof(int) + 1024];
    char *msg = buf + sizeof(int);
    size_t room = sizeof buf - sizeof(int);
    memcpy(buf, &errnum, sizeof(int));
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= room)
        n = (int)room - 1;
    /* strerrordesc_np: the English text, without locale machinery. */
    const char *desc = strerrordesc_np(errnum);
    snprintf(msg + n, room - (size_t)n, ": %s", desc ? desc : "unknown error");
    if (write(sync_fd, buf, sizeof(int) + strlen(msg)) < 0) {
        /* nobody to tell */
    }
    _exit(127);
}

static int resolve(int rootfd, const char *path, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)(O_PATH | O_CLOEXEC | flags),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof how);
}

/* Opens (O_PATH) `path` inside the rootfs, creating missing directories
 * and, when `file`, an empty file as the last component (a mount point
 * for a bind of a file). Every step is resolved inside the rootfs. */
static int open_in_root(ctr__launch *l, int rootfd, const char *path, bool file)
{
    int fd = resolve(rootfd, path, 0);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    size_t len = strlen(path);
    if (len + 1 > l->scratch_len) {
        errno = ENAMETOOLONG;
        return -1;
    }
    char *p = l->scratch;
    memcpy(p, path, len + 1);
    /* Walk the components; create each missing one in its parent. */
    for (size_t i = 0; i < len;) {
        while (i < len && p[i] == '/')
            i++;
        size_t start = i;
        while (i < len && p[i] != '/')
            i++;
        if (start == i)
            break;
        bool last = i >= len || p[i + strspn(p + i, "/")] == '\0';
        char saved = p[i];
        p[i] = '\0';
        fd = resolve(rootfd, p, 0);
        if (fd < 0 && errno == ENOENT) {
            char c = p[start];
            p[start] = '\0';
            int parent = resolve(rootfd, start > 0 ? p : "/", O_DIRECTORY);
            p[start] = c;
            if (parent < 0)
                return -1;
            int rc;
            if (last && file) {
                rc = openat(parent, p + start, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
                if (rc >= 0)
                    close(rc);
            } else {
                rc = mkdirat(parent, p + start, 0755);
            }
            int saved_errno = errno;
            close(parent);
            if (rc < 0 && saved_errno != EEXIST) {
                errno = saved_errno;
                return -1;
            }
            fd = resolve(rootfd, p, 0);
        }
        p[i] = saved;
        if (fd < 0)
            return -1;
        if (last)
            return fd;
        close(fd);
    }
    return resolve(rootfd, path, 0);
}

/* mount(2) on an O_PATH fd, through its /proc/self/fd magic link. */
static int mount_fd(const char *src, int fd, const char *type, unsigned long flags, const char *data)
{
    char target[32];
    snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
    return mount(src, target, type, flags, data);
}

static bool spec_mounts(const ctr_spec *s, const char *dest)
{
    for (size_t i = 0; i < s->n_mounts; i++)
        if (strcmp(s->mounts[i].dest, dest) == 0)
            return true;
    return false;
}

/* Flags a bind remount must keep: in a user namespace the kernel refuses
 * to clear nosuid/nodev/noexec/atime flags locked by the outer mount, and
 * a bind of a read-only mount must not become writable. */
static unsigned long flags_of(const struct statvfs *sv)
{
    unsigned long f = 0;
    if (sv->f_flag & ST_RDONLY) f |= MS_RDONLY;
    if (sv->f_flag & ST_NOSUID) f |= MS_NOSUID;
    if (sv->f_flag & ST_NODEV) f |= MS_NODEV;
    if (sv->f_flag & ST_NOEXEC) f |= MS_NOEXEC;
    if (sv->f_flag & ST_NOATIME) f |= MS_NOATIME;
    if (sv->f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
    if (sv->f_flag & ST_RELATIME) f |= MS_RELATIME;
    return f;
}

static unsigned long locked_flags(const char *path)
{
    struct statvfs sv;
    return statvfs(path, &sv) < 0 ? 0 : flags_of(&sv);
}

static unsigned long locked_flags_fd(int fd)
{
    struct statvfs sv;
    return fstatvfs(fd, &sv) < 0 ? 0 : flags_of(&sv);
}

static void do_mount(ctr__launch *l, int rootfd, const ctr__mount *m)
{
    int fd;
    if (m->bind) {
        struct stat st;
        if (stat(m->source, &st) < 0)
            fail(errno, "mount %s: source %s", m->dest, m->source);
        fd = open_in_root(l, rootfd, m->dest, !S_ISDIR(st.st_mode));
        if (fd < 0)
            fail(errno, "mount %s: create mount point", m->dest);
        if (mount_fd(m->source, fd, NULL, MS_BIND | (m->flags & MS_REC), NULL) < 0)
            fail(errno, "mount %s: bind %s", m->dest, m->source);
        close(fd);
        /* Flags on a bind take a remount of the new mount (reopened: the
         * old fd still points below it). */
        if (m->flags & ~MS_REC) {
            fd = resolve(rootfd, m->dest, 0);
            if (fd < 0 || mount_fd(NULL, fd, NULL, MS_REMOUNT | MS_BIND | (m->flags & ~MS_REC) |
                                                  locked_flags_fd(fd), NULL) < 0)
                fail(errno, "mount %s: remount bind", m->dest);
            close(fd);
        }
    } else {
        const char *type = m->type, *data = m->data, *source = m->source;
        unsigned long flags = m->flags & ~MS_REC;
        /* The host's cgroup hierarchies are none of a tenant's business;
         * it gets an empty read-only directory where the spec wants one. */
        if (strcmp(type, "cgroup") == 0 || strcmp(type, "cgroup2") == 0) {
            type = "tmpfs";
            source = "cgroup";
            data = "mode=755,size=0";
            flags |= MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
        }
        fd = open_in_root(l, rootfd, m->dest, false);
        if (fd < 0)
            fail(errno, "mount %s: create mount point", m->dest);
        if (mount_fd(source, fd, type, flags, data) < 0)
            fail(errno, "mount %s", m->dest);
        close(fd);
    }
    if (m->propagation) {
        fd = resolve(rootfd, m->dest, 0);
        if (fd < 0 || mount_fd(NULL, fd, NULL, m->propagation, NULL) < 0)
            fail(errno, "mount %s: set propagation", m->dest);
        close(fd);
    }
}

static void simple_mount(ctr__launch *l, int rootfd, const char *dest, const char *type,
                         unsigned long flags, const char *data)
{
    ctr__mount m = {.dest = (char *)dest, .type = (char *)type, .source = (char *)type,
                    .data = (char *)data, .flags = flags};
    do_mount(l, rootfd, &m);
}

static void setup_dev(ctr__launch *l, int rootfd)
{
    static const char *const devices[] = {"null", "zero", "full", "random", "urandom", "tty"};
    const ctr_spec *s = l->spec;
    for (size_t i = 0; i < sizeof devices / sizeof *devices; i++) {
        char host[32], dest[32];
        snprintf(host, sizeof host, "/dev/%s", devices[i]);
        snprintf(dest, sizeof dest, "/dev/%s", devices[i]);
        int fd = open_in_root(l, rootfd, dest, true);
        struct stat st;
        if (fd < 0)
            fail(errno, "create %s", dest);
        /* Already a device (the spec bound the host's /dev): keep it. */
        if (fstat(fd, &st) == 0 && S_ISCHR(st.st_mode)) {
            close(fd);
            continue;
        }
        /* Bound from the host rather than mknod'ed: works in a user
         * namespace too, where mknod is not allowed. */
        if (mount_fd(host, fd, NULL, MS_BIND, NULL) < 0)
            fail(errno, "bind %s", dest);
        close(fd);
    }
    if (!spec_mounts(s, "/dev/shm"))
        simple_mount(l, rootfd, "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                     "mode=1777,size=65536k");
    int dev = resolve(rootfd, "/dev", O_DIRECTORY);
    if (dev < 0)
        fail(errno, "open /dev");
    static const char *const links[][2] = {
        {"/proc/self/fd", "fd"},      {"/proc/self/fd/0", "stdin"},
        {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
    };
    for (size_t i = 0; i < sizeof links / sizeof *links; i++)
        if (symlinkat(links[i][0], dev, links[i][1]) < 0 && errno != EEXIST)
            fail(errno, "symlink /dev/%s", links[i][1]);
    if (spec_mounts(s, "/dev/pts") && symlinkat("pts/ptmx", dev, "ptmx") < 0 && errno != EEXIST)
        fail(errno, "symlink /dev/ptmx");
    close(dev);
}

static void remount_ro(const char *path, bool bind_first)
{
    if (bind_first && mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) {
        if (errno == ENOENT)
            return;
        fail(errno, "readonly path %s: bind", path);
    }
    if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | locked_flags(path), NULL) < 0)
        fail(errno, "remount %s read-only", path);
}

static void mask(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        if (errno == ENOENT)
            return;
        fail(errno, "masked path %s", path);
    }
    int rc = S_ISDIR(st.st_mode)
        ? mount("tmpfs", path, "tmpfs", MS_RDONLY, "size=0")
        : mount("/dev/null", path, NULL, MS_BIND, NULL);
    if (rc < 0)
        fail(errno, "masked path %s", path);
}

static void setup_rootfs(ctr__launch *l)
{
    const ctr_spec *s = l->spec;
    /* Nothing we mount may propagate back to the host. */
    if (mount(NULL, "/", NULL, s->rootfs_propagation, NULL) < 0)
        fail(errno, "make mounts private");
    /* pivot_root needs the new root to be a mount point. */
    if (mount(s->rootfs, s->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
        fail(errno, "bind rootfs %s", s->rootfs);
    int rootfd = open(s->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        fail(errno, "open rootfs %s", s->rootfs);
    /* In a new user namespace we still have the host's uid, which the
     * maps need not contain (0 -> 100000): then the filesystems mounted
     * below (owned by the new namespace) refuse to create files for us
     * with EOVERFLOW. Be the container's root from here on, as crun and
     * runc are; the rootfs was reached with the host's uid (its bundle
     * directory may be private to it). EINVAL: the maps have no root,
     * stay as we are. */
    if (s->clone_flags & CLONE_NEWUSER) {
        if (syscall(SYS_setresgid, 0, 0, 0) < 0 && errno != EINVAL)
            fail(errno, "setgid 0 in the user namespace");
        if (syscall(SYS_setresuid, 0, 0, 0) < 0 && errno != EINVAL)
            fail(errno, "setuid 0 in the user namespace");
    }
    /* /proc and /dev come first so that the spec's /dev/pts, /dev/mqueue
     * land on them rather than below them. */
    if (!spec_mounts(s, "/proc"))
        simple_mount(l, rootfd, "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    if (!spec_mounts(s, "/dev"))
        simple_mount(l, rootfd, "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k");
    for (size_t i = 0; i < s->n_mounts; i++)
        do_mount(l, rootfd, &s->mounts[i]);
    setup_dev(l, rootfd);
    /* A missing process.cwd is made (as runc and crun do), inside the
     * rootfs and before it may turn read-only. */
    if (strcmp(s->cwd, "/") != 0) {
        int cwd = open_in_root(l, rootfd, s->cwd, false);
        if (cwd < 0)
            fail(errno, "process.cwd %s", s->cwd);
        close(cwd);
    }

    if (fchdir(rootfd) < 0)
        fail(errno, "chdir rootfs");
    close(rootfd);
    /* pivot_root(".", ".") stacks the old root on top of the new one;
     * detaching it leaves only the rootfs, with no put_old directory. */
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        fail(errno, "pivot_root");
    if (umount2(".", MNT_DETACH) < 0)
        fail(errno, "detach old root");
    if (chdir("/") < 0)
        fail(errno, "chdir /");

    for (char **p = s->masked_paths; p && *p; p++)
        mask(*p);
    for (char **p = s->readonly_paths; p && *p; p++)
        remount_ro(*p, true);
    if (s->root_readonly)
        remount_ro("/", false);
}

static void loopback_up(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
        fail(errno, "bring up lo");
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
        fail(errno, "bring up lo");
    close(fd);
}

/* Puts stdio and the extra fds at 0, 1, 2, 3... and marks every other fd
 * close-on-exec. Sources are first copied above every target so that no
 * dup2 overwrites a source still needed. */
static void setup_fds(ctr__launch *l)
{
    int top = 3 + (int)l->n_extra_fds;
    for (int i = 0; i < 3; i++)
        if (l->stdio[i] > top)
            top = l->stdio[i];
    for (size_t i = 0; i < l->n_extra_fds; i++)
        if (l->extra_fds[i] > top)
            top = l->extra_fds[i];
    if (l->sync_fd > top)
        top = l->sync_fd;
    int moved = fcntl(l->sync_fd, F_DUPFD_CLOEXEC, top + 1);
    if (moved < 0)
        _exit(127);
    close(l->sync_fd);
    sync_fd = l->sync_fd = moved;
    size_t n = 0;
    for (int i = 0; i < 3; i++)
        l->tmp_fds[n++] = l->stdio[i] < 0 ? -1 : fcntl(l->stdio[i], F_DUPFD_CLOEXEC, top + 1);
    for (size_t i = 0; i < l->n_extra_fds; i++)
        l->tmp_fds[n++] = fcntl(l->extra_fds[i], F_DUPFD_CLOEXEC, top + 1);
    for (size_t i = 0; i < n; i++) {
        if (i < 3 && l->stdio[i] < 0)
            continue;
        if (l->tmp_fds[i] < 0)
            fail(errno, "pass fd %zu", i);
        if (dup2(l->tmp_fds[i], (int)i) < 0)
            fail(errno, "pass fd %zu", i);
    }
    if (syscall(SYS_close_range, 3 + (unsigned)l->n_extra_fds, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        fail(errno, "close_range");
}

static void drop_privileges(ctr__launch *l)
{
    const ctr_spec *s = l->spec;
    for (int cap = 0; cap <= l->last_cap; cap++)
        if (!(s->caps.bounding & (1ull << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 &&
            errno != EINVAL)
            fail(errno, "drop capability %d from the bounding set", cap);
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        fail(errno, "prctl(PR_SET_KEEPCAPS)");
    /* Raw syscalls: glibc's wrappers broadcast the change to every thread
     * it knows of, and after clone it still knows of the parent's threads
     * (and may find their lock held). We are the only thread. */
    if (syscall(SYS_setgroups, s->n_groups, s->groups) < 0)
        fail(errno, "setgroups");
    if (syscall(SYS_setresgid, s->gid, s->gid, s->gid) < 0)
        fail(errno, "setgid %u", (unsigned)s->gid);
    if (syscall(SYS_setresuid, s->uid, s->uid, s->uid) < 0)
        fail(errno, "setuid %u", (unsigned)s->uid);
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
        fail(errno, "prctl(PR_SET_KEEPCAPS)");
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {
        {(uint32_t)s->caps.effective, (uint32_t)s->caps.permitted, (uint32_t)s->caps.inheritable},
        {(uint32_t)(s->caps.effective >> 32), (uint32_t)(s->caps.permitted >> 32),
         (uint32_t)(s->caps.inheritable >> 32)},
    };
    if (syscall(SYS_capset, &hdr, data) < 0)
        fail(errno, "capset");
    /* An ambient capability needs to be permitted and inheritable too;
     * specs often list it in ambient only (`crun spec` does), and runc
     * and crun skip it then: so does atoll. */
    for (int cap = 0; cap <= l->last_cap; cap++)
        if ((s->caps.ambient & (1ull << cap)) &&
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0 && errno != EPERM &&
            errno != EINVAL)
            fail(errno, "raise ambient capability %d", cap);
}

static const char *getenv_in(char **envp, const char *key)
{
    size_t n = strlen(key);
    for (char **p = envp; *p; p++)
        if (strncmp(*p, key, n) == 0 && (*p)[n] == '=')
            return *p + n + 1;
    return NULL;
}

/* execvp with the container's PATH rather than ours. */
__attribute__((noreturn)) static void exec_process(ctr__launch *l)
{
    const char *file = l->argv[0];
    if (strchr(file, '/')) {
        execve(file, l->argv, l->envp);
        fail(errno, "exec %s", file);
    }
    const char *path = getenv_in(l->envp, "PATH");
    if (!path)
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    int err = ENOENT;
    for (const char *p = path;; p++) {
        size_t n = strcspn(p, ":");
        size_t need = n + 1 + strlen(file) + 1;
        if (need <= l->scratch_len) {
            memcpy(l->scratch, p, n);
            l->scratch[n] = '/';
            strcpy(l->scratch + n + 1, file);
            execve(n ? l->scratch : file, l->argv, l->envp);
            if (errno == EACCES)
                err = EACCES;
            else if (errno != ENOENT && errno != ENOTDIR)
                fail(errno, "exec %s", l->scratch);
        }
        p += n;
        if (!*p)
            break;
    }
    fail(err, "exec %s", file);
}

void ctr__child(ctr__launch *l)
{
    const ctr_spec *s = l->spec;
    sync_fd = l->sync_fd;

    /* The parent's handlers and blocked signals are not the container's. */
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);

    /* Into our v1 cgroups first (v2: clone3 put us there), before the fds are rearranged (these may
     * sit where the container's fds 3, 4... go) and before the
     * filesystem is built, so that even the setup is charged to it. */
    for (int i = 0; i < l->n_join_fds; i++) {
        if (write(l->join_fds[i], "0", 1) != 1)
            fail(errno, "join cgroup");
        close(l->join_fds[i]);
    }
    setup_fds(l);
    /* The go-byte: the id maps are written (and the parent still runs). */
    char go;
    if (read(sync_fd, &go, 1) != 1)
        _exit(127);
    /* Its own session: signals reach it from atoll only, not from our tty. */
    if (setsid() < 0)
        fail(errno, "setsid");
    setup_rootfs(l);
    if (s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0)
        fail(errno, "sethostname");
    if (s->clone_flags & CLONE_NEWNET)
        loopback_up();
    for (size_t i = 0; i < s->n_rlimits; i++)
        if (setrlimit(s->rlimits[i].resource, &s->rlimits[i].lim) < 0)
            fail(errno, "setrlimit %d", s->rlimits[i].resource);
    if (s->cgroup_ns && unshare(CLONE_NEWCGROUP) < 0)
        fail(errno, "unshare cgroup namespace");
    if (l->listen_pid)
        snprintf(l->listen_pid + 11, 16, "%d", (int)getpid());

    drop_privileges(l);
    /* Dies with atoll (set after the uid change, which clears it). The
     * kernel ties it to the thread that cloned us, see container.h. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        fail(errno, "prctl(PR_SET_PDEATHSIG)");
    if (s->umask >= 0)
        umask((mode_t)s->umask);
    if (chdir(s->cwd) < 0)
        fail(errno, "chdir %s", s->cwd);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        fail(errno, "no_new_privs");
    if (s->seccomp_len) {
        struct sock_fprog prog = {.len = s->seccomp_len, .filter = s->seccomp};
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
            fail(errno, "seccomp");
    }
    exec_process(l);
}
