"""OPML in and out: the shapes feed readers export, hostile XML, the outlets file an import
writes or adds to, and import -> export -> import giving back the same outlets."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import pytest

from ingest.config import Outlet, load_outlets, parse_outlets
from ingest.opml import (
    NS,
    OpmlError,
    merge_into_outlets_file,
    new_outlets_file,
    read_opml,
    write_opml,
)

REPO = Path(__file__).resolve().parent.parent
SAMPLES = Path(__file__).resolve().parent / "data" / "opml"

# Real-world shapes, written for these tests:
# flat       a flat list of feed outlines, OPML 1.0
# nested     folders two levels deep, OPML 2.0 with a dateCreated
# feedly     as Feedly exports: version 1.0, folders with text and title, feeds with type,
#            text, title, xmlUrl and htmlUrl; one site's sections share its htmlUrl
# inoreader  as Inoreader exports: its own rssfr-* attributes beside the standard ones, a feed
#            in two folders, a feed:// address and an empty one
# untitled   feed outlines without text or title, attribute names in other cases
# non-ascii  Urdu, Hindi, Russian, French and German names
SHAPES = {path.stem: path.read_bytes() for path in sorted(SAMPLES.glob("*.opml"))}
FLAT, NESTED, FEEDLY = SHAPES["flat"], SHAPES["nested"], SHAPES["feedly"]
INOREADER, UNTITLED, NON_ASCII = SHAPES["inoreader"], SHAPES["untitled"], SHAPES["non-ascii"]


def by_id(outlets: tuple[Outlet, ...]) -> dict[str, Outlet]:
    return {outlet.outlet_id: outlet for outlet in outlets}


def test_flat_list() -> None:
    found = read_opml(FLAT, "flat.opml")
    assert found.title == "My feeds"
    assert found.skipped == ()
    assert [(o.outlet_id, o.name, o.feeds, o.homepage, o.category) for o in found.outlets] == [
        ("dawn", "Dawn", ("https://www.dawn.com/feeds/home",), "https://www.dawn.com", ""),
        (
            "the-hindu",
            "The Hindu",
            ("https://www.thehindu.com/news/national/feeder/default.rss",),
            "",
            "",
        ),
        ("reuters-world", "Reuters World", ("https://feeds.example-reuters.com/world",), "", ""),
    ]


def test_nested_folders_become_categories_two_levels_deep() -> None:
    found = read_opml(NESTED, "nested.opml")
    categories = {o.name: o.category for o in found.outlets}
    assert categories == {
        "The Hindu": "News / India",
        "NDTV": "News / India",
        "Dawn": "News / Pakistan",
        "Wire": "News",
        "Frontier Post": "Defence blogs",
        "Loose": "",
    }
    assert [o.name for o in found.outlets] == list(categories)  # document order
    assert by_id(found.outlets)["ndtv"].homepage == "https://www.ndtv.com/"


def test_feedly_export_groups_one_sites_feeds_into_one_outlet() -> None:
    found = read_opml(FEEDLY, "feedly.opml")
    assert found.title == "Feedly subscriptions for analyst"
    bbc, aljazeera = found.outlets
    # same site (htmlUrl with and without the last slash): one outlet, named by what the
    # titles share, in the folder of its first feed
    assert bbc.name == "BBC News"
    assert bbc.outlet_id == "bbc-news"
    assert bbc.feeds == (
        "https://feeds.bbci.co.uk/news/world/rss.xml",
        "https://feeds.bbci.co.uk/news/business/rss.xml",
    )
    assert bbc.homepage == "https://www.bbc.co.uk/news/"
    assert bbc.category == "World"
    assert aljazeera.name == "Al Jazeera \u2013 Breaking News"  # the character reference read
    assert aljazeera.outlet_id == "al-jazeera-breaking-news"


def test_inoreader_export_skips_duplicates_and_non_http_feeds_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="ingest.opml"):
        found = read_opml(INOREADER, "inoreader.opml")
    (dawn,) = found.outlets
    assert dawn.name == "Dawn"
    assert dawn.feeds == ("https://www.dawn.com/feeds/home", "https://www.dawn.com/feeds/pakistan")
    assert dawn.category == "South Asia"
    assert found.skipped == (
        "'Dawn - Home': feed https://www.dawn.com/feeds/home is listed twice; kept the first",
        "'Newsletter': feed address 'feed://news.example.com/rss' is not an absolute http(s) URL",
        "'Twitter list': feed address '' is not an absolute http(s) URL",
    )
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [f"inoreader.opml: skipped {line}" for line in found.skipped]


def test_outlines_without_titles_are_named_after_their_site() -> None:
    found = read_opml(UNTITLED, "untitled.opml")
    assert found.title == ""
    assert [(o.outlet_id, o.name, o.feeds[0]) for o in found.outlets] == [
        ("untitled-example-com", "untitled.example.com", "https://untitled.example.com/feed.xml"),
        ("bare-example-org", "bare.example.org", "https://bare.example.org/rss"),
        ("only-a-title", "Only a title", "https://titled.example.org/rss"),
        ("spaced-name", "Spaced name", "https://spaced.example.org/rss"),
    ]
    assert found.outlets[3].category == ""  # a folder without a name adds no level


def test_non_ascii_names_are_kept_and_get_ascii_slugs() -> None:
    found = read_opml(NON_ASCII, "intl.opml")
    assert found.title == "Новости"
    assert [(o.name, o.outlet_id, o.category) for o in found.outlets] == [
        ("ڈان نیوز", "dawnnews-tv", "اردو"),
        ("बीबीसी हिंदी", "bbc-com", "اردو"),
        ("Дождь", "tvrain-example", ""),
        ("Le Monde — International", "le-monde-international", ""),
        ("Zeitung für Österreich", "zeitung-f-r-sterreich", ""),
    ]
    text = new_outlets_file(found.outlets, "imported")
    assert 'name = "ڈان نیوز"' in text  # written as UTF-8, not escaped
    assert parse_outlets(tomllib.loads(text)).outlets == found.outlets


def test_titles_that_share_nothing_keep_the_first() -> None:
    opml = b"""<opml version="2.0"><body>
      <outline text="Times" xmlUrl="https://site.example/a" htmlUrl="https://site.example"/>
      <outline text="Timeline" xmlUrl="https://site.example/b" htmlUrl="https://site.example"/>
      <outline text="Morning Post: Politics" xmlUrl="https://mp.example/p" htmlUrl="https://mp.example"/>
      <outline text="Morning Post: Sport" xmlUrl="https://mp.example/s" htmlUrl="https://mp.example"/>
      <outline text="Same" xmlUrl="https://other.example/1" htmlUrl="https://other.example"/>
      <outline text="Same" xmlUrl="https://other.example/2" htmlUrl="https://other.example"/>
    </body></opml>"""
    names = [o.name for o in read_opml(opml, "x.opml").outlets]
    assert names == ["Times", "Morning Post", "Same"]


def test_two_outlets_with_one_name_get_distinct_slugs() -> None:
    opml = b"""<opml version="2.0"><body>
      <outline text="Home" xmlUrl="https://a.example/rss"/>
      <outline text="Home" xmlUrl="https://b.example/rss"/>
      <outline text="Home" xmlUrl="https://c.example/rss"/>
    </body></opml>"""
    found = read_opml(opml, "x.opml")
    assert [o.outlet_id for o in found.outlets] == ["home", "home-2", "home-3"]
    parse_outlets(tomllib.loads(new_outlets_file(found.outlets, "x")))  # a valid file


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title></channel></rss>',
            r"x\.opml: not an OPML file: its root element is <rss>, not <opml>",
            id="rss-feed",
        ),
        pytest.param(
            b"[[outlets]]\nname = 'x'\n",
            r"x\.opml: not an OPML file: not well-formed XML \(syntax error: line 1, column 0\)",
            id="toml",
        ),
        pytest.param(b"", r"not an OPML file: not well-formed XML", id="empty"),
        pytest.param(
            b'<opml version="2.0"><body><outline text="a" xmlUrl="https://a.example/f">',
            r"not an OPML file: not well-formed XML \(no element found: line 1",
            id="truncated",
        ),
        pytest.param(
            b'<opml version="2.0"><body><outline text="a" xmlUrl="https://a.example/f"></body></opml>',
            r"not well-formed XML \(mismatched tag",
            id="mismatched",
        ),
        pytest.param(
            b'<opml version="2.0"><head><title>x</title></head></opml>',
            r"not an OPML file: <opml> has no <body>",
            id="no-body",
        ),
        pytest.param(
            b"\xff\xfe\x00<\x00o\x00p",
            r"not an OPML file: not well-formed XML",
            id="binary",
        ),
    ],
)
def test_files_that_are_not_opml(data: bytes, expected: str) -> None:
    with pytest.raises(OpmlError, match=expected):
        read_opml(data, "x.opml")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE opml [
  <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
  <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
  <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
  <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
  <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
  <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
]>
<opml version="2.0"><body><outline text="&f;" xmlUrl="https://a.example/f"/></body></opml>
"""


