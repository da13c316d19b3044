{{/*
Labels of every object. Names are fixed (kedge, kedge-metrics-apiserver, ...) as in deploy/:
the APIService, the Service and kedge's flags refer to them.
*/}}
{{- define "kedge.labels" -}}
{{ include "kedge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: kedge
{{- end }}

{{- define "kedge.selectorLabels" -}}
app.kubernetes.io/name: kedge
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kedge.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
