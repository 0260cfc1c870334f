"""URL hygiene: canonical forms for identity, and the address policy for fetching."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from courlan import normalize_url


class UnsafeURLError(ValueError):
    """A URL narratrace refuses to fetch (scheme or address not allowed)."""


def canonical_url(url: str) -> str:
    """The identity of an article: lower-case scheme and host, default port dropped,
    tracking parameters (utm_*, fbclid, gclid, ...) and the fragment removed."""
    url = url.strip()
    try:
        # Not strict: strict mode drops every query parameter outside a short allow-list, so
        # distinct articles such as /news.php?nid=1 and ?nid=2 would share one identity.
        # Split first: given a string, courlan HTML-unescapes it, turning "&section=" into "§ion=".
        url = normalize_url(urlsplit(url), strict=False)
    except ValueError:
        pass
    return url.split("#", 1)[0]


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def check_fetchable(url: str, *, allow_private_hosts: bool) -> None:
    """Raise UnsafeURLError unless `url` is http(s) and (unless allowed) every address its
    host resolves to is public. Resolution failures are left to the HTTP client to report."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeURLError(f"refusing non-http(s) URL: {url}")
    host = parts.hostname
    if not host:
        raise UnsafeURLError(f"URL has no host: {url}")
    if allow_private_hosts:
        return
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        if host == "localhost" or host.endswith(".localhost"):
            raise UnsafeURLError(f"refusing loopback host {host} (allow_private_hosts is false)")
        try:
            infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
        except socket.gaierror:
            return
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        if not _is_public(address):
            raise UnsafeURLError(
                f"refusing {host}: resolves to non-public address {address} "
                "(set allow_private_hosts = true to allow)"
            )
