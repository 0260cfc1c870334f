"""Prefect flows: one ingestion cycle, and the daily report. Each task body is one call into
`flows.stages` / `flows.reporting`; tasks are per stage, never per article."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows import reporting, stages
from ingest.config import OutletsConfig, load_outlets
from ingest.extract import start_pool
from ingest.http import Fetcher, Network
from narratives.detect import SignedTexts
from narratives.params import DEFAULT_PARAMS, DetectionParams
from store.db import Store


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
    config: OutletsConfig, store: Store, fetcher: Fetcher, run_id: str, as_of: datetime
) -> stages.PollOutcome:
    return stages.poll_feeds(config, store, fetcher, run_id, as_of)


@task(name="fetch-and-extract", cache_policy=NO_CACHE)
def fetch_and_extract_task(
    entries: list[stages.NewEntry],
    fetcher: Fetcher,
    store: Store,
    run_id: str,
    as_of: datetime,
    processes: int,
    params: DetectionParams,
    recent: SignedTexts,
) -> stages.IngestOutcome:
    return stages.fetch_and_extract(
        entries, fetcher, store, run_id, as_of, processes, params, recent
    )


@task(name="detect-narratives", cache_policy=NO_CACHE)
def detect_task(
    store: Store, run_id: str, as_of: datetime, params: DetectionParams, recent: SignedTexts
) -> stages.DetectOutcome:
    return stages.detect(store, run_id, as_of, params, recent=recent)


def _run_id() -> str:
    current = flow_run.get_id()
    return str(current) if current else str(uuid.uuid4())


@dataclass(frozen=True)
class _Stages:
    poll: Callable[..., stages.PollOutcome]
    ingest: Callable[..., stages.IngestOutcome]
    detect: Callable[..., stages.DetectOutcome]


# inside a flow run, each stage is a Prefect task run; without Prefect, the plain functions
# (a Prefect task called outside a flow would still go through Prefect's engine and API)
PREFECT_STAGES = _Stages(poll_feeds_task, fetch_and_extract_task, detect_task)
PLAIN_STAGES = _Stages(stages.poll_feeds, stages.fetch_and_extract, stages.detect)


def run_cycle(
    config: OutletsConfig,
    db_path: str,
    as_of: datetime | None,
    processes: int,
    run_id: str,
    *,
    prefect_tasks: bool = False,
    network: Network | None = None,
) -> dict[str, Any]:
    """The cycle's body: poll -> fetch and extract -> store -> detect, with the run recorded.
    With `prefect_tasks` (inside `cycle_flow`) each stage runs as a Prefect task; otherwise
    nothing here touches Prefect. `network` stands in for DNS and routing (tests). The summary
    holds the run's counts and `seconds`, the wall time of each stage."""
    calls = PREFECT_STAGES if prefect_tasks else PLAIN_STAGES
    as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
    seconds: dict[str, float] = {}
    with Store(db_path) as store, Fetcher(config.fetch, network=network) as fetcher:
        store.begin_run(run_id, as_of, config.source)
        counts: dict[str, int] = {}
        try:
            start_pool(processes)  # workers get ready while the feeds are polled
            started = time.perf_counter()
            poll = calls.poll(config, store, fetcher, run_id, as_of)
            seconds["poll"] = time.perf_counter() - started
            counts.update(
                feeds_polled=poll.feeds_polled,
                feeds_not_modified=poll.feeds_not_modified,
                feeds_failed=poll.feeds_failed,
                entries_seen=poll.entries_seen,
            )
            started = time.perf_counter()
            recent = SignedTexts()  # the cycle's signed texts, for both stages
            ingest = calls.ingest(
                poll.new_entries, fetcher, store, run_id, as_of, processes, DEFAULT_PARAMS, recent
            )
            seconds["fetch_extract"] = time.perf_counter() - started
            counts.update(articles_new=ingest.articles_new, articles_failed=ingest.articles_failed)
            started = time.perf_counter()
            rest = calls.detect(store, run_id, as_of, DEFAULT_PARAMS, recent=recent)
            seconds["detect"] = time.perf_counter() - started
            found = ingest.detected
            counts.update(
                clusters_new=found.clusters_new + rest.clusters_new,
                clusters_joined=found.clusters_joined + rest.clusters_joined,
                clusters_merged=found.clusters_merged + rest.clusters_merged,
            )
        except BaseException as exc:
            store.finish_run(run_id, "failed", counts, f"{type(exc).__name__}: {exc}")
            raise
        store.finish_run(run_id, "completed", counts, None)
    rounded = {stage: round(value, 3) for stage, value in seconds.items()}
    return {"run_id": run_id, "as_of": as_of.isoformat(), **counts, "seconds": rounded}


@flow(name="narratrace-cycle", log_prints=False)
def cycle_flow(
    outlets_path: str, db_path: str, as_of: datetime | None = None, processes: int = 1
) -> dict[str, Any]:
    """Poll every feed in the outlets file, fetch and extract new articles, detect narratives,
    and store everything in the DuckDB file."""
    config = load_outlets(outlets_path)
    return run_cycle(config, db_path, as_of, processes, _run_id(), prefect_tasks=True)


@task(name="write-report", cache_policy=NO_CACHE)
def write_report_task(
    db_path: str, day: date, out_dir: str, narratives_path: str | None
) -> list[str]:
    paths = reporting.write_daily_report(db_path, day, Path(out_dir), narratives_path)
    return [str(p) for p in paths]


@flow(name="narratrace-report", log_prints=False)
def report_flow(
    db_path: str, out_dir: str, day: date | None = None, narratives_path: str | None = None
) -> list[str]:
    """Write the cluster report of `day` (default: yesterday, UTC) as HTML, Markdown and CSV."""
    if day is None:
        from datetime import timedelta

        day = (datetime.now(UTC) - timedelta(days=1)).date()
    return write_report_task(db_path, day, out_dir, narratives_path)
