"""End to end: the demo corpus served by the outlet simulator on 127.0.0.1, real Prefect flow
runs (temporary local API server), a real DuckDB file. Scores the clusters against the truth
recorded in the corpus."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import tomllib
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import duckdb

from evaluation.scores import score
from flows.demo import cycle_times, report_days, run_demo
from simulator.corpus import DEMO_ROOT, load_corpus
from store.publish import StoreLayout

CORPUS = load_corpus(DEMO_ROOT)
ROOT = Path(__file__).resolve().parent.parent


def _corpus_key(url: str) -> tuple[str, str]:
    parts = url.rstrip("/").split("/")
    return parts[-4], parts[-1].rsplit(".", 1)[0]


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


def _report_days() -> list[date]:
    return report_days(cycle_times(CORPUS))


def _first_seen_day(article) -> date:
    """The day of the first cycle at or after the article's publication (the demo polls at
    the end of each release slot)."""
    return min(t for t in cycle_times(CORPUS) if t >= article.published_at).date()


def _overview(demo, day: date) -> list[dict[str, str]]:
    path = demo.db_path.parent / "reports" / f"report-{day.isoformat()}.csv"
    return list(csv.DictReader(io.StringIO(path.read_text(), newline="")))


def test_daily_reports_name_the_spreading_narratives(demo_run):
    demo, _port = demo_run
    html = [p for p in demo.report_paths if p.name.startswith("report-") and p.suffix == ".html"]
    days = _report_days()
    assert [p.name for p in html] == [f"report-{d.isoformat()}.html" for d in days]
    assert days[0] == CORPUS.start.date() and days[-1] > CORPUS.end.date()  # the last slot's day
    text = "\n".join(p.read_text() for p in html)
    markdown = "\n".join(p.read_text() for p in demo.report_paths if p.suffix == ".md")
    for article in CORPUS.articles:
        if article.edit == "original":
            assert article.title.replace("'", "&#39;").split("&")[0][:30] in text
    # every watchlist narrative is named in some report
    watchlist = tomllib.loads((ROOT / "seeds" / "narratives.toml").read_text())["narratives"]
    for narrative in watchlist:
        assert f"watchlist: {narrative['name']}" in markdown, narrative["name"]
    assert "<script" not in text.lower()
    assert (demo.db_path.parent / "reports" / "index.html").exists()


def test_narrative_states_on_the_demo(demo_run):
    """Each returning narrative is resurfaced on the day it returns, and on no other day;
    each narrative is new on the first day it is listed; all five states occur."""
    demo, _port = demo_run
    truth = {a.narrative for a in CORPUS.articles if a.narrative}
    labels = {
        a.title: a.narrative for a in CORPUS.articles if a.edit == "original"
    }  # a narrative's label is its first telling's headline
    returns = {
        (a.narrative, _first_seen_day(a))
        for a in CORPUS.articles
        if a.edit == "recurrence"
        and not any(
            b.narrative == a.narrative
            and timedelta(0) < a.published_at - b.published_at < timedelta(days=7)
            for b in CORPUS.articles
        )
    }
    assert {n for n, _ in returns} == {"casualties-concealed", "surrendered-again"}
    seen_states: dict[str, set[date]] = {}
    listed: dict[str, list[tuple[date, str]]] = {n: [] for n in truth}
    for day in _report_days():
        for row in _overview(demo, day):
            narrative = labels[row["label"]]
            listed[narrative].append((day, row["state"]))
            seen_states.setdefault(row["state"], set()).add(day)
    resurfaced = {(n, d) for n, days in listed.items() for d, s in days if s == "resurfaced"}
    assert resurfaced == returns
    for narrative, days in listed.items():
        assert days and days[0][1] == "new", (narrative, days[:2])
    assert set(seen_states) == {"new", "growing", "steady", "cooling", "resurfaced"}


def test_reports_of_past_days_keep_their_figures(demo_run):
    """The first day's report says how its feeds were doing that day, not later."""
    demo, _port = demo_run
    first = _report_days()[0]
    md = (demo.db_path.parent / "reports" / f"report-{first.isoformat()}.md").read_text()
    failing = [line for line in md.splitlines() if "| failing |" in line]
    cycles_that_day = sum(1 for t in cycle_times(CORPUS) if t.date() == first)
    assert len(failing) == 1 and f"{cycles_that_day} failed polls in a row" in failing[0]


def test_the_report_flow_publishes_the_overview_as_an_artifact(demo_run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read() -> list:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=["narratrace-daily-report"])
                )
            )

    artifacts = asyncio.run(read())
    descriptions = {a.description for a in artifacts}
    for day in _report_days():
        assert f"Narrative report of {day.isoformat()}" in descriptions
    latest = max(artifacts, key=lambda a: a.created)
    assert latest.type == "markdown"
    assert latest.data.startswith("# Narrative report — ")
    assert "## Narratives that spread" in latest.data and "](clusters/" not in latest.data


def test_cycle_runs_show_their_batches_done_as_a_progress_artifact(demo_run):
    """Every cycle run that fetched pages leaves a progress artifact at 100% on its
    fetch-extract task run, which the Prefect UI shows as the run's progress."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read() -> list:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["cycle-batches"]))
            )

    demo, _port = demo_run
    working = StoreLayout.for_db(demo.db_path).working
    runs = {r for (r,) in _query(working, "SELECT run_id FROM runs")}
    fetched = {r for (r,) in _query(working, "SELECT DISTINCT run_id FROM batches")}
    # the Prefect server is shared by every test: keep the artifacts of this store's runs
    artifacts = [a for a in asyncio.run(read()) if str(a.flow_run_id) in runs]
    assert fetched and sorted(str(a.flow_run_id) for a in artifacts) == sorted(fetched)
    assert {a.type for a in artifacts} == {"progress"}
    assert {a.data for a in artifacts} == {100.0}
    assert all(a.task_run_id is not None for a in artifacts)


def test_rerunning_the_demo_adds_nothing_but_runs(demo_run):
    demo, port = demo_run
    before = _snapshot(demo.db_path)
    reports = demo.db_path.parent / "reports"
    built = re.compile(r"[Bb]uilt \d{4}-\d\d-\d\d \d\d:\d\d UTC")
    files_before = {p: built.sub("", p.read_text()) for p in reports.rglob("*.*")}
    again = run_demo(demo.db_path.parent, processes=1, port=port)
    after = _snapshot(again.db_path)
    # the reports say the same, but when they were built
    files_after = {p: built.sub("", p.read_text()) for p in reports.rglob("*.*")}
    assert files_after.keys() == files_before.keys()
    for path, text in files_before.items():
        if path.name != "reports.json":
            assert files_after[path] == text, path.name
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
        "signatures": _query(StoreLayout.for_db(db).working, "SELECT count(*) FROM signatures")[0][
            0
        ],
        "bands": _query(StoreLayout.for_db(db).working, "SELECT count(*) FROM band_keys")[0][0],
        "runs": _query(db, "SELECT count(*) FROM runs")[0][0],
    }
