"""Candidate verification, exact on shingle sets: whole-text Jaccard for copies, and the
longest dense run of shared shingles for passages quoted inside other texts."""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, replace

import numpy as np
import xxhash

from narratives.params import DetectionParams
from narratives.signatures import Signed
from narratives.text import Tokens


@dataclass(frozen=True)
class Match:
    """Evidence that a new text re-uses a stored one."""

    other_id: int
    kind: str  # "copy" (whole-text Jaccard) or "passage" (a shared passage)
    jaccard: float
    containment: float  # shared shingles / shingles of the shorter text
    shared: int  # shared distinct shingles
    run_shared: int  # shared shingles in the best dense run
    span: tuple[int, int]  # first and last word (inclusive) of that run in the new text
    passage: str  # the new text's words over that span

    @property
    def strength(self) -> tuple[int, float, int]:
        return (1 if self.kind == "copy" else 0, self.jaccard, self.run_shared)


def best_run(mask: np.ndarray, max_gap: int) -> tuple[int, int, int]:
    """Longest run of True positions where gaps of up to `max_gap` False positions are
    tolerated, scored by its count of True positions. Returns (count, first, last)."""
    positions = np.flatnonzero(mask)
    if positions.size == 0:
        return 0, 0, -1
    breaks = np.flatnonzero(np.diff(positions) > max_gap + 1)
    run_starts = np.concatenate(([0], breaks + 1))
    run_ends = np.concatenate((breaks, [positions.size - 1]))
    counts = run_ends - run_starts + 1
    best = int(np.argmax(counts))
    return int(counts[best]), int(positions[run_starts[best]]), int(positions[run_ends[best]])


@dataclass(frozen=True)
class PairStats:
    """What two texts share, before any threshold: the figures verification decides on."""

    jaccard: float
    containment: float
    shared: int
    run: int  # shared shingles in the best dense run of the new text
    first: int  # first shingle position of that run in the new text
    last: int  # last shingle position (inclusive)
    whole_run: int = -1  # the best run before lone shared lines are left out (-1: the same)
    whole_span: tuple[int, int] = (0, -1)  # its first and last shingle positions


