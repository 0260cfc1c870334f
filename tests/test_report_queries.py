"""The report's queries on a real DuckDB store: what a day's report knows is what was known by
the day's end, so a past day's report does not change when later cycles (or re-runs) add rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from flows.reporting import daily_report
from report.states import day_bounds
from store import queries
from store.db import Store

D1 = date(2025, 4, 23)
D2 = date(2025, 4, 24)
FIXED = datetime(2030, 1, 1, tzinfo=UTC)
TEXT = (
    "Officials said on Monday that 4,500 soldiers had resigned from service after the attack.\n\n"
    "A letter said to come from a corps commander was shared widely on social media."
)


def at(day: date, hour: float) -> datetime:
    return day_bounds(day)[0] + timedelta(hours=hour)


class Builder:
    """Writes the published tables' rows the way the pipeline does, with explicit times."""

    def __init__(self, store: Store):
        self.store = store
        for outlet, country, kind in [
            ("alpha", "IN", "news-portal"),
            ("beta", "PK", "blog"),
            ("gamma", "IN", "tabloid"),
            ("delta", "INT", "agency"),
        ]:
            store.sql(
                "INSERT INTO outlets (outlet_id, name, country, kind) VALUES (?, ?, ?, ?)",
                [outlet, outlet.title(), country, kind],
            )
            store.sql(
                "INSERT INTO feeds (feed_url, outlet_id) VALUES (?, ?)", [self.feed(outlet), outlet]
            )

    @staticmethod
    def feed(outlet: str) -> str:
        return f"https://{outlet}.example/rss"

    def run(self, as_of: datetime, run_id: str, status: str = "completed") -> None:
        self.store.sql(
            "INSERT INTO runs (run_id, started_at, as_of, status) VALUES (?, ?, ?, ?)",
            [run_id, FIXED, as_of, status],
        )

    def poll(self, outlet: str, when: datetime, outcome: str, run_id: str, error: str = "") -> None:
        self.store.sql(
            "INSERT INTO fetch_log (run_id, fetched_at, kind, url, outlet_id, outcome, error) "
            "VALUES (?, ?, 'feed', ?, ?, ?, ?)",
            [run_id, when, self.feed(outlet), outlet, outcome, error or None],
        )

    def article(
        self,
        article_id: int,
        outlet: str,
        seen: datetime,
        cluster: str,
        matched: int | None = None,
        published: datetime | None = None,
        title: str = "Army hit by resignations",
    ) -> None:
        self.store.sql(
            "INSERT INTO articles (article_id, canonical_url, url, outlet_id, feed_url, title, "
            "published_at, first_seen_at, text, text_source, content_hash, word_count, run_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'page', 'h', 30, 'r')",
            [
                article_id,
                f"https://{outlet}.example/{article_id}",
                f"https://{outlet}.example/{article_id}",
                outlet,
                self.feed(outlet),
                title,
                published,
                seen,
                TEXT,
            ],
        )
        if matched is None:
            self.store.sql(
                "INSERT INTO clusters (cluster_id, founder_article_id, created_at, status, run_id) "
                "VALUES (?, ?, ?, 'active', 'r')",
                [cluster, article_id, seen],
            )
        self.store.sql(
            "INSERT INTO cluster_members (article_id, cluster_id, matched_article_id, match_kind, "
            "similarity, joined_at, run_id) VALUES (?, ?, ?, ?, ?, ?, 'r')",
            [
                article_id,
                cluster,
                matched,
                None if matched is None else "copy",
                None if matched is None else 0.9,
                seen,
            ],
        )

    def merge(self, absorbed: str, survivor: str, via: int, when: datetime) -> None:
        """What the detection stage writes when an article joins two clusters."""
        self.store.sql(
            "UPDATE cluster_members SET cluster_id = ? WHERE cluster_id = ?", [survivor, absorbed]
        )
        self.store.sql(
            "UPDATE clusters SET status = 'merged', merged_into = ? WHERE cluster_id = ?",
            [survivor, absorbed],
        )
        self.store.sql(
            "INSERT INTO cluster_merges VALUES (?, ?, ?, ?, 'r')", [absorbed, survivor, via, when]
        )


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "nt.duckdb") as store:
        yield store


def first_day(b: Builder) -> None:
    """Day 1: two cycles; narratives X (alpha, beta) and Y (gamma, delta); gamma's feed
    fails twice; delta's answers are salvaged."""
    for number, hour in enumerate((8, 16)):
        when = at(D1, hour)
        b.run(when, f"run-{number}")
        b.poll("alpha", when, "ok", f"run-{number}")
        b.poll("beta", when, "not-modified", f"run-{number}")
        b.poll("gamma", when, "error", f"run-{number}", "HTTP 500")
        b.poll("delta", when, "salvaged", f"run-{number}", "malformed feed")
    b.article(1, "alpha", at(D1, 8), "X", published=at(D1, 6))
    b.article(2, "beta", at(D1, 16), "X", matched=1, published=at(D1, 9))
    b.article(3, "gamma", at(D1, 8), "Y")
    b.article(4, "delta", at(D1, 16), "Y", matched=3)


