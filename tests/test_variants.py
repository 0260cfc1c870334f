"""What changed between versions of a narrative; wire credits; the watchlist."""

from __future__ import annotations

import pytest

from narratives.variants import (
    DiffPart,
    WatchlistError,
    WatchNarrative,
    changed_facts,
    describe_changes,
    has_wire_credit,
    parse_watchlist,
    phrase_form,
    watchlist_hits,
    word_diff,
)

P1 = (
    "The city water board said on Monday that 4500 households in the eastern wards would "
    "receive supply only on alternate days until the new pipeline is commissioned."
)
P2 = (
    "Board engineers said the pumping station at the lake had been running below capacity since "
    "a motor burned out during a power surge last month."
)
P3 = (
    "Residents' associations have asked the board to publish a tanker schedule so that families "
    "are not forced to wait on the street for hours."
)
P4 = (
    "The mayor said the council would meet on Friday to review the contract of the firm that "
    "maintains the pumps and would consider penalties."
)
ORIGIN = "\n\n".join([P1, P2, P3, P4])


def test_identical_versions_have_no_changes():
    assert describe_changes(ORIGIN, ORIGIN) == ()


def test_changed_numbers_are_reported():
    version = ORIGIN.replace("4500", "5,000")
    assert describe_changes(ORIGIN, version) == ("numbers: 4500 → 5,000",)
    removed_only = ORIGIN.replace(" 4500 households", " households")
    assert describe_changes(ORIGIN, removed_only)[0] == "numbers: 4500 → —"


def test_added_dropped_and_reordered_paragraphs():
    extra = (
        "Opposition councillors staged a walkout during the debate, accusing the ruling group "
        "of ignoring repeated warnings from its own engineers."
    )
    assert describe_changes(ORIGIN, "\n\n".join([P1, P2, P3, P4, extra])) == ("1 paragraph added",)
    assert describe_changes(ORIGIN, "\n\n".join([P1, P2, P4])) == ("1 paragraph dropped",)
    assert describe_changes(ORIGIN, "\n\n".join([P2, P1, P3, P4])) == ("paragraphs reordered",)
    both = describe_changes(ORIGIN, "\n\n".join([extra, P3, extra + " Again.", P4, P1, P2]))
    assert "2 paragraphs added" in both
    assert "paragraphs reordered" in both


def test_excerpt_and_embedding_ratios():
    excerpt = describe_changes(ORIGIN, P1)
    assert "3 paragraphs dropped" in excerpt
    assert excerpt[-1].startswith("excerpt: ")
    assert (
        excerpt[-1]
        == f"excerpt: {len(P1.split()) / len(ORIGIN.split()):.0%} of the original's length"
    )
    commentary = "\n\n".join(
        [ORIGIN]
        + [
            f"Column paragraph {i}: readers wrote in to complain about the board, the mayor, "
            f"the heat and the state of the roads in ward number {i}."
            for i in range(1, 8)
        ]
    )
    changes = describe_changes(ORIGIN, commentary)
    assert changes[-1].startswith("embedded in a text ")
    assert changes[-1].endswith("× as long")
    assert "7 paragraphs added" in changes


def test_wire_credit_lines():
    body = "The minister inaugurated the bridge on Sunday.\n\n"
    assert has_wire_credit(body + "(With inputs from agencies)")
    assert has_wire_credit(body + "(with inputs from PTI)")
    assert has_wire_credit(body + "— IPA")
    assert has_wire_credit(body + "  - AFP  ")
    assert has_wire_credit("NEW DELHI (Reuters) - The minister inaugurated the bridge.")
    assert has_wire_credit(body + "This story was published from a wire agency feed.")
    assert has_wire_credit(body + "Reporting by Priya Nair; Editing by Reuters")


@pytest.mark.parametrize(
    "text",
    [
        "The minister inaugurated the bridge on Sunday.",
        "Agencies such as the port trust were consulted (and ignored).",
        "The figures were first reported by Reuters.",
        "Her press conference ran long - again.",
        "Items on the agenda:\n- budget\n- roads",
        "The score was 3-1 — IPA members cheered",
    ],
)
def test_ordinary_text_is_no_wire_credit(text):
    assert not has_wire_credit(text)


WATCHLIST = """\
[[narratives]]
key = "water-cuts"
name = "Water cuts in the east"
description = "Alternate-day supply"
phrases = ["alternate days", "Tanker schedule"]

[[narratives]]
key = "pump-contract"
phrases = ["contract of the firm"]
"""


