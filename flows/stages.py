"""The stages of one ingestion cycle as plain functions (no Prefect here): each Prefect task in
`flows.cycle` is one call into this module, and tests call these directly."""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import xxhash

from flows.distribute import STREAMS_PER_SLOT, LocalWorkers, Workers, plan_streams
from flows.progress import Progress, no_progress
from ingest.batch import (
    BatchPage,
    PageBatch,
    PageOutcome,
    batch_id_for,
    host_key,
    read_result,
)
from ingest.config import FetchSettings, Outlet, OutletsConfig, ScheduleSettings
from ingest.extract import Extracted
from ingest.feeds import FeedEntry, ParsedFeed, parse_feed
from ingest.http import Fetcher, FetchRequest, FetchResult
from narratives import detect as detection
from narratives.detect import ClusteringKey, DetectOutcome, SignedTexts, StageClock, clustering_key
from narratives.params import DetectionParams
from narratives.text import fingerprint, word_count
from store.db import EntryRecord, FeedState, Store

log = logging.getLogger(__name__)

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
MIN_FALLBACK_WORDS = 30  # feed text shorter than this is a teaser, not an article
DETECT_BATCH = detection.DETECT_BATCH  # articles signed, matched and written together
DUE_SLACK = timedelta(minutes=1)  # a feed or entry due this soon is due now (cycles drift)
RATE_SAMPLE = 10  # a feed's publishing rate is measured on its newest entries, this many


class NetworkUnavailable(RuntimeError):
    """Every fetch failed for a transient reason across several hosts: the network, not the
    outlets, is down. The only fault worth retrying a whole stage for."""


def article_id_for(canonical_url: str) -> int:
    return xxhash.xxh64_intdigest(canonical_url.encode()) >> 1


@dataclass(frozen=True)
class NewEntry:
    entry: FeedEntry
    outlet_id: str
    feed_url: str


@dataclass(frozen=True)
class DueEntry:
    """A recorded entry whose page this cycle fetches."""

    new: NewEntry
    first_seen_at: datetime
    attempts: int = 0  # cycles that fetched its page before

    @property
    def entry_id(self) -> int:
        return article_id_for(self.new.entry.canonical_url)

    @classmethod
    def from_record(cls, record: EntryRecord) -> DueEntry:
        entry = FeedEntry(
            url=record.url,
            canonical_url=record.canonical_url,
            title=record.title or "",
            published_at=record.published_at,
            author=record.author or "",
            summary=record.summary or "",
            content=record.content or "",
        )
        new = NewEntry(entry, record.outlet_id, record.feed_url or "")
        return cls(new, record.first_seen_at, record.attempts)


@dataclass
class PollOutcome:
    feeds_polled: int = 0
    feeds_not_modified: int = 0
    feeds_failed: int = 0
    feeds_skipped: int = 0  # not due yet, or backing off
    entries_seen: int = 0  # offered by the feeds that answered with a body
    entries_new: int = 0  # recorded for the first time
    budget_exhausted: bool = False  # feeds left unpolled when the cycle budget ran out


@dataclass
class IngestOutcome:
    articles_new: int = 0
    articles_failed: int = 0  # pages that failed and stored nothing (retried later, or failed)
    articles_feed_only: int = 0  # stored from the feed's title and teaser after the last try
    fallbacks: int = 0  # pages that failed, stored from the feed's full text
    entries_pending: int = 0  # entries left for later cycles, after the stage
    budget_exhausted: bool = False  # entries left unfetched when the cycle budget ran out
    detected: DetectOutcome = field(default_factory=DetectOutcome)  # during the stage


