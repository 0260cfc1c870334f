"""Incremental detection against a growing store: 1,000 new articles against 10k, 100k and 1M
stored ones. Time, peak memory, and bytes per article of each table at each size.

    .venv/bin/python bench/detection_scaling.py [--sizes 10000,100000,1000000] [--new 1000]
        [--rounds 4] [--keep DIR]

The stored part is real where it matters and synthetic where it only has to be there:
- 4,000 articles of the synthetic corpus (bench/synthetic.py) are stored and detected for real
  (signatures, LSH band keys, chrome paragraphs, clusters, matches), so the new articles meet
  real candidates: about 30% of them re-post a story stored shortly before.
- The rest, up to the size, is generated in DuckDB, in bulk: articles with short texts,
  signature rows, LSH band keys (`band_keys`: uniform keys of `KEY_BITS` bits, as many per
  article as the real part has, drawn from its distribution), outlet paragraph keys (6 per
  article plus each outlet's house lines), cluster memberships and matches.
The bytes per article of each table are what its blocks take in the database file (after a
checkpoint) divided by the articles stored; `band_keys` is the LSH data. The articles table's
figure is not a real one here (the generated texts are a sentence long): the disk a real cycle
leaves per article is bench/disk_per_article.py's.

The new articles are the next 1,000 of the corpus, in four rounds (the next 1,000 again each
time, against the same store, which keeps the earlier rounds' articles); sizes take turns
within a round, so that a slow spell of the machine weighs on all sizes alike, and the ratio
printed is between the medians of the rounds. Each measurement runs in a fresh process (open
the store, store the new articles, `flows.stages.detect` with a `StageClock`); peak memory is
that process's peak resident set. The database file is read through just before, so that it
sits in the OS page cache as it does when cycles run every few minutes (every candidate search
scans the key column of `band_keys`). Data lives in /tmp and is deleted afterwards (unless
--keep).

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
from synthetic import START, machine, peak_rss_mib, synthetic_corpus, table_bytes  # noqa: E402

from flows.stages import detect  # noqa: E402
from narratives.detect import StageClock  # noqa: E402
from narratives.params import DEFAULT_PARAMS  # noqa: E402
from narratives.signatures import KEY_BITS  # noqa: E402
from store.db import Store  # noqa: E402

REAL = 4000
ROUNDS = 4  # batches of new articles measured at each size, sizes taking turns
CORPUS = REAL + ROUNDS * 1000
# the tables detection writes, printed per article (the rest hold feeds, runs and logs)
DETECTION_TABLES = (
    "band_keys",
    "signatures",
    "outlet_paragraphs",
    "clusters",
    "cluster_members",
    "article_matches",
    "articles",
)


def _corpus_rows() -> list[dict[str, object]]:
    corpus = synthetic_corpus(100, CORPUS)
    return article_rows(corpus, START)


def build_base(path: Path, rows: list[dict[str, object]]) -> np.ndarray:
    """The real part: REAL articles stored and detected in cycles of 1,000. Returns the number
    of band keys of each (the distribution the synthetic part draws from)."""
    store = Store(path)
    for cycle in range(REAL // 1000):
        batch = rows[cycle * 1000 : (cycle + 1) * 1000]
        as_of = START + timedelta(days=400, hours=cycle)
        for row in batch:
            row["first_seen_at"] = as_of
        store.insert_articles(batch)
        detect(store, f"base-{cycle}", as_of, DEFAULT_PARAMS)
    counts = store.sql("SELECT count(*) FROM band_keys GROUP BY article_id ORDER BY article_id")
    store.close()
    return np.array([n for (n,) in counts])


def add_filler(path: Path, count: int, keys: np.ndarray) -> float:
    """Append `count` synthetic stored articles (older than the real ones) with everything
    detection reads, in bulk. Returns the seconds taken."""
    started = time.perf_counter()
    store = Store(path, memory_limit="8GB")  # bulk loading 100,000 articles at a time
    con = store.con
    dist = ", ".join(str(int(k)) for k in keys[:1000])
    mask = (1 << KEY_BITS) - 1
    chunk = 100_000
    for first in range(0, count, chunk):
        n = min(chunk, count - first)
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE filler AS
            SELECT (hash(i, 'narratrace-filler') >> 2)::BIGINT AS article_id,
                   i,
                   'outlet-' || lpad((i % 100)::VARCHAR, 3, '0') AS outlet_id,
                   ([{dist}])[1 + (i % 1000)::INTEGER] AS keys,
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
            INSERT INTO signatures (article_id, param_set_id, shingle_count, passage_count)
            SELECT article_id, '{DEFAULT_PARAMS.param_set_id}', 600, 12 FROM filler
            """
        )
        # an article's keys together, as detection writes them (one batch after another)
        con.execute(
            f"""
            INSERT INTO band_keys (key, article_id)
            SELECT (hash(i, k) & {mask}::UBIGINT), article_id
            FROM filler, range(keys) t(k)
            ORDER BY i
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
            SELECT f.article_id, 'F' || (f.i // 3), m.article_id, 'copy', 0.6, NULL, NULL,
                   f.seen, 'filler'
            FROM filler f LEFT JOIN filler m ON m.i = f.i - f.i % 3 AND f.i % 3 <> 0
            """
        )
        con.execute(
            """
            INSERT INTO article_matches
            SELECT article_id, matched_article_id, 'copy', 0.6, 0.7, 300, 280, ''
            FROM cluster_members WHERE run_id = 'filler' AND matched_article_id IS NOT NULL
              AND article_id IN (SELECT article_id FROM filler)
            """
        )
        con.execute("CHECKPOINT")
    con.execute("DROP TABLE filler")
    con.execute("CHECKPOINT")
    store.close()
    return time.perf_counter() - started


