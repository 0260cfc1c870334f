"""A labelled evaluation corpus for narrative detection, generated from the demo corpus.

Sources are the demo corpus's narrative originals and unrelated articles: each source is its
own true narrative. For every source the generator writes copies with one kind of edit at three
grades of strength (3 is the hardest), and adds distractors that must stay apart: look-alikes
of a source (same opening words in every sentence, different continuations), the demo's
hand-written near-different articles, and unrelated articles. Every generated article is
wrapped in the site chrome of the outlet that carries it (12 outlets, three chrome levels), and
carries its truth: the source it tells (None for distractors), the edit kind and grade, and when
it is first seen (sources first, copies in the following days, returning claims 30 days or more
later). The same seed gives the same corpus, byte for byte.

New prose (commentary around an embedded quote, added sentences, look-alike continuations) is
made by a word-bigram chain over the demo's unrelated articles, and a generated sentence is
rejected when it repeats more than six words in a row of any demo article: filler never carries
a run of any article's text, so an embedding contains exactly the source it was given.

    from evaluation.corpus import generate
    corpus = generate(seed=7, scale=1.0)
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from narratives.text import normalise
from simulator.corpus import DEMO_ROOT, DemoArticle, load_corpus

KINDS = (
    "numbers",  # figures changed: some / all / all and spelled out
    "names",  # capitalised words respelled: 30% / 60% / all of them
    "sentences",  # sentences dropped and added: 1+1 / 20%+2 / 35%+3
    "reorder",  # paragraphs reordered: one swap / half shuffled / all and their sentences
    "drop",  # paragraphs dropped: 70% / 50% / 35% kept
    "breaking",  # a 'Breaking' intro and a sign-off, growing with the grade
    "excerpt",  # 3 paragraphs / 2 with an intro / 2 with an intro, numbers and words edited
    "embedded",  # 3 paragraphs in 3x commentary / 2 in 4x / 2 in 4x with edited words
    "chrome",  # at an outlet of chrome level 1 / 2 / 3 with its body cut to 100% / 60% / 2 paras
    "wire",  # wire credit: verbatim / dateline and figures / cut to 60%
    "recurrence",  # back after 30 days verbatim / 45 days with an intro / 60 days, half of it
    "noise",  # words swapped for synonyms or dropped at rate 4% / 8% / 15%
)
DISTRACTORS = (
    "near",  # every sentence opens with the source's first 3 / 5 / 7 words, then differs
    "near-demo",  # the demo's hand-written near-different articles (same event, other claim)
    "unrelated",  # demo unrelated articles kept out of the sources
    "boilerplate",  # new stories sharing a label line on top / a disclaimer below / both
)
# lines a publisher puts on every piece of a series, carried by outlets that share its pieces
BOILERPLATE_LINES = (
    "This analysis is part of the Regional Security Monitor, an independent series on conflict "
    "and governance in South Asia; the views expressed are the author's own.",
    "Editor's note: figures in this report come from official statements and could not be "
    "independently verified by our newsroom at the time of publication.",
    "This article was produced under the Open Newsroom Partnership, which shares reporting "
    "among member outlets; the partnership does not endorse the opinions of its contributors.",
)
BOILERPLATE_PER_GRADE = 24
# grades 4 (label and disclaimer in the middle) and 5 (a two-paragraph disclaimer above the
# outlet's sign-off lines) are built below but not generated yet: before a line is common in
# the store (carried by stored articles of 3 unrelated stories), its first carriers still join
BOILERPLATE_GRADES = (1, 2, 3)
GRADES = (1, 2, 3)
HARDEST_GRADE = 3

WIRE_CREDITS = (
    "(With inputs from agencies)",
    "— AFP",
    "(Reuters)",
    "This story was published from a wire agency feed.",
    "— PTI",
)


@dataclass(frozen=True)
class Outlet:
    outlet_id: str
    name: str
    chrome_level: int  # 1: generic share and comment lines; 2: + house lines; 3: + paywall
    top: tuple[str, ...]
    bottom: tuple[str, ...]

    def wrap(self, body: Sequence[str]) -> str:
        return "\n\n".join([*self.top, *body, *self.bottom])


@dataclass(frozen=True)
class Item:
    key: str  # unique; a source's key is its truth label
    outlet_id: str
    first_seen: datetime
    body: tuple[str, ...]  # the article's paragraphs, without chrome
    text: str  # as extracted from the page: the body inside the outlet's chrome
    truth: str | None  # the source it tells; None for a distractor
    kind: str  # "source", an edit kind, or a distractor kind
    grade: int  # 1..3 for edits and generated look-alikes, 0 otherwise
    source: str | None  # the source it was made from (also for look-alikes)
    quote: str = ""  # excerpt and embedded: the source's paragraphs it quotes
    wire: bool = False  # carries a wire credit line


@dataclass(frozen=True)
class EvalCorpus:
    seed: int
    scale: float
    start: datetime
    outlets: tuple[Outlet, ...]
    items: tuple[Item, ...]  # in first-seen order

    def by_key(self) -> dict[str, Item]:
        return {item.key: item for item in self.items}


# ----------------------------------------------------------------------------- outlets

_OUTLET_NAMES = (
    "Northgate Times",
    "Riverside Bulletin",
    "Meridian Post",
    "Harbour Ledger",
    "Summit Daily",
    "Canal Street Journal",
    "Plateau Herald",
    "Lantern News",
    "Eastline Review",
    "Copperfield Gazette",
    "Saltmarsh Courier",
    "Kestrel Report",
)
# generic lines every site carries; the generic chrome filter knows them
_GENERIC_TOP = (
    "Share on Facebook Share on X Share on WhatsApp Copy link",
    "Share this article: Facebook | X | Telegram | Email",
    "Click to share on WhatsApp (Opens in new window)",
)
_GENERIC_BOTTOM = (
    "Leave a Reply Cancel reply",
    "Your email address will not be published. Required fields are marked *",
    "Sign up for our morning newsletter and never miss a story.",
    "Follow us on Telegram and Instagram for the latest updates.",
)
# house lines: each outlet gets its own, made of one choice per slot
_ABOUT_SLOTS = (
    ("{name} is", "{name} has been", "Since its founding, {name} has been"),
    (
        "an independent newsroom funded by the people who read it",
        "a reader-supported publication with no owner but its subscribers",
        "a cooperative of reporters and editors answerable only to its members",
        "a small team of journalists working out of three cities",
    ),
    (
        "and it takes no money from parties or ministries.",
        "and it has never accepted advertising from any government body.",
        "and every rupee we spend is published in an annual audit.",
        "and our editorial board meets in public once a quarter.",
    ),
    (
        "If our reporting matters to you, please consider a monthly contribution.",
        "Readers like you keep our correspondents in the field every single week.",
        "Write to the editors with corrections at any hour of the day or night.",
        "Tell a friend about us, it is the best way to help a newsroom this size.",
    ),
)
_PAYWALL_SLOTS = (
    (
        "You have read {n} of your {m} free stories this month.",
        "This is story {n} of the {m} you can read without an account this month.",
        "Only {n} of your {m} complimentary articles remain for the current month.",
    ),
    (
        "Members get every story, the weekly long read and an archive going back years,",
        "A membership unlocks unlimited reading on the site and in our apps,",
        "Paying readers get early access to investigations and a printable weekend edition,",
    ),
    (
        "for less than the price of a cup of tea a day.",
        "and you can cancel at any moment from your profile page.",
        "with a discount for students, teachers and retired soldiers.",
    ),
)
_POLICY_SLOTS = (
    (
        "Comments are reviewed by a moderator before they appear below.",
        "Our moderators read every comment before it is published on this page.",
        "We welcome debate in the comments as long as it stays civil and on topic.",
    ),
    (
        "Posts that abuse other readers, name private persons or share rumours as fact",
        "Anything defamatory, hateful, commercial or written in block capitals",
        "Replies that attack a writer personally rather than the argument",
    ),
    (
        "will be removed without notice and repeat offenders blocked.",
        "are deleted, and we do not enter into correspondence about them.",
        "will not be published, whatever the point of view they express.",
    ),
)
_TOP_HOUSE = (
    "{name} | Live coverage from the region, updated through the day and night",
    "{name} | Reporting from the frontier districts to the capital since the early years",
    "{name} | Independent news, analysis and opinion for readers at home and abroad",
    "{name} | The stories behind the headlines, checked twice before they go out",
)


def _house_line(slots: Sequence[Sequence[str]], rng: random.Random, **fmt: object) -> str:
    return " ".join(rng.choice(options) for options in slots).format(**fmt)


def make_outlets(rng: random.Random) -> tuple[Outlet, ...]:
    outlets = []
    for i, name in enumerate(_OUTLET_NAMES):
        level = 1 + i * 3 // len(_OUTLET_NAMES)
        top = [rng.choice(_GENERIC_TOP)]
        bottom = rng.sample(_GENERIC_BOTTOM, 2)
        if level >= 2:
            top.append(_house_line([[t] for t in [rng.choice(_TOP_HOUSE)]], rng, name=name))
            bottom.insert(0, _house_line(_ABOUT_SLOTS, rng, name=name))
        if level >= 3:
            n = rng.randint(2, 4)
            bottom.insert(0, _house_line(_PAYWALL_SLOTS, rng, n=n, m=n + rng.randint(2, 6)))
            bottom.append(_house_line(_POLICY_SLOTS, rng))
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        outlets.append(Outlet(slug, name, level, tuple(top), tuple(bottom)))
    return tuple(outlets)


# ----------------------------------------------------------------------------- new prose

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"”’']?\s+(?=[A-Z\"“‘(])")


def sentences_of(paragraph: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(paragraph) if s.strip()]


class Prose:
    """Sentences from a word-bigram chain over a set of texts, never repeating more than
    `max_run` words in a row of any text in `forbidden` (compared on normalised words)."""

    def __init__(
        self, texts: Sequence[str], forbidden: Sequence[str], rng: random.Random, max_run: int = 6
    ):
        self.rng = rng
        self.max_run = max_run
        self.next: dict[str, list[str]] = defaultdict(list)
        self.starts: list[str] = []
        for text in texts:
            for paragraph in text.split("\n\n"):
                for sentence in sentences_of(paragraph):
                    words = sentence.split()
                    if len(words) < 6:
                        continue
                    self.starts.append(words[0])
                    for a, b in zip(words, words[1:], strict=False):
                        self.next[a].append(b)
        self.size = max_run + 1  # a run of this many words is too much
        self.forbidden: set[tuple[str, ...]] = set()
        for text in forbidden:
            words = normalise(text).split()
            for i in range(len(words) - self.size + 1):
                self.forbidden.add(tuple(words[i : i + self.size]))

    def _clean(self, words: Sequence[str], head: int) -> bool:
        """No window of `size` words repeats a forbidden text, except windows inside the
        first `head` words (a given opening)."""
        norm = normalise(" ".join(words)).split()
        skip = len(normalise(" ".join(words[:head])).split())
        return not any(
            tuple(norm[i : i + self.size]) in self.forbidden
            for i in range(max(0, skip - self.size + 1), len(norm) - self.size + 1)
        )

    def continue_from(self, head: Sequence[str], min_words: int, max_words: int) -> list[str]:
        """`head` followed by chain words until a sentence end after `min_words` words."""
        vocabulary = list(self.next)
        for attempt in range(200):
            words = list(head) if head else [self.rng.choice(self.starts)]
            if head and attempt >= 10:  # the head's own continuation keeps repeating it
                words.append(self.rng.choice(vocabulary))
            while len(words) < max_words:
                options = self.next.get(words[-1]) or self.starts
                words.append(self.rng.choice(options))
                if len(words) >= min_words and words[-1][-1:] in ".!?":
                    break
            if len(words) - len(head) < 4 or not self._clean(words, len(head)):
                continue
            if words[-1][-1:] not in ".!?":
                words[-1] = words[-1].rstrip(",;:") + "."
            return words
        raise RuntimeError("could not write a sentence that repeats no article")

    def sentence(self, min_words: int = 10, max_words: int = 28) -> str:
        return " ".join(self.continue_from((), min_words, max_words))

    def paragraphs(self, words: int) -> list[str]:
        """New paragraphs of 2-4 sentences, about `words` words in all."""
        result: list[str] = []
        total = 0
        while total < words:
            paragraph = " ".join(self.sentence() for _ in range(self.rng.randint(2, 4)))
            result.append(paragraph)
            total += len(paragraph.split())
        return result


# ----------------------------------------------------------------------------- edits

_NUMBER = re.compile(r"\d[\d,]*\d|\d")
_SMALL = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
).split()


def _changed_number(value: str, rng: random.Random, spell: bool) -> str:
    n = int(value.replace(",", ""))
    if 1900 <= n <= 2100 and "," not in value:
        return value  # a year: left alone
    if spell and n <= 20:
        return _SMALL[n]
    changed = max(1, round(n * rng.choice((0.8, 0.9, 1.1, 1.25, 1.5))))
    if spell and changed >= 1000:
        return f"{changed / 1000:.1f} thousand".replace(".0 ", " ")
    if changed >= 1000 and rng.random() < 0.5:
        return f"{changed:,}"
    return str(changed)


def edit_numbers(paragraphs: list[str], grade: int, rng: random.Random) -> list[str]:
    share = {1: 0.34, 2: 1.0, 3: 1.0}[grade]

    def change(match: re.Match[str]) -> str:
        if rng.random() > share:
            return match.group()
        return _changed_number(match.group(), rng, spell=grade == 3)

    return [_NUMBER.sub(change, p) for p in paragraphs]


_STOP = frozenset(
    "The A An In On At As But And Or If It Its He She They We This That These Those There His "
    "Her Their Our Of For To By With From After Before When While Since Some Many More Most "
    "All One Two Three Mr Ms Dr Not No Yes".split()
)


def _respell(word: str, rng: random.Random) -> str:
    rules = [
        (r"kh", "k"),
        (r"sh", "ch"),
        (r"ee", "i"),
        (r"oo", "u"),
        (r"ph", "f"),
        (r"w", "v"),
        (r"z", "s"),
        (r"q", "k"),
        (r"ai", "ay"),
        (r"i(?=[^aeiou]|$)", "ee"),
        (r"a(?=[^aeiou])", "aa"),
        (r"u", "oo"),
        (r"([bcdfgklmnprst])\1", r"\1"),
        (r"(?<=[aeiou])([lmnrt])(?=[aeiou])", r"\1\1"),
    ]
    rng.shuffle(rules)
    head, tail = word[0], word[1:]
    for pattern, replacement in rules:
        respelled = re.sub(pattern, replacement, tail, count=1)
        if respelled != tail:
            return head + respelled
    return head + tail[:-1] + "h" if len(tail) > 2 else word + "h"


def edit_names(paragraphs: list[str], grade: int, rng: random.Random) -> list[str]:
    names = sorted(
        {
            w
            for p in paragraphs
            for s in sentences_of(p)
            for w in re.findall(r"(?<=\s)[A-Z][a-z]{3,}\b", s)
            if w not in _STOP
        }
    )
    share = {1: 0.3, 2: 0.6, 3: 1.0}[grade]
    chosen = [n for n in names if rng.random() < share]
    mapping = {n: _respell(n, rng) for n in chosen}
    if not mapping:
        return paragraphs
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, mapping)) + r")\b")
    return [pattern.sub(lambda m: mapping[m.group()], p) for p in paragraphs]


def edit_sentences(
    paragraphs: list[str], grade: int, rng: random.Random, prose: Prose
) -> list[str]:
    drop_share, added = {1: (0.0, 1), 2: (0.2, 2), 3: (0.35, 3)}[grade]
    split = [sentences_of(p) for p in paragraphs]
    positions = [(i, j) for i, ss in enumerate(split) for j in range(len(ss))]
    n_drop = 1 if grade == 1 else round(len(positions) * drop_share)
    dropped = set(rng.sample(positions, min(n_drop, max(0, len(positions) - 2))))
    kept = [[s for j, s in enumerate(ss) if (i, j) not in dropped] for i, ss in enumerate(split)]
    for _ in range(added):
        i = rng.randrange(len(kept))
        kept[i].insert(rng.randint(0, len(kept[i])), prose.sentence())
    return [" ".join(ss) for ss in kept if ss]


def edit_reorder(paragraphs: list[str], grade: int, rng: random.Random) -> list[str]:
    result = list(paragraphs)
    if len(result) < 2:
        return result
    if grade == 1:
        i = rng.randrange(len(result) - 1)
        result[i], result[i + 1] = result[i + 1], result[i]
        return result
    if grade == 2:
        chosen = sorted(rng.sample(range(len(result)), max(2, len(result) // 2)))
        moved = [result[i] for i in chosen]
        rng.shuffle(moved)
        for i, p in zip(chosen, moved, strict=True):
            result[i] = p
        return result
    rng.shuffle(result)
    shuffled = []
    for p in result:
        ss = sentences_of(p)
        rng.shuffle(ss)
        shuffled.append(" ".join(ss))
    return shuffled


STORY_WORDS = 20  # a paragraph shorter than this may be an outlet's tagline, not the story


def edit_drop(paragraphs: list[str], grade: int, rng: random.Random) -> list[str]:
    keep = {1: 0.7, 2: 0.5, 3: 0.35}[grade]
    n = max(1, round(len(paragraphs) * keep))
    chosen = sorted(rng.sample(range(len(paragraphs)), n))
    if all(len(paragraphs[i].split()) < STORY_WORDS for i in chosen):
        # a copy keeps some of the story, not only the source outlet's tagline
        longest = max(range(len(paragraphs)), key=lambda i: len(paragraphs[i].split()))
        chosen = sorted({*chosen[1:], longest})
    return [paragraphs[i] for i in chosen]


_SYNONYMS = {
    "said": "stated",
    "says": "states",
    "told": "informed",
    "killed": "slain",
    "army": "military",
    "soldiers": "troops",
    "troops": "soldiers",
    "officials": "authorities",
    "government": "administration",
    "attack": "assault",
    "people": "persons",
    "many": "numerous",
    "large": "big",
    "big": "large",
    "began": "started",
    "started": "began",
    "also": "too",
    "after": "following",
    "before": "prior to",
    "about": "around",
    "near": "close to",
    "more": "over",
    "week": "weekly period",
    "however": "but",
    "but": "however",
    "because": "as",
    "during": "in",
    "announced": "declared",
    "reported": "stated",
    "claimed": "alleged",
    "area": "region",
    "region": "area",
    "city": "town",
    "show": "indicate",
    "shows": "indicates",
    "help": "assist",
    "asked": "requested",
    "called": "termed",
    "expected": "anticipated",
    "including": "among them",
    "against": "versus",
    "several": "a number of",
    "major": "key",
    "senior": "high-ranking",
    "new": "fresh",
    "recent": "latest",
    "quickly": "rapidly",
    "early": "initial",
    "leaders": "chiefs",
    "forces": "units",
}


def edit_noise(paragraphs: list[str], rate: float, rng: random.Random) -> list[str]:
    result = []
    for p in paragraphs:
        words = []
        for word in p.split():
            if rng.random() < rate:
                bare = word.strip(".,;:\"'“”").lower()
                if bare in _SYNONYMS:
                    words.append(word.lower().replace(bare, _SYNONYMS[bare]))
                elif word[-1:] in ".!?" or not bare.isalpha():
                    words.append(word)
                # other words are dropped
                continue
            words.append(word)
        result.append(" ".join(words))
    return result


# ----------------------------------------------------------------------------- generator


def _slug(article: DemoArticle) -> str:
    return f"{article.outlet}--{article.slug}"


def generate(seed: int = 7, scale: float = 1.0, root: Path | str = DEMO_ROOT) -> EvalCorpus:
    """The evaluation corpus for `seed`; `scale` (0..1] is the share of sources used."""
    rng = random.Random(seed)
    demo = load_corpus(root)
    originals = [a for a in demo.articles if a.edit == "original"]
    unrelated = sorted((a for a in demo.articles if a.edit == "unrelated"), key=_slug)
    rng.shuffle(unrelated)
    n_held = max(2, len(unrelated) // 8)
    held_out, unrelated_sources = unrelated[:n_held], unrelated[n_held:]
    n_sources = max(4, round(scale * (len(originals) + len(unrelated_sources))))
    sources = (originals + unrelated_sources)[:n_sources]
    held_out = held_out[: max(2, round(scale * len(held_out)))]
    kept_narratives = {a.narrative for a in sources if a.narrative}
    # a near-different article's truth is "" (it tells no seed narrative); its file name
    # says which narrative's event it is about
    near_demo = [
        a
        for a in demo.articles
        if a.edit == "near-different" and a.slug.rsplit("-", 1)[0] in kept_narratives
    ]
    prose = Prose(
        [a.text for a in demo.articles if a.edit == "unrelated"],
        [a.text for a in demo.articles],
        random.Random(seed + 1),
    )
    outlets = make_outlets(rng)
    by_level: dict[int, list[Outlet]] = defaultdict(list)
    for outlet in outlets:
        by_level[outlet.chrome_level].append(outlet)
    start = demo.start
    items: list[Item] = []

    def add(
        key: str,
        outlet: Outlet,
        seen: datetime,
        body: Sequence[str],
        truth: str | None,
        kind: str,
        grade: int,
        source: str | None,
        quote: str = "",
        wire: bool = False,
    ) -> None:
        body = tuple(p for p in body if p.strip())
        items.append(
            Item(
                key,
                outlet.outlet_id,
                seen,
                body,
                outlet.wrap(body),
                truth,
                kind,
                grade,
                source,
                quote,
                wire,
            )
        )

    def hours(lo: float, hi: float) -> timedelta:
        return timedelta(minutes=round(rng.uniform(lo, hi) * 60))

    # sources: spread over the first week, round-robin over the outlets
    order = list(range(len(sources)))
    rng.shuffle(order)
    source_seen: dict[str, datetime] = {}
    source_outlet: dict[str, Outlet] = {}
    for rank, index in enumerate(order):
        article = sources[index]
        key = _slug(article)
        outlet = outlets[rank % len(outlets)]
        seen = start + timedelta(days=rank * 7 // len(order)) + hours(6, 22)
        source_seen[key], source_outlet[key] = seen, outlet
        add(key, outlet, seen, article.paragraphs, key, "source", 0, key)

    for article in sources:
        key = _slug(article)
        paragraphs = list(article.paragraphs)
        seen0 = source_seen[key]
        for kind in KINDS:
            for grade in GRADES:
                outlet = rng.choice(outlets)
                seen = seen0 + hours(2, 24 * 12)
                quote = ""
                wire = False
                if kind == "numbers":
                    body = edit_numbers(paragraphs, grade, rng)
                elif kind == "names":
                    body = edit_names(paragraphs, grade, rng)
                elif kind == "sentences":
                    body = edit_sentences(paragraphs, grade, rng, prose)
                elif kind == "reorder":
                    body = edit_reorder(paragraphs, grade, rng)
                elif kind == "drop":
                    body = edit_drop(paragraphs, grade, rng)
                elif kind == "breaking":
                    body = list(paragraphs)
                    body[0] = "BREAKING: " + body[0]
                    signoff = f"Stay with {outlet.name} for updates on this developing story."
                    if grade >= 2:
                        body.insert(0, "Breaking news. " + prose.sentence(14, 30))
                    if grade >= 3:
                        body.insert(1, "Editor's note: " + " ".join(prose.paragraphs(30)))
                        body.append(" ".join(prose.paragraphs(35)))
                    body.append(signoff)
                elif kind == "excerpt":
                    size = 3 if grade == 1 else 2
                    first = rng.randrange(max(1, len(paragraphs) - size + 1))
                    quoted = paragraphs[first : first + size]
                    quote = "\n\n".join(quoted)
                    if grade == 3:
                        quoted = edit_noise(edit_numbers(quoted, 2, rng), 0.03, rng)
                    intro = [] if grade == 1 else [prose.sentence(10, 20)]
                    body = intro + quoted
                elif kind == "embedded":
                    size = 3 if grade == 1 else 2
                    first = rng.randrange(max(1, len(paragraphs) - size + 1))
                    quoted = paragraphs[first : first + size]
                    quote = "\n\n".join(quoted)
                    if grade == 3:
                        quoted = edit_noise(quoted, 0.04, rng)
                    words = sum(len(p.split()) for p in quoted)
                    filler = prose.paragraphs((3 if grade == 1 else 4) * words)
                    at = rng.randint(0, len(filler))
                    body = filler[:at] + quoted + filler[at:]
                elif kind == "chrome":
                    outlet = rng.choice(by_level[grade])
                    cut = {1: len(paragraphs), 2: max(2, round(0.6 * len(paragraphs))), 3: 2}
                    body = paragraphs[: cut[grade]]
                elif kind == "wire":
                    credit = rng.choice(WIRE_CREDITS)
                    if grade == 1:
                        body = paragraphs + [credit]
                    elif grade == 2:
                        body = edit_numbers(paragraphs, 1, rng)
                        body[0] = "ISLAMABAD (AFP) — " + body[0]
                    else:
                        body = paragraphs[: max(2, round(0.6 * len(paragraphs)))] + [credit]
                    wire = True
                elif kind == "recurrence":
                    seen = seen0 + timedelta(days={1: 30, 2: 45, 3: 60}[grade]) + hours(0, 12)
                    if grade == 1:
                        body = list(paragraphs)
                    elif grade == 2:
                        back = "One month on, " + prose.sentence(10, 20)
                        body = [back] + edit_noise(paragraphs, 0.03, rng)
                    else:
                        body = [prose.sentence(12, 24)] + edit_drop(paragraphs, 2, rng)
                elif kind == "noise":
                    body = edit_noise(paragraphs, {1: 0.04, 2: 0.08, 3: 0.15}[grade], rng)
                else:  # pragma: no cover - KINDS is closed
                    raise AssertionError(kind)
                add(
                    f"{key}::{kind}-{grade}", outlet, seen, body, key, kind, grade, key, quote, wire
                )

        # look-alikes: every sentence keeps the source's opening words, then goes elsewhere
        for grade in GRADES:
            keep = {1: 3, 2: 5, 3: 7}[grade]
            body = []
            for p in paragraphs:
                new = []
                for s in sentences_of(p):
                    head = s.split()[:keep]
                    lo = max(len(s.split()), keep + 8)
                    new.append(" ".join(prose.continue_from(head, lo, lo + 10)))
                body.append(" ".join(new))
            add(
                f"{key}::near-{grade}",
                rng.choice(outlets),
                seen0 + hours(2, 24 * 12),
                body,
                None,
                "near",
                grade,
                key,
            )

    for article in near_demo:
        event = article.slug.rsplit("-", 1)[0]
        original = next(_slug(a) for a in originals if a.narrative == event)
        add(
            f"near-demo::{_slug(article)}",
            rng.choice(outlets),
            source_seen[original] + hours(2, 24 * 12),
            article.paragraphs,
            None,
            "near-demo",
            0,
            original,
        )
    for article in held_out:
        add(
            f"unrelated::{_slug(article)}",
            rng.choice(outlets),
            start + hours(6, 24 * 14),
            article.paragraphs,
            None,
            "unrelated",
            0,
            None,
        )
    # unrelated new stories sharing a publisher's label line (grade 1: on top), a disclaimer
    # (2: at the bottom), both (3), the label and the disclaimer together in the middle of
    # the story (4), or a two-paragraph disclaimer at the bottom (5), on outlets taken in
    # turn: none belongs with another (BOILERPLATE_GRADES: the grades generated). Their own
    # random source, so the items above stay as they were.
    extra = random.Random(seed + 2)
    boilerplate = Prose(
        [a.text for a in demo.articles if a.edit == "unrelated"],
        [a.text for a in demo.articles] + list(BOILERPLATE_LINES),
        extra,
    )
    for grade in BOILERPLATE_GRADES:
        for n in range(BOILERPLATE_PER_GRADE):
            label = BOILERPLATE_LINES[n % 2]
            story = boilerplate.paragraphs(extra.randint(180, 320))
            middle = len(story) // 2
            body = {
                1: [label, *story],
                2: [*story, BOILERPLATE_LINES[2]],
                3: [label, *story, BOILERPLATE_LINES[2]],
                4: [*story[:middle], label, BOILERPLATE_LINES[2], *story[middle:]],
                5: [*story, *BOILERPLATE_LINES[1:]],
            }[grade]
            add(
                f"boilerplate-{grade}-{n:02d}",
                outlets[(n + grade) % len(outlets)],
                start + timedelta(days=n * 14 // BOILERPLATE_PER_GRADE) + hours(6, 22),
                body,
                None,
                "boilerplate",
                grade,
                None,
            )
    items.sort(key=lambda item: (item.first_seen, item.key))
    return EvalCorpus(seed, scale, start, outlets, tuple(items))
