#!/usr/bin/env bash
# `make test`: static checks, then every test (unit, emulator, end to end) with a real control
# plane running, so that the end-to-end suites can never be skipped here.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*" >&2; }
started=$SECONDS
# A fresh build (CI) gains nothing from incremental compilation.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

step "tools"
hack/ensure-tools.sh

step "format and lint"
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
hadolint Dockerfile

step "build (binaries, examples, test executables)"
cargo build --locked --bins --examples
cargo test --locked --no-run

step "Kubernetes binaries (cached under ${IVY_K8S_CACHE:-~/.cache/ivy-webhook-operator})"
hack/build-k8s-bins.sh >/dev/null

step "tests on a local control plane"
export IVY_E2E_REQUIRED=1
hack/with-control-plane.sh bash -c '
  set -euo pipefail
  hack/chart-check.sh
  cargo test --locked -- --test-threads="${IVY_TEST_THREADS:-4}"
  "${CARGO_TARGET_DIR:-target}/debug/examples/bench" --smoke
'
printf '\n==> make test passed in %ss\n' "$((SECONDS - started))" >&2
