"""Fault outlets: simulated outlets served beside a corpus, each failing in one known way.

Every fault outlet has a loopback address of its own (127.0.0.10, .11, ... on the simulator's
port), so that what one does to a host (a Retry-After, a budget spent on hangs) touches no
other outlet. Faults of a page's fetch whose host state would also hold back the feed (hangs,
drips, 5xx, 429, truncation) serve their feed from the main address instead, as a site with a
separate feed host does. The internal service (127.0.0.9) plays a machine on the crawler's own
network that no fetch may reach while private hosts are not allowed; fault outlets link to it
in every form that has slipped past address checks.

`FaultSet.manifest()` tells, for every feed and article link a fault outlet offers, what a
correct crawler records: the fetch_log outcome, a reason its error mentions, and whether the
article is stored.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import format_datetime
from functools import cache
from xml.sax.saxutils import escape as xml_escape

from simulator.corpus import DemoArticle, DemoOutlet
from simulator.pages import article_path, render_article_page, render_feed, tracked_url
from simulator.response import HTML, Response

RSS = "application/rss+xml; charset=utf-8"
INTERNAL_ADDRESS = "127.0.0.9"
FIRST_FAULT_HOST = 10  # fault outlet k binds 127.0.0.(10 + k)
PUBLIC_PREFIX = "93.184.216."  # simulated public addresses (public-name mode; never contacted)
HUGE_BYTES = 50_000_000
BOMB_BYTES = 200_000_000  # a gzip body that inflates to this many bytes
DRIP_SECONDS = 0.25  # between bytes of a dripping body
RETRY_AFTER = 3600

# name -> what the outlet does; the order is the order of their addresses
FAULTS: dict[str, str] = {
    "feed-hang": "the feed never answers",
    "feed-drip": "the feed is sent one byte every 0.25 s",
    "feed-5xx": "the feed answers 502",
    "feed-429": f"the feed answers 429 with Retry-After: {RETRY_AFTER}",
    "feed-truncated": "the feed's body stops at a quarter of its Content-Length",
    "feed-garbage": "the feed is random bytes",
    "feed-wrong-type": "the feed is a PNG image",
    "feed-redirect-loop": "the feed redirects to itself",
    "feed-gzip-bomb": "the feed is gzip that inflates to 200 MB",
    "feed-huge": "the feed is 50 MB, sent without a Content-Length",
    "feed-entity-bomb": "the feed declares nested entities (billion laughs)",
    "feed-entity-fallback": "a malformed 40 KB feed whose title expands to 100 MB",
    "feed-path-bodies": "four feeds whose bodies are /etc/passwd, /dev/zero, a file: URL and "
    "the internal service's URL",
    "feed-10k": "a feed of 10,000 items",
    "feed-dup-guids": "items repeating links and GUIDs",
    "feed-odd-dates": "items with missing, malformed, ancient and far-future dates",
    "feed-encodings": "five feeds: windows-1252, Latin-1 by header only, UTF-16, UTF-8 with a "
    "BOM, and Latin-1 bytes declared as UTF-8",
    "page-hang": "article pages that never answer",
    "page-drip": "article pages sent one byte every 0.25 s",
    "page-5xx": "article pages answering 500",
    "page-429": f"article pages answering 429 with Retry-After: {RETRY_AFTER}",
    "page-truncated": "article pages whose body stops short of its Content-Length",
    "page-garbage": "article pages of random bytes",
    "page-wrong-type": "article pages served as application/octet-stream (full text in feed)",
    "page-redirect-loop": "an article page that redirects to itself",
    "page-gzip-bomb": "an article page of gzip that inflates to 200 MB",
    "page-huge": "50 MB article pages, with and without a Content-Length",
    "page-internal": "links to the internal service in every form, and a DNS-rebinding name",
}
FEED_ON_MAIN = frozenset({"page-hang", "page-drip", "page-5xx", "page-429", "page-truncated"})
NO_ITEMS = frozenset({n for n in FAULTS if n.startswith("feed-")}) - {
    "feed-10k",
    "feed-dup-guids",
    "feed-odd-dates",
    "feed-encodings",
}
ITEMS = {
    "page-hang": 20,
    "page-drip": 2,
    "page-5xx": 2,
    "page-429": 3,
    "page-truncated": 2,
    "page-garbage": 2,
    "page-wrong-type": 2,
    "page-redirect-loop": 1,
    "page-gzip-bomb": 1,
    "page-huge": 2,
    "feed-10k": 10_000,
    "feed-dup-guids": 3,
    "feed-odd-dates": 8,
}
ENCODINGS = ("cp1252", "latin1-header", "utf16", "utf8-bom", "mislabelled")
CAFE = "Caf\u00e9 \u201cquoted\u201d report"  # every encodings feed's titles start so
ODD_DATES = (
    "",  # no date at all
    "not a date",
    "Fri, 10 Jan 2025 08:00:00",  # no zone
    "2025-01-10T08:00:00+05:30",  # ISO 8601 in RSS
    "Mon, 01 Jan 1900 00:00:00 GMT",
    "Fri, 31 Dec 9999 23:59:59 GMT",
    "Thu, 01 Jan 1970 00:00:00 GMT",
    "Fri, 32 Jan 2025 25:61:00 +9900",
)
FAULT_NAMES = tuple(FAULTS)


def parse_faults(text: str) -> tuple[str, ...]:
    """Fault names from a comma-separated list, or every fault for "all"; ValueError names the
    unknown ones."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if names == ["all"]:
        return FAULT_NAMES
    unknown = [n for n in names if n not in FAULTS]
    if unknown or not names:
        raise ValueError(
            f"unknown fault(s) {', '.join(unknown) or '(none given)'}; "
            f"expected 'all' or some of: {', '.join(FAULT_NAMES)}"
        )
    return tuple(n for n in FAULT_NAMES if n in names)  # catalogue order, once each


