"""URL hygiene: canonical forms for identity, and the address policy for fetching.

A URL to fetch is parsed once, strictly, by :func:`parse_target`; the fetcher connects to an
address it resolved and checked for that parse (``ingest.http``), never to what another parser
makes of the same string. Forms that parsers read differently are refused outright rather than
interpreted: user info, backslashes, control characters and whitespace in the authority,
percent signs in host names, numeric hosts other than a plain dotted quad (``127.1``,
``2130706433``, ``0x7f.0.0.1``), IPv6 zone ids.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import idna
from courlan import normalize_url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeURLError(ValueError):
    """A URL narratrace refuses to fetch (its form, scheme or address is not allowed)."""


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


# ----------------------------------------------------------------------------- parsing

DEFAULT_PORTS = {"http": 80, "https": 443}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_AUTHORITY = re.compile(r"(?P<host>[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?")
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")
# characters kept as they are in a request target; everything else is percent-encoded
_TARGET_SAFE = "/%:@!$&'()*+,;=-._~?"


@dataclass(frozen=True)
class Target:
    """One parse of a URL to fetch: what to connect to and what to ask for."""

    url: str  # as given (fragment dropped)
    scheme: str  # http | https
    host: str  # lower-case ASCII name, or an IP literal (IPv6 without brackets)
    port: int
    path: str  # the request target: path and query, percent-encoded, never empty

    @property
    def literal(self) -> IPAddress | None:
        """The host as an IP address when the URL names one."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    @property
    def host_key(self) -> str:
        """Who politeness rules count against: host and port."""
        return f"{self.host}:{self.port}"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def parse_target(url: str) -> Target:
    """Parse `url` for fetching, or raise UnsafeURLError saying which form is refused."""
    if not isinstance(url, str) or not url.strip():
        raise UnsafeURLError("empty URL")
    url = url.strip()
    if _CONTROL.search(url):
        raise UnsafeURLError(f"refusing URL with control characters: {url!r}")
    if "\\" in url:
        raise UnsafeURLError(f"refusing URL with a backslash: {url!r}")
    scheme, sep, _rest = url.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in DEFAULT_PORTS:
        raise UnsafeURLError(f"refusing non-http(s) URL: {url}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an IPv4 address in brackets
        raise UnsafeURLError(f"refusing URL the parser cannot read ({exc}): {url}") from None
    if not url[len(scheme) + 1 :].startswith("//") or not parts.netloc:
        raise UnsafeURLError(f"URL has no host: {url}")
    if "@" in parts.netloc:
        raise UnsafeURLError(f"refusing URL with user info: {url}")
    match = _AUTHORITY.fullmatch(_ascii_authority(parts.netloc, url))
    if match is None:
        raise UnsafeURLError(f"refusing URL whose host is not a plain name or address: {url}")
    host = _checked_host(match.group("host"), url)
    port = int(match.group("port")) if match.group("port") else DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise UnsafeURLError(f"refusing URL with port {port}: {url}")
    path = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=_TARGET_SAFE)
    return Target(url.split("#", 1)[0], scheme, host, port, path)


def _ascii_authority(netloc: str, url: str) -> str:
    """The authority with an internationalised host name in its ASCII (IDNA) form."""
    if netloc.isascii():
        return netloc
    host, colon, port = netloc.rpartition(":") if ":" in netloc else (netloc, "", "")
    try:
        return idna.encode(host, uts46=True).decode("ascii") + colon + port
    except idna.IDNAError:
        raise UnsafeURLError(f"refusing URL with an invalid host name: {url}") from None


def _checked_host(host: str, url: str) -> str:
    if host.startswith("["):
        try:
            return str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            raise UnsafeURLError(f"refusing URL with an invalid IPv6 address: {url}") from None
    host = host.lower().removesuffix(".")
    labels = host.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # a name whose last label is a number is an IPv4 address to some parsers (127.1,
        # 2130706433, 0x7f.1): only the plain dotted quad is taken as one
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise UnsafeURLError(f"refusing ambiguous numeric host {host!r}: {url}") from None
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise UnsafeURLError(f"refusing URL with an invalid host name {host!r}: {url}")
    return host


# ----------------------------------------------------------------------------- addresses

_NON_PUBLIC = tuple(
    ipaddress.ip_network(net)
    for net in (
        # IPv4
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches local listeners
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT (cloud metadata services live here too)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, 169.254.169.254 metadata
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        # IPv6
        "::/96",  # unspecified, loopback, IPv4-compatible
        "::ffff:0:0/96",  # IPv4-mapped
        "64:ff9b::/96",  # NAT64
        "64:ff9b:1::/48",  # local NAT64
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments (Teredo among them)
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "5f00::/16",  # segment routing
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)


def is_public(address: IPAddress) -> bool:
    """True for a globally routable unicast address outside every special-purpose range."""
    if isinstance(address, ipaddress.IPv6Address) and address.sixtofour is not None:
        return is_public(address.sixtofour)  # 6to4 carries the IPv4 address it reaches
    return not (
        any(address in net for net in _NON_PUBLIC if net.version == address.version)
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def check_name(host: str, *, allow_private_hosts: bool) -> None:
    """Refuse, before any lookup, the names that always mean this machine (RFC 6761)."""
    if not allow_private_hosts and (host == "localhost" or host.endswith(".localhost")):
        raise UnsafeURLError(f"refusing loopback host {host} (allow_private_hosts is false)")


def check_addresses(host: str, addresses: Iterable[str], *, allow_private_hosts: bool) -> list[str]:
    """The addresses `host` resolved to, all checked against the policy; raise UnsafeURLError
    when there are none or (unless private hosts are allowed) any one is not public."""
    parsed: list[IPAddress] = []
    for text in addresses:
        try:
            parsed.append(ipaddress.ip_address(text))
        except ValueError:
            raise UnsafeURLError(
                f"refusing {host}: resolved to an invalid address {text!r}"
            ) from None
    if not parsed:
        raise UnsafeURLError(f"refusing {host}: the name resolves to no address")
    if not allow_private_hosts:
        check_name(host, allow_private_hosts=False)
        for address in parsed:
            if not is_public(address):
                raise UnsafeURLError(
                    f"refusing {host}: resolves to non-public address {address} "
                    "(set allow_private_hosts = true to allow)"
                )
    return [str(address) for address in dict.fromkeys(parsed)]
