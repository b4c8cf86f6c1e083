#!/usr/bin/env bash
# Fetches the Unicode UTS #46 (IDNA) mapping table for the URL parser from
# the npm registry: the `tr46` package, pinned by version and integrity
# (it carries the table as JSON, generated from Unicode's
# IdnaMappingTable.txt). Debian 12 ships no current copy of that table.
# Writes DEPS/tr46/mappingTable.json; never committed.
set -euo pipefail
deps=${1:?usage: unicode-idna.sh DEPS_DIR}
version=6.0.0   # Unicode 17.0.0, the version of the WPT data in ../shared/conformance
integrity=sha512-bLVMLPtstlZ4iMQHpFHTR7GAGj2jxi8Dg0s2h2MafAE4uSWF98FC/3MomU51iQAMf8/qDUbKWf5GxuvvVcXEhw==
out=$deps/tr46/mappingTable.json
[ -f "$out" ] && exit 0
work=$deps/tr46-download
rm -rf "$work" "$deps/tr46"
mkdir -p "$work" "$deps/tr46"
(cd "$work" && npm pack --loglevel=error "tr46@$version" >/dev/null 2>npm.log) || {
  echo "unicode-idna: npm pack tr46@$version failed:" >&2; cat "$work/npm.log" >&2; exit 1; }
tarball=$work/tr46-$version.tgz
got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [ "$got" != "$integrity" ]; then
  echo "unicode-idna: tr46-$version.tgz has integrity $got, expected the pinned $integrity" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work" package/lib/mappingTable.json package/lib/statusMapping.js
mv "$work/package/lib/mappingTable.json" "$work/package/lib/statusMapping.js" "$deps/tr46/"
rm -rf "$work"
