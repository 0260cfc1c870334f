"""Narratives built from constructed store rows, for the report tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from report.build import build_daily_report, build_narratives
from report.model import DailyReport, FeedIssue
from store.queries import DayActivity, MemberRow

DAY = date(2024, 5, 7)
T0 = datetime(2024, 5, 7, 6, 0, tzinfo=UTC)
BODY = (
    "Officials in Islamabad said on Monday that 4,500 soldiers had resigned from service.\n\n"
    "A letter said to come from a corps commander was shared widely on social media.\n\n"
    "The army's press wing called the letter fake and said no resignations were accepted."
)

WIRE_TEXT = "A storm hit the coast. (Reuters)\n\nMore rain."


def row(
    cluster: str,
    article_id: int,
    outlet: str,
    *,
    seen: datetime,
    published: datetime | None = None,
    title: str = "Army hit by resignations",
    url: str | None = None,
    text: str = BODY,
    matched: int | None = None,
    kind: str | None = None,
    similarity: float | None = None,
    passage: str | None = None,
    country: str | None = "IN",
    outlet_kind: str | None = "news-portal",
) -> MemberRow:
    slug = outlet.lower().replace(" ", "-")
    return MemberRow(
        cluster_id=cluster,
        article_id=article_id,
        outlet_id=slug,
        outlet=outlet,
        country=country,
        kind=outlet_kind,
        title=title,
        url=url if url is not None else f"https://{slug}.example/a/{article_id}",
        published_at=published,
        first_seen_at=seen,
        matched_article_id=matched,
        match_kind=kind,
        similarity=similarity,
        matched_passage=passage,
        text=text,
    )


def spreading_rows() -> list[MemberRow]:
    """Narrative A: started the day before with two outlets, a third outlet today (growing),
    one copy changes a number and a place. Narrative B: founded today on two outlets (new)."""
    day_before = T0 - timedelta(days=1)
    edited = BODY.replace("4,500", "5,000").replace("Islamabad", "Rawalpindi")
    return [
        row("A", 1, "Daily Herald", seen=day_before, published=day_before - timedelta(hours=3)),
        row("A", 2, "Morning Post", seen=day_before + timedelta(hours=8),
            published=day_before + timedelta(hours=1), matched=1, kind="copy", similarity=0.91),
        row("A", 3, "Evening Star", seen=T0 + timedelta(hours=2), matched=2, kind="copy",
            similarity=0.74, text=edited, title="Army hit by resignations | exclusive",
            country="PK", outlet_kind="blog"),
        row("B", 11, "Wire Desk", seen=T0, published=T0 - timedelta(hours=1),
            title="Storm hits coast", text=WIRE_TEXT),
        row("B", 12, "Coastal Times", seen=T0 + timedelta(hours=8),
            published=T0 + timedelta(hours=9), title="Storm hits coast", text=WIRE_TEXT,
            matched=11, kind="passage", similarity=0.42, passage="A storm hit the coast."),
    ]  # fmt: skip


ACTIVITY = DayActivity(
    poll_times=3,
    poll_times_completed=3,
    feeds_polled=18,
    feeds_answered=17,
    articles_seen=143,
    outlets_active=17,
    article_failures=2,
)


def sample_report(
    rows: list[MemberRow] | None = None, issues: tuple[FeedIssue, ...] = ()
) -> DailyReport:
    narratives = build_narratives(spreading_rows() if rows is None else rows, DAY, 7, 7)
    return build_daily_report(
        DAY,
        datetime(2024, 5, 8, 5, 30, tzinfo=UTC),
        narratives,
        ACTIVITY,
        {DAY - timedelta(days=1): 40, DAY: 143},
        issues,
    )
