"""The analysts' database: a published catalog that no reader can block.

The pipeline works in its own DuckDB file (`StoreLayout.working`), which DuckDB lets one
process hold at a time. Analysts open a different file, the *catalog* at the `--db` path: a
small DuckDB database that holds the small tables (outlets, feeds, runs, ...) and views over
Parquet files for the large ones (articles, fetch_log, clusters, cluster_members, ...), under
the same names and with the same columns as the working tables, plus the contract views.

After each cycle `publish` brings the catalog up to date:

- the rows appended to each large table since the last publication (found by DuckDB row id
  above the table's high-water mark) are written to one new Parquet file per table;
- a new catalog is written beside the others (`catalogs/catalog-<seq>.duckdb`) and linked into
  place at the `--db` path by an atomic rename. A reader's open connection keeps the catalog
  it opened (and the files that catalog names); a fresh connection sees the new one.

So the work of a publication follows the rows of the cycle, not the size of the store.
Files of earlier days are merged into one file per table and day (`compact`), and files and
catalogs no reader can still be using are removed: a catalog is in use while any process
holds DuckDB's lock on it (probed with an open-file-description lock query, which neither
takes nor disturbs a lock).

Cluster membership changes when clusters merge. Rather than rewriting stored member rows,
each catalog holds the small table `merged_clusters` (every merged cluster and the cluster it
now belongs to), and the `clusters` and `cluster_members` views resolve through it.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import struct
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

log = logging.getLogger(__name__)

# small tables, copied whole into every catalog
SNAPSHOT_TABLES = (
    "outlets",
    "feeds",
    "runs",
    "shard_runs",
    "detection_params",
    "schema_migrations",
)
# large tables that only ever gain rows: published as Parquet files of the rows added since
# the last publication (cluster_members and clusters are resolved through merged_clusters)
APPEND_TABLES = (
    "articles",
    "fetch_log",
    "clusters",
    "cluster_members",
    "article_matches",
    "cluster_merges",
)
# large tables whose rows change: each insert and update takes the next version (a sequence
# in the working database); a publication writes the rows of the versions it has not
# published, and the view keeps each key's latest version. table: (key, version column)
ROW_GROUP_BYTES = "16MB"  # of a published Parquet file
CHANGE_TABLES = {"entries": ("entry_id", "updated_seq")}
# views of the working database re-created in the catalog (they read the names above)
CONTRACT_VIEWS = (
    "article_clusters",
    "cluster_summary",
    "article_wire_credit",
    "cluster_syndication",
)
# catalogs kept beyond those in use, so a reader that resolved the --db path just before a
# rename still finds the catalog it is opening
SPARE_CATALOGS = 2


class PublishError(RuntimeError):
    """Publishing failed; the working database is untouched and the previous catalog stays."""


@dataclass(frozen=True)
class StoreLayout:
    """Where a store's files live. `catalog` is the path users give (`--db`)."""

    catalog: Path

    @classmethod
    def for_db(cls, db: Path | str) -> StoreLayout:
        return cls(Path(db).absolute())

    @property
    def data_dir(self) -> Path:
        return self.catalog.with_name(self.catalog.name + ".data")

    @property
    def working(self) -> Path:
        return self.data_dir / "pipeline.duckdb"

    @property
    def parquet_dir(self) -> Path:
        return self.data_dir / "published"

    @property
    def catalogs_dir(self) -> Path:
        return self.data_dir / "catalogs"


# --------------------------------------------------------------------------- locks
_FLOCK = "hhqqi"  # struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid


