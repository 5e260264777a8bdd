#!/usr/bin/env bash
# Rewrites absolute symlinks inside an unpacked root file system so they point inside it.
# (.deb files ship links such as lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/...,
# which would otherwise resolve to the host's files.)
set -euo pipefail
root=$(cd "$1" && pwd)
find "$root" -type l -lname '/*' -print0 | while IFS= read -r -d '' link; do
  target=$(readlink "$link")
  rel=$(realpath -m --relative-to="$(dirname "$link")" "$root$target")
  ln -sfn "$rel" "$link"
done
