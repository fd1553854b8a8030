#!/usr/bin/env bash
# Build a real Kubernetes control plane (kube-apiserver, kube-controller-manager, kubectl, etcd)
# plus helm from the Go module proxy, and install them into a per-version cache directory.
#
#   hack/build-k8s-bins.sh            # prints the bin directory as the last line of stdout
#
# Environment:
#   IVY_K8S_CACHE          cache root (default: $HOME/.cache/ivy-webhook-operator)
#   IVY_K8S_BUILD_VERBOSE  1 = pass -v to go build (lists every package as it is compiled)
#   IVY_K8S_FORCE_REBUILD  1 = rebuild even if the binaries and stamps are present
#
# Pins live in hack/k8s-bins/go.mod (Kubernetes + etcd; regenerate with hack/update-k8s-pin.sh)
# and hack/helm-bin/go.mod (helm). The bin directory is named after the Kubernetes version, and a
# stamp holding a hash of each module's go.mod/go.sum (plus the Go version and build recipe)
# makes any pin edit rebuild. Everything but the final path goes to stderr.
set -euo pipefail

# The body is one { } block, so bash parses all of it before running: editing this file while
# it runs (bash otherwise reads scripts as it goes) cannot break a running build.
{

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
k8s_mod="$here/k8s-bins"
helm_mod="$here/helm-bin"

log() { printf '[build-k8s-bins %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Version of module $2 in go.mod $1 (require line, direct or "// indirect").
mod_version() { awk -v m="$2" '($1 == m && $2 ~ /^v/) || ($1 == "require" && $2 == m) {print ($1 == "require" ? $3 : $2); exit}' "$1"; }

k8s_version=$(mod_version "$k8s_mod/go.mod" k8s.io/kubernetes)
etcd_version=$(mod_version "$k8s_mod/go.mod" go.etcd.io/etcd/server/v3)
helm_version=$(mod_version "$helm_mod/go.mod" helm.sh/helm/v3)
[[ $k8s_version =~ ^v1\.([0-9]+)\.[0-9]+$ ]] || die "cannot read the k8s.io/kubernetes version from $k8s_mod/go.mod"
k8s_minor=${BASH_REMATCH[1]}
[[ -n $etcd_version && -n $helm_version ]] || die "cannot read the etcd/helm versions from the go.mod files"

cache_root=${IVY_K8S_CACHE:-$HOME/.cache/ivy-webhook-operator}
version_dir="$cache_root/k8s-$k8s_version"
bin_dir="$version_dir/bin"

# Bump when the way the binaries are built changes (flags, ldflags, names) to force a rebuild.
recipe=3
k8s_cmds=(kube-apiserver kube-controller-manager kubectl etcd)

# The Go version is part of the stamp (a toolchain update rebuilds); without go on PATH the
# binaries already built are used as they are.
go_version=$(GOTOOLCHAIN=local go env GOVERSION 2>/dev/null || echo unknown)
stamp_of() { # $1 = module dir
  { echo "recipe=$recipe go=$go_version"; cat "$1/go.mod" "$1/go.sum"; } | sha256sum | cut -d' ' -f1
}

up_to_date() { # $1 = name (k8s|helm), $2 = module dir, rest = binaries
  local name=$1 dir=$2; shift 2
  [[ ${IVY_K8S_FORCE_REBUILD:-0} != 1 ]] || return 1
  local b
  for b in "$@"; do [[ -x $bin_dir/$b ]] || return 1; done
  [[ $go_version != unknown ]] || return 0
  [[ -f $bin_dir/.stamp-$name && $(<"$bin_dir/.stamp-$name") == "$(stamp_of "$dir")" ]] || return 1
}

# Fast path (no Go invocation at all): everything present and stamps match.
if up_to_date k8s "$k8s_mod" "${k8s_cmds[@]}" && up_to_date helm "$helm_mod" helm; then
  echo "$bin_dir"
  exit 0
fi

# ---- slow path: make sure the tools exist ----------------------------------------------------
apt_updated=0
need_pkg() { # $1 = command, $2 = Debian package
  command -v "$1" >/dev/null 2>&1 && return 0
  command -v apt-get >/dev/null 2>&1 || die "'$1' is missing and apt-get is not available; install package $2"
  local sudo=()
  [[ $(id -u) == 0 ]] || sudo=(sudo)
  if [[ $apt_updated == 0 ]]; then
    log "apt-get update (to install $2)"
    "${sudo[@]}" apt-get update >&2
    apt_updated=1
  fi
  log "apt-get install -y $2"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "$2" >&2
}
need_pkg sha256sum coreutils
need_pkg flock util-linux
command -v go >/dev/null 2>&1 || die "go is not on PATH (need Go >= $(awk '$1 == "go" {print $2; exit}' "$k8s_mod/go.mod"))"

export GOTOOLCHAIN=local CGO_ENABLED=0
# -buildvcs=false: the wrapper modules live inside this git repository; stamping its commit into
# the binaries would only make every commit relink them. -mod=readonly: go.sum is committed.
# The caller's GOFLAGS (e.g. -p=1 on a small machine) are kept.
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-buildvcs=false -mod=readonly"

mkdir -p "$version_dir"
# Two callers (e.g. two concurrent with-control-plane.sh) must not build into the same place.
exec 9>"$version_dir/.lock"
if ! flock -n 9; then
  log "another build for $k8s_version is running; waiting for its lock ($version_dir/.lock)"
  flock 9
fi
mkdir -p "$bin_dir"
stages=()
trap 'rm -rf "${stages[@]}"' EXIT
# Turn fatal signals into an exit so that the EXIT trap removes the staging directories.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
# go build's work directory too, so that an interrupted build leaves nothing in $TMPDIR.
GOTMPDIR=$(mktemp -d "$version_dir/.gotmp.XXXXXX")
stages+=("$GOTMPDIR")
export GOTMPDIR

# Field $2 (Hash|Time) of the proxy's .info for module $1 (best effort; empty if unknown).
origin_field() {
  local info
  info=$(go mod download -json "$1" 2>/dev/null | sed -n 's/^[[:space:]]*"Info": "\(.*\)",$/\1/p')
  [[ -n $info && -f $info ]] || return 0
  sed -n "s/.*\"$2\": *\"\\([^\"]*\\)\".*/\\1/p" "$info" | head -n1
}

build_k8s() {
  up_to_date k8s "$k8s_mod" "${k8s_cmds[@]}" && return 0
  local stage commit date ldflags v
  stage=$(mktemp -d "$version_dir/.build-k8s.XXXXXX")
  stages+=("$stage")
  cd "$k8s_mod"
  commit=$(origin_field "k8s.io/kubernetes@$k8s_version" Hash)
  date=$(origin_field "k8s.io/kubernetes@$k8s_version" Time)
  ldflags="-s -w"
  for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $v.gitVersion=$k8s_version -X $v.gitMajor=1 -X $v.gitMinor=$k8s_minor"
    ldflags+=" -X $v.gitTreeState=clean"
    [[ -z $commit ]] || ldflags+=" -X $v.gitCommit=$commit"
    [[ -z $date ]] || ldflags+=" -X $v.buildDate=$date"
  done
  [[ -z $commit ]] || ldflags+=" -X go.etcd.io/etcd/api/v3/version.GitSHA=module-$etcd_version"
  log "building kube-apiserver, kube-controller-manager, kubectl $k8s_version and etcd $etcd_version"
  log "(one go build; cold caches: ~12 min and ~3 GiB RAM on 2 cores, plus ~2 min for helm; seconds when warm)"
  local start=$SECONDS verbose=()
  [[ ${IVY_K8S_BUILD_VERBOSE:-0} != 1 ]] || verbose=(-v)
  # "tool" = every package named by a tool directive in go.mod; one invocation shares packages.
  go build "${verbose[@]}" -trimpath -ldflags "$ldflags" -o "$stage/" tool >&2
  # go names the go.etcd.io/etcd/server/v3 main package "server".
  [[ -x $stage/server ]] && mv "$stage/server" "$stage/etcd"
  for v in "${k8s_cmds[@]}"; do
    [[ -x $stage/$v ]] || die "go build did not produce $v (got: $(ls "$stage"))"
  done
  for v in "${k8s_cmds[@]}"; do mv -f "$stage/$v" "$bin_dir/$v"; done
  stamp_of "$k8s_mod" > "$bin_dir/.stamp-k8s"
  log "kubernetes binaries built in $((SECONDS - start)) s"
}

build_helm() {
  up_to_date helm "$helm_mod" helm && return 0
  local stage commit ldflags client_go helm_k8s_minor
  stage=$(mktemp -d "$version_dir/.build-helm.XXXXXX")
  stages+=("$stage")
  cd "$helm_mod"
  commit=$(origin_field "helm.sh/helm/v3@$helm_version" Hash)
  client_go=$(mod_version "$helm_mod/go.mod" k8s.io/client-go)      # e.g. v0.37.0
  [[ $client_go =~ ^v0\.([0-9]+)\. ]] || die "cannot read k8s.io/client-go from $helm_mod/go.mod"
  helm_k8s_minor=${BASH_REMATCH[1]}
  # Same ldflags as helm's own Makefile.
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
  ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  [[ -z $commit ]] || ldflags+=" -X helm.sh/helm/v3/internal/version.gitCommit=$commit"
  local p
  for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$helm_k8s_minor"
  done
  log "building helm $helm_version"
  local start=$SECONDS verbose=()
  [[ ${IVY_K8S_BUILD_VERBOSE:-0} != 1 ]] || verbose=(-v)
  go build "${verbose[@]}" -trimpath -ldflags "$ldflags" -o "$stage/" tool >&2
  [[ -x $stage/helm ]] || die "go build did not produce helm"
  mv -f "$stage/helm" "$bin_dir/helm"
  stamp_of "$helm_mod" > "$bin_dir/.stamp-helm"
  log "helm built in $((SECONDS - start)) s"
}

build_k8s
build_helm
log "binaries in $bin_dir: $(cd "$bin_dir" && echo *)"
echo "$bin_dir"
exit 0
}
