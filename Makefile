# moe-operator: make demo | make test | make bench | make bins | make manifests
# Every target installs what it needs: npm packages (with a pinned Node 24 from
# the `node` package), Go-built control-plane binaries (cached outside the repo
# by their pins), and Debian's prometheus.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

NPM ?= npm
# node_modules/.bin first on PATH: its `node` is the pinned Node 24 (from the
# `node` package), and vitest/eslint/tsc run on it through their shebangs.
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
NODE :=
REPORTS := out/test-reports
PROMETHEUS_BIN ?= /usr/bin/prometheus

.PHONY: help
help: ## Show targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

##@ Dependencies
# `npm install` (not `npm ci`): vite lists an optional Windows-only dependency the
# registry here does not serve, which `npm ci` treats as a lock-file mismatch.
node_modules/.installed: package.json package-lock.json
	$(NPM) install --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: deps
deps: node_modules/.installed ## Install npm dependencies (Node 24 comes with them)

.PHONY: bins
bins: ## Build (or reuse cached) kube-apiserver, scheduler, controller-manager, kubectl, etcd, kwok, LWS controller
	@bash hack/build-bins.sh >/dev/null
	@bash hack/build-lws.sh >/dev/null

.PHONY: prometheus
prometheus: ## Install Debian's prometheus if missing
	@if [ ! -x "$(PROMETHEUS_BIN)" ]; then \
	  echo ">> installing prometheus (Debian package)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] && echo "" || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	fi
	@$(PROMETHEUS_BIN) --version 2>&1 | head -1

##@ Development
.PHONY: manifests
manifests: deps ## Regenerate crds/ from the zod schemas in src/api, and the chart/kustomize copies
	$(NODE) node src/cli/gen-crds.ts
	$(NODE) node hack/sync-packaging.ts

.PHONY: lint
lint: deps ## eslint; prettier --check; fail if crds/ or the chart/kustomize copies are stale; helm lint
	$(NPM) run -s lint
	$(MAKE) --no-print-directory fmt-check
	node src/cli/gen-crds.ts --check
	node hack/sync-packaging.ts --check
	$(MAKE) --no-print-directory helm-lint

.PHONY: helm-lint
helm-lint: deps ## helm lint --strict and helm template of charts/moe-operator
	@HELM="$$(bash hack/helm.sh)"; "$$HELM" lint --strict charts/moe-operator && \
	  "$$HELM" template moe-operator charts/moe-operator -n moe-system >/dev/null && echo "helm template ok"

# Prettier (.prettierrc.json, 120 columns) over the TypeScript, JavaScript and JSON sources;
# generated files are listed in .prettierignore.
PRETTIER_FILES := "**/*.{ts,js,json}"

.PHONY: fmt
fmt: deps ## Format the sources with prettier (120 columns)
	prettier --write --log-level warn $(PRETTIER_FILES)

.PHONY: fmt-check
fmt-check: deps ## Fail if a source file is not formatted (prettier --check)
	prettier --check --log-level warn $(PRETTIER_FILES)

.PHONY: typecheck
typecheck: deps ## tsc --noEmit
	$(NPM) run -s typecheck

.PHONY: build
build: deps ## Compile to dist/
	$(NPM) run -s build

##@ Tests
.PHONY: test-unit
test-unit: deps ## Unit and property tests (pure, no cluster)
	@mkdir -p $(REPORTS)
	$(NODE) vitest run --project unit --reporter=default --reporter=json --outputFile.json=$(REPORTS)/unit.json

.PHONY: test-integration
test-integration: deps bins prometheus ## Integration tests against a real local control plane
	@mkdir -p $(REPORTS)
	$(NODE) vitest run --project integration --reporter=default --reporter=json --outputFile.json=$(REPORTS)/integration.json

.PHONY: test-e2e
test-e2e: deps bins prometheus ## End-to-end tests (control plane + Prometheus + operator)
	@mkdir -p $(REPORTS)
	$(NODE) vitest run --project e2e --passWithNoTests --reporter=default --reporter=json --outputFile.json=$(REPORTS)/e2e.json

.PHONY: test
test: deps ## Everything: lint, types, unit, integration, e2e
	@rm -rf $(REPORTS)
	$(MAKE) --no-print-directory lint typecheck
	$(MAKE) --no-print-directory bins prometheus podman image-for-tests
	@rc=0; \
	$(MAKE) --no-print-directory test-unit || rc=1; \
	$(MAKE) --no-print-directory test-integration || rc=1; \
	$(MAKE) --no-print-directory test-e2e || rc=1; \
	$(NODE) node hack/test-summary.ts $(REPORTS); \
	exit $$rc

##@ Run
.PHONY: demo
demo: deps bins prometheus ## Local cluster with fake GPU nodes (Ctrl-C to stop)
	node src/cli/demo.ts $(DEMO_ARGS)

.PHONY: demo-wideep
demo-wideep: deps bins prometheus ## Wide-EP scenario: EP groups on the real LeaderWorkerSet controller, scaled as whole groups (~7 min)
	node src/cli/demo-wideep.ts $(DEMO_ARGS)

.PHONY: bench
bench: deps ## Benchmarks (short): placement vs EPLB, policies vs oracle and baselines, same process
	node bench/placement/run.ts --quick $(BENCH_ARGS)
	node bench/sim/run.ts --quick $(BENCH_ARGS)

.PHONY: bench-scale
bench-scale: deps bins ## Control-plane scale: 1,000 kwok nodes, 100 MoEDeployments, ~5,100 pods, operator failover (long; --quick via BENCH_SCALE_ARGS)
	node bench/scale/run.ts $(BENCH_SCALE_ARGS)

.PHONY: image
image: deps ## Build the operator image with podman/docker (IMAGE_BASE=local: bases from Debian packages; =registry: the Dockerfile's)
	bash hack/image.sh

# CI (CI=true) installs podman from Debian's packages where no engine is on the machine, and runs it
# with hack/podman/containers.conf (runc, cgroupfs, explicit ulimits: podman's defaults cannot start a
# container on the CI machines here, see docs/adr/0016-container-image.md). Elsewhere both are left to you.
ifeq ($(CI),true)
CONTAINERS_CONF ?= $(CURDIR)/hack/podman/containers.conf
export CONTAINERS_CONF
endif

.PHONY: podman
podman: ## Under CI=true: install Debian's podman (and debootstrap for the local bases) if no container engine is installed
	@if [ "$(CI)" = true ] && ! command -v podman >/dev/null && ! docker info >/dev/null 2>&1; then \
	  echo ">> installing podman (Debian packages)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] && echo "" || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    podman uidmap fuse-overlayfs slirp4netns runc containernetworking-plugins debootstrap >/dev/null \
	    || echo ">> podman could not be installed; tests/integration/image.test.ts will skip"; \
	fi

.PHONY: image-for-tests
image-for-tests: deps ## `make image` where a container engine can run (tests/integration/image.test.ts runs it); else say why (the test skips)
	@ENGINE="$${CONTAINER_ENGINE:-$$(command -v podman >/dev/null && echo podman || echo docker)}"; \
	if WHY="$$($$ENGINE info 2>&1 >/dev/null)"; then bash hack/image.sh; \
	else echo ">> no image built: $$ENGINE cannot run here ($$(echo "$$WHY" | head -1)); tests/integration/image.test.ts will skip"; fi

.PHONY: clean
clean: ## Remove build outputs (not the binary cache)
	rm -rf dist out coverage
