"""What a simulated server sends for one request, including the ways it can misbehave."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

HTML = "text/html; charset=utf-8"


@dataclass
class Response:
    status: int
    content_type: str = HTML
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    last_modified: datetime | None = None  # with an ETag: conditional requests are honoured
    cache_control: str = ""
    delay: float = 0.0  # seconds to stall before answering
    etag: str = ""  # precomputed ETag of body ("" = computed when sent)
    drip: float = 0.0  # seconds between body bytes (sent one at a time)
    truncate: int | None = None  # send only this many body bytes, then close
    stream: Callable[[], Iterable[bytes]] | None = None  # body made while it is sent
    length: int | None = None  # Content-Length of a streamed body (None: chunked)
