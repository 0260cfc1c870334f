"""The LSH band index: every row of `lsh_bands` as one 64-bit key (band hash and band number
mixed) with its article, kept sorted in a few runs beside the database file.

Candidate search looks a batch's keys up in each run, where a join with `lsh_bands` reads every
stored row: 565 rows per article, over half a billion at 1M articles (docs/performance.md).
`lsh_bands` stays the record, written in the same transaction as the rest of a detection pass;
the index is derived from it and `sync` brings it up to date before each search. It covers the
table's rows in insertion order (DuckDB row ids; the table is only ever appended to), notes how
many it covers and the last of them, and reads the rows after those. When the table no longer
matches (rows deleted, a database copied back without its index, index files lost or damaged)
the index is rebuilt from it.

A run is four files: its sorted keys, their article ids, and what lookups read. Keys are spread
evenly over the 64-bit range (a bijective mix), so a run of n rows is split by the keys' top
bits into about n / BUCKET_ROWS buckets of 8 to 16 rows; `.dir` holds where each bucket starts
and `.fp` each row's next 16 bits (its fingerprint, 2 bytes). A lookup reads one bucket start
and WINDOW fingerprints (64 bytes) per key and run, and reads full keys only where a
fingerprint matches: about one key in 2,000, plus the true hits. At 1M articles that is 1.2 GB
of fingerprints and bucket starts to keep in the page cache, against 4.5 GB of keys.

Run files are written without waiting for the disk (they are rewritten often, and the table
they come from is durable): the manifest notes the machine's boot id, and after a restart of the
machine the runs' checksums are verified once and their fingerprints written again; a run that
lost data to a crash gets the index rebuilt.

Runs are levelled: a new run is merged into the one before it while that one is on the same
level or a lower one (level 0 up to BASE_ROWS rows, each level MERGE_RATIO times more), so there
is about one run per level, log4(stored / BASE_ROWS) of them, and each row is rewritten about
twice per level. Lookups and merges map a slice of a run at a time, so memory stays bounded
whatever the store's size.

A merge into a run of up to INLINE_ROWS rows (about a second) happens in the pass that adds the
run. A larger one (at 1M articles, every few hundred passes, the largest taking minutes) runs in
a background thread, one at a time, while lookups go on reading the two runs; the merged run
replaces them when it is complete. `close` stops such a merge between two steps and notes in the
manifest how far it got (its output files are written in order, so they are cut back to that
point), and the next process to open the index carries on from there.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

log = logging.getLogger(__name__)

FORMAT = 2
MANIFEST = "manifest.json"
# rows of a run mapped at once by a lookup (128 MiB of keys); rows of each run a merge takes
# per step, and rows read from lsh_bands per step when catching up or rebuilding (what these
# hold at once, with their temporaries, is a few hundred MB at most)
SLICE_ROWS = 1 << 24
MERGE_ROWS = 1 << 20
READ_ROWS = 1 << 22
# levels of runs: level 0 holds up to BASE_ROWS rows, each next level MERGE_RATIO times more
BASE_ROWS = 1 << 20
MERGE_RATIO = 4
# merges into a run of up to this many rows are made in the pass that triggers them; larger ones
# in the background
INLINE_ROWS = 1 << 24
# a run of n rows has 2**b buckets, the largest power of two not above n / BUCKET_ROWS (so 8 to
# 16 rows per bucket on average); a lookup matches a key against WINDOW fingerprints from its
# bucket's start at once, and searches the keys of a bucket larger than that
BUCKET_ROWS = 8
WINDOW = 32
SUFFIXES = (".keys", ".ids", ".fp", ".dir")
PAGE = 4096

_MIX = np.uint64(0x9E3779B97F4A7C15)
_FMIX = (np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))


def _level(rows: int) -> int:
    level, capacity = 0, BASE_ROWS
    while rows > capacity:
        level, capacity = level + 1, capacity * MERGE_RATIO
    return level


def _bucket_bits(rows: int) -> int:
    return min(48, max(0, (rows // BUCKET_ROWS).bit_length() - 1))


def _dir_dtype(rows: int) -> np.dtype:
    return np.dtype(np.uint32 if rows < 2**32 else np.uint64)


def _buckets(keys: np.ndarray, bits: int) -> np.ndarray:
    if bits == 0:
        return np.zeros(len(keys), np.int64)
    return (keys >> np.uint64(64 - bits)).astype(np.int64)


def _fingerprints(keys: np.ndarray, bits: int) -> np.ndarray:
    return ((keys << np.uint64(bits)) >> np.uint64(48)).astype(np.uint16)


def _window_read() -> int:
    """Fingerprints read per key: the window rounded up to a multiple of 8 (the files are
    padded with as many)."""
    return -(-WINDOW // 8) * 8


def _strided(buffer: np.ndarray, count: int, width: int, step: int) -> np.ndarray:
    """`count` overlapping records of `width` bytes, `step` bytes apart, over `buffer`:
    indexing it with row numbers copies each record whole."""
    return np.ndarray(
        shape=(count,), dtype=np.dtype((np.void, width)), buffer=buffer, strides=(step,)
    )


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
    hashes in different bands do not meet, then scrambled by a bijection (murmur3's
    finaliser), so that keys spread evenly over the 64-bit range whatever the hashes look
    like (64-bit keys: a chance collision only adds a candidate, which verification then
    rejects)."""
    mixed = (np.asarray(band, dtype=np.uint64) + np.uint64(1)) * _MIX
    key = np.asarray(band_hash, dtype=np.uint64) ^ mixed
    key ^= key >> np.uint64(33)
    key *= _FMIX[0]
    key ^= key >> np.uint64(33)
    key *= _FMIX[1]
    key ^= key >> np.uint64(33)
    return key


