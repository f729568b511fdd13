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
	./cmd/internal/daemon:FuzzCheckPodSpec

# The CNI plugins tapswitch-cni delegates to (host-local IPAM), built from
# containernetworking/plugins into a project-local directory the tests use.
CNI_PLUGINS_VERSION ?= v1.9.1
CNI_BIN  := $(BIN)/cni

# SOAK is how long `make soak` runs mixed traffic with pod churn (root).
SOAK     ?= 10m

.PHONY: all build test test-short lint bench fuzz demo sim clean cni-plugins soak test-tools iperf3

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# The whole suite, root tests included (they skip, saying so, when not root).
# As root it also installs iperf3, for the bench's cross-check test.
test: lint cni-plugins test-tools
	TAPSWITCH_CNI_BIN=$(abspath $(CNI_BIN)) $(GO) test -race -timeout 20m -count=1 $(PKGS)

# What root tests need from Debian: iperf3 (TestIperf3). Not root: nothing
# to install, the tests that need it skip.
test-tools:
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory iperf3; fi

# iperf3 for `tapswitch bench --iperf3` (Debian/Ubuntu), installed when
# missing; the package's own server is not started.
iperf3:
	@command -v iperf3 >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null; }
	@iperf3 --version | head -1

cni-plugins:
	GOBIN=$(abspath $(CNI_BIN)) $(GO) install github.com/containernetworking/plugins/plugins/ipam/host-local@$(CNI_PLUGINS_VERSION)

# Without root-only and long tests.
test-short: lint
	$(GO) test -short -race -count=1 $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./fdb ./switch ./sim ./bench

fuzz:
	@set -e; for t in $(FUZZ); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; \
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
	TAPSWITCH_SOAK=$(SOAK) $(GO) test -run '^TestSoak$$' -count=1 -timeout 0 -v ./cmd/internal/hostile

# Open vSwitch for `tapswitch bench --with-ovs` (root, Debian/Ubuntu):
# installed when missing, its daemons started when not running. The bench
# uses only its userspace datapath, so no kernel module is needed; ovs-ctl
# warns when it cannot load one and carries on.
.PHONY: ovs
ovs:
	@command -v ovs-vswitchd >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y openvswitch-switch; }
	@if ovs-appctl -t ovs-vswitchd version >/dev/null 2>&1; then echo "ovs-vswitchd running"; \
	else /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random; fi
