# syntax=docker/dockerfile:1
#
# The macguard installer image, for people with Docker:
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=v0.1.0 --build-arg COMMIT=$(git rev-parse --short HEAD) \
#     -t ghcr.io/macguard-cni/macguard:v0.1.0 .
#
# (`make image-docker` runs that.) It builds the same image as `make image`,
# which needs no Docker daemon (hack/image): FROM scratch, the static plugin
# at /macguard and the static macguardctl at /macguardctl, entrypoint
# `/macguardctl install` (which copies /macguard to the node), the same labels.
# hack/image/image_test.go keeps this file and hack/image in step.

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS TARGETARCH
ARG VERSION=v0.1.0
ARG COMMIT=unknown
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY pkg/ pkg/
COPY plugins/ plugins/
COPY cmd/ cmd/
# The Makefile's GOBUILD, cross-compiled for the target platform.
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath \
    -ldflags "-s -w -X github.com/macguard-cni/macguard/pkg/buildinfo.Version=${VERSION} -X github.com/macguard-cni/macguard/pkg/buildinfo.Commit=${COMMIT}" \
    -o /out/ ./plugins/meta/macguard ./cmd/macguardctl

FROM scratch
ARG VERSION=v0.1.0
ARG COMMIT=unknown
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.source="https://github.com/macguard-cni/macguard" \
      org.opencontainers.image.title="macguard" \
      org.opencontainers.image.description="Installs the macguard chained CNI plugin on a node (binary and conflist entry)"
COPY --from=build --chmod=0755 /out/macguard /macguard
COPY --from=build --chmod=0755 /out/macguardctl /macguardctl
ENTRYPOINT ["/macguardctl", "install"]
