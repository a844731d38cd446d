"""Marquee: what every part of the platform imports.

- ``marquee.v1``: the generated gRPC contracts (from ``proto/marquee/v1``; regenerate with ``./dev gen``).
- ``marquee.native``: the typed front of the Rust core (signed URL tokens, manifests, similarity top-k).
"""

__version__ = "0.1.0"
