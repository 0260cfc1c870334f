"""Outlet configuration: which outlets to poll, how politely, and on what schedule.

The outlets file is TOML::

    allow_private_hosts = false          # may fetching reach loopback/private addresses?

    [fetch]                              # optional; defaults below
    timeout_seconds = 20
    per_host_concurrency = 2

    [schedule]                           # optional; used by `narratrace serve`
    feeds_interval_minutes = 15
    report_cron = "0 6 * * *"

    [cluster]                            # optional; default: the local process pool
    scheduler = "tcp://10.0.0.5:8786"    # a Dask scheduler whose workers fetch and extract

    [[outlets]]
    name = "The Hindu"
    feeds = ["https://www.thehindu.com/news/national/feeder/default.rss"]
    country = "IN"                       # optional
    kind = "news-portal"                 # optional
    homepage = "https://www.thehindu.com"   # optional
    category = "News / India"            # optional; folders of an OPML import

The tables are pydantic models (`FetchSettings`, `ScheduleSettings`, `Outlet`): a key is one
annotated line there, and its type and range are checked when the file is read. Unknown keys,
wrong types, values out of range and bad crons stop loading with one line naming the file, the
table or outlet, the key and what to write instead. Settings are read once into frozen objects
and passed down; nothing else reads the file. `outlets_json_schema()` describes the file for
editors.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, get_origin
from urllib.parse import urlsplit

from cronsim import CronSim, CronSimError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

log = logging.getLogger(__name__)

DEFAULT_USER_AGENT = (
    "narratrace/0.1 (+https://github.com/narratrace/narratrace; narrative monitoring)"
)
CATEGORY_SEPARATOR = " / "  # joins the levels of a nested category ("News / India")
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]*$"


class ConfigError(ValueError):
    """The outlets file cannot be used; the message says what to change."""


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "outlet"


def check_http_url(url: str, example: str = "https://example.org/feed.xml") -> str:
    """`url` stripped, if it is an absolute http(s) URL; ValueError otherwise."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{url!r} is not an absolute http(s) URL; write the full address, e.g. {example!r}"
        )
    return url.strip()


def check_cron(cron: str) -> str:
    """`cron` if it is a five-field cron expression (minute hour day month weekday)."""
    fields = cron.split()
    problem = None
    if len(fields) != 5:
        problem = f"has {len(fields)} fields, not 5"
    else:
        try:
            CronSim(cron, datetime(2025, 1, 1, tzinfo=UTC))
        except CronSimError as exc:  # e.g. "Bad minute"
            problem = str(exc).lower()
    if problem:
        raise ValueError(
            f"{cron!r} is not a valid cron expression ({problem}); write five fields, "
            'minute hour day month weekday, e.g. "0 6 * * *"'
        )
    return cron


def _homepage(url: str) -> str:
    return check_http_url(url, example="https://example.org") if url.strip() else ""


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # the default slug comes from the name


