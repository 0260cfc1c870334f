"""The report renderers: HTML pages (report, narrative, index), Markdown and CSV, and the
charts' SVG. Everything from the web is hostile: it must come out inert in every format."""

from __future__ import annotations

import csv
import io
import re
import tomllib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatch
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest
from report_samples import DAY, T0, row, sample_report, spreading_rows

from report.charts import (
    ChartError,
    breakdown_spec,
    check_svg,
    narrative_charts,
    report_charts,
    spread_spec,
    to_svg,
)
from report.model import DailyReport, FeedIssue
from report.render import (
    CSV_COLUMNS,
    EMPTY_STATE,
    IndexEntry,
    page_name,
    render_csv,
    render_html,
    render_index_html,
    render_markdown,
    render_narrative_html,
    render_nav,
)

HOSTILE_TITLE = "<script>alert(1)</script>"
HOSTILE_URL = "javascript:alert(1)"
FEEDS = (
    FeedIssue(
        outlet="Broken Gazette",
        feed_url="https://broken.example/rss.xml",
        problem="failing",
        since=datetime(2024, 5, 5, 8, 0, tzinfo=UTC),
        detail="5 failed polls in a row; last error: HTTP 503 Service Unavailable",
    ),
)


def hostile_rows() -> list:
    rows = spreading_rows()
    evil = row(
        "A",
        99,
        'Evil <b>Outlet</b> | "pipe"',
        seen=T0 + timedelta(hours=5),
        title='"><img src=x onerror=alert(2)> | [x](javascript:alert(1)) =HYPERLINK("x")',
        url='https://ok.example/"><script>alert(3)</script>',
        matched=1,
        kind="passage",
        similarity=0.5,
        passage="</small><script>alert(4)</script>",
        country="<svg onload=alert(6)>",
        outlet_kind="<iframe src=//evil.example>",
        text="<script>alert(7)</script> Officials in Islamabad said 4,500 soldiers resigned.",
    )
    odd = row("A", 98, "Odd", seen=T0 + timedelta(hours=6), title=HOSTILE_TITLE, url=HOSTILE_URL)
    first = replace(rows[0], title="=cmd|' /C calc'!A0 <script>alert(5)</script>")
    return [first, *rows[1:], evil, odd]


@pytest.fixture
def report() -> DailyReport:
    return sample_report(issues=FEEDS)


@pytest.fixture
def hostile() -> DailyReport:
    return sample_report(hostile_rows())


@pytest.fixture
def empty_report() -> DailyReport:
    return sample_report([])


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


def assert_inert(page: str) -> None:
    """No script, no event handler, no active element, only http(s) and relative links."""
    parsed = parse_html(page)
    names = [name for name, _ in parsed.tags]
    assert "script" not in names and "iframe" not in names and "img" not in names
    assert "foreignobject" not in names and "link" not in names
    assert "<script" not in page.lower()
    assert not any(k.startswith("on") for _, attrs in parsed.tags for k in attrs)
    for name, attrs in parsed.tags:
        for key in ("href", "src", "xlink:href"):
            value = (attrs.get(key) or "").strip().lower()
            assert not value.startswith(("javascript:", "data:", "//")), (name, key, value)
            if value and key == "src":
                raise AssertionError(f"{name} loads {value}")


# --- the daily report page -----------------------------------------------------------------------


def test_html_is_a_self_contained_page_with_inline_charts(report: DailyReport) -> None:
    page = render_html(report, report_charts(report))
    tags = parse_html(page).tags
    names = [name for name, _ in tags]
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert "style" in names and "svg" in names
    assert names.count("svg") == 5
    assert "script" not in names and "link" not in names and "img" not in names
    assert not any("src" in attrs for _, attrs in tags)
    hrefs = [attrs["href"] or "" for name, attrs in tags if name == "a"]
    assert all(h.startswith("https://") or not re.match(r"^[a-z]+:", h) for h in hrefs)
    assert "http://" not in " ".join(hrefs)  # no CDN, nothing fetched


