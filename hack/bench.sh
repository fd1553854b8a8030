#!/usr/bin/env bash
# `make bench`: measures a release build of the operator against the apiserver's own floor, on
# a throw-away local control plane with ivy-emulator as Ivy. What it measures and the figures
# of this machine: docs/performance.md.
#
#   make bench                        # N = 1000, idle window 60 s, 200 spec changes
#   N=10000 make bench                # fits a 2-core, 24 GiB machine (takes a while)
#   N=50 IDLE=5s CHANGES=20 make bench
#   CONCURRENCY=8 make bench          # the operator's --concurrency and the floor's client
#
# Knobs (environment): N, IDLE (duration: 60s, 2m), CHANGES, CONCURRENCY (default: the
# operator's own default), SETTLE (pause between all Ready and the idle window, default 5s),
# BENCH_OUT (default: <cargo target dir>/bench). Needs the Kubernetes binaries that `make test`
# builds (hack/build-k8s-bins.sh; cached, a no-op when present).
#
# Prints one markdown table; writes the same figures as JSON to $BENCH_OUT/bench-n<N>.json and
# the operator's and emulator's logs to $BENCH_OUT/logs-n<N>/. Exit status: non-zero when the run
# failed or a correctness check did (durations never fail it). Every process it starts is
# stopped on exit (hack/with-control-plane.sh stops the benchmark and its children).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*" >&2; }
target=${CARGO_TARGET_DIR:-target}
out=${BENCH_OUT:-$target/bench}

# Two invocations on purpose: building the example enables dev-dependency features (the
# crash points of `fail`), which must not reach the operator binary being measured.
step "release build of the operator and the emulator (cargo build --release --bins)"
cargo build --locked --release --bins
step "release build of the benchmark (examples/bench)"
cargo build --locked --release --example bench

args=(--build-profile release --out "$out")
[[ -z ${N:-} ]] || args+=(--n "$N")
[[ -z ${IDLE:-} ]] || args+=(--idle "$IDLE")
[[ -z ${CHANGES:-} ]] || args+=(--changes "$CHANGES")
[[ -z ${CONCURRENCY:-} ]] || args+=(--concurrency "$CONCURRENCY")
[[ -z ${SETTLE:-} ]] || args+=(--settle "$SETTLE")

step "benchmark on a local control plane (N=${N:-1000})"
exec hack/with-control-plane.sh "$target/release/examples/bench" "${args[@]}"
