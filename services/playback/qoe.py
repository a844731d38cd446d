"""Quality-of-experience metrics from players' reports (the original design's monitoring list): video start
time, rebuffering (stalls and the rebuffer ratio), bitrate distribution and switches, errors, by pathway."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from marquee.v1 import playback_pb2

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


def seconds(d: object) -> float:
    return d.seconds + d.nanos / 1e9  # type: ignore[attr-defined, no-any-return]


def record(report: playback_pb2.QoeReport) -> tuple[int, int]:
    """Observes one report; returns (stalls, errors) for the pathway, which steering hears about."""
    pathway = report.pathway_id or "unknown"
    if report.HasField("startup_time"):
        START_TIME.observe(seconds(report.startup_time))
    stalled = sum(seconds(s.duration) for s in report.stalls)
    playing = seconds(report.playing_time)
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