def test_html_overview_first_with_states_and_figures(report: DailyReport) -> None:
    page = render_html(report)
    text = " ".join(" ".join(parse_html(page).text).split())
    assert "Narrative report — 2024-05-07" in text
    assert "Built 2024-05-08 05:30 UTC" in text
    assert "covers 1 May 2024 – 7 May 2024 (7 days, UTC) · quiet spell 7 days" in text
    assert (
        "3 cycles, all completed · 17 of 18 feeds answered · 143 articles first seen from "
        "17 outlets · 2 article pages failed · 2 narratives spreading (1 new · 1 growing)"
    ) in text
    assert in_order(page, 'id="overview"', 'id="feeds"')
    rows = re.findall(r"<tr>(.*?)</tr>", page.split('id="overview"')[1].split("</table>")[0], re.S)
    first, second = rows[1:]
    assert 'href="clusters/A.html"' in first and "state-growing" in first
    assert re.search(r'data-label="Outlets">3 <span class="sub">\+1 today', first)
    assert "Daily Herald" in first and "2024-05-06 03:00 UTC" in first  # published time
    assert 'href="clusters/B.html"' in second and "state-new" in second
    assert "2 so far" in second  # its 24 hours are not over at the end of the day
    assert "syndicated" in second
    assert "first seen" in text.lower() and "published" in text.lower()


def test_html_feed_health(report: DailyReport) -> None:
    page = render_html(report)
    feeds = page.split('id="feeds"')[1]
    assert "Broken Gazette" in feeds and "failing" in feeds
    assert "2024-05-05 08:00 UTC" in feeds
    assert "HTTP 503 Service Unavailable" in feeds
    assert "All feeds healthy." not in feeds


def test_html_empty_report_still_proves_the_pipeline_ran(empty_report: DailyReport) -> None:
    page = render_html(empty_report, report_charts(empty_report))
    assert EMPTY_STATE in page
    assert "3 cycles, all completed" in page and "0 narratives spreading" in page
    assert "<svg" not in page and 'class="cards overview"' not in page
    assert "All feeds healthy." in page


def test_day_links(report: DailyReport) -> None:
    nav = render_nav(DAY - timedelta(days=1), None)
    page = render_html(report, nav=nav)
    assert '<a rel="prev" href="report-2024-05-06.html">' in page
    assert "no later report" in page and 'href="index.html"' in page


def test_html_escapes_hostile_web_text(hostile: DailyReport) -> None:
    page = render_html(hostile, report_charts(hostile))
    assert_inert(page)
    text = "".join(parse_html(page).text)
    assert "=cmd|' /C calc'!A0 <script>alert(5)</script>" in text  # shown, as text
    assert "&lt;script&gt;alert(5)&lt;/script&gt;" in page


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
def test_only_http_urls_become_links(url: str) -> None:
    rows = [replace(r, url=url) for r in spreading_rows()]
    report = sample_report(rows)
    page = render_narrative_html(report.narratives[0], report, {})
    anchors = [a.get("href") or "" for name, a in parse_html(page).tags if name == "a"]
    assert all(not h.startswith(("http", "java", "data", "ftp", "/", " ")) for h in anchors)
    assert "Army hit by resignations" in page


# --- the narrative page --------------------------------------------------------------------------


def test_narrative_page(report: DailyReport) -> None:
    a = report.narratives[0]
    page = render_narrative_html(a, report, narrative_charts(a))
    text = " ".join(" ".join(parse_html(page).text).split())
    assert page.count("<svg") == 2
    assert "<code>A</code>" in page and "state-growing" in page
    assert "Outlets reached 3: Daily Herald, Morning Post, Evening Star" in text
    assert "Countries IN, PK" in text
    assert "Second outlet 4.0 h after the first, by published time" in text
    assert '<a href="../report-2024-05-07.html">' in page
    witnesses = re.findall(r'<tr id="copy-\d+">(.*?)</tr>', page, re.S)
    assert len(witnesses) == 3
    assert "earliest" in witnesses[0] and "2024-05-06 03:00 UTC" in witnesses[0]
    assert "copy 0.91" in witnesses[1] and "copy 0.74" in witnesses[2]
    assert 'class="badge fresh"' in witnesses[2] and 'class="badge fresh"' not in witnesses[1]
    assert "—" in witnesses[2]  # no published time
    changes = page.split('id="changes"')[1]
    assert "<li>numbers: 4,500 → 5,000</li>" in changes
    assert "<li>names and places: Islamabad → Rawalpindi</li>" in changes
    assert "<del>4,500</del>" in changes and "<ins>5,000</ins>" in changes
    assert "No word changed." in changes  # the second copy is the same text
    headlines = page.split('id="headlines"')[1].split("</table>")[0]
    assert "Army hit by resignations | exclusive" in headlines


