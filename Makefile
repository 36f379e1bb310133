# cardplane — see README.md. `make help` lists the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
export GOTOOLCHAIN := local

BIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(BIN)/controller-gen
HELM ?= $(BIN)/helm
CHART ?= charts/cardplane
# Where `make chart-package` writes the chart archive (dist/ is git-ignored), its version (Chart.yaml's unless
# set) and the OCI registry `make chart-push` pushes it to (CHART_PUSH_FLAGS=--plain-http for a local one).
CHART_DIST ?= $(CURDIR)/dist
CHART_NAME = $(shell sed -n 's/^name: *//p' $(CHART)/Chart.yaml)
CHART_VERSION ?= $(shell sed -n 's/^version: *//p' $(CHART)/Chart.yaml)
CHART_REGISTRY ?=
CHART_PUSH_FLAGS ?=
GO_TEST_FLAGS ?= -count=1 -timeout=25m
OCIIMAGE ?= $(BIN)/ociimage
GOLANGCI_LINT ?= $(BIN)/golangci-lint
# The container image, built without a container engine (hack/tools/ociimage): the static binary (-tags nodev:
# no embedded control plane) on an empty base, as an OCI layout and a `docker load` tarball.
IMAGE ?= cardplane:dev
IMAGE_PLATFORMS ?= linux/amd64
IMAGE_DIR ?= $(CURDIR)/.cache/image
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and RBAC from the API types and kubebuilder markers.
	$(CONTROLLER_GEN) rbac:roleName=cardplane-manager crd paths="./..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: generate
generate: controller-gen ## Generate deepcopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## Run gofmt.
	gofmt -l -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint (.golangci.yml: the dependency rules, funlen, the Kube API Linter, ...) on every module.
	$(GOLANGCI_LINT) run ./...
	cd hack/tools && $(GOLANGCI_LINT) run ./...
	cd hack/lint && $(GOLANGCI_LINT) run ./...

$(GOLANGCI_LINT): hack/lint/go.mod hack/lint/main.go
	cd hack/lint && go build -o $(GOLANGCI_LINT) .

.PHONY: verify
verify: manifests generate chart ## Fail when generated files are stale or gofmt/go vet complain.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed on: $$out"; exit 1; fi
	go vet ./...
	cd hack/tools && go vet ./ociimage/ ./alerts/
	@if [ -n "$$(git status --porcelain -- api config charts)" ]; then \
	  echo "generated files are stale; run 'make manifests generate chart' and commit:"; git status --porcelain -- api config charts; git --no-pager diff --stat -- api config charts; exit 1; fi

.PHONY: control-plane
control-plane: ## Build kube-apiserver, etcd, kubectl, kube-controller-manager and kube-scheduler from Go modules into the cache (once).
	hack/control-plane.sh

.PHONY: test
test: control-plane $(HELM) $(OCIIMAGE) ## Run unit and integration tests against a real kube-apiserver and etcd.
	cd hack/tools && go test -count=1 ./ociimage/ ./alerts/
	@# test/node runs a cluster and pods of its own: alone, so that it and the chaos tests do not starve each other.
	HELM=$(HELM) OCIIMAGE=$(OCIIMAGE) KUBEBUILDER_ASSETS="$$(hack/control-plane.sh)" go test $(GO_TEST_FLAGS) $$(go list ./... | grep -v /test/node)
	HELM=$(HELM) OCIIMAGE=$(OCIIMAGE) KUBEBUILDER_ASSETS="$$(hack/control-plane.sh)" go test $(GO_TEST_FLAGS) ./test/node/

FUZZTIME ?= 10s

CHAOS_OUTAGE ?= 60s

