"""Developer scripts run by ./dev (importable for their tests)."""
