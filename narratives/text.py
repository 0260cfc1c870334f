"""Text normalisation, site-chrome removal and word tokens with their character offsets."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import xxhash

_DIGIT = re.compile(r"\d")
_SEPARATOR = re.compile(r"[,.\u202f\u00a0']")
# a number with thousands separators ("4,500") is one token; otherwise runs of letters/digits
_TOKEN = re.compile(r"\d{1,3}(?:[,.\u202f\u00a0']\d{3})+(?!\d)|[^\W_]+", re.UNICODE)
_WORD = _TOKEN
_WS = re.compile(r"\s+")

# Lines that are chrome on any site. Only short lines are dropped (see is_generic_chrome).
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


def split_paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n|\n", text) if p.strip()]


def paragraph_key(paragraph: str) -> int:
    """A stable 63-bit key of a paragraph's normalised text (for learning site chrome)."""
    return xxhash.xxh64_intdigest(normalise(paragraph).encode()) >> 1


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def is_generic_chrome(paragraph: str, max_words: int = 30) -> bool:
    return word_count(paragraph) <= max_words and bool(_GENERIC_CHROME.search(paragraph))


def content_paragraphs(
    text: str, chrome_keys: Iterable[int] = (), max_chrome_words: int = 60
) -> list[str]:
    """The paragraphs that carry the article: generic chrome lines and the outlet's learned
    chrome (short paragraphs whose keys are in `chrome_keys`) are dropped."""
    learned = set(chrome_keys)
    kept = []
    for paragraph in split_paragraphs(text):
        if is_generic_chrome(paragraph):
            continue
        if learned and word_count(paragraph) <= max_chrome_words:
            if paragraph_key(paragraph) in learned:
                continue
        kept.append(paragraph)
    return kept


@dataclass(frozen=True)
class Tokens:
    """Normalised words of the content paragraphs, with where each word sits in `text`."""

    text: str  # the content paragraphs joined by blank lines
    words: tuple[str, ...]
    starts: tuple[int, ...]  # char offset in `text` of each word
    ends: tuple[int, ...]
    paragraph_starts: tuple[int, ...]  # word index where each paragraph begins
    outlet: str = ""  # the outlet that published the text ("" when unknown)

    def paragraph_spans(self) -> list[tuple[int, int]]:
        """(first word, end word) of each paragraph, end exclusive."""
        ends = [*self.paragraph_starts[1:], len(self.words)]
        return list(zip(self.paragraph_starts, ends, strict=True))

    def snippet(self, first_word: int, last_word: int) -> str:
        if not self.words:
            return ""
        first_word = max(0, min(first_word, len(self.words) - 1))
        last_word = max(first_word, min(last_word, len(self.words) - 1))
        return self.text[self.starts[first_word] : self.ends[last_word]]


def tokenize(paragraphs: Sequence[str], outlet: str = "") -> Tokens:
    text = "\n\n".join(paragraphs)
    words: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    paragraph_starts: list[int] = []
    offset = 0
    for paragraph in paragraphs:
        paragraph_starts.append(len(words))
        for match in _TOKEN.finditer(paragraph):
            words.append(_fold(match.group()))
            starts.append(offset + match.start())
            ends.append(offset + match.end())
        offset += len(paragraph) + 2
    return Tokens(text, tuple(words), tuple(starts), tuple(ends), tuple(paragraph_starts), outlet)
