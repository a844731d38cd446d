"""Per-session engagement and QoE metrics, for the dashboards' completion rate, per-session rebuffer ratio and
switch count, and watch time per profile kind.

- ``marquee_playback_starts_total``: sessions started (StartPlayback succeeded).
- ``marquee_playback_completions_total``: sessions in which the position reached the finished threshold
  (``finished_fraction`` of the runtime), counted once per session: the session row's ``completed`` flag is set by
  compare-and-set, so one report on one replica counts it. Completion rate = completions / starts.
- ``marquee_playback_session_rebuffer_ratio``, ``marquee_playback_session_switches`` and
  ``marquee_playback_profile_watch_seconds{profile_kind}``: one observation per ended session (StopPlayback, a
  revocation, or the expiry sweep for a session whose heartbeats stopped), from the totals of the QoE reports it
  sent. The totals live in the session's store row (every replica adds a report's figures to them in the same
  compare-and-set that claims the report's window, see :meth:`PlaybackServicer.ReportQoe`), and the end is a
  compare-and-set of ``ended`` too, so a session is observed once, by whichever replica ends it, with every report
  accounted before its end. A session that reported neither playing nor stalled time has no rebuffer ratio (0/0)
  and is left out of that histogram only.

Every figure comes from reports already bounded by what the session can have observed (services/playback/qoe.py):
the playing and stalled time of all a session's reports fit in its wall-clock life, so watch time cannot be
inflated. ``profile_kind`` is ``kids`` or ``standard`` from the access token the session was started with (the
accounts service signs whether the selected profile is a kids profile), never from a request field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Histogram

from marquee.v1 import playback_pb2

STANDARD, KIDS = "standard", "kids"
PROFILE_KINDS = (STANDARD, KIDS)

STARTS = Counter("marquee_playback_starts_total", "Playback sessions started (StartPlayback succeeded).")
COMPLETIONS = Counter(
    "marquee_playback_completions_total",
    "Playback sessions in which the title was finished (the position reached the finished threshold); once per"
    " session.",
)
SESSION_REBUFFER_RATIO = Histogram(
    "marquee_playback_session_rebuffer_ratio",
    "Per ended session: stalled time over stalled plus playing time, from the QoE reports it sent.",
    buckets=(0, 0.0001, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1),
)
SESSION_SWITCHES = Histogram(
    "marquee_playback_session_switches",
    "Per ended session: bitrate switches, from the QoE reports it sent.",
    buckets=(0, 1, 2, 3, 5, 10, 20, 50, 100, 250),
)
WATCH_SECONDS = Histogram(
    "marquee_playback_profile_watch_seconds",
    "Per ended session: time spent playing (from its QoE reports), by the kind of profile that watched.",
    ["profile_kind"],
    buckets=(10, 30, 60, 300, 600, 1200, 1800, 2700, 3600, 5400, 7200, 10800, 14400),
)
for _kind in PROFILE_KINDS:  # both series exist (at zero) from the start, for the dashboards' rates
    WATCH_SECONDS.labels(profile_kind=_kind)


def profile_kind(kids: bool) -> str:
    return KIDS if kids else STANDARD


def totals(report: playback_pb2.QoeReport) -> tuple[int, int, int]:
    """A checked report's (stalled ms, playing ms, bitrate switches)."""
    stalled = sum(s.duration.ToMilliseconds() for s in report.stalls)
    return stalled, report.playing_time.ToMilliseconds(), len(report.bitrate_switches)


def added(row: Mapping[str, Any], report: playback_pb2.QoeReport) -> dict[str, int]:
    """The session row's QoE totals with ``report`` added (the columns a report's compare-and-set writes)."""
    stalled, playing, switches = totals(report)
    return {
        "qoe_stalled_ms": (row.get("qoe_stalled_ms") or 0) + stalled,
        "qoe_playing_ms": (row.get("qoe_playing_ms") or 0) + playing,
        "qoe_switches": (row.get("qoe_switches") or 0) + switches,
    }


def observe_end(row: Mapping[str, Any]) -> None:
    """Observes an ended session from its row's totals (called once per session: after winning its end)."""
    stalled = row.get("qoe_stalled_ms") or 0
    playing = row.get("qoe_playing_ms") or 0
    if stalled + playing > 0:
        SESSION_REBUFFER_RATIO.observe(stalled / (stalled + playing))
    SESSION_SWITCHES.observe(row.get("qoe_switches") or 0)
    kind = row.get("profile_kind")
    WATCH_SECONDS.labels(profile_kind=kind if kind in PROFILE_KINDS else STANDARD).observe(playing / 1000)
