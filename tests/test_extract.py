"""Article text and metadata from page bytes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

import ingest.extract
from ingest.extract import (
    Extracted,
    ExtractionError,
    PageToExtract,
    extract_article,
    extract_many,
    extract_stream,
    is_html,
)
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


@pytest.fixture
def pool() -> Iterator[None]:
    ingest.extract.shutdown_pool()  # whatever an earlier test left running
    try:
        yield
    finally:
        ingest.extract.shutdown_pool()


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


def batch() -> list[PageToExtract]:
    return [
        PageToExtract("good-agency", page("agency"), URL, "text/html"),
        PageToExtract("pdf", b"%PDF-1.4\n", URL, "application/pdf"),
        PageToExtract("empty", NO_MAIN_TEXT, URL, "text/html"),
        PageToExtract("good-blog", page("blog", "hi"), URL, ""),
    ]


def check_batch(results: list[tuple[str, Extracted | None, str | None]]) -> None:
    assert [key for key, _, _ in results] == ["good-agency", "pdf", "empty", "good-blog"]
    (
        (_, agency, agency_error),
        (_, pdf, pdf_error),
        (_, empty, empty_error),
        (_, blog, blog_error),
    ) = results
    assert agency_error is None and agency is not None
    assert agency.text == "\n\n".join(PARAGRAPHS)
    assert pdf is None and pdf_error is not None and "not an HTML page" in pdf_error
    assert empty is None and empty_error is not None and "no main text" in empty_error
    assert blog_error is None and blog is not None
    assert blog.language == "hi"
    assert PARAGRAPHS[2] in blog.text


def test_extract_many_in_process() -> None:
    check_batch(extract_many(batch()))


def test_extract_many_small_batch_stays_in_process(pool: None) -> None:
    results = extract_many(batch(), processes=2, min_batch_for_pool=100)
    check_batch(results)
    assert ingest.extract._POOL is None  # no pool was started for a small batch


def test_extract_many_in_a_process_pool(pool: None) -> None:
    results = extract_many(batch(), processes=2, min_batch_for_pool=1)
    assert ingest.extract._POOL is not None
    check_batch(results)


def test_extract_many_survives_an_extractor_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(body: bytes, url: str, content_type: str = "") -> Extracted:
        raise RuntimeError("parser exploded")

    monkeypatch.setattr(ingest.extract, "extract_article", explode)
    results = extract_many(batch()[:2])
    assert [key for key, _, _ in results] == ["good-agency", "pdf"]
    for _, extracted, error in results:
        assert extracted is None
        assert error == "extractor failed: RuntimeError: parser exploded"


def test_extract_many_of_nothing() -> None:
    assert extract_many([]) == []
    assert extract_many([], processes=4, min_batch_for_pool=0) == []


@pytest.mark.parametrize("per_task", [1, 3])
def test_extract_stream_in_a_process_pool_yields_every_page_once(pool: None, per_task: int) -> None:
    pages = batch()
    pages = pages + [replace(p, key=p.key + "-again") for p in pages[:3]]  # 7: a partial task
    results = list(extract_stream(iter(pages), processes=2, window=2, per_task=per_task))
    assert sorted(key for key, _, _ in results) == sorted(p.key for p in pages)
    by_key = {key: (doc, error) for key, doc, error in results}
    check_batch([(p.key, *by_key[p.key]) for p in pages[:4]])
    assert by_key["good-agency-again"][0] == by_key["good-agency"][0]


def test_workers_do_not_import_the_parents_main_module(tmp_path: Path) -> None:
    """A spawned worker would import the program that started it again (the `narratrace`
    script imports the CLI and Prefect, seconds a worker); the pool's workers skip it and
    still run batches."""
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
        "    shutdown_pool()\n"
        "    print(all(workers))\n",
        encoding="utf-8",
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, str(script)], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
    assert len(imported.read_text().split()) == 1  # the program itself, not its workers
