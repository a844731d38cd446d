"""Reviews: text (at most 5,000 characters) by a profile, listed newest first.

The author's name and stars are the server's: the profile's display name (from its access token, as accounts
issued it) and the profile's rating of the title when the review is written (0 without one); what a client puts
in those fields is ignored. Reports count once per account (however many profiles it has; the author's own
account's not at all); a review is hidden once reports from ``hide_after`` distinct accounts arrive, or at once
when a moderator (an admin) reports it. Hidden reviews are listed only to their author and to moderators, marked
HIDDEN.

A ``request_id`` makes CreateReview safe to retry: the first call maps (account, profile, request id) to a new
review id with a lightweight transaction before it writes the review, so a retry, whichever replica takes it and
whether or not the first call's answer was lost, writes that same review (again: the same row) and returns it.
A request id names one review of one title: reusing it for another title is INVALID_ARGUMENT."""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from marquee.v1 import catalog_pb2
from services.catalog.schema import REVIEW_REPORTS, REVIEW_REQUEST_TTL, REVIEW_REQUESTS, REVIEWS
from services.common.context import Principal
from services.common.errors import InvalidArgument, NotFound
from services.common.ids import new_id, now_micros
from services.common.names import NamePattern
from services.common.store.port import Page, PagingState, Row, Store

REVIEW = NamePattern("titles/{title}/reviews/{review}")
AUTHOR = NamePattern("accounts/{account}/profiles/{profile}")
MAX_TEXT = 5000
MAX_NAME = 50
MAX_REASON = 500
MAX_REQUEST_ID = 64


def to_pb(row: Row) -> catalog_pb2.Review:
    ts = timestamp_pb2.Timestamp()
    ts.FromMicroseconds(row["create_time"])
    return catalog_pb2.Review(
        name=REVIEW.format(title=row["title_id"], review=row["review_id"]),
        author=AUTHOR.format(account=row["account_id"], profile=row["profile_id"]),
        author_display_name=row["author_display_name"],
        text=row["text"],
        stars=row["stars"],
        state=catalog_pb2.REVIEW_STATE_HIDDEN if row["hidden"] else catalog_pb2.REVIEW_STATE_VISIBLE,
        create_time=ts,
    )


class Reviews:
    def __init__(self, store: Store, hide_after_reports: int) -> None:
        self._store = store
        self._hide_after = hide_after_reports

    async def create(
        self,
        title_id: str,
        account_id: str,
        profile_id: str,
        display_name: str,
        text: str,
        stars: int,
        request_id: str = "",
    ) -> Row:
        """A review by the profile; ``display_name`` and ``stars`` are the server's (the profile's, its rating).
        With ``request_id``, the review that id already created, if any (see the module's documentation)."""
        text = text.strip()
        if not text:
            raise InvalidArgument("review.text is required", field_name="review.text")
        if len(text) > MAX_TEXT:
            raise InvalidArgument(f"review.text is longer than {MAX_TEXT} characters", field_name="review.text")
        if len(request_id) > MAX_REQUEST_ID:
            raise InvalidArgument(f"request_id is longer than {MAX_REQUEST_ID} characters", field_name="request_id")
        review_id = new_id()
        if request_id:
            review_id = await self._claim(title_id, account_id, profile_id, request_id, review_id)
            existing = await self._store.get(REVIEWS, {"title_id": title_id, "review_id": review_id})
            if existing is not None:
                return existing
        row = {
            "title_id": title_id,
            "review_id": review_id,
            "account_id": account_id,
            "profile_id": profile_id,
            "author_display_name": display_name.strip()[:MAX_NAME],
            "text": text,
            "stars": stars,
            "hidden": False,
            "reports": 0,
            "create_time": now_micros(),
        }
        await self._store.insert(REVIEWS, row)
        return row

    async def _claim(self, title_id: str, account_id: str, profile_id: str, request_id: str, review_id: str) -> str:
        """The review id of this request: ``review_id`` if the request is new, else the one its first call chose."""
        key = {"account_id": account_id, "profile_id": profile_id, "request_id": request_id}
        mapping = {**key, "title_id": title_id, "review_id": review_id}
        if await self._store.insert(REVIEW_REQUESTS, mapping, if_not_exists=True, ttl=REVIEW_REQUEST_TTL):
            return review_id
        first = await self._store.get(REVIEW_REQUESTS, key)
        if first is None:  # expired in between: a new request
            return await self._claim(title_id, account_id, profile_id, request_id, review_id)
        if first["title_id"] != title_id:
            raise InvalidArgument(
                f"request_id {request_id!r} already created a review of titles/{first['title_id']}",
                field_name="request_id",
            )
        return str(first["review_id"])

    async def get(self, title_id: str, review_id: str) -> Row:
        row = await self._store.get(REVIEWS, {"title_id": title_id, "review_id": review_id})
        if row is None:
            raise NotFound(f"review titles/{title_id}/reviews/{review_id} does not exist")
        return row

    async def list(
        self, title_id: str, limit: int, after: PagingState | None, reader: Principal
    ) -> tuple[list[Row], Page]:
        """The reviews ``reader`` may see, newest first: visible ones, plus hidden ones the reader wrote (or all
        hidden ones for a moderator). A page may be short where hidden reviews were skipped."""
        page = await self._store.query(REVIEWS, {"title_id": title_id}, limit=limit, after=after)
        return [r for r in page.rows if not r["hidden"] or reader.is_admin or _wrote(reader, r)], page

    async def delete(self, title_id: str, review_id: str) -> None:
        await self._store.delete(REVIEWS, {"title_id": title_id, "review_id": review_id})

    async def report(self, title_id: str, review_id: str, reporter: Principal, reason: str) -> bool:
        """Records the report (once per account); returns whether the review is now hidden."""
        if len(reason) > MAX_REASON:
            raise InvalidArgument(f"reason is longer than {MAX_REASON} characters", field_name="reason")
        key = {"title_id": title_id, "review_id": review_id}
        row = await self.get(title_id, review_id)
        if row["hidden"]:
            return True
        if reporter.is_admin:  # a moderator's decision
            await self._store.update(REVIEWS, key, {"hidden": True})
            return True
        if reporter.account_id == row["account_id"]:  # an author's household cannot bury its own review either
            return False
        fresh = await self._store.insert(
            REVIEW_REPORTS,
            {"review_id": review_id, "reporter": reporter.account_id, "reason": reason},
            if_not_exists=True,
        )
        if not fresh:
            return False
        if await self._store.increment(REVIEWS, key, "reports") >= self._hide_after:
            await self._store.update(REVIEWS, key, {"hidden": True})
            return True
        return False


def _wrote(reader: Principal, row: Row) -> bool:
    return (reader.account_id, reader.profile_id) == (row["account_id"], row["profile_id"])
