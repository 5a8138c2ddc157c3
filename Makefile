# edgeloop — the whole set-up on a fresh machine is `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
export GOFLAGS ?= -buildvcs=false
# Go 1.26's SIMD experiment: the CPU engine's innermost loops (SiLU, ReLU6, depthwise
# 3x3) run eight lanes at a time with AVX2 (pkg/nn/gorgoniaengine/rowkernels_simd.go),
# 1.4x the detector's training speed. GOEXPERIMENT= builds the scalar loops, which give
# the same bits; test-go tests both, and the pure-Go BLAS beside OpenBLAS.
export GOEXPERIMENT ?= simd
CACHE ?= $(or $(EDGELOOP_CACHE),$(HOME)/.cache/edgeloop)
PROTOC_GEN_GO_VERSION := v1.36.12
# The standalone corrects its own batches by default so the loop runs by itself; use
# `make run RUN_ARGS=` to correct them yourself in the UI.
RUN_ARGS ?= -auto-annotate
# OpenBLAS makes CPU training 2-3x faster: run and build install Debian's libopenblas-dev
# when it is missing (deploy/local/openblas.sh) and fall back to the pure-Go BLAS, with a
# line saying so, when it cannot be installed. Set TAGS to choose yourself.
TAGS ?= $$(deploy/local/openblas.sh tags)

.PHONY: run photos test test-go chaos edge-agent-arm64 k8s-validate vet-cuda cxx bench pretrain pretrain-more generate lint services-up services-down browser build clean

## run: the standalone stack and the whole loop (embedded servers, simulated fleet, auto-annotation)
run: photos
	$(GO) run $(TAGS) ./services/standalone $(RUN_ARGS)

## build: every binary into bin/
build:
	$(GO) build $(TAGS) -o bin/ ./services/... ./edge-agent/...

## edge-agent-arm64: the edge agent for 64-bit ARM devices (pure Go, static), with its size
edge-agent-arm64:
	@mkdir -p bin
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o bin/edge-agent-linux-arm64 ./edge-agent
	@echo "edge-agent linux/arm64: $$(( $$(stat -c %s bin/edge-agent-linux-arm64) / 1024 / 1024 )) MiB (bin/edge-agent-linux-arm64)"

## test: validate the Kubernetes manifests (k8s-validate), start the real servers
## (installed once into $(CACHE)), run every test, stop them; meanwhile compile-check the
## CUDA build (vet-cuda)
test: k8s-validate edge-agent-arm64 services-up browser cxx photos
	@set -o pipefail; status=0; \
	$(MAKE) --no-print-directory vet-cuda > .vet-cuda.log 2>&1 & cuda=$$!; \
	$(MAKE) --no-print-directory test-go || status=$$?; \
	wait $$cuda || { cat .vet-cuda.log; echo "vet-cuda failed"; status=1; }; \
	[[ -n "$$KEEP_SERVICES" ]] || $(MAKE) --no-print-directory services-down; \
	rm -f .vet-cuda.log; exit $$status

test-go:
	$(GO) test $(TAGS) -timeout 20m -count=1 ./...
	GOEXPERIMENT= $(GO) test -count=1 ./pkg/nn/gorgoniaengine

## chaos: the long fault-injection suite (internal/faulttest's TestChaos with
## EDGELOOP_CHAOS=long: two replicas of every service, 3 agents × 400 examples, 22 kill -9s
## of Kafka, MinIO, Mosquitto, the replicas and agents over 4 minutes); `make test` runs
## its short version (about a minute). The long one takes about 10 minutes on 2 cores.
## EDGELOOP_CHAOS_SEED=N replays a run's fault schedule; EDGELOOP_CHAOS_DIR=DIR keeps the
## processes' logs and data.
chaos: services-up
	EDGELOOP_CHAOS=long $(GO) test -count=1 -timeout 30m -run '^TestChaos$$' -v ./internal/faulttest/

## k8s-validate: render deploy/k8s's kustomizations and validate every object against the
## Kubernetes JSON schemas (PyPI's kubernetes-validate, installed once into $(CACHE)), and
## check that broken manifests are refused; a Go module of its own, deploy/k8s/validate
k8s-validate:
	@schemas=$$(deploy/local/k8s-schemas.sh install) && \
	cd deploy/k8s/validate && EDGELOOP_K8S_SCHEMAS=$$schemas $(GO) test -count=1 ./...

