"""Entries recorded when seen, and what becomes of each: pages retried on later cycles with
backoff whatever the feed answers, feed-only articles after the last try, items past a feed's
per-cycle cap carried over; polite polling (backoff of failing feeds, Retry-After per host,
each feed at its own publishing rate) and the cycle budget. Real cycles against small scripted
sites on 127.0.0.1, real DuckDB files; simulated `as_of` times stand for the hours between
cycles."""

from __future__ import annotations

import hashlib
import random
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from xml.sax.saxutils import escape

import pytest

from flows import stages
from flows.cycle import run_cycle
from ingest.config import ConfigError, ScheduleSettings, load_outlets, parse_outlets
from ingest.http import Fetcher
from narratives.variants import WatchNarrative, watchlist_hits
from store.db import Store
from store.publish import StoreLayout

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
WORDS = (
    "river dam council budget harvest rail strike monsoon court ferry vote bridge school "
    "clinic market flood drought festival mayor tariff port canal highway museum library "
    "police doctor farmer teacher engineer minister province village district orchard "
    "reservoir turbine pipeline census ledger auction convoy harbour summit treaty"
).split()


def _words(seed: str, count: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(count))


@dataclass
class Item:
    slug: str
    published: datetime | None
    title: str
    summary: str  # the feed's <description>
    paragraphs: list[str] = field(default_factory=list)  # the page's text

    @classmethod
    def make(cls, slug: str, published: datetime | None, summary_words: int = 12) -> Item:
        return cls(
            slug,
            published,
            f"Story {slug}: " + _words(slug + "t", 5),
            _words(slug + "s", summary_words),
            [_words(f"{slug}p{i}", 70) + "." for i in range(3)],
        )


class Site:
    """One outlet on 127.0.0.1: an RSS feed of `items` (conditional GET by ETag) and a page
    per item, with scripted faults: `feed_answers` (statuses the feed gives in turn before
    it works again), `page_failures` (503s a page gives before it works), `missing` pages
    (404), `plain` pages (not HTML), `retry_after` on every 429/503, `page_delay`."""

    def __init__(self, items: list[Item] | None = None) -> None:
        self.items = list(items or [])
        self.feed_answers: list[int] = []
        self.page_failures: dict[str, int] = {}
        self.missing: set[str] = set()
        self.plain: set[str] = set()
        self.retry_after: str | None = None
        self.page_delay = 0.0
        self.hits: Counter[str] = Counter()
        self._by_slug: dict[str, Item] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Site:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def feed(self) -> str:
        return f"{self.base}/feed.xml"

    def page(self, item: Item) -> str:
        return f"{self.base}/a/{item.slug}"

    def rss(self) -> bytes:
        parts = [
            '<?xml version="1.0" encoding="utf-8"?>',
            '<rss version="2.0"><channel><title>Site</title>',
            f"<link>{self.base}/</link><description>a site</description>",
        ]
        for item in self.items:
            date = f"<pubDate>{format_datetime(item.published)}</pubDate>" if item.published else ""
            parts.append(
                f"<item><title>{escape(item.title)}</title><link>{self.page(item)}</link>"
                f"<guid>{self.page(item)}</guid>{date}"
                f"<description>{escape(item.summary)}</description></item>"
            )
        parts.append("</channel></rss>")
        return "\n".join(parts).encode()

    def html(self, item: Item) -> bytes:
        body = "".join(f"<p>{escape(p)}</p>" for p in item.paragraphs)
        return (
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(item.title)}</title></head><body><article>"
            f"{body}</article></body></html>"
        ).encode()

    def _answer(self, path: str, headers: Any) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.hits[path] += 1
            if path == "/feed.xml":
                if self.feed_answers:
                    return self._fault(self.feed_answers.pop(0))
                body = self.rss()
                etag = '"' + hashlib.sha1(body).hexdigest() + '"'
                if headers.get("If-None-Match") == etag:
                    return 304, {"ETag": etag}, b""
                return 200, {"Content-Type": "application/rss+xml", "ETag": etag}, body
            slug = path.rsplit("/", 1)[-1]
            if len(self._by_slug) != len(self.items):
                self._by_slug = {i.slug: i for i in self.items}
            item = self._by_slug.get(slug)
            if item is None or slug in self.missing:
                return 404, {"Content-Type": "text/html"}, b"<html>not here</html>"
            if self.page_failures.get(slug, 0) > 0:
                self.page_failures[slug] -= 1
                return self._fault(503)
            if slug in self.plain:
                return 200, {"Content-Type": "application/pdf"}, b"%PDF-1.4 ..."
            return 200, {"Content-Type": "text/html; charset=utf-8"}, self.html(item)

    def _fault(self, status: int) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "text/plain"}
        if self.retry_after is not None and status in (429, 503):
            headers["Retry-After"] = self.retry_after
        return status, headers, b"busy"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if site.page_delay and self.path.startswith("/a/"):
                    threading.Event().wait(site.page_delay)
                status, headers, body = site._answer(self.path, self.headers)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        return Handler


