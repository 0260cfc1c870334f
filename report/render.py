"""Render a `DailyReport` as a self-contained HTML page, as Markdown, or as CSV.

Titles, URLs, passages and labels come from the web and are hostile by default:
the HTML goes through jinja2 with autoescaping on, Markdown text is escaped so it
cannot break a table or smuggle in HTML, and only http/https URLs become links.

Datetimes display as "YYYY-MM-DD HH:MM UTC" (naive datetimes are taken as UTC);
a missing value displays as "—" in HTML/Markdown and as an empty cell in CSV.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2

from report.model import ClusterEntry, DailyReport, FeedHealth, MemberEntry

__all__ = [
    "CSV_COLUMNS",
    "EMPTY_STATE",
    "render_csv",
    "render_html",
    "render_markdown",
]

EMPTY_STATE = "No narrative spread across outlets on this day."
NONE_TEXT = "—"
PASSAGE_MAX_CHARS = 240
URL_TEXT_MAX_CHARS = 80

CSV_COLUMNS: tuple[str, ...] = (
    "day",
    "cluster_id",
    "label",
    "watchlist",
    "origin_outlet",
    "outlet_count",
    "article_count",
    "first_seen_at",  # the member's, like the other columns after it
    "outlet",
    "title",
    "url",
    "published_at",
    "match_kind",
    "similarity",
    "changes",
    "wire_credit",
)

_LINK_SCHEMES = frozenset({"http", "https"})


# --- formatting shared by all formats ---------------------------------------------------


def _dt(value: datetime | None, none: str = NONE_TEXT) -> str:
    if value is None:
        return none
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _similarity(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _match(member: MemberEntry) -> str:
    """Like "copy 0.82" or "passage 0.31"; "origin" for the cluster's first article."""
    if member.match_kind is None and member.similarity is None:
        return "origin"
    kind = member.match_kind or "match"
    if member.similarity is None:
        return kind
    return f"{kind} {_similarity(member.similarity)}"


def _spread(hours: float | None) -> str:
    if hours is None:
        return "single outlet"
    return f"{hours:.1f} h to the second outlet"


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else (plural or singular + 's')}"


def _summary(report: DailyReport) -> str:
    return " · ".join(
        (
            _plural(len(report.clusters), "cluster") + " spreading",
            _plural(report.articles_seen, "article") + " seen",
            _plural(report.outlets_active, "outlet") + " active",
            _plural(report.failures, "failure"),
        )
    )


_WHITESPACE = re.compile(r"\s+")


def _one_line(text: str | None) -> str:
    """Collapse every kind of whitespace (newlines included) to single spaces and drop
    other control characters."""
    if not text:
        return ""
    text = _WHITESPACE.sub(" ", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cc")
    return text.strip()


def _shorten(text: str | None, limit: int) -> str:
    text = _one_line(text)
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"


def _safe_href(url: str | None) -> str | None:
    """The URL if it is an absolute http/https URL fit for an href, else None."""
    if not url:
        return None
    candidate = url.strip()
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in candidate):
        return None
    try:
        parts = urlsplit(candidate)
    except ValueError:
        return None
    if parts.scheme.lower() not in _LINK_SCHEMES or not parts.netloc:
        return None
    return candidate


# --- view model ---------------------------------------------------------------------------


def _member_view(member: MemberEntry) -> dict[str, Any]:
    href = _safe_href(member.url)
    return {
        "first_seen_at": _dt(member.first_seen_at),
        "outlet": member.outlet,
        "title": _one_line(member.title) or "(untitled)",
        "url": member.url,
        "href": href,
        "url_text": "" if href else _shorten(member.url, URL_TEXT_MAX_CHARS),
        "published_at": _dt(member.published_at),
        "match": _match(member),
        "passage": _shorten(member.matched_passage, PASSAGE_MAX_CHARS),
        "changes": [c for c in (_one_line(c) for c in member.changes) if c],
        "wire_credit": member.wire_credit,
    }


def _cluster_view(cluster: ClusterEntry) -> dict[str, Any]:
    return {
        "cluster_id": cluster.cluster_id,
        "label": _one_line(cluster.label) or "(no headline)",
        "watchlist": list(cluster.watchlist),
        "syndicated": cluster.syndicated,
        "origin_outlet": cluster.origin_outlet,
        "origin_at": _dt(cluster.origin_at),
        "first_seen_at": _dt(cluster.first_seen_at),
        "last_seen_at": _dt(cluster.last_seen_at),
        "outlet_count": cluster.outlet_count,
        "outlets": list(cluster.outlets),
        "article_count": cluster.article_count,
        "new_today": cluster.new_today,
        "spread": _spread(cluster.hours_to_spread),
        "merged_from": list(cluster.merged_from),
        "members": [_member_view(m) for m in cluster.members],
    }


def _feed_view(feed: FeedHealth) -> dict[str, Any]:
    href = _safe_href(feed.feed_url)
    return {
        "outlet": feed.outlet,
        "feed_url": feed.feed_url,
        "href": href,
        "url_text": _shorten(feed.feed_url, URL_TEXT_MAX_CHARS),
        "last_status": feed.last_status,
        "last_error": _shorten(feed.last_error, PASSAGE_MAX_CHARS) or NONE_TEXT,
        "consecutive_failures": feed.consecutive_failures,
    }


def _report_view(report: DailyReport) -> dict[str, Any]:
    return {
        "day": report.day.isoformat(),
        "generated_at": _dt(report.generated_at),
        "summary": _summary(report),
        "clusters": [_cluster_view(c) for c in report.clusters],
        "feeds": [_feed_view(f) for f in report.feed_health],
        "empty_state": EMPTY_STATE,
        "none_text": NONE_TEXT,
    }


