{{- define "monitor.labels" -}}
app.kubernetes.io/name: monitor
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "monitor.selector" -}}
app.kubernetes.io/name: monitor
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The agent's monitor.yaml: the user's config plus what the pod layout fixes. */}}
{{- define "monitor.config" -}}
{{- $fixed := dict
  "rules" (dict "paths" (list "/etc/monitor/rules" "/etc/monitor/rules.d"))
  "context" (dict "host_root" "/host" "docker_socket" .Values.containerRuntimeSocket)
  "server" (dict "listen" (printf "0.0.0.0:%d" (int .Values.port))) -}}
{{- toYaml (mergeOverwrite (deepCopy .Values.config) $fixed) -}}
{{- end -}}
