{{/* Chart name, truncated for label values. */}}
{{- define "lifeguard-reflector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the StatefulSet and its pods ("NAME-0", "NAME-1", ...). Kept short: pod names
become DNS labels (63 characters) with the ordinal appended.
*/}}
{{- define "lifeguard-reflector.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "lifeguard-reflector.headless" -}}
{{- printf "%s-headless" (include "lifeguard-reflector.fullname" .) }}
{{- end }}

{{/* DNS suffix shared by every member: <pod>.<this>. */}}
{{- define "lifeguard-reflector.peerDomain" -}}
{{- printf "%s.%s.svc.%s" (include "lifeguard-reflector.headless" .) .Release.Namespace .Values.clusterDomain }}
{{- end }}

{{- define "lifeguard-reflector.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "lifeguard-reflector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "lifeguard-reflector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lifeguard-reflector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "lifeguard-reflector.memberLabels" -}}
{{ include "lifeguard-reflector.selectorLabels" . }}
app.kubernetes.io/component: member
{{- end }}

{{- define "lifeguard-reflector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "lifeguard-reflector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "lifeguard-reflector.secretName" -}}
{{- default (include "lifeguard-reflector.fullname" .) .Values.auth.existingSecret }}
{{- end }}

{{- define "lifeguard-reflector.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "lifeguard-reflector.bootstrapMembers" -}}
{{- default .Values.replicaCount .Values.cluster.bootstrapMembers }}
{{- end }}

{{/* Quorum of n voters: n/2 + 1. */}}
{{- define "lifeguard-reflector.quorum" -}}
{{- add (div (int .Values.replicaCount) 2) 1 }}
{{- end }}

{{/* Checks that JSON Schema cannot express with a clear message. */}}
{{- define "lifeguard-reflector.validate" -}}
{{- if and (not .Values.auth.existingSecret) (not .Values.auth.adminToken) }}
{{- fail "auth.adminToken or auth.existingSecret is required: the reflector's HTTP port listens on the pod IP and refuses to start with open admin endpoints" }}
{{- end }}
{{- if ge (int .Values.config.heartbeatTimeoutMs) (int .Values.config.electionTimeoutMs) }}
{{- fail "config.heartbeatTimeoutMs must be below config.electionTimeoutMs" }}
{{- end }}
{{- if eq (int .Values.ports.raft) (int .Values.ports.http) }}
{{- fail "ports.raft and ports.http must differ" }}
{{- end }}
{{- if gt (int (include "lifeguard-reflector.bootstrapMembers" .)) (int .Values.replicaCount) }}
{{- fail "cluster.bootstrapMembers cannot exceed replicaCount: the bootstrap members must all run" }}
{{- end }}
{{- end }}

{{/* The security contexts, shared by the members and the test pod. */}}
{{- define "lifeguard-reflector.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}
