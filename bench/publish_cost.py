"""What publishing the analysts' catalog costs as the store grows: the first publication of a
store, each cycle's publication of 1,000 new articles against 10k and 1M stored, and the
day's merge of a day's cycle files, with the published copy's size per article.

    .venv/bin/python bench/publish_cost.py                    # 10k and 1M stored
    .venv/bin/python bench/publish_cost.py --sizes 10000      # quick

Stored articles are synthetic rows of every published table (article texts of about 600
words drawn from a 20,000-word vocabulary, so they compress like prose rather than like
repeated text); what matters is the row count. Prints seconds per publication, rows and files
written, and bytes per article of the Parquet files and the catalog.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/synthetic.py, beside this

from synthetic import machine  # noqa: E402

from store.db import Store  # noqa: E402
from store.publish import Publisher, StoreLayout  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=UTC)
WORDS = 600
VOCABULARY = 20_000


def fill(con, first: int, count: int, seen: datetime, run: str) -> None:  # noqa: ANN001
    """`count` articles with ids from `first`, first seen at `seen`, with a fetch record, an
    entry, a cluster for every third, a member row and a match each."""
    chunk = 50_000
    for start in range(first, first + count, chunk):
        n = min(chunk, first + count - start)
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE batch AS
            SELECT i, (hash(i, 'publish-bench') >> 2)::BIGINT AS article_id,
                   'outlet-' || lpad((i % 100)::VARCHAR, 3, '0') AS outlet_id,
                   TIMESTAMPTZ '{seen.isoformat()}' AS seen
            FROM range({start}, {start + n}) r(i)
            """
        )
        con.execute(
            f"""
            INSERT INTO articles
            SELECT article_id, 'https://bench.example/' || i, 'https://bench.example/' || i,
                   outlet_id, 'https://bench.example/feed', 'Story number ' || i, '', '', 'en',
                   seen, seen,
                   (SELECT string_agg('w' || ((hash(i, k) % {VOCABULARY}) *
                            (hash(i, k, 1) % 7 + 1) % {VOCABULARY}), ' ')
                    FROM range({WORDS}) t(k)),
                   'page', md5(i::VARCHAR), {WORDS}, '{run}'
            FROM batch
            """
        )
        con.execute(
            f"""
            INSERT INTO fetch_log (run_id, fetched_at, kind, url, final_url, outlet_id,
                status_code, outcome, attempts, elapsed_ms, bytes)
            SELECT '{run}', seen, 'article', 'https://bench.example/' || i,
                   'https://bench.example/' || i, outlet_id, 200, 'ok', 1, 40.0, 150000
            FROM batch
            """
        )
        con.execute(
            """
            INSERT INTO entries (entry_id, canonical_url, url, outlet_id, feed_url, title,
                summary, content, author, published_at, first_seen_at, status, attempts,
                last_attempt_at, article_id)
            SELECT article_id, 'https://bench.example/' || i, 'https://bench.example/' || i,
                   outlet_id, 'https://bench.example/feed', 'Story number ' || i,
                   'A teaser of story ' || i, '', '', seen, seen, 'stored', 1, seen, article_id
            FROM batch
            """
        )
        con.execute(
            f"""
            INSERT INTO clusters SELECT 'B' || (i // 3), article_id, seen, 'active', NULL,
                   '{run}' FROM batch WHERE i % 3 = 0
            """
        )
        con.execute(
            f"""
            INSERT INTO cluster_members SELECT article_id, 'B' || (i // 3),
                   CASE WHEN i % 3 = 0 THEN NULL ELSE article_id END,
                   CASE WHEN i % 3 = 0 THEN NULL ELSE 'copy' END, 0.4, 0.5, NULL, seen, '{run}'
            FROM batch
            """
        )
        con.execute(
            """
            INSERT INTO article_matches SELECT article_id, article_id + 1, 'copy', 0.4, 0.5,
                   120, 80, NULL FROM batch WHERE i % 3 <> 0
            """
        )
    con.execute("DROP TABLE batch")
    con.execute("CHECKPOINT")


def published_bytes(layout: StoreLayout) -> tuple[int, int]:
    parquet = sum(p.stat().st_size for p in layout.parquet_dir.rglob("*.parquet"))
    return parquet, layout.catalog.stat().st_size


def measure(size: int, rounds: int, folder: Path) -> None:
    layout = StoreLayout.for_db(folder / f"publish-{size}.duckdb")
    store = Store(layout.working, memory_limit="4GB")
    started = time.perf_counter()
    fill(store.con, 0, size, START, "bench-fill")
    filled = time.perf_counter() - started
    store.close()
    store = Store(layout.working)  # the cycle's own memory cap from here on
    publisher = Publisher(store.con, layout)
    started = time.perf_counter()
    first = publisher.publish(START)
    took = time.perf_counter() - started
    parquet, catalog = published_bytes(layout)
    print(
        f"{size:>9,} stored: filled in {filled:.0f} s; first publication {took:.1f} s "
        f"({sum(first.rows_written.values()):,} rows); published copy {parquet / 2**20:.0f} MiB "
        f"= {parquet / size:,.0f} bytes per article, catalog {catalog / 2**20:.1f} MiB"
    )
    seconds = []
    stored = size
    day = START + timedelta(days=1)
    for number in range(rounds):
        as_of = day + timedelta(minutes=15 * number)
        fill(store.con, stored, 1000, as_of, f"bench-{number}")
        stored += 1000
        started = time.perf_counter()
        result = publisher.publish(as_of)
        seconds.append(time.perf_counter() - started)
        print(
            f"   cycle {number + 1}: 1,000 new against {stored - 1000:,}: published in "
            f"{seconds[-1]:.2f} s ({sum(result.rows_written.values()):,} rows, "
            f"{result.files_written} files)"
        )
    started = time.perf_counter()
    rollover = publisher.publish(day + timedelta(days=1))
    merged = time.perf_counter() - started
    files = store.sql("SELECT count(*) FROM published_files WHERE superseded_seq IS NULL")[0][0]
    print(
        f"   next day: the day's {rounds} cycle files per table merged, published in "
        f"{merged:.2f} s ({rollover.files_written} files written; {files} live files)"
    )
    ordered = sorted(seconds)
    median = ordered[len(ordered) // 2]
    print(
        f"{size:>9,} stored: publication of 1,000 new articles, median {median:.2f} s "
        f"over {rounds} cycles (min {ordered[0]:.2f}, max {ordered[-1]:.2f})"
    )
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,1000000", help="stored articles, comma-separated")
    parser.add_argument("--rounds", type=int, default=5, help="cycles of 1,000 per size")
    args = parser.parse_args()
    print(machine())
    folder = Path(tempfile.mkdtemp(prefix="narratrace-publish-bench-"))
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            measure(size, args.rounds, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
