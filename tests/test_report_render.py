"""The daily report renderers: HTML, Markdown and CSV built from a DailyReport."""

from __future__ import annotations

import csv
import io
import re
import tomllib
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from fnmatch import fnmatch
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest

from report.model import ClusterEntry, DailyReport, FeedHealth, MemberEntry
from report.render import CSV_COLUMNS, render_csv, render_html, render_markdown

DAY = date(2024, 5, 1)
T0 = datetime(2024, 5, 1, 6, 5, tzinfo=UTC)
HOSTILE_TITLE = "<script>alert(1)</script>"
HOSTILE_URL = "javascript:alert(1)"
EMPTY_LINE = "No narrative spread across outlets on this day."


def member(
    article_id: int,
    outlet: str,
    title: str,
    *,
    url: str | None = None,
    minutes: int = 0,
    published: datetime | None = None,
    similarity: float | None = None,
    kind: str | None = None,
    passage: str | None = None,
    changes: tuple[str, ...] = (),
    wire: bool = False,
) -> MemberEntry:
    if url is None:
        url = f"https://{outlet.lower().replace(' ', '')}.example/a/{article_id}"
    return MemberEntry(
        article_id=article_id,
        outlet=outlet,
        title=title,
        url=url,
        published_at=published,
        first_seen_at=T0 + timedelta(minutes=minutes),
        similarity=similarity,
        match_kind=kind,
        matched_passage=passage,
        changes=changes,
        wire_credit=wire,
    )


def spreading_cluster() -> ClusterEntry:
    """Three outlets, a watchlist hit, a merge, one hostile member."""
    members = (
        member(
            11,
            "Daily Herald",
            "Minister resigns over leaked memo",
            published=datetime(2024, 5, 1, 6, 0, tzinfo=UTC),
        ),
        member(
            12,
            "Morning Post",
            "Minister resigns over leaked memo | exclusive",
            minutes=210,
            published=datetime(2024, 5, 1, 9, 0, tzinfo=UTC),
            similarity=0.8234,
            kind="copy",
            changes=("headline changed", "quote from spokesperson dropped"),
        ),
        member(
            13,
            "Evening Star",
            HOSTILE_TITLE,
            url=HOSTILE_URL,
            minutes=400,
            similarity=0.3071,
            kind="passage",
            passage="the memo was leaked to reporters on Tuesday " * 12,
            wire=True,
        ),
    )
    return ClusterEntry(
        cluster_id="cl-zeta-0001",
        label="Zeta: minister resigns over leaked memo",
        watchlist=("Government collapse", "Leak narrative"),
        origin_outlet="Daily Herald",
        origin_at=members[0].first_seen_at,
        first_seen_at=members[0].first_seen_at,
        last_seen_at=members[-1].first_seen_at,
        outlets=("Daily Herald", "Morning Post", "Evening Star"),
        article_count=3,
        outlet_count=3,
        new_today=2,
        hours_to_spread=3.5,
        syndicated=False,
        members=members,
        merged_from=("cl-old-7", "cl-old-9"),
    )


def syndicated_cluster() -> ClusterEntry:
    """Listed second although alphabetically first: order must be kept as given."""
    members = (
        member(21, "Wire Desk", "Alpha storm hits coast", minutes=30, wire=True),
        member(
            22,
            "Coastal Times",
            "Alpha storm hits coast",
            minutes=31,
            similarity=0.97,
            kind="copy",
            wire=True,
        ),
    )
    return ClusterEntry(
        cluster_id="cl-alpha-0002",
        label="Alpha: storm hits coast",
        watchlist=(),
        origin_outlet="Wire Desk",
        origin_at=members[0].first_seen_at,
        first_seen_at=members[0].first_seen_at,
        last_seen_at=members[-1].first_seen_at,
        outlets=("Wire Desk", "Coastal Times"),
        article_count=2,
        outlet_count=2,
        new_today=2,
        hours_to_spread=None,
        syndicated=True,
        members=members,
    )


def make_report(*clusters: ClusterEntry, feeds: tuple[FeedHealth, ...] = ()) -> DailyReport:
    return DailyReport(
        day=DAY,
        generated_at=datetime(2024, 5, 2, 5, 30, tzinfo=UTC),
        clusters=clusters,
        articles_seen=143,
        outlets_active=17,
        failures=4,
        feed_health=feeds,
    )


