{{- define "demoweb-operator.fullname" -}}
{{- printf "%s" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "demoweb-operator.labels" -}}
app.kubernetes.io/name: demoweb-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- /* A label value has no "+": Flux's `reconcileStrategy: Revision` builds the chart as 0.1.0+<sha>. */}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "demoweb-operator.selectorLabels" -}}
app.kubernetes.io/name: demoweb-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
