"""Benchmark inputs: a large synthetic corpus built from the demo corpus's text, served with
pages as heavy as real news pages, on several loopback hosts; and the machine description every
benchmark prints.

- Texts: sentences of the demo articles, with about a third of their words replaced by other
  words of the corpus, so two fresh stories share no passage; about 30% of the articles re-post
  an earlier story of another outlet (verbatim with a new intro, paragraphs dropped, numbers
  changed, or an excerpt inside commentary), as outlets do. Articles run 350-900 words.
- Pages: the simulator's page for the outlet's chrome family, plus the furniture real pages
  carry (inline CSS and JSON state, a mega menu, most-read and trending teaser cards, inline
  SVG icons, a footer link farm); 60-260 KB per page, the size range of real news pages.
- Hosts: outlets are spread over several loopback addresses (127.0.0.2, 127.0.0.3, ...), one
  simulator each, so per-host concurrency limits apply as they would on the web.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import random
import re
import resource
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

from simulator.corpus import DEMO_ROOT, DemoArticle, DemoCorpus, DemoOutlet, load_corpus
from simulator.pages import CHROMES, article_url, homepage_url
from simulator.server import OutletSimulator

START = datetime(2025, 5, 1, tzinfo=UTC)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"\S+")


# ----------------------------------------------------------------------------- machine


def machine() -> str:
    """One line describing where a benchmark ran."""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"machine: {platform.system()} {platform.release()}, {os.cpu_count()} cpus ({cpu}), "
        f"{mem:.1f} GiB RAM, Python {platform.python_version()}"
    )


def peak_rss_mib(children: bool = False) -> float:
    """Peak resident set of this process (or of its largest waited-for child), in MiB.

    This process's own comes from VmHWM where Linux gives it: getrusage's peak for a process
    started by another carries over the starting process's peak (Linux keeps it across exec),
    which would make a measuring subprocess look as large as the bench that started it."""
    if not children:
        try:
            with open("/proc/self/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024


def cpu_seconds(children: bool = False) -> float:
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


# ----------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class _Story:
    outlet: str
    paragraphs: tuple[str, ...]
    title: str


def _perturb(sentence: str, vocab: list[str], rng: random.Random, rate: float) -> str:
    words = sentence.split()
    return " ".join(rng.choice(vocab) if rng.random() < rate else w for w in words)


def _fresh_paragraphs(
    sentences: list[str], vocab: list[str], rng: random.Random, words: int
) -> list[str]:
    paragraphs: list[str] = []
    total = 0
    while total < words:
        para = " ".join(
            _perturb(rng.choice(sentences), vocab, rng, 0.35) for _ in range(rng.randint(1, 3))
        )
        paragraphs.append(para)
        total += len(para.split())
    return paragraphs


def _numbers_changed(paragraph: str, rng: random.Random) -> str:
    return re.sub(r"\d+", lambda m: str(int(m.group()) + rng.randint(1, 9)), paragraph)


def synthetic_corpus(n_outlets: int = 100, n_articles: int = 5000, seed: int = 7) -> DemoCorpus:
    """A corpus of `n_articles` over `n_outlets` outlets, all published on one simulated day."""
    rng = random.Random(seed)
    demo = load_corpus(DEMO_ROOT)
    sentences = [
        s for a in demo.articles for p in a.paragraphs for s in _SENTENCE.split(p) if len(s) > 40
    ]
    vocab = [w for s in sentences for w in _WORD.findall(s) if w.isalpha()]
    titles = [a.title for a in demo.articles]
    outlets = []
    for i in range(n_outlets):
        template = demo.outlets[i % len(demo.outlets)]
        outlets.append(
            DemoOutlet(
                slug=f"outlet-{i:03d}",
                name=f"{template.name} {i:03d}",
                country=template.country,
                kind=template.kind,
                feed_format=template.feed_format,
                feed_content="summary",
                chrome=template.chrome,
                language="en",
            )
        )
    stories: list[_Story] = []
    articles = []
    for i in range(n_articles):
        outlet = outlets[i % n_outlets]
        published = START + timedelta(seconds=round(i * 86000 / n_articles))
        others = [s for s in stories[-400:] if s.outlet != outlet.slug]
        edit = "original"
        if others and rng.random() < 0.3:
            source = rng.choice(others)
            edit = rng.choice(["verbatim-new-intro", "paragraphs-dropped", "numbers", "excerpt"])
            paras = list(source.paragraphs)
            if edit == "verbatim-new-intro":
                paras = _fresh_paragraphs(sentences, vocab, rng, 40) + paras
            elif edit == "paragraphs-dropped":
                keep = sorted(rng.sample(range(len(paras)), max(3, len(paras) * 2 // 3)))
                paras = [paras[k] for k in keep]
            elif edit == "numbers":
                paras = [_numbers_changed(p, rng) for p in paras]
            else:
                start = rng.randrange(max(1, len(paras) - 3))
                paras = (
                    _fresh_paragraphs(sentences, vocab, rng, 150)
                    + paras[start : start + 3]
                    + _fresh_paragraphs(sentences, vocab, rng, 200)
                )
            title = source.title
        else:
            paras = _fresh_paragraphs(sentences, vocab, rng, rng.randint(350, 900))
            title = f"{rng.choice(titles)} ({i})"
        stories.append(_Story(outlet.slug, tuple(paras), title))
        articles.append(
            DemoArticle(
                outlet=outlet.slug,
                slug=f"story-{i:05d}",
                day=0,
                hour=(published - START).total_seconds() / 3600,
                published_at=published,
                title=title,
                author=f"Staff Reporter {i % 37}",
                narrative="",
                edit=edit,
                fault="",
                paragraphs=tuple(paras),
                path=f"articles/{outlet.slug}/story-{i:05d}.txt",
            )
        )
    articles.sort(key=lambda a: (a.published_at, a.outlet, a.slug))
    return DemoCorpus(root=DEMO_ROOT, start=START, outlets=tuple(outlets), articles=tuple(articles))


# ----------------------------------------------------------------------------- pages


def _furniture(outlet: DemoOutlet, teasers: list[DemoArticle], base_url: str) -> tuple[str, str]:
    """(head, body) furniture of one outlet: identical on every page of the outlet; its weight
    depends on the outlet (60-260 KB pages)."""
    rng = random.Random(outlet.slug)
    css = CHROMES[outlet.chrome].css
    weight = 0.5 + 2.5 * rng.random()  # 0.5 .. 3.0
    home = escape(homepage_url(base_url, outlet))
    rules = "\n".join(
        f".{css}-c{k} .{css}-e{k % 17}{{margin:{k % 9}px {k % 5}px;padding:{k % 7}px;"
        f"color:#{k * 2654435761 % 0xFFFFFF:06x};font:{12 + k % 6}px/1.{k % 9} sans-serif}}"
        for k in range(int(120 * weight))
    )
    state_items = ",".join(
        f'{{"id":{k},"url":"{home}{k:06d}/","title":"{escape(t.title[:60])}",'
        f'"img":"https://cdn.example/{k:06d}/{rng.getrandbits(64):016x}.jpg","ads":'
        f'{{"slot":"div-gpt-{k}","sizes":[[300,250],[728,90]],"targeting":{{"s":"{css}"}}}}}}'
        for k, t in enumerate(teasers[: int(25 * weight)])
    )
    script = f'window.__STATE__={{"items":[{state_items}]}};'
    head = (
        f"<style>{rules}</style>\n<script>{script}</script>\n"
        "<script>(function(w,d){w.dataLayer=w.dataLayer||[];"
        "w.dataLayer.push({event:'pageview'});})(window,document);</script>\n"
    )
    menu = "\n".join(
        f'<li class="{css}-mega-col"><h4>Section {s}</h4><ul>'
        + "".join(f'<li><a href="{home}s{s}/t{t}/">Topic {s}.{t}</a></li>' for t in range(12))
        + "</ul></li>"
        for s in range(int(10 * weight) + 3)
    )
    svg = "".join(
        f'<svg class="{css}-icon" viewBox="0 0 24 24"><path d="'
        + " ".join(f"M{rng.randint(0, 24)} {rng.randint(0, 24)}l2 3" for _ in range(30))
        + '"/></svg>'
        for _ in range(int(10 * weight))
    )

    def cards(name: str, items: list[DemoArticle]) -> str:
        return (
            f'<aside class="{css}-{name}"><div class="{css}-wrap"><div class="{css}-inner">'
            f"<h2>{name.replace('-', ' ').title()}</h2>"
            + "".join(
                f'<div class="{css}-card"><div class="{css}-media">'
                f'<a href="{escape(article_url(base_url, t))}"><picture>'
                f'<source srcset="https://cdn.example/{k}.webp" type="image/webp">'
                f'<img src="https://cdn.example/{k}.jpg" alt="" loading="lazy"></picture></a>'
                f'</div><div class="{css}-body"><span class="{css}-kicker">'
                f"{escape(t.title.split()[0])}</span>"
                f'<h3><a href="{escape(article_url(base_url, t))}">{escape(t.title)}</a></h3>'
                f'<p>{escape(t.paragraphs[0][:100])}</p><ul class="{css}-tags">'
                + "".join(
                    f'<li><a href="{home}tag/{w.lower()}/">{escape(w)}</a></li>'
                    for w in t.title.split()[1:4]
                )
                + f'</ul><span class="{css}-meta">{k + 2} min read</span></div></div>'
                for k, t in enumerate(items)
            )
            + "</div></div></aside>"
        )

    n = max(12, int(24 * weight))
    farm = "".join(
        f'<li><a href="{home}archive/{y}/{m:02d}/">{m:02d}/{y}</a></li>'
        for y in range(2010, 2010 + int(6 * weight) + 1)
        for m in range(1, 13)
    )
    body = (
        f'<nav class="{css}-mega" aria-label="All sections"><ul>{menu}</ul></nav>\n'
        f'<div class="{css}-icons" hidden>{svg}</div>\n'
        + cards("most-read", teasers[:n])
        + cards("trending", teasers[n : 2 * n] or teasers[:n])
        + f'<ul class="{css}-archive">{farm}</ul>\n'
    )
    return head, body


class HeavyPageSimulator(OutletSimulator):
    """The simulator with real-page weight: each page gets its outlet's furniture."""

    def __init__(self, corpus: DemoCorpus, **kwargs: Any) -> None:
        super().__init__(corpus, **kwargs)
        self._furniture: dict[str, tuple[str, str]] = {}

    def _render_article(self, outlet: DemoOutlet, article: DemoArticle) -> bytes:
        page = super()._render_article(outlet, article)
        if outlet.slug not in self._furniture:
            everything = self.corpus.articles
            teasers = [everything[(k * 7919) % len(everything)] for k in range(120)]
            self._furniture[outlet.slug] = _furniture(outlet, teasers, self.base_url)
        head, body = self._furniture[outlet.slug]
        page = page.replace(b"</head>", head.encode() + b"</head>", 1)
        return page.replace(b"</main>", body.encode() + b"</main>", 1)