.PHONY: test-chaos
test-chaos: control-plane ## Run the full chaos suite (60 s API-server outage, 10 000 callbacks, 10 min destination outage; make test runs short ones).
	CHAOS_OUTAGE=$(CHAOS_OUTAGE) CHAOS_CALLBACKS=10000 CHAOS_DESTINATION_OUTAGE=10m CHAOS_CENSUS_SCALE=10 KUBEBUILDER_ASSETS="$$(hack/control-plane.sh)" go test -count=1 -v -timeout=40m ./test/chaos/

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (CI runs them briefly; crashers go to testdata/fuzz).
	@for pkg in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for target in $$(grep -h '^func Fuzz' $$pkg/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
	    echo "fuzz $$pkg $$target ($(FUZZTIME))"; \
	    go test -run='^$$' -fuzz="^$$target\$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

##@ Helm chart

.PHONY: chart
chart: chart-crds chart-rbac chart-docs ## Regenerate the generated parts of charts/cardplane (make verify checks them).

.PHONY: chart-crds
chart-crds: manifests ## Copy the generated CRDs into charts/cardplane/files/crds (templates/crds.yaml installs and upgrades them).
	@# crds/ is removed too: Helm would install CRDs found there once and never upgrade them.
	rm -rf $(CHART)/crds $(CHART)/files/crds
	mkdir -p $(CHART)/files/crds
	cp config/crd/bases/*.yaml $(CHART)/files/crds/

.PHONY: chart-rbac
chart-rbac: manifests ## Copy config/rbac/role.yaml into the chart; its ClusterRole takes the rules from there.
	cp config/rbac/role.yaml $(CHART)/files/role.yaml

.PHONY: chart-docs
chart-docs: ## Write the values table of charts/cardplane/README.md from the comments in values.yaml.
	go run ./hack/chart-docs $(CHART)

.PHONY: chart-lint
chart-lint: $(HELM) ## Lint charts/cardplane with helm.
	$(HELM) lint --strict $(CHART)

.PHONY: chart-package
chart-package: $(HELM) ## Lint and package charts/cardplane into $(CHART_DIST)/cardplane-$(CHART_VERSION).tgz.
	$(HELM) lint --strict $(CHART)
	$(HELM) package $(CHART) --destination $(CHART_DIST) --version $(CHART_VERSION)

.PHONY: chart-push
chart-push: chart-package ## Push the packaged chart as an OCI artifact: make chart-push CHART_REGISTRY=oci://registry.example.com/charts
	@if [ -z "$(CHART_REGISTRY)" ]; then echo "set CHART_REGISTRY, e.g. make chart-push CHART_REGISTRY=oci://registry.example.com/charts"; exit 1; fi
	$(HELM) push $(CHART_DIST)/$(CHART_NAME)-$(CHART_VERSION).tgz $(CHART_REGISTRY) $(CHART_PUSH_FLAGS)

##@ Run

.PHONY: demo
demo: control-plane build ## Run cardplane on an embedded local control plane with the samples loaded.
	$(BIN)/cardplane dev --assets "$$(hack/control-plane.sh)"

.PHONY: run
run: manifests ## Run the manager against the cluster in the current kubeconfig.
	go run ./cmd/cardplane manager --webhook-plain-http --webhook-bind-address=127.0.0.1:9443 --spool-dir=$(CURDIR)/.cache/spool

##@ Build

.PHONY: build
build: ## Build bin/cardplane.
	go build -ldflags "-X main.version=$(VERSION) -X main.commit=$$(git rev-parse HEAD 2>/dev/null)" -o $(BIN)/cardplane ./cmd/cardplane

.PHONY: image
image: $(OCIIMAGE) ## Build the image: $(IMAGE_DIR)/oci (OCI layout) and $(IMAGE_DIR)/cardplane.tar (docker load / kind load image-archive).
	rm -rf $(IMAGE_DIR)/bin && mkdir -p $(IMAGE_DIR)/bin
	binaries=(); for p in $$(echo $(IMAGE_PLATFORMS) | tr , ' '); do \
	  out=$(IMAGE_DIR)/bin/cardplane-$${p//\//-}; \
	  CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} go build -tags nodev -trimpath \
	    -ldflags "-s -w -X main.version=$(VERSION) -X main.commit=$$(git rev-parse HEAD 2>/dev/null)" -o $$out ./cmd/cardplane; \
	  binaries+=(--binary $$p=$$out); \
	done; \
	$(OCIIMAGE) build "$${binaries[@]}" --layout $(IMAGE_DIR)/oci --tarball $(IMAGE_DIR)/cardplane.tar --tag $(IMAGE) \
	  --created "$$(git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)" \
	  --revision "$$(git rev-parse HEAD 2>/dev/null)" --version $(VERSION)

.PHONY: image-push
image-push: image ## Push the image index: make image-push IMAGE=registry.example.com/cardplane:v0.1.0 IMAGE_PLATFORMS=linux/amd64,linux/arm64
	$(OCIIMAGE) push --layout $(IMAGE_DIR)/oci $(IMAGE)

.PHONY: ociimage
ociimage: $(OCIIMAGE)
$(OCIIMAGE): hack/tools/go.mod $(wildcard hack/tools/ociimage/*.go)
	cd hack/tools && go build -o $(OCIIMAGE) ./ociimage

OPA ?= $(BIN)/opa

.PHONY: bench
bench: control-plane $(OPA) ## Run the benchmark harnesses in bench/ and print their reports (docs/benchmarks.md).
	KUBEBUILDER_ASSETS="$$(hack/control-plane.sh)" go run ./bench/ingest
	KUBEBUILDER_ASSETS="$$(hack/control-plane.sh)" go run ./bench/authz -opa $(OPA)

.PHONY: bench-load
bench-load: control-plane ## Run the sustained-load harness (bench/load: manager binary, three destinations one slow) and print its report.
	KUBEBUILDER_ASSETS="$$(hack/control-plane.sh)" go run ./bench/load $(BENCH_LOAD_FLAGS)

$(OPA): hack/tools/go.mod
	cd hack/tools && go build -o $(OPA) github.com/open-policy-agent/opa

.PHONY: helm
helm: $(HELM)
$(HELM): hack/tools/go.mod
	cd hack/tools && go build -o $(HELM) helm.sh/helm/v3/cmd/helm

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN): hack/tools/go.mod
	cd hack/tools && go build -o $(CONTROLLER_GEN) sigs.k8s.io/controller-tools/cmd/controller-gen
