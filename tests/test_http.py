"""The polite fetcher against real local HTTP servers (127.0.0.1 only)."""

from __future__ import annotations

import gzip
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from ingest.config import FetchSettings
from ingest.http import (
    FetchCancelled,
    Fetcher,
    FetchRequest,
    FetchResult,
    HostHolds,
    all_transient_failures,
)
from simulator import OutletSimulator, load_corpus
from simulator.network import PUBLIC_ADDRESS, SimulatedNetwork

ETAG = '"v1"'
LAST_MODIFIED = "Wed, 01 Jan 2025 00:00:00 GMT"


@dataclass
class ServerState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    hits: Counter[str] = field(default_factory=Counter)
    headers: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    sent: Counter[str] = field(default_factory=Counter)  # body bytes written per path
    stopping: threading.Event = field(default_factory=threading.Event)  # wakes hanging handlers

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

    def _drip(self, path: str, size: int, interval: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self.wfile.flush()
        for _ in range(size):
            if self.server.state.stopping.wait(interval):
                return
            self.wfile.write(b"d")
            self.wfile.flush()
            with self.server.state.lock:
                self.server.state.sent[path] += 1

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        state = self.server.state
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query, keep_blank_values=True)
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
        elif head == "hang":  # never answers (until the server stops)
            self.server.state.stopping.wait(60)
        elif head == "drip":  # /drip/<n>[/<any>]?i=<seconds>: n body bytes, one per interval
            self._drip(path, int(segments[1]), float(query["i"][0]))
        elif head == "slow-headers":  # the status line, then a header byte per interval
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            for _ in range(200):
                if self.server.state.stopping.wait(float(query["i"][0])):
                    return
                self.wfile.write(b"X")
                self.wfile.flush()
        elif head == "too-many":  # /too-many?s=<status>&ra=<Retry-After value>
            status = int(query.get("s", ["429"])[0])
            self._reply(status, b"slow down", {"Retry-After": query["ra"][0]})
        elif head == "to-internal":  # to the service on loopback, same port as the URL's
            port = self.headers["Host"].rsplit(":", 1)[1]
            self._reply(302, headers={"Location": f"http://127.0.0.1:{port}/secret"})
        elif head == "to-internal-name":
            port = self.headers["Host"].rsplit(":", 1)[1]
            self._reply(302, headers={"Location": f"http://internal.example:{port}/secret"})
        elif head == "to-metadata":
            self._reply(302, headers={"Location": "http://169.254.169.254/latest/"})
        elif head == "to-public":  # /to-public/<n>: n absolute hops on the same public name
            host = self.headers["Host"]
            left = int(segments[1])
            target = f"/to-public/{left - 1}" if left > 1 else "/redirect/0"
            self._reply(302, headers={"Location": f"http://{host}{target}"})
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
    httpd, thread, local = _start_server()
    try:
        yield local
    finally:
        _stop_server(httpd, thread)


def _start_server() -> tuple[_Server, threading.Thread, LocalServer]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.state = ServerState()
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    host, port = httpd.server_address[:2]
    return httpd, thread, LocalServer(f"http://{host}:{port}", httpd.state)


