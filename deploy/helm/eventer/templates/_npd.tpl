{{/* node-problem-detector: names, labels, and what the values turn on. */}}
{{- define "npd.fullname" -}}
{{- printf "%s-npd" (include "eventer.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Not eventer's selector labels: its Service and PodDisruptionBudget must not pick NPD's pods. */}}
{{- define "npd.selectorLabels" -}}
app.kubernetes.io/name: node-problem-detector
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "npd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "npd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.npd.image.tag | toString | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: node-problem-detector
app.kubernetes.io/part-of: {{ include "eventer.name" . }}
{{- end -}}

{{- define "npd.serviceAccountName" -}}
{{- default (include "npd.fullname" .) .Values.npd.serviceAccountName -}}
{{- end -}}

{{/*
ACK's plugins this chart can run: the monitor file (files/npd/) and the script of the NPD image
it runs. Others of ACK's names have no working script in the image and fail rendering.
*/}}
{{- define "npd.pluginCatalog" -}}
fd_check: fd-check.json
network_problem_check: network-problem-check.json
{{- end -}}

{{/* alibaba_cloud_plugins ("fd_check,network_problem_check" or a list) as a JSON list, checked. */}}
{{- define "npd.plugins" -}}
{{- $raw := .Values.alibaba_cloud_plugins -}}
{{- $names := list -}}
{{- if kindIs "slice" $raw -}}
{{- $names = $raw -}}
{{- else if $raw -}}
{{- $names = splitList "," (toString $raw) -}}
{{- end -}}
{{- $catalog := include "npd.pluginCatalog" . | fromYaml -}}
{{- $plugins := list -}}
{{- range $names -}}
{{- $name := trim (toString .) -}}
{{- if $name -}}
{{- if not (hasKey $catalog $name) -}}
{{- fail (printf "alibaba_cloud_plugins: %q has no working script in the node-problem-detector image; this chart runs %s. Write it as an npd.customPluginMonitors entry (with its script in npd.pluginScripts), or remove it" $name (keys $catalog | sortAlpha | join " and ")) -}}
{{- end -}}
{{- $plugins = append $plugins $name -}}
{{- end -}}
{{- end -}}
{{- $plugins | uniq | toJson -}}
{{- end -}}

{{/*
The monitors, as {"systemLog": {file: content}, "customPlugin": {file: content}}: the standard
ones from files/npd/, ACK's plugins, then the user's own (npd-<name>).
*/}}
{{- define "npd.monitors" -}}
{{- $n := .Values.npd -}}
{{- $log := dict -}}
{{- $custom := dict -}}
{{- if $n.monitors.kernel -}}{{- $_ := set $log "kernel-monitor.json" (.Files.Get "files/npd/kernel-monitor.json") -}}{{- end -}}
{{- if $n.monitors.containerRuntime -}}{{- $_ := set $log "docker-monitor.json" (.Files.Get "files/npd/docker-monitor.json") -}}{{- end -}}
{{- if $n.monitors.systemd -}}{{- $_ := set $log "systemd-monitor.json" (.Files.Get "files/npd/systemd-monitor.json") -}}{{- end -}}
{{- $catalog := include "npd.pluginCatalog" . | fromYaml -}}
{{- range (include "npd.plugins" . | fromJsonArray) -}}
{{- $file := get $catalog . -}}
{{- $_ := set $custom $file ($.Files.Get (printf "files/npd/%s" $file)) -}}
{{- end -}}
{{- range $name, $config := $n.systemLogMonitors -}}
{{- $_ := set $log (printf "user-%s.json" $name) (toPrettyJson $config) -}}
{{- end -}}
{{- range $name, $config := $n.customPluginMonitors -}}
{{- $_ := set $custom (printf "user-%s.json" $name) (toPrettyJson $config) -}}
{{- end -}}
{{- dict "systemLog" $log "customPlugin" $custom | toJson -}}
{{- end -}}
