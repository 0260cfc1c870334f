"""What a daily cluster report says, as plain data. Built from store rows by
`report.build`, rendered by `report.render`; no I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True)
class MemberEntry:
    """One article of a cluster, in the order narratrace first saw them."""

    article_id: int
    outlet: str
    title: str
    url: str
    published_at: datetime | None
    first_seen_at: datetime
    similarity: float | None  # Jaccard with the article it matched; None for the cluster's origin
    match_kind: (
        str | None
    )  # "copy" (whole text) or "passage" (a shared passage); None for the origin
    matched_passage: str | None  # the shared passage, shortened, when match_kind == "passage"
    changes: tuple[str, ...] = ()  # what this version changed against the origin, human readable
    wire_credit: bool = False  # the text carries a wire-agency credit line


@dataclass(frozen=True)
class ClusterEntry:
    cluster_id: str
    label: str  # a representative headline
    watchlist: tuple[str, ...]  # names of watchlist narratives whose phrases the cluster matches
    origin_outlet: str
    origin_at: datetime  # first_seen_at of the earliest member
    first_seen_at: datetime
    last_seen_at: datetime
    outlets: tuple[str, ...]  # outlets reached, in order of first appearance
    article_count: int
    outlet_count: int
    new_today: int  # members first seen on the report's day
    hours_to_spread: float | None  # hours from the origin to the second outlet; None if one outlet
    syndicated: bool  # most members carry a wire credit line
    members: tuple[MemberEntry, ...]
    merged_from: tuple[str, ...] = ()  # cluster ids merged into this one


@dataclass(frozen=True)
class FeedHealth:
    outlet: str
    feed_url: str
    last_status: str  # "ok", "not-modified", "error"
    last_error: str | None
    consecutive_failures: int


@dataclass(frozen=True)
class DailyReport:
    day: date
    generated_at: datetime
    clusters: tuple[
        ClusterEntry, ...
    ]  # multi-outlet clusters active on `day`, largest spread first
    articles_seen: int  # articles first seen on `day`
    outlets_active: int  # outlets with an article first seen on `day`
    failures: int  # failed fetches on `day`
    feed_health: tuple[FeedHealth, ...] = field(default_factory=tuple)  # feeds not healthy
