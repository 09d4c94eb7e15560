{{/*
Names. A release is one agent service in one environment, so objects are named after the release: two releases
(demo-prod, demo-dev) in one namespace never clash, and the Service name is what propeller's endpoint names.
*/}}
{{- define "flyte-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "flyte-agent.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "flyte-agent.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "flyte-agent.service" -}}
{{- default .Release.Name .Values.agent.service | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "flyte-agent.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "flyte-agent.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "flyte-agent.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
Selector labels: minimal and immutable (a Deployment's selector cannot change on upgrade).
*/}}
{{- define "flyte-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flyte-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Common labels: `app.kubernetes.io/part-of=flyte-agents` finds every agent release; flyte-agents.dev/service and
flyte-agents.dev/environment tell the releases of one service apart.
*/}}
{{- define "flyte-agent.labels" -}}
{{ include "flyte-agent.selectorLabels" . }}
helm.sh/chart: {{ include "flyte-agent.chart" . }}
app.kubernetes.io/version: {{ include "flyte-agent.imageTag" . | trunc 63 | trimAll "-_." | quote }}
app.kubernetes.io/component: agent
app.kubernetes.io/part-of: flyte-agents
app.kubernetes.io/managed-by: {{ .Release.Service }}
flyte-agents.dev/service: {{ include "flyte-agent.service" . }}
{{- with .Values.agent.environment }}
flyte-agents.dev/environment: {{ . }}
{{- end }}
{{- end }}

{{- define "flyte-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "flyte-agent.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The Secret mounted at /etc/secrets: an existing one, the chart-managed one, or none.
*/}}
{{- define "flyte-agent.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else if .Values.secrets.data }}
{{- include "flyte-agent.fullname" . }}
{{- end }}
{{- end }}

{{- define "flyte-agent.replicas" -}}
{{- if .Values.autoscaling.enabled }}
{{- .Values.autoscaling.minReplicas }}
{{- else }}
{{- .Values.replicaCount }}
{{- end }}
{{- end }}

{{/*
Restricted container security context (Pod Security Standard "restricted").
*/}}
{{- define "flyte-agent.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsGroup }}
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
The propeller endpoint strings for this Service.
*/}}
{{- define "flyte-agent.k8sEndpoint" -}}
k8s://{{ include "flyte-agent.fullname" . }}.{{ .Release.Namespace }}:{{ .Values.grpc.port }}
{{- end }}

{{- define "flyte-agent.dnsEndpoint" -}}
dns:///{{ include "flyte-agent.fullname" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}:{{ .Values.grpc.port }}
{{- end }}
