/* Parses an OCI runtime-spec config.json into a ctr_spec (internal.h).
 * Only what atoll applies is read; unknown keys are ignored, as the
 * runtime-spec asks, but a key atoll reads with the wrong type or value is
 * an error that names its path ("linux.resources.memory.limit: expected
 * an integer"), so a tenant sees what to fix. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

#include "container/internal.h"
#include "core/alloc.h"

static int bad(err *e, const char *path, const char *what)
{
    return err_set(e, -EINVAL, "%s: %s", path, what);
}

/* Looks up key in obj; *out is NULL when absent. Fails when present with
 * another type than `type` (-1: any). */
static int get(json_t *obj, const char *path, const char *key, int type,
               json_t **out, err *e)
{
    *out = obj ? json_object_get(obj, key) : NULL;
    if (!*out || json_is_null(*out)) {
        *out = NULL;
        return 0;
    }
    if (type < 0 || (int)json_typeof(*out) == type ||
        (type == JSON_TRUE && json_is_boolean(*out)))
        return 0;
    static const char *names[] = {
        [JSON_OBJECT] = "an object", [JSON_ARRAY] = "an array",
        [JSON_STRING] = "a string",  [JSON_INTEGER] = "an integer",
        [JSON_REAL] = "a number",    [JSON_TRUE] = "a boolean",
    };
    err_set(e, -EINVAL, "%s%s%s: expected %s", path, *path ? "." : "", key, names[type]);
    return -EINVAL;
}

/* A ".." component would let a destination climb out of the rootfs
 * before pivot_root. */
static bool has_dotdot(const char *p)
{
    for (const char *c = p; *c;) {
        size_t n = strcspn(c, "/");
        if (n == 2 && c[0] == '.' && c[1] == '.')
            return true;
        c += n;
        c += strspn(c, "/");
    }
    return false;
}

/* Joins a parent path and a key for error messages; caller frees. */
static char *sub(const char *path, const char *key)
{
    return xasprintf("%s%s%s", path, *path ? "." : "", key);
}

/* A JSON array of strings as a NULL-terminated array (empty when absent). */
static int str_array(json_t *arr, const char *path, char ***out, err *e)
{
    size_t n = arr ? json_array_size(arr) : 0;
    char **v = xcalloc(n + 1, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(arr, i);
        if (!json_is_string(s)) {
            err_set(e, -EINVAL, "%s[%zu]: expected a string", path, i);
            for (size_t j = 0; j < i; j++)
                free(v[j]);
            free(v);
            return -EINVAL;
        }
        v[i] = xstrdup(json_string_value(s));
    }
    *out = v;
    return 0;
}

static void str_array_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

static int integer(json_t *obj, const char *path, const char *key, int64_t min,
                   int64_t max, bool *set, int64_t *out, err *e)
{
    json_t *v;
    *set = false;
    if (get(obj, path, key, JSON_INTEGER, &v, e) < 0)
        return -EINVAL;
    if (!v)
        return 0;
    json_int_t x = json_integer_value(v);
    if (x < min || x > max) {
        err_set(e, -EINVAL, "%s.%s: %lld is out of range", path, key, (long long)x);
        return -EINVAL;
    }
    *set = true;
    *out = x;
    return 0;
}

static int parse_caps_set(json_t *caps, const char *key, uint64_t *mask, err *e)
{
    json_t *arr;
    if (get(caps, "process.capabilities", key, JSON_ARRAY, &arr, e) < 0)
        return -EINVAL;
    *mask = 0;
    for (size_t i = 0; arr && i < json_array_size(arr); i++) {
        json_t *s = json_array_get(arr, i);
        cap_value_t cap;
        const char *name = json_string_value(s);
        /* libcap knows the names in lower case, without the CAP_ prefix too. */
        if (!name || cap_from_name(name, &cap) < 0 || cap < 0 || cap > 63) {
            err_set(e, -EINVAL, "process.capabilities.%s[%zu]: unknown capability %s",
                    key, i, name ? name : "(not a string)");
            return -EINVAL;
        }
        *mask |= 1ull << cap;
    }
    return 0;
}

