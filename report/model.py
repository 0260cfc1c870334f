"""What a daily report and its narrative pages say, as plain data. Built from store rows by
`report.build`, charted by `report.charts`, rendered by `report.render`; no I/O here.

Two clocks (docs/operations.md, "Reports"):
- first seen: when narratrace first stored the article (a poll time). It decides what a
  report of day D knows (everything first seen before the end of D), the day an article counts
  on, the order of copies, and the states.
- published: the outlet's own date. Where the outlet gives none, or one later than first seen
  (impossible, so wrong), the first-seen time stands in: that is `appeared_at`. It times the
  spread: first outlet's time, velocity, hours to the second outlet, the spread graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from narratives.variants import DiffPart

STATES = ("new", "resurfaced", "growing", "steady", "cooling")


@dataclass(frozen=True)
class Copy:
    """One article of a narrative, in first-seen order."""

    article_id: int
    outlet: str
    country: str | None
    kind: str | None  # the outlet's kind in the config (news-portal, blog, ...)
    title: str
    url: str
    published_at: datetime | None
    first_seen_at: datetime
    appeared_at: datetime  # published_at, or first_seen_at when that is missing or earlier
    match_kind: str | None  # "copy" | "passage"; None for the earliest copy
    similarity: float | None  # Jaccard of word shingles with the copy it matched
    matched_passage: str | None  # the shared passage, shortened, for a passage match
    matched_outlet: str | None  # the outlet of the copy it was matched against
    matched_appeared_at: datetime | None  # and when that copy appeared
    wire_credit: bool  # the text carries a wire-agency credit line
    new_on_day: bool  # first seen on the report's day
    facts: tuple[str, ...] = ()  # changed facts against the earliest copy ("numbers: 5 → 6")
    changes: tuple[str, ...] = ()  # other changes (paragraphs added, excerpt, ...)
    diff: tuple[DiffPart, ...] = ()  # word-level diff against the earliest copy


@dataclass(frozen=True)
class DayPoint:
    day: date
    copies: int  # copies first seen that day
    outlets_reached: int  # distinct outlets reached by the end of that day


@dataclass(frozen=True)
class Headline:
    title: str
    outlets: tuple[str, ...]  # in first-seen order
    copies: int


@dataclass(frozen=True)
class Narrative:
    rank: int  # 1 = most outlets reached
    cluster_id: str
    label: str  # the earliest copy's headline
    state: str  # one of STATES, on the report's day
    watchlist: tuple[str, ...]  # names of watchlist narratives whose phrases it carries
    first_seen_at: datetime
    last_seen_at: datetime
    outlets: tuple[str, ...]  # outlets reached, in first-seen order
    countries: tuple[str, ...]
    article_count: int
    outlet_count: int
    new_copies: int  # copies first seen on the report's day
    new_outlets: int  # outlets first reached on the report's day
    velocity: int  # outlets whose copy appeared within 24 h of the first (published clock)
    velocity_final: bool  # False while those 24 h are not over at the report's end
    hours_to_second_outlet: float | None  # published clock; None with one outlet
    syndicated: bool  # most copies carry a wire credit line
    copies: tuple[Copy, ...]
    days: tuple[DayPoint, ...]  # every day of the report's window, oldest first
    headlines: tuple[Headline, ...]
    merged_from: tuple[str, ...] = ()

    @property
    def origin(self) -> Copy:
        return self.copies[0]


@dataclass(frozen=True)
class FeedIssue:
    outlet: str
    feed_url: str
    problem: str  # "failing" | "malformed" | "backed off" | "silent"
    since: datetime  # first failure / salvaged answer / skip of the run; last item if silent
    detail: str  # what and how much, in words


@dataclass(frozen=True)
class DailyReport:
    day: date
    window_start: date  # the first day of the window the narratives are drawn from
    quiet_days: int  # the quiet spell after which a narrative that returns is "resurfaced"
    generated_at: datetime
    poll_times: int  # distinct cycle times on the day
    poll_times_completed: int
    feeds_polled: int
    feeds_answered: int
    articles_seen: int  # first seen on the day
    outlets_active: int
    article_failures: int
    narratives: tuple[Narrative, ...]  # spread across outlets, active in the window, ranked
    articles_per_day: tuple[tuple[date, int], ...]  # every window day: articles first seen
    feed_issues: tuple[FeedIssue, ...] = ()

    @property
    def window_days(self) -> int:
        return (self.day - self.window_start).days + 1
