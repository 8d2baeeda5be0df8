#!/usr/bin/env bash
# lint-shell.sh: shellcheck, Debian's package at SHELLCHECK_DEB_VERSION
# (the Makefile pins it), over every shell script of the checkout: what git
# knows (tracked, or new and not ignored) that is named *.sh or starts with
# a sh/bash shebang (.ci/run, hack/vmtest/init). New scripts are picked up
# without being listed. Installs or re-pins the package first when needed
# (root). An exception is a `# shellcheck disable=SCxxxx` in place, with
# its reason on the line above. Then every script that turns on errexit
# must source hack/lib/errexit.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/errexit.sh
. hack/lib/errexit.sh
# shellcheck source=lib/deb.sh
. hack/lib/deb.sh
: "${SHELLCHECK_DEB_VERSION:?}"

have=$(deb_version shellcheck)
if [ "$have" != "$SHELLCHECK_DEB_VERSION" ]; then
	echo "lint-shell: installing Debian's shellcheck $SHELLCHECK_DEB_VERSION (installed: ${have:-none})" >&2
	deb_install "shellcheck=$SHELLCHECK_DEB_VERSION"
fi
# The binary on PATH must be that package's (not one from elsewhere).
want=${SHELLCHECK_DEB_VERSION%%-*}
got=$(shellcheck --version | awk '$1 == "version:" {print $2}')
[ "$got" = "$want" ] || {
	echo "lint-shell: shellcheck on PATH ($(command -v shellcheck)) is $got, not Debian's $want" >&2
	exit 1
}

scripts=()
while IFS= read -r -d '' f; do
	[ -f "$f" ] || continue # deleted but not yet committed
	case $f in
	*.sh) scripts+=("$f") ;;
	*) head -n1 "$f" | grep -Eq '^#!(/usr)?/bin/(env )?(ba|da)?sh( |$)|^#!/bin/busybox sh( |$)' && scripts+=("$f") ;;
	esac
done < <(git ls-files -z -co --exclude-standard)
echo "shellcheck $got: ${#scripts[@]} scripts" >&2
# -x -P SCRIPTDIR: follow `source=` directives, relative to each script.
shellcheck -x -P SCRIPTDIR "${scripts[@]}"

# A script that turns errexit on must say why it stops: it sources
# hack/lib/errexit.sh (its ERR trap names the file, line and command).
silent=()
for f in "${scripts[@]}"; do
	[ "$f" = hack/lib/errexit.sh ] && continue
	if grep -Eq '^[[:space:]]*set -[a-zA-Z]*e' "$f" && ! grep -Eq '^[[:space:]]*(\.|source) .*lib/errexit\.sh' "$f"; then
		silent+=("$f")
	fi
done
if [ ${#silent[@]} != 0 ]; then
	printf 'lint-shell: %s uses set -e but does not source hack/lib/errexit.sh, so a stop would say nothing\n' "${silent[@]}" >&2
	exit 1
fi
