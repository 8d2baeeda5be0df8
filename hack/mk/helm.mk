# The Helm chart (issue 21): deploy/helm/macguard, the same DaemonSet as the
# kustomize variants in deploy/, with values named like Cilium's. See
# docs/install.md.
#
#   make chart       bin/chart/macguard-<version>.tgz (version = VERSION
#                    without its "v", appVersion = the image tag VERSION)
#   make helm        both pinned Helm builds (below), cached by version
#
# Helm 3 and Helm 4 are both built from the Go module proxy with `go
# install` at pinned versions into .cache/tools/helm-<version>/helm, from /
# and with GOFLAGS empty so that neither this module nor the caller's flags
# touch the build (as for golangci-lint). Helm 3 takes the Kubernetes
# version it assumes for `helm template` and `helm lint` (Capabilities
# .KubeVersion) from -X ldflags, 1.20 without them; Helm 4 reads it from
# the client-go version in its build info. HELM_KUBE_MINOR pins Helm 3's to
# the test node's Kubernetes (K8S_VERSION, hack/mk/k8s.mk); the tests pass
# --kube-version to both anyway.

HELM3_VERSION   := v3.21.4
HELM4_VERSION   := v4.3.2
HELM_KUBE_MINOR := 34
HELM3           := $(CURDIR)/$(TOOLS_DIR)/helm-$(HELM3_VERSION)/helm
HELM4           := $(CURDIR)/$(TOOLS_DIR)/helm-$(HELM4_VERSION)/helm
CHART_DIR       := deploy/helm/macguard
CHART_OUT       := $(BIN_DIR)/chart

.PHONY: helm chart

helm: $(HELM3) $(HELM4)

HELM3_LDFLAGS := -s -w -X helm.sh/helm/v3/internal/version.version=$(HELM3_VERSION) \
	-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$(HELM_KUBE_MINOR) \
	-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$(HELM_KUBE_MINOR)
HELM4_LDFLAGS := -s -w -X helm.sh/helm/v4/internal/version.version=$(HELM4_VERSION)

$(HELM3):
	@mkdir -p $(dir $@)
	cd / && CGO_ENABLED=0 GOBIN=$(dir $@) GOFLAGS= $(GO) install -trimpath -ldflags '$(HELM3_LDFLAGS)' helm.sh/helm/v3/cmd/helm@$(HELM3_VERSION)

$(HELM4):
	@mkdir -p $(dir $@)
	cd / && CGO_ENABLED=0 GOBIN=$(dir $@) GOFLAGS= $(GO) install -trimpath -ldflags '$(HELM4_LDFLAGS)' helm.sh/helm/v4/cmd/helm@$(HELM4_VERSION)

# The chart's SemVer is VERSION without its "v"; appVersion is the image
# tag, VERSION as is. `helm package` sets both, so `make chart
# VERSION=v0.2.0` packages the chart for that image whatever Chart.yaml says.
CHART_VERSION := $(patsubst v%,%,$(VERSION))
CHART_PACKAGE := $(CHART_OUT)/macguard-$(CHART_VERSION).tgz

chart: $(HELM3)
	@mkdir -p $(CHART_OUT)
	$(HELM3) package $(CHART_DIR) --version $(CHART_VERSION) --app-version $(VERSION) --destination $(CHART_OUT)

# `make lint` runs `helm lint --strict` with both Helm builds for the
# defaults and every example values file (the chart's ci/).
.PHONY: lint-chart
lint: lint-chart
lint-chart: $(HELM3) $(HELM4)
	@for h in $(HELM3) $(HELM4); do \
		for v in "" $(wildcard $(CHART_DIR)/ci/*-values.yaml); do \
			echo "helm $$($$h version --template '{{.Version}}') lint --strict $(CHART_DIR) $${v:+-f $$v}"; \
			$$h lint --strict --quiet $(CHART_DIR) --kube-version $(K8S_VERSION) $${v:+-f $$v} >/dev/null || \
				$$h lint --strict $(CHART_DIR) --kube-version $(K8S_VERSION) $${v:+-f $$v}; \
		done; \
	done