def test_narrative_page_escapes_hostile_web_text(hostile: DailyReport) -> None:
    a = hostile.narratives[0]
    page = render_narrative_html(a, hostile, narrative_charts(a))
    assert_inert(page)
    text = "".join(parse_html(page).text)
    assert '"><img src=x onerror=alert(2)>' in text
    assert "</small><script>alert(4)</script>" in text
    assert HOSTILE_TITLE in text


def test_page_names_are_stable_and_safe() -> None:
    assert page_name("N9fcd7d981863") == "clusters/N9fcd7d981863.html"
    odd = page_name("../../etc/passwd")
    assert odd.startswith("clusters/c-") and "/" not in odd.removeprefix("clusters/")
    assert odd == page_name("../../etc/passwd")


def test_index_lists_days_newest_first() -> None:
    page = render_index_html(
        [
            IndexEntry(DAY - timedelta(days=1), "quiet", ""),
            IndexEntry(DAY, "<b>2 narratives</b>", "1 new"),
        ]
    )
    assert in_order(page, "report-2024-05-07.html", "report-2024-05-06.html")
    assert "&lt;b&gt;2 narratives&lt;/b&gt;" in page
    assert 'href="report-2024-05-07.md"' in page and 'href="report-2024-05-07.csv"' in page


# --- charts --------------------------------------------------------------------------------------


def test_charts_are_inline_svg_with_unique_ids(report: DailyReport) -> None:
    charts = report_charts(report)
    assert list(charts) == ["copies", "share", "outlets", "kind", "country"]
    for name, svg in charts.items():
        check_svg(svg)
        assert svg.startswith('<svg role="img" aria-label=')
        assert "<path" in svg or "<rect" in svg
        for found in re.findall(r'\bid="([^"]+)"', svg):
            assert found.startswith(f"{name}-")


def test_chart_data_follow_the_report(report: DailyReport) -> None:
    spec = breakdown_spec(report, "country")
    values = {(v["narrative"], v["group"]): v["v"] for v in spec["data"]["values"]}
    assert values[("#1 Army hit by resignations", "IN")] == 2
    assert values[("#1 Army hit by resignations", "PK")] == 1
    spread = spread_spec(report.narratives[0])
    edges = spread["layer"][0]["data"]["values"]
    assert [(e["from"], e["to"]) for e in edges] == [
        ("Daily Herald", "Morning Post"),
        ("Morning Post", "Evening Star"),
    ]
    assert spread["layer"][0]["encoding"]["y"]["scale"]["domain"] == [
        "Daily Herald",
        "Morning Post",
        "Evening Star",
    ]


def test_chart_text_from_the_web_is_escaped(hostile: DailyReport) -> None:
    charts = {**report_charts(hostile), **narrative_charts(hostile.narratives[0])}
    for svg in charts.values():
        check_svg(svg)
        assert "<script" not in svg and "<iframe" not in svg and "<svg onload" not in svg
    assert "&lt;svg onload=alert(6)&gt;" in charts["country"]


