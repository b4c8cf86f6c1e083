#!/usr/bin/env bash
# Runs every benchmark against one build directory (default build/release):
# isolate cold start, memory per idle isolate, and hello-world throughput
# against workerd. Figures are reported, never asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/release}
echo "== isolate cold start (create runtime, install APIs, load module, first request)"
"$out/bench/cold_start" examples/hello/worker.js
echo
echo "== memory per idle isolate (1,000 resident hello-world tenants)"
"$out/bench/isolate_memory" examples/hello/worker.js 1000
echo
echo "== hello-world throughput: atoll vs workerd (wrk)"
bench/throughput.sh "$out/atoll"
echo
echo "== KV from a worker under atoll serve: hello vs get vs put, SQLite and Redis (wrk)"
bench/kv_serve.sh "$out/atoll"
