"""The LSH band index: what it finds equals a join over every stored band row, it follows
lsh_bands as rows are appended, and it is rebuilt from the table whenever the two disagree."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from store import band_index
from store.band_index import BandIndex, band_keys
from store.db import Store


@pytest.fixture
def small_slices(monkeypatch):
    """Buckets, windows, slices and reads of a few rows, so lookups and merges cross many of
    their edges."""
    monkeypatch.setattr(band_index, "BUCKET_ROWS", 2)
    monkeypatch.setattr(band_index, "WINDOW", 4)
    monkeypatch.setattr(band_index, "SLICE_ROWS", 12)
    monkeypatch.setattr(band_index, "MERGE_ROWS", 7)
    monkeypatch.setattr(band_index, "BASE_ROWS", 40)
    monkeypatch.setattr(band_index, "READ_ROWS", 50)


def _bands(rng: np.random.Generator, articles: range, per_article: int, pool: int) -> pa.Table:
    """Band rows whose hashes come from a small pool, so articles share bands (and equal
    hashes turn up in different bands, which must not match)."""
    n = len(articles) * per_article
    return pa.table(
        {
            "article_id": pa.array(np.repeat(np.array(articles), per_article), pa.int64()),
            "passage_no": pa.array(np.zeros(n), pa.int16()),
            "band": pa.array(rng.integers(0, 4, n), pa.uint8()),
            "band_hash": pa.array(rng.integers(0, pool, n).astype(np.uint64), pa.uint64()),
        }
    )


REFERENCE = """
    WITH new_bands AS (SELECT * FROM _new),
    others AS (
        SELECT article_id, band, band_hash FROM lsh_bands
        UNION ALL SELECT article_id, band, band_hash FROM new_bands
    )
    SELECT n.article_id, o.article_id, count(*) FROM new_bands n
    JOIN others o ON n.band = o.band AND n.band_hash = o.band_hash
    WHERE n.article_id <> o.article_id GROUP BY ALL ORDER BY ALL
