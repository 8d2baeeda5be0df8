# The golden MACs (issue 18): every vector of pkg/macaddr/derive_test.go
# recomputed by test/golden/derive.py, an independent implementation in
# Python (hashlib) written from the README's description of the
# derivation, not from the Go code.
#
#   make test-golden    the check, and copies of the table with one entry
#                       changed that it must refuse; part of `make test`,
#                       no root needed (except to install python3 when it
#                       is missing, from Debian through hack/lib/deb.sh)

.PHONY: test-golden

test-golden:
	@command -v python3 >/dev/null || bash -c '. hack/lib/errexit.sh; . hack/lib/deb.sh; deb_install python3' test-golden
	$(GO) test -count=1 ./test/golden/...

TEST_TARGETS += test-golden
