"""The outlet simulator: corpus loading, feeds, pages, conditional requests and faults."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import threading
import time
import tomllib
from calendar import timegm
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import feedparser
import httpx
import pytest

from ingest.config import parse_outlets
from ingest.feeds import parse_feed
from simulator import (
    DEMO_ROOT,
    CorpusError,
    DemoCorpus,
    OutletSimulator,
    load_corpus,
)
from simulator.faults import FAULT_NAMES, parse_faults
from simulator.network import SimulatedNetwork
from simulator.pages import CHROMES, render_article_page

REPO = Path(__file__).resolve().parent.parent
START = datetime(2025, 1, 10, tzinfo=UTC)

OUTLETS_TOML = """\
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

[[outlets]]
slug = "beta-blog"
name = "Beta Blog"
country = "PK"
kind = "blog"
feed_format = "atom"
feed_content = "full"
chrome = "blog"
language = "en"

[[outlets]]
slug = "gamma-digest"
name = "Gamma Digest"
country = "INT"
kind = "aggregator"
feed_format = "rss"
feed_content = "full"
chrome = "aggregator"
language = "en"

[[outlets]]
slug = "delta-wire"
name = "Delta Wire"
country = "INT"
kind = "agency"
feed_format = "rss"
feed_content = "summary"
chrome = "agency"
language = "en"
feed_fault = "server-error"

[[outlets]]
slug = "epsilon-voice"
name = "Epsilon Voice"
country = "PK"
kind = "blog"
feed_format = "rss"
feed_content = "full"
chrome = "blog"
language = "en"
feed_fault = "malformed"

[[outlets]]
slug = "zeta-defence"
name = "Zeta Defence"
country = "IN"
kind = "defence"
feed_format = "atom"
feed_content = "summary"
chrome = "defence"
language = "en"
feed_fault = "malformed"
"""

TRICKY = "Officials said \"no comment\" & the <b>figures</b> were 'disputed' by all sides."

ARTICLES: dict[str, str] = {
    "alpha-news/first-story": f"""\
+++
outlet = "alpha-news"
day = 0
hour = 6
title = "First story: roads & bridges"
author = "Asha Rao"
narrative = "mass-resignations"
edit = "original"
+++
The opening paragraph of the first story says that something happened
on a road near the border.

{TRICKY}

A third paragraph closes the story with a quote from a local shopkeeper.
""",
    "alpha-news/second-story": """\
+++
outlet = "alpha-news"
day = 1
hour = 9.5
title = "Second story about the bridge"
narrative = ""
edit = "unrelated"
+++
Second story, first paragraph, about the bridge that was rebuilt.

Second paragraph of the second story.

Third paragraph of the second story.

Fourth paragraph of the second story.
""",
    "alpha-news/missing-page": """\
+++
outlet = "alpha-news"
day = 1
hour = 12
title = "A page that went missing"
narrative = ""
edit = "unrelated"
fault = "404"
+++
This page is listed in the feed but answers 404.
""",
    "alpha-news/slow-page": """\
+++
outlet = "alpha-news"
day = 2
hour = 8
title = "A page that never answers in time"
narrative = ""
edit = "unrelated"
fault = "timeout"
+++
This page stalls before answering.
""",
    "alpha-news/report-pdf": """\
+++
outlet = "alpha-news"
day = 2
hour = 10
title = "The full report (PDF)"
narrative = ""
edit = "unrelated"
fault = "pdf"
+++
This article is a PDF document.
""",
    "beta-blog/blog-post": """\
+++
outlet = "beta-blog"
day = 0
hour = 12
title = "A blog post"
author = "Blogger Bee"
narrative = "surrendered-again"
edit = "verbatim-new-intro"
+++
The blog's first paragraph.

The blog's second paragraph with more detail.
""",
    "beta-blog/blog-later": """\
+++
outlet = "beta-blog"
day = 2
hour = 1
title = "A later blog post"
narrative = ""
edit = "unrelated"
+++
A later post, first paragraph.

A later post, second paragraph.
""",
    "gamma-digest/digest-one": """\
+++
outlet = "gamma-digest"
day = 1
hour = 3
title = "Digest one"
narrative = "legitimacy-crisis"
edit = "excerpt"
+++
Digest paragraph one sets the scene.

Digest paragraph two continues the argument.

Digest paragraph three is behind the paywall and has quite a few words in it so the teaser is cut.

Digest paragraph four is behind the paywall too.
""",
    "delta-wire/wire-one": """\
+++
outlet = "delta-wire"
day = 0
hour = 1
title = "Wire one"
narrative = ""
edit = "unrelated"
+++
A wire report.
""",
    "epsilon-voice/voice-one": """\
+++
outlet = "epsilon-voice"
day = 0
hour = 2
title = "Voice one"
narrative = ""
edit = "unrelated"
+++
Voice one paragraph.
""",
    "epsilon-voice/voice-two": """\
+++
outlet = "epsilon-voice"
day = 1
hour = 2
title = "Voice two"
narrative = ""
edit = "unrelated"
+++
Voice two paragraph.
""",
    "zeta-defence/def-one": """\
+++
outlet = "zeta-defence"
day = 1
hour = 5
title = "Defence one & two"
narrative = "casualties-concealed"
edit = "numbers-changed"
+++
Defence paragraph one.

