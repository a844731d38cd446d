"""Quality-of-experience metrics from players' reports (the original design's monitoring list): video start
time, rebuffering (stalls and the rebuffer ratio), bitrate distribution and switches, errors, by pathway.

A report is bounded by what its session can have observed since its previous report (or its start): the time
spent playing and stalled fits in that window, so does the start-up time, every stall is at a position of the
title, events come at most ``MAX_EVENTS_PER_SECOND`` a second, bandwidths and bytes at most ``MAX_BANDWIDTH_BPS``,
and the pathway is one the session was given. Anything else is INVALID_ARGUMENT (reason QOE_OUT_OF_BOUNDS or
UNKNOWN_PATHWAY) and is not recorded, so no report can inflate the metrics or invent a ``pathway`` label."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from marquee.v1 import playback_pb2
from services.common.errors import InvalidArgument
from services.common.timevalues import duration_ms

START_TIME = Histogram(
    "marquee_playback_video_start_seconds",
    "Play request to first frame, as players report it.",
    buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
)
REBUFFER_RATIO = Histogram(
    "marquee_playback_rebuffer_ratio",
    "Stalled time over stalled plus playing time, per report.",
    buckets=(0, 0.0001, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1),
)
STALLS = Counter("marquee_playback_stalls_total", "Rebuffering events.", ["pathway"])
STALL_SECONDS = Counter("marquee_playback_stall_seconds_total", "Time spent rebuffering.", ["pathway"])
BITRATE = Histogram(
    "marquee_playback_bitrate_bps",
    "Bandwidth of the rendition being played at report time.",
    buckets=(2e5, 4e5, 8e5, 1.5e6, 3e6, 5e6, 8e6, 1.2e7, 2e7),
)
SWITCHES = Histogram(
    "marquee_playback_bitrate_switches_per_report", "Bitrate switches per report.", buckets=(0, 1, 2, 3, 5, 10, 20)
)
ERRORS = Counter("marquee_playback_errors_total", "Player errors, by fatality and pathway.", ["fatal", "pathway"])
PLAYING_SECONDS = Counter("marquee_playback_playing_seconds_total", "Time spent playing, as reported.")

MAX_EVENTS = 1000  # stalls, switches or errors in one report
MAX_EVENTS_PER_SECOND = 10  # of the report's window (plus a first ten)
MAX_BANDWIDTH_BPS = 10**10  # 10 Gbit/s: no player measures more
SLACK_MS = 2_000  # clocks and the network: a report may claim this much more than its window
MAX_ERROR_CODE = 64
MAX_ERROR_MESSAGE = 1000
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Bounds:
    """What one report of a session can have observed."""

    window_ms: int  # since the session's previous report, or its start
    runtime_ms: int
    pathways: Collection[str]  # the pathway ids the session was given


def _out_of_bounds(field: str, message: str) -> InvalidArgument:
    return InvalidArgument(message, field_name=field, reason="QOE_OUT_OF_BOUNDS")


def check(report: playback_pb2.QoeReport, bounds: Bounds) -> None:
    """Raises INVALID_ARGUMENT for anything the session cannot have observed (see the module's documentation)."""
    window = bounds.window_ms + SLACK_MS
    most_events = min(MAX_EVENTS, 10 + MAX_EVENTS_PER_SECOND * bounds.window_ms // 1000)
    for name, events in (("stalls", report.stalls), ("bitrate_switches", report.bitrate_switches)):
        if len(events) > most_events:
            raise _out_of_bounds(f"report.{name}", f"at most {most_events} {name} fit in this report's window")
    if len(report.errors) > most_events:
        raise _out_of_bounds("report.errors", f"at most {most_events} errors fit in this report's window")
    stalled = 0
    for i, stall in enumerate(report.stalls):
        stalled += duration_ms(stall.duration, f"report.stalls[{i}].duration")
        if duration_ms(stall.position, f"report.stalls[{i}].position") > bounds.runtime_ms + SLACK_MS:
            raise _out_of_bounds(f"report.stalls[{i}].position", "a stall position is beyond the title's runtime")
    playing = duration_ms(report.playing_time, "report.playing_time")
    if stalled + playing > window:
        raise _out_of_bounds(
            "report.playing_time",
            f"{(stalled + playing) / 1000:.3f} s of playing and stalls do not fit in the {window / 1000:.3f} s"
            " since the session's previous report",
        )
    if duration_ms(report.startup_time, "report.startup_time") > window:
        raise _out_of_bounds("report.startup_time", "the start-up time is longer than the session has existed")
    bandwidths = [report.current_bandwidth]
    bandwidths += [b for s in report.bitrate_switches for b in (s.from_bandwidth, s.to_bandwidth)]
    if any(not 0 <= b <= MAX_BANDWIDTH_BPS for b in bandwidths):
        raise _out_of_bounds("report.current_bandwidth", f"bandwidths must be 0 to {MAX_BANDWIDTH_BPS} bits/s")
    if not 0 <= report.bytes_downloaded <= MAX_BANDWIDTH_BPS // 8 * window // 1000:
        raise _out_of_bounds("report.bytes_downloaded", "more bytes than any network carries in this window")
    for i, e in enumerate(report.errors):
        if len(e.code) > MAX_ERROR_CODE or len(e.message) > MAX_ERROR_MESSAGE:
            raise InvalidArgument(
                f"an error's code and message are at most {MAX_ERROR_CODE} and {MAX_ERROR_MESSAGE} characters",
                field_name=f"report.errors[{i}]",
            )
    if report.pathway_id and report.pathway_id not in bounds.pathways:
        raise InvalidArgument(
            "report.pathway_id is not one of the session's pathways",
            field_name="report.pathway_id",
            reason="UNKNOWN_PATHWAY",
        )


def record(report: playback_pb2.QoeReport) -> tuple[int, int]:
    """Observes one checked report; returns (stalls, errors) for the pathway, which steering hears about."""
    pathway = report.pathway_id or UNKNOWN
    if report.HasField("startup_time"):
        START_TIME.observe(report.startup_time.ToMilliseconds() / 1000)
    stalled = sum(s.duration.ToMilliseconds() for s in report.stalls) / 1000
    playing = report.playing_time.ToMilliseconds() / 1000
    if stalled + playing > 0:
        REBUFFER_RATIO.observe(stalled / (stalled + playing))
    if report.stalls:
        STALLS.labels(pathway=pathway).inc(len(report.stalls))
        STALL_SECONDS.labels(pathway=pathway).inc(stalled)
    if report.current_bandwidth:
        BITRATE.observe(report.current_bandwidth)
    SWITCHES.observe(len(report.bitrate_switches))
    for e in report.errors:
        ERRORS.labels(fatal=str(e.fatal).lower(), pathway=pathway).inc()
    if playing:
        PLAYING_SECONDS.inc(playing)
    return len(report.stalls), len(report.errors)
