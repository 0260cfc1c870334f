"""Outlet lists in OPML, the format feed readers and monitoring tools import and export, and
the outlets-file tables an import writes.

Reading (`read_opml`): every `<outline>` with an `xmlUrl` is a feed; an outline without one
that holds other outlines is a folder, and the folders above a feed, joined by " / ", become
its outlet's `category`. An outlet's name is the outline's `text` (what a reader shows), else
its `title`, else the site's host name; `htmlUrl` is its homepage. Feeds whose outlines give
the same `htmlUrl` are one site, so they become one outlet (named by what their titles share:
"BBC News - World" and "BBC News - Business" make "BBC News"). A feed listed twice, or whose
address is not http(s), is skipped with a warning. The XML is parsed with defusedxml: a file
that declares entities or refers to external ones is refused, not expanded.

Writing (`write_opml`): one outline per feed, titled with the outlet's name, inside folder
outlines for its category; narratrace's own attributes (`narratrace:slug`, `country`, `kind`)
let a later import give back the same outlets.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import defusedxml.ElementTree as SafeET
import tomlkit
from defusedxml import DefusedXmlException
from tomlkit.items import AoT, Array, InlineTable, Table

from ingest.config import (
    CATEGORY_SEPARATOR,
    SLUG_PATTERN,
    ConfigError,
    Outlet,
    OutletsConfig,
    check_http_url,
    slugify,
)

log = logging.getLogger(__name__)

NS = "https://github.com/narratrace/narratrace/opml"  # names narratrace's outline attributes
OWN_ATTRIBUTES = ("slug", "country", "kind")


class OpmlError(ValueError):
    """The file is not OPML that can be read; the message says why."""


@dataclass(frozen=True)
class OpmlImport:
    outlets: tuple[Outlet, ...]
    skipped: tuple[str, ...]  # one line per outline left out, saying why
    title: str = ""  # the OPML head's title

    @property
    def feeds(self) -> int:
        return sum(len(outlet.feeds) for outlet in self.outlets)


@dataclass
class _Site:
    """Feed outlines that make one outlet."""

    category: str
    homepage: str
    own: dict[str, str]
    titles: list[str] = field(default_factory=list)
    feeds: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------ reading


def read_opml(data: bytes, source: str) -> OpmlImport:
    """The outlets an OPML document lists. OpmlError names `source` if it is not OPML."""
    try:
        root = SafeET.fromstring(data)
    except DefusedXmlException as exc:
        raise OpmlError(
            f"{source}: refused: the XML declares entities or refers to external ones "
            f"({type(exc).__name__}); OPML needs neither"
        ) from None
    except ET.ParseError as exc:
        raise OpmlError(f"{source}: not an OPML file: not well-formed XML ({exc})") from None
    if _local(root.tag).lower() != "opml":
        raise OpmlError(
            f"{source}: not an OPML file: its root element is <{_local(root.tag)}>, not <opml>"
        )
    body = next((child for child in root if _local(child.tag).lower() == "body"), None)
    if body is None:
        raise OpmlError(f"{source}: not an OPML file: <opml> has no <body>")
    head = next((child for child in root if _local(child.tag).lower() == "head"), None)
    title_element = None if head is None else head.find("title")
    title = _clean(title_element.text or "") if title_element is not None else ""

    sites: dict[tuple[str, str], _Site] = {}
    listed: set[str] = set()
    skipped: list[str] = []
    for path, attributes, own in _feed_outlines(body, ()):
        label = _clean(attributes.get("text") or attributes.get("title") or "")
        address = attributes.get("xmlurl", "").strip()
        shown = repr(label) if label else f"<outline xmlUrl={address!r}>"
        try:
            url = check_http_url(address)
        except ValueError:
            skipped.append(f"{shown}: feed address {address!r} is not an absolute http(s) URL")
            continue
        if url in listed:
            skipped.append(f"{shown}: feed {url} is listed twice; kept the first")
            continue
        listed.add(url)
        homepage = _valid_url(attributes.get("htmlurl", ""))
        if own.get("slug"):
            key = ("slug", own["slug"])
        elif homepage:
            key = ("site", _site_key(homepage))
        else:
            key = ("feed", url)
        site = sites.setdefault(key, _Site(CATEGORY_SEPARATOR.join(path), homepage, own))
        site.feeds.append(url)
        if label:
            site.titles.append(label)
    for line in skipped:
        log.warning("%s: skipped %s", source, line)
    outlets = _outlets(sites.values())
    log.info("%s: %d outlets with %d feeds", source, len(outlets), len(listed))
    return OpmlImport(tuple(outlets), tuple(skipped), title)


def _feed_outlines(
    element: Any, path: tuple[str, ...]
) -> Iterable[tuple[tuple[str, ...], dict[str, str], dict[str, str]]]:
    """(folders above, attributes with lower-case names, narratrace's attributes) of every
    feed outline under `element`, in document order."""
    for child in element:
        if _local(child.tag).lower() != "outline":
            continue
        attributes = {k.lower(): v for k, v in child.attrib.items() if not k.startswith("{")}
        own = {
            k[len(NS) + 2 :]: v.strip()
            for k, v in child.attrib.items()
            if k.startswith(f"{{{NS}}}") and k[len(NS) + 2 :] in OWN_ATTRIBUTES
        }
        if "xmlurl" in attributes:
            yield path, attributes, own
        else:
            folder = _clean(attributes.get("text") or attributes.get("title") or "")
            yield from _feed_outlines(child, path + (folder,) if folder else path)


def _outlets(sites: Iterable[_Site]) -> list[Outlet]:
    outlets: list[Outlet] = []
    taken: set[str] = set()
    for site in sites:
        host = _host(site.homepage or site.feeds[0])
        name = _shared_name(site.titles) or host
        slug = site.own.get("slug", "")
        if not re.fullmatch(SLUG_PATTERN, slug):
            slug = slugify(name)
            if slug == "outlet":  # a name without latin letters or digits
                slug = slugify(host)
        slug = _unique(slug, taken)
        taken.add(slug)
        outlets.append(
            Outlet.model_validate(
                {
                    "name": name,
                    "slug": slug,
                    "feeds": list(site.feeds),
                    "homepage": site.homepage,
                    "category": site.category,
                    "country": site.own.get("country", ""),
                    "kind": site.own.get("kind", ""),
                },
                by_alias=True,
                by_name=False,
            )
        )
    return outlets


def _shared_name(titles: Sequence[str]) -> str:
    """What several titles of one site's feeds share ("BBC News - World", "BBC News -
    Business" -> "BBC News"), or the first title when they share nothing useful."""
    distinct = list(dict.fromkeys(titles))
    if len(distinct) <= 1:
        return distinct[0] if distinct else ""
    prefix = distinct[0]
    for title in distinct[1:]:
        while not title.startswith(prefix):
            prefix = prefix[:-1]
    # cut back to a word boundary unless every title ends or breaks right after the prefix
    if any(len(t) > len(prefix) and t[len(prefix)].isalnum() for t in distinct):
        prefix = re.sub(r"\w*$", "", prefix)
    shared = prefix.rstrip(" \t-–—:|»·/,(")
    return shared if len(shared) >= 2 else distinct[0]


def _unique(slug: str, taken: set[str]) -> str:
    candidate, number = slug, 2
    while candidate in taken:
        candidate, number = f"{slug}-{number}", number + 1
    return candidate


def _valid_url(url: str) -> str:
    try:
        return check_http_url(url) if url.strip() else ""
    except ValueError:
        return ""


def _site_key(url: str) -> str:
    parts = urlsplit(url)
    return f"{(parts.hostname or '').lower()}{parts.path.rstrip('/')}?{parts.query}"


def _host(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.")


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _clean(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------------------ writing


def write_opml(outlets: Sequence[Outlet], title: str = "narratrace outlets") -> bytes:
    """An OPML 2.0 document of `outlets`: folders for categories, one outline per feed."""
    ET.register_namespace("narratrace", NS)
    opml = ET.Element("opml", version="2.0")
    ET.SubElement(ET.SubElement(opml, "head"), "title").text = title
    body = ET.SubElement(opml, "body")
    for outlet in outlets:
        parent = body
        for level in _levels(outlet.category):
            last = parent[-1] if len(parent) else None
            if last is not None and last.get("xmlUrl") is None and last.get("text") == level:
                parent = last  # the folder the outlet before this one opened
            else:
                parent = ET.SubElement(parent, "outline", text=level, title=level)
        for feed in outlet.feeds:
            attributes = {"type": "rss", "text": outlet.name, "title": outlet.name, "xmlUrl": feed}
            if outlet.homepage:
                attributes["htmlUrl"] = outlet.homepage
            attributes[f"{{{NS}}}slug"] = outlet.outlet_id
            for key in ("country", "kind"):
                if getattr(outlet, key):
                    attributes[f"{{{NS}}}{key}"] = getattr(outlet, key)
            ET.SubElement(parent, "outline", attributes)
    ET.indent(opml)
    return ET.tostring(opml, encoding="utf-8", xml_declaration=True) + b"\n"


def _levels(category: str) -> list[str]:
    return [level.strip() for level in category.split(CATEGORY_SEPARATOR) if level.strip()]


# ------------------------------------------------------------------------------ outlets file


def new_outlets_file(outlets: Sequence[Outlet], comment: str) -> str:
    """The text of a new outlets file listing `outlets`, headed by `comment`."""
    doc = tomlkit.document()
    for line in comment.splitlines():
        doc.add(tomlkit.comment(line))
    doc.add(tomlkit.nl())
    tables = tomlkit.aot()
    for outlet in outlets:
        tables.append(_table(outlet))
    doc.append("outlets", tables)
    return tomlkit.dumps(doc)


@dataclass(frozen=True)
class Merge:
    text: str  # the outlets file with the imported outlets added
    outlets_added: int
    feeds_added: int  # to new and to existing outlets
    feeds_already_listed: int


def merge_into_outlets_file(text: str, config: OutletsConfig, outlets: Sequence[Outlet]) -> Merge:
    """`text` (the outlets file `config` was read from) with `outlets` added: an outlet whose
    id is already in the file gains the feeds it does not list yet; other outlets are appended
    as new [[outlets]] tables. Comments and layout of `text` are kept."""
    doc = tomlkit.parse(text)
    tables = doc.get("outlets")
    if not isinstance(tables, (AoT, Array)):
        raise ConfigError(f"{config.source}: has no [[outlets]] tables to add to")
    position = {outlet.outlet_id: index for index, outlet in enumerate(config.outlets)}
    listed = set(config.outlet_for_feed())
    added = feeds_added = already = 0
    for outlet in outlets:
        new_feeds = [feed for feed in outlet.feeds if feed not in listed]
        already += len(outlet.feeds) - len(new_feeds)
        if not new_feeds:
            continue
        listed.update(new_feeds)
        feeds_added += len(new_feeds)
        if outlet.outlet_id in position:
            table = tables[position[outlet.outlet_id]]
            current = table["feeds"]
            feeds = list(current) if isinstance(current, list) else [str(current)]
            table["feeds"] = _array([str(feed) for feed in feeds] + new_feeds)
        else:
            new = outlet.model_copy(update={"feeds": tuple(new_feeds)})
            table = _table(new)
            if isinstance(tables, Array):  # outlets = [{...}, ...] written inline
                inline = tomlkit.inline_table()
                inline.update(table)
                table = inline
            elif list(doc)[-1] != "outlets":  # a table follows: keep a blank line before it
                table.add(tomlkit.nl())
            tables.append(table)
            added += 1
    return Merge(tomlkit.dumps(doc), added, feeds_added, already)


def _table(outlet: Outlet) -> Table | InlineTable:
    table = tomlkit.table()
    table["name"] = outlet.name
    if outlet.outlet_id != slugify(outlet.name):
        table["slug"] = outlet.outlet_id
    for key in ("category", "country", "kind", "homepage"):
        if getattr(outlet, key):
            table[key] = getattr(outlet, key)
    table["feeds"] = _array(list(outlet.feeds))
    return table


def _array(values: list[str]) -> Array:
    array = tomlkit.array()
    array.extend(values)
    return array.multiline(len(values) > 1)
