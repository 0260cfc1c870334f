"""The LSH band index: every row of `lsh_bands` as one 64-bit key (band hash and band number
mixed) with its article, kept sorted in a few runs beside the database file.

Candidate search looks a batch's keys up by binary search in each run, touching about one page
per key, where a join with `lsh_bands` reads every stored row: 565 rows per article, over half
a billion at 1M articles (docs/performance.md). `lsh_bands` stays the record, written in the
same transaction as the rest of a detection pass; the index is derived from it and `sync`
brings it up to date before each search. It covers the table's rows in insertion order (DuckDB
row ids; the table is only ever appended to), notes how many it covers and the last of them,
and reads the rows after those. When the table no longer matches (rows deleted, a database
copied back without its index, index files lost or damaged) the index is rebuilt from it.

Run files are written without waiting for the disk (they are rewritten often, and the table
they come from is durable): the manifest notes the machine's boot id, and after a restart of the
machine the runs' checksums are verified once; a run that lost data to a crash gets the index
rebuilt.

Runs are levelled: a new run is merged into the one before it while that one is on the same
level or a lower one (level 0 up to BASE_ROWS rows, each level MERGE_RATIO times more), so there
is about one run per level, log4(stored / BASE_ROWS) of them, and each row is rewritten about
twice per level. Lookups and merges map a slice of a run at a time, so memory stays bounded
whatever the store's size.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"
# rows of a run mapped at once by a lookup or a merge (128 MiB of keys), and rows read from
# lsh_bands per step when catching up or rebuilding
SLICE_ROWS = 1 << 24
# every FENCE-th key of a run is kept in memory (and in the run's .fence file): 2 KiB blocks
FENCE = 256
# levels of runs: level 0 holds up to BASE_ROWS rows, each next level MERGE_RATIO times more
BASE_ROWS = 1 << 20
MERGE_RATIO = 4
# a run with at most this many rows per key looked up is read whole instead
SCAN_RATIO = 4


def _level(rows: int) -> int:
    level, capacity = 0, BASE_ROWS
    while rows > capacity:
        level, capacity = level + 1, capacity * MERGE_RATIO
    return level


READ_ROWS = 1 << 24
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _boot_id() -> str | None:
    """This boot of the machine (Linux), or None where unknown: run files are then synced to
    disk as they are written."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


BOOT_ID = _boot_id()


def band_keys(band: Any, band_hash: Any) -> np.ndarray:
    """One key per band row: the band hash with the band number mixed in, so that equal
    hashes in different bands do not meet (64-bit keys: a chance collision only adds a
    candidate, which verification then rejects)."""
    mixed = (np.asarray(band, dtype=np.uint64) + np.uint64(1)) * _MIX
    return np.asarray(band_hash, dtype=np.uint64) ^ mixed


@dataclass
class _Run:
    name: str  # file stem in the index directory
    rows: int
    checksum: int  # sum of keys and ids, modulo 2**64
    fence: np.ndarray  # keys at rows 0, FENCE, 2 * FENCE, ...
    keys: np.ndarray | None = None  # held here when the index lives in memory
    ids: np.ndarray | None = None


