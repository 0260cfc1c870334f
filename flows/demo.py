"""The bundled demo: the outlet simulator on 127.0.0.1 releases the demo corpus over its
simulated days; a real cycle flow runs at each release slot; daily reports follow."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from flows.cycle import cycle_flow, report_flow
from simulator.corpus import DEMO_ROOT, DemoCorpus, load_corpus
from simulator.server import OutletSimulator

DEMO_PORT = 8765  # fixed, so that article URLs (and so article ids) are the same on every run
SLOT_HOURS = 8  # the demo polls every 8 simulated hours that release something
DEMO_FETCH = """
[fetch]
timeout_seconds = 1.5
transient_retries = 0
per_host_concurrency = 8
"""


class DemoError(RuntimeError):
    pass


@dataclass(frozen=True)
class DemoResult:
    db_path: Path
    report_paths: list[Path]
    outlets_path: Path
    cycles: list[dict]


def cycle_times(corpus: DemoCorpus, slot_hours: int = SLOT_HOURS) -> list[datetime]:
    """The end of every slot in which an article is published, in order."""
    slot = timedelta(hours=slot_hours)
    ends = set()
    for article in corpus.articles:
        index = (article.published_at - corpus.start) // slot
        ends.add(corpus.start + slot * (index + 1))
    return sorted(ends)


def report_days(times: list[datetime]) -> list[date]:
    """The days a cycle ran on: the demo reports each of them (a cycle at midnight belongs to
    the day it opens)."""
    return sorted({t.date() for t in times})


def run_demo(
    out_dir: Path,
    processes: int = 2,
    port: int = DEMO_PORT,
    corpus_root: Path = DEMO_ROOT,
    progress: Callable[[str], None] = lambda message: None,
) -> DemoResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = load_corpus(corpus_root)
    db_path = out_dir / "narratrace.duckdb"
    outlets_path = out_dir / "demo-outlets.toml"
    cycles = []
    simulator = OutletSimulator(corpus, port=port, timeout_delay=4.0)
    try:
        simulator.start()
    except OSError as exc:
        raise DemoError(
            f"cannot start the outlet simulator on 127.0.0.1:{port} ({exc}); "
            "free the port or choose another with --port"
        ) from None
    with simulator as sim:
        outlets_path.write_text(sim.outlets_toml(extra=DEMO_FETCH), encoding="utf-8")
        times = cycle_times(corpus)
        for number, as_of in enumerate(times, start=1):
            sim.set_now(as_of)
            summary = cycle_flow(str(outlets_path), str(db_path), as_of=as_of, processes=processes)
            cycles.append(summary)
            progress(
                f"cycle {number}/{len(times)} at {as_of:%Y-%m-%d %H:%M}: "
                f"{summary.get('articles_new', 0)} new articles, "
                f"{summary.get('clusters_joined', 0)} joined clusters"
            )
    report_dir = out_dir / "reports"
    report_paths: list[Path] = []
    for day in report_days(times):
        report_paths.extend(Path(p) for p in report_flow(str(db_path), str(report_dir), day))
    return DemoResult(db_path, report_paths, outlets_path, cycles)
