{{/* Chart name, truncated to a DNS label. */}}
{{- define "moe-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "moe-operator.fullname" -}}
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

{{- define "moe-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "moe-operator.labels" -}}
helm.sh/chart: {{ include "moe-operator.chart" . }}
{{ include "moe-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: moe-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels (immutable on the Deployment: never add to these). */}}
{{- define "moe-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "moe-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "moe-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "moe-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "moe-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{- define "moe-operator.leaderElectionNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{/*
Rules for the namespaced resources the operator reads and writes. Cluster-wide in
the ClusterRole, or in a Role in operator.watchNamespace when that is set.
Keep in sync with src/operator.ts (informers), src/controllers/moedeployment/
actuator.ts + reconciler.ts + sources.ts (writes, heat ConfigMap) and
src/adapters/kube.ts (apply = patch, create, merge patch, delete, status update, events).
*/}}
{{- define "moe-operator.namespacedRules" -}}
# MoEDeployments: informer (list/watch); patch only of metadata.finalizers (mode PullRequest
# with closeOnDelete: moe.dev/gitops-pull-request). The operator never writes spec.
- apiGroups: ["moe.dev"]
  resources: ["moedeployments"]
  verbs: ["get", "list", "watch", "patch"]
# Status: replaceNamespacedCustomObjectStatus (update); patch for SSA of status.
- apiGroups: ["moe.dev"]
  resources: ["moedeployments/status"]
  verbs: ["get", "update", "patch"]
# Expert-shard pods: created, annotated (merge patch) and drained/deleted one by one.
# (Cluster-wide get/list/watch on pods is in the ClusterRole: GPU accounting.)
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["create", "patch", "delete"]
# Router Deployment: server-side apply (patch; create on first apply); deleted when
# spec.serving.topology switches to WideEP (once the groups serve).
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Placement ConfigMap (server-side apply) and the heat ConfigMap named in a MoEDeployment (get).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Topology WideEP: the LeaderWorkerSet of EP groups, server-side apply (patch; create on first
# apply); deleted when spec.serving.topology switches back to Disaggregated (once it serves). Its
# pods are read from the pod informer (they carry the managed-by label).
- apiGroups: ["leaderworkerset.x-k8s.io"]
  resources: ["leaderworkersets"]
  verbs: ["get", "create", "patch", "delete"]
# Weight staging (spec.prewarm.staging): one Job per node stages or evicts the weights; the
# informer lists only the operator's Jobs (managed-by label); a finished Job is deleted.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "delete"]
# Events on MoEDeployments (core/v1; events.k8s.io is not used).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
