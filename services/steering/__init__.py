"""SteeringService: which edges each player uses and in what order, and the content steering manifests players
reload mid-stream (HLS EXT-X-CONTENT-STEERING, DASH ContentSteering)."""
