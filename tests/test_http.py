"""The polite fetcher against real local HTTP servers (127.0.0.1 only)."""

from __future__ import annotations

import gzip
import io
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3

from ingest.config import FetchSettings
from ingest.http import Fetcher, FetchRequest, FetchResult, all_transient_failures
from simulator import OutletSimulator, load_corpus

ETAG = '"v1"'
LAST_MODIFIED = "Wed, 01 Jan 2025 00:00:00 GMT"


@dataclass
class ServerState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    hits: Counter[str] = field(default_factory=Counter)
    headers: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def headers_for(self, path: str) -> list[dict[str, str]]:
        with self.lock:
            return [h for p, h in self.headers if p == path]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ServerState

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client hung up on purpose (timeouts, size cap); nothing to report


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _reply(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        length: bool = True,
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _chunked(self, chunks: list[bytes]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        state = self.server.state
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        with state.lock:
            state.hits[path] += 1
            hits = state.hits[path]
            state.headers.append((path, {k.lower(): v for k, v in self.headers.items()}))
        try:
            self._route(path, query, hits)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _route(self, path: str, query: dict[str, list[str]], hits: int) -> None:
        segments = path.strip("/").split("/")
        head = segments[0]
        if head == "ok":
            self._reply(
                200,
                b"hello world",
                {
                    "Content-Type": "text/plain; charset=utf-8",
                    "ETag": ETAG,
                    "Last-Modified": LAST_MODIFIED,
                },
            )
        elif head == "conditional":
            if self.headers.get("If-None-Match") == ETAG or self.headers.get("If-Modified-Since"):
                self._reply(304, length=False)
            else:
                self._reply(
                    200,
                    b"<rss/>",
                    {
                        "Content-Type": "application/rss+xml",
                        "ETag": ETAG,
                        "Last-Modified": LAST_MODIFIED,
                    },
                )
        elif head == "status":
            self._reply(int(segments[1]), b"error page body", {"Content-Type": "text/html"})
        elif head == "flaky":  # the first n requests fail with 503
            if hits <= int(segments[1]):
                self._reply(503, b"busy", {"Retry-After": "1"})
            else:
                self._reply(200, b"recovered")
        elif head == "sleep":
            time.sleep(float(segments[1]))
            self._reply(200, b"late")
        elif head == "slow":
            with self.server.state.lock:
                self.server.state.in_flight += 1
                self.server.state.max_in_flight = max(
                    self.server.state.max_in_flight, self.server.state.in_flight
                )
            try:
                time.sleep(float(query["d"][0]))
            finally:
                with self.server.state.lock:
                    self.server.state.in_flight -= 1
            self._reply(200, f"slow {segments[1]}".encode())
        elif head == "bytes":  # /bytes/<n> with a Content-Length
            self._reply(200, b"x" * int(segments[1]), {"Content-Type": "text/plain"})
        elif head == "chunked":  # /chunked/<count>/<size>, no Content-Length
            self._chunked([b"y" * int(segments[2])] * int(segments[1]))
        elif head == "gzip-bomb":
            body = gzip.compress(b"\0" * 50_000)
            self._reply(200, body, {"Content-Encoding": "gzip", "Content-Type": "text/plain"})
        elif head == "redirect":  # /redirect/<n>: n hops to /redirect/0
            left = int(segments[1])
            if left == 0:
                self._reply(200, b"arrived", {"Content-Type": "text/plain"})
            else:
                self._reply(302, headers={"Location": f"/redirect/{left - 1}"})
        elif head == "relative-redirect":
            self._reply(301, headers={"Location": "../ok"})
        elif head == "loop":
            self._reply(302, headers={"Location": "/loop"})
        elif head == "to-ftp":
            self._reply(302, headers={"Location": "ftp://127.0.0.1/pub/feed.xml"})
        elif head == "to-file":
            self._reply(307, headers={"Location": "file:///etc/passwd"})
        elif head == "no-location":
            self._reply(302)
        else:
            self._reply(404, b"not found")


@dataclass
class LocalServer:
    base_url: str
    state: ServerState

    def url(self, path: str) -> str:
        return self.base_url + path


@pytest.fixture
def server() -> Iterator[LocalServer]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.state = ServerState()
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    host, port = httpd.server_address[:2]
    try:
        yield LocalServer(f"http://{host}:{port}", httpd.state)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def settings(**changes: Any) -> FetchSettings:
    base: dict[str, Any] = {
        "allow_private_hosts": True,
        "timeout_seconds": 2.0,
        "transient_retries": 0,
        "user_agent": "narratrace-tests/1.0 (+local)",
    }
    base.update(changes)
    return FetchSettings(**base)


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(settings()) as client:
        yield client


# ----------------------------------------------------------------------------- basics


def test_ok_response_body_and_validators(server: LocalServer, fetcher: Fetcher) -> None:
    result = fetcher.fetch(FetchRequest(server.url("/ok")))
    assert result.ok and not result.not_modified
    assert result.error is None and result.error_kind is None
    assert result.status == 200
    assert result.body == b"hello world"
    assert result.url == result.final_url == server.url("/ok")
    assert result.content_type == "text/plain; charset=utf-8"
    assert result.etag == ETAG
    assert result.last_modified == LAST_MODIFIED
    assert result.headers["etag"] == ETAG  # header names lower-cased
    assert result.attempts == 1
    assert result.elapsed_ms > 0


def test_user_agent_and_accept_headers(server: LocalServer) -> None:
    with Fetcher(settings(user_agent="custom-agent/2.5")) as fetcher:
        fetcher.fetch(FetchRequest(server.url("/ok")), accept="application/rss+xml")
    (headers,) = server.state.headers_for("/ok")
    assert headers["user-agent"] == "custom-agent/2.5"
    assert headers["accept"] == "application/rss+xml"
    assert "if-none-match" not in headers and "if-modified-since" not in headers


def test_conditional_request_yields_not_modified(server: LocalServer, fetcher: Fetcher) -> None:
    first = fetcher.fetch(FetchRequest(server.url("/conditional")))
    assert first.status == 200 and first.etag == ETAG and first.last_modified == LAST_MODIFIED

    second = fetcher.fetch(
        FetchRequest(server.url("/conditional"), etag=first.etag, last_modified=first.last_modified)
    )
    sent = server.state.headers_for("/conditional")[-1]
    assert sent["if-none-match"] == ETAG
    assert sent["if-modified-since"] == LAST_MODIFIED
    assert second.status == 304
    assert second.not_modified
    assert not second.ok
    assert second.error is None and second.error_kind is None
    assert second.body == b""
    # the 304 carried no validators: the stored ones are kept for the next poll
    assert second.etag == ETAG
    assert second.last_modified == LAST_MODIFIED


def test_only_last_modified_sends_if_modified_since(server: LocalServer, fetcher: Fetcher) -> None:
    result = fetcher.fetch(FetchRequest(server.url("/conditional"), last_modified=LAST_MODIFIED))
    sent = server.state.headers_for("/conditional")[-1]
    assert "if-none-match" not in sent
    assert sent["if-modified-since"] == LAST_MODIFIED
    assert result.not_modified
    assert result.etag is None
    assert result.last_modified == LAST_MODIFIED


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 451])
def test_client_errors_are_terminal(server: LocalServer, fetcher: Fetcher, status: int) -> None:
    result = fetcher.fetch(FetchRequest(server.url(f"/status/{status}")))
    assert result.status == status
    assert result.error == f"HTTP {status}"
    assert result.error_kind == "terminal"
    assert not result.ok
    assert result.body == b""  # an error page is not content
    assert server.state.hits[f"/status/{status}"] == 1  # terminal errors are not retried


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_server_errors_are_transient(server: LocalServer, fetcher: Fetcher, status: int) -> None:
    result = fetcher.fetch(FetchRequest(server.url(f"/status/{status}")))
    assert result.status == status
    assert result.error == f"HTTP {status}"
    assert result.error_kind == "transient"
    assert result.body == b""