def test_entity_expansion_is_refused_not_expanded() -> None:
    with pytest.raises(OpmlError, match=r"bomb\.opml: refused: the XML declares entities"):
        read_opml(BILLION_LAUGHS, "bomb.opml")


def test_external_entities_are_refused_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do-not-read-me", encoding="utf-8")
    hostile = f"""<?xml version="1.0"?>
<!DOCTYPE opml [<!ENTITY secret SYSTEM "{secret.as_uri()}">]>
<opml version="2.0"><body><outline text="&secret;" xmlUrl="https://a.example/f"/></body></opml>
""".encode()
    with pytest.raises(OpmlError, match="refused") as info:
        read_opml(hostile, "xxe.opml")
    assert "do-not-read-me" not in str(info.value)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_import_export_import_gives_the_same_outlets(shape: str) -> None:
    first = read_opml(SHAPES[shape], f"{shape}.opml")
    assert first.outlets
    exported = write_opml(first.outlets)
    second = read_opml(exported, "exported.opml")
    assert second.outlets == first.outlets  # names, slugs, feeds, homepages, categories, order
    assert second.skipped == ()
    assert write_opml(second.outlets) == exported
    # and the outlets file written from it passes the same checks as any other
    written = parse_outlets(tomllib.loads(new_outlets_file(first.outlets, "x")), "written.toml")
    assert written.outlets == first.outlets