Defence paragraph two.
""",
}


def write_corpus(root: Path, articles: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "outlets.toml").write_text(OUTLETS_TOML, encoding="utf-8")
    for name, text in (ARTICLES if articles is None else articles).items():
        path = root / "articles" / f"{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def corpus_root(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "corpus")


@pytest.fixture
def corpus(corpus_root: Path) -> DemoCorpus:
    return load_corpus(corpus_root)


@pytest.fixture
def sim(corpus: DemoCorpus):
    with OutletSimulator(corpus, timeout_delay=1.0) as simulator:
        yield simulator


@pytest.fixture
def client():
    with httpx.Client(timeout=5.0) as http:
        yield http


def at_end_of_day(day: int) -> datetime:
    return START + timedelta(days=day + 1) - timedelta(seconds=1)


# ----------------------------------------------------------------------------- corpus


def test_load_fixture_corpus(corpus: DemoCorpus, corpus_root: Path) -> None:
    assert corpus.root == corpus_root.resolve()
    assert corpus.start == START
    assert [o.slug for o in corpus.outlets] == [
        "alpha-news",
        "beta-blog",
        "gamma-digest",
        "delta-wire",
        "epsilon-voice",
        "zeta-defence",
    ]
    assert corpus.outlet("delta-wire").feed_fault == "server-error"
    assert corpus.outlet("alpha-news").feed_fault == ""
    with pytest.raises(KeyError):
        corpus.outlet("nope")

    assert len(corpus.articles) == len(ARTICLES)
    keys = [(a.published_at, a.outlet, a.slug) for a in corpus.articles]
    assert keys == sorted(keys)

    first = corpus.article("alpha-news", "first-story")
    assert first.published_at == datetime(2025, 1, 10, 6, tzinfo=UTC)
    assert first.path == "articles/alpha-news/first-story.txt"
    assert first.author == "Asha Rao"
    assert first.narrative == "mass-resignations"
    assert first.edit == "original"
    assert first.fault == ""
    assert first.paragraphs == (
        "The opening paragraph of the first story says that something happened "
        "on a road near the border.",
        TRICKY,
        "A third paragraph closes the story with a quote from a local shopkeeper.",
    )
    second = corpus.article("alpha-news", "second-story")
    assert second.published_at == datetime(2025, 1, 11, 9, 30, tzinfo=UTC)
    assert second.author == ""
    assert corpus.article("alpha-news", "report-pdf").fault == "pdf"

    assert [a.slug for a in corpus.released(START)] == []
    assert [a.slug for a in corpus.released(at_end_of_day(0))] == [
        "wire-one",
        "voice-one",
        "first-story",
        "blog-post",
    ]
    assert len(corpus.released(at_end_of_day(5))) == len(ARTICLES)
    with pytest.raises(ValueError):
        corpus.released(datetime(2025, 1, 11))  # naive


def _replace_article(key: str, old: str, new: str) -> dict[str, str]:
    articles = dict(ARTICLES)
    assert old in articles[key]
    articles[key] = articles[key].replace(old, new, 1)
    return articles


def _without_line(key: str, prefix: str) -> dict[str, str]:
    articles = dict(ARTICLES)
    lines = articles[key].splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith(prefix)]
    assert len(kept) == len(lines) - 1
    articles[key] = "".join(kept)
    return articles


@pytest.mark.parametrize("key", ["outlet", "day", "hour", "title", "narrative", "edit"])
def test_missing_required_article_key(tmp_path: Path, key: str) -> None:
    root = write_corpus(tmp_path / "c", _without_line("beta-blog/blog-post", f"{key} ="))
    with pytest.raises(CorpusError, match=rf"blog-post\.txt: missing required key '{key}'"):
        load_corpus(root)


@pytest.mark.parametrize(
    ("articles", "outlets_edit", "expected"),
    [
        pytest.param(
            _replace_article("alpha-news/first-story", 'outlet = "alpha-news"', 'outlet = "nope"'),
            None,
            r"first-story\.txt: unknown outlet 'nope'",
            id="unknown-outlet",
        ),
        pytest.param(
            _replace_article(
                "alpha-news/first-story", 'outlet = "alpha-news"', 'outlet = "beta-blog"'
            ),
            None,
            r"first-story\.txt: outlet 'beta-blog' does not match its folder 'alpha-news'",
            id="outlet-not-matching-folder",
        ),
        pytest.param(
            {**ARTICLES, "omega-news/stray": ARTICLES["alpha-news/first-story"]},
            None,
            r"omega-news: unknown outlet 'omega-news'",
            id="unknown-outlet-folder",
        ),
        pytest.param(
            _replace_article(
                "alpha-news/first-story", 'edit = "original"', 'fault = "500"\nedit = "original"'
            ),
            None,
            r"first-story\.txt: unknown fault '500'",
            id="unknown-fault",
        ),
        pytest.param(
            _replace_article("alpha-news/first-story", 'edit = "original"', 'edit = "rewritten"'),
            None,
            r"first-story\.txt: unknown edit 'rewritten'",
            id="unknown-edit",
        ),
        pytest.param(
            _replace_article("alpha-news/first-story", "day = 0", "day = -1"),
            None,
            r"first-story\.txt: 'day' must be a whole number",
            id="negative-day",
        ),
        pytest.param(
            _replace_article("alpha-news/first-story", "hour = 6", "hour = 24"),
            None,
            r"first-story\.txt: 'hour' must be a number in \[0, 24\)",
            id="hour-out-of-range",
        ),
        pytest.param(
            _replace_article("alpha-news/first-story", 'author = "Asha Rao"', 'autor = "A"'),
            None,
            r"first-story\.txt: unknown key\(s\) autor",
            id="misspelt-key",
        ),
        pytest.param(
            {
                **ARTICLES,
                "delta-wire/empty": '+++\noutlet = "delta-wire"\nday = 0\nhour = 1\n'
                'title = "Empty"\nnarrative = ""\nedit = "unrelated"\n+++\n\n   \n',
            },
            None,
            r"empty\.txt: empty body",
            id="empty-body",
        ),
        pytest.param(
            {**ARTICLES, "delta-wire/no-front": "Just text, no front matter.\n"},
            None,
            r"no-front\.txt: must start with a '\+\+\+' line",
            id="no-front-matter",
        ),
        pytest.param(
            {**ARTICLES, "delta-wire/unclosed": '+++\noutlet = "delta-wire"\nBody.\n'},
            None,
            r"unclosed\.txt: front matter is not closed",
            id="unclosed-front-matter",
        ),
        pytest.param(
            {**ARTICLES, "delta-wire/bad-toml": "+++\noutlet = delta-wire\n+++\nBody.\n"},
            None,
            r"bad-toml\.txt: invalid TOML front matter",
            id="invalid-front-matter-toml",
        ),
        pytest.param(
            None,
            ('feed_format = "atom"', 'feed_format = "json"'),
            r"outlets\.toml outlet 'beta-blog': unknown feed_format 'json'",
            id="unknown-feed-format",
        ),
        pytest.param(
            None,
            ('feed_fault = "server-error"', 'feed_fault = "slow"'),
            r"outlets\.toml outlet 'delta-wire': unknown feed_fault 'slow'",
            id="unknown-feed-fault",
        ),
        pytest.param(
            None,
            ('slug = "beta-blog"', 'slug = "alpha-news"'),
            r"outlets\.toml outlet 'alpha-news': duplicate outlet slug",
            id="duplicate-outlet-slug",
        ),
        pytest.param(
            None,
            ('chrome = "blog"', 'chrome = "magazine"'),
            r"outlets\.toml outlet 'beta-blog': unknown chrome 'magazine'",
            id="unknown-chrome",
        ),
        pytest.param(
            None,
            ('name = "Beta Blog"\n', ""),
            r"outlets\.toml outlet #2: missing required key 'name'",
            id="outlet-missing-key",
        ),
        pytest.param(
            None,
            ("[[outlets]]", "[[outlets]"),
            r"outlets\.toml: invalid TOML",
            id="invalid-outlets-toml",
        ),
        pytest.param(
            None,
            ('start = "2025-01-10T00:00:00+00:00"', 'start = "2025-01-10T00:00:00"'),
            r"outlets\.toml: 'start' needs a UTC offset",
            id="naive-start",
        ),
    ],
)
def test_corpus_errors(
    tmp_path: Path,
    articles: dict[str, str] | None,
    outlets_edit: tuple[str, str] | None,
    expected: str,
) -> None:
    root = write_corpus(tmp_path / "c", articles)
    if outlets_edit is not None:
        text = (root / "outlets.toml").read_text(encoding="utf-8")
        old, new = outlets_edit
        assert old in text
        (root / "outlets.toml").write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(CorpusError, match=expected) as info:
        load_corpus(root)
    assert isinstance(info.value, ValueError)


def test_missing_outlets_toml(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"outlets\.toml: file not found"):
        load_corpus(tmp_path)


def test_demo_corpus_loads() -> None:
    demo = load_corpus(DEMO_ROOT)
    assert demo.root == DEMO_ROOT
    assert demo.outlets, "the demo corpus defines its outlets"
    slugs = {o.slug for o in demo.outlets}
    for article in demo.articles:
        assert article.outlet in slugs
        assert article.paragraphs
        assert (DEMO_ROOT / article.path).is_file()


# ----------------------------------------------------------------------------- feeds


def test_rss_feed_summary(sim: OutletSimulator, corpus: DemoCorpus, client: httpx.Client) -> None:
    sim.set_now(at_end_of_day(1))
    url = sim.feed_urls()["alpha-news"]
    assert url == f"{sim.base_url}/alpha-news/feed.xml"
    response = client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert response.headers["cache-control"] == "max-age=300"

    parsed = feedparser.parse(response.content)
    assert not parsed.bozo
    assert parsed.version == "rss20"
    assert parsed.feed.title == "Alpha News"
    released = [a for a in corpus.released(sim.now) if a.outlet == "alpha-news"]
    assert len(parsed.entries) == len(released) == 3
    newest_first = sorted(released, key=lambda a: a.published_at, reverse=True)
    for entry, article in zip(parsed.entries, newest_first, strict=True):
        clean = sim.article_url(article)
        assert entry.id == clean
        assert entry.link != clean
        parts = urlsplit(entry.link)
        assert parts._replace(query="").geturl() == clean
        assert parse_qs(parts.query) == {
            "utm_source": ["rss"],
            "utm_medium": ["feed"],
            "utm_campaign": ["alpha-news"],
        }
        assert entry.title == article.title
        assert entry.summary == article.paragraphs[0]
        assert "content" not in entry
        published = datetime.fromtimestamp(timegm(entry.published_parsed), UTC)
        assert published == article.published_at
    assert parsed.entries[-1].author == "Asha Rao"
    assert parsed.entries[0].title == "A page that went missing"


def test_atom_feed_full_content(sim: OutletSimulator, corpus: DemoCorpus, client) -> None:
    sim.set_now(at_end_of_day(3))
    url = sim.feed_urls()["beta-blog"]
    assert url.endswith("/beta-blog/atom.xml")
    response = client.get(url)
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo
    assert parsed.version == "atom10"
    assert [e.title for e in parsed.entries] == ["A later blog post", "A blog post"]
    post = corpus.article("beta-blog", "blog-post")
    entry = parsed.entries[1]
    assert entry.id == sim.article_url(post)
    assert "utm_source=rss" in entry.link and entry.link.startswith(sim.article_url(post) + "?")
    assert entry.author == "Blogger Bee"
    assert entry.summary == post.paragraphs[0]
    content = entry.content[0]
    assert content.type == "text/html"
    assert content.value == "".join(f"<p>{html.escape(p)}</p>" for p in post.paragraphs)
    assert datetime.fromtimestamp(timegm(entry.updated_parsed), UTC) == post.published_at


def test_set_now_releases_items_day_by_day(sim: OutletSimulator, corpus, client) -> None:
    assert sim.now == corpus.start
    feed = sim.feed_urls()["alpha-news"]
    second = corpus.article("alpha-news", "second-story")
    counts = []
    for day in range(4):
        sim.set_now(at_end_of_day(day))
        counts.append(len(feedparser.parse(client.get(feed).content).entries))
        page = client.get(sim.article_url(second))
        assert page.status_code == (200 if day >= 1 else 404)
    assert counts == [1, 3, 5, 5]

    sim.set_now(second.published_at - timedelta(seconds=1))
    assert client.get(sim.article_url(second)).status_code == 404
    sim.set_now(second.published_at)
    assert client.get(sim.article_url(second)).status_code == 200

    with pytest.raises(ValueError):
        sim.set_now(datetime(2025, 1, 12))  # naive
    sim.set_now(START)
    empty = feedparser.parse(client.get(feed).content)
    assert empty.entries == [] and not empty.bozo


def test_feed_conditional_requests(sim: OutletSimulator, corpus, client) -> None:
    sim.set_now(at_end_of_day(0))
    url = sim.feed_urls()["alpha-news"]
    first = client.get(url)
    etag = first.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]+"', etag)
    first_story = corpus.article("alpha-news", "first-story")
    assert first.headers["last-modified"] == format_datetime(first_story.published_at, usegmt=True)

    again = client.get(url)
    assert again.headers["etag"] == etag  # same released set, same bytes

    by_etag = client.get(url, headers={"If-None-Match": etag})
    assert by_etag.status_code == 304
    assert by_etag.content == b""
    assert by_etag.headers["etag"] == etag
    assert client.get(url, headers={"If-None-Match": f'W/{etag}, "other"'}).status_code == 304

    by_date = client.get(url, headers={"If-Modified-Since": first.headers["last-modified"]})
    assert by_date.status_code == 304 and by_date.content == b""
    earlier = format_datetime(first_story.published_at - timedelta(seconds=1), usegmt=True)
    assert client.get(url, headers={"If-Modified-Since": earlier}).status_code == 200
    # If-None-Match wins over If-Modified-Since
    both = client.get(
        url,
        headers={"If-None-Match": '"stale"', "If-Modified-Since": first.headers["last-modified"]},
    )
    assert both.status_code == 200
    assert sim.stats.not_modified == 3

    sim.set_now(at_end_of_day(1))
    changed = client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert changed.headers["last-modified"] == format_datetime(
        corpus.article("alpha-news", "missing-page").published_at, usegmt=True
    )


def test_empty_feed_last_modified_is_corpus_start(sim: OutletSimulator, client) -> None:
    response = client.get(sim.feed_urls()["gamma-digest"])
    assert response.status_code == 200
    assert response.headers["last-modified"] == format_datetime(START, usegmt=True)


def test_article_conditional_requests(sim: OutletSimulator, corpus, client) -> None:
    sim.set_now(at_end_of_day(2))
    article = corpus.article("alpha-news", "second-story")
    url = sim.article_url(article)
    first = client.get(url)
    assert first.status_code == 200
    assert first.headers["last-modified"] == format_datetime(article.published_at, usegmt=True)
    assert client.get(url, headers={"If-None-Match": first.headers["etag"]}).status_code == 304
    since = client.get(url, headers={"If-Modified-Since": first.headers["last-modified"]})
    assert since.status_code == 304
    assert client.get(url).headers["etag"] == first.headers["etag"]  # pages are stable


def test_server_error_feed(sim: OutletSimulator, client) -> None:
    sim.set_now(at_end_of_day(3))
    for _ in range(2):
        response = client.get(sim.feed_urls()["delta-wire"])
        assert response.status_code == 500
        assert "etag" not in response.headers


@pytest.mark.parametrize(("slug", "count"), [("epsilon-voice", 2), ("zeta-defence", 1)])
def test_malformed_feed_is_salvaged(sim: OutletSimulator, client, slug: str, count: int) -> None:
    sim.set_now(at_end_of_day(3))
    response = client.get(sim.feed_urls()[slug])
    assert response.status_code == 200
    body = response.content
    assert b" & " in body
    assert b"</rss>" not in body and b"</feed>" not in body
    parsed = feedparser.parse(body)
    assert parsed.bozo == 1
    assert len(parsed.entries) == count
    for entry in parsed.entries:
        assert entry.link.startswith(sim.base_url + f"/{slug}/")
        assert "utm_campaign" in entry.link
    if slug == "zeta-defence":
        assert parsed.entries[0].title == "Defence one & two"


# ----------------------------------------------------------------------------- faults


def test_fault_404_page_is_listed_but_missing(sim: OutletSimulator, corpus, client) -> None:
    sim.set_now(at_end_of_day(3))
    article = corpus.article("alpha-news", "missing-page")
    listed = feedparser.parse(client.get(sim.feed_urls()["alpha-news"]).content)
    assert sim.article_url(article) in {e.id for e in listed.entries}
    response = client.get(sim.article_url(article))
    assert response.status_code == 404
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "Page not found" in response.text
    assert "Alpha News" in response.text  # in the outlet's chrome


def test_fault_pdf(sim: OutletSimulator, corpus, client) -> None:
    sim.set_now(at_end_of_day(3))
    article = corpus.article("alpha-news", "report-pdf")
    url = sim.article_url(article)
    assert url.endswith("/alpha-news/2025/01/report-pdf.html")
    response = client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-1.4")
    assert response.content.rstrip().endswith(b"%%EOF")
    assert b"The full report \\(PDF\\)" in response.content


def test_fault_timeout_stalls_without_blocking_others(sim: OutletSimulator, corpus) -> None:
    sim.set_now(at_end_of_day(3))
    slow = sim.article_url(corpus.article("alpha-news", "slow-page"))
    fast = sim.article_url(corpus.article("alpha-news", "second-story"))
    results: dict[str, float] = {}

    def slow_request() -> None:
        began = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(slow, timeout=0.3)
        results["slow"] = time.monotonic() - began

    worker = threading.Thread(target=slow_request)
    worker.start()
    deadline = time.monotonic() + 2
    while sim.stats.hits(slow) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    began = time.monotonic()
    assert httpx.get(fast, timeout=2).status_code == 200  # served while the other stalls
    assert time.monotonic() - began < 0.3
    worker.join()
    assert 0.3 <= results["slow"] < 1.0


def test_fault_timeout_answers_after_the_delay(corpus: DemoCorpus) -> None:
    with OutletSimulator(corpus, timeout_delay=0.2) as simulator:
        simulator.set_now(at_end_of_day(3))
        began = time.monotonic()
        response = httpx.get(
            simulator.article_url(corpus.article("alpha-news", "slow-page")), timeout=3
        )
        assert response.status_code == 200
        assert time.monotonic() - began >= 0.2
        assert "This page stalls before answering." in response.text


def test_stop_does_not_wait_for_stalled_handlers(corpus: DemoCorpus) -> None:
    simulator = OutletSimulator(corpus, timeout_delay=30.0).start()
    prefix = f"outlet-simulator-{urlsplit(simulator.base_url).port}"

    def server_threads() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]

    simulator.set_now(at_end_of_day(3))
    url = simulator.article_url(corpus.article("alpha-news", "slow-page"))
    errors: list[BaseException] = []

    def stalled() -> None:
        try:
            httpx.get(url, timeout=10)
        except httpx.HTTPError as exc:
            errors.append(exc)

    worker = threading.Thread(target=stalled)
    worker.start()
    deadline = time.monotonic() + 2
    while simulator.stats.hits(url) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert simulator.stats.hits(url) == 1
    assert len(server_threads()) == 2  # the accept loop and the stalled handler
    began = time.monotonic()
    simulator.stop()
    assert time.monotonic() - began < 1.0
    worker.join(timeout=2)
    assert not worker.is_alive()
    assert errors  # the stalled request never got an answer
    deadline = time.monotonic() + 1
    while server_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server_threads() == []  # the stalled handler has ended too
    assert not simulator.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(simulator.base_url + "/", timeout=1)


# ----------------------------------------------------------------------------- pages


def _outside_story(page: str) -> str:
    """The page without its <head> and <main>: the outlet's chrome."""
    return re.sub(r"<head>.*?</head>|<main\b.*?</main>", "", page, flags=re.S)