@pytest.mark.parametrize("retries", [0, 2])
def test_transient_errors_are_retried(server: LocalServer, retries: int) -> None:
    with Fetcher(settings(transient_retries=retries)) as fetcher:
        result = fetcher.fetch(FetchRequest(server.url("/status/503")))
    assert result.error_kind == "transient"
    assert result.attempts == retries + 1
    assert server.state.hits["/status/503"] == retries + 1


def test_retry_can_recover(server: LocalServer) -> None:
    with Fetcher(settings(transient_retries=1)) as fetcher:
        result = fetcher.fetch(FetchRequest(server.url("/flaky/1")))
    assert result.ok
    assert result.body == b"recovered"
    assert result.attempts == 2
    assert server.state.hits["/flaky/1"] == 2


def test_timeout_is_transient(server: LocalServer) -> None:
    started = time.perf_counter()
    with Fetcher(settings(timeout_seconds=0.3)) as fetcher:
        result = fetcher.fetch(FetchRequest(server.url("/sleep/1.0")))
    assert time.perf_counter() - started < 0.9
    assert result.status is None
    assert result.error_kind == "transient"
    assert result.error is not None and "timeout" in result.error.lower()
    assert not result.ok


def test_connection_refused_is_transient(fetcher: Fetcher) -> None:
    probe = _Server(("127.0.0.1", 0), _Handler)
    port = probe.server_address[1]
    probe.server_close()  # nothing listens on this port now
    result = fetcher.fetch(FetchRequest(f"http://127.0.0.1:{port}/feed"))
    assert result.status is None
    assert result.error_kind == "transient"
    assert result.error is not None and result.error.startswith("network error")


