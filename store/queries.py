"""Read queries for the report.

Every function takes a `Reader`: any object with `.sql(query, params) -> list[tuple]` (a
`store.db.Store`, or a read-only connection to the published catalog). They read only the
published tables and views (outlets, feeds, runs, fetch_log, articles, clusters,
cluster_members, cluster_merges), never write, and never use temporary tables.

A report of day D asks each of them "as of `end`" (the end of D): rows are cut by the time
narratrace knew of them (fetch_log.fetched_at, articles.first_seen_at, runs.as_of,
cluster_merges.merged_at), so building the report of a past day again gives the same figures.
A cycle re-run for the same `as_of` (the demo run twice) logs its polls again with the same
times; polls are therefore counted once per (feed, time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, Protocol


class Reader(Protocol):
    def sql(self, query: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]: ...


@dataclass(frozen=True)
class MemberRow:
    """One article of a narrative cluster, as known at the report's end."""

    cluster_id: str  # the cluster it belonged to at the report's end (see `window_members`)
    article_id: int
    outlet_id: str
    outlet: str
    country: str | None
    kind: str | None
    title: str
    url: str
    published_at: datetime | None
    first_seen_at: datetime
    matched_article_id: int | None  # the article it was matched against; None for a founder
    match_kind: str | None
    similarity: float | None
    matched_passage: str | None
    text: str


_MEMBERS = """
WITH known AS (
    SELECT m.cluster_id, m.article_id, a.outlet_id, o.name AS outlet, o.country, o.kind,
           coalesce(a.title, '') AS title, a.canonical_url, a.published_at, a.first_seen_at,
           m.matched_article_id, m.match_kind, m.similarity, m.matched_passage, a.text
    FROM cluster_members m
    JOIN articles a USING (article_id)
    JOIN outlets o ON o.outlet_id = a.outlet_id
    WHERE a.first_seen_at < $2
),
active AS (
    SELECT cluster_id FROM known
    GROUP BY cluster_id
    HAVING count(DISTINCT outlet_id) > 1 AND max(first_seen_at) >= $1
)
SELECT * FROM known SEMI JOIN active USING (cluster_id)
ORDER BY cluster_id, first_seen_at, published_at NULLS LAST, article_id
"""


def window_members(db: Reader, since: datetime, end: datetime) -> list[MemberRow]:
    """Every article seen before `end` of the clusters that gained an article in [since, end)
    and reached more than one outlet by `end`, each with the cluster it belonged to at `end`.

    cluster_members holds today's clusters; a merge after `end` is undone here: each article
    follows the articles it was matched against back to its cluster's founder, whose cluster
    is the one the article joined, and only the merges recorded before `end` are applied.
    The result can hold clusters that were single-outlet or quiet at `end` (parts of a later
    merge); the caller keeps those that qualify."""
    rows = [MemberRow(*row) for row in db.sql(_MEMBERS, [since, end])]
    if not rows:
        return rows
    current = sorted({row.cluster_id for row in rows})
    founders = dict(
        db.sql(
            "SELECT founder_article_id, cluster_id FROM clusters "
            "WHERE list_contains($1, cluster_id) OR list_contains($1, merged_into)",
            [current],
        )
    )
    merges = db.sql(
        "SELECT absorbed_cluster_id, survivor_cluster_id FROM cluster_merges "
        "WHERE merged_at < $1 ORDER BY merged_at",
        [end],
    )
    survivor: dict[str, str] = {}
    for absorbed, into in merges:
        survivor[absorbed] = into

    def final(cluster_id: str) -> str:
        seen = set()
        while cluster_id in survivor and cluster_id not in seen:
            seen.add(cluster_id)
            cluster_id = survivor[cluster_id]
        return cluster_id

    parent = {row.article_id: row.matched_article_id for row in rows}
    joined: dict[int, str] = {}

    def original(article_id: int, fallback: str) -> str:
        path: list[int] = []
        at: int | None = article_id
        found = fallback  # a chain that leaves the rows keeps the article's current cluster
        while at is not None and len(path) < len(rows) + 1:
            if at in joined:
                found = joined[at]
                break
            if at in founders:
                found = founders[at]
                break
            path.append(at)
            at = parent.get(at)
        for step in path:
            joined[step] = found
        return found

    result = []
    for row in rows:
        cluster = final(original(row.article_id, row.cluster_id))
        result.append(row if cluster == row.cluster_id else replace(row, cluster_id=cluster))
    return result