def unlearned_house_lines(
    new: Tokens, other: Tokens, params: DetectionParams
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Paragraph spans (in `new`, in `other`) to leave out of the comparison as the outlet's
    own chrome that is not learned yet: two texts of the same outlet that open or close with
    the same short paragraphs (at most `chrome_max_words` words each). They are left out only
    while they are less than `house_lines_max_share` of the shorter text; more than that, and
    the outlet is telling the same story again (a republication, an update)."""
    if not new.outlet or new.outlet != other.outlet:
        return [], []
    a, b = new.paragraph_spans(), other.paragraph_spans()

    def same(i: int, j: int) -> bool:
        (s1, e1), (s2, e2) = a[i], b[j]
        return 0 < e1 - s1 <= params.chrome_max_words and new.words[s1:e1] == other.words[s2:e2]

    n = min(len(a), len(b))
    prefix = 0
    while prefix < n and same(prefix, prefix):
        prefix += 1
    suffix = 0
    while prefix + suffix < n and same(len(a) - 1 - suffix, len(b) - 1 - suffix):
        suffix += 1
    if not prefix and not suffix:
        return [], []
    in_new = a[:prefix] + a[len(a) - suffix :]
    in_other = b[:prefix] + b[len(b) - suffix :]
    identical = sum(end - start for start, end in in_new)
    shorter = min(len(new.words), len(other.words))
    if identical >= params.house_lines_max_share * shorter:
        return [], []
    return in_new, in_other


def common_lines(
    new: Tokens, other: Tokens, common: Set[int], params: DetectionParams
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Paragraph spans (in `new`, in `other`) of the short paragraphs both texts carry whose
    keys are in `common`: lines the store has seen in unrelated articles of several outlets (a
    publisher's label, a syndicated disclaimer, a stock quote), which are no evidence that one
    text re-uses the other, wherever they sit. They are left out only while they are less than
    `house_lines_max_share` of the shorter text (a text that is nearly all such lines is
    compared whole)."""
    if not common:
        return [], []

    def keyed(tokens: Tokens) -> dict[int, list[tuple[int, int]]]:
        found: dict[int, list[tuple[int, int]]] = {}
        for start, end in tokens.paragraph_spans():
            if 0 < end - start <= params.chrome_max_words:
                key = xxhash.xxh64_intdigest(" ".join(tokens.words[start:end]).encode()) >> 1
                if key in common:
                    found.setdefault(key, []).append((start, end))
        return found

    mine = keyed(new)
    if not mine:
        return [], []
    theirs = keyed(other)
    both = mine.keys() & theirs.keys()
    in_new = sorted(span for key in both for span in mine[key])
    in_other = sorted(span for key in both for span in theirs[key])
    dropped = min(sum(e - s for s, e in in_new), sum(e - s for s, e in in_other))
    shorter = min(len(new.words), len(other.words))
    if not both or dropped >= params.house_lines_max_share * shorter:
        return [], []
    return in_new, in_other


def _kept_shingles(signed: Signed, spans: list[tuple[int, int]], size: int) -> np.ndarray:
    """Which shingle positions touch none of the word spans."""
    keep = np.ones(signed.shingles.size, dtype=bool)
    for start, end in spans:
        keep[max(0, start - size + 1) : end] = False
    return keep


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Which of `values` are in `sorted_set` (sorted, distinct): np.isin without sorting again."""
    at = np.searchsorted(sorted_set, values)
    at[at == sorted_set.size] = 0
    return sorted_set[at] == values


def pair_stats(
    new: Signed, other: Signed, params: DetectionParams, common: Set[int] = frozenset()
) -> PairStats | None:
    """Whole-text Jaccard and containment, and the best dense run of `new`'s shingles found in
    `other`; None when they share no shingle. Unlearned house lines of one outlet (see
    `unlearned_house_lines`) and the common lines both carry (`common_lines`, the paragraph
    keys in `common`) are left out of both texts."""
    if new.shingles.size == 0 or other.shingles.size == 0:
        return None
    new_set, other_set = new.shingle_set, other.shingle_set
    keep_new: np.ndarray | None = None
    drop_new, drop_other = unlearned_house_lines(new.tokens, other.tokens, params)
    common_new, common_other = common_lines(new.tokens, other.tokens, common, params)
    drop_new, drop_other = drop_new + common_new, drop_other + common_other
    if drop_new:
        keep_new = _kept_shingles(new, drop_new, params.shingle_size)
        new_set = np.unique(new.shingles[keep_new])
        other_set = np.unique(
            other.shingles[_kept_shingles(other, drop_other, params.shingle_size)]
        )
        if new_set.size == 0 or other_set.size == 0:
            return None
    shared = int(np.count_nonzero(_member(new_set, other_set)))
    if shared == 0:
        return None
    union = new_set.size + other_set.size - shared
    mask = _member(new.shingles, other_set)
    if keep_new is not None:
        mask &= keep_new
    run, first, last = best_run(mask, params.passage_max_gap)
    whole_run, whole_span = run, (first, last)
    if run >= params.quote_min_shared:
        lines = lone_shared_lines(new.tokens, other.tokens, params)
        if lines:
            mask &= _kept_shingles(new, lines, params.shingle_size)
            run, first, last = best_run(mask, params.passage_max_gap)
            if run == 0:
                first, last = 0, -1
    return PairStats(
        shared / union,
        shared / min(new_set.size, other_set.size),
        shared,
        run,
        first,
        last,
        whole_run,
        whole_span,
    )


def lone_shared_lines(new: Tokens, other: Tokens, params: DetectionParams) -> list[tuple[int, int]]:
    """Word spans of `new`'s lone edge lines: a short paragraph (at most `chrome_max_words`
    words) that opens or closes `new` and opens or closes `other` word for word, with no
    neighbour shared as well. That is where a publisher's label line, a syndicated disclaimer
    or a sign-off sits, and many unrelated texts carry one: alone it is no evidence of
    copying. A quote sits inside the text that quotes it, or comes with more of its source."""
    theirs_spans = other.paragraph_spans()
    theirs = {other.words[s:e] for s, e in theirs_spans}
    edges = {other.words[s:e] for s, e in (theirs_spans[:1] + theirs_spans[-1:])}
    spans = new.paragraph_spans()
    shared = [new.words[s:e] in theirs for s, e in spans]
    lone = []
    for i, (start, end) in enumerate(spans):
        if i not in (0, len(spans) - 1) or end - start > params.chrome_max_words:
            continue
        if new.words[start:end] not in edges:
            continue
        if (i > 0 and shared[i - 1]) or (i + 1 < len(spans) and shared[i + 1]):
            continue
        lone.append((start, end))
    return lone


def _whole_quote(stats: PairStats, params: DetectionParams) -> bool:
    """The shorter text is, nearly all of it, one dense run inside the other: a short text
    (a teaser, a one-paragraph excerpt) quoting the other, or quoted whole by it."""
    smaller = stats.shared / stats.containment
    run = stats.run if stats.whole_run < 0 else stats.whole_run
    return (
        run >= params.quote_min_shared
        and stats.containment >= params.quote_containment
        and run >= params.quote_containment * smaller
    )


def compare(
    new: Signed,
    other: Signed,
    other_id: int,
    params: DetectionParams,
    common: Set[int] = frozenset(),
) -> Match | None:
    """The verified match of `new` against `other`, or None when they share too little
    (`common`: keys of the lines the store sees in unrelated articles, see `common_lines`)."""
    stats = pair_stats(new, other, params, common)
    if stats is None:
        return None
    if stats.jaccard >= params.copy_jaccard and stats.shared >= params.copy_min_shared:
        kind = "copy"
    elif stats.run >= params.passage_min_shared:
        kind = "passage"
    elif _whole_quote(stats, params):
        kind = "passage"
        stats = replace(
            stats, run=stats.whole_run, first=stats.whole_span[0], last=stats.whole_span[1]
        )
    else:
        return None
    last_word = stats.last + params.shingle_size - 1
    return Match(
        other_id=other_id,
        kind=kind,
        jaccard=round(stats.jaccard, 4),
        containment=round(stats.containment, 4),
        shared=stats.shared,
        run_shared=stats.run,
        span=(stats.first, last_word),
        passage=new.tokens.snippet(stats.first, last_word),
    )


def overlap(a: tuple[int, int], b: tuple[int, int]) -> float:
    """Overlap of two inclusive spans as a share of the shorter one."""
    inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
    if inter <= 0:
        return 0.0
    return inter / min(a[1] - a[0] + 1, b[1] - b[0] + 1)
