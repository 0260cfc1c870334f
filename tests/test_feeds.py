"""Feed parsing from bytes: entries, identity, dates, plain text and salvage of bad feeds."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from ingest.feeds import FeedEntry, entity_expansion, html_to_text, parse_feed

REPO = Path(__file__).resolve().parent.parent

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel>
<title>Alpha &amp; Co News</title>
<link>https://alpha.example/</link>
<description>Latest</description>
<item>
  <title>Roads &amp;amp; bridges &#8211; an update</title>
  <link>https://Alpha.Example/2025/01/roads.html?utm_source=rss&amp;utm_medium=feed#top</link>
  <guid isPermaLink="false">roads-1</guid>
  <pubDate>Fri, 10 Jan 2025 11:30:00 +0530</pubDate>
  <author>desk@alpha.example (Asha Rao)</author>
  <description>&lt;p&gt;First para &amp;amp; more.&lt;/p&gt;&lt;p&gt;Second &lt;b&gt;bold&lt;/b&gt;
  para.&lt;/p&gt;</description>
  <content:encoded><![CDATA[<p>Full one.</p><p>Full two &eacute;t&eacute;.</p>
  <ul><li>Item a</li><li>Item b</li></ul><p>Full<br/>three.</p>]]></content:encoded>
</item>
<item>
  <title>Roads again (same story, other tracking)</title>
  <link>https://alpha.example/2025/01/roads.html?fbclid=IwAR0xyz</link>
  <pubDate>Fri, 10 Jan 2025 12:00:00 +0000</pubDate>
</item>
<item>
  <title>Story by id</title>
  <link>https://alpha.example/story?id=3&amp;gclid=abc</link>
  <pubDate>Sat, 11 Jan 2025 09:00:00 GMT</pubDate>
  <description>Plain summary.</description>
</item>
<item>
  <title>No date and no link</title>
  <description>Dropped: nothing to fetch.</description>
</item>
</channel>
</rss>
"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Beta Blog</title>
  <id>urn:uuid:beta</id>
  <updated>2025-01-10T13:00:00Z</updated>
  <entry>
    <title type="html">A &amp;quot;quoted&amp;quot; post &amp;amp; more — café</title>
    <link rel="alternate" type="text/html"
          href="https://beta.example/posts/one/?utm_campaign=spring&amp;utm_source=atom"/>
    <id>urn:uuid:1</id>
    <published>2025-01-10T12:00:00+02:00</published>
    <updated>2025-01-10T13:00:00Z</updated>
    <author><name>Blogger Bee</name></author>
    <summary type="html">&lt;p&gt;Sum one.&lt;/p&gt;&lt;p&gt;Sum two.&lt;/p&gt;</summary>
    <content type="html">&lt;div&gt;&lt;p&gt;Body one &amp;lt;not a tag&amp;gt;.&lt;/p&gt;
      &lt;p&gt;Body two.&lt;/p&gt;&lt;/div&gt;</content>
  </entry>
  <entry>
    <title>Only updated, link in id</title>
    <id>https://beta.example/posts/two</id>
    <updated>2025-01-11T00:15:00-05:00</updated>
  </entry>
</feed>
""".encode()

MALFORMED = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Gamma & Sons</title>
<item><title>One & two</title><link>https://gamma.example/a?utm_source=x</link>
<pubDate>Fri, 10 Jan 2025 08:00:00 GMT</pubDate><description>First text</description></item>
<item><title>Three</title><link>https://gamma.example/b</link><description>more text
</channel>
"""

HTML_PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><title>Alpha News</title></head>
<body><h1>Welcome</h1><p>This is a home page, not a feed.</p>
<a href="https://alpha.example/story.html">A story</a></body></html>
"""


