"""One writer for several shards: a store that gathers what other stores (shards) collected.

Each shard is an ordinary narratrace store with its own outlets file, its own cycles and its
own feed state (validators, seen entries, retries), run anywhere (a flow run per shard on a
Prefect `process` work pool: docs/scale-out.md). A gathering reads each shard's published
catalog, which never waits for the shard's cycle and never blocks it, and takes in every
finished cycle of the shard not gathered yet, one transaction per shard run: the run's row,
the shard's outlets and feeds, the articles the run stored and its fetch records, with the
run's id in `shard_runs`. A run gathered twice (a gathering stopped and started again, two
gatherings of the same shard) changes nothing. Then the gathering detects narratives over
everything it took in, as a cycle does, and publishes its own catalog: narratives that cross
shards are found in the one writer.

What stays in each shard: its entries (pending pages and their retries), batches and host
backoffs, which belong to the store that polls. A shard's clusters are its own; the writer's
are found again over every shard's articles."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import TerminationSignal

from flows import stages
from flows.cycle import (
    CycleInterrupted,
    _explained,
    _finish,
    _one_line,
    _publish,
    _run_id,
    detect_task,
    open_working_store,
    publish_task,
)
from narratives.detect import SignedTexts
from narratives.params import DEFAULT_PARAMS
from store.db import DEFAULT_MEMORY_LIMIT, Store, StoreError
from store.publish import Catalog, StoreLayout

log = logging.getLogger(__name__)

# what a gathering takes from a shard, besides its outlets and feeds as they are now (every
# column the writer's table has): the rows of the runs gathered
RUN_TABLES = ("articles", "fetch_log")
GROUP_ARTICLES = 20_000  # articles read from a shard at a time


class GatherError(RuntimeError):
    """A shard could not be gathered (what could be was gathered, detected and published)."""


@dataclass
class GatherOutcome:
    shards: int = 0
    runs_gathered: int = 0
    articles_new: int = 0
    failed: list[str] = field(default_factory=list)  # one line per shard that failed


def _columns(store: Store, table: str) -> list[str]:
    rows = store.sql(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
        "AND table_name = ? ORDER BY column_index",
        [table],
    )
    return [row[0] for row in rows]


def _migrations(con: Any) -> set[str]:
    return {row[0] for row in con.execute("SELECT name FROM schema_migrations").fetchall()}


def _check_shard(store: Store, catalog: Catalog) -> None:
    """The shard's catalog is a narratrace catalog at the writer's schema version."""
    try:
        theirs = _migrations(catalog.con)
    except duckdb.Error:
        raise StoreError("not a narratrace database (no schema_migrations)") from None
    ours = _migrations(store.con)
    if theirs != ours:
        behind = sorted(ours - theirs)
        ahead = sorted(theirs - ours)
        what = f"lacks {', '.join(behind)}" if behind else f"has {', '.join(ahead)} as well"
        raise StoreError(
            f"its schema is another version ({what}): run every shard and the writer on the "
            "same narratrace version"
        )


def _groups(runs: list[str], articles: dict[str, int], limit: int) -> list[list[str]]:
    """The runs in order, in groups of at most `limit` articles (a larger run alone)."""
    groups: list[list[str]] = []
    size = 0
    for run_id in runs:
        n = articles.get(run_id, 0)
        if not groups or size + n > limit:
            groups.append([])
            size = 0
        groups[-1].append(run_id)
        size += n
    return groups


def gather_shard(store: Store, shard: Path, gather_run: str) -> tuple[int, int]:
    """Gather every finished cycle of one shard not gathered yet, oldest first: (runs,
    articles added). The shard's rows are read a group of runs at a time (GROUP_ARTICLES),
    so a long backlog is taken in with bounded memory."""
    with Catalog(shard) as catalog:
        _check_shard(store, catalog)
        finished = [
            row[0]
            for row in catalog.sql(
                "SELECT run_id FROM runs WHERE kind = 'cycle' AND status <> 'running' "
                "ORDER BY started_at, run_id"
            )
        ]
        done = store.gathered_runs(finished)
        todo = [run_id for run_id in finished if run_id not in done]
        if not todo:
            return 0, 0

        def read(table: str, runs: list[str] | None = None) -> pa.Table:
            columns = ", ".join(_columns(store, table))
            query = f"SELECT {columns} FROM {table}"
            if runs is None:
                return catalog.con.sql(query).to_arrow_table()
            query += " WHERE run_id IN (SELECT unnest(?::VARCHAR[]))"
            return catalog.con.sql(query, params=[runs]).to_arrow_table()

        store.update_outlets(read("outlets"), read("feeds"))
        sizes = dict(
            catalog.sql(
                "SELECT run_id, count(*) FROM articles "
                "WHERE run_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1",
                [todo],
            )
        )
        runs_gathered = articles = 0
        for group in _groups(todo, sizes, GROUP_ARTICLES):
            tables = {table: read(table, group) for table in ("runs", *RUN_TABLES)}
            for run_id in group:
                of_run = {
                    name: table.filter(pc.equal(table.column("run_id"), run_id))
                    for name, table in tables.items()
                }
                added = store.load_shard_run(
                    str(shard),
                    gather_run,
                    of_run["runs"],
                    of_run["articles"],
                    of_run["fetch_log"],
                )
                if added is not None:
                    runs_gathered += 1
                    articles += added
    return runs_gathered, articles


def gather_shards(store: Store, shards: Sequence[Path], gather_run: str) -> GatherOutcome:
    """Gather each shard in turn; a shard that fails is logged and named in the outcome, and
    the others are still gathered."""
    outcome = GatherOutcome(shards=len(shards))
    for shard in shards:
        try:
            runs, articles = gather_shard(store, shard, gather_run)
        except (StoreError, duckdb.Error, OSError) as exc:
            text = str(exc).strip().splitlines()[0] if isinstance(exc, StoreError) else ""
            line = f"shard {shard}: {text or _one_line(exc)}"
            log.error("%s", line)
            outcome.failed.append(line)
            continue
        log.info("shard %s: %d runs gathered, %d new articles", shard, runs, articles)
        outcome.runs_gathered += runs
        outcome.articles_new += articles
    return outcome


@task(name="gather-shards", cache_policy=NO_CACHE)
def gather_task(store: Store, shards: Sequence[Path], gather_run: str) -> GatherOutcome:
    return gather_shards(store, shards, gather_run)


def shard_paths(db_path: str | Path, shards: Sequence[str | Path]) -> list[Path]:
    """The shards' catalogs as absolute paths; the writer's own database is refused, as is a
    shard named twice."""
    own = StoreLayout.for_db(db_path).catalog
    paths: list[Path] = []
    for shard in shards:
        path = StoreLayout.for_db(shard).catalog
        if path == own:
            raise StoreError(f"{shard} is the database gathered into: a shard is another store")
        if path in paths:
            raise StoreError(f"shard {shard} is named twice")
        paths.append(path)
    if not paths:
        raise StoreError("no shard to gather: name each shard's database")
    return paths


def run_gather(
    db_path: str | Path,
    shards: Sequence[str | Path],
    run_id: str,
    as_of: datetime | None = None,
    *,
    prefect_tasks: bool = False,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> dict[str, Any]:
    """A gathering: every shard's finished cycles -> detect -> publish, recorded in `runs` as
    a run of kind 'gather'. Raises GatherError, after publishing, when a shard failed."""
    paths = shard_paths(db_path, shards)
    as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
    gather = gather_task if prefect_tasks else gather_shards
    detect = detect_task if prefect_tasks else stages.detect
    publish = publish_task if prefect_tasks else _publish
    seconds: dict[str, float] = {}
    store, layout = open_working_store(db_path, memory_limit)
    try:
        store.begin_run(run_id, as_of, None, kind="gather")
        counts: dict[str, int] = {}
        try:
            started = time.perf_counter()
            outcome = gather(store, paths, run_id)
            seconds["gather"] = time.perf_counter() - started
            counts["articles_new"] = outcome.articles_new
            started = time.perf_counter()
            found = detect(store, run_id, as_of, DEFAULT_PARAMS, recent=SignedTexts())
            seconds["detect"] = time.perf_counter() - started
            counts.update(
                clusters_new=found.clusters_new,
                clusters_joined=found.clusters_joined,
                clusters_merged=found.clusters_merged,
            )
        except (KeyboardInterrupt, TerminationSignal) as exc:
            _finish(store, run_id, "interrupted", counts, "stopped by a signal")
            signum = signal.SIGTERM if isinstance(exc, TerminationSignal) else None
            raise CycleInterrupted(str(exc), signum) from exc
        except BaseException as exc:
            explained = _explained(exc, layout)
            _finish(store, run_id, "failed", counts, _one_line(explained))
            if explained is exc:
                raise
            raise explained from exc
        error = "; ".join(outcome.failed) or None
        _finish(store, run_id, "failed" if error else "completed", counts, error)
        started = time.perf_counter()
        try:
            publish(store, layout, as_of)
        except BaseException as exc:
            explained = _explained(exc, layout)
            _finish(
                store, run_id, "failed", counts, f"gathered, but publishing failed: {explained}"
            )
            if explained is exc:
                raise
            raise StoreError(f"gathered, but publishing failed: {explained}") from exc
        seconds["publish"] = time.perf_counter() - started
    finally:
        store.close()
    if outcome.failed:
        raise GatherError(
            f"{len(outcome.failed)} of {outcome.shards} shards not gathered: {outcome.failed[0]}"
        )
    return {
        "run_id": run_id,
        "as_of": as_of.isoformat(),
        "shards": outcome.shards,
        "runs_gathered": outcome.runs_gathered,
        **counts,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }


def _gather_run_name() -> str:
    return f"gather {datetime.now(UTC):%Y-%m-%d %H:%M}"


@flow(name="narratrace-gather", flow_run_name=_gather_run_name, log_prints=False)
def gather_flow(
    db_path: str,
    shards: list[str],
    as_of: datetime | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> dict[str, Any]:
    """Gather the finished cycles of every shard (each an ordinary narratrace store, its
    database named in `shards`) into the store at `db_path`, detect narratives across them
    and publish its catalog."""
    return run_gather(
        db_path, shards, _run_id(), as_of, prefect_tasks=True, memory_limit=memory_limit
    )