def _outlets(tmp_path: Path, sites: list[Site], extra: str = "") -> Path:
    concurrency = "" if "per_host_concurrency" in extra else "per_host_concurrency = 8"
    rate = "" if "per_host_rate" in extra else "per_host_rate = 0  # one loopback host"
    lines = ["allow_private_hosts = true", "", "[fetch]", concurrency, rate, extra]
    for number, site in enumerate(sites):
        lines += ["", "[[outlets]]", f'name = "Site {number}"', f'feeds = ["{site.feed}"]']
    path = tmp_path / "outlets.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


EVERY_CYCLE = "[schedule]\nmin_interval_minutes = 0.01\nmax_interval_minutes = 0.01\n"


def _cycle(
    outlets: Path, db: Path, as_of: datetime, events: list[tuple] | None = None
) -> dict[str, Any]:
    config = load_outlets(outlets)
    progress = None if events is None else lambda *event: events.append(event)
    return run_cycle(config, str(db), as_of, 1, str(uuid.uuid4()), progress=progress)


def _query(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple]:
    with Store(StoreLayout.for_db(db).working, read_only=True) as store:
        return store.sql(sql, params)


def test_pages_down_for_two_cycles_are_all_stored_with_their_page_text_in_the_third(
    tmp_path: Path,
) -> None:
    """The outage case: 20 teaser entries whose pages answer 503 four times each (two
    cycles of two tries) while the feed answers 304."""
    items = [Item.make(f"s{i:02d}", T0 - timedelta(hours=i)) for i in range(20)]
    db = tmp_path / "nt.duckdb"
    with Site(items) as site:
        site.page_failures = {item.slug: 4 for item in items}
        outlets = _outlets(tmp_path, [site], "transient_retries = 1\n" + EVERY_CYCLE)
        events: list[tuple] = []
        summaries = [
            _cycle(outlets, db, T0 + offset, events) for offset in (0 * MINUTE, 15 * MINUTE)
        ]
        stored = _query(db, "SELECT count(*) FROM articles")[0][0]
        pending = _query(db, "SELECT attempts, last_error, next_attempt_at FROM entries")
        summaries.append(_cycle(outlets, db, T0 + 45 * MINUTE))
        hits = dict(site.hits)
    assert stored == 0
    assert [(a, e) for a, e, _n in pending] == [(2, "HTTP 503")] * 20
    # the second retry waits 5-10 minutes (exponential backoff with jitter)
    assert all(T0 + 20 * MINUTE <= n <= T0 + 25 * MINUTE for _a, _e, n in pending)
    articles = _query(db, "SELECT url, text, text_source FROM articles ORDER BY url")
    assert len(articles) == 20
    for (url, text, source), item in zip(articles, items, strict=True):
        assert url == site.page(item) and source == "page"
        assert text == "\n\n".join(item.paragraphs)
    assert {hits[f"/a/{item.slug}"] for item in items} == {5}
    outcomes = _query(db, "SELECT outcome FROM fetch_log WHERE kind = 'feed' ORDER BY fetched_at")
    assert [o for (o,) in outcomes] == ["ok", "not-modified", "not-modified"]
    assert _query(db, "SELECT DISTINCT status, attempts FROM entries") == [("stored", 3)]
    assert [s["articles_new"] for s in summaries] == [0, 0, 20]
    assert [s["entries_pending"] for s in summaries] == [20, 20, 0]
    # progress: the feed, then each entry finished, of the first cycle
    assert events[0] == ("feeds", 1, 1)
    assert [e for e in events if e[0] == "articles"][:20] == [
        ("articles", n, 20) for n in range(1, 21)
    ]


