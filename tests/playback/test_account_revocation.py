"""Issue 15, finding 3 (where the two halves meet): when the accounts service revokes an account's access tokens
(accounts.revoked: every session revoked, password changed, account deleted), playback ends that account's
playback sessions, whose signed URLs steering then revokes at every edge; another account's keep playing, and so
does a session a revocation of another sign-in session does not concern."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from google.protobuf import timestamp_pb2

from marquee.v1 import accounts_pb2, playback_pb2
from services.common.topics import ACCOUNTS_REVOKED, PLAYBACK_SESSION_ENDED
from services.playback.schema import SESSIONS
from tests.playback.conftest import Playback
from tests.playback.test_playback import start


async def _ended(p: Playback, session: playback_pb2.PlaybackSession) -> bool:
    row = await p.store.get(SESSIONS, {"session_id": session.name.removeprefix("playbackSessions/")})
    return bool(row and row["ended"])


async def test_revoked_accounts_lose_their_playback_sessions(playback: Playback) -> None:
    p = playback
    ended_events = await p.bus.subscribe(PLAYBACK_SESSION_ENDED, "test", "test")
    mine = await start(p, p.caller("rv1", "p1"), profile="accounts/rv1/profiles/p1")
    theirs = await start(p, p.caller("rv2", "p1"), profile="accounts/rv2/profiles/p1")
    now = timestamp_pb2.Timestamp()
    now.GetCurrentTime()

    async def revoke(**fields: object) -> None:
        event = accounts_pb2.AccessRevokedEvent(account="accounts/rv1", revoke_time=now, **fields)  # type: ignore[arg-type]
        await p.bus.publish(ACCOUNTS_REVOKED, event.SerializeToString(), key="rv1")

    # another sign-in session of the account was signed out: this playback is not concerned
    await revoke(session="another-sign-in", reason=accounts_pb2.REVOCATION_REASON_SIGNED_OUT)
    await revoke(reason=accounts_pb2.REVOCATION_REASON_PASSWORD_CHANGED)
    deadline = time.monotonic() + 10
    while not await _ended(p, mine):
        assert time.monotonic() < deadline, "the revoked account's session did not end"
        await asyncio.sleep(0.02)
    message = await ended_events.next(timeout=5)
    assert message is not None
    event = playback_pb2.SessionEndedEvent.FromString(message.payload)
    assert event.session == mine.name and event.reason == playback_pb2.SESSION_END_REASON_REVOKED
    assert event.url_expire_time.seconds >= mine.expire_time.seconds
    assert not await _ended(p, theirs)
    async with aiohttp.ClientSession() as http, http.get(mine.manifest_urls.hls_uri) as reply:
        assert reply.status == 410
    await ended_events.close()
