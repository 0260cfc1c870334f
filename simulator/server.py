"""A real HTTP server on 127.0.0.1 that plays every outlet of a :class:`DemoCorpus`.

The server keeps a simulated clock: only articles published at or before
:attr:`OutletSimulator.now` appear in feeds and are served; later ones answer 404 until the
clock reaches them. Feeds and pages send ``ETag`` and ``Last-Modified`` and honour
conditional requests, and the corpus's fault markers turn into the failures a crawler meets
on the web (500s, broken XML, missing pages, pages that never answer in time, PDFs).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from simulator.corpus import DemoArticle, DemoCorpus, DemoOutlet
from simulator.pages import (
    article_path,
    article_url,
    feed_path,
    feed_url,
    homepage_url,
    http_date,
    render_article_page,
    render_feed,
    render_index,
    render_not_found,
    render_outlet_home,
    render_pdf,
    render_robots,
)

logger = logging.getLogger(__name__)

RELATED_STORIES = 4
FEED_CACHE_CONTROL = "max-age=300"
PAGE_CACHE_CONTROL = "public, max-age=600"

HTML = "text/html; charset=utf-8"
CONTENT_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
}


class SimulatorStats:
    """Thread-safe request counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = 0
        self._not_modified = 0
        self._tracked = 0
        self._paths: Counter[str] = Counter()
        self._statuses: Counter[int] = Counter()

    def _count_request(self, path: str, tracked: bool) -> None:
        with self._lock:
            self._requests += 1
            self._paths[path] += 1
            if tracked:
                self._tracked += 1

    def _count_status(self, status: int) -> None:
        with self._lock:
            self._statuses[status] += 1
            if status == 304:
                self._not_modified += 1

    @property
    def requests(self) -> int:
        """Requests received (any method, any outcome)."""
        with self._lock:
            return self._requests

    @property
    def not_modified(self) -> int:
        """304 answers to conditional requests."""
        with self._lock:
            return self._not_modified

    @property
    def tracked_requests(self) -> int:
        """Requests whose URL carried a query string (e.g. un-stripped tracking parameters)."""
        with self._lock:
            return self._tracked

    @property
    def path_hits(self) -> dict[str, int]:
        """Requests per path (query strings ignored)."""
        with self._lock:
            return dict(self._paths)

    @property
    def status_counts(self) -> dict[int, int]:
        with self._lock:
            return dict(self._statuses)

    def hits(self, path_or_url: str) -> int:
        """Requests for one path; a full URL is reduced to its path."""
        path = urlsplit(path_or_url).path or "/"
        with self._lock:
            return self._paths.get(path, 0)

    def reset(self) -> None:
        with self._lock:
            self._requests = self._not_modified = self._tracked = 0
            self._paths.clear()
            self._statuses.clear()

    def __repr__(self) -> str:
        return (
            f"SimulatorStats(requests={self.requests}, not_modified={self.not_modified}, "
            f"paths={len(self.path_hits)})"
        )


@dataclass
class _Response:
    status: int
    content_type: str = HTML
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    last_modified: datetime | None = None  # with an ETag: conditional requests are honoured
    cache_control: str = ""
    delay: float = 0.0  # seconds to stall before answering
    etag: str = ""  # precomputed ETag of body ("" = computed when sent)


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _is_not_modified(headers: Message, etag: str, last_modified: datetime | None) -> bool:
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:  # takes precedence over If-Modified-Since (RFC 9110)
        tags = [tag.strip() for tag in if_none_match.split(",")]
        return "*" in tags or any(tag.removeprefix("W/") == etag for tag in tags)
    if_modified_since = headers.get("If-Modified-Since")
    if if_modified_since and last_modified is not None:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError, IndexError):
            return False
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return last_modified <= since
    return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], simulator: OutletSimulator) -> None:
        self.simulator = simulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # One daemon thread per connection, named after the server so it can be told apart.
        with self._connections_lock:
            self._connections.add(request)
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"outlet-simulator-{self.server_address[1]}-request",
            daemon=True,
        )
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Unblock handler threads waiting on idle keep-alive connections."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "OutletSimulator/1.0"
    timeout = 30  # idle keep-alive connections are closed after this many seconds
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _Server

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(head=True)

    def _serve(self, *, head: bool) -> None:
        simulator = self.server.simulator
        parts = urlsplit(self.path)
        path = parts.path or "/"
        simulator.stats._count_request(path, bool(parts.query))
        try:
            response = simulator._route(path)
        except Exception:
            logger.exception("simulator failed to answer %s", self.path)
            response = _Response(500, "text/plain; charset=utf-8", b"Internal Server Error\n")
        if response.delay > 0 and simulator._stopping.wait(response.delay):
            self.close_connection = True  # shutting down: never answer
            return
        try:
            self._send(response, head=head)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting
            self.close_connection = True

    def _send(self, response: _Response, *, head: bool) -> None:
        stats = self.server.simulator.stats
        headers = dict(response.headers)
        status = response.status
        body = response.body
        if status == 200 and response.last_modified is not None:
            etag = response.etag or _etag(body)
            headers["ETag"] = etag
            headers["Last-Modified"] = http_date(response.last_modified)
            if _is_not_modified(self.headers, etag, response.last_modified):
                status = 304
        if response.cache_control:
            headers["Cache-Control"] = response.cache_control
        self.send_response(status)
        if status == 304:
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            stats._count_status(status)
            return
        headers["Content-Type"] = response.content_type
        headers["Content-Length"] = str(len(body))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)
        stats._count_status(status)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (overridden name)
        logger.debug("%s - %s", self.address_string(), format % args)


