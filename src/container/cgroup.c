/* The per-container cgroup: created before the container's process runs
 * anything of its own, filled with its limits, and removed after it.
 *
 * Two backends behind one small interface (internal.h). cgroup v2 is used
 * when a unified hierarchy is mounted (at /sys/fs/cgroup or, on hybrid
 * systems, /sys/fs/cgroup/unified) and offers our cgroup the controllers
 * that the spec's limits need; on hybrid machines the v2 mount usually has
 * none (they are bound to the v1 hierarchies): a container without limits
 * then still lives there, and one with limits gets a directory in each v1
 * hierarchy it needs (memory, cpu; pids always). In both cases the new
 * cgroup is a child of the cgroup atoll itself runs in, so that atoll's
 * own limits still bound its tenants. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "container/internal.h"
#include "core/alloc.h"

enum { CG_MEMORY, CG_PIDS, CG_CPU, CG_N };
static const char *const v1_names[CG_N] = {"memory", "pids", "cpu"};

struct ctr__cgroup {
    bool v2;
    char *dir[CG_N];     /* v2: only dir[0]; owned */
    bool created[CG_N];  /* dir[i] is ours: made by us, removed on destroy */
    size_t top[CG_N];    /* length of the highest parent of dir[i] we made
                          * (a cgroupsPath "a/b" may make "a" too), 0 when
                          * none: removed up to there */
};

/* Our own cgroup in a hierarchy, from /proc/self/cgroup: "0::/x" for v2,
 * "4:memory:/x" (or "2:cpu,cpuacct:/x") for v1. Caller frees. */
static char *own_cgroup(const char *controller)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    char *line = NULL, *found = NULL;
    size_t cap = 0;
    if (!f)
        return NULL;
    while (!found && getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c1 = *c2 = '\0';
        const char *ctrls = c1 + 1;
        if (!controller) {
            if (strcmp(line, "0") == 0 && *ctrls == '\0')
                found = xstrdup(c2 + 1);
            continue;
        }
        for (char *save = NULL, *t = strtok_r((char *)ctrls, ",", &save); t;
             t = strtok_r(NULL, ",", &save))
            if (strcmp(t, controller) == 0)
                found = xstrdup(c2 + 1);
    }
    free(line);
    fclose(f);
    return found;
}

static int write_file(const char *dir, const char *file, const char *value, err *e)
{
    char *path = xasprintf("%s/%s", dir, file);
    int rc = 0, fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, value, strlen(value)) < 0)
        rc = err_set(e, -errno, "write %s to %s: %s", value, path, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(path);
    return rc;
}

