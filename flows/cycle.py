"""Prefect flows: one ingestion cycle, and the daily report. Each task body is one call into
`flows.stages` / `flows.reporting`; tasks are per stage, never per article.

A cycle works in the pipeline's own database (`StoreLayout.working`) and ends by publishing
the analysts' catalog at the `--db` path (`store.publish`), which readers never lock."""

from __future__ import annotations

import logging
import shutil
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import TerminationSignal
from prefect.runtime import deployment, flow_run

from flows import reporting, stages
from flows.distribute import DaskWorkers, LocalWorkers, Workers
from flows.prefect_env import stop_prefect_threads_at_exit
from flows.progress import Progress
from ingest.config import OutletsConfig, load_outlets
from ingest.extract import start_pool
from ingest.http import Fetcher, Network
from narratives.detect import SignedTexts
from narratives.params import DEFAULT_PARAMS, DetectionParams
from store.db import DEFAULT_MEMORY_LIMIT, Store, StoreError
from store.publish import Publisher, PublishError, StoreLayout, prepare_layout

log = logging.getLogger(__name__)
stop_prefect_threads_at_exit()


class CycleInterrupted(KeyboardInterrupt):
    """The cycle was stopped by Ctrl-C or SIGTERM; what it stored so far is kept. `signum` is
    SIGTERM when Prefect's handler turned that signal into its TerminationSignal."""

    def __init__(self, message: str = "", signum: int | None = None):
        super().__init__(message)
        self.signum = signum