def test_rss_entries() -> None:
    parsed = parse_feed(RSS, "https://alpha.example/feed.xml", "application/rss+xml")
    assert parsed.is_feed
    assert parsed.problem is None
    assert parsed.title == "Alpha & Co News"
    assert [e.canonical_url for e in parsed.entries] == [
        "https://alpha.example/2025/01/roads.html",
        "https://alpha.example/story?id=3",
    ]
    roads, story = parsed.entries
    assert roads.url == (
        "https://Alpha.Example/2025/01/roads.html?utm_source=rss&utm_medium=feed#top"
    )
    assert roads.title == "Roads & bridges \u2013 an update"
    assert roads.published_at == datetime(2025, 1, 10, 6, 0, tzinfo=UTC)
    assert roads.published_at.utcoffset() is not None
    assert roads.published_at.utcoffset().total_seconds() == 0
    assert "Asha Rao" in roads.author
    assert roads.summary == "First para & more.\n\nSecond bold para."
    assert (
        roads.content
        == "Full one.\n\nFull two \u00e9t\u00e9.\n\nItem a\n\nItem b\n\nFull\n\nthree."
    )
    assert roads.best_text == roads.content

    assert story.title == "Story by id"
    assert story.published_at == datetime(2025, 1, 11, 9, 0, tzinfo=UTC)
    assert story.summary == "Plain summary."
    assert story.content == ""
    assert story.best_text == "Plain summary."
    assert story.author == ""


def test_duplicate_links_collapse_to_the_first_entry() -> None:
    parsed = parse_feed(RSS, "https://alpha.example/feed.xml", "application/rss+xml")
    roads = [e for e in parsed.entries if "roads" in e.canonical_url]
    assert len(roads) == 1
    assert roads[0].title.startswith("Roads & bridges")


def test_atom_entries() -> None:
    parsed = parse_feed(ATOM, "https://beta.example/atom.xml", "application/atom+xml")
    assert parsed.is_feed and parsed.problem is None
    assert parsed.title == "Beta Blog"
    one, two = parsed.entries
    assert one.canonical_url == "https://beta.example/posts/one/"
    assert one.title == 'A "quoted" post & more \u2014 caf\u00e9'
    assert one.published_at == datetime(2025, 1, 10, 10, 0, tzinfo=UTC)  # published wins
    assert one.author == "Blogger Bee"
    assert one.summary == "Sum one.\n\nSum two."
    assert one.content == "Body one <not a tag>.\n\nBody two."
    # an entry without a link falls back to an http(s) id; updated stands in for published
    assert two.url == two.canonical_url == "https://beta.example/posts/two"
    assert two.published_at == datetime(2025, 1, 11, 5, 15, tzinfo=UTC)
    assert two.summary == "" and two.content == ""


@pytest.mark.parametrize("content_type", ["", "text/xml", "text/plain", "text/html; charset=utf-8"])
def test_well_formed_feed_is_not_malformed_whatever_the_content_type(content_type: str) -> None:
    parsed = parse_feed(ATOM, "https://beta.example/atom.xml", content_type)
    assert parsed.is_feed
    assert parsed.problem is None
    assert parsed.entries[0].title.endswith("caf\u00e9")  # decoded as UTF-8, not Latin-1


def test_malformed_feed_is_salvaged() -> None:
    parsed = parse_feed(MALFORMED, "https://gamma.example/feed", "application/rss+xml")
    assert parsed.is_feed
    assert parsed.problem is not None and parsed.problem.startswith("malformed feed:")
    assert [e.canonical_url for e in parsed.entries] == [
        "https://gamma.example/a",
        "https://gamma.example/b",
    ]
    assert parsed.entries[0].title == "One & two"
    assert parsed.entries[0].published_at == datetime(2025, 1, 10, 8, 0, tzinfo=UTC)
    assert parsed.title == "Gamma & Sons"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(HTML_PAGE, "text/html; charset=utf-8", id="html-page"),
        pytest.param(HTML_PAGE, "", id="html-page-untyped"),
        pytest.param(b"", "", id="empty"),
        pytest.param(b"   \n", "application/rss+xml", id="blank"),
        pytest.param(b'{"items": []}', "application/json", id="json"),
    ],
)
def test_not_a_feed(body: bytes, content_type: str) -> None:
    parsed = parse_feed(body, "https://alpha.example/feed", content_type)
    assert parsed.is_feed is False
    assert parsed.entries == ()
    assert parsed.problem  # says why


