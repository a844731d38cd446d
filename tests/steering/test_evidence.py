"""Issue 15, finding 2 (steering's half): one player's problem reports cannot push an edge down for everyone.
A pathway is demoted for other sessions only on evidence from several sessions and accounts in the same coverage
zone, each session's problems capped; the reporter itself still moves off the pathway at once."""

from __future__ import annotations

from services.steering.config import SteeringConfig
from services.steering.policy import Reason
from services.steering.registry import Heartbeat
from services.steering.steerer import Steering
from services.steering.zones import CoverageZones
from tests.steering.test_policy import ZONES, Clock, edge

EAST, WEST = "10.1.0.7", "10.200.0.7"  # the east zone's network, and the metro zone's


def _steering() -> tuple[Steering, Clock]:
    clock = Clock()
    config = SteeringConfig(problem_threshold=5, problem_session_cap=2, problem_min_sessions=3, problem_min_accounts=3)
    steering = Steering(config, CoverageZones.from_dict(ZONES), clock=clock)
    for name in "ab":
        steering.registry.register(edge(name, zone="metro"))
    return steering, clock


def _reporter(steering: Steering, session: str, account: str, client: str = EAST) -> None:
    steering.steer(session, title_id="t", client=client, account=account)


def _demoted_for(steering: Steering, session: str, client: str = EAST) -> set[str]:
    decision = steering.steer(session, title_id="t", client=client)
    return {p.pathway_id for p in decision.pathways if p.reason is Reason.HEALTH_DEMOTED}


def test_one_account_cannot_demote_an_edge_for_anyone_else() -> None:
    steering, _ = _steering()
    target = steering.steer("probe", title_id="t", client=EAST).pathways[0].pathway_id
    # the report: one session, five stalls (and more, from more sessions of the same account)
    _reporter(steering, "mine-1", "acct-1")
    steering.report_problem("mine-1", target, 5)
    for i in range(2, 6):
        _reporter(steering, f"mine-{i}", "acct-1")
        steering.report_problem(f"mine-{i}", target, 1000)
    assert _demoted_for(steering, "mine-1") == {target}, "the reporter moves off it itself"
    assert _demoted_for(steering, "victim") == set()
    # two more accounts, one problem each: sessions and accounts enough, but each account counts for at most 2
    # problems (whatever its sessions reported): 2 + 1 + 1 < 5
    for account in ("acct-2", "acct-3"):
        _reporter(steering, f"s-{account}", account)
        steering.report_problem(f"s-{account}", target, 1)
    assert _demoted_for(steering, "victim") == set()


def test_evidence_from_several_accounts_demotes_in_their_zone_only() -> None:
    steering, clock = _steering()
    target = steering.steer("probe", title_id="t", client=EAST).pathways[0].pathway_id
    for i in range(3):
        _reporter(steering, f"s{i}", f"acct-{i}")
        steering.report_problem(f"s{i}", target, 2)
    assert _demoted_for(steering, "east-viewer") == {target}, "demoted for the east zone's sessions"
    assert _demoted_for(steering, "metro-viewer", WEST) == set(), "not for another zone's"
    assert target in steering.demoted_pathways(clock.now)
    clock.now += steering.config.problem_window + 1
    for name in "ab":
        steering.registry.heartbeat(name, Heartbeat(True, 0, 0, 10**9, 0, 0, frozenset()))
    assert _demoted_for(steering, "later-viewer") == set(), "evidence ages out of the window"
