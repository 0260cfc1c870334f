"""The demo corpus: simulated outlets and their articles, read from ``seeds/demo``.

The format is described in ``seeds/demo/README.md``. :func:`load_corpus` reads and checks
the whole corpus up front and raises :class:`CorpusError` naming the file and the problem,
so a typo in one article file fails loudly instead of silently changing the demo.
"""

from __future__ import annotations

import re
import tomllib
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DEMO_ROOT = Path(__file__).resolve().parent.parent / "seeds" / "demo"

SLUG_RE = re.compile(r"[a-z0-9][a-z0-9-]*")

KINDS = frozenset(
    {
        "news-portal",
        "blog",
        "opinion",
        "agency",
        "defence",
        "aggregator",
        "tabloid",
        "social-digest",
    }
)
FEED_FORMATS = frozenset({"rss", "atom"})
FEED_CONTENTS = frozenset({"summary", "full"})
CHROMES = frozenset({"portal", "blog", "agency", "defence", "aggregator", "tabloid"})
FEED_FAULTS = frozenset({"", "malformed", "server-error"})
FAULTS = frozenset({"", "404", "timeout", "pdf"})
EDITS = frozenset(
    {
        "original",
        "verbatim-new-intro",
        "numbers-changed",
        "paragraphs-reordered",
        "paragraphs-dropped",
        "excerpt",
        "embedded-commentary",
        "social-quote",
        "breaking-signoff",
        "recurrence",
        "near-different",
        "unrelated",
    }
)

_OUTLET_REQUIRED = (
    "slug",
    "name",
    "country",
    "kind",
    "feed_format",
    "feed_content",
    "chrome",
    "language",
)
_OUTLET_KEYS = frozenset(_OUTLET_REQUIRED) | {"feed_fault"}
_ARTICLE_REQUIRED = ("outlet", "day", "hour", "title", "narrative", "edit")
_ARTICLE_KEYS = frozenset(_ARTICLE_REQUIRED) | {"author", "fault"}

FRONT_MATTER_FENCE = "+++"


