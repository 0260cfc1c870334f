"""Article text and metadata from page bytes."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import trafilatura
from trafilatura.deduplication import LRUCache

import ingest.batch
import ingest.extract
from ingest.batch import BatchPage, PageBatch
from ingest.config import FetchSettings
from ingest.extract import Extracted, ExtractionError, extract_article, is_html
from ingest.http import FetchResult
from simulator.corpus import DemoArticle, DemoOutlet
from simulator.pages import CHROMES, render_article_page

BASE = "http://127.0.0.1:8999"
PUBLISHED = datetime(2025, 1, 10, 6, 0, tzinfo=UTC)
PARAGRAPHS = (
    "The district administration said on Friday that the bridge over the river would reopen "
    "to traffic next week after three months of repairs.",
    "Officials said \"no comment\" & the figures were 'disputed' by all sides, according to "
    "residents of the nearby villages.",
    "A local shopkeeper said the closure had cost him most of his customers and that he hoped "
    "trade would pick up again before the festival season.",
    "The state government approved the repair budget in December, and engineers inspected the "
    "new girders on Thursday afternoon.",
)


def outlet(chrome: str, language: str = "en") -> DemoOutlet:
    return DemoOutlet(
        slug="alpha-news",
        name="Alpha News",
        country="IN",
        kind="news-portal",
        feed_format="rss",
        feed_content="summary",
        chrome=chrome,
        language=language,
    )


ARTICLE = DemoArticle(
    outlet="alpha-news",
    slug="bridge-reopens",
    day=0,
    hour=6.0,
    published_at=PUBLISHED,
    title="Bridge to reopen next week",
    author="Asha Rao",
    narrative="",
    edit="original",
    fault="",
    paragraphs=PARAGRAPHS,
    path="articles/alpha-news/bridge-reopens.txt",
)
URL = f"{BASE}/alpha-news/2025/01/bridge-reopens.html"


def page(chrome: str = "agency", language: str = "en") -> bytes:
    return render_article_page(outlet(chrome, language), ARTICLE, BASE)


NO_MAIN_TEXT = b"""<!DOCTYPE html>
<html lang="en"><head><title>Alpha News</title></head>
<body>
<header><nav><ul><li><a href="/">Home</a></li><li><a href="/world/">World</a></li></ul></nav>
</header>
<main></main>
<footer><ul><li><a href="/about/">About us</a></li><li><a href="/privacy/">Privacy policy</a></li>
</ul></footer>
</body></html>
"""


# ----------------------------------------------------------------------------- one page


def test_article_page_text_and_metadata() -> None:
    extracted = extract_article(page("agency"), URL, "text/html; charset=utf-8")
    assert extracted.text == "\n\n".join(PARAGRAPHS)
    assert extracted.title == "Bridge to reopen next week"
    assert extracted.author == "Asha Rao"
    assert extracted.sitename == "Alpha News"
    assert extracted.language == "en"
    assert extracted.published_at is not None
    assert extracted.published_at.tzinfo is not None
    assert extracted.published_at.utcoffset().total_seconds() == 0
    assert extracted.published_at.date() == date(2025, 1, 10)


def test_repeated_text_is_extracted_every_time() -> None:
    # the same story syndicated by several outlets (or one page fetched again) must not be
    # mistaken for boilerplate seen before
    expected = "\n\n".join(PARAGRAPHS)
    for _ in range(6):
        assert extract_article(page("agency"), URL, "text/html").text == expected
    for chrome in ("defence", "agency"):
        other = render_article_page(outlet(chrome), ARTICLE, "http://127.0.0.1:8998")
        assert extract_article(other, "http://127.0.0.1:8998/x.html", "text/html").text == expected


@pytest.mark.parametrize("chrome", sorted(CHROMES))
def test_site_chrome_is_left_out(chrome: str) -> None:
    template = CHROMES[chrome]
    extracted = extract_article(page(chrome), URL, "text/html")
    text = extracted.text
    assert PARAGRAPHS[0] in text and PARAGRAPHS[1] in text
    assert "\n\n" in text  # paragraphs stay apart
    assert template.cookie_text not in text
    assert template.tagline not in text
    assert template.newsletter_title not in text
    assert template.footer_note not in text
    lines = set(text.split("\n\n"))
    for label in (*template.footer_links, *template.cookie_buttons, template.follow_line):
        assert label not in lines
    assert not any(section in lines for section in template.sections)


@pytest.mark.parametrize(("lang", "expected"), [("ur", "ur"), ("hi-IN", "hi"), ("EN-gb", "en")])
def test_language_from_html_lang(lang: str, expected: str) -> None:
    body = page("agency").replace(b'<html lang="en">', f'<html lang="{lang}">'.encode(), 1)
    assert f'<html lang="{lang}">'.encode() in body
    assert extract_article(body, URL, "text/html").language == expected


def test_language_empty_without_lang_attribute() -> None:
    body = page("agency").replace(b'<html lang="en">', b"<html>", 1)
    assert extract_article(body, URL, "text/html").language == ""


def test_inline_page_without_metadata() -> None:
    body = (
        "<html><head><title>Plain page</title></head><body><article>"
        + "".join(f"<p>{p.replace('&', '&amp;')}</p>" for p in PARAGRAPHS[:3])
        + "</article></body></html>"
    ).encode()
    extracted = extract_article(body, "https://plain.example/a", "text/html")
    assert extracted.text == "\n\n".join(PARAGRAPHS[:3])
    assert extracted.published_at is None
    assert extracted.author == ""
    assert extracted.language == ""


@pytest.mark.parametrize(
    "content_type", ["application/pdf", "application/rss+xml", "image/png", "text/plain"]
)
def test_non_html_content_type_is_refused(content_type: str) -> None:
    with pytest.raises(ExtractionError, match="not an HTML page") as info:
        extract_article(page(), URL, content_type)
    assert content_type in str(info.value)


def test_untyped_non_html_body_is_refused() -> None:
    with pytest.raises(ExtractionError, match=r"not an HTML page \(unknown type\)"):
        extract_article(b"%PDF-1.7\n1 0 obj\n<< >>\nendobj\n", "https://x.example/r.pdf", "")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(NO_MAIN_TEXT, id="chrome-only"),
        pytest.param(
            b"<!DOCTYPE html><html><head><title>T</title></head><body></body></html>",
            id="empty-body",
        ),
        pytest.param(b"<html><body><script>render({});</script></body></html>", id="script-only"),
    ],
)
def test_page_without_main_text(body: bytes) -> None:
    with pytest.raises(ExtractionError, match="no main text"):
        extract_article(body, "https://x.example/empty", "text/html")


def test_untyped_html_is_sniffed() -> None:
    extracted = extract_article(page(), URL, "")
    assert extracted.text == "\n\n".join(PARAGRAPHS)


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("text/html", b"%PDF-1.4", True),
        ("TEXT/HTML; charset=ISO-8859-1", b"", True),
        ("application/xhtml+xml", b"", True),
        ("application/pdf", b"<!DOCTYPE html><html>", False),
        ("text/xml", b"<html></html>", False),
        ("", b"<!DOCTYPE html><html lang='en'>", True),
        ("", b"  \r\n\t<!doctype HTML>\n<html>", True),
        ("", b"<HTML><body>x</body></HTML>", True),
        ("", b"\xef\xbb\xbf<!DOCTYPE html><html>", True),
        ("", b"%PDF-1.4\n", False),
        ("", b'<?xml version="1.0"?><rss version="2.0"></rss>', False),
        ("", b"", False),
        ("", b"hello <html>", False),
    ],
)
def test_is_html(content_type: str, body: bytes, expected: bool) -> None:
    assert is_html(content_type, body) is expected


# ----------------------------------------------------------------------------- batches


@pytest.mark.parametrize("chrome", sorted(CHROMES))
def test_the_same_text_and_metadata_as_trafilatura_extract(chrome: str) -> None:
    """extract_article takes trafilatura's Document (bare_extraction) rather than the JSON
    `trafilatura.extract` renders from it: every field must be what that JSON says."""
    body = page(chrome)
    raw = trafilatura.extract(
        body,
        url=URL,
        output_format="json",
        with_metadata=True,
        favor_precision=True,
        include_comments=False,
        include_tables=False,
        deduplicate=LRUCache(maxsize=4096),
    )
    assert raw
    data = json.loads(raw)
    doc = extract_article(body, URL, "text/html")
    assert doc.text == "\n\n".join(
        line.strip() for line in data["text"].splitlines() if line.strip()
    )
    assert doc.title == data["title"]
    assert doc.author == data["author"]
    assert doc.sitename == data["source-hostname"]
    assert doc.language == (data["language"] or "en")
    assert doc.published_at is not None
    assert doc.published_at.date().isoformat() == data["date"][:10]


def test_an_extractor_crash_is_a_row_that_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(body: bytes, url: str, content_type: str = "") -> Extracted:
        raise RuntimeError("parser exploded")

    monkeypatch.setattr(ingest.batch, "extract_article", explode)
    batch = PageBatch("b", 0, (), FetchSettings(), None)
    fetched = FetchResult(URL, URL, 200, page(), "text/html")
    row = ingest.batch._row(batch, BatchPage(1, URL, "alpha-news"), fetched)
    assert row["fetched"] is True and row["status"] == 200
    assert row["extract_error"] == "extractor failed: RuntimeError: parser exploded"
    assert "text" not in row


def test_workers_do_not_import_the_parents_main_module(tmp_path: Path) -> None:
    """A spawned worker would import the program that started it again (the `narratrace`
    script imports the CLI and Prefect, seconds a worker); the pool's workers skip it, still
    run batches, and import neither the store (DuckDB) nor Prefect nor datasketch."""
    imported = tmp_path / "imported"
    script = tmp_path / "program.py"
    script.write_text(
        "import os\n"
        f"with open({str(imported)!r}, 'a') as marker:\n"
        "    marker.write(f'{os.getpid()}\\n')\n"
        "if __name__ == '__main__':\n"
        "    from ingest.batch import PageBatch, read_result, run_batch\n"
        "    from ingest.config import FetchSettings\n"
        "    from ingest.extract import shutdown_pool, worker_pool\n"
        "    from narratives.params import DetectionParams\n"
        "    pool = worker_pool(2)\n"
        "    empty = PageBatch('b', 0, (), FetchSettings(), None)\n"
        "    results = [pool.submit(run_batch, empty) for _ in range(4)]\n"
        "    workers = {read_result(r.result(), DetectionParams()).worker for r in results}\n"
        "    loaded = pool.submit(eval, 'list(__import__(\"sys\").modules)').result()\n"
        "    shutdown_pool()\n"
        "    print(all(workers))\n"
        "    print(' '.join(sorted({m.split('.')[0] for m in loaded})))\n",
        encoding="utf-8",
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, str(script)], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    ran, loaded = done.stdout.strip().splitlines()
    assert ran == "True"
    # what a batch needs is there; the store, the orchestrator and datasketch's LSH are not
    assert {"trafilatura", "pyarrow", "numpy", "ingest", "narratives"} <= set(loaded.split())
    assert {"duckdb", "prefect", "datasketch", "scipy", "flows", "store"}.isdisjoint(loaded.split())
    assert len(imported.read_text().split()) == 1  # the program itself, not its workers
