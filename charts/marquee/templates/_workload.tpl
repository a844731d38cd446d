{{/*
marquee.grpcService: the objects of one gRPC service: a Deployment running `marquee serve NAME` (restricted pod,
gRPC health probes on its port, the config checksum annotation), a headless Service (the dns:/// address clients
balance over), and, when enabled, a HorizontalPodAutoscaler and a PodDisruptionBudget.
Call with (dict "root" $ "component" NAME "keys" (list ...) "origin" ""|"ro"|"rw" "httpPort" PORT-or-0).
*/}}
{{- define "marquee.grpcService" -}}
{{- $root := .root -}}
{{- $name := .component -}}
{{- $v := index $root.Values $name -}}
{{- $full := include "marquee.component.fullname" (dict "root" $root "component" $name) -}}
{{- $ctx := dict "root" $root "component" $name -}}
{{- $keda := and $v.autoscaling.enabled (hasKey $v.autoscaling "keda") $v.autoscaling.keda.enabled -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $full }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "marquee.labels" $ctx | nindent 4 }}
spec:
  {{- if not $v.autoscaling.enabled }}
  replicas: {{ $v.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "marquee.selectorLabels" $ctx | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "marquee.labels" $ctx | nindent 8 }}
      annotations:
        {{- include "marquee.configChecksum" $root | nindent 8 }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "marquee.serviceAccountName" $root }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: 30
      {{- include "marquee.imagePullSecrets" $root | nindent 6 }}
      {{- include "marquee.podSecurityContext" $root | nindent 6 }}
      {{- include "marquee.scheduling" $v | nindent 6 }}
      {{- include "marquee.topologySpread" (dict "root" $root "component" $name "constraints" $v.topologySpreadConstraints) | nindent 6 }}
      containers:
        - name: {{ $name }}
          image: {{ include "marquee.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args: ["serve", {{ $name | quote }}]
          {{- include "marquee.containerSecurityContext" $root | nindent 10 }}
          env:
            {{- include "marquee.env" (dict "root" $root "keys" .keys "cql" (ne $name "gateway") "redis" true) | nindent 12 }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - name: {{ ternary "http" "grpc" (eq $name "gateway") }}
              containerPort: {{ int $v.port }}
              protocol: TCP
            {{- if .httpPort }}
            - name: http
              containerPort: {{ int .httpPort }}
              protocol: TCP
            {{- end }}
            - name: metrics
              containerPort: {{ include "marquee.metricsPort" $root }}
              protocol: TCP
          {{- if eq $name "gateway" }}
          {{- include "marquee.httpProbes" (dict "port" $v.port "probes" $v.probes) | nindent 10 }}
          {{- else }}
          {{- include "marquee.grpcProbes" (dict "port" $v.port "probes" $v.probes) | nindent 10 }}
          {{- end }}
          {{- with $v.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            {{- include "marquee.volumeMounts" (dict "root" $root "origin" .origin) | nindent 12 }}
            {{- with $v.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        {{- include "marquee.volumes" (dict "root" $root "origin" .origin) | nindent 8 }}
        {{- with $v.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $full }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "marquee.labels" $ctx | nindent 4 }}
    marquee.video/metrics: "true"
spec:
  {{- if ne $name "gateway" }}
  clusterIP: None  # headless: dns:///{{ $full }}:{{ $v.port }} resolves to every ready pod (client-side round robin)
  {{- end }}
  selector:
    {{- include "marquee.selectorLabels" $ctx | nindent 4 }}
  ports:
    - name: {{ ternary "http" "grpc" (eq $name "gateway") }}
      port: {{ int $v.port }}
      targetPort: {{ ternary "http" "grpc" (eq $name "gateway") }}
      protocol: TCP
      {{- if ne $name "gateway" }}
      appProtocol: grpc
      {{- end }}
    - name: metrics
      port: {{ include "marquee.metricsPort" $root }}
      targetPort: metrics
      protocol: TCP
{{- if .httpPort }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $full }}-http
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "marquee.labels" $ctx | nindent 4 }}
spec:
  selector:
    {{- include "marquee.selectorLabels" $ctx | nindent 4 }}
  ports:
    - name: http
      port: {{ int .httpPort }}
      targetPort: http
      protocol: TCP
{{- end }}
{{- if and $v.autoscaling.enabled (not $keda) }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $full }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "marquee.labels" $ctx | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $full }}
  minReplicas: {{ $v.autoscaling.minReplicas }}
  maxReplicas: {{ $v.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $v.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- if $v.pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $full }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "marquee.labels" $ctx | nindent 4 }}
spec:
  maxUnavailable: {{ $v.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "marquee.selectorLabels" $ctx | nindent 6 }}
{{- end }}
{{- end -}}
