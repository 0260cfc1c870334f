"""Polite HTTP: the only module that opens sockets (with urllib3).

Every URL is parsed once (`ingest.urls.parse_target`), its host resolved once, every address
checked against the address policy, and the connection pinned to a checked address (the Host
header, TLS SNI and certificate check still use the name); each redirect hop is parsed,
resolved and checked again. Conditional GET (ETag / Last-Modified), a response size cap, one
user agent; bounds on time: a socket timeout, a total deadline per request (enforced while the
body streams, by a watchdog that shuts the socket), and a per-host budget for time lost on
failures; politeness per host (host and port): concurrency, a request rate, and `Retry-After`
on 429/503 honoured for the rest of the process. Transient faults are retried within the
deadline with exponential backoff and jitter (tenacity). Every call returns a FetchResult;
nothing raises for a bad URL or a bad server, so one broken page never stops a batch. Batches
(`fetch_iter`, `fetch_many`) stop promptly when their consumer stops or a cancel event is set.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urljoin

import tenacity
import urllib3
from urllib3.exceptions import (
    DecodeError,
    HTTPError,
    InvalidHeader,
    LocationParseError,
    NewConnectionError,
    ProtocolError,
    TimeoutError,
)
from urllib3.util import Retry

from ingest.config import FetchSettings
from ingest.urls import Target, UnsafeURLError, check_addresses, check_name, parse_target

log = logging.getLogger(__name__)

TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504, 522, 524})
RETRY_AFTER_STATUS = frozenset({429, 503})
MAX_HOLD_SECONDS = 6 * 3600  # a Retry-After longer than this is taken as this
TICK = 0.1  # seconds between checks of a cancel event while waiting
SocketTimeout = socket.timeout


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
    retry_after: float | None = None  # seconds the host asked us to wait (Retry-After)
    address: str | None = None  # the checked address the last response came from

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class FetchCancelled(RuntimeError):
    """A batch stopped because the caller's cancel event was set."""


class Network:
    """DNS and routing: the two parts of the internet a test may stand in for. `resolve`
    answers a name's addresses (every one is checked before use); `route` says where a
    connection to a checked address goes (here: to that address)."""

    def resolve(self, host: str, port: int) -> list[str]:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    def route(self, address: str, port: int) -> tuple[str, int]:
        return address, port


class HostHolds:
    """When each host (host:port) may be contacted again, from its Retry-After answers, within
    one Fetcher's life (a cycle). Across cycles and processes the cycle records the answers in
    the store (`host_backoff`) and leaves those hosts alone until then."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}

    def hold(self, key: str, seconds: float) -> None:
        until = time.monotonic() + min(seconds, MAX_HOLD_SECONDS)
        with self._lock:
            self._until[key] = max(until, self._until.get(key, 0.0))

    def remaining(self, key: str) -> float:
        with self._lock:
            until = self._until.get(key)
            if until is None:
                return 0.0
            left = until - time.monotonic()
            if left <= 0:
                del self._until[key]
                return 0.0
            return left


class TooLarge(Exception):
    pass


@dataclass(frozen=True)
class _Failure:
    """Why an exchange brought no response."""

    message: str
    kind: str = "transient"


class _Interrupted(Exception):
    """The request's deadline passed or its batch stopped while it was in flight."""


KEPT_HOSTS = 512  # connection pools kept for reuse (least recently used go)
READ_CHUNK = 64 * 1024


# ----------------------------------------------------------------------------- stopping


