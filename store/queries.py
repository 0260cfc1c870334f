"""Read queries for the report and the CLI (the analyst views live in migrations)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from store.db import Store


@dataclass(frozen=True)
class MemberRow:
    cluster_id: str
    article_id: int
    outlet: str
    title: str
    url: str
    published_at: datetime | None
    first_seen_at: datetime
    match_kind: str | None
    similarity: float | None
    matched_passage: str | None
    text: str


def daily_cluster_members(store: Store, start: datetime, end: datetime) -> list[MemberRow]:
    """Members (seen before `end`) of the clusters that gained an article in [start, end) and
    reached more than one outlet by `end`."""
    rows = store.sql(
        """
        WITH seen AS (
            SELECT m.cluster_id, a.*, o.name AS outlet_name, m.match_kind, m.similarity,
                   m.matched_passage
            FROM cluster_members m
            JOIN articles a USING (article_id)
            JOIN outlets o ON o.outlet_id = a.outlet_id
            WHERE a.first_seen_at < ?
        ),
        active AS (
            SELECT cluster_id FROM seen
            GROUP BY cluster_id
            HAVING count(DISTINCT outlet_id) > 1 AND max(first_seen_at) >= ?
        )
        SELECT cluster_id, article_id, outlet_name, coalesce(title, ''), canonical_url,
               published_at, first_seen_at, match_kind, similarity, matched_passage, text
        FROM seen SEMI JOIN active USING (cluster_id)
        ORDER BY cluster_id, first_seen_at, published_at NULLS LAST, article_id
        """,
        [end, start],
    )
    return [MemberRow(*row) for row in rows]


def merges_into(store: Store, cluster_ids: list[str]) -> dict[str, list[str]]:
    if not cluster_ids:
        return {}
    rows = store.sql(
        "SELECT survivor_cluster_id, absorbed_cluster_id FROM cluster_merges "
        "WHERE list_contains(?, survivor_cluster_id) ORDER BY merged_at",
        [cluster_ids],
    )
    result: dict[str, list[str]] = {}
    for survivor, absorbed in rows:
        result.setdefault(survivor, []).append(absorbed)
    return result


def day_stats(store: Store, start: datetime, end: datetime) -> tuple[int, int, int]:
    """(articles first seen, outlets with an article first seen, failed fetches) in [start, end)."""
    seen = store.sql(
        "SELECT count(*), count(DISTINCT outlet_id) FROM articles "
        "WHERE first_seen_at >= ? AND first_seen_at < ?",
        [start, end],
    )[0]
    failures = store.sql(
        "SELECT count(*) FROM fetch_log WHERE outcome IN ('error', 'fallback') "
        "AND fetched_at >= ? AND fetched_at < ?",
        [start, end],
    )[0]
    return int(seen[0]), int(seen[1]), int(failures[0])


def unhealthy_feeds(store: Store) -> list[tuple[str, str, str, str | None, int]]:
    return [
        (row[0], row[1], row[2], row[3], int(row[4]))
        for row in store.sql(
            "SELECT o.name, f.feed_url, f.last_status, f.last_error, f.consecutive_failures "
            "FROM feeds f JOIN outlets o USING (outlet_id) "
            "WHERE f.last_status = 'error' OR f.last_error IS NOT NULL "
            "ORDER BY f.consecutive_failures DESC, o.name"
        )
    ]
