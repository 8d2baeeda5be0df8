# The project's own scripts and the README (issue 17).
#
#   make test-scripts   test/freshmachine: the install steps of hack/deps.sh,
#                       hack/k8s/build.sh (containerd), hack/vmtest/run.sh
#                       (packages) and make bench-tools on a fake machine
#                       that has none of their packages, and with apt-get
#                       refusing. Part of `make test`; no root needed.
#
# shellcheck over every shell script runs in `make lint` (hack/lint-shell.sh).

.PHONY: test-scripts

test-scripts: build
	$(GO) test -count=1 ./test/freshmachine/...

TEST_TARGETS += test-scripts
