"""Canonical URLs (article identity) and the address policy for fetching."""

from __future__ import annotations

import pytest

from ingest.urls import UnsafeURLError, canonical_url, check_fetchable


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "https://news.example.com/a/story.html?utm_source=rss&utm_medium=feed&utm_campaign=x",
            "https://news.example.com/a/story.html",
            id="utm",
        ),
        pytest.param(
            "https://news.example.com/story?fbclid=IwAR0abc",
            "https://news.example.com/story",
            id="fbclid",
        ),
        pytest.param(
            "https://news.example.com/story?gclid=EAIaIQ",
            "https://news.example.com/story",
            id="gclid",
        ),
        pytest.param(
            "https://news.example.com/story.html#comments",
            "https://news.example.com/story.html",
            id="fragment",
        ),
        pytest.param(
            "HTTPS://News.Example.COM/Path/Story.html",
            "https://news.example.com/Path/Story.html",
            id="case-of-scheme-and-host-only",
        ),
        pytest.param(
            "http://news.example.com:80/story", "http://news.example.com/story", id="default-port"
        ),
        pytest.param(
            "https://news.example.com:8443/story",
            "https://news.example.com:8443/story",
            id="other-port-kept",
        ),
        pytest.param(
            "https://news.example.com/story?id=3&utm_source=rss#top",
            "https://news.example.com/story?id=3",
            id="id-kept",
        ),
        pytest.param(
            "  https://news.example.com/story?id=3  ",
            "https://news.example.com/story?id=3",
            id="whitespace",
        ),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_canonical_url_keeps_article_identifying_parameters() -> None:
    first = canonical_url("https://news.example.com/news.php?nid=55&utm_source=rss&fbclid=z")
    second = canonical_url("https://news.example.com/news.php?nid=56&gclid=q")
    assert first == "https://news.example.com/news.php?nid=55"
    assert second == "https://news.example.com/news.php?nid=56"
    assert first != second


def test_canonical_url_is_stable_under_parameter_order_and_idempotent() -> None:
    a = canonical_url("https://news.example.com/s?section=world&story=7")
    b = canonical_url("https://news.example.com/s?story=7&utm_medium=x&section=world")
    assert a == b
    assert "story=7" in a and "section=world" in a
    assert canonical_url(a) == a


def test_canonical_url_does_not_read_parameters_as_html_entities() -> None:
    # "&sect", "&reg", "&copy" and "&para" are HTML entities when unescaped
    url = "https://news.example.com/list?id=1&region=north&section=world&copy=2&para=3"
    assert canonical_url(url) == (
        "https://news.example.com/list?copy=2&id=1&para=3&region=north&section=world"
    )


# ----------------------------------------------------------------------------- address policy

PRIVATE_HTTP = [
    "http://127.0.0.1/feed",
    "http://127.0.0.1:8080/feed",
    "http://localhost/feed",
    "http://LOCALHOST:9000/feed",
    "http://app.localhost/feed",
    "http://10.0.0.1/feed",
    "http://192.168.1.1/feed",
    "http://172.16.5.4/feed",
    "http://169.254.169.254/latest/meta-data/",
    "http://0.0.0.0/",
    "http://[::1]/feed",
    "http://[::ffff:127.0.0.1]/feed",
    "http://[fe80::1]/feed",
    "https://[fc00::1]/feed",
]


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://ftp.example.com/feed.xml",
        "javascript:alert(1)",
        "data:text/html,hi",
        "gopher://x.example/",
    ],
)
@pytest.mark.parametrize("allow", [False, True])
def test_non_http_schemes_are_refused(url: str, allow: bool) -> None:
    with pytest.raises(UnsafeURLError, match="non-http"):
        check_fetchable(url, allow_private_hosts=allow)


@pytest.mark.parametrize("allow", [False, True])
def test_url_without_host_is_refused(allow: bool) -> None:
    with pytest.raises(UnsafeURLError, match="no host"):
        check_fetchable("http:///feed.xml", allow_private_hosts=allow)


@pytest.mark.parametrize("url", PRIVATE_HTTP)
def test_private_and_loopback_addresses_are_refused_by_default(url: str) -> None:
    with pytest.raises(UnsafeURLError, match=r"refusing .*(non-public|loopback)"):
        check_fetchable(url, allow_private_hosts=False)


def test_refusal_says_how_to_allow() -> None:
    with pytest.raises(UnsafeURLError, match="allow_private_hosts"):
        check_fetchable("http://10.0.0.1/", allow_private_hosts=False)


@pytest.mark.parametrize("url", PRIVATE_HTTP)
def test_private_addresses_are_allowed_when_configured(url: str) -> None:
    assert check_fetchable(url, allow_private_hosts=True) is None


@pytest.mark.parametrize(
    "url",
    ["http://93.184.216.34/feed", "https://93.184.216.34:8443/x", "http://[2606:4700::1111]/"],
)
def test_public_literal_addresses_are_allowed(url: str) -> None:
    assert check_fetchable(url, allow_private_hosts=False) is None
