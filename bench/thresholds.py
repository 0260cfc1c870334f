"""Measure how copies and non-copies of the demo corpus separate, to choose verification
thresholds. Exact all-pairs over the articles of a demo database (no LSH involved).

    python bench/thresholds.py out/demo/narratrace.duckdb

Prints, for same-narrative pairs and for all other pairs: the distribution of whole-text
Jaccard and of the longest dense run of shared shingles, and how many pairs each candidate
threshold accepts.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from itertools import combinations

import duckdb
import numpy as np

from narratives.detect import sign_text
from narratives.params import DEFAULT_PARAMS
from narratives.signatures import band_hashes
from narratives.verify import best_run
from simulator.corpus import DEMO_ROOT, load_corpus


def _band_set(signed, params) -> set[tuple[int, int]]:
    if signed.shingles.size == 0:
        return set()
    matrix = np.vstack([signed.signature[None, :], signed.passage_signatures])
    hashes = band_hashes(matrix, params)
    return {(band, int(h)) for row in hashes for band, h in enumerate(row)}


def main(db_path: str, shingle_size: int = DEFAULT_PARAMS.shingle_size) -> None:
    params = replace(DEFAULT_PARAMS, shingle_size=shingle_size)
    corpus = load_corpus(DEMO_ROOT)
    truth = {(a.outlet, a.slug): a.narrative for a in corpus.articles}
    con = duckdb.connect(db_path, read_only=True)
    rows = con.execute("SELECT canonical_url, outlet_id, text FROM articles").fetchall()
    items = []
    for url, outlet, text in rows:
        parts = url.rstrip("/").split("/")
        key = (parts[-4], parts[-1].rsplit(".", 1)[0])
        signed = sign_text(text, set(), params)
        items.append((truth.get(key, ""), outlet, signed, _band_set(signed, params)))
    same, other = [], []
    accepted = lsh_found = 0
    for (ta, oa, a, bands_a), (tb, ob, b, bands_b) in combinations(items, 2):
        sa, sb = np.unique(a.shingles), np.unique(b.shingles)
        inter = np.intersect1d(sa, sb, assume_unique=True).size
        jac = inter / (sa.size + sb.size - inter) if inter else 0.0
        run_ab = best_run(np.isin(a.shingles, sb), params.passage_max_gap)[0]
        run_ba = best_run(np.isin(b.shingles, sa), params.passage_max_gap)[0]
        record = (jac, max(run_ab, run_ba), oa == ob)
        if jac >= params.copy_jaccard or record[1] >= params.passage_min_shared:
            accepted += 1
            lsh_found += bool(bands_a & bands_b)
        (same if ta and ta == tb else other).append(record)
    for name, pairs in (("same narrative", same), ("different / unrelated", other)):
        jac = np.array([p[0] for p in pairs])
        run = np.array([p[1] for p in pairs])
        print(f"{name}: {len(pairs)} pairs")
        print("  jaccard  p5/p25/p50/max:", np.round(np.percentile(jac, [5, 25, 50, 100]), 3))
        print("  best run p5/p25/p50/max:", np.percentile(run, [5, 25, 50, 100]))
    print(f"shingle_size={shingle_size}")
    for threshold in (10, 15, 20, 25, 30, 40):
        tp = sum(1 for p in same if p[1] >= threshold)
        fp = sum(1 for p in other if p[1] >= threshold)
        print(
            f"  run >= {threshold:2d}: same-narrative pairs accepted {tp}/{len(same)}, "
            f"other pairs accepted {fp}"
        )
    for threshold in (0.1, 0.2, 0.3, 0.4):
        tp = sum(1 for p in same if p[0] >= threshold)
        fp = sum(1 for p in other if p[0] >= threshold)
        print(f"  jaccard >= {threshold}: same-narrative {tp}/{len(same)}, other {fp}")
    print(
        f"LSH recall at the chosen thresholds ({params.bands} bands x {params.rows} rows, "
        f"whole text + passages): {lsh_found}/{accepted} = {lsh_found / max(1, accepted):.3f} "
        "of the pairs exact verification accepts share a band"
    )
    worst = sorted((p for p in other), key=lambda p: -p[1])[:5]
    print("  largest runs among other pairs (jaccard, run, same outlet):", worst)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_PARAMS.shingle_size)
