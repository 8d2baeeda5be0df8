{{/*
The objects are named "macguard" whatever the release is called: one
installer per cluster writes each node's CNI directories, and the names
match the kustomize variants in deploy/ (deploy/helm_test.go compares the
two).
*/}}
{{- define "macguard.name" -}}macguard{{- end -}}

{{/* Labels on every object's metadata: the kustomize variants' one, plus Helm's. */}}
{{- define "macguard.labels" -}}
app.kubernetes.io/name: {{ include "macguard.name" . }}
{{ include "macguard.helmLabels" . }}
{{- end -}}

{{/* Helm's labels (which deploy/helm_test.go leaves out of the comparison). */}}
{{- define "macguard.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "macguard.tag" . | trunc 63 | quote }}
{{- end -}}

{{- define "macguard.tag" -}}{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}

{{/* repository:tag, or repository:tag@digest when a digest is given. */}}
{{- define "macguard.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (include "macguard.tag" .) -}}
{{- if .Values.image.digest -}}{{- $ref = printf "%s@%s" $ref .Values.image.digest -}}{{- end -}}
{{- $ref -}}
{{- end -}}

{{/* The container's paths of the node's CNI directories. */}}
{{- define "macguard.hostBinDir" -}}/host/opt/cni/bin{{- end -}}
{{- define "macguard.hostConfDir" -}}/host/etc/cni/net.d{{- end -}}

{{/*
The conflist file names the agent works on (a list, possibly empty): the
chaining target's (chaining.conflist or the target's default), and in
uninstall mode uninstall.conflists too, so that an upgrade with
--reuse-values --set uninstall.enabled=true removes the entry the release
chained, whatever its file name.
*/}}
{{- define "macguard.conflists" -}}
{{- $files := list -}}
{{- if ne .Values.chaining.target "none" -}}
{{- $default := dict "cilium" "05-cilium.conflist" "calico" "10-calico.conflist" "custom" "" -}}
{{- $file := .Values.chaining.conflist | default (get $default .Values.chaining.target) -}}
{{- if not $file -}}
{{- fail "chaining.conflist: chaining.target \"custom\" needs the conflist's file name in cni.confPath (e.g. 10-flannel.conflist)" -}}
{{- end -}}
{{- $files = list $file -}}
{{- end -}}
{{- if .Values.uninstall.enabled -}}
{{- $files = concat .Values.uninstall.conflists $files | uniq -}}
{{- end -}}
{{- toJson $files -}}
{{- end -}}

{{/* MACGUARD_CHAIN_INTO: the conflists as the container sees them, comma-separated. */}}
{{- define "macguard.chainInto" -}}
{{- $paths := list -}}
{{- range (include "macguard.conflists" . | fromJsonArray) -}}
{{- $paths = append $paths (printf "%s/%s" (include "macguard.hostConfDir" $) .) -}}
{{- end -}}
{{- join "," $paths -}}
{{- end -}}

{{/* MACGUARD_PLUGIN_CONFIG: the entry, chaining.plugin with its type. */}}
{{- define "macguard.pluginConfig" -}}
{{- merge (dict "type" "macguard") (deepCopy .Values.chaining.plugin) | toJson -}}
{{- end -}}

{{/* The agent's environment (without extraEnv and the doctor's NODE_NAME). */}}
{{- define "macguard.env" -}}
- name: MACGUARD_CNI_BIN_DIR
  value: {{ include "macguard.hostBinDir" . }}
{{- with include "macguard.chainInto" . }}
- name: MACGUARD_CHAIN_INTO
  value: {{ . }}
{{- end }}
{{- if .Values.uninstall.enabled }}
{{- if .Values.uninstall.removeBinary }}
- name: MACGUARD_REMOVE_BINARY
  value: "true"
{{- end }}
{{- else }}
{{- if ne .Values.chaining.target "none" }}
- name: MACGUARD_PLUGIN_CONFIG
  value: {{ include "macguard.pluginConfig" . | replace "'" "''" | printf "'%s'" }}
{{- end }}
{{- if .Values.chaining.convertConf }}
- name: MACGUARD_CONVERT_CONF
  value: "true"
{{- end }}
{{- end }}
{{- with .Values.resync }}
- name: MACGUARD_RESYNC
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* install or uninstall */}}
{{- define "macguard.command" -}}{{ ternary "uninstall" "install" .Values.uninstall.enabled }}{{- end -}}

{{/* Whether the node's CNI conf dir is mounted. */}}
{{- define "macguard.mountConf" -}}{{ if or .Values.uninstall.enabled (ne .Values.chaining.target "none") }}true{{ end }}{{- end -}}

{{/*
The webhook's (webhook-*.yaml): its name, the labels that select its pods
(not app.kubernetes.io/name=macguard, which the DaemonSet's selector
matches and cannot change on upgrade), and whether macguardctl keeps the
certificates itself (and so needs RBAC) or cert-manager does.
*/}}
{{- define "macguard.webhookName" -}}macguard-webhook{{- end -}}

{{- define "macguard.webhookSelectorLabels" -}}
app.kubernetes.io/name: {{ include "macguard.webhookName" . }}
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "macguard.webhookLabels" -}}
{{ include "macguard.webhookSelectorLabels" . }}
{{ include "macguard.helmLabels" . }}
{{- end -}}

{{- define "macguard.webhookSelfCerts" -}}{{ if eq .Values.webhook.certificates.source "self" }}true{{ end }}{{- end -}}
