"""What changed between versions of a narrative, and wire-credit lines: pure text functions."""

from __future__ import annotations

import difflib
import re
import tomllib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from narratives.text import content_paragraphs, normalise

_NUMBER = re.compile(r"(?<![\w.,])\d[\d,.]*\d(?![\w])|(?<![\w.,])\d(?![\w.,])")
# Also valid RE2 (DuckDB's regexp_matches): the view `article_wire_credit` (migration
# 003_syndication) carries a copy of this pattern; tests/test_syndication.py checks they agree.
WIRE_PATTERN = (
    r"\((?:with inputs from )?(?:agencies|agency|pti|ani|ians|reuters|afp|ap|app|ips|"
    r"[a-z ]*(?:wire|press|news) (?:service|agency))\)"
    r"|^\s*[—–-]\s*(?-i:[A-Z]{2,5})\s*$"  # an agency's initials alone on a line
    r"|published from a (?:wire )?agency feed"
    r"|\b(?:reuters|afp|associated press|press trust of india)\s*$"
)
_WIRE = re.compile(WIRE_PATTERN, re.I | re.M)


def has_wire_credit(text: str) -> bool:
    """The text carries a wire-agency credit line (syndication, as opposed to copying)."""
    return bool(_WIRE.search(text))


def _shingle_set(paragraph: str, size: int = 3) -> set[str]:
    words = normalise(paragraph).split()
    return {" ".join(words[i : i + size]) for i in range(max(1, len(words) - size + 1))}


def _same(a: set[str], b: set[str]) -> bool:
    if not a or not b:
        return False
    return len(a & b) / min(len(a), len(b)) >= 0.5


def describe_changes(origin: str, version: str) -> tuple[str, ...]:
    """Human-readable differences of `version` against `origin`: numbers changed, paragraphs
    added, dropped or reordered, and relative length (excerpt or embedding)."""
    changes: list[str] = []
    origin_numbers = _NUMBER.findall(origin)
    version_numbers = _NUMBER.findall(version)
    removed = [n for n in dict.fromkeys(origin_numbers) if n not in version_numbers]
    added = [n for n in dict.fromkeys(version_numbers) if n not in origin_numbers]
    if removed or added:
        changes.append(
            "numbers: " + (", ".join(removed[:4]) or "—") + " → " + (", ".join(added[:4]) or "—")
        )
    origin_paras = [_shingle_set(p) for p in content_paragraphs(origin)]
    version_paras = [_shingle_set(p) for p in content_paragraphs(version)]
    kept_positions = []
    for vp in version_paras:
        position = next((i for i, op in enumerate(origin_paras) if _same(vp, op)), None)
        if position is not None:
            kept_positions.append(position)
    new_paragraphs = len(version_paras) - len(kept_positions)
    dropped = len(origin_paras) - len(set(kept_positions))
    if new_paragraphs:
        changes.append(f"{new_paragraphs} paragraph{'s' if new_paragraphs > 1 else ''} added")
    if dropped:
        changes.append(f"{dropped} paragraph{'s' if dropped > 1 else ''} dropped")
    if kept_positions != sorted(kept_positions):
        changes.append("paragraphs reordered")
    origin_len = len(normalise(origin).split()) or 1
    ratio = len(normalise(version).split()) / origin_len
    if ratio >= 1.8:
        changes.append(f"embedded in a text {ratio:.1f}× as long")
    elif ratio <= 0.6:
        changes.append(f"excerpt: {ratio:.0%} of the original's length")
    return tuple(changes)


@dataclass(frozen=True)
class DiffPart:
    """A run of words of a word-level diff: kept, removed from the earlier version, or added."""

    kind: str  # "same" | "removed" | "added"
    text: str


_WORD_RUN = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.!?:;\"”»]$")
_EDGE_PUNCTUATION = "\"'“”‘’«»()[]{}.,;:!?—–-"


def _article_words(text: str) -> list[str]:
    return _WORD_RUN.findall("\n".join(content_paragraphs(text)))


def word_diff(origin: str, version: str, context: int = 8) -> tuple[DiffPart, ...]:
    """`version` against `origin`, word by word (chrome lines dropped first): runs of kept
    words longer than two `context`s are shortened to their ends around an ellipsis. Empty
    when no word changed."""
    old, new = _article_words(origin), _article_words(version)
    parts: list[DiffPart] = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    opcodes = matcher.get_opcodes()
    if all(tag == "equal" for tag, *_ in opcodes):
        return ()
    for number, (tag, i1, i2, j1, j2) in enumerate(opcodes):
        if tag == "equal":
            words = old[i1:i2]
            if len(words) > 2 * context:
                first = number == 0
                last = number == len(opcodes) - 1
                head = [] if first else words[:context]
                tail = [] if last else words[-context:]
                text = " ".join([*head, "…", *tail]).strip()
            else:
                text = " ".join(words)
            parts.append(DiffPart("same", text))
            continue
        if i2 > i1:
            parts.append(DiffPart("removed", " ".join(old[i1:i2])))
        if j2 > j1:
            parts.append(DiffPart("added", " ".join(new[j1:j2])))
    return tuple(parts)