class CorpusError(ValueError):
    """The corpus cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class DemoOutlet:
    slug: str
    name: str
    country: str
    kind: str
    feed_format: str  # rss | atom
    feed_content: str  # summary | full
    chrome: str  # portal | blog | agency | defence | aggregator | tabloid
    language: str
    feed_fault: str = ""  # "" | malformed | server-error


@dataclass(frozen=True)
class DemoArticle:
    outlet: str
    slug: str
    day: int
    hour: float
    published_at: datetime
    title: str
    author: str
    narrative: str
    edit: str
    fault: str
    paragraphs: tuple[str, ...]
    path: str  # relative to the corpus root, e.g. "articles/<outlet>/<slug>.txt"

    @property
    def text(self) -> str:
        """The body as plain text, paragraphs separated by a blank line."""
        return "\n\n".join(self.paragraphs)


@dataclass(frozen=True)
class DemoCorpus:
    root: Path
    start: datetime
    outlets: tuple[DemoOutlet, ...]
    articles: tuple[DemoArticle, ...]  # sorted by (published_at, outlet, slug)

    def outlet(self, slug: str) -> DemoOutlet:
        for outlet in self.outlets:
            if outlet.slug == slug:
                return outlet
        raise KeyError(slug)

    def article(self, outlet: str, slug: str) -> DemoArticle:
        for article in self.articles:
            if article.outlet == outlet and article.slug == slug:
                return article
        raise KeyError((outlet, slug))

    def articles_of(self, outlet: str) -> tuple[DemoArticle, ...]:
        return tuple(a for a in self.articles if a.outlet == outlet)

    def released(self, until: datetime) -> tuple[DemoArticle, ...]:
        """Articles published at or before ``until`` (an aware datetime)."""
        until = _aware(until, "until")
        # articles are sorted by publication time
        return self.articles[: bisect_right(self.articles, until, key=lambda a: a.published_at)]

    @property
    def end(self) -> datetime:
        """When the last article is published (the start if there are none)."""
        return self.articles[-1].published_at if self.articles else self.start


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def _parse_start(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise CorpusError(f"{where}: 'start' is not an ISO 8601 date-time: {value!r}") from None
    else:
        raise CorpusError(f"{where}: 'start' must be an ISO 8601 date-time string")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise CorpusError(f"{where}: 'start' needs a UTC offset, e.g. +00:00")
    return parsed.astimezone(UTC)


def _string(table: dict[str, Any], key: str, where: str, *, required: bool) -> str:
    if key not in table:
        if required:
            raise CorpusError(f"{where}: missing required key '{key}'")
        return ""
    value = table[key]
    if not isinstance(value, str):
        raise CorpusError(f"{where}: '{key}' must be a string, got {value!r}")
    return value.strip()


def _choice(value: str, allowed: frozenset[str], key: str, where: str) -> str:
    if value not in allowed:
        options = ", ".join(repr(v) for v in sorted(allowed))
        raise CorpusError(f"{where}: unknown {key} {value!r} (expected one of {options})")
    return value


def _read_outlets(root: Path) -> tuple[datetime, tuple[DemoOutlet, ...]]:
    path = root / "outlets.toml"
    where = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise CorpusError(f"{where}: file not found (is {root} a corpus folder?)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{where}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CorpusError(f"{where}: invalid TOML: {exc}") from None

    if "start" not in data:
        raise CorpusError(f"{where}: missing required key 'start'")
    start = _parse_start(data["start"], where)

    tables = data.get("outlets")
    if not isinstance(tables, list) or not tables:
        raise CorpusError(f"{where}: needs at least one [[outlets]] table")
    outlets: list[DemoOutlet] = []
    seen: set[str] = set()
    for index, table in enumerate(tables, start=1):
        at = f"{where} outlet #{index}"
        if not isinstance(table, dict):
            raise CorpusError(f"{at}: must be a table")
        values = {key: _string(table, key, at, required=True) for key in _OUTLET_REQUIRED}
        slug = values["slug"]
        at = f"{where} outlet {slug!r}"
        unknown = sorted(set(table) - _OUTLET_KEYS)
        if unknown:
            raise CorpusError(f"{at}: unknown key(s) {', '.join(unknown)}")
        if not SLUG_RE.fullmatch(slug):
            raise CorpusError(f"{at}: slug must be lowercase letters, digits and dashes")
        if slug in seen:
            raise CorpusError(f"{at}: duplicate outlet slug {slug!r}")
        seen.add(slug)
        for key in ("name", "country", "language"):
            if not values[key]:
                raise CorpusError(f"{at}: '{key}' must not be empty")
        _choice(values["kind"], KINDS, "kind", at)
        _choice(values["feed_format"], FEED_FORMATS, "feed_format", at)
        _choice(values["feed_content"], FEED_CONTENTS, "feed_content", at)
        _choice(values["chrome"], CHROMES, "chrome", at)
        feed_fault = _choice(
            _string(table, "feed_fault", at, required=False), FEED_FAULTS, "feed_fault", at
        )
        outlets.append(DemoOutlet(**values, feed_fault=feed_fault))
    return start, tuple(outlets)


def _split_front_matter(text: str, where: str) -> tuple[str, str]:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if not lines or lines[0].strip() != FRONT_MATTER_FENCE:
        raise CorpusError(f"{where}: must start with a '+++' line (TOML front matter)")
    for index in range(1, len(lines)):
        if lines[index].strip() == FRONT_MATTER_FENCE:
            return "\n".join(lines[1:index]), "\n".join(lines[index + 1 :])
    raise CorpusError(f"{where}: front matter is not closed by a '+++' line")


def split_paragraphs(body: str) -> tuple[str, ...]:
    """Paragraphs are separated by blank lines; lines inside one paragraph are joined."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", body.strip()):
        joined = " ".join(line.strip() for line in block.split("\n") if line.strip())
        if joined:
            paragraphs.append(joined)
    return tuple(paragraphs)