static bool is_cgroup2(const char *path)
{
    struct statfs sf;
    return statfs(path, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
}

/* The controllers a spec's limits need. */
enum { NEED_MEMORY = 1, NEED_PIDS = 2, NEED_CPU = 4 };
static int needed(const ctr_spec *s)
{
    return (s->memory_limit >= 0 ? NEED_MEMORY : 0) | (s->pids_limit > 0 ? NEED_PIDS : 0) |
           (s->cpu_shares || s->cpu_quota || s->cpu_period ? NEED_CPU : 0);
}

/* The v2 mount point when the unified hierarchy offers our cgroup every
 * controller `need` asks for, else NULL. On a hybrid machine the v2 mount
 * has no controllers: a container without limits still lives there (one
 * directory instead of three, and cgroup.kill), one with limits goes to
 * v1. *own gets our cgroup in it (caller frees). */
static const char *usable_v2(int need, char **own)
{
    const char *mnt = is_cgroup2("/sys/fs/cgroup") ? "/sys/fs/cgroup"
                    : is_cgroup2("/sys/fs/cgroup/unified") ? "/sys/fs/cgroup/unified" : NULL;
    *own = NULL;
    if (!mnt)
        return NULL;
    char *self = own_cgroup(NULL);
    if (!self)
        return NULL;
    char *path = xasprintf("%s%s/cgroup.controllers", mnt, self), *line = NULL;
    size_t cap = 0;
    int have = 0;
    FILE *f = fopen(path, "re");
    if (f && getline(&line, &cap, f) > 0) {
        for (char *save = NULL, *t = strtok_r(line, " \n", &save); t; t = strtok_r(NULL, " \n", &save))
            have |= strcmp(t, "memory") == 0 ? NEED_MEMORY : strcmp(t, "pids") == 0 ? NEED_PIDS
                  : strcmp(t, "cpu") == 0 ? NEED_CPU : 0;
    }
    if (f)
        fclose(f);
    free(line);
    free(path);
    if ((need & have) != need || !f) {
        free(self);
        return NULL;
    }
    *own = self;
    return mnt;
}

/* mkdir -p whose last component must be new: a container's cgroup is
 * its own. Joining an existing one (a cgroupsPath naming the host's root
 * cgroup, atoll's own or another container's) would put the container's
 * limits on processes that are not the container's, and the teardown,
 * which SIGKILLs everything in the cgroup, would kill them. *top gets the
 * length of the highest directory made here (the parents of the last
 * component may be new too), for ctr__cgroup_destroy. */
static int make_dir(const char *path, bool *created, size_t *top, err *e)
{
    *created = false;
    *top = 0;
    if (mkdir(path, 0755) == 0) {
        *created = true;
        return 0;
    }
    if (errno == EEXIST)
        return err_set(e, -EEXIST, "%s already exists: a container gets a cgroup of its own", path);
    if (errno != ENOENT)
        return err_set(e, -errno, "mkdir %s: %s", path, strerror(errno));
    /* Parents: made as needed, existing ones are fine. */
    char *p = xstrdup(path);
    size_t first_made = 0;
    for (char *slash = strchr(p + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (mkdir(p, 0755) == 0) {
            if (!first_made)
                first_made = strlen(p);
        } else if (errno != EEXIST) {
            int rc = err_set(e, -errno, "mkdir %s: %s", p, strerror(errno));
            *top = first_made;
            free(p);
            return rc;
        }
        *slash = '/';
    }
    free(p);
    *top = first_made;
    if (mkdir(path, 0755) < 0)
        return errno == EEXIST ? err_set(e, -EEXIST, "%s already exists: a container gets a cgroup of its own", path)
                               : err_set(e, -errno, "mkdir %s: %s", path, strerror(errno));
    *created = true;
    return 0;
}

static char *cg_path(const char *mnt, const char *own, const char *p, const char *name)
{
    if (p && p[0] == '/')
        return xasprintf("%s%s", mnt, p);
    if (strcmp(own, "/") == 0)
        own = "";
    return xasprintf("%s%s/%s", mnt, own, p ? p : name);
}

static int apply_v2(ctr__cgroup *cg, const ctr_spec *s, err *e)
{
    char v[64];
    int rc;
    const char *d = cg->dir[0];
    if (s->memory_limit >= 0) {
        snprintf(v, sizeof v, "%lld", (long long)s->memory_limit);
        if ((rc = write_file(d, "memory.max", v, e)) < 0)
            return rc;
        rc = write_file(d, "memory.swap.max", "0", e);
        if (rc < 0 && rc != -ENOENT)
            return rc;
        err_clear(e);
    }
    if (s->pids_limit > 0) {
        snprintf(v, sizeof v, "%lld", (long long)s->pids_limit);
        if ((rc = write_file(d, "pids.max", v, e)) < 0)
            return rc;
    }
    if (s->cpu_shares) {
        /* The conversion runc and crun use from shares [2, 262144] to weight [1, 10000]. */
        uint64_t shares = s->cpu_shares < 2 ? 2 : s->cpu_shares;
        snprintf(v, sizeof v, "%llu", (unsigned long long)(1 + ((shares - 2) * 9999) / 262142));
        if ((rc = write_file(d, "cpu.weight", v, e)) < 0)
            return rc;
    }
    if (s->cpu_quota || s->cpu_period) {
        unsigned long long period = s->cpu_period ? s->cpu_period : 100000;
        if (s->cpu_quota)
            snprintf(v, sizeof v, "%lld %llu", (long long)s->cpu_quota, period);
        else
            snprintf(v, sizeof v, "max %llu", period);
        if ((rc = write_file(d, "cpu.max", v, e)) < 0)
            return rc;
    }
    return 0;
}

static int apply_v1(ctr__cgroup *cg, const ctr_spec *s, err *e)
{
    char v[64];
    int rc;
    if (s->memory_limit >= 0) {
        snprintf(v, sizeof v, "%lld", (long long)s->memory_limit);
        if ((rc = write_file(cg->dir[CG_MEMORY], "memory.limit_in_bytes", v, e)) < 0)
            return rc;
        /* Where swap is accounted, memory+swap gets the same limit: a
         * tenant must not escape its limit into swap. */
        rc = write_file(cg->dir[CG_MEMORY], "memory.memsw.limit_in_bytes", v, e);
        if (rc < 0 && rc != -ENOENT)
            return rc;
        err_clear(e);
    }
    if (s->pids_limit > 0) {
        snprintf(v, sizeof v, "%lld", (long long)s->pids_limit);
        if ((rc = write_file(cg->dir[CG_PIDS], "pids.max", v, e)) < 0)
            return rc;
    }
    if (s->cpu_shares) {
        snprintf(v, sizeof v, "%llu", (unsigned long long)s->cpu_shares);
        if ((rc = write_file(cg->dir[CG_CPU], "cpu.shares", v, e)) < 0)
            return rc;
    }
    if (s->cpu_period) {
        snprintf(v, sizeof v, "%llu", (unsigned long long)s->cpu_period);
        if ((rc = write_file(cg->dir[CG_CPU], "cpu.cfs_period_us", v, e)) < 0)
            return rc;
    }
    if (s->cpu_quota) {
        snprintf(v, sizeof v, "%lld", (long long)s->cpu_quota);
        if ((rc = write_file(cg->dir[CG_CPU], "cpu.cfs_quota_us", v, e)) < 0)
            return rc;
    }
    return 0;
}

int ctr__cgroup_create(const ctr_spec *spec, const char *path, const char *name, ctr__cgroup **out, err *e)
{
    ctr__cgroup *cg = xcalloc(1, sizeof *cg);
    char *own = NULL;
    int rc;
    int need = needed(spec);
    const char *mnt = usable_v2(need, &own);
    if (mnt) {
        cg->v2 = true;
        cg->dir[0] = cg_path(mnt, own, path, name);
        rc = make_dir(cg->dir[0], &cg->created[0], &cg->top[0], e);
        if (rc < 0)
            goto fail;
        if (need) {
            /* Delegate the controllers to our children: fails (EBUSY) when
             * our own cgroup holds processes and is not the root. */
            char *parent = xstrdup(cg->dir[0]);
            *strrchr(parent, '/') = '\0';
            char *ctl = xasprintf("%s%s%s", need & NEED_MEMORY ? "+memory " : "",
                                  need & NEED_PIDS ? "+pids " : "", need & NEED_CPU ? "+cpu" : "");
            rc = write_file(parent, "cgroup.subtree_control", ctl, e);
            free(ctl);
            free(parent);
            if (rc < 0)
                goto fail;
        }
        if (rc < 0)
            goto fail;
        rc = apply_v2(cg, spec, e);
        if (rc < 0)
            goto fail;
    } else {
        /* Only the controllers the limits need, and pids always: one
         * directory is enough to find and kill every process. */
        need |= NEED_PIDS;
        for (int i = 0; i < CG_N; i++) {
            if (!(need & (1 << i)))
                continue;
            char *mount_point = xasprintf("/sys/fs/cgroup/%s", v1_names[i]);
            free(own);
            own = own_cgroup(v1_names[i]);
            if (!own || access(mount_point, W_OK) < 0) {
                free(mount_point);
                /* Without the controller, refuse only when a limit needs it. */
                if (need & (1 << i)) {
                    rc = err_set(e, -ENOTSUP, "cgroup: no usable v2 hierarchy and no v1 %s controller",
                                 v1_names[i]);
                    goto fail;
                }
                continue;
            }
            cg->dir[i] = cg_path(mount_point, own, path, name);
            free(mount_point);
            rc = make_dir(cg->dir[i], &cg->created[i], &cg->top[i], e);
            if (rc < 0)
                goto fail;
        }
        rc = apply_v1(cg, spec, e);
        if (rc < 0)
            goto fail;
    }
    free(own);
    *out = cg;
    return 0;
fail:
    free(own);
    err_prefix(e, "cgroup");
    ctr__cgroup_destroy(cg, NULL);
    *out = NULL;
    return rc;
}

int ctr__cgroup_join_fds(ctr__cgroup *cg, int fds[4], err *e)
{
    int n = 0;
    if (cg->v2)
        return 0;
    for (int i = 0; i < CG_N; i++) {
        if (!cg->dir[i])
            continue;
        char *path = xasprintf("%s/tasks", cg->dir[i]);
        fds[n] = open(path, O_WRONLY | O_CLOEXEC);
        if (fds[n] < 0) {
            int rc = err_set(e, -errno, "cgroup: open %s: %s", path, strerror(errno));
            free(path);
            while (n > 0)
                close(fds[--n]);
            return rc;
        }
        free(path);
        n++;
    }
    return n;
}

int ctr__cgroup_clone_fd(ctr__cgroup *cg, err *e)
{
    if (!cg->v2)
        return -1;
    int fd = open(cg->dir[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return err_set(e, -errno, "cgroup: open %s: %s", cg->dir[0], strerror(errno));
    return fd;
}

int ctr__cgroup_kill(ctr__cgroup *cg)
{
    int n = 0;
    if (!cg)
        return 0;
    /* v2 and v1 alike: every process is listed in cgroup.procs of any
     * directory (the first one that exists is enough). v2 also has
     * cgroup.kill (5.14), which cannot miss a process forking meanwhile. */
    if (cg->v2 && cg->created[0])
        write_file(cg->dir[0], "cgroup.kill", "1", NULL);
    for (int i = 0; i < CG_N; i++) {
        /* Only a cgroup we made holds nothing but the container. */
        if (!cg->dir[i] || !cg->created[i])
            continue;
        char *path = xasprintf("%s/cgroup.procs", cg->dir[i]);
        FILE *f = fopen(path, "re");
        free(path);
        if (!f)
            return n;
        int pid;
        while (fscanf(f, "%d", &pid) == 1)
            if (pid > 0 && kill(pid, SIGKILL) == 0)
                n++;
        fclose(f);
        break;
    }
    return n;
}

int64_t ctr__cgroup_oom_kills(const ctr__cgroup *cg)
{
    /* v2: memory.events; v1: memory.oom_control (its oom_kill line, 4.13+). */
    const char *dir = cg ? cg->dir[CG_MEMORY] : NULL;
    if (!dir)
        return -1;
    char *path = xasprintf("%s/%s", dir, cg->v2 ? "memory.events" : "memory.oom_control");
    FILE *f = fopen(path, "re");
    free(path);
    if (!f)
        return -1;
    char key[64];
    long long value;
    int64_t n = -1;
    while (fscanf(f, "%63s %lld", key, &value) == 2)
        if (strcmp(key, "oom_kill") == 0)
            n = value;
    fclose(f);
    return n;
}

int ctr__cgroup_destroy(ctr__cgroup *cg, err *e)
{
    int rc = 0;
    if (!cg)
        return 0;
    for (int i = 0; i < CG_N; i++) {
        if (!cg->dir[i])
            continue;
        /* A process that was just reaped can keep the cgroup busy for a
         * moment; anything still alive in it was already killed. */
        for (int tries = 0; cg->created[i] && rmdir(cg->dir[i]) < 0; tries++) {
            if (errno == ENOENT)
                break;
            if (errno != EBUSY || tries >= 2000) {
                rc = err_set(e, -errno, "cgroup: rmdir %s: %s", cg->dir[i], strerror(errno));
                break;
            }
            ctr__cgroup_kill(cg);
            nanosleep(&(struct timespec){0, 500000}, NULL);
        }
        /* Then the parents we made, deepest first, while they are empty. */
        for (char *slash; cg->top[i] && (slash = strrchr(cg->dir[i], '/')) &&
                          (size_t)(slash - cg->dir[i]) >= cg->top[i];) {
            *slash = '\0';
            if (rmdir(cg->dir[i]) < 0)
                break;
        }
        free(cg->dir[i]);
    }
    free(cg);
    return rc;
}

/* Removes empty "atoll-<pid>-<n>" children of dir whose pid is gone. */
static int sweep_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    if (!d)
        return 0;
    while ((de = readdir(d))) {
        int pid;
        unsigned k;
        char tail;
        if (de->d_type != DT_DIR || sscanf(de->d_name, "atoll-%d-%u%c", &pid, &k, &tail) != 2)
            continue;
        if (pid <= 0 || kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        char *path = xasprintf("%s/%s", dir, de->d_name);
        n += rmdir(path) == 0; /* fails (EBUSY) while anything runs in it */
        free(path);
    }
    closedir(d);
    return n;
}

int ctr_sweep_stale(void)
{
    int n = 0;
    char *own = NULL;
    const char *mnt = usable_v2(0, &own);
    if (mnt) {
        char *dir = xasprintf("%s%s", mnt, strcmp(own, "/") ? own : "");
        n += sweep_dir(dir);
        free(dir);
    }
    free(own);
    for (int i = 0; i < CG_N; i++) {
        own = own_cgroup(v1_names[i]);
        if (!own)
            continue;
        char *dir = xasprintf("/sys/fs/cgroup/%s%s", v1_names[i], strcmp(own, "/") ? own : "");
        n += sweep_dir(dir);
        free(dir);
        free(own);
    }
    return n;
}

const char *ctr__cgroup_version(const ctr__cgroup *cg)
{
    return cg->v2 ? "v2" : "v1";
}