@dataclass(frozen=True)
class Expected:
    """What a correct crawler records for one feed or article link."""

    kind: str  # "feed" | "article"
    url: str  # the feed URL, or the article link as the feed gives it
    outlet: str  # outlet slug
    fault: str  # fault name ("" for a corpus outlet without one)
    outcomes: tuple[str, ...]  # fetch_log outcomes allowed
    reasons: tuple[str, ...] = ()  # one of these is part of the recorded error
    stored: bool | None = None  # article: must be stored (True), must not (False), either


@dataclass
class FaultOutlet:
    fault: str
    outlet: DemoOutlet
    index: int  # its position: address 127.0.0.(10 + index)
    articles: tuple[DemoArticle, ...] = ()
    base_url: str = ""  # set when the simulator starts
    feed_base: str = ""  # where its feed is served from (its own base, or the main one)

    @property
    def slug(self) -> str:
        return self.outlet.slug

    @property
    def address(self) -> str:
        return f"127.0.0.{FIRST_FAULT_HOST + self.index}"

    @property
    def host_name(self) -> str:
        return f"{self.slug}.faults.example"

    @property
    def public_address(self) -> str:
        return f"{PUBLIC_PREFIX}{FIRST_FAULT_HOST + self.index}"

    def feed_paths(self) -> tuple[str, ...]:
        if self.fault == "feed-path-bodies":
            return tuple(f"/{self.slug}/{name}.xml" for name in PATH_BODIES)
        if self.fault == "feed-encodings":
            return tuple(f"/{self.slug}/{name}.xml" for name in ENCODINGS)
        return (f"/{self.slug}/feed.xml",)

    def feed_urls(self) -> tuple[str, ...]:
        return tuple(self.feed_base + path for path in self.feed_paths())