def test_a_feed_of_10000_items_is_carried_over_in_caps(tmp_path: Path) -> None:
    """Every item is recorded at once; pages are fetched `max_pages_per_feed` per cycle,
    oldest first, and the rest wait, recorded, for the next cycles (while the feed answers
    304). Two cycles of 1,000 show it; the other 8,000 are left pending."""
    items = [Item.make(f"n{i:05d}", T0 - i * MINUTE, summary_words=31) for i in range(10_000)]
    db = tmp_path / "nt.duckdb"
    with Site(items) as site:
        site.missing = {item.slug for item in items}  # pages 404: the feed's text is used
        outlets = _outlets(
            tmp_path,
            [site],
            "max_pages_per_feed = 1000\nmax_bytes = 20000000\ntotal_concurrency = 32\n"
            + EVERY_CYCLE,
        )
        config = load_outlets(outlets)
        counts = []
        with Store(db) as store, Fetcher(config.fetch) as fetcher:
            for cycle in range(2):
                as_of = T0 + cycle * 15 * MINUTE
                poll = stages.poll_feeds(config, store, fetcher, f"r{cycle}", as_of)
                ingest = stages.fetch_and_extract(config, store, fetcher, f"r{cycle}", as_of)
                counts.append(
                    (
                        poll.feeds_not_modified,
                        poll.entries_new,
                        ingest.fallbacks,
                        ingest.entries_pending,
                    )
                )
            stored = store.sql(
                "SELECT run_id, count(*), min(published_at), max(published_at) FROM articles "
                "GROUP BY run_id ORDER BY run_id"
            )
            waiting = store.sql(
                "SELECT count(*), max(published_at), min(first_seen_at), max(attempts) "
                "FROM entries WHERE status = 'pending'"
            )
        page_hits = sum(n for path, n in site.hits.items() if path.startswith("/a/"))
    assert counts == [(0, 10_000, 1000, 9000), (1, 0, 1000, 8000)]
    assert stored == [
        ("r0", 1000, items[9999].published, items[9000].published),
        ("r1", 1000, items[8999].published, items[8000].published),
    ]
    assert waiting == [(8000, items[0].published, T0, 0)]
    assert page_hits == 2000


