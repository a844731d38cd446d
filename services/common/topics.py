"""Event-bus topics shared between services: one place for the names, payloads are marquee.v1 messages."""

from __future__ import annotations

# marquee.v1.EncodingDoneEvent, keyed by title id: an encoded title is in the origin store.
ENCODING_DONE = "encoding.done"

# marquee.v1.AccessRevokedEvent, keyed by account: access tokens revoked before they expire (one session's, or all
# of an account's issued up to a time); processes that do not share the accounts service's deny list follow it.
ACCOUNTS_REVOKED = "accounts.revoked"

# marquee.v1.TitleRatedEvent, keyed by title id: a profile rated a title (or changed or removed its rating).
CATALOG_RATING = "catalog.rating"
# marquee.v1.TitleChangedEvent, keyed by title id: a title was created, updated or deleted.
CATALOG_TITLE = "catalog.title"
# marquee.v1.PlaybackUpdateEvent, keyed by profile: an applied position update.
PLAYBACK_UPDATE = "playback.update"
# marquee.v1.VideoViewedEvent, keyed by profile: a playback session ended.
PLAYBACK_VIEWED = "playback.viewed"
# marquee.v1.SessionEndedEvent, keyed by session: a playback session ended before its signed URLs expired;
# steering revokes them at every edge (its WatchRevocations feed).
PLAYBACK_SESSION_ENDED = "playback.session_ended"
