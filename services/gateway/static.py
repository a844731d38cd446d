"""The built web player's files (``web/dist``), served as a single-page app.

- A path naming a file under the directory serves it (``Range``, ``If-Modified-Since`` and ETags by aiohttp).
- A path whose last segment has no file extension (``/title/42``) serves ``index.html``: the app routes it.
- Content-hashed files (under ``immutable_paths``, Vite's ``/assets/``) are cached for a year as immutable;
  ``index.html`` is ``no-cache`` so a new build is picked up at once; other files for five minutes.
- Without a built player, a short page says how to build it.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path, PurePosixPath

from aiohttp import web

from services.gateway import metrics

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
SHORT = "public, max-age=300"

# types mimetypes may not know (or gets wrong on some systems)
CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".webmanifest": "application/manifest+json",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ico": "image/x-icon",
    ".png": "image/png",
    ".webp": "image/webp",
    ".txt": "text/plain",
}
TEXT_TYPES = ("text/", "application/json", "application/manifest+json", "image/svg+xml")

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Marquee</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto">
<h1>Marquee</h1>
<p>The web player is not built yet, so there is nothing to show here. Build it into <code>web/dist</code>
(or point <code>[services.gateway] static_dir</code> at a build) and reload this page.</p>
<p>The gRPC-web API is served here all the same.</p>
</body></html>
"""


def content_type(path: Path) -> str:
    kind = CONTENT_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"{kind}; charset=utf-8" if kind.startswith(TEXT_TYPES) else kind


class StaticFiles:
    def __init__(self, root: Path, immutable_paths: list[str]) -> None:
        self.root = root.resolve()
        self._immutable = tuple(immutable_paths)

    def _file(self, url_path: str) -> Path | None:
        """The file a URL path names, if it exists inside the root (no escaping it, no hidden files)."""
        parts = PurePosixPath(url_path).parts[1:]
        if any(p in ("..", ".") or p.startswith(".") for p in parts):
            return None
        candidate = self.root.joinpath(*parts)
        try:
            resolved = candidate.resolve()
        except (OSError, RuntimeError):
            return None
        if not resolved.is_relative_to(self.root) or not resolved.is_file():
            return None
        return resolved

    def _serve(self, path: Path, cache: str) -> web.FileResponse:
        headers = {"Content-Type": content_type(path), "Cache-Control": cache, "X-Content-Type-Options": "nosniff"}
        return web.FileResponse(path, headers=headers)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = self._respond(request)
        metrics.STATIC.labels(str(response.status)).inc()
        return response

    def _respond(self, request: web.Request) -> web.StreamResponse:
        url_path = request.path
        if not self.root.is_dir():
            return self._not_built()
        found = self._file(url_path) if url_path != "/" else None
        if found is not None:
            if found.name == "index.html":
                return self._serve(found, REVALIDATE)
            cache = IMMUTABLE if url_path.startswith(self._immutable) else SHORT
            return self._serve(found, cache)
        last = url_path.rstrip("/").rsplit("/", 1)[-1]
        if "." in last:
            return web.Response(status=404, text="not found\n", headers={"Cache-Control": "no-store"})
        index = self.root / "index.html"
        if not index.is_file():
            return self._not_built()
        return self._serve(index, REVALIDATE)

    def _not_built(self) -> web.Response:
        return web.Response(text=NOT_BUILT, content_type="text/html", headers={"Cache-Control": "no-store"})
