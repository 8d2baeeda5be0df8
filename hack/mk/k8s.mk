# A real one-node Kubernetes (issue 11): etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet, containerd + runc and
# Multus in front of a bridge + host-local primary network, in a network
# and mount namespace of its own; macguard installed by its DaemonSet from
# `make image`. See docs/k8s.md. The Helm chart's scenarios need the
# pinned Helm builds and the charts and images of two versions (k8s-helm).
#
#   make k8s-up      build what is missing (cached under .cache/k8s by
#                    version), start the node, write .cache/k8s/env
#   make k8s-down    stop it by PID; remove its namespaces, devices, mounts
#   make test-k8s    the test/k8s suite against the node (root; part of
#                    `make test`); brings the node up if it is not, and
#                    takes down what it brought up, pass or fail
#
# K8S_RUN_TESTS filters the suite (a -test.run regexp, passed unexpanded so
# that a trailing $ survives make); K8S_KEEP_FAILED=1
# keeps a node whose start failed, for its logs.

K8S_VERSION          := v1.34.2
K8S_MULTUS_VERSION   := v4.1.4
K8S_CNI_VERSION      := v1.9.1
K8S_CNI_PLUGINS      := main/loopback main/bridge main/macvlan main/host-device ipam/host-local
# Debian bookworm's etcd-server, unpacked (not installed): its version is
# part of the cache key and what apt-get download asks for.
K8S_ETCD_DEB_VERSION := 3.4.23-4+b4
# Debian bookworm's containerd and runc, installed (hack/k8s/build.sh) and
# checked by hack/k8s/up.sh.
K8S_CONTAINERD_DEB_VERSION := 1.6.20~ds1-1+deb12u3
K8S_RUNC_DEB_VERSION       := 1.1.5+ds1-1+deb12u1
K8S_CACHE            := $(CURDIR)/$(CACHE_DIR)/k8s
K8S_ENV_FILE         := $(K8S_CACHE)/env
K8S_PAUSE_IMAGE      := localhost/macguard-k8s/pause:v1
K8S_PAUSE_ARCHIVE    := $(K8S_CACHE)/images/pause.oci.tar
K8S_RUN_TESTS        ?=
# The operator's tool (the suite predicts MACs with its `mac` command).
K8S_MACGUARDCTL       = $(CURDIR)/$(BIN_DIR)/macguardctl

K8S_ENV = K8S_CACHE=$(K8S_CACHE) K8S_VERSION=$(K8S_VERSION) MULTUS_VERSION=$(K8S_MULTUS_VERSION) \
	CNI_PLUGINS_VERSION=$(K8S_CNI_VERSION) K8S_CNI_PLUGINS='$(K8S_CNI_PLUGINS)' \
	ETCD_DEB_VERSION=$(K8S_ETCD_DEB_VERSION) GO=$(GO) \
	CONTAINERD_DEB_VERSION='$(K8S_CONTAINERD_DEB_VERSION)' RUNC_DEB_VERSION='$(K8S_RUNC_DEB_VERSION)' \
	K8S_CNI_PLUGIN_DIR=$(K8S_CACHE)/bin/cni-plugins-$(K8S_CNI_VERSION)-$(shell echo '$(K8S_CNI_PLUGINS)' | cksum | cut -d' ' -f1) \
	PAUSE_IMAGE=$(K8S_PAUSE_IMAGE) PAUSE_ARCHIVE=$(K8S_PAUSE_ARCHIVE) \
	MACGUARD_IMAGE=$(IMAGE_REPO):$(VERSION) MACGUARD_IMAGE_ARCHIVE=$(CURDIR)/$(IMAGE_ARCHIVE) \
	K8S_ENV_FILE=$(K8S_ENV_FILE)

.PHONY: k8s-deps k8s-images k8s-up k8s-down test-k8s

# Everything the node runs, built or installed once per version.
k8s-deps:
	hack/require-root.sh
	$(K8S_ENV) hack/k8s/build.sh all

# The pause image from hack/k8s/pause; go's cache makes the rebuild cheap.
k8s-images:
	@mkdir -p $(K8S_CACHE)/images
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(K8S_CACHE)/images/pause ./hack/k8s/pause
	$(GO) run ./hack/k8s/ociimage --name $(K8S_PAUSE_IMAGE) --binary $(K8S_CACHE)/images/pause --path /pause --out $(K8S_PAUSE_ARCHIVE)

k8s-up: build image k8s-deps k8s-images
	$(K8S_ENV) hack/k8s/up.sh

k8s-down:
	hack/require-root.sh
	$(K8S_ENV) hack/k8s/down.sh

# The Helm scenarios (test/k8s/helm_test.go) upgrade from the chart and
# image of VERSION to those of K8S_NEXT_VERSION, built here (the image for
# the node's architecture only).
K8S_NEXT_VERSION     := $(VERSION)-next
K8S_NEXT_ARCHIVE     := $(CURDIR)/$(IMAGE_DIR)/macguard-$(K8S_NEXT_VERSION).oci.tar
.PHONY: k8s-helm
k8s-helm: helm chart
	$(MAKE) --no-print-directory image chart VERSION=$(K8S_NEXT_VERSION) IMAGE_ARCHES=$(shell $(GO) env GOARCH)

test-k8s: build image k8s-deps k8s-images k8s-helm
	$(GO) test -c -o $(K8S_CACHE)/k8s.test ./test/k8s
	$(K8S_ENV) K8S_TEST_BIN=$(K8S_CACHE)/k8s.test K8S_RUN_TESTS='$(value K8S_RUN_TESTS)' \
	MACGUARDCTL_BIN=$(K8S_MACGUARDCTL) REPO_ROOT=$(CURDIR) \
	K8S_HELM3=$(HELM3) K8S_HELM4=$(HELM4) MACGUARD_CHART=$(CURDIR)/$(CHART_PACKAGE) \
	MACGUARD_NEXT_CHART=$(CURDIR)/$(CHART_OUT)/macguard-$(patsubst v%,%,$(K8S_NEXT_VERSION)).tgz \
	MACGUARD_NEXT_IMAGE=$(IMAGE_REPO):$(K8S_NEXT_VERSION) MACGUARD_NEXT_IMAGE_ARCHIVE=$(K8S_NEXT_ARCHIVE) \
		hack/k8s/test.sh

TEST_TARGETS += test-k8s
