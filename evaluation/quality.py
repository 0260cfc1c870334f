"""Detection quality on the generated evaluation corpus (`evaluation.corpus`) and on the demo
corpus, with the real detection code: articles go into a temporary DuckDB store and
`flows.stages.detect` runs once per simulated day, so clustering is incremental as in
production. `python bench/quality.py` prints it (`--help`).

Prints, overall and per edit kind and grade: pairwise precision and recall, B-cubed precision,
recall and F1, and the adjusted Rand index. A row for an edit kind scores that kind's copies
together with their sources (the truth: each copy belongs with its source); a row for a
distractor kind scores the distractors with the sources they imitate (the truth: they belong
with nothing), so its precision is the measure. Then: LSH recall against an exact all-pairs
computation on the same shingles (every pair the verification rule accepts, found by comparing
all pairs, against the pairs that share an LSH band), the verification thresholds swept over
the same pairs, and the specific promises (embedded quotes found and their passage recorded,
returning claims keeping their cluster id, one outlet's unrelated articles kept apart, wire
copies marked).
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import duckdb
import numpy as np
from scipy import sparse

from evaluation.corpus import DISTRACTORS, HARDEST_GRADE, KINDS, EvalCorpus, generate
from evaluation.rows import article_row
from evaluation.scores import Scores, score
from flows.stages import detect
from narratives.clusters import cluster_id_for
from narratives.detect import keys_table, sign_article, sign_text
from narratives.params import DEFAULT_PARAMS, DetectionParams
from narratives.signatures import Signed, band_keys
from narratives.text import normalise
from narratives.variants import has_wire_credit
from narratives.verify import compare, pair_stats
from simulator.corpus import DEMO_ROOT, load_corpus
from store.db import Store

BARS = {"bcubed_precision": 0.98, "bcubed_recall": 0.95, "kind_recall": 0.90, "lsh_recall": 0.98}


def machine() -> str:
    return (
        f"{platform.platform()} | {platform.processor() or platform.machine()} | "
        f"{os.cpu_count()} CPUs | Python {platform.python_version()}"
    )


@dataclass
class Article:
    key: str
    outlet_id: str
    first_seen: datetime
    text: str
    truth: str | None
    kind: str = "demo"
    grade: int = 0
    source: str | None = None
    quote: str = ""
    wire: bool = False


@dataclass
class Run:
    """One detection run over a set of articles, and what it decided."""

    articles: list[Article]
    ids: dict[str, int]  # key -> article_id
    cluster: dict[str, str]  # key -> cluster id
    matched_passage: dict[str, str]  # key -> the passage recorded for its membership
    syndicated: dict[str, bool]  # cluster id -> marked syndicated
    chrome: dict[str, set[int]]  # outlet -> learned chrome at the end
    stored_bands: list[tuple[int, int]]  # article-id pairs sharing a stored band
    detect_calls: int
    seconds: float
    pairs_checked: int  # candidate pairs verified exactly during the run


def _outlet_rows(outlet_ids: Iterable[str]) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(
            outlet_id=o,
            name=o.replace("-", " ").title(),
            country="INT",
            kind="news-portal",
            homepage=f"https://{o}.example",
            feeds=[f"https://{o}.example/rss"],
        )
        for o in sorted(set(outlet_ids))
    ]


def _row(article: Article) -> dict[str, Any]:
    url = f"https://{article.outlet_id}.example/news/{article.key.replace('::', '/')}"
    return article_row(url, article.outlet_id, article.first_seen, article.text, article.key)


def run_detection(
    articles: Sequence[Article], params: DetectionParams, start: datetime, workdir: Path
) -> Run:
    """Insert the articles day by day (by first_seen) and run detection after each day."""
    store = Store(workdir / "quality.duckdb")
    try:
        store.sync_outlets(_outlet_rows(a.outlet_id for a in articles))
        rows = {a.key: _row(a) for a in articles}
        days: dict[int, list[Article]] = defaultdict(list)
        for a in articles:
            days[(a.first_seen - start).days].append(a)
        began = time.perf_counter()
        checked = 0
        for day in sorted(days):
            store.insert_articles([rows[a.key] for a in days[day]])
            outcome = detect(store, f"day-{day}", start + timedelta(days=day + 1), params)
            checked += outcome.pairs_checked
        seconds = time.perf_counter() - began
        ids = {key: int(row["article_id"]) for key, row in rows.items()}
        key_of = {v: k for k, v in ids.items()}
        members = store.sql("SELECT article_id, cluster_id, matched_passage FROM cluster_members")
        cluster = {key_of[a]: c for a, c, _p in members}
        passage = {key_of[a]: p for a, _c, p in members if p}
        try:
            syndicated = dict(store.sql("SELECT cluster_id, syndicated FROM cluster_syndication"))
        except duckdb.CatalogException:
            syndicated = {}
        chrome = store.chrome_keys(
            {a.outlet_id for a in articles}, params.chrome_min_articles, pending=None
        )
        stored_bands = store.sql(
            "SELECT DISTINCT a.article_id, b.article_id FROM band_keys a JOIN band_keys b "
            "ON a.key = b.key AND a.article_id < b.article_id"
        )
    finally:
        store.close()
    return Run(
        list(articles),
        ids,
        cluster,
        passage,
        syndicated,
        chrome,
        [(int(a), int(b)) for a, b in stored_bands],
        len(days),
        seconds,
        checked,
    )


# ----------------------------------------------------------------------------- exact pairs


@dataclass
class PairFigures:
    accepted: int = 0  # pairs the verification rule accepts, found by comparing all pairs
    found_by_bands: int = 0  # of those, pairs sharing an LSH band (same shingles, same chrome)
    found_by_stored_bands: int = 0  # of those, pairs sharing a band as stored by the run
    missed: list[tuple[str, str]] = field(default_factory=list)
    by_kind: dict[str, list[int]] = field(default_factory=dict)  # kind -> [accepted, found]
    accepted_pairs: list[tuple[tuple[int, int], str]] = field(default_factory=list)  # (ids, kind)
    stats: list[tuple[float, int, bool, bool, int]] = field(default_factory=list)
    closest_different: list[tuple[int, float, str, str]] = field(default_factory=list)
    # (jaccard, run, same truth, copy-source pair) of every pair sharing >= 8 positions


def exact_pairs(run: Run, params: DetectionParams) -> PairFigures:
    """Every pair compared with the verification rule, new (later) against earlier, on the
    shingles of each text with its outlet's chrome as learned at the end of the run."""
    order = sorted(run.articles, key=lambda a: (a.first_seen, run.ids[a.key]))
    signed: list[Signed] = [
        sign_text(a.text, run.chrome[a.outlet_id], params, a.outlet_id) for a in order
    ]
    vocab: dict[int, int] = {}
    rows, cols, counts = [], [], []
    for i, s in enumerate(signed):
        values, n = np.unique(s.shingles, return_counts=True)
        rows.append(np.full(values.size, i))
        cols.append(np.array([vocab.setdefault(int(v), len(vocab)) for v in values], dtype=int))
        counts.append(n)
    shape = (len(order), max(1, len(vocab)))
    count = sparse.csr_matrix(
        (np.concatenate(counts), (np.concatenate(rows), np.concatenate(cols))), shape=shape
    )
    binary = (count > 0).astype(np.int32)
    shared = (binary @ binary.T).tocoo()  # distinct shared shingles
    positions = (count @ binary.T).tocsr()  # positions of row i whose shingle is in column j
    sizes = np.asarray(binary.sum(axis=1)).ravel()
    figures = PairFigures()
    bands = keys_table([run.ids[a.key] for a in order], [band_keys(s, params) for s in signed])
    band_pairs = _band_pairs(bands)
    stored = set(run.stored_bands)
    for i, j, n_shared in zip(shared.row, shared.col, shared.data, strict=True):
        if j >= i:
            continue  # i is the newer one
        jaccard = n_shared / (sizes[i] + sizes[j] - n_shared)
        if jaccard < 0.05 and positions[i, j] < 8:
            continue
        new, old = order[i], order[j]
        stats = pair_stats(signed[i], signed[j], params)
        same = new.truth is not None and new.truth == old.truth
        copy_source = same and (new.source == old.key or old.source == new.key)
        jaccard, run_length, n_shared = (
            (stats.jaccard, stats.run, stats.shared) if stats else (0.0, 0, 0)
        )
        figures.stats.append((jaccard, run_length, same, copy_source, n_shared))
        if not same:
            figures.closest_different.append((run_length, round(jaccard, 3), new.key, old.key))
        if compare(signed[i], signed[j], 0, params) is None:
            continue
        figures.accepted += 1
        pair = tuple(sorted((run.ids[new.key], run.ids[old.key])))
        kind = new.kind if new.kind != "source" else old.kind
        tally = figures.by_kind.setdefault(kind, [0, 0])
        figures.accepted_pairs.append((pair, kind))  # type: ignore[arg-type]
        tally[0] += 1
        if pair in band_pairs:
            figures.found_by_bands += 1
            tally[1] += 1
        else:
            figures.missed.append((new.key, old.key))
        figures.found_by_stored_bands += pair in stored
    return figures


