{{/* The release's name for its objects: "<release>-warren", or the release name when it already says warren. */}}
{{- define "warren.fullname" -}}
{{- if eq .Release.Name .Chart.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The labels that select this release's pods (Service, PodDisruptionBudget, Deployment). */}}
{{- define "warren.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "warren.labels" -}}
{{ include "warren.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The Secret the chart creates when a value is given instead of an existing Secret. */}}
{{- define "warren.secretName" -}}
{{ include "warren.fullname" . }}
{{- end -}}

{{- define "warren.databaseSecret" -}}
{{- if .Values.database.existingSecret -}}
{{ .Values.database.existingSecret }}
{{- else -}}
{{ include "warren.secretName" . }}
{{- end -}}
{{- end -}}

{{- define "warren.databaseSecretKey" -}}
{{- if .Values.database.existingSecret -}}
{{ .Values.database.existingSecretKey }}
{{- else -}}
DATABASE_URL
{{- end -}}
{{- end -}}

{{- define "warren.jwtSecret" -}}
{{- if .Values.jwt.existingSecret -}}
{{ .Values.jwt.existingSecret }}
{{- else -}}
{{ include "warren.secretName" . }}
{{- end -}}
{{- end -}}

{{- define "warren.jwtSecretKey" -}}
{{- if .Values.jwt.existingSecret -}}
{{ .Values.jwt.existingSecretKey }}
{{- else -}}
WARREN_JWT_SECRET
{{- end -}}
{{- end -}}