def _share_rows(page: str) -> list[str]:
    return re.findall(r'<(div|p) class="[a-z]+-(?:share|tools)\b[^"]*">.*?</\1>', page, re.S)


def test_article_page(sim: OutletSimulator, corpus: DemoCorpus, client) -> None:
    sim.set_now(at_end_of_day(3))
    article = corpus.article("alpha-news", "first-story")
    url = sim.article_url(article)
    assert url == f"{sim.base_url}/alpha-news/2025/01/first-story.html"
    response = client.get(url + "?utm_source=rss&utm_medium=feed&utm_campaign=alpha-news")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="en">' in page
    title = html.escape(article.title)
    assert f"<title>{title} | Alpha News</title>" in page
    assert f'<meta property="og:title" content="{title}">' in page
    assert '<meta property="og:site_name" content="Alpha News">' in page
    assert '<meta property="article:published_time" content="2025-01-10T06:00:00+00:00">' in page
    assert '<meta name="author" content="Asha Rao">' in page
    assert f'<link rel="canonical" href="{url}">' in page
    assert '<meta name="description" content="The opening paragraph' in page

    story = page[page.index("<article") : page.index("</article>")]
    assert f">{title}</h1>" in story
    assert "By Asha Rao" in story
    assert '<time datetime="2025-01-10T06:00:00+00:00">' in story
    for paragraph in article.paragraphs:
        assert f"<p>{html.escape(paragraph)}</p>" in story
    assert "<b>figures</b>" not in page
    assert "&lt;b&gt;figures&lt;/b&gt;" in story

    nav = re.search(r'<nav class="np-nav".*?</nav>', page, re.S)
    assert nav is not None and 8 <= nav.group(0).count("<li") <= 10
    assert 'aria-label="Breadcrumb"' in page
    assert "Accept all" in page  # cookie banner
    for label in ("Share on Facebook", "Share on X", "WhatsApp", "Copy link"):
        assert story.count(label) == 2  # a row above and one below the story
    assert "Click to start listening" in story
    assert CHROMES["portal"].newsletter_title in page
    assert "&copy; Alpha News." in page
    assert "Leave a Reply" not in page and "Content is protected" not in page
    assert sim.stats.tracked_requests == 1