class OutletSimulator:
    """Serve a corpus's outlets over HTTP with a simulated clock.

    >>> with OutletSimulator(corpus) as sim:          # doctest: +SKIP
    ...     sim.set_now(corpus.start + timedelta(days=3))
    ...     httpx.get(sim.feed_urls()["frontier-dispatch"])
    """

    def __init__(
        self,
        corpus: DemoCorpus,
        host: str = "127.0.0.1",
        port: int = 0,
        timeout_delay: float = 5.0,
    ) -> None:
        self.corpus = corpus
        self.host = host
        self.port = port
        self.timeout_delay = timeout_delay
        self.stats = SimulatorStats()
        self._now = corpus.start
        self._clock_lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._base_url = ""
        self._outlets = {outlet.slug: outlet for outlet in corpus.outlets}
        self._articles = {article_path(a): a for a in corpus.articles}
        self._feeds = {feed_path(o): o for o in corpus.outlets}
        # pages are pure functions of (outlet, article, base URL): render each once
        self._pages: dict[str, tuple[bytes, str]] = {}  # path -> (page, its ETag)
        self._pages_lock = threading.Lock()
        self._related: dict[tuple[str, str], tuple[DemoArticle, ...]] = {}
        for outlet in corpus.outlets:
            own = corpus.articles_of(outlet.slug)
            for index, article in enumerate(own):
                earlier = own[max(0, index - RELATED_STORIES) : index]
                self._related[(outlet.slug, article.slug)] = tuple(reversed(earlier))

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> OutletSimulator:
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        self._stopping.clear()
        server = _Server((self.host, self.port), self)
        self._server = server
        host, port = server.socket.getsockname()[:2]
        self._base_url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"outlet-simulator-{port}",
            daemon=True,
        )
        self._thread.start()
        logger.debug("outlet simulator serving %s", self._base_url)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes handlers stalling on a "timeout" article
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None
        logger.debug("outlet simulator at %s stopped", self._base_url)

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> OutletSimulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- clock -----------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        with self._clock_lock:
            return self._now

    def set_now(self, when: datetime) -> None:
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError(f"set_now needs a timezone-aware datetime, got {when!r}")
        with self._clock_lock:
            self._now = when.astimezone(UTC)

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by ``delta``; returns the new time."""
        with self._clock_lock:
            self._now = self._now + delta
            return self._now

    def set_day(self, day: float) -> None:
        """Set the clock to ``day`` corpus days after the corpus start."""
        self.set_now(self.corpus.start + timedelta(days=day))

    def release_all(self) -> None:
        """Set the clock to the last article's publication time (if later than now)."""
        with self._clock_lock:
            self._now = max(self._now, self.corpus.end)

    def released(self) -> tuple[DemoArticle, ...]:
        return self.corpus.released(self.now)

    # -- URLs and config ---------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if not self._base_url:
            raise RuntimeError("the simulator has not been started")
        return self._base_url

    def feed_urls(self) -> dict[str, str]:
        return {o.slug: feed_url(self.base_url, o) for o in self.corpus.outlets}

    def feed_url(self, outlet: DemoOutlet | str) -> str:
        if isinstance(outlet, str):
            outlet = self._outlets[outlet]
        return feed_url(self.base_url, outlet)

    def article_url(self, article: DemoArticle) -> str:
        return article_url(self.base_url, article)

    def outlets_toml(self, *, extra: str = "") -> str:
        """A narratrace outlets config pointing at this simulator.

        ``extra`` is TOML placed before the ``[[outlets]]`` tables, so it may hold
        top-level keys or tables such as ``[fetch]``.
        """
        lines = [
            f"# Outlets served by the outlet simulator at {self.base_url}",
            "allow_private_hosts = true",
        ]
        extra = extra.strip()
        if "per_host_rate" not in extra:  # every outlet here shares one host
            unlimited = "per_host_rate = 0.0  # the simulated outlets share one host"
            if re.search(r"^\[fetch\][ \t]*$", extra, re.M):
                extra = re.sub(r"^\[fetch\][ \t]*$", "[fetch]\n" + unlimited, extra, 1, re.M)
            else:
                extra = f"{extra}\n\n[fetch]\n{unlimited}".strip()
        lines += ["", extra]
        for outlet in self.corpus.outlets:
            lines += [
                "",
                "[[outlets]]",
                f"name = {_toml_string(outlet.name)}",
                f"slug = {_toml_string(outlet.slug)}",
                f"country = {_toml_string(outlet.country)}",
                f"kind = {_toml_string(outlet.kind)}",
                f"homepage = {_toml_string(homepage_url(self.base_url, outlet))}",
                f"feeds = [{_toml_string(feed_url(self.base_url, outlet))}]",
            ]
        return "\n".join(lines) + "\n"

    # -- routing -----------------------------------------------------------------------

    def _route(self, path: str) -> _Response:
        base = self.base_url
        if path == "/":
            return _Response(200, HTML, render_index(self.corpus))
        if path == "/robots.txt":
            return _Response(200, "text/plain; charset=utf-8", render_robots())
        segments = path.strip("/").split("/")
        outlet = self._outlets.get(segments[0])
        if outlet is None:
            return _Response(404, HTML, render_not_found(None, base))
        if path == f"/{outlet.slug}":
            location = f"/{outlet.slug}/"
            return _Response(301, HTML, b"", headers={"Location": location})
        now = self.now
        if path == f"/{outlet.slug}/":
            released = self.corpus.released(now)
            return _Response(
                200,
                HTML,
                render_outlet_home(outlet, released, base),
                cache_control="max-age=60",
            )
        if self._feeds.get(path) is outlet:
            return self._feed(outlet, self.corpus.released(now))
        article = self._articles.get(path)
        if article is None or article.published_at > now or article.fault == "404":
            return _Response(404, HTML, render_not_found(outlet, base))
        return self._article(outlet, article)

    def _feed(self, outlet: DemoOutlet, released: tuple[DemoArticle, ...]) -> _Response:
        if outlet.feed_fault == "server-error":
            return _Response(
                500,
                HTML,
                b"<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head>"
                b"<body><h1>Internal Server Error</h1></body></html>\n",
            )
        own = [a for a in released if a.outlet == outlet.slug]
        last_modified = max((a.published_at for a in own), default=self.corpus.start)
        body = render_feed(
            outlet,
            own,
            self.base_url,
            malformed=outlet.feed_fault == "malformed",
            updated_fallback=self.corpus.start,
        )
        return _Response(
            200,
            CONTENT_TYPES[outlet.feed_format],
            body,
            last_modified=last_modified,
            cache_control=FEED_CACHE_CONTROL,
        )

    def _article(self, outlet: DemoOutlet, article: DemoArticle) -> _Response:
        delay = self.timeout_delay if article.fault == "timeout" else 0.0
        etag = ""
        if article.fault == "pdf":
            body = render_pdf(article)
            content_type = "application/pdf"
        else:
            path = article_path(article)
            with self._pages_lock:
                body, etag = self._pages.get(path, (b"", ""))
            if not body:
                body = self._render_article(outlet, article)
                etag = _etag(body)
                with self._pages_lock:
                    self._pages[path] = (body, etag)
            content_type = HTML
        return _Response(
            200,
            content_type,
            body,
            last_modified=article.published_at,
            cache_control=PAGE_CACHE_CONTROL,
            delay=delay,
            etag=etag,
        )

    def _render_article(self, outlet: DemoOutlet, article: DemoArticle) -> bytes:
        """An article page's bytes (rendered once per simulator run, then served from
        memory); a subclass may wrap pages in heavier furniture."""
        related = self._related.get((outlet.slug, article.slug), ())
        return render_article_page(outlet, article, self.base_url, related=list(related))


def _toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes, \uXXXX included).
    return json.dumps(value, ensure_ascii=False)
