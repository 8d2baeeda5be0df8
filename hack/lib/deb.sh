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

# deb_install_no_services SERVICE PKG...: deb_install, with no service
# started by the packages' maintainer scripts. A policy-rc.d forbids it for
# the install (removed afterwards, also when the install fails or is
# interrupted); one already there is used only if it forbids starting
# SERVICE too (exit 101), otherwise the script stops, naming it.
# POLICY_RC_D names another policy file (test/freshmachine keeps it off the
# machine's /usr/sbin). The caller disables a service the install brought
# onto a systemd machine: which ones is the caller's knowledge.
deb_install_no_services() {
	local service=$1 policy=${POLICY_RC_D:-/usr/sbin/policy-rc.d} rc=0 me=$0
	shift
	if [ -e "$policy" ]; then
		"$policy" "$service" start >/dev/null 2>&1 || rc=$?
		if [ $rc != 101 ]; then
			printf '%s: FAILED: %s allows starting services (it exits %s for "%s start"): installing %s could start one on this machine; install them by hand\n' \
				"$me" "$policy" "$rc" "$service" "$*" >&2
			exit 1
		fi
		deb_install "$@"
		return 0
	fi
	printf '#!/bin/sh\n# %s: no service starts while it installs packages\nexit 101\n' "$me" >"$policy"
	chmod 755 "$policy"
	# Also when the install fails or is interrupted: only our own file.
	# shellcheck disable=SC2064 # the paths are fixed now, on purpose
	trap "if grep -qF '$me' '$policy' 2>/dev/null; then rm -f '$policy'; fi" EXIT
	deb_install "$@"
	rm -f "$policy"
	trap - EXIT
}
