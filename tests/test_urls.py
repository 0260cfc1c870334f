"""Canonical URLs (article identity) and the address policy for fetching."""

from __future__ import annotations

import ipaddress

import pytest

from ingest.urls import (
    UnsafeURLError,
    canonical_url,
    check_addresses,
    check_name,
    is_public,
    parse_target,
)


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


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "path", "host_header"),
    [
        ("http://news.example/a/b.html", "http", "news.example", 80, "/a/b.html", "news.example"),
        (
            "HTTPS://News.Example:8443/P?q=1#frag",
            "https",
            "news.example",
            8443,
            "/P?q=1",
            "news.example:8443",
        ),
        ("http://news.example", "http", "news.example", 80, "/", "news.example"),
        ("http://news.example?x=1", "http", "news.example", 80, "/?x=1", "news.example"),
        ("http://news.example./x", "http", "news.example", 80, "/x", "news.example"),
        (
            "http://news.example:80/a b?q=1 2",
            "http",
            "news.example",
            80,
            "/a%20b?q=1%202",
            "news.example",
        ),
        (
            "http://news.example/\u00e9t\u00e9?a=\u00fc",
            "http",
            "news.example",
            80,
            "/%C3%A9t%C3%A9?a=%C3%BC",
            "news.example",
        ),
        (
            "http://m\u00fcnchen.example:81/",
            "http",
            "xn--mnchen-3ya.example",
            81,
            "/",
            "xn--mnchen-3ya.example:81",
        ),
        ("http://93.184.216.34/x", "http", "93.184.216.34", 80, "/x", "93.184.216.34"),
        (
            "http://[2606:4700:0::1111]:8080/",
            "http",
            "2606:4700::1111",
            8080,
            "/",
            "[2606:4700::1111]:8080",
        ),
        (
            "https://a_b.news.example/%7Euser/",
            "https",
            "a_b.news.example",
            443,
            "/%7Euser/",
            "a_b.news.example",
        ),
    ],
)
def test_parse_target(
    url: str, scheme: str, host: str, port: int, path: str, host_header: str
) -> None:
    target = parse_target(url)
    assert (target.scheme, target.host, target.port, target.path) == (scheme, host, port, path)
    assert target.host_header == host_header
    assert target.host_key == f"{host}:{port}"
    assert "#" not in target.url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        pytest.param("file:///etc/passwd", "non-http", id="file"),
        pytest.param("ftp://ftp.example.com/feed.xml", "non-http", id="ftp"),
        pytest.param("javascript:alert(1)", "non-http", id="javascript"),
        pytest.param("data:text/html,hi", "non-http", id="data"),
        pytest.param("gopher://x.example/", "non-http", id="gopher"),
        pytest.param("feed://x.example/rss", "non-http", id="feed-scheme"),
        pytest.param("//x.example/feed", "non-http", id="scheme-relative"),
        pytest.param("", "empty URL", id="empty"),
        pytest.param("http:///feed.xml", "no host", id="no-host"),
        pytest.param("http:x.example/feed", "no host", id="no-slashes"),
        pytest.param("http://127.0.0.1:8080\\@allowed.example/", "backslash", id="backslash-at"),
        pytest.param("http://x.example\\evil.example/", "backslash", id="backslash-host"),
        pytest.param("http:\\\\x.example/", "backslash", id="backslash-slashes"),
        pytest.param("http://x.example/a\\b", "backslash", id="backslash-path"),
        pytest.param("http://allowed.example@127.0.0.1/", "user info", id="userinfo"),
        pytest.param("http://user:pw@x.example/", "user info", id="credentials"),
        pytest.param("http://@x.example/", "user info", id="empty-userinfo"),
        pytest.param("http://x.example\t/", "control characters", id="tab"),
        pytest.param("http://x.exa\nmple/", "control characters", id="newline"),
        pytest.param("http://x.example/a\r\nHost: y", "control characters", id="crlf-path"),
        pytest.param("http://x.example/\x00", "control characters", id="nul"),
        pytest.param("http://x .example/", "not a plain name", id="space-in-host"),
        pytest.param("http://%31%32%37.0.0.1/", "not a plain name", id="percent-host"),
        pytest.param("http://[fe80::1%25eth0]/", "not a plain name", id="zone-id"),
        pytest.param("http://[::1]]/", "not a plain name", id="bracket"),
        pytest.param("http://[1.2.3.4]/", "cannot read", id="ipv4-in-brackets"),
        pytest.param("http://x.example:0/", "port 0", id="port-zero"),
        pytest.param("http://x.example:65536/", "port 65536", id="port-too-big"),
        pytest.param("http://x.example:-1/", "not a plain name", id="port-negative"),
        pytest.param("http://x.example:8o/", "not a plain name", id="port-letters"),
        pytest.param("http://127.1/", "ambiguous numeric host", id="short-ipv4"),
        pytest.param("http://2130706433/", "ambiguous numeric host", id="integer-ipv4"),
        pytest.param("http://0x7f.0.0.1/", "ambiguous numeric host", id="hex-ipv4"),
        pytest.param("http://0177.0.0.1/", "ambiguous numeric host", id="octal-ipv4"),
        pytest.param("http://127.0.0.1.1/", "ambiguous numeric host", id="five-parts"),
        pytest.param("http://x.123/", "ambiguous numeric host", id="numeric-tld"),
        pytest.param("http://-x.example/", "invalid host name", id="leading-dash"),
        pytest.param("http://x..example/", "invalid host name", id="empty-label"),
        pytest.param("http://" + "a" * 64 + ".example/", "invalid host name", id="long-label"),
        pytest.param("http://ex\u2024ample.com/", "invalid host name", id="one-dot-leader"),
    ],
)
def test_refused_forms(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURLError, match=reason):
        parse_target(url)