def _band_pairs(bands: Any) -> set[tuple[int, int]]:
    con = duckdb.connect()
    try:
        con.register("b", bands)
        rows = con.execute(
            "SELECT DISTINCT x.article_id, y.article_id FROM b x JOIN b y ON x.key = y.key "
            "AND x.article_id < y.article_id"
        ).fetchall()
    finally:
        con.close()
    return {(int(a), int(b)) for a, b in rows}


# ----------------------------------------------------------------------------- LSH sweep

# passage banding choices swept (passage_bands, passage_rows, passage_min_words); (42, 3, 20)
# is the banding of the version before band_keys (whole-text bands applied to passages too)
BANDING_CHOICES = (
    (42, 3, 20),
    (32, 3, 20),
    (24, 3, 20),
    (20, 3, 20),
    (16, 3, 20),
    (12, 3, 20),
    (8, 3, 20),
    (4, 3, 20),
    (16, 4, 20),
    (8, 4, 20),
    (6, 4, 20),
    (24, 3, 30),
    (16, 3, 30),
    (24, 3, 40),
    (0, 1, 20),
)


def _key_bytes_per_row(keys: Any, workdir: Path) -> float:
    """What a band_keys row costs in a DuckDB file: the file's growth over that of an empty
    table, per row, the rows inserted in article order as detection writes them."""
    path = workdir / "keys-size.duckdb"
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE TABLE band_keys (key UBIGINT NOT NULL, article_id BIGINT NOT NULL)")
        con.execute("CHECKPOINT")
        before = path.stat().st_size
        con.register("k", keys)
        con.execute("INSERT INTO band_keys SELECT key, article_id FROM k")
        con.execute("CHECKPOINT")
        after = path.stat().st_size
    finally:
        con.close()
        path.unlink(missing_ok=True)
    return (after - before) / max(1, keys.num_rows)