def backoff_delay(
    first_minutes: float,
    failures: int,
    cap_minutes: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> timedelta:
    """How long to wait after the `failures`-th failure in a row: exponential backoff with
    jitter (between half and all of first * 2^(failures - 1) minutes, never above the cap),
    and at least what the server asked for with Retry-After (within the cap too)."""
    exponent = min(max(failures, 1) - 1, 30)
    minutes = min(cap_minutes, first_minutes * 2**exponent) * (rng or random).uniform(0.5, 1.0)
    if retry_after is not None:
        minutes = max(minutes, min(cap_minutes, retry_after / 60))
    return timedelta(minutes=minutes)


def poll_interval(
    history: tuple[int, datetime] | None, as_of: datetime, schedule: ScheduleSettings
) -> timedelta:
    """A feed's own poll interval: the mean time between its newest entries up to `as_of`
    (`history`: how many, and when the oldest of them was published), within the schedule's
    bounds. A feed with no dated entry gets the cycle interval, within the same bounds."""
    if history is None or history[0] < 1:
        minutes = schedule.feeds_interval_minutes
    else:
        count, oldest = history
        minutes = (as_of - oldest).total_seconds() / 60 / count
    low, high = schedule.min_interval_minutes, schedule.max_interval_minutes
    return timedelta(minutes=min(high, max(low, minutes)))


def _host(url: str) -> str:
    """The host a URL is fetched from, with its port when it names one (the key of
    Retry-After waits; host_backoff.host)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port else host


def _log_row(
    run_id: str,
    at: datetime,
    kind: str,
    outlet_id: str,
    result: FetchResult,
    outcome: str,
    error: str | None = None,
    error_kind: str | None = None,
    size: int | None = None,
) -> dict[str, object]:
    return {
        "run_id": run_id,
        "fetched_at": at,
        "kind": kind,
        "url": result.url,
        "final_url": result.final_url,
        "outlet_id": outlet_id,
        "status_code": result.status,
        "outcome": outcome,
        "error_kind": error_kind if error is not None else result.error_kind,
        "error": error if error is not None else result.error,
        "attempts": result.attempts,
        "elapsed_ms": round(result.elapsed_ms, 1),
        "bytes": len(result.body) if size is None else size,
        "retry_after": result.retry_after,
    }


@contextmanager
def _fetching(
    fetcher: Fetcher,
    requests: Sequence[FetchRequest],
    accept: str,
    buffer: int = 0,
    deadline: float | None = None,
) -> Iterator[Iterator[tuple[int, FetchResult]]]:
    """`Fetcher.fetch_iter`, closed on leaving: a caller that stops early (the cycle budget,
    Ctrl-C) starts no further request, requests in flight are cut, and the fetch threads end.
    `deadline`: seconds each request may take in all (default: the page deadline)."""
    stream = fetcher.fetch_iter(requests, accept=accept, buffer=buffer, deadline=deadline)
    try:
        yield stream
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


def _hosts(results: Sequence[FetchResult]) -> set[str]:
    return {urlsplit(r.url).hostname or "" for r in results}


def _host_wait(result: FetchResult, as_of: datetime, cap_minutes: float) -> dict[str, object]:
    """A host_backoff row for an answer carrying Retry-After (honoured up to the cap)."""
    seconds = min(float(result.retry_after or 0.0), cap_minutes * 60)
    return {
        "host": _host(result.url),
        "until": as_of + timedelta(seconds=seconds),
        "retry_after": result.retry_after,
        "status_code": result.status,
        "url": result.url,
        "recorded_at": as_of,
    }


def _entry_row(entry: FeedEntry, outlet_id: str, feed_url: str, as_of: datetime) -> dict:
    return {
        "entry_id": article_id_for(entry.canonical_url),
        "canonical_url": entry.canonical_url,
        "url": entry.url,
        "outlet_id": outlet_id,
        "feed_url": feed_url,
        "title": entry.title,
        "summary": entry.summary,
        "content": entry.content,
        "author": entry.author,
        "published_at": entry.published_at,
        "first_seen_at": as_of,
    }


def poll_feeds(
    config: OutletsConfig,
    store: Store,
    fetcher: Fetcher,
    run_id: str,
    as_of: datetime,
    *,
    progress: Progress | None = None,
    deadline: float | None = None,
    workers: Workers | None = None,
) -> PollOutcome:
    """Conditional GET of every feed that is due (its own interval has passed, and neither it
    nor its host is backing off); record each answer and every entry the feed offers, each
    feed in one transaction with its new validators; then set each answered feed's next poll
    from its publishing rate. Past `deadline` (time.monotonic()) no further feed is fetched.
    Feeds are parsed by `workers` when they offer to (`Workers.parse_feed`), else here.
    The entries are fetched by `fetch_and_extract`, from the store."""
    progress = progress or no_progress
    settings = config.fetch
    store.sync_outlets(config.outlets)
    outlet_of = config.outlet_for_feed()
    states = store.feed_states(outlet_of)
    due_by = as_of + DUE_SLACK
    host_waits = store.host_backoffs(due_by)
    outcome = PollOutcome()
    skipped: list[dict[str, object]] = []
    due: list[str] = []
    for url, outlet in outlet_of.items():
        state = states[url]
        host_until = host_waits.get(_host(url))
        if state.backoff_until is not None and state.backoff_until > due_by:
            reason = (
                f"backing off until {state.backoff_until.isoformat()} after "
                f"{state.consecutive_failures} failures in a row"
            )
        elif host_until is not None:
            reason = f"the host asked (Retry-After) to wait until {host_until.isoformat()}"
        else:
            if state.next_poll_at is None or state.next_poll_at <= due_by:
                due.append(url)
            else:
                outcome.feeds_skipped += 1  # not due yet: its own interval
            continue
        outcome.feeds_skipped += 1
        skipped.append(
            {
                "run_id": run_id,
                "fetched_at": as_of,
                "kind": "feed",
                "url": url,
                "outlet_id": outlet.outlet_id,
                "outcome": "backoff",
                "error": reason,
                "attempts": 0,
            }
        )
    store.log_fetches(skipped)
    requests = [FetchRequest(url, states[url].etag, states[url].last_modified) for url in due]
    seen: list[FetchResult] = []
    failures: list[tuple[FetchResult, str | None]] = []
    answered: list[str] = []
    waits: list[dict[str, object]] = []
    feed_deadline = config.fetch.feed_deadline_seconds
    # feeds parse on the workers while later feeds are fetched and earlier ones recorded;
    # answers are recorded in the order they came
    parsing: deque[tuple[FetchResult, Any]] = deque()

    def record(result: FetchResult, parsed: Any) -> None:
        feed = None
        if parsed is not None:
            try:
                feed = parsed.result(timeout=feed_deadline)
            except Exception as exc:  # the worker failed or is gone (parse_feed never raises)
                log.warning("parsing feed %s on a worker failed (%s): parsed here", result.url, exc)
        added = _record_answer(store, result, outlet_of[result.url].outlet_id, run_id, as_of, feed)
        if added is None:
            failures.append((result, None))
        elif isinstance(added, str):
            failures.append((result, added))
        else:
            answered.append(result.url)
            outcome.entries_seen += added[0]
            outcome.entries_new += added[1]
            outcome.feeds_not_modified += result.not_modified

    with _fetching(fetcher, requests, FEED_ACCEPT, deadline=feed_deadline) as results:
        for done, (_index, result) in enumerate(results, start=1):
            seen.append(replace(result, body=b""))
            if result.retry_after is not None:
                waits.append(_host_wait(result, as_of, settings.max_backoff_minutes))
            parsed = None
            if workers is not None and result.ok and not result.not_modified:
                try:
                    parsed = workers.parse_feed(result.body, result.final_url, result.content_type)
                except Exception as exc:  # no worker to take it (a broken pool): parse here
                    log.warning("cannot hand feed %s to a worker (%s)", result.url, exc)
            parsing.append((result, parsed))
            while parsing and (parsing[0][1] is None or parsing[0][1].done()):
                record(*parsing.popleft())
            progress("feeds", done, len(requests))
            if deadline is not None and time.monotonic() > deadline and done < len(requests):
                outcome.budget_exhausted = True
                log.warning(
                    "cycle budget spent: %d of %d due feeds left for the next cycle",
                    len(requests) - done,
                    len(requests),
                )
                break
    while parsing:
        record(*parsing.popleft())
    outcome.feeds_polled = len(seen)
    if len(_hosts(seen)) >= 2 and all(r.error_kind == "transient" for r in seen):
        raise NetworkUnavailable(
            f"all {len(seen)} feeds failed with transient errors, e.g. {seen[0].error}"
        )
    outcome.feeds_failed = len(failures)
    _record_failures(store, failures, states, outlet_of, run_id, as_of, settings)
    store.record_host_backoffs(waits)
    history = store.publishing_history(answered, as_of, RATE_SAMPLE)
    store.schedule_feeds(
        {url: as_of + poll_interval(history.get(url), as_of, config.schedule) for url in answered}
    )
    return outcome


def _record_answer(
    store: Store,
    result: FetchResult,
    outlet_id: str,
    run_id: str,
    as_of: datetime,
    parsed: ParsedFeed | None = None,
) -> tuple[int, int] | str | None:
    """Record a feed that answered: (entries offered, entries new); the problem when the body
    is not a feed; None when the request failed (recorded by the caller). `parsed`: the body
    as a worker parsed it (else it is parsed here)."""
    url = result.url
    if result.not_modified:
        row = _log_row(run_id, as_of, "feed", outlet_id, result, "not-modified")
        store.record_feed(
            url, as_of, "not-modified", None, result.etag, result.last_modified, None, (), row
        )
        return 0, 0
    if not result.ok:
        return None
    try:
        if parsed is None:
            parsed = parse_feed(result.body, result.final_url, result.content_type)
    except Exception as exc:  # one feed the parser chokes on never stops the others
        log.warning("parsing feed %s failed: %s", url, exc)
        return f"the feed parser failed: {type(exc).__name__}: {exc}"
    if not parsed.is_feed:
        return parsed.problem or "not a feed"
    status = "ok"
    if parsed.problem:
        log.warning(
            "feed %s is malformed (%s); salvaged %d entries",
            url,
            parsed.problem,
            len(parsed.entries),
        )
        status = "salvaged"
    row = _log_row(
        run_id,
        as_of,
        "feed",
        outlet_id,
        result,
        status,
        parsed.problem,
        "terminal" if parsed.problem else None,
    )
    entries = [_entry_row(entry, outlet_id, url, as_of) for entry in parsed.entries]
    added = store.record_feed(
        url,
        as_of,
        "ok",
        parsed.problem,
        result.etag,
        result.last_modified,
        len(parsed.entries),
        entries,
        row,
    )
    return len(entries), added


def _record_failures(
    store: Store,
    failures: list[tuple[FetchResult, str | None]],
    states: dict[str, FeedState],
    outlet_of: dict[str, Outlet],
    run_id: str,
    as_of: datetime,
    settings: FetchSettings,
) -> None:
    """Failed feeds: their health, their next try (exponential backoff with jitter, at
    least any Retry-After) and their log rows. Recorded after the network-outage check, so
    that an outage does not put every feed into backoff."""
    rows = []
    updates = []
    for result, problem in failures:
        failures_in_row = states[result.url].consecutive_failures + 1
        wait = backoff_delay(
            settings.feed_backoff_minutes,
            failures_in_row,
            settings.max_backoff_minutes,
            result.retry_after,
        )
        error = problem or result.error
        updates.append((result.url, as_of, error, as_of + wait))
        outlet_id = outlet_of[result.url].outlet_id
        if problem is None:
            rows.append(_log_row(run_id, as_of, "feed", outlet_id, result, "error"))
        else:
            rows.append(
                _log_row(run_id, as_of, "feed", outlet_id, result, "error", problem, "terminal")
            )
    store.record_feed_failures(updates, rows)


def _article_row(
    new: NewEntry,
    run_id: str,
    first_seen_at: datetime,
    text: str,
    source: str,
    fingerprinted: tuple[int, str] | None = None,
) -> dict[str, object]:
    """An articles row from the feed entry alone (`_page_metadata` adds what the page said).
    `fingerprinted`: the text's `fingerprint`, when the worker that extracted it computed it."""
    entry = new.entry
    words, content_hash = fingerprinted or fingerprint(text)
    return {
        "article_id": article_id_for(entry.canonical_url),
        "canonical_url": entry.canonical_url,
        "url": entry.url,
        "outlet_id": new.outlet_id,
        "feed_url": new.feed_url,
        "title": entry.title,
        "author": entry.author,
        "sitename": "",
        "language": "",
        "published_at": entry.published_at,
        "first_seen_at": first_seen_at,
        "text": text,
        "text_source": source,
        "content_hash": content_hash,
        "word_count": words,
        "run_id": run_id,
    }


def feed_only_text(entry: FeedEntry) -> str:
    """What a feed-only article holds: the title and the feed's teaser (each once)."""
    parts = [entry.title.strip(), entry.best_text.strip()]
    if parts[0] and parts[1].startswith(parts[0]):
        parts = parts[1:]
    return "\n\n".join(part for part in parts if part)


def _page_metadata(entry: FeedEntry, doc: Extracted) -> dict[str, object]:
    """What the page adds to an article row (the feed's title, author and date come first)."""
    return {
        "title": entry.title or doc.title,
        "author": entry.author or doc.author,
        "sitename": doc.sitename,
        "language": doc.language,
        "published_at": entry.published_at or doc.published_at,
    }


Finished = tuple[dict[str, object] | None, dict[str, object] | None]  # article row, entry update


class _InClusteringOrder:
    """Hands on finished entries (their article row, if any, and their entry's update) in
    clustering order as soon as every entry sorting before them is finished. Entries whose
    feed gives no date are fetched first: their place is known only once their page is read
    (`published_at` then comes from the page)."""

    def __init__(self, entries: Sequence[DueEntry]):
        self._entries = entries
        self._ids = [e.entry_id for e in entries]
        self._undated_left = sum(1 for e in entries if e.new.entry.published_at is None)
        self._finished: dict[int, Finished] = {}
        self._sequence: list[int] | None = None
        self._next = 0
        self.last_key: ClusteringKey | None = None  # of the last entry handed on

    def fetch_order(self) -> list[int]:
        """Entry indexes: the undated ones first, then the dated ones in clustering order."""
        return sorted(
            range(len(self._entries)),
            key=lambda i: (self._entries[i].new.entry.published_at is not None, self._key(i)),
        )

    def finish(
        self,
        index: int,
        row: dict[str, object] | None,
        update: dict[str, object] | None = None,
    ) -> list[Finished]:
        """Record entry `index` as finished (`row` None: no article; `update` None: its entry
        stays as it is); return what is ready, in order."""
        self._finished[index] = (row, update)
        if self._entries[index].new.entry.published_at is None:
            self._undated_left -= 1
        if self._undated_left:
            return []
        if self._sequence is None:
            self._sequence = sorted(range(len(self._entries)), key=self._key)
        ready: list[Finished] = []
        while self._next < len(self._sequence) and self._sequence[self._next] in self._finished:
            self.last_key = self._key(self._sequence[self._next])
            done = self._finished.pop(self._sequence[self._next])
            self._next += 1
            if done != (None, None):
                ready.append(done)
        return ready

    def _key(self, index: int) -> ClusteringKey:
        due = self._entries[index]
        published = due.new.entry.published_at
        row = self._finished.get(index, (None, None))[0]
        if published is None and row is not None:
            published = row["published_at"]  # type: ignore[assignment]
        return clustering_key(due.first_seen_at, published, self._ids[index])


class _StoreWriter:
    """The one writer: loads each batch of pages from the workers (its articles, its entries'
    new status and its fetch records) in one transaction under the batch's id, on a thread of
    its own, and, given detection parameters, detects each full batch of DETECT_BATCH
    articles as soon as every article sorting before it is stored, while later pages are
    still being fetched and extracted. The batches are then the ones `detect` would form
    after the stage, and the result is the same; the last partial batch is left to the
    detect stage. The store is used by this thread alone until `close()`."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        as_of: datetime,
        params: DetectionParams | None,
        recent: SignedTexts | None = None,
    ):
        self._store = store
        self._run_id = run_id
        self._as_of = as_of
        self._params = params
        self._recent = recent if recent is not None else SignedTexts()
        self._queue: queue.SimpleQueue[_Loaded | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self.articles_new = 0
        self.batches_again = 0  # batches delivered a second time (nothing loaded)
        self.detected = DetectOutcome()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def load(self, loaded: _Loaded) -> None:
        if self._error is not None:
            raise RuntimeError("storing articles failed") from self._error
        self._queue.put(loaded)

    def close(self) -> None:
        """Store what is left, wait for the thread, and raise whatever stopped it."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        ready = 0  # articles whose predecessors in clustering order are all stored
        try:
            while (item := self._queue.get()) is not None:
                if item.batch_id is not None:
                    added = self._store.load_batch(
                        item.batch_id,
                        self._run_id,
                        item.worker,
                        item.pages,
                        item.rows,
                        item.updates,
                        item.log,
                    )
                    if added is None:
                        self.batches_again += 1
                        log.info("batch %s was loaded before: left as it is", item.batch_id)
                    else:
                        self.articles_new += added
                elif item.rows or item.updates:
                    self.articles_new += self._store.finish_entries(item.rows, item.updates)
                ready += item.ready
                if self._params is not None and ready >= DETECT_BATCH:
                    found = detect(
                        self._store,
                        self._run_id,
                        self._as_of,
                        self._params,
                        full_batches_only=True,
                        recent=self._recent,
                        until=item.until,
                    )
                    self.detected.add(found)
                    ready = max(0, ready - found.articles_signed)
        except BaseException as exc:  # reported by close() on the stage's thread
            self._error = exc


@dataclass
class _Loaded:
    """What the writer loads in one transaction: a batch from a worker (with its id), or
    (no id) entries finished without a fetch. `ready`: articles newly complete in clustering
    order, up to the key `until`."""

    batch_id: str | None
    worker: str
    pages: int
    rows: list[dict[str, object]]
    updates: list[dict[str, object]]
    log: list[dict[str, object]]
    ready: int
    until: ClusteringKey | None


def _retryable(page: FetchResult) -> bool:
    """A page worth asking for again: the server answered with an error status (a 404 may be
    a page not up yet), or the network failed on the way. Not: a refused address, a body too
    large, a page that came but holds no article."""
    return not page.ok and (page.status is not None or page.error_kind == "transient")


def fetch_and_extract(
    config: OutletsConfig,
    store: Store,
    fetcher: Fetcher,
    run_id: str,
    as_of: datetime,
    processes: int = 1,
    params: DetectionParams | None = None,
    recent: SignedTexts | None = None,
    *,
    progress: Progress | None = None,
    deadline: float | None = None,
    workers: Workers | None = None,
) -> IngestOutcome:
    """Fetch the page of every recorded entry that is due (new entries, and failed pages
    whose retry time has come; at most `max_pages_per_feed` per feed, the rest wait for later
    cycles; none on a host that asked to wait), extract and sign it: in batches of pages that
    `workers` run (default: the local process pool of `processes`; `flows.distribute`), each
    batch's result loaded by one writer in one transaction under the batch's id. A page that
    fails falls back to the feed's text when that is a full article; else its entry is tried
    again in a later cycle (exponential backoff with jitter, at least any Retry-After) up to
    `max_attempts_per_article`, and after that it is stored from the feed's title and teaser
    (`text_source = 'feed-only'`). Every attempt is recorded. Past `deadline`
    (time.monotonic()) no further batch is sent and no further page fetched; the entries
    left stay pending. With `params`, the workers sign the texts (offered to detection
    through `recent`), and with more than one worker, full batches of articles are detected
    while later pages are still being worked on; `outcome.detected` counts them and `detect`
    finishes the rest (pass both the same `recent`)."""
    progress = progress or no_progress
    settings = config.fetch
    due_by = as_of + DUE_SLACK
    waiting = store.host_backoffs(due_by)
    entries = [
        DueEntry.from_record(record)
        for record in store.due_entries(
            config.outlet_for_feed(), due_by, settings.max_pages_per_feed
        )
        if _host(record.url) not in waiting
    ]
    order = _InClusteringOrder(entries)
    index_of = {due.entry_id: i for i, due in enumerate(entries)}
    workers = workers or LocalWorkers(processes)
    slots = workers.slots
    pages = [
        BatchPage(entries[i].entry_id, entries[i].new.entry.url, entries[i].new.outlet_id)
        for i in order.fetch_order()
    ]
    chrome: dict[str, set[int]] = {}
    if params is not None and pages:
        chrome = store.chrome_keys({p.outlet_id for p in pages}, params.chrome_min_articles)
    stop_at = None if deadline is None else time.time() + (deadline - time.monotonic())
    planned = plan_streams(pages, slots * STREAMS_PER_SLOT, settings, config.cluster.batch_pages)
    streams = [
        [
            PageBatch(
                batch_id=batch_id_for(
                    run_id,
                    [(p.entry_id, entries[index_of[p.entry_id]].attempts) for p in part.pages],
                ),
                stream=number,
                pages=part.pages,
                settings=part.settings,
                params=params,
                chrome={o: frozenset(chrome.get(o, ())) for o in {p.outlet_id for p in part.pages}},
                stop_at=stop_at,
                network=fetcher.network,
            )
            for part in stream
        ]
        for number, stream in enumerate(planned)
    ]
    total_batches = sum(len(stream) for stream in streams)
    outcome = IngestOutcome()
    detect_params = params if slots > 1 else None
    writer = _StoreWriter(store, run_id, as_of, detect_params, recent)
    host_waits: list[dict[str, object]] = []
    finished = 0
    batches_done = 0
    seen: set[str] = set()
    failed_seconds: dict[str, float] = {}  # per host, over the batches so far
    held_until: dict[str, float] = {}

    def prepare(batch: PageBatch) -> PageBatch:
        """What the batches before it learned of its hosts (budget spent, Retry-After)."""
        hosts = {host_key(p.url) for p in batch.pages}
        return replace(
            batch,
            failed_seconds={h: failed_seconds[h] for h in hosts if h in failed_seconds},
            held_until={h: held_until[h] for h in hosts if h in held_until},
        )

    try:
        for batch, data in workers.run(streams, deadline, prepare):
            if batch.batch_id in seen:  # delivered again: the writer would skip it too
                log.info("batch %s delivered again: left as it is", batch.batch_id)
                continue
            seen.add(batch.batch_id)
            batches_done += 1
            loaded = _Loaded(None, "", len(batch.pages), [], [], [], 0, None)
            results: list[PageOutcome] = []
            if data is not None:
                done = read_result(data, params or DetectionParams())
                loaded.batch_id, loaded.worker, results = batch.batch_id, done.worker, done.pages
                for host, seconds in done.failed_seconds.items():
                    failed_seconds[host] = max(seconds, failed_seconds.get(host, 0.0))
                for host, until in done.held_until.items():
                    held_until[host] = max(until, held_until.get(host, 0.0))
            left = {p.entry_id for p in batch.pages} - {r.entry_id for r in results if r.fetched}
            for result in results:
                if not result.fetched:
                    continue
                i = index_of[result.entry_id]
                row, update, log_row = _finished_entry(
                    entries[i], result, run_id, as_of, settings, outcome
                )
                if result.result.retry_after is not None:
                    host_waits.append(
                        _host_wait(result.result, as_of, settings.max_backoff_minutes)
                    )
                if (
                    row is not None
                    and row["text_source"] == "page"
                    and result.signed is not None
                    and recent is not None
                ):
                    recent.offer(
                        entries[i].entry_id, result.signed, result.short_keys, result.applied_chrome
                    )
                loaded.log.append(log_row)
                for done_row, _update in order.finish(i, row, update):
                    loaded.ready += done_row is not None
                if row is not None:
                    loaded.rows.append(row)
                loaded.updates.append(update)
                finished += 1
                progress("articles", finished, len(entries))
            if left:
                outcome.budget_exhausted = True
                for entry_id in left:  # they stay pending; the finished ones after them count
                    for done_row, _update in order.finish(index_of[entry_id], None):
                        loaded.ready += done_row is not None
            loaded.until = order.last_key
            writer.load(loaded)
            progress("batches", batches_done, total_batches)
        if outcome.budget_exhausted:
            log.warning(
                "cycle budget spent: %d of %d due entries left for the next cycle",
                len(entries) - finished,
                len(entries),
            )
    finally:
        writer.close()
    store.record_host_backoffs(host_waits)
    outcome.articles_new = writer.articles_new
    outcome.detected = writer.detected
    outcome.entries_pending = store.pending_entries()
    return outcome


def _finished_entry(
    due: DueEntry,
    result: PageOutcome,
    run_id: str,
    as_of: datetime,
    settings: FetchSettings,
    outcome: IngestOutcome,
) -> tuple[dict[str, object] | None, dict[str, object], dict[str, object]]:
    """What became of a fetched entry: its article row (if any), its entry's update and its
    fetch record."""
    page, size, doc = result.result, result.size, result.doc
    error = page.error if not page.ok else result.extract_error
    new, attempts = due.new, due.attempts + 1
    update: dict[str, object] = {
        "entry_id": due.entry_id,
        "status": "stored",
        "attempts": attempts,
        "last_attempt_at": as_of,
    }
    row: dict[str, object] | None = None
    if doc is not None:
        row = _article_row(new, run_id, due.first_seen_at, doc.text, "page", result.fingerprint)
        page_words = int(row["word_count"])  # type: ignore[call-overload]
        feed_text = new.entry.content
        # a text has fewer words than characters: most feed teasers need no counting
        if len(feed_text) > 1.5 * page_words and word_count(feed_text) > 1.5 * page_words:
            # a paywalled or truncated page: the feed carries the full text
            row = _article_row(new, run_id, due.first_seen_at, feed_text, "feed")
        row.update(_page_metadata(new.entry, doc))
        log_row = _log_row(run_id, as_of, "article", new.outlet_id, page, "ok", size=size)
    else:
        error_kind = page.error_kind if not page.ok else "terminal"
        update.update(last_error=error, last_error_kind=error_kind)
        fallback = new.entry.best_text
        outcome_name = "error"
        if word_count(fallback) >= MIN_FALLBACK_WORDS:
            row = _article_row(new, run_id, due.first_seen_at, fallback, "feed")
            outcome.fallbacks += 1
            outcome_name = "fallback"
        elif _retryable(page) and attempts < settings.max_attempts_per_article:
            wait = backoff_delay(
                settings.retry_delay_minutes,
                attempts,
                settings.max_backoff_minutes,
                page.retry_after,
            )
            update.update(status="pending", next_attempt_at=as_of + wait)
            outcome.articles_failed += 1
        else:
            tried = f"page failed in {attempts} cycles" if _retryable(page) else "no usable page"
            update["reason"] = f"{tried}: {error}"
            text = feed_only_text(new.entry)
            if text:
                row = _article_row(new, run_id, due.first_seen_at, text, "feed-only")
                update["status"] = "feed-only"
                outcome.articles_feed_only += 1
            else:
                update["status"] = "failed"
                update["reason"] = f"{tried} and the feed gives no text: {error}"
                outcome.articles_failed += 1
        log_row = _log_row(
            run_id, as_of, "article", new.outlet_id, page, outcome_name, error, error_kind, size
        )
    if row is not None:
        update["article_id"] = row["article_id"]
    return row, update, log_row


def detect(
    store: Store,
    run_id: str,
    as_of: datetime,
    params: DetectionParams,
    clock: StageClock | None = None,
    *,
    full_batches_only: bool = False,
    recent: SignedTexts | None = None,
    until: ClusteringKey | None = None,
) -> DetectOutcome:
    """The detection stage: `narratives.detect.detect` over the store, in batches of
    DETECT_BATCH articles."""
    return detection.detect(
        store,
        run_id,
        as_of,
        params,
        clock,
        full_batches_only=full_batches_only,
        recent=recent,
        until=until,
        batch_size=DETECT_BATCH,
    )
