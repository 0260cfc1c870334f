"""The per-article work of a cycle, as one pure function a worker runs on a batch of pages:
fetch (the project's fetcher, with its address pinning, deadlines, size cap and per-host
rules), extract (trafilatura), tokenise and sign, and hand back the batch as Arrow IPC bytes.

It runs in the local process pool or on a Dask worker on another machine; it imports neither
Prefect nor DuckDB and writes nothing. The driver (`flows.distribute`) forms the batches, and
the one writer loads each result in one transaction under the batch's id."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pyarrow as pa
import xxhash

from ingest.config import FetchSettings
from ingest.extract import Extracted, ExtractionError, extract_article
from ingest.http import Fetcher, FetchRequest, FetchResult, Network
from ingest.urls import UnsafeURLError, parse_target
from narratives.detect import short_paragraph_keys, sign_text
from narratives.params import DetectionParams
from narratives.signatures import Passage, Signed
from narratives.text import Tokens, fingerprint, read_paragraphs

PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"


@dataclass(frozen=True)
class BatchPage:
    entry_id: int
    url: str
    outlet_id: str


@dataclass(frozen=True)
class PageBatch:
    """What a worker needs for one batch. `settings` carry the per-host share of concurrency
    and rate the driver gave this batch's stream; `chrome` is each outlet's learned chrome
    when the batch was formed (a text signed with chrome that has changed since is signed
    again centrally); `stop_at` is the wall-clock time (time.time()) after which no further
    page is fetched (the cycle budget)."""

    batch_id: str
    stream: int
    pages: tuple[BatchPage, ...]
    settings: FetchSettings
    params: DetectionParams | None  # None: the texts are not signed
    chrome: dict[str, frozenset[int]] = field(default_factory=dict)
    stop_at: float | None = None
    network: Network | None = None
    # what earlier batches recorded of these hosts (host:port): seconds lost to failures
    # (the per-host budget), and the wall-clock time until which each asked to wait
    failed_seconds: dict[str, float] = field(default_factory=dict)
    held_until: dict[str, float] = field(default_factory=dict)


def batch_id_for(run_id: str, entries: Sequence[tuple[int, int]]) -> str:
    """A batch's id from its run and its (entry id, attempts before) pairs: the same batch
    formed again (a retried task) has the same id; a later cycle's batch never does."""
    digest = xxhash.xxh64(run_id.encode())
    for entry_id, attempts in sorted(entries):
        digest.update(f"{entry_id}:{attempts};".encode())
    return digest.hexdigest()


U32 = pa.binary()
SCHEMA = pa.schema(
    [
        ("entry_id", pa.int64()),
        ("outlet_id", pa.string()),
        ("fetched", pa.bool_()),  # False: the budget ran out before its fetch started
        ("url", pa.string()),
        ("final_url", pa.string()),
        ("status", pa.int32()),
        ("content_type", pa.string()),
        ("error", pa.string()),
        ("error_kind", pa.string()),
        ("attempts", pa.int32()),
        ("elapsed_ms", pa.float64()),
        ("bytes", pa.int64()),
        ("retry_after", pa.float64()),
        # extraction (null text: none; `extract_error` says why)
        ("title", pa.string()),
        ("text", pa.string()),
        ("published_at", pa.timestamp("us", tz="UTC")),
        ("author", pa.string()),
        ("sitename", pa.string()),
        ("language", pa.string()),
        ("extract_error", pa.string()),
        ("word_count", pa.int32()),
        ("content_hash", pa.string()),
        # signing of `text` with `applied_chrome` dropped (narratives.detect.sign_text)
        ("short_keys", pa.list_(pa.int64())),
        ("applied_chrome", pa.list_(pa.int64())),
        ("tokens_text", pa.string()),
        ("words", pa.list_(pa.string())),
        ("paragraph_starts", pa.list_(pa.int32())),
        ("paragraph_offsets", pa.list_(pa.int32())),
        ("shingles", U32),
        ("signature", U32),
        ("passages", pa.list_(pa.int32())),  # 5 numbers per passage
        ("passage_signatures", U32),
    ]
)


