"""Marquee's edge cache: the Python control plane over the Rust data plane (``marquee.native.EdgeServer``).

config: what an edge is (data plane settings, role, zone, capacity); node: one running edge; metrics: its
Prometheus collector; fill: proactive fill within a bandwidth cap; steering: registration and heartbeats;
plugin: the all-in-one's shield and two edges in front of the local origin."""
