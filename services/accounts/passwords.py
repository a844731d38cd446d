"""Password hashing with argon2id (RFC 9106 parameters), run off the event loop.

Hashing is deliberately slow; it runs in a worker thread so one sign-in never stalls other RPCs. Verification
of an unknown email still burns one hash, so response time does not reveal which emails exist.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import BaseModel, ConfigDict, Field


class PasswordPolicy(BaseModel):
    """argon2id cost parameters (defaults: RFC 9106 low-memory profile) and length limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_cost: int = Field(3, ge=1)
    memory_cost_kib: int = Field(64 * 1024, ge=8)
    parallelism: int = Field(1, ge=1)
    min_length: int = Field(8, ge=1)
    max_length: int = Field(128, ge=8)


class Passwords:
    def __init__(self, policy: PasswordPolicy | None = None) -> None:
        self.policy = policy or PasswordPolicy()
        self._hasher = PasswordHasher(
            time_cost=self.policy.time_cost,
            memory_cost=self.policy.memory_cost_kib,
            parallelism=self.policy.parallelism,
        )
        self._dummy = self._hasher.hash("not-a-real-password")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; ``stored_hash`` None still costs one verification (timing)."""
        target = stored_hash or self._dummy

        def check() -> bool:
            try:
                return bool(self._hasher.verify(target, password))
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        ok = await asyncio.to_thread(check)
        return ok and stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        return bool(self._hasher.check_needs_rehash(stored_hash))