# ----------------------------------------------------------------------------- address policy

NON_PUBLIC = [
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "100.64.0.1",
    "100.100.100.200",
    "100.127.255.254",
    "127.0.0.1",
    "127.255.255.254",
    "169.254.169.254",
    "172.16.5.4",
    "172.31.255.255",
    "192.0.0.9",
    "192.0.0.170",
    "192.0.2.1",
    "192.88.99.1",
    "192.168.1.1",
    "198.18.0.1",
    "198.51.100.7",
    "203.0.113.9",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "::ffff:127.0.0.1",
    "::ffff:8.8.8.8",  # IPv4-mapped: refused whatever it maps to
    "::127.0.0.1",  # IPv4-compatible
    "64:ff9b::7f00:1",  # NAT64
    "64:ff9b:1::1",
    "100::1",
    "2001::1",  # Teredo
    "2001:db8::1",
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    "3fff::1",
    "5f00::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fec0::1",
    "ff02::1",
]

PUBLIC = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "100.63.255.255",
    "100.128.0.1",
    "2606:4700::1111",
    "2a00:1450:4001::1",
    "2002:5db8:d822::1",
]


@pytest.mark.parametrize("address", NON_PUBLIC)
def test_non_public_addresses(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))
    with pytest.raises(UnsafeURLError, match=r"non-public address .*allow_private_hosts"):
        check_addresses("news.example", [address], allow_private_hosts=False)
    assert check_addresses("news.example", [address], allow_private_hosts=True) == [
        str(ipaddress.ip_address(address))
    ]


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))
    assert check_addresses("news.example", [address], allow_private_hosts=False) == [
        str(ipaddress.ip_address(address))
    ]


def test_every_address_of_a_name_is_checked() -> None:
    with pytest.raises(UnsafeURLError, match="non-public address 10.1.2.3"):
        check_addresses("news.example", ["93.184.216.34", "10.1.2.3"], allow_private_hosts=False)


def test_a_name_without_addresses_is_refused() -> None:
    with pytest.raises(UnsafeURLError, match="resolves to no address"):
        check_addresses("news.example", [], allow_private_hosts=True)


def test_an_answer_that_is_not_an_address_is_refused() -> None:
    with pytest.raises(UnsafeURLError, match="invalid address"):
        check_addresses("news.example", ["not-an-ip"], allow_private_hosts=True)


@pytest.mark.parametrize("host", ["localhost", "app.localhost"])
def test_localhost_names_are_refused_before_lookup(host: str) -> None:
    with pytest.raises(UnsafeURLError, match="loopback host"):
        check_name(host, allow_private_hosts=False)
    check_name(host, allow_private_hosts=True)
