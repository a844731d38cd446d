"""Event-bus topics shared between services: one place for the names, payloads are marquee.v1 messages."""

from __future__ import annotations

# marquee.v1.EncodingDoneEvent, keyed by title id: an encoded title is in the origin store.
ENCODING_DONE = "encoding.done"
