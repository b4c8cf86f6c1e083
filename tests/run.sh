#!/usr/bin/env bash
# Runs every test against one build (default: the sanitized one) and prints
# the total as its last line, "N passed, N failed"; exits non-zero on any
# failure. Unit tests are cmocka binaries (one per area, each in its own
# process with a timeout); end-to-end tests are Python scripts that start
# the real atoll binary and talk HTTP to it.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/asan}
export ATOLL_BIN=$PWD/$out/atoll
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}

passed=0
failed=0
failures=()
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

# Adds one test program's counts to the totals: name, log file, exit status,
# and the awk program that prints "PASSED FAILED" from the log.
count() {
  local name=$1 file=$2 rc=$3 p f
  read -r p f < <(awk "$4" "$file")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1 # crashed or timed out outside any single test
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$f" -ne 0 ]; then
    failures+=("$name")
    echo "--- $name (exit $rc) ---"
    # The failing checks themselves first: a sanitizer's leak report after an
    # aborted test can push them out of the tail.
    grep -E '^\[  (ERROR +|FAILED  )\]|^\[   LINE   \]|^ERROR: |^not ok ' "$file" | head -n 40
    echo "--- $name: last 60 lines ---"
    tail -n 60 "$file"
  fi
  printf '%-40s %4d passed, %d failed\n' "$name" "$p" "$f"
}

# cmocka prints one summary per group: "[  PASSED  ] N test(s)." and
# "[  FAILED  ] N test(s), listed below:".
cmocka_counts='/^\[  PASSED  \] [0-9]+ test/ { p += $4 } /^\[  FAILED  \] [0-9]+ test/ { f += $4 } END { print p + 0, f + 0 }'
tap_counts='/^ok / { p++ } /^not ok / { f++ } END { print p + 0, f + 0 }'

for t in "$out"/tests/test_*; do
  [ -x "$t" ] || continue
  name=unit/$(basename "$t")
  CMOCKA_MESSAGE_OUTPUT=stdout timeout 300 "$t" >"$log/out" 2>&1
  count "$name" "$log/out" $? "$cmocka_counts"
done

for t in tests/e2e/test_*.py; do
  [ -f "$t" ] || continue
  name=e2e/$(basename "$t" .py)
  timeout 600 python3 "$t" >"$log/out" 2>&1
  count "$name" "$log/out" $? "$tap_counts"
done

if [ ${#failures[@]} -gt 0 ]; then
  echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
