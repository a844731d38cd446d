"""``SharedSessions``: the async front of ``Steering`` that the gRPC servicer and the HTTP endpoint call. It keeps
the local ``Steering`` (a cache of the sessions this replica steers) and the session directory (directory.py) in
step: a session this replica does not hold is looked up and adopted before it is steered; a session it steers is
written to the directory when it starts and then at most every ``refresh_interval`` (not at every reload)."""

from __future__ import annotations

import logging

from services.common.errors import Unavailable
from services.steering.directory import Ended, SessionDirectory, SessionFacts
from services.steering.evidence import Report
from services.steering.steerer import Decision, NoPathway, Session, SessionEnded, Steering, check_session_id

log = logging.getLogger("marquee.steering")


def facts(s: Session) -> SessionFacts:
    return SessionFacts(s.session_id, s.title_id, str(s.client), s.country, s.zone, s.account, dict(s.known_pathways))


class SharedSessions:
    def __init__(self, steering: Steering, directory: SessionDirectory, refresh_interval: float) -> None:
        self.steering = steering
        self.directory = directory
        self.refresh_interval = refresh_interval

    async def _find(self, session_id: str) -> None:
        """Makes a session the directory knows known here too (adopted, or ended)."""
        check_session_id(session_id)
        if self.steering.holds(session_id):
            return
        found = await self.directory.lookup(session_id)
        if found is Ended.ENDED:
            self.steering.end(session_id)
        elif found is not None:
            self.steering.adopt(
                session_id,
                title_id=found.title_id,
                client=found.client,
                country=found.country,
                account=found.account,
                known_pathways=found.known_pathways,
            )

    async def _share(self, session_id: str) -> None:
        """Writes the session to the directory when it starts, when its pathways became known, and then at most
        every ``refresh_interval``. Raises SessionEnded when another replica ended it meanwhile."""
        s = self.steering.sessions.get(session_id)
        if s is None:
            return
        now = self.steering.clock()
        due = (
            s.shared_at is None
            or now - s.shared_at >= self.refresh_interval
            or (bool(s.known_pathways) and not s.shared_pathways)
        )
        if not due:
            return
        try:
            live = await self.directory.write(facts(s))
        except Unavailable:
            if s.shared_at is None:
                raise  # the other replicas could not find it: the caller retries the start
            log.warning("steering: could not refresh session %s in the directory; it is still steered here", session_id)
            return
        if not live:
            self.steering.end(session_id)
            raise SessionEnded(f"session {session_id} has ended")
        s.shared_at, s.shared_pathways = now, bool(s.known_pathways)

    async def steer(
        self,
        session_id: str,
        *,
        title_id: str | None = None,
        client: str | None = None,
        country: str = "",
        account: str = "",
        current_pathway: str = "",
        throughput_bps: float | None = None,
        throughput_field: str = "throughput_bps",
    ) -> Decision:
        """``Steering.steer``, for any session live in the directory."""
        await self._find(session_id)
        try:
            decision = self.steering.steer(
                session_id,
                title_id=title_id,
                client=client,
                country=country,
                account=account,
                current_pathway=current_pathway,
                throughput_bps=throughput_bps,
                throughput_field=throughput_field,
            )
        except NoPathway:
            await self._share(session_id)  # started all the same: the player asks again
            raise
        await self._share(session_id)
        return decision

    async def report_problem(self, session_id: str, pathway_id: str, count: int) -> tuple[str, Report]:
        await self._find(session_id)
        return self.steering.report_problem(session_id, pathway_id, count)

    async def end(self, session_id: str) -> None:
        """Ends a session here and in the directory (each replica hears playback's end; the mark is idempotent)."""
        check_session_id(session_id)
        self.steering.end(session_id)
        await self.directory.end(session_id)
