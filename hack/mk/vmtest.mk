# Real-kernel test matrix (issue 3): the test/vm suite on this machine's
# kernel, then inside a QEMU VM on Debian's 6.12 cloud kernel (netkit,
# ipvlan, dummy). See docs/vmtest.md.
#
#   make test-vm        both runs (part of `make test`)
#   make test-vm-host   only the run on this machine's kernel
#   make test-vm-boot   only the VM run
#
# VMTEST_KERNEL_PKG / VMTEST_KERNEL_DEB choose another kernel, VMTEST_RUN
# filters tests (a -test.run regexp), VMTEST_TIMEOUT bounds the VM.

.PHONY: test-vm test-vm-host test-vm-boot

test-vm: build
	MACGUARD_BIN=$(CURDIR)/$(BIN_DIR)/macguard hack/vmtest/run.sh all

test-vm-host: build
	MACGUARD_BIN=$(CURDIR)/$(BIN_DIR)/macguard hack/vmtest/run.sh host

test-vm-boot: build
	MACGUARD_BIN=$(CURDIR)/$(BIN_DIR)/macguard hack/vmtest/run.sh vm

TEST_TARGETS += test-vm
