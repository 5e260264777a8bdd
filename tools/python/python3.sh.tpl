#!/bin/sh
# Hermetic Python: Debian 12's python3.11 run through the dynamic loader and shared libraries
# unpacked beside it, so nothing of the host's Python or libraries is used.
root=$(dirname "$(readlink -f "$0")")
fs="$root/rootfs"
PYTHONHOME="$fs/usr"
export PYTHONHOME
# Nothing from the host: no user site-packages either.
PYTHONNOUSERSITE=1
export PYTHONNOUSERSITE
exec "$fs/lib64/ld-linux-x86-64.so.2" \
  --library-path "$fs/lib/x86_64-linux-gnu:$fs/usr/lib/x86_64-linux-gnu" \
  --argv0 "$root/python3" \
  "$fs/usr/bin/python3.11" "$@"
