# shellcheck shell=bash
# deb.sh: Debian packages for the scripts that install what a fresh machine
# lacks (hack/deps.sh, hack/k8s/build.sh, hack/vmtest/run.sh,
# hack/lint-shell.sh). Sourced after errexit.sh.
#
# A fresh machine is the normal case: a package dpkg has never heard of is
# "not installed", never an error, and every failure to install names the
# packages. test/freshmachine runs these paths with every package absent.

# deb_version PKG: the installed version of PKG, or nothing. dpkg-query
# exits 1 for a package it has never heard of; under pipefail that must
# not end the caller.
deb_version() {
	{ dpkg-query -W -f '${db:Status-Status} ${Version}' "$1" 2>/dev/null || true; } | awk '$1 == "installed" {print $2}'
}

# deb_installed PKG: whether PKG is installed (any version).
deb_installed() { [ -n "$(deb_version "$1")" ]; }

# deb_install PKG[=VERSION]...: refresh the package lists (a fresh
# machine's are empty) and install, without recommends, downgrading to a
# pinned version if asked. Needs root. Any failure ends the script with a
# message naming the packages.
deb_install() {
	local me=$0
	if [ "$(id -u)" != 0 ]; then
		printf '%s: missing Debian packages: %s (run as root to install them)\n' "$me" "$*" >&2
		exit 1
	fi
	if ! apt-get update -qq; then
		printf '%s: apt-get update failed (see above); cannot install %s\n' "$me" "$*" >&2
		exit 1
	fi
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --allow-downgrades "$@" >/dev/null; then
		printf '%s: apt-get install failed for %s (see apt-get'"'"'s message above)\n' "$me" "$*" >&2
		exit 1
	fi
}