# --- HTML -------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_html(report: DailyReport) -> str:
    """The report as one self-contained HTML5 page (inline CSS, no scripts, printable)."""
    template = _environment().get_template("report.html.j2")
    return template.render(**_report_view(report))


# --- Markdown ---------------------------------------------------------------------------

_MD_ENTITY_START = re.compile(r"&(?=#?[0-9A-Za-z]+;)")
_MD_BACKSLASHED = re.compile(r"([\\`|\[\]])")
_MD_URL_UNSAFE = frozenset("()<>[]|`\"'\\")


def _md(text: object) -> str:
    """Web text made inert for Markdown: one line, no table-breaking pipes, no links,
    no code spans, no HTML."""
    line = _one_line(str(text))
    line = _MD_ENTITY_START.sub("&amp;", line)
    line = line.replace("<", "&lt;").replace(">", "&gt;")
    return _MD_BACKSLASHED.sub(r"\\\1", line)


def _md_url(href: str) -> str:
    return "".join(quote(ch, safe="") if ch in _MD_URL_UNSAFE else ch for ch in href)


def _md_title(member: dict[str, Any]) -> str:
    if member["href"]:
        return f"[{_md(member['title'])}]({_md_url(member['href'])})"
    return _md(member["title"])


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell or NONE_TEXT for cell in cells) + " |"


def render_markdown(report: DailyReport) -> str:
    """The report as Markdown: a summary, one section per cluster (facts and a member
    table), then feed health."""
    view = _report_view(report)
    lines = [
        f"# Narrative spread report — {view['day']}",
        "",
        f"Generated {view['generated_at']}",
        "",
        f"**Summary:** {view['summary']}",
        "",
    ]
    if not view["clusters"]:
        lines += [EMPTY_STATE, ""]
    for cluster in view["clusters"]:
        lines += [f"## {_md(cluster['label'])}", ""]
        facts = [f"Cluster: {_md(cluster['cluster_id'])}"]
        if cluster["watchlist"]:
            facts.append("Watchlist: " + ", ".join(_md(w) for w in cluster["watchlist"]))
        if cluster["syndicated"]:
            facts.append("Syndicated (wire credit)")
        facts += [
            f"Origin: {_md(cluster['origin_outlet'])}, {cluster['origin_at']}",
            f"Outlets reached: {cluster['outlet_count']} ("
            + ", ".join(_md(o) for o in cluster["outlets"])
            + ")",
            f"Articles: {cluster['article_count']} ({cluster['new_today']} new today)",
            f"Spread: {cluster['spread']}",
            f"Active: {cluster['first_seen_at']} – {cluster['last_seen_at']}",
        ]
        if cluster["merged_from"]:
            facts.append("Merged from: " + ", ".join(_md(m) for m in cluster["merged_from"]))
        lines += [f"- {fact}" for fact in facts]
        lines += [
            "",
            _md_row(["First seen", "Outlet", "Title", "Match", "Changes"]),
            _md_row(["---"] * 5),
        ]
        for member in cluster["members"]:
            match = _md(member["match"])
            if member["wire_credit"]:
                match += " · wire credit"
            if member["passage"]:
                match += f" — “{_md(member['passage'])}”"
            lines.append(
                _md_row(
                    [
                        member["first_seen_at"],
                        _md(member["outlet"]),
                        _md_title(member),
                        match,
                        "; ".join(_md(c) for c in member["changes"]),
                    ]
                )
            )
        lines.append("")
    lines += ["## Feed health", ""]
    if view["feeds"]:
        lines += [
            _md_row(["Outlet", "Feed", "Status", "Failures in a row", "Last error"]),
            _md_row(["---"] * 5),
        ]
        for feed in view["feeds"]:
            feed_cell = _md(feed["url_text"])
            if feed["href"]:
                feed_cell = f"[{feed_cell}]({_md_url(feed['href'])})"
            lines.append(
                _md_row(
                    [
                        _md(feed["outlet"]),
                        feed_cell,
                        _md(feed["last_status"]),
                        str(feed["consecutive_failures"]),
                        _md(feed["last_error"]),
                    ]
                )
            )
    else:
        lines.append("All feeds healthy.")
    lines.append("")
    return "\n".join(lines)


# --- CSV --------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_text(text: str | None) -> str:
    """Web text for a spreadsheet cell: a leading formula character is neutralised
    with an apostrophe so spreadsheets show the text instead of evaluating it."""
    if not text:
        return ""
    return "'" + text if text.startswith(_FORMULA_START) else text


def render_csv(report: DailyReport) -> str:
    """One row per cluster member, columns as in `CSV_COLUMNS`."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    day = report.day.isoformat()
    for cluster in report.clusters:
        for member in cluster.members:
            writer.writerow(
                {
                    "day": day,
                    "cluster_id": _csv_text(cluster.cluster_id),
                    "label": _csv_text(cluster.label),
                    "watchlist": _csv_text(";".join(cluster.watchlist)),
                    "origin_outlet": _csv_text(cluster.origin_outlet),
                    "outlet_count": cluster.outlet_count,
                    "article_count": cluster.article_count,
                    "first_seen_at": _dt(member.first_seen_at, none=""),
                    "outlet": _csv_text(member.outlet),
                    "title": _csv_text(member.title),
                    "url": _csv_text(member.url),
                    "published_at": _dt(member.published_at, none=""),
                    "match_kind": member.match_kind or "",
                    "similarity": _similarity(member.similarity),
                    "changes": _csv_text("; ".join(member.changes)),
                    "wire_credit": "true" if member.wire_credit else "false",
                }
            )
    return out.getvalue()