def _only_network_outages(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a stage only when the network itself was down; every other failure is recorded
    by the stage and would fail the same way again."""
    try:
        state.result()
    except stages.NetworkUnavailable:
        return True
    except Exception:
        return False
    return False


@task(
    name="poll-feeds",
    retries=2,
    retry_delay_seconds=[10, 60],
    retry_condition_fn=_only_network_outages,
    cache_policy=NO_CACHE,
)
def poll_feeds_task(
    config: OutletsConfig,
    store: Store,
    fetcher: Fetcher,
    run_id: str,
    as_of: datetime,
    *,
    progress: Progress | None = None,
    deadline: float | None = None,
    workers: Workers | None = None,
) -> stages.PollOutcome:
    return stages.poll_feeds(
        config,
        store,
        fetcher,
        run_id,
        as_of,
        progress=progress,
        deadline=deadline,
        workers=workers,
    )


@task(name="fetch-extract-store-and-detect", cache_policy=NO_CACHE)
def fetch_and_extract_task(
    config: OutletsConfig,
    store: Store,
    fetcher: Fetcher,
    run_id: str,
    as_of: datetime,
    processes: int,
    params: DetectionParams,
    recent: SignedTexts,
    *,
    progress: Progress | None = None,
    deadline: float | None = None,
    workers: Workers | None = None,
) -> stages.IngestOutcome:
    return stages.fetch_and_extract(
        config,
        store,
        fetcher,
        run_id,
        as_of,
        processes,
        params,
        recent,
        progress=progress,
        deadline=deadline,
        workers=workers,
    )


@task(name="detect-last-batch", cache_policy=NO_CACHE)
def detect_task(
    store: Store, run_id: str, as_of: datetime, params: DetectionParams, recent: SignedTexts
) -> stages.DetectOutcome:
    return stages.detect(store, run_id, as_of, params, recent=recent)


@task(name="publish-catalog", cache_policy=NO_CACHE)
def publish_task(store: Store, layout: StoreLayout, as_of: datetime) -> int:
    return Publisher(store.con, layout).publish(as_of).seq


def _run_id() -> str:
    current = flow_run.get_id()
    return str(current) if current else str(uuid.uuid4())


@dataclass(frozen=True)
class _Stages:
    poll: Callable[..., stages.PollOutcome]
    ingest: Callable[..., stages.IngestOutcome]
    detect: Callable[..., stages.DetectOutcome]
    publish: Callable[..., int]


def _publish(store: Store, layout: StoreLayout, as_of: datetime) -> int:
    return Publisher(store.con, layout).publish(as_of).seq


# inside a flow run, each stage is a Prefect task run; without Prefect, the plain functions
# (a Prefect task called outside a flow would still go through Prefect's engine and API)
PREFECT_STAGES = _Stages(poll_feeds_task, fetch_and_extract_task, detect_task, publish_task)
PLAIN_STAGES = _Stages(stages.poll_feeds, stages.fetch_and_extract, stages.detect, _publish)


def open_working_store(
    db_path: str | Path, memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> tuple[Store, StoreLayout]:
    """The working database of the store whose catalog is at `db_path` (a store made before
    the catalog existed is moved into place first, and its catalog published at once)."""
    layout = StoreLayout.for_db(db_path)
    moved = prepare_layout(layout)
    store = Store(layout.working, memory_limit=memory_limit)
    if moved or not layout.catalog.exists():
        try:
            if store.count("runs"):
                Publisher(store.con, layout).publish()
        except BaseException:
            store.close()
            raise
    return store, layout


def run_cycle(
    config: OutletsConfig,
    db_path: str | Path,
    as_of: datetime | None,
    processes: int,
    run_id: str,
    *,
    prefect_tasks: bool = False,
    progress: Progress | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    network: Network | None = None,
    dask_scheduler: str | None = None,
) -> dict[str, Any]:
    """The cycle's body: poll -> fetch and extract -> store -> detect -> publish, with the run
    recorded in `runs` (completed, failed with the error, or interrupted). With
    `prefect_tasks` (inside `cycle_flow`) each stage runs as a Prefect task; otherwise nothing
    here touches Prefect. The summary holds the run's counts and `seconds`, the wall time of
    each stage. `network` stands in for DNS and routing (tests). The pages are fetched,
    extracted and signed by the local process pool of `processes`, or by the workers of the
    Dask scheduler at `dask_scheduler` (default: the outlets file's [cluster] scheduler)."""
    calls = PREFECT_STAGES if prefect_tasks else PLAIN_STAGES
    as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
    deadline = time.monotonic() + config.schedule.cycle_budget_seconds
    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}
    scheduler = dask_scheduler or config.cluster.scheduler
    workers: Workers = DaskWorkers(scheduler) if scheduler else LocalWorkers(processes)
    try:
        store, layout = open_working_store(db_path, memory_limit)
    except BaseException:
        workers.close()
        raise
    try:
        with Fetcher(config.fetch, network=network) as fetcher:
            store.begin_run(run_id, as_of, config.source)
            stale = store.count_to_resign(DEFAULT_PARAMS.param_set_id)
            if stale:
                log.warning(
                    "%d stored articles were signed with other detection parameters: new copies "
                    "of them are not found until `narratrace reprocess --db %s` signs them again",
                    stale,
                    db_path,
                )
            try:
                if not scheduler:
                    start_pool(processes)  # workers get ready while the feeds are polled
                started = time.perf_counter()
                poll = calls.poll(
                    config,
                    store,
                    fetcher,
                    run_id,
                    as_of,
                    progress=progress,
                    deadline=deadline,
                    workers=workers,
                )
                seconds["poll"] = time.perf_counter() - started
                counts.update(
                    feeds_polled=poll.feeds_polled,
                    feeds_not_modified=poll.feeds_not_modified,
                    feeds_failed=poll.feeds_failed,
                    feeds_skipped=poll.feeds_skipped,
                    entries_seen=poll.entries_seen,
                    entries_new=poll.entries_new,
                )
                started = time.perf_counter()
                recent = SignedTexts()  # the cycle's signed texts, for both stages
                ingest = calls.ingest(
                    config,
                    store,
                    fetcher,
                    run_id,
                    as_of,
                    processes,
                    DEFAULT_PARAMS,
                    recent,
                    progress=progress,
                    deadline=deadline,
                    workers=workers,
                )
                seconds["fetch_extract"] = time.perf_counter() - started
                counts.update(
                    articles_new=ingest.articles_new,
                    articles_failed=ingest.articles_failed,
                    articles_feed_only=ingest.articles_feed_only,
                    entries_pending=ingest.entries_pending,
                    budget_exhausted=int(poll.budget_exhausted or ingest.budget_exhausted),
                )
                started = time.perf_counter()
                rest = calls.detect(store, run_id, as_of, DEFAULT_PARAMS, recent=recent)
                seconds["detect"] = time.perf_counter() - started
                found = ingest.detected
                counts.update(
                    clusters_new=found.clusters_new + rest.clusters_new,
                    clusters_joined=found.clusters_joined + rest.clusters_joined,
                    clusters_merged=found.clusters_merged + rest.clusters_merged,
                )
            except (KeyboardInterrupt, TerminationSignal) as exc:  # Prefect raises the latter
                _finish(store, run_id, "interrupted", counts, "stopped by a signal")
                signum = signal.SIGTERM if isinstance(exc, TerminationSignal) else None
                raise CycleInterrupted(str(exc), signum) from exc
            except BaseException as exc:
                explained = _explained(exc, layout)
                _finish(store, run_id, "failed", counts, _one_line(explained))
                if explained is exc:
                    raise
                raise explained from exc
            _finish(store, run_id, "completed", counts, None)
        started = time.perf_counter()
        try:
            calls.publish(store, layout, as_of)
        except BaseException as exc:
            explained = _explained(exc, layout)
            if explained is exc:
                error = f"stored, but publishing failed: {_one_line(exc)}"
                _finish(store, run_id, "failed", counts, error)
                raise
            error = f"stored, but publishing failed: {explained}"
            _finish(store, run_id, "failed", counts, error)
            raise StoreError(error) from exc
        seconds["publish"] = time.perf_counter() - started
    finally:
        store.close()
        workers.close()
    rounded = {stage: round(value, 3) for stage, value in seconds.items()}
    return {"run_id": run_id, "as_of": as_of.isoformat(), **counts, "seconds": rounded}


FULL_DISK_BYTES = 64 * 2**20  # less than this free beside the store, and writes that fail
# are put down to a full disk


def _explained(exc: BaseException, layout: StoreLayout) -> BaseException:
    """A failed write says why when the disk is full (DuckDB says only what it could not
    write)."""
    cause = exc.__cause__ if isinstance(exc, PublishError) else exc
    if not isinstance(cause, OSError | duckdb.IOException):
        return exc
    try:
        free = shutil.disk_usage(layout.data_dir).free
    except OSError:
        return exc
    if free >= FULL_DISK_BYTES:
        return exc
    return StoreError(
        f"the disk holding {layout.data_dir} is full ({free // 1024} KiB free): {_one_line(exc)}"
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _finish(
    store: Store, run_id: str, status: str, counts: dict[str, int], error: str | None
) -> None:
    """Record how the run ended; a store too broken to take the record (out of memory, disk
    full) leaves the run `running`, which the next run marks abandoned."""
    try:
        store.finish_run(run_id, status, counts, error)
    except Exception as exc:
        log.error("could not record run %s as %s: %s", run_id, status, exc)


def summary_line(summary: dict[str, Any]) -> str:
    """One line per cycle, for logs: what came in, what it joined, what failed, how long."""
    total = sum(summary.get("seconds", {}).values())
    return (
        f"cycle {summary.get('as_of', '')[:16].replace('T', ' ')}: "
        f"{summary.get('articles_new', 0)} new articles, "
        f"{summary.get('clusters_joined', 0)} joined clusters, "
        f"{summary.get('clusters_new', 0)} new clusters, "
        f"{summary.get('feeds_failed', 0)} feeds and "
        f"{summary.get('articles_failed', 0)} articles failed, "
        f"{total:.1f} s"
    )


def _cycle_run_name() -> str:
    as_of = flow_run.parameters.get("as_of") or datetime.now(UTC)
    if isinstance(as_of, str):
        as_of = datetime.fromisoformat(as_of)
    return f"cycle {as_of.astimezone(UTC):%Y-%m-%d %H:%M}"


def _report_run_name() -> str:
    day = flow_run.parameters.get("day") or (datetime.now(UTC) - timedelta(days=1)).date()
    return f"report {day}"


# set by the CLI for a cycle run in its own process (a terminal's progress bar); served runs
# log their progress instead
progress_sink: Progress | None = None


@flow(name="narratrace-cycle", flow_run_name=_cycle_run_name, log_prints=False)
def cycle_flow(
    outlets_path: str,
    db_path: str,
    as_of: datetime | None = None,
    processes: int = 1,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    dask_scheduler: str | None = None,
) -> dict[str, Any]:
    """Poll every feed in the outlets file, fetch and extract new articles, detect narratives,
    store everything in the DuckDB file and publish the analysts' catalog."""
    from flows.progress import LogProgress, PrefectProgress

    served = deployment.get_id() is not None  # under `narratrace serve`
    config = load_outlets(outlets_path)
    progress = PrefectProgress(progress_sink or LogProgress(logging.getLogger("narratrace.cycle")))
    try:
        summary = run_cycle(
            config,
            db_path,
            as_of,
            processes,
            _run_id(),
            prefect_tasks=True,
            progress=progress,
            memory_limit=memory_limit,
            dask_scheduler=dask_scheduler,
        )
    except BaseException as exc:
        if served:  # the one line a served cycle prints (Prefect logs the details)
            print(f"cycle {_cycle_run_name()[6:]}: failed: {_one_line(exc)}", flush=True)
        raise
    if served:
        print(summary_line(summary), flush=True)
    _publish_cycle_artifact(summary)
    return summary


def _publish_cycle_artifact(summary: dict[str, Any]) -> None:
    from prefect.artifacts import create_table_artifact

    rows = [
        {"figure": key, "value": str(value)}
        for key, value in summary.items()
        if key not in ("run_id", "seconds")
    ]
    rows += [
        {"figure": f"seconds {stage}", "value": f"{value:.2f}"}
        for stage, value in summary.get("seconds", {}).items()
    ]
    create_table_artifact(key="cycle-summary", table=rows, description=summary_line(summary))


@task(name="write-report", cache_policy=NO_CACHE)
def write_report_task(
    db_path: str,
    day: date,
    out_dir: str,
    narratives_path: str | None,
    window_days: int,
    quiet_days: int,
) -> reporting.WrittenReport:
    return reporting.write_daily_report(
        db_path, day, Path(out_dir), narratives_path, window_days, quiet_days
    )


@flow(name="narratrace-report", flow_run_name=_report_run_name, log_prints=False)
def report_flow(
    db_path: str,
    out_dir: str,
    day: date | None = None,
    narratives_path: str | None = None,
    window_days: int = reporting.DEFAULT_WINDOW_DAYS,
    quiet_days: int = reporting.DEFAULT_QUIET_DAYS,
) -> list[str]:
    """Write the report of `day` (default: yesterday, UTC) from the published catalog: HTML,
    Markdown and CSV, its narrative pages and the index; publish its overview as a Markdown
    artifact and a link to the HTML file."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact

    from report.render import render_markdown

    if day is None:
        day = (datetime.now(UTC) - timedelta(days=1)).date()
    written = write_report_task(db_path, day, out_dir, narratives_path, window_days, quiet_days)
    create_markdown_artifact(
        markdown=render_markdown(written.report, links=False),
        key="narratrace-daily-report",
        description=f"Narrative report of {day.isoformat()}",
    )
    html = next(
        (p for p in written.paths if p.suffix == ".html" and p.name.startswith("report-")), None
    )
    if html is not None:
        create_link_artifact(
            key="narratrace-report-file",
            link=html.resolve().as_uri(),
            link_text=html.name,
            description=f"The report file of {day.isoformat()}",
        )
    return [str(p) for p in written.paths]
