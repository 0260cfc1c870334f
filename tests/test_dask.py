"""Cycles on a real Dask cluster on this machine: a `dask scheduler` and two one-thread `dask
worker` processes on 127.0.0.1 (started from the virtual environment, torn down after), the
demo corpus served by the outlet simulator. The workers fetch, extract and sign; the cycle's
process is the one writer. Checked against a cycle on the local process pool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import pytest
from store_snapshots import snapshot

from flows.cycle import cycle_flow, open_working_store, run_cycle
from flows.distribute import LocalWorkers
from flows.server import free_port
from flows.stages import fetch_and_extract, poll_feeds
from ingest.config import load_outlets
from ingest.extract import shutdown_pool
from ingest.http import Fetcher
from simulator import OutletSimulator, load_corpus
from store.publish import StoreLayout

BIN = Path(sys.executable).parent
SETTINGS = """
[fetch]
per_host_rate = 0
per_host_concurrency = 4
timeout_seconds = 10

[cluster]
batch_pages = 10
"""


@dataclass
class Cluster:
    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A scheduler and two workers (no nanny: a killed worker stays dead), on free ports."""
    import dask
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "dask-logs"
    logs.mkdir()
    started: list[subprocess.Popen[bytes]] = []

    # dask's scratch space (its lock files) in the test's folder, not the machine's /tmp
    scratch = tmp_path / "dask-scratch"
    env = {**os.environ, "DASK_TEMPORARY_DIRECTORY": str(scratch)}

    def start(name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [str(BIN / "dask"), *args], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=env
        )
        log.close()
        started.append(process)
        return process

    try:
        scheduler = start(
            "scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"
        )
        workers = [
            start(
                f"worker-{n}",
                "worker",
                address,
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                "--name",
                f"w{n}",
                "--local-directory",
                str(tmp_path / f"w{n}"),
            )
            for n in range(2)
        ]
        with dask.config.set({"temporary-directory": str(scratch)}):
            with Client(address, timeout=60, set_as_default=False) as client:
                client.wait_for_workers(2, timeout=90)
            yield Cluster(address, scheduler, workers)
    finally:
        for process in reversed(started):
            _stop(process)


@dataclass(frozen=True)
class Served:
    sim: OutletSimulator
    outlets: Path
    local: dict[str, object]  # the snapshot of a cycle on the local process pool


def _query(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(StoreLayout.for_db(db).working), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # pages that never answer in time are left out: every run sees the same pages
    corpus = load_corpus()
    corpus = replace(corpus, articles=tuple(a for a in corpus.articles if a.fault != "timeout"))
    folder = tmp_path_factory.mktemp("dask")
    with OutletSimulator(corpus) as sim:
        sim.release_all()
        outlets = folder / "outlets.toml"
        outlets.write_text(sim.outlets_toml(extra=SETTINGS), encoding="utf-8")
        local = folder / "local.duckdb"
        try:
            run_cycle(load_outlets(outlets), local, sim.now, 2, str(uuid.uuid4()))
        finally:
            shutdown_pool()  # the local pool's processes end with the cycle they served
        yield Served(sim, outlets, snapshot(local))


def _stored_once(db: Path) -> None:
    (articles, urls) = _query(db, "SELECT count(*), count(DISTINCT canonical_url) FROM articles")[0]
    assert articles == urls
    (logged, distinct) = _query(
        db,
        "SELECT count(*), count(DISTINCT url) FROM fetch_log WHERE kind = 'article'",
    )[0]
    assert logged == distinct  # every page's fetch recorded once


def _worker_pids(db: Path) -> set[int]:
    return {int(worker.rsplit(":", 1)[1]) for (worker,) in _query(db, "SELECT worker FROM batches")}


def test_a_cycle_on_two_dask_workers_stores_what_the_local_pool_stores(
    served: Served, cluster: Cluster, tmp_path: Path
) -> None:
    db = tmp_path / "dask.duckdb"
    summary = cycle_flow(
        str(served.outlets), str(db), as_of=served.sim.now, dask_scheduler=cluster.address
    )
    assert summary["articles_new"] == len(served.local["articles"])  # type: ignore[arg-type]
    assert snapshot(db) == served.local
    _stored_once(db)
    # both workers did a share of the work, and only they did it
    assert _worker_pids(db) == {w.pid for w in cluster.workers}
    (batches, distinct, pages) = _query(
        db, "SELECT count(*), count(DISTINCT batch_id), sum(pages) FROM batches"
    )[0]
    assert batches == distinct and batches > 2
    assert [(pages,)] == _query(db, "SELECT count(*) FROM fetch_log WHERE kind = 'article'")


def test_a_worker_killed_mid_stage_loses_nothing_and_stores_nothing_twice(
    served: Served, cluster: Cluster, tmp_path: Path
) -> None:
    db = tmp_path / "killed.duckdb"
    victim = cluster.workers[0]
    killed = threading.Event()

    def progress(stage: str, done: int, total: int | None) -> None:
        # after the first batches are in, while the rest are out on both workers
        if stage == "batches" and done >= 2 and not killed.is_set():
            assert total is not None and total > done + 4
            os.kill(victim.pid, signal.SIGKILL)
            killed.set()

    summary = run_cycle(
        load_outlets(served.outlets),
        db,
        served.sim.now,
        1,
        str(uuid.uuid4()),
        progress=progress,
        dask_scheduler=cluster.address,
    )
    assert killed.is_set()
    assert victim.wait(15) == -signal.SIGKILL
    assert summary["articles_new"] == len(served.local["articles"])  # type: ignore[arg-type]
    assert snapshot(db) == served.local
    _stored_once(db)
    survivor = cluster.workers[1].pid
    assert survivor in _worker_pids(db)


class _DeliveredTwice(LocalWorkers):
    """The local pool, each result handed over twice (as a recomputed task would be)."""

    def run(self, streams, deadline, prepare):  # noqa: ANN001, ANN201
        for batch, data in super().run(streams, deadline, prepare):
            yield batch, data
            yield batch, data


def test_a_batch_delivered_twice_changes_nothing(served: Served, tmp_path: Path) -> None:
    config = load_outlets(served.outlets)
    db = tmp_path / "twice.duckdb"
    store, _layout = open_working_store(db)
    try:
        with Fetcher(config.fetch) as fetcher:
            run_id = str(uuid.uuid4())
            store.begin_run(run_id, served.sim.now, config.source)
            poll_feeds(config, store, fetcher, run_id, served.sim.now)
            outcome = fetch_and_extract(
                config, store, fetcher, run_id, served.sim.now, workers=_DeliveredTwice(2)
            )
        batches = store.sql("SELECT batch_id, worker, pages FROM batches")
        assert outcome.articles_new == len(served.local["articles"])  # type: ignore[arg-type]
        # the writer itself refuses a batch it has loaded: nothing changes
        rows = {t: store.count(t) for t in ("articles", "entries", "fetch_log", "batches")}
        batch_id, worker, pages = batches[0]
        assert store.load_batch(batch_id, run_id, worker, pages, [], [], []) is None
        assert {t: store.count(t) for t in rows} == rows
    finally:
        store.close()
    _stored_once(db)
    articles = _query(db, "SELECT article_id, canonical_url, text FROM articles ORDER BY 1")
    assert articles == [(a[0], a[1], a[6]) for a in served.local["articles"]]  # type: ignore[attr-defined]
