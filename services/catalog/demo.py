"""The demo catalog: the 1,682 MovieLens-100k movies as Marquee titles, mapped onto the demo's encoded assets.

MovieLens has titles, years and genres only. Everything else is generated here, deterministically from the
MovieLens item id (the same data on every machine and every run), and is fiction: descriptions from genre
phrases, cast and directors from name lists, maturity ratings from the genres, licensing regions, runtimes.
Popularity is real: the number of MovieLens ratings a movie has. Every title plays one of the demo assets
(``media``, chosen by item id), so each becomes playable when its asset's encoding is done.
"""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from collections import Counter

from services.common.movielens import SOURCE, Movie, MovieLens
from services.common.store.port import Row

_FIRST = (
    "Ada", "Bruno", "Carmen", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kofi", "Lena",
    "Marco", "Nadia", "Omar", "Paula", "Quentin", "Rosa", "Sven", "Tara", "Umberto", "Vera", "Walter", "Ximena",
    "Yusuf", "Zoe", "Anton", "Beatrix", "Cyrus", "Delia", "Emil", "Flora", "Gideon", "Hana", "Ivo", "Juno",
)  # fmt: skip
_LAST = (
    "Abernathy", "Bellweather", "Castellanos", "Duchamp", "Eastwick", "Falkner", "Grimaldi", "Holloway",
    "Ishikawa", "Jablonski", "Kowalczyk", "Lindqvist", "Marchetti", "Nakamura", "Okonkwo", "Pemberton",
    "Quintero", "Rasmussen", "Szabo", "Thornbury", "Underhill", "Valdivia", "Whitcombe", "Xanthopoulos",
    "Yamamoto", "Zielinski", "Ashdown", "Brannigan", "Carvalho", "Delacroix",
)  # fmt: skip
_LEADS = (
    "a retired detective", "two estranged sisters", "a young pilot", "a small-town teacher", "a band of misfits",
    "an ambitious lawyer", "a widowed farmer", "a runaway teenager", "a brilliant engineer", "an aging boxer",
    "a night-shift nurse", "a disgraced chef", "a travelling musician", "a rookie reporter", "an exiled prince",
)  # fmt: skip
_PLOTS = {
    "Action": ("has one night to stop a heist that could bring a city to its knees",
               "is pulled back into a war they thought was over"),
    "Adventure": ("sets out across uncharted country in search of a lost expedition",
                  "follows an old map toward a treasure that others will kill for"),
    "Animation": ("discovers a hidden world just beyond the edge of the garden",
                  "must bring the colours back to a fading kingdom"),
    "Children's": ("makes an unlikely friend who changes the summer for ever",
                   "has to save the school fair from a runaway disaster"),
    "Comedy": ("talks their way into a wedding they were never invited to",
               "swaps lives for a week and regrets it almost at once"),
    "Crime": ("is drawn into a con that grows more dangerous with every lie",
              "investigates a string of robberies that point to someone close"),
    "Documentary": ("is followed over a year of triumphs and setbacks",
                    "opens the archive on a story the headlines got wrong"),
    "Drama": ("faces the choice that will define a family for a generation",
              "returns home to settle an old debt and an older grief"),
    "Fantasy": ("inherits a ring that grants wishes at a terrible price",
                "crosses into a realm where the seasons have stopped turning"),
    "Film-Noir": ("takes one last case in a city that never forgives",
                  "falls for a client whose story keeps changing"),
    "Horror": ("moves into a house that remembers every one of its owners",
               "hears something answer back from the bottom of the well"),
    "Musical": ("chases a place on the stage of the most famous theatre in town",
                "puts on the show of a lifetime to save a neighbourhood hall"),
    "Mystery": ("receives letters from someone who died twenty years ago",
                "must find who is lying on an island cut off by the storm"),
    "Romance": ("keeps meeting the same stranger at every turn of a long journey",
                "rediscovers a first love over one unforgettable summer"),
    "Sci-Fi": ("wakes aboard a ship that has drifted far off its course",
               "intercepts a signal that should not exist"),
    "Thriller": ("has forty-eight hours to prove their innocence",
                 "witnesses a crime that nobody else will admit happened"),
    "War": ("holds a bridge against impossible odds",
            "carries a message across the front line"),
    "Western": ("rides into a frontier town ruled by a ruthless cattle baron",
                "tracks an outlaw across a thousand miles of desert"),
}  # fmt: skip
_GENERIC_PLOT = ("finds that nothing is quite what it seemed",)
# Regional licences for about one title in five; the rest are licensed everywhere (empty list).
_REGION_SETS = (("US", "CA"), ("GB", "IE"), ("FR", "BE", "CH"), ("DE", "AT"), ("US", "GB", "AU", "NZ"), ("JP",))


