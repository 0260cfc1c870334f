"""The published catalog: what analysts open. Real DuckDB files, real reader processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from store.db import Store
from store.publish import Catalog, Publisher, StoreLayout, in_use, prepare_layout

DAY = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)


def _add(store: Store, first: int, count: int, when: datetime, cluster: str | None = None) -> None:
    """`count` articles with ids from `first`, each its own cluster unless `cluster` is given."""
    store.sync_outlets([])
    store.sql("INSERT INTO outlets VALUES ('o', 'Outlet', 'PK', 'news', '') ON CONFLICT DO NOTHING")
    for article in range(first, first + count):
        cluster_id = cluster or f"N{article}"
        store.sql(
            "INSERT INTO articles VALUES (?, ?, ?, 'o', NULL, ?, '', '', '', ?, ?, 'text', "
            "'page', 'h', 1, 'r')",
            [article, f"https://x/{article}", f"https://x/{article}", f"title {article}", when,
             when],
        )  # fmt: skip
        if cluster is None or not store.sql(
            "SELECT 1 FROM clusters WHERE cluster_id = ?", [cluster_id]
        ):
            store.sql(
                "INSERT INTO clusters VALUES (?, ?, ?, 'active', NULL, 'r')",
                [cluster_id, article, when],
            )
        store.sql(
            "INSERT INTO cluster_members VALUES (?, ?, NULL, NULL, NULL, NULL, NULL, ?, 'r')",
            [article, cluster_id, when],
        )


@pytest.fixture
def layout(tmp_path: Path) -> StoreLayout:
    return StoreLayout.for_db(tmp_path / "nt.duckdb")


def _count(path: Path, query: str) -> int:
    with Catalog(path) as catalog:
        return int(catalog.sql(query)[0][0])


def test_a_publication_holds_the_rows_and_the_next_one_only_adds(layout: StoreLayout):
    with Store(layout.working) as store:
        _add(store, 1, 5, DAY)
        first = Publisher(store.con, layout).publish(DAY)
        assert first.full and first.rows_written["articles"] == 5
        assert _count(layout.catalog, "SELECT count(*) FROM article_clusters") == 5
        _add(store, 6, 3, DAY + timedelta(hours=1))
        second = Publisher(store.con, layout).publish(DAY + timedelta(hours=1))
        assert not second.full
        assert second.rows_written == {
            "articles": 3,
            "fetch_log": 0,
            "clusters": 3,
            "cluster_members": 3,
            "article_matches": 0,
            "cluster_merges": 0,
            "entries": 0,
        }
    assert _count(layout.catalog, "SELECT count(*) FROM articles") == 8
    assert _count(layout.catalog, "SELECT count(*) FROM cluster_summary") == 8
    # the views keep the working tables' columns, in order
    with Catalog(layout.catalog) as catalog, Store(layout.working) as store:
        for table in ("articles", "clusters", "cluster_members", "fetch_log", "runs"):
            published = catalog.sql(f"DESCRIBE {table}")
            working = store.sql(f"DESCRIBE {table}")
            assert [r[:2] for r in published] == [r[:2] for r in working], table


def test_merges_are_seen_through_the_published_views(layout: StoreLayout):
    with Store(layout.working) as store:
        _add(store, 1, 2, DAY, cluster="NA")
        _add(store, 3, 2, DAY, cluster="NB")
        Publisher(store.con, layout).publish(DAY)
        # a later cycle merges NB into NA, as write_detection does
        store.sql("UPDATE cluster_members SET cluster_id = 'NA' WHERE cluster_id = 'NB'")
        store.sql(
            "UPDATE clusters SET status = 'merged', merged_into = 'NA' WHERE cluster_id = 'NB'"
        )
        Publisher(store.con, layout).publish(DAY + timedelta(hours=1))
    with Catalog(layout.catalog) as catalog:
        assert catalog.sql("SELECT DISTINCT cluster_id FROM article_clusters") == [("NA",)]
        assert catalog.sql("SELECT cluster_id, status, merged_into FROM clusters ORDER BY 1") == [
            ("NA", "active", None),
            ("NB", "merged", "NA"),
        ]
        assert catalog.sql("SELECT article_count FROM cluster_summary") == [(4,)]


def test_rows_rewritten_after_publishing_are_republished_whole(layout: StoreLayout):
    with Store(layout.working) as store:
        _add(store, 1, 4, DAY)
        Publisher(store.con, layout).publish(DAY)
        store.sql("DELETE FROM cluster_members WHERE article_id = 2")  # a bulk rewrite
        store.sql(
            "INSERT INTO cluster_members VALUES (2, 'N1', 1, 'copy', 0.5, 0.5, NULL, ?, 'r')",
            [DAY],
        )
        again = Publisher(store.con, layout).publish(DAY + timedelta(hours=1))
    assert again.full
    assert _count(layout.catalog, "SELECT count(*) FROM cluster_members") == 4
    assert (
        _count(layout.catalog, "SELECT count(*) FROM cluster_members WHERE cluster_id = 'N1'") == 2
    )


def test_files_of_earlier_days_are_merged_into_one(layout: StoreLayout):
    with Store(layout.working) as store:
        for hour in range(3):
            _add(store, 10 * hour + 1, 2, DAY + timedelta(hours=hour))
            Publisher(store.con, layout).publish(DAY + timedelta(hours=hour))
        Publisher(store.con, layout).publish(DAY + timedelta(days=1))
        live = store.sql(
            "SELECT day, count(*) FROM published_files WHERE table_name = 'articles' "
            "AND superseded_seq IS NULL GROUP BY day ORDER BY day"
        )
    assert live == [(DAY.date(), 1)]
    assert sorted(p.name for p in (layout.parquet_dir / "articles").iterdir())[-1].endswith(
        "-day.parquet"
    )
    assert _count(layout.catalog, "SELECT count(*) FROM articles") == 6


READER = textwrap.dedent(
    """
    import sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    print(con.execute("SELECT count(*) FROM articles").fetchall()[0][0], flush=True)
    sys.stdin.readline()  # hold the connection until told
    print(con.execute("SELECT count(*) FROM articles").fetchall()[0][0], flush=True)
    """
)


def test_a_reader_keeps_its_catalog_and_files_until_it_lets_go(layout: StoreLayout):
    with Store(layout.working) as store:
        _add(store, 1, 3, DAY)
        Publisher(store.con, layout).publish(DAY)
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(layout.catalog)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "3"
        held = sorted(layout.catalogs_dir.glob("catalog-*.duckdb"))[-1]
        assert in_use(held)
        with Store(layout.working) as store:
            for step in range(1, 6):  # new days: compactions, and catalogs past the spares
                when = DAY + timedelta(days=step)
                _add(store, 100 * step, 2, when)
                Publisher(store.con, layout).publish(when)
                Publisher(store.con, layout).publish(when + timedelta(hours=1))
        assert held.exists()  # still held: kept, with every file it names
        assert _count(layout.catalog, "SELECT count(*) FROM articles") == 13
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "3"  # the same data, read from its files
    finally:
        reader.stdin.close()
        reader.wait(timeout=30)
    assert not in_use(held)
    with Store(layout.working) as store:
        Publisher(store.con, layout).publish(DAY + timedelta(days=9))
        named = {p for (p,) in store.sql("SELECT path FROM published_files")}
    assert not held.exists()  # let go: removed, and the files only it named with it
    on_disk = {
        p.relative_to(layout.parquet_dir).as_posix() for p in layout.parquet_dir.rglob("*.parquet")
    }
    assert on_disk == named


def test_a_store_made_before_the_catalog_is_moved_into_place(tmp_path: Path):
    old = tmp_path / "old.duckdb"
    with Store(old) as store:  # the layout of earlier versions: the working tables at --db
        _add(store, 1, 2, DAY)
    (tmp_path / "old.duckdb.bands").mkdir()
    layout = StoreLayout.for_db(old)
    assert prepare_layout(layout)
    assert layout.working.exists() and not old.exists()
    assert not (tmp_path / "old.duckdb.bands").exists()
    with Store(layout.working) as store:
        assert store.count("articles") == 2
        Publisher(store.con, layout).publish(DAY)
    assert _count(old, "SELECT count(*) FROM articles") == 2
    assert not prepare_layout(layout)  # a catalog is left where it is


def test_reading_a_missing_catalog_says_what_to_do(tmp_path: Path):
    from store.db import StoreError

    with pytest.raises(StoreError, match="run `narratrace run --once` first"):
        Catalog(tmp_path / "none.duckdb")


def test_a_failed_publication_leaves_the_previous_catalog(layout: StoreLayout):
    from store.publish import PublishError

    with Store(layout.working) as store:
        _add(store, 1, 2, DAY)
        Publisher(store.con, layout).publish(DAY)
        _add(store, 3, 2, DAY)
        # the next catalog cannot be written (its temporary name is taken by a folder) after
        # the new rows' files are
        blocker = layout.catalogs_dir / "catalog-00000002.duckdb.partial"
        blocker.mkdir()
        with pytest.raises(PublishError, match="publishing failed"):
            Publisher(store.con, layout).publish(DAY + timedelta(hours=1))
        assert _count(layout.catalog, "SELECT count(*) FROM articles") == 2
        assert store.sql("SELECT count(*) FROM publications")[0][0] == 1
        blocker.rmdir()
        Publisher(store.con, layout).publish(DAY + timedelta(hours=2))
        named = {p for (p,) in store.sql("SELECT path FROM published_files")}
    assert _count(layout.catalog, "SELECT count(*) FROM articles") == 4
    on_disk = {
        p.relative_to(layout.parquet_dir).as_posix() for p in layout.parquet_dir.rglob("*.parquet")
    }
    assert on_disk == named  # what the failed attempt wrote is gone


def test_entries_show_their_latest_state(layout: StoreLayout):
    entry = {
        "entry_id": 7,
        "canonical_url": "https://x/7",
        "url": "https://x/7",
        "outlet_id": "o",
        "feed_url": "https://x/feed",
        "title": "Seven",
        "summary": "teaser",
        "content": "",
        "author": "",
        "published_at": DAY,
        "first_seen_at": DAY,
    }
    with Store(layout.working) as store:
        store.record_feed("https://x/feed", DAY, "ok", None, None, None, 1, [entry])
        Publisher(store.con, layout).publish(DAY)
        assert _count(layout.catalog, "SELECT count(*) FROM entries WHERE status = 'pending'") == 1
        update = {"entry_id": 7, "status": "failed", "reason": "HTTP 404", "attempts": 3}
        store.finish_entries([], [update])
        again = Publisher(store.con, layout).publish(DAY + timedelta(hours=1))
        assert again.rows_written["entries"] == 1
        Publisher(store.con, layout).publish(DAY + timedelta(days=1))  # merged into a day file
    with Catalog(layout.catalog) as catalog:
        assert catalog.sql("SELECT entry_id, status, reason, attempts FROM entries") == [
            (7, "failed", "HTTP 404", 3)
        ]