def test_related_stories_link_earlier_articles(sim: OutletSimulator, corpus, client) -> None:
    sim.set_now(at_end_of_day(3))
    latest = corpus.article("alpha-news", "report-pdf")
    page = render_article_page(
        corpus.outlet("alpha-news"),
        corpus.article("alpha-news", "slow-page"),
        sim.base_url,
        related=[latest],
    ).decode()
    assert "Related stories" in page
    assert f'<a href="{sim.article_url(latest)}">{html.escape(latest.title)}</a>' in page

    served = client.get(sim.article_url(corpus.article("alpha-news", "second-story"))).text
    first = corpus.article("alpha-news", "first-story")
    assert "Related stories" in served
    assert f'href="{sim.article_url(first)}"' in served
    assert sim.article_url(corpus.article("alpha-news", "slow-page")) not in served


def test_chrome_identical_within_outlet_and_distinct_between_families(
    sim: OutletSimulator, corpus: DemoCorpus, client
) -> None:
    sim.set_now(at_end_of_day(3))

    def page(outlet: str, slug: str) -> str:
        response = client.get(sim.article_url(corpus.article(outlet, slug)))
        assert response.status_code == 200
        return response.text

    one, two = page("alpha-news", "first-story"), page("alpha-news", "second-story")
    assert _outside_story(one) == _outside_story(two)
    assert _share_rows(one) == _share_rows(two) and len(_share_rows(one)) == 2
    assert "Second story" not in _outside_story(two)

    blog_one, blog_two = page("beta-blog", "blog-post"), page("beta-blog", "blog-later")
    assert _outside_story(blog_one) == _outside_story(blog_two)
    assert _outside_story(blog_one) != _outside_story(one)
    defence = page("zeta-defence", "def-one")
    digest = page("gamma-digest", "digest-one")
    chromes = {
        _outside_story(p).replace(n, "")
        for p, n in [
            (one, "alpha-news"),
            (blog_one, "beta-blog"),
            (defence, "zeta-defence"),
            (digest, "gamma-digest"),
        ]
    }
    assert len(chromes) == 4

    for blog_page in (blog_one, blog_two):
        assert "Leave a Reply" in blog_page
        assert "Content is protected !!" in blog_page
        assert "Click to start listening" not in blog_page
    assert "Leave a Reply" in defence and "Content is protected" not in defence


