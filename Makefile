# carpkv build, test and run targets. `make help` lists them.
SHELL := /bin/bash
GO ?= go
BIN := bin
TOOLS := $(CURDIR)/.tools
STATICCHECK_VERSION := v0.8.2
export CGO_ENABLED ?= 0

.PHONY: help build test bench run down lint clean carp-report carp-docs tools single-cluster multi-cluster chaos chaos-clean bench-compare bench-tools bench-reshard bench-logstore bench-bulk

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build bin/carpkv-agent and bin/carpkvctl (static)
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/carpkv-agent ./agent
	$(GO) build -o $(BIN)/carpkvctl ./ctl
	$(GO) build -o $(BIN)/ ./carp/cmd/carp-report

test: ## unit and integration tests, race detector on (main module and bench/)
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m ./...
	cd bench && CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 10m ./...

# The chaos suite (chaos/, docs/testing.md): needs root, Docker and iptables.
# Without SEED it runs the CI seeds (chaos.CISeeds): one round of every
# fault kind each (ring changes included), every variant over the three,
# and the regression scenarios (TestChaos*). SEED=… DURATION=… (a Go
# duration) runs a soak; FAULTS=kind,kind narrows the faults; RAPID=1 does
# not wait for recovery between faults. Results (summary; on failure also
# the history, porcupine's HTML and every agent's log) go to CHAOS_RESULTS.
CHAOS_RESULTS ?= $(CURDIR)/chaos-results
CHAOS_TIMEOUT ?= 6h

chaos: ## fault-injection suite: Docker cluster, nemesis, linearizability check (SEED= DURATION= FAULTS= RAPID=1)
	@# The suite cleans up after itself, on signals too; the trap also
	@# sweeps what a killed test binary left (runs in progress are kept).
	trap '$(GO) run ./chaos/cmd/carpkv-chaos clean >/dev/null' EXIT; \
	CARPKV_CHAOS=1 CARPKV_CHAOS_SEEDS="$(SEED)" \
	  CARPKV_CHAOS_DURATION="$(DURATION)" CARPKV_CHAOS_FAULTS="$(FAULTS)" CARPKV_CHAOS_RAPID="$(RAPID)" \
	  CARPKV_CHAOS_RESULTS="$(CHAOS_RESULTS)" \
	  $(GO) test -count=1 -v -timeout $(CHAOS_TIMEOUT) -run '$(if $(SEED),^TestChaos$$,^TestChaos)' ./chaos/

bench-failover: ## how long a group goes without acknowledged writes when its leader freezes, dies or is cut off, with kvclient's liveness pings and without (FAILOVER_ROUNDS=5)
	mkdir -p $(CHAOS_RESULTS); trap '$(GO) run ./chaos/cmd/carpkv-chaos clean >/dev/null' EXIT; \
	for liveness in default off; do \
	  CARPKV_CHAOS=1 CARPKV_CHAOS_RESULTS="$(CHAOS_RESULTS)" CHAOS_GAP_ROUNDS=$(FAILOVER_ROUNDS) \
	    CHAOS_GAP_LIVENESS=$$( [ $$liveness = off ] && echo off ) CHAOS_GAP_JSON=$(CHAOS_RESULTS)/failover-$$liveness.json \
	    $(GO) test -count=1 -v -timeout 1h -run '^TestChaosLeaderFaultGaps$$' ./chaos/ || exit 1; \
	done
FAILOVER_ROUNDS ?= 5

chaos-clean: ## remove every container, network, iptables chain and image of chaos runs
	$(GO) run ./chaos/cmd/carpkv-chaos clean --all

bench: ## ring benchmarks: Owner cost, balance, movement (go test -bench)
	$(GO) test -run '^$$' -bench . -benchmem ./carp/...

# carpkv against etcd (docs/benchmarks.md). The etcd server and the etcd
# client live in the separate module bench/, so the main module does not
# depend on them; etcd's own benchmark tool, which every run also drives
# etcd with, in its own small module bench/etcdtool. BENCH_FLAGS passes flags to `bench-compare run`, e.g.
# BENCH_FLAGS="-reps 1 -duration 2s -only writes".
BENCH_FLAGS ?=
bench-tools: build ## build bin/etcd (pinned in bench/go.mod), bin/etcd-benchmark (etcd's own tool, bench/etcdtool) and bin/bench-compare
	cd bench && $(GO) build -o ../$(BIN)/etcd ./cmd/etcd && $(GO) build -o ../$(BIN)/bench-compare ./cmd/bench-compare
	cd bench/etcdtool && $(GO) build -o ../../$(BIN)/etcd-benchmark .

bench-compare: bench-tools ## carpkv vs etcd side by side, etcd also under its own benchmark tool (~10 min): writes docs/benchmarks.md and docs/bench/*.png
	$(BIN)/bench-compare run -bin $(BIN) -work .bench -doc docs/benchmarks.md -plots docs/bench $(BENCH_FLAGS)

bench-logstore: bench-tools ## the two Raft log stores (--raft-log-store bolt|wal) side by side (~8 min): writes/s, p99, CPU and disk per write, log size after a burst, recovery after kill -9
	$(BIN)/bench-compare stores -bin $(BIN) -work .bench/stores -doc docs/benchmarks.md -json docs/bench/logstores.json $(LOGSTORE_FLAGS)

