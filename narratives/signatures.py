"""Shingles, MinHash signatures (datasketch) for whole texts and passages, and LSH band hashes.

One permuted-hash matrix is computed per text (shingles x num_perm); the whole-text signature is
its column minimum and each passage signature the minimum over that passage's rows, so passage
signatures cost almost nothing extra. The values are exactly those of datasketch's
`MinHash(num_perm, seed, hashfunc=xxh32_intdigest, scheme="affine32").update_batch(shingles)`
(tests/test_signatures.py checks this), so any stored signature can be rebuilt as a datasketch
`LeanMinHash` for ad-hoc analysis.

The scheme's two parts are written out here (datasketch 2.0.0's `_init_permutations` for
"affine32" and its MurmurHash3 finalizer `_fmix`, a few lines each) rather than imported:
importing datasketch imports its LSH and with it scipy, about half of a signing worker's
import time (`python -X importtime -c "import ingest.batch"`: 0.71 s before, 0.34 s after).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

import numpy as np
import xxhash

from narratives.params import DetectionParams
from narratives.text import Tokens

if TYPE_CHECKING:
    from datasketch import LeanMinHash

UINT32_MAX = np.uint32(0xFFFFFFFF)


def shingle_strings(words: tuple[str, ...], size: int) -> list[str]:
    if len(words) < size:
        return [" ".join(words)] if words else []
    # the shifted copies end together: zip stops at the last full n-gram
    return list(map(" ".join, zip(*(words[k:] for k in range(size)), strict=False)))


def shingle_hashes(words: tuple[str, ...], size: int) -> np.ndarray:
    """uint32 hash of every word n-gram, in text order (position i = words i..i+size-1)."""
    hash32 = xxhash.xxh32_intdigest
    if len(words) < size:
        return np.asarray([hash32(s.encode()) for s in shingle_strings(words, size)], np.uint32)
    encoded = [w.encode() for w in words]  # then joined as bytes: one encode per word
    grams = zip(*(encoded[k:] for k in range(size)), strict=False)
    return np.fromiter(map(hash32, map(b" ".join, grams)), np.uint32, len(words) - size + 1)


@lru_cache(maxsize=8)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutations: a odd, b any, from numpy's RandomState(seed)."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def _fmix(hashes: np.ndarray) -> np.ndarray:
    """The 32-bit MurmurHash3 finalizer, applied once before the permutations."""
    with np.errstate(over="ignore"):
        hashes = hashes ^ (hashes >> np.uint32(16))
        hashes = hashes * np.uint32(0x85EBCA6B)
        hashes = hashes ^ (hashes >> np.uint32(13))
        hashes = hashes * np.uint32(0xC2B2AE35)
        return hashes ^ (hashes >> np.uint32(16))


def permuted(hashes: np.ndarray, params: DetectionParams) -> np.ndarray:
    """(n, num_perm) uint32 matrix: every shingle under every permutation."""
    a, b = _permutations(params.num_perm, params.seed)
    mixed = _fmix(hashes.astype(np.uint32).reshape(-1, 1))
    with np.errstate(over="ignore"):
        return (mixed * a + b).astype(np.uint32, copy=False)


@dataclass(frozen=True)
class Passage:
    number: int  # 1-based; 0 is reserved for the whole text in stored band rows
    first_word: int
    last_word: int  # inclusive
    first_shingle: int
    last_shingle: int  # inclusive


@dataclass(frozen=True)
class Signed:
    """A text's shingles and signatures."""

    tokens: Tokens
    shingles: np.ndarray  # uint32 per position
    signature: np.ndarray  # (num_perm,) uint32
    passages: tuple[Passage, ...]
    passage_signatures: np.ndarray  # (len(passages), num_perm) uint32

    @cached_property
    def shingle_set(self) -> np.ndarray:
        """The distinct shingles, sorted (what whole-text Jaccard compares)."""
        return np.unique(self.shingles)


def passages_of(tokens: Tokens, params: DetectionParams) -> list[Passage]:
    """Consecutive paragraphs merged until each passage holds passage_min_words words; a short
    tail joins the previous passage. A text shorter than that is one passage."""
    n_words = len(tokens.words)
    if n_words == 0:
        return []
    bounds = list(tokens.paragraph_starts) + [n_words]
    spans: list[list[int]] = []
    start = 0
    for end in bounds[1:]:
        if end - start >= params.passage_min_words:
            spans.append([start, end])
            start = end
    if start < n_words:
        if spans:
            spans[-1][1] = n_words
        else:
            spans.append([0, n_words])
    n_shingles = max(1, n_words - params.shingle_size + 1)
    result = []
    for number, (first, end) in enumerate(spans, start=1):
        last = end - 1
        first_shingle = min(first, n_shingles - 1)
        last_shingle = min(max(first_shingle, last - params.shingle_size + 1), n_shingles - 1)
        result.append(Passage(number, first, last, first_shingle, last_shingle))
    return result


