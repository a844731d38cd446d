"""MovieLens-100k (GroupLens), as shipped in the recbole 1.2.1 wheel: 1,682 movies with year and genres, 943
users, 100,000 ratings with timestamps. The demo catalog and the recommender's evaluation both read it here.

RecBole's atomic files are tab-separated with a typed header (``item_id:token``). Titles keep MovieLens'
library form ("Usual Suspects, The", "Nikita (La Femme Nikita)"); :func:`split_title` turns them into a display
title and an alternative title. Item 267 is MovieLens' own "unknown" movie: kept (ratings point at it) with no
year and no genre.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from services.common.wheeldata import DEFAULT_CACHE, wheel_files

# The demo catalog's titles record their origin as ``f"{SOURCE}:{item_id}"`` (the catalog's Title.source), which
# is how the recommender maps the MovieLens audience onto them.
SOURCE = "movielens-100k"
WHEEL = "recbole==1.2.1"
WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
_DIR = "recbole/dataset_example/ml-100k"
FILES = {name: f"{_DIR}/{name}" for name in ("ml-100k.item", "ml-100k.user", "ml-100k.inter")}

# Articles MovieLens moves to the end ("Godfather, The"; "Reine Margot, La"; "Uomo delle stelle, L'").
_ARTICLES = ("The", "A", "An", "Les", "La", "Le", "L'", "Il", "Der", "Die", "Das", "Det", "El", "O")
_TRAILING_ARTICLE = re.compile(r"^(?P<body>.+), (?P<article>" + "|".join(re.escape(a) for a in _ARTICLES) + r")$")
_ALTERNATIVE = re.compile(r"^(?P<main>.+?) \((?P<alt>[^()]+)\)$")
_YEAR = re.compile(r"^(19|20)\d\d$")


@dataclass(frozen=True)
class Movie:
    item_id: int
    title: str  # display form: "The Usual Suspects"
    alternative_title: str  # the parenthesised other title, display form, or ""
    year: int | None
    genres: tuple[str, ...]


@dataclass(frozen=True)
class User:
    user_id: int
    age: int
    gender: str
    occupation: str
    zip_code: str


@dataclass(frozen=True)
class Rating:
    user_id: int
    item_id: int
    rating: float  # 1..5
    timestamp: int  # unix seconds


@dataclass(frozen=True)
class MovieLens:
    movies: tuple[Movie, ...]
    users: tuple[User, ...]
    ratings: tuple[Rating, ...]


def _front_article(title: str) -> str:
    match = _TRAILING_ARTICLE.match(title)
    if match is None:
        return title
    article = match["article"]
    return f"{article}{match['body']}" if article.endswith("'") else f"{article} {match['body']}"


def split_title(raw: str) -> tuple[str, str, int | None]:
    """(display title, alternative title, year found in the title) of a MovieLens title."""
    raw = raw.strip()
    main, alt, year = raw, "", None
    match = _ALTERNATIVE.match(raw)
    if match is not None:
        main, alt = match["main"], match["alt"]
        if _YEAR.match(alt):  # "Land Before Time III: ... (1995)": a year, not a title
            year, alt = int(alt), ""
    return _front_article(main), _front_article(alt) if alt else "", year


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = [h.split(":", 1)[0] for h in next(reader)]
        return [dict(zip(header, row, strict=True)) for row in reader if row]


def _movie(row: dict[str, str]) -> Movie:
    item_id = int(row["item_id"])
    if row["movie_title"] in ("unkonwn", "unknown"):
        return Movie(item_id, "Unknown", "", None, ())
    title, alternative, title_year = split_title(row["movie_title"])
    year = int(row["release_year"]) if _YEAR.match(row["release_year"]) else title_year
    genres = tuple(g for g in row["class"].split(" ") if g and g != "unknown")
    return Movie(item_id, title, alternative, year, genres)


@cache
def _load(cache_dir: Path) -> MovieLens:
    paths = wheel_files(WHEEL, WHEEL_SHA256, FILES, cache_dir)
    movies = tuple(_movie(r) for r in _rows(paths["ml-100k.item"]))
    users = tuple(
        User(int(r["user_id"]), int(r["age"]), r["gender"], r["occupation"], r["zip_code"])
        for r in _rows(paths["ml-100k.user"])
    )
    ratings = tuple(
        Rating(int(r["user_id"]), int(r["item_id"]), float(r["rating"]), int(float(r["timestamp"])))
        for r in _rows(paths["ml-100k.inter"])
    )
    return MovieLens(movies, users, ratings)


def load(cache_dir: Path = DEFAULT_CACHE / "movielens") -> MovieLens:
    """The data set (downloaded on first use, parsed once per process)."""
    return _load(cache_dir.resolve())
