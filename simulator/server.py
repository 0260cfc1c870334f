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
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from simulator.corpus import DemoArticle, DemoCorpus, DemoOutlet
from simulator.faults import (
    INTERNAL_ADDRESS,
    PUBLIC_PREFIX,
    REBIND_NAME,
    Expected,
    FaultOutlet,
    FaultSet,
)
from simulator.network import SimulatedNetwork
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
    tracked_url,
)
from simulator.response import HTML
from simulator.response import Response as _Response

logger = logging.getLogger(__name__)

RELATED_STORIES = 4
FEED_CACHE_CONTROL = "max-age=300"
PAGE_CACHE_CONTROL = "public, max-age=600"

MAIN_NAME = "news.sim.example"  # the main host's name in public-name mode
MAIN_PUBLIC = PUBLIC_PREFIX + "1"
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
        self._addresses: Counter[str] = Counter()
        self._sent: Counter[str] = Counter()

    def _count_request(self, path: str, tracked: bool, address: str = "") -> None:
        with self._lock:
            self._requests += 1
            self._paths[path] += 1
            self._addresses[address] += 1
            if tracked:
                self._tracked += 1

    def _count_sent(self, path: str, size: int) -> None:
        with self._lock:
            self._sent[path] += size

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
    def address_hits(self) -> dict[str, int]:
        """Requests per listening address (the main one, each fault outlet's, the internal
        service's)."""
        with self._lock:
            return dict(self._addresses)

    @property
    def bytes_sent(self) -> dict[str, int]:
        """Body bytes written per path (counted as they go out, so a cut transfer shows how
        far it got)."""
        with self._lock:
            return dict(self._sent)

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
            self._addresses.clear()
            self._sent.clear()

    def __repr__(self) -> str:
        return (
            f"SimulatorStats(requests={self.requests}, not_modified={self.not_modified}, "
            f"paths={len(self.path_hits)})"
        )


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

    def __init__(
        self,
        address: tuple[str, int],
        simulator: OutletSimulator,
        role: FaultOutlet | str = "main",  # "main", "internal" or a fault outlet
    ) -> None:
        self.simulator = simulator
        self.role = role
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

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionResetError | BrokenPipeError | TimeoutError):
            logger.debug("client %s hung up: %s", client_address, error)  # a crawler gave up
            return
        super().handle_error(request, client_address)

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
        address = str(self.server.server_address[0])
        simulator.stats._count_request(path, bool(parts.query), address)
        try:
            response = simulator._route_for(self.server.role, path)
        except Exception:
            logger.exception("simulator failed to answer %s", self.path)
            response = _Response(500, "text/plain; charset=utf-8", b"Internal Server Error\n")
        if response.delay > 0 and simulator._stopping.wait(response.delay):
            self.close_connection = True  # shutting down: never answer
            return
        try:
            self._send(response, path, head=head)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting
            self.close_connection = True

    def _send(self, response: _Response, path: str, *, head: bool) -> None:
        simulator = self.server.simulator
        stats = simulator.stats
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
        chunked = response.stream is not None and response.length is None
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Content-Length"] = str(
                response.length if response.stream is not None else len(body)
            )
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        stats._count_status(status)
        if head:
            return
        if response.stream is not None:
            for chunk in response.stream():
                if simulator._stopping.is_set():
                    break
                framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk
                self.wfile.write(framed)
                stats._count_sent(path, len(chunk))
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            return
        if response.drip > 0:
            self.wfile.flush()
            for index in range(len(body)):
                if simulator._stopping.wait(response.drip):
                    self.close_connection = True
                    return
                self.wfile.write(body[index : index + 1])
                self.wfile.flush()
                stats._count_sent(path, 1)
            return
        if response.truncate is not None:
            self.wfile.write(body[: response.truncate])
            self.wfile.flush()
            stats._count_sent(path, response.truncate)
            self.close_connection = True  # the rest never comes
            return
        self.wfile.write(body)
        stats._count_sent(path, len(body))

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
        *,
        faults: Sequence[str] = (),
        public_names: bool = False,
        hang_seconds: float = 3600.0,
    ) -> None:
        """`faults` adds fault outlets (names from `simulator.faults.FAULTS`), each on its own
        loopback address on the same port, plus the internal service. With `public_names`,
        URLs name hosts (news.sim.example, <outlet>.faults.example) that only `network()`
        resolves, to public addresses it routes here: a fetcher that refuses private hosts
        can then be tested against the simulator."""
        self.corpus = corpus
        self.host = host
        self.port = port
        self.timeout_delay = timeout_delay
        self.public_names = public_names
        self.stats = SimulatorStats()
        self._now = corpus.start
        self._clock_lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._extra: list[tuple[_Server, threading.Thread]] = []
        self._base_url = ""
        self.faults = FaultSet(tuple(faults), corpus.start, hang_seconds) if faults else None
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
        name = MAIN_NAME if self.public_names else host
        self._base_url = f"http://{name}:{port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"outlet-simulator-{port}",
            daemon=True,
        )
        self._thread.start()
        if self.faults is not None:
            try:
                self._start_faults(port)
            except OSError:
                self.stop()
                raise
        logger.debug("outlet simulator serving %s", self._base_url)
        return self

    def _start_faults(self, port: int) -> None:
        assert self.faults is not None
        self.faults.bind(port, self._base_url, self.public_names)
        roles: list[tuple[str, FaultOutlet | str]] = [(INTERNAL_ADDRESS, "internal")]
        roles += [(o.address, o) for o in self.faults.outlets]
        for address, role in roles:
            server = _Server((address, port), self, role)
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.25},
                name=f"outlet-simulator-{port}-{address}",
                daemon=True,
            )
            thread.start()
            self._extra.append((server, thread))

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes handlers stalling on a "timeout" article
        servers = [(server, thread), *self._extra]
        stoppers = [threading.Thread(target=s.shutdown) for s, _t in servers]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        for each, each_thread in servers:
            each.close_connections()
            each.server_close()
            if each_thread is not None:
                each_thread.join(timeout=5)
        self._server = None
        self._thread = None
        self._extra = []
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
        """A narratrace outlets config pointing at this simulator (fault outlets included).

        ``extra`` is TOML placed before the ``[[outlets]]`` tables, so it may hold
        top-level keys or tables such as ``[fetch]``. Private hosts are allowed unless the
        simulator names its hosts publicly (then a fetcher needs `network()`).
        """
        allow = "false" if self.public_names else "true"
        lines = [
            f"# Outlets served by the outlet simulator at {self.base_url}",
            f"allow_private_hosts = {allow}",
        ]
        extra = extra.strip()
        if "per_host_rate" not in extra:  # every outlet here shares one host
            unlimited = "per_host_rate = 0.0  # the simulated outlets share one host"
            if re.search(r"^\[fetch\][ \t]*$", extra, re.M):
                header = r"^\[fetch\][ \t]*$"
                extra = re.sub(header, "[fetch]\n" + unlimited, extra, count=1, flags=re.M)
            else:
                extra = f"{extra}\n\n[fetch]\n{unlimited}".strip()
        lines += ["", extra]
        tables = [
            (outlet, homepage_url(self.base_url, outlet), [feed_url(self.base_url, outlet)])
            for outlet in self.corpus.outlets
        ]
        if self.faults is not None:
            tables += [
                (o.outlet, o.base_url + "/", list(o.feed_urls())) for o in self.faults.outlets
            ]
        for outlet, homepage, feeds in tables:
            lines += [
                "",
                "[[outlets]]",
                f"name = {_toml_string(outlet.name)}",
                f"slug = {_toml_string(outlet.slug)}",
                f"country = {_toml_string(outlet.country)}",
                f"kind = {_toml_string(outlet.kind)}",
                f"homepage = {_toml_string(homepage)}",
                f"feeds = [{', '.join(_toml_string(f) for f in feeds)}]",
            ]
        return "\n".join(lines) + "\n"

    def network(self) -> SimulatedNetwork:
        """DNS and routing for the names of a public-name simulator (see `__init__`)."""
        if not self.public_names:
            raise RuntimeError("network() needs a simulator started with public_names=True")
        port = int(urlsplit(self.base_url).port or 0)
        network = SimulatedNetwork()
        network.add_name(MAIN_NAME, [MAIN_PUBLIC])
        network.add_route(MAIN_PUBLIC, port, self.host, port)
        if self.faults is not None:
            for outlet in self.faults.outlets:
                network.add_name(outlet.host_name, [outlet.public_address])
                network.add_route(outlet.public_address, port, outlet.address, port)
            network.add_name("internal.faults.example", [INTERNAL_ADDRESS])
            rebind = next((o for o in self.faults.outlets if o.fault == "page-internal"), None)
            if rebind is not None:  # public first (the checked answer), the internal one after
                network.add_name(REBIND_NAME, [rebind.public_address], [INTERNAL_ADDRESS])
        return network

    def manifest(self) -> list[Expected]:
        """What a correct crawler records for every feed, and every article link released so
        far: the corpus's outlets and the fault outlets (`simulator.faults.Expected`)."""
        out: list[Expected] = []
        feed_outcomes = {
            "": ("ok", "not-modified"),
            "malformed": ("salvaged", "not-modified"),
            "server-error": ("error",),
        }
        for outlet in self.corpus.outlets:
            out.append(
                Expected(
                    "feed",
                    feed_url(self.base_url, outlet),
                    outlet.slug,
                    outlet.feed_fault,
                    feed_outcomes[outlet.feed_fault],
                    ("HTTP 500",) if outlet.feed_fault == "server-error" else (),
                )
            )
            if outlet.feed_fault == "server-error":
                continue  # its articles are never seen
            for article in self.corpus.articles_of(outlet.slug):
                if article.published_at > self.now:
                    continue
                link = tracked_url(self.article_url(article), outlet.slug)
                if article.fault:
                    expected = Expected(
                        "article", link, outlet.slug, article.fault, ("error", "fallback")
                    )
                else:
                    expected = Expected("article", link, outlet.slug, "", ("ok",), (), True)
                out.append(expected)
        if self.faults is not None:
            out += self.faults.manifest()
        return out

    # -- routing -----------------------------------------------------------------------

    def _route_for(self, role: FaultOutlet | str, path: str) -> _Response:
        if self.faults is not None:
            if role == "internal":
                return self.faults.route_internal(path)
            if isinstance(role, FaultOutlet):
                return self.faults.route(role, path)
            found = self.faults.route_main(path)
            if found is not None:
                return found
        return self._route(path)

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
