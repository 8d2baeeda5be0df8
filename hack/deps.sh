#!/usr/bin/env bash
# deps.sh: everything a fresh machine needs before the suites run.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/errexit.sh
. hack/lib/errexit.sh
# shellcheck source=lib/deb.sh
. hack/lib/deb.sh
go mod download
need=()
command -v ip >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
	echo "deps: installing from Debian: ${need[*]}" >&2
	deb_install "${need[@]}"
fi
