"""Following steering's revocation feed (WatchRevocations): the signed URLs of playback sessions that ended before
they expired are handed to every node's data plane, which refuses them (410) until they expire.

The follower keeps its place (epoch, sequence) across reconnects, so a dropped stream resumes where it stopped; a
restarted steering starts a new epoch, and the follower is then given every revocation still in force."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence

import grpc

from edge.node import EdgeNode
from marquee.v1 import steering_pb2 as pb
from marquee.v1.steering_pb2_grpc import SteeringServiceStub
from services.common.names import NamePattern

log = logging.getLogger("marquee.edge.revocations")
SESSION = NamePattern("playbackSessions/{session}")
MAX_BACKOFF = 5.0  # seconds between reconnection attempts, at most


class RevocationFollower:
    """Applies steering's revocation feed to ``nodes`` until cancelled (``run``)."""

    def __init__(
        self,
        nodes: Callable[[], Iterable[EdgeNode]],
        channel: grpc.aio.Channel,
        *,
        credentials: Callable[[], Sequence[tuple[str, str]]] = tuple,
    ) -> None:
        self.nodes = nodes
        self.stub = SteeringServiceStub(channel)
        self.credentials = credentials
        self.epoch = ""
        self.sequence = 0
        self.connected = asyncio.Event()  # set once the feed answered (its first message)

    def apply(self, message: pb.WatchRevocationsResponse) -> int:
        """Hands one message's revocations to every node; returns how many sessions it revoked."""
        sessions = [(SESSION.parse(r.session, "session")["session"], r.expire_time.seconds) for r in message.sessions]
        if sessions:
            for node in self.nodes():
                if node.running:
                    node.revoke_sessions(sessions)
        self.epoch, self.sequence = message.epoch, message.sequence
        return len(sessions)

    async def follow_once(self) -> None:
        request = pb.WatchRevocationsRequest(epoch=self.epoch, after_sequence=self.sequence)
        async for message in self.stub.WatchRevocations(request, metadata=self.credentials()):
            revoked = self.apply(message)
            self.connected.set()
            if revoked:
                log.info("revoked %d playback sessions", revoked, extra={"sequence": self.sequence})

    async def run(self) -> None:
        backoff = 0.25
        while True:
            try:
                await self.follow_once()
                backoff = 0.25  # the stream ended cleanly (steering stopping): reconnect soon
            except grpc.aio.AioRpcError as exc:
                log.warning("revocation feed unavailable: %s", exc.details())
            self.connected.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
