#!/usr/bin/env python3
"""End-to-end tests of `atoll container run`: builds a busybox bundle at
test time (Debian's busybox-static), runs the real binary (the sanitized
one under `make test`) and checks isolation, limits, error messages and
that nothing (cgroup, mount, process) is left behind. Self-contained,
stdlib only; prints "ok - name" / "not ok - name" lines."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ATOLL = os.environ.get("ATOLL_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "asan", "atoll")
BUSYBOX = "/bin/busybox"
failures = 0


def report(name, ok, detail=""):
    global failures
    if ok:
        print(f"ok - {name}")
    else:
        failures += 1
        print(f"not ok - {name}")
        for line in str(detail).splitlines()[-20:]:
            print(f"#   {line}")
    sys.stdout.flush()


def make_rootfs(root):
    os.makedirs(os.path.join(root, "bin"))
    shutil.copy(BUSYBOX, os.path.join(root, "bin", "busybox"))
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True).stdout.split()
    for a in applets:
        if a != "busybox":
            os.symlink("busybox", os.path.join(root, "bin", a))
    for d in ("proc", "dev", "tmp", "etc", "sys"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(os.path.join(root, "tmp"), 0o1777)


def base_config():
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh", "-c", "exit 0"],
            "env": ["PATH=/bin", "TERM=dumb"],
            "cwd": "/",
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "atoll-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger", "/proc/bus"],
        },
    }


class Bundle:
    def __init__(self, base):
        self.base = base
        self.n = 0

    def make(self, config=None, raw=None, rootfs=True):
        """A bundle dir sharing the one rootfs (symlinked) with its own config."""
        self.n += 1
        d = os.path.join(self.base, f"b{self.n}")
        os.makedirs(d)
        if rootfs:
            os.symlink(os.path.join(self.base, "rootfs"), os.path.join(d, "rootfs"))
        with open(os.path.join(d, "config.json"), "w") as f:
            f.write(raw if raw is not None else json.dumps(config or base_config()))
        return d


def run(bundle, args=None, timeout=60):
    cmd = [ATOLL, "container", "run", bundle]
    if args:
        cmd += ["--"] + args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def own_cgroup_dirs():
    """The directories our cgroups live in: containers are created below them."""
    dirs = []
    for line in open("/proc/self/cgroup"):
        num, ctrls, path = line.rstrip("\n").split(":", 2)
        for c in ("memory", "pids", "cpu"):
            if c in ctrls.split(","):
                dirs.append(f"/sys/fs/cgroup/{c}{path if path != '/' else ''}")
        if num == "0" and os.path.isdir("/sys/fs/cgroup/unified"):
            dirs.append("/sys/fs/cgroup/unified" + (path if path != "/" else ""))
    return dirs


def snapshot():
    cg = {d: sorted(e for e in os.listdir(d) if os.path.isdir(os.path.join(d, e)))
          for d in own_cgroup_dirs() if os.path.isdir(d)}
    with open("/proc/self/mountinfo") as f:
        mounts = len(f.readlines())
    return cg, mounts


def leftovers(marker):
    """Processes whose command line starts with marker ("sleep\\x0031337"):
    the container's own, not atoll, whose arguments carry it too."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().startswith(marker.encode()):
                    found.append(pid)
        except OSError:
            pass
    return found


def wait_for(marker, timeout=10):
    """Waits until the container's process with this command line runs."""
    end = time.time() + timeout
    while time.time() < end:
        found = leftovers(marker)
        if found:
            return found
        time.sleep(0.02)
    return []


def zombies_of(ppid):
    z = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if fields[0] == "Z" and int(fields[1]) == ppid:
                z.append(pid)
        except (OSError, IndexError):
            pass
    return z


def main():
    if os.geteuid() != 0 or not os.path.exists(BUSYBOX) or not os.path.exists(ATOLL):
        print("ok - container tests # SKIP need root, busybox-static and the atoll binary")
        return 0
    base = tempfile.mkdtemp(prefix="atoll-ctr-")
    try:
        make_rootfs(os.path.join(base, "rootfs"))
        b = Bundle(base)
        before = snapshot()
        tests(b)
        # A SIGKILLed atoll leaves its cgroup (nobody can remove it); the
        # next run sweeps it. Run once more to be sure, then compare.
        run(b.make(), ["true"])
        time.sleep(0.2)
        after = snapshot()
        report("no cgroup left behind after all runs", before[0] == after[0], f"{before[0]}\n{after[0]}")
        report("no mount left behind after all runs", before[1] == after[1], f"{before[1]} -> {after[1]}")
        report("no zombie left behind", not zombies_of(os.getpid()), zombies_of(os.getpid()))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if failures else 0


