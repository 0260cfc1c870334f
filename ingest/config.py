"""Outlet configuration: which outlets to poll, how politely, and on what schedule.

The outlets file is TOML::

    allow_private_hosts = false          # may fetching reach loopback/private addresses?

    [fetch]                              # optional; defaults below
    timeout_seconds = 20
    per_host_concurrency = 2
    max_attempts_per_article = 3

    [schedule]                           # optional
    feeds_interval_minutes = 15          # `narratrace serve` runs a cycle this often
    min_interval_minutes = 15            # bounds of each feed's own poll interval
    max_interval_minutes = 240
    cycle_budget_seconds = 600
    report_cron = "0 6 * * *"

    [[outlets]]
    name = "The Hindu"
    feeds = ["https://www.thehindu.com/news/national/feeder/default.rss"]
    country = "IN"                       # optional
    kind = "news-portal"                 # optional
    homepage = "https://www.thehindu.com"   # optional

Settings are read once into frozen objects and passed down; nothing else reads the file.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_USER_AGENT = (
    "narratrace/0.1 (+https://github.com/narratrace/narratrace; narrative monitoring)"
)


class ConfigError(ValueError):
    """The outlets file cannot be used; the message says what to change."""


@dataclass(frozen=True)
class FetchSettings:
    user_agent: str = DEFAULT_USER_AGENT
    timeout_seconds: float = 20.0
    max_bytes: int = 5_000_000
    max_redirects: int = 5
    per_host_concurrency: int = 2
    total_concurrency: int = 16
    transient_retries: int = 1  # extra attempts for timeouts, 429 and 5xx within one cycle
    max_attempts_per_article: int = 3  # cycles that may try an article's page before giving up
    retry_delay_minutes: float = 5.0  # first wait before a failed page is tried again (doubles)
    feed_backoff_minutes: float = 15.0  # first wait after a feed fails (doubles per failure)
    max_backoff_minutes: float = 360.0  # cap on those waits and on a Retry-After honoured
    max_pages_per_feed: int = 300  # pages fetched per feed and cycle; the rest wait their turn
    allow_private_hosts: bool = False


@dataclass(frozen=True)
class ScheduleSettings:
    feeds_interval_minutes: float = 15.0  # how often `serve` runs a cycle
    report_cron: str = "0 6 * * *"
    min_interval_minutes: float = 15.0  # each feed is polled at most this often ...
    max_interval_minutes: float = 240.0  # ... and at least this often, by its publishing rate
    cycle_budget_seconds: float = 600.0  # no fetch starts after this; the rest waits


@dataclass(frozen=True)
class Outlet:
    outlet_id: str  # a slug derived from the name unless given
    name: str
    feeds: tuple[str, ...]
    country: str = ""
    kind: str = ""
    homepage: str = ""


@dataclass(frozen=True)
class OutletsConfig:
    outlets: tuple[Outlet, ...]
    fetch: FetchSettings = field(default_factory=FetchSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    source: str = ""  # where this config was read from

    def outlet_for_feed(self) -> dict[str, Outlet]:
        return {feed: outlet for outlet in self.outlets for feed in outlet.feeds}


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "outlet"


def _check_url(url: Any, where: str) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{where}: feed URL must be a non-empty string, got {url!r}")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: feed URL {url!r} must be an absolute http(s) URL")
    return url.strip()


def _typed(table: dict[str, Any], key: str, kind: type, where: str, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"{where}: '{key}' must be a {kind.__name__}, got {value!r}")
    return value


def parse_outlets(data: dict[str, Any], source: str = "<config>") -> OutletsConfig:
    allow_private = _typed(data, "allow_private_hosts", bool, source, False)
    fetch_table = data.get("fetch", {})
    if not isinstance(fetch_table, dict):
        raise ConfigError(f"{source}: [fetch] must be a table")
    defaults = FetchSettings()
    fetch = FetchSettings(
        user_agent=_typed(fetch_table, "user_agent", str, f"{source} [fetch]", defaults.user_agent),
        timeout_seconds=_typed(
            fetch_table, "timeout_seconds", float, f"{source} [fetch]", defaults.timeout_seconds
        ),
        max_bytes=_typed(fetch_table, "max_bytes", int, f"{source} [fetch]", defaults.max_bytes),
        max_redirects=_typed(
            fetch_table, "max_redirects", int, f"{source} [fetch]", defaults.max_redirects
        ),
        per_host_concurrency=_typed(
            fetch_table,
            "per_host_concurrency",
            int,
            f"{source} [fetch]",
            defaults.per_host_concurrency,
        ),
        total_concurrency=_typed(
            fetch_table, "total_concurrency", int, f"{source} [fetch]", defaults.total_concurrency
        ),
        transient_retries=_typed(
            fetch_table, "transient_retries", int, f"{source} [fetch]", defaults.transient_retries
        ),
        max_attempts_per_article=_typed(
            fetch_table,
            "max_attempts_per_article",
            int,
            f"{source} [fetch]",
            defaults.max_attempts_per_article,
        ),
        retry_delay_minutes=_typed(
            fetch_table,
            "retry_delay_minutes",
            float,
            f"{source} [fetch]",
            defaults.retry_delay_minutes,
        ),
        feed_backoff_minutes=_typed(
            fetch_table,
            "feed_backoff_minutes",
            float,
            f"{source} [fetch]",
            defaults.feed_backoff_minutes,
        ),
        max_backoff_minutes=_typed(
            fetch_table,
            "max_backoff_minutes",
            float,
            f"{source} [fetch]",
            defaults.max_backoff_minutes,
        ),
        max_pages_per_feed=_typed(
            fetch_table, "max_pages_per_feed", int, f"{source} [fetch]", defaults.max_pages_per_feed
        ),
        allow_private_hosts=allow_private,
    )
    if fetch.timeout_seconds <= 0 or fetch.max_bytes <= 0:
        raise ConfigError(f"{source} [fetch]: timeout_seconds and max_bytes must be positive")
    if fetch.per_host_concurrency < 1 or fetch.total_concurrency < 1:
        raise ConfigError(f"{source} [fetch]: concurrency limits must be at least 1")
    if fetch.transient_retries < 0:
        raise ConfigError(f"{source} [fetch]: transient_retries must be 0 or more")
    if fetch.max_attempts_per_article < 1 or fetch.max_pages_per_feed < 1:
        raise ConfigError(
            f"{source} [fetch]: max_attempts_per_article and max_pages_per_feed must be at least 1"
        )
    if min(fetch.retry_delay_minutes, fetch.feed_backoff_minutes) <= 0:
        raise ConfigError(
            f"{source} [fetch]: retry_delay_minutes and feed_backoff_minutes must be positive"
        )
    if fetch.max_backoff_minutes < max(fetch.retry_delay_minutes, fetch.feed_backoff_minutes):
        raise ConfigError(
            f"{source} [fetch]: max_backoff_minutes must be at least retry_delay_minutes and "
            "feed_backoff_minutes"
        )

    schedule_table = data.get("schedule", {})
    if not isinstance(schedule_table, dict):
        raise ConfigError(f"{source}: [schedule] must be a table")
    plan = ScheduleSettings()
    where = f"{source} [schedule]"
    schedule = ScheduleSettings(
        feeds_interval_minutes=_typed(
            schedule_table, "feeds_interval_minutes", float, where, plan.feeds_interval_minutes
        ),
        report_cron=_typed(schedule_table, "report_cron", str, where, plan.report_cron),
        min_interval_minutes=_typed(
            schedule_table, "min_interval_minutes", float, where, plan.min_interval_minutes
        ),
        max_interval_minutes=_typed(
            schedule_table, "max_interval_minutes", float, where, plan.max_interval_minutes
        ),
        cycle_budget_seconds=_typed(
            schedule_table, "cycle_budget_seconds", float, where, plan.cycle_budget_seconds
        ),
    )
    if schedule.feeds_interval_minutes <= 0:
        raise ConfigError(f"{where}: feeds_interval_minutes must be positive")
    if not 0 < schedule.min_interval_minutes <= schedule.max_interval_minutes:
        raise ConfigError(
            f"{where}: min_interval_minutes must be positive and at most max_interval_minutes"
        )
    if schedule.cycle_budget_seconds <= 0:
        raise ConfigError(f"{where}: cycle_budget_seconds must be positive")

    raw_outlets = data.get("outlets")
    if not isinstance(raw_outlets, list) or not raw_outlets:
        raise ConfigError(f"{source}: needs at least one [[outlets]] table with name and feeds")
    outlets: list[Outlet] = []
    seen_ids: set[str] = set()
    seen_feeds: dict[str, str] = {}
    for index, table in enumerate(raw_outlets, start=1):
        where = f"{source} outlet #{index}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: must be a table")
        name = table.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}: 'name' is required")
        where = f"{source} outlet {name!r}"
        feeds = table.get("feeds")
        if isinstance(feeds, str):
            feeds = [feeds]
        if not isinstance(feeds, list) or not feeds:
            raise ConfigError(f"{where}: 'feeds' must be a list of feed URLs")
        checked = tuple(_check_url(url, where) for url in feeds)
        for url in checked:
            if url in seen_feeds:
                raise ConfigError(f"{where}: feed {url} is already listed by {seen_feeds[url]!r}")
            seen_feeds[url] = name
        outlet_id = table.get("slug") or slugify(name)
        if not isinstance(outlet_id, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", outlet_id):
            raise ConfigError(f"{where}: 'slug' must be lowercase letters, digits and dashes")
        if outlet_id in seen_ids:
            raise ConfigError(
                f"{where}: outlet id {outlet_id!r} is used twice; set a unique 'slug'"
            )
        seen_ids.add(outlet_id)
        outlets.append(
            Outlet(
                outlet_id=outlet_id,
                name=name.strip(),
                feeds=checked,
                country=str(table.get("country", "")),
                kind=str(table.get("kind", "")),
                homepage=str(table.get("homepage", "")),
            )
        )
    return OutletsConfig(outlets=tuple(outlets), fetch=fetch, schedule=schedule, source=source)


def load_outlets(path: Path | str) -> OutletsConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"outlets file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_outlets(data, source=str(path))


def with_fetch(config: OutletsConfig, **changes: Any) -> OutletsConfig:
    """A copy of `config` with some fetch settings changed (CLI flags override the file)."""
    return replace(config, fetch=replace(config.fetch, **changes))