@dataclass
class _Run:
    name: str  # file stem in the index directory
    rows: int
    checksum: int  # sum of keys and ids, modulo 2**64
    # held here when the index lives in memory
    keys: np.ndarray | None = None
    ids: np.ndarray | None = None
    fp: np.ndarray | None = None  # fingerprints, then a window's read of zeros
    dir: np.ndarray | None = None  # bucket starts, then the row count

    @property
    def bits(self) -> int:
        return _bucket_bits(self.rows)


@dataclass(eq=False)
class _Merge:
    """A merge of two neighbouring runs into `out`, made in the background: how far it has
    got in each, and what the manifest notes of it (the point it was last stopped at, from
    which the next process carries on)."""

    older: _Run
    newer: _Run
    out: _Output
    older_at: int = 0
    newer_at: int = 0
    saved: dict[str, Any] | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    failed: BaseException | None = None

    def progress(self) -> dict[str, Any]:
        """Where the merge stands, for the manifest (its output files flushed up to here)."""
        return {
            "older": self.older.name,
            "newer": self.newer.name,
            "output": self.out.name,
            "older_at": self.older_at,
            "newer_at": self.newer_at,
            "checksum": self.out.checksum,
            "next_bucket": self.out.prints.next_bucket,
        }

    @property
    def rows(self) -> int:
        return self.older.rows + self.newer.rows

    @property
    def written(self) -> int:
        return self.older_at + self.newer_at


