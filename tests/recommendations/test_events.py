"""Issue 18, item 3 (recommendations' half): impressions and clicks per row, for CTR. Every served row carries a
signed event token; ReportRecommendationEvents counts each served row's impression and each tile's click once,
with the row label from the token, and refuses tampered, expired, foreign and out-of-range events with reasons.
Each counter is read from the prometheus_client registry before and after."""

from __future__ import annotations

import base64
import json
import time

import grpc
from prometheus_client import REGISTRY

from marquee.v1 import recommendations_pb2 as pb
from services.recommendations.events import ROW_LABELS, EventTokens
from tests.catalog.conftest import AUTH
from tests.playback.test_playback import fails
from tests.recommendations.conftest import FAN, Recs, parent, token

IMPRESSION, CLICK = pb.RECOMMENDATION_EVENT_KIND_IMPRESSION, pb.RECOMMENDATION_EVENT_KIND_CLICK
LABELS = (*ROW_LABELS.values(), "other")


def counts() -> dict[tuple[str, str], float]:
    return {
        (kind, row): REGISTRY.get_sample_value(f"marquee_recommendations_{kind}_total", {"row": row}) or 0.0
        for kind in ("impressions", "clicks")
        for row in LABELS
    }


def moved(before: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    now = counts()
    return {k: now[k] - before[k] for k in now if now[k] != before[k]}


async def rows(recs: Recs, profile: str = FAN) -> list[pb.RecommendationRowResult]:
    reply = await recs.stub.ListRecommendationRows(
        pb.ListRecommendationRowsRequest(parent=parent(profile), items_per_row=5), metadata=token(profile)
    )
    assert reply.rows and all(r.event_token for r in reply.rows)
    return list(reply.rows)


async def report(recs: Recs, *events: pb.RecommendationEvent, profile: str = FAN, md: object = None) -> int:
    request = pb.ReportRecommendationEventsRequest(parent=parent(profile), events=events)
    reply = await recs.stub.ReportRecommendationEvents(request, metadata=md or token(profile))
    return int(reply.counted)


def event(row: pb.RecommendationRowResult | str, kind: int = IMPRESSION, position: int = 0) -> pb.RecommendationEvent:
    tok = row if isinstance(row, str) else row.event_token
    return pb.RecommendationEvent(event_token=tok, kind=kind, position=position)  # type: ignore[arg-type]


async def test_impressions_and_clicks_count_once_per_served_row(recs: Recs) -> None:
    served = await rows(recs)
    top = served[0]
    assert top.row == pb.RECOMMENDATION_ROW_TOP_PICKS
    before = counts()
    assert await report(recs, *(event(r) for r in served)) == len(served)
    expected: dict[tuple[str, str], float] = {}
    for r in served:
        key = ("impressions", ROW_LABELS[r.row])
        expected[key] = expected.get(key, 0) + 1
    assert moved(before) == expected
    # reported again, and twice in one call: counted already
    before = counts()
    assert await report(recs, event(top), event(top)) == 0
    assert moved(before) == {}
    # two tiles clicked, one of them twice (and again in the next call): two clicks
    assert await report(recs, event(top, CLICK, 0), event(top, CLICK, 4), event(top, CLICK, 0)) == 2
    assert await report(recs, event(top, CLICK, 4)) == 0
    assert moved(before) == {("clicks", "top_picks"): 2}
    # the same rows served again are new rows (a page reload): a new impression
    again = await rows(recs)
    before = counts()
    assert await report(recs, event(again[0])) == 1
    assert moved(before) == {("impressions", "top_picks"): 1}


async def test_a_page_of_one_row_carries_a_token_too(recs: Recs) -> None:
    request = pb.GetRecommendationsRequest(parent=parent(FAN), row=pb.RECOMMENDATION_ROW_TRENDING, page_size=3)
    reply = await recs.stub.GetRecommendations(request, metadata=token(FAN))
    assert len(reply.recommendations) == 3 and reply.event_token
    before = counts()
    assert await report(recs, event(reply.event_token), event(reply.event_token, CLICK, 2)) == 2
    assert moved(before) == {("impressions", "trending"): 1, ("clicks", "trending"): 1}
    await fails(report(recs, event(reply.event_token, CLICK, 3)), grpc.StatusCode.INVALID_ARGUMENT)


def tampered(tok: str, **changes: object) -> str:
    body, _, mac = tok.partition(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims.update(changes)
    raw = json.dumps(claims, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=") + "." + mac


async def test_hostile_events_are_refused_and_count_nothing(recs: Recs) -> None:
    served = await rows(recs)
    top = served[0]
    before = counts()
    bad, denied = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED
    # altered: another row kind, more tiles, another profile, a later expiry; garbage; none at all
    for changes in ({"r": pb.RECOMMENDATION_ROW_TRENDING}, {"n": 1000}, {"p": "p-other"}, {"e": 4102444800}):
        await fails(report(recs, event(tampered(top.event_token, **changes))), bad, "EVENT_TOKEN_INVALID")
    for garbage in ("", "x", "a.b", "!!!.???", top.event_token + "A", "e30." + top.event_token.split(".")[1]):
        await fails(report(recs, event(garbage)), bad, "EVENT_TOKEN_INVALID")
    # signed with a key this service does not hold (a token of another install)
    foreign = EventTokens({"local": b"another platform's key, 32 bytes!!"}, "local", 3600)
    forged = foreign.issue("acct-1", FAN, pb.RECOMMENDATION_ROW_TOP_PICKS, 5)
    await fails(report(recs, event(forged)), bad, "EVENT_TOKEN_INVALID")
    # expired: a token issued (with this service's key) two hours ago
    keys = {kid: s.get_secret_value().encode() for kid, s in AUTH.keys.items()}
    old = EventTokens(keys, AUTH.signing_kid, 3600, clock=lambda: time.time() - 7200)
    await fails(report(recs, event(old.issue("acct-1", FAN, 1, 5))), bad, "EVENT_TOKEN_EXPIRED")
    fresh = EventTokens(keys, AUTH.signing_kid, 3600)
    assert await report(recs, event(fresh.issue("acct-1", FAN, 1, 5))) == 1, "the same keys, unexpired: counted"
    before = counts()
    # another profile's rows, reported by that other profile or with its parent: not this caller's
    other = await rows(recs, profile="p-other")
    await fails(report(recs, event(other[0])), denied, "EVENT_TOKEN_NOT_YOURS")
    await fails(report(recs, event(top), profile="p-other", md=token("p-other")), denied, "EVENT_TOKEN_NOT_YOURS")
    other_account = fresh.issue("acct-2", FAN, 1, 5)  # the same profile id in another account
    await fails(report(recs, event(other_account)), denied, "EVENT_TOKEN_NOT_YOURS")
    await fails(report(recs, event(top), profile="p-other"), denied)  # the caller's token is for FAN
    # out of range, unknown kinds, too many events; one bad event fails the whole call, the good ones uncounted
    await fails(report(recs, event(top, CLICK, 5)), bad)
    await fails(report(recs, event(top, CLICK, -1)), bad)
    await fails(report(recs, event(top, IMPRESSION, 3)), bad)
    await fails(report(recs, event(top, pb.RECOMMENDATION_EVENT_KIND_UNSPECIFIED)), bad)
    await fails(report(recs, event(served[1]), event(tampered(top.event_token, n=50))), bad, "EVENT_TOKEN_INVALID")
    await fails(report(recs, *[event(top)] * 101), bad)
    await fails(report(recs), bad)
    assert moved(before) == {}
    assert await report(recs, event(served[1])) == 1, "the good event of the refused call was never counted"
