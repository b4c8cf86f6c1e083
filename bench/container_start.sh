#!/usr/bin/env bash
# Container start benchmark: `atoll container run` versus Debian's `crun run`
# of the same busybox bundle running `true`, interleaved in one run, with
# p50/p99 and the ratio. crun runs the way /work/shared/peers/crun-run (or
# its copy below) does on this machine: in a private mount namespace
# without the cgroup v2 mount, which its hybrid-layout check refuses, and
# with --cgroup-manager=disabled; atoll runs as is (it creates and removes
# its v1 cgroups each time, so it does more work than crun here).
# usage: bench/container_start.sh [RUNS] [ATOLL_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-100}
atoll=${2:-build/release/atoll}
[ -x "$atoll" ] || make --no-print-directory all >/dev/null
command -v crun >/dev/null || scripts/setup.sh
[ -x /bin/busybox ] || scripts/setup.sh

tmp=$(mktemp -d /tmp/atoll-bench-ctr-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/rootfs/bin" "$tmp/rootfs/proc" "$tmp/rootfs/dev" "$tmp/rootfs/tmp" "$tmp/rootfs/sys"
cp /bin/busybox "$tmp/rootfs/bin/"
for a in sh true; do ln -s busybox "$tmp/rootfs/bin/$a"; done
cat >"$tmp/config.json" <<'EOF'
{
  "ociVersion": "1.0.2",
  "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["true"],
              "env": ["PATH=/bin"], "cwd": "/", "noNewPrivileges": true},
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "bench",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}
  ],
  "linux": {
    "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
    "resources": {"memory": {"limit": 268435456}, "pids": {"limit": 64}},
    "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list"],
    "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]
  }
}
EOF

# The peer as /work/shared/peers/crun-run runs it (inlined so this script
# also works where that directory is absent).
cat >"$tmp/crun-run" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
bundle=$(realpath "$1"); shift
id=peer-$$-$RANDOM
exec unshare -m --propagation private sh -c '
  if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
  exec crun --cgroup-manager=disabled run --bundle "$0" "$@" '"$id" "$bundle" "$@"
EOF
chmod +x "$tmp/crun-run"
crun_run=/work/shared/peers/crun-run
[ -x "$crun_run" ] || crun_run=$tmp/crun-run

# Both must work before they are timed.
"$atoll" container run "$tmp" || { echo "atoll container run failed" >&2; exit 1; }
"$crun_run" "$tmp" || { echo "crun run failed" >&2; exit 1; }

python3 - "$runs" "$atoll" "$crun_run" "$tmp" <<'EOF'
import subprocess, sys, time
runs, atoll, crun_run, bundle = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
cmds = {
    "atoll container run": [atoll, "container", "run", bundle],
    "crun run": [crun_run, bundle],
    "unshare (floor)": ["unshare", "--fork", "--pid", "--mount", "--uts", "--ipc", "--net", "true"],
}
times = {k: [] for k in cmds}
for i in range(runs):          # interleaved, so drift hits all alike
    for k, c in cmds.items():
        t = time.perf_counter()
        rc = subprocess.run(c, stdin=subprocess.DEVNULL).returncode
        times[k].append((time.perf_counter() - t) * 1000)
        if rc != 0:
            sys.exit(f"{k} exited {rc}")
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
print(f"container start, {runs} runs each, busybox bundle running `true` (ms)")
print(f"{'':24} {'p50':>8} {'p99':>8}")
for k, v in times.items():
    print(f"{k:24} {pct(v, 50):8.2f} {pct(v, 99):8.2f}")
a, c = pct(times["atoll container run"], 50), pct(times["crun run"], 50)
print(f"ratio p50 atoll/crun: {a / c:.2f} (atoll is {c / a:.1f}x faster)" if a < c else
      f"ratio p50 atoll/crun: {a / c:.2f} (atoll is slower)")
EOF
