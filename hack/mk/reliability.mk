# Reliability (issue 5): bad input through the binary, fault injection and
# concurrency in real namespaces, and fuzzing. See docs/reliability.md.
#
#   make test-reliability  the three suites (root) and a short live run of
#                          every fuzz target, FUZZTIME_SHORT executions each
#                          (about 7 s each on a quiet 2-core machine);
#                          part of `make test`
#   make fuzz              every fuzz target for FUZZTIME executions each
#
# Budgets are execution counts (`Nx`), not durations: with a duration, Go's
# fuzz coordinator (go1.26) can report its own `-fuzztime` deadline as a
# failure, `context deadline exceeded` with no failing input, when a starved
# worker has not acknowledged the stop in time (golang/go#75804, fixed in
# go1.27). It struck this target once on a loaded CI machine. A count has no
# deadline to race; a busy machine only makes the run slower.
#
# The seed corpora in pkg/*/testdata/fuzz are replayed by plain `go test`,
# so `make test-unit` runs them. An input a live run finds failing is
# written there by the fuzzer and stays as a regression case once fixed.

FUZZTIME         ?= 5000000x
FUZZTIME_SHORT   ?= 500000x
FUZZ_TARGETS     := pkg/config:FuzzParse pkg/macaddr:FuzzParse pkg/macaddr:FuzzDerive pkg/result:FuzzCorrect
RELIABILITY_PKGS := ./test/badinput/... ./test/faults/... ./test/concurrency/...

# $(call run-fuzz,BUDGET): go test -fuzz takes one target of one package
# per run.
define run-fuzz
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$fn in ./$$pkg for $(1)"; \
		$(GO) test -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(1) ./$$pkg; \
	done
endef

.PHONY: test-reliability fuzz

test-reliability: build
	hack/require-root.sh
	MACGUARD_BIN=$(CURDIR)/$(BIN_DIR)/macguard $(GO) test -count=1 -p 1 $(RELIABILITY_PKGS)
	$(call run-fuzz,$(FUZZTIME_SHORT))

fuzz:
	$(call run-fuzz,$(FUZZTIME))

TEST_TARGETS += test-reliability

# Tenant input (issue 24): the plugin binary with a config a NAD's author
# wrote, as root in real network namespaces: paths outside the node's
# roots, tampered records, GC across networks, parallel ADDs, DEL through
# cnitool (ptp + host-local + macguard) with an unwritable dataDir. Needs
# the pinned cnitool and reference plugins (make tools) and unshare
# (util-linux, for the /proc/sys/kernel/hostname case in a private UTS and
# mount namespace).
.PHONY: test-tenant

test-tenant: build tools
	hack/require-root.sh
	$(E2E_ENV) $(GO) test -count=1 -p 1 ./test/tenant/...

TEST_TARGETS += test-tenant
