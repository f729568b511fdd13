# tapswitch. `make demo` and `make test` do all the set-up a fresh machine
# needs (Go comes from /usr/local/go; modules from the Go module proxy).
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin
GO       ?= go
BIN      := bin
PKGS     := ./...
# Per-package fuzz targets, run for FUZZTIME each by `make fuzz`.
FUZZTIME ?= 10s
FUZZ     := \
	./switch:FuzzReceive \
	./switch:FuzzCheckVnetHdr \
	./arp:FuzzHandle \
	./arp:FuzzParseNDP \
	./sim:FuzzParseScenario \
	./sim:FuzzSweepArgs \
	./cmd/internal/simreal:FuzzCheck \
	./cmd/internal/config:FuzzParse \
	./cmd/internal/api:FuzzDecodeBody \
	./cmd/internal/daemon:FuzzCheckPodSpec \
	./internal/crashpoint:FuzzParse \
	./cmd/internal/daemon:FuzzParseMark \
	./cmd/internal/hostnat:FuzzParseComment \
	./netns:FuzzParse \
	./netns:FuzzCheckIfName

# The CNI plugins tapswitch-cni delegates to (host-local IPAM) and that a
# runtime runs beside it (loopback for every sandbox, portmap chained in the
# conflist), built from containernetworking/plugins into a project-local
# directory the tests use. Static, as in the image.
CNI_PLUGINS_VERSION ?= v1.9.1
CNI_BIN  := $(BIN)/cni

# The node image deploy/daemonset.yaml runs (internal/ociimage.NodeImage),
# written as an image tarball by `make image`, without a container engine.
IMAGE     := ghcr.io/tapswitch/tapswitch:dev
IMAGE_TAR := $(BIN)/tapswitch-image.tar

# The real-runtime test's tools: crictl from cri-tools; containerd and runc
# come from Debian (make cri-tools, as root).
CRICTL_VERSION ?= v1.37.0

# SOAK is how long `make soak` runs mixed traffic with pod churn (root).
SOAK     ?= 10m

.PHONY: all help build test test-short lint bench fuzz demo sim clean cni-plugins soak test-tools iperf3 image cri-tools cnicompat crash

all: build

help:
	@echo 'make demo        three pods on a tapswitch, as root'
	@echo 'make test        gofmt, go vet and every test with -race (root tests as root, e2e/cri included)'
	@echo 'make test-short  the tests that need no root'
	@echo 'make build       the binaries into bin/'
	@echo 'make image       the node image as $(IMAGE_TAR) ($(IMAGE)), without docker'
	@echo 'make cni-plugins host-local, loopback and portmap into $(CNI_BIN)'
	@echo 'make cri-tools   containerd, runc (Debian) and crictl for e2e/cri'
	@echo 'make cnicompat   the conflist through containerd 1.6'"'"'s CNI library'
	@echo 'make sim | bench | fuzz | lint | soak | ovs | iperf3 | clean'

build:
	$(GO) build -o $(BIN)/ ./cmd/...
	$(GO) build -tags nolab -o $(BIN)/tapswitch-node ./cmd/tapswitch

# The whole suite, root tests included (they skip, saying so, when not root).
# As root it also installs iperf3, for the bench's cross-check test, and
# containerd, runc and crictl for the real-runtime test (e2e/cri), which
# runs the image `make image` built. Then the CNI compatibility check
# against the library containerd 1.6 uses (e2e/cnicompat, its own module).
# e2e/cri runs on its own after the rest, so that containerd's CPU does not
# starve the timing-sensitive hostile and benchmark tests of a 2-core runner.
test: lint cni-plugins test-tools image
	TAPSWITCH_CNI_BIN=$(abspath $(CNI_BIN)) \
		$(GO) test -race -timeout 20m -count=1 $$($(GO) list $(PKGS) | grep -v /tapswitch/e2e/)
	TAPSWITCH_CNI_BIN=$(abspath $(CNI_BIN)) TAPSWITCH_IMAGE=$(abspath $(IMAGE_TAR)) \
		$(GO) test -race -timeout 5m -count=1 ./e2e/...
	$(MAKE) --no-print-directory cnicompat