def test_a_teaser_whose_page_never_comes_ends_as_a_feed_only_article(tmp_path: Path) -> None:
    gone = Item.make("gone", T0 - MINUTE)
    gone.title = "Thousands resigned from service after the attack"
    pdf = Item.make("pdf", T0 - 2 * MINUTE)
    bare = Item("bare", T0 - 3 * MINUTE, "", "")  # a link and nothing else
    db = tmp_path / "nt.duckdb"
    with Site([gone, pdf, bare]) as site:
        site.missing = {"gone", "bare"}
        site.plain = {"pdf"}
        outlets = _outlets(tmp_path, [site], "max_attempts_per_article = 3\n")
        states = []
        for offset in (0, 6, 17):  # the second try waits 2.5-5 minutes, the third 5-10
            _cycle(outlets, db, T0 + offset * MINUTE)
            states.append(
                _query(db, "SELECT url, status, attempts FROM entries ORDER BY url")  # type: ignore[arg-type]
            )
        hits = dict(site.hits)
    gone_url, pdf_url, bare_url = (site.page(i) for i in (gone, pdf, bare))
    # the PDF is no article page: feed-only at once; the missing pages are tried again
    assert states[0] == [
        (bare_url, "pending", 1),
        (gone_url, "pending", 1),
        (pdf_url, "feed-only", 1),
    ]
    assert states[1][:2] == [(bare_url, "pending", 2), (gone_url, "pending", 2)]
    assert states[2] == [
        (bare_url, "failed", 3),
        (gone_url, "feed-only", 3),
        (pdf_url, "feed-only", 1),
    ]
    assert hits["/a/gone"] == 3 and hits["/a/pdf"] == 1
    reasons = dict(_query(db, "SELECT url, reason FROM entries"))
    assert reasons[gone_url] == "page failed in 3 cycles: HTTP 404"
    assert reasons[pdf_url].startswith("no usable page: not an HTML page")
    assert reasons[bare_url] == "page failed in 3 cycles and the feed gives no text: HTTP 404"
    articles = {
        url: (text, source, title)
        for url, text, source, title in _query(
            db, "SELECT url, text, text_source, title FROM articles"
        )
    }
    assert set(articles) == {gone_url, pdf_url}  # the bare link: recorded, with its reason
    text, source, title = articles[gone_url]
    assert source == "feed-only" and title == gone.title
    assert text == f"{gone.title}\n\n{gone.summary}"
    watch = WatchNarrative("mass-resignations", "Mass resignations", "", ("resigned from service",))
    assert watchlist_hits([watch], [text]) == ("Mass resignations",)
    # feed-only articles are detected like any other (a singleton cluster of their own)
    assert _query(db, "SELECT count(*) FROM cluster_members")[0][0] == 2


def test_a_failing_feed_backs_off_exponentially_and_is_reset_by_success(tmp_path: Path) -> None:
    db = tmp_path / "nt.duckdb"
    with Site([Item.make("one", T0 - MINUTE, 40)]) as site:
        site.feed_answers = [500, 500, 500]
        outlets = _outlets(tmp_path, [site], "transient_retries = 0\n" + EVERY_CYCLE)
        windows = []
        at = T0
        for _failure in range(3):
            _cycle(outlets, db, at)
            (until,) = _query(db, "SELECT backoff_until FROM feeds")[0]
            windows.append(until - at)
            hits = site.hits["/feed.xml"]
            _cycle(outlets, db, at + MINUTE * 2)  # backing off: not asked
            assert site.hits["/feed.xml"] == hits
            at = until + MINUTE
        summary = _cycle(outlets, db, at)  # it works again
        state = _query(db, "SELECT backoff_until, consecutive_failures, next_poll_at FROM feeds")
    first, second, third = (w / MINUTE for w in windows)
    assert 7.5 <= first <= 15 and 15 <= second <= 30 and 30 <= third <= 60
    assert state == [(None, 0, at + timedelta(minutes=0.01))]
    assert summary["articles_new"] == 1
    skipped = _query(
        db, "SELECT outcome, error, status_code FROM fetch_log WHERE outcome = 'backoff'"
    )
    assert len(skipped) == 3
    assert skipped[2][1].endswith("after 3 failures in a row") and skipped[2][2] is None
    runs = _query(db, "SELECT feeds_polled, feeds_skipped FROM runs ORDER BY started_at")
    assert runs == [(1, 0), (0, 1)] * 3 + [(1, 0)]


