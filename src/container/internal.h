/* Declarations shared by the files of src/container/ and its unit tests:
 * the parsed spec, the cgroup backends, the seccomp compiler and the
 * child-side setup. Cross-file names are prefixed `ctr__`. */
#ifndef ATOLL_CONTAINER_INTERNAL_H
#define ATOLL_CONTAINER_INTERNAL_H
#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "container/container.h"

struct json_t;

typedef struct ctr__mount {
    char *dest;            /* absolute path inside the rootfs */
    char *type;            /* "proc", "tmpfs", "bind", ... */
    char *source;          /* host path for binds (absolute), else a label */
    char *data;            /* options the kernel parses ("mode=755"), or NULL */
    unsigned long flags;   /* MS_* without the propagation flags */
    unsigned long propagation; /* MS_PRIVATE, MS_SLAVE... | MS_REC, or 0 */
    bool bind;
} ctr__mount;

typedef struct ctr__idmap {
    uint32_t inside, outside, count;
} ctr__idmap;

typedef struct ctr__rlimit {
    int resource;
    struct rlimit lim;
} ctr__rlimit;

/* The five capability sets of process.capabilities, as bit masks. */
typedef struct ctr__caps {
    uint64_t bounding, effective, inheritable, permitted, ambient;
} ctr__caps;

/* Everything in one config.json that atoll uses; every pointer is owned
 * by the spec and freed by ctr_spec_free. String arrays are
 * NULL-terminated. */
struct ctr_spec {
    char *bundle;          /* absolute */
    char *rootfs;          /* absolute */
    bool root_readonly;
    char **args;           /* may be empty when every start overrides it */
    char **env;
    char *cwd;
    uid_t uid;
    gid_t gid;
    gid_t *groups;
    size_t n_groups;
    int umask;             /* -1: leave as is */
    char *hostname;        /* NULL: leave the new UTS namespace's */
    ctr__mount *mounts;
    size_t n_mounts;
    int clone_flags;       /* CLONE_NEW* */
    bool cgroup_ns;        /* unshared by the child once in its cgroup */
    ctr__idmap *uid_maps, *gid_maps;
    size_t n_uid_maps, n_gid_maps;
    unsigned long rootfs_propagation; /* MS_PRIVATE|MS_REC by default */
    /* linux.resources; -1 (or 0 for cpu) when not set */
    int64_t memory_limit;
    int64_t pids_limit;
    uint64_t cpu_shares;
    int64_t cpu_quota;
    uint64_t cpu_period;
    char *cgroups_path;    /* linux.cgroupsPath or NULL */
    ctr__caps caps;
    ctr__rlimit *rlimits;
    size_t n_rlimits;
    char **masked_paths;
    char **readonly_paths;
    struct sock_filter *seccomp; /* compiled BPF program */
    unsigned short seccomp_len;
    size_t max_path;       /* longest mount destination/masked path, for scratch space */
};

/* seccomp.c: compiles linux.seccomp (NULL: atoll's default profile) to a
 * BPF program owned by the caller (free()). `where` names the key for
 * errors. */
int ctr__seccomp_compile(struct json_t *profile, const char *where,
                         struct sock_filter **prog, unsigned short *len, err *e);

/* cgroup.c: one per-container cgroup, v2 where the unified hierarchy has
 * the controllers, otherwise one directory per v1 controller. */
typedef struct ctr__cgroup ctr__cgroup;
/* `path` is linux.cgroupsPath to honour, or NULL: then `name` below our
 * own cgroup. The cgroup must not exist yet (-EEXIST). */
int ctr__cgroup_create(const ctr_spec *spec, const char *path, const char *name, ctr__cgroup **out, err *e);
/* How the child gets into its cgroup before it runs anything. Writing its
 * pid to cgroup.procs from the parent would take the kernel's global
 * threadgroup lock, whose RCU grace period costs ~10 ms per start. So:
 * on v2, clone3(CLONE_INTO_CGROUP) with the directory fd that
 * ctr__cgroup_clone_fd opens (-1 on v1); on v1, the child writes "0" to
 * the `tasks` files that ctr__cgroup_join_fds opens (at most 4; returns
 * how many, 0 on v2), which moves a single thread without that lock.
 * All fds are close-on-exec and owned by the caller. */
int ctr__cgroup_clone_fd(ctr__cgroup *cg, err *e);
int ctr__cgroup_join_fds(ctr__cgroup *cg, int fds[4], err *e);
/* SIGKILLs every process still in the cgroup; returns how many it found. */
int ctr__cgroup_kill(ctr__cgroup *cg);
/* How many processes the kernel's OOM killer has killed in the cgroup
 * (memory limit hit), or -1 when the kernel does not tell. */
int64_t ctr__cgroup_oom_kills(const ctr__cgroup *cg);
/* Removes the directories and frees cg (NULL is fine). */
int ctr__cgroup_destroy(ctr__cgroup *cg, err *e);
/* "v1" or "v2", for logs and tests. */
const char *ctr__cgroup_version(const ctr__cgroup *cg);

/* What the child needs, prepared by the parent before clone so that the
 * child never allocates (another thread may hold the malloc lock). */
typedef struct ctr__launch {
    const ctr_spec *spec;
    char **argv;           /* owned by the launch */
    char **envp;           /* owned; strings borrowed except listen_pid */
    char *listen_fds;      /* "LISTEN_FDS=n", owned, or NULL */
    char *listen_pid;      /* "LISTEN_PID=" + room, filled in by the child; owned */
    char *scratch;         /* room for a path: spec->max_path + PATH search */
    size_t scratch_len;
    int stdio[3];
    const int *extra_fds;
    size_t n_extra_fds;
    int *tmp_fds;          /* room for n_extra_fds + 3 */
    int sync_fd;           /* the child's end of the socketpair */
    int last_cap;          /* highest capability the kernel knows */
    int join_fds[4];       /* cgroup `tasks` files the child writes "0" to */
    int n_join_fds;
} ctr__launch;

/* child.c: runs in the cloned child, never returns. Reports the first
 * failure to sync_fd as "STEP: message" and exits 127. */
__attribute__((noreturn)) void ctr__child(ctr__launch *l);

#endif