class _Settings(BaseModel):
    """Frozen, strictly typed settings: a TOML string is no number, 1.5 no whole number, an
    unknown key an error. A field is one annotated line (`name: type = default`, or
    `= Field(default=..., ge=...)` for a range); TOML arrays are taken for tuple fields."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _arrays_as_tuples(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        keys = set()
        for name, info in cls.model_fields.items():
            if get_origin(info.annotation) is tuple:
                keys |= {
                    name,
                    info.validation_alias if isinstance(info.validation_alias, str) else name,
                }
        return {k: tuple(v) if k in keys and isinstance(v, list) else v for k, v in data.items()}


FeedUrl = Annotated[str, AfterValidator(check_http_url)]


class FetchSettings(_Settings):
    """[fetch]: how politely and how far fetching goes."""

    # allow_private_hosts is written at the top of the file but lives here, since fetching is
    # what it limits; the other fields are the keys of [fetch].

    user_agent: str = Field(default=DEFAULT_USER_AGENT, pattern=r"^[^\x00-\x1f\x7f]+$")
    timeout_seconds: float = Field(default=20.0, gt=0, description="Seconds per request.")
    max_bytes: int = Field(default=5_000_000, gt=0, description="Larger responses are refused.")
    max_redirects: int = Field(default=5, ge=0, description="Each hop is checked like the first.")
    per_host_concurrency: int = Field(
        default=2, ge=1, description="Simultaneous requests to one host."
    )
    total_concurrency: int = Field(default=16, ge=1, description="Simultaneous requests in all.")
    transient_retries: int = Field(
        default=1, ge=0, description="Extra attempts for timeouts, 429 and 5xx within one cycle."
    )
    max_attempts_per_article: int = Field(
        default=3, ge=1, description="Cycles that may try an article's page before giving up."
    )
    retry_delay_minutes: float = Field(
        default=5.0, gt=0, description="First wait before a failed page is tried again (doubles)."
    )
    feed_backoff_minutes: float = Field(
        default=15.0, gt=0, description="First wait after a feed fails (doubles per failure)."
    )
    max_backoff_minutes: float = Field(
        default=360.0, gt=0, description="Cap on those waits and on a Retry-After honoured."
    )
    max_pages_per_feed: int = Field(
        default=300, ge=1, description="Pages fetched per feed and cycle; the rest wait their turn."
    )
    page_deadline_seconds: float = Field(
        default=60.0, gt=0, description="A page's whole request: redirects, retries, body."
    )
    feed_deadline_seconds: float = Field(default=60.0, gt=0, description="The same for a feed.")
    host_budget_seconds: float = Field(
        default=120.0, ge=0, description="Time a host may cost in failed requests per cycle."
    )
    per_host_rate: float = Field(
        default=1.0,
        ge=0,
        description="Requests per second to one host (host and port); 0: no limit.",
    )
    retry_backoff_seconds: float = Field(
        default=0.5, ge=0, description="First wait before an in-cycle retry (doubles, jitter)."
    )
    max_retry_after_wait_seconds: float = Field(
        default=5.0, ge=0, description="A longer Retry-After is not waited for within the cycle."
    )
    allow_private_hosts: bool = False  # written at the top of the file

    @model_validator(mode="after")
    def _backoff_cap(self) -> FetchSettings:
        if self.max_backoff_minutes < max(self.retry_delay_minutes, self.feed_backoff_minutes):
            raise ValueError(
                "max_backoff_minutes must be at least retry_delay_minutes and feed_backoff_minutes"
            )
        return self


class ScheduleSettings(_Settings):
    """[schedule]: used by `narratrace serve`."""

    feeds_interval_minutes: float = Field(default=15.0, gt=0, description="Minutes between cycles.")
    report_cron: Annotated[str, AfterValidator(check_cron)] = Field(
        default="0 6 * * *",
        description="Cron (UTC) of the daily report: minute hour day month weekday.",
    )
    min_interval_minutes: float = Field(
        default=15.0, gt=0, description="Each feed is polled at most this often ..."
    )
    max_interval_minutes: float = Field(
        default=240.0, gt=0, description="... and at least this often, by its publishing rate."
    )
    cycle_budget_seconds: float = Field(
        default=600.0, gt=0, description="No fetch starts after this; the rest waits."
    )

    @model_validator(mode="after")
    def _interval_bounds(self) -> ScheduleSettings:
        if self.min_interval_minutes > self.max_interval_minutes:
            raise ValueError("min_interval_minutes must be at most max_interval_minutes")
        return self


def check_scheduler(address: str) -> str:
    """`address` if it names a Dask scheduler as tcp://HOST:PORT (or tls://HOST:PORT)."""
    parts = urlsplit(address.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or port is None:
        raise ValueError(
            f"{address!r} is not a Dask scheduler address; write tcp://HOST:PORT, "
            'e.g. "tcp://10.0.0.5:8786"'
        )
    return address.strip()


class ClusterSettings(_Settings):
    """[cluster]: where the per-article work (fetch, extract, sign) runs."""

    scheduler: Annotated[str, AfterValidator(check_scheduler)] | None = Field(
        default=None,
        description="Dask scheduler (tcp://HOST:PORT); default: the local process pool.",
    )
    batch_pages: int = Field(
        default=50,
        ge=1,
        le=10_000,
        description="Pages a worker fetches, extracts and signs at once.",
    )


class Outlet(_Settings):
    """One [[outlets]] table."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    outlet_id: str = Field(
        default="",
        validation_alias="slug",
        pattern=SLUG_PATTERN,
        description="Outlet id: lowercase letters, digits and dashes. Default: from the name.",
        json_schema_extra=_no_default,
    )
    name: str = Field(description="The outlet's name.")
    feeds: Annotated[
        tuple[FeedUrl, ...],
        WithJsonSchema(
            {
                "description": "Feed URLs (RSS or Atom); one URL may be written as a string.",
                "anyOf": [
                    {"type": "string", "pattern": "^\\s*[hH][tT][tT][pP][sS]?://"},
                    {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string", "pattern": "^\\s*[hH][tT][tT][pP][sS]?://"},
                    },
                ],
            }
        ),
    ] = Field(min_length=1)
    country: str = Field(default="", description='ISO 3166 alpha-2 code, or "INT".')
    kind: str = Field(default="", description="news-portal, blog, opinion, agency, defence, ...")
    homepage: Annotated[str, AfterValidator(_homepage)] = Field(
        default="", description="The outlet's own site, http(s)."
    )
    category: str = Field(
        default="",
        description="Folders of an OPML import, levels joined by ' / '; kept for "
        "`narratrace outlets export`, not stored in the database.",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_slug(cls, data: Any) -> Any:
        if isinstance(data, dict) and not {"slug", "outlet_id"} & data.keys():
            name = data.get("name")
            if isinstance(name, str):
                return {**data, "slug": slugify(name)}
        return data

    @field_validator("feeds", mode="before")
    @classmethod
    def _one_feed_as_tuple(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError('must not be empty; write the outlet\'s name, e.g. name = "Dawn"')
        return value.strip()


class OutletsConfig(_Settings):
    """What the rest of narratrace reads: the outlets and the settings, frozen."""

    outlets: tuple[Outlet, ...]
    fetch: FetchSettings = FetchSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    cluster: ClusterSettings = ClusterSettings()
    source: str = ""  # where this config was read from

    def outlet_for_feed(self) -> dict[str, Outlet]:
        return {feed: outlet for outlet in self.outlets for feed in outlet.feeds}


class OutletsFile(_Settings):
    """A narratrace outlets file: the outlets to poll, how to fetch, when to run."""

    # the top level as written: what a file is validated against and what the JSON Schema shows

    model_config = ConfigDict(title="narratrace outlets file")

    allow_private_hosts: bool = Field(
        default=False, description="May fetching reach loopback, private and link-local addresses?"
    )
    fetch: FetchSettings = FetchSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    cluster: ClusterSettings = ClusterSettings()
    outlets: list[Outlet] = Field(min_length=1, description="[[outlets]] tables.")


# ------------------------------------------------------------------------------ loading


def parse_outlets(data: dict[str, Any], source: str = "<config>") -> OutletsConfig:
    """Validate the parsed TOML of an outlets file; ConfigError names `source`."""
    fetch_table = data.get("fetch")
    if isinstance(fetch_table, dict) and "allow_private_hosts" in fetch_table:
        raise ConfigError(
            f"{source}: 'allow_private_hosts' in [fetch] belongs at the top of the file; "
            "move it above the first table"
        )
    try:
        parsed = OutletsFile.model_validate(data, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_errors(exc, data)}") from None
    seen_ids: dict[str, int] = {}
    seen_feeds: dict[str, str] = {}
    for index, outlet in enumerate(parsed.outlets, start=1):
        where = f"[[outlets]] #{index} {outlet.name!r}"
        for url in outlet.feeds:
            if url in seen_feeds:
                raise ConfigError(
                    f"{source}: feed {url} in {where} is already listed by "
                    f"{seen_feeds[url]!r}; list each feed once"
                )
            seen_feeds[url] = outlet.name
        if outlet.outlet_id in seen_ids:
            raise ConfigError(
                f"{source}: outlet id {outlet.outlet_id!r} of {where} is used by "
                f"[[outlets]] #{seen_ids[outlet.outlet_id]} too; set a unique 'slug'"
            )
        seen_ids[outlet.outlet_id] = index
    fetch = parsed.fetch.model_copy(update={"allow_private_hosts": parsed.allow_private_hosts})
    return OutletsConfig(
        outlets=tuple(parsed.outlets),
        fetch=fetch,
        schedule=parsed.schedule,
        cluster=parsed.cluster,
        source=source,
    )


def load_outlets(path: Path | str) -> OutletsConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"outlets file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not an outlets file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    config = parse_outlets(data, source=str(path))
    log.info(
        "read %d outlets with %d feeds from %s",
        len(config.outlets),
        sum(len(o.feeds) for o in config.outlets),
        path,
    )
    log.debug("%s: %r, %r", path, config.fetch, config.schedule)
    return config


def with_fetch(config: OutletsConfig, **changes: Any) -> OutletsConfig:
    """A copy of `config` with some fetch settings changed (CLI flags override the file)."""
    fetch = _changed(config.fetch, changes, "[fetch]")
    return config.model_copy(update={"fetch": fetch})


def with_schedule(config: OutletsConfig, **changes: Any) -> OutletsConfig:
    """A copy of `config` with some schedule settings changed (CLI flags override the file)."""
    schedule = _changed(config.schedule, changes, "[schedule]")
    return config.model_copy(update={"schedule": schedule})


def with_cluster(config: OutletsConfig, **changes: Any) -> OutletsConfig:
    """A copy of `config` with some cluster settings changed (CLI flags override the file)."""
    cluster = _changed(config.cluster, changes, "[cluster]")
    return config.model_copy(update={"cluster": cluster})


def _changed(settings: BaseModel, changes: dict[str, Any], table: str) -> Any:
    data = {**settings.model_dump(), **changes}
    try:
        return type(settings).model_validate(data)
    except ValidationError as exc:  # the prefix makes the message name the table
        raise ConfigError(describe_errors(exc, {}, prefix=(table[1:-1],))) from None


def outlets_json_schema() -> dict[str, Any]:
    """A JSON Schema (draft-07, which editors such as taplo and VS Code read) of the outlets
    file. Crons, duplicate feeds and slugs are checked only when the file is loaded."""
    schema = OutletsFile.model_json_schema(
        by_alias=True, mode="validation", ref_template="#/definitions/{model}"
    )
    schema["definitions"] = schema.pop("$defs")
    # allow_private_hosts is written at the top of the file, not in [fetch]
    schema["definitions"]["FetchSettings"]["properties"].pop("allow_private_hosts")
    for table in ("fetch", "schedule", "cluster"):  # each key's default is shown in its own place
        schema["properties"][table].pop("default")
    return {"$schema": "http://json-schema.org/draft-07/schema#", **schema}


# ------------------------------------------------------------------------------ messages

_KIND_OF_VALUE = {
    "string_type": "a string",
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "model_type": "a table",
    "dict_type": "a table",
    "list_type": "a list",
    "tuple_type": "a list",
}
TOP = "the top of the file"
_EXAMPLES = {
    "name": '"Dawn"',
    "feeds": '["https://www.dawn.com/feeds/home"]',
    "slug": '"dawn"',
}


def describe_errors(
    exc: ValidationError, data: dict[str, Any], prefix: tuple[str, ...] = ()
) -> str:
    """One line for the first problem pydantic found (and how many more there are)."""
    errors = [
        (error["type"], prefix + tuple(error["loc"]), error)
        for error in exc.errors(include_url=False)
    ]
    # A misspelt key is both unknown and, under its right name, missing: say it once, as the
    # unknown key with its correction, and before the rest.
    meant = {
        loc[:-1] + (_close_key(loc, data),) for kind, loc, _ in errors if kind == "extra_forbidden"
    }
    errors = [e for e in errors if not (e[0] == "missing" and e[1] in meant)]
    errors.sort(key=lambda e: e[0] != "extra_forbidden")
    kind, loc, first = errors[0]
    line = _describe(kind, loc, first, data)
    if len(errors) > 1:
        more = len(errors) - 1
        line += f" (and {more} more problem{'s' if more > 1 else ''})"
    return line


def _close_key(loc: tuple[Any, ...], data: dict[str, Any]) -> str | None:
    """The known key closest to the unknown key at `loc`, if one is close."""
    model, place, key, _ = _locate(loc, data)
    allowed = sorted(_keys(model) - ({"allow_private_hosts"} if place == "[fetch]" else set()))
    close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
    return close[0] if close else None


def _describe(kind: str, loc: tuple[Any, ...], error: Any, data: dict[str, Any]) -> str:
    model, place, key, rest = _locate(loc, data)
    within = "at the top of the file" if place == TOP else f"in {place}"
    subject = f"'{key}' {within}" if key else place
    if rest:  # an item of a list, e.g. the second feed
        subject = f"{'feed' if key == 'feeds' else key} #{rest[0] + 1} {within}"
    given = _toml(error.get("input"))
    example = f"e.g. {key} = {_example(model, key)}"
    if kind == "extra_forbidden":
        close = _close_key(loc, data)
        allowed = sorted(_keys(model) - ({"allow_private_hosts"} if place == "[fetch]" else set()))
        hint = f"did you mean '{close}'?" if close else f"known keys: {', '.join(allowed)}"
        return f"unknown key '{key}' {within}; {hint}"
    if key == "outlets" and kind in ("missing", "too_short", "list_type"):
        return "needs at least one [[outlets]] table with name and feeds"
    if kind == "missing":
        return f"{place} has no '{key}'; add {example}"
    if kind == "too_short":
        return f"{subject} is empty; add {example}"
    if kind in ("model_type", "dict_type") and key in ("fetch", "schedule"):
        return f"[{key}] must be a table, got {given}; write [{key}] on a line of its own"
    if kind in _KIND_OF_VALUE:
        expected = _KIND_OF_VALUE[kind]
        if model is Outlet and key == "feeds" and not rest:
            expected = "a list of feed URLs"
        return f"{subject} must be {expected}, got {given}" + (f"; {example}" if key else "")
    if kind == "finite_number":
        return f"{subject} must be a finite number, got {given}; {example}"
    if kind in ("greater_than", "greater_than_equal"):
        ctx = error.get("ctx", {})
        bound = f"greater than {ctx['gt']:g}" if "gt" in ctx else f"at least {ctx['ge']:g}"
        return f"{subject} must be {bound}, got {given}; {example}"
    if kind == "string_pattern_mismatch" and key == "slug":
        return f"{subject} must be lowercase letters, digits and dashes, got {given}; {example}"
    if kind == "string_pattern_mismatch" and key == "user_agent":
        return f"{subject} must be one line of printable text, got {given}"
    if kind == "value_error":
        return f"{subject}: {error['ctx']['error']}"
    return f"{subject}: {error['msg']}, got {given}"  # a kind of problem not worded above


def _locate(
    loc: tuple[Any, ...], data: dict[str, Any]
) -> tuple[type[BaseModel], str, Any, tuple[Any, ...]]:
    """(model, place as the file shows it, key, rest of the location) for an error location."""
    if len(loc) >= 2 and loc[0] in ("fetch", "schedule"):
        model: type[BaseModel] = FetchSettings if loc[0] == "fetch" else ScheduleSettings
        return model, f"[{loc[0]}]", loc[1], tuple(loc[2:])
    if len(loc) >= 3 and loc[0] == "outlets" and isinstance(loc[1], int):
        place = f"[[outlets]] #{loc[1] + 1}"
        outlets = data.get("outlets")
        table = outlets[loc[1]] if isinstance(outlets, list) and len(outlets) > loc[1] else None
        if isinstance(table, dict) and isinstance(table.get("name"), str) and table["name"].strip():
            place += f" {table['name'].strip()!r}"
        return Outlet, place, loc[2], tuple(loc[3:])
    if len(loc) == 2 and loc[0] == "outlets" and isinstance(loc[1], int):
        return OutletsFile, f"[[outlets]] #{loc[1] + 1}", None, ()
    return OutletsFile, TOP, loc[0] if loc else None, tuple(loc[1:])


def _keys(model: type[BaseModel]) -> set[str]:
    return {
        str(info.validation_alias) if isinstance(info.validation_alias, str) else name
        for name, info in model.model_fields.items()
    }


def _example(model: type[BaseModel], key: str) -> str:
    if key in _EXAMPLES:
        return _EXAMPLES[key]
    name = "outlet_id" if key == "slug" else key
    info = model.model_fields.get(name)
    if info is None or info.is_required():
        return '"..."'
    return _toml(info.get_default(call_default_factory=True))


def _toml(value: Any) -> str:
    """`value` as it would be written in TOML (shortened), for messages."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(_toml(v) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    else:
        text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."
