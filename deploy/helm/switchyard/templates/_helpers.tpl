{{/* Chart name, at most 63 characters. */}}
{{- define "switchyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: <release>-switchyard unless the release already says it. */}}
{{- define "switchyard.fullname" -}}
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

{{- define "switchyard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchyard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "switchyard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "switchyard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ ternary "gateway" "application" (eq .Values.mode "standalone") }}
{{- end }}

{{/* Name of the ConfigMap or Secret that holds gateway.yaml. */}}
{{- define "switchyard.configName" -}}
{{- coalesce .Values.config.existingSecret .Values.config.existingConfigMap (printf "%s-config" (include "switchyard.fullname" .)) }}
{{- end }}

{{/* Name of the Secret the ${VAR} environment comes from. */}}
{{- define "switchyard.secretEnvName" -}}
{{- default (printf "%s-keys" (include "switchyard.fullname" .)) .Values.secretEnv.existingSecret }}
{{- end }}

{{/* Data-plane listen address: loopback only in sidecar mode. */}}
{{- define "switchyard.listen" -}}
{{- printf "%s:%d" (ternary "0.0.0.0" "127.0.0.1" (eq .Values.mode "standalone")) (int .Values.ports.http) }}
{{- end }}

{{- define "switchyard.validate" -}}
{{- if not (has .Values.mode (list "standalone" "sidecar")) }}
{{- fail (printf "mode must be standalone or sidecar, not %q" .Values.mode) }}
{{- end }}
{{- if and .Values.config.existingSecret .Values.config.existingConfigMap }}
{{- fail "set config.existingSecret or config.existingConfigMap, not both" }}
{{- end }}
{{- end }}

{{/* A probe: httpGet on the data plane (standalone), or the image's bash health check
     inside the container (sidecar: the kubelet cannot reach 127.0.0.1). */}}
{{- define "switchyard.probeHandler" -}}
{{- if eq .root.Values.mode "standalone" }}
httpGet:
  path: {{ .path }}
  port: http
{{- else }}
exec:
  command: ["switchyard-healthcheck", {{ .path | quote }}]
{{- end }}
{{- end }}

{{/* The gateway container, the same in both modes. */}}
{{- define "switchyard.gatewayContainer" -}}
- name: switchyard
  image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if eq .Values.mode "sidecar" }}
  restartPolicy: Always
  {{- end }}
  args: ["serve", "-c", "/etc/switchyard/gateway.yaml"]
  env:
    - name: SWITCHYARD_LISTEN
      value: {{ include "switchyard.listen" . | quote }}
    - name: SWITCHYARD_METRICS_LISTEN
      value: {{ printf "0.0.0.0:%d" (int .Values.ports.metrics) | quote }}
    {{- range $name, $value := .Values.env }}
    - name: {{ $name }}
      value: {{ $value | quote }}
    {{- end }}
    {{- range $name, $_ := .Values.secretEnv.values }}
    - name: {{ $name }}
      valueFrom:
        secretKeyRef:
          name: {{ include "switchyard.secretEnvName" $ }}
          key: {{ $name }}
    {{- end }}
  ports:
    {{- if eq .Values.mode "standalone" }}
    - name: http
      containerPort: {{ .Values.ports.http }}
      protocol: TCP
    {{- end }}
    - name: metrics
      containerPort: {{ .Values.ports.metrics }}
      protocol: TCP
  {{- if eq .Values.mode "sidecar" }}
  startupProbe:
    {{- include "switchyard.probeHandler" (dict "root" . "path" "/healthz") | trim | nindent 4 }}
    periodSeconds: 1
    failureThreshold: 30
  {{- end }}
  livenessProbe:
    {{- include "switchyard.probeHandler" (dict "root" . "path" "/healthz") | trim | nindent 4 }}
    periodSeconds: 10
    timeoutSeconds: 2
    failureThreshold: 3
  readinessProbe:
    {{- include "switchyard.probeHandler" (dict "root" . "path" "/readyz") | trim | nindent 4 }}
    periodSeconds: 5
    timeoutSeconds: 2
    failureThreshold: 2
  {{- if and (eq .Values.mode "standalone") (gt (int .Values.preStopSleepSeconds) 0) }}
  lifecycle:
    preStop:
      exec:
        command: ["sleep", {{ .Values.preStopSleepSeconds | quote }}]
  {{- end }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: config
      mountPath: /etc/switchyard
      readOnly: true
{{- end }}

{{/* The config volume: the ConfigMap or Secret, its key mounted as gateway.yaml. */}}
{{- define "switchyard.configVolume" -}}
- name: config
  {{- if .Values.config.existingSecret }}
  secret:
    secretName: {{ .Values.config.existingSecret }}
  {{- else }}
  configMap:
    name: {{ include "switchyard.configName" . }}
  {{- end }}
    items:
      - key: {{ .Values.config.key }}
        path: gateway.yaml
{{- end }}
