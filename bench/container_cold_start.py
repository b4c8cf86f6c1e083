#!/usr/bin/env python3
"""Cold start at the client, side by side in one `atoll serve`: the first
HTTP response of a scaled-to-zero container tenant (socket activation and
port mode), of a never-loaded JavaScript tenant and of a never-loaded wasm
tenant; then the memory of idle containers. Runs as root (containers).

- container: one tenant per mode with idle_timeout_s=1; before each sample
  the script waits until its container has stopped (scale to zero, seen in
  the log), then times one request from sending it to the last byte.
- js / wasm: N distinct hello-world tenants (the wasm ones share one
  module, compiled once at server start), each requested once: every
  sample is the tenant's first request (a cold start in the process).
- warm: the same requests again, for reference.
- memory: M container tenants started and left idle; per container, the
  RSS of its processes (VmRSS summed over the pids in its cgroup) and its
  memory cgroup's usage (v1 memory.usage_in_bytes or v2 memory.current,
  which also counts page cache and kernel memory charged to it).
Client: one new TCP connection per request (python3 socket). Nothing here
asserts a figure.
usage: bench/container_cold_start.py [ATOLL_BIN] [--runs N] [--idle M]"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
JS = 'export default { fetch() { return new Response("%s"); } };\n'


def percentile(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, host, path="/"):
    """One request on a new connection: (status, body, seconds to the last byte)."""
    t = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, host)).encode())
        data = b""
        while True:
            part = s.recv(65536)
            if not part:
                break
            data += part
    took = time.perf_counter() - t
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head else 0
    if b"chunked" in head.lower():  # the JS answers are chunked; keep the body readable
        out, rest = b"", body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return status, body, took


def bundle(dir, name, server, port=None):
    d = os.path.join(dir, name)
    root = os.path.join(d, "rootfs")
    for sub in ("proc", "dev", "tmp"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    shutil.copy(server, os.path.join(root, "server"))
    cfg = {"ociVersion": "1.0.2",
           "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["/server"],
                       "env": ["PATH=/"] + (["PORT=%d" % port] if port else []), "cwd": "/"},
           "root": {"path": "rootfs", "readonly": True}, "hostname": name,
           "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
           "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
                     "resources": {"memory": {"limit": 64 << 20}, "pids": {"limit": 32}}}}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    return d


def summary(label, samples):
    ms = [s * 1000 for s in samples]
    print("%-28s n=%-4d p50 %8.2f ms   p99 %8.2f ms   mean %8.2f ms" % (
        label, len(ms), percentile(ms, 50), percentile(ms, 99), sum(ms) / len(ms)), flush=True)


def cgroup_memory(pid):
    """(RSS of every process in pid's memory cgroup, the cgroup's usage), bytes."""
    rel = None
    for line in open("/proc/%d/cgroup" % pid):
        _, ctrls, path = line.rstrip("\n").split(":", 2)
        if "memory" in ctrls.split(","):
            rel, base, usage = path, "/sys/fs/cgroup/memory", "memory.usage_in_bytes"
        elif ctrls == "" and rel is None:
            rel, base, usage = path, "/sys/fs/cgroup", "memory.current"
    d = base + rel
    pids = [int(p) for p in open(os.path.join(d, "cgroup.procs")).read().split()]
    rss = 0
    for p in pids:
        for line in open("/proc/%d/status" % p):
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1]) * 1024
    return rss, int(open(os.path.join(d, usage)).read()), len(pids), d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("atoll", nargs="?", default=os.path.join(ROOT, "build", "release", "atoll"))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--idle", type=int, default=10, help="idle containers for the memory figure")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("container_cold_start: needs root (containers)")
    wasm = os.path.join(ROOT, "build", "examples", "wasm-hello.wasm")
    if not os.path.exists(args.atoll) or not os.path.exists(wasm):
        subprocess.run(["make", "-C", ROOT, "--no-print-directory", "all", "examples"], check=True)
    n = args.runs
    print("container_cold_start: %d cores, load %s" % (
        os.cpu_count(), " ".join(open("/proc/loadavg").read().split()[:3])), flush=True)
    with tempfile.TemporaryDirectory(prefix="atoll-ctr-cold-") as dir:
        os.chmod(dir, 0o755)
        server = os.path.join(dir, "server")
        subprocess.run(["gcc", "-static", "-O2", "-o", server,
                        os.path.join(ROOT, "tests", "fixtures", "container", "server.c")], check=True)
        workers = [
            {"name": "ctr-sock", "tier": "container", "main": bundle(dir, "ctr-sock", server),
             "routes": ["ctr-sock.test/*"], "idle_timeout_s": 1},
            {"name": "ctr-port", "tier": "container", "main": bundle(dir, "ctr-port", server, port=8080),
             "port": 8080, "routes": ["ctr-port.test/*"], "idle_timeout_s": 1},
        ]
        for i in range(n):
            path = os.path.join(dir, "js%03d.js" % i)
            with open(path, "w") as f:
                f.write(JS % ("js%03d" % i))
            workers.append({"name": "js%03d" % i, "main": path, "routes": ["js%03d.test/*" % i]})
            workers.append({"name": "wasm%03d" % i, "tier": "wasm", "main": wasm, "routes": ["wasm%03d.test/*" % i]})
        for i in range(args.idle):
            workers.append({"name": "idle%02d" % i, "tier": "container", "main": bundle(dir, "idle%02d" % i, server),
                            "routes": ["idle%02d.test/*" % i], "idle_timeout_s": 3600})
        port = free_port()
        cfg = os.path.join(dir, "atoll.jsonc")
        with open(cfg, "w") as f:
            json.dump({"listen": "127.0.0.1:%d" % port, "processes": 1, "state_dir": os.path.join(dir, "state"),
                       "workers": workers}, f)
        log_path = os.path.join(dir, "serve.log")
        cmd = [args.atoll, "serve", "--config", cfg, "--no-access-log", "--log-format", "text"]
        print("$ " + " ".join(cmd), flush=True)
        env = dict(os.environ)
        env.pop("ATOLL_ADMIN_TOKEN", None)
        log = open(log_path, "w")
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)

        def logtext():
            with open(log_path) as f:
                return f.read()

        try:
            t0 = time.time()
            while True:
                try:
                    if get(port, "nobody.test")[0] == 404:
                        break
                except OSError:
                    pass
                if time.time() - t0 > 120:
                    sys.exit("atoll serve did not start:\n" + logtext()[-3000:])
                time.sleep(0.05)
            results = {}
            for mode in ("ctr-sock", "ctr-port"):
                cold, warm = [], []
                for i in range(n):
                    # Scaled to zero: as many "stopped" lines as starts so far.
                    deadline = time.time() + 30
                    while True:
                        text = logtext()
                        starts = len(re.findall(r"\[%s\] container started" % mode, text))
                        stops = len(re.findall(r"\[%s\] container stopped" % mode, text))
                        if starts == stops:
                            break
                        if time.time() > deadline:
                            sys.exit("%s did not scale to zero:\n%s" % (mode, text[-3000:]))
                        time.sleep(0.02)
                    status, body, took = get(port, mode + ".test")
                    if status != 200:
                        sys.exit("%s answered %d %r\n%s" % (mode, status, body[:200], logtext()[-3000:]))
                    cold.append(took)
                    warm.append(get(port, mode + ".test")[2])
                results[mode] = (cold, warm)
            for tier in ("js", "wasm"):
                cold = []
                for i in range(n):
                    status, body, took = get(port, "%s%03d.test" % (tier, i))
                    if status != 200:
                        sys.exit("%s%03d answered %d %r" % (tier, i, status, body[:200]))
                    cold.append(took)
                warm = [get(port, "%s%03d.test" % (tier, i))[2] for i in range(n)]
                results[tier] = (cold, warm)
            print("cold start to the first response at the client (new connection per request):")
            labels = {"ctr-sock": "container (socket activation)", "ctr-port": "container (port mode)",
                      "js": "JavaScript isolate", "wasm": "wasm module"}
            for k in ("ctr-sock", "ctr-port", "js", "wasm"):
                summary(labels[k] + " cold", results[k][0])
            for k in ("ctr-sock", "ctr-port", "js", "wasm"):
                summary(labels[k] + " warm", results[k][1])
            ready = [int(x) for x in re.findall(r"\[ctr-port\] container ready after (\d+) ms", logtext())]
            if ready:
                print("port mode: container listening after p50 %d ms (atoll polls after 1, 2, 4, 8, 16 ms, then every 20 ms)" %
                      percentile(ready, 50))

            # Memory of idle containers.
            for i in range(args.idle):
                if get(port, "idle%02d.test" % i)[0] != 200:
                    sys.exit("idle%02d did not answer" % i)
            time.sleep(2)
            pids = [int(p) for name, p in re.findall(r"\[(idle\d\d)\] container started \(pid (\d+)", logtext())]
            rss, usage, procs = [], [], []
            for p in pids:
                r, u, k, _ = cgroup_memory(p)
                rss.append(r)
                usage.append(u)
                procs.append(k)
            print("memory per idle container (%d containers, static C server, %s process(es) each):" % (
                len(pids), "/".join(str(k) for k in sorted(set(procs)))))
            print("  RSS of its processes:     p50 %7.0f KiB   mean %7.0f KiB" % (
                percentile(rss, 50) / 1024, sum(rss) / len(rss) / 1024))
            print("  its memory cgroup usage:  p50 %7.0f KiB   mean %7.0f KiB" % (
                percentile(usage, 50) / 1024, sum(usage) / len(usage) / 1024))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


if __name__ == "__main__":
    main()
