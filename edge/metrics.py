"""Prometheus metrics of running edges, read from the data plane's counters at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.node import EdgeNode

TIERS = ("memory", "disk")


def byte_hit_ratio(stats: dict[str, int]) -> float:
    """Bytes served from a cache tier over all body bytes served (0 before any)."""
    hit = stats["hit_bytes_memory"] + stats["hit_bytes_disk"]
    total = hit + stats["miss_bytes"]
    return hit / total if total else 0.0


class EdgeCollector(Collector):
    """One collector for every edge in the process, labelled by edge name."""

    def __init__(self, nodes: Callable[[], Iterable[EdgeNode]]) -> None:
        self._nodes = nodes

    def collect(self) -> Iterator[Metric]:
        def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> CounterMetricFamily:
            return CounterMetricFamily(f"marquee_edge_{name}", doc, labels=("edge", *extra))

        def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"marquee_edge_{name}", doc, labels=("edge", *extra))

        requests = counter("requests", "HTTP requests received.")
        responses = counter("responses", "HTTP responses by status class.", ("code_class",))
        sent = counter("sent_bytes", "Body bytes sent to clients (egress).")
        hits = counter("cache_hits", "Requests answered from a cache tier.", ("tier",))
        misses = counter("cache_misses", "Requests that started an upstream fetch.")
        hit_bytes = counter("cache_hit_bytes", "Body bytes answered from a cache tier.", ("tier",))
        miss_bytes = counter("cache_miss_bytes", "Body bytes answered from an upstream fetch.")
        coalesced = counter("coalesced_waiters", "Requests that joined a fetch already in flight.")
        fetches = counter("upstream_fetches", "Upstream fetches started (one per missing object).")
        retries = counter("upstream_retries", "Upstream attempts retried after an error or timeout.")
        errors = counter("upstream_errors", "Upstream fetches that failed.")
        upstream_bytes = counter("upstream_received_bytes", "Bytes received from upstream.")
        evictions = counter("cache_evictions", "Objects evicted, by tier.", ("tier",))
        ratio = gauge("byte_hit_ratio", "Cache-served body bytes over all body bytes served.")
        used = gauge("cache_used_bytes", "Bytes held, by tier.", ("tier",))
        capacity = gauge("cache_capacity_bytes", "Configured size, by tier.", ("tier",))
        objects = gauge("cache_objects", "Objects held, by tier.", ("tier",))
        connections = gauge("active_connections", "Open client connections.")
        latency = HistogramMetricFamily(
            "marquee_edge_response_seconds", "Time from request to response head.", labels=("edge",)
        )
        for node in self._nodes():
            if not node.running:
                continue
            s = node.stats()
            e = node.name
            requests.add_metric([e], s["requests"])
            for cls in ("2xx", "304", "4xx", "5xx"):
                responses.add_metric([e, cls], s[f"responses_{cls}"])
            sent.add_metric([e], s["bytes_sent"])
            misses.add_metric([e], s["misses"])
            miss_bytes.add_metric([e], s["miss_bytes"])
            coalesced.add_metric([e], s["coalesced_waiters"])
            fetches.add_metric([e], s["upstream_fetches"])
            retries.add_metric([e], s["upstream_retries"])
            errors.add_metric([e], s["upstream_errors"])
            upstream_bytes.add_metric([e], s["upstream_bytes"])
            ratio.add_metric([e], byte_hit_ratio(s))
            connections.add_metric([e], s["active_connections"])
            for tier in TIERS:
                hits.add_metric([e, tier], s[f"hits_{tier}"])
                hit_bytes.add_metric([e, tier], s[f"hit_bytes_{tier}"])
                evictions.add_metric([e, tier], s[f"evictions_{tier}"])
                used.add_metric([e, tier], s[f"{tier}_used_bytes"])
                capacity.add_metric([e, tier], s[f"{tier}_capacity_bytes"])
                objects.add_metric([e, tier], s[f"{tier}_objects"])
            bounds, counts, total = node.latency()
            cumulative = list(accumulate(counts))
            buckets = [(repr(b), float(c)) for b, c in zip(bounds, cumulative, strict=False)]
            buckets.append(("+Inf", float(cumulative[-1])))
            latency.add_metric([e], buckets, total)
        yield from (
            requests, responses, sent, hits, misses, hit_bytes, miss_bytes, coalesced, fetches, retries, errors,
            upstream_bytes, evictions, ratio, used, capacity, objects, connections, latency,
        )  # fmt: skip
