"""Exact verification of candidates: copies, quoted passages, and texts that only share a topic."""

from __future__ import annotations

import numpy as np
import pytest

from narratives.params import DEFAULT_PARAMS
from narratives.signatures import sign
from narratives.text import content_paragraphs, normalise, tokenize
from narratives.verify import Match, best_run, compare, overlap

FLOOD = """\
Heavy monsoon rain has forced more than 4500 families from their homes along the river, \
district officials said on Tuesday, as the water rose above the danger mark at six gauging \
stations.

The disaster management authority said 212 villages in three districts were under water and \
that relief camps had been opened in schools and community halls. Boats from the state rescue \
force ferried elderly residents and children to higher ground through the night.

Officials warned that the embankment near the market town had been breached in two places and \
that engineers were working to close the gaps with sandbags before the water rose again.

Farmers said the flood arrived weeks earlier than usual and destroyed paddy that had been \
planted only a month ago. Many said they had no savings left after last year's losses.

The weather office has forecast more heavy rain over the next three days and asked fishermen \
not to go out on the river until the warning is lifted."""

# numbers changed, one sentence added, otherwise the same words
FLOOD_COPY = (
    FLOOD.replace("4500", "5,000")
    .replace("212 villages", "230 villages")
    .replace(
        "through the night.",
        "through the night. A second team is expected from the capital on Wednesday.",
    )
)

# the same event, reported independently
FLOOD_OTHER_REPORT = """\
Rescue workers spent Tuesday pulling stranded villagers off rooftops after the river burst its \
banks overnight, our correspondent reports from the worst-hit block.

Residents described waking to knee-deep water inside their houses and losing grain stores, \
cattle and school books within minutes.

A local legislator visited one of the relief camps and promised compensation, though people \
there complained that drinking water and medicines were running short.

Meteorologists attribute the early flooding to an unusually strong low-pressure system over \
the bay, which is expected to weaken by the weekend."""

EMBEDDED = [
    "The disaster management authority said 212 villages in three districts were under water "
    "and that relief camps had been opened in schools and community halls. Boats from the state "
    "rescue force ferried elderly residents and children to higher ground through the night.",
    "Officials warned that the embankment near the market town had been breached in two places "
    "and that engineers were working to close the gaps with sandbags before the water rose "
    "again.",
]

HOST_BEFORE = """\
Every year the same pictures return to our screens, and every year the same officials promise \
that the next season will be different. The truth is that the city has grown without any \
thought for where the water will go when it arrives, and that each new housing colony built \
on a filled-in pond makes the next disaster a little worse.

Planners have known for two decades that the old drainage channels were being encroached. \
Reports were written, committees were formed, and maps were drawn showing the natural \
wetlands that once absorbed the overflow. None of those maps became law, and most of the \
wetlands are now parking lots, wedding halls and gated apartment blocks.

Consider the news from the districts this week, as reported by the wire services:"""

HOST_AFTER = """\
Nothing in that report should surprise anyone who has followed the budget debates. The money \
allotted for embankment maintenance was cut twice in five years, while the allocation for \
ribbon-cutting road projects grew steadily. Engineers on the ground say they were asked to \
patch rather than rebuild, and to submit estimates that would fit a shrinking envelope.

There are cities that have learned to live with water instead of fighting it. They have \
restored floodplains, built parks that double as holding basins, and moved the most \
vulnerable households away from the riverbank with fair compensation. None of this is cheap, \
but it costs far less than rebuilding the same villages every other monsoon.

The question for our legislators is simple. Will they fund the dull, invisible work of \
drainage and wetland protection, or will they wait for the next set of photographs of boats \
in flooded streets and announce another committee? Voters deserve an answer before the next \
rains, not after them, and they should keep asking until they get one.

Until then, the families in the camps will go on waiting for help that arrives too late, and \
the rest of us will go on pretending that this was a natural disaster."""

HOST = "\n\n".join([HOST_BEFORE, *EMBEDDED, HOST_AFTER])


def _signed(text: str):
    return sign(tokenize(content_paragraphs(text)), DEFAULT_PARAMS)


def test_lightly_edited_copy_is_a_copy():
    original, copy = _signed(FLOOD), _signed(FLOOD_COPY)
    match = compare(copy, original, 17, DEFAULT_PARAMS)
    assert match is not None
    assert match.kind == "copy"
    assert match.other_id == 17
    assert match.jaccard >= 0.8
    assert match.containment >= 0.95
    # "4500" -> "5,000" is invisible after normalisation
    assert "5,000 families" in FLOOD_COPY
    assert normalise("more than 4500 families") == normalise("more than 5,000 families")
    # both directions agree
    back = compare(original, copy, 18, DEFAULT_PARAMS)
    assert back is not None and back.kind == "copy" and back.jaccard == match.jaccard
    # the recorded passage is the copy's own text
    assert match.passage in copy.tokens.text
    assert match.passage == copy.tokens.snippet(*match.span)
    # the added sentence (10 new words) breaks the run: the longest run lies after it
    assert match.passage.startswith("Officials warned that the embankment")
    assert match.passage.endswith("until the warning is lifted")


