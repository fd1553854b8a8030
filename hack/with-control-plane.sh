#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions reached only through traps or "$@" look unreachable
# Run a command against a throw-away, real Kubernetes control plane:
# etcd + kube-apiserver + kube-controller-manager, all on 127.0.0.1, built from source by
# hack/build-k8s-bins.sh (no kubelet/scheduler: pods are stored but never run).
#
#   hack/with-control-plane.sh CMD [ARGS...]   # run CMD, tear everything down, exit with CMD's code
#   hack/with-control-plane.sh                 # keep running until Ctrl-C / SIGTERM (demo)
#
# CMD sees:
#   KUBECONFIG               kubeconfig with cluster admin (user "ivy-admin", group system:masters)
#   IVY_K8S_BIN_DIR          directory with kubectl, helm, kube-apiserver, ... (also prepended to PATH)
#   IVY_CONTROL_PLANE_DIR    the temporary directory (logs: etcd.log, kube-apiserver.log,
#                            kube-controller-manager.log)
#   IVY_KUBE_APISERVER_URL   https://127.0.0.1:<port>
#   IVY_KUBE_ADMIN_TOKEN     bearer token of the admin user
#
# Knobs (environment):
#   IVY_KEEP_CONTROL_PLANE_DIR=1      keep the temporary directory (data, certs, logs) afterwards
#   IVY_CONTROL_PLANE_TIMEOUT=120     seconds to wait for each start-up step
#   IVY_KCM_CONTROLLERS=...           kube-controller-manager --controllers value
#   IVY_K8S_CACHE                     passed on to hack/build-k8s-bins.sh
#   TMPDIR                            where the temporary directory is created
#
# Exit code: CMD's exit code; 1 if the control plane could not be started (or, without CMD, a
# component died); 130/143/129 when interrupted by SIGINT/SIGTERM/SIGHUP. Every process this
# script started (build, components, CMD and CMD's children) is stopped on exit.
# Details and measurements: docs/control-plane.md.
set -euo pipefail