## photos: real photographs as backgrounds of the colour data (scikit-image's pictures from
## PyPI, Debian's lomiri wallpapers), installed once into $(CACHE)/photos; without them the
## colour data falls back to procedural backgrounds, with a log line saying so
photos:
	@deploy/local/photos.sh install >/dev/null

## bench: speed and quality figures as tables (see bench/README.md)
bench: services-up photos
	bench/run.sh

## pretrain: a MobileNetV2 backbone (PRETRAIN_SIZE n, s or m; default n) trained with fixed
## seeds for 8 epochs on PRETRAIN_IMAGES (default 6,000; more on a bigger machine)
## generated 96 px colour images of classes the colour benchmark never uses, written as
## bench/out/pretrain/mobilenetv2-SIZE.safetensors (torchvision names), which
## `retrain train -backbone` and `bench/run.sh colour` read (docs/models.md)
PRETRAIN_SIZE ?= n
PRETRAIN_IMAGES ?= 6000
pretrain:
	$(GO) run $(TAGS) ./bench/colour -pretrain bench/out/pretrain/mobilenetv2-$(PRETRAIN_SIZE).safetensors -size $(PRETRAIN_SIZE) -pretrain-images $(PRETRAIN_IMAGES)

## pretrain-more: continues make pretrain's backbone in place for 4 more epochs on a fresh
## draw of 5,000 images (seed 23; the head starts new, the schedule restarts), about
## 2.5 minutes for n on 2 cores: n went from 0.432 to 0.942 on its own classes, and the
## colour benchmark's pretrained n cells from 0.31–0.60 to 0.67–0.92 (docs/benchmarks.md)
pretrain-more:
	$(GO) run $(TAGS) ./bench/colour -pretrain bench/out/pretrain/mobilenetv2-$(PRETRAIN_SIZE).safetensors -size $(PRETRAIN_SIZE) \
	  -pretrain-from bench/out/pretrain/mobilenetv2-$(PRETRAIN_SIZE).safetensors -pretrain-seed 23 -pretrain-images 5000 -pretrain-epochs 4

## generate: regenerate the protobuf Go code (Debian's protoc, pinned protoc-gen-go)
generate:
	@command -v protoc >/dev/null || { sudo=$$( [[ $$(id -u) == 0 ]] || echo sudo ); $$sudo apt-get update -qq && $$sudo apt-get install -y -qq protobuf-compiler; }
	@[[ -x $(CACHE)/bin/protoc-gen-go-$(PROTOC_GEN_GO_VERSION) ]] || { GOBIN=$(CACHE)/bin $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION) && mv $(CACHE)/bin/protoc-gen-go $(CACHE)/bin/protoc-gen-go-$(PROTOC_GEN_GO_VERSION); }
	cd schemas && protoc -I . -I /usr/include --plugin=protoc-gen-go=$(CACHE)/bin/protoc-gen-go-$(PROTOC_GEN_GO_VERSION) \
		--go_out=. --go_opt=paths=source_relative edgeloop/v1/*.proto

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); [[ -z "$$out" ]] || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) vet ./...

## vet-cuda: compile-check the CUDA engine (-tags edgeloop_cuda) against Debian's CUDA 11.8
## headers, installed once; no GPU needed (bench/gpu/run.sh runs it on one)
vet-cuda:
	deploy/local/cuda-headers.sh install
	$(GO) vet -tags edgeloop_cuda ./...

## cxx: a host C++ compiler, which runs the CUDA kernels on the CPU in the tests
cxx:
	@command -v c++ >/dev/null || { source deploy/local/lib.sh && apt_install g++; }

## browser: Debian's Chromium and playwright-core for the UI's browser test
browser:
	deploy/local/browser.sh install

## services-up / services-down: the real Kafka, MinIO and Mosquitto on loopback
services-up:
	deploy/local/up.sh

services-down:
	deploy/local/down.sh

clean:
	rm -rf bin
