"""The demo's reports as a reader sees them: headless Chromium (Debian's `chromium` package)
driven by Playwright opens the files the demo wrote, clicks through them, and checks that no
request leaves the reports folder.

Under CI=true this test must run: a missing chromium or Playwright fails it. Elsewhere it is
skipped only when no chromium is installed (`apt-get install chromium`; `.ci/run` does it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.demo import cycle_times, report_days
from report.model import STATES
from simulator.corpus import DEMO_ROOT, load_corpus

CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 420, "height": 800}

if CHROMIUM is None:
    if CI:
        raise RuntimeError("CI=true and no chromium: .ci/run installs Debian's chromium package")
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium); CI always runs this",
        allow_module_level=True,
    )

from playwright.sync_api import BrowserContext, Page, Request, Route, sync_playwright  # noqa: E402


class Browser:
    """One headless Chromium with a fresh profile; every request is recorded, and any that
    would leave the reports folder is refused."""

    def __init__(self, context: BrowserContext, folder: Path):
        self.context = context
        self.folder = folder.resolve()
        self.requests: list[str] = []
        self.refused: list[str] = []
        context.on("request", self._seen)
        context.route("**/*", self._route)

    def _inside(self, url: str) -> bool:
        return url.startswith(self.folder.as_uri() + "/")

    def _seen(self, request: Request) -> None:
        self.requests.append(request.url)

    def _route(self, route: Route) -> None:
        if self._inside(route.request.url):
            route.continue_()
        else:
            self.refused.append(route.request.url)
            route.abort()

    def page(self, viewport: dict[str, int]) -> Page:
        page = self.context.new_page()
        page.set_viewport_size(viewport)
        return page

    def assert_stayed_inside(self) -> None:
        outside = [u for u in self.requests if not self._inside(u)]
        assert not outside and not self.refused, f"requests left the report: {outside}"


@pytest.fixture(scope="module")
def reports(demo_run) -> Path:
    demo, _port = demo_run
    return demo.db_path.parent / "reports"


@pytest.fixture(scope="module")
def browser(reports: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            service_workers="block",
        )
        try:
            yield Browser(context, reports)
        finally:
            context.close()


DAYS = report_days(cycle_times(load_corpus(DEMO_ROOT)))
BUSY = next(d for d in DAYS if d.isoformat() == "2025-04-27")
RETURN = next(d for d in DAYS if d.isoformat() == "2025-05-31")


def open_report(browser: Browser, reports: Path, day, viewport=DESKTOP) -> Page:
    page = browser.page(viewport)
    page.goto((reports / f"report-{day.isoformat()}.html").as_uri())
    return page


def test_the_overview_with_states_fits_the_first_screen(browser, reports):
    page = open_report(browser, reports, BUSY)
    assert page.locator("h1").inner_text() == f"Narrative report — {BUSY.isoformat()}"
    assert "feeds answered" in page.locator("#summary").inner_text()
    rows = page.locator("table.overview tbody tr")
    assert rows.count() == 5
    states = [rows.nth(i).locator(".badge[class*=state-]").inner_text() for i in range(5)]
    assert set(states) <= set(STATES) and states == ["growing"] * 5
    table = page.locator("table.overview").bounding_box()
    assert table is not None and table["y"] + table["height"] <= DESKTOP["height"]
    returned = open_report(browser, reports, RETURN)
    row = returned.locator("table.overview tbody tr").first
    assert "685" in row.locator("td.label a").inner_text()
    assert row.locator(".badge.state-resurfaced").inner_text() == "resurfaced"
    browser.assert_stayed_inside()


def test_the_charts_are_drawn(browser, reports):
    page = open_report(browser, reports, BUSY)
    charts = page.locator("figure.chart svg")
    assert charts.count() == 5
    for i in range(5):
        chart = charts.nth(i)
        chart.scroll_into_view_if_needed()
        box = chart.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100
        marks = chart.locator("path, rect, circle, line").count()
        labels = chart.locator("text").count()
        assert marks > 10 and labels > 5
        assert chart.get_attribute("aria-label")
    browser.assert_stayed_inside()


def test_narrative_pages_and_days_are_reachable_by_clicking(browser, reports):
    page = open_report(browser, reports, BUSY)
    first = page.locator("table.overview tbody tr").first
    label = first.locator("td.label a").inner_text()
    articles = int(first.locator("td[data-label=Articles]").inner_text().split()[0])
    first.locator("td.label a").click()
    page.wait_for_load_state()
    assert "/clusters/" in page.url
    assert page.locator("h1").inner_text() == label
    # a narrative's page shows it as of the latest day reported, which links back to it
    as_of = page.locator("time.as-of").get_attribute("datetime") or ""
    copies = page.locator("table.witnesses tbody tr").count()
    assert as_of >= BUSY.isoformat() and copies >= articles
    assert page.locator("#chart-timeline svg").count() == 1
    assert page.locator("#chart-spread svg").count() == 1
    page.locator("details").first.locator("summary").click()
    assert page.locator("details").first.locator("p.diff").is_visible()
    page.get_by_role("link", name=f"← Report of {as_of}").click()
    page.wait_for_load_state()
    assert page.url.endswith(f"report-{as_of}.html")
    same = page.locator("table.overview tbody tr", has=page.get_by_role("link", name=label))
    assert int(same.locator("td[data-label=Articles]").inner_text().split()[0]) == copies
    page.goto((reports / f"report-{BUSY.isoformat()}.html").as_uri())
    following = DAYS[DAYS.index(BUSY) + 1]
    page.locator("nav.days a[rel=next]").first.click()
    page.wait_for_load_state()
    assert page.url.endswith(f"report-{following.isoformat()}.html")
    page.locator("nav.days a[rel=prev]").first.click()
    page.wait_for_load_state()
    assert page.url.endswith(f"report-{BUSY.isoformat()}.html")
    page.get_by_role("link", name="All reports").first.click()
    page.wait_for_load_state()
    assert page.url.endswith("index.html")
    listed = page.locator("table.days-index tbody tr")
    assert listed.count() == len(DAYS)
    page.get_by_role("link", name=RETURN.isoformat()).click()
    page.wait_for_load_state()
    assert page.url.endswith(f"report-{RETURN.isoformat()}.html")
    browser.assert_stayed_inside()


def no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width} px wide at {PHONE['width']} px"


def test_readable_at_420_px_without_sideways_scroll(browser, reports):
    page = open_report(browser, reports, BUSY, viewport=PHONE)
    no_sideways_scroll(page)
    label = page.locator("table.overview tbody tr").first.locator("td.label a")
    box = label.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    label.click()
    page.wait_for_load_state()
    no_sideways_scroll(page)
    page.goto((reports / "index.html").as_uri())
    no_sideways_scroll(page)
    browser.assert_stayed_inside()
