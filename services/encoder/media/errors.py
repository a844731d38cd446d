"""Typed failures of the media pipeline."""

from __future__ import annotations


class MediaError(Exception):
    """Base of media pipeline failures; ``reason`` is an ErrorReason name."""

    reason = "SOURCE_INVALID"


class SourceError(MediaError):
    """The source is unreadable, corrupt, not a video, or has no video stream."""


class EncodeCancelled(MediaError):
    """The job was cancelled while encoding; nothing was published."""

    reason = "CANCELLED"
