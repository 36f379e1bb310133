{{/* Chart name, truncated to the 63 characters of a label value. */}}
{{- define "cardplane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name when it contains the chart name, else <release>-<chart>. */}}
{{- define "cardplane.fullname" -}}
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

{{- define "cardplane.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "cardplane.labels" -}}
helm.sh/chart: {{ include "cardplane.chart" . }}
{{ include "cardplane.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels selecting the manager pods. */}}
{{- define "cardplane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cardplane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: manager
{{- end }}

{{- define "cardplane.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cardplane.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the receiver's TLS Secret. */}}
{{- define "cardplane.tlsSecretName" -}}
{{- default (printf "%s-receiver-tls" (include "cardplane.fullname" .)) .Values.webhook.tls.secretName }}
{{- end }}

{{- define "cardplane.receiverServiceName" -}}
{{- printf "%s-receiver" (include "cardplane.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cardplane.metricsServiceName" -}}
{{- printf "%s-metrics" (include "cardplane.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The AuthorizationReview API's Service. */}}
{{- define "cardplane.reviewServiceName" -}}
{{- printf "%s-review" (include "cardplane.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of objects that are not the manager's: the CRDs (cluster-wide, one set for every release) and the
dashboard. Without the selector labels, so nothing that selects the manager's pods selects them. */}}
{{- define "cardplane.baseLabels" -}}
helm.sh/chart: {{ include "cardplane.chart" . }}
app.kubernetes.io/name: {{ include "cardplane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The rule-set admission webhook's Service, which the ValidatingWebhookConfiguration names. */}}
{{- define "cardplane.admissionServiceName" -}}
{{- printf "%s-admission" (include "cardplane.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The admission webhook's TLS Secret (tls.crt, tls.key, ca.crt), mounted at /admission-tls. */}}
{{- define "cardplane.admissionSecretName" -}}
{{- printf "%s-admission-tls" (include "cardplane.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The names the API server verifies the admission webhook's certificate for: the Service's. */}}
{{- define "cardplane.admissionDNSNames" -}}
{{- $svc := include "cardplane.admissionServiceName" . }}
{{- list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) | toJson }}
{{- end }}

{{/* The ClusterRole whose holders may read /metrics (config/rbac/metrics_reader_role.yaml for release cardplane). */}}
{{- define "cardplane.metricsReaderName" -}}
{{- printf "%s-metrics-reader" (include "cardplane.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
