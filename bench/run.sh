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
echo "== atoll serve: cold start of never-loaded tenants at the client (2,000 tenants), cold vs warm"
bench/serve_cold_start.py "$out/atoll"
echo
echo "== atoll serve: resident-tenant density, atoll vs workerd (1,000 tenants)"
bench/serve_density.py "$out/atoll"
echo
echo "== atoll serve: hello-world throughput, 1,000 tenants, random Host (wrk), atoll vs workerd"
bench/serve_throughput.py "$out/atoll"
echo "== KV from a worker under atoll serve: hello vs get vs put, SQLite and Redis (wrk)"
bench/kv_serve.sh "$out/atoll"
echo
echo "== hello-world throughput: atoll serve (one process per core) vs workerd (wrk)"
bench/throughput.sh "$out/atoll" --serve
echo
echo "== WebAssembly: compute vs native and workerd, cold start, compile, throughput"
bench/wasm_bench.sh "$out"
echo
echo "== containers: atoll container run vs crun run; cold start of a container tenant beside JS and wasm"
bench/container_start.sh 50
bench/container_cold_start.py "$out/atoll"
echo
echo "== every tier side by side, with peers (atoll bench)"
"$out/atoll" bench --peers
