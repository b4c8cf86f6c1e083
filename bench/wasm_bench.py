#!/usr/bin/env python3
"""The wasm tier side by side, in one run (bench/wasm_bench.sh runs it):

1. compute: the kernels of bench/wasm_kernel.h (SHA-256 over 64 MiB,
   n-body, 200x200 matmul, sieve, FNV hash) from one C source, run
   - natively (gcc -O2 and clang -O2, time measured inside the process),
   - as an atoll wasm tenant through `atoll serve` (clang --target=wasm32-wasi,
     then the tier's wasm2c + cc), timed at the client over keep-alive and
     inside the guest,
   - inside Cloudflare's workerd: the same C built as a WASI reactor
     (-mexec-model=reactor, no imports), a "wasm" module in the capnp config,
     instantiated per request by a JS worker that calls the kernel's export;
     timed at the client (workerd freezes Date.now() while code runs).
   Each request gets a fresh instance on both platforms. Best of N,
   interleaved; ratio = native time / time (1.0 = native speed).
2. cold start of a wasm tenant: a module deployed through the admin API
   (the deploy compiles it: its duration is the compile time), then its
   first request (load of the cached shared object + a fresh instance) and
   second request, at the client.
3. hello-world throughput, wrk: atoll wasm tenant, atoll JS tenant, workerd JS.

Nothing here asserts a figure. usage: bench/wasm_bench.py build/release/atoll [--reps N] [--wrk-seconds N]"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_common import Client, free_port, machine, show, stop, workerd_bin  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
KERNEL = os.path.join(ROOT, "bench", "wasm_kernel.h")
KERNELS = ["matmul", "sieve", "hash", "nbody", "sha256"]  # the order of kernels[] in wasm_kernel.h
TOKEN = "wasm-bench"

WORKERD_JS = """import mod from "kernels.wasm";
const NAMES = %s;
export default {
  fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/hello") return new Response("Hello from workerd\\n");
    const i = NAMES.indexOf(url.search.slice(1));
    if (i < 0) return new Response("no such kernel", { status: 404 });
    const inst = new WebAssembly.Instance(mod, {});  // a fresh instance per request, as atoll's
    inst.exports._initialize();
    return new Response(String(inst.exports.kernel_run(i)) + "\\n");
  },
};
""" % json.dumps(KERNELS)

HELLO_JS = 'export default { fetch() { return new Response("Hello from atoll\\n"); } };\n'


def run(cmd, **kw):
    show(cmd)
    return subprocess.run(cmd, check=True, **kw)


def build(tmp):
    out = {}
    for cc in ("gcc", "clang"):
        out["native-" + cc] = os.path.join(tmp, "kernel-" + cc)
        run([cc, "-O2", "-DKERNEL_NATIVE_MAIN", "-x", "c", KERNEL, "-o", out["native-" + cc], "-lm"])
    out["wagi"] = os.path.join(tmp, "kernels-wagi.wasm")
    run(["clang", "--target=wasm32-wasi", "-O2", "-x", "c", KERNEL, "-o", out["wagi"]])
    out["reactor"] = os.path.join(tmp, "kernels.wasm")
    run(["clang", "--target=wasm32-wasi", "-O2", "-mexec-model=reactor", "-DKERNEL_EXPORTS", "-x", "c", KERNEL,
         "-o", out["reactor"]])
    out["hello"] = os.path.join(tmp, "hello.wasm")
    run(["clang", "--target=wasm32-wasi", "-O2", os.path.join(ROOT, "examples", "wasm-hello", "hello.c"),
         "-o", out["hello"]])
    out["hello_js"] = os.path.join(tmp, "hello.js")
    with open(out["hello_js"], "w") as f:
        f.write(HELLO_JS)
    for p in out.values():
        os.chmod(p, 0o755)
    return out


class Atoll:
    def __init__(self, atoll, tmp, files, processes):
        self.port, self.admin_port = free_port(), free_port()
        self.state = os.path.join(tmp, "state")
        cfg = {"listen": "127.0.0.1:%d" % self.port, "admin": {"listen": "127.0.0.1:%d" % self.admin_port},
               "processes": processes, "state_dir": self.state, "workers": [
                   {"name": "kernels", "tier": "wasm", "main": files["wagi"], "routes": ["kernels.test/*"],
                    "limits": {"cpu_ms": 300000, "wall_ms": 300000}},
                   {"name": "hello", "tier": "wasm", "main": files["hello"], "routes": ["hello.test/*"]},
                   {"name": "hellojs", "main": files["hello_js"], "routes": ["hellojs.test/*"]}]}
        path = os.path.join(tmp, "atoll.jsonc")
        with open(path, "w") as f:
            json.dump(cfg, f, indent=1)
        cmd = [atoll, "serve", "--config", path, "--no-access-log"]
        show(cmd)
        t0 = time.time()
        self.proc = subprocess.Popen(cmd, env=dict(os.environ, ATOLL_ADMIN_TOKEN=TOKEN),
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "atoll.log"), "w"))
        wait_port(self.port, self.proc)
        wait_port(self.admin_port, self.proc)
        self.startup = time.time() - t0

    def deploy(self, name, data, host):
        req = urllib.request.Request(
            "http://127.0.0.1:%d/workers/%s" % (self.admin_port, name), data=data, method="PUT",
            headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/wasm",
                     "Atoll-Settings": json.dumps({"routes": [host + "/*"]})})
        with urllib.request.urlopen(req, timeout=300) as r:
            r.read()


def wait_port(port, proc, timeout=300):
    import socket
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit("server exited with %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit("nothing listens on %d" % port)


def start_workerd(tmp, files):
    exe = workerd_bin()
    if not exe:
        print("workerd: not available (npm install workerd failed); skipped")
        return None, None
    port = free_port()
    d = os.path.join(tmp, "workerd")
    os.makedirs(d)
    shutil.copy(files["reactor"], os.path.join(d, "kernels.wasm"))
    with open(os.path.join(d, "w.js"), "w") as f:
        f.write(WORKERD_JS)
    with open(os.path.join(d, "config.capnp"), "w") as f:
        f.write("""using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = .w) ],
  sockets = [ (name = "http", address = "127.0.0.1:%d", http = (), service = "main") ],
);
const w :Workerd.Worker = (
  modules = [ (name = "w.js", esModule = embed "w.js"), (name = "kernels.wasm", wasm = embed "kernels.wasm") ],
  compatibilityDate = "2024-01-01",
);
""" % port)
    cmd = [exe, "serve", "config.capnp"]
    show(cmd)
    proc = subprocess.Popen(cmd, cwd=d, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "workerd.log"), "w"))
    wait_port(port, proc)
    return proc, port


def timed(client, host, path):
    t0 = time.perf_counter_ns()
    status, body = client.get(host, path)
    ns = time.perf_counter_ns() - t0
    if status != 200:
        raise SystemExit("%s%s: %d %r" % (host, path, status, body[:200]))
    return ns, body


def compute(files, atoll, wd_port, reps):
    print("\n## compute: best of %d, interleaved; ratio = native (gcc -O2) time / time" % reps)
    ca = Client(atoll.port)
    cw = Client(wd_port) if wd_port else None
    rows = []
    for k in KERNELS:
        best = {}
        results = set()

        def keep(key, ns):
            best[key] = min(best.get(key, ns), ns)

        for _ in range(reps):
            for cc in ("gcc", "clang"):
                out = subprocess.run([files["native-" + cc], k], capture_output=True, check=True).stdout.split()
                results.add(float(out[0]))
                keep("native-" + cc, int(out[1]))
            ns, body = timed(ca, "kernels.test", "/?" + k)
            r, inner = body.split()
            results.add(float(r))
            keep("atoll", ns)
            keep("atoll-guest", int(inner))
            if cw:
                ns, body = timed(cw, "workerd.test", "/?" + k)
                results.add(float(body))
                keep("workerd", ns)
        rows.append((k, best, len(results) == 1))
    head = "%-7s %9s %9s %9s %9s %9s | %7s %7s %7s %8s" % (
        "kernel", "gcc ms", "clang ms", "atoll ms", "(guest)", "workerd", "atoll", "workerd", "vs clang", "atoll/wd")
    print(head)
    logs = {"atoll": 0.0, "workerd": 0.0, "clang": 0.0, "awd": 0.0}
    import math
    for k, b, same in rows:
        n = b["native-gcc"]
        wd = b.get("workerd")
        ra, rw, rc = n / b["atoll"], (n / wd if wd else float("nan")), b["native-clang"] / b["atoll"]
        awd = wd / b["atoll"] if wd else float("nan")
        logs["atoll"] += math.log(ra)
        logs["clang"] += math.log(rc)
        if wd:
            logs["workerd"] += math.log(rw)
            logs["awd"] += math.log(awd)
        print("%-7s %9.1f %9.1f %9.1f %9.1f %9s | %6.2fx %6sx %7.2fx %7sx%s" % (
            k, n / 1e6, b["native-clang"] / 1e6, b["atoll"] / 1e6, b["atoll-guest"] / 1e6,
            "%.1f" % (wd / 1e6) if wd else "-", ra, "%.2f" % rw if wd else "-", rc,
            "%.2f" % awd if wd else "-", "" if same else "  (results differ!)"))
    m = len(rows)
    print("%-7s %49s | %6.2fx %6.2fx %7.2fx %7.2fx   (geometric means)" % (
        "geomean", "", math.exp(logs["atoll"] / m), math.exp(logs["workerd"] / m) if cw else float("nan"),
        math.exp(logs["clang"] / m), math.exp(logs["awd"] / m) if cw else float("nan")))
    print("(atoll, workerd: speed relative to gcc -O2 native; vs clang: relative to clang -O2 native;"
          " atoll/wd: how many times faster atoll is than workerd)")
    ca.close()
    if cw:
        cw.close()


def cold_start(atoll, tmp, n):
    print("\n## wasm tenant: deploy (compile) and cold start, %d fresh modules through the admin API" % n)
    src = os.path.join(ROOT, "examples", "wasm-hello", "hello.c")
    deploys, firsts, seconds = [], [], []
    for i in range(n):
        wasm = os.path.join(tmp, "cold%d.wasm" % i)
        # Distinct bytes per module (a different greeting): each deploy compiles.
        subprocess.run(["clang", "--target=wasm32-wasi", "-O2", src, "-o", wasm], check=True)
        with open(wasm, "ab") as f:  # a custom section "v" with the index: new bytes, same code
            payload = b"\x01v" + str(i).encode() + str(time.time()).encode()
            f.write(b"\x00" + bytes([len(payload)]) + payload)
        data = open(wasm, "rb").read()
        t0 = time.perf_counter()
        atoll.deploy("cold%d" % i, data, "cold%d.test" % i)
        deploys.append(time.perf_counter() - t0)
        c = Client(atoll.port)
        ns1, _ = timed(c, "cold%d.test" % i, "/")
        ns2, _ = timed(c, "cold%d.test" % i, "/")
        c.close()
        firsts.append(ns1 / 1e6)
        seconds.append(ns2 / 1e6)
    med = lambda v: sorted(v)[len(v) // 2]
    print("deploy through the admin API (validate + wasm2c + cc + store): median %.0f ms (min %.0f, max %.0f)"
          % (med(deploys) * 1e3, min(deploys) * 1e3, max(deploys) * 1e3))
    print("first request after deploy (dlopen of the cached .so + fresh instance), at the client: "
          "median %.2f ms (min %.2f, max %.2f)" % (med(firsts), min(firsts), max(firsts)))
    print("second request (warm), at the client: median %.2f ms (min %.2f, max %.2f)"
          % (med(seconds), min(seconds), max(seconds)))


def throughput(atoll, wd_port, seconds):
    if not shutil.which("wrk"):
        print("\n## throughput: wrk not installed; skipped")
        return
    print("\n## hello-world throughput: wrk -t2 -c64 -d%ds, keep-alive" % seconds)
    targets = [("atoll wasm tenant (examples/wasm-hello)", atoll.port, "hello.test"),
               ("atoll JS tenant", atoll.port, "hellojs.test")]
    if wd_port:
        targets.append(("workerd JS worker", wd_port, "x.test"))
    for label, port, host in targets:
        path = "/hello" if "workerd" in label else "/greet?name=wrk"
        cmd = ["wrk", "-t2", "-c64", "-d%ds" % seconds, "--latency", "-H", "Host: " + host,
               "http://127.0.0.1:%d%s" % (port, path)]
        show(cmd)
        out = subprocess.run(cmd, capture_output=True, text=True).stdout
        rps = next((l.split()[1] for l in out.splitlines() if l.startswith("Requests/sec")), "?")
        p50 = next((l.split()[1] for l in out.splitlines() if l.strip().startswith("50%")), "?")
        p99 = next((l.split()[1] for l in out.splitlines() if l.strip().startswith("99%")), "?")
        errs = [l.strip() for l in out.splitlines() if "Non-2xx" in l or "Socket errors" in l]
        print("%-42s %10s req/s  p50 %8s  p99 %8s %s" % (label, rps, p50, p99, " ".join(errs)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("atoll", nargs="?", default=os.path.join(ROOT, "build", "release", "atoll"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--cold", type=int, default=5)
    ap.add_argument("--wrk-seconds", type=int, default=10)
    ap.add_argument("--processes", type=int, default=2)
    a = ap.parse_args()
    print("# bench/wasm_bench.py: %s; %s; ATOLL_WASM_CFLAGS=%r" % (
        machine(), subprocess.run(["wasm2c", "--version"], capture_output=True, text=True).stdout.strip(),
        os.environ.get("ATOLL_WASM_CFLAGS", "")))
    tmp = tempfile.mkdtemp(prefix="atoll-wasm-bench-")
    os.chmod(tmp, 0o755)
    files = build(tmp)
    atoll = Atoll(a.atoll, tmp, files, a.processes)
    print("atoll serve: listening after %.2f s (the config's modules compiled before it listens)" % atoll.startup)
    wd, wd_port = start_workerd(tmp, files)
    try:
        Client(atoll.port).get("kernels.test", "/?none")  # loads the module: compute excludes the cold start
        compute(files, atoll, wd_port, a.reps)
        cold_start(atoll, tmp, a.cold)
        throughput(atoll, wd_port, a.wrk_seconds)
    finally:
        stop(atoll.proc)
        if wd:
            stop(wd)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
