# End-to-end (issue 4): the real cnitool driving real chains of the
# reference plugins plus bin/macguard, in network namespaces the tests
# create; the example configs in cni-conf/; and the newcomer's demo.
# See docs/e2e.md.
#
#   make tools      pinned cnitool + reference plugins into .cache/tools
#   make test-e2e   cni-conf loader test + the e2e suite (root; part of `make test`)
#   make demo       a readable walk through three chains (root)
#
# E2E_RUN filters e2e tests (a -run regexp).

E2E_CNI_VERSION     := v1.3.0
E2E_PLUGINS_VERSION := v1.9.1
E2E_PLUGINS         := main/bridge main/macvlan main/ptp main/ipvlan ipam/host-local ipam/static meta/tuning meta/sbr
# cnitool and the plugins live in separate directories so that CNI_PATH
# holds only plugins (and, in the tests, a copy of bin/macguard).
E2E_CNITOOL_DIR     := $(TOOLS_DIR)/bin
E2E_PLUGIN_DIR      := $(TOOLS_DIR)/cni-plugins
# The stamp names both versions and a checksum of the plugin list, so
# bumping a pin or adding a plugin reinstalls.
E2E_STAMP           := $(TOOLS_DIR)/.e2e-$(E2E_CNI_VERSION)-$(E2E_PLUGINS_VERSION)-$(shell echo '$(E2E_PLUGINS)' | cksum | cut -d' ' -f1)
E2E_RUN             ?=
E2E_ENV             = MACGUARD_BIN=$(CURDIR)/$(BIN_DIR)/macguard \
                      E2E_CNITOOL=$(CURDIR)/$(E2E_CNITOOL_DIR)/cnitool \
                      E2E_CNI_PLUGINS=$(CURDIR)/$(E2E_PLUGIN_DIR)

.PHONY: tools test-e2e demo

tools: $(E2E_STAMP)

# `go install pkg@version` ignores this module's go.mod and builds exactly
# that tag.
$(E2E_STAMP):
	@mkdir -p $(E2E_CNITOOL_DIR) $(E2E_PLUGIN_DIR)
	GOBIN=$(CURDIR)/$(E2E_CNITOOL_DIR) CGO_ENABLED=0 $(GO) install -trimpath \
		github.com/containernetworking/cni/cnitool@$(E2E_CNI_VERSION)
	GOBIN=$(CURDIR)/$(E2E_PLUGIN_DIR) CGO_ENABLED=0 $(GO) install -trimpath \
		$(foreach p,$(E2E_PLUGINS),github.com/containernetworking/plugins/plugins/$(p)@$(E2E_PLUGINS_VERSION))
	@touch $@

test-e2e: build tools
	hack/require-root.sh
	$(GO) test -count=1 ./cni-conf/...
	$(E2E_ENV) $(GO) test -count=1 -p 1 -timeout 10m $(if $(E2E_RUN),-run '$(E2E_RUN)') ./test/e2e/...

demo: build tools
	hack/require-root.sh
	$(E2E_ENV) E2E_CNI_VERSION=$(E2E_CNI_VERSION) E2E_PLUGINS_VERSION=$(E2E_PLUGINS_VERSION) hack/demo.sh

TEST_TARGETS += test-e2e
