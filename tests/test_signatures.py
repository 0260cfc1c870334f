"""Shingles, MinHash signatures, passages and LSH bands, checked against datasketch itself."""

from __future__ import annotations

import random
from dataclasses import replace
from itertools import combinations

import numpy as np
import pytest
import xxhash
from datasketch import LeanMinHash, MinHash, MinHashLSH

from narratives.params import DEFAULT_PARAMS, DetectionParams
from narratives.signatures import (
    band_hashes,
    estimated_jaccard,
    passages_of,
    shingle_hashes,
    shingle_strings,
    sign,
    to_lean_minhash,
)
from narratives.text import split_paragraphs, tokenize

BASES = [
    """\
The port authority said on Friday that container traffic through its three terminals rose by \
eleven percent in the last quarter, helped by new shipping lines from East Africa.
Officials said the dredging of the outer channel, finished in August, now allows vessels with \
a draught of fourteen metres to berth at any tide.
Truckers' unions, however, complained that the approach road remains jammed for hours every \
evening and that the promised parking yard has not been built.
The authority said a tender for the yard would be issued before the end of the year.""",
    """\
Health officials in the northern districts have confirmed a rise in dengue cases after weeks \
of stagnant water in construction sites and open drains across the city.
Hospitals reported that fever wards were running above capacity and that several patients had \
been moved to temporary beds set up in corridors and verandas.
The municipal commissioner ordered fogging drives in every ward and said builders who left \
water standing on their sites would be fined without warning.
Doctors urged residents to seek care early if they developed a high fever with joint pain.""",
    """\
The national cricket selectors named an uncapped left-arm spinner in the squad for the home \
series, leaving out two senior batters who struggled on the recent tour.
The chief selector said the young bowler had taken more wickets than anyone in the domestic \
season and deserved a chance on turning pitches at home.
Former captains were divided on the decision, with some praising the selectors for looking \
ahead and others warning that experience would be missed in a long series.
The first match begins next Thursday at the stadium in the old city.""",
    """\
Farmers in the canal belt have begun sowing wheat a fortnight late because the irrigation \
department delayed the release of water from the upstream reservoir.
The department said repairs to a damaged sluice gate took longer than planned after heavy \
rain in October washed away part of the access road to the dam.
Agricultural scientists warned that late sowing could cut yields if temperatures rise early \
in spring, as they did in each of the last two years.
Farm unions have asked the government to extend the deadline for crop insurance enrolment.""",
    """\
A fire broke out in a garment warehouse in the industrial area late on Sunday night, and \
twelve fire tenders took nearly six hours to bring the blaze under control.
No one was hurt, the fire department said, because the night shift had ended an hour before \
the first alarm was raised by a security guard on his rounds.
Investigators said an electrical short circuit in the packing section was the likely cause and \
that the building had no valid fire safety certificate.
The owners said they would cooperate with the inquiry.""",
]


def _edit(text: str, rate: float, seed: int) -> str:
    """Replace about `rate` of the words with made-up ones, keeping line breaks."""
    rng = random.Random(seed)
    lines = []
    for line in text.split("\n"):
        words = line.split()
        lines.append(
            " ".join(f"zq{rng.randrange(10**6)}" if rng.random() < rate else w for w in words)
        )
    return "\n".join(lines)


def _corpus() -> list[str]:
    texts = []
    for b, base in enumerate(BASES):
        texts.append(base)
        for r, rate in enumerate((0.03, 0.1, 0.25, 0.5)):
            texts.append(_edit(base, rate, seed=100 * b + r))
        texts.append("\n".join(split_paragraphs(base)[:2]))  # an excerpt
    return texts


def _tokens(text: str):
    return tokenize(split_paragraphs(text))


def _datasketch(strings: list[str], params: DetectionParams = DEFAULT_PARAMS) -> MinHash:
    m = MinHash(
        num_perm=params.num_perm,
        seed=params.seed,
        hashfunc=xxhash.xxh32_intdigest,
        scheme="affine32",
    )
    m.update_batch([s.encode() for s in strings])
    return m


