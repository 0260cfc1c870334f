"""The fetch-extract-store-and-detect stage: articles stored in clustering order, and full
batches detected while later pages are still being extracted, with the same clusters as
detecting afterwards."""

from __future__ import annotations

from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flows import stages
from flows.distribute import LocalWorkers
from ingest.config import load_outlets
from ingest.extract import shutdown_pool
from ingest.feeds import FeedEntry, parse_feed
from ingest.http import Fetcher, FetchRequest
from narratives.detect import SignedTexts, clustering_key, short_paragraph_keys, sign_text
from narratives.params import DEFAULT_PARAMS, DetectionParams
from narratives.text import fingerprint, read_paragraphs
from simulator import OutletSimulator, load_corpus
from store.db import Store

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _entry(slug: str, published: datetime | None, seen: datetime = T0) -> stages.DueEntry:
    url = f"https://news.example/{slug}"
    new = stages.NewEntry(
        FeedEntry(url, url, slug, published, "", "", ""), "example", "https://news.example/feed"
    )
    return stages.DueEntry(new, seen)


def _row(due: stages.DueEntry, published: datetime | None) -> dict[str, object]:
    return {"article_id": due.entry_id, "published_at": published}


def _published(released: list[stages.Finished]) -> list[object]:
    return [row["published_at"] for row, _update in released if row is not None]


def test_undated_entries_are_fetched_first_and_rows_come_out_in_clustering_order():
    dated = [_entry(f"d{i}", T0 + timedelta(hours=h)) for i, h in enumerate([5, 1, 3])]
    undated = [_entry("u-page-date", None), _entry("u-no-date", None)]
    entries = [dated[0], undated[0], dated[1], undated[1], dated[2]]
    order = stages._InClusteringOrder(entries)
    fetch_order = order.fetch_order()
    assert set(fetch_order[:2]) == {1, 3}  # the undated ones: their place comes from the page
    assert fetch_order[2:] == [2, 4, 0]  # then the dated ones, oldest first

    released: list[stages.Finished] = []
    # pages finish in any order; nothing is released before every undated entry is read
    released += order.finish(0, _row(entries[0], T0 + timedelta(hours=5)))
    released += order.finish(2, _row(entries[2], T0 + timedelta(hours=1)))
    assert released == []
    released += order.finish(1, _row(entries[1], T0 + timedelta(hours=2)))  # page's own date
    assert released == []
    released += order.finish(3, _row(entries[3], None))  # no date anywhere: sorts last
    assert _published(released) == [T0 + timedelta(hours=h) for h in (1, 2)]
    retry = {"entry_id": entries[4].entry_id, "status": "pending"}
    released += order.finish(4, None, retry)  # failed: no article, its entry's update in turn
    assert _published(released) == [
        T0 + timedelta(hours=1),
        T0 + timedelta(hours=2),
        T0 + timedelta(hours=5),
        None,
    ]
    assert released[2] == (None, retry)  # its place: published at hour 3
    rows = [row for row, _u in released if row is not None]
    keys = [clustering_key(T0, r["published_at"], r["article_id"]) for r in rows]  # type: ignore[arg-type]
    assert keys == sorted(keys)


def test_entries_first_seen_in_an_earlier_cycle_come_first():
    carried = _entry("carried-over", T0 + timedelta(hours=9), seen=T0 - timedelta(hours=1))
    fresh = _entry("fresh", T0, seen=T0)
    order = stages._InClusteringOrder([fresh, carried])
    assert order.fetch_order() == [1, 0]
    assert order.finish(0, _row(fresh, T0)) == []
    skipped = order.finish(1, None)  # not fetched (cycle budget): nothing to write
    assert _published(skipped) == [T0]


def _cycle(
    sim: OutletSimulator,
    outlets: Path,
    db: Path,
    params: DetectionParams | None,
    as_of: datetime,
    recent: SignedTexts | None = None,
) -> tuple[stages.IngestOutcome, stages.DetectOutcome]:
    config = load_outlets(outlets)
    with Store(str(db)) as store, Fetcher(config.fetch) as fetcher:
        stages.poll_feeds(config, store, fetcher, "run-1", as_of)
        ingest = stages.fetch_and_extract(config, store, fetcher, "run-1", as_of, 2, params, recent)
        rest = stages.detect(store, "run-1", as_of, DEFAULT_PARAMS, recent=recent)
    return ingest, rest


def _clusters(db: Path) -> set[tuple[int, str, int | None]]:
    with Store(str(db)) as store:
        rows = store.sql("SELECT article_id, cluster_id, matched_article_id FROM cluster_members")
    return {(int(a), str(c), m) for a, c, m in rows}