def banding_sweep(
    run: Run, pairs: PairFigures, params: DetectionParams, workdir: Path, echo: Any = print
) -> list[dict[str, Any]]:
    """For each passage banding: keys per article, bytes per article in DuckDB, and LSH recall
    of the pairs exact verification accepts, overall and per edit kind (the texts signed as
    at the end of the run, with each outlet's learned chrome)."""
    order = sorted(run.articles, key=lambda a: (a.first_seen, run.ids[a.key]))
    ids = [run.ids[a.key] for a in order]
    kinds = sorted({kind for _pair, kind in pairs.accepted_pairs})
    results = []
    echo(
        f"passage banding sweep ({params.bands} x {params.rows} whole-text bands in every "
        "choice): keys/article, bytes/article, LSH recall of accepted pairs, overall and "
        "per kind below 1"
    )
    for passage_bands, passage_rows, min_words in BANDING_CHOICES:
        choice = replace(
            params,
            passage_bands=passage_bands,
            passage_rows=passage_rows,
            passage_min_words=min_words,
        )
        signed = [sign_article(a.text, run.chrome[a.outlet_id], choice, a.outlet_id) for a in order]
        keys = keys_table(ids, [s.keys for s in signed])
        found = _band_pairs(keys)
        per_row = _key_bytes_per_row(keys, workdir)
        rows = keys.num_rows / len(order)
        hit = Counter(kind for pair, kind in pairs.accepted_pairs if pair in found)
        total = Counter(kind for _pair, kind in pairs.accepted_pairs)
        recall = sum(hit.values()) / max(1, sum(total.values()))
        by_kind = {k: hit[k] / total[k] for k in kinds}
        results.append(
            {
                "passage_bands": passage_bands,
                "passage_rows": passage_rows,
                "passage_min_words": min_words,
                "keys_per_article": round(rows, 1),
                "bytes_per_article": round(rows * per_row),
                "lsh_recall": recall,
                "by_kind": by_kind,
            }
        )
        chosen = (passage_bands, passage_rows, min_words) == (
            params.passage_bands,
            params.passage_rows,
            params.passage_min_words,
        )
        low = ", ".join(f"{k} {v:.4f}" for k, v in by_kind.items() if v < 1)
        echo(
            f"  {passage_bands:2d} x {passage_rows} over passages of >= {min_words} words: "
            f"{rows:6.1f} keys/article, {rows * per_row:6.0f} B/article, recall "
            f"{recall:.4f}{' <- chosen' if chosen else ''}; {low or 'every kind 1.0'}"
        )
    return results