def test_shingles_are_word_ngrams_in_text_order():
    words = ("a", "b", "c", "d", "e")
    assert shingle_strings(words, 3) == ["a b c", "b c d", "c d e"]
    assert shingle_strings(words[:2], 3) == ["a b"]  # shorter than one shingle
    assert shingle_strings((), 3) == []
    hashes = shingle_hashes(words, 3)
    assert hashes.dtype == np.uint32
    assert hashes.tolist() == [
        xxhash.xxh32_intdigest(s.encode()) for s in ("a b c", "b c d", "c d e")
    ]


@pytest.mark.parametrize("index", [0, 3, 9, 17])
def test_signatures_equal_datasketch(index):
    params = DEFAULT_PARAMS
    tokens = _tokens(_corpus()[index])
    signed = sign(tokens, params)
    strings = shingle_strings(tokens.words, params.shingle_size)
    assert signed.signature.dtype == np.uint32
    np.testing.assert_array_equal(signed.signature, _datasketch(strings).hashvalues)
    assert len(signed.passages) >= 2
    assert signed.passage_signatures.shape == (len(signed.passages), params.num_perm)
    for passage, sig in zip(signed.passages, signed.passage_signatures, strict=True):
        shingles = strings[passage.first_shingle : passage.last_shingle + 1]
        np.testing.assert_array_equal(sig, _datasketch(shingles).hashvalues)
        # a passage's shingles are its own words, none reaching into the next passage
        words = tokens.words[passage.first_word : passage.last_word + 1]
        assert shingles == shingle_strings(words, params.shingle_size)


def test_signature_with_other_parameters_equals_datasketch():
    params = DetectionParams(
        shingle_size=3, num_perm=64, seed=7, bands=16, rows=4, passage_bands=8, passage_rows=4
    )
    tokens = _tokens(BASES[1])
    strings = shingle_strings(tokens.words, params.shingle_size)
    np.testing.assert_array_equal(
        sign(tokens, params).signature, _datasketch(strings, params).hashvalues
    )


def test_short_and_empty_texts():
    params = DEFAULT_PARAMS
    short = sign(_tokens("Two words"), params)
    assert short.shingles.size == 1
    assert len(short.passages) == 1
    np.testing.assert_array_equal(short.signature, _datasketch(["two words"]).hashvalues)
    empty = sign(_tokens(""), params)
    assert empty.shingles.size == 0 and empty.passages == ()
    assert (empty.signature == np.uint32(0xFFFFFFFF)).all()
    assert empty.passage_signatures.shape == (0, params.num_perm)


def test_passages_merge_short_paragraphs_to_min_words():
    params = replace(DEFAULT_PARAMS, passage_min_words=10)
    paragraphs = [
        "one two three four five six",  # 6 words: too short alone
        "seven eight nine ten eleven",  # together 11 words -> passage 1
        "a b c d e f g h i j k l",  # 12 words -> passage 2
        "tail words only",  # short tail joins passage 2
    ]
    tokens = tokenize(paragraphs)
    passages = passages_of(tokens, params)
    assert [(p.number, p.first_word, p.last_word) for p in passages] == [(1, 0, 10), (2, 11, 25)]
    k = params.shingle_size
    assert [(p.first_shingle, p.last_shingle) for p in passages] == [
        (0, 10 - k + 1),
        (11, 25 - k + 1),
    ]
    # every passage of the default parameters holds at least passage_min_words words
    long_tokens = _tokens(BASES[0])
    for p in passages_of(long_tokens, DEFAULT_PARAMS):
        assert p.last_word - p.first_word + 1 >= DEFAULT_PARAMS.passage_min_words
    assert passages_of(long_tokens, DEFAULT_PARAMS)[-1].last_word == len(long_tokens.words) - 1
    # a text shorter than passage_min_words is one passage
    (only,) = passages_of(tokenize(["just five short words here"]), DEFAULT_PARAMS)
    assert (only.first_word, only.last_word, only.first_shingle, only.last_shingle) == (0, 4, 0, 1)
    assert passages_of(tokenize([]), DEFAULT_PARAMS) == []


