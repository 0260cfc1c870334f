"""The DuckDB store: migrations, views, idempotent writes, feed state, errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pyarrow as pa
import pytest

from flows.stages import NewEntry, _article_row, article_id_for
from ingest.feeds import FeedEntry
from narratives.detect import DetectionResult
from store.db import FeedState, Store, StoreError
from store.migrations import MIGRATIONS
from store.queries import day_activity, merged_into, window_members

T0 = datetime(2025, 5, 2, 8, 0, tzinfo=UTC)

OUTLETS = [
    SimpleNamespace(
        outlet_id="river-times",
        name="River Times",
        country="IN",
        kind="news-portal",
        homepage="https://rivertimes.example",
        feeds=["https://rivertimes.example/rss", "https://rivertimes.example/city/rss"],
    ),
    SimpleNamespace(
        outlet_id="hill-post",
        name="Hill Post",
        country="NP",
        kind="blog",
        homepage="https://hillpost.example",
        feeds=["https://hillpost.example/feed"],
    ),
]


def _row(outlet: str, slug: str, seen: datetime, title: str = "", text: str = "", run="r1"):
    homepage = {
        "river-times": "https://rivertimes.example",
        "hill-post": "https://hillpost.example",
    }
    url = f"{homepage[outlet]}/news/{slug}"
    entry = FeedEntry(
        url=url,
        canonical_url=url,
        title=title or slug.replace("-", " ").title(),
        published_at=seen - timedelta(hours=1),
        author="Staff",
        summary="",
        content="",
    )
    new = NewEntry(entry, outlet, f"{homepage[outlet]}/rss")
    return _article_row(new, run, seen, text or f"Body of {slug}, a short story.", "page")


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "narratrace.duckdb") as s:
        s.sync_outlets(OUTLETS)
        yield s


def test_migrations_are_applied_once_and_recorded(tmp_path):
    path = tmp_path / "db" / "store.duckdb"  # the parent folder is created
    with Store(path) as s:
        rows = s.sql("SELECT name, applied_at FROM schema_migrations ORDER BY name")
        assert [r[0] for r in rows] == [name for name, _ in MIGRATIONS]
        assert s.migrate() == []
    with Store(path) as s:
        again = s.sql("SELECT name, applied_at FROM schema_migrations ORDER BY name")
        assert again == rows
        assert s.count("articles") == 0
    with Store(path, read_only=True) as s:
        assert s.count("schema_migrations") == len(MIGRATIONS)


def test_a_failed_migration_rolls_back_and_is_not_recorded(tmp_path, monkeypatch):
    import store.db as db

    def broken(con):
        con.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("boom")

    monkeypatch.setattr(db, "MIGRATIONS", [*MIGRATIONS, ("003_broken", broken)])
    with pytest.raises(RuntimeError, match="boom"):
        Store(tmp_path / "s.duckdb")
    monkeypatch.setattr(db, "MIGRATIONS", MIGRATIONS)
    with Store(tmp_path / "s.duckdb") as s:
        assert s.count("schema_migrations") == len(MIGRATIONS)
        tables = {r[0] for r in s.sql("SELECT table_name FROM information_schema.tables")}
        assert "half_done" not in tables


def _columns(store: Store, view: str) -> list[str]:
    return [r[0] for r in store.sql(f"DESCRIBE {view}")]


def test_views_have_the_documented_columns(store):
    assert _columns(store, "article_clusters") == [
        "article_id",
        "url",
        "outlet",
        "title",
        "published_at",
        "first_seen_at",
        "cluster_id",
    ]
    assert _columns(store, "cluster_summary") == [
        "cluster_id",
        "label",
        "first_seen_at",
        "last_seen_at",
        "origin_outlet",
        "article_count",
        "outlet_count",
    ]


def _member(article_id: int, cluster: str, at: datetime) -> dict:
    return {
        "article_id": article_id,
        "cluster_id": cluster,
        "matched_article_id": None,
        "match_kind": None,
        "similarity": None,
        "containment": None,
        "matched_passage": None,
        "joined_at": at,
        "run_id": "r1",
    }


def test_view_values_origin_is_the_earliest_first_seen(store):
    late = _row("river-times", "dam-report-copy", T0 + timedelta(hours=5), "Copy title")
    early = _row("hill-post", "dam-report", T0, "Dam report")
    middle = _row("river-times", "dam-report-again", T0 + timedelta(hours=2), "Again")
    alone = _row("hill-post", "unclustered", T0 + timedelta(hours=1), "No cluster yet")
    assert store.insert_articles([late, early, middle, alone]) == 4
    store._insert(
        "cluster_members",
        [_member(r["article_id"], "Ndam", r["first_seen_at"]) for r in (late, early, middle)],
    )
    (summary,) = store.sql("SELECT * FROM cluster_summary")
    assert summary == (
        "Ndam",
        "Dam report",
        T0,
        T0 + timedelta(hours=5),
        "Hill Post",
        3,
        2,
    )
    rows = {r[0]: r for r in store.sql("SELECT * FROM article_clusters")}
    assert rows[early["article_id"]] == (
        early["article_id"],
        "https://hillpost.example/news/dam-report",
        "Hill Post",
        "Dam report",
        T0 - timedelta(hours=1),
        T0,
        "Ndam",
    )
    assert rows[alone["article_id"]][-1] is None  # not clustered yet, still listed
    assert len(rows) == 4


def test_insert_articles_is_idempotent(store):
    rows = [_row("river-times", f"story-{i}", T0 + timedelta(minutes=i)) for i in range(3)]
    assert store.insert_articles(rows) == 3
    assert store.insert_articles(rows) == 0
    assert store.insert_articles([]) == 0
    # the same canonical URL under another id is not a second article
    clash = dict(rows[0], article_id=rows[0]["article_id"] ^ 1)
    assert store.insert_articles([clash, _row("hill-post", "new-one", T0)]) == 1
    assert store.count("articles") == 4
    assert rows[0]["article_id"] == article_id_for(rows[0]["canonical_url"])


def test_articles_to_sign_oldest_first_and_texts(store):
    rows = [
        _row("river-times", "b", T0 + timedelta(hours=2)),
        _row("river-times", "a", T0),
        _row("hill-post", "c", T0 + timedelta(hours=1)),
    ]
    store.insert_articles(rows)
    pending = store.articles_to_sign()
    assert [p.article_id for p in pending] == [
        rows[1]["article_id"],
        rows[2]["article_id"],
        rows[0]["article_id"],
    ]
    assert pending[0].first_seen_at == T0 and pending[0].outlet_id == "river-times"
    assert len(store.articles_to_sign(limit=2)) == 2
    texts = store.texts([rows[2]["article_id"]])
    assert texts[rows[2]["article_id"]].text == rows[2]["text"]


def test_sync_outlets_upserts_outlets_and_feeds(store):
    renamed = SimpleNamespace(
        **{**vars(OUTLETS[1]), "name": "The Hill Post", "feeds": ["https://hillpost.example/feed"]}
    )
    store.sync_outlets([renamed])
    assert store.sql("SELECT name FROM outlets WHERE outlet_id = 'hill-post'") == [
        ("The Hill Post",)
    ]
    assert store.count("outlets") == 2
    assert store.count("feeds") == 3


def test_feed_state_and_consecutive_failures(store):
    url = "https://rivertimes.example/rss"
    states = store.feed_states([url, "https://unknown.example/rss"])
    assert states == {url: FeedState(url, "river-times", None, None, 0)}
    store.record_feed(url, T0, "ok", None, '"v1"', "Fri, 02 May 2025 08:00:00 GMT", 25)
    later = T0 + timedelta(minutes=15)
    store.record_feed_failures([(url, later, "timed out", later + timedelta(minutes=10))])
    store.record_feed_failures([(url, T0 + timedelta(minutes=30), "HTTP 503", T0 + HOUR)])
    state = store.feed_states([url])[url]
    assert state.consecutive_failures == 2
    assert state.backoff_until == T0 + HOUR
    assert state.etag == '"v1"'  # kept through failures for the next conditional request
    store.record_feed(url, T0 + timedelta(minutes=45), "not-modified", None, '"v1"', None, None)
    state = store.feed_states([url])[url]
    assert state.consecutive_failures == 0 and state.backoff_until is None  # reset on success
    row = store.sql(
        "SELECT last_status, last_error, last_entry_count, last_polled_at FROM feeds "
        "WHERE feed_url = ?",
        [url],
    )
    assert row == [("not-modified", None, 25, T0 + timedelta(minutes=45))]
    assert store.feed_states([]) == {}
    store.schedule_feeds({url: T0 + 2 * HOUR})
    assert store.feed_states([url])[url].next_poll_at == T0 + 2 * HOUR


HOUR = timedelta(hours=1)
FEED = "https://rivertimes.example/rss"


def _entry(slug: str, seen: datetime = T0, published: datetime | None = T0, feed=FEED) -> dict:
    url = f"https://rivertimes.example/news/{slug}"
    return {
        "entry_id": article_id_for(url),
        "canonical_url": url,
        "url": url + "?utm_source=rss",
        "outlet_id": "river-times",
        "feed_url": feed,
        "title": slug.title(),
        "summary": f"Teaser of {slug}.",
        "content": "",
        "author": "Staff",
        "published_at": published,
        "first_seen_at": seen,
    }


def test_a_feeds_entries_are_recorded_once_with_its_validators(store):
    entries = [_entry("a"), _entry("b")]
    log = {**_fetch("r1", FEED, "ok", kind="feed")}
    assert store.record_feed(FEED, T0, "ok", None, '"v1"', None, 2, entries, log) == 2
    later = T0 + HOUR
    again = [_entry("a", later), _entry("c", later)]  # "a" is known: its first sighting stays
    assert store.record_feed(FEED, later, "ok", None, '"v2"', None, 2, again) == 1
    rows = store.sql(
        "SELECT canonical_url, status, attempts, first_seen_at, summary FROM entries ORDER BY 1"
    )
    assert [(r[0][-1], r[1], r[2], r[3]) for r in rows] == [
        ("a", "pending", 0, T0),
        ("b", "pending", 0, T0),
        ("c", "pending", 0, later),
    ]
    assert rows[0][4] == "Teaser of a."
    assert store.feed_states([FEED])[FEED].etag == '"v2"'
    assert store.count("fetch_log") == 1


def test_a_feeds_validators_are_not_saved_when_its_entries_are_not(store):
    broken = dict(_entry("a"), first_seen_at=None)  # NOT NULL: the insert fails
    with pytest.raises(Exception, match="NOT NULL"):
        store.record_feed(FEED, T0, "ok", None, '"v1"', None, 1, [_entry("b"), broken])
    assert store.feed_states([FEED])[FEED].etag is None  # the next poll reads the feed again
    assert store.count("entries") == 0


def _update(entry: dict, status: str, article_id: int | None = None, **extra) -> dict:
    return {
        "entry_id": entry["entry_id"],
        "status": status,
        "attempts": 1,
        "last_attempt_at": T0,
        "article_id": article_id,
        **extra,
    }


def test_an_article_and_its_entrys_status_are_written_together(store):
    a, b = _entry("a"), _entry("b")
    store.record_feed(FEED, T0, "ok", None, None, None, 2, [a, b])
    article = _row("river-times", "a", T0)
    retry = _update(b, "pending", next_attempt_at=T0 + HOUR, last_error="HTTP 503")
    stored = _update(a, "stored", article["article_id"])
    assert store.finish_entries([article], [stored, retry]) == 1
    rows = dict(
        (r[0], r[1:])
        for r in store.sql(
            "SELECT entry_id, status, article_id, next_attempt_at, last_error FROM entries"
        )
    )
    assert rows[a["entry_id"]] == ("stored", article["article_id"], None, None)
    assert rows[b["entry_id"]] == ("pending", None, T0 + HOUR, "HTTP 503")
    # a failing write leaves neither the article nor the entry's new status
    c = _entry("c")
    store.record_feed(FEED, T0, "ok", None, None, None, 1, [c])
    bad = dict(_row("river-times", "c", T0), text=None)
    with pytest.raises(Exception, match="NOT NULL"):
        store.finish_entries([bad], [_update(c, "stored", bad["article_id"])])
    assert store.sql("SELECT status FROM entries WHERE entry_id = ?", [c["entry_id"]]) == [
        ("pending",)
    ]
    assert store.count("articles") == 1
    assert store.pending_entries() == 2


def test_due_entries_are_capped_per_feed_in_clustering_order(store):
    other = "https://rivertimes.example/city/rss"
    old = [_entry(f"old{i}", T0, T0 - timedelta(hours=i)) for i in range(3)]
    new = [_entry(f"new{i}", T0 + HOUR, T0 - timedelta(days=1)) for i in range(2)]
    city = [_entry(f"city{i}", T0, T0 + timedelta(minutes=i), feed=other) for i in range(2)]
    later = _entry("later", T0)
    for rows in (old, new, city, [later]):
        store.record_feed(rows[0]["feed_url"], T0, "ok", None, None, None, 0, rows)
    store.finish_entries([], [_update(later, "pending", next_attempt_at=T0 + 2 * HOUR)])
    due = store.due_entries([FEED, other], T0 + HOUR, per_feed=3)
    slugs = [d.canonical_url.rsplit("/", 1)[1] for d in due]
    # first seen first, then published; at most 3 of FEED; "later" is not due yet
    assert slugs == ["old2", "old1", "city0", "old0", "city1"]
    assert due[0].attempts == 0 and due[0].first_seen_at == T0 and due[0].feed_url == FEED
    assert due[0].summary == "Teaser of old2." and due[0].url.endswith("?utm_source=rss")
    assert [d.canonical_url[-6:] for d in store.due_entries([other], T0, 5)] == ["/city0", "/city1"]
    assert store.due_entries([], T0, 5) == []
    due_later = store.due_entries([FEED], T0 + 3 * HOUR, per_feed=10)
    assert "later" in [d.canonical_url.rsplit("/", 1)[1] for d in due_later]


def test_publishing_history_counts_each_feeds_newest_entries(store):
    rows = [_entry(f"s{i}", T0, T0 - timedelta(hours=i)) for i in range(5)]
    rows.append(_entry("future", T0, T0 + HOUR))  # published after as_of: not counted
    rows.append(_entry("undated", T0, None))
    store.record_feed(FEED, T0, "ok", None, None, None, 0, rows)
    assert store.publishing_history([FEED], T0, newest=3) == {FEED: (3, T0 - 2 * HOUR)}
    assert store.publishing_history([FEED], T0, newest=10) == {FEED: (5, T0 - 4 * HOUR)}
    assert store.publishing_history(["https://x.example/rss"], T0, 3) == {}


def test_host_backoffs_keep_the_later_wait(store):
    def wait(until: datetime) -> dict:
        return {
            "host": "rivertimes.example",
            "until": until,
            "retry_after": 120.0,
            "status_code": 429,
            "url": FEED,
            "recorded_at": T0,
        }

    store.record_host_backoffs([wait(T0 + 2 * HOUR)])
    store.record_host_backoffs([wait(T0 + HOUR)])
    assert store.host_backoffs(T0) == {"rivertimes.example": T0 + 2 * HOUR}
    assert store.host_backoffs(T0 + 3 * HOUR) == {}


def _fetch(run: str, url: str, outcome: str, kind: str = "article") -> dict:
    return {
        "run_id": run,
        "fetched_at": T0,
        "kind": kind,
        "url": url,
        "outlet_id": "river-times",
        "outcome": outcome,
        "error": "HTTP 500" if outcome == "error" else None,
    }


def test_day_stats_count_the_days_fetches(store):
    a, b, c = (f"https://rivertimes.example/news/{x}" for x in "abc")
    store.log_fetches(
        [
            _fetch("r1", a, "error"),
            _fetch("r1", a, "error"),
            _fetch("r2", a, "error"),
            _fetch("r3", a, "ok"),
            _fetch("r1", b, "ok"),
            _fetch("r1", c, "error", kind="feed"),
        ]
    )
    activity = day_activity(store, T0, T0 + timedelta(days=1))
    # each (URL, time) once: three runs failed on article a at the same time
    assert activity.article_failures == 1
    assert (activity.feeds_polled, activity.feeds_answered) == (1, 0)
    assert (activity.articles_seen, activity.poll_times) == (0, 0)


def test_migration_005_records_stored_articles_as_entries(tmp_path, monkeypatch):
    import store.db as db

    path = tmp_path / "old.duckdb"
    monkeypatch.setattr(db, "MIGRATIONS", MIGRATIONS[:4])
    with Store(path) as old:
        old.sync_outlets(OUTLETS)
        old.sql("UPDATE feeds SET etag = '\"v9\"', last_modified = 'Fri, 02 May 2025'")
        rows = [_row("river-times", "a", T0), _row("hill-post", "b", T0 + HOUR)]
        old.insert_articles(rows)
    monkeypatch.setattr(db, "MIGRATIONS", MIGRATIONS)
    with Store(path) as new:
        entries = new.sql(
            "SELECT entry_id, canonical_url, status, article_id, first_seen_at, attempts "
            "FROM entries ORDER BY first_seen_at"
        )
        assert entries == [
            (r["article_id"], r["canonical_url"], "stored", r["article_id"], r["first_seen_at"], 1)
            for r in rows
        ]
        # the feeds are read in full once more: entries an older version lost come back
        assert new.sql("SELECT DISTINCT etag, last_modified FROM feeds") == [(None, None)]
        assert new.pending_entries() == 0


def test_finish_run_rejects_unknown_counts(store):
    store.begin_run("r9", T0, "outlets.toml")
    store.finish_run("r9", "completed", {"articles_new": 4}, None)
    assert store.sql("SELECT status, articles_new, as_of FROM runs") == [("completed", 4, T0)]
    with pytest.raises(ValueError, match="unknown run counts: \\['articles_nwe'\\]"):
        store.finish_run("r9", "completed", {"articles_nwe": 4}, None)


def test_chrome_keys_are_repeated_by_one_outlet_only(store):
    rows = []
    for article in range(1, 4):
        rows.append({"outlet_id": "river-times", "paragraph_key": 111, "article_id": article})
        rows.append({"outlet_id": "river-times", "paragraph_key": 222, "article_id": article})
    rows.append({"outlet_id": "hill-post", "paragraph_key": 222, "article_id": 9})  # a shared claim
    rows.append({"outlet_id": "river-times", "paragraph_key": 333, "article_id": 1})
    store.record_paragraphs(rows[:4])
    pending = pa.Table.from_pylist(rows[4:])
    assert store.chrome_keys(["river-times"], 3) == {"river-times": set()}  # only 2 stored
    assert store.chrome_keys(["river-times", "hill-post"], 3, pending=pending) == {
        "river-times": {111},
        "hill-post": set(),
    }
    assert store.chrome_keys([], 3) == {}


def test_common_paragraphs_are_carried_by_unrelated_stories_of_several_outlets(store):
    def rows(key, carriers):
        return [{"outlet_id": o, "paragraph_key": key, "article_id": a} for o, a in carriers]

    # 500 and 700: lines on two unrelated stored stories of two outlets; 600: one story
    # re-posted by three outlets (one cluster)
    store.record_paragraphs(
        rows(500, [("river-times", 1), ("hill-post", 2)])
        + rows(600, [("river-times", 4), ("hill-post", 5), ("coast-daily", 6)])
        + rows(700, [("river-times", 7), ("hill-post", 8)])
    )
    store._insert(
        "cluster_members",
        [
            {"article_id": a, "cluster_id": c, "joined_at": T0, "run_id": "r1"}
            for a, c in [(1, "A"), (2, "B"), (4, "S"), (5, "S"), (6, "S"), (7, "C"), (8, "D")]
        ],
    )
    pending = pa.Table.from_pylist(
        rows(500, [("river-times", 3)])
        + rows(600, [("river-times", 9)])
        + rows(700, [("river-times", 12)])
    )
    assert store.common_paragraphs(pending, 2, 2) == {500, 700}
    assert store.common_paragraphs(pending, 2, 3) == set()  # outlets: the batch's count too
    pending = pa.concat_tables([pending, pa.Table.from_pylist(rows(700, [("coast-daily", 11)]))])
    assert store.common_paragraphs(pending, 2, 3) == {700}
    assert store.common_paragraphs(pending, 3, 2) == set()  # stories: stored ones only
    assert store.common_paragraphs(pending.slice(0, 0), 3, 2) == set()


def _keys(rows: list[tuple[int, int]]) -> pa.Table:
    return pa.table(
        {
            "key": pa.array([r[1] for r in rows], pa.uint64()),
            "article_id": pa.array([r[0] for r in rows], pa.int64()),
        }
    )


def test_candidate_pairs_join_stored_and_batch_keys(store):
    store._insert("band_keys", _keys([(1, 10), (1, 11), (2, 10), (3, 99)]))
    new = _keys([(7, 10), (7, 11), (8, 11), (8, 2**64 - 1)])
    pairs = store.candidate_pairs(new, max_per_article=10)
    assert sorted(pairs) == [(7, 1, 2), (7, 2, 1), (7, 8, 1), (8, 1, 1), (8, 7, 1)]
    assert sorted(store.candidate_pairs(new, max_per_article=1)) == [(7, 1, 2), (8, 1, 1)]
    assert store.candidate_pairs(_keys([]), 10) == []


def test_write_detection_merges_repoint_members_and_chains(store):
    rows = [_row("river-times", f"s{i}", T0 + timedelta(hours=i)) for i in range(3)]
    store.insert_articles(rows)
    ids = [r["article_id"] for r in rows]

    def write(article_ids, clusters, members, merges):
        n = len(article_ids)
        result = DetectionResult(
            param_set_id="p",
            article_ids=article_ids,
            shingle_counts=[5] * n,
            passage_counts=[1] * n,
            keys=_keys([]),
            paragraphs=pa.Table.from_pylist([]),
            new_clusters=[
                {
                    "cluster_id": c,
                    "founder_article_id": f,
                    "created_at": T0,
                    "status": "active",
                    "merged_into": None,
                    "run_id": "r1",
                }
                for c, f in clusters
            ],
            members=members,
            matches=[],
            merges=[
                {
                    "absorbed_cluster_id": a,
                    "survivor_cluster_id": s,
                    "via_article_id": v,
                    "merged_at": T0,
                    "run_id": "r1",
                }
                for a, s, v in merges
            ],
        )
        store.write_detection(result)

    write(
        ids[:2],
        [("Nb", ids[0]), ("Nc", ids[1])],
        [_member(ids[0], "Nb", T0), _member(ids[1], "Nc", T0)],
        [],
    )
    write([ids[2]], [("Na", ids[2])], [_member(ids[2], "Na", T0)], [("Nc", "Nb", ids[2])])
    write([], [], [], [("Nb", "Na", ids[2])])
    assert store.memberships(ids) == dict.fromkeys(ids, "Na")
    clusters = dict(
        (c, (status, into))
        for c, status, into in store.sql("SELECT cluster_id, status, merged_into FROM clusters")
    )
    assert clusters == {"Na": ("active", None), "Nb": ("merged", "Na"), "Nc": ("merged", "Na")}
    after = T0 + timedelta(seconds=1)
    assert merged_into(store, ["Na", "Nb"], after) == {"Nb": ["Nc"], "Na": ["Nb"]}
    assert merged_into(store, ["Na", "Nb"], T0) == {}  # not merged yet before T0
    assert store.cluster_births(["Na", "Nx"]) == {"Na": (T0, ids[2])}
    assert store.count("signatures") == 3


def test_window_members_lists_spread_clusters_gaining_articles(store):
    a = _row("hill-post", "origin", T0, "Origin")
    b = _row("river-times", "copy", T0 + timedelta(days=1), "Copy")
    c = _row("river-times", "solo", T0 + timedelta(days=1), "Solo")
    store.insert_articles([a, b, c])
    store._insert(
        "cluster_members",
        [
            _member(a["article_id"], "Nspread", T0),
            _member(b["article_id"], "Nspread", T0),
            _member(c["article_id"], "Nsolo", T0),
        ],
    )
    day2 = T0 + timedelta(days=1) - timedelta(hours=8)
    members = window_members(store, day2, day2 + timedelta(days=1))
    assert [(m.cluster_id, m.title) for m in members] == [
        ("Nspread", "Origin"),
        ("Nspread", "Copy"),
    ]
    # the day before the copy arrived the cluster had one outlet: nothing to report
    assert window_members(store, T0 - timedelta(hours=8), day2) == []


def test_directory_path_raises_store_error(tmp_path):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(StoreError, match="a-folder") as info:
        Store(folder)
    assert "directory" in str(info.value)
    assert "another" not in str(info.value).lower()


def test_non_duckdb_file_raises_store_error(tmp_path):
    junk = tmp_path / "notes.duckdb"
    junk.write_text("these are some notes, not a database\n" * 200)
    with pytest.raises(StoreError, match="notes.duckdb") as info:
        Store(junk)
    message = str(info.value)
    assert "not a valid DuckDB database" in message
    assert "another" not in message.lower()


def test_locked_database_raises_store_error(tmp_path):
    path = tmp_path / "locked.duckdb"
    Store(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, duckdb
                con = duckdb.connect({str(path)!r})
                print("locked", flush=True)
                sys.stdin.read()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreError, match="Another narratrace process") as info:
            Store(path)
        assert "locked.duckdb" in str(info.value)
    finally:
        holder.stdin.close()
        holder.wait(timeout=20)
        holder.stdout.close()


def test_migration_008_keeps_every_article_and_compresses_texts_with_zstd(tmp_path, monkeypatch):
    import store.db as db

    path = tmp_path / "old.duckdb"
    monkeypatch.setattr(db, "MIGRATIONS", MIGRATIONS[:7])
    with Store(path) as old:
        old.sync_outlets(OUTLETS)
        old.insert_articles([_row("river-times", "a", T0), _row("hill-post", "b", T0 + HOUR)])
        before = old.sql("SELECT * FROM articles ORDER BY article_id")
    monkeypatch.setattr(db, "MIGRATIONS", MIGRATIONS)
    with Store(path) as new:
        assert new.sql("SELECT * FROM articles ORDER BY article_id") == before
        new.sql("CHECKPOINT")
        methods = new.sql(
            "SELECT DISTINCT compression FROM pragma_storage_info('articles') "
            "WHERE column_name = 'text' AND segment_type = 'VARCHAR'"
        )
        assert methods == [("ZSTD",)]
        # new rows keep the column's compression
        new.insert_articles([_row("river-times", "c", T0 + 2 * HOUR)])
        assert new.count("articles") == 3
