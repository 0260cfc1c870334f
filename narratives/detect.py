"""One detection pass over a batch of new articles, as pure functions: chrome-aware signing,
verification of LSH candidates, and cluster assignment. The store supplies the candidates and
the stored texts; `flows.stages.detect` wires the two together."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from narratives.clusters import Assignment, ClusterIndex, assign
from narratives.params import DetectionParams
from narratives.signatures import Signed, band_hashes, sign
from narratives.text import (
    content_paragraphs,
    paragraph_key,
    split_paragraphs,
    tokenize,
    word_count,
)
from narratives.verify import Match, compare


def sign_text(
    text: str, chrome: set[int], params: DetectionParams, outlet: str = "", minhash: bool = True
) -> Signed:
    """Shingles and signatures of the text's content paragraphs (the outlet's `chrome`
    dropped). `outlet` lets verification tell two texts of one outlet apart by more than the
    house lines they share before those are learned as chrome. `minhash=False` skips the
    signatures (a stored text that is only verified against)."""
    paragraphs = content_paragraphs(text, chrome, params.chrome_max_words)
    return sign(tokenize(paragraphs, outlet), params, minhash)


def paragraph_rows(
    article_id: int, outlet_id: str, text: str, params: DetectionParams
) -> list[dict[str, object]]:
    """The short paragraphs of an article, keyed, for learning the outlet's chrome."""
    keys = {
        paragraph_key(p) for p in split_paragraphs(text) if word_count(p) <= params.chrome_max_words
    }
    return [{"outlet_id": outlet_id, "paragraph_key": k, "article_id": article_id} for k in keys]


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