def test_parse_watchlist():
    items = parse_watchlist(WATCHLIST)
    assert items[0] == WatchNarrative(
        key="water-cuts",
        name="Water cuts in the east",
        description="Alternate-day supply",
        phrases=("alternate days", "tanker schedule"),  # normalised
    )
    assert items[1].name == "pump-contract"  # the key when no name is given
    assert items[1].description == ""
    assert parse_watchlist("") == ()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("[[narratives]]\nkey = 'x'\nphrases = [", "wl.toml: not valid TOML"),
        ("[[narratives]]\nkey = 'x'\n", "wl.toml: narrative #1 needs 'key' and 'phrases'"),
        ("[[narratives]]\nkey = 'x'\nphrases = ['a b']\n[[narratives]]\nphrases = ['c']\n", "#2"),
        (
            "[[narratives]]\nkey = 'x'\nphrases = 'one phrase'\n",
            r"#1 \(x\): 'phrases' must be a list",
        ),
        ("[narratives]\nkey = 'x'\nphrases = ['a']\n", "must be an array of tables"),
    ],
)
def test_parse_watchlist_errors(source, message):
    with pytest.raises(WatchlistError, match=message):
        parse_watchlist(source, where="wl.toml")


def test_watchlist_hits_need_a_minimum_share_of_texts():
    watchlist = parse_watchlist(WATCHLIST)
    texts = [ORIGIN, P2, P3.replace("tanker", "water"), "Unrelated story about cricket."]
    # "alternate days" occurs in 1 of 4 texts; "contract of the firm" in 1 of 4
    assert watchlist_hits(watchlist, texts, min_share=0.25) == (
        "Water cuts in the east",
        "pump-contract",
    )
    assert watchlist_hits(watchlist, texts, min_share=0.5) == ()
    assert watchlist_hits(watchlist, [ORIGIN, ORIGIN, P2], min_share=0.5) == (
        "Water cuts in the east",
        "pump-contract",
    )
    # phrases match whole words only, after normalisation
    assert watchlist_hits(watchlist, ["On ALTERNATE days, water."]) == ("Water cuts in the east",)
    assert watchlist_hits(watchlist, ["The alternate daysheet."]) == ()
    assert watchlist_hits(watchlist, []) == ()


NUMBERED = """
[[narratives]]
key = "casualties"
name = "Casualties concealed"
phrases = ["685 security personnel", "4,500 soldiers"]
"""


def test_watchlist_phrases_with_numbers_match_that_number_only():
    watchlist = parse_watchlist(NUMBERED)
    assert watchlist[0].phrases == ("685 security personnel", "4500 soldiers")
    hit = ("Casualties concealed",)
    assert watchlist_hits(watchlist, ["Some 685 security personnel were killed."]) == hit
    # thousands separators do not matter, the digits do
    assert watchlist_hits(watchlist, ["It said 4500 soldiers quit."]) == hit
    assert watchlist_hits(watchlist, ["It said 4,500 soldiers quit."]) == hit
    assert watchlist_hits(watchlist, ["Some 100 security personnel were killed."]) == ()
    assert watchlist_hits(watchlist, ["It said 4,600 soldiers quit."]) == ()
    assert watchlist_hits(watchlist, ["Some 6850 security personnel were killed."]) == ()
    assert phrase_form("Over 1,000 DEAD — 93.000 troops") == "over 1000 dead 93000 troops"


def test_watchlist_matches_a_headline_passed_with_the_text():
    watchlist = parse_watchlist(NUMBERED)
    copies = [
        "Pakistan hides toll as 685 security personnel killed\nThe figures show 685 members.",
        "Toll hidden\nThe figures show 685 members of the security forces.",
    ]
    assert watchlist_hits(watchlist, copies, min_share=0.5) == ("Casualties concealed",)
    assert watchlist_hits(watchlist, copies[1:]) == ()


def test_word_diff_marks_changed_words_and_shortens_kept_runs():
    origin = (
        "One two three four five six seven eight nine ten eleven twelve. The end came in Lahore."
    )
    version = (
        "One two three four five six seven eight nine ten eleven twelve. The end came in Quetta."
    )
    parts = word_diff(origin, version, context=2)
    assert parts == (
        DiffPart("same", "… came in"),
        DiffPart("removed", "Lahore."),
        DiffPart("added", "Quetta."),
    )
    assert word_diff(origin, origin) == ()
    assert word_diff(origin, "Zero " + origin, context=2) == (
        DiffPart("added", "Zero"),
        DiffPart("same", "One two …"),
    )


def test_changed_facts_are_numbers_and_names_that_did_not_just_move():
    first = "Officials in Islamabad said 4,500 soldiers quit."
    second = "Reporters in Lahore saw 250 officers leave."
    origin = f"{first} {second}"
    edited = f"{first.replace('4,500', '5,000')} {second.replace('Lahore', 'Karachi')}"
    assert changed_facts(origin, edited) == (
        "numbers: 4,500 → 5,000",
        "names and places: Lahore → Karachi",
    )
    assert changed_facts(origin, f"{second} {first}") == ()
    # a capitalised word opening a sentence is not taken for a name
    assert changed_facts("Soldiers left.", "Officers left.") == ()
