"""The detection stage against a real DuckDB file: articles go in through the Store API,
`flows.stages.detect` signs, matches and clusters them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from flows.stages import NewEntry, _article_row, detect
from ingest.feeds import FeedEntry
from narratives.clusters import cluster_id_for
from narratives.detect import sign_article, sign_text
from narratives.params import DEFAULT_PARAMS
from narratives.verify import compare
from store.db import Store

T0 = datetime(2025, 7, 14, 9, 0, tzinfo=UTC)

OUTLETS = [
    SimpleNamespace(
        outlet_id=slug,
        name=name,
        country="IN",
        kind="news-portal",
        homepage=f"https://{slug}.example",
        feeds=[f"https://{slug}.example/rss"],
    )
    for slug, name in [
        ("grid-daily", "Grid Daily"),
        ("metro-wire", "Metro Wire"),
        ("plains-herald", "Plains Herald"),
        ("valley-courier", "Valley Courier"),
        ("coast-mirror", "Coast Mirror"),
    ]
]

A1 = (
    "A failure at a high-voltage substation plunged much of the northern grid into darkness on "
    "Wednesday evening, cutting power to an estimated 4500 villages and several district towns "
    "for up to nine hours, the state power utility said."
)
A2 = (
    "Engineers traced the fault to a transformer at the Kalipur substation that caught fire "
    "shortly after seven in the evening, tripping two transmission lines that carry electricity "
    "from the thermal plant in the south to the northern districts."
)
A3 = (
    "Hospitals switched to diesel generators, and the railway said eleven trains were held at "
    "stations for more than an hour after signals went dark on the main line between the state "
    "capital and the border town."
)
A4 = (
    "The utility's managing director said supply had been restored to all feeders by early "
    "Thursday and that a committee of three senior engineers would report within a week on why "
    "the protection relays failed to isolate the fault."
)
A5 = (
    "Opposition leaders blamed years of deferred maintenance and demanded that the energy "
    "minister explain why the substation had been running above its rated load throughout the "
    "summer."
)
CHROME = "Share on Facebook Share on X WhatsApp Copy link"

ORIGINAL = "\n\n".join([CHROME, A1, A2, A3, A4, A5, "Leave a Reply Cancel reply"])
COPY = "\n\n".join(
    [
        "KALIPUR: " + A1.replace("4500", "5,000"),
        A2,
        A3 + " Traders in the market towns said they lost a full evening of business.",
        A4,
        A5,
        "Click to start listening",
    ]
)
SECOND_COPY = "\n\n".join(
    [
        A1.replace("plunged", "threw"),
        A2,
        A3,
        A4.replace("three", "four"),
        "(With inputs from agencies)",
    ]
)
RETURNING_COPY = "\n\n".join(
    ["One month on, we republish our report on the blackout.", A1, A2, A3, A4]
)
COMMENTARY = "\n\n".join(
    [
        "The blackout that darkened the north last week was not an act of nature. It was the "
        "predictable result of a power system that has been asked to carry more every year "
        "while the money for its upkeep has been spent on announcements and inaugurations.",
        "Anyone who has driven past a rural substation knows the picture: rusting fences, oil "
        "stains under the transformers, and a single operator on the night shift with a logbook "
        "and a telephone that rarely works. The official account of what went wrong reads:",
        A2,
        "That is the language of an accident. But transformers rarely catch fire without warning, "
        "and the readings that would have given that warning are collected every day by the "
        "very utility that now professes surprise.",
        "Other states have shown that a grid can be run differently. They publish the loading of "
        "every substation, they replace equipment on a schedule rather than after it fails, and "
        "they let independent auditors inspect the protection systems every year.",
        "Until our utility does the same, the next summer evening will carry the same risk, "
        "and the same ministers will promise the same inquiry when the lights go out again.",
    ]
)
UNRELATED = "\n\n".join(
    [
        "The state university has postponed its semester examinations by two weeks after "
        "students protested against a sudden change in the syllabus for final-year courses.",
        "The vice-chancellor said the revised timetable would be published on the university "
        "website by Monday and that hall tickets already issued would remain valid.",
        "Student unions welcomed the decision but said they would continue to press for the "
        "old syllabus to be restored for the current batch.",
    ]
)

HOUSE_LINE = "For more stories like this, follow us and subscribe to our newsletter."
HOUSE_ABOUT = (
    "The Valley Courier has reported on the towns and villages of the upper valley since 1987. "
    "It is owned by a trust of its readers and staff and takes no money from any political party "
    "or government department, and it answers only to the people who read it every morning."
)
VALLEY_STORIES = [
    [
        "Apple growers in the upper valley say a late frost in April has cut this year's crop by "
        "nearly a third, and several cold stores are standing half empty.",
        "The horticulture department has promised a survey of the damage before the end of the "
        "month, but growers say compensation in previous years took more than a year to arrive.",
    ],
    [
        "The district administration has closed the old suspension bridge over the river to "
        "vehicles after engineers found cracks in two of its anchor blocks.",
        "Pedestrians may still cross, but buses to the villages on the far bank now take a "
        "detour of forty kilometres through the next town.",
    ],
    [
        "A youth football tournament organised by the valley's sports clubs drew more than sixty "
        "teams this weekend, the largest number since the league was founded.",
        "Organisers said girls' teams made up a quarter of the entries, and they hope to add a "
        "separate under-fourteen division next season.",
    ],
]


def _valley_text(paragraphs: list[str]) -> str:
    return "\n\n".join([*paragraphs, HOUSE_ABOUT, HOUSE_LINE, "Leave a Reply Cancel reply"])


def _row(outlet: str, slug: str, seen: datetime, text: str, run_id: str = "run-1") -> dict:
    url = f"https://{outlet}.example/news/{slug}"
    entry = FeedEntry(
        url=url,
        canonical_url=url,
        title=slug.replace("-", " ").capitalize(),
        published_at=seen - timedelta(minutes=30),
        author="",
        summary="",
        content="",
    )
    return _article_row(
        NewEntry(entry, outlet, f"https://{outlet}.example/rss"), run_id, seen, text, "page"
    )


# the order the articles arrive in, one hour apart
ARRIVALS = [
    ("grid-daily", "grid-failure", ORIGINAL),
    ("grid-daily", "exams-postponed", UNRELATED),
    ("metro-wire", "northern-blackout", COPY),
    ("plains-herald", "opinion-the-blackout", COMMENTARY),
    ("coast-mirror", "blackout-hits-north", SECOND_COPY),
]


def _rows() -> list[dict]:
    return [
        _row(outlet, slug, T0 + timedelta(hours=i), text)
        for i, (outlet, slug, text) in enumerate(ARRIVALS)
    ]


def _open(path) -> Store:
    store = Store(path)
    store.sync_outlets(OUTLETS)
    return store


def _membership(store: Store) -> dict[int, str]:
    return dict(store.sql("SELECT article_id, cluster_id FROM cluster_members"))


def _snapshot(store: Store) -> dict[str, list]:
    queries = {
        "members": "SELECT * EXCLUDE (run_id) FROM cluster_members ORDER BY article_id",
        "clusters": "SELECT * EXCLUDE (run_id) FROM clusters ORDER BY cluster_id",
        "matches": "SELECT * FROM article_matches ORDER BY article_id, other_article_id",
        "signatures": "SELECT * FROM signatures ORDER BY article_id",
        "bands": "SELECT * FROM band_keys ORDER BY ALL",
        "paragraphs": "SELECT * FROM outlet_paragraphs ORDER BY ALL",
        "merges": "SELECT * EXCLUDE (run_id, merged_at) FROM cluster_merges ORDER BY ALL",
        "params": "SELECT param_set_id, params FROM detection_params",
    }
    return {name: store.sql(query) for name, query in queries.items()}


@pytest.fixture
def batch_store(tmp_path):
    store = _open(tmp_path / "batch.duckdb")
    store.insert_articles(_rows())
    outcome = detect(store, "run-1", T0 + timedelta(hours=5), DEFAULT_PARAMS)
    yield store, outcome
    store.close()


def test_copies_and_quotes_share_a_cluster_unrelated_stands_alone(batch_store):
    store, outcome = batch_store
    rows = _rows()
    ids = {slug: row["article_id"] for (_o, slug, _t), row in zip(ARRIVALS, rows, strict=True)}
    membership = _membership(store)
    story = cluster_id_for(ids["grid-failure"])
    assert membership[ids["grid-failure"]] == story
    assert membership[ids["northern-blackout"]] == story
    assert membership[ids["blackout-hits-north"]] == story
    assert membership[ids["opinion-the-blackout"]] == story
    assert membership[ids["exams-postponed"]] == cluster_id_for(ids["exams-postponed"])
    assert (outcome.articles_signed, outcome.clusters_new, outcome.clusters_joined) == (5, 2, 3)
    assert outcome.clusters_merged == 0
    kinds = dict(
        store.sql("SELECT article_id, match_kind FROM cluster_members WHERE match_kind IS NOT NULL")
    )
    assert kinds[ids["northern-blackout"]] == "copy"
    assert kinds[ids["opinion-the-blackout"]] == "passage"
    (passage,) = store.sql(
        "SELECT matched_passage FROM cluster_members WHERE article_id = ?",
        [ids["opinion-the-blackout"]],
    )[0]
    assert passage.startswith("Engineers traced the fault")
    summary = store.sql(
        "SELECT origin_outlet, article_count, outlet_count FROM cluster_summary "
        "WHERE cluster_id = ?",
        [story],
    )
    assert summary == [("Grid Daily", 4, 4)]


def test_signatures_bands_and_params_are_written(batch_store):
    store, _ = batch_store
    rows = _rows()
    signatures = store.sql(
        "SELECT article_id, param_set_id, shingle_count, passage_count FROM signatures"
    )
    assert len(signatures) == 5
    by_id = {r[0]: r for r in signatures}
    for row in rows:
        _, param_set, shingles, passages = by_id[row["article_id"]]
        assert param_set == DEFAULT_PARAMS.param_set_id
        # the stored counts are the text's with the chrome lines removed
        signed = sign_article(row["text"], set(), DEFAULT_PARAMS)
        assert shingles == signed.signed.shingles.size
        assert passages == len(signed.signed.passages)
        keys = store.sql(
            "SELECT key FROM band_keys WHERE article_id = ? ORDER BY key", [row["article_id"]]
        )
        assert [k for (k,) in keys] == signed.keys.tolist()
        # whole-text bands plus passage bands, each key once
        most = DEFAULT_PARAMS.bands + passages * DEFAULT_PARAMS.passage_bands
        assert DEFAULT_PARAMS.bands < len(keys) <= most
    ((param_set, params),) = store.sql("SELECT param_set_id, params FROM detection_params")
    assert param_set == DEFAULT_PARAMS.param_set_id
    assert json.loads(params) == DEFAULT_PARAMS.as_dict()


def test_detect_again_changes_nothing(batch_store):
    store, _ = batch_store
    before = _snapshot(store)
    again = detect(store, "run-2", T0 + timedelta(hours=6), DEFAULT_PARAMS)
    assert (again.articles_signed, again.clusters_new, again.pairs_checked) == (0, 0, 0)
    assert _snapshot(store) == before


def test_batch_and_one_by_one_give_the_same_clusters(batch_store, tmp_path):
    batch, _ = batch_store
    with _open(tmp_path / "incremental.duckdb") as store:
        for i, row in enumerate(_rows()):
            assert store.insert_articles([row]) == 1
            outcome = detect(store, f"run-{i}", row["first_seen_at"], DEFAULT_PARAMS)
            assert outcome.articles_signed == 1
        assert _membership(store) == _membership(batch)
        incremental = _snapshot(store)
    expected = _snapshot(batch)
    for table in ("members", "clusters", "matches", "signatures", "bands"):
        assert incremental[table] == expected[table], table


def test_returning_copy_joins_the_existing_cluster(batch_store):
    store, _ = batch_store
    clusters_before = store.count("clusters")
    later = T0 + timedelta(days=30)
    returning = _row("valley-courier", "blackout-one-month-on", later, RETURNING_COPY, "run-30")
    assert store.insert_articles([returning]) == 1
    outcome = detect(store, "run-30", later, DEFAULT_PARAMS)
    assert (outcome.articles_signed, outcome.clusters_new, outcome.clusters_joined) == (1, 0, 1)
    origin = _rows()[0]["article_id"]
    assert _membership(store)[returning["article_id"]] == cluster_id_for(origin)
    assert store.count("clusters") == clusters_before
    ((last_seen, count),) = store.sql(
        "SELECT last_seen_at, article_count FROM cluster_summary WHERE cluster_id = ?",
        [cluster_id_for(origin)],
    )
    assert (last_seen, count) == (later, 5)


def test_outlet_house_lines_do_not_cluster_unrelated_articles(tmp_path):
    texts = [_valley_text(paragraphs) for paragraphs in VALLEY_STORIES]
    # without the outlet's learned chrome the house paragraph alone would make a match
    bare = [sign_text(t, set(), DEFAULT_PARAMS) for t in texts]
    assert compare(bare[1], bare[0], 0, DEFAULT_PARAMS) is not None
    with _open(tmp_path / "house.duckdb") as store:
        rows = [
            _row("valley-courier", f"story-{i}", T0 + timedelta(hours=i), text)
            for i, text in enumerate(texts)
        ]
        store.insert_articles(rows)
        outcome = detect(store, "run-1", T0 + timedelta(hours=3), DEFAULT_PARAMS)
        membership = _membership(store)
        assert outcome.clusters_new == 3
        assert len({membership[r["article_id"]] for r in rows}) == 3
        assert store.count("article_matches") == 0
        # the house paragraph is now the outlet's chrome; a fourth story is not matched either
        fourth = _row(
            "valley-courier",
            "story-3",
            T0 + timedelta(hours=4),
            _valley_text(
                [
                    "The municipal council has approved a new bus stand on the site of the old "
                    "cattle market, ending a dispute that has lasted nearly ten years.",
                    "Shopkeepers near the current stand say they fear losing customers once the "
                    "buses move across town.",
                ]
            ),
        )
        store.insert_articles([fourth])
        assert detect(store, "run-2", T0 + timedelta(hours=4), DEFAULT_PARAMS).clusters_new == 1
        assert store.count("article_matches") == 0


def _every_nth_word_replaced(text: str, offset: int, every: int = 8) -> str:
    """Every `every`-th word (from `offset`) replaced: with offsets 0 and 4, every window of
    four words holds a replaced word of one version or the other, so the two versions share no
    shingle, while each still shares half of the original's."""
    counter = 0
    paragraphs = []
    for paragraph in text.split("\n\n"):
        words = []
        for word in paragraph.split():
            words.append(f"xq{counter}" if counter % every == offset else word)
            counter += 1
        paragraphs.append(" ".join(words))
    return "\n\n".join(paragraphs)


