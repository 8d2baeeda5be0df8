# make bench: ADD/CHECK/DEL latency, peak RSS and scaling of macguard
# against the reference tuning plugin and against chains with no
# meta-plugin, through libcni in network namespaces the bench creates and
# removes (root), plus the Go micro-benchmarks. See docs/performance.md.
#
# Not in TEST_TARGETS on purpose: it measures, it does not pass or fail a
# change, and it wants a machine as quiet as can be had.
#
#   sudo make bench                      # the full run, ~25 minutes with the node
#   sudo make bench BENCH_ARGS=-quick    # seconds: a smoke test of the harness
#   sudo make bench BENCH_NODE=0         # without the real node's section
#
# The real node's section (bench-node) starts a one-node Kubernetes: where
# others share the machine, run it under their lock
# (flock /tmp/macguard-heavy.lock make bench).

BENCH_DIR         := $(CACHE_DIR)/bench
BENCH_PLUGIN_DIR  := $(BENCH_DIR)/plugins
BENCH_OUT         := bench
BENCH_ARGS        ?=
# How the run was started, as the report records it: a command that
# repeats the run when pasted (BENCH_ARGS= spelled out, quoted when it holds
# more than one word; nothing after "make bench" when it is empty).
BENCH_COMMAND      = make bench$(if $(strip $(BENCH_ARGS)), BENCH_ARGS=$(if $(word 2,$(BENCH_ARGS)),"$(strip $(BENCH_ARGS))",$(strip $(BENCH_ARGS))))
# The reference plugins, pinned. They get their own directory: other
# targets install tools into $(TOOLS_DIR) concurrently.
BENCH_CNI_MODULE  := github.com/containernetworking/plugins
BENCH_CNI_VERSION := v1.9.1
BENCH_REF_PLUGINS := main/macvlan main/ptp main/bridge meta/tuning ipam/host-local
# Built like bin/macguard, so binary sizes compare like with like.
BENCH_BUILDFLAGS  := -trimpath -ldflags='-s -w'

.PHONY: bench bench-tools bench-webhook bench-node

bench: build bench-tools
	hack/require-root.sh
	@mkdir -p $(BENCH_OUT)
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/... | tee $(BENCH_OUT)/micro.txt
	$(BENCH_DIR)/bench -macguard $(BIN_DIR)/macguard -plugins $(BENCH_PLUGIN_DIR) -rssprobe $(BENCH_DIR)/rssprobe \
		-micro $(BENCH_OUT)/micro.txt -out $(BENCH_OUT) -command '$(BENCH_COMMAND)' $(BENCH_ARGS)
	$(MAKE) --no-print-directory bench-webhook
	$(if $(filter 1,$(BENCH_NODE)),$(MAKE) --no-print-directory bench-node)

# The real node (issue 22): test/k8s TestSandboxCost on the node of make
# k8s-up (brought up and taken down here if none runs): containerd's
# RunPodSandbox time for macvlan alone / + tuning / + macguard and the
# primary with and without macguard's pass-through, 1 and
# BENCH_NODE_INFLIGHT pods in flight, interleaved; then macguardctl doctor
# on the node with 110 pods. Writes $(BENCH_OUT)/node.md; about 15 minutes.
# BENCH_NODE_IDLE=10m adds the agent's CPU and RSS over that idle time.
# docs/performance.md.
BENCH_NODE          ?= 1
BENCH_NODE_ROUNDS1  ?= 20
BENCH_NODE_ROUNDS20 ?= 3
BENCH_NODE_INFLIGHT ?= 20
BENCH_NODE_IDLE     ?=
bench-node: build image k8s-deps k8s-images bench-tools
	@mkdir -p $(BENCH_OUT)
	$(GO) test -c -o $(K8S_CACHE)/k8s.test ./test/k8s
	$(K8S_SUITE_ENV) K8S_RUN_TESTS='^TestSandboxCost$$' K8S_TEST_TIMEOUT=90m MACGUARD_BENCH_NODE=1 \
	MACGUARD_RSSPROBE=$(CURDIR)/$(BENCH_DIR)/rssprobe MACGUARD_BENCH_OUT=$(abspath $(BENCH_OUT)) \
	MACGUARD_BENCH_NODE_ROUNDS1=$(BENCH_NODE_ROUNDS1) MACGUARD_BENCH_NODE_ROUNDS20=$(BENCH_NODE_ROUNDS20) \
	MACGUARD_BENCH_NODE_INFLIGHT=$(BENCH_NODE_INFLIGHT) MACGUARD_BENCH_NODE_IDLE=$(BENCH_NODE_IDLE) \
		hack/k8s/test.sh

# The admission webhook: p50/p99 at a steady rate and its RSS (needs no
# root; bounded by BENCH_WEBHOOK_N requests and 30 s). docs/performance.md.
BENCH_WEBHOOK_RATE ?= 200
BENCH_WEBHOOK_N    ?= 3000
bench-webhook: build
	@mkdir -p $(BENCH_DIR) $(BENCH_OUT)
	$(GO) build -o $(BENCH_DIR)/webhook-bench ./test/bench/webhook
	$(BENCH_DIR)/webhook-bench -macguardctl $(BIN_DIR)/macguardctl -rate $(BENCH_WEBHOOK_RATE) -n $(BENCH_WEBHOOK_N) \
		-max-time 30s -out $(BENCH_OUT)

bench-tools:
	@mkdir -p $(BENCH_PLUGIN_DIR)
	GOBIN=$(CURDIR)/$(BENCH_PLUGIN_DIR) CGO_ENABLED=0 $(GO) install $(BENCH_BUILDFLAGS) \
		$(foreach p,$(BENCH_REF_PLUGINS),$(BENCH_CNI_MODULE)/plugins/$(p)@$(BENCH_CNI_VERSION))
	CGO_ENABLED=0 $(GO) build $(BENCH_BUILDFLAGS) -o $(BENCH_DIR)/rssprobe ./test/bench/rssprobe
	$(GO) build -o $(BENCH_DIR)/bench ./test/bench