def in_use(path: Path) -> bool:
    """True while some process holds a DuckDB lock on the file (DuckDB locks the whole file
    with fcntl: shared for read-only connections, exclusive for writers). Asked with
    F_OFD_GETLK, which sees the locks of every process, this one included, and takes none."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        try:
            answer = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, query)
        except OSError as exc:  # no OFD locks here: assume in use, never delete under a reader
            if exc.errno in (errno.EINVAL, errno.ENOSYS):
                return True
            raise
        return struct.unpack(_FLOCK, answer)[0] != fcntl.F_UNLCK
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _file_list(paths: Iterable[Path]) -> str:
    return "[" + ", ".join(_quote(p) for p in paths) + "]"


# --------------------------------------------------------------------------- publishing
@dataclass(frozen=True)
class Publication:
    seq: int
    catalog: Path
    files_written: int
    rows_written: dict[str, int]
    full: bool


class Publisher:
    """Publishes a working database (an open read-write connection) to its layout's catalog.
    Its bookkeeping lives in the working database (`publications`, `published_files`,
    `publish_marks`), in the same file as the data it describes."""

    def __init__(self, con: duckdb.DuckDBPyConnection, layout: StoreLayout):
        self.con = con
        self.layout = layout

    def _sql(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(query, params or []).fetchall()

    # ------------------------------------------------------------------ the public step
    def publish(self, as_of: datetime | None = None, *, full: bool = False) -> Publication:
        """Write the rows added since the last publication and a new catalog, then move the
        catalog into place. `full` republishes every row (after a bulk rewrite of tables,
        e.g. `reprocess`); it is also chosen by itself when a table lost or changed rows it
        had published, or when the files of the last publication are gone.

        Files and the catalog are written first, under new names; the bookkeeping is then
        committed in one transaction, and only then is the catalog linked into place. A
        publication cut short leaves the previous catalog in place and stray files that the
        next one removes."""
        as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
        layout = self.layout
        for directory in (layout.parquet_dir, layout.catalogs_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._remove_strays()
        full = full or self._needs_full()
        seq = int(self._sql("SELECT coalesce(max(seq), 0) + 1 FROM publications")[0][0])
        day = as_of.date()
        live = self._live()
        superseded: list[str] = []
        if full:
            superseded = [path for paths in live.values() for path in paths]
            live = {}
        new_files: list[tuple[str, str, date, int]] = []  # path, table, day, rows
        marks: list[tuple[str, int, int]] = []
        rows_written: dict[str, int] = {}
        written: list[Path] = []
        try:
            for table in PUBLISHED_TABLES:
                start, before = (0, 0) if full else self._mark(table)
                end = max(start, self._end(table))
                count = self._count(table, start, end)
                rows_written[table] = count
                marks.append((table, end, before + count))
                if count or not live.get(table):  # a view needs at least one file
                    name = f"{table}/{day.isoformat()}-{seq:08d}.parquet"
                    position = _position(table)
                    written.append(
                        self._copy_to_parquet(
                            # no ORDER BY: a scan keeps the table's order, and sorting the
                            # whole store (a full publication) does not fit the memory cap
                            f"SELECT * FROM {table} WHERE {position} >= {start} "
                            f"AND {position} < {end}",
                            name,
                        )
                    )
                    new_files.append((name, table, day, count))
                    live.setdefault(table, []).append(name)
            for table, group_day, paths, rows in [] if full else self._day_groups(day):
                name = f"{table}/{group_day.isoformat()}-{seq:08d}-day.parquet"
                sources = _file_list(layout.parquet_dir / p for p in paths)
                written.append(
                    self._copy_to_parquet(f"SELECT * FROM read_parquet({sources})", name)
                )
                superseded.extend(paths)
                new_files.append((name, table, group_day, rows))
                live[table] = [p for p in live[table] if p not in paths] + [name]
            catalog = self._write_catalog(seq, live)
            written.append(catalog)
            self._record(seq, as_of, catalog, new_files, superseded, marks)
        except BaseException as exc:
            for path in written:
                path.unlink(missing_ok=True)
            if isinstance(exc, duckdb.Error | OSError):
                raise PublishError(f"publishing failed: {exc}") from exc
            raise
        self._link_into_place(catalog)
        self.collect_garbage()
        return Publication(seq, catalog, len(written) - 1, rows_written, full)

    # ------------------------------------------------------------------ pieces
    def _needs_full(self) -> bool:
        if not self._sql("SELECT 1 FROM publications LIMIT 1"):
            return True
        for paths in self._live().values():
            if any(not (self.layout.parquet_dir / path).exists() for path in paths):
                log.warning("published files are missing: republishing every row")
                return True
        for table, mark, rows in self._sql(
            "SELECT table_name, next_rowid, rows FROM publish_marks"
        ):
            if table in CHANGE_TABLES:  # rows change by design: each new version is published
                continue
            count = self._sql(f"SELECT count(*) FROM {table} WHERE rowid < ?", [mark])[0][0]
            if count != rows:
                log.warning("%s lost or changed published rows: republishing every row", table)
                return True
        return False

    def _live(self) -> dict[str, list[str]]:
        live: dict[str, list[str]] = {}
        for table, path in self._sql(
            "SELECT table_name, path FROM published_files WHERE superseded_seq IS NULL "
            "ORDER BY day, path"
        ):
            live.setdefault(table, []).append(path)
        return live

    def _mark(self, table: str) -> tuple[int, int]:
        mark = self._sql("SELECT next_rowid, rows FROM publish_marks WHERE table_name = ?", [table])
        return (int(mark[0][0]), int(mark[0][1])) if mark else (0, 0)

    def _end(self, table: str) -> int:
        position = _position(table)
        return int(self._sql(f"SELECT coalesce(max({position}) + 1, 0) FROM {table}")[0][0])

    def _count(self, table: str, start: int, end: int) -> int:
        position = _position(table)
        query = f"SELECT count(*) FROM {table} WHERE {position} >= ? AND {position} < ?"
        return int(self._sql(query, [start, end])[0][0])

    def _day_groups(self, today: date) -> list[tuple[str, date, list[str], int]]:
        """(table, day, files, rows) of each earlier day with more than one live file."""
        rows = self._sql(
            "SELECT table_name, day, list(path ORDER BY path), sum(rows) FROM published_files "
            "WHERE superseded_seq IS NULL AND day < ? GROUP BY table_name, day "
            "HAVING count(*) > 1 ORDER BY table_name, day",
            [today],
        )
        return [(table, day, list(paths), int(count)) for table, day, paths, count in rows]

    def _copy_to_parquet(self, query: str, name: str) -> Path:
        path = self.layout.parquet_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            # row groups cut by size as well as rows: a row group is held in memory until it is
            # written, and 122,880 article texts do not fit the store's memory cap (the byte
            # cap applies only without insertion order, which the published views do not need)
            self._sql("SET preserve_insertion_order = false")
            try:
                self._sql(
                    f"COPY ({query}) TO {_quote(partial)} "
                    f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE_BYTES '{ROW_GROUP_BYTES}')"
                )
            finally:
                self._sql("RESET preserve_insertion_order")
            _fsync_file(partial)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        _fsync_dir(path.parent)
        return path

    def _record(
        self,
        seq: int,
        as_of: datetime,
        catalog: Path,
        new_files: list[tuple[str, str, date, int]],
        superseded: list[str],
        marks: list[tuple[str, int, int]],
    ) -> None:
        self._sql("BEGIN TRANSACTION")
        try:
            if superseded:
                self._sql(
                    "UPDATE published_files SET superseded_seq = ? WHERE list_contains(?, path)",
                    [seq, superseded],
                )
            for path, table, day, rows in new_files:
                self._sql(
                    "INSERT INTO published_files VALUES (?, ?, ?, ?, ?, NULL)",
                    [path, table, day, rows, seq],
                )
            for table, end, rows in marks:
                self._sql(
                    "INSERT OR REPLACE INTO publish_marks VALUES (?, ?, ?)", [table, end, rows]
                )
            self._sql(
                "INSERT INTO publications VALUES (?, ?, ?, ?)",
                [seq, datetime.now(UTC), as_of, catalog.name],
            )
            self._sql("COMMIT")
        except BaseException:
            try:
                self._sql("ROLLBACK")
            except duckdb.Error:  # already ended by DuckDB: the error propagating says why
                pass
            raise

    def _write_catalog(self, seq: int, live: dict[str, list[str]]) -> Path:
        catalog = self.layout.catalogs_dir / f"catalog-{seq:08d}.duckdb"
        partial = catalog.with_name(catalog.name + ".partial")
        partial.unlink(missing_ok=True)
        alias = f"_catalog_{uuid.uuid4().hex[:8]}"
        work = self.con.cursor()  # its own transactions: one transaction writes one database
        try:
            work.execute(f"ATTACH {_quote(partial)} AS {alias}")
            try:
                for table in SNAPSHOT_TABLES:
                    work.execute(f"CREATE TABLE {alias}.{table} AS SELECT * FROM main.{table}")
                work.execute(
                    f"CREATE TABLE {alias}.merged_clusters AS SELECT cluster_id, merged_into "
                    "FROM main.clusters WHERE status = 'merged'"
                )
                for table in PUBLISHED_TABLES:
                    files = [self.layout.parquet_dir / p for p in live[table]]
                    work.execute(f"CREATE VIEW {alias}.{table} AS {self._view_sql(table, files)}")
                for view in CONTRACT_VIEWS:
                    definition = self._sql(
                        "SELECT sql FROM duckdb_views() WHERE database_name = current_database() "
                        "AND view_name = ?",
                        [view],
                    )
                    if definition:
                        work.execute(_in_catalog(definition[0][0], alias))
            finally:
                work.execute(f"DETACH {alias}")
        finally:
            work.close()
        _fsync_file(partial)
        os.replace(partial, catalog)
        _fsync_dir(catalog.parent)
        return catalog

    def _view_sql(self, table: str, paths: list[Path]) -> str:
        files = _file_list(paths)
        columns = [
            row[0]
            for row in self._sql(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
                "AND table_name = ? ORDER BY column_index",
                [table],
            )
        ]
        source = f"read_parquet({files})"
        if table == "cluster_members":
            select = [
                "coalesce(r.merged_into, t.cluster_id) AS cluster_id"
                if c == "cluster_id"
                else f"t.{c}"
                for c in columns
            ]
            return (
                f"SELECT {', '.join(select)} FROM {source} t "
                "LEFT JOIN merged_clusters r USING (cluster_id)"
            )
        if table == "clusters":
            select = []
            for c in columns:
                if c == "status":
                    select.append(
                        "CASE WHEN r.merged_into IS NULL THEN 'active' ELSE 'merged' END AS status"
                    )
                elif c == "merged_into":
                    select.append("r.merged_into AS merged_into")
                else:
                    select.append(f"t.{c}")
            return (
                f"SELECT {', '.join(select)} FROM {source} t "
                "LEFT JOIN merged_clusters r USING (cluster_id)"
            )
        if table in CHANGE_TABLES:
            key, version = CHANGE_TABLES[table]
            return (
                f"SELECT {', '.join(columns)} FROM {source} "
                f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {version} DESC) = 1"
            )
        return f"SELECT {', '.join(columns)} FROM {source}"

    def _link_into_place(self, catalog: Path) -> None:
        target = self.layout.catalog
        staged = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
        os.link(catalog, staged)
        try:
            os.replace(staged, target)
        finally:
            staged.unlink(missing_ok=True)
        _fsync_dir(target.parent)

    # ------------------------------------------------------------------ clean-up
    def collect_garbage(self) -> tuple[int, int]:
        """Remove catalogs no process holds (all but the newest few) and the files that only
        removed catalogs named. Returns (catalogs removed, files removed)."""
        rows = self._sql("SELECT seq, catalog FROM publications ORDER BY seq DESC")
        if not rows:
            return 0, 0
        keep = {int(seq) for seq, _ in rows[: 1 + SPARE_CATALOGS]}
        removed: list[int] = []
        for seq, name in rows[1 + SPARE_CATALOGS :]:
            path = self.layout.catalogs_dir / name
            if in_use(path):
                keep.add(int(seq))
                continue
            path.unlink(missing_ok=True)
            removed.append(int(seq))
        if removed:
            self._sql("DELETE FROM publications WHERE list_contains(?, seq)", [removed])
        kept = sorted(keep)
        # a superseded file is still named by every kept catalog published before it was
        # superseded (and after it was written)
        gone = self._sql(
            "SELECT path FROM published_files f WHERE superseded_seq IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM unnest(?::BIGINT[]) k(seq) "
            "WHERE k.seq >= f.written_seq AND k.seq < f.superseded_seq)",
            [kept],
        )
        for (path,) in gone:
            (self.layout.parquet_dir / path).unlink(missing_ok=True)
        if gone:
            self._sql(
                "DELETE FROM published_files WHERE list_contains(?, path)", [[p for (p,) in gone]]
            )
        self._remove_strays()
        return len(removed), len(gone)

    def _remove_strays(self) -> None:
        """Files a publication that failed midway left behind (named by no record)."""
        known = {path for (path,) in self._sql("SELECT path FROM published_files")}
        for path in self.layout.parquet_dir.rglob("*"):
            relative = path.relative_to(self.layout.parquet_dir).as_posix()
            if path.is_file() and relative not in known:
                path.unlink(missing_ok=True)
        catalogs = {name for (name,) in self._sql("SELECT catalog FROM publications")}
        for path in self.layout.catalogs_dir.glob("*"):
            if path.is_file() and path.name not in catalogs and not in_use(path):
                path.unlink(missing_ok=True)


PUBLISHED_TABLES = APPEND_TABLES + tuple(CHANGE_TABLES)


def _position(table: str) -> str:
    """What orders a table's rows for publishing: the row id of a table that only gains
    rows, the version of one whose rows change."""
    return CHANGE_TABLES[table][1] if table in CHANGE_TABLES else "rowid"


def _in_catalog(view_sql: str, alias: str) -> str:
    """A `CREATE VIEW name AS ...` statement of the working database, made in the catalog."""
    head, sep, rest = view_sql.partition(" AS ")
    name = head.split()[-1]
    if not sep or not head.upper().startswith("CREATE VIEW"):
        raise PublishError(f"unexpected view definition: {view_sql[:80]}")
    return f"CREATE VIEW {alias}.{name} AS {rest}"


def remove_layout(layout: StoreLayout) -> None:
    """Delete a store's published catalog, working database and files (tests, benches)."""
    layout.catalog.unlink(missing_ok=True)
    shutil.rmtree(layout.data_dir, ignore_errors=True)