# Bulk writes and reads (issue 14; docs/benchmarks.md, "Bulk writes and
# reads"): MultiPut then MultiGet of every key of a fresh local 3×3 cluster,
# three times, and one Put per key beside it. BULK_FLAGS passes flags to
# `bench-compare bulk`, e.g. BULK_FLAGS="-keys 200000 -reps 1".
BULK_FLAGS ?=
bench-bulk: bench-tools ## MultiPut and MultiGet of 1,000,000 keys of 256 bytes on a local 3×3 cluster, one Put per key beside it (~2 min): keys/s, MB/s (BULK_FLAGS=)
	$(BIN)/bench-compare bulk -bin $(BIN) -work .bench/bulk -doc docs/benchmarks.md -json docs/bench/bulk.json $(BULK_FLAGS)

# A ring change under load (issue 11; docs/benchmarks.md, "Ring changes"):
# a fresh local 3×3 cluster with RESHARD_KEYS keys, 100 clients 90/10, add
# g4 then remove g1. RESHARD_FLAGS passes more flags to `bench-reshard run`,
# e.g. RESHARD_KEYS=200000 RESHARD_FLAGS="-steady 20s".
RESHARD_KEYS ?= 1000000
RESHARD_FLAGS ?=
bench-reshard: build ## a group added then removed under a 100-client load: keys moved, unavailability, p99, rate (RESHARD_KEYS= RESHARD_FLAGS=)
	cd bench && $(GO) build -o ../$(BIN)/bench-reshard ./cmd/bench-reshard
	BENCH_RESHARD_VIA='make bench-reshard RESHARD_KEYS=$(RESHARD_KEYS)$(if $(RESHARD_FLAGS), RESHARD_FLAGS="$(RESHARD_FLAGS)")' \
	  $(BIN)/bench-reshard run -bin $(BIN) -work .bench/reshard -keys $(RESHARD_KEYS) \
	  -doc docs/benchmarks.md -plot docs/bench/reshard.png -json docs/bench/reshard.json $(RESHARD_FLAGS)

carp-report: ## CARP balance/weights/movement report, 1e6 keys, vs ketama and jump
	$(GO) run ./carp/cmd/carp-report

carp-docs: ## regenerate docs/carp/report.md and docs/carp/load.png
	$(GO) run ./carp/cmd/carp-report -markdown docs/carp/report.md -plot docs/carp/load.png

single-cluster: build ## one 3-agent group from the shell: write, kill the leader, read (scripts/test-single-cluster.sh)
	./scripts/test-single-cluster.sh

run: build ## start a local cluster of 3 groups × 3 agents and run the demo (stop it: make down)
	$(BIN)/carpkvctl local up --groups 3 --replicas 3 --fresh
	$(BIN)/carpkvctl demo

down: ## stop the local cluster of make run (its data is kept; bin/carpkvctl local down --purge deletes it)
	$(BIN)/carpkvctl local down

multi-cluster: build ## 3 groups × 3 agents from the shell: write, ring, status, kill a leader, read (scripts/test-multiple-clusters.sh)
	./scripts/test-multiple-clusters.sh

tools: $(TOOLS)/staticcheck

$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint: tools ## gofmt, go vet, staticcheck (main module and bench/)
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(TOOLS)/staticcheck ./...
	cd bench && $(GO) vet ./... && $(TOOLS)/staticcheck ./...
	cd bench/etcdtool && $(GO) vet ./...

clean: ## remove build outputs and tools
	rm -rf $(BIN) $(TOOLS) .bench

# --- Deployment (terraform/, systemd/, ansible/; docs/deploy.md) -----------
.PHONY: deploy-deps deploy-check deploy-image deploy-test deploy-clean
# The machine's terraform when there is one, else OpenTofu built from the Go
# module proxy into .tools/.
OPENTOFU_VERSION := v1.10.10
TF := $(or $(shell command -v terraform 2>/dev/null),$(TOOLS)/tofu)
DEPLOY_TIMEOUT ?= 30m
# Debian packages the deployment checks and test use.
DEPLOY_PACKAGES := ansible ansible-lint debootstrap jq curl python3 shellcheck

$(TOOLS)/tofu:
	GOBIN=$(TOOLS) $(GO) install github.com/opentofu/opentofu/cmd/tofu@$(OPENTOFU_VERSION)

deploy-deps: $(TF) ## install Ansible, ansible-lint, debootstrap, jq, shellcheck (Debian) and tofu if there is no terraform
	@missing=$$(for p in $(DEPLOY_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "installing $$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  fi

deploy-check: build deploy-deps ## static deployment checks: terraform fmt/test, ansible-lint/syntax, systemd-analyze verify, shellcheck
	TF=$(TF) ./deploy/check.sh

deploy-image: deploy-deps ## build (or reuse the cached) Debian 12 systemd image for the deployment test
	@docker info >/dev/null 2>&1 || { echo "deploy: the Docker engine is not reachable" >&2; exit 1; }
	./deploy/image.sh

deploy-test: deploy-check deploy-image ## the deployment end to end on systemd containers as VMs (time-bounded)
	TF=$(TF) timeout --foreground -k 30s $(DEPLOY_TIMEOUT) ./deploy/e2e.sh

deploy-clean: ## remove containers and networks left by interrupted deployment tests
	docker ps -aq --filter label=carpkv-deploy-test | xargs -r docker rm -f -v
	docker network ls -q --filter label=carpkv-deploy-test | xargs -r docker network rm
