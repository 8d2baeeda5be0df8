# KubeVirt's own network code on macguard's pod interfaces (issue 19):
# test/kubevirt, its own Go module importing kubevirt.io/kubevirt at the
# version test/kubevirt/go.mod requires, prepared by hack/kubevirt/prepare.sh
# into .cache/kubevirt/<version>. See docs/kubevirt.md.
#
#   make kubevirt-deps      Debian's libvirt-clients (virsh) and unzip when
#                           missing (root), and the prepared KubeVirt module
#   make test-kubevirt      the suite on this machine's kernel (with a real
#                           guest under QEMU, hack/kubevirt/guest.sh), then inside
#                           the VM suite's guest (netkit, dummy); part of
#                           `make test`
#   make test-kubevirt-host / test-kubevirt-vm   one of the two
#
# KUBEVIRT_CHAIN_WITHOUT_MACGUARD=1 leaves macguard out of every chain: the
# tests must then fail (how their assertions were seen to fail).

# The one place the version is written is test/kubevirt/go.mod (its
# require and the replace pointing at the prepared directory).
KUBEVIRT_VERSION := $(shell awk '$$1 == "kubevirt.io/kubevirt" && $$2 ~ /^v/ {print $$2; exit}' test/kubevirt/go.mod)
KUBEVIRT_CACHE   := $(CURDIR)/$(CACHE_DIR)/kubevirt
KUBEVIRT_ENV      = KUBEVIRT_VERSION=$(KUBEVIRT_VERSION) KUBEVIRT_CACHE=$(KUBEVIRT_CACHE) GO=$(GO)
KUBEVIRT_TEST_ENV = $(E2E_ENV) MACGUARDCTL_BIN=$(CURDIR)/$(BIN_DIR)/macguardctl \
	KUBEVIRT_GUEST_DIR=$(KUBEVIRT_CACHE)/guest \
	$(if $(KUBEVIRT_CHAIN_WITHOUT_MACGUARD),KUBEVIRT_CHAIN_WITHOUT_MACGUARD=$(KUBEVIRT_CHAIN_WITHOUT_MACGUARD))

.PHONY: kubevirt-deps test-kubevirt test-kubevirt-host test-kubevirt-vm

kubevirt-deps:
	@[ -n "$(KUBEVIRT_VERSION)" ] || { echo "no kubevirt.io/kubevirt version in test/kubevirt/go.mod"; exit 1; }
	$(KUBEVIRT_ENV) hack/kubevirt/prepare.sh packages
	$(KUBEVIRT_ENV) hack/kubevirt/prepare.sh module

test-kubevirt: test-kubevirt-host test-kubevirt-vm

test-kubevirt-host: build tools kubevirt-deps
	hack/require-root.sh
	hack/kubevirt/guest.sh $(KUBEVIRT_CACHE)/guest
	cd test/kubevirt && $(GO) vet ./...
	cd test/kubevirt && $(KUBEVIRT_TEST_ENV) $(GO) test -count=1 -p 1 ./...

test-kubevirt-vm: build kubevirt-deps
	MACGUARD_BIN=$(CURDIR)/$(BIN_DIR)/macguard VMTEST_SUITES=kubevirt VMTEST_MEM=1024 VMTEST_SKIP=TestRealGuest \
		$(if $(KUBEVIRT_CHAIN_WITHOUT_MACGUARD),KUBEVIRT_CHAIN_WITHOUT_MACGUARD=$(KUBEVIRT_CHAIN_WITHOUT_MACGUARD)) \
		hack/vmtest/run.sh vm

TEST_TARGETS += test-kubevirt

# KubeVirt's own network code as a command (test/kubevirt's
# cmd/kubevirt-launcher: the pod annotations virt-controller writes and the
# domain virt-launcher generates in a pod's network namespace), for
# test/k8s, whose module cannot import KubeVirt: TestCluster/KubeVirtLauncher
# runs it against a virt-launcher pod of the real node.
K8S_KUBEVIRT_LAUNCHER = $(K8S_CACHE)/kubevirt-launcher-$(KUBEVIRT_VERSION)

.PHONY: k8s-kubevirt-launcher
k8s-kubevirt-launcher: kubevirt-deps
	@mkdir -p $(K8S_CACHE)
	cd test/kubevirt && CGO_ENABLED=0 $(GO) build -trimpath -o $(K8S_KUBEVIRT_LAUNCHER) ./cmd/kubevirt-launcher