class BandIndex:
    """Sorted (key, article_id) runs in `directory`, or in memory when it is None."""

    def __init__(self, directory: Path | None):
        self.directory = directory
        self.rows = 0  # lsh_bands rows covered: those whose row id is below next_rowid
        self.next_rowid = 0
        self.tail: list[int] | None = None  # (article_id, band, band_hash) of the last covered
        self.runs: list[_Run] = []
        self.rebuilds = 0
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._load()

    # ------------------------------------------------------------------ upkeep
    def sync(self, con: duckdb.DuckDBPyConnection) -> None:
        """Cover every row of `lsh_bands`: read the rows added since the last sync, or rebuild
        from the whole table when it no longer holds what the index covers."""
        count = _one(con, "SELECT count(*) FROM lsh_bands")
        new = _one(con, "SELECT count(*) FROM lsh_bands WHERE rowid >= ?", [self.next_rowid])
        stale = self.rows + new != count
        if not stale and self.rows and self.tail != _row(con, self.next_rowid - 1):
            stale = True
        if stale:
            log.warning(
                "the LSH band index does not match lsh_bands (%d rows indexed, %d in the "
                "table); rebuilding it from the table",
                self.rows,
                count,
            )
            self._reset()
            self.rebuilds += 1
            new = count
        if not new:
            return
        if new > READ_ROWS:
            log.info("adding %d rows of lsh_bands to the LSH band index", new)
        reader = con.sql(
            "SELECT rowid, article_id, band, band_hash FROM lsh_bands WHERE rowid >= ?",
            params=[self.next_rowid],
        ).to_arrow_reader(READ_ROWS)
        try:
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                rowids = batch.column(0).to_numpy()
                keys = band_keys(batch.column(2).to_numpy(), batch.column(3).to_numpy())
                order = np.argsort(keys, kind="stable")
                last = int(np.argmax(rowids))
                self._add(
                    keys[order],
                    batch.column(1).to_numpy().astype(np.int64)[order],
                    next_rowid=int(rowids[last]) + 1,
                    tail=[int(batch.column(c)[last].as_py()) for c in (1, 2, 3)],
                )
        except BaseException:
            self._recover()
            raise
        finally:
            reader.close()
        if self.rows != count:
            raise RuntimeError(f"LSH band index covers {self.rows} rows, lsh_bands holds {count}")

    def _add(
        self, keys: np.ndarray, ids: np.ndarray, next_rowid: int, tail: list[int] | None
    ) -> None:
        """Sorted rows as a new run, covering lsh_bands up to `next_rowid`; then merges."""
        self.runs.append(self._write(keys, ids))
        self.rows += len(keys)
        self.next_rowid, self.tail = next_rowid, tail
        self._save()
        self._compact()

    def _compact(self) -> None:
        """Merge the newest run into the one before it while that one is not on a higher level:
        one run per level, levels MERGE_RATIO times apart."""
        while len(self.runs) >= 2 and _level(self.runs[-2].rows) <= _level(self.runs[-1].rows):
            older, newer = self.runs[-2], self.runs[-1]
            self.runs[-2:] = [self._merge(older, newer)]
            self._save()  # the merged run replaces the two before their files go
            self._drop(older)
            self._drop(newer)

    def _recover(self) -> None:
        """After a failure part way: back to what the manifest on disk says (in memory:
        nothing, to be rebuilt)."""
        self.runs, self.rows, self.next_rowid, self.tail = [], 0, 0, None
        if self.directory is not None:
            self._load()

    def _merge(self, a: _Run, b: _Run) -> _Run:
        """One sorted run from two, in slices of at most SLICE_ROWS of each."""
        out = self._open_output(a.rows + b.rows)
        ia = ib = 0
        try:
            while ia < a.rows or ib < b.rows:
                ka, xa = self._slice(a, ia, min(a.rows, ia + SLICE_ROWS))
                kb, xb = self._slice(b, ib, min(b.rows, ib + SLICE_ROWS))
                # take everything up to the smaller of the two slices' last keys (a slice that
                # ends its run takes part whole)
                a_more, b_more = ia + len(ka) < a.rows, ib + len(kb) < b.rows
                if a_more and (not b_more or ka[-1] <= kb[-1]):
                    na, nb = len(ka), int(np.searchsorted(kb, ka[-1], side="right"))
                elif b_more:
                    na, nb = int(np.searchsorted(ka, kb[-1], side="right")), len(kb)
                else:
                    na, nb = len(ka), len(kb)
                # b's rows go after a's equal keys: a stable merge
                at = np.searchsorted(ka[:na], kb[:nb], side="right") + np.arange(nb)
                keys = np.empty(na + nb, np.uint64)
                ids = np.empty(na + nb, np.int64)
                from_a = np.ones(na + nb, bool)
                from_a[at] = False
                keys[at], ids[at] = kb[:nb], xb[:nb]
                keys[from_a], ids[from_a] = ka[:na], xa[:na]
                out.write(keys, ids)
                ia, ib = ia + na, ib + nb
                del ka, xa, kb, xb
            return out.close()
        except BaseException:
            out.abort()
            raise

    # ------------------------------------------------------------------ lookup
    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position in `keys`, article_id) for every indexed row whose key is in `keys`
        (sorted, without repeats).

        Each run keeps every FENCE-th key in memory; a key is placed between two of those
        first, then found by binary search inside that one block of FENCE keys (2 KiB), so it
        touches one page of the run instead of one per step of a search over the whole run."""
        found_at: list[np.ndarray] = []
        found_ids: list[np.ndarray] = []
        self._prefetch()
        for run in self.runs:
            if run.rows == 0 or len(keys) == 0:
                continue
            if run.rows <= SCAN_RATIO * len(keys):
                self._scan(run, keys, found_at, found_ids)
                continue
            fence = run.fence
            block = np.searchsorted(fence, keys, side="left") - 1  # fence[block] < key
            inside = np.flatnonzero(block >= 0)
            # keys not above the run's first key: only equal to it, at row 0
            head = np.flatnonzero((block < 0) & (keys == fence[0]))
            if len(head):
                self._collect(
                    run, 0, head, np.zeros(len(head), np.int64), keys, found_at, found_ids
                )
            if not len(inside):
                continue
            slice_of = block[inside] * FENCE // SLICE_ROWS
            bounds = np.searchsorted(slice_of, np.arange(slice_of[-1] + 2))
            for number in np.flatnonzero(np.diff(bounds)):
                chosen = inside[bounds[number] : bounds[number + 1]]
                start = int(number) * SLICE_ROWS
                slice_keys, _ = self._slice(run, start, min(run.rows, start + SLICE_ROWS))
                size = len(slice_keys)
                wanted = keys[chosen]
                pos = block[chosen] * FENCE - start  # slice_keys[pos] < wanted
                step = FENCE // 2
                while step:
                    ahead = pos + step
                    less = (ahead < size) & (slice_keys[np.minimum(ahead, size - 1)] < wanted)
                    pos = np.where(less, ahead, pos)
                    step //= 2
                first = pos + 1  # the first row not below the key
                # the row after the block is the next fence key, whichever slice holds it
                after = block[chosen] + 1
                value = np.where(
                    first < size,
                    slice_keys[np.minimum(first, size - 1)],
                    fence[np.minimum(after, len(fence) - 1)],
                )
                hit = (value == wanted) & ((first < size) | (after < len(fence)))
                if hit.any():
                    self._collect(run, start, chosen[hit], first[hit], keys, found_at, found_ids)
                del slice_keys
        if not found_at:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        return np.concatenate(found_at).astype(np.int64), np.concatenate(found_ids)

    def _prefetch(self) -> None:
        """Ask the OS to read the runs' keys into its page cache ahead of the search: a page
        that was dropped from the cache is then read in large sequential requests, not one
        small random read on the fault. Pages already cached cost nothing."""
        if self.directory is None or not hasattr(os, "posix_fadvise"):
            return
        for run in self.runs:
            fd = os.open(self._paths(run.name)[0], os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            finally:
                os.close(fd)

    def _scan(
        self,
        run: _Run,
        keys: np.ndarray,
        found_at: list[np.ndarray],
        found_ids: list[np.ndarray],
    ) -> None:
        """A run not much larger than the keys looked up: each of its rows is searched among
        the keys instead."""
        for start in range(0, run.rows, SLICE_ROWS):
            run_keys, run_ids = self._slice(run, start, min(run.rows, start + SLICE_ROWS))
            at = np.minimum(np.searchsorted(keys, run_keys), len(keys) - 1)
            hit = keys[at] == run_keys
            if hit.any():
                found_at.append(at[hit])
                found_ids.append(np.asarray(run_ids[hit]))

    def _collect(
        self,
        run: _Run,
        start: int,
        which: np.ndarray,
        first: np.ndarray,
        keys: np.ndarray,
        found_at: list[np.ndarray],
        found_ids: list[np.ndarray],
    ) -> None:
        """The rows of `run` equal to keys[which], each run of equal rows starting at row
        start + first: their article ids."""
        rows = start + first
        ends = rows + 1
        todo = np.arange(len(which))
        while len(todo):  # equal keys: rows of one band shared by several articles
            at = ends[todo]
            more = at < run.rows
            todo, at = todo[more], at[more]
            if not len(todo):
                break
            values = self._values(run, at, ids=False)
            same = values == keys[which[todo]]
            ends[todo[same]] += 1
            todo = todo[same]
        count = ends - rows
        total = int(count.sum())
        offsets = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
        found_at.append(np.repeat(which, count))
        found_ids.append(self._values(run, np.repeat(rows, count) + offsets, ids=True))

    def _values(self, run: _Run, rows: np.ndarray, ids: bool) -> np.ndarray:
        """Keys (or ids) of `run` at sorted row numbers, mapping one slice at a time."""
        if run.keys is not None and run.ids is not None:
            return (run.ids if ids else run.keys)[rows]
        out = np.empty(len(rows), np.int64 if ids else np.uint64)
        bounds = np.searchsorted(rows, np.arange(0, run.rows + SLICE_ROWS, SLICE_ROWS))
        for number in np.flatnonzero(np.diff(bounds)):
            lo, hi = bounds[number], bounds[number + 1]
            start = int(number) * SLICE_ROWS
            slice_keys, slice_ids = self._slice(run, start, min(run.rows, start + SLICE_ROWS))
            out[lo:hi] = (slice_ids if ids else slice_keys)[rows[lo:hi] - start]
        return out

    # ------------------------------------------------------------------ storage
    def _paths(self, name: str) -> tuple[Path, Path]:
        assert self.directory is not None
        return self.directory / f"{name}.keys", self.directory / f"{name}.ids"

    def _fence_path(self, name: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{name}.fence"

    def _slice(self, run: _Run, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        if run.keys is not None and run.ids is not None:
            return run.keys[start:end], run.ids[start:end]
        if end <= start:
            return np.empty(0, np.uint64), np.empty(0, np.int64)
        keys_path, ids_path = self._paths(run.name)
        # a mapping of its own per slice: pages read are let go when the slice is dropped
        keys = np.memmap(keys_path, np.uint64, "r", offset=start * 8, shape=(end - start,))
        ids = np.memmap(ids_path, np.int64, "r", offset=start * 8, shape=(end - start,))
        return keys, ids

    def _checksum(self, run: _Run) -> tuple[int, np.ndarray]:
        """The run's checksum and fence, computed from its files."""
        total, fence = 0, []
        for start in range(0, run.rows, SLICE_ROWS):
            keys, ids = self._slice(run, start, min(run.rows, start + SLICE_ROWS))
            total = _add_checksum(total, keys, ids)
            fence.append(np.array(keys[::FENCE]))
        return total, np.concatenate(fence) if fence else np.empty(0, np.uint64)

    def _write(self, keys: np.ndarray, ids: np.ndarray) -> _Run:
        out = self._open_output(len(keys))
        out.write(keys, ids)
        return out.close()

    def _open_output(self, rows: int) -> _Output:
        name = f"run-{uuid.uuid4().hex[:16]}"
        return _Output(name, rows, None if self.directory is None else self._paths(name))

    def _drop(self, run: _Run) -> None:
        if self.directory is not None:
            for path in (*self._paths(run.name), self._fence_path(run.name)):
                path.unlink(missing_ok=True)

    def _reset(self) -> None:
        for run in self.runs:
            self._drop(run)
        self.runs, self.rows, self.next_rowid, self.tail = [], 0, 0, None
        self._save()

    def _save(self) -> None:
        if self.directory is None:
            return
        manifest = {
            "format": FORMAT,
            "rows": self.rows,
            "next_rowid": self.next_rowid,
            "tail": self.tail,
            "boot_id": BOOT_ID,
            "runs": [
                {"name": run.name, "rows": run.rows, "checksum": run.checksum} for run in self.runs
            ],
        }
        tmp = self.directory / f"{MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest))
        os.replace(tmp, self.directory / MANIFEST)

    def _load(self) -> None:
        assert self.directory is not None
        path = self.directory / MANIFEST
        try:
            manifest = json.loads(path.read_text())
            if manifest.get("format") != FORMAT:
                raise ValueError(f"format {manifest.get('format')!r}, expected {FORMAT}")
            runs = []
            for entry in manifest["runs"]:
                name, rows_in_run = str(entry["name"]), int(entry["rows"])
                for file in self._paths(name):
                    if file.stat().st_size != rows_in_run * 8:
                        raise ValueError(f"{file.name} does not hold {rows_in_run} rows")
                fence = np.fromfile(self._fence_path(name), np.uint64)
                if len(fence) != -(-rows_in_run // FENCE):
                    raise ValueError(f"{name}.fence does not match {rows_in_run} rows")
                runs.append(_Run(name, rows_in_run, int(entry["checksum"]), fence))
            restarted = manifest.get("boot_id") != BOOT_ID and BOOT_ID is not None
            if restarted:  # written before the machine restarted: data may be lost
                for run in runs:
                    checksum, fence = self._checksum(run)
                    if checksum != run.checksum or not np.array_equal(fence, run.fence):
                        raise ValueError(f"run {run.name} does not match its checksum")
            rows = int(manifest["rows"])
            if rows != sum(run.rows for run in runs):
                raise ValueError("the runs do not add up to the rows covered")
            tail = manifest["tail"]
            self.runs, self.rows = runs, rows
            self.next_rowid = int(manifest["next_rowid"])
            self.tail = None if tail is None else [int(value) for value in tail]
            if restarted:
                self._save()
        except FileNotFoundError as exc:
            if path.exists():
                log.warning("LSH band index: %s is missing; it will be rebuilt", exc.filename)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("LSH band index %s is unreadable (%s); it will be rebuilt", path, exc)
        # files of runs not in the manifest: a merge or a write cut short
        known = {run.name for run in self.runs}
        for file in self.directory.glob("run-*"):
            if file.name.split(".")[0] not in known:
                file.unlink(missing_ok=True)


def _add_checksum(total: int, keys: np.ndarray, ids: np.ndarray) -> int:
    key_sum = int(np.sum(keys, dtype=np.uint64))
    id_sum = int(np.sum(np.asarray(ids).view(np.uint64), dtype=np.uint64))
    return (total + key_sum + id_sum) % 2**64


class _Output:
    """A run being written, slice by slice."""

    def __init__(self, name: str, rows: int, paths: tuple[Path, Path] | None):
        self.name, self.rows, self.paths = name, rows, paths
        self.written = 0
        self.checksum = 0
        self.fence: list[np.ndarray] = []
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []
        self.files = None if paths is None else [open(path, "wb") for path in paths]

    def write(self, keys: np.ndarray, ids: np.ndarray) -> None:
        self.fence.append(np.array(keys[(-self.written) % FENCE :: FENCE], np.uint64))
        self.written += len(keys)
        self.checksum = _add_checksum(self.checksum, keys, ids)
        if self.files is None:
            self.parts.append((np.array(keys, np.uint64), np.array(ids, np.int64)))
        else:
            np.ascontiguousarray(keys, np.uint64).tofile(self.files[0])
            np.ascontiguousarray(ids, np.int64).tofile(self.files[1])

    def close(self) -> _Run:
        if self.written != self.rows:
            self.abort()
            raise RuntimeError(
                f"run {self.name}: {self.written} rows written, {self.rows} expected"
            )
        fence = np.concatenate(self.fence) if self.fence else np.empty(0, np.uint64)
        if self.files is None:
            keys = (
                np.concatenate([k for k, _ in self.parts]) if self.parts else np.empty(0, np.uint64)
            )
            ids = (
                np.concatenate([i for _, i in self.parts]) if self.parts else np.empty(0, np.int64)
            )
            return _Run(self.name, self.rows, self.checksum, fence, keys, ids)
        assert self.paths is not None
        fence.tofile(_fence_file(self.paths))
        for handle in self.files:
            handle.flush()
            if BOOT_ID is None:
                os.fsync(handle.fileno())
            handle.close()
        return _Run(self.name, self.rows, self.checksum, fence)

    def abort(self) -> None:
        if self.files is not None and self.paths is not None:
            for handle, path in zip(self.files, self.paths, strict=True):
                handle.close()
                path.unlink(missing_ok=True)
            _fence_file(self.paths).unlink(missing_ok=True)


def _fence_file(paths: tuple[Path, Path]) -> Path:
    return paths[0].with_suffix(".fence")


def _one(con: duckdb.DuckDBPyConnection, query: str, params: list[Any] | None = None) -> int:
    rows = con.execute(query, params or []).fetchall()
    return int(rows[0][0]) if rows else 0


def _row(con: duckdb.DuckDBPyConnection, rowid: int) -> list[int] | None:
    rows = con.execute(
        "SELECT article_id, band, band_hash FROM lsh_bands WHERE rowid = ?", [rowid]
    ).fetchall()
    return [int(value) for value in rows[0]] if rows else None