# The shipped conflist and the plugin's results read by the CNI library
# containerd 1.6 vendors (github.com/containernetworking/cni v1.1.1).
cnicompat: cni-plugins
	cd e2e/cnicompat && TAPSWITCH_CNI_BIN=$(abspath $(CNI_BIN)) $(GO) test -count=1 ./...

# What root tests need from Debian: iperf3 (TestIperf3), containerd and
# runc (e2e/cri); and crictl. Not root: nothing to install, the tests that
# need them skip.
test-tools:
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory iperf3 cri-tools; fi

# containerd and runc (Debian/Ubuntu) when missing, and crictl into
# $(HOME)/go/bin. The packaged containerd service is not used: the test
# starts its own containerd with its own root, state and socket.
cri-tools:
	@command -v containerd >/dev/null && command -v runc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd runc >/dev/null; }
	@command -v crictl >/dev/null || $(GO) install sigs.k8s.io/cri-tools/cmd/crictl@$(CRICTL_VERSION)
	@containerd --version; crictl --version

# The node image as an image tarball, no docker needed: static binaries on
# an empty base (internal/imagebuild). Load it on a node with
# `ctr -n k8s.io images import $(IMAGE_TAR)`.
image:
	$(GO) run ./internal/imagebuild -o $(IMAGE_TAR) -name $(IMAGE) -cni-plugins $(CNI_PLUGINS_VERSION)

# iperf3 for `tapswitch bench --iperf3` (Debian/Ubuntu), installed when
# missing; the package's own server is not started.
iperf3:
	@command -v iperf3 >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null; }
	@iperf3 --version | head -1

cni-plugins:
	CGO_ENABLED=0 GOBIN=$(abspath $(CNI_BIN)) $(GO) install \
		github.com/containernetworking/plugins/plugins/ipam/host-local@$(CNI_PLUGINS_VERSION) \
		github.com/containernetworking/plugins/plugins/main/loopback@$(CNI_PLUGINS_VERSION) \
		github.com/containernetworking/plugins/plugins/meta/portmap@$(CNI_PLUGINS_VERSION)

# Without root-only and long tests.
test-short: lint
	$(GO) test -short -race -count=1 $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags nolab ./cmd/tapswitch
	cd e2e/cnicompat && $(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./fdb ./switch ./sim ./bench

fuzz:
	@set -e; for t in $(FUZZ); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
		.ci/fuzz-one $$pkg $$fn $(FUZZTIME); \
	done

# The README's first command: three pods on a tapswitch, as root.
demo: build
	$(BIN)/tapswitch demo

# The simulator's default scenario: no root needed.
sim: build
	$(BIN)/tapswitch sim

clean:
	rm -rf $(BIN)

# Mixed traffic with pods added and removed every second for SOAK, sampling
# goroutines, fds, heap and RSS (a 15 s version runs in `make test`).
soak:
	TAPSWITCH_SOAK=$(SOAK) $(GO) test -run '^TestSoak$$' -count=1 -timeout 0 -v ./cmd/internal/e2e/soak

# CRASHES is how many times `make crash` kills the daemon inside a pod add
# or delete (root); `make test` runs TestCrashInjection with 20.
CRASHES  ?= 200

# The daemon killed at seeded random steps of pod add and delete, restarted,
# and checked each time (docs/operations.md); TAPSWITCH_CRASH_SEED=N repeats
# a run.
crash:
	TAPSWITCH_CRASHES=$(CRASHES) $(GO) test -race -run '^TestCrashInjection$$' -count=1 -timeout 0 -v ./cmd/internal/daemon

# Open vSwitch for `tapswitch bench --with-ovs` (root, Debian/Ubuntu):
# installed when missing, its daemons started when not running. The bench
# uses only its userspace datapath, so no kernel module is needed; ovs-ctl
# warns when it cannot load one and carries on.
.PHONY: ovs
ovs:
	@command -v ovs-vswitchd >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y openvswitch-switch; }
	@if ovs-appctl -t ovs-vswitchd version >/dev/null 2>&1; then echo "ovs-vswitchd running"; \
	else /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random; fi
