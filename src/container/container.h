/* The container tier's core: runs an OCI runtime bundle (a rootfs and a
 * runtime-spec config.json) with atoll's own code — namespaces, pivot_root,
 * cgroups, dropped capabilities, no_new_privs, seccomp — and manages the
 * lifetime of the one process it starts.
 *
 * The interface is split in two so that a manager that starts the same
 * bundle again and again (on-demand start, scale to zero) parses and
 * compiles the spec once:
 *
 *   ctr_spec_load()  parse config.json, compile the seccomp filter
 *   ctr_start()      clone into new namespaces, set everything up, exec
 *   ctr_pid()/ctr_pidfd()/ctr_kill()/ctr_wait()/ctr_stop()
 *   ctr_destroy()    kill what is left, reap, remove the cgroup, free
 *
 * Ownership: the caller owns a ctr_spec (ctr_spec_free) and a ctr
 * (ctr_destroy); a ctr borrows its spec, which must outlive it. Nothing
 * here installs signal handlers or reaps other children. Functions return
 * 0 or a negative errno and fill `e` with the step that failed. */
#ifndef ATOLL_CONTAINER_CONTAINER_H
#define ATOLL_CONTAINER_CONTAINER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"

typedef struct ctr_spec ctr_spec;
typedef struct ctr ctr;

/* Parses BUNDLE/config.json. Errors name the key path
 * ("process.args[1]: expected a string"). *out is owned by the caller. */
int ctr_spec_load(const char *bundle, ctr_spec **out, err *e);
void ctr_spec_free(ctr_spec *spec);

/* How to start one container from a spec. Every field may be left zero
 * (ctr_opts_init sets the fds to "inherit"). Nothing here is kept after
 * ctr_start returns: the fds are duplicated into the child only. */
typedef struct ctr_opts {
    char *const *args;      /* NULL-terminated; replaces process.args when non-NULL */
    char *const *env;       /* NULL-terminated "K=V" added to process.env (overriding) */
    int stdio[3];           /* fds for the container's 0, 1, 2; -1 inherits ours */
    const int *extra_fds;   /* become the container's fds 3, 4, ... */
    size_t n_extra_fds;
    bool listen_fds;        /* also set LISTEN_FDS=n and LISTEN_PID (socket activation) */
    const char *name;       /* names the cgroup; default "atoll-<pid>-<n>" */
    bool ignore_cgroups_path; /* place the cgroup below ours by `name` even when the
                               * spec has linux.cgroupsPath: for bundles atoll does
                               * not trust to choose where their limits go */
    unsigned start_timeout_ms; /* 0: wait as long as the setup takes */
} ctr_opts;

void ctr_opts_init(ctr_opts *o);

/* Starts the container and returns once its process has exec'd (or
 * failed to: then the error says which step, e.g.
 * "pivot_root: Invalid argument", and nothing is left behind; or the
 * setup outlasted o->start_timeout_ms: -ETIMEDOUT). Takes a few ms.
 * The container gets SIGKILL when the thread that called ctr_start exits
 * (PR_SET_PDEATHSIG), so that it never outlives atoll: call it from a
 * long-lived thread (the event loop's). */
int ctr_start(const ctr_spec *spec, const ctr_opts *o, ctr **out, err *e);

/* The container's process as the host sees it, and a pidfd for it
 * (owned by the ctr) that becomes readable when it exits, for event loops.
 * setns(ctr_pidfd(c), CLONE_NEWNET) from a helper thread enters the
 * container's network namespace, e.g. to connect to its 127.0.0.1:$PORT. */
pid_t ctr_pid(const ctr *c);
int ctr_pidfd(const ctr *c);

/* Sends a signal to the container's process (pid 1 of its pid namespace:
 * it ignores signals it has no handler for, except SIGKILL). 0 or -errno;
 * 0 as well when it has already exited. */
int ctr_kill(ctr *c, int sig);

/* Reaps the process. With block=false returns -EAGAIN while it runs.
 * *status gets the raw wait status (see ctr_exit_code). Once reaped, the
 * rest of the container (other processes, its cgroup) is torn down too. */
int ctr_wait(ctr *c, bool block, int *status, err *e);

/* SIGTERM, then SIGKILL after grace_ms if still running, then reap. */
int ctr_stop(ctr *c, unsigned grace_ms, int *status, err *e);

/* Kills whatever still runs, reaps, removes the cgroup, closes the pidfd
 * and frees c. Safe on NULL. */
void ctr_destroy(ctr *c);

/* Removes cgroups left behind by an atoll that was SIGKILLed (named
 * "atoll-<pid>-<n>" after a pid that no longer runs, and empty). Returns
 * how many it removed. */
int ctr_sweep_stale(void);

/* Processes of the container that the kernel's OOM killer killed (its
 * memory limit was hit), from its cgroup; -1 when unknown. Valid until
 * ctr_destroy, also after ctr_wait. */
int64_t ctr_oom_kills(const ctr *c);

/* Installs atoll's default container profile (the deny-list of dangerous
 * system calls described in seccomp.c; exec stays allowed) on every thread
 * of the calling process, for processes that must exec tools but run no
 * tenant code: the admin process, which runs wasm2c and cc. */
int ctr_default_seccomp_install(err *e);

/* The shell convention for a wait status: the exit code, or 128+signal. */
int ctr_exit_code(int status);

#endif