def later_days(b: Builder) -> None:
    """Day 2: the first day's 16:00 cycle is re-run (its polls logged again at the same time,
    alpha now answering 304), gamma keeps failing, an article joins X and a merge folds Y into
    X; a cycle fails."""
    b.run(at(D1, 16), "rerun")
    for outlet, outcome, error in [
        ("alpha", "not-modified", ""),
        ("beta", "not-modified", ""),
        ("gamma", "error", "HTTP 500"),
        ("delta", "salvaged", "malformed feed"),
    ]:
        b.poll(outlet, at(D1, 16), outcome, "rerun", error)
    for number, hour in enumerate((0, 8, 16)):
        when = at(D2, hour)
        b.run(when, f"d2-{number}", status="failed" if hour == 16 else "completed")
        b.poll("gamma", when, "error", f"d2-{number}", "HTTP 503")
        b.poll("alpha", when, "backoff", f"d2-{number}")
    b.article(5, "gamma", at(D2, 8), "X", matched=2)
    b.merge("Y", "X", via=5, when=at(D2, 8))


def test_a_past_day_is_reported_as_it_was_known_then(store):
    b = Builder(store)
    first_day(b)
    before = daily_report(store, D1, generated_at=FIXED)
    later_days(b)
    after = daily_report(store, D1, generated_at=FIXED)
    assert after == before
    assert [(n.cluster_id, n.state, n.article_count) for n in before.narratives] == [
        ("X", "new", 2),
        ("Y", "new", 2),
    ]
    assert (before.poll_times, before.poll_times_completed) == (2, 2)
    assert (before.feeds_polled, before.feeds_answered) == (4, 3)
    assert before.articles_seen == 4 and before.outlets_active == 4
    issues = {(i.outlet, i.problem): i for i in before.feed_issues}
    assert set(issues) == {("Gamma", "failing"), ("Delta", "malformed")}
    assert issues["Gamma", "failing"].detail == "2 failed polls in a row; last error: HTTP 500"
    assert issues["Gamma", "failing"].since == at(D1, 8)
    assert issues["Delta", "malformed"].since == at(D1, 8)


def test_the_next_day_sees_the_merge_the_rerun_and_the_backoff(store):
    b = Builder(store)
    first_day(b)
    later_days(b)
    report = daily_report(store, D2, generated_at=FIXED)
    (x,) = report.narratives
    assert (x.cluster_id, x.merged_from, x.article_count) == ("X", ("Y",), 5)
    assert x.outlets == ("Alpha", "Gamma", "Beta", "Delta")
    assert x.state == "steady"  # gamma's new copy: an outlet the merged narrative had reached
    assert (report.poll_times, report.poll_times_completed) == (3, 2)
    issues = {(i.outlet, i.problem): i for i in report.feed_issues}
    # the re-run's 16:00 failure is the same poll as the first: 2 + 3, not 3 + 3
    failing = issues["Gamma", "failing"]
    assert failing.detail == "5 failed polls in a row; last error: HTTP 503"
    assert failing.since == at(D1, 8)
    backed_off = issues["Alpha", "backed off"]
    assert backed_off.since == at(D2, 0) and backed_off.detail == "3 polls skipped while backed off"
    malformed = issues["Delta", "malformed"]
    assert malformed.since == at(D1, 8) and malformed.detail.startswith("2 answers in a row")


def test_window_members_undo_a_merge_made_after_the_end(store):
    b = Builder(store)
    first_day(b)
    later_days(b)
    start, end = day_bounds(D1)
    rows = queries.window_members(store, start, end)
    assert {(r.article_id, r.cluster_id) for r in rows} == {(1, "X"), (2, "X"), (3, "Y"), (4, "Y")}
    assert queries.merged_into(store, ["X"], end) == {}
    assert queries.merged_into(store, ["X"], day_bounds(D2)[1]) == {"X": ["Y"]}


def test_day_activity_counts_each_poll_time_once(store):
    b = Builder(store)
    first_day(b)
    later_days(b)
    start, end = day_bounds(D1)
    activity = queries.day_activity(store, start, end)
    assert (activity.poll_times, activity.poll_times_completed) == (2, 2)
    assert (activity.feeds_polled, activity.feeds_answered) == (4, 3)
    assert queries.articles_per_day(store, start, day_bounds(D2)[1]) == {D1: 4, D2: 1}


def test_queries_only_read(store):
    b = Builder(store)
    first_day(b)
    statements: list[str] = []

    class Recording:
        def sql(self, query, params=None):
            statements.append(query)
            return store.sql(query, params)

    daily_report(Recording(), D1, generated_at=FIXED)
    assert statements
    for query in statements:
        words = query.upper().split()
        assert words[0] in ("SELECT", "WITH"), query
        for forbidden in ("INSERT", "UPDATE", "DELETE", "CREATE", "TEMP", "SIGNATURES",
                          "LSH_BANDS", "OUTLET_PARAGRAPHS"):  # fmt: skip
            assert forbidden not in words, (forbidden, query)
