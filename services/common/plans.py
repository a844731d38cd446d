"""Subscription plans: the platform-wide ``[[plans]]`` (accounts sells them; playback and downloads enforce their
limits), shared so no service reads another's configuration."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from pydantic import BaseModel, ConfigDict, Field


class Plan(BaseModel):
    """A subscription plan: the limits the services enforce."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    display_name: str
    max_concurrent_streams: int = Field(ge=1, le=100)
    max_resolution_height: int = Field(ge=144, le=4320)
    max_devices: int = Field(ge=1, le=10_000)
    max_downloads: int = Field(25, ge=0, le=10_000, description="offline downloads held at once, all devices")
    max_downloads_per_device: int = Field(25, ge=0, le=10_000, description="offline downloads held on one device")
    offline_days: float = Field(30.0, gt=0, le=365, description="days an offline licence lasts without a check-in")
    offline_play_hours: float = Field(
        48.0, gt=0, le=24 * 365, description="hours an offline licence lasts once playback starts (then renew)"
    )
    monthly_price_cents: int = Field(0, ge=0)
    currency: str = "USD"


DEFAULT_PLANS = (
    Plan(
        id="basic",
        display_name="Basic",
        max_concurrent_streams=1,
        max_resolution_height=720,
        max_devices=2,
        max_downloads=15,
        max_downloads_per_device=15,
        monthly_price_cents=799,
    ),
    Plan(
        id="standard",
        display_name="Standard",
        max_concurrent_streams=2,
        max_resolution_height=1080,
        max_devices=5,
        max_downloads=100,
        max_downloads_per_device=50,
        monthly_price_cents=1549,
    ),
    Plan(
        id="premium",
        display_name="Premium",
        max_concurrent_streams=4,
        max_resolution_height=2160,
        max_devices=10,
        max_downloads=300,
        max_downloads_per_device=100,
        monthly_price_cents=2299,
    ),
)


class Plans:
    """The configured plans, in order, by id."""

    def __init__(self, plans: Sequence[Plan] = DEFAULT_PLANS) -> None:
        ids = [p.id for p in plans]
        if len(set(ids)) != len(ids):
            raise ValueError("plans: ids must be unique")
        self._plans = tuple(plans)
        self._by_id = {p.id: p for p in plans}

    def get(self, plan_id: str) -> Plan | None:
        return self._by_id.get(plan_id)

    def effective(self, plan_id: str, by: Callable[[Plan], tuple[float, ...]]) -> Plan:
        """The plan ``plan_id`` (an access token's); when it names none (a token without a plan), the most
        restrictive one: the least by ``by``, the limits a service enforces (the first of equals)."""
        plan = self._by_id.get(plan_id)
        return plan if plan is not None else min(self._plans, key=by)

    def __contains__(self, plan_id: object) -> bool:
        return plan_id in self._by_id

    def __iter__(self) -> Iterator[Plan]:
        return iter(self._plans)

    def __len__(self) -> int:
        return len(self._plans)

    def __getitem__(self, index: slice) -> tuple[Plan, ...]:
        return self._plans[index]

    def ids(self) -> list[str]:
        return list(self._by_id)
