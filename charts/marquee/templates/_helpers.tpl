{{/*
Helpers of the Marquee chart. Every template here is documented by the comment above it; components are named
by their key in values.yaml (accounts, catalog, playback, recommendations, steering, encoder, gateway, edge,
shield, redis, migration).
*/}}

{{/*
marquee.name: the chart's name (or nameOverride), at most 63 characters (a DNS label).
*/}}
{{- define "marquee.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
marquee.fullname: the prefix of every object's name: fullnameOverride, or the release name when it already
contains the chart's name, else "<release>-<chart>". Kept to 40 characters so that "<fullname>-<component>-<n>"
stays a DNS label and edge names (their steering pathway ids) stay within 32 characters (checked below).
*/}}
{{- define "marquee.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
marquee.component.fullname: the name of a component's objects, "<fullname>-<component>".
Call with (dict "root" $ "component" "catalog").
*/}}
{{- define "marquee.component.fullname" -}}
{{- printf "%s-%s" (include "marquee.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
marquee.chart: "<chart>-<version>" for the helm.sh/chart label.
*/}}
{{- define "marquee.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
marquee.labels: the labels of every object: the recommended app.kubernetes.io set, helm.sh/chart and
commonLabels. Call with (dict "root" $ "component" "catalog"); component may be empty.
*/}}
{{- define "marquee.labels" -}}
helm.sh/chart: {{ include "marquee.chart" .root }}
{{ include "marquee.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: marquee
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
marquee.selectorLabels: the labels a component's selectors match (name, instance, component); they never change
across upgrades (a Deployment's selector is immutable). Call with (dict "root" $ "component" "catalog").
*/}}
{{- define "marquee.selectorLabels" -}}
app.kubernetes.io/name: {{ include "marquee.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{/*
marquee.image: the Marquee image reference: registry/repository, then @digest when set, else :tag (default the
chart's appVersion). One image runs every component.
*/}}
{{- define "marquee.image" -}}
{{- $img := .Values.image -}}
{{- $repo := ternary (printf "%s/%s" $img.registry $img.repository) $img.repository (ne $img.registry "") -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $repo $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/*
marquee.imagePullSecrets: the pod's imagePullSecrets from image.pullSecrets (names).
*/}}
{{- define "marquee.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
marquee.serviceAccountName: the ServiceAccount the pods run as (serviceAccount.name, or the chart's own when it
creates one, else "default").
*/}}
{{- define "marquee.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "marquee.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
marquee.podSecurityContext: the restricted Pod Security Standard at pod level: non-root as 10001:10001 (the
image's user), fsGroup 10001 so volumes are writable, seccomp RuntimeDefault. Not a value: every pod gets it.
*/}}
{{- define "marquee.podSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  fsGroupChangePolicy: OnRootMismatch
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{/*
marquee.containerSecurityContext: the restricted Pod Security Standard at container level: read-only root
filesystem, no privilege escalation, every capability dropped.
*/}}
{{- define "marquee.containerSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
{{- end -}}

{{/*
marquee.configChecksum: the checksum/config annotation: the SHA-256 of the rendered platform TOML, so a
configuration change rolls every pod that reads it (a ConfigMap change alone restarts nothing).
*/}}
{{- define "marquee.configChecksum" -}}
checksum/config: {{ include "marquee.config.toml" . | sha256sum }}
{{- end -}}

{{/*
marquee.secretsName: the Secret holding the platform keys (JWT signing, URL signing, edge fill): secrets.existingSecret,
or the one the chart generates.
*/}}
{{- define "marquee.secretsName" -}}
{{- default (printf "%s-keys" (include "marquee.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/*
marquee.generatedSecret: a generated secret value kept across upgrades: the value already in the release's Secret
(lookup; empty under `helm template`, which then generates a new one) or 48 random characters.
Call with (dict "root" $ "name" SECRET-NAME "key" KEY).
*/}}
{{- define "marquee.generatedSecret" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .name -}}
{{- if and $existing $existing.data (hasKey $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 48 -}}
{{- end -}}
{{- end -}}

{{/*
marquee.cql.secretName / marquee.cql.passwordKey: where the CQL password is (externalScylla.existingSecret, or the
chart's credentials Secret); empty name when no password is configured.
*/}}
{{- define "marquee.cql.secretName" -}}
{{- if and (not .Values.scylla.enabled) .Values.externalScylla.existingSecret -}}
{{- .Values.externalScylla.existingSecret -}}
{{- else if and (not .Values.scylla.enabled) .Values.externalScylla.password -}}
{{- printf "%s-credentials" (include "marquee.fullname" .) -}}
{{- end -}}
{{- end -}}
{{- define "marquee.cql.passwordKey" -}}
{{- if .Values.externalScylla.existingSecret -}}{{ .Values.externalScylla.existingSecretPasswordKey }}{{- else -}}cql-password{{- end -}}
{{- end -}}

{{/*
marquee.redis.secretName / marquee.redis.passwordKey: where the Redis password is: the in-cluster Redis's
(redis.auth.existingSecret or the generated credentials Secret) or the external one's; empty when none.
*/}}
{{- define "marquee.redis.secretName" -}}
{{- if .Values.redis.enabled -}}
{{- if .Values.redis.auth.enabled -}}
{{- default (printf "%s-credentials" (include "marquee.fullname" .)) .Values.redis.auth.existingSecret -}}
{{- end -}}
{{- else if .Values.externalRedis.existingSecret -}}
{{- .Values.externalRedis.existingSecret -}}
{{- else if .Values.externalRedis.password -}}
{{- printf "%s-credentials" (include "marquee.fullname" .) -}}
{{- end -}}
{{- end -}}
{{- define "marquee.redis.passwordKey" -}}
{{- if and .Values.redis.enabled .Values.redis.auth.existingSecret -}}{{ .Values.redis.auth.existingSecretPasswordKey }}
{{- else if and (not .Values.redis.enabled) .Values.externalRedis.existingSecret -}}{{ .Values.externalRedis.existingSecretPasswordKey }}
{{- else -}}redis-password{{- end -}}
{{- end -}}

{{/*
marquee.redis.url: the redis:// URL every service uses (no credentials in it: the password comes from the Secret).
*/}}
{{- define "marquee.redis.url" -}}
{{- if .Values.redis.enabled -}}
{{- printf "redis://%s.%s.svc.%s:6379/0" (include "marquee.component.fullname" (dict "root" . "component" "redis")) .Release.Namespace .Values.clusterDomain -}}
{{- else -}}
{{- required "externalRedis.url is required when redis.enabled is false" .Values.externalRedis.url -}}
{{- end -}}
{{- end -}}

{{/*
marquee.cql.contactPoints: the CQL contact points: scylla-operator's client Service of the ScyllaCluster
("<cluster>-client"), or externalScylla.contactPoints.
*/}}
{{- define "marquee.cql.contactPoints" -}}
{{- if .Values.scylla.enabled -}}
{{- list (printf "%s-client.%s.svc.%s:9042" (include "marquee.component.fullname" (dict "root" . "component" "scylla")) .Release.Namespace .Values.clusterDomain) | toJson -}}
{{- else -}}
{{- if not .Values.externalScylla.contactPoints -}}{{- fail "externalScylla.contactPoints is required when scylla.enabled is false" -}}{{- end -}}
{{- .Values.externalScylla.contactPoints | toJson -}}
{{- end -}}
{{- end -}}

{{/*
marquee.grpcAddress: the [addresses] entry of a gRPC service: "dns:///<headless service FQDN>:<port>", which the
clients resolve to every ready pod and balance round robin with gRPC health checks (services/common/targets.py).
Call with (dict "root" $ "component" "catalog").
*/}}
{{- define "marquee.grpcAddress" -}}
{{- $c := index .root.Values .component -}}
{{- printf "dns:///%s.%s.svc.%s:%d" (include "marquee.component.fullname" .) .root.Release.Namespace .root.Values.clusterDomain (int $c.port) -}}
{{- end -}}

{{/*
marquee.publicUrl: the URL people open (the player): config.publicUrl, else the Ingress host (https with TLS),
else the gateway's in-cluster URL (reached by kubectl port-forward).
*/}}
{{- define "marquee.publicUrl" -}}
{{- if .Values.config.publicUrl -}}
{{- .Values.config.publicUrl | trimSuffix "/" -}}
{{- else if .Values.ingress.enabled -}}
{{- printf "%s://%s" (ternary "https" "http" .Values.ingress.tls.enabled) .Values.ingress.host -}}
{{- else -}}
{{- printf "http://localhost:%d" (int .Values.gateway.port) -}}
{{- end -}}
{{- end -}}

{{/*
marquee.env: the environment of every Marquee container: where the platform TOML is, and the secrets its
component needs as MARQUEE_<SECTION>__<KEY> variables from Secrets (services/common/config.py reads them over the
file). Call with (dict "root" $ "keys" (list "auth" "url" "fill") "cql" true "redis" true); keys, cql and redis
name what the component holds, nothing more.
*/}}
{{- define "marquee.env" -}}
{{- $root := .root -}}
- name: MARQUEE_CONFIG
  value: /etc/marquee/marquee.toml
{{- $kid := $root.Values.secrets.signingKid }}
{{- $names := dict "auth" "AUTH" "url" "URL_SIGNING" "fill" "EDGE_FILL" "content" "CONTENT_KEYS" }}
{{- $secretKeys := dict "auth" "auth-signing-key" "url" "url-signing-key" "fill" "edge-fill-key" "content" "content-master-key" }}
{{- range .keys }}
- name: MARQUEE_{{ index $names . }}__KEYS__{{ upper $kid }}
  valueFrom:
    secretKeyRef:
      name: {{ include "marquee.secretsName" $root }}
      key: {{ index $secretKeys . }}
{{- end }}
{{- if and .cql (include "marquee.cql.secretName" $root) }}
- name: MARQUEE_STORE__CQL__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "marquee.cql.secretName" $root }}
      key: {{ include "marquee.cql.passwordKey" $root }}
{{- end }}
{{- if and .redis (include "marquee.redis.secretName" $root) }}
- name: MARQUEE_REDIS__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "marquee.redis.secretName" $root }}
      key: {{ include "marquee.redis.passwordKey" $root }}
{{- end }}
{{- end -}}

{{/*
marquee.volumes / marquee.volumeMounts: what the image expects writable under a read-only root (docs/kubernetes.md):
/tmp, /var/cache/marquee (XDG_CACHE_HOME) and the data directory /var/lib/marquee (MARQUEE_DATA_DIR, HOME) as
emptyDirs, and the platform TOML from the ConfigMap at /etc/marquee. Call with (dict "root" $ "origin" "rw"|"ro"|"")
to mount the origin volume too.
*/}}
{{- define "marquee.volumes" -}}
- name: config
  configMap:
    name: {{ include "marquee.fullname" .root }}-config
- name: tmp
  emptyDir: {}
- name: cache
  emptyDir: {}
- name: data
  emptyDir: {}
{{- if .origin }}
- name: origin
  persistentVolumeClaim:
    claimName: {{ include "marquee.origin.claimName" .root }}
    {{- if eq .origin "ro" }}
    readOnly: true
    {{- end }}
{{- end }}
{{- end -}}
{{- define "marquee.volumeMounts" -}}
- name: config
  mountPath: /etc/marquee
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: cache
  mountPath: /var/cache/marquee
- name: data
  mountPath: /var/lib/marquee
{{- if .origin }}
- name: origin
  mountPath: {{ .root.Values.origin.mountPath }}
  {{- if eq .origin "ro" }}
  readOnly: true
  {{- end }}
{{- end }}
{{- end -}}

{{/*
marquee.origin.claimName: the origin's PersistentVolumeClaim: origin.persistence.existingClaim, or the chart's.
*/}}
{{- define "marquee.origin.claimName" -}}
{{- default (printf "%s-origin" (include "marquee.fullname" .)) .Values.origin.persistence.existingClaim -}}
{{- end -}}

{{/*
marquee.grpcProbes: a component's gRPC health probes (grpc.health.v1 on its service port, the overall service)
from its probes values: livenessProbe, readinessProbe, startupProbe, each with enabled and the timings.
Call with (dict "port" PORT "probes" .Values.X.probes).
*/}}
{{- define "marquee.grpcProbes" -}}
{{- $port := int .port -}}
{{- range $kind := list "liveness" "readiness" "startup" }}
{{- $p := index $.probes $kind }}
{{- if $p.enabled }}
{{ $kind }}Probe:
  grpc:
    port: {{ $port }}
  {{- toYaml (omit $p "enabled") | nindent 2 }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
marquee.httpProbes: the same probes as HTTP GETs of /healthz (the gateway, edges and the shield).
Call with (dict "port" PORT "probes" .Values.X.probes).
*/}}
{{- define "marquee.httpProbes" -}}
{{- $port := int .port -}}
{{- range $kind := list "liveness" "readiness" "startup" }}
{{- $p := index $.probes $kind }}
{{- if $p.enabled }}
{{ $kind }}Probe:
  httpGet:
    path: /healthz
    port: {{ $port }}
  {{- toYaml (omit $p "enabled") | nindent 2 }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
marquee.topologySpread: a component's topologySpreadConstraints; each entry without a labelSelector gets the
component's selector labels (so "maxSkew: 1, topologyKey: zone" spreads this component's pods).
Call with (dict "root" $ "component" NAME "constraints" LIST).
*/}}
{{- define "marquee.topologySpread" -}}
{{- if .constraints }}
topologySpreadConstraints:
{{- range .constraints }}
  - {{- toYaml (omit . "labelSelector") | nindent 4 }}
    labelSelector:
      matchLabels:
        {{- if .labelSelector }}
        {{- toYaml .labelSelector.matchLabels | nindent 8 }}
        {{- else }}
        {{- include "marquee.selectorLabels" (dict "root" $.root "component" $.component) | nindent 8 }}
        {{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
marquee.scheduling: nodeSelector, tolerations, affinity and priorityClassName of a component (its values map).
*/}}
{{- define "marquee.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end -}}

{{/*
marquee.metricsPort: the port every Marquee process serves /metrics on ([metrics] in the platform TOML).
*/}}
{{- define "marquee.metricsPort" -}}
{{- int .Values.metrics.port -}}
{{- end -}}