class BandIndex:
    """Sorted (key, article_id) runs in `directory`, or in memory when it is None.

    Safe to share between threads; `close` it when done, so that a merge under way in the
    background stops where the next process can carry on."""

    def __init__(self, directory: Path | None):
        self.directory = directory
        self.rows = 0  # lsh_bands rows covered: those whose row id is below next_rowid
        self.next_rowid = 0
        self.tail: list[int] | None = None  # (article_id, band, band_hash) of the last covered
        self.runs: list[_Run] = []
        self.rebuilds = 0
        self.merging: _Merge | None = None  # the background merge, running or stopped
        self._lock = threading.RLock()
        self._closing = False
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._load()

    # ------------------------------------------------------------------ upkeep
    def sync(self, con: duckdb.DuckDBPyConnection) -> None:
        """Cover every row of `lsh_bands`: read the rows added since the last sync, or rebuild
        from the whole table when it no longer holds what the index covers."""
        with self._lock:
            self._sync(con)

    def _sync(self, con: duckdb.DuckDBPyConnection) -> None:
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
            self._compact()  # a merge stopped by the last process carries on
            return
        # catching up on many rows (a rebuild): merges are made as they come, as nothing
        # looks up meanwhile and background ones would queue
        catching_up = new > READ_ROWS
        if catching_up:
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
                    background=not catching_up,
                )
        except BaseException:
            self._recover()
            raise
        finally:
            reader.close()
        if self.rows != count:
            raise RuntimeError(f"LSH band index covers {self.rows} rows, lsh_bands holds {count}")

    def _add(
        self,
        keys: np.ndarray,
        ids: np.ndarray,
        next_rowid: int,
        tail: list[int] | None,
        background: bool = True,
    ) -> None:
        """Sorted rows as a new run, covering lsh_bands up to `next_rowid`; then merges."""
        with self._lock:
            self.runs.append(self._write(keys, ids))
            self.rows += len(keys)
            self.next_rowid, self.tail = next_rowid, tail
            self._save()
            self._compact(background)

    def _compact(self, background: bool = True) -> None:
        """Merge neighbouring runs while the older is not on a higher level than the newer,
        newest first: one run per level, levels MERGE_RATIO times apart. A merge into more than
        INLINE_ROWS rows goes to the background (one at a time) when `background`; the runs it
        reads take no part in other merges until it is done. Called with the lock held."""
        job = self.merging
        if job is not None and job.failed is not None:  # logged by its thread; tried again
            if job.thread is not None:
                job.thread.join()
            self.merging = None
            self._drop(job.out)
        elif job is not None and job.thread is None and not self._closing:
            self._start(job)  # stopped by the last process: carry on
        while True:
            pair = self._due()
            if pair is None:
                return
            older, newer = pair
            if self.directory is None or not background or older.rows + newer.rows <= INLINE_ROWS:
                self._replace(older, newer, self._merge(older, newer))
                continue
            if self.merging is None and not self._closing:
                output = self._open_output(older.rows + newer.rows)
                self._start(_Merge(older, newer, output))
            return

    def _due(self) -> tuple[_Run, _Run] | None:
        """The newest pair of neighbouring runs due to be merged and free to be."""
        busy = () if self.merging is None else (self.merging.older, self.merging.newer)
        for at in range(len(self.runs) - 2, -1, -1):
            older, newer = self.runs[at], self.runs[at + 1]
            if _level(older.rows) <= _level(newer.rows):
                if not any(run is older or run is newer for run in busy):
                    return older, newer
        return None

    def _replace(self, older: _Run, newer: _Run, merged: _Run) -> None:
        """The merged run in place of the two, in the manifest before their files go."""
        at = next(i for i, run in enumerate(self.runs) if run is older)
        if self.runs[at + 1] is not newer:
            raise RuntimeError(f"runs {older.name} and {newer.name} are no longer neighbours")
        self.runs[at : at + 2] = [merged]
        self._save()
        self._drop(older)
        self._drop(newer)

    def _start(self, job: _Merge) -> None:
        self.merging = job
        job.thread = threading.Thread(
            target=self._background, args=(job,), name="band-index-merge", daemon=True
        )
        job.thread.start()

    def _background(self, job: _Merge) -> None:
        """The merge thread: step through the two runs until done or told to stop, then put
        the merged run in their place (unless told to stop before it could)."""
        try:  # below the detection pass and extraction on the machine's cores
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            pass
        a, b = job.older, job.newer
        try:
            while job.written < job.rows:
                if job.stop.is_set():
                    job.out.pause()
                    job.saved = job.progress()
                    return
                keys, ids, taken_a, taken_b = self._merge_step(a, b, job.older_at, job.newer_at)
                job.out.write(keys, ids)
                del keys, ids
                # the rows read are not read again: leave the page cache to what lookups read
                self._release(a, job.older_at, job.older_at + taken_a)
                self._release(b, job.newer_at, job.newer_at + taken_b)
                job.older_at += taken_a
                job.newer_at += taken_b
            done = job.progress()
            merged = job.out.close()
        except BaseException as exc:
            log.exception("LSH band index: merging %s and %s failed", a.name, b.name)
            job.out.abort()
            job.failed = exc
            return
        # the lock is held by lookups for a second at most; by a caller stopping this merge
        # for as long as it waits for this thread
        while not self._lock.acquire(timeout=0.05):
            if job.stop.is_set():
                job.saved = done  # complete but not in place: the output is closed again
                return
        try:
            self.merging = None
            self._replace(a, b, merged)
        except BaseException as exc:
            log.exception("LSH band index: putting a merged run in place failed")
            self._drop(merged)
            job.failed = exc
            self._lock.release()
            return
        try:
            if not self._closing:
                self._compact()  # the next merge that is due, if any
        except BaseException:
            log.exception("LSH band index: merging failed")
        finally:
            self._lock.release()

    def _halt(self) -> None:
        """Stop the background merge and drop what it wrote. Called with the lock held."""
        job = self.merging
        if job is None:
            return
        job.stop.set()
        if job.thread is not None:
            job.thread.join()
        else:
            job.out.pause()
        self.merging = None
        self._drop(job.out)

    def wait(self) -> None:
        """Make every merge that is due, background ones included, before returning."""
        while True:
            with self._lock:
                self._compact()
                job = self.merging
                if job is None:
                    return
            assert job.thread is not None
            job.thread.join()
            if job.failed is not None:
                raise job.failed

    def close(self) -> None:
        """Stop a background merge between two steps and note in the manifest how far it got,
        for the next process to carry on from; or, when it is complete, put it in place."""
        with self._lock:
            self._closing = True
            job = self.merging
        if job is None:
            return
        if job.thread is None:  # noted in the manifest as it was loaded
            job.out.pause()
            return
        job.stop.set()
        job.thread.join()
        with self._lock:
            if self.merging is job:
                if job.failed is not None:
                    self.merging = None
                self._save()

    def _recover(self) -> None:
        """After a failure part way: back to what the manifest on disk says (in memory:
        nothing, to be rebuilt)."""
        self._halt()
        self.runs, self.rows, self.next_rowid, self.tail = [], 0, 0, None
        if self.directory is not None:
            self._load()

    def _merge(self, a: _Run, b: _Run) -> _Run:
        """One sorted run from two, in steps of at most MERGE_ROWS of each."""
        out = self._open_output(a.rows + b.rows)
        ia = ib = 0
        try:
            while ia < a.rows or ib < b.rows:
                keys, ids, na, nb = self._merge_step(a, b, ia, ib)
                out.write(keys, ids)
                ia, ib = ia + na, ib + nb
            return out.close()
        except BaseException:
            out.abort()
            raise

    def _merge_step(
        self, a: _Run, b: _Run, ia: int, ib: int
    ) -> tuple[np.ndarray, np.ndarray, int, int]:
        """The next rows of the merge of `a` from row `ia` and `b` from row `ib` (at most
        MERGE_ROWS of each), with how many of each it took."""
        ka, xa = self._slice(a, ia, min(a.rows, ia + MERGE_ROWS))
        kb, xb = self._slice(b, ib, min(b.rows, ib + MERGE_ROWS))
        # take everything up to the smaller of the two slices' last keys (a slice that ends its
        # run takes part whole)
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
        return keys, ids, na, nb

    def _release(self, run: _Run, start: int, end: int) -> None:
        """Tell the OS these rows of the run's keys and ids will not be read again soon."""
        if self.directory is not None and end > start:
            for path in self._paths(run.name)[:2]:
                _advise(path, [(start * 8, (end - start) * 8)], "DONTNEED")

    # ------------------------------------------------------------------ lookup
    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position in `keys`, article_id) for every indexed row whose key is in `keys`
        (sorted, without repeats)."""
        with self._lock:
            return self._lookup(keys)

    def _lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found_at: list[np.ndarray] = []
        found_ids: list[np.ndarray] = []
        self._prefetch()
        for run in self.runs:
            if run.rows == 0 or len(keys) == 0:
                continue
            at, rows = self._find(run, keys)
            if len(at):
                found_at.append(at)
                found_ids.append(self._values(run, rows, ids=True))
        if not found_at:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        return np.concatenate(found_at).astype(np.int64), np.concatenate(found_ids)

    def _find(self, run: _Run, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position in `keys`, row of `run`) for every row of `run` holding one of `keys`.

        Each key's bucket start gives a window of WINDOW fingerprints, compared at once; rows
        whose fingerprint matches are checked against their full key. The bucket range is
        taken a part at a time (about SLICE_ROWS rows), so that what is mapped stays bounded."""
        bits = run.bits
        buckets = _buckets(keys, bits)
        prints = _fingerprints(keys, bits)
        part_bits = min(bits, max(0, (SLICE_ROWS // (2 * BUCKET_ROWS)).bit_length() - 1))
        part_of = buckets >> part_bits
        bounds = np.searchsorted(part_of, np.arange(part_of[-1] + 2))
        at: list[np.ndarray] = []
        rows: list[np.ndarray] = []
        over_at: list[np.ndarray] = []
        over_rows: list[np.ndarray] = []
        width = _window_read()
        for part in np.flatnonzero(np.diff(bounds)):
            chosen = slice(int(bounds[part]), int(bounds[part + 1]))
            first_bucket = int(part) << part_bits
            starts = self._dir(run, first_bucket, first_bucket + (1 << part_bits) + 1)
            base, end = int(starts[0]), int(starts[-1])
            # each key's bucket start and size: one read of two neighbouring starts
            pairs = _strided(starts, len(starts) - 1, 2 * starts.itemsize, starts.itemsize)
            bucket = pairs[buckets[chosen] - first_bucket].view(starts.dtype).reshape(-1, 2)
            lo = bucket[:, 0].astype(np.int64) - base
            size = bucket[:, 1].astype(np.int64) - base - lo
            # the fingerprints from each key's bucket start, `width` of them
            fp = self._fp(run, base, end + width)
            windows = _strided(fp, end - base + 1, 2 * width, 2)[lo]
            equal = windows.view(np.uint16).reshape(-1, width) == prints[chosen, None]
            # the few keys with a fingerprint among their window's (by chance, 1 in 2,000):
            # found 8 flags at a time, then matched one by one
            maybe = np.unique(np.flatnonzero(equal.view(np.uint64)) // (width // 8))
            key_at, offset = np.nonzero(equal[maybe])
            key_at = maybe[key_at]
            inside = offset < np.minimum(size[key_at], WINDOW)
            key_at, offset = key_at[inside], offset[inside]
            at.append(key_at + chosen.start)
            rows.append(base + lo[key_at] + offset)
            big = np.flatnonzero(size > WINDOW)
            over_at.append(big + chosen.start)
            over_rows.append(np.stack([base + lo[big], base + lo[big] + size[big]], axis=1))
        found_at, found_rows = np.concatenate(at), np.concatenate(rows)
        same = self._values(run, found_rows, ids=False) == keys[found_at]
        found_at, found_rows = found_at[same], found_rows[same]
        # buckets larger than the window (many rows of one key, or chance): search their keys
        big_at, big_rows = np.concatenate(over_at), np.concatenate(over_rows)
        if len(big_at):
            extra_at, extra_rows = [found_at], [found_rows]
            for position, (start, stop) in zip(big_at.tolist(), big_rows.tolist(), strict=True):
                bucket_keys, _ = self._slice(run, start, stop)
                # the window's rows were matched above; the rest of the bucket here
                first = max(
                    start + WINDOW, start + int(np.searchsorted(bucket_keys, keys[position]))
                )
                last = start + int(np.searchsorted(bucket_keys, keys[position], side="right"))
                if last > first:
                    extra_at.append(np.full(last - first, position, np.int64))
                    extra_rows.append(np.arange(first, last, dtype=np.int64))
            found_at, found_rows = np.concatenate(extra_at), np.concatenate(extra_rows)
        return found_at, found_rows

    def _prefetch(self) -> None:
        """Ask the OS to read what lookups read (bucket starts and fingerprints) into its
        page cache ahead of the search: a page that was dropped from the cache is then read in
        large sequential requests, not one small random read on the fault. Pages already
        cached cost nothing."""
        if self.directory is None:
            return
        for run in self.runs:
            for path in self._paths(run.name)[2:]:
                _advise(path, [(0, 0)], "WILLNEED")

    def _values(self, run: _Run, rows: np.ndarray, ids: bool) -> np.ndarray:
        """Keys (or ids) of `run` at the given rows, mapping one slice at a time."""
        if run.keys is not None and run.ids is not None:
            return (run.ids if ids else run.keys)[rows]
        order = np.argsort(rows, kind="stable")
        by_row = rows[order]
        self._prefetch_rows(run, by_row, ids)
        out = np.empty(len(rows), np.int64 if ids else np.uint64)
        bounds = np.searchsorted(by_row, np.arange(0, run.rows + SLICE_ROWS, SLICE_ROWS))
        for number in np.flatnonzero(np.diff(bounds)):
            lo, hi = bounds[number], bounds[number + 1]
            start = int(number) * SLICE_ROWS
            slice_keys, slice_ids = self._slice(run, start, min(run.rows, start + SLICE_ROWS))
            out[order[lo:hi]] = (slice_ids if ids else slice_keys)[by_row[lo:hi] - start]
        return out

    def _prefetch_rows(self, run: _Run, rows: np.ndarray, ids: bool) -> None:
        """Ask the OS to read the pages holding these rows (sorted) of the run's keys or ids,
        all at once, before they are read one by one: rows found by a lookup are scattered
        over the largest runs, whose keys and ids need not be in the page cache, and reads
        queued together finish far sooner than one random read per page fault."""
        if not len(rows):
            return
        pages = np.unique(rows // (PAGE // 8))
        # consecutive pages as one range
        starts = pages[np.flatnonzero(np.diff(pages, prepend=-2) != 1)]
        ends = pages[np.flatnonzero(np.diff(pages, append=pages[-1] + 2) != 1)] + 1
        ranges = list(zip((starts * PAGE).tolist(), ((ends - starts) * PAGE).tolist(), strict=True))
        _advise(self._paths(run.name)[1 if ids else 0], ranges, "WILLNEED")

    # ------------------------------------------------------------------ storage
    def _paths(self, name: str) -> tuple[Path, ...]:
        """The run's keys, ids, fingerprints and bucket starts."""
        assert self.directory is not None
        return tuple(self.directory / f"{name}{suffix}" for suffix in SUFFIXES)

    def _slice(self, run: _Run, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        if run.keys is not None and run.ids is not None:
            return run.keys[start:end], run.ids[start:end]
        if end <= start:
            return np.empty(0, np.uint64), np.empty(0, np.int64)
        keys_path, ids_path = self._paths(run.name)[:2]
        # a mapping of its own per slice: pages read are let go when the slice is dropped
        keys = np.memmap(keys_path, np.uint64, "r", offset=start * 8, shape=(end - start,))
        ids = np.memmap(ids_path, np.int64, "r", offset=start * 8, shape=(end - start,))
        return keys, ids

    def _fp(self, run: _Run, start: int, end: int) -> np.ndarray:
        if run.fp is not None:
            return run.fp[start:end]
        path = self._paths(run.name)[2]
        return np.memmap(path, np.uint16, "r", offset=start * 2, shape=(end - start,))

    def _dir(self, run: _Run, start: int, end: int) -> np.ndarray:
        if run.dir is not None:
            return run.dir[start:end]
        dtype = _dir_dtype(run.rows)
        path = self._paths(run.name)[3]
        return np.memmap(path, dtype, "r", offset=start * dtype.itemsize, shape=(end - start,))

    def _verify(self, run: _Run) -> None:
        """Check the run's keys and ids against its checksum, and write its fingerprints and
        bucket starts again from the keys (after a machine restart)."""
        assert self.directory is not None
        paths = self._paths(run.name)
        temporary = tuple(path.with_name(path.name + ".tmp") for path in paths[2:])
        prints = _Prints(run.rows, temporary)
        try:
            total = 0
            for start in range(0, run.rows, MERGE_ROWS):
                keys, ids = self._slice(run, start, min(run.rows, start + MERGE_ROWS))
                total = _add_checksum(total, keys, ids)
                prints.write(keys)
            if total != run.checksum:
                raise ValueError(f"run {run.name} does not match its checksum")
            prints.close()
        except BaseException:
            prints.abort()
            raise
        for made, path in zip(temporary, paths[2:], strict=True):
            os.replace(made, path)

    def _write(self, keys: np.ndarray, ids: np.ndarray) -> _Run:
        out = self._open_output(len(keys))
        out.write(keys, ids)
        return out.close()

    def _open_output(self, rows: int) -> _Output:
        name = f"run-{uuid.uuid4().hex[:16]}"
        return _Output(name, rows, None if self.directory is None else self._paths(name))

    def _drop(self, run: _Run | _Output) -> None:
        if self.directory is not None:
            for path in self._paths(run.name):
                path.unlink(missing_ok=True)

    def _reset(self) -> None:
        self._halt()
        for run in self.runs:
            self._drop(run)
        self.runs, self.rows, self.next_rowid, self.tail = [], 0, 0, None
        self._save()

    def _save(self) -> None:
        if self.directory is None:
            return
        manifest = {
            "format": FORMAT,
            "bucket_rows": BUCKET_ROWS,
            "window": WINDOW,
            "rows": self.rows,
            "next_rowid": self.next_rowid,
            "tail": self.tail,
            "boot_id": BOOT_ID,
            "runs": [
                {"name": run.name, "rows": run.rows, "checksum": run.checksum} for run in self.runs
            ],
            # a background merge: where the last process stopped it (its files hold that much)
            "merge": None if self.merging is None else self.merging.saved,
        }
        tmp = self.directory / f"{MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest))
        os.replace(tmp, self.directory / MANIFEST)

    def _resume(self, entry: dict[str, Any]) -> _Merge | None:
        """The merge the manifest notes as stopped part way, its output files cut back to
        that point; None when it cannot carry on (it then starts again when due)."""
        try:
            names = [run.name for run in self.runs]
            at = names.index(str(entry["older"]))
            if names[at + 1 : at + 2] != [str(entry["newer"])]:
                raise ValueError("its runs are not neighbours")
            older, newer = self.runs[at], self.runs[at + 1]
            older_at, newer_at = int(entry["older_at"]), int(entry["newer_at"])
            if not (0 <= older_at <= older.rows and 0 <= newer_at <= newer.rows):
                raise ValueError(f"it stopped at rows {older_at} and {newer_at}")
            name = str(entry["output"])
            out = _Output(
                name,
                older.rows + newer.rows,
                self._paths(name),
                written=older_at + newer_at,
                checksum=int(entry["checksum"]),
                next_bucket=int(entry["next_bucket"]),
            )
        except (ValueError, KeyError, TypeError, OSError) as exc:
            log.warning("LSH band index: a merge cannot carry on (%s); it starts again", exc)
            return None
        return _Merge(older, newer, out, older_at, newer_at, saved=entry)

    def _load(self) -> None:
        assert self.directory is not None
        path = self.directory / MANIFEST
        try:
            manifest = json.loads(path.read_text())
            layout = [manifest.get(name) for name in ("format", "bucket_rows", "window")]
            if layout != [FORMAT, BUCKET_ROWS, WINDOW]:
                raise ValueError(
                    f"layout {layout!r} (format, bucket rows, window), "
                    f"expected {[FORMAT, BUCKET_ROWS, WINDOW]!r}"
                )
            runs = []
            for entry in manifest["runs"]:
                run = _Run(str(entry["name"]), int(entry["rows"]), int(entry["checksum"]))
                sizes = (
                    run.rows * 8,
                    run.rows * 8,
                    (run.rows + _window_read()) * 2,
                    ((1 << run.bits) + 1) * _dir_dtype(run.rows).itemsize,
                )
                for file, size in zip(self._paths(run.name), sizes, strict=True):
                    if file.stat().st_size != size:
                        raise ValueError(f"{file.name} does not hold {run.rows} rows")
                runs.append(run)
            restarted = manifest.get("boot_id") != BOOT_ID and BOOT_ID is not None
            if restarted:  # written before the machine restarted: data may be lost
                for run in runs:
                    self._verify(run)
            rows = int(manifest["rows"])
            if rows != sum(run.rows for run in runs):
                raise ValueError("the runs do not add up to the rows covered")
            tail = manifest["tail"]
            self.runs, self.rows = runs, rows
            self.next_rowid = int(manifest["next_rowid"])
            self.tail = None if tail is None else [int(value) for value in tail]
            # a merge's files are cut back to where it stopped; after a restart they may hold
            # less, and it starts again
            if manifest.get("merge") and not restarted:
                self.merging = self._resume(manifest["merge"])
            if restarted:
                self._save()
        except FileNotFoundError as exc:
            if path.exists():
                log.warning("LSH band index: %s is missing; it will be rebuilt", exc.filename)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("LSH band index %s is unreadable (%s); it will be rebuilt", path, exc)
        # files of runs not in the manifest (a merge or a write cut short, an older layout)
        # and fingerprints being written again when a check was cut short
        known = {run.name for run in self.runs}
        if self.merging is not None:
            known.add(self.merging.out.name)
        for file in self.directory.glob("run-*"):
            if file.name.split(".")[0] not in known or file.suffix == ".tmp":
                file.unlink(missing_ok=True)


def _advise(path: Path, ranges: list[tuple[int, int]], advice: str) -> None:
    """Tell the OS of these (offset, length) ranges of the file (length 0: to its end) that
    they will be read soon (WILLNEED: read them into the page cache, without waiting for them)
    or not again soon (DONTNEED: let their pages go)."""
    if not hasattr(os, "posix_fadvise"):
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset, length in ranges:
            os.posix_fadvise(fd, int(offset), int(length), getattr(os, f"POSIX_FADV_{advice}"))
    finally:
        os.close(fd)


def _add_checksum(total: int, keys: np.ndarray, ids: np.ndarray) -> int:
    key_sum = int(np.sum(keys, dtype=np.uint64))
    id_sum = int(np.sum(np.asarray(ids).view(np.uint64), dtype=np.uint64))
    return (total + key_sum + id_sum) % 2**64


class _Prints:
    """A run's fingerprints and bucket starts, made from its keys as they go by in order."""

    def __init__(
        self, rows: int, paths: tuple[Path, ...] | None, written: int = 0, next_bucket: int = 0
    ):
        self.rows, self.paths = rows, paths
        self.bits = _bucket_bits(rows)
        self.dtype = _dir_dtype(rows)
        self.written = written
        self.next_bucket = next_bucket  # the first bucket whose start is not written yet
        self.parts: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
        sizes = [written * 2, next_bucket * self.dtype.itemsize]
        self.files = None if paths is None else _open_at(paths, sizes)

    def write(self, keys: np.ndarray) -> None:
        buckets = _buckets(np.asarray(keys), self.bits)
        if len(buckets):
            upto = int(buckets[-1]) + 1
            wanted = np.arange(self.next_bucket, upto)
            starts = (self.written + np.searchsorted(buckets, wanted)).astype(self.dtype)
            self._emit(_fingerprints(np.asarray(keys), self.bits), starts)
            self.next_bucket = upto
        self.written += len(buckets)

    def close(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Fingerprints padded with a window's read of zeros and bucket starts ended by the
        row count (in memory), or None (written to the files)."""
        rest = np.full((1 << self.bits) + 1 - self.next_bucket, self.written, self.dtype)
        self._emit(np.zeros(_window_read(), np.uint16), rest)
        if self.files is None:
            return np.concatenate(self.parts[0]), np.concatenate(self.parts[1])
        for handle in self.files:
            _close(handle)
        return None

    def _emit(self, prints: np.ndarray, starts: np.ndarray) -> None:
        if self.files is None:
            self.parts[0].append(prints)
            self.parts[1].append(starts)
        else:
            prints.tofile(self.files[0])
            starts.tofile(self.files[1])

    def abort(self) -> None:
        if self.files is not None and self.paths is not None:
            for handle, path in zip(self.files, self.paths, strict=True):
                handle.close()
                path.unlink(missing_ok=True)


class _Output:
    """A run being written, slice by slice; or carried on from where its files were left
    (`written` rows, with their checksum, and bucket starts up to `next_bucket`)."""

    def __init__(
        self,
        name: str,
        rows: int,
        paths: tuple[Path, ...] | None,
        written: int = 0,
        checksum: int = 0,
        next_bucket: int = 0,
    ):
        self.name, self.rows, self.paths = name, rows, paths
        self.written = written
        self.checksum = checksum
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []
        self.files = None if paths is None else _open_at(paths[:2], [written * 8] * 2)
        try:
            prints = None if paths is None else paths[2:]
            self.prints = _Prints(rows, prints, written, next_bucket)
        except BaseException:
            for handle in self.files or []:
                handle.close()
            raise

    def write(self, keys: np.ndarray, ids: np.ndarray) -> None:
        self.written += len(keys)
        self.checksum = _add_checksum(self.checksum, keys, ids)
        self.prints.write(keys)
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
        prints = self.prints.close()
        if self.files is None:
            assert prints is not None
            keys = np.concatenate([k for k, _ in self.parts] or [np.empty(0, np.uint64)])
            ids = np.concatenate([i for _, i in self.parts] or [np.empty(0, np.int64)])
            return _Run(self.name, self.rows, self.checksum, keys, ids, *prints)
        for handle in self.files:
            _close(handle)
        return _Run(self.name, self.rows, self.checksum)

    def pause(self) -> None:
        """Flush and close the files, to be carried on from by another `_Output`."""
        for handle in [*(self.files or []), *(self.prints.files or [])]:
            handle.close()

    def abort(self) -> None:
        self.prints.abort()
        if self.files is not None and self.paths is not None:
            for handle, path in zip(self.files, self.paths[:2], strict=True):
                handle.close()
                path.unlink(missing_ok=True)


def _open_at(paths: tuple[Path, ...], sizes: list[int]) -> list[Any]:
    """The files opened for appending after their first `sizes` bytes (cut back to that; a
    size of 0 makes a new file)."""
    handles: list[Any] = []
    try:
        for path, size in zip(paths, sizes, strict=True):
            if size:
                if path.stat().st_size < size:
                    raise ValueError(f"{path.name} holds fewer than {size} bytes")
                os.truncate(path, size)
                handles.append(open(path, "ab"))
            else:
                handles.append(open(path, "wb"))
    except BaseException:
        for handle in handles:
            handle.close()
        raise
    return handles


def _close(handle: Any) -> None:
    handle.flush()
    if BOOT_ID is None:
        os.fsync(handle.fileno())
    handle.close()


def _one(con: duckdb.DuckDBPyConnection, query: str, params: list[Any] | None = None) -> int:
    rows = con.execute(query, params or []).fetchall()
    return int(rows[0][0]) if rows else 0


def _row(con: duckdb.DuckDBPyConnection, rowid: int) -> list[int] | None:
    rows = con.execute(
        "SELECT article_id, band, band_hash FROM lsh_bands WHERE rowid = ?", [rowid]
    ).fetchall()
    return [int(value) for value in rows[0]] if rows else None
