# macguardctl doctor (issue 12): the real binary against nodes built from
# real network namespaces (veth and macvlan pods, stale records, drift,
# duplicate MACs, conflists with two MAC owners, a first conflist without
# macguard, an invalid entry) with their own conf, bin, data, cache, netns
# and proc directories. See docs/doctor.md.
#
#   make test-doctor   the suite (root; part of `make test`)
#
# pkg/doctor's unit, golden and client-go fake tests run in test-unit; the
# netkit and ipvlan worlds run in test/vm (make test-vm), the DaemonSet run
# in test/k8s.

.PHONY: test-doctor

test-doctor: build
	hack/require-root.sh
	MACGUARD_BIN=$(CURDIR)/$(BIN_DIR)/macguard MACGUARDCTL_BIN=$(CURDIR)/$(BIN_DIR)/macguardctl \
		$(GO) test -count=1 -p 1 ./test/doctor/...

TEST_TARGETS += test-doctor
