#!/usr/bin/env bash
# KV from a worker under `atoll serve`: throughput and latency (wrk) of a
# hello-world request, of a request doing one env.KV.get, and of one doing
# one env.KV.put (answered after the put is durable), with the SQLite
# backend and with Redis (a redis-server started here on loopback). The
# difference between the hello and get rows is the cost of a get on the
# request path.
# usage: bench/kv_serve.sh [ATOLL_BIN] [--duration S] [--connections N] [--processes N]
set -euo pipefail
cd "$(dirname "$0")/.."
atoll=build/release/atoll
duration=10
conns=32
procs=1
while [ $# -gt 0 ]; do
  case $1 in
    --duration) duration=$2; shift 2 ;;
    --connections) conns=$2; shift 2 ;;
    --processes) procs=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) atoll=$1; shift ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server is missing: apt-get install redis-server" >&2; exit 1; }

pids=()
tmp=$(mktemp -d)
chmod 755 "$tmp"
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_url() {
  for _ in $(seq 200); do curl -fs -o /dev/null "$1" && return 0; sleep 0.05; done
  echo "nothing answers at $1" >&2; return 1
}

# Runs wrk on a URL, prints "req_per_s p50_ms p99_ms".
measure() {
  wrk -t1 -c"$conns" -d2s "$1" >/dev/null # warm-up
  wrk -t1 -c"$conns" -d"${duration}s" --latency "$1" >"$tmp/wrk.out"
  awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    END { printf "%.0f %.3f %.3f\n", rps, p50, p99 }' "$tmp/wrk.out"
}

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --dir "$tmp" --save "" --appendonly no >/dev/null &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done

echo "command: wrk -t1 -c$conns -d${duration}s --latency URL   (atoll serve, $procs worker process(es), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-8s %-6s %12s %10s %10s\n' backend path req/s p50_ms p99_ms
for backend in sqlite redis; do
  port=$(free_port)
  state="$tmp/state-$backend"
  kv=""
  [ "$backend" = redis ] && kv="\"kv\": {\"redis\": \"redis://127.0.0.1:$rport/0\"},"
  cat >"$tmp/atoll-$backend.jsonc" <<JSON
{
  "listen": "127.0.0.1:$port",
  "admin": {"listen": "127.0.0.1:$(free_port)"},
  "processes": $procs,
  "state_dir": "$state",
  $kv
  "workers": [{"name": "bench", "main": "$PWD/bench/kv_worker.js", "routes": ["*/*"],
               "kv_namespaces": [{"binding": "KV", "id": "bench"}]}]
}
JSON
  "$atoll" serve --config "$tmp/atoll-$backend.jsonc" >/dev/null 2>"$tmp/atoll-$backend.log" &
  spid=$!
  pids+=($spid)
  wait_url "http://127.0.0.1:$port/hello"
  curl -fs -o /dev/null "http://127.0.0.1:$port/seed"
  for path in hello get put; do
    read -r rps p50 p99 < <(measure "http://127.0.0.1:$port/$path")
    printf '%-8s %-6s %12s %10s %10s\n' "$backend" "/$path" "$rps" "$p50" "$p99"
  done
  kill "$spid"
  wait "$spid" 2>/dev/null || true
done
