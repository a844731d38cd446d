"""Type stubs for the compiled module marquee._native (built from native/python by maturin)."""

from collections.abc import Mapping, Sequence
from typing import final

__all__ = [
    "InvalidArgumentError",
    "Presentation",
    "TokenClaims",
    "TokenError",
    "TokenExpiredError",
    "TokenForbiddenError",
    "TokenInvalidError",
    "TokenKeyring",
    "UnknownKeyError",
    "acl_matches",
]

# --- errors ---

class InvalidArgumentError(ValueError): ...
class TokenError(Exception): ...
class TokenInvalidError(TokenError): ...
class TokenExpiredError(TokenError): ...
class TokenForbiddenError(TokenError): ...
class UnknownKeyError(TokenError): ...

# --- tokens ---

@final
class TokenClaims:
    @property
    def kid(self) -> str: ...
    @property
    def expires_at(self) -> int: ...
    @property
    def acl(self) -> list[str]: ...
    @property
    def session_id(self) -> str | None: ...
    def __eq__(self, value: object, /) -> bool: ...

@final
class TokenKeyring:
    def __new__(cls, keys: Mapping[str, bytes], signing_kid: str) -> TokenKeyring: ...
    @property
    def signing_kid(self) -> str: ...
    @property
    def kids(self) -> list[str]: ...
    def sign(self, acl: Sequence[str], expires_at: int, session_id: str | None = None) -> str: ...
    def verify(
        self, token: str, path: str, *, now: int | None = None, session_id: str | None = None
    ) -> TokenClaims: ...

def acl_matches(pattern: str, path: str) -> bool: ...

# --- manifests ---

@final
class Presentation:
    @staticmethod
    def from_json(text: str) -> Presentation: ...
    @property
    def title_id(self) -> str: ...
    @property
    def duration(self) -> float: ...
    @property
    def video_ids(self) -> list[str]: ...
    @property
    def audio_ids(self) -> list[str]: ...
    @property
    def video_heights(self) -> list[int]: ...
    def hls_multivariant(
        self,
        *,
        token: str | None = None,
        token_param: str = "token",
        pathways: Sequence[tuple[str, str]] | None = None,
        steering: tuple[str, str] | None = None,
        max_height: int | None = None,
    ) -> str: ...
    def hls_media(self, rendition_id: str, *, token: str | None = None, token_param: str = "token") -> str: ...
    def hls_iframes(self, rendition_id: str, *, token: str | None = None, token_param: str = "token") -> str: ...
    def dash_mpd(
        self,
        *,
        token: str | None = None,
        token_param: str = "token",
        pathways: Sequence[tuple[str, str]] | None = None,
        steering: tuple[str, str] | None = None,
        max_height: int | None = None,
    ) -> str: ...
