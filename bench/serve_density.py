#!/usr/bin/env python3
"""Resident-tenant density: atoll and workerd configured with the same N
hello-world tenants (default 1,000) in one run. For each server: the time
from exec until the first tenant answers, the time until every tenant has
answered once (every tenant then resident), and the memory of all its
processes divided by N (RSS, and PSS, which splits pages shared between
atoll's forked processes fairly). atoll runs one worker process here, like
workerd's one process; with more processes each holds its own isolates.
usage: bench/serve_density.py [ATOLL_BIN] [--tenants N] [--processes P] [--no-peer]"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_common import (Client, atoll_bin, atoll_config, atoll_env, free_port, machine, memory, name, show,
                          stop, wait_answer, workerd_bin, workerd_config, write_tenants)


def measure(label, cmd, cwd, port, n, env=None):
    show(cmd)
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        first = wait_answer(port, name(0) + ".test", proc)
        time.sleep(0.5)
        rss1, _ = memory(proc.pid)  # one tenant answered (atoll: one isolate; workerd: all loaded)
        t1 = time.time()
        c = Client(port)
        bad = 0
        for i in range(n):
            status, body = c.get(name(i) + ".test")
            bad += (status, body) != (200, name(i).encode())
        c.close()
        all_once = first + (time.time() - t1)  # since exec, without the pause for the memory reading
        time.sleep(1.0)
        rss, pss = memory(proc.pid)
        print("%-8s first answer %7.3f s   all %d answered %7.3f s   RSS %7.1f MB = %6.1f KB/tenant   "
              "PSS %7.1f MB = %6.1f KB/tenant%s" % (label, first, n, all_once, rss / 1e6, rss / 1024 / n, pss / 1e6,
                                                    pss / 1024 / n, "   (%d wrong answers)" % bad if bad else ""),
              flush=True)
        print("%-8s RSS after the first answer %7.1f MB; growth to all %d answered: %6.1f KB/tenant" % (
            label, rss1 / 1e6, n, (rss - rss1) / 1024 / max(1, n - 1)), flush=True)
        return rss
    finally:
        stop(proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("atoll", nargs="?")
    ap.add_argument("--tenants", type=int, default=1000)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--no-peer", action="store_true")
    args = ap.parse_args()
    exe = atoll_bin([args.atoll] if args.atoll else [])
    n = args.tenants
    print("serve_density: %d tenants; %s" % (n, machine()), flush=True)
    with tempfile.TemporaryDirectory(prefix="atoll-density-") as dir:
        os.chmod(dir, 0o755)
        write_tenants(dir, n)
        port = free_port()
        cfg = atoll_config(dir, n, port, args.processes)
        a = measure("atoll", [exe, "serve", "--config", cfg, "--no-access-log"], dir, port, n, env=atoll_env())
        if args.no_peer:
            return
        wd = workerd_bin()
        if not wd:
            print("workerd: not installed (npm install workerd failed or npm is missing); peer skipped")
            return
        wport = free_port()
        wcfg = workerd_config(dir, n, wport)
        w = measure("workerd", [wd, "serve", wcfg], dir, wport, n)
        print("ratio workerd/atoll memory per tenant (RSS): %.1fx" % (w / a))


if __name__ == "__main__":
    main()
