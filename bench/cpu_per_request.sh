#!/usr/bin/env bash
# CPU time per hello-world request of one `atoll serve` worker process:
# utime+stime from /proc/PID/stat around a wrk run, divided by the
# requests wrk completed. Unlike req/s, this hardly depends on what else
# the machine runs, so two builds can be compared on a shared machine.
# usage: bench/cpu_per_request.sh [ATOLL_BIN] [--access-log] [--seconds N]
set -euo pipefail
cd "$(dirname "$0")/.."
atoll=build/release/atoll
log=--no-access-log
seconds=5
while [ $# -gt 0 ]; do
  case $1 in
    --access-log) log=""; shift ;;
    --seconds) seconds=$2; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) atoll=$1; shift ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
tmp=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$tmp/atoll.jsonc" <<JSON
{ "listen": "127.0.0.1:$port", "processes": 1, "state_dir": "$tmp/state",
  "workers": [ { "name": "hello", "main": "$PWD/examples/hello/worker.js", "routes": ["*/*"] } ] }
JSON
"$atoll" serve --config "$tmp/atoll.jsonc" --no-sandbox $log >/dev/null 2>"$tmp/err" &
sup=$!
trap 'kill $sup 2>/dev/null; wait $sup 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do worker=$(pgrep -P $sup | head -1 || true); [ -n "$worker" ] && curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
wrk -t1 -c32 -d2s "http://127.0.0.1:$port/" >/dev/null   # warm-up
ticks() { awk '{print $14 + $15}' "/proc/$worker/stat"; }
t0=$(ticks)
out=$(wrk -t1 -c32 -d"${seconds}s" "http://127.0.0.1:$port/")
t1=$(ticks)
reqs=$(echo "$out" | awk '/requests in/ {print $1}')
hz=$(getconf CLK_TCK)
echo "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); access log: $([ -z "$log" ] && echo on || echo off)"
awk -v r="$reqs" -v t="$((t1 - t0))" -v hz="$hz" \
  'BEGIN { printf "%d requests, %d ticks: %.2f µs of worker CPU per request\n", r, t, t * 1e6 / hz / r }' 
