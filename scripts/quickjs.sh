#!/usr/bin/env bash
# Provides QuickJS to the build as DESIGN.md prescribes and writes the make
# fragment OUT (QJS_CFLAGS, QJS_LIBS) that the Makefile includes.
#  - The system's libquickjs (Debian 13 and later) is used where it exists.
#  - Otherwise Debian's source package quickjs 2025.04.26-1 is downloaded with
#    apt-get source from the Debian mirror this machine's apt already uses,
#    its orig tarball checked against the pinned SHA-256, and compiled into a
#    static library under the build directory (never committed).
set -euo pipefail

out=${1:?usage: quickjs.sh OUT.mk DEPS_DIR}
deps=${2:?usage: quickjs.sh OUT.mk DEPS_DIR}
version=2025.04.26
debver=2025.04.26-1
sha256=ec81da5b3249ed648dbc7df4a1654988910e66a118d9b71cb63534216efcfbbe
cc=${CC:-cc}

mkdir -p "$deps"
deps=$(cd "$deps" && pwd)

if [ -f /usr/include/quickjs/quickjs.h ] && { [ -e /usr/lib/x86_64-linux-gnu/libquickjs.a ] || ls /usr/lib/*/libquickjs.* >/dev/null 2>&1; }; then
  printf 'QJS_CFLAGS := -I/usr/include/quickjs\nQJS_LIBS := -lquickjs -lm\n' >"$out"
  exit 0
fi

lib=$deps/quickjs/libquickjs.a
# Fixes applied on top of Debian's source (scripts/quickjs-patches/); a
# change to them rebuilds the library.
patches=$(cd "$(dirname "$0")" && pwd)/quickjs-patches
patch_sum=$(cat "$patches"/*.patch 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ ! -f "$lib" ] || [ "$(cat "$deps/quickjs/patches.sum" 2>/dev/null)" != "$patch_sum" ]; then
  work=$deps/quickjs-download
  rm -rf "$work"
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
  # The mirror: the Debian archive apt already fetches from (not -security,
  # not third-party repositories), read from apt's own configuration.
  mirror=$(apt-get indextargets --format '$(ORIGIN) $(CODENAME) $(REPO_URI)' 2>/dev/null |
    awk '$1 == "Debian" && $2 !~ /-/ { print $3; exit }')
  if [ -z "$mirror" ]; then
    echo "quickjs: cannot find a Debian mirror in apt's configuration (apt-get indextargets); run 'apt-get update'" >&2
    exit 1
  fi
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  for suite in trixie sid; do
    echo "deb-src [signed-by=$keyring] $mirror $suite main" >"$work/sources.list"
    apt_opts=(-o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o Dir::State::Lists="$work/lists" -o Dir::Cache="$work/cache" -o APT::Sandbox::User=root)
    echo "quickjs: fetching source package quickjs=$debver from $mirror ($suite)" >&2
    if apt-get "${apt_opts[@]}" update -qq >"$work/apt.log" 2>&1 &&
      (cd "$work" && apt-get "${apt_opts[@]}" source --download-only -qq "quickjs=$debver" >>apt.log 2>&1); then
      break
    fi
  done
  tarball=$work/quickjs_$version.orig.tar.xz
  if [ ! -f "$tarball" ]; then
    echo "quickjs: apt-get source quickjs=$debver failed:" >&2
    cat "$work/apt.log" >&2
    exit 1
  fi
  if ! echo "$sha256  $tarball" | sha256sum -c --quiet -; then
    echo "quickjs: SHA-256 of $tarball does not match the pinned $sha256" >&2
    exit 1
  fi
  rm -rf "$deps/quickjs-src" "$deps/quickjs"
  mkdir -p "$deps/quickjs-src" "$deps/quickjs/include"
  tar -xf "$tarball" -C "$deps/quickjs-src" --strip-components=1
  src=$deps/quickjs-src
  for p in "$patches"/*.patch; do
    [ -f "$p" ] || continue
    patch -d "$src" -p1 --quiet --forward <"$p" || { echo "quickjs: cannot apply $p" >&2; exit 1; }
  done
  flags=(-O2 -g -fPIC -fwrapv -D_GNU_SOURCE "-DCONFIG_VERSION=\"$(cat "$src/VERSION")\""
    -Wno-array-bounds -Wno-format-truncation -Wno-infinite-recursion)
  objs=()
  for f in quickjs dtoa libregexp libunicode cutils; do
    "$cc" "${flags[@]}" -c "$src/$f.c" -o "$deps/quickjs/$f.o" &
    objs+=("$deps/quickjs/$f.o")
  done
  wait
  for o in "${objs[@]}"; do [ -f "$o" ] || { echo "quickjs: compile failed" >&2; exit 1; }; done
  ar rcs "$lib.tmp" "${objs[@]}"
  cp "$src/quickjs.h" "$deps/quickjs/include/"
  mv "$lib.tmp" "$lib"
  echo "$patch_sum" >"$deps/quickjs/patches.sum"
  rm -rf "$work"
fi
printf 'QJS_CFLAGS := -isystem %s\nQJS_LIBS := %s -lm\n' "$deps/quickjs/include" "$lib" >"$out"
