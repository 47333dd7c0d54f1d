{{- define "demoweb-operator.fullname" -}}
{{- printf "%s" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "demoweb-operator.labels" -}}
app.kubernetes.io/name: demoweb-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "demoweb-operator.selectorLabels" -}}
app.kubernetes.io/name: demoweb-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
