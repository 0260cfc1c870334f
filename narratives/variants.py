"""What changed between versions of a narrative, and wire-credit lines: pure text functions."""

from __future__ import annotations

import re
import tomllib
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
class WatchNarrative:
    key: str
    name: str
    description: str
    phrases: tuple[str, ...]  # normalised


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
        phrases = tuple(p for p in (normalise(str(x)) for x in table["phrases"]) if p)
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
    texts (at least one)."""
    if not texts:
        return ()
    padded = [f" {normalise(t)} " for t in texts]
    needed = max(1, round(len(texts) * min_share))
    names = []
    for narrative in watchlist:
        hits = sum(1 for t in padded if any(f" {p} " in t for p in narrative.phrases))
        if hits >= needed:
            names.append(narrative.name)
    return tuple(names)