def test_retry_after_is_recorded_and_honoured_for_the_host_across_cycles(
    tmp_path: Path,
) -> None:
    db = tmp_path / "nt.duckdb"
    item = Item.make("busy", T0 - MINUTE)
    with Site([item]) as busy, Site([Item.make("calm", T0 - MINUTE)]) as calm:
        busy.feed_answers = [429]
        busy.retry_after = "3600"
        outlets = _outlets(tmp_path, [busy, calm], "transient_retries = 0\n" + EVERY_CYCLE)
        _cycle(outlets, db, T0)
        host = busy.base.removeprefix("http://")
        waits = _query(db, "SELECT host, until, retry_after, status_code FROM host_backoff")
        logged = _query(
            db, "SELECT status_code, retry_after FROM fetch_log WHERE url = ?", [busy.feed]
        )
        _cycle(outlets, db, T0 + 30 * MINUTE)  # within the hour: the host is left alone
        feed_hits = (busy.hits["/feed.xml"], calm.hits["/feed.xml"])
        busy.retry_after = "7200"
        busy.page_failures = {"busy": 1}
        _cycle(outlets, db, T0 + 61 * MINUTE)  # the feed is read; its page: 503, 2 hours
        entry = _query(
            db, "SELECT status, next_attempt_at FROM entries WHERE url = ?", [busy.page(item)]
        )
        _cycle(outlets, db, T0 + 62 * MINUTE)  # neither the feed nor the page is asked
        later_hits = (busy.hits["/feed.xml"], busy.hits["/a/busy"])
        until = _query(db, "SELECT until FROM host_backoff WHERE host = ?", [host])
        skipped = _query(db, "SELECT count(*) FROM fetch_log WHERE outcome = 'backoff'")
    assert waits == [(host, T0 + 60 * MINUTE, 3600.0, 429)]
    assert logged == [(429, 3600.0)]
    assert feed_hits == (1, 2)
    assert entry[0][0] == "pending" and entry[0][1] >= T0 + 181 * MINUTE
    assert later_hits == (2, 1)
    assert until == [(T0 + 181 * MINUTE,)]
    assert skipped == [(2,)]


def test_each_feed_is_polled_at_its_own_publishing_rate(tmp_path: Path) -> None:
    busy = [Item.make(f"b{i}", T0 - i * 6 * MINUTE, 40) for i in range(12)]  # every 6 min
    quiet = [Item.make(f"q{i}", T0 - timedelta(days=i + 1), 40) for i in range(3)]  # daily
    db = tmp_path / "nt.duckdb"
    with Site(busy) as fast, Site(quiet) as slow:
        outlets = _outlets(
            tmp_path,
            [fast, slow],
            "[schedule]\nmin_interval_minutes = 15\nmax_interval_minutes = 240\n",
        )
        _cycle(outlets, db, T0)
        due = dict(_query(db, "SELECT feed_url, next_poll_at FROM feeds"))
        summary = _cycle(outlets, db, T0 + 20 * MINUTE)
        hits = (fast.hits["/feed.xml"], slow.hits["/feed.xml"])
    assert due == {fast.feed: T0 + 15 * MINUTE, slow.feed: T0 + 240 * MINUTE}
    assert hits == (2, 1)
    assert (summary["feeds_polled"], summary["feeds_skipped"]) == (1, 1)


def test_a_cycle_stops_fetching_when_its_budget_is_spent_and_the_next_goes_on(
    tmp_path: Path,
) -> None:
    items = [Item.make(f"p{i:02d}", T0 - i * MINUTE) for i in range(30)]
    db = tmp_path / "nt.duckdb"
    with Site(items) as site:
        site.page_delay = 0.2  # 30 pages one at a time: 6 s, far past the budget
        slow = "per_host_concurrency = 1\ntotal_concurrency = 2\n"
        outlets = _outlets(tmp_path, [site], slow + "[schedule]\ncycle_budget_seconds = 1\n")
        first = _cycle(outlets, db, T0)
        run = _query(db, "SELECT budget_exhausted, entries_pending, articles_new FROM runs")
        outlets = _outlets(tmp_path, [site])
        second = _cycle(outlets, db, T0 + 15 * MINUTE)
    assert 0 < first["articles_new"] < 30
    assert first["budget_exhausted"] == 1
    assert run == [(True, 30 - first["articles_new"], first["articles_new"])]
    assert second["articles_new"] == 30 - first["articles_new"]
    assert second["budget_exhausted"] == 0 and second["entries_pending"] == 0
    assert _query(db, "SELECT count(*) FROM articles WHERE text_source = 'page'")[0][0] == 30


