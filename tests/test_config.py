"""Reading the outlets file into frozen settings, and the errors a bad file gives."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from ingest.config import (
    DEFAULT_USER_AGENT,
    ConfigError,
    FetchSettings,
    Outlet,
    OutletsConfig,
    ScheduleSettings,
    load_outlets,
    parse_outlets,
    slugify,
    with_fetch,
)

REPO = Path(__file__).resolve().parent.parent

VALID = """\
allow_private_hosts = true

[fetch]
timeout_seconds = 7
per_host_concurrency = 3
total_concurrency = 9
user_agent = "tester/1.0"
max_bytes = 123456
max_redirects = 2
transient_retries = 0
max_attempts_per_article = 5
page_deadline_seconds = 30
feed_deadline_seconds = 45.5
host_budget_seconds = 90
per_host_rate = 0.5
retry_backoff_seconds = 0.25
max_retry_after_wait_seconds = 2

[schedule]
feeds_interval_minutes = 30
report_cron = "30 5 * * *"

[[outlets]]
name = "The Daily  Example!"
feeds = [
  "https://daily.example.com/rss.xml",
  "http://daily.example.com/world/rss.xml",
]
country = "IN"
kind = "news-portal"
homepage = "https://daily.example.com"

[[outlets]]
name = "Frontier Post"
slug = "frontier"
feeds = "https://frontier.example.org/feed/"
"""

MINIMAL = """\
[[outlets]]
name = "Only One"
feeds = ["https://one.example/feed"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "outlets.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_file_parses_into_frozen_settings(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    config = load_outlets(path)

    assert isinstance(config, OutletsConfig)
    assert config.source == str(path)
    daily, frontier = config.outlets
    assert daily == Outlet(
        outlet_id="the-daily-example",
        name="The Daily  Example!",
        feeds=("https://daily.example.com/rss.xml", "http://daily.example.com/world/rss.xml"),
        country="IN",
        kind="news-portal",
        homepage="https://daily.example.com",
    )
    # an explicit slug wins; a single feed string becomes a one-element tuple
    assert frontier.outlet_id == "frontier"
    assert frontier.feeds == ("https://frontier.example.org/feed/",)
    assert frontier.country == "" and frontier.kind == "" and frontier.homepage == ""

    assert config.fetch == FetchSettings(
        user_agent="tester/1.0",
        timeout_seconds=7.0,
        max_bytes=123456,
        max_redirects=2,
        per_host_concurrency=3,
        total_concurrency=9,
        transient_retries=0,
        max_attempts_per_article=5,
        allow_private_hosts=True,
        page_deadline_seconds=30.0,
        feed_deadline_seconds=45.5,
        host_budget_seconds=90.0,
        per_host_rate=0.5,
        retry_backoff_seconds=0.25,
        max_retry_after_wait_seconds=2.0,
    )
    assert isinstance(config.fetch.timeout_seconds, float)
    assert config.schedule == ScheduleSettings(
        feeds_interval_minutes=30.0, report_cron="30 5 * * *"
    )

    assert config.outlet_for_feed() == {
        "https://daily.example.com/rss.xml": daily,
        "http://daily.example.com/world/rss.xml": daily,
        "https://frontier.example.org/feed/": frontier,
    }
    for frozen in (config, config.fetch, config.schedule, daily):
        with pytest.raises(dataclasses.FrozenInstanceError):
            frozen.source = "changed"  # type: ignore[misc]


def test_defaults_when_tables_are_absent(tmp_path: Path) -> None:
    config = load_outlets(write(tmp_path, MINIMAL))
    assert config.fetch == FetchSettings()
    assert config.fetch.allow_private_hosts is False
    assert config.fetch.user_agent == DEFAULT_USER_AGENT
    assert config.schedule == ScheduleSettings()
    assert [o.outlet_id for o in config.outlets] == ["only-one"]


def test_allow_private_hosts_false_when_set_false(tmp_path: Path) -> None:
    config = load_outlets(write(tmp_path, "allow_private_hosts = false\n" + MINIMAL))
    assert config.fetch.allow_private_hosts is False


def test_with_fetch_overrides_only_the_named_settings(tmp_path: Path) -> None:
    config = load_outlets(write(tmp_path, VALID))
    changed = with_fetch(config, timeout_seconds=1.5, allow_private_hosts=False)
    assert changed.fetch.timeout_seconds == 1.5
    assert changed.fetch.allow_private_hosts is False
    assert changed.fetch.user_agent == "tester/1.0"
    assert changed.outlets == config.outlets
    assert config.fetch.timeout_seconds == 7.0  # the original is untouched


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("The Hindu", "the-hindu"),
        ("  Dawn (Pakistan) ", "dawn-pakistan"),
        ("ANI -- News", "ani-news"),
        ("!!!", "outlet"),
    ],
)
def test_slugify(name: str, slug: str) -> None:
    assert slugify(name) == slug


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="outlets file not found") as info:
        load_outlets(missing)
    assert str(missing) in str(info.value)


