"""The stages of one ingestion cycle as plain functions (no Prefect here): each Prefect task in
`flows.cycle` is one call into this module, and tests call these directly."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import ChainMap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import xxhash

from ingest.config import OutletsConfig
from ingest.extract import Extracted, PageToExtract, extract_stream
from ingest.feeds import FeedEntry, parse_feed
from ingest.http import Fetcher, FetchRequest, FetchResult
from narratives.detect import (
    SignedTexts,
    Verified,
    bands_table,
    cluster_batch,
    short_paragraph_keys,
    sign_text,
    verify_candidates,
)
from narratives.params import DetectionParams
from narratives.signatures import Signed
from narratives.text import fingerprint, read_paragraphs, word_count
from narratives.verify import Match
from store.db import Store, StoredText

log = logging.getLogger(__name__)

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
MIN_FALLBACK_WORDS = 30  # feed text shorter than this is a teaser, not an article
MAX_ENTRIES_PER_FEED = 300
MAX_CANDIDATES_PER_ARTICLE = 200
DETECT_BATCH = 1000  # articles signed, matched and written together
PAGES_PER_TASK = 4  # pages handed to an extraction process at once


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


@dataclass
class PollOutcome:
    new_entries: list[NewEntry] = field(default_factory=list)
    feeds_polled: int = 0
    feeds_not_modified: int = 0
    feeds_failed: int = 0
    entries_seen: int = 0


@dataclass
class DetectOutcome:
    articles_signed: int = 0
    pairs_checked: int = 0
    clusters_new: int = 0
    clusters_joined: int = 0
    clusters_merged: int = 0


@dataclass
class IngestOutcome:
    articles_new: int = 0
    articles_failed: int = 0
    fallbacks: int = 0
    detected: DetectOutcome = field(default_factory=DetectOutcome)  # during the stage


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
    }


def _hosts(results: Sequence[FetchResult]) -> set[str]:
    return {urlsplit(r.url).hostname or "" for r in results}


def poll_feeds(
    config: OutletsConfig, store: Store, fetcher: Fetcher, run_id: str, as_of: datetime
) -> PollOutcome:
    """Conditional GET of every feed; parse; record each attempt; return unseen entries."""
    store.sync_outlets(config.outlets)
    outlet_of = config.outlet_for_feed()
    states = store.feed_states(outlet_of)
    requests = [
        FetchRequest(
            url,
            states[url].etag if url in states else None,
            states[url].last_modified if url in states else None,
        )
        for url in outlet_of
    ]
    results = fetcher.fetch_many(
        requests, accept=FEED_ACCEPT, deadline=config.fetch.feed_deadline_seconds
    )
    if len(_hosts(results)) >= 2 and all(r.error_kind == "transient" for r in results):
        raise NetworkUnavailable(
            f"all {len(results)} feeds failed with transient errors, e.g. {results[0].error}"
        )
    outcome = PollOutcome(feeds_polled=len(results))
    log_rows = []
    candidates: dict[str, NewEntry] = {}
    for result in results:
        outlet_id = outlet_of[result.url].outlet_id
        if result.not_modified:
            outcome.feeds_not_modified += 1
            store.update_feed(
                result.url, as_of, "not-modified", None, result.etag, result.last_modified, None
            )
            log_rows.append(_log_row(run_id, as_of, "feed", outlet_id, result, "not-modified"))
            continue
        if not result.ok:
            outcome.feeds_failed += 1
            store.update_feed(result.url, as_of, "error", result.error, None, None, None)
            log_rows.append(_log_row(run_id, as_of, "feed", outlet_id, result, "error"))
            continue
        parsed = parse_feed(result.body, result.final_url, result.content_type)
        if not parsed.is_feed:
            outcome.feeds_failed += 1
            store.update_feed(result.url, as_of, "error", parsed.problem, None, None, None)
            log_rows.append(
                _log_row(
                    run_id, as_of, "feed", outlet_id, result, "error", parsed.problem, "terminal"
                )
            )
            continue
        status = "ok"
        if parsed.problem:
            log.warning(
                "feed %s is malformed (%s); salvaged %d entries",
                result.url,
                parsed.problem,
                len(parsed.entries),
            )
            status = "salvaged"
        store.update_feed(
            result.url,
            as_of,
            "ok",
            parsed.problem,
            result.etag,
            result.last_modified,
            len(parsed.entries),
        )
        log_rows.append(
            _log_row(
                run_id,
                as_of,
                "feed",
                outlet_id,
                result,
                status,
                parsed.problem,
                "terminal" if parsed.problem else None,
            )
        )
        entries = parsed.entries[:MAX_ENTRIES_PER_FEED]
        outcome.entries_seen += len(entries)
        for entry in entries:
            candidates.setdefault(entry.canonical_url, NewEntry(entry, outlet_id, result.url))
    store.log_fetches(log_rows)
    known = store.known_urls(candidates)
    unseen = [c for url, c in candidates.items() if url not in known]
    attempts = store.failed_attempts(c.entry.url for c in unseen)
    limit = config.fetch.max_attempts_per_article
    outcome.new_entries = [c for c in unseen if attempts.get(c.entry.url, 0) < limit]
    return outcome


def _article_row(
    new: NewEntry,
    run_id: str,
    as_of: datetime,
    text: str,
    source: str,
) -> dict[str, object]:
    """An articles row from the feed entry alone (`_page_metadata` adds what the page said)."""
    entry = new.entry
    words, content_hash = fingerprint(text)
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
        "first_seen_at": as_of,
        "text": text,
        "text_source": source,
        "content_hash": content_hash,
        "word_count": words,
        "run_id": run_id,
    }


def _page_metadata(entry: FeedEntry, doc: Extracted) -> dict[str, object]:
    """What the page adds to an article row (the feed's title, author and date come first)."""
    return {
        "title": entry.title or doc.title,
        "author": entry.author or doc.author,
        "sitename": doc.sitename,
        "language": doc.language,
        "published_at": entry.published_at or doc.published_at,
    }


def _clustering_key(published_at: datetime | None, article_id: int) -> tuple[bool, datetime, int]:
    """Where an article of this cycle falls in the order detection sees it in (the order of
    `Store.articles_to_sign` within one `first_seen_at`: published_at NULLS LAST, article id)."""
    return (published_at is None, published_at or _NO_DATE, article_id)


_NO_DATE = datetime(1970, 1, 1, tzinfo=UTC)


class _InClusteringOrder:
    """Hands on finished articles in clustering order as soon as every entry sorting before
    them is finished. Entries whose feed gives no date are fetched first: their place is known
    only once their page is read (`published_at` then comes from the page)."""

    def __init__(self, entries: Sequence[NewEntry]):
        self._entries = entries
        self._ids = [article_id_for(e.entry.canonical_url) for e in entries]
        self._undated_left = sum(1 for e in entries if e.entry.published_at is None)
        self._finished: dict[int, dict[str, object] | None] = {}
        self._sequence: list[int] | None = None
        self._next = 0

    def fetch_order(self) -> list[int]:
        """Entry indexes: the undated ones first, then the dated ones in clustering order."""
        return sorted(
            range(len(self._entries)),
            key=lambda i: (
                self._entries[i].entry.published_at is not None,
                _clustering_key(self._entries[i].entry.published_at, self._ids[i]),
            ),
        )

    def finish(self, index: int, row: dict[str, object] | None) -> list[dict[str, object]]:
        """Record entry `index` as finished (`row` None: nothing stored); return the rows whose
        turn has come, in order."""
        self._finished[index] = row
        if self._entries[index].entry.published_at is None:
            self._undated_left -= 1
        if self._undated_left:
            return []
        if self._sequence is None:
            self._sequence = sorted(range(len(self._entries)), key=self._final_key)
        ready: list[dict[str, object]] = []
        while self._next < len(self._sequence) and self._sequence[self._next] in self._finished:
            done = self._finished.pop(self._sequence[self._next])
            self._next += 1
            if done is not None:
                ready.append(done)
        return ready

    def _final_key(self, index: int) -> tuple[bool, datetime, int]:
        row = self._finished.get(index)
        published = self._entries[index].entry.published_at
        if published is None and row is not None:
            published = row["published_at"]  # type: ignore[assignment]
        return _clustering_key(published, self._ids[index])


class _StoreWriter:
    """Stores article rows and fetch records on a thread of its own, and, given detection
    parameters, detects each full batch of DETECT_BATCH articles as soon as it is stored,
    while the pages after it are still being fetched and extracted. Rows arrive in
    clustering order, so the batches are the ones `detect` would form after the stage, and
    the result is the same; the last partial batch is left to the detect stage. The store is
    used by this thread alone until `close()`."""

    CHUNK = 200  # rows stored together

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
        self._queue: queue.SimpleQueue[tuple[str, list[dict[str, object]]] | None] = (
            queue.SimpleQueue()
        )
        self._rows: list[dict[str, object]] = []
        self._log: list[dict[str, object]] = []
        self._error: BaseException | None = None
        self.articles_new = 0
        self.detected = DetectOutcome()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def add(self, rows: list[dict[str, object]], log_row: dict[str, object]) -> None:
        if self._error is not None:
            raise RuntimeError("storing articles failed") from self._error
        self._rows.extend(rows)
        self._log.append(log_row)
        if len(self._rows) >= self.CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._log:
            self._queue.put(("log", self._log))
            self._log = []
        if self._rows:
            self._queue.put(("articles", self._rows))
            self._rows = []

    def close(self) -> None:
        """Store what is left, wait for the thread, and raise whatever stopped it."""
        if self._thread.is_alive():
            self._flush()
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        unsigned = 0
        try:
            while (item := self._queue.get()) is not None:
                kind, rows = item
                if kind == "log":
                    self._store.log_fetches(rows)
                    continue
                added = self._store.insert_articles(rows)
                self.articles_new += added
                unsigned += added
                if self._params is not None and unsigned >= DETECT_BATCH:
                    found = detect(
                        self._store,
                        self._run_id,
                        self._as_of,
                        self._params,
                        full_batches_only=True,
                        recent=self._recent,
                    )
                    _add_outcome(self.detected, found)
                    unsigned = max(0, unsigned - found.articles_signed)
        except BaseException as exc:  # reported by close() on the stage's thread
            self._error = exc


def _add_outcome(total: DetectOutcome, part: DetectOutcome) -> None:
    for name in vars(total):
        setattr(total, name, getattr(total, name) + getattr(part, name))


def fetch_and_extract(
    entries: Sequence[NewEntry],
    fetcher: Fetcher,
    store: Store,
    run_id: str,
    as_of: datetime,
    processes: int = 1,
    params: DetectionParams | None = None,
    recent: SignedTexts | None = None,
) -> IngestOutcome:
    """Fetch every new entry's page and extract it as it arrives (fetching overlaps the
    extraction pool, and only a few page bodies are held at once); fall back to the feed's own
    text when a page fails; record every attempt; store the articles (idempotently) in
    clustering order as they are ready. With `params` and an extraction pool (processes > 1),
    full batches of articles are detected while later pages are still being extracted, on the
    core the pool leaves; `outcome.detected` counts them and `detect` finishes the rest (pass
    both the same `recent` so texts signed for one batch are not tokenised again for the
    next)."""
    order = _InClusteringOrder(entries)
    fetch_order = order.fetch_order()
    requests = [FetchRequest(entries[i].entry.url) for i in fetch_order]
    fetched: dict[int, FetchResult] = {}
    sizes: dict[int, int] = {}
    tasks = max(2, processes) * 3  # extraction tasks in flight, PAGES_PER_TASK pages each
    window = tasks * PAGES_PER_TASK
    outcome = IngestOutcome()
    writer = _StoreWriter(store, run_id, as_of, params if processes > 1 else None, recent)

    def finish(i: int, doc: Extracted | None, error: str | None) -> None:
        new, page, size = entries[i], fetched[i], sizes[i]
        row: dict[str, object] | None = None
        if doc is not None:
            row = _article_row(new, run_id, as_of, doc.text, "page")
            page_words = int(row["word_count"])  # type: ignore[call-overload]
            feed_text = new.entry.content
            # a text has fewer words than characters: most feed teasers need no counting
            if len(feed_text) > 1.5 * page_words and word_count(feed_text) > 1.5 * page_words:
                # a paywalled or truncated page: the feed carries the full text
                row = _article_row(new, run_id, as_of, feed_text, "feed")
            row.update(_page_metadata(new.entry, doc))
            log_row = _log_row(run_id, as_of, "article", new.outlet_id, page, "ok", size=size)
        else:
            error_kind = page.error_kind if not page.ok else "terminal"
            fallback = new.entry.best_text
            if word_count(fallback) >= MIN_FALLBACK_WORDS:
                row = _article_row(new, run_id, as_of, fallback, "feed")
                outcome.fallbacks += 1
                outcome_name = "fallback"
            else:
                outcome.articles_failed += 1
                outcome_name = "error"
            log_row = _log_row(
                run_id, as_of, "article", new.outlet_id, page, outcome_name, error, error_kind, size
            )
        writer.add(order.finish(i, row), log_row)

    def pages() -> Iterator[PageToExtract]:
        for position, page in fetcher.fetch_iter(requests, accept=PAGE_ACCEPT, buffer=window):
            index = fetch_order[position]
            sizes[index] = len(page.body)
            fetched[index] = replace(page, body=b"")
            if page.ok:
                yield PageToExtract(str(index), page.body, page.final_url, page.content_type)
            else:
                finish(index, None, page.error)

    try:
        for key, doc, error in extract_stream(pages(), processes, tasks, PAGES_PER_TASK):
            finish(int(key), doc, error)
    finally:
        writer.close()
    outcome.articles_new = writer.articles_new
    outcome.detected = writer.detected
    return outcome


class StageClock:
    """Wall seconds per named step, accumulated over calls: `lap(name)` charges the time since
    the previous lap to `name` (benchmarks pass one to `detect` to see where time goes)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def restart(self) -> None:
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._last
        self._last = now


def detect(
    store: Store,
    run_id: str,
    as_of: datetime,
    params: DetectionParams,
    clock: StageClock | None = None,
    *,
    full_batches_only: bool = False,
    recent: SignedTexts | None = None,
) -> DetectOutcome:
    """Sign every unsigned article, find and verify candidates, place them in clusters; in
    batches of at most DETECT_BATCH articles, oldest first, each written in its own
    transaction (memory stays flat however large the cycle; within a batch only earlier
    articles count as matches for later ones). With `full_batches_only`, a last batch of
    fewer than DETECT_BATCH articles is left unsigned. `recent` keeps the texts signed here
    for later batches and calls that pass the same object (a stored candidate met again is
    not tokenised again)."""
    clock = clock or StageClock()
    recent = recent if recent is not None else SignedTexts()
    outcome = DetectOutcome()
    done: set[int] = set()
    while True:
        clock.restart()
        batch = store.articles_to_sign(limit=DETECT_BATCH)
        clock.lap("load")
        if not batch or (full_batches_only and len(batch) < DETECT_BATCH):
            return outcome
        if batch[0].article_id in done:  # its signature was not written: never loop
            raise RuntimeError(f"article {batch[0].article_id} was detected but not signed")
        done.update(item.article_id for item in batch)
        _detect_batch(store, batch, run_id, as_of, params, clock, outcome, recent)


VERIFY_CHUNK = 1000  # candidate pairs verified together (stored texts signed for them)


def _verify_with_stored(
    ids: list[int],
    candidates: list[tuple[int, int, int]],
    signed: dict[int, Signed],
    stored: dict[int, StoredText],
    stored_chrome: dict[str, set[int]],
    params: DetectionParams,
    clock: StageClock,
    recent: SignedTexts,
) -> Verified:
    """Verify the candidates in chunks, signing each stored text (those not in `signed`: the
    batch and the texts `recent` still holds) for the first chunk that needs it and dropping
    it after the last one: memory holds the batch and one chunk's stored texts, not every
    candidate's tokens at once. Same result as one call. The texts signed here join
    `recent`."""
    last_chunk = {other: i // VERIFY_CHUNK for i, (_n, other, _h) in enumerate(candidates)}
    cache: dict[int, Signed] = {}
    matches: dict[int, list[Match]] = {}
    checked = 0
    for chunk, first in enumerate(range(0, len(candidates), VERIFY_CHUNK)):
        part = candidates[first : first + VERIFY_CHUNK]
        for _new, other, _hits in part:
            if other in cache or other in signed:
                continue
            text = stored.get(other)
            if text is None:
                continue
            chrome = stored_chrome[text.outlet_id]
            paragraphs = read_paragraphs(text.text, params.chrome_max_words)
            cache[other] = sign_text(paragraphs, chrome, params, text.outlet_id, minhash=False)
            recent.put(other, cache[other], short_paragraph_keys(paragraphs), chrome)
        clock.lap("stored")
        found = verify_candidates(ids, part, ChainMap(cache, signed), params)
        for new_id, new_matches in found.matches.items():
            matches.setdefault(new_id, []).extend(new_matches)
        checked += found.pairs_checked
        for other in [o for o in cache if last_chunk[o] <= chunk]:
            del cache[other]
        clock.lap("verify")
    return Verified(matches, checked)


def _detect_batch(
    store: Store,
    batch: list[StoredText],
    run_id: str,
    as_of: datetime,
    params: DetectionParams,
    clock: StageClock,
    outcome: DetectOutcome,
    recent: SignedTexts,
) -> None:
    store.ensure_params(params.param_set_id, params.as_dict())
    read = {item.article_id: read_paragraphs(item.text, params.chrome_max_words) for item in batch}
    short_keys = {article: short_paragraph_keys(paras) for article, paras in read.items()}
    paragraph_list = [
        {"outlet_id": item.outlet_id, "paragraph_key": key, "article_id": item.article_id}
        for item in batch
        for key in short_keys[item.article_id]
    ]
    paragraphs = pa.Table.from_pylist(
        paragraph_list,
        schema=pa.schema(
            [("outlet_id", pa.string()), ("paragraph_key", pa.int64()), ("article_id", pa.int64())]
        ),
    )
    chrome = store.chrome_keys(
        {item.outlet_id for item in batch},
        params.chrome_min_articles,
        pending=paragraphs,
        of_articles=[item.article_id for item in batch],
    )
    clock.lap("chrome")
    ids = [item.article_id for item in batch]
    signed = {
        item.article_id: sign_text(
            read.pop(item.article_id), chrome[item.outlet_id], params, item.outlet_id
        )
        for item in batch
    }
    clock.lap("sign")
    bands = bands_table(ids, [signed[i] for i in ids], params)
    clock.lap("bands")
    candidates = store.candidate_pairs(bands, MAX_CANDIDATES_PER_ARTICLE)
    for item in batch:
        article = item.article_id
        recent.put(article, signed[article], short_keys[article], chrome[item.outlet_id])
    clock.lap("candidates")
    others = {other for _new, other, _h in candidates if other not in signed}
    kept_outlets = recent.outlets(others)  # texts signed earlier: no need to load them
    stored = store.texts(others - kept_outlets.keys())
    outlets = {t.outlet_id for t in stored.values()} | set(kept_outlets.values())
    stored_chrome = store.chrome_keys(
        outlets, params.chrome_min_articles, pending=paragraphs, of_articles=others
    )
    kept = {}
    for other, outlet in kept_outlets.items():
        if (hit := recent.get(other, stored_chrome[outlet])) is not None:
            kept[other] = hit
    # the others' outlets have learned new chrome since they were signed: sign them again
    stored.update(store.texts(kept_outlets.keys() - kept.keys()))
    clock.lap("stored")
    verified = _verify_with_stored(
        ids, candidates, {**kept, **signed}, stored, stored_chrome, params, clock, recent
    )
    outcome.pairs_checked += verified.pairs_checked
    other_ids = {m.other_id for ms in verified.matches.values() for m in ms}
    membership = store.memberships(other_ids)
    births = store.cluster_births(set(membership.values()))
    order = [(item.article_id, (item.first_seen_at, item.article_id)) for item in batch]
    assignment = cluster_batch(order, verified, membership, births, params)
    founders = {cluster: founder for cluster, founder in assignment.new_clusters}
    seen_at = {item.article_id: item.first_seen_at for item in batch}
    new_clusters = [
        {
            "cluster_id": c,
            "founder_article_id": f,
            "created_at": seen_at[f],
            "status": "active",
            "merged_into": None,
            "run_id": run_id,
        }
        for c, f in founders.items()
    ]
    members = []
    matches = []
    for membership_row in assignment.memberships:
        m = membership_row.match
        members.append(
            {
                "article_id": membership_row.article_id,
                "cluster_id": membership_row.cluster_id,
                "matched_article_id": m.other_id if m else None,
                "match_kind": m.kind if m else None,
                "similarity": m.jaccard if m else None,
                "containment": m.containment if m else None,
                "matched_passage": m.passage[:2000] if m else None,
                "joined_at": seen_at[membership_row.article_id],
                "run_id": run_id,
            }
        )
    for article_id, found in verified.matches.items():
        for m in found:
            matches.append(
                {
                    "article_id": article_id,
                    "other_article_id": m.other_id,
                    "match_kind": m.kind,
                    "similarity": m.jaccard,
                    "containment": m.containment,
                    "shared_shingles": m.shared,
                    "run_shingles": m.run_shared,
                    "matched_passage": m.passage[:2000],
                }
            )
    merges = [
        {
            "absorbed_cluster_id": mg.absorbed,
            "survivor_cluster_id": mg.survivor,
            "via_article_id": mg.via_article_id,
            "merged_at": as_of,
            "run_id": run_id,
        }
        for mg in assignment.merges
    ]
    clock.lap("cluster")
    store.write_detection(
        param_set_id=params.param_set_id,
        article_ids=ids,
        minhashes=np.vstack([signed[i].signature for i in ids]),
        shingle_counts=[int(signed[i].shingles.size) for i in ids],
        passage_counts=[len(signed[i].passages) for i in ids],
        bands=bands,
        paragraphs=paragraphs,
        new_clusters=new_clusters,
        members=members,
        matches=matches,
        merges=merges,
    )
    clock.lap("write")
    outcome.articles_signed += len(ids)
    outcome.clusters_new += len(new_clusters)
    outcome.clusters_joined += sum(1 for m in assignment.memberships if m.match is not None)
    outcome.clusters_merged += len(merges)
