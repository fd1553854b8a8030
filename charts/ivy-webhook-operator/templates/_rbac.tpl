{{/*
The operator's permissions on the resources it reconciles. Cluster-wide when it watches every
namespace, a Role in the one namespace it watches otherwise. Every verb below is one the
operator's code calls; nothing is granted by wildcard.
*/}}
{{- define "ivy-webhook-operator.rules" }}
rules:
  # The controller lists and watches WebhookSubscriptions (its cache) and patches them to add
  # and remove the webhooks.ivy.dev/cleanup finalizer (JSON patch). It never reads one by name
  # outside the cache, never replaces (update) and never deletes one.
  - apiGroups: ["webhooks.ivy.dev"]
    resources: ["webhooksubscriptions"]
    verbs: ["list", "watch", "patch"]
  # The status (subscription id, Ready condition) is written by server-side apply on the
  # status subresource, which is a patch.
  - apiGroups: ["webhooks.ivy.dev"]
    resources: ["webhooksubscriptions/status"]
    verbs: ["patch"]
  # The Secrets that hold the signing secrets.
  # - get: each reconcile reads the resource's Secret by name, including one it does not own
  #   (to refuse to overwrite it).
  # - list, watch: the controller watches the Secrets it manages and reconciles their
  #   WebhookSubscription again when one is changed or deleted. It selects them by the label
  #   app.kubernetes.io/managed-by=ivy-webhook-operator, but RBAC cannot restrict by label, so
  #   this is read access to every Secret in scope; set watchNamespaces to narrow the scope.
  # - create, patch: every write is a server-side apply; applying a Secret that does not exist
  #   yet creates it, which the API server authorizes as create.
  # No update and no delete: Secrets go away through their owner reference (garbage
  # collection), never through the operator.
  - apiGroups: [""]
    resources: ["secrets"]
    verbs: ["get", "list", "watch", "create", "patch"]
  # Events about WebhookSubscriptions (Created, Rotated, SecretConflict, ...). The kube-rs
  # Recorder creates an events.k8s.io/v1 Event and patches it when the same Event repeats.
  - apiGroups: ["events.k8s.io"]
    resources: ["events"]
    verbs: ["create", "patch"]
  {{- if .Values.restartOnRotation.enabled }}
  # spec.restartOnRotation: when a signing secret changes, the operator reads each named
  # workload and patches only its pod template's webhooks.ivy.dev/secret-hash annotation
  # (merge patch), which rolls its pods. RBAC cannot limit this to the named workloads.
  - apiGroups: ["apps"]
    resources: ["deployments", "statefulsets", "daemonsets"]
    verbs: ["get", "patch"]
  {{- end }}
  # IvyAccounts (docs/tenancy.md): the account controller watches them and writes their Ready
  # condition (server-side apply on the status subresource); a WebhookSubscription's reconcile
  # reads the one it names. Their API-key Secrets are read with the Secret get above.
  - apiGroups: ["webhooks.ivy.dev"]
    resources: ["ivyaccounts"]
    verbs: ["get", "list", "watch"]
  - apiGroups: ["webhooks.ivy.dev"]
    resources: ["ivyaccounts/status"]
    verbs: ["patch"]
  {{- if not (include "ivy-webhook-operator.watchNamespace" .) }}
  # ClusterIvyAccounts, served only when every namespace is watched; a namespaceSelector in
  # their conditions needs the labels of the resource's namespace.
  - apiGroups: ["webhooks.ivy.dev"]
    resources: ["clusterivyaccounts"]
    verbs: ["get", "list", "watch"]
  - apiGroups: ["webhooks.ivy.dev"]
    resources: ["clusterivyaccounts/status"]
    verbs: ["patch"]
  - apiGroups: [""]
    resources: ["namespaces"]
    verbs: ["get"]
  {{- end }}
{{- end }}