# ----------------------------------------------------------------------------- size cap


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/bytes/5000", id="content-length"),
        pytest.param("/chunked/10/500", id="chunked"),
        pytest.param("/gzip-bomb", id="decompressed-size"),
    ],
)
def test_response_larger_than_max_bytes_is_terminal(server: LocalServer, path: str) -> None:
    with Fetcher(settings(max_bytes=1000)) as fetcher:
        result = fetcher.fetch(FetchRequest(server.url(path)))
    assert result.error == "response larger than 1000 bytes"
    assert result.error_kind == "terminal"
    assert result.body == b""
    assert not result.ok


@pytest.mark.parametrize(
    ("path", "size"), [("/bytes/1000", 1000), ("/chunked/4/250", 1000), ("/chunked/3/100", 300)]
)
def test_responses_up_to_max_bytes_are_kept(server: LocalServer, path: str, size: int) -> None:
    with Fetcher(settings(max_bytes=1000)) as fetcher:
        result = fetcher.fetch(FetchRequest(server.url(path)))
    assert result.ok
    assert len(result.body) == size


# ----------------------------------------------------------------------------- redirects


def test_redirects_are_followed(server: LocalServer, fetcher: Fetcher) -> None:
    result = fetcher.fetch(FetchRequest(server.url("/redirect/3")))
    assert result.ok
    assert result.body == b"arrived"
    assert result.url == server.url("/redirect/3")
    assert result.final_url == server.url("/redirect/0")
    assert [server.state.hits[f"/redirect/{n}"] for n in range(4)] == [1, 1, 1, 1]


def test_relative_redirect(server: LocalServer, fetcher: Fetcher) -> None:
    result = fetcher.fetch(FetchRequest(server.url("/relative-redirect/x")))
    assert result.ok
    assert result.final_url == server.url("/ok")


def test_exactly_max_redirects_is_allowed(server: LocalServer) -> None:
    with Fetcher(settings(max_redirects=2)) as fetcher:
        assert fetcher.fetch(FetchRequest(server.url("/redirect/2"))).ok
        too_many = fetcher.fetch(FetchRequest(server.url("/redirect/3")))
    assert too_many.error == "more than 2 redirects"
    assert too_many.error_kind == "terminal"
    assert server.state.hits["/redirect/0"] == 1  # only the allowed chain got there


def test_redirect_loop_is_terminal(server: LocalServer) -> None:
    with Fetcher(settings(max_redirects=4)) as fetcher:
        result = fetcher.fetch(FetchRequest(server.url("/loop")))
    assert result.error == "more than 4 redirects"
    assert result.error_kind == "terminal"
    assert server.state.hits["/loop"] == 5  # the first request plus four hops


@pytest.mark.parametrize(
    ("path", "target"),
    [("/to-ftp", "ftp://127.0.0.1/pub/feed.xml"), ("/to-file", "file:///etc/passwd")],
)
def test_redirect_to_non_http_scheme_is_terminal(
    server: LocalServer, fetcher: Fetcher, path: str, target: str
) -> None:
    result = fetcher.fetch(FetchRequest(server.url(path)))
    assert result.error_kind == "terminal"
    assert result.error is not None and "non-http" in result.error
    assert result.final_url == target
    assert result.status is None


def test_redirect_without_location_is_terminal(server: LocalServer, fetcher: Fetcher) -> None:
    result = fetcher.fetch(FetchRequest(server.url("/no-location")))
    assert result.status == 302
    assert result.error == "redirect without Location"
    assert result.error_kind == "terminal"


class _PublicSite(urllib3.PoolManager):
    """Stands in for a public web site (the internet is not reachable here): every request is
    answered with a redirect to the cloud metadata address, and no socket is opened."""

    def __init__(self, seen: list[str]) -> None:
        super().__init__()
        self.seen = seen

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        self.seen.append(url)
        return urllib3.HTTPResponse(
            body=io.BytesIO(b""),
            status=302,
            headers={"Location": "http://169.254.169.254/latest/"},
            preload_content=False,
        )


def test_redirect_to_private_address_is_refused_hop_by_hop() -> None:
    seen: list[str] = []
    with Fetcher(settings(allow_private_hosts=False), pool=_PublicSite(seen)) as fetcher:
        result = fetcher.fetch(FetchRequest("http://93.184.216.34/feed.xml"))
    assert seen == ["http://93.184.216.34/feed.xml"]
    assert result.error_kind == "terminal"
    assert result.error is not None and "169.254.169.254" in result.error
    assert result.final_url == "http://169.254.169.254/latest/"


# ----------------------------------------------------------------------------- address policy


