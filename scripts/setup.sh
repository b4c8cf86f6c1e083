#!/usr/bin/env bash
# Installs the Debian packages that atoll's build, tests and benchmarks need,
# only when they are missing, so `make` works on a fresh Debian 12 machine.
# Runs as root, or through sudo when started by another user.
set -euo pipefail

# Each package is named once here; the build (pkg-config) and the tests find them.
packages=(
  build-essential pkg-config ca-certificates curl xz-utils dpkg-dev openssl
  libuv1-dev node-llhttp libjansson-dev libseccomp-dev libcap-dev libunistring-dev libssl-dev
  libcurl4-openssl-dev libcmocka-dev clang libclang-rt-14-dev
  python3 procps wrk busybox-static crun gnuplot-nox fonts-dejavu-core
  libsqlite3-dev libhiredis-dev redis-server
  wabt wasi-libc lld libclang-rt-14-dev-wasm32
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
# npm fetches the pinned Unicode IDNA table (scripts/unicode-idna.sh) and
# the benchmark peers; Debian's npm is used where no npm is installed.
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "setup: missing packages (${missing[*]}) and neither root nor sudo is available" >&2
  exit 1
fi

echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