def _read_article(
    path: Path, root: Path, start: datetime, outlets: dict[str, DemoOutlet]
) -> DemoArticle:
    rel = path.relative_to(root).as_posix()
    where = str(path)
    folder = path.parent.name
    slug = path.stem
    if not SLUG_RE.fullmatch(slug):
        raise CorpusError(f"{where}: file name must be lowercase letters, digits and dashes")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{where}: cannot read: {exc}") from None
    header, body = _split_front_matter(text, where)
    try:
        meta = tomllib.loads(header)
    except tomllib.TOMLDecodeError as exc:
        raise CorpusError(f"{where}: invalid TOML front matter: {exc}") from None

    for key in _ARTICLE_REQUIRED:
        if key not in meta:
            raise CorpusError(f"{where}: missing required key '{key}'")
    unknown = sorted(set(meta) - _ARTICLE_KEYS)
    if unknown:
        raise CorpusError(f"{where}: unknown key(s) {', '.join(unknown)}")

    outlet = _string(meta, "outlet", where, required=True)
    if outlet not in outlets:
        raise CorpusError(f"{where}: unknown outlet {outlet!r} (not in outlets.toml)")
    if outlet != folder:
        raise CorpusError(f"{where}: outlet {outlet!r} does not match its folder {folder!r}")

    day = meta["day"]
    if isinstance(day, bool) or not isinstance(day, int) or day < 0:
        raise CorpusError(f"{where}: 'day' must be a whole number >= 0, got {day!r}")
    hour = meta["hour"]
    if isinstance(hour, bool) or not isinstance(hour, int | float) or not 0 <= hour < 24:
        raise CorpusError(f"{where}: 'hour' must be a number in [0, 24), got {hour!r}")

    title = _string(meta, "title", where, required=True)
    if not title:
        raise CorpusError(f"{where}: 'title' must not be empty")
    narrative = _string(meta, "narrative", where, required=True)
    if narrative and not SLUG_RE.fullmatch(narrative):
        raise CorpusError(f"{where}: 'narrative' must be a key like 'mass-resignations' or ''")
    edit = _choice(_string(meta, "edit", where, required=True), EDITS, "edit", where)
    fault = _choice(_string(meta, "fault", where, required=False), FAULTS, "fault", where)
    author = _string(meta, "author", where, required=False)

    paragraphs = split_paragraphs(body)
    if not paragraphs:
        raise CorpusError(f"{where}: empty body (no paragraphs after the front matter)")

    published_at = start + timedelta(days=day, seconds=round(float(hour) * 3600))
    return DemoArticle(
        outlet=outlet,
        slug=slug,
        day=day,
        hour=float(hour),
        published_at=published_at,
        title=title,
        author=author,
        narrative=narrative,
        edit=edit,
        fault=fault,
        paragraphs=paragraphs,
        path=rel,
    )


def load_corpus(root: Path | str = DEMO_ROOT) -> DemoCorpus:
    """Read and check ``outlets.toml`` and every ``articles/<outlet>/<slug>.txt`` under root."""
    root = Path(root).resolve()
    start, outlets = _read_outlets(root)
    by_slug = {outlet.slug: outlet for outlet in outlets}

    articles: list[DemoArticle] = []
    articles_dir = root / "articles"
    if articles_dir.is_dir():
        for folder in sorted(articles_dir.iterdir()):
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            if folder.name not in by_slug:
                raise CorpusError(f"{folder}: unknown outlet {folder.name!r} (not in outlets.toml)")
            for path in sorted(folder.glob("*.txt")):
                if path.name.startswith(".") or not path.is_file():
                    continue
                articles.append(_read_article(path, root, start, by_slug))

    # (outlet, slug) is unique: the outlet must match its folder and the slug is the file name.
    articles.sort(key=lambda a: (a.published_at, a.outlet, a.slug))
    return DemoCorpus(root=root, start=start, outlets=outlets, articles=tuple(articles))
