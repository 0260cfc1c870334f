"""Time and peak memory of one band index merge: two sorted runs of random keys (60M and 50M
rows by default), written to a folder in /tmp, merged in a fresh process.

    .venv/bin/python bench/band_index_merge.py [--rows 60000000,50000000] [--merge-rows N]

`--merge-rows` sets how many rows of each run a merge step takes (store.band_index.MERGE_ROWS
by default), to compare step sizes. Prints figures only; never asserts on time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from synthetic import machine, peak_rss_mib  # noqa: E402

from store import band_index  # noqa: E402


def build(directory: Path, sizes: list[int]) -> None:
    index = band_index.BandIndex(directory)
    for seed, rows in enumerate(sizes):
        rng = np.random.default_rng(seed)
        keys = np.sort(rng.integers(0, 2**64, rows, dtype=np.uint64, endpoint=False))
        ids = rng.integers(0, 2**62, rows, dtype=np.int64)
        index.runs.append(index._write(keys, ids))
        index.rows += rows
        del keys, ids
    index.next_rowid, index.tail = index.rows, [0, 0, 0]
    index._save()


def merge(directory: Path, merge_rows: int) -> dict[str, float]:
    band_index.MERGE_ROWS = merge_rows
    index = band_index.BandIndex(directory)
    started = time.perf_counter()
    merged = index._merge(*index.runs[:2])
    took = time.perf_counter() - started
    return {"rows": merged.rows, "seconds": round(took, 1), "peak_rss_mib": round(peak_rss_mib())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="60000000,50000000")
    parser.add_argument("--merge-rows", type=int, default=band_index.MERGE_ROWS)
    parser.add_argument("--merge", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.merge:
        print(json.dumps(merge(Path(args.merge), args.merge_rows)))
        return
    print(machine())
    workdir = Path(tempfile.mkdtemp(prefix="narratrace-merge-", dir="/tmp"))
    try:
        build(workdir / "index", [int(n) for n in args.rows.split(",")])
        command = [sys.executable, __file__, "--merge", str(workdir / "index")]
        out = subprocess.run(
            [*command, "--merge-rows", str(args.merge_rows)],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"merged {result['rows']:,} rows, {args.merge_rows:,} rows of each run per step: "
            f"{result['seconds']} s, peak RSS {result['peak_rss_mib']} MiB"
        )
    finally:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
