"""PlaybackService: sessions and entitlements, per-session manifests, resume positions, watch history and
quality-of-experience telemetry."""
