"""Input rules for accounts: each check raises INVALID_ARGUMENT naming the field and what is wrong."""

from __future__ import annotations

import re
import unicodedata

from services.common.errors import InvalidArgument

MAX_EMAIL = 254
MAX_DISPLAY_NAME = 100
MAX_PROFILE_NAME = 50
MAX_URI = 2048
MAX_LANGUAGE = 35  # BCP 47 tags are short

# Pragmatic address check (RFC 5321 lengths; a dot in the domain; no spaces or control characters).
_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_LANGUAGE_RE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")


def email(value: str, field: str = "email") -> str:
    """The normalised (lower-case) address."""
    value = value.strip()
    if not value:
        raise InvalidArgument(f"{field} is required", field_name=field)
    if len(value) > MAX_EMAIL:
        raise InvalidArgument(f"{field} is longer than {MAX_EMAIL} characters", field_name=field)
    if not _EMAIL_RE.match(value):
        raise InvalidArgument(f"{field} {value[:80]!r} is not a valid email address", field_name=field)
    return value.lower()


def password(value: str, *, min_length: int, max_length: int, field: str = "password") -> str:
    if len(value) < min_length:
        raise InvalidArgument(f"{field} must be at least {min_length} characters", field_name=field)
    if len(value) > max_length:
        raise InvalidArgument(f"{field} must be at most {max_length} characters", field_name=field)
    return value


def display_name(value: str, field: str, *, max_length: int = MAX_DISPLAY_NAME, required: bool = True) -> str:
    """Trimmed, NFC-normalised, without control characters."""
    value = unicodedata.normalize("NFC", value.strip())
    if not value:
        if required:
            raise InvalidArgument(f"{field} is required", field_name=field)
        return value
    if len(value) > max_length:
        raise InvalidArgument(f"{field} is longer than {max_length} characters", field_name=field)
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise InvalidArgument(f"{field} contains control characters", field_name=field)
    return value


def language(value: str, field: str = "language") -> str:
    if not value:
        return ""
    if len(value) > MAX_LANGUAGE or not _LANGUAGE_RE.match(value):
        raise InvalidArgument(f"{field} {value[:40]!r} is not a BCP 47 language tag", field_name=field)
    return value


def uri(value: str, field: str) -> str:
    if not value:
        return ""
    if len(value) > MAX_URI:
        raise InvalidArgument(f"{field} is longer than {MAX_URI} characters", field_name=field)
    if not (value.startswith("https://") or value.startswith("http://") or value.startswith("/")):
        raise InvalidArgument(f"{field} must be an http(s) URL or an absolute path", field_name=field)
    return value