def tests(b):
    default = b.make()

    r = run(default, ["sh", "-c", "exit 7"])
    report("exit status is propagated", r.returncode == 7, r)

    # pid 1 ignores signals without a handler, except SIGKILL from outside.
    p = subprocess.Popen([ATOLL, "container", "run", default, "--", "sleep", "31338"])
    for pid in wait_for("sleep\x0031338"):
        os.kill(int(pid), signal.SIGKILL)
    rc = p.wait(timeout=10)
    report("death by signal is 128+signal", rc == 128 + signal.SIGKILL, rc)

    c = base_config()
    c["process"]["args"] = ["echo", "from-config"]
    d = b.make(c)
    r1, r2 = run(d), run(d, ["echo", "from-cli"])
    report("process.args runs, ARGS replace it",
           r1.stdout == "from-config\n" and r2.stdout == "from-cli\n", f"{r1}\n{r2}")

    c = base_config()
    c["process"]["env"] += ["GREETING=hello there"]
    c["process"]["cwd"] = "/tmp"
    c["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [1002]}
    c["hostname"] = "tenant-7"
    r = run(b.make(c), ["sh", "-c", 'echo "$GREETING"; pwd; hostname; id -u; id -g; id -G'])
    report("env, cwd, hostname and user are applied",
           r.stdout.split("\n")[:6] == ["hello there", "/tmp", "tenant-7", "1000", "1001", "1001 1002"], r)

    # A process.cwd missing from the rootfs is made, as runc and crun do
    # (before the root turns read-only).
    c = base_config()
    missing = "/made-%d/by/atoll" % os.getpid()
    c["process"]["cwd"] = missing
    r = run(b.make(c), ["pwd"])
    shutil.rmtree(os.path.join(b.base, "rootfs", missing.split("/")[1]), ignore_errors=True)
    report("a missing process.cwd is made", r.returncode == 0 and r.stdout == missing + "\n", r)

    r = run(default, ["sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'"])
    # sh, ls and grep: nothing of the host's.
    # sh, ls and grep — or only sh and ls when ls reads /proc before sh has forked grep.
    report("pid namespace: the process is pid 1 and sees only its own",
           r.stdout.split() in (["1", "3"], ["1", "2"]), r)

    r = run(default, ["sh", "-c", "ls /sys/class/net; cat /proc/net/dev | tail -n +3 | cut -d: -f1"])
    report("network namespace has only lo", r.stdout.split() == ["lo", "lo"], r)

    r = run(default, ["ls", "/", "/etc"])
    host_etc = "passwd" in r.stdout or "hostname" in r.stdout
    report("the rootfs is all it sees", r.returncode == 0 and "bin" in r.stdout and not host_etc, r)

    r = run(default, ["sh", "-c", "touch /x 2>&1; touch /tmp/ok && echo tmp-writable"])
    report("read-only root refuses writes", "Read-only file system" in r.stdout and "tmp-writable" in r.stdout, r)

    r = run(default, ["sh", "-c", "ls /dev; echo x > /dev/null && head -c 4 /dev/zero | wc -c"])
    devs = r.stdout.split()
    report("minimal /dev with working devices",
           all(x in devs for x in ("null", "zero", "full", "random", "urandom", "tty", "shm", "pts"))
           and devs[-1] == "4", r)

    r = run(default, ["sh", "-c", "cat /proc/timer_list /proc/keys | wc -c; "
                                  "(echo 1 > /proc/sys/kernel/domainname) 2>&1"])
    report("masked and read-only paths", r.stdout.split("\n")[0].strip() == "0" and "Read-only" in r.stdout, r)

    r = run(default, ["sh", "-c", "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status"])
    st = dict(l.split(":\t") for l in r.stdout.strip().split("\n") if ":\t" in l)
    report("no capabilities, no_new_privs, seccomp filter",
           st.get("CapEff") == "0000000000000000" and st.get("CapBnd") == "0000000000000000"
           and st.get("NoNewPrivs") == "1" and st.get("Seccomp") == "2", r)

    c = base_config()
    c["process"]["capabilities"] = {k: ["CAP_NET_BIND_SERVICE", "CAP_CHOWN"]
                                    for k in ("bounding", "effective", "permitted")}
    r = run(b.make(c), ["sh", "-c", "grep -E '^(CapEff|CapBnd):' /proc/self/status"])
    report("process.capabilities grants exactly what it lists",
           r.stdout.split() == ["CapEff:", "0000000000000401", "CapBnd:", "0000000000000401"], r)

    # unshare(CLONE_NEWUSER) needs no capability, so only seccomp stops it.
    r1 = run(default, ["unshare", "-U", "true"])
    c = base_config()
    c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    d = b.make(c)
    r2 = run(d, ["unshare", "-U", "true"])
    r3 = run(d, ["pwd"])
    report("default seccomp profile blocks unshare with EPERM",
           r1.returncode != 0 and "Operation not permitted" in r1.stderr, r1)
    report("linux.seccomp from the spec replaces the default",
           r2.returncode == 0 and r3.returncode != 0, f"{r2}\n{r3}")

    shared = os.path.join(b.base, "shared")
    os.makedirs(shared)
    with open(os.path.join(shared, "greeting"), "w") as f:
        f.write("from the host\n")
    c = base_config()
    c["mounts"].append({"destination": "/data/in", "type": "bind", "source": shared,
                        "options": ["rbind", "ro", "nosuid", "nodev"]})
    c["mounts"].append({"destination": "/data/rw", "type": "bind", "source": shared, "options": ["bind"]})
    r = run(b.make(c), ["sh", "-c", "cat /data/in/greeting; touch /data/in/x 2>&1; "
                                    "echo y > /data/rw/y && echo written"])
    report("bind mounts with options (ro, nosuid) and without",
           r.stdout.startswith("from the host\n") and "Read-only file system" in r.stdout
           and "written" in r.stdout and os.path.exists(os.path.join(shared, "y")), r)

    if shutil.which("crun"):
        d = os.path.join(b.base, "crun-spec")
        os.makedirs(d)
        subprocess.run(["crun", "spec"], cwd=d, check=True)
        os.symlink(os.path.join(b.base, "rootfs"), os.path.join(d, "rootfs"))
        with open(os.path.join(d, "config.json")) as f:
            c = json.load(f)
        c["process"]["terminal"] = False
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(c, f)
        r = run(d, ["sh", "-c", "hostname; grep CapBnd /proc/self/status"])
        report("the config.json that `crun spec` writes runs as is",
               r.returncode == 0 and r.stdout.split() == ["crun", "CapBnd:", "0000000020000420"], r)

    # A tenant's rootfs whose /dev is a symlink to a host directory: atoll
    # resolves mount points inside the rootfs, so it must neither create
    # the device mount points there nor mount on it.
    host_dir = os.path.join(b.base, "host-dir")
    os.makedirs(host_dir)
    evil = os.path.join(b.base, "evil-rootfs")
    os.makedirs(os.path.join(evil, "bin"))
    shutil.copy(BUSYBOX, os.path.join(evil, "bin", "busybox"))
    os.symlink("busybox", os.path.join(evil, "bin", "sh"))
    os.symlink(host_dir, os.path.join(evil, "dev"))
    c = base_config()
    c["root"]["path"] = evil
    r = run(b.make(c, rootfs=False), ["sh", "-c", "ls /dev"])
    report("a symlink in the rootfs cannot point atoll's mounts at host files",
           os.listdir(host_dir) == [] and (r.returncode == 125 or "null" in r.stdout), (r, os.listdir(host_dir)))

    c = base_config()
    c["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    r = run(b.make(c))
    report("unsupported linux.sysctl is refused, not ignored",
           r.returncode == 125 and "linux.sysctl: not supported" in r.stderr, r)

    # A static probe (when a C compiler is at hand) tries syscalls that need
    # no capability, so only seccomp can stop them.
    probe_src = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
static void show(const char *name, long rc) { printf("%s=%s\n", name, rc < 0 && errno == EPERM ? "EPERM" : "allowed"); }
int main(void) {
    show("ptrace", ptrace(PTRACE_TRACEME, 0, 0, 0));
    show("vsock", socket(40, SOCK_STREAM, 0));
    show("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
    show("unshare", unshare(CLONE_NEWUSER));
    return 0;
}
"""
    cc = shutil.which("cc") or shutil.which("gcc")
    probe = os.path.join(b.base, "probe-rootfs")
    if cc:
        os.makedirs(os.path.join(probe, "bin"))
        with open(os.path.join(b.base, "probe.c"), "w") as f:
            f.write(probe_src)
        built = subprocess.run([cc, "-static", "-O1", "-o", os.path.join(probe, "bin", "probe"),
                                os.path.join(b.base, "probe.c")], capture_output=True).returncode == 0
    if cc and built:
        c = base_config()
        c["root"]["path"] = probe
        c["mounts"] = []
        r1 = run(b.make(c, rootfs=False), ["/bin/probe"])
        c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW"}
        r2 = run(b.make(c, rootfs=False), ["/bin/probe"])
        report("default seccomp profile: ptrace, vsock, keyctl, unshare get EPERM",
               r1.stdout.split() == ["ptrace=EPERM", "vsock=EPERM", "keyctl=EPERM", "unshare=EPERM"], r1)
        report("... and are allowed without it (so seccomp is what stops them)",
               r2.stdout.split() == ["ptrace=allowed", "vsock=allowed", "keyctl=allowed", "unshare=allowed"], r2)

    c = base_config()
    c["linux"]["resources"] = {"memory": {"limit": 32 << 20}}
    r = run(b.make(c), ["dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"])
    report("memory limit: a memory hog is OOM-killed (137)", r.returncode == 137, r)

    c = base_config()
    c["linux"]["resources"] = {"pids": {"limit": 8}}
    r = run(b.make(c), ["sh", "-c", "i=0; while [ $i -lt 40 ]; do sleep 5 & i=$((i+1)); done"], timeout=60)
    report("pids limit stops a fork bomb", r.returncode != 0 and "can't fork" in r.stderr, r)

    c = base_config()
    c["linux"]["resources"] = {"cpu": {"shares": 512, "quota": 50000, "period": 100000}}
    r = run(b.make(c), ["cat", "/proc/self/cgroup"])
    report("cpu shares/quota/period are accepted", r.returncode == 0, r)

    # Where it lands: without limits in the v2 hierarchy (even a hybrid
    # one without controllers), with limits in the v1 controllers' ones.
    r = run(default, ["cat", "/proc/self/cgroup"])
    v2 = [l for l in r.stdout.split("\n") if l.startswith("0::")]
    report("a container without limits gets its own cgroup",
           "/atoll-" in (v2[0] if v2 else "") or ":pids:/" in r.stdout and "/atoll-" in r.stdout, r)

    c = base_config()
    c["linux"]["resources"] = {"memory": {"limit": 48 << 20}, "pids": {"limit": 20},
                               "cpu": {"shares": 256}}
    p = subprocess.Popen([ATOLL, "container", "run", b.make(c), "--", "sleep", "31339"])
    wait_for("sleep\x0031339")
    found = {}
    for d in own_cgroup_dirs():
        for e in os.listdir(d):
            if e.startswith(f"atoll-{p.pid}-"):
                for f in ("memory.limit_in_bytes", "pids.max", "cpu.shares", "memory.max"):
                    if os.path.exists(os.path.join(d, e, f)):
                        found[f] = open(os.path.join(d, e, f)).read().strip()
    p.kill()
    p.wait()
    report("the cgroup records the limits",
           found.get("memory.limit_in_bytes", found.get("memory.max")) == str(48 << 20)
           and found.get("pids.max") == "20" and found.get("cpu.shares", "256") == "256", found)

    c = base_config()
    c["linux"]["namespaces"].append({"type": "user"})
    c["linux"]["resources"] = {"pids": {"limit": 10}}  # joins a v1 cgroup from inside
    r = run(b.make(c), ["sh", "-c", "cat /proc/self/uid_map; id -u"])
    fields = r.stdout.split()
    report("user namespace maps root to the caller",
           fields[:3] == ["0", str(os.geteuid()), "1"] and fields[3] == "0", r)

    # Maps that leave out the host's uid (root is 100000 outside, as with
    # subordinate ids): the setup runs as the container's root, or the
    # tmpfs mounts owned by the new namespace refuse to create its files.
    c = base_config()
    c["linux"]["namespaces"].append({"type": "user"})
    c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    c["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 6]}
    r = run(b.make(c), ["sh", "-c", "id -u; id -G; head -1 /proc/self/uid_map; touch /tmp/x && ls -n /tmp"])
    lines = r.stdout.split("\n")
    report("user namespace with subordinate ids (0 -> 100000): starts, ids applied",
           r.returncode == 0 and lines[:2] == ["1000", "1000 5 6"] and lines[2].split() == ["0", "100000", "65536"]
           and "1000" in lines[-2], r)

    # linux.cgroupsPath naming a cgroup that already exists: joining it
    # would put the limit on its processes and the teardown (which kills
    # everything in the container's cgroup) would kill them. Here a victim
    # in a cgroup of its own, next to where atoll puts containers.
    pids_dir = [d for d in own_cgroup_dirs() if d.startswith("/sys/fs/cgroup/pids")]
    if pids_dir:
        victim_cg = os.path.join(pids_dir[0], "atoll-test-victim")
        os.makedirs(victim_cg, exist_ok=True)
        victim = subprocess.Popen(["sleep", "31340"])
        try:
            with open(os.path.join(victim_cg, "cgroup.procs"), "w") as f:
                f.write(str(victim.pid))
            c = base_config()
            c["linux"]["cgroupsPath"] = victim_cg[len("/sys/fs/cgroup/pids"):]
            c["linux"]["resources"] = {"pids": {"limit": 5}}
            r = run(b.make(c), ["true"])
            time.sleep(0.2)
            limit = open(os.path.join(victim_cg, "pids.max")).read().strip()
            report("cgroupsPath of an existing cgroup is refused; its processes live on",
                   r.returncode == 125 and "already exists" in r.stderr and victim.poll() is None
                   and limit == "max", (r, victim.poll(), limit))
        finally:
            victim.kill()
            victim.wait()
            time.sleep(0.1)
            os.rmdir(victim_cg)
    # "" and "/" (our own cgroup, the root one) are refused when parsed:
    # tests/unit/test_container.c checks that without starting a container,
    # since a regression here would SIGKILL every process of the machine.
    c = base_config()
    c["linux"]["cgroupsPath"] = "atoll-test-nest/inner"
    c["linux"]["resources"] = {"pids": {"limit": 5}}
    r = run(b.make(c), ["sh", "-c", "grep pids /proc/self/cgroup"])
    left = [d for d in own_cgroup_dirs() if os.path.exists(os.path.join(d, "atoll-test-nest"))]
    report("a nested cgroupsPath is used, and its new parent removed afterwards",
           r.returncode == 0 and "/atoll-test-nest/inner" in r.stdout and not left, (r, left))

    r = run(b.make(raw="{\"process\": {"), ["true"])
    report("broken config.json: clear error naming the file and place",
           r.returncode == 125 and "config.json: line" in r.stderr, r)

    c = base_config()
    c["process"]["args"] = "sh"
    r = run(b.make(c))
    report("wrong type: error names the key path",
           r.returncode == 125 and "process.args: expected an array" in r.stderr, r)

    c = base_config()
    c["process"]["terminal"] = True
    r = run(b.make(c))
    report("process.terminal true is refused clearly",
           r.returncode == 125 and "process.terminal" in r.stderr, r)

    c = base_config()
    c["linux"]["resources"] = {"memory": {"limit": "lots"}}
    r = run(b.make(c))
    report("bad resource: error names linux.resources.memory.limit",
           "linux.resources.memory.limit: expected an integer" in r.stderr, r)

    c = base_config()
    c["root"]["path"] = "no-such-rootfs"
    r = run(b.make(c), ["true"])
    report("missing rootfs: the step and errno are named",
           r.returncode == 125 and "start container: bind rootfs" in r.stderr
           and "No such file or directory" in r.stderr, r)

    r = run(default, ["no-such-command"])
    report("missing command: exec step is named",
           r.returncode == 125 and "exec no-such-command: No such file or directory" in r.stderr, r)

    # Signals: SIGTERM is forwarded (the shell traps it), a second one kills.
    marker = "31337"
    p = subprocess.Popen([ATOLL, "container", "run", default, "--", "sh", "-c",
                          f"trap 'exit 42' TERM; sleep {marker} & wait"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(f"sleep\x00{marker}")
    p.send_signal(signal.SIGTERM)
    rc = p.wait(timeout=10)
    p.stdout.close()
    p.stderr.close()
    time.sleep(0.2)
    report("SIGTERM is forwarded; status is the container's", rc == 42, rc)
    report("no process left after the container's init exits", not leftovers(f"sleep\x00{marker}"),
           leftovers(f"sleep\x00{marker}"))

    p = subprocess.Popen([ATOLL, "container", "run", default, "--", "sleep", marker],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(f"sleep\x00{marker}")
    p.send_signal(signal.SIGINT)      # pid 1 without a handler: ignored
    time.sleep(0.2)
    alive = p.poll() is None
    p.send_signal(signal.SIGINT)      # the second one kills
    rc = p.wait(timeout=10)
    report("a second SIGINT kills an init that ignores the first", alive and rc == 137, (alive, rc))

    p = subprocess.Popen([ATOLL, "container", "run", default, "--", "sleep", marker],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    running = bool(wait_for(f"sleep\x00{marker}"))
    p.kill()
    p.wait()
    end = time.time() + 5
    while leftovers(f"sleep\x00{marker}") and time.time() < end:
        time.sleep(0.02)
    report("a SIGKILLed atoll takes its container with it", running and not leftovers(f"sleep\x00{marker}"),
           leftovers(f"sleep\x00{marker}"))


if __name__ == "__main__":
    sys.exit(main())
