"""Narrative states and the figures of a narrative, on constructed histories."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from report_samples import DAY, T0, row, sample_report, spreading_rows

from report.build import appeared, build_narratives, feed_issues
from report.states import narrative_state
from store.queries import FeedItemsRow, FeedProblemRow

D = date(2025, 5, 31)
NOON = datetime(2025, 5, 31, 12, 0, tzinfo=UTC)


def ago(days: float, hours: float = 0) -> datetime:
    return NOON - timedelta(days=days, hours=hours)


@pytest.mark.parametrize(
    ("history", "state"),
    [
        # founded today on two outlets
        ([(ago(0, 3), "a"), (ago(0), "b")], "new"),
        # one outlet since yesterday, a second one today: first spread today
        ([(ago(1), "a"), (ago(0), "b")], "new"),
        # two outlets before, a third today
        ([(ago(3), "a"), (ago(2), "b"), (ago(0), "c")], "growing"),
        # two outlets before, a new copy today from one of them
        ([(ago(3), "a"), (ago(2), "b"), (ago(0), "a")], "steady"),
        # nothing today
        ([(ago(3), "a"), (ago(1), "b")], "cooling"),
        # back after more than the 7-day quiet spell, from an outlet already reached
        ([(ago(30), "a"), (ago(29), "b"), (ago(0), "a")], "resurfaced"),
        # back after a quiet spell, from a new outlet: still resurfaced
        ([(ago(30), "a"), (ago(29), "b"), (ago(0), "z")], "resurfaced"),
        # the last copy 6 days before the day: not quiet long enough, steady
        ([(ago(30), "a"), (ago(6), "b"), (ago(0), "a")], "steady"),
        # a copy late on D-8 (23:59): no copy on D-7 .. D-1, so resurfaced
        (
            [(datetime(2025, 5, 23, 23, 59, tzinfo=UTC), "a"), (ago(20), "b"), (ago(0), "b")],
            "resurfaced",
        ),  # fmt: skip
        # a copy at 00:00 on D-7 breaks the quiet spell
        (
            [(datetime(2025, 5, 24, 0, 0, tzinfo=UTC), "a"), (ago(20), "b"), (ago(0), "b")],
            "steady",
        ),  # fmt: skip
        # a copy after the end of the day is not known yet
        ([(ago(3), "a"), (ago(2), "b"), (ago(-1), "c")], "cooling"),
    ],
)
def test_each_state_on_a_constructed_history(history, state):
    assert narrative_state(history, D, quiet_days=7) == state


def test_the_quiet_spell_is_configurable():
    history = [(ago(10), "a"), (ago(9), "b"), (ago(0), "a")]
    assert narrative_state(history, D, quiet_days=7) == "resurfaced"
    assert narrative_state(history, D, quiet_days=14) == "steady"
    assert narrative_state(history, D, quiet_days=8) == "resurfaced"  # 9 quiet days
    assert narrative_state(history, D, quiet_days=9) == "steady"
    with pytest.raises(ValueError, match="at least one day"):
        narrative_state(history, D, quiet_days=0)


def test_appeared_is_the_published_time_unless_missing_or_later_than_first_seen():
    seen = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)
    assert appeared(seen - timedelta(hours=5), seen) == seen - timedelta(hours=5)
    assert appeared(None, seen) == seen
    assert appeared(seen + timedelta(hours=2), seen) == seen
    assert appeared(datetime(2025, 5, 1, 3, 0), seen) == seen - timedelta(hours=5)  # naive = UTC


def test_narrative_figures_use_the_clock_they_say():
    report = sample_report()
    a, b = report.narratives
    assert (a.cluster_id, b.cluster_id) == ("A", "B")  # most outlets first
    assert (a.rank, b.rank) == (1, 2)
    assert (a.state, b.state) == ("growing", "new")
    assert a.outlets == ("Daily Herald", "Morning Post", "Evening Star")
    assert a.countries == ("IN", "PK")
    assert (a.article_count, a.new_copies, a.new_outlets) == (3, 1, 1)
    # published 03:00 and 07:00 the day before: 4 h apart, though first seen 8 h apart
    assert a.hours_to_second_outlet == 4.0
    # the third copy has no published time: first seen 29 h after the first copy appeared
    assert (a.velocity, a.velocity_final) == (2, True)
    # B: the second copy's published time is later than its first-seen time, so first seen
    assert b.hours_to_second_outlet == 9.0
    assert (b.velocity, b.velocity_final) == (2, False)  # its 24 h end after the day
    assert b.syndicated and not a.syndicated
    assert a.copies[2].facts == (
        "numbers: 4,500 → 5,000",
        "names and places: Islamabad → Rawalpindi",
    )
    assert a.copies[2].matched_outlet == "Morning Post"
    assert [c.new_on_day for c in a.copies] == [False, False, True]
    assert [(h.title, h.copies) for h in a.headlines] == [
        ("Army hit by resignations", 2),
        ("Army hit by resignations | exclusive", 1),
    ]
    assert [(p.day, p.copies, p.outlets_reached) for p in a.days[-2:]] == [
        (DAY - timedelta(days=1), 2, 2),
        (DAY, 1, 3),
    ]
    assert len(a.days) == 7 and a.days[0].day == DAY - timedelta(days=6)


def test_only_narratives_that_spread_and_were_active_in_the_window_are_listed():
    rows = spreading_rows()
    lone = [row("C", 21, "Solo", seen=T0), row("C", 22, "Solo", seen=T0, matched=21)]
    old = [
        row("D", 31, "Old One", seen=T0 - timedelta(days=9)),
        row("D", 32, "Old Two", seen=T0 - timedelta(days=8)),
    ]
    future = [row("E", 41, "Later", seen=T0 + timedelta(days=1)), row("E", 42, "Late", seen=T0)]
    narratives = build_narratives(rows + lone + old + future, DAY, window_days=7)
    assert [n.cluster_id for n in narratives] == ["A", "B"]
    # with a longer window the old narrative is listed, cooling
    wide = build_narratives(rows + old, DAY, window_days=10)
    assert [(n.cluster_id, n.state) for n in wide] == [
        ("A", "growing"),
        ("D", "cooling"),
        ("B", "new"),
    ]


def test_watchlist_names_come_from_headlines_and_texts():
    from narratives.variants import parse_watchlist

    watchlist = parse_watchlist(
        '[[narratives]]\nkey = "r"\nname = "Mass resignations"\nphrases = ["4,500 soldiers"]\n'
        '[[narratives]]\nkey = "s"\nname = "Storm"\nphrases = ["storm hits coast"]\n'
    )
    a, b = build_narratives(spreading_rows(), DAY, watchlist=watchlist)
    assert a.watchlist == ("Mass resignations",)  # 2 of 3 texts carry 4,500 (the third 5,000)
    assert b.watchlist == ("Storm",)  # the phrase is in the headlines only


def test_feed_issues_failing_backed_off_malformed_and_silent():
    end = datetime(2025, 5, 2, 0, 0, tzinfo=UTC)
    hours = timedelta(hours=1)
    problems = [
        FeedProblemRow(
            "Broken", "https://b.example/rss", "failing", end - 48 * hours, 6, "HTTP 500"
        ),
        FeedProblemRow("Busy", "https://c.example/rss", "backed off", end - 5 * hours, 1, None),
        FeedProblemRow(
            "Messy", "https://m.example/rss", "malformed", end - 9 * hours, 2, "bad XML"
        ),
    ]
    hourly = tuple(end - timedelta(hours=30 + h) for h in range(11))  # silent for 30 h, usually 1 h
    daily = tuple(end - timedelta(days=d, hours=3) for d in range(11))  # last item 3 h ago
    slow = tuple(end - timedelta(days=2 + 3 * d) for d in range(11))  # 2 days, usually 3 days
    few = tuple(end - timedelta(days=20 + d) for d in range(4))  # too few items to judge
    broken = tuple(end - timedelta(days=9 + d) for d in range(6))  # failing already says it
    items = [
        FeedItemsRow("Hourly", "https://h.example/rss", hourly),
        FeedItemsRow("Daily", "https://d.example/rss", daily),
        FeedItemsRow("Slow", "https://s.example/rss", slow),
        FeedItemsRow("Few", "https://f.example/rss", few),
        FeedItemsRow("Broken", "https://b.example/rss", broken),
    ]
    issues = feed_issues(problems, items, end)
    assert [(i.outlet, i.problem) for i in issues] == [
        ("Broken", "failing"),
        ("Busy", "backed off"),
        ("Messy", "malformed"),
        ("Hourly", "silent"),
    ]
    assert issues[0].detail == "6 failed polls in a row; last error: HTTP 500"
    assert issues[1].detail == "1 poll skipped while backed off"
    assert issues[3].since == hourly[0]
    assert issues[3].detail == "no new item for 30.0 h; usually one every 1.0 h"