def test_passage_embedded_in_a_longer_text_is_a_passage():
    original, host = _signed(FLOOD), _signed(HOST)
    assert len(host.tokens.words) >= 4 * sum(len(p.split()) for p in EMBEDDED)
    match = compare(host, original, 3, DEFAULT_PARAMS)
    assert match is not None
    assert match.kind == "passage"
    assert match.jaccard < DEFAULT_PARAMS.copy_jaccard
    assert match.run_shared >= DEFAULT_PARAMS.passage_min_shared
    # the span covers the embedded paragraphs and little else
    words = host.tokens.words
    first, last = match.span
    embedded_words = tokenize(EMBEDDED).words
    start = next(
        i for i in range(len(words)) if words[i : i + len(embedded_words)] == embedded_words
    )
    assert (first, last) == (start, start + len(embedded_words) - 1)
    assert match.passage.startswith("The disaster management authority")
    assert match.passage.endswith("before the water rose again")
    assert match.passage == host.tokens.snippet(first, last)
    # the stored article quoted in the host: seen from the original, the run is found as well
    other_way = compare(original, host, 4, DEFAULT_PARAMS)
    assert other_way is not None and other_way.kind == "passage"
    assert other_way.passage.startswith("The disaster management authority")


def test_same_event_different_article_is_no_match():
    first, second = _signed(FLOOD), _signed(FLOOD_OTHER_REPORT)
    assert compare(second, first, 1, DEFAULT_PARAMS) is None
    assert compare(first, second, 2, DEFAULT_PARAMS) is None
    assert compare(_signed(HOST), _signed(FLOOD_OTHER_REPORT), 2, DEFAULT_PARAMS) is None


def test_empty_or_disjoint_texts_do_not_match():
    assert compare(_signed(""), _signed(FLOOD), 1, DEFAULT_PARAMS) is None
    assert compare(_signed(FLOOD), _signed(""), 1, DEFAULT_PARAMS) is None
    assert (
        compare(_signed(FLOOD), _signed("Completely different words here."), 1, DEFAULT_PARAMS)
        is None
    )


def test_best_run_tolerates_gaps_up_to_max_gap():
    mask = np.zeros(40, dtype=bool)
    mask[[2, 3, 4]] = True  # a run of 3
    mask[[10, 11, 14, 15, 16, 20]] = True  # gaps of 2 and 3 positions
    assert best_run(mask, max_gap=3) == (6, 10, 20)
    assert best_run(mask, max_gap=2) == (5, 10, 16)
    assert best_run(mask, max_gap=1) == (3, 2, 4)  # first of equal runs wins
    assert best_run(mask, max_gap=0) == (3, 2, 4)
    assert best_run(mask, max_gap=6) == (9, 2, 20)
    assert best_run(np.zeros(5, dtype=bool), 3) == (0, 0, -1)
    assert best_run(np.ones(7, dtype=bool), 0) == (7, 0, 6)


def test_passage_match_needs_a_dense_run():
    """Shared shingles scattered over a long text are no passage; the same number in one
    place are."""
    params = DEFAULT_PARAMS
    original = _signed(FLOOD)
    host = _signed(HOST)
    match = compare(host, original, 1, params)
    assert match is not None
    strict = type(params)(passage_min_shared=match.run_shared + 1)
    assert compare(host, original, 1, strict) is None


def test_overlap_is_a_share_of_the_shorter_span():
    assert overlap((0, 9), (5, 14)) == pytest.approx(0.5)
    assert overlap((0, 99), (10, 19)) == 1.0
    assert overlap((0, 9), (10, 19)) == 0.0
    assert overlap((0, 9), (9, 9)) == 1.0


def test_match_strength_prefers_copies_then_similarity():
    base = dict(other_id=1, containment=0.5, shared=40, span=(0, 10), passage="x")
    copy = Match(kind="copy", jaccard=0.3, run_shared=30, **base)
    strong_passage = Match(kind="passage", jaccard=0.19, run_shared=90, **base)
    weak_passage = Match(kind="passage", jaccard=0.05, run_shared=90, **base)
    assert copy.strength > strong_passage.strength > weak_passage.strength


LABEL = (
    "This analysis is part of the Monsoon Desk, an independent series on weather and "
    "agriculture in the delta; the views expressed are the author's own."
)
DISCLAIMER = (
    "Editor's note: figures in this report come from official statements and could not be "
    "independently verified by our newsroom at the time of publication."
)


def _with_lines_in_the_middle(text: str) -> str:
    paragraphs = text.split("\n\n")
    middle = len(paragraphs) // 2
    return "\n\n".join([*paragraphs[:middle], LABEL, DISCLAIMER, *paragraphs[middle:]])


def _line_keys(*lines: str) -> set[int]:
    from narratives.text import paragraph_key

    return {paragraph_key(line) for line in lines}


def test_common_lines_in_the_middle_of_two_unrelated_texts_are_no_evidence():
    other_story = "\n\n".join(
        f"Paragraph {n} of another story about a port strike, dockers and shipping lines, "
        f"with its own words and figures number {n}." * 2
        for n in range(5)
    )
    new = _signed(_with_lines_in_the_middle(FLOOD))
    other = _signed(_with_lines_in_the_middle(other_story))
    assert compare(new, other, 1, DEFAULT_PARAMS) is not None  # two shared lines: a run
    assert compare(new, other, 1, DEFAULT_PARAMS, _line_keys(LABEL, DISCLAIMER)) is None


def test_common_lines_leave_a_real_copy_matched():
    new = _signed(_with_lines_in_the_middle(FLOOD_COPY))
    other = _signed(_with_lines_in_the_middle(FLOOD))
    match = compare(new, other, 1, DEFAULT_PARAMS, _line_keys(LABEL, DISCLAIMER))
    assert match is not None and match.kind == "copy"


def test_a_text_that_is_nearly_all_common_lines_is_compared_whole():
    new = _signed(f"{LABEL}\n\n{DISCLAIMER}")
    other = _signed(f"{LABEL}\n\n{DISCLAIMER}\n\nA short line of its own.")
    assert compare(new, other, 1, DEFAULT_PARAMS, _line_keys(LABEL, DISCLAIMER)) is not None