def _is_working_database(path: Path) -> bool:
    """True when the file at `path` holds the pipeline's tables (a store made before the
    published catalog existed), False for a catalog."""
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        from store.db import StoreError

        raise StoreError(f"cannot open {path}: {exc}") from None
    try:
        rows = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'articles' "
            "AND database_name = current_database()"
        ).fetchall()
        return bool(rows[0][0])
    finally:
        con.close()


def prepare_layout(layout: StoreLayout) -> bool:
    """Make sure the working database lives at `layout.working`. A store made before the
    published catalog existed is a working database at the `--db` path itself: it is moved
    into the data folder (its write-ahead log with it), and the band index folder beside it
    is removed (it is rebuilt from the database when needed). Returns True when a store was
    moved, so the caller publishes its first catalog at once."""
    if layout.working.exists() or not layout.catalog.exists():
        return False
    if not _is_working_database(layout.catalog):
        return False
    layout.data_dir.mkdir(parents=True, exist_ok=True)
    wal = layout.catalog.with_name(layout.catalog.name + ".wal")
    if wal.exists():
        os.replace(wal, layout.working.with_name(layout.working.name + ".wal"))
    os.replace(layout.catalog, layout.working)
    shutil.rmtree(layout.catalog.with_name(layout.catalog.name + ".bands"), ignore_errors=True)
    log.warning(
        "moved the working database from %s to %s; the analysts' catalog is published at %s",
        layout.catalog,
        layout.working,
        layout.catalog,
    )
    return True


class Catalog:
    """A read-only connection to the published catalog: what reports, exports and analysts
    read. It never blocks the pipeline, and the pipeline never blocks it."""

    def __init__(self, path: Path | str, memory_limit: str | None = "512MB"):
        from store.db import StoreError

        self.path = Path(path)
        if not self.path.exists():
            raise StoreError(
                f"no published database at {self.path}; run `narratrace run --once` first"
            )
        try:
            self.con = duckdb.connect(str(self.path), read_only=True)
            self.con.execute("SET TimeZone = 'UTC'")
            if memory_limit:
                self.con.execute(f"SET memory_limit = '{memory_limit}'")
        except duckdb.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from None

    def sql(self, query: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(query, params or []).fetchall()

    def names(self) -> list[tuple[str, str]]:
        """(name, 'table' or 'view') of everything published, in a stable order."""
        rows = self.sql(
            "SELECT table_name, 'table' FROM duckdb_tables() "
            "WHERE database_name = current_database() "
            "UNION ALL SELECT view_name, 'view' FROM duckdb_views() "
            "WHERE database_name = current_database() AND NOT internal ORDER BY 1"
        )
        return [(str(name), str(kind)) for name, kind in rows]

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