def test_aggregator_paywall(sim: OutletSimulator, corpus, client) -> None:
    sim.set_now(at_end_of_day(3))
    article = corpus.article("gamma-digest", "digest-one")
    page = client.get(sim.article_url(article)).text
    story = page[page.index("<article") : page.index("</article>")]
    assert f"<p>{html.escape(article.paragraphs[0])}</p>" in story
    assert f"<p>{html.escape(article.paragraphs[1])}</p>" in story
    assert article.paragraphs[2] not in story and article.paragraphs[3] not in story
    assert "Subscribe to continue reading" in story
    teaser = re.search(r"<p class=\"dg-fade\">(.*?)</p>", story)
    assert teaser is not None
    assert teaser.group(1).endswith(" At........")
    assert article.paragraphs[2].startswith(teaser.group(1).removesuffix(" At........"))
    assert '"isAccessibleForFree": false' in page

    feed = feedparser.parse(client.get(sim.feed_urls()["gamma-digest"]).content)
    full = feed.entries[0].content[0].value
    for paragraph in article.paragraphs:
        assert html.escape(paragraph) in full


def test_index_robots_home_and_unknown_paths(sim: OutletSimulator, corpus, client) -> None:
    sim.set_now(at_end_of_day(0))
    index = client.get(sim.base_url + "/")
    assert index.status_code == 200
    for outlet in corpus.outlets:
        assert outlet.name in index.text
    assert 'href="/alpha-news/feed.xml"' in index.text
    assert 'href="/beta-blog/atom.xml"' in index.text

    robots = client.get(sim.base_url + "/robots.txt")
    assert robots.status_code == 200 and robots.headers["content-type"].startswith("text/plain")
    assert "User-agent: *" in robots.text

    home = client.get(sim.base_url + "/alpha-news/")
    assert home.status_code == 200
    assert "First story: roads &amp; bridges" in home.text
    assert "Second story" not in home.text  # not released yet
    redirect = client.get(sim.base_url + "/alpha-news")
    assert redirect.status_code == 301 and redirect.headers["location"] == "/alpha-news/"

    for path in (
        "/nope",
        "/nope/feed.xml",
        "/alpha-news/atom.xml",  # alpha publishes RSS
        "/alpha-news/2025/01/unknown.html",
        "/alpha-news/2024/01/first-story.html",
        "/favicon.ico",
    ):
        response = client.get(sim.base_url + path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "text/html; charset=utf-8"

    head = client.head(sim.feed_urls()["alpha-news"])
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(
        client.get(sim.feed_urls()["alpha-news"]).content
    )


def test_outlets_toml(sim: OutletSimulator, corpus: DemoCorpus) -> None:
    config = tomllib.loads(sim.outlets_toml(extra="[fetch]\ntimeout_seconds = 2"))
    assert config["allow_private_hosts"] is True
    # the simulated outlets share one host: no per-host request rate unless asked for
    assert config["fetch"] == {"timeout_seconds": 2, "per_host_rate": 0.0}
    assert tomllib.loads(sim.outlets_toml())["fetch"] == {"per_host_rate": 0.0}
    both = tomllib.loads(sim.outlets_toml(extra="[schedule]\nreport_cron = '0 1 * * *'"))
    assert both["fetch"] == {"per_host_rate": 0.0} and both["schedule"]["report_cron"]
    assert tomllib.loads(sim.outlets_toml(extra="[fetch]\nper_host_rate = 3.0"))["fetch"] == {
        "per_host_rate": 3.0
    }
    feeds = sim.feed_urls()
    assert [o["slug"] for o in config["outlets"]] == [o.slug for o in corpus.outlets]
    for table, outlet in zip(config["outlets"], corpus.outlets, strict=True):
        assert table == {
            "name": outlet.name,
            "slug": outlet.slug,
            "country": outlet.country,
            "kind": outlet.kind,
            "homepage": f"{sim.base_url}/{outlet.slug}/",
            "feeds": [feeds[outlet.slug]],
        }
    assert tomllib.loads(sim.outlets_toml())["allow_private_hosts"] is True


def test_stats(sim: OutletSimulator, client) -> None:
    sim.set_now(at_end_of_day(0))
    feed = sim.feed_urls()["alpha-news"]
    etag = client.get(feed).headers["etag"]
    client.get(feed, headers={"If-None-Match": etag})
    client.get(sim.base_url + "/missing")
    stats = sim.stats
    assert stats.requests == 3
    assert stats.not_modified == 1
    assert stats.hits(feed) == 2
    assert stats.path_hits == {"/alpha-news/feed.xml": 2, "/missing": 1}
    assert stats.status_counts == {200: 1, 304: 1, 404: 1}
    stats.reset()
    assert stats.requests == 0 and stats.path_hits == {}


def test_lifecycle(corpus: DemoCorpus) -> None:
    simulator = OutletSimulator(corpus)
    with pytest.raises(RuntimeError):
        _ = simulator.base_url
    with simulator as running:
        assert running is simulator and simulator.running
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", simulator.base_url)
        with pytest.raises(RuntimeError):
            simulator.start()
        simulator.release_all()
        assert simulator.now == corpus.articles[-1].published_at
        assert len(simulator.released()) == len(corpus.articles)
    assert not simulator.running
    simulator.stop()  # idempotent


# ----------------------------------------------------------------------------- command line


def test_command_line_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simulator", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert "--day-seconds" in result.stdout and "--port" in result.stdout


def test_command_line_serves_corpus(corpus_root: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator",
            "--port",
            "0",
            "--corpus",
            str(corpus_root),
            "--day-seconds",
            "0",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base_url), base_url
        feed = feedparser.parse(httpx.get(base_url + "/alpha-news/feed.xml", timeout=5).content)
        assert len(feed.entries) == 5  # --day-seconds 0 releases everything
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert out == ""  # nothing on stdout but the base URL


# ----------------------------------------------------------------------------- fault outlets


def test_parse_faults() -> None:
    assert parse_faults("all") == FAULT_NAMES
    assert parse_faults(" page-429 , feed-hang,page-429") == ("feed-hang", "page-429")
    with pytest.raises(ValueError, match="unknown fault.*feed-typo"):
        parse_faults("feed-hang,feed-typo")
    with pytest.raises(ValueError, match="none given"):
        parse_faults(" , ")


@pytest.fixture
def fault_sim(corpus: DemoCorpus):
    with OutletSimulator(corpus, faults=FAULT_NAMES, hang_seconds=30) as simulator:
        simulator.set_now(at_end_of_day(3))
        yield simulator


def test_fault_outlets_are_listed_and_each_has_its_own_address(fault_sim: OutletSimulator):
    config = parse_outlets(tomllib.loads(fault_sim.outlets_toml()))
    slugs = [o.outlet_id for o in config.outlets]
    assert slugs[-len(FAULT_NAMES) :] == [f"fault-{name}" for name in FAULT_NAMES]
    assert config.fetch.allow_private_hosts is True
    hosts = {urlsplit(o.homepage).hostname for o in config.outlets[-len(FAULT_NAMES) :]}
    assert len(hosts) == len(FAULT_NAMES) and "127.0.0.1" not in hosts
    manifest_feeds = {e.url for e in fault_sim.manifest() if e.kind == "feed"}
    assert manifest_feeds == {url for o in config.outlets for url in o.feeds}


def test_manifest_covers_every_link_the_fault_feeds_give(fault_sim: OutletSimulator, client):
    expected = {e.url: e for e in fault_sim.manifest()}
    good = [
        e for e in expected.values() if e.kind == "feed" and e.outcomes[0] in ("ok", "salvaged")
    ]
    assert {e.fault for e in good} >= {"feed-10k", "feed-dup-guids", "page-429", "page-internal"}
    links: set[str] = set()
    for feed in good:
        parsed = parse_feed(client.get(feed.url).content, feed.url)
        assert parsed.is_feed, feed.url
        links |= {e.url for e in parsed.entries}
    article_urls = {url for url, e in expected.items() if e.kind == "article"}
    assert links <= article_urls
    faulty = {
        e.url
        for e in expected.values()
        if e.kind == "article" and e.fault.startswith(("page-", "feed-"))
    }
    assert faulty <= links  # no expectation for a link no feed gives
    assert (
        sum(1 for e in expected.values() if e.fault == "feed-10k" and e.kind == "article") == 10_000
    )
    internal = [e for e in expected.values() if e.fault == "page-internal"]
    assert any("\\@" in e.url for e in internal) and any("@127.0.0.9" in e.url for e in internal)


def test_fault_feeds_answer_304_when_asked_again(fault_sim: OutletSimulator, client) -> None:
    for e in fault_sim.manifest():
        if e.kind == "feed" and e.fault in ("feed-dup-guids", "feed-10k", "page-5xx"):
            first = client.get(e.url)
            assert first.status_code == 200 and first.headers["etag"]
            again = client.get(e.url, headers={"If-None-Match": first.headers["etag"]})
            assert again.status_code == 304, e.url


def test_fault_behaviours_on_the_wire(fault_sim: OutletSimulator, client) -> None:
    urls = {e.fault: e.url for e in fault_sim.manifest() if e.kind == "feed"}
    assert client.get(urls["feed-5xx"]).status_code == 502
    too_many = client.get(urls["feed-429"])
    assert too_many.status_code == 429 and too_many.headers["retry-after"] == "3600"
    loop = client.get(urls["feed-redirect-loop"], follow_redirects=False)
    assert (
        loop.status_code == 302
        and loop.headers["location"] == urlsplit(urls["feed-redirect-loop"]).path
    )
    with client.stream("GET", urls["feed-gzip-bomb"]) as bomb:
        assert bomb.headers["content-encoding"] == "gzip"
        assert sum(len(part) for part in bomb.iter_raw()) < 300_000  # 200 MB inflated
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(urls["feed-truncated"])  # fewer bytes than its Content-Length
    with pytest.raises(httpx.ReadTimeout):
        client.get(urls["feed-drip"], timeout=httpx.Timeout(5.0, read=0.1))
    with pytest.raises(httpx.ReadTimeout):
        client.get(urls["feed-hang"], timeout=httpx.Timeout(5.0, read=0.3))
    with client.stream("GET", urls["feed-huge"]) as huge:
        assert "content-length" not in huge.headers
        read = 0
        for chunk in huge.iter_bytes():
            read += len(chunk)
            if read > 1_000_000:
                break
    path_bodies = [e.url for e in fault_sim.manifest() if e.fault == "feed-path-bodies"]
    assert {client.get(u).content for u in path_bodies} == {
        b"/etc/passwd",
        b"/dev/zero",
        b"file:///etc/passwd",
        f"http://127.0.0.9:{urlsplit(fault_sim.base_url).port}/secret/feed".encode(),
    }
    assert fault_sim.stats.address_hits.get("127.0.0.9", 0) == 0


def test_public_names_resolve_and_route_only_to_the_simulator(corpus: DemoCorpus) -> None:
    with OutletSimulator(corpus, faults=("page-internal",), public_names=True) as simulator:
        network = simulator.network()
        port = urlsplit(simulator.base_url).port
        assert simulator.base_url == f"http://news.sim.example:{port}"
        assert tomllib.loads(simulator.outlets_toml())["allow_private_hosts"] is False
        main = network.resolve("news.sim.example", 80)
        assert main == ["93.184.216.1"] and network.route(main[0], port) == ("127.0.0.1", port)
        assert network.resolve("rebind.faults.example", 80) == ["93.184.216.10"]
        assert network.resolve("rebind.faults.example", 80) == ["127.0.0.9"]
        with pytest.raises(ConnectionRefusedError):
            network.route("93.184.216.1", port + 1)  # no route: nothing leaves the machine
        with pytest.raises(OSError):
            network.resolve("elsewhere.example", 80)
        again = SimulatedNetwork.from_dict(network.to_dict())
        assert again.routes == network.routes and again.names == network.names
    with OutletSimulator(corpus) as plain, pytest.raises(RuntimeError):
        plain.network()


def test_command_line_with_faults_writes_outlets_and_manifest(
    corpus_root: Path, tmp_path: Path
) -> None:
    outlets, manifest = tmp_path / "outlets.toml", tmp_path / "manifest.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator",
            "--port",
            "0",
            "--corpus",
            str(corpus_root),
            "--day-seconds",
            "0",
            "--faults",
            "page-429,feed-dup-guids",
            "--outlets-out",
            str(outlets),
            "--manifest",
            str(manifest),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        config = parse_outlets(tomllib.loads(outlets.read_text()))
        assert [o.outlet_id for o in config.outlets][-2:] == [
            "fault-feed-dup-guids",
            "fault-page-429",
        ]
        rows = json.loads(manifest.read_text())
        assert {r["fault"] for r in rows} >= {"page-429", "feed-dup-guids"}
        assert all(set(r) >= {"kind", "url", "outcomes", "reasons", "stored"} for r in rows)
        assert httpx.get(base_url + "/fault-page-429/feed.xml", timeout=5).status_code == 200
    finally:
        process.terminate()
        process.communicate(timeout=10)
    assert process.returncode == 0
    bad = subprocess.run(
        [sys.executable, "-m", "simulator", "--faults", "bogus"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "unknown fault(s) bogus" in bad.stderr
