"""Daily report: store queries -> report.build -> report.charts / report.render -> files.

`write_daily_report` writes, into the reports folder:
- report-DAY.html (the overview, charts and feed health), report-DAY.md, report-DAY.csv;
- clusters/<cluster id>.html, the page of every narrative the report lists;
- index.html, every day's report; and reports.json, what the index and the pages need to know
  about the days already written (their summaries, and the day each page shows).
Each file is written to a temporary file in the same folder and then renamed over the old
one: a report killed while writing leaves the previous files whole. A narrative's page shows
it as of the latest day reported: rebuilding an older day does not replace a newer page.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from narratives.variants import WatchNarrative, parse_watchlist
from report.build import (
    DEFAULT_WINDOW_DAYS,
    build_daily_report,
    build_narratives,
    feed_issues,
)
from report.charts import narrative_charts, report_charts
from report.model import DailyReport
from report.render import (
    NAV_PATTERN,
    IndexEntry,
    page_name,
    render_csv,
    render_html,
    render_index_html,
    render_markdown,
    render_narrative_html,
    render_nav,
    report_file,
    state_counts,
    summary,
)
from report.states import DEFAULT_QUIET_DAYS, day_bounds
from store import queries
from store.publish import Catalog
from store.queries import Reader

log = logging.getLogger(__name__)

DEFAULT_NARRATIVES = Path(__file__).resolve().parent.parent / "seeds" / "narratives.toml"
MANIFEST = "reports.json"
_REPORT_FILE = re.compile(r"report-(\d{4}-\d{2}-\d{2})\.html")


def load_watchlist(path: str | Path | None) -> tuple[WatchNarrative, ...]:
    if path is None:
        path = DEFAULT_NARRATIVES
        if not path.exists():
            return ()
    path = Path(path)
    return parse_watchlist(path.read_text(encoding="utf-8"), str(path))


def daily_report(
    db: Reader,
    day: date,
    watchlist: tuple[WatchNarrative, ...] = (),
    window_days: int = DEFAULT_WINDOW_DAYS,
    quiet_days: int = DEFAULT_QUIET_DAYS,
    generated_at: datetime | None = None,
) -> DailyReport:
    """The report of `day` from what was known by its end (UTC)."""
    if window_days < 1 or quiet_days < 1:
        raise ValueError("the window and the quiet spell must be at least one day")
    start, end = day_bounds(day)
    since = start - timedelta(days=window_days - 1)
    rows = queries.window_members(db, since, end)
    merges = queries.merged_into(db, sorted({r.cluster_id for r in rows}), end)
    narratives = build_narratives(rows, day, window_days, quiet_days, watchlist, merges)
    issues = feed_issues(
        queries.feed_problems(db, start, end), queries.feed_item_times(db, end), end
    )
    return build_daily_report(
        day=day,
        generated_at=generated_at or datetime.now(UTC),
        narratives=narratives,
        activity=queries.day_activity(db, start, end),
        articles_per_day=queries.articles_per_day(db, since, end),
        issues=issues,
        window_days=window_days,
        quiet_days=quiet_days,
    )


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and a rename: the
    path holds either its old content or the new one, never a part."""
    handle = tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


@dataclass
class _Manifest:
    days: dict[str, dict[str, str]] = field(default_factory=dict)  # day -> summary, states
    pages: dict[str, str] = field(default_factory=dict)  # cluster id -> day its page shows

    @classmethod
    def read(cls, folder: Path) -> _Manifest:
        path = folder / MANIFEST
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
            days, pages = data["days"], data["pages"]
            if not isinstance(days, dict) or not isinstance(pages, dict):
                raise ValueError("days and pages must be objects")
            return cls(
                {str(k): dict(v) for k, v in days.items()},
                {str(k): str(v) for k, v in pages.items()},
            )
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s is unreadable (%s); the index loses older summaries", path, exc)
            return cls()

    def write(self, folder: Path) -> None:
        text = json.dumps({"days": self.days, "pages": self.pages}, indent=1, sort_keys=True)
        write_atomic(folder / MANIFEST, text + "\n")


def _report_days(folder: Path) -> set[date]:
    days = set()
    for path in folder.glob("report-*.html"):
        found = _REPORT_FILE.fullmatch(path.name)
        if found:
            try:
                days.add(date.fromisoformat(found.group(1)))
            except ValueError:
                continue
    return days


def _neighbours(days: set[date], day: date) -> tuple[date | None, date | None]:
    earlier = [d for d in days if d < day]
    later = [d for d in days if d > day]
    return (max(earlier) if earlier else None, min(later) if later else None)


def _relink(folder: Path, day: date, days: set[date]) -> None:
    """Point the day links of an existing report at its neighbours among `days`."""
    path = folder / report_file(day)
    try:
        page = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    nav = render_nav(*_neighbours(days, day))
    updated, count = NAV_PATTERN.subn(lambda _: nav, page, count=1)
    if count and updated != page:
        write_atomic(path, updated)


@dataclass(frozen=True)
class WrittenReport:
    report: DailyReport
    paths: list[Path]  # the day's HTML, Markdown and CSV, then the pages written, then the index


def write_report_files(report: DailyReport, out_dir: Path) -> list[Path]:
    """Write the report of `report.day`, its narrative pages and the index into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "clusters").mkdir(exist_ok=True)
    manifest = _Manifest.read(out_dir)
    day = report.day.isoformat()
    pages = []
    for narrative in report.narratives:
        shown = manifest.pages.get(narrative.cluster_id)
        if (
            shown is not None
            and shown > day
            and (out_dir / page_name(narrative.cluster_id)).exists()
        ):
            continue  # the page shows a later day already
        path = out_dir / page_name(narrative.cluster_id)
        write_atomic(path, render_narrative_html(narrative, report, narrative_charts(narrative)))
        manifest.pages[narrative.cluster_id] = day
        pages.append(path)
    days = _report_days(out_dir) | {report.day}
    files = [
        (out_dir / report_file(report.day, ".csv"), render_csv(report)),
        (out_dir / report_file(report.day, ".md"), render_markdown(report)),
        (
            out_dir / report_file(report.day),
            render_html(report, report_charts(report), render_nav(*_neighbours(days, report.day))),
        ),
    ]
    for path, text in files:
        write_atomic(path, text)
    written = [files[2][0], files[1][0], files[0][0], *pages]
    for neighbour in _neighbours(days, report.day):
        if neighbour is not None:
            _relink(out_dir, neighbour, days)
    manifest.days[day] = {"summary": summary(report), "states": state_counts(report)}
    manifest.write(out_dir)
    entries = [
        IndexEntry(d, manifest.days.get(d.isoformat(), {}).get("summary", ""),
                   manifest.days.get(d.isoformat(), {}).get("states", ""))
        for d in days
    ]  # fmt: skip
    index = out_dir / "index.html"
    write_atomic(index, render_index_html(entries))
    written.append(index)
    return written


def write_daily_report(
    db_path: str | Path,
    day: date,
    out_dir: Path,
    narratives_path: str | Path | None = None,
    window_days: int = DEFAULT_WINDOW_DAYS,
    quiet_days: int = DEFAULT_QUIET_DAYS,
) -> WrittenReport:
    """Build the report of `day` from the database at `db_path` and write its files."""
    watchlist = load_watchlist(narratives_path)
    if not Path(db_path).exists():
        raise FileNotFoundError(f"no database at {db_path}; run a cycle first")
    with Catalog(db_path) as catalog:  # the published data: never waits for a cycle
        report = daily_report(catalog, day, watchlist, window_days, quiet_days)
    return WrittenReport(report, write_report_files(report, Path(out_dir)))
