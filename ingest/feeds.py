"""Feeds from bytes: feedparser never touches the network here."""

from __future__ import annotations

import calendar
import html
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import feedparser

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


def parse_feed(body: bytes, url: str, content_type: str = "") -> ParsedFeed:
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    parsed = feedparser.parse(body, response_headers=headers)
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