def test_band_hashes_give_the_same_candidates_as_datasketch_lsh():
    params = DEFAULT_PARAMS
    texts = _corpus()
    assert len(texts) == 30
    signatures = np.vstack([sign(_tokens(t), params).signature for t in texts])
    bands = band_hashes(signatures, params)
    assert bands.shape == (30, params.bands) and bands.dtype == np.uint64
    ours = {(i, j) for i, j in combinations(range(len(texts)), 2) if np.any(bands[i] == bands[j])}
    lsh = MinHashLSH(num_perm=params.num_perm, params=(params.bands, params.rows))
    for i, sig in enumerate(signatures):
        lsh.insert(i, to_lean_minhash(sig, params))
    theirs = set()
    for i, sig in enumerate(signatures):
        for j in lsh.query(to_lean_minhash(sig, params)):
            if i < j:
                theirs.add((i, j))
    assert ours == theirs
    # the corpus exercises both outcomes: near copies pair up, different stories do not
    assert (0, 1) in ours and (0, 2) in ours
    assert (0, 6) not in ours
    assert 5 < len(ours) < 100


def test_band_hash_depends_on_every_row_of_its_band():
    params = DEFAULT_PARAMS
    sig = sign(_tokens(BASES[2]), params).signature
    base = band_hashes(sig, params)[0]
    for position in (0, 1, 2, 3, params.bands * params.rows - 1):
        changed = sig.copy()
        changed[position] ^= np.uint32(1)
        other = band_hashes(changed, params)[0]
        band = position // params.rows
        assert other[band] != base[band]
        assert np.array_equal(np.delete(other, band), np.delete(base, band))
    # values past bands*rows take no part
    params_small = DetectionParams(bands=8, rows=4)
    changed = sig.copy()
    changed[100] ^= np.uint32(1)
    assert np.array_equal(band_hashes(changed, params_small), band_hashes(sig, params_small))


def test_lean_minhash_jaccard_equals_estimated_jaccard():
    params = DEFAULT_PARAMS
    texts = _corpus()
    a = sign(_tokens(texts[0]), params).signature
    for other in (texts[1], texts[3], texts[4], texts[6]):
        b = sign(_tokens(other), params).signature
        lean_a, lean_b = to_lean_minhash(a, params), to_lean_minhash(b, params)
        assert isinstance(lean_a, LeanMinHash)
        assert lean_a.jaccard(lean_b) == pytest.approx(estimated_jaccard(a, b))
    assert estimated_jaccard(a, a) == 1.0
    near = estimated_jaccard(a, sign(_tokens(texts[1]), params).signature)
    far = estimated_jaccard(a, sign(_tokens(texts[6]), params).signature)
    assert near > 0.6 and far < 0.1


def test_params_validation_messages():
    with pytest.raises(ValueError, match=r"bands\*rows \(40\*4\) exceeds num_perm \(128\)"):
        DetectionParams(bands=40, rows=4)
    with pytest.raises(ValueError, match="only scheme='affine32' is supported"):
        DetectionParams(scheme="affine64")
    with pytest.raises(ValueError, match="shingle_size"):
        DetectionParams(shingle_size=0)
    with pytest.raises(ValueError, match="copy_jaccard"):
        DetectionParams(copy_jaccard=0)
    DetectionParams(bands=32, rows=4, num_perm=128)  # exactly num_perm is fine


def test_param_set_id_changes_with_any_parameter():
    base = DEFAULT_PARAMS.param_set_id
    assert base == DetectionParams().param_set_id
    assert len(base) == 12
    changed = {
        replace(DEFAULT_PARAMS, shingle_size=5).param_set_id,
        replace(DEFAULT_PARAMS, seed=2).param_set_id,
        replace(DEFAULT_PARAMS, bands=16).param_set_id,
        replace(DEFAULT_PARAMS, copy_jaccard=0.3).param_set_id,
        replace(DEFAULT_PARAMS, chrome_min_articles=4).param_set_id,
    }
    assert base not in changed and len(changed) == 5
    assert DEFAULT_PARAMS.as_dict()["num_perm"] == 128