def test_entries_without_any_link_are_dropped() -> None:
    body = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>
    <item><title>No link</title><guid isPermaLink="false">not-a-url</guid></item></channel></rss>"""
    parsed = parse_feed(body, "https://x.example/feed", "application/rss+xml")
    assert parsed.is_feed and parsed.problem is None
    assert parsed.entries == ()


def test_best_text_prefers_the_longer_text() -> None:
    entry = FeedEntry("u", "u", "t", None, "", summary="a longer summary", content="short")
    assert entry.best_text == "a longer summary"


@pytest.mark.parametrize(
    ("fragment", "text"),
    [
        ("", ""),
        ("plain words", "plain words"),
        ("<p>One &amp; <em>two</em></p>\n<p>Three&lt;x&gt;</p>", "One & two\n\nThree<x>"),
        ("<div><p>A</p></div><div>B</div>", "A\n\nB"),
        ("line one<br>line two<BR/>line three", "line one\n\nline two\n\nline three"),
        ("<ul><li>x</li><li>y</li></ul>", "x\n\ny"),
        ("<h2>Head</h2><blockquote>Quote</blockquote>", "Head\n\nQuote"),
        ("<p>  spread \t over\n  lines  </p><p></p><p>next</p>", "spread over lines\n\nnext"),
        ("<p>caf&eacute; &#8220;q&#8221; &#x2014;</p>", "caf\u00e9 \u201cq\u201d \u2014"),
        ('<p>see <a href="https://x.example/?a=1&amp;b=2">this</a>.</p>', "see this ."),
        ("<script>ignored()</script>", "ignored()"),
    ],
)
def test_html_to_text(fragment: str, text: str) -> None:
    assert html_to_text(fragment) == text


# ----------------------------------------------------------------------------- hostile bodies

SECRET_FEED = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Local secret</title>
<item><title>secret entry</title><link>https://secret.example/1</link></item></channel></rss>
"""


def test_a_body_that_is_a_local_path_is_never_opened(tmp_path: Path) -> None:
    secret = tmp_path / "secret.xml"
    secret.write_bytes(SECRET_FEED)
    for body in (str(secret).encode(), b"file://" + str(secret).encode()):
        parsed = parse_feed(body, "https://x.example/feed", "application/rss+xml")
        assert parsed.entries == () and parsed.title == ""
        assert parsed.is_feed is False and parsed.problem is not None


def test_etc_passwd_as_a_body_is_just_text() -> None:
    parsed = parse_feed(b"/etc/passwd", "https://x.example/feed", "application/rss+xml")
    assert parsed.is_feed is False and parsed.entries == () and parsed.title == ""
    assert parsed.problem is not None and "not well-formed" in parsed.problem


def test_a_fifo_path_as_a_body_is_never_opened(tmp_path: Path) -> None:
    """Opening a FIFO for reading blocks until a writer comes: the writer here only connects
    (and serves a feed) if the parser opened the FIFO."""
    fifo = tmp_path / "feed.fifo"
    os.mkfifo(fifo)
    done = threading.Event()
    connected: list[bool] = []

    def writer() -> None:
        while not done.is_set():
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO while nobody reads
            except OSError:
                done.wait(0.01)
                continue
            connected.append(True)
            os.write(fd, SECRET_FEED)
            os.close(fd)
            return

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        parsed = parse_feed(str(fifo).encode(), "https://x.example/feed", "application/rss+xml")
    finally:
        done.set()
        thread.join()
    assert connected == []
    assert parsed.entries == () and parsed.is_feed is False


def test_a_url_as_a_body_is_never_fetched() -> None:
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(SECRET_FEED)))
            self.end_headers()
            self.wfile.write(SECRET_FEED)

        def log_message(self, *args: object) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/feed.xml"
        parsed = parse_feed(url.encode(), "https://x.example/feed", "application/rss+xml")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    assert hits == []
    assert parsed.entries == ()


DEV_ZERO = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # an old parser reading /dev/zero
from ingest.feeds import parse_feed
parsed = parse_feed(b"/dev/zero", "https://x.example/feed", "application/rss+xml")
print(parsed.is_feed, len(parsed.entries))
"""


def test_dev_zero_as_a_body_is_never_read() -> None:
    result = subprocess.run(
        [sys.executable, "-c", DEV_ZERO], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False 0"


# ----------------------------------------------------------------------------- entities

BILLION_LAUGHS_LINES = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
<!ENTITY lol "lol">
<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0"><channel><title>&lol9;</title>
<item><title>&lol9;</title><link>https://x.example/1</link></item></channel></rss>
"""
# the same on one line: feedparser's DOCTYPE rewriting reads declarations at line starts only,
# so these reach the XML parser unchanged
BILLION_LAUGHS_ONE_LINE = (
    b'<?xml version="1.0"?><!DOCTYPE rss ['
    + b"".join(line for line in BILLION_LAUGHS_LINES.splitlines()[2:12])
    + b']><rss version="2.0"><channel><title>&lol9;</title><item><title>&lol9;</title>'
    + b"<link>https://x.example/1</link></item></channel></rss>"
)


