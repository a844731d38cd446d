"""AccountService configuration: the ``[services.accounts]`` section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from services.accounts.passwords import PasswordPolicy
from services.common.config import ConfigError, ServerConfig
from services.common.plans import Plans
from services.common.ratelimit import Rate


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
    default_plan: str = Field("standard", description="the plan of new accounts: one of the platform's [[plans]]")
    max_profiles: int = Field(5, ge=1, le=20)
    passwords: PasswordPolicy = PasswordPolicy()
    sign_in_per_account: Rate = Field(
        Rate(limit=5, period=60, burst=5),
        description="password attempts per account, right or wrong: SignIn, ChangePassword, leaving a kids profile",
    )
    sign_in_per_address: Rate = Rate(limit=30, period=60, burst=30)
    sign_up_per_address: Rate = Rate(limit=10, period=3600, burst=10)
    demo: DemoAccountConfig = DemoAccountConfig()

    @model_validator(mode="after")
    def _check_demo(self) -> AccountsConfig:
        if self.demo.enabled and len(self.demo.profiles) + bool(self.demo.kids_profile) > self.max_profiles:
            raise ValueError("demo: more profiles than max_profiles")
        return self

    def check_plans(self, plans: Plans) -> None:
        """ConfigError unless the plans named here are among the platform's."""
        if self.default_plan not in plans:
            raise ConfigError(f"services.accounts.default_plan {self.default_plan!r} is not one of {plans.ids()}")
        if self.demo.enabled and self.demo.plan is not None and self.demo.plan not in plans:
            raise ConfigError(f"services.accounts.demo.plan {self.demo.plan!r} is not one of {plans.ids()}")
