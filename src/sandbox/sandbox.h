/* The process sandbox for worker processes (DESIGN.md, security layer 2):
 * after a worker has opened what it needs (listening socket, config,
 * scripts), it calls sandbox_enter, which
 *   1. moves into new mount and IPC namespaces where the kernel allows
 *      (mounts made private, so nothing propagates back to the host) and
 *      makes the whole filesystem read-only there, except the paths it is
 *      told to keep writable (the state directory),
 *   2. drops every capability (bounding, effective, permitted, inheritable)
 *      and, when running as root, switches to the user it is given,
 *   3. sets no_new_privs, and
 *   4. installs a seccomp allow-list (libseccomp) of only the system calls
 *      an event-loop server with isolates needs; anything else fails with
 *      EPERM, and calls that would escape (execve, ptrace, mount, kernel
 *      module and key management …) kill the process outright.
 * A pid namespace must be created by the parent (sandbox_fork). */
#ifndef ATOLL_SANDBOX_SANDBOX_H
#define ATOLL_SANDBOX_SANDBOX_H
#include <stdbool.h>
#include <sys/types.h>

#include "core/err.h"

typedef struct sandbox_options {
    bool namespaces;     /* unshare mount + ipc (default true; skipped where not permitted) */
    bool readonly_root;  /* with namespaces: every mount read-only (default true) */
    const char *const *writable; /* NULL-terminated paths kept writable (may be NULL) */
    bool drop_user;      /* as root: become `uid`/`gid` (default true) */
    uid_t uid;           /* default 65534 (nobody); 0 keeps root, without capabilities */
    gid_t gid;           /* default 65534 (nogroup) */
    bool seccomp;        /* default true */
    bool allow_inotify;  /* the dev server's file watching (default false) */
} sandbox_options;

void sandbox_options_defaults(sandbox_options *opt);

/* Applies the steps above to the calling process (all its threads must not
 * exist yet: call it before starting libuv's thread pool). Each failure
 * names its step and errno. Namespaces the kernel refuses are skipped and
 * reported through *skipped (may be NULL). */
int sandbox_enter(const sandbox_options *opt, const char **skipped, err *e);

/* fork() into a new pid namespace where permitted (the child is its pid 1),
 * falling back to a plain fork. Returns as fork does. */
pid_t sandbox_fork(bool new_pid_namespace);

#endif