def fallback_bomb(value_bytes: int = 10_000, references: int = 10_000) -> bytes:
    """A malformed 40 KB feed whose title expands to value_bytes * references (100 MB) in
    feedparser's fallback parser: one large entity, referenced many times."""
    return (
        b'<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE rss [\n<!ENTITY a "'
        + b"x" * value_bytes
        + b'">\n]>\n<rss version="2.0"><channel><title>T</title>\n<item><title>'
        + b"&a;" * references
        + b"</title><link>https://x.example/1</link>\n"  # never closed: the fallback parser
    )


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param(BILLION_LAUGHS_LINES, "more than 1000000 bytes", id="billion-laughs"),
        pytest.param(BILLION_LAUGHS_ONE_LINE, "more than 1000000 bytes", id="one-line"),
        pytest.param(fallback_bomb(), "more than 1000000 bytes", id="fallback-parser"),
        pytest.param(
            b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY % p "<!ENTITY a \'x\'>">\n]><rss/>',
            "cannot be bounded",
            id="parameter-entity",
        ),
        pytest.param(
            b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a unquoted>\n]><rss/>',
            "in a form whose expansion cannot be bounded",
            id="unreadable-declaration",
        ),
        pytest.param(
            b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "&b;"><!ENTITY b "&a;">]>'
            b"<rss><channel><title>&a;</title></channel></rss>",
            "refers to itself",
            id="recursive",
        ),
    ],
)
def test_entity_bombs_are_refused(body: bytes, problem: str) -> None:
    parsed = parse_feed(body, "https://x.example/feed", "application/rss+xml")
    assert parsed.is_feed is False and parsed.entries == ()
    assert parsed.problem is not None and parsed.problem.startswith("feed refused")
    assert problem in parsed.problem


def test_external_entities_are_never_loaded() -> None:
    body = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
<!ENTITY a SYSTEM "file:///etc/passwd">
<!ENTITY % lat1 PUBLIC "-//W3C//ENTITIES Latin 1 for XHTML//EN" "http://x.example/lat1.ent">
]>
<rss version="2.0"><channel><title>Feed &a;</title>
<item><title>one</title><link>https://x.example/1</link></item></channel></rss>
"""
    parsed = parse_feed(body, "https://x.example/feed", "application/rss+xml")
    assert [e.title for e in parsed.entries] == ["one"]
    assert "root:" not in parsed.title


def test_utf16_entity_bomb_is_refused() -> None:
    body = fallback_bomb().decode().replace('encoding="utf-8"', 'encoding="utf-16"')
    parsed = parse_feed(body.encode("utf-16"), "https://x.example/feed", "")
    assert parsed.problem is not None and "more than 1000000 bytes" in parsed.problem


def test_modest_entities_are_expanded() -> None:
    body = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
<!ENTITY nbsp "&#160;">
<!ENTITY org "Indus Press Agency">
]>
<rss version="2.0"><channel><title>&org;</title>
<item><title>From&nbsp;the &org; desk</title><link>https://x.example/1</link></item>
</channel></rss>
"""
    parsed = parse_feed(body, "https://x.example/feed", "application/rss+xml")
    assert parsed.problem is None and parsed.title == "Indus Press Agency"
    assert parsed.entries[0].title == "From\u00a0the Indus Press Agency desk"
    assert entity_expansion(body, {}) == 2 * (len("Indus Press Agency") - len("&org;"))


MEASURE_BOMB = """
import sys
from ingest.feeds import parse_feed
sys.path.insert(0, "tests")
from test_feeds import fallback_bomb
parsed = parse_feed(fallback_bomb(), "https://x.example/feed", "application/rss+xml")
peak = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(len(parsed.entries), max((len(e.title) for e in parsed.entries), default=0), peak)
"""


def test_the_fallback_parser_bomb_stays_within_a_modest_memory_bound() -> None:
    """Peak memory of a fresh process that parses the 40 KB bomb: the 100 MB title is never
    built (it was, and took the process past 300 MB)."""
    result = subprocess.run(
        [sys.executable, "-c", MEASURE_BOMB], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert result.returncode == 0, result.stderr[-2000:]
    entries, longest_title, peak_kib = (int(v) for v in result.stdout.split())
    assert (entries, longest_title) == (0, 0)
    assert peak_kib < 150 * 1024
