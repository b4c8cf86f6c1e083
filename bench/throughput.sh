#!/usr/bin/env bash
# Hello-world throughput and latency: wrk against atoll and against
# Cloudflare's workerd serving the same module, in one run, with the ratio.
# usage: bench/throughput.sh [ATOLL_BIN] [--duration S] [--connections N] [--no-peer] [--serve]
# --serve: atoll as deployed — `atoll serve`, one worker process per core —
# instead of the single-process `atoll dev`.
# workerd comes from the npm registry into ${PEERS_CACHE:-$HOME/.cache/atoll-peers}.
set -euo pipefail
cd "$(dirname "$0")/.."
atoll=build/release/atoll
duration=10
conns=64
peer=1
serve=0
while [ $# -gt 0 ]; do
  case $1 in
    --duration) duration=$2; shift 2 ;;
    --connections) conns=$2; shift 2 ;;
    --no-peer) peer=0; shift ;;
    --serve) serve=1; shift ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) atoll=$1; shift ;;
  esac
done
module=$PWD/examples/hello/worker.js
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

pids=()
tmp=$(mktemp -d)
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 200); do curl -fs -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.05; done
  echo "nothing answers on port $1" >&2; return 1
}

# Runs wrk, prints "req_per_s p50_ms p99_ms".
measure() {
  wrk -t2 -c"$conns" -d2s "http://127.0.0.1:$1/" >/dev/null # warm-up
  wrk -t2 -c"$conns" -d"${duration}s" --latency "http://127.0.0.1:$1/" >"$tmp/wrk.$1"
  awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    END { printf "%.0f %.3f %.3f\n", rps, p50, p99 }' "$tmp/wrk.$1"
}

port=$(free_port)
if [ "$serve" = 1 ]; then
  printf '{ "listen": "127.0.0.1:%s", "processes": %s, "state_dir": "%s/state",\n  "workers": [ { "name": "hello", "main": "%s", "routes": ["*/*"] } ] }\n' \
    "$port" "$(nproc)" "$tmp" "$module" >"$tmp/atoll.jsonc"
  "$atoll" serve --config "$tmp/atoll.jsonc" --no-access-log 2>"$tmp/atoll.log" &
else
  "$atoll" dev "$module" --port "$port" --no-watch --quiet 2>"$tmp/atoll.log" &
fi
pids+=($!)
wait_port "$port"
read -r a_rps a_p50 a_p99 < <(measure "$port")
echo "command: wrk -t2 -c$conns -d${duration}s --latency http://127.0.0.1:PORT/   ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-8s %12s %10s %10s\n' server req/s p50_ms p99_ms
printf '%-8s %12s %10s %10s   (%s)\n' atoll "$a_rps" "$a_p50" "$a_p99" "$([ "$serve" = 1 ] && echo "atoll serve, $(nproc) processes" || echo "atoll dev, 1 process")"

if [ "$peer" = 1 ]; then
  cache=${PEERS_CACHE:-$HOME/.cache/atoll-peers}
  if [ ! -x "$cache/node_modules/.bin/workerd" ] && command -v npm >/dev/null; then
    mkdir -p "$cache"
    (cd "$cache" && { [ -f package.json ] || npm init -y >/dev/null; } && npm install --no-audit --no-fund workerd >/dev/null 2>&1) || true
  fi
  if [ -x "$cache/node_modules/.bin/workerd" ]; then
    wport=$(free_port)
    cp "$module" "$tmp/w.js"
    cat >"$tmp/config.capnp" <<CAPNP
using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = .w) ],
  sockets = [ (name = "http", address = "127.0.0.1:$wport", http = (), service = "main") ],
);
const w :Workerd.Worker = (
  modules = [ (name = "w.js", esModule = embed "w.js") ],
  compatibilityDate = "2024-01-01",
);
CAPNP
    (cd "$tmp" && exec "$cache/node_modules/.bin/workerd" serve config.capnp) 2>"$tmp/workerd.log" &
    pids+=($!)
    wait_port "$wport"
    read -r w_rps w_p50 w_p99 < <(measure "$wport")
    printf '%-8s %12s %10s %10s\n' workerd "$w_rps" "$w_p50" "$w_p99"
    awk -v a="$a_rps" -v w="$w_rps" -v ap="$a_p99" -v wp="$w_p99" \
      'BEGIN { printf "ratio atoll/workerd: throughput %.2fx, p99 latency %.2fx\n", a / w, ap / wp }'
  else
    echo "workerd: not installed (npm install workerd failed or npm is missing); peer skipped"
  fi
fi