def host_key(url: str) -> str:
    """The host (host:port) a URL's politeness rules apply to ("" when it cannot be read)."""
    try:
        return parse_target(url).host_key
    except UnsafeURLError:
        return ""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_batch(batch: PageBatch) -> bytes:
    """Fetch, extract and sign every page of the batch; one row per page, in batch order, as
    Arrow IPC stream bytes (schema `SCHEMA`; the worker's name in its metadata). Never raises
    for a page: a failed fetch or extraction is a row that says why."""
    requests = [FetchRequest(page.url) for page in batch.pages]
    rows: list[dict[str, object] | None] = [None] * len(batch.pages)
    hosts = {host_key(page.url) for page in batch.pages}
    with Fetcher(batch.settings, network=batch.network) as fetcher:
        now = time.time()
        fetcher.carry_over(
            batch.failed_seconds,
            {key: until - now for key, until in batch.held_until.items() if until > now},
        )
        stream = fetcher.fetch_iter(requests, accept=PAGE_ACCEPT, buffer=4)
        with closing(stream):  # type: ignore[type-var]
            for index, result in stream:
                rows[index] = _row(batch, batch.pages[index], result)
                if batch.stop_at is not None and time.time() > batch.stop_at:
                    break  # no further fetch starts; those in flight are dropped
        failed, held = fetcher.carried(hosts)
    for index, page in enumerate(batch.pages):
        if rows[index] is None:
            rows[index] = {
                "entry_id": page.entry_id,
                "outlet_id": page.outlet_id,
                "fetched": False,
                "url": page.url,
            }
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    now = time.time()
    table = table.replace_schema_metadata(
        {
            "worker": worker_name(),
            "batch_id": batch.batch_id,
            "hosts": json.dumps(
                {"failed_seconds": failed, "held_until": {k: now + v for k, v in held.items()}}
            ),
        }
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _row(batch: PageBatch, page: BatchPage, result: FetchResult) -> dict[str, object]:
    row: dict[str, object] = {
        "entry_id": page.entry_id,
        "outlet_id": page.outlet_id,
        "fetched": True,
        "url": result.url,
        "final_url": result.final_url,
        "status": result.status,
        "content_type": result.content_type,
        "error": result.error,
        "error_kind": result.error_kind,
        "attempts": result.attempts,
        "elapsed_ms": result.elapsed_ms,
        "bytes": len(result.body),
        "retry_after": result.retry_after,
    }
    if not result.ok:
        return row
    try:
        doc = extract_article(result.body, result.final_url, result.content_type)
    except ExtractionError as exc:
        row["extract_error"] = str(exc)
        return row
    except Exception as exc:  # a crash inside the extractor must not lose the batch
        row["extract_error"] = f"extractor failed: {type(exc).__name__}: {exc}"
        return row
    words, content_hash = fingerprint(doc.text)
    row.update(
        title=doc.title,
        text=doc.text,
        published_at=doc.published_at,
        author=doc.author,
        sitename=doc.sitename,
        language=doc.language,
        word_count=words,
        content_hash=content_hash,
    )
    if batch.params is not None:
        row.update(_signing(batch.params, batch.chrome.get(page.outlet_id), page, doc.text))
    return row


def _signing(
    params: DetectionParams, chrome: frozenset[int] | None, page: BatchPage, text: str
) -> dict[str, object]:
    """The one place where a worker signs a text (narratives.detect.sign_text)."""
    paragraphs = read_paragraphs(text, params.chrome_max_words)
    keys = short_paragraph_keys(paragraphs)
    chrome = chrome or frozenset()
    signed = sign_text(paragraphs, set(chrome), params, page.outlet_id)
    tokens = signed.tokens
    return {
        "short_keys": sorted(keys),
        "applied_chrome": sorted(keys & chrome),
        "tokens_text": tokens.text,
        "words": list(tokens.words),
        "paragraph_starts": list(tokens.paragraph_starts),
        "paragraph_offsets": list(tokens.paragraph_offsets),
        "shingles": np.ascontiguousarray(signed.shingles, np.uint32).tobytes(),
        "signature": np.ascontiguousarray(signed.signature, np.uint32).tobytes(),
        "passages": [
            n
            for p in signed.passages
            for n in (p.number, p.first_word, p.last_word, p.first_shingle, p.last_shingle)
        ],
        "passage_signatures": np.ascontiguousarray(signed.passage_signatures, np.uint32).tobytes(),
    }


# ------------------------------------------------------------------------ reading a result


@dataclass(frozen=True)
class PageOutcome:
    """One row of a batch result, read back on the driver."""

    entry_id: int
    fetched: bool
    result: FetchResult  # body left out; `size` is its length
    size: int
    doc: Extracted | None
    extract_error: str | None
    signed: Signed | None
    short_keys: frozenset[int]
    applied_chrome: frozenset[int]
    # the text's word count and content hash (`narratives.text.fingerprint`), from the worker
    fingerprint: tuple[int, str] | None = None


@dataclass(frozen=True)
class BatchResult:
    worker: str  # host:pid
    pages: list[PageOutcome]
    failed_seconds: dict[str, float]  # of its hosts, at its end (carried into later batches)
    held_until: dict[str, float]


def read_result(data: bytes, params: DetectionParams) -> BatchResult:
    """A batch result as the worker sent it."""
    reader = pa.ipc.open_stream(data)
    table = reader.read_all()
    meta = table.schema.metadata or {}
    hosts = json.loads(meta.get(b"hosts", b"{}"))
    return BatchResult(
        worker=meta.get(b"worker", b"").decode(),
        pages=[_outcome(row, params) for row in table.to_pylist()],
        failed_seconds=hosts.get("failed_seconds", {}),
        held_until=hosts.get("held_until", {}),
    )


def _outcome(row: dict, params: DetectionParams) -> PageOutcome:
    url = row["url"] or ""
    result = FetchResult(
        url,
        row["final_url"] or url,
        row["status"],
        content_type=row["content_type"] or "",
        error=row["error"],
        error_kind=row["error_kind"],
        attempts=row["attempts"] or 0,
        elapsed_ms=row["elapsed_ms"] or 0.0,
        retry_after=row["retry_after"],
    )
    doc = None
    signed = None
    fingerprinted = None
    if row["text"] is not None:
        published: datetime | None = row["published_at"]
        doc = Extracted(
            title=row["title"] or "",
            text=row["text"],
            published_at=published,
            author=row["author"] or "",
            sitename=row["sitename"] or "",
            language=row["language"] or "",
        )
        signed = _signed(row, params) if row["tokens_text"] is not None else None
        if row["content_hash"] is not None:
            fingerprinted = (int(row["word_count"]), row["content_hash"])
    return PageOutcome(
        entry_id=row["entry_id"],
        fetched=bool(row["fetched"]),
        result=result,
        size=row["bytes"] or 0,
        doc=doc,
        extract_error=row["extract_error"],
        signed=signed,
        short_keys=frozenset(row["short_keys"] or ()),
        applied_chrome=frozenset(row["applied_chrome"] or ()),
        fingerprint=fingerprinted,
    )


def _signed(row: dict, params: DetectionParams) -> Signed:
    tokens = Tokens(
        text=row["tokens_text"],
        words=tuple(row["words"]),
        paragraph_starts=tuple(row["paragraph_starts"]),
        paragraph_offsets=tuple(row["paragraph_offsets"]),
        outlet=row["outlet_id"] or "",
    )
    flat = row["passages"]
    passages = tuple(Passage(*flat[i : i + 5]) for i in range(0, len(flat), 5))
    sigs = np.frombuffer(row["passage_signatures"], np.uint32)
    return Signed(
        tokens,
        np.frombuffer(row["shingles"], np.uint32),
        np.frombuffer(row["signature"], np.uint32),
        passages,
        sigs.reshape(-1, params.num_perm)
        if sigs.size
        else np.empty((0, params.num_perm), np.uint32),
    )
