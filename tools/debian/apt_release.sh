#!/usr/bin/env bash
# Prints apt-get options that point apt at Debian 12 (bookworm), whatever release the host runs.
#
# On a Debian 12 host this prints nothing: the host's own apt configuration already serves bookworm.
# On another release (e.g. Debian 13) it writes a private sources list for bookworm, derived from the
# mirror URIs the host is configured with, runs `apt-get update` on it into a private lists
# directory under $1, and prints the `-o` options that make apt-get use it.
#
# Usage: apt_release.sh STATE_DIR
set -euo pipefail
state_dir=$1
major=$(cut -d. -f1 /etc/debian_version 2>/dev/null || echo unknown)
if [ "$major" = "12" ]; then
  exit 0
fi
mkdir -p "$state_dir/lists/partial" "$state_dir/sources.list.d"
# Mirror URIs the host already uses (deb822 .sources or one-line .list files).
uris=$(
  { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
    grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $2}'
  } | grep -E '/debian(-security)?/?$' | sed 's:/*$::' | sort -u
)
if [ -z "$uris" ]; then
  echo "apt_release.sh: no Debian mirror found in /etc/apt/sources.list*; cannot fetch bookworm packages" >&2
  exit 1
fi
{
  for uri in $uris; do
    case "$uri" in
      *-security) echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri bookworm-security main" ;;
      *) echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri bookworm main" ;;
    esac
  done
} > "$state_dir/sources.list"
opts=(-o "Dir::Etc::sourcelist=$state_dir/sources.list" -o "Dir::Etc::sourceparts=$state_dir/sources.list.d"
      -o "Dir::State::Lists=$state_dir/lists" -o "APT::Architecture=amd64")
apt-get "${opts[@]}" -qq update >&2
printf '%s\n' "${opts[@]}"