@pytest.fixture
def report() -> DailyReport:
    return make_report(
        spreading_cluster(),
        syndicated_cluster(),
        feeds=(
            FeedHealth(
                outlet="Broken Gazette",
                feed_url="https://broken.example/rss.xml",
                last_status="error",
                last_error="HTTP 503 Service Unavailable",
                consecutive_failures=5,
            ),
        ),
    )


@pytest.fixture
def empty_report() -> DailyReport:
    return DailyReport(
        day=DAY,
        generated_at=datetime(2024, 5, 2, 5, 30, tzinfo=UTC),
        clusters=(),
        articles_seen=12,
        outlets_active=3,
        failures=0,
    )


class _Tags(HTMLParser):
    """Start tags with their attributes, and the page's visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    parser.close()
    return parser


def in_order(text: str, *needles: str) -> bool:
    positions = [text.find(n) for n in needles]
    return all(p >= 0 for p in positions) and positions == sorted(positions)


# --- HTML ---------------------------------------------------------------------------------


def test_html_is_a_self_contained_page(report: DailyReport) -> None:
    page = render_html(report)
    tags = parse_html(page).tags
    names = [name for name, _ in tags]
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert "style" in names
    assert "script" not in names and "link" not in names and "img" not in names
    assert not any("src" in attrs for _, attrs in tags)
    assert not any(name == "a" and attrs.get("href", "").startswith("/") for name, attrs in tags)


def test_html_header_and_summary(report: DailyReport) -> None:
    page = render_html(report)
    assert "2024-05-01" in page
    assert "Generated 2024-05-02 05:30 UTC" in page
    assert "2 clusters spreading · 143 articles seen · 17 outlets active · 4 failures" in page


def test_html_clusters_in_given_order_with_facts(report: DailyReport) -> None:
    page = render_html(report)
    text = " ".join(parse_html(page).text)
    assert in_order(
        page,
        "<h2>Zeta: minister resigns over leaked memo</h2>",
        "<h2>Alpha: storm hits coast</h2>",
        "<h2>Feed health</h2>",
    )
    zeta, alpha = page.split("<h2>Alpha: storm hits coast</h2>")
    # first cluster: id, watchlist badges, origin, reach, counts, spread, merges
    assert "cl-zeta-0001" in zeta
    assert '<span class="badge watch">Government collapse</span>' in zeta
    assert '<span class="badge watch">Leak narrative</span>' in zeta
    assert "syndicated (wire credit)" not in zeta
    assert "Daily Herald, 2024-05-01 06:05 UTC" in zeta
    assert "3: Daily Herald, Morning Post, Evening Star" in zeta
    assert "3 (2 new today)" in zeta
    assert "3.5 h to the second outlet" in zeta
    assert "cl-old-7" in zeta and "cl-old-9" in zeta
    # second cluster: syndicated, single-outlet spread wording, no watchlist badges
    assert "cl-alpha-0002" in alpha
    assert "syndicated (wire credit)" in alpha
    assert "single outlet" in alpha
    assert 'class="badge watch"' not in alpha
    assert "Merged from" not in alpha
    assert "Wire Desk, 2024-05-01 06:35 UTC" in " ".join(alpha.split())
    assert "Minister resigns over leaked memo | exclusive" in text


def test_html_member_rows(report: DailyReport) -> None:
    page = render_html(report)
    zeta = page.split("<h2>Alpha: storm hits coast</h2>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", zeta, flags=re.S)[1:]  # skip the header row
    assert len(rows) == 3
    origin, copy, passage = rows
    assert "2024-05-01 06:05 UTC" in origin and "Daily Herald" in origin
    assert '<a href="https://dailyherald.example/a/11">' in origin
    assert "2024-05-01 06:00 UTC" in origin  # published
    assert "origin" in origin and 'class="badge wire"' not in origin
    assert "copy 0.82" in copy
    assert "<li>headline changed</li>" in copy
    assert "<li>quote from spokesperson dropped</li>" in copy
    assert "2024-05-01 09:35 UTC" in copy
    assert "passage 0.31" in passage
    assert "the memo was leaked to reporters on Tuesday" in passage
    assert "…" in passage  # long passage shortened
    assert passage.count("the memo was leaked") < 12
    assert "—" in passage  # no published time
    assert 'class="badge wire"' in passage


def test_html_escapes_hostile_web_text() -> None:
    hostile = spreading_cluster()
    evil = member(
        99,
        "Evil <b>Outlet</b>",
        '"><img src=x onerror=alert(2)>',
        url='https://ok.example/"><script>alert(3)</script>',
        minutes=500,
        similarity=0.5,
        kind="passage",
        passage="</small><script>alert(4)</script>",
        changes=("<iframe src=//evil.example>",),
    )
    cluster = replace(
        hostile,
        label="<script>alert(5)</script>",
        watchlist=("<svg onload=alert(6)>",),
        members=(*hostile.members, evil),
    )
    page = render_html(make_report(cluster))
    parsed = parse_html(page)
    names = [name for name, _ in parsed.tags]
    assert "script" not in names
    assert "img" not in names and "iframe" not in names and "svg" not in names
    assert "<script" not in page.lower()
    assert not any(k.startswith("on") for _, attrs in parsed.tags for k in attrs)
    hrefs = [attrs["href"] or "" for name, attrs in parsed.tags if name == "a"]
    assert hrefs, "safe links are still rendered"
    assert all(h.startswith(("http://", "https://")) for h in hrefs)
    assert not any("javascript:" in h.lower() for h in hrefs)
    # the hostile title is still shown, as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert HOSTILE_TITLE in "".join(parsed.text)
    assert "<script>alert(5)</script>" in "".join(parsed.text)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        " JavaScript:alert(1)",
        "data:text/html,<b>x</b>",
        "ftp://x.example/a",
        "//evil.example/a",
        "/relative/path",
        "https://ok.example/a b",
        "java\nscript:alert(1)",
    ],
)
def test_html_only_http_urls_become_links(url: str) -> None:
    cluster = spreading_cluster()
    odd = member(50, "Odd Outlet", "Odd link", url=url, minutes=600, similarity=0.4, kind="copy")
    page = render_html(make_report(replace(cluster, members=(odd,))))
    anchors = [attrs for name, attrs in parse_html(page).tags if name == "a"]
    assert anchors == []
    assert "Odd link" in page


def test_html_empty_report(empty_report: DailyReport) -> None:
    page = render_html(empty_report)
    assert EMPTY_LINE in page
    assert "<table" not in page
    assert "0 clusters spreading · 12 articles seen · 3 outlets active · 0 failures" in page
    assert "All feeds healthy." in page


def test_html_feed_health(report: DailyReport) -> None:
    page = render_html(report)
    feeds = page.split("<h2>Feed health</h2>")[1]
    assert "Broken Gazette" in feeds
    assert "HTTP 503 Service Unavailable" in feeds
    assert "<td>5</td>" in feeds and "<td>error</td>" in feeds
    assert "All feeds healthy." not in feeds
    assert EMPTY_LINE not in page


def test_datetimes_are_shown_in_utc() -> None:
    cluster = syndicated_cluster()
    cest = timezone(timedelta(hours=2))
    local = replace(
        member(31, "Local", "Local time", published=datetime(2024, 5, 1, 8, 15, tzinfo=cest)),
        first_seen_at=datetime(2024, 5, 1, 10, 20, tzinfo=cest),
    )
    naive = replace(
        member(32, "Naive", "Naive time", published=datetime(2024, 5, 1, 7, 45)),
        first_seen_at=datetime(2024, 5, 1, 9, 10),
    )
    report = make_report(replace(cluster, members=(local, naive)))
    for rendered in (render_html(report), render_markdown(report), render_csv(report)):
        assert "2024-05-01 08:20 UTC" in rendered  # first seen, converted from +02:00
        assert "2024-05-01 09:10 UTC" in rendered  # naive taken as UTC
        assert "10:20" not in rendered
    for rendered in (render_html(report), render_csv(report)):  # published: not in the MD table
        assert "2024-05-01 06:15 UTC" in rendered
        assert "2024-05-01 07:45 UTC" in rendered
        assert "08:15" not in rendered


# --- Markdown -----------------------------------------------------------------------------


def md_cells(row: str) -> list[str]:
    """Split a GFM table row on pipes that are not backslash-escaped."""
    cells, current, chars = [], [], iter(row.strip())
    for ch in chars:
        if ch == "\\":
            current.append(ch + next(chars, ""))
        elif ch == "|":
            cells.append("".join(current))
            current = []
        else:
            current.append(ch)
    cells.append("".join(current))
    assert cells[0] == "" and cells[-1] == "", f"row not closed: {row!r}"
    return [c.strip() for c in cells[1:-1]]


def md_table_rows(markdown: str) -> list[list[str]]:
    return [md_cells(line) for line in markdown.splitlines() if line.startswith("|")]


def test_markdown_summary_and_clusters_in_order(report: DailyReport) -> None:
    md = render_markdown(report)
    assert md.startswith("# ")
    assert "2024-05-01" in md.splitlines()[0]
    assert "Generated 2024-05-02 05:30 UTC" in md
    assert "2 clusters spreading · 143 articles seen · 17 outlets active · 4 failures" in md
    assert in_order(
        md,
        "## Zeta: minister resigns over leaked memo",
        "## Alpha: storm hits coast",
        "## Feed health",
    )
    zeta, alpha = md.split("## Alpha: storm hits coast")
    for fact in (
        "- Cluster: cl-zeta-0001",
        "- Watchlist: Government collapse, Leak narrative",
        "- Origin: Daily Herald, 2024-05-01 06:05 UTC",
        "- Outlets reached: 3 (Daily Herald, Morning Post, Evening Star)",
        "- Articles: 3 (2 new today)",
        "- Spread: 3.5 h to the second outlet",
        "- Merged from: cl-old-7, cl-old-9",
    ):
        assert fact in zeta.splitlines(), fact
    assert "Syndicated (wire credit)" not in zeta
    assert "- Syndicated (wire credit)" in alpha.splitlines()
    assert "- Spread: single outlet" in alpha.splitlines()
    assert "Watchlist" not in alpha


def test_markdown_member_table(report: DailyReport) -> None:
    md = render_markdown(report)
    zeta = md.split("## Alpha")[0]
    rows = md_table_rows(zeta)
    assert rows[0] == ["First seen", "Outlet", "Title", "Match", "Changes"]
    assert set(rows[1]) == {"---"}
    origin, copy, passage = rows[2:]
    assert origin[0] == "2024-05-01 06:05 UTC"
    assert origin[1] == "Daily Herald"
    assert origin[2] == "[Minister resigns over leaked memo](https://dailyherald.example/a/11)"
    assert origin[3] == "origin"
    assert origin[4] == "—"
    assert copy[2] == (
        "[Minister resigns over leaked memo \\| exclusive](https://morningpost.example/a/12)"
    )
    assert copy[3] == "copy 0.82"
    assert copy[4] == "headline changed; quote from spokesperson dropped"
    assert passage[3].startswith("passage 0.31 · wire credit — “the memo was leaked")
    assert passage[3].endswith("…”")


def test_markdown_hostile_text_cannot_break_table_or_inject() -> None:
    cluster = spreading_cluster()
    nasty = member(
        77,
        "Pipe | Outlet",
        "A | B\nC `code` [x](javascript:alert(1)) <img src=x onerror=alert(1)> back\\|slash",
        url="https://ok.example/path|with(parens) and",  # has a space: not linkable
        minutes=600,
        similarity=0.4,
        kind="passage",
        passage="line one\nline two | three",
        changes=("changed | split", "<b>bold</b>"),
    )
    linked = member(
        78,
        "Paren Outlet",
        "Paren link",
        url="https://ok.example/a_(b)|c",
        minutes=601,
        similarity=0.5,
        kind="copy",
    )
    hostile = replace(
        cluster,
        label="<script>alert(1)</script> | label\n# not a heading",
        members=(*cluster.members, nasty, linked),
    )
    md = render_markdown(make_report(hostile))
    rows = md_table_rows(md)
    assert len(rows) == 2 + 5  # header, separator, five members
    assert all(len(row) == 5 for row in rows)
    assert "<script" not in md.lower() and "<img" not in md.lower() and "<b>" not in md
    assert not re.search(r"(?<!\\)\]\(javascript:", md)  # no unescaped link syntax
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md  # the hostile title, as text
    assert "\n# not a heading" not in md
    nasty_row = rows[-2]
    assert nasty_row[1] == "Pipe \\| Outlet"
    assert not nasty_row[2].startswith("[")  # neither the bad URL nor the fake link is live
    assert "\\[x\\]" in nasty_row[2] and "\\`code\\`" in nasty_row[2]
    assert "back\\\\\\|slash" in nasty_row[2]
    assert nasty_row[4] == "changed \\| split; &lt;b&gt;bold&lt;/b&gt;"
    # a linkable URL keeps its link, with characters that would end it or the cell encoded
    assert rows[-1][2] == "[Paren link](https://ok.example/a_%28b%29%7Cc)"
    # the javascript: member from the base cluster is shown but not linked
    evening = next(r for r in rows if r[1] == "Evening Star")
    assert evening[2] == "&lt;script&gt;alert(1)&lt;/script&gt;"


def test_markdown_empty_report(empty_report: DailyReport) -> None:
    md = render_markdown(empty_report)
    assert EMPTY_LINE in md.splitlines()
    assert md_table_rows(md) == []
    assert "All feeds healthy." in md


def test_markdown_feed_health(report: DailyReport) -> None:
    md = render_markdown(report)
    feeds = md.split("## Feed health")[1]
    rows = md_table_rows(feeds)
    assert rows[0] == ["Outlet", "Feed", "Status", "Failures in a row", "Last error"]
    assert rows[2] == [
        "Broken Gazette",
        "[https://broken.example/rss.xml](https://broken.example/rss.xml)",
        "error",
        "5",
        "HTTP 503 Service Unavailable",
    ]


# --- CSV ----------------------------------------------------------------------------------


def read_csv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def test_csv_one_row_per_member_with_values(report: DailyReport) -> None:
    fieldnames, rows = read_csv(render_csv(report))
    assert fieldnames == list(CSV_COLUMNS)
    assert fieldnames == [
        "day", "cluster_id", "label", "watchlist", "origin_outlet", "outlet_count",
        "article_count", "first_seen_at", "outlet", "title", "url", "published_at",
        "match_kind", "similarity", "changes", "wire_credit",
    ]  # fmt: skip
    assert len(rows) == 3 + 2
    assert [r["cluster_id"] for r in rows] == ["cl-zeta-0001"] * 3 + ["cl-alpha-0002"] * 2
    assert {r["day"] for r in rows} == {"2024-05-01"}

    origin, copy, passage, wire_origin, wire_copy = rows
    assert origin["label"] == "Zeta: minister resigns over leaked memo"
    assert origin["watchlist"] == "Government collapse;Leak narrative"
    assert origin["origin_outlet"] == "Daily Herald"
    assert (origin["outlet_count"], origin["article_count"]) == ("3", "3")
    assert origin["first_seen_at"] == "2024-05-01 06:05 UTC"
    assert origin["published_at"] == "2024-05-01 06:00 UTC"
    assert origin["url"] == "https://dailyherald.example/a/11"
    assert (origin["match_kind"], origin["similarity"], origin["changes"]) == ("", "", "")
    assert origin["wire_credit"] == "false"

    assert copy["outlet"] == "Morning Post"
    assert copy["title"] == "Minister resigns over leaked memo | exclusive"
    assert copy["first_seen_at"] == "2024-05-01 09:35 UTC"
    assert (copy["match_kind"], copy["similarity"]) == ("copy", "0.82")
    assert copy["changes"] == "headline changed; quote from spokesperson dropped"

    assert passage["title"] == HOSTILE_TITLE
    assert passage["url"] == HOSTILE_URL
    assert passage["published_at"] == ""
    assert (passage["match_kind"], passage["similarity"]) == ("passage", "0.31")
    assert passage["wire_credit"] == "true"

    assert wire_origin["watchlist"] == ""
    assert wire_origin["outlet_count"] == "2"
    assert wire_copy["similarity"] == "0.97"
    assert wire_copy["wire_credit"] == "true"


def test_csv_keeps_multiline_and_quoted_text_intact() -> None:
    cluster = syndicated_cluster()
    odd = member(
        41, "Quote, Inc.", 'He said "no"\nthen, left', minutes=5, similarity=0.666, kind="copy"
    )
    _, rows = read_csv(render_csv(make_report(replace(cluster, members=(odd,)))))
    assert len(rows) == 1
    assert rows[0]["title"] == 'He said "no"\nthen, left'
    assert rows[0]["outlet"] == "Quote, Inc."
    assert rows[0]["similarity"] == "0.67"


def test_csv_neutralises_spreadsheet_formulas() -> None:
    cluster = syndicated_cluster()
    odd = member(42, "Outlet", '=HYPERLINK("http://evil.example","click")', minutes=5)
    _, rows = read_csv(render_csv(make_report(replace(cluster, members=(odd,)))))
    assert rows[0]["title"] == "'" + '=HYPERLINK("http://evil.example","click")'


def test_csv_empty_report_has_only_the_header(empty_report: DailyReport) -> None:
    fieldnames, rows = read_csv(render_csv(empty_report))
    assert fieldnames == list(CSV_COLUMNS)
    assert rows == []


# --- packaging ----------------------------------------------------------------------------


def test_templates_ship_with_the_package() -> None:
    template = resources.files("report").joinpath("templates", "report.html.j2")
    assert template.is_file()
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["report"]
    templates_dir = Path(str(resources.files("report"))) / "templates"
    for path in templates_dir.rglob("*"):
        if path.is_file():
            relative = path.relative_to(templates_dir.parent).as_posix()
            assert any(fnmatch(relative, p) for p in patterns), relative
