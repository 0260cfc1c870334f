"""Article text and metadata from page bytes, with trafilatura. Never takes a URL to fetch."""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import re
import signal
import sys
import types
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import trafilatura
from trafilatura.deduplication import LRUCache
from trafilatura.settings import Document
from trafilatura.xml import xmltotxt

log = logging.getLogger(__name__)

HTML_TYPES = ("text/html", "application/xhtml+xml")
_LANG = re.compile(rb"<html[^>]*?\slang\s*=\s*[\"']?([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]+)?", re.I)


class ExtractionError(ValueError):
    """The bytes hold no extractable article; the message says why."""


@dataclass(frozen=True)
class Extracted:
    title: str
    text: str  # paragraphs separated by a blank line
    published_at: datetime | None
    author: str
    sitename: str
    language: str


def is_html(content_type: str, body: bytes) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind:
        return kind in HTML_TYPES
    head = body[:512].removeprefix(b"\xef\xbb\xbf").lstrip().lower()  # UTF-8 BOM
    return head.startswith((b"<!doctype html", b"<html"))


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def extract_article(body: bytes, url: str, content_type: str = "") -> Extracted:
    """Raise ExtractionError for non-HTML bodies and pages with no main text."""
    if not is_html(content_type, body):
        raise ExtractionError(f"not an HTML page ({content_type or 'unknown type'})")
    # bare_extraction: the Document itself, without the JSON round trip and the Simhash
    # fingerprint `extract` adds (a fifth of the time on a light page); the text is the one
    # `extract(output_format="json")` gives, from the same body
    doc = trafilatura.bare_extraction(
        body,
        url=url,
        with_metadata=True,
        favor_precision=True,
        include_comments=False,
        include_tables=False,
        # A fresh cache per page: trafilatura's default cache is process-wide, so a story
        # syndicated verbatim (or a page fetched again) would be dropped after a few copies.
        deduplicate=LRUCache(maxsize=4096),
    )
    if not isinstance(doc, Document) or doc.body is None:
        raise ExtractionError("no main text found in the page")
    text = _paragraphs(xmltotxt(doc.body, include_formatting=False) or "")
    if not text:
        raise ExtractionError("no main text found in the page")
    language = doc.language or ""
    if not language:
        match = _LANG.search(body[:4096])
        language = match.group(1).decode("ascii").lower() if match else ""
    return Extracted(
        title=(doc.title or "").strip(),
        text=text,
        published_at=_parse_date(doc.date),
        author=(doc.author or "").strip(),
        sitename=(doc.sitename or "").strip(),
        language=language,
    )


def _paragraphs(text: str) -> str:
    lines = [line.strip() for line in text.splitlines()]
    return "\n\n".join(line for line in lines if line)


_POOL: ProcessPoolExecutor | None = None
_POOL_SIZE = 0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent: int) -> None:
    """Pool initializer: a worker ends when the process that started it ends, however it
    ends (SIGKILL included), instead of living on as an orphan. On Linux the kernel sends
    the worker SIGKILL (PR_SET_PDEATHSIG); it does so when the *thread* that started the
    worker ends, so the pool starts all its workers at once, from the thread that creates
    it (see `_pool`). A parent gone before this runs is caught by its pid. Ctrl-C is left
    to the parent, which stops the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
                log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        except (OSError, AttributeError) as exc:
            log.warning("cannot tie the extraction worker to its parent: %s", exc)
    if os.getppid() != parent:
        os._exit(1)


@contextmanager
def _main_module_left_behind() -> Iterator[None]:
    """While workers are spawned, `__main__` is an empty module. A spawned process imports
    its parent's main module again before it runs anything (multiprocessing's rule, so that
    functions defined there can be unpickled); here that module is the `narratrace` script
    (which imports the CLI and Prefect: 2 s a worker), `prefect.engine` under `serve`, or a
    bench script. Workers run only functions of this package, so they skip it and are ready
    after importing what a batch needs (about 0.7 s)."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _pool(processes: int) -> ProcessPoolExecutor:
    global _POOL, _POOL_SIZE
    # a pool whose worker died (e.g. killed for memory) refuses work: start a new one
    broken = _POOL is not None and bool(getattr(_POOL, "_broken", False))
    if _POOL is None or _POOL_SIZE != processes or broken:
        if _POOL is not None:
            _POOL.shutdown(wait=not broken)
        _POOL = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_die_with_parent,
            initargs=(os.getpid(),),
        )
        _POOL_SIZE = processes
        # every worker starts now, from this thread (a spawn pool would otherwise start them
        # on demand, from whichever thread submits; see _die_with_parent)
        with _main_module_left_behind():
            for _ in range(processes):
                _POOL.submit(_ready)
    return _POOL


def worker_pool(processes: int) -> ProcessPoolExecutor:
    """The extraction workers' pool (started if need be); `shutdown_pool` stops it. They run
    whole batches of pages too (`ingest.batch.run_batch`)."""
    return _pool(processes)


def _ready() -> bool:
    """Run first by every worker: what a batch needs is imported (trafilatura with this
    module, the fetcher, tokenising and MinHash with ingest.batch) before the first batch."""
    import ingest.batch  # noqa: F401  (ingest.batch imports this module: not at the top)

    return True


def start_pool(processes: int) -> None:
    """Start the extraction workers now, without waiting for them: each takes a second or
    two to import trafilatura, which then overlaps whatever the caller does next (polling
    feeds) instead of delaying the first pages. Call it from a thread that outlives the
    pool's use (the cycle's own)."""
    if processes > 1:
        _pool(processes)


def shutdown_pool(terminate: bool = False) -> None:
    """Stop the extraction workers: after their current pages, or at once (`terminate`,
    after a failure or a signal: the pages they hold are fetched again next cycle)."""
    global _POOL
    pool, _POOL = _POOL, None
    if pool is None:
        return
    if terminate:
        processes = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)
    else:
        pool.shutdown(wait=True)