def test_the_seed_outlets_survive_export_and_import() -> None:
    seeds = load_outlets(REPO / "seeds" / "outlets.toml")
    document = write_opml(seeds.outlets, title="seeds")
    back = read_opml(document, "seeds.opml")
    assert back.title == "seeds"
    assert back.outlets == seeds.outlets  # country, kind and slug ride along as attributes


def test_export_nests_categories_and_keeps_the_order() -> None:
    outlets = [
        Outlet(outlet_id="a", name="A", feeds=("https://a.example/1", "https://a.example/2")),
        Outlet(outlet_id="b", name="B", feeds=("https://b.example/1",), category="News / India"),
        Outlet(outlet_id="c", name="C", feeds=("https://c.example/1",), category="News"),
        Outlet(outlet_id="d", name="D", feeds=("https://d.example/1",), category="News / India"),
        Outlet(outlet_id="e", name="E & Co <x>", feeds=("https://e.example/?a=1&b=2",)),
    ]
    document = write_opml(outlets)
    import xml.etree.ElementTree as ET

    body = ET.fromstring(document).find("body")
    assert body is not None
    tree = [(o.get("text"), [(c.get("text"), [g.get("text") for g in c]) for c in o]) for o in body]
    assert tree == [
        ("A", []),
        ("A", []),
        ("News", [("India", ["B"]), ("C", []), ("India", ["D"])]),
        ("E & Co <x>", []),
    ]
    feed = body[0]
    assert feed.get("type") == "rss" and feed.get("xmlUrl") == "https://a.example/1"
    assert feed.get(f"{{{NS}}}slug") == "a"
    assert [o.outlet_id for o in read_opml(document, "x").outlets] == ["a", "b", "c", "d", "e"]
    assert read_opml(document, "x").outlets == tuple(outlets)


EXISTING = """\
# Our outlets. Keep this comment.
allow_private_hosts = false

[[outlets]]
name = "Dawn"   # Pakistan's oldest English daily
country = "PK"
feeds = "https://www.dawn.com/feeds/home"

[[outlets]]
name = "The Hindu"
feeds = ["https://www.thehindu.com/news/national/feeder/default.rss"]

[fetch]
timeout_seconds = 7
"""


def test_merge_adds_new_outlets_and_feeds_and_keeps_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "outlets.toml"
    path.write_text(EXISTING, encoding="utf-8")
    config = load_outlets(path)
    found = read_opml(INOREADER, "inoreader.opml")  # Dawn: home (listed) + pakistan (new)
    flat = read_opml(FLAT, "flat.opml")  # Dawn and The Hindu listed; Reuters new
    merged = merge_into_outlets_file(EXISTING, config, found.outlets + flat.outlets)
    assert (merged.outlets_added, merged.feeds_added, merged.feeds_already_listed) == (1, 2, 3)
    # comments and the tables not added to are kept as written
    assert merged.text.startswith(EXISTING.split("feeds =")[0])
    hindu = '[[outlets]]\nname = "The Hindu"\nfeeds = ["https://www.thehindu.com/news/national/feeder/default.rss"]\n\n'
    assert hindu + '[[outlets]]\nname = "Reuters World"' in merged.text
    assert merged.text.endswith('"]\n\n[fetch]\ntimeout_seconds = 7\n')
    after = parse_outlets(tomllib.loads(merged.text), "merged")
    assert after.fetch.timeout_seconds == 7.0
    assert [(o.outlet_id, o.feeds) for o in after.outlets] == [
        ("dawn", ("https://www.dawn.com/feeds/home", "https://www.dawn.com/feeds/pakistan")),
        ("the-hindu", ("https://www.thehindu.com/news/national/feeder/default.rss",)),
        ("reuters-world", ("https://feeds.example-reuters.com/world",)),
    ]
    assert after.outlets[0].country == "PK"  # the existing outlet keeps its keys
    # importing the same again adds nothing
    again = merge_into_outlets_file(merged.text, after, found.outlets + flat.outlets)
    assert (again.outlets_added, again.feeds_added) == (0, 0)
    assert again.text == merged.text


def test_merge_into_inline_outlets() -> None:
    text = 'outlets = [{name = "Dawn", feeds = ["https://www.dawn.com/feeds/home"]}]\n'
    config = parse_outlets(tomllib.loads(text))
    merged = merge_into_outlets_file(text, config, read_opml(NESTED, "n").outlets)
    after = parse_outlets(tomllib.loads(merged.text))
    assert [o.outlet_id for o in after.outlets] == [
        "dawn",
        "the-hindu",
        "ndtv",
        "wire",
        "frontier-post",
        "loose",
    ]
    assert merged.outlets_added == 5