static int parse_user(ctr_spec *s, json_t *user, err *e)
{
    bool set;
    int64_t v;
    if (integer(user, "process.user", "uid", 0, UINT32_MAX - 1, &set, &v, e) < 0)
        return -EINVAL;
    s->uid = set ? (uid_t)v : 0;
    if (integer(user, "process.user", "gid", 0, UINT32_MAX - 1, &set, &v, e) < 0)
        return -EINVAL;
    s->gid = set ? (gid_t)v : 0;
    if (integer(user, "process.user", "umask", 0, 0777, &set, &v, e) < 0)
        return -EINVAL;
    s->umask = set ? (int)v : -1;
    json_t *groups;
    if (get(user, "process.user", "additionalGids", JSON_ARRAY, &groups, e) < 0)
        return -EINVAL;
    s->n_groups = groups ? json_array_size(groups) : 0;
    s->groups = xcalloc(s->n_groups + 1, sizeof *s->groups);
    for (size_t i = 0; i < s->n_groups; i++) {
        json_t *g = json_array_get(groups, i);
        if (!json_is_integer(g) || json_integer_value(g) < 0 ||
            json_integer_value(g) >= UINT32_MAX)
            return err_set(e, -EINVAL, "process.user.additionalGids[%zu]: expected a gid", i);
        s->groups[i] = (gid_t)json_integer_value(g);
    }
    return 0;
}

