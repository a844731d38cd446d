"""AccountService configuration: the ``[services.accounts]`` section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from services.accounts.passwords import PasswordPolicy
from services.common.config import ServerConfig
from services.common.ratelimit import Rate


class Plan(BaseModel):
    """A subscription plan: the limits playback and accounts enforce."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    display_name: str
    max_concurrent_streams: int = Field(ge=1, le=100)
    max_resolution_height: int = Field(ge=144, le=4320)
    max_devices: int = Field(ge=1, le=10_000)
    monthly_price_cents: int = Field(0, ge=0)
    currency: str = "USD"


DEFAULT_PLANS = (
    Plan(
        id="basic",
        display_name="Basic",
        max_concurrent_streams=1,
        max_resolution_height=720,
        max_devices=2,
        monthly_price_cents=799,
    ),
    Plan(
        id="standard",
        display_name="Standard",
        max_concurrent_streams=2,
        max_resolution_height=1080,
        max_devices=5,
        monthly_price_cents=1549,
    ),
    Plan(
        id="premium",
        display_name="Premium",
        max_concurrent_streams=4,
        max_resolution_height=2160,
        max_devices=10,
        monthly_price_cents=2299,
    ),
)


class DemoAccountConfig(BaseModel):
    """The account the all-in-one creates on first start, so the web player can be tried at once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="create it when `marquee up` starts (never by create_server alone)")
    email: str = "demo@marquee.example"
    password: SecretStr = Field(SecretStr("marquee-demo"), description="printed by `marquee up`: a demo, not a secret")
    plan: str | None = Field(None, description="plan id; None: default_plan")
    profiles: tuple[str, ...] = Field(("Alex", "Sam"), min_length=1, description="adult profiles, first to last")
    kids_profile: str | None = Field("Kids", description="a kids profile (children's maturity limit); None: none")


class AccountsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    server: ServerConfig = ServerConfig()
    plans: tuple[Plan, ...] = DEFAULT_PLANS
    default_plan: str = "standard"
    max_profiles: int = Field(5, ge=1, le=20)
    passwords: PasswordPolicy = PasswordPolicy()
    sign_in_per_account: Rate = Rate(limit=5, period=60, burst=5)
    sign_in_per_address: Rate = Rate(limit=30, period=60, burst=30)
    sign_up_per_address: Rate = Rate(limit=10, period=3600, burst=10)
    trust_forwarded_for: bool = Field(
        False, description="take the client address from x-forwarded-for (only behind a trusted gateway)"
    )
    demo: DemoAccountConfig = DemoAccountConfig()

    @model_validator(mode="after")
    def _check_plans(self) -> AccountsConfig:
        ids = [p.id for p in self.plans]
        if len(set(ids)) != len(ids):
            raise ValueError("plans: ids must be unique")
        if self.default_plan not in ids:
            raise ValueError(f"default_plan {self.default_plan!r} is not one of the plans")
        if self.demo.enabled and self.demo.plan is not None and self.demo.plan not in ids:
            raise ValueError(f"demo.plan {self.demo.plan!r} is not one of the plans")
        if self.demo.enabled and len(self.demo.profiles) + bool(self.demo.kids_profile) > self.max_profiles:
            raise ValueError("demo: more profiles than max_profiles")
        return self

    def plan(self, plan_id: str) -> Plan | None:
        return next((p for p in self.plans if p.id == plan_id), None)
