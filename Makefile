# ivy-webhook-operator: the two commands a newcomer needs are `make test` and `make demo`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help test demo bench lint unit k8s-bins crd chart-check clean-k8s-cache

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

test: ## every check and test, unit and end to end, on a local control plane (what CI runs)
	hack/test.sh

bench: ## measure a release build against the apiserver's floor (N=1000; N, IDLE, CHANGES, CONCURRENCY)
	hack/bench.sh

demo: ## local control plane + emulator + operator + receiver; leaves a kubeconfig until Ctrl-C
	hack/demo.sh

lint: ## formatting, clippy, the Dockerfile and the chart (no cluster needed)
	hack/ensure-tools.sh
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings
	hadolint Dockerfile
	PATH="$$(hack/build-k8s-bins.sh | tail -n 1):$$PATH" hack/chart-check.sh

unit: ## unit tests only (no cluster)
	cargo test --locked --lib --bins

k8s-bins: ## build (or reuse) kube-apiserver, etcd, kube-controller-manager, kubectl, helm
	hack/build-k8s-bins.sh

# The chart renders its CRDs from files/crds/ (templates/crds.yaml), a copy of every file in crds/.
crd: ## regenerate crds/ (one file per CRD) and the chart's copy from the Rust types
	cargo run --locked --quiet --bin ivy-webhook-operator -- crd --output-dir crds
	rm -f charts/ivy-webhook-operator/files/crds/*.yaml
	cp crds/*.yaml charts/ivy-webhook-operator/files/crds/

clean-k8s-cache: ## remove the cached Kubernetes binaries (the next test rebuilds them)
	rm -rf "$${IVY_K8S_CACHE:-$$HOME/.cache/ivy-webhook-operator}"
