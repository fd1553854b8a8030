#!/usr/bin/env bash
# shellcheck disable=SC2317,SC2016  # trap-only functions; go-templates are single-quoted on purpose
# `make demo`: the whole operator on this machine, with nothing to install but Rust and Go.
#
#   hack/demo.sh                                # build, start everything, wait for Ctrl-C
#   IVY_DEMO_EXIT_AFTER_READY=1 hack/demo.sh    # same, but exit 0 after the first verified delivery
#
# (--inside and --kubelet are the script's own internal modes, see below.)
#
# 1. hack/ensure-tools.sh, `cargo build --locked --bins --examples`, hack/build-k8s-bins.sh
#    (cached: seconds when built; ~15 min the very first time, see docs/control-plane.md).
# 2. hack/with-control-plane.sh runs this script again with --inside, against a throw-away
#    etcd + kube-apiserver + kube-controller-manager on 127.0.0.1. Inside:
#    - the CRD;
#    - ivy-emulator (Ivy's API, rest dialect, API key "demo-key"), the example receiver
#      (examples/receiver.rs) and a "kubelet" loop that copies the Secret shop/orders-ivy-webhook
#      into files the receiver reads, as a mounted Secret volume would;
#    - the operator, from target/debug;
#    - namespace shop and examples/webhooksubscription.yaml pointed at the receiver; waits for
#      Ready, triggers a test delivery and waits until the receiver verified its signature;
#    - prints KUBECONFIG and things to try, then waits for Ctrl-C / SIGTERM.
# Every process it starts leads its own process group and is stopped on exit by that id, the
# operator first; hack/with-control-plane.sh then stops the control plane and removes its
# directory, the demo's logs included (keep them with IVY_KEEP_CONTROL_PLANE_DIR=1).
#
# Exit status: 0 (IVY_DEMO_EXIT_AFTER_READY=1), 130/143 when stopped by SIGINT/SIGTERM, 1 when
# something failed (the tails of the logs are printed).
set -euo pipefail

# The body is one { } block, so bash parses all of it before running: editing this file while
# a demo runs cannot break it.
{

cd "$(dirname "${BASH_SOURCE[0]}")/.."

now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$((10#$t))"; }
# Seconds (one decimal) between two now_us values.
secs() { local d=$(($2 - $1)); printf '%d.%d' "$((d / 1000000))" "$((d % 1000000 / 100000))"; }

# ---- the "kubelet": Secret -> files (hack/demo.sh --kubelet NAMESPACE SECRET DIR) -------------
# What a Secret volume does in a pod, every second: one file per key, replaced atomically; keys
# that leave the Secret leave the directory. Kubernetes validates keys as [-._a-zA-Z0-9]+, safe
# as file names. A Secret that cannot be read (not created yet, deleted) changes nothing.
if [[ ${1:-} == --kubelet ]]; then
  namespace=$2 secret=$3 mount=$4
  while :; do
    if listing=$(kubectl get secret "$secret" -n "$namespace" --request-timeout=3s -o go-template \
      --template='{{range $k, $v := .data}}{{$k}} {{$v}}{{"\n"}}{{end}}' 2>/dev/null); then
      declare -A present=()
      while read -r key value; do
        [[ -n $key ]] || continue
        present[$key]=1
        if printf '%s' "$value" | base64 -d >"$mount/.$key.tmp"; then
          mv -f "$mount/.$key.tmp" "$mount/$key"
        fi
      done <<<"$listing"
      for file in "$mount"/*; do
        [[ -e $file && -z ${present[${file##*/}]:-} ]] || continue
        rm -f "$file"
        echo "removed key ${file##*/}"
      done
      unset present
    fi
    sleep 1
  done
fi

# ---- outside: build, then run the inside under a control plane -------------------------------
if [[ ${1:-} != --inside ]]; then
  step() { printf '\n==> %s\n' "$*" >&2; }
  IVY_DEMO_STARTED_US=$(now_us)
  export IVY_DEMO_STARTED_US
  step "tools"
  hack/ensure-tools.sh
  step "cargo build --locked --bins --examples"
  cargo build --locked --bins --examples
  step "Kubernetes binaries (cached under ${IVY_K8S_CACHE:-~/.cache/ivy-webhook-operator})"
  hack/build-k8s-bins.sh >/dev/null
  step "starting a local control plane"
  IVY_DEMO_CONTROL_PLANE_US=$(now_us)
  export IVY_DEMO_CONTROL_PLANE_US
  exec hack/with-control-plane.sh hack/demo.sh --inside
fi