# ----------------------------------------------------------------------------- scores


def _scores(run: Run, keys: Iterable[str]) -> Scores:
    by_key = {a.key: a for a in run.articles}
    truth: dict[Hashable, Hashable | None] = {k: by_key[k].truth for k in keys}
    predicted: dict[Hashable, Hashable] = {k: c for k, c in run.cluster.items()}
    return score(truth, predicted)


def kind_rows(run: Run) -> list[tuple[str, int | None, int, Scores]]:
    """(kind, grade, copies, scores): each edit kind's copies with their sources; each
    distractor kind with the sources it imitates (or, for unrelated articles, all sources)."""
    sources = [a.key for a in run.articles if a.kind == "source"]
    result = []
    for kind in (*KINDS, *DISTRACTORS):
        chosen = [a for a in run.articles if a.kind == kind]
        if not chosen:
            continue
        for grade in sorted({a.grade for a in chosen}):
            group = [a for a in chosen if a.grade == grade]
            if kind in ("unrelated", "boilerplate"):
                keys = [a.key for a in group] + sources
            else:
                keys = [a.key for a in group] + sorted({a.source for a in group if a.source})
            result.append((kind, grade or None, len(group), _scores(run, keys)))
        if len({a.grade for a in chosen}) > 1:
            keys = [a.key for a in chosen] + sorted({a.source for a in chosen if a.source})
            result.append((kind, None, len(chosen), _scores(run, keys)))
    return result


def promises(run: Run) -> dict[str, Any]:
    """The specific cases: quotes found and where, returning claims, one outlet's unrelated
    articles, wire copies marked."""
    by_key = {a.key: a for a in run.articles}
    out: dict[str, Any] = {}
    quoted = [a for a in run.articles if a.kind in ("excerpt", "embedded")]
    joined = [a for a in quoted if run.cluster[a.key] == run.cluster[a.source or ""]]
    inside = 0
    for a in joined:
        passage = normalise(run.matched_passage.get(a.key, "")).split()
        quote = normalise(a.quote).split()
        grams = {tuple(quote[i : i + 4]) for i in range(len(quote) - 3)}
        windows = [tuple(passage[i : i + 4]) for i in range(len(passage) - 3)]
        inside += bool(windows) and sum(w in grams for w in windows) >= 0.8 * len(windows)
    out["quotes_joined"] = (len(joined), len(quoted))
    out["matched_passage_in_quote"] = (inside, len(joined))
    returning = [a for a in run.articles if a.kind == "recurrence"]
    kept = sum(
        run.cluster[a.key] == cluster_id_for(run.ids[a.source or ""])
        and run.cluster[a.source or ""] == cluster_id_for(run.ids[a.source or ""])
        for a in returning
    )
    out["recurrence_keeps_source_cluster_id"] = (kept, len(returning))
    together: dict[str, list[Article]] = defaultdict(list)
    for a in run.articles:
        together[run.cluster[a.key]].append(a)
    same_outlet_false = 0
    false_pairs = 0
    for members in together.values():
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                if a.truth is None or a.truth != b.truth:
                    false_pairs += 1
                    same_outlet_false += a.outlet_id == b.outlet_id
    out["false_pairs"] = false_pairs
    out["false_pairs_same_outlet"] = same_outlet_false
    wire_clusters = {run.cluster[a.key] for a in run.articles if a.wire}
    marked = {c for c, flag in run.syndicated.items() if flag}
    out["wire_clusters_marked"] = (len(wire_clusters & marked), len(wire_clusters))
    credited = {run.cluster[a.key] for a in run.articles if has_wire_credit(a.text)}
    out["marked_clusters_agree_with_python"] = marked == credited if run.syndicated else None
    near = [a for a in run.articles if a.kind in ("near", "near-demo")]
    boiler = [a for a in run.articles if a.kind == "boilerplate"]
    out["boilerplate_joined"] = (
        sum(len(together[run.cluster[a.key]]) > 1 for a in boiler),
        len(boiler),
    )
    out["near_different_apart"] = (
        sum(run.cluster[a.key] != run.cluster[by_key[a.source or ""].key] for a in near),
        len(near),
    )
    return out


