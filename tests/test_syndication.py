"""Wire credits in the store: the `article_wire_credit` and `cluster_syndication` views agree
with narratives.variants.has_wire_credit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from flows.stages import NewEntry, _article_row, detect
from ingest.feeds import FeedEntry
from narratives.params import DEFAULT_PARAMS
from narratives.variants import WIRE_PATTERN, has_wire_credit
from simulator.corpus import DEMO_ROOT, load_corpus
from store.db import Store
from store.migrations import _WIRE_RE2_003

T0 = datetime(2025, 7, 1, 8, 0, tzinfo=UTC)
EDGE_CASES = [
    "The minister inaugurated the bridge.\n— AFP",
    "NEW DELHI (Reuters) - The minister inaugurated the bridge.",
    "Reporting by Priya Nair; Editing by Reuters",
    "(with inputs from PTI)",
    "x\n  - AP  \ny",
    "A line — AFP in the middle of a sentence.",
    "The press agency service said nothing (news agency).",
    "This story was published from a wire agency feed.",
    "Reuters reported on Monday that the talks had stalled.",
    "— Staff Reporter",
]


def test_the_view_carries_the_current_pattern():
    # a changed WIRE_PATTERN needs a new migration that recreates the views
    assert _WIRE_RE2_003 == "(?im)" + WIRE_PATTERN


def _row(outlet: str, slug: str, seen: datetime, text: str) -> dict:
    url = f"https://{outlet}.example/news/{slug}"
    entry = FeedEntry(url, url, slug, seen, "", "", "")
    return _article_row(
        NewEntry(entry, outlet, f"https://{outlet}.example/rss"), "run", seen, text, "page"
    )


def _store(tmp_path, outlets: set[str]) -> Store:
    store = Store(tmp_path / "wire.duckdb")
    store.sync_outlets(
        SimpleNamespace(
            outlet_id=o, name=o, country="IN", kind="news-portal", homepage="", feeds=[]
        )
        for o in sorted(outlets)
    )
    return store


def test_sql_and_python_agree_on_every_demo_text_and_edge_case(tmp_path):
    corpus = load_corpus(DEMO_ROOT)
    texts = [(a.outlet, a.slug, a.text) for a in corpus.articles]
    texts += [("edge", f"case-{i}", text) for i, text in enumerate(EDGE_CASES)]
    with _store(tmp_path, {o for o, _s, _t in texts}) as store:
        rows = [_row(o, s, T0, t) for o, s, t in texts]
        store.insert_articles(rows)
        flags = dict(store.sql("SELECT article_id, wire_credit FROM article_wire_credit"))
        expected = {r["article_id"]: has_wire_credit(r["text"]) for r in rows}
    assert flags == expected
    assert 5 <= sum(expected.values()) < len(expected)  # both answers occur


def test_a_cluster_with_a_wire_credited_member_is_syndicated(tmp_path):
    story = "\n\n".join(
        [
            "A failure at a high-voltage substation plunged much of the northern grid into "
            "darkness on Wednesday evening, cutting power to an estimated 4500 villages and "
            "several district towns for up to nine hours, the state power utility said.",
            "Engineers traced the fault to a transformer at the Kalipur substation that caught "
            "fire shortly after seven in the evening, tripping two transmission lines.",
        ]
    )
    other = (
        "The state university has postponed its semester examinations by two weeks after "
        "students protested against a sudden change in the syllabus for final-year courses."
    )
    rows = [
        _row("grid-daily", "blackout", T0, story),
        _row("metro-wire", "blackout", T0 + timedelta(hours=1), story + "\n\n— PTI"),
        _row("coast-mirror", "exams", T0 + timedelta(hours=2), other),
    ]
    with _store(tmp_path, {"grid-daily", "metro-wire", "coast-mirror"}) as store:
        store.insert_articles(rows)
        detect(store, "run", T0 + timedelta(hours=3), DEFAULT_PARAMS)
        result = store.sql(
            "SELECT m.article_id, s.wire_members, s.members, s.syndicated "
            "FROM cluster_members m JOIN cluster_syndication s USING (cluster_id)"
        )
    by_article = {a: rest for a, *rest in result}
    story_id, wire_id, other_id = (r["article_id"] for r in rows)
    assert by_article[story_id] == by_article[wire_id] == [1, 2, True]
    assert by_article[other_id] == [0, 1, False]
