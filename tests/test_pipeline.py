"""End to end: the demo corpus served by the outlet simulator on 127.0.0.1, real Prefect flow
runs (temporary local API server), a real DuckDB file. Scores the clusters against the truth
recorded in the corpus."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import duckdb
import pytest

from flows.demo import run_demo
from flows.server import free_port
from narratives.evaluation import score
from simulator.corpus import DEMO_ROOT, load_corpus

CORPUS = load_corpus(DEMO_ROOT)


def _corpus_key(url: str) -> tuple[str, str]:
    parts = url.rstrip("/").split("/")
    return parts[-4], parts[-1].rsplit(".", 1)[0]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("demo")
    port = free_port()
    result = run_demo(out, processes=2, port=port)
    return result, port


def _query(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_every_seed_narrative_forms_one_cluster_and_none_mixes(demo_run, capsys):
    demo, _port = demo_run
    rows = _query(demo.db_path, "SELECT url, cluster_id FROM article_clusters")
    predicted = {_corpus_key(url): cluster for url, cluster in rows}
    truth = {(a.outlet, a.slug): (a.narrative or None) for a in CORPUS.articles}
    scores = score(truth, predicted)
    with capsys.disabled():
        print(f"\ndemo corpus clustering: {scores.line()}")
    narratives = sorted({a.narrative for a in CORPUS.articles if a.narrative})
    assert len(narratives) == 5
    clusters_of: dict[str, set[str]] = defaultdict(set)
    for key, cluster in predicted.items():
        if truth.get(key):
            clusters_of[truth[key]].add(cluster)
    for narrative in narratives:
        assert len(clusters_of[narrative]) == 1, f"{narrative} split over {clusters_of[narrative]}"
        carried_by = {a.outlet for a in CORPUS.articles if a.narrative == narrative}
        (cluster,) = clusters_of[narrative]
        reached = {key[0] for key, c in predicted.items() if c == cluster}
        # outlets whose feed is broken on purpose carry nothing, every other outlet is reached
        assert reached == carried_by, f"{narrative}: {carried_by ^ reached}"
    members_by_cluster: dict[str, set] = defaultdict(set)
    for key, cluster in predicted.items():
        members_by_cluster[cluster].add(truth.get(key))
    for cluster, labels in members_by_cluster.items():
        named = {label for label in labels if label}
        assert len(named) <= 1, f"cluster {cluster} mixes {named}"
        if named:
            assert None not in labels, f"cluster {cluster} holds an unrelated article"
    assert scores.bcubed_precision == 1.0
    assert scores.bcubed_recall >= 0.95


def test_every_article_is_stored_once_with_first_seen_and_a_cluster(demo_run):
    demo, _port = demo_run
    expected = {(a.outlet, a.slug) for a in CORPUS.articles}
    rows = _query(
        demo.db_path,
        "SELECT url, first_seen_at, published_at, cluster_id, outlet FROM article_clusters",
    )
    stored = {_corpus_key(r[0]) for r in rows}
    assert stored == expected  # failed pages fall back to the feed's text
    assert len(rows) == len(expected)
    assert all(r[3] is not None for r in rows)
    by_key = {a.outlet + "/" + a.slug: a for a in CORPUS.articles}
    for url, first_seen, published, _cluster, _outlet in rows:
        article = by_key["/".join(_corpus_key(url))]
        assert published == article.published_at
        # first seen at the end of the release slot the article appeared in
        assert article.published_at <= first_seen
        assert (first_seen - article.published_at).total_seconds() <= 8 * 3600


def test_failures_are_recorded_and_the_cycles_complete(demo_run):
    demo, _port = demo_run
    runs = _query(demo.db_path, "SELECT status, count(*) FROM runs GROUP BY status")
    assert dict(runs) == {"completed": len(demo.cycles)}
    log = _query(
        demo.db_path,
        "SELECT kind, url, outcome, status_code, error FROM fetch_log WHERE outcome <> 'ok' "
        "AND outcome <> 'not-modified'",
    )
    faults = {(a.outlet, a.slug): a.fault for a in CORPUS.articles if a.fault}
    assert faults, "the demo corpus should carry fault fixtures"

    def article_rows(fault: str) -> list[tuple]:
        wanted = {key for key, f in faults.items() if f == fault}
        return [row for row in log if row[0] == "article" and _corpus_key(row[1]) in wanted]

    assert article_rows("404") and all(r[3] == 404 for r in article_rows("404"))
    assert article_rows("timeout") and all("timeout" in r[4] for r in article_rows("timeout"))
    assert article_rows("pdf") and all("not an HTML page" in r[4] for r in article_rows("pdf"))
    malformed = [r for r in log if r[0] == "feed" and "balochistan-voice" in r[1]]
    assert malformed and all(r[2] == "salvaged" and "malformed" in r[4] for r in malformed)
    broken = [r for r in log if r[0] == "feed" and "northern-courier" in r[1]]
    assert broken and all(r[2] == "error" and r[3] == 500 for r in broken)
    health = _query(
        demo.db_path,
        "SELECT f.last_status, f.consecutive_failures FROM feeds f WHERE feed_url LIKE "
        "'%northern-courier%'",
    )
    assert health[0][0] == "error" and health[0][1] == len(demo.cycles)


def test_conditional_get_saves_refetching_unchanged_feeds(demo_run):
    demo, _port = demo_run
    (not_modified,) = _query(
        demo.db_path, "SELECT count(*) FROM fetch_log WHERE outcome = 'not-modified'"
    )[0]
    assert not_modified > 0


def test_views_are_the_documented_contract(demo_run):
    demo, _port = demo_run
    columns = {
        view: [r[0] for r in _query(demo.db_path, f"DESCRIBE {view}")]
        for view in ("article_clusters", "cluster_summary")
    }
    assert columns["article_clusters"] == [
        "article_id",
        "url",
        "outlet",
        "title",
        "published_at",
        "first_seen_at",
        "cluster_id",
    ]
    assert columns["cluster_summary"] == [
        "cluster_id",
        "label",
        "first_seen_at",
        "last_seen_at",
        "origin_outlet",
        "article_count",
        "outlet_count",
    ]
    originals = {a.title: a.outlet for a in CORPUS.articles if a.edit == "original"}
    top = _query(
        demo.db_path,
        "SELECT label, origin_outlet, outlet_count FROM cluster_summary "
        "ORDER BY outlet_count DESC LIMIT 5",
    )
    outlet_names = {o.slug: o.name for o in CORPUS.outlets}
    for label, origin, outlet_count in top:
        assert label in originals, f"label {label!r} is not a narrative's first telling"
        assert origin == outlet_names[originals[label]]
        assert outlet_count >= 7


def test_daily_reports_name_the_spreading_narratives(demo_run):
    demo, _port = demo_run
    html = [p for p in demo.report_paths if p.suffix == ".html"]
    days = sorted({a.published_at.date() for a in CORPUS.articles})
    assert [p.name for p in html] == [f"report-{d.isoformat()}.html" for d in days]
    text = "\n".join(p.read_text() for p in html)
    markdown = "\n".join(p.read_text() for p in demo.report_paths if p.suffix == ".md")
    for article in CORPUS.articles:
        if article.edit == "original":
            assert article.title.replace("'", "&#39;").split("&")[0][:30] in text
    # every watchlist narrative is named in some report
    assert "Mass resignations" in markdown or "mass resignations" in markdown.lower()
    assert "<script" not in text.lower()


def test_rerunning_the_demo_adds_nothing_but_runs(demo_run):
    demo, port = demo_run
    before = _snapshot(demo.db_path)
    again = run_demo(demo.db_path.parent, processes=1, port=port)
    after = _snapshot(again.db_path)
    assert after["articles"] == before["articles"]
    assert after["members"] == before["members"]
    assert after["clusters"] == before["clusters"]
    assert after["signatures"] == before["signatures"]
    assert after["bands"] == before["bands"]
    assert after["runs"] == before["runs"] + len(again.cycles)
    assert all(c.get("articles_new") == 0 for c in again.cycles)


def _snapshot(db: Path) -> dict[str, object]:
    return {
        "articles": _query(
            db,
            "SELECT article_id, canonical_url, first_seen_at, content_hash "
            "FROM articles ORDER BY article_id",
        ),
        "members": _query(db, "SELECT article_id, cluster_id FROM cluster_members ORDER BY 1"),
        "clusters": _query(db, "SELECT cluster_id, status FROM clusters ORDER BY 1"),
        "signatures": _query(db, "SELECT count(*) FROM signatures")[0][0],
        "bands": _query(db, "SELECT count(*) FROM lsh_bands")[0][0],
        "runs": _query(db, "SELECT count(*) FROM runs")[0][0],
    }
