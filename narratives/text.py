"""Text normalisation, site-chrome removal and word tokens with their character offsets."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice

import xxhash

_DIGIT = re.compile(r"\d")
_SEPARATOR = re.compile(r"[,.\u202f\u00a0']")
# a number with thousands separators ("4,500") is one token; otherwise runs of letters/digits
_TOKEN = re.compile(r"\d{1,3}(?:[,.\u202f\u00a0']\d{3})+(?!\d)|[^\W_]+", re.UNICODE)
_WORD = _TOKEN
_WS = re.compile(r"\s+")

# Lines that are chrome on any site. Only short lines are dropped (see is_generic_chrome).
GENERIC_CHROME_MAX_WORDS = 30
_GENERIC_CHROME = re.compile(
    r"share (this|on)|click to (share|print|email|start listening)|leave a (reply|comment)"
    r"|your email address will not be published|required fields are marked|content is protected"
    r"|all rights reserved|subscribe to (our|continue|the)|sign up for|newsletter|cookie"
    r"|follow us on|copy link|read more:|also read:|advertisement|related (stories|posts|articles)"
    r"|download (our|the) app|join our (whatsapp|telegram)|post navigation|you may also like",
    re.I,
)


@lru_cache(maxsize=1 << 16)  # a pure function of the token; words repeat (a third off tokenising)
def _fold(token: str) -> str:
    token = unicodedata.normalize("NFKC", token).lower()
    if token[:1].isdigit():
        token = _SEPARATOR.sub("", token)
    return _DIGIT.sub("0", token)


def normalise(text: str) -> str:
    """Lower case, NFKC, thousands separators removed, digits -> 0, punctuation -> space."""
    return " ".join(_fold(token) for token in _TOKEN.findall(text))


def fingerprint(text: str) -> tuple[int, str]:
    """The text's word count and content hash (SHA-1 of `normalise(text)`), in one pass."""
    tokens = _TOKEN.findall(text)
    return len(tokens), hashlib.sha1(" ".join(map(_fold, tokens)).encode()).hexdigest()


def split_paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n|\n", text) if p.strip()]


def paragraph_key(paragraph: str) -> int:
    """A stable 63-bit key of a paragraph's normalised text (for learning site chrome)."""
    return xxhash.xxh64_intdigest(normalise(paragraph).encode()) >> 1


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def is_generic_chrome(paragraph: str, max_words: int = GENERIC_CHROME_MAX_WORDS) -> bool:
    """A short line that is chrome on any site ("Share this", "Sign up for our newsletter")."""
    return word_count(paragraph) <= max_words and bool(_GENERIC_CHROME.search(paragraph))


@dataclass(frozen=True)
class Paragraph:
    """A paragraph read once: its normalised words, and its key when it is short enough to be
    learned as chrome."""

    text: str
    words: tuple[str, ...]
    key: int | None  # paragraph_key(text) for at most max_chrome_words words, else None

    @property
    def generic_chrome(self) -> bool:
        return len(self.words) <= GENERIC_CHROME_MAX_WORDS and bool(
            _GENERIC_CHROME.search(self.text)
        )


def read_paragraphs(text: str, max_chrome_words: int = 60) -> list[Paragraph]:
    """Every paragraph of `text`, tokenised once (what chrome learning, chrome removal and
    tokenising all need)."""
    found = []
    for paragraph in split_paragraphs(text):
        words = tuple(map(_fold, _TOKEN.findall(paragraph)))
        key = None
        if len(words) <= max_chrome_words:
            key = xxhash.xxh64_intdigest(" ".join(words).encode()) >> 1  # = paragraph_key
        found.append(Paragraph(paragraph, words, key))
    return found


def without_chrome(
    paragraphs: Sequence[Paragraph], chrome_keys: Iterable[int] = ()
) -> list[Paragraph]:
    """The paragraphs that carry the article: generic chrome lines and the outlet's learned
    chrome (short paragraphs whose keys are in `chrome_keys`) are dropped."""
    learned = chrome_keys if isinstance(chrome_keys, set | frozenset) else set(chrome_keys)
    return [
        p for p in paragraphs if not p.generic_chrome and (p.key is None or p.key not in learned)
    ]


def content_paragraphs(
    text: str, chrome_keys: Iterable[int] = (), max_chrome_words: int = 60
) -> list[str]:
    """The text of `without_chrome(read_paragraphs(text))`."""
    paragraphs = read_paragraphs(text, max_chrome_words)
    return [p.text for p in without_chrome(paragraphs, chrome_keys)]


@dataclass(frozen=True)
class Tokens:
    """Normalised words of the content paragraphs, with where each word sits in `text`."""

    text: str  # the content paragraphs joined by blank lines
    words: tuple[str, ...]
    paragraph_starts: tuple[int, ...]  # word index where each paragraph begins
    paragraph_offsets: tuple[int, ...]  # char offset in `text` where each paragraph begins
    outlet: str = ""  # the outlet that published the text ("" when unknown)

    def paragraph_spans(self) -> list[tuple[int, int]]:
        """(first word, end word) of each paragraph, end exclusive."""
        ends = [*self.paragraph_starts[1:], len(self.words)]
        return list(zip(self.paragraph_starts, ends, strict=True))

    def snippet(self, first_word: int, last_word: int) -> str:
        """The text from the first to the last word (inclusive), as written."""
        if not self.words:
            return ""
        first_word = max(0, min(first_word, len(self.words) - 1))
        last_word = max(first_word, min(last_word, len(self.words) - 1))
        return self.text[self.word_span(first_word)[0] : self.word_span(last_word)[1]]

    def word_span(self, word: int) -> tuple[int, int]:
        """Where word number `word` sits in `text`: found again in its paragraph alone (most
        texts are never quoted from, so offsets are not kept for every word)."""
        index = bisect_right(self.paragraph_starts, word) - 1
        start = self.paragraph_offsets[index]
        end = (
            self.paragraph_offsets[index + 1] - 2
            if index + 1 < len(self.paragraph_offsets)
            else len(self.text)
        )
        matches = _TOKEN.finditer(self.text, start, end)
        match = next(islice(matches, word - self.paragraph_starts[index], None))
        return match.start(), match.end()


def tokenize(paragraphs: Sequence[str | Paragraph], outlet: str = "") -> Tokens:
    """The words of the paragraphs, in order (a Paragraph's words are not read again)."""
    texts: list[str] = []
    words: list[str] = []
    paragraph_starts: list[int] = []
    offsets: list[int] = []
    at = 0
    for paragraph in paragraphs:
        paragraph_starts.append(len(words))
        offsets.append(at)
        if isinstance(paragraph, Paragraph):
            texts.append(paragraph.text)
            words.extend(paragraph.words)
        else:
            texts.append(paragraph)
            words.extend(map(_fold, _TOKEN.findall(paragraph)))
        at += len(texts[-1]) + 2
    return Tokens("\n\n".join(texts), tuple(words), tuple(paragraph_starts), tuple(offsets), outlet)
