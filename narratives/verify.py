"""Candidate verification, exact on shingle sets: whole-text Jaccard for copies, and the
longest dense run of shared shingles for passages quoted inside other texts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from narratives.params import DetectionParams
from narratives.signatures import Signed


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


def compare(new: Signed, other: Signed, other_id: int, params: DetectionParams) -> Match | None:
    """The verified match of `new` against `other`, or None when they share too little."""
    if new.shingles.size == 0 or other.shingles.size == 0:
        return None
    new_set = np.unique(new.shingles)
    other_set = np.unique(other.shingles)
    shared = int(np.intersect1d(new_set, other_set, assume_unique=True).size)
    if shared == 0:
        return None
    union = new_set.size + other_set.size - shared
    jaccard = shared / union
    containment = shared / min(new_set.size, other_set.size)
    mask = np.isin(new.shingles, other_set)
    run, first, last = best_run(mask, params.passage_max_gap)
    if jaccard >= params.copy_jaccard:
        kind = "copy"
    elif run >= params.passage_min_shared:
        kind = "passage"
    else:
        return None
    last_word = last + params.shingle_size - 1
    return Match(
        other_id=other_id,
        kind=kind,
        jaccard=round(jaccard, 4),
        containment=round(containment, 4),
        shared=shared,
        run_shared=run,
        span=(first, last_word),
        passage=new.tokens.snippet(first, last_word),
    )


def overlap(a: tuple[int, int], b: tuple[int, int]) -> float:
    """Overlap of two inclusive spans as a share of the shorter one."""
    inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
    if inter <= 0:
        return 0.0
    return inter / min(a[1] - a[0] + 1, b[1] - b[0] + 1)
