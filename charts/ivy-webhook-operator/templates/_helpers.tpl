{{/*
Chart name, truncated to 63 characters (a label value's limit).
*/}}
{{- define "ivy-webhook-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: fullnameOverride, else "<release>-<chart>", or the release
name alone when it already contains the chart name.
*/}}
{{- define "ivy-webhook-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
"<chart>-<version>" for the helm.sh/chart label.
*/}}
{{- define "ivy-webhook-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object the chart creates, then commonLabels (the schema keeps them from
repeating one of these). app.kubernetes.io/managed-by is Helm here; the operator's own label
value (ivy-webhook-operator) is only ever set on the Secrets it writes.
*/}}
{{- define "ivy-webhook-operator.labels" -}}
helm.sh/chart: {{ include "ivy-webhook-operator.chart" . }}
{{ include "ivy-webhook-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ (include "ivy-webhook-operator.imageTag" .) | replace "+" "_" | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: ivy-webhook-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Labels that select the operator pods (immutable in the Deployment: never add to these).
*/}}
{{- define "ivy-webhook-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ivy-webhook-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Name of the ServiceAccount the operator runs as.
*/}}
{{- define "ivy-webhook-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ivy-webhook-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image tag: image.tag, else the chart's appVersion.
*/}}
{{- define "ivy-webhook-operator.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/*
Full image reference: [registry/]repository:tag, plus @digest when a digest pins it.
*/}}
{{- define "ivy-webhook-operator.image" -}}
{{- $repository := .Values.image.repository }}
{{- with .Values.image.registry }}
{{- $repository = printf "%s/%s" . $repository }}
{{- end }}
{{- $ref := printf "%s:%s" $repository (include "ivy-webhook-operator.imageTag" .) }}
{{- if .Values.image.digest }}
{{- $ref = printf "%s@%s" $ref .Values.image.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{/*
The one namespace the operator watches, or "" for all namespaces.
*/}}
{{- define "ivy-webhook-operator.watchNamespace" -}}
{{- if gt (len .Values.watchNamespaces) 1 }}
{{- fail "watchNamespaces: the operator watches one namespace or all of them; install one release per namespace instead of listing several" }}
{{- end }}
{{- if eq (len .Values.watchNamespaces) 1 }}
{{- first .Values.watchNamespaces }}
{{- end }}
{{- end }}

{{/*
Name of the leader-election Lease.
*/}}
{{- define "ivy-webhook-operator.leaseName" -}}
{{- default (include "ivy-webhook-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
Refuses combinations of values that would deploy something broken.
*/}}
{{- define "ivy-webhook-operator.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled=true: without it every replica would reconcile the same resources at once" }}
{{- end }}
{{- if and (eq .Values.ivy.dialect "service") (not .Values.ivy.appSigningSecret.name) }}
{{- fail "ivy.dialect=service needs ivy.appSigningSecret.name: in this dialect subscriptions have no signing secret of their own, the merchant app's is used" }}
{{- end }}
{{- end }}

{{/*
Mount paths of the files the operator reads.
*/}}
{{- define "ivy-webhook-operator.apiKeyDir" -}}
/var/run/secrets/ivy-webhook-operator/api-key
{{- end }}
{{- define "ivy-webhook-operator.appSigningSecretDir" -}}
/var/run/secrets/ivy-webhook-operator/app-signing-secret
{{- end }}
{{- define "ivy-webhook-operator.caBundleDir" -}}
/etc/ivy-webhook-operator/ca
{{- end }}

{{/*
The operator's arguments, from the values (a YAML list). extraArgs come after them.
*/}}
{{- define "ivy-webhook-operator.args" -}}
- run
- {{ printf "--ivy-base-url=%s" .Values.ivy.baseUrl | quote }}
- {{ printf "--ivy-dialect=%s" .Values.ivy.dialect | quote }}
- {{ printf "--ivy-api-key-file=%s/api-key" (include "ivy-webhook-operator.apiKeyDir" .) | quote }}
{{- if (.Values.ivy.appSigningSecret | default dict).name }}
- {{ printf "--app-signing-secret-file=%s/signing-secret" (include "ivy-webhook-operator.appSigningSecretDir" .) | quote }}
{{- end }}
{{- $caBundle := .Values.ivy.caBundle | default dict }}
{{- if or $caBundle.configMap $caBundle.secret }}
- {{ printf "--ivy-ca-file=%s/ca.crt" (include "ivy-webhook-operator.caBundleDir" .) | quote }}
{{- end }}
{{- with .Values.ivy.requestTimeout }}
- {{ printf "--ivy-request-timeout=%s" . | quote }}
{{- end }}
{{- with .Values.ivy.rate }}
- {{ printf "--ivy-rate=%v" . | quote }}
{{- end }}
{{- with .Values.ivy.burst }}
- {{ printf "--ivy-burst=%d" (int .) | quote }}
{{- end }}
{{- with (include "ivy-webhook-operator.watchNamespace" .) }}
- {{ printf "--watch-namespace=%s" . | quote }}
{{- end }}
- {{ printf "--metrics-addr=0.0.0.0:%d" (int .Values.metrics.port) | quote }}
- {{ printf "--resync-interval=%s" .Values.resyncInterval | quote }}
- {{ printf "--rotation-grace-period=%s" .Values.rotationGracePeriod | quote }}
- {{ printf "--concurrency=%d" (int .Values.concurrency) | quote }}
- {{ printf "--allow-adoption=%t" .Values.allowAdoption | quote }}
{{- if .Values.leaderElection.enabled }}
- --leader-election
- {{ printf "--lease-name=%s" (include "ivy-webhook-operator.leaseName" .) | quote }}
{{- with .Values.leaderElection.leaseDuration }}
- {{ printf "--lease-duration=%s" . | quote }}
{{- end }}
{{- end }}
- {{ printf "--log-level=%s" .Values.logLevel | quote }}
- {{ printf "--log-format=%s" .Values.logFormat | quote }}
{{- end }}
