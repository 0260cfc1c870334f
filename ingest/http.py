"""Polite HTTP: the only module that opens sockets (with urllib3).

Conditional GET (ETag / Last-Modified), timeouts, a response size cap, redirects checked hop by
hop against the address policy, one user agent, per-host and total concurrency limits, and a
bounded retry for transient faults. Every call returns a FetchResult; nothing raises for a bad
URL or a bad server, so one broken page never stops a batch.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.exceptions import (
    DecodeError,
    HTTPError,
    LocationParseError,
    NewConnectionError,
    ProtocolError,
    TimeoutError,
)

from ingest.config import FetchSettings
from ingest.urls import UnsafeURLError, check_fetchable

log = logging.getLogger(__name__)

TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504, 522, 524})


@dataclass(frozen=True)
class FetchRequest:
    url: str
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class FetchResult:
    url: str  # as requested
    final_url: str  # after redirects
    status: int | None  # HTTP status; None when no response arrived
    body: bytes = b""
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None  # None on success (2xx or 304)
    error_kind: str | None = None  # "transient" (worth retrying later) or "terminal"
    attempts: int = 1
    elapsed_ms: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None  # seconds the server asked to wait (Retry-After)

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class TooLarge(Exception):
    pass


KEPT_HOSTS = 512  # hosts whose connections stay open for reuse (least recently used go)
READ_CHUNK = 64 * 1024


class Fetcher:
    """A shared urllib3 connection pool (one per host: a request never scans the others) plus
    the politeness rules; use as a context manager. `pool` replaces the pool (tests that
    stand in for the internet)."""

    def __init__(self, settings: FetchSettings, pool: urllib3.PoolManager | None = None):
        self.settings = settings
        self._headers = {"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"}
        self._pool = pool or urllib3.PoolManager(
            num_pools=KEPT_HOSTS,
            maxsize=settings.per_host_concurrency,
            timeout=urllib3.Timeout(
                connect=settings.timeout_seconds, read=settings.timeout_seconds
            ),
            retries=False,
        )
        self._host_locks: dict[str, threading.BoundedSemaphore] = defaultdict(
            lambda: threading.BoundedSemaphore(settings.per_host_concurrency)
        )
        self._host_guard = threading.Lock()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.clear()

    def _host_slot(self, url: str) -> threading.BoundedSemaphore:
        host = (urlsplit(url).hostname or "").lower()
        with self._host_guard:
            return self._host_locks[host]

    def fetch(self, request: FetchRequest, accept: str = "*/*") -> FetchResult:
        attempts = 0
        started = time.perf_counter()
        while True:
            attempts += 1
            result = self._fetch_once(request, accept)
            if result.error_kind != "transient" or attempts > self.settings.transient_retries:
                break
            time.sleep(min(0.5 * attempts, 2.0))
        elapsed = (time.perf_counter() - started) * 1000
        return _with(result, attempts=attempts, elapsed_ms=elapsed)

    def fetch_many(
        self, requests: Sequence[FetchRequest], accept: str = "*/*"
    ) -> list[FetchResult]:
        """Fetch every request concurrently; results in request order."""
        results: list[FetchResult | None] = [None] * len(requests)
        for index, result in self.fetch_iter(requests, accept):
            results[index] = result
        return [r for r in results if r is not None]

    def fetch_iter(
        self, requests: Sequence[FetchRequest], accept: str = "*/*", buffer: int = 0
    ) -> Iterator[tuple[int, FetchResult]]:
        """Fetch concurrently and yield (request index, result) as each completes, so the
        caller can work on early pages while later ones are in flight. Requests are started
        host by host in turn, so a run of one outlet's pages never holds every worker waiting
        for that host's slots. With `buffer`, at most that many results wait for the caller;
        fetching pauses until it catches up (memory stays flat however many pages there are)."""
        if not requests:
            return
        workers = max(1, min(self.settings.total_concurrency, len(requests)))
        done: queue.Queue[tuple[int, FetchResult]] = queue.Queue(maxsize=max(0, buffer))
        stopping = threading.Event()

        def work(index: int) -> None:
            if stopping.is_set():
                return
            request = requests[index]
            try:
                result = self.fetch(request, accept)
            except Exception as exc:  # never lose a slot of the batch
                log.warning("fetching %s failed: %s", request.url, exc)
                result = FetchResult(
                    request.url,
                    request.url,
                    None,
                    error=f"fetch failed: {type(exc).__name__}: {exc}",
                    error_kind="terminal",
                )
            while not stopping.is_set():
                try:
                    done.put((index, result), timeout=0.1)
                    return
                except queue.Full:
                    continue

        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch")
        try:
            for index in _interleaved_by_host(requests):
                pool.submit(work, index)
            for _ in range(len(requests)):
                yield done.get()
        finally:
            stopping.set()
            pool.shutdown(wait=True, cancel_futures=True)

    def _fetch_once(self, request: FetchRequest, accept: str) -> FetchResult:
        url = request.url
        headers = {"Accept": accept}
        if request.etag:
            headers["If-None-Match"] = request.etag
        if request.last_modified:
            headers["If-Modified-Since"] = request.last_modified
        for _hop in range(self.settings.max_redirects + 1):
            try:
                check_fetchable(url, allow_private_hosts=self.settings.allow_private_hosts)
            except UnsafeURLError as exc:
                return FetchResult(request.url, url, None, error=str(exc), error_kind="terminal")
            try:
                with self._host_slot(url):
                    response, body = self._get(url, headers)
            except TooLarge:
                return FetchResult(
                    request.url,
                    url,
                    None,
                    error=f"response larger than {self.settings.max_bytes} bytes",
                    error_kind="terminal",
                )
            except (LocationParseError, DecodeError) as exc:  # an invalid URL, a broken body
                return FetchResult(
                    request.url, url, None, error=f"bad request: {exc}", error_kind="terminal"
                )
            except (ProtocolError, HTTPError, OSError) as exc:
                # a refused connection is a subclass of the connect timeout: not a timeout
                timeout = isinstance(exc, TimeoutError) and not isinstance(exc, NewConnectionError)
                return FetchResult(
                    request.url,
                    url,
                    None,
                    error=f"timeout: {type(exc).__name__}"
                    if timeout
                    else f"network error: {type(exc).__name__}: {exc}",
                    error_kind="transient",
                )
            if response.status in (301, 302, 303, 307, 308):
                location = response.headers.get("location")
                if not location:
                    return FetchResult(
                        request.url,
                        url,
                        response.status,
                        error="redirect without Location",
                        error_kind="terminal",
                    )
                url = urljoin(url, location)
                continue
            return self._result(request, url, response, body)
        return FetchResult(
            request.url,
            url,
            None,
            error=f"more than {self.settings.max_redirects} redirects",
            error_kind="terminal",
        )

    def _get(self, url: str, headers: dict[str, str]) -> tuple[urllib3.BaseHTTPResponse, bytes]:
        response = self._pool.request(
            "GET",
            url,
            headers={**self._headers, **headers},
            preload_content=False,
            redirect=False,
            retries=False,
        )
        reusable = False
        try:
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.settings.max_bytes:
                raise TooLarge
            chunks: list[bytes] = []
            size = 0
            for chunk in response.stream(READ_CHUNK, decode_content=True):  # decompressed
                size += len(chunk)
                if size > self.settings.max_bytes:
                    raise TooLarge
                chunks.append(chunk)
            reusable = True
            return response, b"".join(chunks)
        finally:
            if reusable:
                response.release_conn()  # read to the end: the connection serves the next one
            else:
                response.close()  # a body left unread: the connection cannot be reused
                response.release_conn()

    def _result(
        self, request: FetchRequest, url: str, response: urllib3.BaseHTTPResponse, body: bytes
    ) -> FetchResult:
        status = response.status
        error = None
        kind = None
        if status == 304:
            pass
        elif status in TRANSIENT_STATUS:
            error, kind = f"HTTP {status}", "transient"
        elif status >= 400 or status < 200:
            error, kind = f"HTTP {status}", "terminal"
        return FetchResult(
            url=request.url,
            final_url=url,
            status=status,
            body=body if error is None else b"",
            content_type=response.headers.get("content-type", ""),
            etag=response.headers.get("etag") or (request.etag if status == 304 else None),
            last_modified=response.headers.get("last-modified")
            or (request.last_modified if status == 304 else None),
            error=error,
            error_kind=kind,
            headers={k.lower(): v for k, v in response.headers.items()},
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date; 0 for a date in
    the past); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _interleaved_by_host(requests: Sequence[FetchRequest]) -> list[int]:
    """Request indexes ordered round-robin over hosts (each host's own order kept)."""
    by_host: dict[str, list[int]] = defaultdict(list)
    for index, request in enumerate(requests):
        by_host[(urlsplit(request.url).hostname or "").lower()].append(index)
    queues = list(by_host.values())
    order: list[int] = []
    for turn in range(max(len(q) for q in queues)):
        order.extend(q[turn] for q in queues if turn < len(q))
    return order


def _with(result: FetchResult, **changes: object) -> FetchResult:
    from dataclasses import replace

    return replace(result, **changes)  # type: ignore[arg-type]


def all_transient_failures(results: Iterable[FetchResult]) -> bool:
    """True when there were results and every one failed for a transient reason: the signature
    of a network outage rather than of broken outlets."""
    results = list(results)
    return bool(results) and all(r.error_kind == "transient" for r in results)
