"""Incremental detection against a growing store: 1,000 new articles against 10k, 100k and 1M
stored ones. Time and peak memory at each size.

    .venv/bin/python bench/detection_scaling.py [--sizes 10000,100000,1000000] [--new 1000]
        [--rounds 4] [--keep DIR]

The stored part is real where it matters and synthetic where it only has to be there:
- 4,000 articles of the synthetic corpus (bench/synthetic.py) are stored and detected for real
  (signatures, LSH bands, chrome paragraphs, clusters, matches), so the new articles meet real
  candidates: about 30% of them re-post a story stored shortly before.
- The rest, up to the size, is generated in DuckDB: articles with short texts, random MinHash
  signatures, LSH band rows with uniform 64-bit hashes for the whole text and for a number of
  passages drawn from the corpus's own distribution (12.3 on average: 565 band rows per
  article, 565 million at 1M), outlet paragraph keys (6 per article plus each outlet's house
  lines), cluster memberships and matches. The LSH band index (store/band_index.py) then
  takes in the generated band rows, as it would have batch by batch; the time is printed.
The new articles are the next 1,000 of the corpus, in four rounds (the next 1,000 again each
time, against the same store, which keeps the earlier rounds' articles); sizes take turns
within a round, so that a slow spell of the machine weighs on all sizes alike, and the ratio
printed is between the medians of the rounds. Each measurement runs in a fresh process (open
the store, store the new articles, `flows.stages.detect` with a `StageClock`); peak memory is
that process's peak resident set. The files the band index's lookups read (bucket
starts and fingerprints, 1.2 GB at 1M) are read just before, so they sit in the OS page cache
as they do when cycles run every few minutes (every batch's lookups touch nearly all their
pages), and the machine's dirty pages are written back first (filling and copying the stores
leaves gigabytes of them). The database file is flushed to disk but not read through:
detection reads only small parts of it (lsh_bands, most of the file, is only appended to), and
this machine keeps only about 8 GB of page cache, so reading the 10 GB file through would push
the index out. Data lives in /tmp and is deleted afterwards (unless --keep).

A large merge of the band index's runs runs in the background (store/band_index.py): a
measurement notes how far one got while its store was open (it runs beside the detection pass,
which pays for sharing the machine with it) and how long closing took. A merge still unfinished
after the last round is finished at the end, in a process of its own, and its time printed apart.

Prints figures only; never asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from detection_cost import article_rows  # noqa: E402
from synthetic import START, machine, peak_rss_mib, synthetic_corpus  # noqa: E402

from flows.stages import StageClock, detect  # noqa: E402
from narratives.detect import sign_text  # noqa: E402
from narratives.params import DEFAULT_PARAMS  # noqa: E402
from store.db import Store  # noqa: E402


def _index_dir(db: Path) -> Path:
    return Path(str(db) + ".bands")


def _copy_store(source: Path, target: Path) -> None:
    """A store is its database file and its band index folder."""
    shutil.copy(source, target)
    shutil.rmtree(_index_dir(target), ignore_errors=True)
    if _index_dir(source).exists():
        shutil.copytree(_index_dir(source), _index_dir(target))


def _remove_store(db: Path) -> None:
    db.unlink(missing_ok=True)
    shutil.rmtree(_index_dir(db), ignore_errors=True)


REAL = 4000
ROUNDS = 4  # batches of new articles measured at each size, sizes taking turns
CORPUS = REAL + ROUNDS * 1000


def _corpus_rows() -> list[dict[str, object]]:
    corpus = synthetic_corpus(100, CORPUS)
    return article_rows(corpus, START)


def build_base(path: Path, rows: list[dict[str, object]]) -> np.ndarray:
    """The real part: REAL articles stored and detected in cycles of 1,000. Returns the
    passage counts of their texts (the distribution the synthetic part draws from)."""
    store = Store(path)
    for cycle in range(REAL // 1000):
        batch = rows[cycle * 1000 : (cycle + 1) * 1000]
        as_of = START + timedelta(days=400, hours=cycle)
        for row in batch:
            row["first_seen_at"] = as_of
        store.insert_articles(batch)
        detect(store, f"base-{cycle}", as_of, DEFAULT_PARAMS)
    store.close()
    return np.array(
        [len(sign_text(str(r["text"]), set(), DEFAULT_PARAMS).passages) for r in rows[:REAL]]
    )


def add_filler(path: Path, count: int, passages: np.ndarray) -> tuple[float, float]:
    """Append `count` synthetic stored articles (older than the real ones) with everything
    detection reads. Returns seconds taken to fill the tables and to index their band rows."""
    started = time.perf_counter()
    store = Store(path, memory_limit="8GB")  # bulk loading 100,000 articles at a time
    con = store.con
    bands = DEFAULT_PARAMS.bands
    dist = ", ".join(str(int(p)) for p in passages[:1000])
    chunk = 100_000
    for first in range(0, count, chunk):
        n = min(chunk, count - first)
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE filler AS
            SELECT (hash(i, 'narratrace-filler') >> 2)::BIGINT AS article_id,
                   i,
                   'outlet-' || lpad((i % 100)::VARCHAR, 3, '0') AS outlet_id,
                   ([{dist}])[1 + (i % 1000)::INTEGER] AS passages,
                   TIMESTAMPTZ '{START.isoformat()}' - to_seconds(i * 30) AS seen
            FROM range({first}, {first + n}) r(i)
            """
        )
        con.execute(
            """
            INSERT INTO articles (article_id, canonical_url, url, outlet_id, feed_url, title,
                author, sitename, language, published_at, first_seen_at, text, text_source,
                content_hash, word_count, run_id)
            SELECT article_id, 'https://filler.example/' || i, 'https://filler.example/' || i,
                   outlet_id, 'https://filler.example/feed', 'Stored article ' || i, '', '',
                   'en', seen, seen, 'A stored article, number ' || i || '.', 'page',
                   md5(i::VARCHAR), 600, 'filler'
            FROM filler
            """
        )
        con.execute(
            f"""
            INSERT INTO signatures
            SELECT article_id, '{DEFAULT_PARAMS.param_set_id}', 600, passages,
                   list_transform(range(128), lambda k: (hash(i, k) % 4294967296)::UINTEGER)
                       ::UINTEGER[128]
            FROM filler
            """
        )
        con.execute(
            f"""
            INSERT INTO lsh_bands
            SELECT article_id, p::SMALLINT, b::UTINYINT, hash(i, p, b)
            FROM filler, range(0, passages + 1) t(p), range({bands}) u(b)
            """
        )
        con.execute(
            """
            INSERT INTO outlet_paragraphs
            SELECT outlet_id, (hash(i, k) >> 1)::BIGINT, article_id
            FROM filler, range(6) t(k)
            UNION ALL
            SELECT outlet_id, (hash(outlet_id, k) >> 1)::BIGINT, article_id
            FROM filler, range(2) t(k)
            """
        )
        con.execute(
            """
            INSERT INTO clusters
            SELECT 'F' || (i // 3), article_id, seen, 'active', NULL, 'filler'
            FROM filler WHERE i % 3 = 0
            """
        )
        con.execute(
            """
            INSERT INTO cluster_members
            SELECT article_id, 'F' || (i // 3), NULL, NULL, NULL, NULL, NULL, seen, 'filler'
            FROM filler
            """
        )
        con.execute("CHECKPOINT")
    con.execute("DROP TABLE filler")
    con.execute("CHECKPOINT")
    store.close()
    filled = time.perf_counter() - started
    started = time.perf_counter()
    with Store(path) as store:
        store.band_index.sync(store.con)
        store.band_index.wait()
    return filled, time.perf_counter() - started


