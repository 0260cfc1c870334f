"""Feeds from bytes: feedparser never touches the network or the file system here.

feedparser takes a string it is given for a URL or a file name when it looks like one, so the
body always reaches it wrapped in a stream. Entities declared in a feed's DTD are expanded by
feedparser's fallback parser without limit, so a feed whose declared entities would expand
beyond MAX_ENTITY_EXPANSION bytes is refused before it is parsed.
"""

from __future__ import annotations

import calendar
import html
import io
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import feedparser
from feedparser.encodings import convert_to_utf8

from ingest.urls import canonical_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedEntry:
    url: str  # the link as the feed gives it
    canonical_url: str
    title: str
    published_at: datetime | None
    author: str
    summary: str  # plain text
    content: str  # plain text of the full content when the feed carries it, else ""

    @property
    def best_text(self) -> str:
        return self.content if len(self.content) >= len(self.summary) else self.summary


@dataclass(frozen=True)
class ParsedFeed:
    entries: tuple[FeedEntry, ...]
    title: str
    problem: str | None  # set when the feed was malformed (entries may still be salvaged)
    is_feed: bool  # False when the body is not a feed at all (an HTML page, empty body, ...)


_BENIGN_BOZO = (feedparser.NonXMLContentType, feedparser.CharacterEncodingOverride)

_BLOCK_END = re.compile(r"</(p|div|li|h[1-6]|blockquote|tr)\s*>|<br\s*/?>", re.I)
_TAG = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"[ \t\r\f\v]+")


def html_to_text(fragment: str) -> str:
    """Paragraph-preserving plain text of a feed's HTML fragment."""
    if not fragment:
        return ""
    text = _BLOCK_END.sub("\n\n", fragment)
    text = _TAG.sub(" ", text)
    text = html.unescape(text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    paragraphs: list[str] = []
    current: list[str] = []
    for line in lines:
        if line:
            current.append(line)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(paragraphs)


def _entry_time(entry: feedparser.FeedParserDict) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if value:
            try:
                return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
            except (OverflowError, ValueError, TypeError):
                continue
    return None


MAX_ENTITY_EXPANSION = 1_000_000  # bytes a feed's declared entities may add when expanded

_DECLARATION = re.compile(
    rb"""<!ENTITY\s+(%\s+)?([A-Za-z_:][\w.:-]*)\s+"""
    rb"""(?:"([^"]*)"|'([^']*)'|((?:SYSTEM|PUBLIC)\s[^>]*))\s*>"""
)
_REFERENCE = re.compile(rb"&([A-Za-z_:][\w.:-]*);")


class FeedRefused(ValueError):
    """The feed is not parsed at all; the message says why."""


def entity_expansion(body: bytes, headers: dict[str, str]) -> int:
    """How many bytes the entities a feed declares would add to it if every one were expanded
    (feedparser's fallback parser expands the ones it keeps without limit), reading the
    document as feedparser will (decoded to UTF-8). External entities are never loaded and
    count nothing; raise FeedRefused for declarations whose expansion cannot be bounded
    (internal parameter entities, recursion, forms not understood)."""
    data = convert_to_utf8(dict(headers), body, {})
    if b"<!ENTITY" not in data:
        return 0
    values: dict[bytes, bytes] = {}
    found = 0
    for match in _DECLARATION.finditer(data):
        found += 1
        parameter, name, double, single, external = match.groups()
        if external is not None:
            continue  # never loaded (feedparser keeps no external entity, expat loads none)
        if parameter:
            raise FeedRefused(
                f"feed refused: its DTD declares a parameter entity ({name.decode()!r}) "
                "whose expansion cannot be bounded"
            )
        values[name] = double if double is not None else single
    if found != data.count(b"<!ENTITY"):
        raise FeedRefused(
            "feed refused: its DTD declares an entity in a form whose expansion cannot be bounded"
        )
    sizes: dict[bytes, int] = {}

    def size(name: bytes, seen: tuple[bytes, ...] = ()) -> int:
        if name in sizes:
            return sizes[name]
        if name in seen:
            raise FeedRefused(f"feed refused: entity {name.decode()!r} refers to itself")
        value = values[name]
        total = len(value)
        for ref in _REFERENCE.findall(value):
            if ref in values:
                total += size(ref, (*seen, name)) - len(ref) - 2
                if total > MAX_ENTITY_EXPANSION:
                    break
        sizes[name] = total
        return total

    added = 0
    for ref in _REFERENCE.findall(_DECLARATION.sub(b"", data)):
        if ref in values:
            added += size(ref) - len(ref) - 2  # the reference itself goes
            if added > MAX_ENTITY_EXPANSION:
                break
    return added


def parse_feed(body: bytes, url: str, content_type: str = "") -> ParsedFeed:
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    try:
        added = entity_expansion(body, headers)
        if added > MAX_ENTITY_EXPANSION:
            raise FeedRefused(
                f"feed refused: its entities would expand it by more than "
                f"{MAX_ENTITY_EXPANSION} bytes"
            )
        # a stream: given bytes or a string, feedparser opens what looks like a path or URL
        parsed = feedparser.parse(io.BytesIO(body), response_headers=headers)
    except FeedRefused as refused:
        return ParsedFeed(entries=(), title="", problem=str(refused), is_feed=False)
    except Exception as crash:  # a parser crash is this feed's problem, never the cycle's
        log.warning("parsing feed %s failed: %s", url, crash)
        return ParsedFeed(
            entries=(),
            title="",
            problem=f"feed parser failed: {type(crash).__name__}: {crash}",
            is_feed=False,
        )
    version = parsed.get("version", "")
    problem = None
    exc = parsed.get("bozo_exception")
    # A feed served with a non-XML or charset-less content type is not malformed.
    if parsed.get("bozo") and not isinstance(exc, _BENIGN_BOZO):
        problem = f"malformed feed: {type(exc).__name__}: {exc}" if exc else "malformed feed"
    entries: list[FeedEntry] = []
    seen: set[str] = set()
    for entry in parsed.entries:
        link = entry.get("link") or ""
        if not link and str(entry.get("id", "")).startswith(("http://", "https://")):
            link = entry.get("id")
        if not link:
            continue
        canonical = canonical_url(link)
        if canonical in seen:
            continue
        seen.add(canonical)
        content = ""
        if entry.get("content"):
            content = html_to_text(max((c.get("value", "") for c in entry.content), key=len))
        entries.append(
            FeedEntry(
                url=link,
                canonical_url=canonical,
                title=html.unescape(entry.get("title", "") or "").strip(),
                published_at=_entry_time(entry),
                author=(entry.get("author") or "").strip(),
                summary=html_to_text(entry.get("summary", "") or ""),
                content=content,
            )
        )
    is_feed = bool(version) or bool(entries)
    if not is_feed:
        problem = problem or "not a feed: no RSS/Atom structure and no entries"
    return ParsedFeed(
        entries=tuple(entries),
        title=(parsed.feed.get("title") or "").strip() if parsed.get("feed") else "",
        problem=problem,
        is_feed=is_feed,
    )