def test_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_outlets(write(tmp_path, "[[outlets]\nname = 'x'\n"))


OUTLET_A = '[[outlets]]\nname = "Alpha"\nfeeds = ["https://a.example/feed"]\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("allow_private_hosts = false\n", r"at least one \[\[outlets\]\]", id="none"),
        pytest.param("outlets = []\n", r"at least one \[\[outlets\]\]", id="empty-list"),
        pytest.param(
            '[[outlets]]\nfeeds = ["https://a.example/feed"]\n',
            r"outlet #1: 'name' is required",
            id="no-name",
        ),
        pytest.param(
            OUTLET_A + '[[outlets]]\nname = "  "\nfeeds = ["https://b.example/feed"]\n',
            r"outlet #2: 'name' is required",
            id="blank-name",
        ),
        pytest.param(
            '[[outlets]]\nname = "Alpha"\n',
            r"outlet 'Alpha': 'feeds' must be a list of feed URLs",
            id="feeds-missing",
        ),
        pytest.param(
            '[[outlets]]\nname = "Alpha"\nfeeds = 3\n',
            r"outlet 'Alpha': 'feeds' must be a list of feed URLs",
            id="feeds-not-a-list",
        ),
        pytest.param(
            '[[outlets]]\nname = "Alpha"\nfeeds = []\n',
            r"outlet 'Alpha': 'feeds' must be a list of feed URLs",
            id="feeds-empty",
        ),
        pytest.param(
            '[[outlets]]\nname = "Alpha"\nfeeds = ["ftp://a.example/feed"]\n',
            r"outlet 'Alpha': feed URL 'ftp://a.example/feed' must be an absolute http\(s\) URL",
            id="ftp-feed",
        ),
        pytest.param(
            '[[outlets]]\nname = "Alpha"\nfeeds = ["/relative/feed.xml"]\n',
            r"must be an absolute http\(s\) URL",
            id="relative-feed",
        ),
        pytest.param(
            '[[outlets]]\nname = "Alpha"\nfeeds = [""]\n',
            r"feed URL must be a non-empty string",
            id="empty-feed",
        ),
        pytest.param(
            '[[outlets]]\nname = "Alpha"\nfeeds = [42]\n',
            r"feed URL must be a non-empty string, got 42",
            id="number-feed",
        ),
        pytest.param(
            OUTLET_A + '[[outlets]]\nname = "Beta"\nfeeds = ["https://a.example/feed"]\n',
            r"outlet 'Beta': feed https://a\.example/feed is already listed by 'Alpha'",
            id="duplicate-feed",
        ),
        pytest.param(
            OUTLET_A + '[[outlets]]\nname = "ALPHA"\nfeeds = ["https://b.example/feed"]\n',
            r"outlet 'ALPHA': outlet id 'alpha' is used twice; set a unique 'slug'",
            id="duplicate-slug",
        ),
        pytest.param(
            '[[outlets]]\nname = "Alpha"\nslug = "Not A Slug"\nfeeds = ["https://a.example/f"]\n',
            r"'slug' must be lowercase letters, digits and dashes",
            id="bad-slug",
        ),
        pytest.param(
            '[fetch]\ntimeout_seconds = "x"\n' + OUTLET_A,
            r"\[fetch\]: 'timeout_seconds' must be a float, got 'x'",
            id="timeout-string",
        ),
        pytest.param(
            "[fetch]\nmax_bytes = 1.5\n" + OUTLET_A,
            r"\[fetch\]: 'max_bytes' must be a int, got 1\.5",
            id="max-bytes-float",
        ),
        pytest.param(
            "[fetch]\nper_host_concurrency = true\n" + OUTLET_A,
            r"\[fetch\]: 'per_host_concurrency' must be a int, got True",
            id="concurrency-bool",
        ),
        pytest.param(
            'allow_private_hosts = "yes"\n' + OUTLET_A,
            r"'allow_private_hosts' must be a bool, got 'yes'",
            id="allow-private-string",
        ),
        pytest.param(
            "[fetch]\ntimeout_seconds = 0\n" + OUTLET_A,
            r"\[fetch\]: timeout_seconds must be positive",
            id="timeout-zero",
        ),
        pytest.param(
            "[fetch]\ntimeout_seconds = -2.5\n" + OUTLET_A,
            r"timeout_seconds must be positive",
            id="timeout-negative",
        ),
        pytest.param(
            "[fetch]\nmax_bytes = 0\n" + OUTLET_A,
            r"max_bytes must be positive",
            id="max-bytes-zero",
        ),
        pytest.param(
            "[fetch]\npage_deadline_seconds = 0\n" + OUTLET_A,
            r"\[fetch\]: page_deadline_seconds must be positive",
            id="page-deadline-zero",
        ),
        pytest.param(
            "[fetch]\nfeed_deadline_seconds = -1\n" + OUTLET_A,
            r"\[fetch\]: feed_deadline_seconds must be positive",
            id="feed-deadline-negative",
        ),
        pytest.param(
            "[fetch]\nper_host_rate = -0.5\n" + OUTLET_A,
            r"\[fetch\]: per_host_rate must not be negative",
            id="rate-negative",
        ),
        pytest.param(
            "[fetch]\nhost_budget_seconds = -1\n" + OUTLET_A,
            r"\[fetch\]: host_budget_seconds must not be negative",
            id="budget-negative",
        ),
        pytest.param(
            "[fetch]\nmax_retry_after_wait_seconds = -3\n" + OUTLET_A,
            r"max_retry_after_wait_seconds must not be negative",
            id="retry-after-wait-negative",
        ),
        pytest.param(
            "[fetch]\nretry_backoff_seconds = -3\n" + OUTLET_A,
            r"retry_backoff_seconds must not be negative",
            id="backoff-negative",
        ),
        pytest.param(
            "[fetch]\ntransient_retries = -1\n" + OUTLET_A,
            r"transient_retries must not be negative",
            id="retries-negative",
        ),
        pytest.param(
            '[fetch]\nper_host_rate = "fast"\n' + OUTLET_A,
            r"'per_host_rate' must be a float, got 'fast'",
            id="rate-string",
        ),
        pytest.param(
            "[fetch]\nper_host_concurrency = 0\n" + OUTLET_A,
            r"concurrency limits must be at least 1",
            id="concurrency-zero",
        ),
        pytest.param(
            'fetch = "fast"\n' + OUTLET_A,
            r"\[fetch\] must be a table",
            id="fetch-not-table",
        ),
        pytest.param(
            "[schedule]\nfeeds_interval_minutes = 0\n" + OUTLET_A,
            r"\[schedule\]: feeds_interval_minutes must be positive",
            id="interval-zero",
        ),
        pytest.param(
            "[schedule]\nreport_cron = 6\n" + OUTLET_A,
            r"\[schedule\]: 'report_cron' must be a str, got 6",
            id="cron-number",
        ),
    ],
)
def test_config_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as info:
        load_outlets(path)
    assert str(path) in str(info.value)  # every message says which file is wrong
    assert isinstance(info.value, ValueError)


def test_parse_outlets_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^inline: needs at least one"):
        parse_outlets({}, source="inline")


def test_repository_seed_outlets_load() -> None:
    config = load_outlets(REPO / "seeds" / "outlets.toml")
    assert len(config.outlets) >= 20
    assert config.fetch.allow_private_hosts is False
    for outlet in config.outlets:
        assert outlet.feeds, outlet.name
        assert any(urlsplit(feed).scheme == "https" for feed in outlet.feeds), outlet.name
    ids = [outlet.outlet_id for outlet in config.outlets]
    assert len(set(ids)) == len(ids)
