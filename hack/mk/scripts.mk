# The project's own scripts and the README (issue 17).
#
#   make test-scripts   test/freshmachine: the install steps of hack/deps.sh,
#                       hack/k8s/build.sh (containerd), hack/vmtest/run.sh
#                       (packages) and make bench-tools on a fake machine
#                       that has none of their packages, and with apt-get
#                       refusing; test/readme: every README command block
#                       marked <!-- test:run --> run against bin/ (the rule
#                       is in test/readme). Part of `make test`; no root
#                       needed.
#
# shellcheck over every shell script runs in `make lint` (hack/lint-shell.sh).

.PHONY: test-scripts

test-scripts: build
	$(GO) test -count=1 ./test/freshmachine/...
	MACGUARD_BIN=$(CURDIR)/$(BIN_DIR)/macguard MACGUARDCTL_BIN=$(CURDIR)/$(BIN_DIR)/macguardctl \
		$(GO) test -count=1 ./test/readme/...

TEST_TARGETS += test-scripts
