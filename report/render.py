"""Render a `DailyReport` as a self-contained HTML page, as Markdown, or as CSV.

Titles, URLs, passages and labels come from the web and are hostile by default:
the HTML goes through jinja2 with autoescaping on, Markdown text is escaped so it
cannot break a table or smuggle in HTML, and only http/https URLs become links.

Datetimes display as "YYYY-MM-DD HH:MM UTC" (naive datetimes are taken as UTC);
a missing value displays as "—" in HTML/Markdown and as an empty cell in CSV.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2

from report.build import MAX_DIFFS, SILENT_FACTOR
from report.model import STATES, Copy, DailyReport, FeedIssue, Narrative

__all__ = [
    "CSV_COLUMNS",
    "EMPTY_STATE",
    "IndexEntry",
    "page_name",
    "render_csv",
    "render_html",
    "render_index_html",
    "render_markdown",
    "render_narrative_html",
    "render_nav",
    "report_file",
    "state_counts",
    "summary",
]

EMPTY_STATE = "No narrative spread across outlets in the window."
NONE_TEXT = "—"
PASSAGE_MAX_CHARS = 240
URL_TEXT_MAX_CHARS = 80

CSV_COLUMNS: tuple[str, ...] = (
    "day",
    "rank",
    "cluster_id",
    "label",
    "state",
    "watchlist",
    "outlets_reached",
    "outlets_new",
    "articles",
    "articles_new",
    "first_outlet",
    "first_published_at",
    "first_seen_at",
    "velocity_24h",
    "velocity_final",
    "hours_to_second_outlet",
    "syndicated",
    "page",
)

STATE_TEXT = {
    "new": "first spread across outlets on this day",
    "growing": "reached outlets it had not reached before",
    "steady": "new copies, only from outlets it had already reached",
    "cooling": "no new copy on this day",
    "resurfaced": "new copies after a quiet spell",
}

CHART_CAPTIONS = {
    "copies": "Copies of the top narratives first seen each day of the window (UTC days).",
    "share": "The same copies as a share of every article first seen that day.",
    "outlets": "Distinct outlets each narrative had reached by the end of each day.",
    "kind": "Outlets reached by each narrative, by the outlet's kind in the outlets file.",
    "country": "Outlets reached by each narrative, by the outlet's country in the outlets file.",
}

_LINK_SCHEMES = frozenset({"http", "https"})
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def page_name(cluster_id: str) -> str:
    """The narrative page's path relative to the reports folder, stable by cluster id."""
    if _SAFE_ID.fullmatch(cluster_id):
        return f"clusters/{cluster_id}.html"
    return f"clusters/c-{hashlib.sha1(cluster_id.encode()).hexdigest()[:16]}.html"


def report_file(day: date, suffix: str = ".html") -> str:
    return f"report-{day.isoformat()}{suffix}"


# --- formatting shared by all formats ---------------------------------------------------


def _dt(value: datetime | None, none: str = NONE_TEXT) -> str:
    if value is None:
        return none
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _day_text(value: date) -> str:
    return value.strftime("%d %b %Y").lstrip("0")


def _similarity(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _match(copy: Copy, number: int) -> str:
    """Like "copy 0.82" or "passage 0.31"; "earliest" for the narrative's first copy."""
    if number == 1:
        return "earliest"
    kind = copy.match_kind or "match"
    if copy.similarity is None:
        return kind
    return f"{kind} {_similarity(copy.similarity)}"


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else (plural or singular + 's')}"


def state_counts(report: DailyReport) -> str:
    """Like "2 new · 1 growing · 1 resurfaced", in the order of STATES."""
    counts = {state: 0 for state in STATES}
    for narrative in report.narratives:
        counts[narrative.state] += 1
    return " · ".join(f"{n} {state}" for state, n in counts.items() if n)


