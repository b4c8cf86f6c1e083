#!/usr/bin/env python3
"""Hello-world throughput with N tenants (default 1,000) receiving random
traffic: wrk with a Lua script that picks a random tenant's Host for every
request, against `atoll serve` (one worker process per core) and against
Cloudflare's workerd with the same tenants (a router worker picks the
tenant's service binding by Host), in one run, with the ratio. Each server
gets a warm-up run first (every tenant loaded), then the measured run.
For reference, workerd is also measured with one tenant alone on its
socket (no router hop; every Host answered by that tenant).
usage: bench/serve_throughput.py [ATOLL_BIN] [--tenants N] [--duration S] [--connections C] [--no-peer]"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_common import (atoll_bin, atoll_config, atoll_env, free_port, machine, name, show, stop, wait_answer,
                          workerd_bin, workerd_config, write_tenants)

LUA = """-- a random tenant's Host per request
math.randomseed(os.time())
local n = %d
request = function()
  return wrk.format("GET", "/", { ["Host"] = string.format("t%%04d.test", math.random(0, n - 1)) })
end
done = function(summary, latency, requests)
  io.write(string.format("non-200 answers: %%d\\n", summary.errors.status))
end
"""


def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]


def run_wrk(port, lua, threads, conns, duration, label):
    url = "http://127.0.0.1:%d/" % port
    subprocess.run(["wrk", "-t%d" % threads, "-c%d" % conns, "-d3s", "-s", lua, url], capture_output=True)  # warm-up
    cmd = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % duration, "--latency", "-s", lua, url]
    show(cmd)
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    bad = re.search(r"non-200 answers: (\d+)", out)
    errs = re.search(r"Socket errors: (.*)", out)
    print("%-8s %10.0f req/s   p50 %8.3f ms   p99 %8.3f ms   non-200 %s%s" % (
        label, rps, p50, p99, bad.group(1) if bad else "?", ("   socket errors: " + errs.group(1)) if errs else ""),
        flush=True)
    return rps, p99


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("atoll", nargs="?")
    ap.add_argument("--tenants", type=int, default=1000)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--no-peer", action="store_true")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk")
    exe = atoll_bin([args.atoll] if args.atoll else [])
    n, cores = args.tenants, os.cpu_count()
    threads = min(2, cores)
    print("serve_throughput: %d tenants, random Host per request; %s" % (n, machine()), flush=True)
    with tempfile.TemporaryDirectory(prefix="atoll-tput-") as dir:
        os.chmod(dir, 0o755)
        write_tenants(dir, n)
        lua = os.path.join(dir, "random_host.lua")
        with open(lua, "w") as f:
            f.write(LUA % n)
        port = free_port()
        cfg = atoll_config(dir, n, port, cores)
        cmd = [exe, "serve", "--config", cfg, "--no-access-log"]
        show(cmd)
        proc = subprocess.Popen(cmd, cwd=dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=atoll_env())
        try:
            wait_answer(port, name(0) + ".test", proc)
            a_rps, a_p99 = run_wrk(port, lua, threads, args.connections, args.duration, "atoll")
        finally:
            stop(proc)
        if args.no_peer:
            return
        wd = workerd_bin()
        if not wd:
            print("workerd: not installed (npm install workerd failed or npm is missing); peer skipped")
            return
        wport = free_port()
        wcfg = workerd_config(dir, n, wport)
        cmd = [wd, "serve", wcfg]
        show(cmd)
        proc = subprocess.Popen(cmd, cwd=dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_answer(wport, name(0) + ".test", proc)
            w_rps, w_p99 = run_wrk(wport, lua, threads, args.connections, args.duration, "workerd")
        finally:
            stop(proc)
        print("ratio atoll/workerd: throughput %.2fx, p99 latency %.2fx" % (a_rps / w_rps, a_p99 / w_p99))
        # Reference: what the router hop costs workerd — one tenant alone on
        # its socket (workerd_config with one tenant, the router bypassed).
        wcfg1 = workerd_config(dir, 1, wport)
        with open(wcfg1) as f:
            text = f.read().replace('service = "router") ]', 'service = "%s") ]' % name(0))
        with open(wcfg1, "w") as f:
            f.write(text)
        cmd = [wd, "serve", wcfg1]
        show(cmd)
        proc = subprocess.Popen(cmd, cwd=dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_answer(wport, name(0) + ".test", proc)
            run_wrk(wport, lua, threads, args.connections, args.duration, "workerd, one tenant, no router (reference)")
        finally:
            stop(proc)


if __name__ == "__main__":
    main()