def _stop_server(httpd: _Server, thread: threading.Thread) -> None:
    httpd.state.stopping.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def settings(**changes: Any) -> FetchSettings:
    base: dict[str, Any] = {
        "allow_private_hosts": True,
        "timeout_seconds": 2.0,
        "transient_retries": 0,
        "user_agent": "narratrace-tests/1.0 (+local)",
        "per_host_rate": 0.0,
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


@pytest.fixture
def internal() -> Iterator[LocalServer]:
    """A service on this machine that a fetch with allow_private_hosts = false must never
    reach (think of a cloud metadata endpoint or an admin page)."""
    httpd, thread, local = _start_server()
    try:
        yield local
    finally:
        _stop_server(httpd, thread)


@dataclass
class Internet:
    """The stand-in internet of a test: `site` (a local server) plays a public web site at
    PUBLIC:<internal port>, so that a URL naming the internal service's port reaches the site
    when routed through a public address and the internal service only when dialled on
    loopback."""

    network: SimulatedNetwork
    site: LocalServer
    internal: LocalServer

    @property
    def port(self) -> int:
        return int(urlsplit(self.internal.base_url).port or 0)

    def url(self, host: str, path: str = "/ok") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
def internet(server: LocalServer, internal: LocalServer) -> Internet:
    network = SimulatedNetwork()
    port = int(urlsplit(internal.base_url).port or 0)
    network.add_route(PUBLIC_ADDRESS, port, "127.0.0.1", int(urlsplit(server.base_url).port or 0))
    network.add_name("www.public.example", [PUBLIC_ADDRESS])
    network.add_name("internal.example", ["127.0.0.1"])
    network.add_name("mixed.example", [PUBLIC_ADDRESS, "127.0.0.1"])
    network.add_name("metadata.example", ["169.254.169.254"])
    network.add_name("cgnat.example", ["100.64.0.7"])
    network.add_name("v6.example", ["::ffff:127.0.0.1"])
    network.add_name("rebind.example", [PUBLIC_ADDRESS], ["127.0.0.1"])
    return Internet(network, server, internal)


def public_fetcher(internet: Internet, **changes: Any) -> Fetcher:
    return Fetcher(
        settings(allow_private_hosts=False, **changes),
        network=internet.network,
        holds=HostHolds(),
    )


def test_a_public_name_is_fetched_through_its_checked_address(internet: Internet) -> None:
    with public_fetcher(internet) as fetcher:
        result = fetcher.fetch(FetchRequest(internet.url("www.public.example")))
    assert result.ok and result.body == b"hello world"
    assert result.address == PUBLIC_ADDRESS
    (sent,) = internet.site.state.headers_for("/ok")
    assert sent["host"] == f"www.public.example:{internet.port}"  # the name, not the address
    assert sum(internet.internal.state.hits.values()) == 0


# every form a URL can take to reach the internal service on this machine
INTERNAL_FORMS = [
    pytest.param("http://127.0.0.1:{port}/secret", "non-public address 127.0.0.1", id="loopback"),
    pytest.param("http://localhost:{port}/secret", "loopback host localhost", id="localhost"),
    pytest.param("http://app.localhost:{port}/secret", "loopback host", id="dot-localhost"),
    pytest.param("http://0.0.0.0:{port}/secret", "non-public address 0.0.0.0", id="zero"),
    pytest.param("http://0.1.2.3:{port}/secret", "non-public address", id="this-network"),
    pytest.param("http://internal.example:{port}/secret", "127.0.0.1", id="name-to-loopback"),
    pytest.param("http://mixed.example:{port}/secret", "127.0.0.1", id="one-answer-private"),
    pytest.param("http://metadata.example:{port}/", "169.254.169.254", id="name-to-link-local"),
    pytest.param("http://cgnat.example:{port}/", "100.64.0.7", id="name-to-cgnat"),
    pytest.param("http://100.100.100.200:{port}/", "non-public", id="cgnat-metadata"),
    pytest.param("http://v6.example:{port}/", "::ffff:7f00:1", id="name-to-mapped"),
    pytest.param("http://[::1]:{port}/secret", "non-public address ::1", id="ipv6-loopback"),
    pytest.param("http://[::ffff:127.0.0.1]:{port}/", "non-public", id="ipv4-mapped"),
    pytest.param("http://[::ffff:7f00:1]:{port}/", "non-public", id="ipv4-mapped-hex"),
    pytest.param("http://[::127.0.0.1]:{port}/", "non-public", id="ipv4-compatible"),
    pytest.param("http://[64:ff9b::7f00:1]:{port}/", "non-public", id="nat64"),
    pytest.param("http://[2002:7f00:1::]:{port}/", "non-public", id="6to4-of-loopback"),
    pytest.param("http://[fe80::1]:{port}/", "non-public", id="ipv6-link-local"),
    pytest.param("http://[fd00::1]:{port}/", "non-public", id="ipv6-unique-local"),
    pytest.param("http://127.1:{port}/secret", "ambiguous numeric host", id="short-ipv4"),
    pytest.param("http://2130706433:{port}/secret", "ambiguous numeric host", id="integer-ipv4"),
    pytest.param("http://0x7f000001:{port}/secret", "ambiguous numeric host", id="hex-ipv4"),
    pytest.param("http://0177.0.0.1:{port}/secret", "ambiguous numeric host", id="octal-ipv4"),
    pytest.param("http://%31%32%37.0.0.1:{port}/", "not a plain name", id="percent-host"),
    pytest.param(
        "http://127.0.0.1:{port}\\@www.public.example/secret", "backslash", id="backslash-at"
    ),
    pytest.param("http://www.public.example@127.0.0.1:{port}/secret", "user info", id="userinfo"),
    pytest.param("http://user:pw@www.public.example:{port}/", "user info", id="credentials"),
    pytest.param("http://[::1%25lo]:{port}/", "not a plain name", id="zone-id"),
    pytest.param("http://nowhere.example:{port}/", "does not resolve", id="unresolvable"),
    pytest.param("http://www.public.example:{port}/to-internal", "127.0.0.1", id="redirect"),
    pytest.param(
        "http://www.public.example:{port}/to-internal-name", "127.0.0.1", id="redirect-by-name"
    ),
    pytest.param(
        "http://www.public.example:{port}/to-metadata", "169.254.169.254", id="redirect-metadata"
    ),
]


@pytest.mark.parametrize(("template", "reason"), INTERNAL_FORMS)
def test_internal_service_is_never_reached(internet: Internet, template: str, reason: str) -> None:
    url = template.format(port=internet.port)
    with public_fetcher(internet) as fetcher:
        result = fetcher.fetch(FetchRequest(url))
    assert result.status is None and not result.ok
    assert result.error is not None and reason in result.error
    assert result.error_kind == "terminal"
    assert sum(internet.internal.state.hits.values()) == 0


def test_backslash_userinfo_bypass_is_refused_without_any_stand_in(internal: LocalServer) -> None:
    """The parser differential that let a cycle store a loopback page: the check read the host
    as allowed.example, the HTTP client connected to 127.0.0.1."""
    port = urlsplit(internal.base_url).port
    with Fetcher(settings(allow_private_hosts=False)) as fetcher:
        result = fetcher.fetch(FetchRequest(f"http://127.0.0.1:{port}\\@allowed.example/ok"))
    assert not result.ok and result.error_kind == "terminal"
    assert sum(internal.state.hits.values()) == 0


def test_dns_rebinding_connects_to_the_checked_answer(internet: Internet) -> None:
    """The first answer (public) is checked and connected to; a second lookup would answer
    127.0.0.1, where the internal service listens on the same port."""
    url = internet.url("rebind.example")
    with public_fetcher(internet) as fetcher:
        first = fetcher.fetch(FetchRequest(url))
        assert internet.network.lookups["rebind.example"] == 1  # one lookup per request
        second = fetcher.fetch(FetchRequest(url))  # the name now answers 127.0.0.1
    assert first.ok and first.body == b"hello world" and first.address == PUBLIC_ADDRESS
    assert internet.site.state.hits["/ok"] == 1
    assert second.error is not None and "non-public address 127.0.0.1" in second.error
    assert sum(internet.internal.state.hits.values()) == 0


def test_redirect_hops_are_resolved_and_checked_again(internet: Internet) -> None:
    with public_fetcher(internet) as fetcher:
        result = fetcher.fetch(FetchRequest(internet.url("www.public.example", "/to-public/2")))
    assert result.ok and result.body == b"arrived"
    assert result.final_url == internet.url("www.public.example", "/redirect/0")
    assert internet.network.lookups["www.public.example"] == 3  # every hop looked up


def test_private_hosts_allowed_still_refuse_parser_tricks(internal: LocalServer) -> None:
    port = urlsplit(internal.base_url).port
    with Fetcher(settings(allow_private_hosts=True)) as fetcher:
        for url in (
            f"http://127.0.0.1:{port}\\@x.example/ok",
            f"http://x@127.0.0.1:{port}/ok",
            f"http://2130706433:{port}/ok",
        ):
            assert fetcher.fetch(FetchRequest(url)).error_kind == "terminal"
        assert fetcher.fetch(FetchRequest(f"http://127.0.0.1:{port}/ok")).ok  # allowed
    assert internal.state.hits == Counter({"/ok": 1})


def _certificates(tmp_path: Path, name: str) -> tuple[Path, Path, Path]:
    """A test CA (its certificate file) and a server certificate and key for `name`."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def build(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("narratrace test CA", ca_key, "narratrace test CA", ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build(name, key, "narratrace test CA", ca_key, False)
    paths = tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def test_tls_is_pinned_to_the_address_and_verified_against_the_name(
    tmp_path: Path, internet: Internet, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ssl

    ca, cert, key = _certificates(tmp_path, "secure.example")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # the only trusted CA for this test
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment]
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.state = ServerState()
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        tls_port = httpd.server_address[1]
        internet.network.add_route(PUBLIC_ADDRESS, 8443, "127.0.0.1", tls_port)
        internet.network.add_name("secure.example", [PUBLIC_ADDRESS])
        internet.network.add_name("impostor.example", [PUBLIC_ADDRESS])
        with public_fetcher(internet) as fetcher:
            good = fetcher.fetch(FetchRequest("https://secure.example:8443/ok"))
            wrong = fetcher.fetch(FetchRequest("https://impostor.example:8443/ok"))
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
    assert good.ok and good.body == b"hello world" and good.address == PUBLIC_ADDRESS
    assert names[0] == "secure.example"  # SNI carries the name, not the address
    assert httpd.state.headers_for("/ok")[0]["host"] == "secure.example:8443"
    assert not wrong.ok and wrong.error is not None
    assert "'impostor.example' doesn't match" in wrong.error  # checked against the name
    assert httpd.state.hits["/ok"] == 1  # the impostor never got a request through


# ----------------------------------------------------------------------------- deadlines


def test_deadline_cuts_a_body_sent_one_byte_at_a_time(server: LocalServer) -> None:
    """Each byte arrives well within the socket timeout; the whole body would take 60 s."""
    with Fetcher(settings(timeout_seconds=5.0, page_deadline_seconds=1.0)) as fetcher:
        result = fetcher.fetch(FetchRequest(server.url("/drip/300?i=0.2")))
    assert result.error == "deadline exceeded: no complete answer within 1 s"
    assert result.error_kind == "transient" and result.body == b""
    # the connection was cut: the server managed to write about deadline / interval bytes
    assert 0 < server.state.sent["/drip/300"] <= 10


def test_deadline_cuts_headers_sent_one_byte_at_a_time(server: LocalServer) -> None:
    with Fetcher(settings(timeout_seconds=5.0, page_deadline_seconds=1.0)) as fetcher:
        result = fetcher.fetch(FetchRequest(server.url("/slow-headers?i=0.2")))
    assert result.status is None
    assert result.error is not None and result.error.startswith("deadline exceeded")


def test_feed_deadline_is_given_per_call(server: LocalServer) -> None:
    with Fetcher(settings(timeout_seconds=5.0, page_deadline_seconds=30.0)) as fetcher:
        result = fetcher.fetch(FetchRequest(server.url("/drip/300?i=0.2")), deadline=0.6)
    assert result.error == "deadline exceeded: no complete answer within 0.6 s"
    assert server.state.sent["/drip/300"] <= 6


def test_deadline_bounds_retries_and_backoff(server: LocalServer) -> None:
    """Ten retries are allowed, but waits of 0.4 s, 0.8 s, ... leave room for two or three
    attempts within one second (without backoff all eleven would fit)."""
    with Fetcher(
        settings(transient_retries=10, retry_backoff_seconds=0.4, page_deadline_seconds=1.0)
    ) as fetcher:
        result = fetcher.fetch(FetchRequest(server.url("/status/503")))
    assert result.error == "HTTP 503" and result.error_kind == "transient"
    assert 2 <= server.state.hits["/status/503"] <= 3
    assert result.attempts == server.state.hits["/status/503"]


def test_a_hanging_host_costs_at_most_its_budget(server: LocalServer) -> None:
    other_httpd, other_thread, other = _start_server()
    requests = [FetchRequest(server.url(f"/hang/{i}")) for i in range(12)]
    requests += [FetchRequest(other.url(f"/ok/{i}")) for i in range(3)]
    try:
        with Fetcher(
            settings(
                per_host_concurrency=2,
                page_deadline_seconds=0.5,
                host_budget_seconds=1.0,
                transient_retries=2,
            )
        ) as fetcher:
            results = fetcher.fetch_many(requests)
    finally:
        _stop_server(other_httpd, other_thread)
    hung = sum(v for k, v in server.state.hits.items() if k.startswith("/hang/"))
    # budget / deadline = 2 requests spend the budget (3 when the time charged, from the slot on,
    # falls short of the deadlines), plus the one the other slot had running; a loaded machine
    # can start one more per slot before the budget is seen spent. Without a budget: 36.
    assert 2 <= hung <= 6
    errors = [r.error or "" for r in results[:12]]
    # every request that reached the server ran out of time there; one may run out of time on
    # the way (before the server saw it) when the machine is loaded
    deadlines = sum(e.startswith("deadline exceeded") for e in errors)
    assert hung <= deadlines <= 6
    spent = [e for e in errors if "has used its budget of 1 s" in e]
    assert len(spent) == 12 - deadlines
    assert all(r.error_kind == "transient" for r in results[:12])
    assert all(r.ok for r in results[12:])  # another host is not charged


# ----------------------------------------------------------------------------- politeness


def test_retry_after_seconds_is_reported_and_honoured(server: LocalServer) -> None:
    holds = HostHolds()
    with Fetcher(settings(transient_retries=3), holds=holds) as fetcher:
        first = fetcher.fetch(FetchRequest(server.url("/too-many?ra=120")))
        again = fetcher.fetch(FetchRequest(server.url("/ok")))
    assert first.status == 429 and first.retry_after == 120.0
    assert first.error == "HTTP 429 (Retry-After 120 s)"
    assert first.attempts == 1  # a wait beyond max_retry_after_wait_seconds is not taken in line
    assert again.status is None and again.error_kind == "transient"
    assert again.error is not None and "asked to wait 120 s more (Retry-After)" in again.error
    assert again.retry_after is not None and 119 < again.retry_after <= 120
    assert server.state.hits["/ok"] == 0  # not contacted in the window
    with Fetcher(settings(), holds=holds) as later:  # a later cycle in the same process
        assert later.fetch(FetchRequest(server.url("/ok"))).error_kind == "transient"
    assert server.state.hits["/ok"] == 0


def test_retry_after_http_date(server: LocalServer) -> None:
    from email.utils import format_datetime
    from urllib.parse import quote

    when = format_datetime(datetime.now(UTC) + timedelta(seconds=300), usegmt=True)
    with Fetcher(settings(), holds=HostHolds()) as fetcher:
        result = fetcher.fetch(FetchRequest(server.url(f"/too-many?s=503&ra={quote(when)}")))
    assert result.status == 503
    assert result.retry_after is not None and 290 <= result.retry_after <= 300


@pytest.mark.parametrize("value", ["soon", "-5", ""])
def test_unreadable_retry_after_is_ignored(server: LocalServer, value: str) -> None:
    with Fetcher(settings(), holds=HostHolds()) as fetcher:
        first = fetcher.fetch(FetchRequest(server.url(f"/too-many?ra={value}")))
        second = fetcher.fetch(FetchRequest(server.url("/ok")))
    assert first.status == 429 and first.retry_after is None
    assert second.ok


def test_a_short_retry_after_is_waited_for_in_line(server: LocalServer) -> None:
    """/flaky/1 answers 503 with Retry-After: 1 once, then 200."""
    with Fetcher(
        settings(transient_retries=1, max_retry_after_wait_seconds=2.0), holds=HostHolds()
    ) as fetcher:
        result = fetcher.fetch(FetchRequest(server.url("/flaky/1")))
        after = fetcher.fetch(FetchRequest(server.url("/ok")))
    assert result.ok and result.attempts == 2
    assert after.ok  # the hold had passed


def test_retry_after_holds_only_that_host(server: LocalServer) -> None:
    other_httpd, other_thread, other = _start_server()
    try:
        with Fetcher(settings(), holds=HostHolds()) as fetcher:
            fetcher.fetch(FetchRequest(server.url("/too-many?ra=600")))
            assert fetcher.fetch(FetchRequest(other.url("/ok"))).ok
    finally:
        _stop_server(other_httpd, other_thread)


def test_per_host_rate_spaces_requests(server: LocalServer) -> None:
    """Five requests a second to one host: of twenty requests with a one-second deadline, only
    the ones whose turn comes within that second are sent; the rest fail without a request."""
    requests = [FetchRequest(server.url(f"/ok/{i}")) for i in range(20)]
    with Fetcher(
        settings(
            per_host_rate=5.0,
            per_host_concurrency=20,
            total_concurrency=20,
            page_deadline_seconds=1.0,
        )
    ) as fetcher:
        results = fetcher.fetch_many(requests)
    sent = sum(server.state.hits.values())
    assert 4 <= sent <= 6
    assert 4 <= sum(r.ok for r in results) <= sent  # one sent at the last moment may time out
    assert all(r.ok or (r.error or "").startswith("deadline exceeded") for r in results)
    refused = [r for r in results if r.error and "request rate leaves no turn" in r.error]
    assert len(refused) >= 20 - sent - 1  # one may instead run out of time on its turn


# ----------------------------------------------------------------------------- stopping


def _fetch_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if re.fullmatch(r"fetch[-_]\d+", t.name)]


def _wait_for_hits(state: ServerState, prefix: str, count: int) -> None:
    """Block until the server has received `count` requests under `prefix` (or 10 s)."""
    for _ in range(1000):
        with state.lock:
            if sum(v for k, v in state.hits.items() if k.startswith(prefix)) >= count:
                return
        time.sleep(0.01)
    raise AssertionError(f"the server never saw {count} requests for {prefix}")


def _cut_short(state: ServerState, paths: list[str], size: int) -> bool:
    """True when none of the dripping bodies was sent to the end: the requests in flight
    were cut, not waited out."""
    with state.lock:
        return all(state.sent[path] < size for path in paths)


# each of these bodies takes 5 s to send, one byte every 0.05 s
DRIPS = [f"/drip/100/{i}" for i in range(6)]


def test_closing_the_iterator_ends_every_fetch_thread(server: LocalServer) -> None:
    requests = [FetchRequest(server.url("/ok"))]
    requests += [FetchRequest(server.url(f"{path}?i=0.05")) for path in DRIPS]
    with Fetcher(settings(page_deadline_seconds=60.0, per_host_concurrency=8)) as fetcher:
        batch = fetcher.fetch_iter(requests)
        index, first = next(batch)
        assert (index, first.ok) == (0, True)
        _wait_for_hits(server.state, "/drip/", 6)  # all six in flight
        batch.close()
        assert _fetch_threads() == []
        assert _cut_short(server.state, DRIPS, 100)
    assert [t.name for t in threading.enumerate() if t.name == "fetcher-watchdog"] == []


def test_keyboard_interrupt_in_the_consumer_ends_every_fetch_thread(server: LocalServer) -> None:
    requests = [FetchRequest(server.url("/ok"))]
    requests += [FetchRequest(server.url(f"{path}?i=0.05")) for path in DRIPS]
    with Fetcher(settings(page_deadline_seconds=60.0, per_host_concurrency=8)) as fetcher:
        with pytest.raises(KeyboardInterrupt):
            for _index, _result in fetcher.fetch_iter(requests, buffer=1):
                _wait_for_hits(server.state, "/drip/", 6)
                raise KeyboardInterrupt
        assert _fetch_threads() == []
        assert _cut_short(server.state, DRIPS, 100)


def test_a_cancel_event_stops_a_batch(server: LocalServer) -> None:
    cancel = threading.Event()
    paths = [f"/drip/100/{i}" for i in range(40)]
    requests = [FetchRequest(server.url(f"{path}?i=0.05")) for path in paths]

    def cancel_when_busy() -> None:
        _wait_for_hits(server.state, "/drip/", 8)
        cancel.set()

    helper = threading.Thread(target=cancel_when_busy)
    helper.start()
    with Fetcher(settings(page_deadline_seconds=60.0, per_host_concurrency=8)) as fetcher:
        with pytest.raises(FetchCancelled):
            fetcher.fetch_many(requests, cancel=cancel)
        assert _fetch_threads() == []
        assert _cut_short(server.state, paths, 100)
    helper.join()
    assert sum(server.state.hits.values()) == 8  # nothing was started after the cancel


def test_a_cancel_event_stops_a_single_fetch(server: LocalServer) -> None:
    cancel = threading.Event()
    helper = threading.Thread(
        target=lambda: (_wait_for_hits(server.state, "/hang", 1), cancel.set())
    )
    helper.start()
    with Fetcher(settings(page_deadline_seconds=60.0)) as fetcher:
        result = fetcher.fetch(FetchRequest(server.url("/hang")), cancel=cancel)
    helper.join()
    assert result.error == "cancelled while the request was in flight"
    assert result.error_kind == "transient"


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
