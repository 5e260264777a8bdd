#!/usr/bin/env bash
# Downloads pinned Debian packages and checks their sha256.
#
# Usage: fetch_debs.sh OUT_DIR NAME=VERSION=SHA256 ...
# Exit status 3 (with a message naming the refresh command) when a pinned version is gone from the
# archive, which happens when Debian publishes a new point or security release.
set -euo pipefail
out=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
mapfile -t apt_opts < <("$here/apt_release.sh" "$out/.apt")
if ! command -v apt-get >/dev/null; then
  echo "fetch_debs.sh: apt-get not found: the hermetic toolchain is built from Debian packages" >&2
  exit 2
fi
specs=()
for entry in "$@"; do
  IFS='=' read -r name version _sha <<<"$entry"
  specs+=("$name=$version")
done
if ! (cd "$out" && apt-get "${apt_opts[@]}" -o APT::Sandbox::User=root -qq download "${specs[@]}" >&2); then
  echo "fetch_debs.sh: a pinned Debian package version is no longer served by the archive." >&2
  echo "Refresh the pins with: tools/debian/refresh (then commit tools/debian/*_packages.bzl)" >&2
  exit 3
fi
for entry in "$@"; do
  IFS='=' read -r name version sha <<<"$entry"
  file=$(ls "$out"/"${name}"_*.deb | head -n 1)
  actual=$(sha256sum "$file" | cut -d' ' -f1)
  if [ "$actual" != "$sha" ]; then
    echo "fetch_debs.sh: sha256 mismatch for $name=$version: expected $sha, got $actual" >&2
    exit 4
  fi
  mv "$file" "$out/$name.deb"
done
rm -rf "$out/.apt"