def per_article(path: Path) -> tuple[int, dict[str, float], int]:
    """Articles stored, bytes per article of each table, and the file's size."""
    with Store(path) as store:
        store.sql("CHECKPOINT")
        stored = store.count("articles")
        sizes = table_bytes(store.con)
    return stored, {t: b / stored for t, b in sizes.items()}, path.stat().st_size


def _flush(path: Path) -> None:
    """Flush the file to disk: a fresh copy's dirty pages would make the first commit wait for
    gigabytes of writeback."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_through(path: Path) -> None:
    """Flush the file, then read it once, so it sits in the OS page cache as it does for a
    file a cycle reads every few minutes."""
    _flush(path)
    with open(path, "rb") as data:
        while data.read(1 << 24):
            pass


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
    key_rows = store.count("band_keys")
    store.insert_articles(rows)
    _read_through(path)  # again, just before: cold page cache is reclaimed within seconds
    clock = StageClock()
    started = time.perf_counter()
    found = detect(store, "measured", as_of, DEFAULT_PARAMS, clock)
    took = time.perf_counter() - started
    started = time.perf_counter()
    store.close()
    closed = time.perf_counter() - started
    return {
        "stored": stored,
        "key_rows": key_rows,
        "open_s": round(opened, 2),
        "detect_s": round(took, 3),
        "signed": found.articles_signed,
        "pairs": found.pairs_checked,
        "joined": found.clusters_joined,
        "stages": {k: round(v, 3) for k, v in clock.seconds.items()},
        "peak_rss_mib": round(peak_rss_mib()),
        "close_s": round(closed, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--new", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="batches measured per size")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--keep", help="keep filled stores in this folder and reuse them")
    args = parser.parse_args()
    if args.new * args.rounds > CORPUS - REAL:
        parser.error(f"--new x --rounds may not exceed {CORPUS - REAL} articles")
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.new, args.round)))
        return
    print(machine())
    p = DEFAULT_PARAMS
    print(
        f"banding: {p.bands} x {p.rows} whole-text, {p.passage_bands} x {p.passage_rows} per "
        f"passage of >= {p.passage_min_words} words, {KEY_BITS}-bit keys"
    )
    sizes = [int(s) for s in args.sizes.split(",")]
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="narratrace-scaling-", dir="/tmp"))
    workdir.mkdir(parents=True, exist_ok=True)
    stores = {size: workdir / f"stored-{size}.duckdb" for size in sizes}
    try:
        base = workdir / "base.duckdb"
        started = time.perf_counter()
        base.unlink(missing_ok=True)
        keys = build_base(base, _corpus_rows())
        print(
            f"real stored part: {REAL} articles detected in {time.perf_counter() - started:.0f} s;"
            f" band keys per article mean {keys.mean():.1f}"
        )
        for size, db in stores.items():
            kept = workdir / f"kept-{size}.duckdb"
            if kept.exists():  # --keep: reuse a filled store (copied: measuring changes it)
                shutil.copy(kept, db)
                print(f"{size:>9,} stored: copied from {kept}")
            else:
                shutil.copy(base, db)
                filled = add_filler(db, size - REAL, keys)
                if args.keep:
                    shutil.copy(db, kept)
                print(f"{size:>9,} stored: filled in {filled:.0f} s")
            stored, bytes_per, file_size = per_article(db)
            tables = ", ".join(f"{t} {bytes_per.get(t, 0):,.0f}" for t in DETECTION_TABLES)
            rest = sum(b for t, b in bytes_per.items() if t not in DETECTION_TABLES)
            print(
                f"{size:>9,} stored: bytes per article by table: {tables}, other tables "
                f"{rest:,.0f}; file {file_size / stored:,.0f} B per article "
                f"({file_size / 2**20:,.0f} MiB)"
            )
            _flush(db)
        results: dict[int, list[dict]] = {size: [] for size in sizes}
        for round_no in range(args.rounds):  # sizes take turns: a slow spell hits them alike
            for size, db in stores.items():
                os.sync()  # steady state: no gigabytes of copies still being written back
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
                    f"({result['key_rows']:,} band key rows, {result['db_mib']} MiB): "
                    f"{result['signed']} new in {result['detect_s']:.2f} s, peak RSS "
                    f"{result['peak_rss_mib']} MiB, {result['pairs']} pairs verified, "
                    f"{result['joined']} joined"
                )
                print(f"    stage seconds: {result['stages']}; close {result['close_s']:.2f} s")
        for size in sizes:
            times = [r["detect_s"] for r in results[size]]
            print(
                f"{size:>9,} stored: median {statistics.median(times):.2f} s over "
                f"{len(times)} rounds ({', '.join(f'{t:.2f}' for t in times)}), peak RSS up to "
                f"{max(r['peak_rss_mib'] for r in results[size])} MiB"
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
            db.unlink(missing_ok=True)
            Path(str(db) + ".wal").unlink(missing_ok=True)
        if not args.keep:
            shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
