#!/usr/bin/env python3
"""Cold start of never-loaded tenants at the client, with `atoll serve`:
N hello-world tenants (default 2,000) in one atoll.jsonc; each is requested
once (its first request: the worker process starts its isolate — a cold
start), then each once more (warm), over one keep-alive connection from this
client, timed from sending the request to the last byte of the answer.
Prints p50/p99 of both and checks from the access log that the first
requests were cold and the second warm. workerd has no lazy loading to
compare with: it loads every tenant at startup (see serve_density.py).
usage: bench/serve_cold_start.py [ATOLL_BIN] [--tenants N]"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_common import (Client, atoll_bin, atoll_config, atoll_env, free_port, machine, name, percentile, show,
                          stop, write_tenants)


def summary(label, samples):
    ms = [s * 1000 for s in samples]
    print("%-5s n=%-6d p50 %7.3f ms   p99 %7.3f ms   mean %7.3f ms   max %7.3f ms" % (
        label, len(ms), percentile(ms, 50), percentile(ms, 99), sum(ms) / len(ms), max(ms)), flush=True)
    return percentile(ms, 50), percentile(ms, 99)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("atoll", nargs="?")
    ap.add_argument("--tenants", type=int, default=2000)
    args = ap.parse_args()
    exe = atoll_bin([args.atoll] if args.atoll else [])
    n = args.tenants
    print("serve_cold_start: %d tenants; %s" % (n, machine()), flush=True)
    with tempfile.TemporaryDirectory(prefix="atoll-cold-") as dir:
        os.chmod(dir, 0o755)
        write_tenants(dir, n)
        port = free_port()
        cfg = atoll_config(dir, n, port, os.cpu_count())
        cmd = [exe, "serve", "--config", cfg]
        show(cmd)
        log_path = os.path.join(dir, "access.log")
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.DEVNULL, env=atoll_env())
        try:
            # Ready when the listener answers (a 404 for an unrouted host loads no tenant).
            t0 = time.time()
            while True:
                try:
                    c = Client(port)
                    if c.get("nobody.test")[0] == 404:
                        break
                except OSError:
                    if time.time() - t0 > 60:
                        raise SystemExit("atoll did not start")
                    time.sleep(0.02)
            cold, warm = [], []
            for phase in (cold, warm):
                for i in range(n):
                    host = name(i) + ".test"
                    t = time.perf_counter()
                    status, body = c.get(host, "/%s" % ("cold" if phase is cold else "warm"))
                    phase.append(time.perf_counter() - t)
                    if (status, body) != (200, name(i).encode()):
                        raise SystemExit("%s answered %s %r" % (host, status, body[:100]))
            c.close()
        finally:
            stop(proc)
        lines = [json.loads(l) for l in open(log_path) if l.startswith("{")]
        cold_flags = [l["cold"] for l in lines if l["path"] == "/cold"]
        warm_flags = [l["cold"] for l in lines if l["path"] == "/warm"]
        print("client: one keep-alive connection, sequential requests (python3 socket client)")
        c50, c99 = summary("cold", cold)
        w50, w99 = summary("warm", warm)
        print("cold - warm at p50: %.3f ms (the isolate start as the client sees it)" % (c50 - w50))
        print("access log: %d of %d first requests cold, %d of %d second requests cold" % (
            sum(cold_flags), len(cold_flags), sum(warm_flags), len(warm_flags)))


if __name__ == "__main__":
    main()