PATH_BODIES = ("etc-passwd", "dev-zero", "file-url", "internal-url")
INTERNAL_FORMS = (  # link template -> the reason a refusal gives (public-name mode)
    ("http://{internal}:{port}/secret/1", "non-public address"),
    ("http://{internal}:{port}\\@{host}/secret/2", "backslash"),
    ("http://{host}@{internal}:{port}/secret/3", "user info"),
    ("http://[::ffff:{internal}]:{port}/secret/4", "non-public address"),
    ("http://2130706441:{port}/secret/5", "ambiguous numeric host"),
    ("http://internal.faults.example:{port}/secret/6", "non-public address"),
    ("{base}/{slug}/to-internal.html", "non-public address"),
)
REBIND_NAME = "rebind.faults.example"

_WORDS = (
    "district officials said the council would meet again on monday after residents "
    "complained about water supply roads schools and the new market while traders asked "
    "for clear rules on permits fees and inspections before the festival season began in "
    "earnest across the valley and the nearby towns where farmers waited for rain"
).split()


def _paragraphs(seed: str, count: int = 4, words: int = 45) -> tuple[str, ...]:
    rng = random.Random(seed)
    out = []
    for n in range(count):
        text = " ".join(rng.choice(_WORDS) for _ in range(words))
        out.append(f"{seed} part {n + 1}: {text.capitalize()}.")
    return tuple(out)


def _article(
    outlet: str, slug: str, when: datetime, title: str, teaser: bool = True
) -> DemoArticle:
    paragraphs = _paragraphs(f"{outlet} {slug}")
    if teaser:  # a first paragraph too short to stand in for a failed page
        paragraphs = (f"{title}: a short teaser.", *paragraphs)
    return DemoArticle(
        outlet=outlet,
        slug=slug,
        day=0,
        hour=0.0,
        published_at=when,
        title=title,
        author="",
        narrative="",
        edit="unrelated",
        fault="",
        paragraphs=paragraphs,
        path="",
    )


@cache
def gzip_bomb() -> bytes:
    """A gzip body of BOMB_BYTES zero bytes (about 200 KB on the wire)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip container
    block = bytes(1 << 20)
    parts = [compressor.compress(block) for _ in range(BOMB_BYTES >> 20)]
    return b"".join(parts) + compressor.flush()


def billion_laughs() -> bytes:
    lines = ['<?xml version="1.0"?>', "<!DOCTYPE rss [", '<!ENTITY lol "lol">']
    for level in range(1, 10):
        lines.append(
            f'<!ENTITY lol{level} "{("&lol" + (str(level - 1) if level > 1 else "") + ";") * 10}">'
        )
    lines += ["]>", '<rss version="2.0"><channel><title>&lol9;</title>']
    lines += ["<item><title>&lol9;</title><link>https://x.example/1</link></item>"]
    lines += ["</channel></rss>"]
    return "\n".join(lines).encode()


def fallback_bomb() -> bytes:
    """40 KB; the title expands to 100 MB in feedparser's fallback parser."""
    return (
        b'<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE rss [\n<!ENTITY a "'
        + b"x" * 10_000
        + b'">\n]>\n<rss version="2.0"><channel><title>T</title>\n<item><title>'
        + b"&a;" * 10_000
        + b"</title><link>https://x.example/1</link>\n"
    )


def _huge_chunks(total: int) -> Iterator[bytes]:
    block = b"<p>" + b"filler " * 9360 + b"</p>\n"  # about 64 KB
    sent = 0
    yield b"<!DOCTYPE html><html><body>\n"
    while sent < total:
        part = block[: total - sent]
        sent += len(part)
        yield part


def _rss(title: str, items: Sequence[str], encoding: str = "utf-8") -> str:
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>\n<rss version="2.0"><channel>'
        f"<title>{xml_escape(title)}</title>\n" + "\n".join(items) + "\n</channel></rss>\n"
    )


def _item(title: str, link: str, date: str = "", guid: str = "", teaser: str = "") -> str:
    parts = [f"<item><title>{xml_escape(title)}</title><link>{xml_escape(link)}</link>"]
    if guid:
        parts.append(f'<guid isPermaLink="false">{xml_escape(guid)}</guid>')
    if date:
        parts.append(f"<pubDate>{xml_escape(date)}</pubDate>")
    if teaser:
        parts.append(f"<description>{xml_escape(teaser)}</description>")
    return "".join(parts) + "</item>"