@pytest.mark.parametrize("path", ["/ok", "/redirect/1"])
def test_private_host_refused_before_any_request(server: LocalServer, path: str) -> None:
    with Fetcher(settings(allow_private_hosts=False)) as fetcher:
        result = fetcher.fetch(FetchRequest(server.url(path)))
    assert result.status is None
    assert result.error_kind == "terminal"
    assert result.error is not None and "refusing 127.0.0.1" in result.error
    assert sum(server.state.hits.values()) == 0


def test_non_http_url_is_refused(fetcher: Fetcher) -> None:
    result = fetcher.fetch(FetchRequest("file:///etc/hostname"))
    assert result.error_kind == "terminal"
    assert result.error is not None and "non-http" in result.error


# ----------------------------------------------------------------------------- batches


def test_fetch_many_honours_per_host_concurrency_and_keeps_order(server: LocalServer) -> None:
    requests = [FetchRequest(server.url(f"/slow/{i}?d={0.04 * (8 - i):.2f}")) for i in range(8)]
    with Fetcher(settings(per_host_concurrency=2, total_concurrency=16)) as fetcher:
        results = fetcher.fetch_many(requests)
    assert [r.url for r in results] == [r.url for r in requests]
    assert [r.body for r in results] == [f"slow {i}".encode() for i in range(8)]
    assert all(r.ok for r in results)
    assert 1 < server.state.max_in_flight <= 2


def test_fetch_many_mixes_outcomes_in_request_order(server: LocalServer, fetcher: Fetcher) -> None:
    paths = ["/status/404", "/ok", "/status/503", "/redirect/1"]
    results = fetcher.fetch_many([FetchRequest(server.url(p)) for p in paths])
    assert [r.url for r in results] == [server.url(p) for p in paths]
    assert [r.status for r in results] == [404, 200, 503, 200]
    assert [r.error_kind for r in results] == ["terminal", None, "transient", None]


def test_fetch_many_of_nothing(fetcher: Fetcher) -> None:
    assert fetcher.fetch_many([]) == []


def _result(kind: str | None, status: int | None = 200) -> FetchResult:
    error = None if kind is None else "failed"
    return FetchResult(
        "http://x.example/", "http://x.example/", status, error=error, error_kind=kind
    )


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        ([], False),
        (["transient"], True),
        (["transient", "transient", "transient"], True),
        (["transient", "terminal"], False),
        (["transient", None], False),
        ([None], False),
        (["terminal"], False),
    ],
)
def test_all_transient_failures(kinds: list[str | None], expected: bool) -> None:
    results = [_result(kind) for kind in kinds]
    assert all_transient_failures(results) is expected
    assert all_transient_failures(iter(results)) is expected  # any iterable, read once


# ----------------------------------------------------------------------------- simulator

CORPUS_OUTLETS = """\
start = "2025-01-10T00:00:00+00:00"

[[outlets]]
slug = "alpha-news"
name = "Alpha News"
country = "IN"
kind = "news-portal"
feed_format = "rss"
feed_content = "summary"
chrome = "portal"
language = "en"
"""

CORPUS_ARTICLE = """\
+++
outlet = "alpha-news"
day = 0
hour = 6
title = "Bridge to reopen"
narrative = ""
edit = "unrelated"
{fault}+++
The district administration said on Friday that the bridge would reopen next week.

A second paragraph about the repairs.
"""


def test_against_the_outlet_simulator(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    (root / "articles" / "alpha-news").mkdir(parents=True)
    (root / "outlets.toml").write_text(CORPUS_OUTLETS, encoding="utf-8")
    for slug, fault in [("bridge", ""), ("gone", 'fault = "404"\n'), ("report", 'fault = "pdf"\n')]:
        text = CORPUS_ARTICLE.format(fault=fault)
        (root / "articles" / "alpha-news" / f"{slug}.txt").write_text(text, encoding="utf-8")
    corpus = load_corpus(root)
    with OutletSimulator(corpus) as sim, Fetcher(settings()) as fetcher:
        sim.release_all()
        feed_url = sim.feed_urls()["alpha-news"]
        feed = fetcher.fetch(FetchRequest(feed_url), accept="application/rss+xml")
        assert feed.ok and b"<rss" in feed.body
        assert feed.etag and feed.last_modified

        again = fetcher.fetch(FetchRequest(feed_url, feed.etag, feed.last_modified))
        assert again.not_modified and again.etag == feed.etag

        pages = fetcher.fetch_many(
            [
                FetchRequest(sim.article_url(corpus.article("alpha-news", s)))
                for s in ("bridge", "gone", "report")
            ]
        )
        assert pages[0].ok and b"reopen next week" in pages[0].body
        assert pages[0].content_type.startswith("text/html")
        assert pages[1].status == 404 and pages[1].error_kind == "terminal"
        assert pages[2].ok and pages[2].content_type == "application/pdf"
        assert sim.stats.not_modified == 1