# ---- inside: KUBECONFIG points at the throw-away control plane -------------------------------
: "${KUBECONFIG:?run hack/demo.sh (or make demo), not --inside directly}"
: "${IVY_CONTROL_PLANE_DIR:?run hack/demo.sh (or make demo), not --inside directly}"

inside_us=$(now_us)
started_us=${IVY_DEMO_STARTED_US:-$inside_us}
namespace=shop
resource=orders
secret=orders-ivy-webhook
api_key="demo-key"
bin=target/debug
demo=$IVY_CONTROL_PLANE_DIR/demo
mount=$demo/mount
mkdir -p "$mount"
chmod 700 "$demo" "$mount"

say() { printf '%s\n' "$*"; }
header() { printf '\n==> %s\n' "$*"; }

pids=()    # background processes this script started, in start order
names=()
interrupted=0
sleeper=""

# Each background process leads its own process group (setsid), so that it and its children
# (the kubelet loop's kubectl and sleep) are stopped together, and a Ctrl-C in the terminal
# reaches only the scripts, which then stop everything in order.
# Whether any process of group $1 still runs (zombies do not count).
alive() {
  local f rest state pgrp
  for f in /proc/[0-9]*/stat; do
    read -r rest 2>/dev/null <"$f" || continue
    rest=${rest##*) }            # drop "pid (comm) "; comm may contain spaces
    read -r state _ pgrp _ <<<"$rest"
    [[ $pgrp == "$1" && $state != Z ]] && return 0
  done
  return 1
}
signal_group() { kill "-$1" -- "-$2" 2>/dev/null || kill "-$1" "$2" 2>/dev/null; }

print_log_tails() {
  local f
  for f in "$demo"/operator.log "$demo"/emulator.log "$demo"/receiver.log "$demo"/kubelet.log; do
    [[ -s $f ]] || continue
    printf '\n----- last 20 lines of %s -----\n' "$f" >&2
    tail -n 20 "$f" >&2
  done
}

cleanup() {
  local rc=$?
  set +e
  trap '' INT TERM HUP
  [[ -z $sleeper ]] || kill "$sleeper" 2>/dev/null
  if ((rc != 0 && !interrupted)); then
    print_log_tails
  fi
  # Stop in reverse start order: the operator first, the emulator last.
  local i p deadline
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    signal_group TERM "${pids[i]}"
  done
  # hack/with-control-plane.sh allows 5 s before it SIGKILLs this script.
  deadline=$((SECONDS + 3))
  for p in "${pids[@]}"; do
    while alive "$p" && ((SECONDS < deadline)); do sleep 0.1; done
  done
  for i in "${!pids[@]}"; do
    if alive "${pids[i]}"; then
      printf '[demo] %s (pid %s) did not stop on SIGTERM; sending SIGKILL\n' "${names[i]}" "${pids[i]}" >&2
      signal_group KILL "${pids[i]}"
    fi
    wait "${pids[i]}" 2>/dev/null
  done
  if ((${#pids[@]})); then
    printf '[demo] stopped %s (pids %s)\n' "${names[*]}" "${pids[*]}" >&2
  fi
  exit "$rc"
}
on_signal() { interrupted=1; trap - "$1"; exit "$2"; }
trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM
trap 'on_signal HUP 129' HUP

die() { printf '\n[demo] error: %s\n' "$*" >&2; exit 1; }

# start NAME LOG CMD...: run CMD in the background, stdout and stderr to LOG.
start() {
  local name=$1 log=$2; shift 2
  # Without job control this child is no group leader, so setsid(1) does not fork: $! is the
  # pid of the command itself, and of its process group.
  setsid "$@" >"$log" 2>&1 </dev/null &
  pids+=("$!")
  names+=("$name")
}

# wait_line NAME PID LOG REGEX: waits (30 s) for a line matching REGEX in LOG; prints it.
wait_line() {
  local name=$1 pid=$2 log=$3 regex=$4 deadline=$((SECONDS + 30)) line
  while :; do
    line=$(grep -m1 -E "$regex" "$log" 2>/dev/null || true)
    [[ -z $line ]] || { printf '%s\n' "$line"; return 0; }
    alive "$pid" || die "$name exited during start-up (log: $log)"
    ((SECONDS < deadline)) || die "$name did not print /$regex/ within 30 s (log: $log)"
    sleep 0.1
  done
}

for b in ivy-emulator ivy-webhook-operator examples/receiver; do
  [[ -x $bin/$b ]] || die "$bin/$b is missing: run hack/demo.sh (it builds everything) instead of --inside"
done

# ---- the CRD ---------------------------------------------------------------------------------
header "CRD"
kubectl apply --server-side -f crds/
kubectl wait --for=condition=Established --timeout=60s crd/webhooksubscriptions.webhooks.ivy.dev

# ---- Ivy (the emulator) ----------------------------------------------------------------------
header "Ivy emulator, receiver, kubelet stand-in, operator"
start ivy-emulator "$demo/emulator.log" "$bin/ivy-emulator" \
  --listen 127.0.0.1:0 --api-key "$api_key" --plain-http-to-loopback --retry-schedule 1s,2s,4s
line=$(wait_line ivy-emulator "${pids[-1]}" "$demo/emulator.log" '^listening on http://')
ivy=${line#listening on }
ivy=${ivy%/}
say "ivy-emulator  $ivy  (API key $api_key; admin API $ivy/admin/; log $demo/emulator.log)"

# ---- the receiver ----------------------------------------------------------------------------
start receiver "$demo/receiver.log" "$bin/examples/receiver" \
  --listen 127.0.0.1:0 --secret-dir "$mount"
line=$(wait_line receiver "${pids[-1]}" "$demo/receiver.log" '^listening on http://')
receiver_addr=${line#listening on http://}
receiver_url="https://$receiver_addr/webhooks/ivy"
say "receiver      http://$receiver_addr/webhooks/ivy  (verifies X-Ivy-Signature with the files in $mount)"

# ---- the "kubelet" ---------------------------------------------------------------------------
start kubelet "$demo/kubelet.log" hack/demo.sh --kubelet "$namespace" "$secret" "$mount"
say "kubelet loop  copies Secret $namespace/$secret into $mount every second"

# ---- the operator ----------------------------------------------------------------------------
printf '%s' "$api_key" >"$demo/api-key"
chmod 600 "$demo/api-key"
start ivy-webhook-operator "$demo/operator.log" "$bin/ivy-webhook-operator" run \
  --ivy-base-url "$ivy" \
  --ivy-api-key-file "$demo/api-key" \
  --metrics-addr 127.0.0.1:0 \
  --resync-interval 30s \
  --rotation-grace-period 30s
line=$(wait_line ivy-webhook-operator "${pids[-1]}" "$demo/operator.log" 'metrics and health server listening')
metrics_addr=$(grep -oE 'addr=[0-9.:]+' <<<"$line" | head -n1)
metrics_addr=${metrics_addr#addr=}
say "operator      resync 30s, rotation grace 30s; metrics http://$metrics_addr/metrics; log $demo/operator.log"

# ---- the WebhookSubscription -----------------------------------------------------------------
header "WebhookSubscription $namespace/$resource -> $receiver_url"
say "(The CRD admits only https URLs. The emulator runs with --plain-http-to-loopback, so it"
say " delivers https://127.0.0.1:PORT/... over plain http to the receiver on that loopback port.)"
kubectl create namespace "$namespace"
manifest=$(sed -E "s#^(  url: ).*#\\1$receiver_url#" examples/webhooksubscription.yaml)
grep -qF "url: $receiver_url" <<<"$manifest" || die "could not set spec.url in examples/webhooksubscription.yaml"
applied_us=$(now_us)
kubectl apply -f - <<<"$manifest"
created_us=$(now_us)
if ! kubectl wait --for=condition=Ready "ivywh/$resource" -n "$namespace" --timeout=60s; then
  kubectl get ivywh "$resource" -n "$namespace" -o yaml >&2 || true
  die "$namespace/$resource did not become Ready within 60 s"
fi
ready_us=$(now_us)

header "kubectl get ivywh -n $namespace"
kubectl get ivywh -n "$namespace"
header "keys of Secret $namespace/$secret (values are never printed)"
kubectl get secret "$secret" -n "$namespace" -o go-template='{{range $k, $v := .data}}{{$k}}{{"\n"}}{{end}}'
subscription_id=$(kubectl get ivywh "$resource" -n "$namespace" -o jsonpath='{.status.subscriptionId}')
[[ -n $subscription_id ]] || die "status.subscriptionId is empty"

# ---- one signed delivery, verified by the receiver -------------------------------------------
header "test delivery: POST $ivy/webhook/$subscription_id/test"
deadline=$((SECONDS + 30))
until [[ -s $mount/signing-secret ]]; do
  ((SECONDS < deadline)) || die "the kubelet loop did not write $mount/signing-secret within 30 s"
  sleep 0.2
done
triggered_us=$(now_us)
curl -fsS -X POST "$ivy/webhook/$subscription_id/test" -H "X-Ivy-Api-Key: $api_key"
echo
deadline=$((SECONDS + 30))
until verified=$(grep -m1 -F '"verified":"current"' "$demo/receiver.log"); do
  ((SECONDS < deadline)) || die "the receiver verified no delivery within 30 s (log: $demo/receiver.log)"
  sleep 0.1
done
delivered_us=$(now_us)
say "receiver: $verified"

header "timing"
if [[ -n ${IVY_DEMO_STARTED_US:-} && -n ${IVY_DEMO_CONTROL_PLANE_US:-} ]]; then
  say "  tools, cargo build, Kubernetes binaries   $(secs "$IVY_DEMO_STARTED_US" "$IVY_DEMO_CONTROL_PLANE_US") s"
  say "  control plane (etcd, apiserver, kcm)      $(secs "$IVY_DEMO_CONTROL_PLANE_US" "$inside_us") s"
fi
say "  CRD, emulator, receiver, operator         $(secs "$inside_us" "$applied_us") s"
say "  kubectl apply                             $(secs "$applied_us" "$created_us") s  (the first write after a CRD is established is slow)"
say "  created -> Ready (Secret written)         $(secs "$created_us" "$ready_us") s"
say "  test delivery -> verified by receiver     $(secs "$triggered_us" "$delivered_us") s"
say "  total                                     $(secs "$started_us" "$delivered_us") s"

if [[ ${IVY_DEMO_EXIT_AFTER_READY:-0} == 1 ]]; then
  say
  say "IVY_DEMO_EXIT_AFTER_READY=1: stopping."
  exit 0
fi

# ---- next steps ------------------------------------------------------------------------------
cat <<EOF

==> The demo is running. In another terminal:

  export KUBECONFIG=$KUBECONFIG
  export PATH=$IVY_K8S_BIN_DIR:\$PATH   # kubectl and helm, built from source
  E=$ivy   # the emulator (Ivy)

  kubectl -n $namespace get ivywh -o wide
  kubectl -n $namespace describe ivywh $resource           # condition and Events

Things to try:

  # another signed test delivery (the receiver's log, below, gets one JSON line per delivery)
  curl -s -X POST \$E/webhook/$subscription_id/test -H 'X-Ivy-Api-Key: $api_key'
  # an order_created event with a realistic payload, through the emulator's admin API
  curl -s -o /dev/null -w '%{http_code}\\n' -X POST \$E/admin/events -H 'content-type: application/json' -d '{"type":"order_created"}'

  # rotate the signing secret: a new subscription, previous-signing-secret for 30 s, then gone
  kubectl -n $namespace annotate ivywh $resource webhooks.ivy.dev/rotate-secret="\$(date +%s)" --overwrite
  kubectl -n $namespace get secret $secret -o go-template='{{range \$k, \$v := .data}}{{\$k}}{{"\\n"}}{{end}}'

  # change the spec: the subscription at Ivy follows (Event Updated)
  kubectl -n $namespace patch ivywh $resource --type=merge -p '{"spec":{"events":["order_created","refund_succeeded","refund_failed"]}}'

  # change it at Ivy behind the operator's back: reverted within the 30 s resync (DriftReverted)
  curl -s -X PUT \$E/webhook/\$(kubectl -n $namespace get ivywh $resource -o jsonpath='{.status.subscriptionId}') \\
    -H 'X-Ivy-Api-Key: $api_key' -H 'content-type: application/json' -d '{"events":["test"]}'

  # what Ivy holds (ids, URLs, events, and the secrets: the emulator's admin API shows them)
  curl -s \$E/admin/subscriptions

  # delete: the subscription at Ivy goes first, then the Secret (garbage collection)
  kubectl -n $namespace delete ivywh $resource

Logs (removed on exit; keep them with IVY_KEEP_CONTROL_PLANE_DIR=1):

  tail -f $demo/operator.log
  tail -f $demo/receiver.log
  $demo/emulator.log, $demo/kubelet.log
  $IVY_CONTROL_PLANE_DIR/{etcd,kube-apiserver,kube-controller-manager}.log

Press Ctrl-C to stop everything (nothing is left running).
EOF

# Returns when one of the background processes exits, or a trapped signal arrives.
set +e
dead=""
wait -n -p dead "${pids[@]}"
status=$?
# Ctrl-C in a terminal reaches every process of the foreground group, the demo's too, and
# hack/with-control-plane.sh then stops this script with SIGTERM: allow it a moment to arrive.
sleep 2 &
sleeper=$!
wait "$sleeper"
set -e
for i in "${!pids[@]}"; do [[ ${pids[i]} == "$dead" ]] && dead="${names[i]} (pid $dead)"; done
die "${dead:-a demo process} exited unexpectedly with status $status"
}
