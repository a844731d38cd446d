"""argon2id hashing with the production parameters."""

from __future__ import annotations

from services.accounts.passwords import PasswordPolicy, Passwords


async def test_argon2id_with_rfc9106_parameters() -> None:
    pw = Passwords()
    stored = await pw.hash("correct horse battery")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=1$")
    assert await pw.verify(stored, "correct horse battery")
    assert not await pw.verify(stored, "correct horse batterY")
    assert not await pw.verify(None, "correct horse battery")  # unknown account: same work, still refused
    assert not await pw.verify("not a hash", "x")
    assert not pw.needs_rehash(stored)
    cheaper = Passwords(PasswordPolicy(time_cost=1, memory_cost_kib=1024))
    assert cheaper.needs_rehash(stored)
