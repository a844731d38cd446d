"""Reviews: text (at most 5,000 characters) by a profile, listed newest first; reports from other profiles (one
each) hide a review once they reach the configured threshold."""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from marquee.v1 import catalog_pb2
from services.catalog.schema import REVIEW_REPORTS, REVIEWS
from services.common.errors import InvalidArgument, NotFound
from services.common.ids import new_id, now_micros
from services.common.names import NamePattern
from services.common.store.port import Page, PagingState, Row, Store

REVIEW = NamePattern("titles/{title}/reviews/{review}")
AUTHOR = NamePattern("accounts/{account}/profiles/{profile}")
MAX_TEXT = 5000
MAX_NAME = 50
MAX_REASON = 500


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
        self, title_id: str, account_id: str, profile_id: str, display_name: str, text: str, stars: int
    ) -> Row:
        text = text.strip()
        if not text:
            raise InvalidArgument("review.text is required", field_name="review.text")
        if len(text) > MAX_TEXT:
            raise InvalidArgument(f"review.text is longer than {MAX_TEXT} characters", field_name="review.text")
        if len(display_name) > MAX_NAME:
            raise InvalidArgument(
                f"review.author_display_name is longer than {MAX_NAME} characters",
                field_name="review.author_display_name",
            )
        if not 0 <= stars <= 5:
            raise InvalidArgument("review.stars must be between 0 (none) and 5", field_name="review.stars")
        row = {
            "title_id": title_id,
            "review_id": new_id(),
            "account_id": account_id,
            "profile_id": profile_id,
            "author_display_name": display_name.strip(),
            "text": text,
            "stars": stars,
            "hidden": False,
            "reports": 0,
            "create_time": now_micros(),
        }
        await self._store.insert(REVIEWS, row)
        return row

    async def get(self, title_id: str, review_id: str) -> Row:
        row = await self._store.get(REVIEWS, {"title_id": title_id, "review_id": review_id})
        if row is None:
            raise NotFound(f"review titles/{title_id}/reviews/{review_id} does not exist")
        return row

    async def list(self, title_id: str, limit: int, after: PagingState | None) -> tuple[list[Row], Page]:
        """Visible reviews, newest first (a page may be short where hidden reviews were skipped)."""
        page = await self._store.query(REVIEWS, {"title_id": title_id}, limit=limit, after=after)
        return [r for r in page.rows if not r["hidden"]], page

    async def delete(self, title_id: str, review_id: str) -> None:
        await self._store.delete(REVIEWS, {"title_id": title_id, "review_id": review_id})

    async def report(self, title_id: str, review_id: str, reporter: str, reason: str) -> bool:
        """Records one report per reporter; returns whether the review is now hidden."""
        if len(reason) > MAX_REASON:
            raise InvalidArgument(f"reason is longer than {MAX_REASON} characters", field_name="reason")
        row = await self.get(title_id, review_id)
        fresh = await self._store.insert(
            REVIEW_REPORTS, {"review_id": review_id, "reporter": reporter, "reason": reason}, if_not_exists=True
        )
        if not fresh:
            return bool(row["hidden"])
        reports = await self._store.increment(REVIEWS, {"title_id": title_id, "review_id": review_id}, "reports")
        if reports >= self._hide_after and not row["hidden"]:
            await self._store.update(REVIEWS, {"title_id": title_id, "review_id": review_id}, {"hidden": True})
            return True
        return bool(row["hidden"])