# ----------------------------------------------------------------------------- serving


def subcorpus(corpus: DemoCorpus, outlets: list[DemoOutlet]) -> DemoCorpus:
    slugs = {o.slug for o in outlets}
    return DemoCorpus(
        root=corpus.root,
        start=corpus.start,
        outlets=tuple(outlets),
        articles=tuple(a for a in corpus.articles if a.outlet in slugs),
    )


def host_simulators(corpus: DemoCorpus, hosts: int, light: bool = False) -> list[OutletSimulator]:
    """One simulator per loopback address 127.0.0.2 .. 127.0.0.(hosts+1), outlets dealt
    round-robin; every clock is at the corpus's end, so every article is released. `light`:
    the simulator's own pages (its site chrome, no heavy furniture: 10-20 KB)."""
    sims: list[OutletSimulator] = []
    kind = OutletSimulator if light else HeavyPageSimulator
    for h in range(hosts):
        part = subcorpus(corpus, list(corpus.outlets[h::hosts]))
        sim = kind(part, host=f"127.0.0.{h + 2}")
        sim.start()
        sim.release_all()
        sims.append(sim)
    return sims


def outlets_toml(sims: list[OutletSimulator], fetch: str = "") -> str:
    parts = [sims[0].outlets_toml(extra=fetch)]
    for sim in sims[1:]:
        text = sim.outlets_toml()
        parts.append(text[text.index("[[outlets]]") :])
    return "\n".join(parts)