@dataclass
class FaultSet:
    """The fault outlets of one simulator run."""

    names: tuple[str, ...]
    start: datetime
    hang_seconds: float = 3600.0
    outlets: list[FaultOutlet] = field(default_factory=list)
    port: int = 0
    main_base: str = ""
    internal_base: str = ""
    public_names: bool = False

    def __post_init__(self) -> None:
        for index, name in enumerate(self.names):
            slug = f"fault-{name}"
            full = name == "page-wrong-type"  # the feed carries the whole text
            outlet = DemoOutlet(
                slug=slug,
                name=f"Fault: {name}",
                country="INT",
                kind="news-portal",
                feed_format="rss",
                feed_content="full" if full else "summary",
                chrome="portal",
                language="en",
            )
            fault_outlet = FaultOutlet(name, outlet, index)
            count = ITEMS.get(name, 0)
            if name == "feed-encodings":
                count = len(ENCODINGS)
            fault_outlet.articles = tuple(
                _article(
                    slug,
                    f"item-{n:05d}",
                    self.start - timedelta(minutes=n),
                    f"{CAFE} {n}" if name == "feed-encodings" else f"{name} item {n}",
                    teaser=not full,
                )
                for n in range(count)
            )
            self.outlets.append(fault_outlet)
        self._by_slug = {o.slug: o for o in self.outlets}
        self._articles = {article_path(a): (o, a) for o in self.outlets for a in o.articles}

    # -- addresses -----------------------------------------------------------------

    def bind(self, port: int, main_base: str, public_names: bool) -> None:
        """Fix the URLs once the simulator's port is known."""
        self.port = port
        self.main_base = main_base
        if {"feed-gzip-bomb", "page-gzip-bomb"} & set(self.names):
            gzip_bomb()  # made now (a second of work), not while a fetch waits for it
        self.public_names = public_names
        host = "internal.faults.example" if public_names else INTERNAL_ADDRESS
        self.internal_base = f"http://{host}:{port}"
        for fault_outlet in self.outlets:
            host = fault_outlet.host_name if public_names else fault_outlet.address
            fault_outlet.base_url = f"http://{host}:{port}"
            fault_outlet.feed_base = (
                main_base if fault_outlet.fault in FEED_ON_MAIN else fault_outlet.base_url
            )

    def by_address(self, address: str) -> FaultOutlet | None:
        for fault_outlet in self.outlets:
            if fault_outlet.address == address:
                return fault_outlet
        return None

    def links(self, fault_outlet: FaultOutlet) -> list[tuple[str, DemoArticle | None, str]]:
        """Every article link the outlet's feeds give: (link, article, expected reason)."""
        if fault_outlet.fault == "page-internal":
            host = fault_outlet.host_name if self.public_names else fault_outlet.address
            links: list[tuple[str, DemoArticle | None, str]] = [
                (
                    form.format(
                        internal=INTERNAL_ADDRESS,
                        port=self.port,
                        host=host,
                        base=fault_outlet.base_url,
                        slug=fault_outlet.slug,
                    ),
                    None,
                    reason,
                )
                for form, reason in INTERNAL_FORMS
            ]
            rebind = _article(fault_outlet.slug, "rebind", self.start, "Rebinding target")
            links.append((f"http://{REBIND_NAME}:{self.port}{article_path(rebind)}", rebind, ""))
            return links
        plain = fault_outlet.fault in ("feed-dup-guids", "feed-odd-dates", "feed-encodings")
        return [
            (
                url if plain else tracked_url(url, fault_outlet.slug),  # as render_feed links
                a,
                "",
            )
            for a in fault_outlet.articles
            for url in [fault_outlet.base_url + article_path(a)]
        ]

    # -- routing -------------------------------------------------------------------

    def route_main(self, path: str) -> Response | None:
        """A fault outlet's feed served from the main address, or None."""
        slug = path.strip("/").split("/")[0]
        fault_outlet = self._by_slug.get(slug)
        if fault_outlet is None or fault_outlet.fault not in FEED_ON_MAIN:
            return None
        if path != f"/{slug}/feed.xml":
            return Response(404, HTML, b"not here\n")
        return self._feed_response(fault_outlet, path)

    def route(self, fault_outlet: FaultOutlet, path: str) -> Response:
        if path in fault_outlet.feed_paths() and fault_outlet.fault not in FEED_ON_MAIN:
            return self._feed_response(fault_outlet, path)
        if fault_outlet.fault == "page-internal":
            if path == f"/{fault_outlet.slug}/to-internal.html":
                return Response(302, headers={"Location": f"{self.internal_base}/secret/7"})
            if path.endswith("/rebind.html"):
                rebind = _article(fault_outlet.slug, "rebind", self.start, "Rebinding target")
                return Response(200, HTML, render_article_page(fault_outlet.outlet, rebind, ""))
        found = self._articles.get(path)
        if found is None or found[0] is not fault_outlet:
            return Response(404, HTML, b"<html><body>Not found</body></html>\n")
        return self._page_response(fault_outlet, found[1])

    def route_internal(self, path: str) -> Response:
        page = _article("internal", "secret", self.start, "INTERNAL SECRET")
        body = render_article_page(
            DemoOutlet("internal", "Internal", "INT", "news-portal", "rss", "full", "portal", "en"),
            page,
            "",
        )
        return Response(200, HTML, body)

    def _feed_response(self, fault_outlet: FaultOutlet, path: str) -> Response:
        fault = fault_outlet.fault
        if fault == "feed-hang":
            return Response(200, RSS, self._plain_feed(fault_outlet), delay=self.hang_seconds)
        if fault == "feed-drip":
            return Response(200, RSS, self._plain_feed(fault_outlet), drip=DRIP_SECONDS)
        if fault == "feed-5xx":
            return Response(502, HTML, b"<html><body>Bad Gateway</body></html>\n")
        if fault == "feed-429":
            return Response(
                429, HTML, b"Too Many Requests\n", headers={"Retry-After": str(RETRY_AFTER)}
            )
        if fault == "feed-truncated":
            body = self._plain_feed(fault_outlet, items=40)
            return Response(200, RSS, body, truncate=len(body) // 4)
        if fault == "feed-garbage":
            return Response(200, RSS, random.Random(fault).randbytes(4096))
        if fault == "feed-wrong-type":
            png = b"\x89PNG\r\n\x1a\n" + random.Random(fault).randbytes(2048)
            return Response(200, "image/png", png)
        if fault == "feed-redirect-loop":
            return Response(302, headers={"Location": path})
        if fault == "feed-gzip-bomb":
            return Response(200, RSS, gzip_bomb(), headers={"Content-Encoding": "gzip"})
        if fault == "feed-huge":
            return Response(200, RSS, stream=lambda: _huge_chunks(HUGE_BYTES))
        if fault == "feed-entity-bomb":
            return Response(200, RSS, billion_laughs())
        if fault == "feed-entity-fallback":
            return Response(200, RSS, fallback_bomb())
        if fault == "feed-path-bodies":
            name = path.rsplit("/", 1)[1].removesuffix(".xml")
            bodies = {
                "etc-passwd": b"/etc/passwd",
                "dev-zero": b"/dev/zero",
                "file-url": b"file:///etc/passwd",
                "internal-url": f"{self.internal_base}/secret/feed".encode(),
            }
            return Response(200, RSS, bodies[name])
        if fault == "feed-encodings":
            return self._encoded_feed(fault_outlet, path)
        if fault == "page-internal":
            date = format_datetime(self.start, usegmt=True)
            items = [
                _item(f"internal form {n}", link, date, teaser="A teaser.")
                for n, (link, _page, _reason) in enumerate(self.links(fault_outlet))
            ]
            body = _rss(fault_outlet.outlet.name, items).encode()
        elif fault == "feed-dup-guids":
            body = self._dup_guid_feed(fault_outlet)
        elif fault == "feed-odd-dates":
            body = self._odd_date_feed(fault_outlet)
        else:  # a good feed of the outlet's articles (page faults, 10k)
            body = render_feed(fault_outlet.outlet, fault_outlet.articles, fault_outlet.base_url)
        return Response(200, RSS, body, last_modified=self.start)

    def _plain_feed(self, fault_outlet: FaultOutlet, items: int = 3) -> bytes:
        entries = [
            _item(f"item {n}", f"{fault_outlet.base_url}/{fault_outlet.slug}/item-{n}.html")
            for n in range(items)
        ]
        return _rss(fault_outlet.outlet.name, entries).encode()

    def _dup_guid_feed(self, fault_outlet: FaultOutlet) -> bytes:
        a, b, c = (fault_outlet.base_url + article_path(x) for x in fault_outlet.articles)
        date = format_datetime(self.start, usegmt=True)
        items = [
            _item("first", a, date, guid="g-1"),
            _item("first again", a, date, guid="g-1"),  # the same item twice
            _item("first, tracked", a + "?utm_source=rss", date, guid="g-2"),  # same canonical
            _item("second, first's guid", b, date, guid="g-1"),  # a reused GUID
            _item("third", c, date, guid="g-3"),
            _item("third again, other guid", c + "#comments", date, guid="g-4"),
        ]
        return _rss(fault_outlet.outlet.name, items).encode()

    def _odd_date_feed(self, fault_outlet: FaultOutlet) -> bytes:
        items = [
            _item(a.title, fault_outlet.base_url + article_path(a), date)
            for a, date in zip(fault_outlet.articles, ODD_DATES, strict=True)
        ]
        return _rss(fault_outlet.outlet.name, items).encode()

    def _encoded_feed(self, fault_outlet: FaultOutlet, path: str) -> Response:
        name = path.rsplit("/", 1)[1].removesuffix(".xml")
        article = fault_outlet.articles[ENCODINGS.index(name)]
        link = fault_outlet.base_url + article_path(article)
        date = format_datetime(self.start, usegmt=True)
        item = _item(article.title, link, date)
        content_type = "application/rss+xml"
        if name == "cp1252":
            body = _rss("Encodings", [item], "windows-1252").encode("cp1252")
        elif name == "latin1-header":  # the charset is in the Content-Type header only
            text = _rss("Encodings", [item.replace("\u201c", '"').replace("\u201d", '"')])
            return Response(
                200,
                "application/rss+xml; charset=iso-8859-1",
                text.replace(' encoding="utf-8"', "").encode("latin-1"),
                last_modified=self.start,
            )
        elif name == "utf16":
            body = _rss("Encodings", [item], "utf-16").encode("utf-16")
        elif name == "utf8-bom":
            body = b"\xef\xbb\xbf" + _rss("Encodings", [item]).encode()
        else:  # Latin-1 bytes declared as UTF-8
            plain = item.replace("\u201c", '"').replace("\u201d", '"')
            body = _rss("Encodings", [plain]).encode("latin-1")
        return Response(200, content_type, body, last_modified=self.start)

    def _page_response(self, fault_outlet: FaultOutlet, article: DemoArticle) -> Response:
        fault = fault_outlet.fault
        page = render_article_page(fault_outlet.outlet, article, fault_outlet.base_url)
        if fault == "page-hang":
            return Response(200, HTML, page, delay=self.hang_seconds)
        if fault == "page-drip":
            return Response(200, HTML, page, drip=DRIP_SECONDS)
        if fault == "page-5xx":
            return Response(500, HTML, b"<html><body>Internal Server Error</body></html>\n")
        if fault == "page-429":
            return Response(
                429, HTML, b"Too Many Requests\n", headers={"Retry-After": str(RETRY_AFTER)}
            )
        if fault == "page-truncated":
            return Response(200, HTML, page, truncate=len(page) // 3)
        if fault == "page-garbage":
            return Response(200, HTML, bytes(random.Random(article.slug).randbytes(8192)))
        if fault == "page-wrong-type":
            return Response(200, "application/octet-stream", page)
        if fault == "page-redirect-loop":
            return Response(302, headers={"Location": article_path(article)})
        if fault == "page-gzip-bomb":
            return Response(200, HTML, gzip_bomb(), headers={"Content-Encoding": "gzip"})
        if fault == "page-huge":
            with_length = article.slug.endswith("0")
            return Response(
                200,
                HTML,
                stream=lambda: _huge_chunks(HUGE_BYTES),
                length=HUGE_BYTES + 28 if with_length else None,
            )
        return Response(200, HTML, page, last_modified=article.published_at)

    # -- expectations ----------------------------------------------------------------

    def manifest(self) -> list[Expected]:
        """The expected record of every feed and article link of the fault outlets (valid for
        deadlines and timeouts shorter than a drip or a hang, and max_bytes below 50 MB)."""
        out: list[Expected] = []
        for fault_outlet in self.outlets:
            fault = fault_outlet.fault
            for url in fault_outlet.feed_urls():
                out.append(
                    Expected("feed", url, fault_outlet.slug, fault, *_feed_expectation(fault))
                )
            for link, _page, reason in self.links(fault_outlet):
                outcomes, reasons, stored = _page_expectation(fault)
                if fault == "page-internal":
                    if REBIND_NAME in link:
                        if self.public_names:  # the pinned connection gets the public answer
                            outcomes, reasons, stored = ("ok",), (), True
                        else:  # no such name outside the simulated network
                            outcomes, reasons, stored = ("error",), ("does not resolve",), False
                    elif self.public_names:
                        outcomes, reasons, stored = ("error",), (reason,), False
                    elif reason in ("backslash", "user info", "ambiguous numeric host"):
                        outcomes, reasons, stored = ("error",), (reason,), False
                    else:  # private hosts allowed: what the configuration permits is reached
                        outcomes, reasons, stored = ("ok", "error", "fallback"), (), None
                out.append(
                    Expected("article", link, fault_outlet.slug, fault, outcomes, reasons, stored)
                )
        return out


def _feed_expectation(fault: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if fault in NO_ITEMS:
        reasons = {
            "feed-hang": ("timeout", "deadline exceeded", "budget"),
            "feed-drip": ("deadline exceeded", "budget"),
            "feed-5xx": ("HTTP 502",),
            "feed-429": ("Retry-After",),
            "feed-truncated": ("IncompleteRead", "network error"),
            "feed-garbage": ("not a feed", "malformed feed"),
            "feed-wrong-type": ("not a feed", "malformed feed"),
            "feed-redirect-loop": ("redirects",),
            "feed-gzip-bomb": ("larger than",),
            "feed-huge": ("larger than",),
            "feed-entity-bomb": ("feed refused",),
            "feed-entity-fallback": ("feed refused",),
            "feed-path-bodies": ("not a feed", "malformed feed"),
        }[fault]
        return ("error",), reasons
    return ("ok", "salvaged", "not-modified"), ()


def _page_expectation(fault: str) -> tuple[tuple[str, ...], tuple[str, ...], bool | None]:
    failing = {
        "page-hang": ("timeout", "deadline exceeded", "budget"),
        "page-drip": ("deadline exceeded", "budget"),
        "page-5xx": ("HTTP 500", "budget"),
        "page-429": ("Retry-After",),
        "page-truncated": ("IncompleteRead", "network error", "budget"),
        "page-garbage": ("no main text", "extractor failed"),
        "page-redirect-loop": ("redirects",),
        "page-gzip-bomb": ("larger than",),
        "page-huge": ("larger than",),
    }
    if fault in failing:
        return ("error",), failing[fault], False
    if fault == "page-wrong-type":
        return ("fallback",), ("not an HTML page",), True
    return ("ok",), (), True