def merged_into(db: Reader, cluster_ids: Sequence[str], end: datetime) -> dict[str, list[str]]:
    """For each cluster, the clusters merged into it before `end`, oldest merge first."""
    if not cluster_ids:
        return {}
    rows = db.sql(
        "SELECT survivor_cluster_id, absorbed_cluster_id FROM cluster_merges "
        "WHERE list_contains($1, survivor_cluster_id) AND merged_at < $2 ORDER BY merged_at",
        [list(cluster_ids), end],
    )
    result: dict[str, list[str]] = {}
    for survivor, absorbed in rows:
        result.setdefault(survivor, []).append(absorbed)
    return result


def articles_per_day(db: Reader, since: datetime, end: datetime) -> dict[date, int]:
    """Articles first seen on each UTC day in [since, end) (days without any are absent)."""
    rows = db.sql(
        "SELECT CAST(timezone('UTC', first_seen_at) AS DATE) AS day, count(*) "
        "FROM articles WHERE first_seen_at >= $1 AND first_seen_at < $2 "
        "GROUP BY day ORDER BY day",
        [since, end],
    )
    return {day: int(count) for day, count in rows}


@dataclass(frozen=True)
class DayActivity:
    poll_times: int  # distinct cycle times (runs.as_of) on the day
    poll_times_completed: int  # of which at least one run completed
    feeds_polled: int  # feeds with a poll (not a backoff skip) logged on the day
    feeds_answered: int  # of which at least one poll got a feed (ok, not-modified, salvaged)
    articles_seen: int  # articles first seen on the day
    outlets_active: int  # outlets with an article first seen on the day
    article_failures: int  # article pages that failed or fell back to the feed's text


def day_activity(db: Reader, start: datetime, end: datetime) -> DayActivity:
    window = [start, end]
    runs = db.sql(
        "SELECT count(DISTINCT as_of), count(DISTINCT as_of) FILTER (WHERE status = 'completed') "
        "FROM runs WHERE kind = 'cycle' AND as_of >= $1 AND as_of < $2",
        window,
    )[0]
    feeds = db.sql(
        "SELECT count(DISTINCT url) FILTER (WHERE outcome <> 'backoff'), "
        "count(DISTINCT url) FILTER (WHERE outcome IN ('ok', 'not-modified', 'salvaged')) "
        "FROM fetch_log WHERE kind = 'feed' AND fetched_at >= $1 AND fetched_at < $2",
        window,
    )[0]
    seen = db.sql(
        "SELECT count(*), count(DISTINCT outlet_id) FROM articles "
        "WHERE first_seen_at >= $1 AND first_seen_at < $2",
        window,
    )[0]
    failures = db.sql(
        "SELECT count(*) FROM (SELECT DISTINCT url, fetched_at FROM fetch_log "
        "WHERE kind = 'article' AND outcome IN ('error', 'fallback') "
        "AND fetched_at >= $1 AND fetched_at < $2)",
        window,
    )[0]
    return DayActivity(
        poll_times=int(runs[0]),
        poll_times_completed=int(runs[1]),
        feeds_polled=int(feeds[0]),
        feeds_answered=int(feeds[1]),
        articles_seen=int(seen[0]),
        outlets_active=int(seen[1]),
        article_failures=int(failures[0]),
    )


@dataclass(frozen=True)
class FeedProblemRow:
    outlet: str
    feed_url: str
    problem: str  # "failing" | "malformed" | "backed off"
    since: datetime  # the first poll of the unbroken run of such polls
    count: int  # polls in that run (failures in a row, salvaged answers, backoff skips)
    last_error: str | None