def test_backoff_delay_doubles_with_jitter_within_the_cap_and_honours_retry_after() -> None:
    rng = random.Random(1)
    for failures, low, high in [(1, 2.5, 5), (2, 5, 10), (3, 10, 20), (9, 30, 60), (60, 30, 60)]:
        waits = [stages.backoff_delay(5, failures, 60, rng=rng) / MINUTE for _ in range(200)]
        assert low <= min(waits) and max(waits) <= high
        assert max(waits) - min(waits) > (high - low) / 2  # jittered, not one value
    assert stages.backoff_delay(5, 1, 60, retry_after=600, rng=rng) == 10 * MINUTE
    assert stages.backoff_delay(5, 1, 60, retry_after=10**9, rng=rng) == 60 * MINUTE  # capped


def test_poll_interval_follows_the_publishing_rate_within_bounds() -> None:
    schedule = ScheduleSettings(
        feeds_interval_minutes=20, min_interval_minutes=10, max_interval_minutes=120
    )
    assert stages.poll_interval((10, T0 - 300 * MINUTE), T0, schedule) == 30 * MINUTE
    assert stages.poll_interval((10, T0 - 10 * MINUTE), T0, schedule) == 10 * MINUTE
    assert stages.poll_interval((2, T0 - timedelta(days=3)), T0, schedule) == 120 * MINUTE
    assert stages.poll_interval(None, T0, schedule) == 20 * MINUTE  # no dated entry


@pytest.mark.parametrize(
    ("table", "text", "message"),
    [
        ("fetch", "max_attempts_per_article = 0", "max_attempts_per_article"),
        ("fetch", "max_pages_per_feed = 0", "max_pages_per_feed"),
        ("fetch", "retry_delay_minutes = -1", "retry_delay_minutes"),
        ("fetch", "max_backoff_minutes = 1", "max_backoff_minutes must be at least"),
        ("schedule", "min_interval_minutes = 300", "min_interval_minutes"),
        ("schedule", "cycle_budget_seconds = 0", "cycle_budget_seconds"),
        ("schedule", 'max_interval_minutes = "often"', "must be a number"),
    ],
)
def test_out_of_range_settings_are_refused(table: str, text: str, message: str) -> None:
    import tomllib

    data = tomllib.loads(
        f'[{table}]\n{text}\n[[outlets]]\nname = "x"\nfeeds = ["https://x.example/f"]\n'
    )
    with pytest.raises(ConfigError, match=message):
        parse_outlets(data)


def test_the_new_settings_are_read_from_the_outlets_file(tmp_path: Path) -> None:
    text = (
        "[fetch]\nretry_delay_minutes = 2\nfeed_backoff_minutes = 4\nmax_backoff_minutes = 90\n"
        "max_pages_per_feed = 50\n[schedule]\nmin_interval_minutes = 5\n"
        "max_interval_minutes = 60\ncycle_budget_seconds = 120\n"
        '[[outlets]]\nname = "x"\nfeeds = ["https://x.example/f"]\n'
    )
    path = tmp_path / "outlets.toml"
    path.write_text(text, encoding="utf-8")
    config = load_outlets(path)
    fetch, schedule = config.fetch, config.schedule
    assert (fetch.retry_delay_minutes, fetch.feed_backoff_minutes) == (2.0, 4.0)
    assert (fetch.max_backoff_minutes, fetch.max_pages_per_feed) == (90.0, 50)
    assert (schedule.min_interval_minutes, schedule.max_interval_minutes) == (5.0, 60.0)
    assert schedule.cycle_budget_seconds == 120.0