def _facts(words: Sequence[str], sentence_starts: set[int]) -> tuple[list[str], list[str]]:
    """Numbers, and capitalised words not at a sentence's start (names and places)."""
    numbers, names = [], []
    for index, raw in enumerate(words):
        word = raw.strip(_EDGE_PUNCTUATION)
        if not word:
            continue
        if any(ch.isdigit() for ch in word):
            numbers.append(word)
        elif word[0].isupper() and index not in sentence_starts and len(word) > 1:
            names.append(word.removesuffix("'s").removesuffix("’s"))
    return numbers, names


def _sentence_starts(words: Sequence[str]) -> set[int]:
    starts = {0}
    for index, word in enumerate(words[:-1]):
        if _SENTENCE_END.search(word):
            starts.add(index + 1)
    return starts


def changed_facts(origin: str, version: str) -> tuple[str, ...]:
    """The facts `version` changed against `origin`: numbers, and names and places
    (capitalised words inside a sentence), each as "removed → added". A fact that only moved
    (it is still in the other version) is not a change."""
    old, new = _article_words(origin), _article_words(version)
    old_numbers, old_names = _facts(old, _sentence_starts(old))
    new_numbers, new_names = _facts(new, _sentence_starts(new))
    old_all = {w.strip(_EDGE_PUNCTUATION) for w in old}
    new_all = {w.strip(_EDGE_PUNCTUATION) for w in new}
    lines = []
    for label, before, after in (
        ("numbers", old_numbers, new_numbers),
        ("names and places", old_names, new_names),
    ):
        removed = [w for w in dict.fromkeys(before) if w not in new_all]
        added = [w for w in dict.fromkeys(after) if w not in old_all]
        if removed or added:
            lines.append(
                f"{label}: "
                + (", ".join(removed[:6]) or "—")
                + " → "
                + (", ".join(added[:6]) or "—")
            )
    return tuple(lines)


# Watchlist phrases and texts are compared in their own normal form: like `normalise` (lower
# case, NFKC, punctuation -> space, thousands separators dropped: "4,500" = "4500") but with
# the digits kept, so that "685 security personnel" matches 685 and no other number. (Detection
# folds digits to 0 so that copies with edited figures still match; a key phrase must not.)
_PHRASE_TOKEN = re.compile(r"\d{1,3}(?:[,.\u202f\u00a0']\d{3})+(?!\d)|[^\W_]+", re.UNICODE)
_THOUSANDS = re.compile(r"[,.\u202f\u00a0']")


def phrase_form(text: str) -> str:
    """`text` as watchlist phrases are matched: lower-case words and whole numbers."""
    words = []
    for token in _PHRASE_TOKEN.findall(unicodedata.normalize("NFKC", text)):
        token = token.lower()
        words.append(_THOUSANDS.sub("", token) if token[:1].isdigit() else token)
    return " ".join(words)


@dataclass(frozen=True)
class WatchNarrative:
    key: str
    name: str
    description: str
    phrases: tuple[str, ...]  # in phrase_form


class WatchlistError(ValueError):
    pass


def parse_watchlist(source: str, where: str = "<watchlist>") -> tuple[WatchNarrative, ...]:
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise WatchlistError(f"{where}: not valid TOML: {exc}") from None
    tables = data.get("narratives", [])
    if not isinstance(tables, list):
        raise WatchlistError(f"{where}: 'narratives' must be an array of tables ([[narratives]])")
    result = []
    for index, table in enumerate(tables, start=1):
        if not isinstance(table, dict) or not table.get("key") or not table.get("phrases"):
            raise WatchlistError(f"{where}: narrative #{index} needs 'key' and 'phrases'")
        if not isinstance(table["phrases"], list):
            raise WatchlistError(
                f"{where}: narrative #{index} ({table['key']}): 'phrases' must be a list of strings"
            )
        phrases = tuple(p for p in (phrase_form(str(x)) for x in table["phrases"]) if p)
        result.append(
            WatchNarrative(
                key=str(table["key"]),
                name=str(table.get("name", table["key"])),
                description=str(table.get("description", "")),
                phrases=phrases,
            )
        )
    return tuple(result)


def watchlist_hits(
    watchlist: Sequence[WatchNarrative], texts: Sequence[str], min_share: float = 1 / 3
) -> tuple[str, ...]:
    """Names of the watchlist narratives whose phrases occur in at least `min_share` of the
    texts (at least one). Pass each copy's headline with its text: headlines carry the key
    phrases most often. Phrases match whole words, numbers exactly (see `phrase_form`)."""
    if not texts:
        return ()
    padded = [f" {phrase_form(t)} " for t in texts]
    needed = max(1, round(len(texts) * min_share))
    names = []
    for narrative in watchlist:
        hits = sum(1 for t in padded if any(f" {p} " in t for p in narrative.phrases))
        if hits >= needed:
            names.append(narrative.name)
    return tuple(names)