def sign(tokens: Tokens, params: DetectionParams, minhash: bool = True) -> Signed:
    """Shingles, passages and MinHash signatures of a text. With `minhash=False` only the
    shingles and passages (all exact verification reads): the signatures are left empty,
    which saves a fifth of the work for a stored text that is only verified against."""
    hashes = shingle_hashes(tokens.words, params.shingle_size)
    passages = passages_of(tokens, params)
    if not minhash:
        none = np.empty(0, np.uint32)
        return Signed(tokens, hashes, none, tuple(passages), np.empty((0, 0), np.uint32))
    if hashes.size == 0:
        empty = np.full(params.num_perm, UINT32_MAX, dtype=np.uint32)
        return Signed(tokens, hashes, empty, (), np.empty((0, params.num_perm), np.uint32))
    matrix = permuted(hashes, params)
    signature = matrix.min(axis=0)
    # each passage over its own shingles only: the shingles that start in its last
    # shingle_size - 1 words reach into the next passage, whose words are not there when the
    # passage is quoted elsewhere
    passage_sigs = (
        np.vstack([matrix[p.first_shingle : p.last_shingle + 1].min(axis=0) for p in passages])
        if passages
        else matrix[:0]
    )
    return Signed(tokens, hashes, signature, tuple(passages), passage_sigs)


@lru_cache(maxsize=8)
def _band_multipliers(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 7919)
    return rng.integers(1, 2**63, size=rows, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def band_hashes(
    signatures: np.ndarray,
    params: DetectionParams,
    bands: int | None = None,
    rows: int | None = None,
) -> np.ndarray:
    """(n, bands) uint64: each band's rows folded into one 64-bit value. Two signatures share a
    band hash exactly when (barring a 2^-64 collision) they agree on all of that band's rows:
    the same candidates as datasketch MinHashLSH with params=(bands, rows). By default the
    whole-text banding (`params.bands` x `params.rows`)."""
    bands = params.bands if bands is None else bands
    rows = params.rows if rows is None else rows
    sigs = np.atleast_2d(signatures).astype(np.uint64)
    n = sigs.shape[0]
    used = sigs[:, : bands * rows].reshape(n, bands, rows)
    multipliers = _band_multipliers(rows, params.seed)
    with np.errstate(over="ignore"):
        folded = (used * multipliers).sum(axis=2, dtype=np.uint64)
        # mix so that bands with small integer differences do not collide
        folded ^= folded >> np.uint64(29)
        folded *= np.uint64(0xBF58476D1CE4E5B9)
        folded ^= folded >> np.uint64(32)
    return folded


PASSAGE_BAND_BASE = 128  # band numbers of passage bands start here (whole-text ones at 0)
# bits kept of each key: DuckDB packs an integer column to the bits its values need, so a
# key costs 5.5 bytes on disk rather than 8; at 300M stored keys (1M articles) a key of a
# new article meets a stored one by chance with probability 300M / 2^44 = 1.7e-5
KEY_BITS = 44
KEY_MASK = np.uint64((1 << KEY_BITS) - 1)


def band_keys(signed: Signed, params: DetectionParams) -> np.ndarray:
    """The distinct LSH keys of a signed text, sorted (uint64): each band of the whole-text
    signature (`bands` x `rows`) and each band of every passage signature (`passage_bands` x
    `passage_rows`), the band's number mixed into its hash. Two texts are candidates when they
    share a key (`KEY_BITS` bits of it): a whole-text band (edited copies), or a passage band
    (a passage quoted in the other text, or the other text itself when it is short)."""
    if signed.shingles.size == 0:
        return np.empty(0, np.uint64)
    whole = band_hashes(signed.signature, params)[0]
    parts = [_mix_band(whole, np.arange(params.bands, dtype=np.uint64))]
    if len(signed.passages) and params.passage_bands:
        hashes = band_hashes(
            signed.passage_signatures, params, params.passage_bands, params.passage_rows
        )
        numbers = np.arange(params.passage_bands, dtype=np.uint64) + np.uint64(PASSAGE_BAND_BASE)
        parts.append(_mix_band(hashes, numbers).reshape(-1))
    return np.unique(np.concatenate(parts) & KEY_MASK)


def _mix_band(hashes: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    """A band hash with its band number mixed in (a bijection of the hash for each number)."""
    with np.errstate(over="ignore"):
        key = hashes ^ (numbers * np.uint64(0x9E3779B97F4A7C15))
        key ^= key >> np.uint64(31)
        key *= np.uint64(0x94D049BB133111EB)
        key ^= key >> np.uint64(29)
    return key


def to_lean_minhash(signature: np.ndarray, params: DetectionParams) -> LeanMinHash:
    """A stored signature as a datasketch LeanMinHash (e.g. for MinHash.jaccard)."""
    from datasketch import LeanMinHash

    return LeanMinHash(seed=params.seed, hashvalues=signature, scheme=params.scheme)


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a == b)) / float(len(a))
