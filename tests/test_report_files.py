"""The report's files: pages, day links, the index, and atomic writes (a report killed while
writing leaves the previous files whole)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from report_samples import DAY, sample_report

from flows.reporting import MANIFEST, write_report_files
from report.model import DailyReport

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def on(day_offset: int, base: DailyReport | None = None) -> DailyReport:
    report = base or sample_report()
    return replace(report, day=DAY + timedelta(days=day_offset))


def nav(folder: Path, offset: int) -> str:
    page = (folder / f"report-{(DAY + timedelta(days=offset)).isoformat()}.html").read_text()
    found = re.search(r'<nav class="days" id="day-nav">.*?</nav>', page, re.S)
    assert found, "no day links"
    return found.group(0)


def local_links(page: Path) -> list[Path]:
    hrefs = re.findall(r'href="([^"#:]+)(?:#[^"]*)?"', page.read_text())
    return [(page.parent / h).resolve() for h in hrefs]


def test_a_report_writes_its_pages_the_index_and_working_links(tmp_path):
    out = tmp_path / "reports"
    paths = write_report_files(on(0), out)
    names = [p.relative_to(out).as_posix() for p in paths]
    assert names == [
        "report-2024-05-07.html",
        "report-2024-05-07.md",
        "report-2024-05-07.csv",
        "clusters/A.html",
        "clusters/B.html",
        "index.html",
    ]
    assert (out / MANIFEST).exists()
    for page in [out / "report-2024-05-07.html", out / "clusters/A.html", out / "index.html"]:
        for target in local_links(page):
            assert target.exists(), f"{page.name} links to missing {target}"
    assert "no earlier report" in nav(out, 0) and "no later report" in nav(out, 0)
    assert list(out.glob(".*")) == []  # no temporary file left behind


def test_day_links_follow_the_days_written_in_any_order(tmp_path):
    out = tmp_path / "reports"
    write_report_files(on(0), out)
    write_report_files(on(-2), out)  # an older day, written later
    assert 'href="report-2024-05-07.html"' in nav(out, -2)
    assert 'rel="prev" href="report-2024-05-05.html"' in nav(out, 0)
    write_report_files(on(-1), out)  # a day in between
    assert 'rel="next" href="report-2024-05-06.html"' in nav(out, -2)
    assert 'rel="prev" href="report-2024-05-05.html"' in nav(out, -1)
    assert 'rel="next" href="report-2024-05-07.html"' in nav(out, -1)
    assert 'rel="prev" href="report-2024-05-06.html"' in nav(out, 0)
    index = (out / "index.html").read_text()
    days = re.findall(r'href="report-(\d{4}-\d{2}-\d{2})\.html"', index)
    assert days == ["2024-05-07", "2024-05-06", "2024-05-05"]
    assert "1 new · 1 growing" in index
    assert "3 cycles, all completed" in index


def test_a_narrative_page_shows_the_latest_day_reported(tmp_path):
    out = tmp_path / "reports"
    write_report_files(on(0), out)
    page = out / "clusters" / "A.html"
    assert 'datetime="2024-05-07"' in page.read_text()
    write_report_files(on(-3), out)  # rebuilding an older day keeps the newer page
    assert 'datetime="2024-05-07"' in page.read_text()
    write_report_files(on(1), out)
    assert 'datetime="2024-05-08"' in page.read_text()
    (out / MANIFEST).write_text("{not json")  # a damaged manifest costs summaries, not reports
    write_report_files(on(2), out)
    assert 'datetime="2024-05-09"' in page.read_text()
    assert "2024-05-09" in (out / "index.html").read_text()


def test_rebuilding_a_day_gives_the_same_files_but_the_build_time(tmp_path):
    out = tmp_path / "reports"
    first = write_report_files(on(0), out)
    before = {p: p.read_text() for p in first}
    later = replace(on(0), generated_at=datetime(2031, 1, 1, tzinfo=UTC))
    again = write_report_files(later, out)
    assert again == first
    for path, text in before.items():
        strip = re.compile(r"(Built|built) \d{4}-\d\d-\d\d \d\d:\d\d UTC")
        assert strip.sub("", path.read_text()) == strip.sub("", text), path.name


CHILD = """
import os, sys, time
sys.path.insert(0, {tests!r})
from dataclasses import replace
from report_samples import sample_report
from flows import reporting

real_fsync = os.fsync

def stall(fd):
    real_fsync(fd)
    name = os.readlink(f"/proc/self/fd/{{fd}}")
    if name.endswith(".tmp") and "report-2024-05-07.html" in name:
        print("writing", flush=True)
        time.sleep(600)

os.fsync = stall
report = sample_report()
report = replace(report, narratives=report.narratives[:1])
reporting.write_report_files(report, reporting.Path({out!r}))
"""


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc to see open files")
def test_a_killed_report_never_replaces_a_good_one(tmp_path):
    out = tmp_path / "reports"
    write_report_files(on(0), out)
    good = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    script = textwrap.dedent(CHILD).format(tests=str(TESTS), out=str(out))
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "writing", "the child never reached the report's write"
        partial = [p for p in out.glob(".report-2024-05-07.html.*.tmp")]
        assert len(partial) == 1 and partial[0].stat().st_size > 0
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    # the page, the CSV and the Markdown were written whole before the kill (each file is
    # either old or new, never a part); the HTML report, the index and the manifest are the
    # good ones
    written_before = {"A.html", "report-2024-05-07.csv", "report-2024-05-07.md"}
    for path, content in good.items():
        if path.name not in written_before:
            assert path.read_bytes() == content, f"{path.name} changed"
    assert (out / "report-2024-05-07.md").read_text().count("](clusters/") == 1
    os.remove(partial[0])
    write_report_files(on(0), out)
    assert (out / "report-2024-05-07.html").read_bytes() == good[out / "report-2024-05-07.html"]
