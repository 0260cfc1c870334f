"""Outlet configuration: which outlets to poll, how politely, and on what schedule.

The outlets file is TOML::

    allow_private_hosts = false          # may fetching reach loopback/private addresses?

    [fetch]                              # optional; defaults below
    timeout_seconds = 20                 # connect and each socket read
    page_deadline_seconds = 60           # whole request, body included
    per_host_concurrency = 2
    per_host_rate = 1.0                  # requests per second to one host; 0 = no limit

    [schedule]                           # optional; used by `narratrace serve`
    feeds_interval_minutes = 15
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
from dataclasses import dataclass, field, fields, replace
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
    max_attempts_per_article: int = 3  # give up on an article URL after this many failed cycles
    allow_private_hosts: bool = False
    page_deadline_seconds: float = 60.0  # a page's whole request (redirects, retries, body)
    feed_deadline_seconds: float = 60.0  # the same for a feed
    host_budget_seconds: float = 120.0  # time a host may cost in failed requests per cycle
    per_host_rate: float = 1.0  # requests per second to one host (host and port); 0: no limit
    retry_backoff_seconds: float = 0.5  # first wait before an in-cycle retry (doubles, jitter)
    max_retry_after_wait_seconds: float = 5.0  # a longer Retry-After is not waited for in line


@dataclass(frozen=True)
class ScheduleSettings:
    feeds_interval_minutes: float = 15.0
    report_cron: str = "0 6 * * *"


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
    where = f"{source} [fetch]"
    values = {
        f.name: _typed(fetch_table, f.name, type(default), where, default)
        for f in fields(FetchSettings)
        if f.name != "allow_private_hosts" and (default := getattr(defaults, f.name)) is not None
    }
    fetch = FetchSettings(**values, allow_private_hosts=allow_private)
    for key in ("timeout_seconds", "page_deadline_seconds", "feed_deadline_seconds"):
        if getattr(fetch, key) <= 0:
            raise ConfigError(f"{where}: {key} must be positive")
    if fetch.max_bytes <= 0:
        raise ConfigError(f"{where}: max_bytes must be positive")
    if fetch.per_host_concurrency < 1 or fetch.total_concurrency < 1:
        raise ConfigError(f"{where}: concurrency limits must be at least 1")
    for key in (
        "max_redirects",
        "transient_retries",
        "host_budget_seconds",
        "per_host_rate",
        "retry_backoff_seconds",
        "max_retry_after_wait_seconds",
    ):
        if getattr(fetch, key) < 0:
            raise ConfigError(f"{where}: {key} must not be negative")
    if fetch.max_attempts_per_article < 1:
        raise ConfigError(f"{where}: max_attempts_per_article must be at least 1")

    schedule_table = data.get("schedule", {})
    if not isinstance(schedule_table, dict):
        raise ConfigError(f"{source}: [schedule] must be a table")
    schedule = ScheduleSettings(
        feeds_interval_minutes=_typed(
            schedule_table, "feeds_interval_minutes", float, f"{source} [schedule]", 15.0
        ),
        report_cron=_typed(schedule_table, "report_cron", str, f"{source} [schedule]", "0 6 * * *"),
    )
    if schedule.feeds_interval_minutes <= 0:
        raise ConfigError(f"{source} [schedule]: feeds_interval_minutes must be positive")

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
