"""Daily report: store queries -> report.build -> report.render -> files."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from narratives.variants import WatchNarrative, parse_watchlist
from report.build import build_daily_report
from report.model import DailyReport
from report.render import render_csv, render_html, render_markdown
from store import queries
from store.db import Store

DEFAULT_NARRATIVES = Path(__file__).resolve().parent.parent / "seeds" / "narratives.toml"


def load_watchlist(path: str | Path | None) -> tuple[WatchNarrative, ...]:
    if path is None:
        path = DEFAULT_NARRATIVES
        if not path.exists():
            return ()
    path = Path(path)
    return parse_watchlist(path.read_text(encoding="utf-8"), str(path))


def daily_report(store: Store, day: date, watchlist: tuple[WatchNarrative, ...]) -> DailyReport:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    end = start + timedelta(days=1)
    rows = queries.daily_cluster_members(store, start, end)
    cluster_ids = sorted({r.cluster_id for r in rows})
    return build_daily_report(
        day=day,
        generated_at=datetime.now(UTC),
        start=start,
        rows=rows,
        merges=queries.merges_into(store, cluster_ids),
        stats=queries.day_stats(store, start, end),
        feeds=queries.unhealthy_feeds(store),
        watchlist=watchlist,
    )


def write_daily_report(
    db_path: str, day: date, out_dir: Path, narratives_path: str | Path | None = None
) -> list[Path]:
    """Write report-YYYY-MM-DD.{html,md,csv} into out_dir; return their paths."""
    watchlist = load_watchlist(narratives_path)
    if not Path(db_path).exists():
        raise FileNotFoundError(f"no database at {db_path}; run a cycle first")
    with Store(db_path) as store:
        report = daily_report(store, day, watchlist)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"report-{day.isoformat()}"
    paths = []
    for suffix, render in ((".html", render_html), (".md", render_markdown), (".csv", render_csv)):
        path = stem.with_suffix(suffix)
        path.write_text(render(report), encoding="utf-8")
        paths.append(path)
    return paths