def test_detecting_during_extraction_gives_the_clusters_of_detecting_afterwards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stages, "DETECT_BATCH", 40)  # several batches from the demo corpus
    corpus = load_corpus()
    try:
        with OutletSimulator(corpus, timeout_delay=1.0) as sim:
            sim.release_all()
            outlets = tmp_path / "outlets.toml"
            outlets.write_text(
                sim.outlets_toml(extra="[fetch]\ntimeout_seconds = 0.5\ntransient_retries = 0\n"),
                encoding="utf-8",
            )
            as_of = sim.now
            recent = SignedTexts()
            during, rest = _cycle(
                sim, outlets, tmp_path / "during.duckdb", DEFAULT_PARAMS, as_of, recent
            )
            after, all_after = _cycle(sim, outlets, tmp_path / "after.duckdb", None, as_of)
    finally:
        shutdown_pool()
    assert during.articles_new == after.articles_new > 200
    # full batches were detected inside the stage, the rest after it
    assert during.detected.articles_signed > 0
    assert during.detected.articles_signed % 40 == 0
    assert during.detected.articles_signed + rest.articles_signed == during.articles_new
    assert after.detected.articles_signed == 0
    assert recent.reused > 0  # texts signed for one batch were candidates of a later one
    assert all_after.articles_signed == after.articles_new
    clusters = _clusters(tmp_path / "during.duckdb")
    assert len({c for _a, c, _m in clusters}) < len(clusters)  # copies were found
    assert clusters == _clusters(tmp_path / "after.duckdb")
    assert during.detected.clusters_new + rest.clusters_new == all_after.clusters_new
    # the word count and hash the workers computed describe the text that was stored
    with Store(str(tmp_path / "during.duckdb")) as store:
        stored = store.sql("SELECT text, text_source, word_count, content_hash FROM articles")
    assert {source for _t, source, _w, _h in stored} >= {"page"}
    assert all(fingerprint(text) == (words, digest) for text, _s, words, digest in stored)


def test_signed_texts_are_reused_only_while_the_outlets_chrome_drops_the_same_paragraphs():
    paragraphs = read_paragraphs("Share this\n\nThe dam gave way at dawn.\n\nSubscribe now")
    keys = short_paragraph_keys(paragraphs)
    house = {p.key for p in paragraphs if p.text == "Subscribe now"}
    signed = sign_text(paragraphs, house, DEFAULT_PARAMS, "river-times")
    recent = SignedTexts(capacity=2)
    recent.put(1, signed, keys, house | {12345})  # chrome keys of other texts do not matter
    assert recent.outlets([1, 2]) == {1: "river-times"}
    kept = recent.get(1, house)
    assert kept is not None and kept.tokens.words == signed.tokens.words
    assert kept.signature.size == 0  # verification needs no signatures
    dam = {p.key for p in paragraphs if p.text.startswith("The dam")}
    assert recent.get(1, house | dam) is None  # its outlet learned one of its paragraphs since
    assert recent.get(1, set()) is None  # or no longer counts one as chrome
    assert recent.reused == 1
    recent.put(2, signed, keys, house)
    recent.put(3, signed, keys, house)
    assert len(recent) == 2 and recent.get(1, house) is None  # the oldest went first


class FailingWorkers(LocalWorkers):
    """Workers that cannot take a feed (every other one: the pool is broken) or lose it (the
    worker died while parsing it)."""

    def __init__(self) -> None:
        super().__init__(2)
        self.refused = self.lost = 0

    def parse_feed(self, body: bytes, url: str, content_type: str) -> Future[Any] | None:
        if self.refused <= self.lost:
            self.refused += 1
            raise BrokenProcessPool("A process in the process pool was terminated abruptly")
        self.lost += 1
        lost: Future[Any] = Future()
        lost.set_exception(BrokenProcessPool("A process in the process pool was terminated"))
        return lost


def test_feeds_parsed_by_the_workers_are_recorded_as_feeds_parsed_here(tmp_path: Path) -> None:
    """Polling hands each feed's body to the worker pool to parse; the store ends the same as
    when every feed is parsed in the polling process (entries, feed states, fetch log), and
    the same again when the workers refuse feeds or lose them (each is parsed here)."""
    corpus = load_corpus()
    recorded = {}
    try:
        with OutletSimulator(corpus) as sim:
            sim.release_all()
            outlets = tmp_path / "outlets.toml"
            outlets.write_text(sim.outlets_toml(), encoding="utf-8")
            config = load_outlets(outlets)
            feed = config.outlets[0].feeds[0]
            with Fetcher(config.fetch) as fetcher:
                body = fetcher.fetch(FetchRequest(feed)).body
            on_worker = LocalWorkers(2).parse_feed(body, feed, "")
            assert on_worker is not None
            assert on_worker.result() == parse_feed(body, feed, "")
            assert on_worker.result().entries
            failing = FailingWorkers()
            for name, workers in (
                ("here", None),
                ("workers", LocalWorkers(2)),
                ("failing", failing),
            ):
                db = tmp_path / f"{name}.duckdb"
                with Store(str(db)) as store, Fetcher(config.fetch) as fetcher:
                    outcome = stages.poll_feeds(
                        config, store, fetcher, "run-1", sim.now, workers=workers
                    )
                    recorded[name] = (
                        outcome,
                        # not the feed that offered an entry first, the order of recording, nor
                        # the next poll (from the entries each feed offered first): answers come
                        # in whatever order the feeds' servers answer; nor a failing feed's
                        # backoff, which has jitter
                        store.sql(
                            "SELECT * EXCLUDE (feed_url, updated_seq) FROM entries ORDER BY ALL"
                        ),
                        store.sql(
                            "SELECT * EXCLUDE (etag, last_modified, next_poll_at, backoff_until) "
                            "FROM feeds ORDER BY ALL"
                        ),
                        store.sql(
                            "SELECT url, outcome, error FROM fetch_log WHERE kind = 'feed' "
                            "ORDER BY ALL"
                        ),
                    )
    finally:
        shutdown_pool()
    assert recorded["here"][0].entries_new > 100
    assert recorded["workers"] == recorded["here"]
    assert failing.refused >= 2 and failing.lost >= 2
    assert recorded["failing"] == recorded["here"]
