#!/usr/bin/env bash
# deps.sh: everything a fresh machine needs before the suites run.
set -euo pipefail
cd "$(dirname "$0")/.."
go mod download
need=()
command -v ip >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ]; then
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
	else
		echo "missing packages: ${need[*]} (run as root to install them)" >&2
		exit 1
	fi
fi