def _serve(n_outlets: int, n_articles: int, hosts: int, light: bool, conn: Any) -> None:
    corpus = synthetic_corpus(n_outlets, n_articles)
    sims = host_simulators(corpus, hosts, light)
    # render every page before the clock starts, as a remote site would have them ready
    for sim in sims:
        for article in sim.corpus.articles:
            sim._article(sim.corpus.outlet(article.outlet), article)
    conn.send(outlets_toml(sims))
    ready = cpu_seconds()  # building and rendering are not serving
    while conn.recv() != "stop":  # "served": the figures so far
        conn.send((sum(sim.stats.requests for sim in sims), cpu_seconds() - ready))
    requests = sum(sim.stats.requests for sim in sims)
    serving = cpu_seconds() - ready
    for sim in sims:
        sim.stop()
    conn.send((requests, serving))


class SimulatorProcess:
    """The simulators in a process of their own (the web is not in the crawler's process):
    `toml` is the outlets file; `stop()` returns (requests served, CPU seconds spent serving
    them, the corpus building and page rendering before the first request left out);
    `served()` the same figures so far."""

    def __init__(self, n_outlets: int, n_articles: int, hosts: int = 25, light: bool = False):
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve, args=(n_outlets, n_articles, hosts, light, child), daemon=True
        )
        started = time.perf_counter()
        self._proc.start()
        self.pid = self._proc.pid or 0
        while not self._conn.poll(0.5):  # a simulator that failed to start says so
            if not self._proc.is_alive():
                raise RuntimeError(
                    f"the simulators exited with code {self._proc.exitcode} before serving "
                    f"({n_outlets} outlets on {hosts} hosts)"
                )
        self.toml: str = self._conn.recv()
        self.startup_seconds = time.perf_counter() - started

    def served(self) -> tuple[int, float]:
        self._conn.send("served")
        result: tuple[int, float] = self._conn.recv()
        return result

    def stop(self) -> tuple[int, float]:
        self._conn.send("stop")
        result = self._conn.recv()
        self._proc.join(timeout=10)
        return result


