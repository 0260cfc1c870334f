"""`narratrace reprocess`: a store written by the version before band_keys (migrations up to
006, MinHash arrays and lsh_bands rows, signatures of other parameters) is upgraded, signed
again from its texts, and found again by detection; a second run changes nothing."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa

from evaluation.rows import article_row
from flows.cli import app
from flows.cycle import run_cycle
from flows.reprocess import reprocess_store
from flows.stages import detect
from ingest.config import load_outlets
from narratives.clusters import cluster_id_for
from narratives.detect import sign_article
from narratives.params import DEFAULT_PARAMS
from simulator.corpus import DEMO_ROOT, load_corpus
from simulator.server import OutletSimulator
from store.db import Store
from store.migrations import MIGRATIONS
from store.publish import StoreLayout

T0 = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)
CORPUS = load_corpus(DEMO_ROOT)
ORIGINALS = [a for a in CORPUS.articles if a.edit == "original"][:3]
UNRELATED = [a for a in CORPUS.articles if a.edit == "unrelated"][:3]


def _rows() -> list[dict]:
    rows = []
    for i, article in enumerate(ORIGINALS + UNRELATED):
        url = f"https://{article.outlet}.example/{article.slug}"
        rows.append(article_row(url, article.outlet, T0 + timedelta(hours=i), article.text))
    return rows


def _old_store(path) -> list[dict]:
    """A store as the previous version left it: migrations 001-006, every article signed with
    other parameters (a stored MinHash array, LSH band rows) and in a cluster of its own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ)")
    for name, migration in MIGRATIONS[:6]:
        assert not name.startswith("007")
        migration(con)
        con.execute("INSERT INTO schema_migrations VALUES (?, ?)", [name, T0])
    rows = _rows()
    outlets = sorted({r["outlet_id"] for r in rows})
    for outlet in outlets:
        con.execute(
            "INSERT INTO outlets VALUES (?, ?, 'IN', 'news-portal', NULL)", [outlet, outlet]
        )
    con.register("a", pa.Table.from_pylist(rows))
    con.execute(f"INSERT INTO articles ({', '.join(rows[0])}) SELECT * FROM a")
    for r in rows:
        con.execute(
            "INSERT INTO signatures VALUES (?, 'old', 10, 1, ?)",
            [r["article_id"], np.zeros(128, np.uint32).tolist()],
        )
        con.execute("INSERT INTO lsh_bands VALUES (?, 0, 0, 12345)", [r["article_id"]])
        cluster = cluster_id_for(r["article_id"])
        con.execute(
            "INSERT INTO clusters VALUES (?, ?, ?, 'active', NULL, 'old')",
            [cluster, r["article_id"], r["first_seen_at"]],
        )
        con.execute(
            "INSERT INTO cluster_members VALUES (?, ?, NULL, NULL, NULL, NULL, NULL, ?, 'old')",
            [r["article_id"], cluster, r["first_seen_at"]],
        )
    con.close()
    return rows


def _snapshot(path) -> dict[str, list]:
    with Store(path, read_only=True) as store:
        return {
            "keys": store.sql("SELECT * FROM band_keys ORDER BY ALL"),
            "signatures": store.sql("SELECT * FROM signatures ORDER BY ALL"),
            "members": store.sql("SELECT * FROM cluster_members ORDER BY ALL"),
            "clusters": store.sql("SELECT * FROM clusters ORDER BY ALL"),
        }


def test_reprocess_upgrades_a_store_of_the_previous_version(tmp_path):
    db = tmp_path / "narratrace.duckdb"
    layout = StoreLayout.for_db(db)
    rows = _old_store(layout.working)
    (layout.working.parent / "pipeline.duckdb.bands").mkdir()  # the old band index folder
    seen: list[tuple[int, int]] = []
    assert reprocess_store(db, progress=lambda done, total: seen.append((done, total))) == 6
    assert seen == [(6, 6)]
    assert not (layout.working.parent / "pipeline.duckdb.bands").exists()
    after = _snapshot(layout.working)
    assert {s[1] for s in after["signatures"]} == {DEFAULT_PARAMS.param_set_id}
    for r in rows:  # each article's keys are its text's keys under the current parameters
        expected = sign_article(r["text"], set(), DEFAULT_PARAMS).keys.tolist()
        stored = [k for k, a in after["keys"] if a == r["article_id"]]
        assert stored == expected
    assert len(after["members"]) == 6  # memberships and cluster ids as they were
    with duckdb.connect(str(layout.working), read_only=True) as con:
        tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        columns = {
            c
            for (c,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = 'signatures'"
            ).fetchall()
        }
    assert "lsh_bands" not in tables and "minhash" not in columns
    assert db.exists()  # the catalog was published again
    # a second run finds nothing to do and changes nothing
    assert reprocess_store(db) == 0
    assert _snapshot(layout.working) == after
    # a copy of a stored original arriving now finds it through its new keys
    original = ORIGINALS[0]
    copy = article_row(
        "https://copy.example/1", "copy-outlet", T0 + timedelta(days=2), original.text
    )
    with Store(layout.working) as store:
        store.sql("INSERT INTO outlets VALUES ('copy-outlet', 'Copy', 'IN', 'news-portal', NULL)")
        store.insert_articles([copy])
        outcome = detect(store, "new", T0 + timedelta(days=2), DEFAULT_PARAMS)
        assert outcome.clusters_joined == 1
        founder = next(r for r in rows if r["text"] == original.text)
        assert store.memberships([copy["article_id"]]) == {
            copy["article_id"]: cluster_id_for(founder["article_id"])
        }


def test_reprocess_of_a_missing_store_says_so(tmp_path):
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["reprocess", "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code != 0
    assert "no narratrace store" in str(result.exception)


def test_a_cycle_on_a_store_not_yet_reprocessed_says_what_to_run(tmp_path, caplog):
    db = tmp_path / "narratrace.duckdb"
    _old_store(StoreLayout.for_db(db).working)
    with OutletSimulator(CORPUS) as sim:
        outlets = tmp_path / "outlets.toml"
        outlets.write_text(sim.outlets_toml(), encoding="utf-8")
        with caplog.at_level(logging.WARNING, logger="flows.cycle"):
            run_cycle(load_outlets(outlets), db, sim.now, 1, "after-upgrade")
    warned = [r.getMessage() for r in caplog.records if "narratrace reprocess" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("6 stored articles")
    # once signed again, a cycle has nothing to say
    assert reprocess_store(db) == 6
    caplog.clear()
    with OutletSimulator(CORPUS) as sim:
        outlets.write_text(sim.outlets_toml(), encoding="utf-8")
        with caplog.at_level(logging.WARNING, logger="flows.cycle"):
            run_cycle(load_outlets(outlets), db, sim.now, 1, "after-reprocess")
    assert not [r for r in caplog.records if "narratrace reprocess" in r.getMessage()]
