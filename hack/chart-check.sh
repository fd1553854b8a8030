#!/usr/bin/env bash
# Checks the Helm chart charts/ivy-webhook-operator:
#   1. static: the chart's files/crds/ is a byte copy of crds/ (and the chart has no crds/
#      folder), appVersion matches Cargo.toml, every value in values.yaml is preceded by a comment;
#   2. `helm lint --strict` and `helm template` for the default values and every variant in
#      charts/ivy-webhook-operator/ci/*-values.yaml; the renders contain no RBAC wildcard; the
#      CRDs the chart renders are those of crds/ (apart from the labels and annotations it adds);
#      the alert rules and the Grafana dashboard name only metrics and labels the operator
#      exports and have balanced expressions; the chart works as an umbrella chart's dependency;
#   3. values the chart must refuse are refused (typos, a literal API key, two watched
#      namespaces, replicas without leader election, the service dialect without its secret, a
#      CA bundle from two sources, a chart flag repeated in extraArgs, commonLabels replacing a
#      chart label, broken dashboard JSON);
#   4. when KUBECONFIG is set: every render and examples/ pass `kubectl apply --dry-run=server`
#      (after creating the namespaces and the CRDs they need: those of crds/ and, only if the
#      cluster has none, stub ServiceMonitor and PrometheusRule CRDs), and the RBAC, applied for
#      real under throw-away release names, grants the operator's ServiceAccount exactly the
#      verbs it needs (kubectl auth can-i), with restartOnRotation.enabled off and on; on a
#      copy of the chart whose CRDs have a group of their own, `helm install` creates the CRD, `helm upgrade` changes it (a new column, a new
#      event type), `helm uninstall` keeps it, and another release can take it over.
#      Everything this script created is deleted again.
#
#   hack/chart-check.sh                                # static, lint, render
#   hack/with-control-plane.sh hack/chart-check.sh     # ... and against a real API server
#
# Needs helm and kubectl on PATH. Ends with "N passed, N failed"; exits 1 if any check failed.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
chart=$root/charts/ivy-webhook-operator
crd_files=("$root"/crds/*.yaml)
namespace=ivy-system          # the release namespace of every render
watched=shop                  # the namespace of the single-namespace variant and of examples/

work=$(mktemp -d "${TMPDIR:-/tmp}/chart-check.XXXXXX")
# A discovery cache of its own: the throw-away CRDs below must never linger in the cache of the
# kubectl calls that run after this script (the end-to-end tests).
export KUBECACHEDIR=$work/kube-cache
passed=0
failed=0
created_namespaces=()
created_crds=()
applied_files=()
helm_releases=()

log() { printf '[chart-check] %s\n' "$*" >&2; }

cleanup() {
  if [[ -n ${KUBECONFIG:-} ]]; then
    local file release
    for release in "${helm_releases[@]}"; do
      helm uninstall --namespace "$namespace" --ignore-not-found "$release" >/dev/null 2>&1 || true
    done
    for file in "${applied_files[@]}"; do
      kubectl delete --ignore-not-found --wait=false -f "$file" >/dev/null 2>&1 || true
    done
    if ((${#created_crds[@]})); then
      # Waited for: a CRD still being deleted would linger in the tests that follow.
      kubectl delete crd --ignore-not-found --timeout=60s "${created_crds[@]}" >/dev/null 2>&1 || true
    fi
    if ((${#created_namespaces[@]})); then
      kubectl delete namespace --ignore-not-found --wait=false "${created_namespaces[@]}" >/dev/null 2>&1 || true
    fi
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# check NAME CMD...: runs CMD, counts it, and shows its output when it fails.
check() {
  local name=$1; shift
  if "$@" >"$work/out" 2>&1; then
    passed=$((passed + 1))
    printf 'ok    %s\n' "$name"
  else
    failed=$((failed + 1))
    printf 'FAIL  %s\n' "$name"
    sed 's/^/      /' "$work/out" | head -n 40
  fi
}

# refuse NAME EXPECTED HELM-ARGS...: `helm template` must fail with EXPECTED in its message.
refuse() {
  local name=$1 expected=$2; shift 2
  check "refuses $name" refused "$expected" "$@"
}
refused() {
  local expected=$1; shift
  if helm template ivy-webhook-operator "$chart" --namespace "$namespace" "$@" >"$work/refused" 2>&1; then
    echo "helm template succeeded but should have failed"
    return 1
  fi
  if ! grep -qF -- "$expected" "$work/refused"; then
    echo "failed, but without the expected message: $expected"
    cat "$work/refused"
    return 1
  fi
}

for tool in helm kubectl; do
  if ! command -v "$tool" >/dev/null; then
    log "$tool is not on PATH (hack/with-control-plane.sh puts the project's builds there)"
    exit 1
  fi
done

# ---- 1. static ---------------------------------------------------------------------------------
# The chart renders its CRDs from files/crds/ (templates/crds.yaml); `make crd` copies them there.
crd_copies_match() {
  local file status=0
  for file in "${crd_files[@]}"; do
    cmp "$file" "$chart/files/crds/$(basename "$file")" || status=1
  done
  for file in "$chart"/files/crds/*; do
    if [[ ! -e $root/crds/$(basename "$file") ]]; then
      echo "$file is not in crds/"
      status=1
    fi
  done
  return "$status"
}
check "the chart's files/crds/ is a byte copy of crds/ (make crd)" crd_copies_match
# Helm installs a chart's crds/ folder on the first install only, and a CRD there would
# collide with the same CRD rendered from templates/crds.yaml.
check "the chart has no crds/ folder" test ! -e "$chart/crds"

app_version_matches_cargo() {
  local cargo chart_app
  cargo=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)
  chart_app=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$chart/Chart.yaml")
  echo "Cargo.toml version: $cargo, Chart.yaml appVersion: $chart_app"
  [[ -n $cargo && $cargo == "$chart_app" ]]
}
check "Chart.yaml appVersion equals Cargo.toml version" app_version_matches_cargo

# Every value in values.yaml must be described by a comment: on the lines right above its key,
# or above the key of an enclosing value (a commented `resources:` describes its requests and
# limits). A key that only groups other keys (`image:`) needs no comment of its own when each
# of its values has one.
every_value_commented() {
  awk '
    function report(n, text) { printf "values.yaml:%d: no comment describes %s\n", n, text; bad = 1 }
    function pop_to(indent) {
      while (sp > 0 && ind[sp] >= indent) {
        if (!kids[sp] && !cov[sp]) report(num[sp], txt[sp])
        sp--
      }
    }
    /^[[:space:]]*#/ { pending = 1; next }
    /^[[:space:]]*$/ { pending = 0; next }
    /^[[:space:]]*-/ { pending = 0; next }
    /^[[:space:]]*[A-Za-z0-9_.\/"-]+:/ {
      indent = match($0, /[^ ]/)
      pop_to(indent)
      covered = pending || (sp > 0 && cov[sp])
      if (sp > 0) kids[sp]++
      if ($0 ~ /:[[:space:]]*$/) {
        sp++; ind[sp] = indent; cov[sp] = covered; kids[sp] = 0; num[sp] = NR; txt[sp] = $0
      } else if (!covered) {
        report(NR, $0)
      }
      pending = 0
      next
    }
    { pending = 0 }
    END { pop_to(-1); exit bad }
  ' "$chart/values.yaml"
}
check "every value in values.yaml has a comment" every_value_commented

# ---- 2. lint and render ------------------------------------------------------------------------
variants=(default)
for file in "$chart"/ci/*-values.yaml; do
  name=$(basename "$file" -values.yaml)
  variants+=("$name")
done

# render FILE HELM-ARGS...: the chart as `helm template` renders it.
render() {
  local file=$1; shift
  helm template ivy-webhook-operator "$chart" --namespace "$namespace" "$@" >"$file"
}

values_args() {
  [[ $1 == default ]] || printf '%s\n' --values "$chart/ci/$1-values.yaml"
}

no_rbac_wildcards() {
  # Every RBAC list in the chart is quoted, so a wildcard would render as "*" (or a bare *).
  if grep -nE "(\"\*\"|'\*'|^[[:space:]]*-[[:space:]]*\*[[:space:]]*$|\[\*\])" "$1"; then
    echo "wildcard found in $1"
    return 1
  fi
}

for variant in "${variants[@]}"; do
  mapfile -t args < <(values_args "$variant")
  check "helm lint --strict ($variant)" helm lint --strict "$chart" --namespace "$namespace" "${args[@]}"
  rendered=$work/rendered-$variant.yaml
  check "helm template ($variant)" render "$rendered" "${args[@]}"
  check "no wildcard in RBAC ($variant)" no_rbac_wildcards "$rendered"
done

rendered_has() {
  local file=$1; shift
  local pattern
  for pattern in "$@"; do
    if ! grep -qE -- "$pattern" "$file"; then
      echo "missing in $file: $pattern"
      return 1
    fi
  done
}
rendered_lacks() {
  local file=$1; shift
  local pattern
  for pattern in "$@"; do
    if grep -nE -- "$pattern" "$file"; then
      echo "unexpected in $file: $pattern"
      return 1
    fi
  done
}
default_render_ok() {
  local file=$work/rendered-default.yaml
  rendered_has "$file" "^kind: ClusterRoleBinding" "replicas: 2" "- --leader-election" \
    "--lease-name=ivy-webhook-operator\"" "--ivy-api-key-file=/var/run/secrets/" \
    "name: POD_NAMESPACE" "name: POD_NAME" "path: /healthz" "path: /readyz" \
    "readOnlyRootFilesystem: true" "runAsUser: 65532" &&
    rendered_lacks "$file" "--watch-namespace" "IVY_API_KEY" "^kind: ServiceMonitor" \
      "^kind: NetworkPolicy" "--app-signing-secret-file"
}
check "default render: cluster-wide, leader election, 2 replicas, API key file, probes, hardened" \
  default_render_ok
# canonical_crds OUT FILE...: the CustomResourceDefinitions in the FILEs without their labels and
# annotations, sorted by name, as Helm's own fromYaml/toYaml writes them (a throw-away chart):
# two sets compare equal exactly when their content does, whatever their layout.
canonical_crds() {
  local out=$1; shift
  local normalizer=$work/normalizer file i=0
  rm -rf "$normalizer"
  mkdir -p "$normalizer/templates" "$normalizer/in"
  printf 'apiVersion: v2\nname: normalizer\nversion: 0.0.0\n' >"$normalizer/Chart.yaml"
  for file in "$@"; do
    cp "$file" "$normalizer/in/$i.yaml"
    i=$((i + 1))
  done
  cat >"$normalizer/templates/crds.yaml" <<'EOF'
{{- $crds := dict }}
{{- range $path, $_ := .Files.Glob "in/*.yaml" }}
{{- range regexSplit "(?m)^---[ \t]*$" ($.Files.Get $path) -1 }}
{{- $doc := fromYaml . }}
{{- if eq ($doc.kind | default "") "CustomResourceDefinition" }}
{{- $_ := unset $doc.metadata "labels" }}
{{- $_ := unset $doc.metadata "annotations" }}
{{- $_ := set $crds $doc.metadata.name $doc }}
{{- end }}
{{- end }}
{{- end }}
{{- range keys $crds | sortAlpha }}
---
{{ get $crds . | toYaml }}
{{- end }}
EOF
  helm template normalizer "$normalizer" >"$out"
}
rendered_crds_are_those_of_crds_dir() {
  canonical_crds "$work/crds-source.yaml" "${crd_files[@]}" || return 1
  canonical_crds "$work/crds-rendered.yaml" "$work/rendered-default.yaml" || return 1
  if ! grep -q '^kind: CustomResourceDefinition' "$work/crds-source.yaml"; then
    echo "no CustomResourceDefinition in crds/"
    return 1
  fi
  diff -u "$work/crds-source.yaml" "$work/crds-rendered.yaml"
}
check "default render: the CRDs of crds/, unchanged but for labels and annotations" \
  rendered_crds_are_those_of_crds_dir
# count_matches FILE PATTERN EXPECTED
count_matches() {
  local found
  found=$(grep -cE -- "$2" "$1")
  echo "$found lines match $2 in $1, expected $3"
  ((found == $3))
}
crd_switches_ok() {
  local crds=${#crd_files[@]}
  count_matches "$work/rendered-default.yaml" "^kind: CustomResourceDefinition" "$crds" &&
    count_matches "$work/rendered-default.yaml" "helm.sh/resource-policy: keep" "$crds" &&
    render "$work/crds-not-kept.yaml" --set crds.keep=false &&
    count_matches "$work/crds-not-kept.yaml" "^kind: CustomResourceDefinition" "$crds" &&
    rendered_lacks "$work/crds-not-kept.yaml" "helm.sh/resource-policy" &&
    render "$work/crds-disabled.yaml" --set crds.enabled=false &&
    rendered_lacks "$work/crds-disabled.yaml" "^kind: CustomResourceDefinition"
}
check "CRDs: kept on uninstall by default, crds.keep=false drops that, crds.enabled=false omits them" \
  crd_switches_ok
single_namespace_render_ok() {
  local file=$work/rendered-single-namespace.yaml
  rendered_has "$file" "--watch-namespace=$watched\"" "^  namespace: $watched\$" \
    "^  name: ivy-system-ivy-webhook-operator-claims$" &&
    count_matches "$file" "^kind: ClusterRoleBinding" 1
}
check "single-namespace render: --watch-namespace=$watched, Role there, one ClusterRoleBinding (claims)" \
  single_namespace_render_ok
check "service-dialect render: --app-signing-secret-file" \
  rendered_has "$work/rendered-service-dialect.yaml" "--app-signing-secret-file=" "--ivy-dialect=service"
monitoring_render_ok() {
  local file=$work/rendered-monitoring.yaml
  rendered_has "$file" "^kind: ServiceMonitor" "honorLabels: true" "targetLabel: cluster" \
    "regex: ivywh_account_" "^kind: PrometheusRule" "^            severity: critical" \
    "^            team: payments" "^kind: ConfigMap" '^    grafana_dashboard: "1"' \
    "^    grafana_folder: Ivy" "^  namespace: monitoring$" '"uid": "ivy-webhook-operator"' \
    "^kind: NetworkPolicy" &&
    rendered_lacks "$work/rendered-default.yaml" "^kind: PrometheusRule" "^kind: ConfigMap"
}
check "monitoring render: ServiceMonitor relabelings, PrometheusRule, dashboard ConfigMap, NetworkPolicy" \
  monitoring_render_ok

# What the rules and the dashboard may name: the metrics the operator exports
# (src/controller/metrics.rs, and the monitoring bundle of issue 10), each with its own labels.
# Histograms also have _bucket (label le), _sum and _count series.
declare -A metric_labels=(
  [ivywh_reconciles_total]="result"
  [ivywh_reconcile_duration_seconds]=""
  [ivywh_ivy_api_calls_total]="operation status"
  [ivywh_ivy_api_call_duration_seconds]="operation outcome"
  [ivywh_resources]="ready"
  [ivywh_build_info]="version"
  [ivywh_leader]=""
  [ivywh_signing_secret_rotation_timestamp_seconds]="namespace name"
  [ivywh_account_ivy_calls_total]="account"
  [ivywh_account_throttled_waits_total]="account"
  [ivywh_account_rate_limited_total]="account"
  [process_cpu_seconds_total]=""
  [process_resident_memory_bytes]=""
  [process_open_fds]=""
)
histograms=" ivywh_reconcile_duration_seconds ivywh_ivy_api_call_duration_seconds "
# Labels Prometheus puts on every scraped series (a clashing metric label becomes exported_*).
target_labels=" job namespace pod instance service endpoint container exported_namespace "
dashboard=$chart/files/dashboards/ivy-webhook-operator.json

# series_are_known FILE: every metric FILE names is one the operator exports, and every label
# that a selector in FILE matches on is one of that metric's or of its target.
series_are_known() {
  local series name base labels label status=0 seen=0
  while read -r series; do
    seen=$((seen + 1))
    name=${series%%\{*}
    base=$name
    if [[ ! -v metric_labels[$name] && $name =~ ^(.*)_(bucket|sum|count)$ &&
      $histograms == *" ${BASH_REMATCH[1]} "* ]]; then
      base=${BASH_REMATCH[1]}
    fi
    if [[ ! -v metric_labels[$base] ]]; then
      echo "unknown metric: $name"
      status=1
      continue
    fi
    labels=" ${metric_labels[$base]} $target_labels "
    [[ $name == *_bucket ]] && labels+=" le "
    while read -r label; do
      if [[ -n $label && $labels != *" $label "* ]]; then
        echo "$name has no label $label: $series"
        status=1
      fi
    done < <(grep -oE '[a-zA-Z_][a-zA-Z0-9_]*[[:space:]]*(=~|!~|!=|=)' <<<"${series#"$name"}" |
      sed -E 's/[[:space:]]*(=~|!~|!=|=)$//')
  done < <(grep -oE '\b(ivywh|process)_[a-z0-9_]+(\{[^}]*\})?' "$1" | sort -u)
  echo "$seen distinct series selectors checked in $1"
  ((status == 0 && seen > 0))
}
# documents_of_kind KIND FILE: the documents of FILE (a render) whose kind is KIND.
documents_of_kind() {
  awk -v kind="$1" '
    /^---/ { if (keep) printf "%s", doc; doc = ""; keep = 0 }
    { doc = doc $0 "\n" }
    $0 == "kind: " kind { keep = 1 }
    END { if (keep) printf "%s", doc }
  ' "$2"
}
documents_of_kind PrometheusRule "$work/rendered-monitoring.yaml" >"$work/prometheusrule.yaml"
check "the alert rules name only metrics and labels the operator exports" \
  series_are_known "$work/prometheusrule.yaml"
check "the dashboard names only metrics and labels the operator exports" series_are_known "$dashboard"
dashboard_shows_every_metric() {
  local name status=0
  for name in "${!metric_labels[@]}"; do
    grep -q "$name" "$dashboard" || { echo "the dashboard does not show $name"; status=1; }
  done
  return "$status"
}
check "the dashboard shows every metric the operator exports" dashboard_shows_every_metric
# No promtool here: at least every expression's brackets must pair up.
expressions_balanced() {
  {
    sed -n "s/^ *expr: '\(.*\)'\$/\1/p" "$work/prometheusrule.yaml"
    grep -oE '"expr": "([^"\\]|\\.)*"' "$dashboard" | sed 's/^"expr": //'
  } | awk '
    {
      depth = 0; bad = 0; count++
      for (i = 1; i <= length($0); i++) {
        c = substr($0, i, 1)
        if (c == "(" || c == "{" || c == "[") { stack[++depth] = c; continue }
        if (c != ")" && c != "}" && c != "]") continue
        open = c == ")" ? "(" : c == "}" ? "{" : "["
        if (depth == 0 || stack[depth] != open) { bad = 1; break }
        depth--
      }
      if (bad || depth) { print "unbalanced: " $0; status = 1 }
    }
    END { printf "%d expressions\n", count; exit status || count < 10 }
  '
}
check "every alert and dashboard expression has balanced brackets" expressions_balanced
# Grafana skips a dashboard it cannot parse without a word, so the chart refuses to render one.
refuses_broken_dashboard() {
  local copy=$work/broken-dashboard/ivy-webhook-operator
  mkdir -p "$work/broken-dashboard" && cp -R "$chart" "$copy" || return 1
  printf '{"title": "Ivy webhook operator",\n' >"$copy/files/dashboards/ivy-webhook-operator.json"
  if helm template ivy-webhook-operator "$copy" --set grafanaDashboard.enabled=true >"$work/broken.out" 2>&1; then
    echo "rendered a dashboard that is not JSON"
    return 1
  fi
  grep -F "ivy-webhook-operator.json is missing or not valid JSON" "$work/broken.out"
}
check "refuses to render a dashboard that is not valid JSON" refuses_broken_dashboard
single_replica_render_ok() {
  local file=$work/rendered-single-replica.yaml
  rendered_has "$file" "type: Recreate" "replicas: 1" &&
    rendered_lacks "$file" "--leader-election" "leases" "^kind: PodDisruptionBudget"
}
check "single-replica render: Recreate, no --leader-election, no Lease Role, no PDB" \
  single_replica_render_ok
check "json-logs render: --log-format=json" \
  rendered_has "$work/rendered-json-logs.yaml" "--log-format=json"
extension_points_render_ok() {
  local file=$work/rendered-extension-points.yaml objects labelled
  rendered_has "$file" 'image: "registry.example.com/mirror/ivy-webhook-operator:' \
    '^    reloader.stakater.com/auto: "true"' '^        team: payments' '- "--ivy-ca-file=/etc/ivy-ca/ca.crt"' \
    "name: corporate-ca" "mountPath: /etc/ivy-ca" "tcpSocket:" "periodSeconds: 20" \
    "failureThreshold: 6" "path: /readyz" &&
    rendered_lacks "$file" "path: /healthz" || return 1
  # commonLabels: on every object (metadata.labels of a top-level object are indented by 4).
  objects=$(grep -c '^kind:' "$file")
  labelled=$(grep -c '^    team: payments$' "$file")
  echo "$objects objects, $labelled with commonLabels"
  ((objects > 0 && objects == labelled))
}
check "extension-points render: registry, commonLabels everywhere, annotations, extraArgs, volumes, probes" \
  extension_points_render_ok
receivers_render_ok() {
  local file=$work/rendered-receivers.yaml
  rendered_has "$file" '- "--ivy-ca-file=/etc/ivy-webhook-operator/ca/ca.crt"' \
    "name: ivy-ca-bundle" "name: corporate-ca" 'key: "bundle.pem"' "mountPath: /etc/ivy-webhook-operator/ca" \
    'resources: \["deployments", "statefulsets", "daemonsets"\]' &&
    rendered_lacks "$work/rendered-default.yaml" "--ivy-ca-file" "ivy-ca-bundle" '"deployments"'
}
check "receivers render: CA bundle mounted and passed as --ivy-ca-file, workload RBAC only when enabled" \
  receivers_render_ok
ca_bundle_from_a_secret() {
  render "$work/ca-secret.yaml" --set ivy.caBundle.secret=corporate-ca &&
    rendered_has "$work/ca-secret.yaml" "secretName: corporate-ca" 'key: "ca.crt"' '--ivy-ca-file='
}
check "a CA bundle from a Secret is mounted from that Secret" ca_bundle_from_a_secret

# The chart as an umbrella chart's dependency: the parent's global values and the dependency's
# condition value reach it (the schema must allow both), and the condition switches it off.
umbrella_renders() {
  local umbrella=$work/umbrella
  mkdir -p "$umbrella"
  cat >"$umbrella/Chart.yaml" <<EOF
apiVersion: v2
name: platform
version: 0.0.0
dependencies:
  - name: ivy-webhook-operator
    version: ">=0.0.0-0"
    repository: file://$chart
    condition: ivy-webhook-operator.enabled
EOF
  printf 'global:\n  team: payments\nivy-webhook-operator:\n  enabled: true\n' >"$umbrella/values.yaml"
  helm dependency update "$umbrella" >/dev/null || return 1
  helm template platform "$umbrella" --namespace "$namespace" >"$work/umbrella-on.yaml" || return 1
  helm template platform "$umbrella" --namespace "$namespace" \
    --set ivy-webhook-operator.enabled=false >"$work/umbrella-off.yaml" || return 1
  rendered_has "$work/umbrella-on.yaml" "^kind: Deployment" &&
    rendered_lacks "$work/umbrella-off.yaml" "^kind: Deployment"
}
check "as an umbrella chart's dependency: global values accepted, condition enabled honoured" \
  umbrella_renders

# ---- 3. refusals -------------------------------------------------------------------------------
refuse "a literal API key (ivy.apiKey)" "additional properties 'apiKey' not allowed" --set ivy.apiKey=k
refuse "a literal API key in the Secret reference" "additional properties 'value' not allowed" \
  --set ivy.apiKeySecret.value=k
refuse "IVY_API_KEY in extraEnv" "/extraEnv/0/name" --set 'extraEnv[0].name=IVY_API_KEY' \
  --set 'extraEnv[0].value=k'
refuse "a misspelt top-level value" "additional properties 'replicas' not allowed" --set replicas=3
refuse "a misspelt nested value" "additional properties 'enable' not allowed" --set serviceMonitor.enable=true
refuse "two watched namespaces" "maxItems" --set 'watchNamespaces={a,b}'
refuse "an unknown dialect" "/ivy/dialect" --set ivy.dialect=graphql
refuse "an unparsable duration" "/resyncInterval" --set resyncInterval=often
refuse "an unknown log format" "/logFormat" --set logFormat=xml
refuse "several replicas without leader election" "needs leaderElection.enabled=true" \
  --set replicaCount=3 --set leaderElection.enabled=false
refuse "the service dialect without ivy.appSigningSecret" "needs ivy.appSigningSecret.name" \
  --set ivy.dialect=service
refuse "a chart flag again in extraArgs" "extraArgs: --log-level is set by the chart" \
  --set 'extraArgs[0]=--log-level=debug'
refuse "an extraArgs item that is not a flag" "/extraArgs/0" --set 'extraArgs[0]=debug'
refuse "the API key in extraArgs" "/extraArgs/0" --set 'extraArgs[0]=--ivy-api-key=k'
refuse "commonLabels that replace a chart label" "invalid propertyName 'app.kubernetes.io/name'" \
  --set 'commonLabels.app\.kubernetes\.io/name=x'
refuse "an extra volume named like the chart's" "/extraVolumes/0/name" \
  --set 'extraVolumes[0].name=ivy-api-key'
refuse "a CA bundle from both a ConfigMap and a Secret" "/ivy/caBundle" \
  --set ivy.caBundle.configMap=a --set ivy.caBundle.secret=b
refuse "an extra volume named like the chart's CA bundle" "/extraVolumes/0/name" \
  --set 'extraVolumes[0].name=ivy-ca-bundle'
refuse "--ivy-ca-file in extraArgs when the chart sets it" "extraArgs: --ivy-ca-file is set by the chart" \
  --set ivy.caBundle.configMap=a --set 'extraArgs[0]=--ivy-ca-file=/x'
refuse "a tag or digest in image.repository" "/image/repository" \
  --set image.repository=ghcr.io/ivy-webhook-operator/ivy-webhook-operator:0.1.0

# ---- 4. against an API server ------------------------------------------------------------------
if [[ -z ${KUBECONFIG:-} ]]; then
  log "KUBECONFIG is not set: skipping the server-side checks (run under hack/with-control-plane.sh)"
else
  check "API server reachable" kubectl version

  ensure_namespace() {
    kubectl get namespace "$1" >/dev/null 2>&1 && return 0
    kubectl create namespace "$1" && created_namespaces+=("$1")
  }
  for ns in "$namespace" "$watched" monitoring; do
    ensure_namespace "$ns" >/dev/null 2>&1 || true
    check "namespace $ns exists" kubectl get namespace "$ns"
  done

  ensure_crd() {
    local name=$1 file=$2
    if ! kubectl get crd "$name" >/dev/null 2>&1; then
      kubectl apply --server-side -f "$file" || return 1
      created_crds+=("$name")
    fi
    kubectl wait --for=condition=Established --timeout=60s "crd/$name"
  }
  crd_name_of() { sed -n '/^metadata:/,/^[^ ]/s/^  name: //p' "$1" | head -n 1; }
  for file in "${crd_files[@]}"; do
    name=$(crd_name_of "$file")
    check "crds/$(basename "$file") passes a server-side dry run" \
      kubectl apply --dry-run=server --server-side -f "$file"
    ensure_crd "$name" "$file" >/dev/null 2>&1 || true
    check "CRD $name established" kubectl wait --for=condition=Established --timeout=60s "crd/$name"
  done

  # stub_crd KIND PLURAL [SCHEMA]: only when the cluster has no Prometheus Operator, a CRD of
  # its KIND for dry runs; SCHEMA (openAPIV3Schema, indented by 10) defaults to "anything goes".
  stub_crd() {
    local kind=$1 plural=$2
    local schema=${3:-          type: object
          x-kubernetes-preserve-unknown-fields: true}
    local file=$work/$plural-stub-crd.yaml
    cat >"$file" <<EOF
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: $plural.monitoring.coreos.com
  labels:
    app.kubernetes.io/name: chart-check-stub
spec:
  group: monitoring.coreos.com
  names:
    kind: $kind
    listKind: ${kind}List
    plural: $plural
    singular: ${kind,,}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
$schema
EOF
    ensure_crd "$plural.monitoring.coreos.com" "$file"
  }
  # The part of the Prometheus Operator's PrometheusRule schema the chart uses, without room for
  # unknown fields: kubectl's strict field validation then refuses a misspelt or misplaced field.
  prometheusrule_schema='          type: object
          properties:
            apiVersion: {type: string}
            kind: {type: string}
            metadata: {type: object}
            spec:
              type: object
              properties:
                groups:
                  type: array
                  items:
                    type: object
                    required: [name, rules]
                    properties:
                      name: {type: string, minLength: 1}
                      interval: {type: string, pattern: "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
                      rules:
                        type: array
                        minItems: 1
                        items:
                          type: object
                          required: [expr]
                          properties:
                            alert: {type: string}
                            record: {type: string}
                            expr: {x-kubernetes-int-or-string: true}
                            for: {type: string, pattern: "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
                            labels: {type: object, additionalProperties: {type: string}}
                            annotations: {type: object, additionalProperties: {type: string}}'
  stub_crd ServiceMonitor servicemonitors >/dev/null 2>&1 || true
  stub_crd PrometheusRule prometheusrules "$prometheusrule_schema" >/dev/null 2>&1 || true
  for plural in servicemonitors prometheusrules; do
    check "CRD $plural.monitoring.coreos.com established" \
      kubectl wait --for=condition=Established --timeout=60s "crd/$plural.monitoring.coreos.com"
  done
  # So that the dry run of the chart's PrometheusRule below means something.
  misspelt_rule_refused() {
    if kubectl apply --dry-run=server -f - <<EOF 2>&1; then
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: chart-check, namespace: $namespace}
spec:
  groups:
    - name: chart-check
      rules:
        - {alert: ChartCheck, expr: vector(1), fro: 5m}
EOF
      echo "a rule with the unknown field fro was accepted"
      return 1
    fi
  }
  check "the API server refuses a PrometheusRule with a misspelt field" misspelt_rule_refused

  for variant in "${variants[@]}"; do
    check "kubectl apply --dry-run=server ($variant)" \
      kubectl apply --dry-run=server -f "$work/rendered-$variant.yaml"
  done
  for example in "$root"/examples/*.yaml; do
    check "kubectl apply --dry-run=server examples/$(basename "$example")" \
      kubectl apply --dry-run=server -f "$example"
  done

  # RBAC for real, under release names of its own, then `kubectl auth can-i` as the operator.
  # can_i / cannot_i NAMESPACE-ARGS VERB RESOURCE [NAME]
  rbac_render() {
    local release=$1; shift
    helm template "$release" "$chart" --namespace "$namespace" \
      --show-only templates/serviceaccount.yaml --show-only templates/rbac.yaml "$@"
  }
  can_i() {
    local _
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      kubectl auth can-i --as="$as" "$@" >/dev/null 2>&1 && return 0
      sleep 1   # RBAC objects reach the authorizer through a watch
    done
    echo "denied: kubectl auth can-i --as=$as $*"
    return 1
  }
  cannot_i() {
    if kubectl auth can-i --as="$as" "$@" >/dev/null 2>&1; then
      echo "allowed but should not be: kubectl auth can-i --as=$as $*"
      return 1
    fi
  }
  # workload_checks RESTART: get and patch on the three workload kinds exactly when RESTART is
  # true (restartOnRotation.enabled), never more than that on them.
  workload_checks() {
    local restart=$1 kind verb
    for kind in deployments.apps statefulsets.apps daemonsets.apps; do
      for verb in get patch; do
        if [[ $restart == true ]]; then
          can_i "$verb" "$kind" -n "$watched" || return 1
        else
          cannot_i "$verb" "$kind" -n "$watched" || return 1
        fi
      done
      for verb in list update delete create; do
        cannot_i "$verb" "$kind" -n "$watched" || return 1
      done
    done
    cannot_i patch pods -n "$watched" || return 1
    cannot_i patch replicasets.apps -n "$watched" || return 1
  }
  # rbac_checks OTHER-NAMESPACE LEASE RESTART, with the global array scope: where list/watch must work.
  rbac_checks() {
    local other=$1 lease=$2 restart=$3
    local subs=webhooksubscriptions.webhooks.ivy.dev
    local verb
    for verb in list watch; do
      can_i "$verb" "$subs" "${scope[@]}" || return 1
      can_i "$verb" secrets "${scope[@]}" || return 1
    done
    can_i patch "$subs" -n "$watched" || return 1
    can_i patch "$subs" --subresource=status -n "$watched" || return 1
    local accounts=ivyaccounts.webhooks.ivy.dev clusters=clusterivyaccounts.webhooks.ivy.dev
    for verb in list watch; do can_i "$verb" "$accounts" "${scope[@]}" || return 1; done
    can_i get "$accounts" -n "$watched" || return 1
    can_i patch "$accounts" --subresource=status -n "$watched" || return 1
    cannot_i patch "$accounts" -n "$watched" || return 1
    if [[ -z $other ]]; then
      for verb in get list watch; do can_i "$verb" "$clusters" || return 1; done
      can_i patch "$clusters" --subresource=status || return 1
      can_i get namespaces || return 1
    else
      cannot_i list "$clusters" || return 1
      cannot_i get namespaces || return 1
    fi
    cannot_i create "$clusters" || return 1
    for verb in get create patch; do can_i "$verb" secrets -n "$watched" || return 1; done
    for verb in create patch; do can_i "$verb" events.events.k8s.io -n "$watched" || return 1; done
    can_i create leases.coordination.k8s.io -n "$namespace" || return 1
    for verb in get patch; do
      can_i "$verb" "leases.coordination.k8s.io/$lease" -n "$namespace" || return 1
    done
    # What the operator never does.
    cannot_i update "$subs" -n "$watched" || return 1
    cannot_i delete "$subs" -n "$watched" || return 1
    cannot_i update "$subs" --subresource=status -n "$watched" || return 1
    cannot_i delete secrets -n "$watched" || return 1
    cannot_i update secrets -n "$watched" || return 1
    cannot_i get configmaps -n "$watched" || return 1
    cannot_i create pods -n "$watched" || return 1
    cannot_i get leases.coordination.k8s.io/another-lease -n "$namespace" || return 1
    cannot_i create leases.coordination.k8s.io -n "$watched" || return 1
    workload_checks "$restart" || return 1
    if [[ -n $other ]]; then
      cannot_i get secrets -n "$other" || return 1
      cannot_i get deployments.apps -n "$other" || return 1
      cannot_i list secrets --all-namespaces || return 1
      # Listing WebhookSubscriptions everywhere is the claim check before a take-over.
      can_i list "$subs" --all-namespaces || return 1
      cannot_i watch "$subs" --all-namespaces || return 1
      cannot_i patch "$subs" -n "$other" || return 1
    fi
  }

  # Each scope with restartOnRotation off (the default) and on.
  for mode in all single all-restart single-restart; do
    release=ivywh-rbac-$mode
    file=$work/rbac-$mode.yaml
    restart=false
    restart_args=()
    if [[ $mode == *-restart ]]; then
      restart=true
      restart_args=(--set restartOnRotation.enabled=true)
    fi
    if [[ $mode == all* ]]; then
      rbac_render "$release" "${restart_args[@]}" >"$file"
      scope=(--all-namespaces); other=""; label="all namespaces"
    else
      rbac_render "$release" --values "$chart/ci/single-namespace-values.yaml" "${restart_args[@]}" >"$file"
      scope=(-n "$watched"); other=default; label="namespace $watched"
    fi
    label+=", restartOnRotation.enabled=$restart"
    applied_files+=("$file")
    check "RBAC applies (watching $label)" kubectl apply -f "$file"
    as=system:serviceaccount:$namespace:$release-ivy-webhook-operator
    check "RBAC grants exactly what the operator needs (watching $label)" \
      rbac_checks "$other" "$release-ivy-webhook-operator" "$restart"
  done

  # CRDs through Helm, on a copy of the chart whose CRDs have a group of their own: installing,
  # upgrading and uninstalling it never touches the real CRDs or a real WebhookSubscription.
  test_group=chart-check.ivy.dev
  test_crd=webhooksubscriptions.$test_group
  test_chart=$work/crd-lifecycle/ivy-webhook-operator
  mkdir -p "$work/crd-lifecycle"
  cp -R "$chart" "$test_chart"
  # A group and short name of its own: kubectl must never resolve `ivywh` to the copy.
  sed -i -e "s/webhooks\.ivy\.dev/$test_group/g" -e "s/^    - ivywh\$/    - ivywhcheck/" \
    -e "s/^    - ivyacct\$/    - ivyacctcheck/" -e "s/^    - civyacct\$/    - civyacctcheck/" \
    "$test_chart"/files/crds/*.yaml
  test_crds=("$test_crd" "ivyaccounts.$test_group" "clusterivyaccounts.$test_group")
  created_crds+=("${test_crds[@]}")
  helm_releases+=(ivywh-crd-check ivywh-crd-adopt)

  # retry CMD...: CMD until it succeeds, for up to 20 seconds (discovery and a changed CRD's
  # schema reach kubectl and the API server's handlers a moment after the write).
  retry() {
    local _
    for _ in $(seq 20); do
      "$@" >"$work/retry.out" 2>&1 && { cat "$work/retry.out"; return 0; }
      sleep 1
    done
    cat "$work/retry.out"
    return 1
  }
  # test_subscription EVENT: a WebhookSubscription of the test group, subscribed to EVENT.
  test_subscription() {
    cat <<EOF
apiVersion: $test_group/v1alpha1
kind: WebhookSubscription
metadata:
  name: chart-check
  namespace: $watched
spec:
  url: https://chart-check.example.com/webhooks/ivy
  events: [$1]
EOF
  }
  # crd_owned_by RELEASE: the CRD is established, belongs to RELEASE and is kept on uninstall.
  crd_owned_by() {
    kubectl wait --for=condition=Established --timeout=60s "crd/$test_crd" || return 1
    local owner policy
    owner=$(kubectl get crd "$test_crd" -o jsonpath='{.metadata.annotations.meta\.helm\.sh/release-name}')
    policy=$(kubectl get crd "$test_crd" -o jsonpath='{.metadata.annotations.helm\.sh/resource-policy}')
    echo "release-name: $owner, resource-policy: $policy"
    [[ $owner == "$1" && $policy == keep ]]
  }
  install_creates_crd() {
    helm install ivywh-crd-check "$test_chart" --namespace "$namespace" --hide-notes && crd_owned_by ivywh-crd-check
  }
  check "helm install creates the CRD, owned by the release and kept on uninstall" install_creates_crd

  category_and_wide_columns() {
    test_subscription order_created | kubectl apply -f - || return 1
    local names header wide
    names=$(retry kubectl get ivy -n "$watched" -o name) || return 1
    echo "kubectl get ivy: $names"
    grep -qx "webhooksubscription.$test_group/chart-check" <<<"$names" || return 1
    header=$(kubectl get "$test_crd" -n "$watched" | head -n 1)
    wide=$(kubectl get "$test_crd" -n "$watched" -o wide | head -n 1)
    printf 'columns: %s\nwide:    %s\n' "$header" "$wide"
    [[ $header != *MESSAGE* && $wide == *REASON*MESSAGE* ]]
  }
  check "kubectl get ivy (the CRD's category) lists it; -o wide adds REASON and MESSAGE" \
    category_and_wide_columns

  # The next release's CRD: one more printer column and one more event type.
  grow_test_crd() {
    local file
    file=$(grep -l "^  name: $test_crd\$" "$test_chart"/files/crds/*.yaml) || return 1
    awk '
      /^    - jsonPath: \.metadata\.creationTimestamp$/ && !column {
        print "    - jsonPath: .spec.url"; print "      name: ChartCheck"; print "      type: string"
        column = 1
      }
      { print }
      /^ *- order_created$/ && !event {
        match($0, /^ */); print substr($0, 1, RLENGTH) "- chart_check_event"; event = 1
      }
      END { if (!column || !event) { print "no Age column or no order_created event" > "/dev/stderr"; exit 1 } }
    ' "$file" >"$file.new" && mv "$file.new" "$file"
  }
  new_event_refused() {
    if test_subscription chart_check_event | kubectl apply --dry-run=server -f - 2>&1; then
      echo "accepted an event type the CRD does not list"
      return 1
    fi
  }
  new_event_accepted() { test_subscription chart_check_event | kubectl apply --dry-run=server -f -; }
  upgrade_changes_crd() {
    grow_test_crd && helm upgrade ivywh-crd-check "$test_chart" --namespace "$namespace" --hide-notes || return 1
    local columns
    columns=$(kubectl get crd "$test_crd" -o jsonpath='{.spec.versions[0].additionalPrinterColumns[*].name}')
    echo "served columns: $columns"
    [[ " $columns " == *" ChartCheck "* ]] && retry new_event_accepted
  }
  check "before an upgrade, the CRD refuses an event type it does not list" new_event_refused
  check "helm upgrade changes the CRD in the cluster: new column served, new event type accepted" \
    upgrade_changes_crd

  uninstall_keeps_crd() {
    helm uninstall ivywh-crd-check --namespace "$namespace" --wait || return 1
    kubectl get crd "$test_crd" && kubectl get "$test_crd" chart-check -n "$watched"
  }
  check "helm uninstall keeps the CRD and its resources (crds.keep=true)" uninstall_keeps_crd

  # What docs/install.md says to do with a CRD that another release, or kubectl, installed.
  adopt_kept_crd() {
    if helm install ivywh-crd-adopt "$test_chart" --namespace "$namespace" >"$work/adopt.out" 2>&1; then
      echo "installed although the CRD belongs to another release"
      return 1
    fi
    grep -F "invalid ownership metadata" "$work/adopt.out" || { cat "$work/adopt.out"; return 1; }
    kubectl annotate --overwrite crd "${test_crds[@]}" meta.helm.sh/release-name=ivywh-crd-adopt \
      meta.helm.sh/release-namespace="$namespace" &&
      kubectl label --overwrite crd "${test_crds[@]}" app.kubernetes.io/managed-by=Helm &&
      helm install ivywh-crd-adopt "$test_chart" --namespace "$namespace" --hide-notes &&
      crd_owned_by ivywh-crd-adopt
  }
  check "a kept CRD is refused to a new release, and taken over after annotating it" adopt_kept_crd
fi

printf '%d passed, %d failed\n' "$passed" "$failed"
((failed == 0))
