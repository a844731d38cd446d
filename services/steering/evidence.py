"""Players' problem reports as evidence against a pathway, per coverage zone.

A pathway is demoted for the sessions of a zone only when, within the window, sessions of that zone reported
problems on it from at least ``min_sessions`` distinct sessions and ``min_accounts`` distinct accounts, and
their problems add up to ``threshold`` with each session, and each account over all its sessions, counting for
at most ``session_cap`` (so one session, or one account with many sessions, can never demote an edge for anyone
else). A demotion only reorders: the edge's
own heartbeats are what take it out of every answer.

With ``[state] kind = "redis"`` the reports live on Redis (services/steering/evidence_redis.py), so reports made
to different steering replicas add up; this is then each replica's snapshot of them."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class EvidenceRules:
    window: float  # seconds a report counts for
    threshold: int  # capped problems that demote
    session_cap: int  # most problems one session counts for
    min_sessions: int
    min_accounts: int
    max_reports: int  # kept per zone and pathway (the oldest go first)


@dataclass(frozen=True)
class Report:
    time: float
    session_id: str
    account: str
    count: int


class PathwayEvidence:
    def __init__(self, rules: EvidenceRules) -> None:
        self.rules = rules
        self._reports: dict[tuple[str, str], deque[Report]] = {}  # (zone, pathway) -> reports, oldest first
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}  # zone -> (computed at, demoted pathways)

    def add(self, zone: str, pathway: str, report: Report) -> None:
        reports = self._reports.setdefault((zone, pathway), deque(maxlen=self.rules.max_reports))
        reports.append(report)
        self._cache.pop(zone, None)

    def replace(self, reports: dict[tuple[str, str], list[Report]]) -> None:
        """Swaps in a snapshot of every (zone, pathway)'s reports, each list oldest first."""
        self._reports = {k: deque(v, maxlen=self.rules.max_reports) for k, v in reports.items()}
        self._cache.clear()

    def demoted(self, zone: str, now: float) -> frozenset[str]:
        """The pathways demoted for sessions in ``zone`` at ``now`` (computed at most once a second per zone)."""
        cached = self._cache.get(zone)
        if cached is not None and 0 <= now - cached[0] < 1.0:
            return cached[1]
        demoted = frozenset(
            pathway
            for (z, pathway), reports in list(self._reports.items())
            if z == zone and self._convinces(reports, now)
        )
        self._cache[zone] = (now, demoted)
        return demoted

    def demoted_anywhere(self, now: float) -> frozenset[str]:
        """Pathways demoted in at least one zone (what ListEdges shows as DEGRADED)."""
        zones = {z for z, _ in self._reports}
        return frozenset().union(*(self.demoted(z, now) for z in zones)) if zones else frozenset()

    def _convinces(self, reports: deque[Report], now: float) -> bool:
        while reports and now - reports[0].time > self.rules.window:
            reports.popleft()
        cap = self.rules.session_cap
        per_session: dict[str, tuple[str, int]] = {}  # session -> (account, problems)
        for r in reports:
            per_session[r.session_id] = (r.account, per_session.get(r.session_id, (r.account, 0))[1] + r.count)
        per_account: dict[str, int] = {}
        for account, count in per_session.values():
            per_account[account] = per_account.get(account, 0) + min(count, cap)
        weight = sum(min(count, cap) for count in per_account.values())
        return (
            len(per_session) >= self.rules.min_sessions
            and len(per_account) >= self.rules.min_accounts
            and weight >= self.rules.threshold
        )