"""


def _reference(store: Store, new: pa.Table) -> list[tuple[int, int, int]]:
    """Every pair sharing a band, from a join over the whole table."""
    store.con.register("_new", new)
    try:
        return [tuple(map(int, row)) for row in store.sql(REFERENCE)]
    finally:
        store.con.unregister("_new")


@pytest.mark.parametrize("on_disk", [True, False])
@pytest.mark.parametrize(
    "bucket_rows,window,slice_rows",
    [(2, 4, 12), (1, 1, 3), (4, 2, 8), (8, 32, 1 << 24)],  # the last: the shipped layout
)
def test_lookup_finds_every_row_holding_a_wanted_key(
    tmp_path, monkeypatch, on_disk, bucket_rows, window, slice_rows
):
    monkeypatch.setattr(band_index, "BUCKET_ROWS", bucket_rows)
    monkeypatch.setattr(band_index, "WINDOW", window)
    monkeypatch.setattr(band_index, "SLICE_ROWS", slice_rows)
    monkeypatch.setattr(band_index, "MERGE_ROWS", slice_rows)
    monkeypatch.setattr(band_index, "BASE_ROWS", 16)
    rng = np.random.default_rng(3)
    pool = band_keys(np.zeros(60, np.uint8), np.arange(60, dtype=np.uint64))  # spread keys
    index = BandIndex(tmp_path / "idx" if on_disk else None)
    all_keys, all_ids = [], []
    for batch in range(12):  # runs of uneven sizes, merged as they come
        n = int(rng.integers(1, 40))
        keys = pool[rng.integers(0, 60, n)]  # repeats within and across runs
        keys[: n // 3] = pool[7]  # one key held by many rows: its bucket outgrows the window
        ids = np.arange(n, dtype=np.int64) + 100 * batch
        order = np.argsort(keys, kind="stable")
        index._add(keys[order], ids[order], next_rowid=index.rows + n, tail=None)
        all_keys.append(keys)
        all_ids.append(ids)
    keys, ids = np.concatenate(all_keys), np.concatenate(all_ids)
    assert 1 < len(index.runs) < 12  # runs were merged, one per level
    levels = [band_index._level(run.rows) for run in index.runs]
    assert levels == sorted(set(levels), reverse=True)
    for run in index.runs:
        stored, _ = index._slice(run, 0, run.rows)
        assert np.all(stored[:-1] <= stored[1:])
    # stored keys, keys sharing a stored key's bucket and fingerprint (the low bit flipped:
    # only the full key tells them apart), keys never stored, and both ends of the range
    wanted = np.unique(
        np.concatenate(
            [
                pool[rng.integers(0, 60, 30)],
                pool[:20] ^ np.uint64(1),  # pool[7] ^ 1 meets the rows of pool[7] again
                band_keys(np.ones(10, np.uint8), np.arange(10, dtype=np.uint64)),
                np.array([0, 2**64 - 1], np.uint64),
            ]
        )
    )
    at, found = index.lookup(wanted)
    got = sorted(zip(wanted[at].tolist(), found.tolist(), strict=True))
    expected = sorted(
        (int(k), int(i)) for k, i in zip(keys, ids, strict=True) if np.isin(k, wanted)
    )
    assert got == expected
    assert any(k == int(pool[7]) for k, _ in got)
    assert index.lookup(np.empty(0, np.uint64))[0].size == 0


def test_band_keys_keep_bands_apart():
    same_hash = band_keys(np.array([0, 1, 0]), np.array([5, 5, 6], np.uint64))
    assert len(set(same_hash.tolist())) == 3
    assert band_keys(np.array([2]), np.array([9], np.uint64))[0] == band_keys([2], [9])[0]


@pytest.mark.parametrize("path", ["s.duckdb", ":memory:"])
def test_candidate_pairs_equal_a_join_over_every_stored_row(tmp_path, small_slices, path):
    rng = np.random.default_rng(7)
    location = path if path == ":memory:" else tmp_path / path
    with Store(location) as store:
        store._insert("lsh_bands", _bands(rng, range(1, 60), 5, 400))
        next_id = 60
        for _ in range(6):  # each batch's rows are stored before the next searches
            new = _bands(rng, range(next_id, next_id + 15), 5, 400)
            pairs = store.candidate_pairs(new, max_per_article=1000)
            assert pairs, "the hash pool is small enough for articles to share bands"
            assert sorted(pairs) == _reference(store, new)
            store._insert("lsh_bands", new)
            next_id += 15
        assert store.band_index.rows < store.sql("SELECT count(*) FROM lsh_bands")[0][0]
        store.band_index.sync(store.con)
        assert store.band_index.rows == store.sql("SELECT count(*) FROM lsh_bands")[0][0]
        assert store.band_index.rebuilds == 0


def _filled_store(path: Path, rng: np.random.Generator) -> tuple[Store, pa.Table]:
    store = Store(path)
    store._insert("lsh_bands", _bands(rng, range(1, 80), 5, 300))
    new = _bands(rng, range(500, 510), 5, 300)
    store.candidate_pairs(new, 1000)  # builds the index
    return store, new


def test_index_is_read_back_from_disk_not_rebuilt(tmp_path, small_slices):
    rng = np.random.default_rng(11)
    store, new = _filled_store(tmp_path / "s.duckdb", rng)
    runs = [(run.name, run.rows) for run in store.band_index.runs]
    store.close()
    with Store(tmp_path / "s.duckdb") as again:
        index = again.band_index
        assert [(run.name, run.rows) for run in index.runs] == runs
        assert sorted(again.candidate_pairs(new, 1000)) == _reference(again, new)
        assert index.rebuilds == 0
        assert [(run.name, run.rows) for run in index.runs] == runs


def _damage_manifest(directory: Path) -> None:
    (directory / "manifest.json").write_text("{not json")


def _delete_a_run(directory: Path) -> None:
    next(directory.glob("run-*.ids")).unlink()


def _truncate_a_run(directory: Path) -> None:
    path = next(directory.glob("run-*.keys"))
    path.write_bytes(path.read_bytes()[:-8])


def _truncate_fingerprints(directory: Path) -> None:
    path = next(directory.glob("run-*.fp"))
    path.write_bytes(path.read_bytes()[:-2])


def _older_layout(directory: Path) -> None:
    """An index written by a version with another file layout."""
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["format"] = 1
    (directory / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "damage",
    [_damage_manifest, _delete_a_run, _truncate_a_run, _truncate_fingerprints, _older_layout],
)
def test_damaged_index_files_are_rebuilt_from_the_table(tmp_path, small_slices, damage):
    rng = np.random.default_rng(13)
    store, new = _filled_store(tmp_path / "s.duckdb", rng)
    store.close()
    damage(tmp_path / "s.duckdb.bands")
    with Store(tmp_path / "s.duckdb") as again:
        assert sorted(again.candidate_pairs(new, 1000)) == _reference(again, new)
        assert again.band_index.rows == again.sql("SELECT count(*) FROM lsh_bands")[0][0]


def test_index_ahead_of_a_database_copied_back_is_rebuilt(tmp_path, small_slices):
    """The database is restored from a copy taken before more batches were stored; the index
    beside it covers rows the table no longer has."""
    rng = np.random.default_rng(17)
    store, new = _filled_store(tmp_path / "s.duckdb", rng)
    store.close()
    shutil.copy(tmp_path / "s.duckdb", tmp_path / "copy.duckdb")
    with Store(tmp_path / "s.duckdb") as later:
        later._insert("lsh_bands", _bands(rng, range(600, 640), 5, 300))
        later.candidate_pairs(new, 1000)
    shutil.copy(tmp_path / "copy.duckdb", tmp_path / "s.duckdb")
    with Store(tmp_path / "s.duckdb") as restored:
        pairs = restored.candidate_pairs(new, 1000)
        assert restored.band_index.rebuilds == 1
        assert sorted(pairs) == _reference(restored, new)
        assert all(other < 600 for _, other, _ in pairs)


def test_index_over_a_table_with_rows_replaced_is_rebuilt(tmp_path, small_slices):
    """Same row count, other rows: the last covered row no longer matches."""
    rng = np.random.default_rng(19)
    store, new = _filled_store(tmp_path / "s.duckdb", rng)
    with store:
        store.sql("DELETE FROM lsh_bands WHERE article_id < 5")
        deleted = 79 * 5 - store.sql("SELECT count(*) FROM lsh_bands")[0][0]
        store._insert("lsh_bands", _bands(rng, range(700, 700 + deleted // 5), 5, 300))
        pairs = store.candidate_pairs(new, 1000)
        assert store.band_index.rebuilds == 1
        assert sorted(pairs) == _reference(store, new)
        assert not any(other < 5 for _, other, _ in pairs)


def test_a_merge_cut_short_leaves_a_usable_index(tmp_path, small_slices, monkeypatch):
    rng = np.random.default_rng(23)
    store, new = _filled_store(tmp_path / "s.duckdb", rng)
    store._insert("lsh_bands", _bands(rng, range(800, 900), 5, 300))
    writes = 0
    real_write = band_index._Output.write

    def failing_write(self, keys, ids):
        nonlocal writes
        writes += 1
        if writes == 3:
            raise OSError("disk full")
        real_write(self, keys, ids)

    monkeypatch.setattr(band_index._Output, "write", failing_write)
    with pytest.raises(OSError, match="disk full"):
        store.candidate_pairs(new, 1000)
    monkeypatch.setattr(band_index._Output, "write", real_write)
    store.close()
    with Store(tmp_path / "s.duckdb") as again:
        names = {run.name for run in again.band_index.runs}
        on_disk = {path.name.split(".")[0] for path in (tmp_path / "s.duckdb.bands").glob("run-*")}
        assert on_disk == names  # the unfinished run's files are gone
        assert sorted(again.candidate_pairs(new, 1000)) == _reference(again, new)
        assert again.band_index.rebuilds == 0


def test_after_a_machine_restart_runs_are_checked_against_their_checksums(
    tmp_path, small_slices, monkeypatch
):
    """Run files are not synced to disk as they are written; after a restart a run that lost
    data is caught by its checksum and the index is rebuilt, while intact runs are kept."""
    rng = np.random.default_rng(29)
    store, new = _filled_store(tmp_path / "s.duckdb", rng)
    store.close()
    directory = tmp_path / "s.duckdb.bands"
    monkeypatch.setattr(band_index, "BOOT_ID", "another-boot")
    with Store(tmp_path / "s.duckdb") as again:  # intact: kept, noted as checked
        runs = [run.name for run in again.band_index.runs]
        assert runs
        assert sorted(again.candidate_pairs(new, 1000)) == _reference(again, new)
        assert again.band_index.rebuilds == 0
    assert '"boot_id": "another-boot"' in (directory / "manifest.json").read_text()
    # fingerprints lost, keys intact: written again from the keys, nothing rebuilt
    monkeypatch.setattr(band_index, "BOOT_ID", "a-second-boot")
    for prints in directory.glob("run-*.fp"):
        prints.write_bytes(bytes(prints.stat().st_size))
    with Store(tmp_path / "s.duckdb") as again:
        assert [run.name for run in again.band_index.runs] == runs
        assert sorted(again.candidate_pairs(new, 1000)) == _reference(again, new)
        assert again.band_index.rebuilds == 0
    assert not list(directory.glob("*.tmp"))
    monkeypatch.setattr(band_index, "BOOT_ID", "a-third-boot")
    lost = directory / f"{runs[0]}.keys"
    lost.write_bytes(bytes(lost.stat().st_size))  # same size, data gone
    with Store(tmp_path / "s.duckdb") as restarted:
        assert restarted.band_index.runs == []
        assert sorted(restarted.candidate_pairs(new, 1000)) == _reference(restarted, new)
        assert restarted.band_index.rows == restarted.sql("SELECT count(*) FROM lsh_bands")[0][0]


# ---------------------------------------------------------------- merges in the background
class _Held:
    """Holds the background merge thread at the start of its `step`-th step, until released
    (or told to stop), so a test can act while a merge is under way."""

    def __init__(self, monkeypatch, step: int = 1):
        self.step, self.calls = step, 0
        self.entered, self.gate = threading.Event(), threading.Event()
        self.index: BandIndex | None = None
        self.real = real = BandIndex._merge_step

        def held(index, *args):
            if threading.current_thread().name == "band-index-merge":
                self.calls += 1
                if self.calls == self.step:
                    self.index = index
                    self.entered.set()
                    while not self.gate.wait(0.01):
                        if index.merging is not None and index.merging.stop.is_set():
                            break
            return real(index, *args)

        monkeypatch.setattr(BandIndex, "_merge_step", held)

    def wait_entered(self) -> None:
        assert self.entered.wait(10), "the background merge never started"


@pytest.fixture
def background(small_slices, monkeypatch):
    """Merges into more than 100 rows run in the background (runs of 30 rows: the fourth
    run added starts one)."""
    monkeypatch.setattr(band_index, "INLINE_ROWS", 100)


def _fill(index: BandIndex, rng: np.random.Generator, runs: int, rows: int = 30):
    """`runs` runs of random keys (some repeated) added to the index; returns all rows."""
    pool = band_keys(np.zeros(80, np.uint8), np.arange(80, dtype=np.uint64))
    all_keys, all_ids = [], []
    for _ in range(runs):
        keys = pool[rng.integers(0, 80, rows)]
        ids = np.arange(rows, dtype=np.int64) + index.rows
        order = np.argsort(keys, kind="stable")
        index._add(keys[order], ids[order], next_rowid=index.rows + rows, tail=None)
        all_keys.append(keys)
        all_ids.append(ids)
    return np.concatenate(all_keys), np.concatenate(all_ids), pool


def _check_lookups(index: BandIndex, keys, ids, pool) -> None:
    wanted = np.unique(np.concatenate([pool[::3], pool[:10] ^ np.uint64(1)]))
    at, found = index.lookup(wanted)
    got = sorted(zip(wanted[at].tolist(), found.tolist(), strict=True))
    expected = sorted(
        (int(k), int(i)) for k, i in zip(keys, ids, strict=True) if np.isin(k, wanted)
    )
    assert got and got == expected


def _check_runs(index: BandIndex, directory: Path) -> None:
    """Each run's files hold its rows sorted, its checksum, and the fingerprints and bucket
    starts its keys give; no other run files are left."""
    for run in index.runs:
        keys, ids = index._slice(run, 0, run.rows)
        assert np.all(keys[:-1] <= keys[1:])
        assert band_index._add_checksum(0, keys, ids) == run.checksum
        prints = band_index._Prints(run.rows, None)
        prints.write(keys)
        fp, starts = prints.close()
        assert np.array_equal(np.fromfile(directory / f"{run.name}.fp", np.uint16), fp)
        assert np.array_equal(np.fromfile(directory / f"{run.name}.dir", starts.dtype), starts)
    names = {path.name.split(".")[0] for path in directory.glob("run-*")}
    assert names == {run.name for run in index.runs}


def test_lookups_go_on_during_a_background_merge(tmp_path, background, monkeypatch):
    held = _Held(monkeypatch)
    rng = np.random.default_rng(31)
    directory = tmp_path / "idx"
    index = BandIndex(directory)
    keys, ids, pool = _fill(index, rng, 4)
    held.wait_entered()
    job = index.merging
    assert job is not None and job.rows == 120
    assert job.older in index.runs and job.newer in index.runs
    _check_lookups(index, keys, ids, pool)  # from the two runs being merged
    more_keys, more_ids, _ = _fill(index, rng, 3)  # merges of the newer runs go on meanwhile
    keys, ids = np.concatenate([keys, more_keys]), np.concatenate([ids, more_ids])
    assert len(index.runs) == 4  # the two being merged, and the newer ones merged as usual
    assert index.merging is job
    _check_lookups(index, keys, ids, pool)
    held.gate.set()
    index.wait()
    assert index.merging is None
    assert job.older not in index.runs and job.newer not in index.runs
    levels = [band_index._level(run.rows) for run in index.runs]
    assert levels == sorted(set(levels), reverse=True)
    assert sum(run.rows for run in index.runs) == index.rows == 210
    _check_lookups(index, keys, ids, pool)
    _check_runs(index, directory)
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["merge"] is None
    assert [run["name"] for run in manifest["runs"]] == [run.name for run in index.runs]


def _stopped_part_way(tmp_path: Path, monkeypatch) -> tuple[Path, np.ndarray, np.ndarray, Any]:
    """An index closed while a background merge was at its third step."""
    held = _Held(monkeypatch, step=3)
    directory = tmp_path / "idx"
    index = BandIndex(directory)
    keys, ids, pool = _fill(index, np.random.default_rng(37), 4)
    held.wait_entered()
    index.close()  # tells the held step to stop; it stops before the next
    assert not held.gate.is_set()
    manifest = json.loads((directory / "manifest.json").read_text())
    merge = manifest["merge"]
    assert 0 < merge["older_at"] + merge["newer_at"] < 120  # three steps of up to 14 rows
    assert [run["name"] for run in manifest["runs"]][-2:] == [merge["older"], merge["newer"]]
    monkeypatch.setattr(BandIndex, "_merge_step", held.real)  # not held any more
    return directory, keys, ids, pool


def test_a_background_merge_stopped_by_close_carries_on_in_the_next_process(
    tmp_path, background, monkeypatch
):
    directory, keys, ids, pool = _stopped_part_way(tmp_path, monkeypatch)
    merge = json.loads((directory / "manifest.json").read_text())["merge"]
    output = directory / merge["output"]
    # a process that died after the note would have written more: cut back when carrying on
    for suffix in (".keys", ".fp"):
        with open(f"{output}{suffix}", "ab") as more:
            more.write(bytes(16))
    index = BandIndex(directory)
    assert index.merging is not None
    assert (index.merging.older_at, index.merging.newer_at) == (
        merge["older_at"],
        merge["newer_at"],
    )
    _check_lookups(index, keys, ids, pool)  # before it carries on
    index.wait()
    assert index.merging is None
    assert [run.rows for run in index.runs] == [120]
    _check_lookups(index, keys, ids, pool)
    _check_runs(index, directory)
    merged, _ = index._slice(index.runs[0], 0, 120)
    assert np.array_equal(merged, np.sort(keys))


def test_a_stopped_merge_is_started_again_after_a_machine_restart(
    tmp_path, background, monkeypatch
):
    directory, keys, ids, pool = _stopped_part_way(tmp_path, monkeypatch)
    monkeypatch.setattr(band_index, "BOOT_ID", "another-boot")  # its files may hold less
    index = BandIndex(directory)
    assert index.merging is None
    _check_runs(index, directory)  # its output's files are gone
    index.wait()  # due again: made from the start
    assert [run.rows for run in index.runs] == [120]
    _check_lookups(index, keys, ids, pool)
    _check_runs(index, directory)


def test_a_stopped_merge_whose_files_were_lost_starts_again(tmp_path, background, monkeypatch):
    directory, keys, ids, pool = _stopped_part_way(tmp_path, monkeypatch)
    merge = json.loads((directory / "manifest.json").read_text())["merge"]
    path = directory / f"{merge['output']}.ids"
    path.write_bytes(path.read_bytes()[:-8])
    index = BandIndex(directory)
    assert index.merging is None and index.rebuilds == 0
    index.wait()
    assert [run.rows for run in index.runs] == [120]
    _check_lookups(index, keys, ids, pool)
    _check_runs(index, directory)


def test_a_merge_complete_but_not_in_place_at_close_is_put_in_place_next_time(
    tmp_path, background, monkeypatch
):
    directory = tmp_path / "idx"
    index = BandIndex(directory)
    with index._lock:  # held as a long lookup would: the merge cannot put its run in place
        keys, ids, pool = _fill(index, np.random.default_rng(41), 4)
        job = index.merging
        assert job is not None
        deadline = time.monotonic() + 10
        while job.written < job.rows or job.out.prints.files[0].closed is False:
            assert time.monotonic() < deadline, "the merge did not finish"
            time.sleep(0.01)
        index.close()
    assert job.saved is not None and job.saved["older_at"] + job.saved["newer_at"] == 120
    assert len(index.runs) == 2
    again = BandIndex(directory)
    assert again.merging is not None and again.merging.written == 120
    again.wait()
    assert [run.rows for run in again.runs] == [120]
    _check_lookups(again, keys, ids, pool)
    _check_runs(again, directory)


def test_a_rebuild_during_a_background_merge_drops_it(tmp_path, background, monkeypatch):
    held = _Held(monkeypatch)
    rng = np.random.default_rng(43)
    directory = tmp_path / "idx"
    index = BandIndex(directory)
    _fill(index, rng, 4)
    held.wait_entered()
    output = index.merging.out.name
    with index._lock:
        index._reset()  # what sync does when lsh_bands no longer matches
    assert index.merging is None and index.runs == []
    assert not list(directory.glob(f"{output}*"))
    keys, ids, pool = _fill(index, rng, 2)
    _check_lookups(index, keys, ids, pool)
    _check_runs(index, directory)


def test_a_failed_background_merge_is_logged_and_made_again(
    tmp_path, background, monkeypatch, caplog
):
    real = BandIndex._merge_step
    failures = []

    def failing(index, *args):
        if threading.current_thread().name == "band-index-merge" and not failures:
            failures.append(1)
            raise OSError("disk full")
        return real(index, *args)

    monkeypatch.setattr(BandIndex, "_merge_step", failing)
    directory = tmp_path / "idx"
    index = BandIndex(directory)
    keys, ids, pool = _fill(index, np.random.default_rng(47), 4)
    job = index.merging
    assert job is not None and job.thread is not None
    job.thread.join()
    assert isinstance(job.failed, OSError)
    assert "merging" in caplog.text and "disk full" in caplog.text
    _check_lookups(index, keys, ids, pool)
    index.wait()  # made again
    assert [run.rows for run in index.runs] == [120]
    _check_lookups(index, keys, ids, pool)
    _check_runs(index, directory)


def test_store_close_stops_a_background_merge_and_the_next_store_carries_on(
    tmp_path, background, monkeypatch
):
    held = _Held(monkeypatch, step=2)
    rng = np.random.default_rng(53)
    path = tmp_path / "s.duckdb"
    store = Store(path)
    store._insert("lsh_bands", _bands(rng, range(1, 40), 3, 300))
    new = _bands(rng, range(500, 520), 3, 300)
    store.candidate_pairs(new, 1000)  # catching up: merges made as they come
    for first in range(40, 400, 12):  # batches as detection passes add them
        store._insert("lsh_bands", _bands(rng, range(first, first + 12), 3, 300))
        store.band_index.sync(store.con)
        if store.band_index.merging is not None:
            break
    held.wait_entered()
    assert sorted(store.candidate_pairs(new, 1000)) == _reference(store, new)
    store.close()
    merge = json.loads((tmp_path / "s.duckdb.bands" / "manifest.json").read_text())["merge"]
    assert merge is not None and 0 < merge["older_at"] + merge["newer_at"] <= 2 * 14
    monkeypatch.setattr(BandIndex, "_merge_step", held.real)
    with Store(path) as again:
        assert sorted(again.candidate_pairs(new, 1000)) == _reference(again, new)
        again.band_index.wait()
        assert again.band_index.merging is None and again.band_index.rebuilds == 0
        assert sorted(again.candidate_pairs(new, 1000)) == _reference(again, new)
        _check_runs(again.band_index, tmp_path / "s.duckdb.bands")
