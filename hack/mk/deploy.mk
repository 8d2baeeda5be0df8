# Deployment (issue 6): the installer image built without a Docker daemon,
# the Kubernetes manifests in deploy/, and their tests. See docs/install.md.
#
#   make image          bin/image/macguard-$(VERSION).oci.tar: an OCI image
#                       index (linux/amd64 + linux/arm64) FROM scratch with the
#                       static plugin and macguardctl, named
#                       $(IMAGE_REPO):$(VERSION), as an oci-archive (+ the layout in .oci.d/);
#                       the one way the project builds its image (no
#                       Dockerfile: see hack/image). With Docker 25+:
#                       docker load -i bin/image/macguard-$(VERSION).oci.tar
#   make test-deploy    manifest tests (strict decoding, kustomize-rendered
#                       overlays run on a fake node, the Helm chart rendered
#                       by Helm 3 and 4 compared with them) and image tests (the
#                       archive read back, its binary run, skopeo's view);
#                       part of `make test`. pkg/ctl/install runs in test-unit.
#   make manifests      write $(VERSION) into deploy/ (the chart's Chart.yaml
#                       too)
#
# Publishing the daemon-less image: skopeo copy --all
#   oci-archive:bin/image/macguard-$(VERSION).oci.tar docker://$(IMAGE_REPO):$(VERSION)

IMAGE_REPO        ?= ghcr.io/macguard-cni/macguard
IMAGE_ARCHES      := amd64 arm64
IMAGE_DIR         := $(BIN_DIR)/image
IMAGE_ARCHIVE     := $(IMAGE_DIR)/macguard-$(VERSION).oci.tar
IMAGE_LAYOUT      := $(IMAGE_DIR)/macguard-$(VERSION).oci.d
# The commit time, so rebuilding a commit gives the same image digest.
IMAGE_CREATED     ?= $(shell git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)
KUSTOMIZE_VERSION := v5.8.2
KUSTOMIZE         := $(CURDIR)/$(TOOLS_DIR)/kustomize-$(KUSTOMIZE_VERSION)/kustomize

.PHONY: image image-binaries test-deploy deploy-deps manifests

# Static binaries per architecture, built like `make build`.
image-binaries:
	@for a in $(IMAGE_ARCHES); do \
		echo "GOOS=linux GOARCH=$$a go build -> $(BIN_DIR)/linux-$$a/{macguard,macguardctl}"; \
		GOOS=linux GOARCH=$$a $(GOBUILD) -o $(BIN_DIR)/linux-$$a/macguard ./plugins/meta/macguard; \
		GOOS=linux GOARCH=$$a $(GOBUILD) -o $(BIN_DIR)/linux-$$a/macguardctl ./cmd/macguardctl; \
	done

image: image-binaries
	$(GO) run ./hack/image --version $(VERSION) --revision $(COMMIT) --created $(IMAGE_CREATED) \
		--repository $(IMAGE_REPO) \
		$(foreach a,$(IMAGE_ARCHES),--binaries linux/$(a)=$(BIN_DIR)/linux-$(a)) \
		--out $(IMAGE_ARCHIVE) --layout $(IMAGE_LAYOUT)

$(KUSTOMIZE):
	@mkdir -p $(dir $@)
	cd / && GOBIN=$(dir $@) GOFLAGS= $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

# skopeo reads the archive independently of go-containerregistry; installed
# from Debian when missing (as root, hack/lib/deb.sh), otherwise that part
# of the test is skipped with a note.
deploy-deps: $(KUSTOMIZE)
	@if ! command -v skopeo >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			bash -c '. hack/lib/errexit.sh; . hack/lib/deb.sh; deb_install skopeo' deploy-deps; \
		else \
			echo "skopeo not installed and not root: the image test skips its independent read"; \
		fi; \
	fi

test-deploy: deploy-deps image helm
	KUSTOMIZE=$(KUSTOMIZE) HELM3=$(HELM3) HELM4=$(HELM4) MACGUARD_IMAGE_ARCHIVE=$(CURDIR)/$(IMAGE_ARCHIVE) MACGUARD_IMAGE_LAYOUT=$(CURDIR)/$(IMAGE_LAYOUT) MACGUARD_IMAGE_VERSION=$(VERSION) \
	MACGUARD_REQUIRE_SKOPEO=$$([ "$$(id -u)" = 0 ] && echo 1) \
		$(GO) test -count=1 ./deploy/... ./hack/image/...

manifests:
	sed -i -E 's|(image: $(IMAGE_REPO)):[^[:space:]]+|\1:$(VERSION)|' deploy/base/daemonset.yaml deploy/components/webhook/webhook.yaml
	sed -i -E 's|^(    newTag: ).*|\1$(VERSION)|' deploy/base/kustomization.yaml
	sed -i -E 's|^version: .*|version: $(patsubst v%,%,$(VERSION))|; s|^appVersion: .*|appVersion: $(VERSION)|' $(CHART_DIR)/Chart.yaml

TEST_TARGETS += test-deploy