def page_bytes(
    corpus: DemoCorpus,
    base_url: str = "http://127.0.0.2:8000",
    articles: list[DemoArticle] | None = None,
) -> list[bytes]:
    """The article pages (default: all) as the simulator would serve them (no server)."""
    sim = HeavyPageSimulator(corpus)
    sim._base_url = base_url
    chosen = corpus.articles if articles is None else articles
    return [sim._render_article(corpus.outlet(a.outlet), a) for a in chosen]


if __name__ == "__main__":  # print page sizes and a sample of extraction times
    import statistics

    from ingest.extract import extract_article

    corpus = synthetic_corpus(int(sys.argv[1]) if len(sys.argv) > 1 else 100, 1000)
    pages = page_bytes(corpus)
    sizes = [len(p) / 1024 for p in pages]
    print(machine())
    print(
        f"pages: {len(pages)}, KB min/median/mean/max: {min(sizes):.0f} "
        f"{statistics.median(sizes):.0f} {statistics.mean(sizes):.0f} {max(sizes):.0f}"
    )
    times = []
    words = []
    for page, article in zip(pages[:200], corpus.articles[:200], strict=True):
        t = time.perf_counter()
        doc = extract_article(page, article_url("http://127.0.0.2:8000", article), "text/html")
        times.append((time.perf_counter() - t) * 1000)
        words.append((len(doc.text.split()), len(article.text.split())))
    print(
        f"trafilatura ms mean/median: {statistics.mean(times):.1f} {statistics.median(times):.1f}"
    )
    print("extracted / original words, first 5:", words[:5])


# ----------------------------------------------------------------------------- disk


def table_bytes(con: Any) -> dict[str, float]:
    """Bytes each table of an open DuckDB database takes in its file: the blocks its column
    segments sit in (`pragma_storage_info`), a block shared by several tables split evenly
    between them. Checkpoint first: rows not yet checkpointed sit in the WAL, not in blocks."""
    block_size = con.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0]
    tables = [row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
    owners: dict[int, set[str]] = {}
    for table in tables:
        for block, extra in con.execute(
            "SELECT block_id, additional_block_ids FROM pragma_storage_info(?) "
            "WHERE persistent AND block_id >= 0",
            [table],
        ).fetchall():
            for b in [block, *(extra or [])]:
                owners.setdefault(int(b), set()).add(table)
    sizes = dict.fromkeys(tables, 0.0)
    for shared in owners.values():
        for table in shared:
            sizes[table] += block_size / len(shared)
    return sizes
