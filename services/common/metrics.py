"""Prometheus metrics: RED per RPC (rate, errors, duration) and the HTTP endpoint that exposes them."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_HANDLED = "marquee_grpc_server_handled"
_HANDLED_HELP = "RPCs completed on the server, by service, method and status code."
_HANDLING = "marquee_grpc_server_handling_seconds"
_HANDLING_HELP = "Time from receiving an RPC to its final status."

# What the grpc.aio interceptor counts; exported merged with what native servers answered (see NativeRpcs)
RPC_REQUESTS = Counter(_HANDLED, _HANDLED_HELP, ["grpc_service", "grpc_method", "grpc_code"], registry=None)
RPC_LATENCY = Histogram(
    _HANDLING, _HANDLING_HELP, ["grpc_service", "grpc_method"], buckets=LATENCY_BUCKETS, registry=None
)
RPC_IN_FLIGHT = Gauge("marquee_grpc_server_in_flight", "RPCs being handled now.", ["grpc_service", "grpc_method"])


@dataclass
class NativeRpcs:
    """Calls of one RPC that a native server answered itself, never reaching grpc.aio's interceptor (playback's
    ingest front answering UpdatePosition): counted into the RPC metrics, so that dashboards and the error-budget
    alerts see every call, not only those Python handled."""

    service: str
    method: str
    codes: dict[str, int] = field(default_factory=dict)  # status code name -> calls
    bounds: list[float] = field(default_factory=list)  # the latency buckets' upper bounds
    counts: list[int] = field(default_factory=list)  # calls per bucket, one more than bounds (the rest)
    seconds: float = 0.0

    def add(self, other: NativeRpcs) -> None:
        for code, n in other.codes.items():
            self.codes[code] = self.codes.get(code, 0) + n
        if not self.bounds:
            self.bounds, self.counts = list(other.bounds), [0] * len(other.counts)
        if other.bounds != self.bounds:
            raise ValueError("native latency histograms of one RPC must share their buckets")
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.seconds += other.seconds

    def cumulative(self, bound: float) -> int:
        """Calls answered within ``bound`` seconds (exact where ``bound`` is one of this histogram's bounds)."""
        if bound == float("inf"):
            return sum(self.counts)
        return sum(n for b, n in zip(self.bounds, self.counts, strict=False) if b <= bound)


class RpcMetrics(Collector):
    """``marquee_grpc_server_handled_total`` and ``marquee_grpc_server_handling_seconds``: the interceptor's
    counts plus those of the native servers registered with :meth:`add_source`. A source's final counts are kept
    with :meth:`retire` when it stops, so the totals never go down while the process lives."""

    def __init__(self) -> None:
        self._sources: list[Callable[[], Iterable[NativeRpcs]]] = []
        self._retired: dict[tuple[str, str], NativeRpcs] = {}
        self._lock = threading.Lock()

    def add_source(self, source: Callable[[], Iterable[NativeRpcs]]) -> None:
        with self._lock:
            self._sources.append(source)

    def retire(self, source: Callable[[], Iterable[NativeRpcs]]) -> None:
        """Stops reading ``source`` (a stopped server); its final counts stay in the totals."""
        with self._lock:
            if source in self._sources:
                self._sources.remove(source)
                for rpcs in source():
                    _merge(self._retired, rpcs)

    def native(self) -> dict[tuple[str, str], NativeRpcs]:
        with self._lock:
            sources = list(self._sources)
            merged: dict[tuple[str, str], NativeRpcs] = {}
            for rpcs in self._retired.values():
                _merge(merged, rpcs)
        for source in sources:
            for rpcs in source():
                _merge(merged, rpcs)
        return merged

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        native = self.native()
        handled: dict[tuple[str, ...], float] = defaultdict(float)
        for sample in _samples(RPC_REQUESTS, f"{_HANDLED}_total"):
            handled[(sample.labels["grpc_service"], sample.labels["grpc_method"], sample.labels["grpc_code"])] += (
                sample.value
            )
        for (service, method), rpcs in native.items():
            for code, n in rpcs.codes.items():
                handled[(service, method, code)] += n
        counter = CounterMetricFamily(_HANDLED, _HANDLED_HELP, labels=("grpc_service", "grpc_method", "grpc_code"))
        for labels, value in sorted(handled.items()):
            counter.add_metric(labels, value)
        yield counter

        buckets: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        sums: dict[tuple[str, str], float] = defaultdict(float)
        for sample in _samples(RPC_LATENCY, f"{_HANDLING}_bucket"):
            buckets[(sample.labels["grpc_service"], sample.labels["grpc_method"])][sample.labels["le"]] = sample.value
        for sample in _samples(RPC_LATENCY, f"{_HANDLING}_sum"):
            sums[(sample.labels["grpc_service"], sample.labels["grpc_method"])] = sample.value
        bounds = [*LATENCY_BUCKETS, float("inf")]
        for key, rpcs in native.items():
            own = buckets[key]
            for bound in bounds:
                le = _le(bound)
                own[le] = own.get(le, 0.0) + rpcs.cumulative(bound)
            sums[key] += rpcs.seconds
        histogram = HistogramMetricFamily(_HANDLING, _HANDLING_HELP, labels=("grpc_service", "grpc_method"))
        for key, own in sorted(buckets.items()):
            histogram.add_metric(list(key), [(_le(b), own[_le(b)]) for b in bounds], sums[key])
        yield histogram


def _le(bound: float) -> str:
    """A bucket's ``le`` label as prometheus_client writes it ("0.0005", "1.0", "+Inf")."""
    text: str = floatToGoString(bound)  # type: ignore[no-untyped-call]
    return text


def _samples(metric: Counter | Histogram, name: str) -> Iterator[Sample]:
    for family in metric.collect():
        yield from (s for s in family.samples if s.name == name)


def _merge(into: dict[tuple[str, str], NativeRpcs], rpcs: NativeRpcs) -> None:
    into.setdefault((rpcs.service, rpcs.method), NativeRpcs(rpcs.service, rpcs.method)).add(rpcs)


RPC_METRICS = RpcMetrics()
REGISTRY.register(RPC_METRICS)


def split_method(full_method: str) -> tuple[str, str]:
    """'/marquee.v1.AccountService/SignIn' -> ('marquee.v1.AccountService', 'SignIn')."""
    _, _, rest = full_method.partition("/")
    service, _, method = rest.partition("/")
    return service or "unknown", method or "unknown"


@dataclass
class MetricsEndpoint:
    """A running /metrics HTTP endpoint; ``port`` is the bound port (useful when 0 was asked)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_metrics_endpoint(host: str = "127.0.0.1", port: int = 0) -> MetricsEndpoint:
    server, thread = start_http_server(port, addr=host, registry=REGISTRY)
    return MetricsEndpoint(server, thread)