def summary(report: DailyReport) -> str:
    """The day in one line: cycles, feeds, articles, failures, narratives."""
    if report.poll_times == 0:
        cycles = "no cycle ran on this day"
    elif report.poll_times_completed == report.poll_times:
        cycles = _plural(report.poll_times, "cycle") + (
            ", all completed" if report.poll_times > 1 else ", completed"
        )
    else:
        failed = report.poll_times - report.poll_times_completed
        cycles = _plural(report.poll_times, "cycle") + f", {failed} failed"
    parts = [
        cycles,
        f"{report.feeds_answered} of {report.feeds_polled} feeds answered",
        f"{_plural(report.articles_seen, 'article')} first seen from "
        + _plural(report.outlets_active, "outlet"),
    ]
    if report.article_failures:
        parts.append(_plural(report.article_failures, "article page") + " failed")
    spreading = _plural(len(report.narratives), "narrative") + " spreading"
    states = state_counts(report)
    parts.append(f"{spreading} ({states})" if states else spreading)
    return " · ".join(parts)


def _window(report: DailyReport) -> str:
    return (
        f"{_day_text(report.window_start)} – {_day_text(report.day)} "
        f"({_plural(report.window_days, 'day')}, UTC)"
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


# --- view models --------------------------------------------------------------------------


def _origin_time(narrative: Narrative) -> str:
    origin = narrative.origin
    if origin.published_at is not None and origin.published_at <= origin.first_seen_at:
        return _dt(origin.published_at)
    return f"{_dt(origin.first_seen_at)} (first seen)"


def _velocity(narrative: Narrative) -> str:
    return str(narrative.velocity) if narrative.velocity_final else f"{narrative.velocity} so far"


def _second_outlet(narrative: Narrative) -> str:
    hours = narrative.hours_to_second_outlet
    if hours is None:
        return "single outlet"
    return f"{hours:.1f} h after the first, by published time"


def _narrative_row(narrative: Narrative) -> dict[str, Any]:
    return {
        "rank": narrative.rank,
        "cluster_id": narrative.cluster_id,
        "label": _one_line(narrative.label) or "(no headline)",
        "page": page_name(narrative.cluster_id),
        "state": narrative.state,
        "state_text": STATE_TEXT[narrative.state],
        "watchlist": [_one_line(w) for w in narrative.watchlist],
        "syndicated": narrative.syndicated,
        "outlet_count": narrative.outlet_count,
        "new_outlets": narrative.new_outlets,
        "article_count": narrative.article_count,
        "new_copies": narrative.new_copies,
        "origin_outlet": _one_line(narrative.origin.outlet),
        "origin_time": _origin_time(narrative),
        "velocity": _velocity(narrative),
        "velocity_final": narrative.velocity_final,
    }


def _feed_view(issue: FeedIssue) -> dict[str, Any]:
    href = _safe_href(issue.feed_url)
    return {
        "outlet": _one_line(issue.outlet),
        "feed_url": issue.feed_url,
        "href": href,
        "url_text": _shorten(issue.feed_url, URL_TEXT_MAX_CHARS),
        "problem": issue.problem,
        "since": _dt(issue.since),
        "detail": _shorten(issue.detail, PASSAGE_MAX_CHARS),
    }


def _report_view(report: DailyReport) -> dict[str, Any]:
    rows = [_narrative_row(n) for n in report.narratives]
    return {
        "day": report.day.isoformat(),
        "generated_at": _dt(report.generated_at),
        "window": _window(report),
        "quiet_days": report.quiet_days,
        "summary": summary(report),
        "narratives": rows,
        "any_partial": any(not r["velocity_final"] for r in rows),
        "feeds": [_feed_view(f) for f in report.feed_issues],
        "silent_factor": SILENT_FACTOR,
        "empty_state": EMPTY_STATE,
        "none_text": NONE_TEXT,
        "md_name": report_file(report.day, ".md"),
        "csv_name": report_file(report.day, ".csv"),
    }


def _copy_view(copy: Copy, number: int) -> dict[str, Any]:
    href = _safe_href(copy.url)
    return {
        "number": number,
        "outlet": _one_line(copy.outlet),
        "title": _one_line(copy.title) or "(untitled)",
        "href": href,
        "url_text": _shorten(copy.url, URL_TEXT_MAX_CHARS),
        "published_at": _dt(copy.published_at),
        "first_seen_at": _dt(copy.first_seen_at),
        "new_on_day": copy.new_on_day,
        "match": _match(copy, number),
        "passage": _shorten(copy.matched_passage, PASSAGE_MAX_CHARS),
        "wire_credit": copy.wire_credit,
        "facts": [f for f in (_one_line(x) for x in copy.facts) if f],
        "changes": [c for c in (_one_line(x) for x in copy.changes) if c],
        "diff": copy.diff,
        "compared": 1 < number <= MAX_DIFFS + 1,
    }


def _narrative_view(narrative: Narrative) -> dict[str, Any]:
    return {
        **_narrative_row(narrative),
        "first_seen_at": _dt(narrative.first_seen_at),
        "last_seen_at": _dt(narrative.last_seen_at),
        "outlets": [_one_line(o) for o in narrative.outlets],
        "countries": [_one_line(c) for c in narrative.countries],
        "velocity": _velocity(narrative),
        "second_outlet": _second_outlet(narrative),
        "merged_from": list(narrative.merged_from),
        "headlines": [
            {
                "title": _one_line(h.title),
                "copies": h.copies,
                "outlets": [_one_line(o) for o in h.outlets],
            }
            for h in narrative.headlines
        ],
        "copies": [_copy_view(c, i) for i, c in enumerate(narrative.copies, start=1)],
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


NAV_PATTERN = re.compile(r'<nav class="days" id="day-nav">.*?</nav>', re.S)


def render_nav(previous: date | None, following: date | None) -> str:
    """Links to the previous and next day's report and to the index (one line of HTML,
    replaced in place when a neighbouring day's report is written later)."""
    before = (
        f'<a rel="prev" href="{report_file(previous)}">← {previous.isoformat()}</a>'
        if previous
        else '<span class="off">← no earlier report</span>'
    )
    after = (
        f'<a rel="next" href="{report_file(following)}">{following.isoformat()} →</a>'
        if following
        else '<span class="off">no later report →</span>'
    )
    return (
        f'<nav class="days" id="day-nav">{before}<a href="index.html">All reports</a>{after}</nav>'
    )


def render_html(
    report: DailyReport, charts: Mapping[str, str] | None = None, nav: str | None = None
) -> str:
    """The daily report as one self-contained HTML5 page: inline CSS and inline SVG charts, no
    script, readable at phone width and printable. `charts` are SVG strings by name (from
    `report.charts.report_charts`), `nav` the day links (`render_nav`)."""
    template = _environment().get_template("report.html.j2")
    figures = [
        {"name": name, "svg": svg, "caption": CHART_CAPTIONS.get(name, "")}
        for name, svg in (charts or {}).items()
    ]
    return template.render(
        **_report_view(report), charts=figures, nav=nav or render_nav(None, None)
    )


def render_narrative_html(
    narrative: Narrative, report: DailyReport, charts: Mapping[str, str]
) -> str:
    """The narrative's own page as of the report's day (written to `page_name`)."""
    template = _environment().get_template("narrative.html.j2")
    return template.render(
        n=_narrative_view(narrative),
        day=report.day.isoformat(),
        generated_at=_dt(report.generated_at),
        report_name=report_file(report.day),
        charts={"timeline": charts.get("timeline", ""), "spread": charts.get("spread", "")},
        none_text=NONE_TEXT,
        max_diffs=MAX_DIFFS,
    )


@dataclass(frozen=True)
class IndexEntry:
    day: date
    summary: str = ""
    states: str = ""


def render_index_html(entries: Sequence[IndexEntry]) -> str:
    """index.html: every day's report, newest first."""
    template = _environment().get_template("index.html.j2")
    days = [
        {
            "day": e.day.isoformat(),
            "html": report_file(e.day),
            "md": report_file(e.day, ".md"),
            "csv": report_file(e.day, ".csv"),
            "summary": _one_line(e.summary),
            "states": _one_line(e.states),
        }
        for e in sorted(entries, key=lambda e: e.day, reverse=True)
    ]
    return template.render(days=days, none_text=NONE_TEXT)


# --- Markdown ---------------------------------------------------------------------------

_MD_ENTITY_START = re.compile(r"&(?=#?[0-9A-Za-z]+;)")
_MD_BACKSLASHED = re.compile(r"([\\`|\[\]*_])")
_MD_URL_UNSAFE = frozenset("()<>[]|`\"'\\")


def _md(text: object) -> str:
    """Web text made inert for Markdown: one line, no table-breaking pipes, no links,
    no code spans, no emphasis, no HTML."""
    line = _one_line(str(text))
    line = _MD_ENTITY_START.sub("&amp;", line)
    line = line.replace("<", "&lt;").replace(">", "&gt;")
    return _MD_BACKSLASHED.sub(r"\\\1", line)


def _md_url(href: str) -> str:
    return "".join(quote(ch, safe="") if ch in _MD_URL_UNSAFE else ch for ch in href)


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell or NONE_TEXT for cell in cells) + " |"


def render_markdown(report: DailyReport, links: bool = True) -> str:
    """The report as Markdown: the summary, the overview table, feed health and the clocks.
    With `links`, narratives link to their pages (relative paths, for the reports folder)."""
    view = _report_view(report)
    lines = [
        f"# Narrative report — {view['day']}",
        "",
        f"Built {view['generated_at']} · covers {view['window']} · "
        f"quiet spell {view['quiet_days']} days",
        "",
        f"**Summary:** {_md(view['summary'])}",
        "",
        f"## Narratives that spread ({len(view['narratives'])})",
        "",
    ]
    if not view["narratives"]:
        lines += [EMPTY_STATE, ""]
    else:
        lines += [
            _md_row(["#", "Narrative", "State", "Outlets", "Articles", "First outlet, published",
                     "Velocity"]),
            _md_row(["---"] * 7),
        ]  # fmt: skip
        for row in view["narratives"]:
            label = _md(row["label"])
            if links:
                label = f"[{label}]({row['page']})"
            if row["watchlist"]:
                label += " (watchlist: " + ", ".join(_md(w) for w in row["watchlist"]) + ")"
            outlets = str(row["outlet_count"])
            if row["new_outlets"]:
                outlets += f" (+{row['new_outlets']} today)"
            articles = str(row["article_count"])
            if row["new_copies"]:
                articles += f" (+{row['new_copies']} today)"
            lines.append(
                _md_row(
                    [
                        str(row["rank"]),
                        label,
                        row["state"],
                        outlets,
                        articles,
                        f"{_md(row['origin_outlet'])}, {row['origin_time']}",
                        row["velocity"],
                    ]
                )
            )
        lines += [
            "",
            "States: new (first spread across outlets today), growing (reached new outlets), "
            "steady (new copies from outlets already reached), cooling (no new copy today), "
            f"resurfaced (new copies after {view['quiet_days']} or more quiet days). "
            "Velocity: outlets within 24 h of the first copy, by published time.",
        ]
    lines += ["", "## Feed health", ""]
    if view["feeds"]:
        lines += [
            _md_row(["Outlet", "Problem", "Since", "Detail", "Feed"]),
            _md_row(["---"] * 5),
        ]
        for feed in view["feeds"]:
            feed_cell = _md(feed["url_text"])
            if links and feed["href"]:
                feed_cell = f"[{feed_cell}]({_md_url(feed['href'])})"
            lines.append(
                _md_row(
                    [
                        _md(feed["outlet"]),
                        feed["problem"],
                        feed["since"],
                        _md(feed["detail"]),
                        feed_cell,
                    ]
                )
            )
    else:
        lines.append("All feeds healthy.")
    lines += [
        "",
        "Times are UTC. First seen: when narratrace first stored an article (decides the day, "
        "the order and the states). Published: the outlet's own time (first seen where it "
        "gives none or a later one); times the first outlet and the velocity.",
        "",
    ]
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
    """One row per narrative of the overview, columns as in `CSV_COLUMNS`."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    day = report.day.isoformat()
    for n in report.narratives:
        origin = n.origin
        writer.writerow(
            {
                "day": day,
                "rank": n.rank,
                "cluster_id": _csv_text(n.cluster_id),
                "label": _csv_text(n.label),
                "state": n.state,
                "watchlist": _csv_text(";".join(n.watchlist)),
                "outlets_reached": n.outlet_count,
                "outlets_new": n.new_outlets,
                "articles": n.article_count,
                "articles_new": n.new_copies,
                "first_outlet": _csv_text(origin.outlet),
                "first_published_at": _dt(origin.published_at, none=""),
                "first_seen_at": _dt(origin.first_seen_at, none=""),
                "velocity_24h": n.velocity,
                "velocity_final": "true" if n.velocity_final else "false",
                "hours_to_second_outlet": ""
                if n.hours_to_second_outlet is None
                else f"{n.hours_to_second_outlet:.1f}",
                "syndicated": "true" if n.syndicated else "false",
                "page": page_name(n.cluster_id),
            }
        )
    return out.getvalue()
