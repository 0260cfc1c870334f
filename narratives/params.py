"""Detection parameters. They are stored with every signature (table `detection_params`);
changing one means new signatures, so they are pinned here and versioned by their hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DetectionParams:
    # shingles: word n-grams over normalised text (lower case, digits -> 0, no punctuation)
    shingle_size: int = 4
    # MinHash (datasketch, scheme affine32, xxh32 as the base hash)
    num_perm: int = 128
    seed: int = 1
    scheme: str = "affine32"
    # LSH banding of the whole-text signature: copies with edited words have a whole-text
    # Jaccard about 0.3, which needs short bands (docs/quality.md)
    bands: int = 42
    rows: int = 3
    # LSH banding of every passage signature: a quoted passage is near-verbatim, so fewer
    # bands find it; 16 is the fewest that keeps LSH recall over 0.995 of verified pairs
    # (0.9959; 12 gives 0.9937) and the fewest keys the candidate search scans at 1M stored
    # (docs/performance.md: the sweep and the scaling figures)
    passage_bands: int = 16
    passage_rows: int = 3
    # passages: consecutive paragraphs merged until they hold at least this many words
    passage_min_words: int = 20
    # verification (exact, on shingle sets)
    copy_jaccard: float = 0.20  # whole-text Jaccard that makes two articles copies
    copy_min_shared: int = 25  # ... when they share at least this many distinct shingles
    passage_min_shared: int = 25  # shared shingles in one dense run that make a shared passage
    # a short text that is nearly all one dense run inside the other (or the other inside it)
    # is a quote of it: at least this share of the shorter text's shingles, and this many
    quote_containment: float = 0.8
    quote_min_shared: int = 15
    passage_max_gap: int = 6  # missing shingles tolerated inside a run (edited words)
    merge_overlap: float = (
        0.5  # share of the smaller matched span two matches must overlap to merge
    )
    # site chrome: a paragraph seen in this many articles of one outlet is the outlet's chrome
    chrome_min_articles: int = 3
    chrome_max_words: int = 60
    # before an outlet's chrome is learned: short paragraphs that open or close two texts of
    # the same outlet identically are left out of their comparison, unless they make up at
    # least this share of the shorter text (then it is the outlet telling a story again)
    house_lines_max_share: float = 0.75
    # common lines: a short paragraph carried by stored articles of at least this many
    # unrelated stories (distinct clusters) on at least this many outlets is no evidence of
    # copying, wherever it sits in two texts (a
    # publisher's label, a syndicated disclaimer, a stock quote): it is left out of their
    # comparison like unlearned house lines (the same share limit)
    common_min_stories: int = 3
    common_min_outlets: int = 2

    def __post_init__(self) -> None:
        if self.scheme != "affine32":
            raise ValueError(
                "only scheme='affine32' is supported (signatures are stored as uint32)"
            )
        if self.bands * self.rows > self.num_perm:
            raise ValueError(
                f"bands*rows ({self.bands}*{self.rows}) exceeds num_perm ({self.num_perm}); "
                "lower bands or rows, or raise num_perm"
            )
        if self.passage_bands * self.passage_rows > self.num_perm or self.passage_rows < 1:
            raise ValueError(
                f"passage_bands*passage_rows ({self.passage_bands}*{self.passage_rows}) must be "
                "at most num_perm, with at least one row"
            )
        if self.shingle_size < 1 or self.passage_min_words < self.shingle_size:
            raise ValueError("shingle_size must be >= 1 and <= passage_min_words")
        if not 0 < self.copy_jaccard <= 1 or not 0 < self.merge_overlap <= 1:
            raise ValueError("copy_jaccard and merge_overlap must be in (0, 1]")

    @property
    def param_set_id(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:12]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


DEFAULT_PARAMS = DetectionParams()
