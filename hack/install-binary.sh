#!/usr/bin/env bash
# install-binary.sh SRC DST: copy atomically so a kubelet never runs a half-written file.
set -euo pipefail
# shellcheck source=lib/errexit.sh
. "$(dirname "$0")/lib/errexit.sh"
src=$1 dst=$2
dir=$(dirname "$dst")
mkdir -p "$dir"
tmp=$(mktemp "$dir/.$(basename "$dst").XXXXXX")
trap 'rm -f "$tmp"' EXIT
cp "$src" "$tmp"
chmod 0755 "$tmp"
sync "$tmp" 2>/dev/null || true
mv -f "$tmp" "$dst"
trap - EXIT
echo "installed $dst"
