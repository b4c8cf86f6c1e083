#!/usr/bin/env bash
# The wasm tier's benchmarks, in one run (nothing asserts a figure):
#  1. the compile flags of the generated C, step by step: bench/wasm_compute
#     (native vs the tier, in process) once per ATOLL_WASM_CFLAGS setting;
#  2. bench/wasm_bench.py: native / atoll serve / workerd on the same
#     kernels (SHA-256 over 64 MiB, n-body, matmul …), wasm cold start and
#     compile time, hello-world throughput with wrk.
# usage: bench/wasm_bench.sh [BUILD_DIR]   (default build/release; run `make bench-bins` first)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/release}
echo "# $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $(wasm2c --version); $(cc --version | head -1)"
if [ -z "${SKIP_FLAGS:-}" ]; then
  # Each setting is a separate cache key: every run compiles its own .so.
  for flags in "-O2" "-O3" "-O2 -march=native" "-O3 -march=native" "-O3 -march=native -fno-strict-aliasing"; do
    echo; echo "## ATOLL_WASM_CFLAGS='$flags' $out/bench/wasm_compute ${REPS:-5}"
    ATOLL_WASM_CFLAGS="$flags" "$out/bench/wasm_compute" "${REPS:-5}"
  done
fi
echo
python3 bench/wasm_bench.py "$out/atoll" --reps "${REPS:-5}" --wrk-seconds "${WRK_SECONDS:-10}"