# ----------------------------------------------------------------------------- output


def _fmt(s: Scores) -> str:
    return (
        f"{s.pairwise_precision:6.3f} {s.pairwise_recall:6.3f} | {s.bcubed_precision:6.3f} "
        f"{s.bcubed_recall:6.3f} {s.bcubed_f1:6.3f} | {s.adjusted_rand:6.3f}"
    )


HEADER = "  pair P  pair R |  B3 P    B3 R   B3 F1 |   ARI"


def _sweep(stats: list[tuple[float, int, bool, bool, int]], params: DetectionParams) -> list[str]:
    copy_source = sum(1 for s in stats if s[3])
    lines = [
        f"pairs sharing >= 8 shingle positions or Jaccard >= 0.05: {len(stats)} "
        f"({sum(s[2] for s in stats)} same truth, {copy_source} of them copy-source pairs)"
    ]
    other = [s for s in stats if not s[2]]
    if other:
        lines.append(
            f"  different-truth pairs: max Jaccard {max(s[0] for s in other):.3f}, "
            f"max run {max(s[1] for s in other)}"
        )
    chosen = (params.copy_jaccard, params.copy_min_shared, params.passage_min_shared)
    grid = [(jac, 0, run) for jac in (0.10, 0.15, 0.20, 0.30) for run in (15, 20, 25, 30, 40)]
    grid += [(params.copy_jaccard, shared, params.passage_min_shared) for shared in (10, 15, 25)]
    for jac, min_shared, run in grid:
        accept = [s for s in stats if (s[0] >= jac and s[4] >= min_shared) or s[1] >= run]
        mark = " <- chosen" if (jac, min_shared, run) == chosen else ""
        lines.append(
            f"  jaccard >= {jac:.2f} (shared >= {min_shared:2d}) or run >= {run:2d}: "
            f"copy-source pairs accepted {sum(s[3] for s in accept)}/{copy_source}, "
            f"same-truth {sum(s[2] for s in accept)}, "
            f"different-truth {sum(not s[2] for s in accept)}{mark}"
        )
    return lines


