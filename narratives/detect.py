"""One detection pass over a batch of new articles, as pure functions: chrome-aware signing,
verification of LSH candidates, and cluster assignment. The store supplies the candidates and
the stored texts; `flows.stages.detect` wires the two together."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from narratives.clusters import Assignment, ClusterIndex, assign
from narratives.params import DetectionParams
from narratives.signatures import Signed, band_hashes, sign
from narratives.text import Paragraph, read_paragraphs, tokenize, without_chrome
from narratives.verify import Match, compare


def sign_text(
    text: str | Sequence[Paragraph],
    chrome: set[int],
    params: DetectionParams,
    outlet: str = "",
    minhash: bool = True,
) -> Signed:
    """Shingles and signatures of the text's content paragraphs (the outlet's `chrome`
    dropped); `text` may be given as its paragraphs, already read (`read_paragraphs`).
    `outlet` lets verification tell two texts of one outlet apart by more than the house lines
    they share before those are learned as chrome. `minhash=False` skips the signatures (a
    stored text that is only verified against)."""
    if isinstance(text, str):
        text = read_paragraphs(text, params.chrome_max_words)
    return sign(tokenize(without_chrome(text, chrome), outlet), params, minhash)


def short_paragraph_keys(paragraphs: Sequence[Paragraph]) -> set[int]:
    """Keys of the paragraphs short enough to be chrome: the only ones learned chrome can drop."""
    return {p.key for p in paragraphs if p.key is not None}


def paragraph_rows(
    article_id: int, outlet_id: str, text: str, params: DetectionParams
) -> list[dict[str, object]]:
    """The short paragraphs of an article, keyed, for learning the outlet's chrome."""
    keys = short_paragraph_keys(read_paragraphs(text, params.chrome_max_words))
    return [{"outlet_id": outlet_id, "paragraph_key": k, "article_id": article_id} for k in keys]


class SignedTexts:
    """Texts signed earlier in a cycle, kept (the `capacity` most recent) for verification, so
    that an article met again as a stored candidate is not tokenised again. An entry is used
    only while its outlet's learned chrome drops the same paragraphs from it as when it was
    signed; otherwise the caller signs the stored text afresh."""

    def __init__(self, capacity: int = 5000):
        self.capacity = capacity
        self.reused = 0  # signings handed out again
        self._items: OrderedDict[int, tuple[Signed, frozenset[int], frozenset[int]]] = OrderedDict()
        self._offered: dict[int, tuple[Signed, frozenset[int], frozenset[int]]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def put(self, article_id: int, signed: Signed, short_keys: set[int], chrome: set[int]) -> None:
        """Keep `signed` (its shingles and tokens; signatures are not needed to verify), signed
        with `chrome` dropped from a text whose short paragraphs have `short_keys`."""
        lean = replace(
            signed,
            signature=_NO_SIGNATURE,
            passage_signatures=_NO_SIGNATURES,
        )
        if "shingle_set" in signed.__dict__:  # computed once, kept with it
            lean.__dict__["shingle_set"] = signed.__dict__["shingle_set"]
        keys = frozenset(short_keys)
        self._items[article_id] = (lean, keys, keys & chrome)
        self._items.move_to_end(article_id)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def offer(
        self, article_id: int, signed: Signed, short_keys: Iterable[int], applied: Iterable[int]
    ) -> None:
        """A new article's full signing made elsewhere (a worker), with the short paragraph
        keys of its text and the chrome keys it dropped; `take` hands it out once."""
        self._offered[article_id] = (signed, frozenset(short_keys), frozenset(applied))

    def take(self, article_id: int, chrome: set[int]) -> Signed | None:
        """The offered signing of a new article if `chrome` drops the same paragraphs from
        it as the chrome it was signed with (then it equals signing it here); else None."""
        entry = self._offered.pop(article_id, None)
        if entry is None:
            return None
        signed, keys, applied = entry
        return signed if keys & chrome == applied else None

    def outlets(self, article_ids: Iterable[int]) -> dict[int, str]:
        """The outlet of each given article that is kept."""
        found = {}
        for article_id in article_ids:
            entry = self._items.get(article_id)
            if entry is not None:
                found[article_id] = entry[0].tokens.outlet
        return found

    def get(self, article_id: int, chrome: set[int]) -> Signed | None:
        """The kept signing of the article if its outlet's `chrome` still drops the same
        paragraphs from it; None otherwise."""
        entry = self._items.get(article_id)
        if entry is None:
            return None
        signed, keys, applied = entry
        if keys & chrome != applied:
            return None
        self._items.move_to_end(article_id)
        self.reused += 1
        return signed


_NO_SIGNATURE = np.empty(0, np.uint32)
_NO_SIGNATURES = np.empty((0, 0), np.uint32)


def bands_table(ids: Sequence[int], signed: Sequence[Signed], params: DetectionParams) -> pa.Table:
    """LSH band rows: passage 0 is the whole text, 1.. the passages."""
    article_col: list[np.ndarray] = []
    passage_col: list[np.ndarray] = []
    band_col: list[np.ndarray] = []
    hash_col: list[np.ndarray] = []
    band_numbers = np.arange(params.bands, dtype=np.uint8)
    for article_id, item in zip(ids, signed, strict=True):
        if item.shingles.size == 0:
            continue
        sigs = [item.signature[None, :]]
        if len(item.passages) > 1:  # a one-passage text's passage is the whole text
            sigs.append(item.passage_signatures)
        matrix = np.vstack(sigs)
        hashes = band_hashes(matrix, params)  # (rows, bands)
        rows = matrix.shape[0]
        article_col.append(np.full(rows * params.bands, article_id, dtype=np.int64))
        passage_col.append(np.repeat(np.arange(rows, dtype=np.int16), params.bands))
        band_col.append(np.tile(band_numbers, rows))
        hash_col.append(hashes.reshape(-1))
    if not article_col:
        return pa.table(
            {
                "article_id": pa.array([], pa.int64()),
                "passage_no": pa.array([], pa.int16()),
                "band": pa.array([], pa.uint8()),
                "band_hash": pa.array([], pa.uint64()),
            }
        )
    return pa.table(
        {
            "article_id": pa.array(np.concatenate(article_col)),
            "passage_no": pa.array(np.concatenate(passage_col)),
            "band": pa.array(np.concatenate(band_col)),
            "band_hash": pa.array(np.concatenate(hash_col)),
        }
    )


@dataclass(frozen=True)
class Verified:
    matches: dict[int, list[Match]]  # new article id -> its verified matches
    pairs_checked: int


def verify_candidates(
    order: Sequence[int],
    candidates: Sequence[tuple[int, int, int]],
    signed: Mapping[int, Signed],
    params: DetectionParams,
) -> Verified:
    """Exact verification of candidate pairs. Within a batch only earlier articles count as
    matches for later ones, so the result does not depend on batch boundaries."""
    rank = {article_id: i for i, article_id in enumerate(order)}
    matches: dict[int, list[Match]] = {}
    checked = 0
    for new_id, other_id, _hits in candidates:
        if other_id in rank and rank[other_id] >= rank[new_id]:
            continue
        if new_id not in signed or other_id not in signed:
            continue
        checked += 1
        match = compare(signed[new_id], signed[other_id], other_id, params)
        if match is not None:
            matches.setdefault(new_id, []).append(match)
    return Verified(matches, checked)


def cluster_batch(
    order: Sequence[tuple[int, tuple]],
    verified: Verified,
    membership: Mapping[int, str],
    births: Mapping[str, tuple],
    params: DetectionParams,
) -> Assignment:
    return assign(order, verified.matches, ClusterIndex(membership, births), params)