class _Stop:
    """Set when a batch stops (its own event) or the caller's cancel event is set."""

    def __init__(self, cancel: threading.Event | None = None) -> None:
        self._own = threading.Event()
        self._cancel = cancel

    def set(self) -> None:
        self._own.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel is not None and self._cancel.is_set()

    def is_set(self) -> bool:
        return self._own.is_set() or self.cancelled

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True (at once) when stopped."""
        end = time.monotonic() + seconds
        while not self.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return False
            self._own.wait(min(left, TICK))
        return True


class _Attempt:
    """One HTTP exchange in flight: its deadline, its batch's stop, and the sockets to shut
    when either comes (shutting a socket wakes whatever thread is blocked on it)."""

    def __init__(self, deadline: float, stop: _Stop) -> None:
        self.deadline = deadline
        self.stop = stop
        self.expired = False
        self.stopped = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._owned: list[socket.socket] = []

    def watch(self, sock: socket.socket, *, duplicate: bool) -> None:
        """Shut `sock` when the attempt is interrupted. A socket about to be wrapped in TLS
        (which takes its descriptor over) is watched through a duplicate descriptor."""
        if duplicate:
            sock = sock.dup()
        with self._lock:
            (self._owned if duplicate else self._sockets).append(sock)
            interrupted = self.expired or self.stopped
        if interrupted:
            _shut(sock)

    def interrupt(self, *, expired: bool) -> None:
        with self._lock:
            if expired:
                self.expired = True
            else:
                self.stopped = True
            sockets = self._sockets + self._owned
        for sock in sockets:
            _shut(sock)

    def done(self) -> None:
        with self._lock:
            owned, self._owned, self._sockets = self._owned, [], []
        for sock in owned:
            sock.close()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed or never connected


class _Watchdog:
    """One thread per Fetcher that interrupts attempts past their deadline or whose batch
    stopped; idle (no wake-ups) while nothing is in flight."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._attempts: set[_Attempt] = set()
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, attempt: _Attempt) -> None:
        with self._cond:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="fetcher-watchdog", daemon=True
                )
                self._thread.start()
            self._attempts.add(attempt)
            self._cond.notify()

    def remove(self, attempt: _Attempt) -> None:
        with self._cond:
            self._attempts.discard(attempt)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5)

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._attempts:
                    self._cond.wait()
                    continue
                now = time.monotonic()
                for attempt in list(self._attempts):
                    if attempt.deadline <= now or attempt.stop.is_set():
                        self._attempts.discard(attempt)
                        attempt.interrupt(expired=attempt.deadline <= now)
                soonest = min((a.deadline for a in self._attempts), default=now + TICK)
                self._cond.wait(max(0.0, min(soonest - now, TICK)))


def _conn(connection: object) -> urllib3.connection.HTTPConnection:
    return connection  # type: ignore[return-value]  # the mixin is always an HTTPConnection


_current = threading.local()  # the attempt of the request this thread is making


class _PinnedConnection:
    """Connects to the pool's host, a checked address, where `network` routes it; the
    socket is watched by the thread's current attempt from before it connects."""

    network: Network
    _dns_host: str
    port: int
    timeout: Any

    def _new_conn(self) -> socket.socket:
        attempt: _Attempt | None = getattr(_current, "attempt", None)
        try:
            address, port = self.network.route(self._dns_host, self.port)
        except OSError as exc:
            raise NewConnectionError(
                _conn(self), f"Failed to establish a new connection: {exc}"
            ) from exc
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if attempt is not None:
                attempt.watch(sock, duplicate=True)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if isinstance(self.timeout, int | float):
                sock.settimeout(self.timeout)
            sock.connect((address, port))
        except SocketTimeout as exc:
            sock.close()
            raise urllib3.exceptions.ConnectTimeoutError(
                self, f"connection to {self._dns_host} timed out"
            ) from exc
        except OSError as exc:
            sock.close()
            raise NewConnectionError(
                _conn(self), f"Failed to establish a new connection: {exc}"
            ) from exc
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        attempt: _Attempt | None = getattr(_current, "attempt", None)
        sock = getattr(self, "sock", None)
        if attempt is not None and sock is not None:  # a kept-alive connection
            attempt.watch(sock, duplicate=False)
        super().request(*args, **kwargs)  # type: ignore[misc]