MERGE_ORIGINAL = "\n\n".join([A1, A2, A3, A4, A5])
MERGE_ARRIVALS = [
    ("metro-wire", "garbled-first", _every_nth_word_replaced(MERGE_ORIGINAL, 0)),
    ("coast-mirror", "garbled-second", _every_nth_word_replaced(MERGE_ORIGINAL, 4)),
    ("grid-daily", "full-report", MERGE_ORIGINAL),
]


def test_an_article_matching_two_clusters_through_the_same_text_merges_them(tmp_path):
    rows = [
        _row(outlet, slug, T0 + timedelta(hours=i), text)
        for i, (outlet, slug, text) in enumerate(MERGE_ARRIVALS)
    ]
    first, second, full = (r["article_id"] for r in rows)
    older, younger = cluster_id_for(first), cluster_id_for(second)
    with _open(tmp_path / "batch.duckdb") as batch:
        batch.insert_articles(rows)
        outcome = detect(batch, "run-1", T0 + timedelta(hours=3), DEFAULT_PARAMS)
        assert (outcome.clusters_new, outcome.clusters_joined, outcome.clusters_merged) == (2, 1, 1)
        assert _membership(batch) == {first: older, second: older, full: older}
        assert batch.sql(
            "SELECT absorbed_cluster_id, survivor_cluster_id, via_article_id FROM cluster_merges"
        ) == [(younger, older, full)]
        assert batch.sql(
            "SELECT cluster_id, status, merged_into FROM clusters ORDER BY ALL"
        ) == sorted([(older, "active", None), (younger, "merged", older)])
        assert batch.sql("SELECT cluster_id, article_count FROM cluster_summary") == [(older, 3)]
        expected = _snapshot(batch)
    with _open(tmp_path / "one-by-one.duckdb") as store:
        for i, row in enumerate(rows):
            store.insert_articles([row])
            detect(store, f"run-{i}", row["first_seen_at"], DEFAULT_PARAMS)
        incremental = _snapshot(store)
    for table in ("members", "clusters", "matches", "merges"):
        assert incremental[table] == expected[table], table