@pytest.mark.parametrize(
    ("svg", "message"),
    [
        ("<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "script"),
        ("<svg xmlns='http://www.w3.org/2000/svg'><g onclick='x()'/></svg>", "onclick"),
        ("<svg xmlns='http://www.w3.org/2000/svg'><a href='https://x.example'/></svg>", "<a>"),
        (
            "<svg xmlns='http://www.w3.org/2000/svg'><rect fill='url(https://x/y)'/></svg>",
            "outside",
        ),
        ("<svg><g></svg>", "well-formed"),
        ("<div/>", "not <svg>"),
    ],
)
def test_check_svg_refuses_anything_active(svg: str, message: str) -> None:
    with pytest.raises(ChartError, match=message):
        check_svg(svg)


def test_a_spec_that_fetches_data_is_refused() -> None:
    spec = {"data": {"url": "https://example.org/data.json"}, "mark": "bar"}
    with pytest.raises(ChartError, match="cannot render"):
        to_svg(spec)


# --- Markdown ------------------------------------------------------------------------------------


def md_cells(row_text: str) -> list[str]:
    """Split a GFM table row on pipes that are not backslash-escaped."""
    cells, current, chars = [], [], iter(row_text.strip())
    for ch in chars:
        if ch == "\\":
            current.append(ch + next(chars, ""))
        elif ch == "|":
            cells.append("".join(current))
            current = []
        else:
            current.append(ch)
    cells.append("".join(current))
    assert cells[0] == "" and cells[-1] == "", f"row not closed: {row_text!r}"
    return [c.strip() for c in cells[1:-1]]


def md_table_rows(markdown: str) -> list[list[str]]:
    return [md_cells(line) for line in markdown.splitlines() if line.startswith("|")]


def test_markdown_overview_and_feed_health(report: DailyReport) -> None:
    md = render_markdown(report)
    assert md.startswith("# Narrative report — 2024-05-07")
    assert "Built 2024-05-08 05:30 UTC" in md
    assert in_order(md, "## Narratives that spread (2)", "## Feed health")
    rows = md_table_rows(md)
    assert rows[0] == ["#", "Narrative", "State", "Outlets", "Articles",
                       "First outlet, published", "Velocity"]  # fmt: skip
    assert rows[2] == [
        "1",
        "[Army hit by resignations](clusters/A.html)",
        "growing",
        "3 (+1 today)",
        "3 (+1 today)",
        "Daily Herald, 2024-05-06 03:00 UTC",
        "2",
    ]
    assert rows[3][2] == "new" and rows[3][6] == "2 so far"
    assert rows[4] == ["Outlet", "Problem", "Since", "Detail", "Feed"]
    assert rows[6][0] == "Broken Gazette" and rows[6][2] == "2024-05-05 08:00 UTC"
    assert rows[6][4] == "[https://broken.example/rss.xml](https://broken.example/rss.xml)"
    plain = render_markdown(report, links=False)
    assert "](clusters/" not in plain and "Army hit by resignations" in plain


def test_markdown_hostile_text_cannot_break_table_or_inject(hostile: DailyReport) -> None:
    md = render_markdown(hostile)
    rows = md_table_rows(md)
    assert all(len(r) == 7 for r in rows[: 2 + len(hostile.narratives)])
    assert "<script" not in md.lower() and "<img" not in md.lower()
    assert "&lt;script&gt;alert(5)&lt;/script&gt;" in md
    assert not re.search(r"(?<!\\)\]\(javascript:", md)


def test_markdown_empty_report(empty_report: DailyReport) -> None:
    md = render_markdown(empty_report)
    assert EMPTY_STATE in md.splitlines()
    assert md_table_rows(md) == []
    assert "All feeds healthy." in md


# --- CSV -----------------------------------------------------------------------------------------


def read_csv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def test_csv_one_row_per_narrative(report: DailyReport) -> None:
    fieldnames, rows = read_csv(render_csv(report))
    assert fieldnames == list(CSV_COLUMNS)
    assert [r["cluster_id"] for r in rows] == ["A", "B"]
    a, b = rows
    assert a["state"] == "growing" and b["state"] == "new"
    assert (a["outlets_reached"], a["outlets_new"], a["articles"], a["articles_new"]) == (
        "3", "1", "3", "1",
    )  # fmt: skip
    assert a["first_published_at"] == "2024-05-06 03:00 UTC"
    assert a["first_seen_at"] == "2024-05-06 06:00 UTC"
    assert (a["velocity_24h"], a["velocity_final"]) == ("2", "true")
    assert (b["velocity_24h"], b["velocity_final"]) == ("2", "false")
    assert a["hours_to_second_outlet"] == "4.0" and a["page"] == "clusters/A.html"
    assert b["syndicated"] == "true"


def test_csv_neutralises_spreadsheet_formulas(hostile: DailyReport) -> None:
    _, rows = read_csv(render_csv(hostile))
    assert rows[0]["label"] == "'=cmd|' /C calc'!A0 <script>alert(5)</script>"


def test_csv_empty_report_has_only_the_header(empty_report: DailyReport) -> None:
    fieldnames, rows = read_csv(render_csv(empty_report))
    assert fieldnames == list(CSV_COLUMNS)
    assert rows == []


# --- packaging -----------------------------------------------------------------------------------


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