static const struct {
    const char *name;
    int resource;
} rlimit_names[] = {
    {"RLIMIT_AS", RLIMIT_AS},           {"RLIMIT_CORE", RLIMIT_CORE},
    {"RLIMIT_CPU", RLIMIT_CPU},         {"RLIMIT_DATA", RLIMIT_DATA},
    {"RLIMIT_FSIZE", RLIMIT_FSIZE},     {"RLIMIT_LOCKS", RLIMIT_LOCKS},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK}, {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
    {"RLIMIT_NICE", RLIMIT_NICE},       {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_NPROC", RLIMIT_NPROC},     {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},   {"RLIMIT_RTTIME", RLIMIT_RTTIME},
    {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING}, {"RLIMIT_STACK", RLIMIT_STACK},
};

static int parse_rlimits(ctr_spec *s, json_t *arr, err *e)
{
    s->n_rlimits = arr ? json_array_size(arr) : 0;
    s->rlimits = xcalloc(s->n_rlimits + 1, sizeof *s->rlimits);
    for (size_t i = 0; i < s->n_rlimits; i++) {
        json_t *r = json_array_get(arr, i);
        char *path = xasprintf("process.rlimits[%zu]", i);
        int rc = -EINVAL;
        json_t *type;
        bool set_h, set_s;
        int64_t hard, soft;
        if (!json_is_object(r)) {
            bad(e, path, "expected an object");
            goto out;
        }
        if (get(r, path, "type", JSON_STRING, &type, e) < 0)
            goto out;
        size_t k;
        for (k = 0; type && k < sizeof rlimit_names / sizeof *rlimit_names; k++)
            if (strcmp(rlimit_names[k].name, json_string_value(type)) == 0)
                break;
        if (!type || k == sizeof rlimit_names / sizeof *rlimit_names) {
            bad(e, path, "type: unknown or missing rlimit");
            goto out;
        }
        if (integer(r, path, "hard", 0, INT64_MAX, &set_h, &hard, e) < 0 ||
            integer(r, path, "soft", 0, INT64_MAX, &set_s, &soft, e) < 0)
            goto out;
        if (!set_h || !set_s) {
            bad(e, path, "hard and soft are required");
            goto out;
        }
        s->rlimits[i].resource = rlimit_names[k].resource;
        s->rlimits[i].lim.rlim_cur = (rlim_t)soft;
        s->rlimits[i].lim.rlim_max = (rlim_t)hard;
        rc = 0;
    out:
        free(path);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int parse_process(ctr_spec *s, json_t *proc, err *e)
{
    json_t *v;
    if (!proc)
        return bad(e, "process", "missing");
    if (get(proc, "process", "terminal", JSON_TRUE, &v, e) < 0)
        return -EINVAL;
    if (v && json_is_true(v))
        return bad(e, "process.terminal",
                   "a terminal is not supported (atoll gives the container its own stdio); set it to false");
    if (get(proc, "process", "args", JSON_ARRAY, &v, e) < 0 ||
        str_array(v, "process.args", &s->args, e) < 0)
        return -EINVAL;
    if (get(proc, "process", "env", JSON_ARRAY, &v, e) < 0 ||
        str_array(v, "process.env", &s->env, e) < 0)
        return -EINVAL;
    for (size_t i = 0; s->env[i]; i++)
        if (!strchr(s->env[i], '='))
            return err_set(e, -EINVAL, "process.env[%zu]: expected KEY=VALUE", i);
    if (get(proc, "process", "cwd", JSON_STRING, &v, e) < 0)
        return -EINVAL;
    s->cwd = xstrdup(v ? json_string_value(v) : "/");
    if (s->cwd[0] != '/')
        return bad(e, "process.cwd", "must be an absolute path");
    if (strlen(s->cwd) > s->max_path) /* made in the rootfs if missing */
        s->max_path = strlen(s->cwd);
    if (get(proc, "process", "user", JSON_OBJECT, &v, e) < 0 || parse_user(s, v, e) < 0)
        return -EINVAL;
    json_t *caps;
    if (get(proc, "process", "capabilities", JSON_OBJECT, &caps, e) < 0 ||
        parse_caps_set(caps, "bounding", &s->caps.bounding, e) < 0 ||
        parse_caps_set(caps, "effective", &s->caps.effective, e) < 0 ||
        parse_caps_set(caps, "inheritable", &s->caps.inheritable, e) < 0 ||
        parse_caps_set(caps, "permitted", &s->caps.permitted, e) < 0 ||
        parse_caps_set(caps, "ambient", &s->caps.ambient, e) < 0)
        return -EINVAL;
    if (get(proc, "process", "rlimits", JSON_ARRAY, &v, e) < 0 || parse_rlimits(s, v, e) < 0)
        return -EINVAL;
    /* noNewPrivileges is read for its type only: atoll always sets it. */
    if (get(proc, "process", "noNewPrivileges", JSON_TRUE, &v, e) < 0)
        return -EINVAL;
    return 0;
}

static const struct {
    const char *name;
    unsigned long set, clear;
    bool propagation;
} mount_opts[] = {
    {"ro", MS_RDONLY, 0, false},          {"rw", 0, MS_RDONLY, false},
    {"nosuid", MS_NOSUID, 0, false},      {"suid", 0, MS_NOSUID, false},
    {"nodev", MS_NODEV, 0, false},        {"dev", 0, MS_NODEV, false},
    {"noexec", MS_NOEXEC, 0, false},      {"exec", 0, MS_NOEXEC, false},
    {"sync", MS_SYNCHRONOUS, 0, false},   {"async", 0, MS_SYNCHRONOUS, false},
    {"dirsync", MS_DIRSYNC, 0, false},    {"mand", MS_MANDLOCK, 0, false},
    {"nomand", 0, MS_MANDLOCK, false},    {"noatime", MS_NOATIME, 0, false},
    {"atime", 0, MS_NOATIME, false},      {"nodiratime", MS_NODIRATIME, 0, false},
    {"diratime", 0, MS_NODIRATIME, false}, {"relatime", MS_RELATIME, 0, false},
    {"norelatime", 0, MS_RELATIME, false}, {"strictatime", MS_STRICTATIME, 0, false},
    {"nostrictatime", 0, MS_STRICTATIME, false},
    {"bind", MS_BIND, 0, false},          {"rbind", MS_BIND | MS_REC, 0, false},
    {"private", MS_PRIVATE, 0, true},     {"rprivate", MS_PRIVATE | MS_REC, 0, true},
    {"shared", MS_SHARED, 0, true},       {"rshared", MS_SHARED | MS_REC, 0, true},
    {"slave", MS_SLAVE, 0, true},         {"rslave", MS_SLAVE | MS_REC, 0, true},
    {"unbindable", MS_UNBINDABLE, 0, true}, {"runbindable", MS_UNBINDABLE | MS_REC, 0, true},
};

/* Turns "options" into MS_* flags; the rest is data for the filesystem. */
static int parse_mount_options(ctr__mount *m, json_t *opts, const char *path, err *e)
{
    char *data = NULL;
    for (size_t i = 0; opts && i < json_array_size(opts); i++) {
        const char *o = json_string_value(json_array_get(opts, i));
        if (!o) {
            free(data);
            return err_set(e, -EINVAL, "%s.options[%zu]: expected a string", path, i);
        }
        size_t k, n = sizeof mount_opts / sizeof *mount_opts;
        for (k = 0; k < n; k++)
            if (strcmp(mount_opts[k].name, o) == 0)
                break;
        if (k < n) {
            if (mount_opts[k].propagation)
                m->propagation = mount_opts[k].set;
            else {
                m->flags = (m->flags & ~mount_opts[k].clear) | mount_opts[k].set;
            }
            continue;
        }
        if (strcmp(o, "tmpcopyup") == 0 || strcmp(o, "idmap") == 0)
            continue; /* runtime extensions atoll does not implement; harmless to skip */
        char *joined = data ? xasprintf("%s,%s", data, o) : xstrdup(o);
        free(data);
        data = joined;
    }
    m->data = data;
    if (m->flags & MS_BIND) {
        m->bind = true;
        m->flags &= ~MS_BIND;
    }
    return 0;
}

static int parse_mounts(ctr_spec *s, json_t *arr, err *e)
{
    s->n_mounts = arr ? json_array_size(arr) : 0;
    s->mounts = xcalloc(s->n_mounts + 1, sizeof *s->mounts);
    for (size_t i = 0; i < s->n_mounts; i++) {
        ctr__mount *m = &s->mounts[i];
        json_t *jm = json_array_get(arr, i), *dest, *type, *source, *opts;
        char *path = xasprintf("mounts[%zu]", i);
        int rc = -EINVAL;
        if (!json_is_object(jm)) {
            bad(e, path, "expected an object");
            goto out;
        }
        if (get(jm, path, "destination", JSON_STRING, &dest, e) < 0 ||
            get(jm, path, "type", JSON_STRING, &type, e) < 0 ||
            get(jm, path, "source", JSON_STRING, &source, e) < 0 ||
            get(jm, path, "options", JSON_ARRAY, &opts, e) < 0)
            goto out;
        if (!dest || json_string_value(dest)[0] != '/') {
            err_set(e, -EINVAL, "%s.destination: expected an absolute path", path);
            goto out;
        }
        m->dest = xstrdup(json_string_value(dest));
        if (has_dotdot(m->dest)) {
            err_set(e, -EINVAL, "%s.destination: must not contain ..", path);
            goto out;
        }
        if (parse_mount_options(m, opts, path, e) < 0)
            goto out;
        m->type = xstrdup(type ? json_string_value(type) : (m->bind ? "bind" : "none"));
        if (strcmp(m->type, "bind") == 0)
            m->bind = true;
        const char *src = source ? json_string_value(source) : m->type;
        /* Bind sources relative to the bundle, as the runtime-spec says. */
        if (m->bind && src[0] != '/')
            m->source = xasprintf("%s/%s", s->bundle, src);
        else
            m->source = xstrdup(src);
        if (strlen(m->dest) > s->max_path)
            s->max_path = strlen(m->dest);
        rc = 0;
    out:
        free(path);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static const struct {
    const char *name;
    int flag;
} ns_names[] = {
    {"pid", CLONE_NEWPID},     {"network", CLONE_NEWNET}, {"mount", CLONE_NEWNS},
    {"ipc", CLONE_NEWIPC},     {"uts", CLONE_NEWUTS},     {"user", CLONE_NEWUSER},
    {"cgroup", CLONE_NEWCGROUP},
};

static int parse_namespaces(ctr_spec *s, json_t *arr, err *e)
{
    /* Isolation is not optional in atoll: a tenant always gets its own
     * pid, mount, ipc, uts and (empty) network namespace; user and cgroup
     * namespaces come when the spec asks for them. */
    s->clone_flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET;
    for (size_t i = 0; arr && i < json_array_size(arr); i++) {
        json_t *ns = json_array_get(arr, i), *type, *path;
        char *p = xasprintf("linux.namespaces[%zu]", i);
        int rc = -EINVAL;
        if (!json_is_object(ns)) {
            bad(e, p, "expected an object");
            goto out;
        }
        if (get(ns, p, "type", JSON_STRING, &type, e) < 0 || get(ns, p, "path", JSON_STRING, &path, e) < 0)
            goto out;
        if (path) {
            err_set(e, -ENOTSUP, "%s.path: joining an existing namespace is not supported", p);
            goto out;
        }
        size_t k, n = sizeof ns_names / sizeof *ns_names;
        for (k = 0; type && k < n; k++)
            if (strcmp(ns_names[k].name, json_string_value(type)) == 0)
                break;
        if (!type || k == n) {
            err_set(e, -EINVAL, "%s.type: unknown namespace %s", p, type ? json_string_value(type) : "(missing)");
            goto out;
        }
        if (ns_names[k].flag == CLONE_NEWCGROUP)
            s->cgroup_ns = true;
        else
            s->clone_flags |= ns_names[k].flag;
        rc = 0;
    out:
        free(p);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int parse_idmaps(json_t *arr, const char *path, ctr__idmap **out, size_t *n, err *e)
{
    *n = arr ? json_array_size(arr) : 0;
    *out = xcalloc(*n + 1, sizeof **out);
    for (size_t i = 0; i < *n; i++) {
        json_t *m = json_array_get(arr, i);
        char *p = xasprintf("%s[%zu]", path, i);
        bool s1, s2, s3;
        int64_t a, b, c;
        int rc = integer(m, p, "containerID", 0, UINT32_MAX, &s1, &a, e);
        if (rc == 0)
            rc = integer(m, p, "hostID", 0, UINT32_MAX, &s2, &b, e);
        if (rc == 0)
            rc = integer(m, p, "size", 1, UINT32_MAX, &s3, &c, e);
        if (rc == 0 && (!json_is_object(m) || !s1 || !s2 || !s3))
            rc = bad(e, p, "containerID, hostID and size are required");
        free(p);
        if (rc < 0)
            return rc;
        (*out)[i] = (ctr__idmap){(uint32_t)a, (uint32_t)b, (uint32_t)c};
    }
    return 0;
}

static int parse_resources(ctr_spec *s, json_t *res, err *e)
{
    json_t *mem, *pids, *cpu;
    bool set;
    int64_t v;
    s->memory_limit = s->pids_limit = -1;
    if (get(res, "linux.resources", "memory", JSON_OBJECT, &mem, e) < 0 ||
        get(res, "linux.resources", "pids", JSON_OBJECT, &pids, e) < 0 ||
        get(res, "linux.resources", "cpu", JSON_OBJECT, &cpu, e) < 0)
        return -EINVAL;
    /* -1 means unlimited in the runtime-spec. */
    if (integer(mem, "linux.resources.memory", "limit", -1, INT64_MAX, &set, &v, e) < 0)
        return -EINVAL;
    if (set && v >= 0)
        s->memory_limit = v;
    if (integer(pids, "linux.resources.pids", "limit", -1, INT64_MAX, &set, &v, e) < 0)
        return -EINVAL;
    if (set && v > 0)
        s->pids_limit = v;
    if (integer(cpu, "linux.resources.cpu", "shares", 0, 262144, &set, &v, e) < 0)
        return -EINVAL;
    s->cpu_shares = set ? (uint64_t)v : 0;
    if (integer(cpu, "linux.resources.cpu", "quota", -1, INT64_MAX, &set, &v, e) < 0)
        return -EINVAL;
    s->cpu_quota = set && v > 0 ? v : 0;
    if (integer(cpu, "linux.resources.cpu", "period", 0, 1000000, &set, &v, e) < 0)
        return -EINVAL;
    s->cpu_period = set ? (uint64_t)v : 0;
    if (s->cpu_period && s->cpu_period < 1000)
        return bad(e, "linux.resources.cpu.period", "must be at least 1000 (microseconds)");
    return 0;
}

static int parse_paths(json_t *linux_, const char *key, char ***out, ctr_spec *s, err *e)
{
    json_t *v;
    char *path = sub("linux", key);
    int rc = get(linux_, "linux", key, JSON_ARRAY, &v, e);
    if (rc == 0)
        rc = str_array(v, path, out, e);
    for (size_t i = 0; rc == 0 && (*out)[i]; i++) {
        if ((*out)[i][0] != '/')
            rc = err_set(e, -EINVAL, "%s[%zu]: expected an absolute path", path, i);
        else if (strlen((*out)[i]) > s->max_path)
            s->max_path = strlen((*out)[i]);
    }
    free(path);
    return rc;
}

static int parse_linux(ctr_spec *s, json_t *lx, err *e)
{
    json_t *v;
    if (get(lx, "linux", "namespaces", JSON_ARRAY, &v, e) < 0 || parse_namespaces(s, v, e) < 0)
        return -EINVAL;
    if (get(lx, "linux", "uidMappings", JSON_ARRAY, &v, e) < 0 ||
        parse_idmaps(v, "linux.uidMappings", &s->uid_maps, &s->n_uid_maps, e) < 0)
        return -EINVAL;
    if (get(lx, "linux", "gidMappings", JSON_ARRAY, &v, e) < 0 ||
        parse_idmaps(v, "linux.gidMappings", &s->gid_maps, &s->n_gid_maps, e) < 0)
        return -EINVAL;
    if (get(lx, "linux", "resources", JSON_OBJECT, &v, e) < 0 || parse_resources(s, v, e) < 0)
        return -EINVAL;
    if (get(lx, "linux", "cgroupsPath", JSON_STRING, &v, e) < 0)
        return -EINVAL;
    if (v) {
        const char *p = json_string_value(v);
        if (!*p || strcmp(p, "/") == 0)
            return bad(e, "linux.cgroupsPath", "must name a cgroup (not empty, not the root)");
        if (strstr(p, "..") || strchr(p, ':'))
            return bad(e, "linux.cgroupsPath", "must be a plain path (no .., no systemd slice:prefix:name)");
        s->cgroups_path = xstrdup(p);
    }
    s->rootfs_propagation = MS_PRIVATE | MS_REC;
    if (get(lx, "linux", "rootfsPropagation", JSON_STRING, &v, e) < 0)
        return -EINVAL;
    if (v) {
        const char *p = json_string_value(v);
        if (strcmp(p, "private") == 0 || strcmp(p, "rprivate") == 0)
            s->rootfs_propagation = MS_PRIVATE | MS_REC;
        else if (strcmp(p, "slave") == 0 || strcmp(p, "rslave") == 0)
            s->rootfs_propagation = MS_SLAVE | MS_REC;
        else
            return bad(e, "linux.rootfsPropagation", "only private and slave are supported");
    }
    if (parse_paths(lx, "maskedPaths", &s->masked_paths, s, e) < 0 ||
        parse_paths(lx, "readonlyPaths", &s->readonly_paths, s, e) < 0)
        return -EINVAL;
    /* Refused rather than ignored: a tenant relying on them would
     * otherwise run silently without. */
    if (get(lx, "linux", "sysctl", JSON_OBJECT, &v, e) < 0)
        return -EINVAL;
    if (v && json_object_size(v))
        return bad(e, "linux.sysctl", "not supported by atoll");
    if (get(lx, "linux", "devices", JSON_ARRAY, &v, e) < 0)
        return -EINVAL;
    if (v && json_array_size(v))
        return bad(e, "linux.devices", "not supported by atoll (a container gets null, zero, full, random, urandom and tty)");
    if (get(lx, "linux", "seccomp", JSON_OBJECT, &v, e) < 0 ||
        ctr__seccomp_compile(v, "linux.seccomp", &s->seccomp, &s->seccomp_len, e) < 0)
        return -EINVAL;
    return 0;
}

static int parse(ctr_spec *s, json_t *root, err *e)
{
    json_t *v, *r;
    if (!json_is_object(root))
        return bad(e, "(top level)", "expected an object");
    if (get(root, "", "process", JSON_OBJECT, &v, e) < 0 || parse_process(s, v, e) < 0)
        return -EINVAL;
    if (get(root, "", "root", JSON_OBJECT, &r, e) < 0)
        return -EINVAL;
    if (!r)
        return bad(e, "root", "missing");
    if (get(r, "root", "path", JSON_STRING, &v, e) < 0)
        return -EINVAL;
    if (!v || !*json_string_value(v))
        return bad(e, "root.path", "missing");
    const char *rp = json_string_value(v);
    s->rootfs = rp[0] == '/' ? xstrdup(rp) : xasprintf("%s/%s", s->bundle, rp);
    if (get(r, "root", "readonly", JSON_TRUE, &v, e) < 0)
        return -EINVAL;
    s->root_readonly = v && json_is_true(v);
    if (get(root, "", "hostname", JSON_STRING, &v, e) < 0)
        return -EINVAL;
    s->hostname = v ? xstrdup(json_string_value(v)) : NULL;
    if (s->hostname && strlen(s->hostname) > 64)
        return bad(e, "hostname", "longer than 64 bytes");
    if (get(root, "", "mounts", JSON_ARRAY, &v, e) < 0 || parse_mounts(s, v, e) < 0)
        return -EINVAL;
    if (get(root, "", "linux", JSON_OBJECT, &v, e) < 0 || parse_linux(s, v, e) < 0)
        return -EINVAL;
    s->max_path += 16; /* room for the /dev entries atoll adds itself */
    return 0;
}

int ctr_spec_load(const char *bundle, ctr_spec **out, err *e)
{
    ctr_spec *s = xcalloc(1, sizeof *s);
    json_t *root = NULL;
    int rc;
    char *config = NULL;
    char *abs = realpath(bundle, NULL);
    if (!abs) {
        rc = err_set(e, -errno, "bundle %s: %s", bundle, strerror(errno));
        goto fail;
    }
    s->bundle = xstrdup(abs);
    free(abs);
    config = xasprintf("%s/config.json", s->bundle);
    json_error_t jerr;
    root = json_load_file(config, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (access(config, R_OK) < 0)
            rc = err_set(e, -errno, "%s: %s", config, strerror(errno));
        else
            rc = err_set(e, -EINVAL, "%s: line %d column %d: %s", config, jerr.line, jerr.column, jerr.text);
        goto fail;
    }
    rc = parse(s, root, e);
    if (rc < 0) {
        err_prefix(e, "%s", config);
        goto fail;
    }
    json_decref(root);
    free(config);
    *out = s;
    return 0;
fail:
    json_decref(root);
    free(config);
    ctr_spec_free(s);
    *out = NULL;
    return rc;
}

void ctr_spec_free(ctr_spec *s)
{
    if (!s)
        return;
    free(s->bundle);
    free(s->rootfs);
    str_array_free(s->args);
    str_array_free(s->env);
    free(s->cwd);
    free(s->groups);
    free(s->hostname);
    for (size_t i = 0; s->mounts && i < s->n_mounts; i++) {
        free(s->mounts[i].dest);
        free(s->mounts[i].type);
        free(s->mounts[i].source);
        free(s->mounts[i].data);
    }
    free(s->mounts);
    free(s->uid_maps);
    free(s->gid_maps);
    free(s->cgroups_path);
    free(s->rlimits);
    str_array_free(s->masked_paths);
    str_array_free(s->readonly_paths);
    free(s->seccomp);
    free(s);
}
