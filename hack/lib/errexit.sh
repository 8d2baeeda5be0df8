# shellcheck shell=bash
# errexit.sh: sourced first by every bash script under hack/ (and .ci/run).
# It turns on errexit, nounset and pipefail like `set -euo pipefail`, and
# makes a stop under errexit say why: `set -e` alone ends a script without
# a word, which is how a `dpkg-query` for a package a fresh machine never
# had ended hack/k8s/build.sh silently (issue 17).
#
# On the failing command it prints
#   <file>:<line>: stopping: `<command as written>` exited <status> (in <function>)
# and, for a pipeline, every stage's status. -E hands the trap to functions
# and subshells. Inside $(...) errexit is off (bash without
# inherit_errexit), so a failure there is not reported (nor fatal) until
# the assignment that uses it fails in the caller, which is then named.
# A command whose failure is expected must say so (`|| true`, `if`, `||`),
# as under plain `set -e`.
set -Eeuo pipefail
trap 'errexit_report "$?" "${PIPESTATUS[*]}" "$BASH_COMMAND" "${BASH_SOURCE[0]}" "$LINENO"' ERR

# errexit_report STATUS PIPESTATUS COMMAND FILE LINE: the message, only
# where errexit is on (the trap also fires where a failure is not fatal).
errexit_report() {
	[[ $- == *e* ]] || return 0
	local status=$1 where
	[ "$2" = "$1" ] || status="$1 (pipeline stages: $2)"
	where=${FUNCNAME[*]:1}
	where=${where%main}
	where=${where% }
	# The backquotes are literal: they quote the command in the message.
	# shellcheck disable=SC2016
	printf '%s:%s: stopping: `%s` exited %s%s\n' "$4" "$5" "$3" "$status" "${where:+ (in ${where// / <- })}" >&2
}
