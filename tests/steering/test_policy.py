"""The steering policy and state, deterministic under a fake clock: zones, health, bounded loads, remapping."""

from __future__ import annotations

import ipaddress
from collections import Counter

import pytest

from services.steering.config import SteeringConfig
from services.steering.policy import PolicyConfig, Reason, Ring, SteeringInput, order
from services.steering.registry import EdgeRecord, Heartbeat, Registry, Role
from services.steering.steerer import BadInput, SessionEnded, Steering, UnknownSession
from services.steering.zones import CoverageError, CoverageZones

ZONES = {
    "coverageZones": {
        "metro": {"network": ["10.0.0.0/8"], "edgeGroups": ["metro"]},
        "east": {"network": ["10.1.0.0/16"], "network6": ["2001:db8:1::/48"], "edgeGroups": ["east", "metro"]},
        "east-dc": {"network": ["10.1.2.0/24"], "edgeGroups": ["dc"]},
    }
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def edge(edge_id: str, zone: str = "metro", role: Role = Role.EDGE, **kw: object) -> EdgeRecord:
    return EdgeRecord(edge_id, edge_id, f"http://{edge_id}.test:8081/v/", zone, role, 10**9, **kw)  # type: ignore[arg-type]


def test_longest_prefix_match() -> None:
    cz = CoverageZones.from_dict(ZONES)
    ip = ipaddress.ip_address
    assert cz.match(ip("10.9.9.9")).name == "metro"  # type: ignore[union-attr]
    assert cz.match(ip("10.1.9.9")).name == "east"  # type: ignore[union-attr]
    assert cz.match(ip("10.1.2.3")).name == "east-dc"  # type: ignore[union-attr]
    assert cz.match(ip("::ffff:10.1.2.3")).name == "east-dc"  # type: ignore[union-attr]
    assert cz.match(ip("2001:db8:1::5")).edge_groups == ("east", "metro")  # type: ignore[union-attr]
    assert cz.match(ip("192.0.2.1")) is None
    assert cz.match(ip("2001:db8:2::5")) is None
    for bad in (
        {},
        {"coverageZones": {"z": {"network": ["10.0.0.0/33"]}}},
        {"coverageZones": {"z": {"network": ["2001:db8::/32"]}}},
        {"coverageZones": {"z": {"edgeGroups": "notalist"}}},
    ):
        with pytest.raises(CoverageError):
            CoverageZones.from_dict(bad)


def test_unhealthy_overloaded_demoted_and_fallbacks() -> None:
    clock = Clock()
    registry = Registry(heartbeat_timeout=15, clock=clock)
    for e in [
        edge("a"),
        edge("b"),
        edge("c"),
        edge("far", zone="west", countries=("FR",)),
        edge("shield", role=Role.SHIELD),
        edge("origin", role=Role.ORIGIN),
    ]:
        registry.register(e)
    ring = Ring(["a", "b", "c", "far"])
    request = SteeringInput("title-1", ("metro",), "US", None, frozenset())
    ids = [p.edge_id for p in order(request, registry.all(), registry.alive, ring, {})]
    assert set(ids) == {"a", "b", "c"}, "players never see shields and origins unless configured to"
    fallback = PolicyConfig(shield_fallback=True)
    ids = [p.edge_id for p in order(request, registry.all(), registry.alive, ring, {}, fallback)]
    assert set(ids[:3]) == {"a", "b", "c"} and ids[3:] == ["shield", "origin"], "other zones are not listed"
    first = ids[0]
    # a missed heartbeat: gone from the answer
    clock.now += 10
    for e in registry.all():
        if e.edge_id != first:
            registry.heartbeat(e.edge_id, Heartbeat(True, 0, 0, 10**9, 0, 0, frozenset()))
    clock.now += 10
    ids = [p.edge_id for p in order(request, registry.all(), registry.alive, ring, {})]
    assert first not in ids
    # an edge at its capacity takes no new sessions
    second = ids[0]
    registry.heartbeat(second, Heartbeat(True, 0, 10**9, 10**9, 0, 0, frozenset()))
    assert second not in [p.edge_id for p in order(request, registry.all(), registry.alive, ring, {})]
    registry.heartbeat(second, Heartbeat(True, 0, 0, 10**9, 0, 0, frozenset()))
    # a demoted pathway goes after the good ones
    demoted = SteeringInput("title-1", ("metro",), "US", None, frozenset({second}))
    got = order(demoted, registry.all(), registry.alive, ring, {})
    assert (got[1].edge_id, got[1].reason) == (second, Reason.HEALTH_DEMOTED)
    # no zone: the client's country, then anything
    nozone = SteeringInput("title-1", None, "FR", None, frozenset())
    got = order(nozone, registry.all(), registry.alive, ring, {}, fallback)
    assert (got[0].edge_id, got[0].reason) == ("far", Reason.CACHE_AFFINITY)
    assert got[-2:][0].reason == Reason.SHIELD_FALLBACK and got[-1].reason == Reason.ORIGIN_FALLBACK
    # nothing alive but the last resorts
    clock.now += 100
    registry.heartbeat("shield", Heartbeat(True, 0, 0, 10**9, 0, 0, frozenset()))
    assert [p.reason for p in order(request, registry.all(), registry.alive, ring, {}, fallback)] == [
        Reason.SHIELD_FALLBACK
    ]
    assert order(request, registry.all(), registry.alive, ring, {}) == []


def test_bounded_load_spills_a_hot_title() -> None:
    registry = Registry(heartbeat_timeout=15, clock=Clock())
    for name in "abcd":
        registry.register(edge(name))
    ring = Ring("abcd")
    request = SteeringInput("hot-title", ("metro",), "", None, frozenset())
    affinity = order(request, registry.all(), registry.alive, ring, {})[0].edge_id
    assigned: Counter[str] = Counter()
    reasons: Counter[Reason] = Counter()
    for _ in range(400):
        p = order(request, registry.all(), registry.alive, ring, assigned, PolicyConfig(bound_factor=1.25))[0]
        assigned[p.edge_id] += 1
        reasons[p.reason] += 1
        total = sum(assigned.values())
        assert max(assigned.values()) <= -(-1.25 * total // 4), "no edge above ceil(c * sessions / edges)"
    assert assigned[affinity] == max(assigned.values())
    assert reasons[Reason.CACHE_AFFINITY] == assigned[affinity] and reasons[Reason.LOAD_SPILLOVER] > 0


@pytest.mark.parametrize("n", [2, 4, 8])
def test_about_one_nth_of_titles_move_when_an_edge_joins_or_leaves(n: int) -> None:
    titles = [f"title-{i}" for i in range(20_000)]
    before = Ring([f"e{i}" for i in range(n)])
    after = Ring([f"e{i}" for i in range(n + 1)])
    joined = sum(before.walk(t)[0] != after.walk(t)[0] for t in titles) / len(titles)
    assert 0.6 / (n + 1) <= joined <= 1.4 / (n + 1), joined
    assert all(after.walk(t)[0] == "e" + str(n) for t in titles if before.walk(t)[0] != after.walk(t)[0])
    left = Ring([f"e{i}" for i in range(1, n + 1)])
    moved = sum(after.walk(t)[0] != left.walk(t)[0] for t in titles) / len(titles)
    assert 0.6 / (n + 1) <= moved <= 1.4 / (n + 1), moved


def test_sessions_stick_expire_and_report_problems() -> None:
    clock = Clock()
    config = SteeringConfig(session_idle_timeout=60, problem_threshold=3, min_throughput_bps=500_000)
    steering = Steering(config, CoverageZones.from_dict(ZONES), clock=clock)
    for name in "abc":
        steering.registry.register(edge(name))
    d = steering.steer("s1", title_id="t", client="10.9.9.9", country="US")
    first = d.pathways[0].pathway_id
    assert steering.steer("s1").pathways[0].pathway_id == first, "a session keeps its edge"
    # the player measures poor throughput on its pathway: demoted for this session
    d = steering.steer("s1", current_pathway=first, throughput_bps=100_000)
    assert d.pathways[0].pathway_id != first and d.pathways[-1].reason == Reason.HEALTH_DEMOTED
    # enough problem reports demote a pathway for everyone
    for i in range(3):
        steering.steer(f"r{i}", title_id="t", client="10.9.9.9")
        steering.report_problem(f"r{i}", "b", 1)
    assert steering.steer("other", title_id="t", client="10.9.9.9").pathways[-1].pathway_id == "b"
    clock.now += 61
    with pytest.raises(SessionEnded):
        steering.steer("s1")
    with pytest.raises(UnknownSession):
        steering.steer("never-seen")
    for kwargs in (
        {"client": "999.1.1.1"},
        {"client": "10.0.0.1", "country": "usa"},
        {"client": "10.0.0.1", "throughput_bps": -5.0},
        {"client": "10.0.0.1", "throughput_bps": float("nan")},
        {"client": "10.0.0.1", "throughput_bps": 1e18},
    ):
        with pytest.raises(BadInput):
            steering.steer("new", title_id="t", **kwargs)
    with pytest.raises(BadInput):
        steering.steer("bad id with spaces", title_id="t", client="10.0.0.1")
