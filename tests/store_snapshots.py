"""What a cycle left in a store, for tests that compare two ways of getting there (a cycle
killed and resumed against one never interrupted, Dask workers against the local pool)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from store.publish import StoreLayout


def snapshot(db: Path) -> dict[str, object]:
    """The articles, entries, clusters and matches of the store at `db`, and how many
    signatures and band keys it holds; run bookkeeping (runs, batches) is left out."""
    con = duckdb.connect(str(StoreLayout.for_db(db).working), read_only=True)
    try:

        def rows(sql: str) -> list[tuple]:
            return con.execute(sql).fetchall()

        return {
            "articles": rows(
                "SELECT article_id, canonical_url, outlet_id, title, published_at, "
                "first_seen_at, text, text_source, content_hash, word_count "
                "FROM articles ORDER BY article_id"
            ),
            "entries": rows(
                "SELECT entry_id, status, article_id, first_seen_at FROM entries ORDER BY 1"
            ),
            "members": rows(
                "SELECT article_id, cluster_id, matched_article_id, match_kind "
                "FROM cluster_members ORDER BY article_id"
            ),
            "clusters": rows(
                "SELECT cluster_id, founder_article_id, status, merged_into FROM clusters "
                "ORDER BY cluster_id"
            ),
            "matches": rows(
                "SELECT article_id, other_article_id FROM article_matches ORDER BY 1, 2"
            ),
            "signatures": rows("SELECT count(*), count(DISTINCT article_id) FROM signatures"),
            "bands": rows("SELECT count(*) FROM band_keys"),
        }
    finally:
        con.close()
