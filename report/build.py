"""Rows in, a DailyReport out (pure): narratives with their states, figures and copies, and
feed health. The clocks each figure uses are described in `report.model`."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from narratives.variants import (
    WatchNarrative,
    changed_facts,
    describe_changes,
    has_wire_credit,
    watchlist_hits,
    word_diff,
)
from report.model import Copy, DailyReport, DayPoint, FeedIssue, Headline, Narrative
from report.states import DEFAULT_QUIET_DAYS, day_bounds, narrative_state
from store.queries import DayActivity, FeedItemsRow, FeedProblemRow, MemberRow

DEFAULT_WINDOW_DAYS = 7
MAX_DIFFS = 200  # copies of one narrative compared word by word with the earliest
VELOCITY_HOURS = 24
# a feed is silent when its newest item is older than SILENT_FACTOR times its usual gap
# between items (the median of its last gaps), and at least SILENT_MIN_HOURS old; feeds with
# fewer than SILENT_MIN_ITEMS items are not judged
SILENT_FACTOR = 4
SILENT_MIN_HOURS = 24
SILENT_MIN_ITEMS = 5


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def appeared(published_at: datetime | None, first_seen_at: datetime) -> datetime:
    """The published clock: the outlet's date, unless it is missing or later than first seen."""
    seen = _utc(first_seen_at)
    if published_at is None:
        return seen
    return min(_utc(published_at), seen)


def _shorten(text: str | None, limit: int = 280) -> str | None:
    if not text:
        return None
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _headlines(copies: Sequence[Copy]) -> tuple[Headline, ...]:
    groups: dict[str, tuple[str, list[str], list[int]]] = {}
    for copy in copies:
        title = " ".join(copy.title.split()) or "(untitled)"
        key = title.casefold()
        entry = groups.setdefault(key, (title, [], [0]))
        if copy.outlet not in entry[1]:
            entry[1].append(copy.outlet)
        entry[2][0] += 1
    return tuple(Headline(t, tuple(o), n[0]) for t, o, n in groups.values())


def build_narrative(
    rows: Sequence[MemberRow],
    day: date,
    window_start: date,
    quiet_days: int,
    watchlist: Sequence[WatchNarrative],
    merged_from: Sequence[str] = (),
) -> Narrative:
    """One narrative from its copies known at the end of `day` (in first-seen order)."""
    start, end = day_bounds(day)
    rows = sorted(
        rows,
        key=lambda r: (
            _utc(r.first_seen_at),
            r.published_at is None,
            _utc(r.published_at) if r.published_at else start,
            r.article_id,
        ),
    )
    origin = rows[0]
    by_id = {row.article_id: row for row in rows}
    copies = []
    for index, row in enumerate(rows):
        matched = by_id.get(row.matched_article_id) if row.matched_article_id else None
        compare = 0 < index <= MAX_DIFFS
        copies.append(
            Copy(
                article_id=row.article_id,
                outlet=row.outlet,
                country=row.country,
                kind=row.kind,
                title=row.title,
                url=row.url,
                published_at=_utc(row.published_at) if row.published_at else None,
                first_seen_at=_utc(row.first_seen_at),
                appeared_at=appeared(row.published_at, row.first_seen_at),
                match_kind=None if index == 0 else row.match_kind,
                similarity=None if index == 0 else row.similarity,
                matched_passage=_shorten(row.matched_passage)
                if index and row.match_kind == "passage"
                else None,
                matched_outlet=matched.outlet if matched else None,
                matched_appeared_at=appeared(matched.published_at, matched.first_seen_at)
                if matched
                else None,
                wire_credit=has_wire_credit(row.text),
                new_on_day=start <= _utc(row.first_seen_at) < end,
                facts=changed_facts(origin.text, row.text) if compare else (),
                changes=describe_changes(origin.text, row.text) if compare else (),
                diff=word_diff(origin.text, row.text) if compare else (),
            )
        )
    outlets = tuple(dict.fromkeys(c.outlet for c in copies))
    countries = tuple(dict.fromkeys(c.country for c in copies if c.country))
    first_by_outlet: dict[str, datetime] = {}
    for copy in copies:
        at = first_by_outlet.get(copy.outlet)
        if at is None or copy.appeared_at < at:
            first_by_outlet[copy.outlet] = copy.appeared_at
    times = sorted(first_by_outlet.values())
    first = times[0]
    horizon = first + timedelta(hours=VELOCITY_HOURS)
    days = []
    for offset in range((day - window_start).days + 1):
        current = window_start + timedelta(days=offset)
        day_start, day_end = day_bounds(current)
        days.append(
            DayPoint(
                day=current,
                copies=sum(1 for c in copies if day_start <= c.first_seen_at < day_end),
                outlets_reached=len({c.outlet for c in copies if c.first_seen_at < day_end}),
            )
        )
    reached_before = {c.outlet for c in copies if c.first_seen_at < start}
    new_copies = [c for c in copies if c.new_on_day]
    wire = sum(1 for c in copies if c.wire_credit)
    return Narrative(
        rank=0,
        cluster_id=origin.cluster_id,
        label=origin.title.strip() or _shorten(origin.text, 90) or origin.cluster_id,
        state=narrative_state(((c.first_seen_at, c.outlet) for c in copies), day, quiet_days),
        watchlist=watchlist_hits(watchlist, [f"{r.title}\n{r.text}" for r in rows]),
        first_seen_at=copies[0].first_seen_at,
        last_seen_at=max(c.first_seen_at for c in copies),
        outlets=outlets,
        countries=countries,
        article_count=len(copies),
        outlet_count=len(outlets),
        new_copies=len(new_copies),
        new_outlets=len({c.outlet for c in new_copies} - reached_before),
        velocity=sum(1 for t in times if t <= horizon),
        velocity_final=end >= horizon,
        hours_to_second_outlet=round((times[1] - first).total_seconds() / 3600, 1)
        if len(times) > 1
        else None,
        syndicated=wire * 2 > len(copies),
        copies=tuple(copies),
        days=tuple(days),
        headlines=_headlines(copies),
        merged_from=tuple(merged_from),
    )


