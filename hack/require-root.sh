#!/usr/bin/env bash
# Fails loudly instead of letting network-namespace suites skip themselves.
if [ "$(id -u)" != 0 ]; then
	echo "this suite creates network namespaces and must run as root (sudo make test)" >&2
	exit 1
fi
