"""The store's growing tables carry no key indexes (they would have to fit in memory), and
writes into them stay idempotent; the candidate join finds the same pairs as before."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from store.db import Store
from store.migrations import MIGRATIONS

GROWING = (
    "articles",
    "signatures",
    "outlet_paragraphs",
    "clusters",
    "cluster_members",
    "article_matches",
)


def test_growing_tables_have_no_key_indexes(tmp_path):
    with Store(tmp_path / "s.duckdb") as store:
        rows = store.sql(
            "SELECT table_name, constraint_type FROM duckdb_constraints() "
            "WHERE constraint_type IN ('PRIMARY KEY', 'UNIQUE')"
        )
    keyed = {table for table, _kind in rows}
    assert not keyed & set(GROWING)
    assert {"outlets", "feeds", "runs"} <= keyed  # small tables keep theirs


def test_migration_004_keeps_rows_of_an_older_store(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ)")
    for name, migration in MIGRATIONS[:3]:
        migration(con)
        con.execute("INSERT INTO schema_migrations VALUES (?, ?)", [name, datetime.now(UTC)])
    con.execute(
        "INSERT INTO outlet_paragraphs VALUES ('river-times', 11, 1), ('river-times', 12, 1)"
    )
    con.close()
    with Store(path) as store:
        assert store.count("outlet_paragraphs") == 2
        store.record_paragraphs(
            [
                {"outlet_id": "river-times", "paragraph_key": 11, "article_id": 1},
                {"outlet_id": "river-times", "paragraph_key": 13, "article_id": 1},
                {"outlet_id": "river-times", "paragraph_key": 13, "article_id": 1},
            ]
        )
        assert sorted(store.sql("SELECT paragraph_key FROM outlet_paragraphs")) == [
            (11,),
            (12,),
            (13,),
        ]
        views = {row[0] for row in store.sql("SELECT view_name FROM duckdb_views()")}
        assert {"article_clusters", "cluster_summary"} <= views


def _keys(article_ids, keys):
    return pa.table(
        {"key": pa.array(keys, pa.uint64()), "article_id": pa.array(article_ids, pa.int64())}
    )


def test_candidate_pairs_match_on_key_and_rank_by_shared_keys(tmp_path):
    with Store(tmp_path / "s.duckdb") as store:
        # stored: article 1 shares keys 10 and 11 with the new article 9; article 2 holds
        # key 12 (shared with 9) and keys nobody else has
        store._insert("band_keys", _keys([1, 1, 1, 1], [10, 11, 99, 98]))
        store._insert("band_keys", _keys([2, 2, 2], [97, 96, 12]))
        new = _keys([9, 9, 9, 9, 8, 8, 8, 8], [10, 11, 12, 13, 10, 50, 51, 52])
        pairs = store.candidate_pairs(new, max_per_article=10)
    assert sorted(pairs) == [(8, 1, 1), (8, 9, 1), (9, 1, 2), (9, 2, 1), (9, 8, 1)]
