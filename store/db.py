"""The DuckDB store: the only module that opens the database file.

Writes go through Arrow tables (never row-by-row executemany) and are idempotent: a rerun over
the same input adds nothing but its run record.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from narratives.detect import DetectionResult, StoredText
from store.migrations import MIGRATIONS

log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """The database cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class FeedState:
    feed_url: str
    outlet_id: str
    etag: str | None
    last_modified: str | None
    consecutive_failures: int
    next_poll_at: datetime | None = None  # not polled before this (its own interval)
    backoff_until: datetime | None = None  # failing: not polled before this


@dataclass(frozen=True)
class EntryRecord:
    """A recorded feed entry whose page is still to be fetched."""

    entry_id: int
    canonical_url: str
    url: str
    outlet_id: str
    feed_url: str | None
    title: str | None
    summary: str | None
    content: str | None
    author: str | None
    published_at: datetime | None
    first_seen_at: datetime
    attempts: int


ENTRY_COLUMNS = pa.schema(
    [
        ("entry_id", pa.int64()),
        ("canonical_url", pa.string()),
        ("url", pa.string()),
        ("outlet_id", pa.string()),
        ("feed_url", pa.string()),
        ("title", pa.string()),
        ("summary", pa.string()),
        ("content", pa.string()),
        ("author", pa.string()),
        ("published_at", pa.timestamp("us", tz="UTC")),
        ("first_seen_at", pa.timestamp("us", tz="UTC")),
        ("status", pa.string()),
        ("attempts", pa.int32()),
    ]
)
ENTRY_UPDATE = pa.schema(  # what a page fetch changes in an entry
    [
        ("entry_id", pa.int64()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("attempts", pa.int32()),
        ("next_attempt_at", pa.timestamp("us", tz="UTC")),
        ("last_attempt_at", pa.timestamp("us", tz="UTC")),
        ("last_error", pa.string()),
        ("last_error_kind", pa.string()),
        ("article_id", pa.int64()),
    ]
)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _open_hint(error: str) -> str:
    """What to do about a database that cannot be opened, by the cause DuckDB reports."""
    lowered = error.lower()
    if "lock" in lowered:
        return (
            "Another narratrace process may be writing to it; DuckDB allows one writer at a "
            "time. Wait for that process to finish and try again."
        )
    if "is a directory" in lowered:
        return "The path is a directory; give the path of a database file (e.g. narratrace.duckdb)."
    if "not a directory" in lowered or "file exists" in lowered:
        return "A part of the path is a regular file, not a folder; choose another path."
    if "not a valid duckdb database" in lowered or "corrupt" in lowered:
        return (
            "The file exists but is not a DuckDB database; check the path, or move the file "
            "away to start a new database there."
        )
    return "Check that the path is a writable DuckDB database file."


# DuckDB caches the blocks it reads up to its memory limit (by default 80% of the machine's
# memory): without a cap, a scan of a large table (band_keys in a candidate search, articles
# in an analyst's query) grows the process by gigabytes.
# Beyond the cap DuckDB re-reads blocks (from the OS page cache) or spills to disk.
DEFAULT_MEMORY_LIMIT = "256MB"
# DuckDB checkpoints (writes the WAL's changes into the file's blocks) whenever the WAL passes
# this size, and when the store is closed. A checkpoint rewrites a table's last, partly filled
# row group whole and frees its old blocks: with DuckDB's default of 16 MB, a cycle of a few
# thousand articles checkpoints several times and leaves the file holding the freed copies
# (a quarter of the file after a 5,000-article cycle). With this threshold a cycle's writes
# are checkpointed once, when the store is closed at its end.
CHECKPOINT_THRESHOLD = "1GB"
RUN_STATUSES = ("running", "completed", "failed", "interrupted", "abandoned")
PARAGRAPH_KEY = ["outlet_id", "paragraph_key", "article_id"]


class Store:
    def __init__(
        self,
        path: Path | str,
        read_only: bool = False,
        memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
    ):
        self.path = str(path)
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self.con = duckdb.connect(self.path, read_only=read_only)
        except (duckdb.Error, OSError) as exc:
            raise StoreError(f"cannot open {self.path}: {exc}. {_open_hint(str(exc))}") from None
        try:
            self.sql("SET TimeZone = 'UTC'")
            if memory_limit:
                self.sql(f"SET memory_limit = '{memory_limit}'")
            if not read_only:
                self.sql(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
                self.migrate()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the connection and let go of it, so that nothing of DuckDB outlives the store."""
        con, self.con = self.con, _CLOSED
        if con is not _CLOSED:
            con.close()

    def sql(self, query: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement and fetch its whole result (DuckDB 2.0 keeps a result open
        until it is fully fetched, which would block the next statement)."""
        return self.con.execute(query, params or []).fetchall()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ schema
    def migrate(self) -> list[str]:
        self.sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
        )
        done = {row[0] for row in self.sql("SELECT name FROM schema_migrations")}
        applied = []
        for name, migration in MIGRATIONS:
            if name in done:
                continue
            with self.transaction():
                migration(self.con)
                self.sql("INSERT INTO schema_migrations VALUES (?, ?)", [name, datetime.now(UTC)])
            applied.append(name)
            log.info("applied migration %s", name)
        if "007_band_keys" in applied and self.path != ":memory:":
            # the band index folder an earlier version kept beside the file: now band_keys
            shutil.rmtree(self.path + ".bands", ignore_errors=True)
        return applied

    def _insert(
        self, table: str, rows: Sequence[dict[str, Any]] | pa.Table, conflict: str = ""
    ) -> int:
        arrow = _as_arrow(rows)
        if arrow is None:
            return 0
        view = f"_incoming_{table}"
        self.con.register(view, arrow)
        try:
            columns = ", ".join(arrow.column_names)
            self.sql(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {view} {conflict}")
        finally:
            self._unregister(view)
        return arrow.num_rows

    def _insert_new(
        self,
        table: str,
        rows: Sequence[dict[str, Any]] | pa.Table,
        key: Sequence[str],
        unique: Sequence[str] = (),
    ) -> int:
        """Insert the rows whose `key` (and each column of `unique`) is not in `table` yet,
        keeping the first of any duplicates in `rows`: idempotent writes without key indexes
        (see migration 004)."""
        arrow = _as_arrow(rows)
        if arrow is None:
            return 0
        view = f"_incoming_{table}"
        self.con.register(view, arrow)
        try:
            columns = ", ".join(arrow.column_names)
            groups = [list(key)] + [[column] for column in unique]
            # the stored rows that could clash are found first by a scan of one column
            # against the few incoming values (a small hash table), never by hashing the table
            absent = " AND ".join(
                "NOT EXISTS (SELECT 1 FROM (SELECT {keys} FROM {t} WHERE {k0} IN "
                "(SELECT {k0} FROM {v})) t WHERE {same})".format(
                    keys=", ".join(group),
                    t=table,
                    k0=group[0],
                    v=view,
                    same=" AND ".join(f"t.{k} = i.{k}" for k in group),
                )
                for group in groups
            )
            first = " AND ".join(
                f"row_number() OVER (PARTITION BY {', '.join(group)}) = 1" for group in groups
            )
            self.sql(
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {view} i "
                f"WHERE {absent} QUALIFY {first}"
            )
        finally:
            self._unregister(view)
        return arrow.num_rows

    def _unregister(self, view: str) -> None:
        """Drop a registered Arrow view; inside a transaction a failed statement has aborted,
        DuckDB refuses until the rollback, which must not hide the statement's own error."""
        try:
            self.con.unregister(view)
        except duckdb.TransactionException:
            pass  # the caller's error propagates; the next register of the name replaces it

    def transaction(self) -> _Transaction:
        return _Transaction(self.con)

    # ------------------------------------------------------------------ runs
    def begin_run(
        self, run_id: str, as_of: datetime, outlets_file: str | None, kind: str = "cycle"
    ) -> int:
        """Record a run as started. Runs still marked running were left by a process that
        ended without finishing them (killed, power lost; this one holds the database's only
        write lock): they are marked abandoned, and their number returned."""
        with self.transaction():
            abandoned = self.sql(
                "UPDATE runs SET status = 'abandoned', finished_at = ?, "
                "error = coalesce(error, 'the process running it ended before it finished') "
                "WHERE status = 'running' RETURNING run_id",
                [datetime.now(UTC)],
            )
            self.sql(
                "INSERT INTO runs (run_id, started_at, as_of, status, outlets_file, kind) "
                "VALUES (?, ?, ?, 'running', ?, ?)",
                [run_id, datetime.now(UTC), _utc(as_of), outlets_file, kind],
            )
        for (old_run,) in abandoned:
            log.warning("run %s was left unfinished by a process that ended: abandoned", old_run)
        return len(abandoned)

    def finish_run(
        self, run_id: str, status: str, counts: dict[str, int], error: str | None
    ) -> None:
        allowed = {
            "feeds_polled",
            "feeds_not_modified",
            "feeds_failed",
            "entries_seen",
            "articles_new",
            "articles_failed",
            "clusters_new",
            "clusters_joined",
            "clusters_merged",
            "feeds_skipped",
            "entries_new",
            "entries_pending",
            "articles_feed_only",
            "budget_exhausted",
        }
        unknown = set(counts) - allowed
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        if unknown:
            raise ValueError(f"unknown run counts: {sorted(unknown)}")
        sets = ", ".join(f"{key} = ?" for key in counts)
        self.sql(
            f"UPDATE runs SET status = ?, finished_at = ?, error = ?{', ' + sets if sets else ''} "
            "WHERE run_id = ?",
            [status, datetime.now(UTC), error, *counts.values(), run_id],
        )

    # ------------------------------------------------------------------ outlets and feeds
    def sync_outlets(self, outlets: Iterable[Any]) -> None:
        rows: list[dict[str, Any]] = []
        feeds: list[dict[str, Any]] = []
        for outlet in outlets:
            rows.append(
                {
                    "outlet_id": outlet.outlet_id,
                    "name": outlet.name,
                    "country": outlet.country,
                    "kind": outlet.kind,
                    "homepage": outlet.homepage,
                }
            )
            feeds.extend({"feed_url": url, "outlet_id": outlet.outlet_id} for url in outlet.feeds)
        with self.transaction():
            self._insert(
                "outlets",
                rows,
                "ON CONFLICT (outlet_id) DO UPDATE SET name = excluded.name, "
                "country = excluded.country, kind = excluded.kind, homepage = excluded.homepage",
            )
            self._insert(
                "feeds",
                feeds,
                "ON CONFLICT (feed_url) DO UPDATE SET outlet_id = excluded.outlet_id",
            )

    def feed_states(self, feed_urls: Iterable[str]) -> dict[str, FeedState]:
        urls = list(feed_urls)
        if not urls:
            return {}
        rows = self.sql(
            "SELECT feed_url, outlet_id, etag, last_modified, consecutive_failures, "
            "next_poll_at, backoff_until FROM feeds WHERE list_contains(?, feed_url)",
            [urls],
        )
        return {
            url: FeedState(url, outlet, etag, modified, failures, _utc(due), _utc(backoff))
            for url, outlet, etag, modified, failures, due, backoff in rows
        }

    def record_feed(
        self,
        feed_url: str,
        polled_at: datetime,
        status: str,
        error: str | None,
        etag: str | None,
        last_modified: str | None,
        entry_count: int | None,
        entries: Sequence[dict[str, Any]] = (),
        log_row: dict[str, Any] | None = None,
    ) -> int:
        """A feed that answered (`status` ok, salvaged or not-modified), in one transaction:
        its entries not recorded yet, then its new validators, health and log row. The
        validators are never saved without the entries they stand for, so a crash in between
        leaves the feed to be read again. Returns how many entries were new."""
        with self.transaction():
            before = self.count("entries")
            self._insert_new("entries", _entries_arrow(entries), ["entry_id"])
            added = self.count("entries") - before
            self.sql(
                "UPDATE feeds SET last_polled_at = ?, last_status = ?, last_error = ?, "
                "consecutive_failures = 0, backoff_until = NULL, etag = ?, last_modified = ?, "
                "last_entry_count = coalesce(?, last_entry_count) WHERE feed_url = ?",
                [_utc(polled_at), status, error, etag, last_modified, entry_count, feed_url],
            )
            if log_row is not None:
                self.log_fetches([log_row])
        return added

    def record_feed_failures(
        self,
        failures: Sequence[tuple[str, datetime, str | None, datetime | None]],
        log_rows: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Feeds that failed: (feed_url, polled_at, error, backoff_until) each, with their log
        rows. The validators are kept for the next conditional request."""
        with self.transaction():
            self.log_fetches(log_rows)
            for feed_url, polled_at, error, backoff_until in failures:
                self.sql(
                    "UPDATE feeds SET last_polled_at = ?, last_status = 'error', last_error = ?, "
                    "consecutive_failures = consecutive_failures + 1, backoff_until = ? "
                    "WHERE feed_url = ?",
                    [_utc(polled_at), error, _utc(backoff_until), feed_url],
                )

    def schedule_feeds(self, next_poll: dict[str, datetime]) -> None:
        """When each feed is next due."""
        if not next_poll:
            return
        arrow = pa.table(
            {
                "feed_url": pa.array(list(next_poll), pa.string()),
                "next_poll_at": pa.array(
                    [_utc(t) for t in next_poll.values()], pa.timestamp("us", tz="UTC")
                ),
            }
        )
        self.con.register("_next_poll", arrow)
        try:
            self.sql(
                "UPDATE feeds SET next_poll_at = n.next_poll_at FROM _next_poll n "
                "WHERE feeds.feed_url = n.feed_url"
            )
        finally:
            self._unregister("_next_poll")

    def publishing_history(
        self, feed_urls: Iterable[str], as_of: datetime, newest: int
    ) -> dict[str, tuple[int, datetime]]:
        """Per feed: how many of its `newest` entries published by `as_of` are recorded, and
        the publication time of the oldest of them (its publishing rate)."""
        urls = list(feed_urls)
        if not urls:
            return {}
        rows = self.sql(
            """
            WITH recent AS (
                SELECT feed_url, published_at FROM entries
                WHERE list_contains(?, feed_url) AND published_at <= ?
                QUALIFY row_number() OVER (PARTITION BY feed_url ORDER BY published_at DESC) <= ?
            )
            SELECT feed_url, count(*), min(published_at) FROM recent GROUP BY feed_url
            """,
            [urls, _utc(as_of), newest],
        )
        return {url: (int(n), _utc(oldest)) for url, n, oldest in rows}  # type: ignore[misc]

    def host_backoffs(self, at: datetime) -> dict[str, datetime]:
        """Hosts that asked (Retry-After) not to be contacted before a time later than `at`."""
        rows = self.sql("SELECT host, until FROM host_backoff WHERE until > ?", [_utc(at)])
        return {host: _utc(until) for host, until in rows}  # type: ignore[misc]

    def record_host_backoffs(self, rows: Sequence[dict[str, Any]]) -> None:
        """Upsert (host, until, retry_after, status_code, url, recorded_at) rows; a host's
        later wait wins."""
        if not rows:
            return
        self._insert(
            "host_backoff",
            rows,
            "ON CONFLICT (host) DO UPDATE SET until = greatest(host_backoff.until, "
            "excluded.until), retry_after = excluded.retry_after, "
            "status_code = excluded.status_code, url = excluded.url, "
            "recorded_at = excluded.recorded_at",
        )

    def log_fetches(self, rows: Sequence[dict[str, Any]]) -> int:
        return self._insert("fetch_log", rows)

    # ------------------------------------------------------------------ entries and articles
    def due_entries(
        self, feed_urls: Iterable[str], due_by: datetime, per_feed: int
    ) -> list[EntryRecord]:
        """Pending entries of these feeds whose next attempt is due by `due_by`: at most
        `per_feed` of each feed, in the order detection sees articles in (first seen, then
        published, then id)."""
        urls = list(feed_urls)
        if not urls:
            return []
        rows = self.sql(
            """
            SELECT entry_id, canonical_url, url, outlet_id, feed_url, title, summary, content,
                   author, published_at, first_seen_at, attempts
            FROM entries
            WHERE status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= ?)
              AND list_contains(?, feed_url)
            QUALIFY row_number() OVER (
                PARTITION BY feed_url ORDER BY first_seen_at, published_at NULLS LAST, entry_id
            ) <= ?
            ORDER BY first_seen_at, published_at NULLS LAST, entry_id
            """,
            [_utc(due_by), urls, per_feed],
        )
        records = []
        for entry_id, canonical, url, outlet, feed, title, summary, content, author, *rest in rows:
            published, first_seen, attempts = rest
            records.append(
                EntryRecord(
                    entry_id,
                    canonical,
                    url,
                    outlet,
                    feed,
                    title,
                    summary,
                    content,
                    author,
                    _utc(published),
                    first_seen.astimezone(UTC),  # NOT NULL
                    int(attempts),
                )
            )
        return records

    def finish_entries(
        self, articles: Sequence[dict[str, Any]], updates: Sequence[dict[str, Any]]
    ) -> int:
        """Store articles and what became of their entries (status, attempts, next attempt,
        error, article id) in one transaction: an entry is never marked stored without its
        article, nor an article stored with its entry still pending. Returns the articles
        added."""
        with self.transaction():
            return self._finish_entries(articles, updates)

    def load_batch(
        self,
        batch_id: str,
        run_id: str,
        worker: str,
        pages: int,
        articles: Sequence[dict[str, Any]],
        updates: Sequence[dict[str, Any]],
        fetches: Sequence[dict[str, Any]],
    ) -> int | None:
        """Load a batch of pages from a worker in one transaction: its articles, its entries'
        updates, its fetch records and its id. A batch whose id is recorded already changes
        nothing (None); else the articles added."""
        with self.transaction():
            if self.sql("SELECT 1 FROM batches WHERE batch_id = ?", [batch_id]):
                return None
            added = self._finish_entries(articles, updates)
            self._insert("fetch_log", fetches)
            self.sql(
                "INSERT INTO batches VALUES (?, ?, ?, ?, ?, now())",
                [batch_id, run_id, worker, pages, added],
            )
        return added

    def gathered_runs(self, run_ids: Iterable[str]) -> set[str]:
        """Which of these shard runs are gathered here already."""
        ids = list(run_ids)
        if not ids:
            return set()
        rows = self.sql(
            "SELECT run_id FROM shard_runs WHERE run_id IN (SELECT unnest(?::VARCHAR[]))", [ids]
        )
        return {row[0] for row in rows}

    def update_outlets(self, outlets: pa.Table, feeds: pa.Table) -> None:
        """A shard's outlets and feeds as it has them now (its feed state included), in one
        transaction: a row of the same outlet or feed is replaced."""
        with self.transaction():
            self._upsert("outlets", outlets, "outlet_id")
            self._upsert("feeds", feeds, "feed_url")

    def load_shard_run(
        self, shard: str, gather_run: str, run: pa.Table, articles: pa.Table, fetches: pa.Table
    ) -> int | None:
        """Gather one finished run of a shard in one transaction: its `runs` row, the articles
        it stored (an article stored here already, by id or canonical URL, is left as it is)
        and its fetch records, with the run's id in `shard_runs`. A run gathered before
        changes nothing (None); else the articles added."""
        (run_id,) = run.column("run_id").to_pylist()
        with self.transaction():
            if self.sql("SELECT 1 FROM shard_runs WHERE run_id = ?", [run_id]):
                return None
            self._insert("runs", run, "ON CONFLICT (run_id) DO NOTHING")
            added = self.insert_articles(articles)
            self._insert("fetch_log", fetches)
            self.sql(
                "INSERT INTO shard_runs VALUES (?, ?, ?, now(), ?)",
                [run_id, shard, added, gather_run],
            )
        return added

    def _upsert(self, table: str, rows: pa.Table, key: str) -> None:
        columns = [c for c in rows.column_names if c != key]
        sets = ", ".join(f"{c} = excluded.{c}" for c in columns)
        self._insert(table, rows, f"ON CONFLICT ({key}) DO UPDATE SET {sets}")

    def _finish_entries(
        self, articles: Sequence[dict[str, Any]], updates: Sequence[dict[str, Any]]
    ) -> int:
        added = self.insert_articles(articles)
        arrow = _as_arrow(pa.Table.from_pylist(list(updates), schema=ENTRY_UPDATE))
        if arrow is not None:
            self.con.register("_entry_updates", arrow)
            try:
                sets = ", ".join(f"{c} = u.{c}" for c in ENTRY_UPDATE.names[1:])
                sets += ", updated_seq = nextval('entries_version')"  # store.publish
                self.sql(
                    f"UPDATE entries SET {sets} FROM _entry_updates u "
                    "WHERE entries.entry_id = u.entry_id"
                )
            finally:
                self._unregister("_entry_updates")
        return added

    def pending_entries(self) -> int:
        return int(self.sql("SELECT count(*) FROM entries WHERE status = 'pending'")[0][0])

    def insert_articles(self, rows: Sequence[dict[str, Any]] | pa.Table) -> int:
        if not len(rows):
            return 0
        before = self.count("articles")
        self._insert_new("articles", rows, ["article_id"], unique=["canonical_url"])
        return self.count("articles") - before

    def count(self, table: str) -> int:
        return int(self.sql(f"SELECT count(*) FROM {table}")[0][0])

    def articles_to_sign(self, limit: int | None = None) -> list[StoredText]:
        """Articles with no signature yet, oldest first (the order clustering sees them in)."""
        query = (
            "SELECT a.article_id, a.outlet_id, a.text, a.first_seen_at, a.published_at "
            "FROM articles a ANTI JOIN signatures s USING (article_id) "
            "ORDER BY a.first_seen_at, a.published_at NULLS LAST, a.article_id"
        )
        if limit:
            query += f" LIMIT {int(limit)}"
        return [StoredText(*row) for row in self.sql(query)]

    def texts(self, article_ids: Iterable[int]) -> dict[int, StoredText]:
        ids = list(set(article_ids))
        if not ids:
            return {}
        rows = self.sql(
            # a semi-join against the ids (a hash table the scan probes): list_contains per
            # row took twice as long at 1M stored
            "SELECT article_id, outlet_id, text, first_seen_at, published_at FROM articles "
            "WHERE article_id IN (SELECT unnest(?::BIGINT[]))",
            [ids],
        )
        return {row[0]: StoredText(*row) for row in rows}

    # ------------------------------------------------------------------ detection
    def ensure_params(self, param_set_id: str, params: dict[str, Any]) -> None:
        self.sql(
            "INSERT INTO detection_params VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            [param_set_id, json.dumps(params, sort_keys=True), datetime.now(UTC)],
        )

    def record_paragraphs(self, rows: Sequence[dict[str, Any]]) -> None:
        self._insert_new("outlet_paragraphs", rows, PARAGRAPH_KEY)

    def chrome_keys(
        self,
        outlet_ids: Iterable[str],
        min_articles: int,
        pending: pa.Table | None = None,
        of_articles: Iterable[int] | None = None,
    ) -> dict[str, set[int]]:
        """Each outlet's chrome: short paragraphs it repeats in at least `min_articles` of its
        articles and that no other outlet carries (a claim copied across outlets is not chrome).
        `pending` adds paragraph rows not yet written (the batch being processed). With
        `of_articles`, only the paragraphs those articles carry are considered (all a caller
        signing them needs): the work then follows the batch, not the store."""
        outlets = list(set(outlet_ids))
        if not outlets:
            return {}
        if of_articles is None:
            keys = "SELECT DISTINCT paragraph_key FROM p WHERE list_contains(?, outlet_id)"
            params: list[Any] = [outlets]
        else:
            keys = (
                "SELECT DISTINCT paragraph_key FROM p "
                "WHERE article_id IN (SELECT unnest(?::BIGINT[]))"
            )
            params = [list(set(of_articles))]
        params += [min_articles, outlets]
        source = "outlet_paragraphs"
        if pending is not None and pending.num_rows:
            # a temporary table, not the Arrow table itself: a union with an Arrow scan keeps
            # DuckDB from pushing the filters down (5-10 times slower at 1M stored)
            self.con.register("_pending_arrow", pending)
            try:
                self.sql(
                    "CREATE OR REPLACE TEMP TABLE _pending_paragraphs AS "
                    "SELECT outlet_id, paragraph_key, article_id FROM _pending_arrow"
                )
            finally:
                self.con.unregister("_pending_arrow")
            source = (
                "(SELECT outlet_id, paragraph_key, article_id FROM outlet_paragraphs "
                "UNION ALL SELECT outlet_id, paragraph_key, article_id FROM _pending_paragraphs)"
            )
        try:
            rows = self.sql(
                f"""
                WITH p AS NOT MATERIALIZED (SELECT * FROM {source}),
                keys AS ({keys}),
                counts AS (
                    SELECT paragraph_key, outlet_id, count(DISTINCT article_id) AS n
                    FROM p SEMI JOIN keys USING (paragraph_key)
                    GROUP BY paragraph_key, outlet_id
                )
                SELECT outlet_id, paragraph_key FROM counts c
                WHERE n >= ? AND list_contains(?, outlet_id)
                  AND NOT EXISTS (SELECT 1 FROM counts o WHERE o.paragraph_key = c.paragraph_key
                                  AND o.outlet_id <> c.outlet_id)
                """,
                params,
            )
        finally:
            if source != "outlet_paragraphs":
                self.sql("DROP TABLE IF EXISTS _pending_paragraphs")
        result: dict[str, set[int]] = {outlet: set() for outlet in outlets}
        for outlet, key in rows:
            result[outlet].add(int(key))
        return result

    def common_paragraphs(self, pending: pa.Table, min_stories: int, min_outlets: int) -> set[int]:
        """Keys of the short paragraphs of `pending` (PARAGRAPHS_SCHEMA: the batch's rows, not
        written yet) that stored articles of at least `min_stories` unrelated stories carry,
        on at least `min_outlets` outlets (the batch's counted too). Stories are told apart by
        cluster, so the paragraphs of one story re-posted by many outlets are not common (nor
        are those of a story re-posted within the batch, not placed in clusters yet); a label
        line or a disclaimer carried by unrelated stories is. The stored rows are found by a
        semi-join of `outlet_paragraphs` against the batch's keys."""
        if pending.num_rows == 0:
            return set()
        self.con.register("_common_arrow", pending)
        try:
            self.sql(
                "CREATE OR REPLACE TEMP TABLE _common_pending AS "
                "SELECT outlet_id, paragraph_key, article_id FROM _common_arrow"
            )
        finally:
            self._unregister("_common_arrow")
        try:
            rows = self.sql(
                """
                WITH carriers AS (
                    SELECT outlet_id, paragraph_key, article_id FROM outlet_paragraphs
                    WHERE paragraph_key IN (SELECT paragraph_key FROM _common_pending)
                    UNION
                    SELECT outlet_id, paragraph_key, article_id FROM _common_pending
                )
                SELECT c.paragraph_key FROM carriers c
                LEFT JOIN cluster_members m USING (article_id)
                GROUP BY c.paragraph_key
                HAVING count(DISTINCT m.cluster_id) >= ?
                   AND count(DISTINCT c.outlet_id) >= ?
                """,
                [min_stories, min_outlets],
            )
        finally:
            self.sql("DROP TABLE IF EXISTS _common_pending")
        return {int(key) for (key,) in rows}

    def candidate_pairs(
        self, new_keys: pa.Table, max_per_article: int
    ) -> list[tuple[int, int, int]]:
        """(new_id, other_id, shared keys) for every pair sharing an LSH band key, where other
        is any stored article or another article of the batch. At most `max_per_article`
        others per new article, those sharing most keys first.

        One query: the stored rows holding one of the batch's keys are found by a semi-join
        of `band_keys` against the batch's distinct keys (a scan of the key column against a
        small hash table), then meet the batch's own rows in a join that counts shared keys
        per pair."""
        if new_keys.num_rows == 0:
            return []
        self.con.register("_new_keys_arrow", new_keys.select(["key", "article_id"]))
        try:
            # a temporary table: DuckDB plans the semi-join against it with its statistics
            self.sql("CREATE OR REPLACE TEMP TABLE _new_keys AS SELECT * FROM _new_keys_arrow")
        finally:
            self._unregister("_new_keys_arrow")
        try:
            rows = self.sql(
                """
                WITH stored AS (
                    SELECT key, article_id FROM band_keys
                    WHERE key IN (SELECT key FROM _new_keys)
                ),
                others AS (
                    SELECT key, article_id FROM stored
                    UNION ALL
                    SELECT key, article_id FROM _new_keys
                ),
                pairs AS (
                    SELECT n.article_id AS new_id, o.article_id AS other_id, count(*) AS hits
                    FROM _new_keys n JOIN others o USING (key)
                    WHERE n.article_id <> o.article_id
                    GROUP BY n.article_id, o.article_id
                )
                SELECT new_id, other_id, hits FROM pairs
                QUALIFY row_number() OVER (PARTITION BY new_id ORDER BY hits DESC, other_id)
                        <= ?
                """,
                [max_per_article],
            )
        finally:
            self.sql("DROP TABLE IF EXISTS _new_keys")
        return [(int(a), int(b), int(h)) for a, b, h in rows]

    def memberships(self, article_ids: Iterable[int]) -> dict[int, str]:
        ids = list(set(article_ids))
        if not ids:
            return {}
        rows = self.sql(
            "SELECT article_id, cluster_id FROM cluster_members WHERE list_contains(?, article_id)",
            [ids],
        )
        return {int(a): c for a, c in rows}

    def cluster_births(self, cluster_ids: Iterable[str]) -> dict[str, tuple]:
        ids = list(set(cluster_ids))
        if not ids:
            return {}
        rows = self.sql(
            "SELECT cluster_id, created_at, founder_article_id FROM clusters "
            "WHERE list_contains(?, cluster_id)",
            [ids],
        )
        return {c: (_utc(created), int(founder)) for c, created, founder in rows}

    def count_to_resign(self, param_set_id: str) -> int:
        """Articles signed with other detection parameters."""
        return int(
            self.sql("SELECT count(*) FROM signatures WHERE param_set_id <> ?", [param_set_id])[0][
                0
            ]
        )

    def articles_to_resign(self, param_set_id: str, limit: int) -> list[StoredText]:
        """Articles signed with other detection parameters, oldest first."""
        rows = self.sql(
            "SELECT a.article_id, a.outlet_id, a.text, a.first_seen_at, a.published_at "
            "FROM articles a SEMI JOIN (SELECT article_id FROM signatures "
            "WHERE param_set_id <> ?) s USING (article_id) "
            "ORDER BY a.first_seen_at, a.published_at NULLS LAST, a.article_id LIMIT ?",
            [param_set_id, int(limit)],
        )
        return [StoredText(*row) for row in rows]

    def replace_signing(self, result: DetectionResult) -> None:
        """New LSH keys and signature rows for articles signed before, in one transaction."""
        ids = pa.table({"article_id": pa.array(result.article_ids, pa.int64())})
        self.con.register("_resigned", ids)
        try:
            with self.transaction():
                self.sql(
                    "DELETE FROM band_keys WHERE article_id IN (SELECT article_id FROM _resigned)"
                )
                self._insert("band_keys", result.keys)
                counts = pa.table(
                    {
                        "article_id": ids["article_id"],
                        "shingle_count": pa.array(result.shingle_counts, pa.int32()),
                        "passage_count": pa.array(result.passage_counts, pa.int32()),
                    }
                )
                self.con.register("_resigned_counts", counts)
                try:
                    self.sql(
                        "UPDATE signatures SET param_set_id = ?, shingle_count = c.shingle_count, "
                        "passage_count = c.passage_count FROM _resigned_counts c "
                        "WHERE signatures.article_id = c.article_id",
                        [result.param_set_id],
                    )
                finally:
                    self._unregister("_resigned_counts")
        finally:
            self._unregister("_resigned")

    def write_detection(self, result: DetectionResult) -> None:
        """Everything one detection pass decided, in one transaction: a crash leaves either
        all of it or none of it, and the next cycle redoes what is missing."""
        n = len(result.article_ids)
        signatures = pa.table(
            {
                "article_id": pa.array(result.article_ids, pa.int64()),
                "param_set_id": pa.array([result.param_set_id] * n, pa.string()),
                "shingle_count": pa.array(result.shingle_counts, pa.int32()),
                "passage_count": pa.array(result.passage_counts, pa.int32()),
            }
        )
        with self.transaction():
            self._insert_new("signatures", signatures, ["article_id"])
            self._insert("band_keys", result.keys)
            self._insert_new("outlet_paragraphs", result.paragraphs, PARAGRAPH_KEY)
            self._insert_new("clusters", result.new_clusters, ["cluster_id"])
            for merge in result.merges:
                self.sql(
                    "UPDATE cluster_members SET cluster_id = ? WHERE cluster_id = ?",
                    [merge["survivor_cluster_id"], merge["absorbed_cluster_id"]],
                )
                self.sql(
                    "UPDATE clusters SET status = 'merged', merged_into = ? WHERE cluster_id = ?",
                    [merge["survivor_cluster_id"], merge["absorbed_cluster_id"]],
                )
                self.sql(
                    "UPDATE clusters SET merged_into = ? WHERE merged_into = ?",
                    [merge["survivor_cluster_id"], merge["absorbed_cluster_id"]],
                )
            self._insert("cluster_merges", result.merges)
            self._insert_new("cluster_members", result.members, ["article_id"])
            self._insert_new("article_matches", result.matches, ["article_id", "other_article_id"])


class _Closed:
    """Stands in for the connection of a closed store: any use says so."""

    def __getattr__(self, name: str) -> Any:
        raise StoreError("the store is closed")


_CLOSED: Any = _Closed()


def _entries_arrow(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """New entry rows (ENTRY_COLUMNS; status pending, no attempt yet unless given)."""
    return pa.Table.from_pylist(
        [{"status": "pending", "attempts": 0, **row} for row in rows], schema=ENTRY_COLUMNS
    )


def _as_arrow(rows: Sequence[dict[str, Any]] | pa.Table) -> pa.Table | None:
    """Rows as an Arrow table, or None when there are none."""
    arrow = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(list(rows))
    return arrow if arrow.num_rows else None


class _Transaction:
    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con

    def __enter__(self) -> None:
        self.con.execute("BEGIN TRANSACTION")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not exc_type:
            self.con.execute("COMMIT")
            return
        try:
            self.con.execute("ROLLBACK")
        except duckdb.Error:  # DuckDB ended it itself (out of memory, I/O error): the
            pass  # statement's own error, propagating now, is the one that says why
