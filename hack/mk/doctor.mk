# macguardctl doctor (issue 12): the real binary against nodes built from
# real network namespaces (veth and macvlan pods, stale records, drift,
# duplicate MACs, conflists with two MAC owners, a first conflist without
# macguard, an invalid entry) with their own conf, bin, data, cache, netns
# and proc directories. See docs/doctor.md.
#
#   make test-doctor   the suite (root; part of `make test`)
#
# pkg/ctl/doctor's unit, golden and client-go fake tests run in test-unit; the
# netkit and ipvlan worlds run in test/vm (make test-vm), the DaemonSet run
# in test/k8s.

.PHONY: test-doctor

# tools: the reply-path worlds (test/doctor/paths_test.go) run the real
# cnitool with the reference macvlan, static and sbr plugins.
test-doctor: build tools
	hack/require-root.sh
	$(E2E_ENV) MACGUARDCTL_BIN=$(CURDIR)/$(BIN_DIR)/macguardctl \
		$(GO) test -count=1 -p 1 ./test/doctor/...

TEST_TARGETS += test-doctor