def _drop_from_page_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _flush(path: Path) -> None:
    """Flush the file to disk: a fresh copy's dirty pages would make the first commit wait for
    gigabytes of writeback."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_through(path: Path) -> None:
    """Flush the file, then read it once, so it sits in the OS page cache as it does for files
    a cycle reads every few minutes (a first read from this machine's disk is disk-bound)."""
    _flush(path)
    with open(path, "rb") as data:
        while data.read(1 << 24):
            pass


def _lookup_files(path: Path) -> list[Path]:
    """The band index files a lookup reads through: each run's bucket starts and
    fingerprints (it reads its keys and ids only where a fingerprint matches)."""
    return sorted([*_index_dir(path).glob("run-*.dir"), *_index_dir(path).glob("run-*.fp")])


def measure(path: Path, new: int, round_no: int) -> dict[str, object]:
    """Run in a fresh process: store the round's `new` articles and detect them."""
    first = REAL + round_no * new
    rows = _corpus_rows()[first : first + new]
    as_of = START + timedelta(days=401, hours=round_no)
    for row in rows:
        row["first_seen_at"] = as_of
    started = time.perf_counter()
    store = Store(path)
    opened = time.perf_counter() - started
    stored = store.count("articles")
    band_rows = store.count("lsh_bands")
    store.insert_articles(rows)
    index = store.band_index
    runs_before = [run.rows for run in index.runs]
    merge_before = _merge_state(index)
    # again, just before: this machine reclaims cold page cache within seconds
    for file in _lookup_files(path):
        _read_through(file)
    clock = StageClock()
    started = time.perf_counter()
    found = detect(store, "measured", as_of, DEFAULT_PARAMS, clock)
    took = time.perf_counter() - started
    runs_after = [run.rows for run in index.runs]
    index_mib = sum(f.stat().st_size for f in _index_dir(path).glob("run-*")) / 2**20
    started = time.perf_counter()
    store.close()
    closed = time.perf_counter() - started
    merge_after = _merge_state(index)
    return {
        "stored": stored,
        "band_rows": band_rows,
        "open_s": round(opened, 2),
        "detect_s": round(took, 3),
        "signed": found.articles_signed,
        "pairs": found.pairs_checked,
        "joined": found.clusters_joined,
        "stages": {k: round(v, 3) for k, v in clock.seconds.items()},
        "peak_rss_mib": round(peak_rss_mib()),
        "index_runs": f"{len(runs_before)} -> {len(runs_after)}",
        "index_mib": round(index_mib),
        "index_rebuilds": index.rebuilds,
        "close_s": round(closed, 2),
        "merge": _merge_note(merge_before, merge_after),
    }


def _merge_state(index) -> tuple[str, int, int] | None:
    """The band index's background merge: (output name, rows written, rows in all)."""
    job = index.merging
    return None if job is None else (job.out.name, job.written, job.rows)


def _merge_note(before: tuple[str, int, int] | None, after: tuple[str, int, int] | None) -> str:
    """What the background merge did while the store was open."""
    if before is None and after is None:
        return "none"
    if after is None:
        assert before is not None
        return f"{before[2]:,} rows: finished ({before[1]:,} written before)"
    start = before[1] if before is not None and before[0] == after[0] else 0
    return f"{after[2]:,} rows: {start:,} -> {after[1]:,} written, carried on at next opening"


def finish_merges(path: Path) -> dict[str, object]:
    """Run in a fresh process: open the store and finish the band index's due merges."""
    started = time.perf_counter()
    with Store(path) as store:
        index = store.band_index
        pending = _merge_state(index)
        store.band_index.sync(store.con)
        index.wait()
        runs = [run.rows for run in index.runs]
    return {
        "pending": "none" if pending is None else f"{pending[2]:,} rows, {pending[1]:,} written",
        "seconds": round(time.perf_counter() - started, 1),
        "runs": len(runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--new", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="batches measured per size")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--finish", help=argparse.SUPPRESS)
    parser.add_argument("--keep", help="keep filled stores in this folder and reuse them")
    args = parser.parse_args()
    if args.new * args.rounds > CORPUS - REAL:
        parser.error(f"--new x --rounds may not exceed {CORPUS - REAL} articles")
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.new, args.round)))
        return
    if args.finish:
        print(json.dumps(finish_merges(Path(args.finish))))
        return
    print(machine())
    sizes = [int(s) for s in args.sizes.split(",")]
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="narratrace-scaling-", dir="/tmp"))
    workdir.mkdir(parents=True, exist_ok=True)
    stores = {size: workdir / f"stored-{size}.duckdb" for size in sizes}
    try:
        base = workdir / "base.duckdb"
        started = time.perf_counter()
        _remove_store(base)
        passages = build_base(base, _corpus_rows())
        print(
            f"real stored part: {REAL} articles detected in {time.perf_counter() - started:.0f} s;"
            f" passages per article mean {passages.mean():.1f}"
        )
        for size, db in stores.items():
            kept = workdir / f"kept-{size}.duckdb"
            if kept.exists():  # --keep: reuse a filled store (copied: measuring changes it)
                _copy_store(kept, db)
                for file in [kept, *_index_dir(kept).glob("run-*")]:
                    _drop_from_page_cache(file)  # only the measured stores compete for the cache
                print(f"{size:>9,} stored: copied from {kept}")
            else:
                _copy_store(base, db)
                filled, indexed = add_filler(db, size - REAL, passages)
                if args.keep:
                    _copy_store(db, kept)
                print(f"{size:>9,} stored: filled in {filled:.0f} s, band index in {indexed:.0f} s")
            _flush(db)
        results: dict[int, list[dict]] = {size: [] for size in sizes}
        for round_no in range(args.rounds):  # sizes take turns: a slow spell hits them alike
            for size, db in stores.items():
                # steady state: no gigabytes of copies or index builds still being written
                # back, and what lookups read in the OS page cache (see docstring)
                os.sync()
                for file in _lookup_files(db):
                    _read_through(file)
                command = [sys.executable, __file__, "--measure", str(db), "--new", str(args.new)]
                out = subprocess.run(
                    [*command, "--round", str(round_no)], capture_output=True, text=True
                )
                if out.returncode:
                    print(f"{size:>9,} stored: the measuring process failed:\n{out.stderr}")
                    raise SystemExit(1)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                result["db_mib"] = round(db.stat().st_size / 2**20)
                results[size].append(result)
                print(
                    f"round {round_no + 1}: {result['stored']:>9,} stored "
                    f"({result['band_rows']:,} band rows, {result['db_mib']} MiB, band index "
                    f"{result['index_mib']} MiB): {result['signed']} new in "
                    f"{result['detect_s']:.2f} s, peak RSS {result['peak_rss_mib']} MiB, "
                    f"{result['pairs']} pairs verified, {result['joined']} joined"
                )
                print(
                    f"    stage seconds: {result['stages']}; index runs "
                    f"{result['index_runs']}, rebuilds {result['index_rebuilds']}; "
                    f"background merge: {result['merge']}; close {result['close_s']:.2f} s"
                )
        for size in sizes:
            times = [r["detect_s"] for r in results[size]]
            print(
                f"{size:>9,} stored: median {statistics.median(times):.2f} s over "
                f"{len(times)} rounds ({', '.join(f'{t:.2f}' for t in times)}), peak RSS up to "
                f"{max(r['peak_rss_mib'] for r in results[size])} MiB"
            )
        # merges left running in the background at the last close: their time, apart
        for size, db in stores.items():
            out = subprocess.run(
                [sys.executable, __file__, "--finish", str(db)], capture_output=True, text=True
            )
            if out.returncode:
                print(f"{size:>9,} stored: finishing merges failed:\n{out.stderr}")
                raise SystemExit(1)
            done = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{size:>9,} stored: background merge left at the end: {done['pending']}; "
                f"finished in {done['seconds']} s (index runs {done['runs']})"
            )
        first = [r["detect_s"] for r in results[sizes[0]]]
        for size in sizes[1:]:
            times = [r["detect_s"] for r in results[size]]
            each = ", ".join(f"{t / f:.2f}" for t, f in zip(times, first, strict=True))
            print(
                f"time at {size:,} / at {sizes[0]:,}: "
                f"{statistics.median(times) / statistics.median(first):.2f} "
                f"(medians; round by round: {each})"
            )
    finally:
        for db in stores.values():
            _remove_store(db)
        if not args.keep:
            shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
