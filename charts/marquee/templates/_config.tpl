{{/*
marquee.config.toml: the platform TOML every Marquee process reads (docs/configuration.md), rendered from values:
the CQL store, the bus, rate limits and shared state on Redis, resume positions on Redis (written behind to the
store), every gRPC service listening on all interfaces at its port, [addresses] of the headless Services, the
gateway's routes, and config.extraToml at the end. No secret is ever written here: keys and passwords come from
Secrets as MARQUEE_* environment variables (marquee.env). The checksum/config annotation hashes this text.
*/}}
{{- define "marquee.config.toml" -}}
{{- $v := .Values -}}
{{- $c := $v.config -}}
{{- $cql := ternary $v.scylla.cql $v.externalScylla $v.scylla.enabled -}}
{{- $public := include "marquee.publicUrl" . -}}
# The platform configuration of release {{ .Release.Name }}, rendered by the Marquee chart {{ .Chart.Version }}.
# Secrets are not here: they come from Secrets as MARQUEE_* environment variables.

[auth]
issuer = {{ $c.auth.issuer | toJson }}
audience = {{ $c.auth.audience | toJson }}
signing_kid = {{ $v.secrets.signingKid | toJson }}
access_token_ttl = {{ int $c.auth.accessTokenTtl }}
refresh_token_ttl = {{ int $c.auth.refreshTokenTtl }}

[url_signing]
signing_kid = {{ $v.secrets.signingKid | toJson }}

[edge_fill]
signing_kid = {{ $v.secrets.signingKid | toJson }}

[content_keys]  # the master key itself reaches the encoders only (MARQUEE_CONTENT_KEYS__KEYS__*)
wrapping_kid = {{ $v.secrets.signingKid | toJson }}

[geo]
trusted_proxies = {{ $c.geo.trustedProxies | toJson }}
loopback_region = {{ $c.geo.loopbackRegion | toJson }}
default_region = {{ $c.geo.defaultRegion | toJson }}
{{- with $c.geo.networks }}
networks = {{ toJson . }}
{{- end }}

[store]
kind = "cql"

[store.cql]
contact_points = {{ include "marquee.cql.contactPoints" . }}
local_dc = {{ ternary $v.scylla.datacenter $v.externalScylla.localDc $v.scylla.enabled | toJson }}
keyspace_prefix = {{ $v.store.keyspacePrefix | toJson }}
replication_factor = {{ int $cql.replicationFactor }}
{{- with $cql.datacenters }}
{{- $pairs := list }}
{{- range $dc, $n := . }}{{ $pairs = append $pairs (printf "%s = %d" (toJson $dc) (int $n)) }}{{ end }}
datacenters = { {{ join ", " $pairs }} }
{{- end }}
keyspace_options = {{ $cql.keyspaceOptions | toJson }}
consistency = {{ $v.store.consistency | toJson }}
serial_consistency = {{ $v.store.serialConsistency | toJson }}
protocol_version = {{ int $cql.protocolVersion }}
username = {{ ternary "" $v.externalScylla.username $v.scylla.enabled | toJson }}
request_timeout = {{ $v.store.requestTimeout | float64 }}

[bus]
kind = "redis"
max_len = {{ int $c.bus.maxLen }}
max_attempts = {{ int $c.bus.maxAttempts }}

[limits]
kind = "redis"

[state]
kind = "redis"

[redis]
url = {{ include "marquee.redis.url" . | toJson }}
key_prefix = {{ $c.redisKeyPrefix | toJson }}

[metrics]
enabled = true
host = "0.0.0.0"
port = {{ include "marquee.metricsPort" . }}

[logging]
level = {{ $c.logLevel | toJson }}
format = "json"

[addresses]
{{- range $name := list "accounts" "catalog" "playback" "recommendations" "steering" "encoder" }}
{{ $name }} = {{ include "marquee.grpcAddress" (dict "root" $ "component" $name) | toJson }}
{{- end }}

[services.accounts]
max_profiles = {{ int $v.accounts.maxProfiles }}

[services.accounts.server]
host = "0.0.0.0"
port = {{ int $v.accounts.port }}

[services.accounts.demo]
enabled = {{ $v.demo.enabled }}

[services.catalog.server]
host = "0.0.0.0"
port = {{ int $v.catalog.port }}

[services.catalog.demo]
enabled = {{ $v.demo.enabled }}

[services.playback]
origin = {{ $v.origin.mountPath | toJson }}
positions = "redis"

[services.playback.server]
host = "0.0.0.0"
port = {{ int $v.playback.port }}

[services.playback.http]
host = "0.0.0.0"
port = {{ int $v.playback.httpPort }}
public_url = {{ $public | toJson }}

[services.recommendations.server]
host = "0.0.0.0"
port = {{ int $v.recommendations.port }}

[services.steering]
shield_fallback = {{ $v.shield.servesPlayers }}

[services.steering.server]
host = "0.0.0.0"
port = {{ int $v.steering.port }}

[services.steering.http]
host = "0.0.0.0"
port = {{ int $v.steering.httpPort }}
public_url = {{ $public | toJson }}

[services.encoder]
origin = {{ $v.origin.mountPath | toJson }}
workers = {{ int $v.encoder.workers }}
lease_seconds = {{ $v.encoder.leaseSeconds }}
preset = {{ $v.encoder.preset | toJson }}
protection = {{ $v.encoder.protection | toJson }}

[services.encoder.server]
host = "0.0.0.0"
port = {{ int $v.encoder.port }}

[services.encoder.demo]
enabled = {{ $v.demo.enabled }}

[services.gateway]
trusted_proxies = {{ $v.gateway.trustedProxies | toJson }}

[services.gateway.routes]
{{- range $service, $name := dict "marquee.v1.AccountService" "accounts" "marquee.v1.CatalogService" "catalog" "marquee.v1.PlaybackService" "playback" "marquee.v1.LicenseService" "playback" "marquee.v1.DownloadService" "playback" "marquee.v1.RecommendationService" "recommendations" "marquee.v1.SteeringService" "steering" "marquee.v1.EncodingService" "encoder" }}
{{ $service | toJson }} = {{ include "marquee.grpcAddress" (dict "root" $ "component" $name) | toJson }}
{{- end }}

[services.gateway.http]
host = "0.0.0.0"
port = {{ int $v.gateway.port }}
public_url = {{ $public | toJson }}
{{- with $c.extraToml }}

# config.extraToml
{{ . }}
{{- end }}
{{ end -}}
