# macguard — chained CNI meta-plugin that makes the pod interface's MAC right.
#
# Top-level targets live here; each test area adds its own targets in
# hack/mk/*.mk and appends them to TEST_TARGETS so `make test` runs them all.

SHELL       := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

GO          ?= go
VERSION     ?= v0.1.0
COMMIT      ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
CNI_BIN_DIR ?= /opt/cni/bin
# Where `make install` puts macguardctl, the operator's tool.
INSTALL_BIN_DIR ?= /usr/local/bin
BIN_DIR     := bin
CACHE_DIR   := .cache
TOOLS_DIR   := $(CACHE_DIR)/tools

PKG         := github.com/macguard-cni/macguard
LDFLAGS     := -s -w -X $(PKG)/pkg/buildinfo.Version=$(VERSION) -X $(PKG)/pkg/buildinfo.Commit=$(COMMIT)
GOBUILD     := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'

# Test targets contributed by hack/mk/*.mk, run in this order by `make test`.
TEST_TARGETS := test-unit test-integration

.PHONY: all build install test test-unit test-integration lint deps clean help

all: build

help:
	@echo "make build      build bin/macguard (the CNI plugin) and bin/macguardctl (the operator's tool), static"
	@echo "make install    install bin/macguard into CNI_BIN_DIR ($(CNI_BIN_DIR)) and bin/macguardctl into INSTALL_BIN_DIR ($(INSTALL_BIN_DIR)), atomically"
	@echo "make test       every test suite (installs what it needs; run as root)"
	@echo "make lint       gofmt, go vet, golangci-lint $(GOLANGCI_LINT_VERSION) (.golangci.yml) and shellcheck $(SHELLCHECK_DEB_VERSION) (Debian's; installed as root if missing)"

build: $(BIN_DIR)/macguard $(BIN_DIR)/macguardctl

# Always rebuilt: go's own cache makes this cheap and keeps the stamp right.
.PHONY: $(BIN_DIR)/macguard $(BIN_DIR)/macguardctl
$(BIN_DIR)/macguard:
	@mkdir -p $(BIN_DIR)
	$(GOBUILD) -o $@ ./plugins/meta/macguard

$(BIN_DIR)/macguardctl:
	@mkdir -p $(BIN_DIR)
	$(GOBUILD) -o $@ ./cmd/macguardctl

install: build
	hack/install-binary.sh $(BIN_DIR)/macguard $(CNI_BIN_DIR)/macguard
	hack/install-binary.sh $(BIN_DIR)/macguardctl $(INSTALL_BIN_DIR)/macguardctl

deps:
	hack/deps.sh

# golangci-lint, pinned, built from source into .cache/tools by `make lint`
# on first use. From / and with GOFLAGS empty, so neither this module nor the
# caller's flags touch the build: the tool's own go.mod pins its
# dependencies. .golangci.yml says which linters run and why each exclusion
# exists.
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT         := $(CURDIR)/$(TOOLS_DIR)/golangci-lint-$(GOLANGCI_LINT_VERSION)/golangci-lint

$(GOLANGCI_LINT):
	@mkdir -p $(dir $@)
	cd / && GOBIN=$(dir $@) GOFLAGS= $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

# shellcheck from Debian (bookworm's), pinned: hack/lint-shell.sh installs
# it when missing or at another version (root), checks the binary, and runs
# it over every shell script git knows, new ones included.
SHELLCHECK_DEB_VERSION := 0.9.0-1

# gofmt over every Go file git knows (tracked or not ignored) first: it
# names the files to fix, faster than the linter.
lint: $(GOLANGCI_LINT)
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOLANGCI_LINT) run ./...
	SHELLCHECK_DEB_VERSION=$(SHELLCHECK_DEB_VERSION) hack/lint-shell.sh

test: deps lint build
	@for t in $(TEST_TARGETS); do echo "=== make $$t"; $(MAKE) --no-print-directory $$t; done

test-unit:
	$(GO) test -count=1 ./pkg/... ./plugins/... ./cmd/...

# Real network namespaces on this machine's kernel; needs root.
test-integration: build
	hack/require-root.sh
	MACGUARD_BIN=$(CURDIR)/$(BIN_DIR)/macguard $(GO) test -count=1 -p 1 ./test/integration/...

clean:
	rm -rf $(BIN_DIR) $(CACHE_DIR)

-include hack/mk/*.mk