def narrative_order(n: Narrative) -> tuple:
    return (-n.outlet_count, -n.article_count, n.first_seen_at, n.cluster_id)


def build_narratives(
    rows: Sequence[MemberRow],
    day: date,
    window_days: int = DEFAULT_WINDOW_DAYS,
    quiet_days: int = DEFAULT_QUIET_DAYS,
    watchlist: Sequence[WatchNarrative] = (),
    merges: Mapping[str, Sequence[str]] | None = None,
) -> tuple[Narrative, ...]:
    """The narratives that reached more than one outlet by the end of `day` and gained a copy
    in the window (the `window_days` days ending with `day`), most outlets first."""
    if window_days < 1:
        raise ValueError(f"the window must be at least one day, got {window_days}")
    window_start = day - timedelta(days=window_days - 1)
    since, end = day_bounds(window_start)[0], day_bounds(day)[1]
    by_cluster: dict[str, list[MemberRow]] = {}
    for row in rows:
        if _utc(row.first_seen_at) < end:
            by_cluster.setdefault(row.cluster_id, []).append(row)
    narratives = []
    for cluster_id, members in by_cluster.items():
        if len({m.outlet_id for m in members}) < 2:
            continue
        if max(_utc(m.first_seen_at) for m in members) < since:
            continue
        narratives.append(
            build_narrative(
                members,
                day,
                window_start,
                quiet_days,
                watchlist,
                (merges or {}).get(cluster_id, ()),
            )
        )
    narratives.sort(key=narrative_order)
    return tuple(replace(n, rank=rank) for rank, n in enumerate(narratives, start=1))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def feed_issues(
    problems: Sequence[FeedProblemRow], items: Sequence[FeedItemsRow], end: datetime
) -> tuple[FeedIssue, ...]:
    """Failing, malformed and backed-off feeds from their poll runs; silent feeds from the gaps
    between their latest items (published clock)."""
    issues = []
    failing = set()
    for row in problems:
        if row.problem == "failing":
            failing.add(row.feed_url)
            detail = (
                f"{_count(row.count, 'failed poll')} in a row; last error: {row.last_error or '—'}"
            )
        elif row.problem == "malformed":
            detail = (
                f"{_count(row.count, 'answer')} in a row salvaged from malformed XML: "
                f"{row.last_error or '—'}"
            )
        else:
            detail = f"{_count(row.count, 'poll')} skipped while backed off"
        issues.append(FeedIssue(row.outlet, row.feed_url, row.problem, _utc(row.since), detail))
    for feed in items:
        if feed.feed_url in failing or len(feed.times) < SILENT_MIN_ITEMS:
            continue
        times = [_utc(t) for t in feed.times]
        gaps = [newer - older for newer, older in zip(times, times[1:], strict=False)]
        usual = timedelta(seconds=statistics.median(g.total_seconds() for g in gaps))
        quiet = end - times[0]
        if quiet > max(usual * SILENT_FACTOR, timedelta(hours=SILENT_MIN_HOURS)):
            issues.append(
                FeedIssue(
                    feed.outlet,
                    feed.feed_url,
                    "silent",
                    times[0],
                    f"no new item for {_hours(quiet)}; usually one every {_hours(usual)}",
                )
            )
    order = {"failing": 0, "backed off": 1, "malformed": 2, "silent": 3}
    issues.sort(key=lambda i: (order[i.problem], i.since, i.outlet, i.feed_url))
    return tuple(issues)


def build_daily_report(
    day: date,
    generated_at: datetime,
    narratives: Sequence[Narrative],
    activity: DayActivity,
    articles_per_day: Mapping[date, int],
    issues: Sequence[FeedIssue],
    window_days: int = DEFAULT_WINDOW_DAYS,
    quiet_days: int = DEFAULT_QUIET_DAYS,
) -> DailyReport:
    window_start = day - timedelta(days=window_days - 1)
    return DailyReport(
        day=day,
        window_start=window_start,
        quiet_days=quiet_days,
        generated_at=generated_at,
        poll_times=activity.poll_times,
        poll_times_completed=activity.poll_times_completed,
        feeds_polled=activity.feeds_polled,
        feeds_answered=activity.feeds_answered,
        articles_seen=activity.articles_seen,
        outlets_active=activity.outlets_active,
        article_failures=activity.article_failures,
        narratives=tuple(narratives),
        articles_per_day=tuple(
            (d, articles_per_day.get(d, 0))
            for d in (window_start + timedelta(days=i) for i in range(window_days))
        ),
        feed_issues=tuple(issues),
    )