def evaluate(
    seed: int = 7,
    scale: float = 1.0,
    params: DetectionParams = DEFAULT_PARAMS,
    exact: bool = True,
    demo: bool = True,
    echo: Any = print,
    banding: bool = False,
) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "machine": machine(),
        "seed": seed,
        "scale": scale,
        "params": params.as_dict(),
    }
    echo(f"machine: {figures['machine']}")
    began = time.perf_counter()
    corpus: EvalCorpus = generate(seed, scale)
    articles = [
        Article(
            i.key,
            i.outlet_id,
            i.first_seen,
            i.text,
            i.truth,
            i.kind,
            i.grade,
            i.source,
            i.quote,
            i.wire,
        )
        for i in corpus.items
    ]
    kinds = Counter(a.kind for a in articles)
    echo(
        f"generated corpus (seed {seed}, scale {scale}): {len(articles)} articles, "
        f"{kinds['source']} sources, {len(corpus.outlets)} outlets, "
        f"in {time.perf_counter() - began:.1f} s; "
        + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
    )
    with tempfile.TemporaryDirectory(prefix="narratrace-quality-") as tmp:
        run = run_detection(articles, params, corpus.start, Path(tmp))
    echo(
        f"detection: {run.detect_calls} daily detect calls, {run.seconds:.1f} s "
        f"({1000 * run.seconds / len(articles):.1f} ms per article), "
        f"{run.pairs_checked} candidate pairs verified"
    )
    overall = _scores(run, [a.key for a in articles])
    figures["overall"] = asdict(overall)
    echo("")
    echo(f"{'':22s}{'n':>5s} {HEADER}")
    echo(f"{'overall':22s}{overall.items:5d} {_fmt(overall)}")
    rows = kind_rows(run)
    figures["kinds"] = []
    below = []
    for kind, grade, n, s in rows:
        label = (
            f"{kind} {grade if grade else 'all'}"
            if kind not in ("near-demo", "unrelated")
            else kind
        )
        flag = ""
        if kind in KINDS and grade and s.bcubed_recall < BARS["kind_recall"]:
            flag = "  (below 0.90" + (", hardest grade)" if grade == HARDEST_GRADE else ")")
            below.append(label)
        echo(f"  {label:20s}{n:5d} {_fmt(s)}{flag}")
        figures["kinds"].append({"kind": kind, "grade": grade, "copies": n, **asdict(s)})
    figures["kind_rows_below_recall_bar"] = below
    echo(
        "  (a row scores that kind's articles with their sources; distractor rows "
        "(near, near-demo, unrelated) belong with nothing, so precision is their measure)"
    )
    echo("")
    found = promises(run)
    figures["promises"] = found
    for name, value in found.items():
        echo(f"{name}: {value}")
    if exact:
        began = time.perf_counter()
        pairs = exact_pairs(run, params)
        lsh = pairs.found_by_bands / max(1, pairs.accepted)
        stored = pairs.found_by_stored_bands / max(1, pairs.accepted)
        figures["lsh"] = {
            "accepted_pairs": pairs.accepted,
            "found_by_bands": pairs.found_by_bands,
            "recall": lsh,
            "found_by_stored_bands": pairs.found_by_stored_bands,
            "stored_recall": stored,
            "missed_examples": pairs.missed[:10],
        }
        echo("")
        echo(
            f"LSH recall ({params.bands} x {params.rows} whole-text bands, "
            f"{params.passage_bands} x {params.passage_rows} per passage): "
            f"{pairs.found_by_bands}/{pairs.accepted} = {lsh:.4f} of the pairs the exact "
            "all-pairs computation accepts share a band; with the bands as stored "
            f"during the run: {pairs.found_by_stored_bands}/{pairs.accepted} = {stored:.4f} "
            f"({time.perf_counter() - began:.1f} s)"
        )
        figures["lsh"]["by_kind"] = pairs.by_kind
        closest = sorted(pairs.closest_different, reverse=True)[:5]
        figures["closest_different_pairs"] = closest
        echo("  closest different-truth pairs (run, Jaccard, newer, older):")
        for item in closest:
            echo(f"    {item}")
        echo(
            "  by kind (pairs with a copy of that kind): "
            + ", ".join(
                f"{kind} {found}/{accepted}"
                for kind, (accepted, found) in sorted(pairs.by_kind.items())
                if found < accepted
            )
            + "; every other kind 100%"
        )
        for line in _sweep(pairs.stats, params):
            echo(line)
        figures["sweep"] = _sweep(pairs.stats, params)
        if banding:
            with tempfile.TemporaryDirectory(prefix="narratrace-quality-sweep-") as tmp:
                figures["banding_sweep"] = banding_sweep(run, pairs, params, Path(tmp), echo)
    if demo:
        corpus_demo = load_corpus(DEMO_ROOT)
        demo_articles = [
            Article(f"{a.outlet}::{a.slug}", a.outlet, a.published_at, a.text, a.narrative or None)
            for a in corpus_demo.articles
        ]
        with tempfile.TemporaryDirectory(prefix="narratrace-quality-demo-") as tmp:
            demo_run = run_detection(demo_articles, params, corpus_demo.start, Path(tmp))
        demo_scores = _scores(demo_run, [a.key for a in demo_articles])
        figures["demo"] = asdict(demo_scores)
        echo("")
        echo(f"demo corpus (hand-written, {len(demo_articles)} articles): {demo_scores.line()}")
    return figures
