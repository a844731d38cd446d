"""Titles between the store (rows), the API (marquee.v1.Title) and the search index (documents); validation."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf import duration_pb2

from marquee.v1 import catalog_pb2, common_pb2
from services.common.errors import InvalidArgument
from services.common.names import NamePattern
from services.common.store.port import Row
from services.common.timevalues import timestamp_of

TITLE = NamePattern("titles/{title}")
TITLE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
REGION = re.compile(r"^[A-Z]{2}$")
LIMITS = {"display_name": 300, "original_title": 300, "description": 5000, "genre": 40, "person": 120}
MAX_GENRES, MAX_PEOPLE, MAX_REGIONS = 20, 200, 300
TYPES = {v.number: v.name for v in catalog_pb2.TitleType.DESCRIPTOR.values if v.number}
MATURITY = {v.number: v.name for v in common_pb2.MaturityRating.DESCRIPTOR.values if v.number}
MATURITY_VALUE = {name: number for number, name in MATURITY.items()}
TYPE_VALUE = {name: number for number, name in TYPES.items()}
# Fields an update_mask may name (OUTPUT_ONLY ones are refused).
UPDATABLE = {
    "display_name", "original_title", "description", "release_year", "genres", "cast", "directors",
    "maturity_rating", "licensed_regions", "runtime", "type", "seasons", "series", "artwork",
}  # fmt: skip
MAX_URI = 2048
MAX_SEASONS, MAX_EPISODES = 100, 500


@dataclass(frozen=True)
class TitleFilter:
    """What browse and search filter on; ``max_maturity`` is already the stricter of profile and request."""

    genre: str | None = None
    min_year: int | None = None
    max_year: int | None = None
    kind: int | None = None
    max_maturity: int | None = None
    region: str | None = None
    playable_only: bool = False

    def matches(self, row: Row) -> bool:
        if self.genre is not None and self.genre.casefold() not in {g.casefold() for g in row["genres"]}:
            return False
        year = row["release_year"] or 0
        if self.min_year is not None and year < self.min_year:
            return False
        if self.max_year is not None and year > self.max_year:
            return False
        if self.kind is not None and TYPE_VALUE.get(row["type"], 0) != self.kind:
            return False
        if self.max_maturity is not None and MATURITY_VALUE.get(row["maturity_rating"], 6) > self.max_maturity:
            return False
        if self.region is not None and row["licensed_regions"] and self.region not in row["licensed_regions"]:
            return False
        return not (self.playable_only and not row["playable"])

    def index_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"playable_only": self.playable_only}
        for key, value in (
            ("genre", self.genre),
            ("min_year", self.min_year),
            ("max_year", self.max_year),
            ("kind", self.kind),
            ("max_maturity", self.max_maturity),
            ("region", self.region),
        ):
            if value is not None:
                doc[key] = value
        return doc


def parse_filter(f: catalog_pb2.TitleFilter, profile_limit: int | None) -> TitleFilter:
    """The request's filter, checked, with the profile's maturity limit applied (the stricter one wins)."""

    def bad(field: str, message: str) -> InvalidArgument:
        return InvalidArgument(message, field_name=f"filter.{field}")

    if f.min_year and not 1870 <= f.min_year <= 2100:
        raise bad("min_year", "min_year must be between 1870 and 2100")
    if f.max_year and not 1870 <= f.max_year <= 2100:
        raise bad("max_year", "max_year must be between 1870 and 2100")
    if f.min_year and f.max_year and f.min_year > f.max_year:
        raise bad("min_year", "min_year is after max_year")
    if f.type and f.type not in TYPES:
        raise bad("type", f"type {f.type} is not a TitleType")
    if f.max_maturity and f.max_maturity not in MATURITY:
        raise bad("max_maturity", f"max_maturity {f.max_maturity} is not a MaturityRating")
    if f.region and not REGION.match(f.region):
        raise bad("region", f"region {f.region[:8]!r} is not an ISO 3166-1 alpha-2 code")
    if len(f.genre) > LIMITS["genre"]:
        raise bad("genre", f"genre is longer than {LIMITS['genre']} characters")
    limits = [m for m in (f.max_maturity or None, profile_limit) if m]
    return TitleFilter(
        genre=f.genre or None,
        min_year=f.min_year or None,
        max_year=f.max_year or None,
        kind=f.type or None,
        max_maturity=min(limits) if limits else None,
        region=f.region or None,
        playable_only=f.playable_only,
    )


def words_of(text: str) -> list[str]:
    """Lower-case words of letters and digits."""
    return "".join(c if c.isalnum() else " " for c in text.casefold()).split()


def to_pb(row: Row, summary: catalog_pb2.RatingSummary | None = None) -> catalog_pb2.Title:
    title = catalog_pb2.Title(
        name=TITLE.format(title=row["title_id"]),
        type=TYPE_VALUE.get(row["type"], 0),  # type: ignore[arg-type]
        display_name=row["display_name"],
        original_title=row["original_title"] or "",
        description=row["description"] or "",
        release_year=row["release_year"] or 0,
        genres=row["genres"],
        cast=[catalog_pb2.Person(**p) for p in row["cast"]],
        directors=[catalog_pb2.Person(**p) for p in row["directors"]],
        maturity_rating=MATURITY_VALUE.get(row["maturity_rating"], 0),  # type: ignore[arg-type]
        licensed_regions=row["licensed_regions"],
        playable=bool(row["playable"]),
        runtime=duration_pb2.Duration(seconds=row["runtime_seconds"] or 0),
        popularity=row["popularity"] or 0.0,
        create_time=timestamp_of(row["create_time"]),
        update_time=timestamp_of(row["update_time"]),
        etag=str(row["update_time"]),
        media=row.get("media_id") or "",
        source=row.get("source") or "",
    )
    for season in row.get("seasons") or []:
        s = title.seasons.add(number=season["number"])
        for ep in season["episodes"]:
            s.episodes.add(
                number=ep["number"],
                title=ep["title"],
                display_name=ep["display_name"],
                runtime=duration_pb2.Duration(seconds=ep["runtime_seconds"]),
            )
    if row.get("series"):
        title.series = row["series"]
    art = row.get("artwork") or {}
    title.artwork.poster_uri = art.get("poster_uri", "")
    title.artwork.backdrop_uri = art.get("backdrop_uri", "")
    if row["playable"] and row.get("media_id"):
        # edge paths of the encoded media's images; playback signs them for the session
        title.artwork.thumbnail_uri = f"/v/{row['media_id']}/thumbnail.jpg"
        title.artwork.trickplay_vtt_uri = f"/v/{row['media_id']}/trickplay/sprites.vtt"
    if summary is not None:
        title.rating_summary.CopyFrom(summary)
    return title


def index_doc(row: Row) -> dict[str, Any]:
    return {
        "id": row["title_id"],
        "title": row["display_name"],
        "original_title": row["original_title"] or "",
        "description": row["description"] or "",
        "cast": [p["display_name"] for p in row["cast"]],
        "directors": [p["display_name"] for p in row["directors"]],
        "genres": row["genres"],
        "year": row["release_year"] or 0,
        "maturity": MATURITY_VALUE.get(row["maturity_rating"], 6),
        "regions": row["licensed_regions"],
        "kind": TYPE_VALUE.get(row["type"], 0),
        "playable": bool(row["playable"]),
        "popularity": float(row["popularity"] or 0.0),
    }


def _text(value: str, field: str, *, required: bool = False) -> str:
    value = value.strip()
    if required and not value:
        raise InvalidArgument(f"{field} is required", field_name=f"title.{field}")
    if len(value) > LIMITS[field]:
        raise InvalidArgument(f"{field} is longer than {LIMITS[field]} characters", field_name=f"title.{field}")
    return value


def _people(people: Iterable[catalog_pb2.Person], field: str) -> list[dict[str, str]]:
    out = [{"display_name": p.display_name.strip(), "character": p.character.strip()} for p in people]
    if len(out) > MAX_PEOPLE or any(not p["display_name"] or len(p["display_name"]) > LIMITS["person"] for p in out):
        raise InvalidArgument(
            f"{field}: at most {MAX_PEOPLE} people, each with a display_name of 1-{LIMITS['person']} characters",
            field_name=f"title.{field}",
        )
    return out


def fields_from_pb(t: catalog_pb2.Title, paths: Iterable[str]) -> dict[str, Any]:
    """Store values for the given API fields of ``t``, validated."""
    out: dict[str, Any] = {}
    for path in paths:
        if path == "display_name":
            out["display_name"] = _text(t.display_name, "display_name", required=True)
        elif path == "original_title":
            out["original_title"] = _text(t.original_title, "original_title")
        elif path == "description":
            out["description"] = _text(t.description, "description")
        elif path == "release_year":
            if t.release_year and not 1870 <= t.release_year <= 2100:
                raise InvalidArgument("release_year must be between 1870 and 2100", field_name="title.release_year")
            out["release_year"] = t.release_year
        elif path == "genres":
            genres = list(dict.fromkeys(g.strip() for g in t.genres if g.strip()))
            if len(genres) > MAX_GENRES or any(len(g) > LIMITS["genre"] for g in genres):
                raise InvalidArgument(
                    f"at most {MAX_GENRES} genres of {LIMITS['genre']} characters", field_name="title.genres"
                )
            out["genres"] = genres
        elif path in ("cast", "directors"):
            out[path] = _people(getattr(t, path), path)
        elif path == "maturity_rating":
            if t.maturity_rating not in MATURITY:
                raise InvalidArgument("maturity_rating is required", field_name="title.maturity_rating")
            out["maturity_rating"] = MATURITY[t.maturity_rating]
        elif path == "licensed_regions":
            regions = sorted(set(t.licensed_regions))
            if len(regions) > MAX_REGIONS or not all(REGION.match(r) for r in regions):
                raise InvalidArgument(
                    "licensed_regions must be ISO 3166-1 alpha-2 codes", field_name="title.licensed_regions"
                )
            out["licensed_regions"] = regions
        elif path == "runtime":
            if not 0 <= t.runtime.seconds <= 100 * 3600:
                raise InvalidArgument("runtime must be between 0 and 100 hours", field_name="title.runtime")
            out["runtime_seconds"] = t.runtime.seconds
        elif path == "artwork":
            art = {"poster_uri": t.artwork.poster_uri.strip(), "backdrop_uri": t.artwork.backdrop_uri.strip()}
            for key, uri in art.items():
                if uri and (len(uri) > MAX_URI or not uri.startswith(("https://", "http://", "/"))):
                    raise InvalidArgument(
                        f"{key} must be an http(s) URI or an absolute path of at most {MAX_URI} characters",
                        field_name=f"title.artwork.{key}",
                    )
            out["artwork"] = art
        elif path == "seasons":
            out["seasons"] = _seasons(t.seasons)
        elif path == "series":
            if t.series:
                TITLE.parse(t.series, "title.series")
            out["series"] = t.series
        elif path == "type":
            if t.type not in TYPES:
                raise InvalidArgument("type is required", field_name="title.type")
            out["type"] = TYPES[t.type]
        else:
            raise InvalidArgument(f"{path} cannot be set (unknown or output only)", field_name="update_mask")
    return out


def _seasons(seasons: Iterable[catalog_pb2.Season]) -> list[dict[str, Any]]:
    """A show's seasons and episodes, checked: numbers positive and unique, names and runtimes sane."""
    out: list[dict[str, Any]] = []
    numbers: set[int] = set()
    for i, season in enumerate(seasons):
        field = f"title.seasons[{i}]"
        if season.number < 1 or season.number in numbers:
            raise InvalidArgument("season numbers must be positive and unique", field_name=f"{field}.number")
        numbers.add(season.number)
        if len(season.episodes) > MAX_EPISODES:
            raise InvalidArgument(f"at most {MAX_EPISODES} episodes per season", field_name=f"{field}.episodes")
        episodes: list[dict[str, Any]] = []
        seen: set[int] = set()
        for j, ep in enumerate(season.episodes):
            ef = f"{field}.episodes[{j}]"
            if ep.number < 1 or ep.number in seen:
                raise InvalidArgument("episode numbers must be positive and unique", field_name=f"{ef}.number")
            seen.add(ep.number)
            if ep.title:
                TITLE.parse(ep.title, f"{ef}.title")
            name = ep.display_name.strip()
            if not name or len(name) > LIMITS["display_name"]:
                raise InvalidArgument(
                    f"display_name must be 1-{LIMITS['display_name']} characters", field_name=f"{ef}.display_name"
                )
            if not 0 <= ep.runtime.seconds <= 24 * 3600:
                raise InvalidArgument("runtime must be between 0 and 24 hours", field_name=f"{ef}.runtime")
            episodes.append(
                {"number": ep.number, "title": ep.title, "display_name": name, "runtime_seconds": ep.runtime.seconds}
            )
        out.append({"number": season.number, "episodes": sorted(episodes, key=lambda e: e["number"])})
    if len(out) > MAX_SEASONS:
        raise InvalidArgument(f"at most {MAX_SEASONS} seasons", field_name="title.seasons")
    return sorted(out, key=lambda s: s["number"])