_FEED_PROBLEMS = """
WITH polls AS (  -- one row per feed and poll time (a re-run logs the same times again, and may
                 -- skip for a backoff what the first run polled: the poll's answer wins)
    SELECT url,
           fetched_at,
           bool_or(outcome IN ('ok', 'not-modified')) AS ok,
           bool_or(outcome = 'salvaged') AND NOT bool_or(outcome IN ('ok', 'not-modified'))
               AS salvaged,
           bool_or(outcome = 'error') AND NOT bool_or(outcome IN ('ok', 'not-modified', 'salvaged'))
               AS failed,
           bool_and(outcome = 'backoff') AS backoff,
           coalesce(max(error) FILTER (WHERE outcome <> 'backoff'), max(error)) AS error
    FROM fetch_log
    WHERE kind = 'feed' AND fetched_at < $2
    GROUP BY url, fetched_at
),
state AS (  -- each poll's kind; runs of the same kind in a row share a run number
    SELECT *,
           CASE WHEN backoff THEN 'backed off' WHEN failed THEN 'failing'
                WHEN salvaged THEN 'malformed' ELSE 'ok' END AS kind
    FROM polls
),
numbered AS (
    SELECT *,
           row_number() OVER (PARTITION BY url ORDER BY fetched_at)
           - row_number() OVER (PARTITION BY url, kind ORDER BY fetched_at) AS run
    FROM state
),
runs AS (
    SELECT url, kind, run, min(fetched_at) AS since, max(fetched_at) AS last_at, count(*) AS n,
           arg_max(error, fetched_at) AS last_error
    FROM numbered GROUP BY url, kind, run
),
latest AS (  -- the run each feed was in at its last poll (a backoff skip is no poll)
    SELECT url, arg_max(kind, last_at) AS kind, arg_max(run, last_at) AS run
    FROM runs WHERE kind <> 'backed off' GROUP BY url
),
latest_skip AS (  -- the run of backoff skips holding the day's last skip
    SELECT url, arg_max(run, last_at) AS run
    FROM runs WHERE kind = 'backed off' AND last_at >= $1 GROUP BY url
)
SELECT o.name, r.url, r.kind, r.since, r.n, r.last_error
FROM runs r
JOIN (SELECT url, kind, run FROM latest WHERE kind IN ('failing', 'malformed')
      UNION ALL SELECT url, 'backed off', run FROM latest_skip) pick USING (url, kind, run)
JOIN feeds f ON f.feed_url = r.url
JOIN outlets o ON o.outlet_id = f.outlet_id
ORDER BY r.kind, r.since, o.name, r.url
"""


def feed_problems(db: Reader, start: datetime, end: datetime) -> list[FeedProblemRow]:
    """Feeds whose polls up to `end` end in a run of failures ("failing") or of salvaged,
    malformed answers ("malformed"), and feeds skipped for their backoff on [start, end)
    ("backed off"), each with when that run began and how many polls it holds."""
    rows = db.sql(_FEED_PROBLEMS, [start, end])
    return [FeedProblemRow(o, u, k, s, int(n), e) for o, u, k, s, n, e in rows]


@dataclass(frozen=True)
class FeedItemsRow:
    outlet: str
    feed_url: str
    times: tuple[datetime, ...]  # its latest items' times, newest first


def feed_item_times(db: Reader, end: datetime, items: int = 11) -> list[FeedItemsRow]:
    """For every feed, the times of its latest `items` articles first seen before `end`, by
    the published clock (first-seen when the outlet gives no date or a later one)."""
    rows = db.sql(
        """
        WITH items AS (
            SELECT feed_url, least(coalesce(published_at, first_seen_at), first_seen_at) AS item_at
            FROM articles WHERE first_seen_at < $1 AND feed_url IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY feed_url ORDER BY item_at DESC) <= $2
        )
        SELECT o.name, f.feed_url, list(i.item_at ORDER BY i.item_at DESC)
        FROM feeds f
        JOIN outlets o ON o.outlet_id = f.outlet_id
        JOIN items i ON i.feed_url = f.feed_url
        GROUP BY o.name, f.feed_url
        ORDER BY o.name, f.feed_url
        """,
        [end, items],
    )
    return [FeedItemsRow(o, u, tuple(times)) for o, u, times in rows]
