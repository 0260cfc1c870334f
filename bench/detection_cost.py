"""Detection cost per article, split by stage, as a share of extraction time per page.

    .venv/bin/python bench/detection_cost.py [--articles 5000] [--outlets 100] [--cycles 5]

The synthetic corpus of bench/synthetic.py arrives in `--cycles` equal batches (as successive
cycles would store it), and `flows.stages.detect`, the function a cycle runs, detects each
batch with a `StageClock`, so later batches also pay for stored candidates. Its "sign" step is
split into shingling (chrome removal, tokens, shingle hashes) and MinHash (permutations,
whole-text and passage minima) by timing those functions alone on the same texts.

Extraction time per page is trafilatura on a sample of the same corpus's pages (heavy pages,
50-220 KB), in this process, as each extraction worker runs it.

Prints figures only; never asserts on time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import START, machine, page_bytes, peak_rss_mib, synthetic_corpus  # noqa: E402

from flows.stages import StageClock, article_id_for, detect  # noqa: E402
from ingest.extract import extract_article  # noqa: E402
from narratives.params import DEFAULT_PARAMS  # noqa: E402
from narratives.signatures import shingle_hashes, sign  # noqa: E402
from narratives.text import content_paragraphs, tokenize  # noqa: E402
from simulator.pages import article_url  # noqa: E402
from store.db import Store  # noqa: E402

BASE = "http://127.0.0.2:8000"


def extraction_ms(corpus, sample: int) -> tuple[float, float]:
    """Mean trafilatura milliseconds per page over `sample` pages, and the extracted word
    count as a share of the article's own."""
    articles = list(corpus.articles[:: max(1, len(corpus.articles) // sample)][:sample])
    pages = page_bytes(corpus, BASE, articles)
    times = []
    words = []
    for page, article in zip(pages, articles, strict=True):
        started = time.perf_counter()
        doc = extract_article(page, article_url(BASE, article), "text/html; charset=utf-8")
        times.append((time.perf_counter() - started) * 1000)
        words.append(len(doc.text.split()) / len(article.text.split()))
    return statistics.mean(times), statistics.median(words)


def article_rows(corpus, first_seen) -> list[dict[str, object]]:
    rows = []
    for article in corpus.articles:
        url = article_url(BASE, article)
        rows.append(
            {
                "article_id": article_id_for(url),
                "canonical_url": url,
                "url": url,
                "outlet_id": article.outlet,
                "feed_url": f"{BASE}/{article.outlet}/feed.xml",
                "title": article.title,
                "author": article.author,
                "sitename": "",
                "language": "en",
                "published_at": article.published_at,
                "first_seen_at": first_seen,
                "text": article.text,
                "text_source": "page",
                "content_hash": str(hash(article.text)),
                "word_count": len(article.text.split()),
                "run_id": "bench",
            }
        )
    return rows


def sign_split(texts: list[str]) -> tuple[float, float]:
    """Seconds spent shingling (content paragraphs, tokens, shingle hashes) and computing
    MinHash signatures (the rest of `sign`) over `texts`."""
    params = DEFAULT_PARAMS
    started = time.perf_counter()
    tokens = [tokenize(content_paragraphs(t, set(), params.chrome_max_words)) for t in texts]
    prepare = time.perf_counter() - started
    started = time.perf_counter()
    for tok in tokens:
        shingle_hashes(tok.words, params.shingle_size)
    hashing = time.perf_counter() - started
    started = time.perf_counter()
    for tok in tokens:
        sign(tok, params)  # shingle hashes again, then MinHash
    signing = time.perf_counter() - started
    return prepare + hashing, max(0.0, signing - hashing)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=5000)
    parser.add_argument("--outlets", type=int, default=100)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--sample", type=int, default=300, help="pages timed for extraction")
    args = parser.parse_args()
    print(machine())
    corpus = synthetic_corpus(args.outlets, args.articles)
    extract_ms, word_share = extraction_ms(corpus, args.sample)
    print(
        f"extraction: {extract_ms:.1f} ms per page (trafilatura, {args.sample} pages of this "
        f"corpus, one process); extracted text has {word_share:.0%} of the article's words"
    )
    rows = article_rows(corpus, START)
    per_cycle = -(-len(rows) // args.cycles)
    clock = StageClock()
    with tempfile.TemporaryDirectory(prefix="narratrace-bench-", dir="/tmp") as tmp:
        store = Store(Path(tmp) / "detect.duckdb")
        signed = pairs = joined = 0
        detect_s = 0.0
        for cycle in range(args.cycles):
            batch = rows[cycle * per_cycle : (cycle + 1) * per_cycle]
            as_of = START + timedelta(hours=cycle + 1)
            for row in batch:
                row["first_seen_at"] = as_of
            store.insert_articles(batch)
            started = time.perf_counter()
            found = detect(store, f"cycle-{cycle}", as_of, DEFAULT_PARAMS, clock)
            took = time.perf_counter() - started
            detect_s += took
            signed += found.articles_signed
            pairs += found.pairs_checked
            joined += found.clusters_joined
            print(
                f"  cycle {cycle + 1}: {found.articles_signed} articles against "
                f"{cycle * per_cycle} stored: {took / max(1, found.articles_signed) * 1000:.2f} "
                f"ms/article, {found.pairs_checked} pairs verified, "
                f"{found.clusters_joined} joined"
            )
        store.close()
    texts = [str(r["text"]) for r in rows]
    shingling, minhash = sign_split(texts)
    seconds = dict(clock.seconds)
    sign_total = seconds.pop("sign", 0.0)
    share = shingling / max(1e-9, shingling + minhash)
    stages = {
        "load texts": seconds.pop("load", 0.0),
        "chrome (paragraph keys, learned chrome)": seconds.pop("chrome", 0.0),
        "shingling (tokens, shingle hashes)": sign_total * share,
        "MinHash (whole text + passages)": sign_total * (1 - share),
        "LSH band hashes": seconds.pop("bands", 0.0),
        "candidate search (band_keys semi-join)": seconds.pop("candidates", 0.0),
        "stored candidates (texts, re-signing)": seconds.pop("stored", 0.0),
        "verification (exact)": seconds.pop("verify", 0.0),
        "clustering": seconds.pop("cluster", 0.0),
        "writes (one transaction, Arrow)": seconds.pop("write", 0.0),
    }
    stages.update(seconds)
    print(
        f"detection of {signed} articles in {args.cycles} cycles: {detect_s:.1f} s, "
        f"{pairs} pairs verified, {joined} joined a cluster"
    )
    print(f"{'stage':42s} {'ms/article':>10s} {'% of extraction':>16s}")
    total = 0.0
    for name, secs in stages.items():
        ms = secs / signed * 1000
        total += ms
        print(f"{name:42s} {ms:10.3f} {ms / extract_ms:16.1%}")
    print(f"{'detection, total':42s} {total:10.3f} {total / extract_ms:16.1%}")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
