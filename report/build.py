"""Rows in, a DailyReport out (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime

from narratives.variants import (
    WatchNarrative,
    describe_changes,
    has_wire_credit,
    watchlist_hits,
)
from report.model import ClusterEntry, DailyReport, FeedHealth, MemberEntry
from store.queries import MemberRow


def _shorten(text: str | None, limit: int = 280) -> str | None:
    if not text:
        return None
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def build_cluster(
    rows: Sequence[MemberRow],
    start: datetime,
    watchlist: Sequence[WatchNarrative],
    merged_from: Sequence[str] = (),
) -> ClusterEntry:
    origin = rows[0]
    members = []
    outlets: list[str] = []
    for row in rows:
        if row.outlet not in outlets:
            outlets.append(row.outlet)
        is_origin = row is origin
        members.append(
            MemberEntry(
                article_id=row.article_id,
                outlet=row.outlet,
                title=row.title,
                url=row.url,
                published_at=row.published_at,
                first_seen_at=row.first_seen_at,
                similarity=None if is_origin else row.similarity,
                match_kind=None if is_origin else row.match_kind,
                matched_passage=_shorten(row.matched_passage)
                if row.match_kind == "passage"
                else None,
                changes=() if is_origin else describe_changes(origin.text, row.text),
                wire_credit=has_wire_credit(row.text),
            )
        )
    second_outlet_at = next((r.first_seen_at for r in rows if r.outlet != origin.outlet), None)
    hours = None
    if second_outlet_at is not None:
        hours = round((second_outlet_at - origin.first_seen_at).total_seconds() / 3600, 1)
    wire = sum(1 for m in members if m.wire_credit)
    return ClusterEntry(
        cluster_id=origin.cluster_id,
        label=origin.title or _shorten(origin.text, 90) or origin.cluster_id,
        watchlist=watchlist_hits(watchlist, [r.text for r in rows]),
        origin_outlet=origin.outlet,
        origin_at=origin.first_seen_at,
        first_seen_at=origin.first_seen_at,
        last_seen_at=max(r.first_seen_at for r in rows),
        outlets=tuple(outlets),
        article_count=len(rows),
        outlet_count=len(outlets),
        new_today=sum(1 for r in rows if r.first_seen_at >= start),
        hours_to_spread=hours,
        syndicated=wire * 2 > len(members),
        members=tuple(members),
        merged_from=tuple(merged_from),
    )


def build_daily_report(
    day: date,
    generated_at: datetime,
    start: datetime,
    rows: Sequence[MemberRow],
    merges: Mapping[str, Sequence[str]],
    stats: tuple[int, int, int],
    feeds: Sequence[tuple[str, str, str, str | None, int]],
    watchlist: Sequence[WatchNarrative] = (),
) -> DailyReport:
    by_cluster: dict[str, list[MemberRow]] = {}
    for row in rows:
        by_cluster.setdefault(row.cluster_id, []).append(row)
    clusters = [
        build_cluster(members, start, watchlist, merges.get(cluster_id, ()))
        for cluster_id, members in by_cluster.items()
    ]
    clusters.sort(key=lambda c: (-c.outlet_count, -c.article_count, c.first_seen_at, c.cluster_id))
    return DailyReport(
        day=day,
        generated_at=generated_at,
        clusters=tuple(clusters),
        articles_seen=stats[0],
        outlets_active=stats[1],
        failures=stats[2],
        feed_health=tuple(
            FeedHealth(outlet=o, feed_url=u, last_status=s, last_error=e, consecutive_failures=n)
            for o, u, s, e, n in feeds
        ),
    )