def _rng(item_id: int) -> random.Random:
    seed = hashlib.sha256(f"marquee-demo:{item_id}".encode()).digest()
    return random.Random(int.from_bytes(seed[:8], "big"))


def slug(text: str, limit: int = 50) -> str:
    """A resource id from a title: ASCII, lower case, words joined by '-'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return words[:limit].rstrip("-") or "title"


def maturity(genres: tuple[str, ...], rng: random.Random) -> str:
    """A plausible rating from the genres (the strictest genre wins), as a ``MaturityRating`` value name."""
    if "Horror" in genres or "Film-Noir" in genres:
        level = "ADULT" if rng.random() < 0.6 else "TEEN_16"
    elif {"Crime", "Thriller", "War"} & set(genres):
        level = "TEEN_16" if rng.random() < 0.6 else "TEEN_13"
    elif {"Action", "Sci-Fi", "Adventure", "Mystery", "Fantasy", "Western"} & set(genres):
        level = "TEEN_13" if rng.random() < 0.7 else "PG"
    elif "Children's" in genres or "Animation" in genres:
        level = "ALL" if rng.random() < 0.7 else "KIDS_7"
    else:
        level = rng.choice(("PG", "PG", "TEEN_13"))
    return f"MATURITY_RATING_{level}"


def _person(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"


def _description(movie: Movie, rng: random.Random) -> str:
    genre = movie.genres[0] if movie.genres else ""
    plot = rng.choice(_PLOTS.get(genre, _GENERIC_PLOT))
    kinds = " ".join(g.lower() for g in movie.genres[:2]) or "feature"
    when = f"this {movie.year} {kinds}" if movie.year else f"this {kinds}"
    return f"In {when}, {rng.choice(_LEADS)} {plot}."


def demo_titles(data: MovieLens, media: tuple[str, ...], now_us: int) -> list[Row]:
    """Every MovieLens movie as a ``catalog.titles`` row; ids are unique and stable (slug of title and year)."""
    if not media:
        raise ValueError("the demo catalog needs at least one media asset to map titles onto")
    ratings = Counter(r.item_id for r in data.ratings)
    taken: set[str] = set()
    out: list[Row] = []
    for movie in sorted(data.movies, key=lambda m: m.item_id):
        rng = _rng(movie.item_id)
        base = slug(f"{movie.title} {movie.year}" if movie.year else movie.title)
        title_id = base if base not in taken else f"{base}-{movie.item_id}"
        taken.add(title_id)
        cast = [{"display_name": _person(rng), "character": rng.choice(_FIRST)} for _ in range(4)]
        regions = list(rng.choice(_REGION_SETS)) if rng.random() < 0.2 else []
        out.append(
            {
                "title_id": title_id,
                "type": "TITLE_TYPE_MOVIE",
                "display_name": movie.title,
                "original_title": movie.alternative_title,
                "description": _description(movie, rng),
                "release_year": movie.year or 0,
                "genres": list(movie.genres),
                "cast": cast,
                "directors": [{"display_name": _person(rng), "character": ""}],
                "maturity_rating": maturity(movie.genres, rng),
                "licensed_regions": regions,
                "runtime_seconds": rng.randrange(80, 151) * 60,
                "popularity": float(ratings[movie.item_id]),
                "media_id": media[movie.item_id % len(media)],
                "playable": False,
                "source": f"{SOURCE}:{movie.item_id}",
                "create_time": now_us,
                "update_time": now_us,
            }
        )
    return out
