/* Compiles a container's seccomp filter with libseccomp, in the parent, to
 * a plain BPF program: the child then only has to load it with one
 * seccomp(2) call and never runs libseccomp (which allocates) after clone.
 *
 * Without linux.seccomp in the spec, atoll applies its default profile.
 * It blocks, with EPERM, what Docker's default profile blocks for a
 * container without extra capabilities: kernel modules, kexec, reboot,
 * clock changes, mount and namespace syscalls, ptrace and cross-process
 * memory access, bpf, perf, keyrings, userfaultfd, io_uring, swap,
 * quotas, open_by_handle_at, clone/unshare with namespace flags, and
 * vsock sockets.
 * Docker writes it as an allow-list; atoll writes it as a deny-list of the
 * same dangerous calls, which gives a much shorter filter (faster to load
 * and to run) at the cost of allowing syscalls that newer kernels add. */
#include <errno.h>
#include <jansson.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "container/internal.h"
#include "core/alloc.h"

static const char *const default_denied[] = {
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "clock_settime64",
    "create_module", "delete_module", "finit_module", "fsconfig", "fsmount",
    "fsopen", "fspick", "get_kernel_syms", "get_mempolicy", "init_module",
    "io_uring_enter", "io_uring_register", "io_uring_setup", "ioperm", "iopl",
    "kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mbind",
    "mount", "mount_setattr", "move_mount", "move_pages", "name_to_handle_at",
    "nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open",
    "pidfd_getfd", "pivot_root", "process_madvise", "process_vm_readv",
    "process_vm_writev", "ptrace", "query_module", "quotactl", "quotactl_fd",
    "reboot", "request_key", "set_mempolicy", "setns", "settimeofday", "stime",
    "swapoff", "swapon", "syslog", "sysfs", "_sysctl", "umount", "umount2",
    "unshare", "uselib", "userfaultfd", "ustat", "vhangup", "vm86", "vm86old",
};

static int add_default(scmp_filter_ctx ctx)
{
    int rc;
    for (size_t i = 0; i < sizeof default_denied / sizeof *default_denied; i++) {
        int nr = seccomp_syscall_resolve_name(default_denied[i]);
        if (nr == __NR_SCMP_ERROR)
            continue; /* not on this architecture */
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
        if (rc < 0)
            return rc;
    }
    /* clone with any namespace flag: one rule per flag, since rules for
     * one syscall are ORed; fork()-like clones stay allowed. */
    static const unsigned long ns_flags[] = {
        CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER,
        CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP,
    };
    for (size_t i = 0; i < sizeof ns_flags / sizeof *ns_flags; i++) {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
        if (rc < 0)
            return rc;
    }
    /* vsock is not network-namespaced: it would reach the hypervisor's
     * and the host's vsock services past the empty network namespace. */
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
                          SCMP_A0(SCMP_CMP_EQ, 40 /* AF_VSOCK */));
    if (rc < 0)
        return rc;
    /* clone3 passes its flags in memory, out of BPF's reach: ENOSYS makes
     * libc fall back to clone, where the rules above apply (as Docker does). */
    return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
}

