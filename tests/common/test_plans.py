"""Plans.effective: a token's plan, or the most restrictive plan by the limits the asking service enforces."""

from __future__ import annotations

from services.common.plans import Plan, Plans


def test_a_token_without_a_plan_gets_the_most_restrictive_by_the_services_limits() -> None:
    streams = Plan(id="streams", display_name="S", max_concurrent_streams=1, max_resolution_height=2160, max_devices=1)
    saves = Plan(id="saves", display_name="D", max_concurrent_streams=4, max_resolution_height=720, max_devices=1)
    plans = Plans([streams, saves.model_copy(update={"max_downloads": 1}), saves.model_copy(update={"id": "same"})])
    assert plans.effective("same", by=lambda p: (p.max_concurrent_streams,)).id == "same"
    assert plans.effective("", by=lambda p: (p.max_concurrent_streams, p.max_resolution_height)).id == "streams"
    assert plans.effective("gone", by=lambda p: (p.max_downloads,)).id == "saves"
    assert plans.effective("", by=lambda p: (p.max_resolution_height,)).id == "saves", "the first of equals"