# ----------------------------------------------------------------------------- per host


class _Host:
    def __init__(self, concurrency: int) -> None:
        self.slots = threading.BoundedSemaphore(concurrency)
        self.next_free = 0.0  # monotonic time of the next request the rate allows
        self.failed_seconds = 0.0  # time spent on attempts that failed transiently


@dataclass
class _Call:
    """The state of one `fetch`: its deadline, stop, and what the retry policy needs."""

    deadline: float  # monotonic
    seconds: float  # the deadline as given
    stop: _Stop
    attempts: int = 0
    final: bool = False  # the last result must not be retried (held, budget spent, ...)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


class _GiveUp(tenacity.stop.stop_base):
    """No retry once the call is stopped, when the wait would pass its deadline, or when the
    host asked for a longer wait than is waited for in line."""

    def __init__(self, call: _Call, longest_wait: float) -> None:
        self.call = call
        self.longest_wait = longest_wait

    def __call__(self, state: tenacity.RetryCallState) -> bool:
        asked = _outcome(state).retry_after or 0.0
        return (
            self.call.stop.is_set()
            or state.upcoming_sleep >= self.call.remaining()
            or asked > self.longest_wait
        )


class Fetcher:
    """Connection pools (one per host and address, least recently used dropped) plus the
    politeness rules and bounds; use as a context manager. `network` stands in for DNS and
    routing (tests); `holds` shares a Retry-After record between fetchers (default: its own)."""

    def __init__(
        self,
        settings: FetchSettings,
        *,
        network: Network | None = None,
        holds: HostHolds | None = None,
    ):
        self.settings = settings
        self._network = network or Network()
        self._holds = holds if holds is not None else HostHolds()
        self._headers = {"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"}
        bound = {"network": self._network}
        self._http_conn = type(
            "PinnedHTTPConnection", (_PinnedConnection, urllib3.connection.HTTPConnection), bound
        )
        self._https_conn = type(
            "PinnedHTTPSConnection",
            (_PinnedConnection, urllib3.connection.HTTPSConnection),
            bound,
        )
        self._pools: OrderedDict[tuple[str, str, str, int], urllib3.HTTPConnectionPool] = (
            OrderedDict()
        )
        self._pools_lock = threading.Lock()
        self._hosts: dict[str, _Host] = {}
        self._hosts_lock = threading.Lock()
        self._watchdog = _Watchdog()

    def carry_over(self, failed_seconds: dict[str, float], holds: dict[str, float]) -> None:
        """Take over what earlier fetchers of the same hosts recorded (a worker's fetcher
        continues the cycle's): seconds each host (host:port) lost to failures, and the
        seconds each host asked to be left alone for (Retry-After) still to run."""
        for key, seconds in failed_seconds.items():
            self._host(key).failed_seconds = seconds
        for key, seconds in holds.items():
            self._holds.hold(key, seconds)

    def carried(self, keys: Iterable[str]) -> tuple[dict[str, float], dict[str, float]]:
        """For `carry_over` by a later fetcher: the failed seconds and held seconds left of
        each of these hosts (only those with any)."""
        failed: dict[str, float] = {}
        holds: dict[str, float] = {}
        for key in keys:
            with self._hosts_lock:
                host = self._hosts.get(key)
            if host is not None and host.failed_seconds > 0:
                failed[key] = host.failed_seconds
            left = self._holds.remaining(key)
            if left > 0:
                holds[key] = left
        return failed, holds

    @property
    def network(self) -> Network:
        """DNS and routing as this fetcher sees them (a worker's fetcher takes the same)."""
        return self._network

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._watchdog.close()
        with self._pools_lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close()

    # ------------------------------------------------------------------ one request

    def fetch(
        self,
        request: FetchRequest,
        accept: str = "*/*",
        *,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
    ) -> FetchResult:
        """Fetch one URL within `deadline` seconds (default: the page deadline), redirects
        and retries included; `cancel` stops it early (the result says so)."""
        return self._fetch(request, accept, deadline, _Stop(cancel))

    def _fetch(
        self, request: FetchRequest, accept: str, deadline: float | None, stop: _Stop
    ) -> FetchResult:
        settings = self.settings
        started = time.monotonic()
        seconds = deadline or settings.page_deadline_seconds
        call = _Call(started + seconds, seconds, stop)
        backoff = tenacity.wait_exponential_jitter(
            multiplier=settings.retry_backoff_seconds,
            max=settings.page_deadline_seconds,
            jitter=settings.retry_backoff_seconds,
        )

        def wait(state: tenacity.RetryCallState) -> float:
            asked = _outcome(state).retry_after or 0.0
            return max(backoff(state), asked)

        def sleep(seconds: float) -> None:
            stop.wait(seconds)  # a stopped call's next attempt reports it

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_result(
                lambda r: r.error_kind == "transient" and not call.final
            ),
            stop=tenacity.stop_any(
                tenacity.stop_after_attempt(settings.transient_retries + 1),
                _GiveUp(call, settings.max_retry_after_wait_seconds),
            ),
            wait=wait,
            sleep=sleep,
            retry_error_callback=_outcome,
        )
        result: FetchResult = retrying(self._attempt, request, accept, call)
        elapsed = (time.monotonic() - started) * 1000
        return replace(result, attempts=call.attempts, elapsed_ms=elapsed)

    def _attempt(self, request: FetchRequest, accept: str, call: _Call) -> FetchResult:
        call.attempts += 1
        url = request.url
        headers = {"Accept": accept}
        if request.etag:
            headers["If-None-Match"] = request.etag
        if request.last_modified:
            headers["If-Modified-Since"] = request.last_modified

        def failed(
            message: str, kind: str = "terminal", status: int | None = None, **more: Any
        ) -> FetchResult:
            return FetchResult(request.url, url, status, error=message, error_kind=kind, **more)

        for _hop in range(self.settings.max_redirects + 1):
            if call.stop.is_set():
                call.final = True
                return failed("cancelled before the request was made", "transient")
            try:
                target = parse_target(url)
            except UnsafeURLError as exc:
                return failed(str(exc))
            key = target.host_key
            host = self._host(key)
            try:
                addresses = self._addresses(target)
            except UnsafeURLError as exc:
                return failed(str(exc))
            except OSError as exc:  # the name did not resolve: never connected
                temporary = isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_AGAIN
                return failed(
                    f"refusing {target.host}: the name does not resolve ({exc})",
                    "transient" if temporary else "terminal",
                )
            refused = self._admit(key, host, call)
            if refused is not None:
                call.final = True
                message, retry_after = refused
                return failed(message, "transient", retry_after=retry_after)
            began = time.monotonic()
            try:
                outcome = self._exchange(target, addresses, headers, host, call)
            finally:
                host.slots.release()
            if isinstance(outcome, _Failure):
                if outcome.kind == "transient":
                    self._charge(host, time.monotonic() - began)
                    if call.stop.is_set() or call.remaining() <= 0:
                        call.final = True
                return failed(outcome.message, outcome.kind)
            response, body, address = outcome
            if response.status in (301, 302, 303, 307, 308):
                location = response.headers.get("location")
                if not location:
                    return failed("redirect without Location", status=response.status)
                url = urljoin(target.url, location)
                continue
            result = self._result(request, url, response, body, address)
            if result.error_kind == "transient":
                self._charge(host, time.monotonic() - began)
            if result.retry_after:
                self._holds.hold(key, result.retry_after)
            return result
        return failed(f"more than {self.settings.max_redirects} redirects")

    def _addresses(self, target: Target) -> list[str]:
        allow = self.settings.allow_private_hosts
        check_name(target.host, allow_private_hosts=allow)
        literal = target.literal
        found = (
            [str(literal)]
            if literal is not None
            else self._network.resolve(target.host, target.port)
        )
        return check_addresses(target.host, found, allow_private_hosts=allow)

    def _host(self, key: str) -> _Host:
        with self._hosts_lock:
            host = self._hosts.get(key)
            if host is None:
                host = self._hosts[key] = _Host(self.settings.per_host_concurrency)
            return host

    def _charge(self, host: _Host, seconds: float) -> None:
        with self._hosts_lock:
            host.failed_seconds += seconds

    def _admit(self, key: str, host: _Host, call: _Call) -> tuple[str, float | None] | None:
        """Wait until the host may be sent a request: its Retry-After hold passed (when the
        wait fits max_retry_after_wait_seconds), its budget not spent, a concurrent slot free
        and its turn under the request rate come. None when admitted (the caller holds the
        slot); otherwise why not, and the wait the host asked for."""
        settings = self.settings
        while True:
            if call.stop.is_set():
                return "cancelled before the request was made", None
            if call.remaining() <= 0:
                return (
                    f"deadline exceeded: no free slot for {key} within {call.seconds:g} s",
                    None,
                )
            held = self._holds.remaining(key)
            if held > 0 and (
                held > settings.max_retry_after_wait_seconds or held >= call.remaining()
            ):
                return f"not contacted: {key} asked to wait {held:.0f} s more (Retry-After)", held
            if held > 0:
                call.stop.wait(held)
                continue
            if host.failed_seconds >= settings.host_budget_seconds:
                return (
                    f"not contacted: {key} has used its budget of "
                    f"{settings.host_budget_seconds:g} s on failed requests",
                    None,
                )
            if not host.slots.acquire(timeout=TICK):
                continue
            # the stop, hold and budget may have changed while waiting for the slot
            if (
                call.stop.is_set()
                or self._holds.remaining(key) > 0
                or host.failed_seconds >= settings.host_budget_seconds
            ):
                host.slots.release()
                continue
            break
        rate = settings.per_host_rate
        if rate > 0:
            with self._hosts_lock:
                now = time.monotonic()
                start = max(now, host.next_free)
                if start < call.deadline:  # a turn past the deadline is not taken
                    host.next_free = start + 1.0 / rate
            if start >= call.deadline:
                host.slots.release()
                return (
                    "deadline exceeded: the host's request rate leaves no turn within "
                    f"{call.seconds:g} s",
                    None,
                )
            if start > now and call.stop.wait(start - now):
                host.slots.release()
                return "cancelled before the request was made", None
        return None

    def _pool(self, target: Target, address: str) -> urllib3.HTTPConnectionPool:
        key = (target.scheme, target.host, address, target.port)
        with self._pools_lock:
            pool = self._pools.get(key)
            if pool is not None:
                self._pools.move_to_end(key)
                return pool
            size = self.settings.per_host_concurrency
            if target.scheme == "https":
                pool = urllib3.HTTPSConnectionPool(
                    address,
                    target.port,
                    maxsize=size,
                    retries=False,
                    cert_reqs="CERT_REQUIRED",
                    server_hostname=target.host,
                    assert_hostname=target.host,
                )
                pool.ConnectionCls = self._https_conn
            else:
                pool = urllib3.HTTPConnectionPool(address, target.port, maxsize=size, retries=False)
                pool.ConnectionCls = self._http_conn
            self._pools[key] = pool
            if len(self._pools) > KEPT_HOSTS:
                _key, oldest = self._pools.popitem(last=False)
                oldest.close()
            return pool

    def _exchange(
        self,
        target: Target,
        addresses: list[str],
        headers: dict[str, str],
        host: _Host,
        call: _Call,
    ) -> tuple[urllib3.BaseHTTPResponse, bytes, str] | _Failure:
        """GET the target from the first checked address that accepts a connection: the
        response, its body and the address, or why there is none."""
        failure = _Failure("no address to connect to")
        for position, address in enumerate(addresses):
            attempt = _Attempt(call.deadline, call.stop)
            self._watchdog.add(attempt)
            _current.attempt = attempt
            try:
                response, body = self._get(target, address, headers, call, attempt)
                return response, body, address
            except NewConnectionError as exc:  # refused, unreachable: try the next address
                failure = _Failure(f"network error: {type(exc).__name__}: {exc}")
                if position + 1 < len(addresses) and not attempt.expired:
                    continue
                return failure
            except TooLarge:
                return _Failure(f"response larger than {self.settings.max_bytes} bytes", "terminal")
            except (_Interrupted, ProtocolError, HTTPError, OSError) as exc:
                if attempt.stopped or call.stop.is_set():
                    return _Failure("cancelled while the request was in flight")
                if attempt.expired or call.remaining() <= 0 or isinstance(exc, _Interrupted):
                    return _Failure(
                        f"deadline exceeded: no complete answer within {call.seconds:g} s"
                    )
                if isinstance(exc, LocationParseError | DecodeError):  # an invalid URL or body
                    return _Failure(f"bad response: {exc}", "terminal")
                # a refused connection is a subclass of the connect timeout: not a timeout
                if isinstance(exc, TimeoutError) and not isinstance(exc, NewConnectionError):
                    return _Failure(f"timeout: {type(exc).__name__}")
                return _Failure(f"network error: {type(exc).__name__}: {exc}")
            finally:
                _current.attempt = None
                self._watchdog.remove(attempt)
                attempt.done()
        return failure

    def _get(
        self,
        target: Target,
        address: str,
        headers: dict[str, str],
        call: _Call,
        attempt: _Attempt,
    ) -> tuple[urllib3.BaseHTTPResponse, bytes]:
        remaining = call.remaining()
        if remaining <= 0:
            raise _Interrupted
        per_read = min(self.settings.timeout_seconds, remaining)
        response = self._pool(target, address).urlopen(
            "GET",
            target.path,
            headers={**self._headers, **headers, "Host": target.host_header},
            preload_content=False,
            redirect=False,
            retries=False,
            assert_same_host=False,
            timeout=urllib3.Timeout(connect=per_read, read=per_read),
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
                if call.remaining() <= 0:
                    raise _Interrupted
            if attempt.expired or attempt.stopped:  # the end of a body cut short
                raise _Interrupted
            reusable = True
            return response, b"".join(chunks)
        finally:
            if reusable:
                response.release_conn()  # read to the end: the connection serves the next one
            else:
                response.close()  # a body left unread: the connection cannot be reused
                response.release_conn()

    def _result(
        self,
        request: FetchRequest,
        url: str,
        response: urllib3.BaseHTTPResponse,
        body: bytes,
        address: str,
    ) -> FetchResult:
        status = response.status
        error = None
        kind = None
        retry_after = None
        if status in RETRY_AFTER_STATUS:
            retry_after = _retry_after(response.headers.get("retry-after"))
        if status == 304:
            pass
        elif status in TRANSIENT_STATUS:
            error, kind = f"HTTP {status}", "transient"
            if retry_after is not None:
                error += f" (Retry-After {retry_after:.0f} s)"
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
            retry_after=retry_after,
            address=address,
        )

    # ------------------------------------------------------------------ batches

    def fetch_many(
        self,
        requests: Sequence[FetchRequest],
        accept: str = "*/*",
        *,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
    ) -> list[FetchResult]:
        """Fetch every request concurrently; results in request order. Raises
        FetchCancelled when `cancel` is set before all are done."""
        results: list[FetchResult | None] = [None] * len(requests)
        for index, result in self.fetch_iter(requests, accept, deadline=deadline, cancel=cancel):
            results[index] = result
        return [r for r in results if r is not None]

    def fetch_iter(
        self,
        requests: Sequence[FetchRequest],
        accept: str = "*/*",
        buffer: int = 0,
        *,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[tuple[int, FetchResult]]:
        """Fetch concurrently and yield (request index, result) as each completes, so the
        caller can work on early pages while later ones are in flight. Requests are started
        host by host in turn, so a run of one outlet's pages never holds every worker waiting
        for that host's slots. With `buffer`, at most that many results wait for the caller;
        fetching pauses until it catches up (memory stays flat however many pages there are).

        When the caller stops (closes the iterator, or an exception such as
        KeyboardInterrupt leaves its loop), requests in flight are interrupted and every
        fetch thread has ended before the iterator is closed; when `cancel` is set, the
        same happens and FetchCancelled is raised."""
        if not requests:
            return
        stop = _Stop(cancel)
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for index in _interleaved_by_host(requests):
            todo.put(index)
        done: queue.Queue[tuple[int, FetchResult]] = queue.Queue(maxsize=max(0, buffer))

        def work() -> None:
            while not stop.is_set():
                try:
                    index = todo.get_nowait()
                except queue.Empty:
                    return
                request = requests[index]
                try:
                    result = self._fetch(request, accept, deadline, stop)
                except Exception as exc:  # never lose a slot of the batch
                    log.warning("fetching %s failed: %s", request.url, exc)
                    result = FetchResult(
                        request.url,
                        request.url,
                        None,
                        error=f"fetch failed: {type(exc).__name__}: {exc}",
                        error_kind="terminal",
                    )
                while not stop.is_set():
                    try:
                        done.put((index, result), timeout=TICK)
                        break
                    except queue.Full:
                        continue

        workers: list[threading.Thread] = []
        try:  # an interrupt while the workers start stops the ones already running
            for n in range(max(1, min(self.settings.total_concurrency, len(requests)))):
                workers.append(threading.Thread(target=work, name=f"fetch-{n}", daemon=True))
                workers[-1].start()
            for _ in range(len(requests)):
                while True:
                    if stop.cancelled:
                        raise FetchCancelled("fetching stopped: cancelled by the caller")
                    try:
                        item = done.get(timeout=TICK)
                        break
                    except queue.Empty:
                        continue
                yield item
        finally:
            stop.set()
            self._watchdog.wake()  # interrupts the requests in flight now
            for worker in workers:
                try:
                    worker.join(timeout=5)
                except RuntimeError:  # its start was interrupted before it ran: it never will
                    pass
            stuck = [w.name for w in workers if w.is_alive()]
            if stuck:
                log.warning("fetch threads still running after the batch stopped: %s", stuck)


def _outcome(state: tenacity.RetryCallState) -> FetchResult:
    assert state.outcome is not None
    result: FetchResult = state.outcome.result()
    return result


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), None if absent or
    unreadable."""
    if not value:
        return None
    try:
        seconds = Retry(retry_after_max=MAX_HOLD_SECONDS).parse_retry_after(value)
    except (InvalidHeader, ValueError, OverflowError):
        return None
    return float(seconds)


def _interleaved_by_host(requests: Sequence[FetchRequest]) -> list[int]:
    """Request indexes ordered round-robin over hosts (each host's own order kept)."""
    by_host: dict[str, list[int]] = defaultdict(list)
    for index, request in enumerate(requests):
        try:
            key = parse_target(request.url).host_key
        except UnsafeURLError:
            key = ""
        by_host[key].append(index)
    queues = list(by_host.values())
    order: list[int] = []
    for turn in range(max(len(q) for q in queues)):
        order.extend(q[turn] for q in queues if turn < len(q))
    return order


def all_transient_failures(results: Iterable[FetchResult]) -> bool:
    """True when there were results and every one failed for a transient reason: the signature
    of a network outage rather than of broken outlets."""
    results = list(results)
    return bool(results) and all(r.error_kind == "transient" for r in results)