# The body is one { } block, so bash parses all of it before running: editing this file while
# it runs (bash otherwise reads scripts as it goes) cannot break a running instance.
{

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
timeout_s=${IVY_CONTROL_PLANE_TIMEOUT:-120}
controllers=${IVY_KCM_CONTROLLERS:-garbagecollector,namespace,serviceaccount,serviceaccount-token,root-ca-cert-publisher}

log() { printf '[control-plane %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# ---- process bookkeeping & cleanup -----------------------------------------------------------
pids=()          # component pids, in start order
names=()         # matching component names
cmd_pid=""
build_pid=""
build_out=""
dir=""
failed=0
cleaned=0

# All descendants of pid $1 (children first in the output is not guaranteed; order is irrelevant).
descendants() {
  local parent=$1 p stat rest ppid kids=()
  for stat in /proc/[0-9]*/stat; do
    p=${stat#/proc/}; p=${p%/stat}
    read -r rest 2>/dev/null <"$stat" || continue
    rest=${rest##*) }            # drop "pid (comm) "; comm may contain spaces
    read -r _ ppid _ <<<"$rest"
    [[ $ppid == "$parent" ]] && kids+=("$p")
  done
  for p in "${kids[@]}"; do echo "$p"; descendants "$p"; done
}

alive() { local s; kill -0 "$1" 2>/dev/null && s=$(cut -d' ' -f3 2>/dev/null <"/proc/$1/stat") && [[ $s != Z ]]; }

# TERM the given pids, wait up to $grace seconds, then KILL the survivors and reap them.
stop_pids() {
  local grace=$1; shift
  (($#)) || return 0
  kill -TERM "$@" 2>/dev/null || true
  local deadline=$((SECONDS + grace)) p any
  while ((SECONDS < deadline)); do
    any=0
    for p in "$@"; do alive "$p" && any=1; done
    ((any)) || break
    sleep 0.1
  done
  for p in "$@"; do
    if alive "$p"; then
      log "pid $p did not stop within ${grace}s of SIGTERM; sending SIGKILL"
      kill -KILL "$p" 2>/dev/null || true
    fi
  done
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

print_log_tails() {
  local n=${1:-25} f
  [[ -n $dir && -d $dir ]] || return 0
  for f in "$dir"/etcd.log "$dir"/kube-apiserver.log "$dir"/kube-controller-manager.log; do
    [[ -s $f ]] || continue
    printf '\n----- last %s lines of %s -----\n' "$n" "$f" >&2
    tail -n "$n" "$f" >&2
  done
  printf '\n' >&2
}

cleanup() {
  local rc=$?
  ((cleaned)) && return 0
  cleaned=1
  set +e
  trap '' INT TERM
  if [[ -n $build_pid ]] && alive "$build_pid"; then
    log "stopping the build (pid $build_pid)"
    # shellcheck disable=SC2046
    stop_pids 10 "$build_pid" $(descendants "$build_pid")
  fi
  [[ -z $build_out ]] || rm -f "$build_out"
  if [[ -n $cmd_pid ]] && alive "$cmd_pid"; then
    log "stopping CMD (pid $cmd_pid) and its children"
    # shellcheck disable=SC2046
    stop_pids 5 "$cmd_pid" $(descendants "$cmd_pid")
  fi
  # Tails first: after the shutdown the logs end in shutdown noise.
  if ((failed || (rc != 0 && !interrupted))) && [[ -n $dir && -d $dir ]]; then
    print_log_tails 25
    log "component logs: $dir/{etcd,kube-apiserver,kube-controller-manager}.log"
  fi
  # Stop in reverse start order: controller-manager, apiserver, then etcd.
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    stop_pids 10 "${pids[i]}"
  done
  if [[ -n $dir && -d $dir ]]; then
    if [[ ${IVY_KEEP_CONTROL_PLANE_DIR:-0} == 1 ]]; then
      log "kept $dir (IVY_KEEP_CONTROL_PLANE_DIR=1)"
    else
      rm -rf "$dir"
      ((failed || (rc != 0 && !interrupted))) && log "removed $dir; set IVY_KEEP_CONTROL_PLANE_DIR=1 to keep it"
    fi
  fi
  exit "$rc"
}
interrupted=0
on_signal() {
  set +e
  log "received SIG$1; shutting down"
  interrupted=1
  trap - EXIT
  exit_code=$((128 + $2))
  (exit "$exit_code"); cleanup
}
trap cleanup EXIT
trap 'on_signal INT 2' INT
trap 'on_signal TERM 15' TERM
trap 'on_signal HUP 1' HUP

die() { failed=1; log "error: $*"; exit 1; }

# ---- prerequisites ---------------------------------------------------------------------------
for tool in openssl curl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "$tool is required"
    sudo=(); [[ $(id -u) == 0 ]] || sudo=(sudo)
    log "installing $tool with apt-get"
    "${sudo[@]}" apt-get update >&2 && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "$tool" >&2
  fi
done

# In the background, so that SIGTERM/SIGINT during a (long) build are handled at once.
build_out=$(mktemp "${TMPDIR:-/tmp}/ivy-k8s-build.XXXXXX")
"$here/build-k8s-bins.sh" >"$build_out" &
build_pid=$!
build_rc=0
wait "$build_pid" || build_rc=$?
build_pid=""
bin_dir=$(tail -n1 "$build_out")
rm -f "$build_out"
((build_rc == 0)) || die "hack/build-k8s-bins.sh failed (status $build_rc)"
[[ -x $bin_dir/kube-apiserver ]] || die "build-k8s-bins.sh did not produce binaries (got '$bin_dir')"

dir=$(mktemp -d "${TMPDIR:-/tmp}/ivy-control-plane.XXXXXX")
chmod 700 "$dir"

# ---- ports -----------------------------------------------------------------------------------
# Ports already bound by anyone on this machine (LISTEN sockets, v4 + v6), as decimal numbers.
listening_ports() {
  local f h
  for f in /proc/net/tcp /proc/net/tcp6; do
    [[ -r $f ]] || continue
    awk 'NR > 1 && $4 == "0A" { n = split($2, a, ":"); print a[n] }' "$f"
  done | while read -r h; do echo $((16#$h)); done
}
taken_ports=" "
# A random free port below the Linux ephemeral range (32768+), so outgoing connections do not
# steal it; two instances collide only if they draw the same number in the same instant, and a
# bind failure ("address already in use") is retried with new ports below.
pick_port() { # sets $port
  local used p i
  used=" $(listening_ports | tr '\n' ' ') "
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
    [[ $used == *" $p "* || $taken_ports == *" $p "* ]] && continue
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then continue; fi   # someone answers
    taken_ports+="$p "
    port=$p
    return 0
  done
  die "could not find a free TCP port"
}

# start NAME LOGFILE ARGS...: start a component in the background, remember its pid.
start() {
  local name=$1 logfile=$2; shift 2
  "$@" >"$logfile" 2>&1 &
  pids+=("$!")
  names+=("$name")
}

# Remove the last started component (after it died) from the bookkeeping.
forget_last() {
  local last=$((${#pids[@]} - 1))
  wait "${pids[last]}" 2>/dev/null || true
  unset "pids[last]" "names[last]"
  pids=("${pids[@]}")
  names=("${names[@]}")
}

# wait_for WHAT PID CHECK...: poll CHECK until it succeeds; 0 = ready, 1 = PID died, dies on timeout.
wait_for() {
  local what=$1 pid=$2; shift 2
  local deadline=$((SECONDS + timeout_s))
  until "$@" >/dev/null 2>&1; do
    alive "$pid" || return 1
    ((SECONDS < deadline)) || die "timed out after ${timeout_s}s waiting for $what"
    sleep 0.2
  done
}

port_clash() { grep -qiE 'address already in use|bind: address' "$1"; }

# ---- credentials -----------------------------------------------------------------------------
openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
admin_token=$(openssl rand -hex 24)
kcm_token=$(openssl rand -hex 24)
cat >"$dir/tokens.csv" <<EOF
$admin_token,ivy-admin,ivy-admin,"system:masters"
$kcm_token,system:kube-controller-manager,system:kube-controller-manager
EOF
chmod 600 "$dir/tokens.csv" "$dir/sa.key"

# ---- etcd ------------------------------------------------------------------------------------
etcd_healthy() {
  [[ $(curl -sS --max-time 2 "http://127.0.0.1:$etcd_port/health") == *'"health":"true"'* ]]
}
start_time=$SECONDS
for attempt in 1 2 3 4 5; do
  pick_port; etcd_port=$port
  pick_port; etcd_peer_port=$port
  rm -rf "$dir/etcd"
  log "starting etcd on 127.0.0.1:$etcd_port (peer $etcd_peer_port)"
  start etcd "$dir/etcd.log" "$bin_dir/etcd" \
    --name=ivy \
    --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" \
    --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$etcd_peer_port" \
    --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster="ivy=http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster-state=new \
    --unsafe-no-fsync=true \
    --quota-backend-bytes=$((2 * 1024 * 1024 * 1024)) \
    --log-level=warn
  if wait_for etcd "${pids[-1]}" etcd_healthy; then
    break
  fi
  if port_clash "$dir/etcd.log" && ((attempt < 5)); then
    log "etcd could not bind its ports; retrying with other ports"
    forget_last
    continue
  fi
  die "etcd exited during start-up"
done

# ---- kube-apiserver --------------------------------------------------------------------------
ca_file="$dir/apiserver-certs/apiserver.crt"
readyz() {
  [[ -s $ca_file ]] &&
    [[ $(curl -sS --max-time 5 --cacert "$ca_file" -H "Authorization: Bearer $admin_token" \
      "https://127.0.0.1:$api_port/readyz") == ok ]]
}
for attempt in 1 2 3 4 5; do
  pick_port; api_port=$port
  rm -rf "$dir/apiserver-certs"
  log "starting kube-apiserver on https://127.0.0.1:$api_port"
  # --advertise-address: a machine without a default route has no "suitable network address".
  # --endpoint-reconciler-type=none: the reconciler of the "kubernetes" Service's endpoints
  # refuses a loopback advertise address and the apiserver exits (nothing here needs them).
  start kube-apiserver "$dir/kube-apiserver.log" "$bin_dir/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --cert-dir="$dir/apiserver-certs" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --secure-port="$api_port" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --authorization-mode=Node,RBAC \
    --token-auth-file="$dir/tokens.csv" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$dir/sa.key" \
    --service-account-signing-key-file="$dir/sa.key" \
    --endpoint-reconciler-type=none \
    --allow-privileged=true
  if wait_for "kube-apiserver /readyz" "${pids[-1]}" readyz; then
    break
  fi
  if port_clash "$dir/kube-apiserver.log" && ((attempt < 5)); then
    log "kube-apiserver could not bind its port; retrying with another port"
    forget_last
    continue
  fi
  die "kube-apiserver exited during start-up"
done
server="https://127.0.0.1:$api_port"
log "kube-apiserver ready after $((SECONDS - start_time)) s"

# ---- kubeconfigs -----------------------------------------------------------------------------
write_kubeconfig() { # FILE USER TOKEN
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ivy
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 <"$ca_file")
users:
- name: $2
  user:
    token: $3
contexts:
- name: ivy
  context:
    cluster: ivy
    user: $2
    namespace: default
current-context: ivy
EOF
  chmod 600 "$1"
}
write_kubeconfig "$dir/kubeconfig" ivy-admin "$admin_token"
write_kubeconfig "$dir/kube-controller-manager.kubeconfig" system:kube-controller-manager "$kcm_token"

# ---- kube-controller-manager -----------------------------------------------------------------
log "starting kube-controller-manager (controllers: $controllers)"
start kube-controller-manager "$dir/kube-controller-manager.log" "$bin_dir/kube-controller-manager" \
  --kubeconfig="$dir/kube-controller-manager.kubeconfig" \
  --secure-port=0 \
  --leader-elect=false \
  --controllers="$controllers" \
  --use-service-account-credentials=true \
  --service-account-private-key-file="$dir/sa.key" \
  --root-ca-file="$ca_file"

export KUBECONFIG="$dir/kubeconfig"
export IVY_K8S_BIN_DIR="$bin_dir"
export IVY_CONTROL_PLANE_DIR="$dir"
export IVY_KUBE_APISERVER_URL="$server"
export IVY_KUBE_ADMIN_TOKEN="$admin_token"
export PATH="$bin_dir:$PATH"

# The default ServiceAccount only appears once the controller-manager's serviceaccount
# controller runs, so this proves the controller-manager works.
if [[ ,$controllers, == *,serviceaccount,* || ,$controllers, == *,serviceaccount-controller,* ]]; then
  wait_for "the default ServiceAccount (kube-controller-manager)" "${pids[-1]}" \
    "$bin_dir/kubectl" get serviceaccount default --namespace default ||
    die "kube-controller-manager exited during start-up"
fi
log "control plane ready after $((SECONDS - start_time)) s ($dir)"

# ---- run CMD (or wait) -----------------------------------------------------------------------
if (($# == 0)); then
  echo "export KUBECONFIG=$KUBECONFIG"
  echo "export PATH=$bin_dir:\$PATH"
  log "control plane running; press Ctrl-C (or send SIGTERM to $$) to stop"
  # Returns when a component dies (or a trapped signal arrives).
  set +e
  dead=""
  wait -n -p dead "${pids[@]}"
  rc=$?
  set -e
  failed=1
  for i in "${!pids[@]}"; do [[ ${pids[i]} == "$dead" ]] && dead="${names[i]} (pid $dead)"; done
  log "control-plane component ${dead:-?} exited unexpectedly with status $rc"
  exit 1
fi

# CMD runs in the background so that a SIGTERM/SIGINT to this script is handled at once (bash
# delays traps until a foreground child exits); its stdin is passed through explicitly because
# background commands otherwise read /dev/null.
exec 3<&0
set +e
"$@" <&3 3<&- &
cmd_pid=$!
exec 3<&-
wait "$cmd_pid"
rc=$?
set -e
cmd_pid=""
if ((rc != 0)); then
  log "command exited with status $rc"
fi
exit "$rc"
}
