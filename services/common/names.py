"""Resource names (AIP-122): parse ``accounts/{account}/profiles/{profile}`` style names strictly."""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.common.errors import InvalidArgument

ID_PATTERN = r"[a-z0-9][a-z0-9-]{0,62}"
_ID_RE = re.compile(rf"^{ID_PATTERN}$")


@dataclass(frozen=True)
class NamePattern:
    """A name template like ``accounts/{account}/profiles/{profile}``."""

    template: str

    def __post_init__(self) -> None:
        parts = []
        for seg in self.template.split("/"):
            if seg.startswith("{") and seg.endswith("}"):
                parts.append(f"(?P<{seg[1:-1]}>{ID_PATTERN})")
            else:
                parts.append(re.escape(seg))
        object.__setattr__(self, "_re", re.compile("^" + "/".join(parts) + "$"))

    def parse(self, name: str, field: str = "name") -> dict[str, str]:
        """The ids in ``name``; INVALID_ARGUMENT naming ``field`` and the expected format otherwise."""
        if not name:
            raise InvalidArgument(f"{field} is required (format: {self.template})", field_name=field)
        match = self._re.match(name) if len(name) <= 512 else None  # type: ignore[attr-defined]
        if match is None:
            raise InvalidArgument(
                f"{field} {_clip(name)!r} is not a valid resource name (format: {self.template})",
                field_name=field,
            )
        return dict(match.groupdict())

    def format(self, **ids: str) -> str:
        return self.template.format(**ids)


def valid_id(value: str) -> bool:
    return bool(_ID_RE.match(value))


def _clip(value: str, limit: int = 80) -> str:
    return value if len(value) <= limit else value[:limit] + "..."
