"""Outlets in shards feeding one writer: each shard is a store with cycles of its own, and the
writer gathers their finished cycles from the shards' published catalogs, then detects across
them. Checked against one store that polls every outlet, on the demo corpus served by the
outlet simulator: real cycles, real DuckDB files; the last test deploys the shards and the
gathering on a Prefect process work pool and lets a real `prefect worker` run them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import pytest
import tomlkit
from store_snapshots import snapshot

from flows import gather
from flows.cycle import run_cycle
from flows.gather import GatherError, run_gather
from flows.server import LocalPrefectServer
from ingest.config import load_outlets
from ingest.extract import shutdown_pool
from simulator import OutletSimulator, load_corpus
from store.db import Store, StoreError
from store.publish import StoreLayout

BIN = Path(sys.executable).parent
SETTINGS = """
[fetch]
per_host_rate = 0
per_host_concurrency = 4
timeout_seconds = 10
"""


@dataclass(frozen=True)
class Sharded:
    sim: OutletSimulator
    folder: Path
    shards: list[Path]  # each shard's database (two cycles each)
    outlets: list[Path]  # each shard's outlets file
    reference: dict[str, object]  # one store that polled every outlet in the same two cycles
    reference_db: Path


def _split(text: str, parts: int) -> list[str]:
    """The outlets file `text` as `parts` files, outlets dealt out in turn."""
    shards = []
    for part in range(parts):
        doc = tomlkit.parse(text)
        kept = [table for i, table in enumerate(doc["outlets"]) if i % parts == part]
        doc["outlets"] = tomlkit.aot()
        for table in kept:
            doc["outlets"].append(table)
        shards.append(tomlkit.dumps(doc))
    return shards


def _query(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(StoreLayout.for_db(db).working), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sharded]:
    # pages that never answer in time are left out: every store sees the same pages
    corpus = load_corpus()
    corpus = replace(corpus, articles=tuple(a for a in corpus.articles if a.fault != "timeout"))
    folder = tmp_path_factory.mktemp("shards")
    with OutletSimulator(corpus) as sim:
        text = sim.outlets_toml(extra=SETTINGS)
        (folder / "all.toml").write_text(text, encoding="utf-8")
        outlets = []
        for n, part in enumerate(_split(text, 2)):
            outlets.append(folder / f"shard-{n}.toml")
            outlets[-1].write_text(part, encoding="utf-8")
        shards = [folder / f"shard-{n}.duckdb" for n in range(2)]
        reference = folder / "reference.duckdb"
        half = (corpus.end - corpus.start) / 2
        try:
            for as_of in (corpus.start + half, corpus.end):
                sim.set_now(as_of)
                for path, db in [
                    (folder / "all.toml", reference),
                    *zip(outlets, shards, strict=True),
                ]:
                    run_cycle(load_outlets(path), db, as_of, 2, str(uuid.uuid4()))
        finally:
            shutdown_pool()
        yield Sharded(sim, folder, shards, outlets, snapshot(reference), reference)


def _comparable(snap: dict[str, object]) -> dict[str, object]:
    """What gathering must reproduce: everything but the entries (they stay in the shards)."""
    return {key: value for key, value in snap.items() if key != "entries"}


def test_the_writer_gathers_every_shard_and_finds_what_one_store_finds(
    sharded: Sharded, tmp_path: Path
) -> None:
    db = tmp_path / "writer.duckdb"
    summary = run_gather(db, sharded.shards, str(uuid.uuid4()), sharded.sim.now)
    assert summary["runs_gathered"] == 4
    reference = sharded.reference
    assert summary["articles_new"] == len(reference["articles"])  # type: ignore[arg-type]
    # the same articles, clusters, members and matches as the store that polled everything
    assert _comparable(snapshot(db)) == _comparable(reference)
    assert len(reference["clusters"]) < len(reference["articles"])  # type: ignore[arg-type]
    # narratives that cross the shards are found: a cluster holds outlets of both
    shard_of = {}
    for n, shard in enumerate(sharded.shards):
        shard_of.update({row[0]: n for row in _query(shard, "SELECT outlet_id FROM outlets")})
    spans = _query(
        db,
        "SELECT m.cluster_id, list(DISTINCT a.outlet_id) FROM cluster_members m "
        "JOIN articles a USING (article_id) GROUP BY 1",
    )
    assert any(len({shard_of[o] for o in outlets}) == 2 for _cluster, outlets in spans)
    # the shards' runs and fetch records came along; the gathering is a run of its own
    runs = _query(db, "SELECT kind, count(*) FROM runs GROUP BY 1 ORDER BY 1")
    assert runs == [("cycle", 4), ("gather", 1)]
    shard_fetches = sum(_query(s, "SELECT count(*) FROM fetch_log")[0][0] for s in sharded.shards)
    assert _query(db, "SELECT count(*) FROM fetch_log") == [(shard_fetches,)]
    # the analysts' catalog at --db shows them
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM articles").fetchall() == [
            (len(reference["articles"]),)  # type: ignore[arg-type]
        ]
        assert con.execute("SELECT count(*) FROM shard_runs").fetchall() == [(4,)]
    finally:
        con.close()

    # gathered again: nothing changes but the record of the second gathering
    again = run_gather(db, sharded.shards, str(uuid.uuid4()), sharded.sim.now)
    assert (again["runs_gathered"], again["articles_new"], again["clusters_new"]) == (0, 0, 0)
    assert _comparable(snapshot(db)) == _comparable(reference)
    assert _query(db, "SELECT count(*) FROM fetch_log") == [(shard_fetches,)]


def test_a_gathering_stopped_midway_resumes_with_nothing_lost_or_twice(
    sharded: Sharded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "writer.duckdb"
    load = Store.load_shard_run
    loaded: list[str] = []

    def stopped_at_the_third(self: Store, shard: str, *args: object) -> int | None:
        if len(loaded) == 2:
            raise KeyboardInterrupt  # Ctrl-C between two shard runs
        loaded.append(shard)
        return load(self, shard, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "load_shard_run", stopped_at_the_third)
    monkeypatch.setattr(gather, "GROUP_ARTICLES", 30)  # a shard's runs read in several groups
    with pytest.raises(KeyboardInterrupt):
        run_gather(db, sharded.shards, str(uuid.uuid4()), sharded.sim.now)
    monkeypatch.setattr(Store, "load_shard_run", load)
    assert _query(db, "SELECT status FROM runs WHERE kind = 'gather'") == [("interrupted",)]
    assert _query(db, "SELECT count(*) FROM shard_runs") == [(2,)]
    done = run_gather(db, sharded.shards, str(uuid.uuid4()), sharded.sim.now)
    assert done["runs_gathered"] == 2
    assert _comparable(snapshot(db)) == _comparable(sharded.reference)
    (articles, distinct) = _query(db, "SELECT count(*), count(DISTINCT article_id) FROM articles")[
        0
    ]
    assert articles == distinct


def test_an_article_two_shards_stored_is_stored_once(sharded: Sharded, tmp_path: Path) -> None:
    # the reference store polled every outlet: shard 0's outlets overlap with it
    db = tmp_path / "writer.duckdb"
    summary = run_gather(db, [sharded.reference_db, sharded.shards[0]], str(uuid.uuid4()))
    assert summary["runs_gathered"] == 4
    assert _comparable(snapshot(db)) == _comparable(sharded.reference)
    assert _query(db, "SELECT sum(articles) FROM shard_runs") == [
        (len(sharded.reference["articles"]),)  # type: ignore[arg-type]
    ]


def test_gathering_never_waits_for_a_shard_cycle_nor_an_analyst(
    sharded: Sharded, tmp_path: Path
) -> None:
    # a shard's working database held by a writer (as a running cycle holds it) and its
    # catalog open in an analyst's session: the gathering reads the published catalog
    cycle = duckdb.connect(str(StoreLayout.for_db(sharded.shards[0]).working))
    analyst = duckdb.connect(str(sharded.shards[1]), read_only=True)
    try:
        summary = run_gather(tmp_path / "writer.duckdb", sharded.shards, str(uuid.uuid4()))
        assert summary["runs_gathered"] == 4
        assert analyst.execute("SELECT count(*) FROM articles").fetchall()[0][0] > 0
    finally:
        cycle.close()
        analyst.close()


def test_a_shard_that_cannot_be_gathered_is_named_and_the_others_are_gathered(
    sharded: Sharded, tmp_path: Path
) -> None:
    db = tmp_path / "writer.duckdb"
    # a copy of shard 0's catalog at another schema version
    older = tmp_path / "older.duckdb"
    shutil.copy(StoreLayout.for_db(sharded.shards[0]).catalog, older)
    con = duckdb.connect(str(older))
    con.execute("DELETE FROM schema_migrations WHERE name = '010_shards'")
    con.close()
    missing = tmp_path / "missing.duckdb"
    with pytest.raises(GatherError, match="2 of 3 shards not gathered") as failed:
        run_gather(db, [older, sharded.shards[1], missing], str(uuid.uuid4()))
    assert "older.duckdb: its schema is another version (lacks 010_shards)" in str(failed.value)
    # the readable shard is in, detected and published; the gathering says what failed
    shard_articles = _query(sharded.shards[1], "SELECT count(*) FROM articles")[0][0]
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM articles").fetchall() == [(shard_articles,)]
        (status, error) = con.execute(
            "SELECT status, error FROM runs WHERE kind = 'gather'"
        ).fetchone()
    finally:
        con.close()
    assert status == "failed"
    assert "older.duckdb" in error and "missing.duckdb: no published database" in error
    assert _query(db, "SELECT count(*) FROM signatures")[0][0] == shard_articles

    with pytest.raises(StoreError, match="is the database gathered into"):
        run_gather(db, [db], str(uuid.uuid4()))
    with pytest.raises(StoreError, match="named twice"):
        run_gather(db, [sharded.shards[0], sharded.shards[0]], str(uuid.uuid4()))


def test_the_command_exits_1_naming_the_shard_it_could_not_read(
    sharded: Sharded, tmp_path: Path
) -> None:
    db = tmp_path / "writer.duckdb"
    done = subprocess.run(
        [str(BIN / "narratrace"), "gather", "--no-prefect", "--db", str(db), str(sharded.shards[0]),
         str(sharded.outlets[0])],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 1 of 2 shards not gathered: shard ")
    assert "shard-0.toml" in last and "not a valid DuckDB database" in last


def test_shards_deployed_on_a_process_work_pool_feed_the_writer(
    sharded: Sharded, tmp_path: Path
) -> None:
    """`narratrace deploy-shards` on a real Prefect server; a `prefect worker` of a process
    pool runs each shard's cycle and the gathering as flow runs of their own."""
    home = tmp_path / "prefect-home"
    server = LocalPrefectServer(log_path=tmp_path / "server.log")
    env = dict(os.environ, PREFECT_HOME=str(home))
    shards = [tmp_path / "pool-0.duckdb", tmp_path / "pool-1.duckdb"]
    writer = tmp_path / "writer.duckdb"
    server.start()
    try:
        env["PREFECT_API_URL"] = server.api_url

        def command(*args: str) -> subprocess.CompletedProcess[str]:
            done = subprocess.run(
                args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
            )
            assert done.returncode == 0, done.stderr[-2000:]
            return done

        deployed = command(
            str(BIN / "narratrace"), "deploy-shards", "--pool", "shards", "--db", str(writer),
            "--interval-minutes", "1440",
            "--shard", f"{sharded.outlets[0]}={shards[0]}",
            "--shard", f"{sharded.outlets[1]}={shards[1]}",
        )  # fmt: skip
        assert "narratrace-gather/gather-writer" in deployed.stdout

        def run_all(*deployments: str) -> None:
            for name in deployments:
                command(str(BIN / "prefect"), "deployment", "run", name)
            command(str(BIN / "prefect"), "worker", "start", "--pool", "shards", "--run-once")

        sharded.sim.release_all()
        run_all("narratrace-cycle/shard-pool-0", "narratrace-cycle/shard-pool-1")
        run_all("narratrace-gather/gather-writer")
    finally:
        server.stop()
    per_shard = [_query(s, "SELECT count(*) FROM articles")[0][0] for s in shards]
    assert all(n > 0 for n in per_shard)
    assert _query(writer, "SELECT count(*), count(DISTINCT article_id) FROM articles") == [
        (sum(per_shard), sum(per_shard))
    ]
    assert _query(writer, "SELECT kind, status FROM runs ORDER BY kind") == [
        ("cycle", "completed"),
        ("cycle", "completed"),
        ("gather", "completed"),
    ]


def test_deploy_shards_says_what_it_needs(sharded: Sharded, tmp_path: Path) -> None:
    def deploy(*args: str, api: str | None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        if api:
            env["PREFECT_API_URL"] = api
        return subprocess.run(
            [str(BIN / "narratrace"), "deploy-shards", *args],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    shard = f"--shard={sharded.outlets[0]}={tmp_path / 'a.duckdb'}"
    for done, said in [
        (deploy(shard, api=None), "set PREFECT_API_URL"),
        (deploy("--shard", "a.toml", api="http://127.0.0.1:9/api"), "give OUTLETS=DB"),
        (deploy(shard, api="http://127.0.0.1:9/api"), "cannot reach the Prefect server at"),
    ]:
        assert done.returncode == 1
        assert said in done.stderr.strip().splitlines()[-1]