static int action(const char *name, json_t *errno_ret, uint32_t *out)
{
    int e = errno_ret && json_is_integer(errno_ret) ? (int)json_integer_value(errno_ret) : EPERM;
    static const struct { const char *name; uint32_t act; } acts[] = {
        {"SCMP_ACT_ALLOW", SCMP_ACT_ALLOW},   {"SCMP_ACT_KILL", SCMP_ACT_KILL},
        {"SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD},
        {"SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS},
        {"SCMP_ACT_TRAP", SCMP_ACT_TRAP},     {"SCMP_ACT_LOG", SCMP_ACT_LOG},
    };
    if (!name)
        return -EINVAL;
    if (strcmp(name, "SCMP_ACT_ERRNO") == 0) {
        *out = SCMP_ACT_ERRNO((uint32_t)e);
        return 0;
    }
    if (strcmp(name, "SCMP_ACT_TRACE") == 0) {
        *out = SCMP_ACT_TRACE((uint32_t)e);
        return 0;
    }
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++)
        if (strcmp(acts[i].name, name) == 0) {
            *out = acts[i].act;
            return 0;
        }
    return -EINVAL;
}

static int op(const char *name, enum scmp_compare *out)
{
    static const struct { const char *name; enum scmp_compare op; } ops[] = {
        {"SCMP_CMP_NE", SCMP_CMP_NE}, {"SCMP_CMP_LT", SCMP_CMP_LT},
        {"SCMP_CMP_LE", SCMP_CMP_LE}, {"SCMP_CMP_EQ", SCMP_CMP_EQ},
        {"SCMP_CMP_GE", SCMP_CMP_GE}, {"SCMP_CMP_GT", SCMP_CMP_GT},
        {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
    };
    for (size_t i = 0; name && i < sizeof ops / sizeof *ops; i++)
        if (strcmp(ops[i].name, name) == 0) {
            *out = ops[i].op;
            return 0;
        }
    return -EINVAL;
}

static const struct { const char *name; uint32_t arch; } arches[] = {
    {"SCMP_ARCH_X86", SCMP_ARCH_X86},         {"SCMP_ARCH_X86_64", SCMP_ARCH_X86_64},
    {"SCMP_ARCH_X32", SCMP_ARCH_X32},         {"SCMP_ARCH_ARM", SCMP_ARCH_ARM},
    {"SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64}, {"SCMP_ARCH_PPC64LE", SCMP_ARCH_PPC64LE},
    {"SCMP_ARCH_S390X", SCMP_ARCH_S390X},     {"SCMP_ARCH_RISCV64", SCMP_ARCH_RISCV64},
};

/* One entry of linux.seccomp.syscalls. */
static int add_spec_rule(scmp_filter_ctx ctx, json_t *rule, const char *where, size_t i, err *e)
{
    json_t *names = json_object_get(rule, "names");
    json_t *args = json_object_get(rule, "args");
    uint32_t act;
    if (!json_is_object(rule) || !json_is_array(names))
        return err_set(e, -EINVAL, "%s.syscalls[%zu].names: expected an array", where, i);
    if (action(json_string_value(json_object_get(rule, "action")),
               json_object_get(rule, "errnoRet"), &act) < 0)
        return err_set(e, -EINVAL, "%s.syscalls[%zu].action: unknown action", where, i);
    size_t n_args = json_is_array(args) ? json_array_size(args) : 0;
    if (n_args > 6)
        return err_set(e, -EINVAL, "%s.syscalls[%zu].args: at most 6", where, i);
    struct scmp_arg_cmp cmp[6];
    for (size_t a = 0; a < n_args; a++) {
        json_t *ja = json_array_get(args, a);
        json_t *idx = json_object_get(ja, "index");
        enum scmp_compare o;
        if (!json_is_integer(idx) || json_integer_value(idx) < 0 || json_integer_value(idx) > 5 ||
            op(json_string_value(json_object_get(ja, "op")), &o) < 0)
            return err_set(e, -EINVAL, "%s.syscalls[%zu].args[%zu]: bad index or op", where, i, a);
        cmp[a] = (struct scmp_arg_cmp){
            .arg = (unsigned)json_integer_value(idx), .op = o,
            .datum_a = (scmp_datum_t)json_integer_value(json_object_get(ja, "value")),
            .datum_b = (scmp_datum_t)json_integer_value(json_object_get(ja, "valueTwo")),
        };
    }
    for (size_t k = 0; k < json_array_size(names); k++) {
        const char *name = json_string_value(json_array_get(names, k));
        if (!name)
            return err_set(e, -EINVAL, "%s.syscalls[%zu].names[%zu]: expected a string", where, i, k);
        int nr = seccomp_syscall_resolve_name(name);
        if (nr == __NR_SCMP_ERROR)
            continue; /* unknown here: runc and crun skip it too */
        int rc = seccomp_rule_add_array(ctx, act, nr, (unsigned)n_args, cmp);
        /* -EEXIST/-EACCES: the rule repeats the default action; harmless. */
        if (rc < 0 && rc != -EEXIST && rc != -EACCES)
            return err_set(e, rc, "%s.syscalls[%zu]: %s: %s", where, i, name, strerror(-rc));
    }
    return 0;
}

static int add_spec(scmp_filter_ctx *pctx, json_t *profile, const char *where, err *e)
{
    uint32_t def;
    json_t *arches_j = json_object_get(profile, "architectures");
    json_t *calls = json_object_get(profile, "syscalls");
    if (action(json_string_value(json_object_get(profile, "defaultAction")),
               json_object_get(profile, "defaultErrnoRet"), &def) < 0)
        return err_set(e, -EINVAL, "%s.defaultAction: missing or unknown action", where);
    *pctx = seccomp_init(def);
    if (!*pctx)
        return err_set(e, -ENOMEM, "%s: seccomp_init failed", where);
    for (size_t i = 0; json_is_array(arches_j) && i < json_array_size(arches_j); i++) {
        const char *a = json_string_value(json_array_get(arches_j, i));
        size_t k, n = sizeof arches / sizeof *arches;
        for (k = 0; a && k < n; k++)
            if (strcmp(arches[k].name, a) == 0)
                break;
        if (k == n || !a)
            return err_set(e, -EINVAL, "%s.architectures[%zu]: unknown architecture", where, i);
        int rc = seccomp_arch_add(*pctx, arches[k].arch);
        if (rc < 0 && rc != -EEXIST)
            return err_set(e, rc, "%s.architectures[%zu]: %s", where, i, strerror(-rc));
    }
    if (calls && !json_is_array(calls))
        return err_set(e, -EINVAL, "%s.syscalls: expected an array", where);
    for (size_t i = 0; calls && i < json_array_size(calls); i++) {
        int rc = add_spec_rule(*pctx, json_array_get(calls, i), where, i, e);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int ctr__seccomp_compile(json_t *profile, const char *where, struct sock_filter **prog,
                         unsigned short *len, err *e)
{
    scmp_filter_ctx ctx = NULL;
    int rc, fd = -1;
    *prog = NULL;
    *len = 0;
    if (profile) {
        rc = add_spec(&ctx, profile, where, e);
        if (rc < 0)
            goto fail;
    } else {
        ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx) {
            rc = err_set(e, -ENOMEM, "default seccomp profile: seccomp_init failed");
            goto fail;
        }
        rc = add_default(ctx);
        if (rc < 0) {
            err_set(e, rc, "default seccomp profile: %s", strerror(-rc));
            goto fail;
        }
    }
    /* atoll sets no_new_privs itself, in the child, just before loading. */
    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    fd = memfd_create("seccomp", MFD_CLOEXEC);
    if (fd < 0) {
        rc = err_set(e, -errno, "%s: memfd_create: %s", where, strerror(errno));
        goto fail;
    }
    rc = seccomp_export_bpf(ctx, fd);
    if (rc < 0) {
        err_set(e, rc, "%s: export BPF: %s", where, strerror(-rc));
        goto fail;
    }
    off_t size = lseek(fd, 0, SEEK_CUR);
    if (size <= 0 || size % sizeof(struct sock_filter) ||
        size / sizeof(struct sock_filter) > BPF_MAXINSNS) {
        rc = err_set(e, -E2BIG, "%s: the filter is too large (%lld bytes)", where, (long long)size);
        goto fail;
    }
    *prog = xmalloc((size_t)size);
    if (pread(fd, *prog, (size_t)size, 0) != size) {
        rc = err_set(e, -EIO, "%s: reading back the BPF program failed", where);
        goto fail;
    }
    *len = (unsigned short)(size / sizeof(struct sock_filter));
    close(fd);
    seccomp_release(ctx);
    return 0;
fail:
    free(*prog);
    *prog = NULL;
    if (fd >= 0)
        close(fd);
    if (ctx)
        seccomp_release(ctx);
    return rc < 0 ? rc : -EINVAL;
}

int ctr_default_seccomp_install(err *e)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return err_set(e, -ENOMEM, "default seccomp profile: seccomp_init failed");
    int rc = add_default(ctx);
    if (rc >= 0)
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (rc >= 0)
        rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc < 0)
        return err_set(e, rc, "default seccomp profile: load: %s", strerror(-rc));
    return 0;
}
