"""Detection quality: a small run of the evaluation bench (bench/quality.py) against its bars,
and the promises it makes, each on articles put through the real detection stage."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from evaluation.corpus import HARDEST_GRADE, KINDS, generate, make_outlets
from evaluation.quality import BARS, Article, evaluate, run_detection
from narratives.clusters import cluster_id_for
from narratives.params import DEFAULT_PARAMS
from narratives.text import normalise
from simulator.corpus import DEMO_ROOT, load_corpus

DEMO = load_corpus(DEMO_ROOT)
T0 = datetime(2025, 7, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def figures():
    return evaluate(seed=7, scale=0.15, exact=True, demo=False, echo=lambda *_: None)


def test_small_evaluation_meets_the_bars(figures, capsys):
    overall = figures["overall"]
    with capsys.disabled():
        print(
            f"\nevaluation corpus (scale 0.15): B3 P={overall['bcubed_precision']:.3f} "
            f"R={overall['bcubed_recall']:.3f}, LSH recall {figures['lsh']['recall']:.4f}"
        )
    assert overall["items"] > 400
    assert overall["bcubed_precision"] >= BARS["bcubed_precision"]
    assert overall["bcubed_recall"] >= BARS["bcubed_recall"]
    rows = {(r["kind"], r["grade"]): r for r in figures["kinds"]}
    for kind in KINDS:
        for grade in range(1, HARDEST_GRADE):
            assert rows[(kind, grade)]["bcubed_recall"] >= BARS["kind_recall"], (kind, grade)
    assert figures["lsh"]["recall"] >= BARS["lsh_recall"]
    assert figures["promises"]["false_pairs"] == 0


def test_distractors_stay_apart_and_returning_claims_keep_their_id(figures):
    found = figures["promises"]
    apart, near = found["near_different_apart"]
    assert near >= 40 and apart == near  # generated look-alikes and the demo's near-different
    kept, returning = found["recurrence_keeps_source_cluster_id"]
    assert returning > 0 and kept == returning
    marked, wire = found["wire_clusters_marked"]
    assert wire > 0 and marked == wire
    assert found["marked_clusters_agree_with_python"] is True


def test_the_generated_corpus_is_reproducible():
    first, again, other = generate(3, 0.05), generate(3, 0.05), generate(4, 0.05)
    assert first == again
    assert [i.text for i in first.items] != [i.text for i in other.items]
    kinds = {i.kind for i in first.items}
    assert (
        set(KINDS) <= kinds and {"near", "near-demo", "unrelated", "source", "boilerplate"} <= kinds
    )
    seen = {i.key: i.first_seen for i in first.items}
    for item in first.items:
        if item.kind not in ("source", "near-demo", "unrelated", "near", "boilerplate"):
            assert item.first_seen > seen[item.source or ""]
        if item.kind == "recurrence":
            assert item.first_seen - seen[item.source or ""] >= timedelta(days=30)


def _run(tmp_path: Path, articles: list[Article]):
    return run_detection(articles, DEFAULT_PARAMS, T0.replace(hour=0), tmp_path)


def _narrative_original():
    return next(a for a in DEMO.articles if a.narrative == "failed-rescue" and a.edit == "original")


def test_two_paragraphs_embedded_in_an_unrelated_article_four_times_longer_join(tmp_path):
    original = _narrative_original()
    paragraphs = list(original.paragraphs)
    excerpt = min(
        (paragraphs[i : i + 2] for i in range(len(paragraphs) - 1)),
        key=lambda p: len(" ".join(p).split()),
    )
    excerpt_words = len(" ".join(excerpt).split())
    # the demo's articles are short: the host is a roundup of its two longest unrelated ones
    unrelated = sorted(
        (a for a in DEMO.articles if a.edit == "unrelated"), key=lambda a: len(a.text.split())
    )
    host = [*unrelated[-1].paragraphs, *unrelated[-2].paragraphs]
    assert len(" ".join(host).split()) >= 4 * excerpt_words
    half = len(host) // 2 + 1
    commentary = "\n\n".join([*host[:half], *excerpt, *host[half:]])
    articles = [
        Article("origin", "grid-daily", T0, original.text, "n"),
        Article("unrelated", "grid-daily", T0 + timedelta(hours=2), unrelated[0].text, None),
        Article("commentary", "metro-wire", T0 + timedelta(days=2), commentary, "n"),
    ]
    run = _run(tmp_path, articles)
    assert run.cluster["commentary"] == run.cluster["origin"]
    assert run.cluster["unrelated"] != run.cluster["origin"]
    # the passage recorded for the membership is the quoted one
    passage = normalise(run.matched_passage["commentary"])
    assert passage and passage in normalise("\n\n".join(excerpt))
    assert len(passage.split()) >= 0.9 * excerpt_words


def _heavy_chrome_outlet():
    return next(o for o in make_outlets(random.Random(1)) if o.chrome_level == 3)


def _short_unrelated(n: int) -> list[str]:
    unrelated = [a for a in DEMO.articles if a.edit == "unrelated"]
    return [a.text for a in sorted(unrelated, key=lambda a: (len(a.text), a.slug))[:n]]


def test_unrelated_articles_of_one_outlet_never_cluster_through_its_chrome(tmp_path):
    outlet = _heavy_chrome_outlet()
    chrome_words = sum(len(p.split()) for p in (*outlet.top, *outlet.bottom))
    bodies = _short_unrelated(4)
    assert chrome_words >= 0.4 * min(len(b.split()) for b in bodies)  # heavy for these texts
    articles = [
        Article(f"story-{i}", outlet.outlet_id, T0 + timedelta(days=i), outlet.wrap([body]), None)
        for i, body in enumerate(bodies)
    ]
    # one article per day: the first two are compared before the outlet's chrome is learned
    run = _run(tmp_path, articles)
    assert run.detect_calls == 4
    assert len({run.cluster[a.key] for a in articles}) == 4


def test_an_outlet_telling_its_story_again_still_matches_before_chrome_is_learned(tmp_path):
    outlet = _heavy_chrome_outlet()
    # a story of short paragraphs, shaped like house lines, all of them
    (story,) = _short_unrelated(1)
    paragraphs = story.split("\n\n")
    assert all(len(p.split()) <= DEFAULT_PARAMS.chrome_max_words for p in paragraphs)
    again = [f"One month on, {outlet.name} republishes its report.", *paragraphs]
    articles = [
        Article("first", outlet.outlet_id, T0, outlet.wrap(paragraphs), "n"),
        Article("again", outlet.outlet_id, T0 + timedelta(days=31), outlet.wrap(again), "n"),
    ]
    run = _run(tmp_path, articles)
    assert run.cluster["again"] == run.cluster["first"] == cluster_id_for(run.ids["first"])
