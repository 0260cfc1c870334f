"""Reading the outlets file into frozen settings, and the errors a bad file gives."""

from __future__ import annotations

import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pydantic import ValidationError

from ingest.config import (
    DEFAULT_USER_AGENT,
    ConfigError,
    FetchSettings,
    Outlet,
    OutletsConfig,
    ScheduleSettings,
    load_outlets,
    outlets_json_schema,
    parse_outlets,
    slugify,
    with_fetch,
    with_schedule,
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
    for frozen, attribute in (
        (config, "source"),
        (config.fetch, "timeout_seconds"),
        (config.schedule, "report_cron"),
        (daily, "name"),
    ):
        with pytest.raises(ValidationError, match="frozen"):
            setattr(frozen, attribute, "changed")


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
FETCH_KEYS = "known keys: " + ", ".join(
    sorted(set(FetchSettings.model_fields) - {"allow_private_hosts"})
)
SCHEDULE_KEYS = "known keys: " + ", ".join(sorted(ScheduleSettings.model_fields))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # unknown keys, with the key meant when one is close
        pytest.param(
            OUTLET_A
            + '[[outlets]]\nname = "Beta"\nfeeds = ["https://b.example/f"]\n'
            + '[[outlets]]\nname = "Dawn"\nfeed = ["https://www.dawn.com/feeds/home"]\n',
            "unknown key 'feed' in [[outlets]] #3 'Dawn'; did you mean 'feeds'?",
            id="feed-for-feeds",
        ),
        pytest.param(
            "alow_private_hosts = true\n" + OUTLET_A,
            "unknown key 'alow_private_hosts' at the top of the file; "
            "did you mean 'allow_private_hosts'?",
            id="misspelt-top-level",
        ),
        pytest.param(
            "[fetch]\ntimeout = 5\n" + OUTLET_A,
            "unknown key 'timeout' in [fetch]; did you mean 'timeout_seconds'?",
            id="misspelt-fetch",
        ),
        pytest.param(
            "[schedule]\ncron = '0 6 * * *'\n" + OUTLET_A,
            f"unknown key 'cron' in [schedule]; {SCHEDULE_KEYS}",
            id="unknown-schedule",
        ),
        pytest.param(
            "[fetch]\nproxy = 'x'\n" + OUTLET_A,
            f"unknown key 'proxy' in [fetch]; {FETCH_KEYS}",
            id="unknown-fetch",
        ),
        pytest.param(
            "[fetc]\ntimeout_seconds = 5\n" + OUTLET_A,
            "unknown key 'fetc' at the top of the file; did you mean 'fetch'?",
            id="misspelt-table",
        ),
        pytest.param(
            '[[outlets]]\nname = "Alpha"\noutlet_id = "a"\nfeeds = ["https://a.example/f"]\n',
            "unknown key 'outlet_id' in [[outlets]] #1 'Alpha'; known keys: category, country, "
            "feeds, homepage, kind, name, slug",
            id="internal-name-is-not-a-key",
        ),
        pytest.param(
            "[fetch]\nallow_private_hosts = true\n" + OUTLET_A,
            "'allow_private_hosts' in [fetch] belongs at the top of the file; "
            "move it above the first table",
            id="allow-private-in-fetch",
        ),
        # missing outlets, names and feeds
        pytest.param(
            "allow_private_hosts = false\n",
            "needs at least one [[outlets]] table with name and feeds",
            id="none",
        ),
        pytest.param(
            "outlets = []\n", "needs at least one [[outlets]] table with name and feeds", id="empty"
        ),
        pytest.param(
            "[outlets]\nname = 'x'\n",
            "needs at least one [[outlets]] table with name and feeds",
            id="single-brackets",
        ),
        pytest.param(
            '[[outlets]]\nfeeds = ["https://a.example/feed"]\n',
            "[[outlets]] #1 has no 'name'; add e.g. name = \"Dawn\"",
            id="no-name",
        ),
        pytest.param(
            OUTLET_A + '[[outlets]]\nname = "  "\nfeeds = ["https://b.example/feed"]\n',
            "'name' in [[outlets]] #2: must not be empty; write the outlet's name, "
            'e.g. name = "Dawn"',
            id="blank-name",
        ),
        pytest.param(
            '[[outlets]]\nname = "Alpha"\n',
            "[[outlets]] #1 'Alpha' has no 'feeds'; "
            'add e.g. feeds = ["https://www.dawn.com/feeds/home"]',
            id="feeds-missing",
        ),
        pytest.param(
            '[[outlets]]\nname = "Alpha"\nfeeds = 3\n',
            "'feeds' in [[outlets]] #1 'Alpha' must be a list of feed URLs, got 3; "
            'e.g. feeds = ["https://www.dawn.com/feeds/home"]',
            id="feeds-not-a-list",
        ),
        pytest.param(
            '[[outlets]]\nname = "Alpha"\nfeeds = []\n',
            "'feeds' in [[outlets]] #1 'Alpha' is empty; "
            'add e.g. feeds = ["https://www.dawn.com/feeds/home"]',
            id="feeds-empty",
        ),
        # feed URLs
        pytest.param(
            '[[outlets]]\nname = "Alpha"\nfeeds = ["https://a.example/", "ftp://a.example/f"]\n',
            "feed #2 in [[outlets]] #1 'Alpha': 'ftp://a.example/f' is not an absolute http(s) "
            "URL; write the full address, e.g. 'https://example.org/feed.xml'",
            id="ftp-feed",
        ),
        pytest.param(
            '[[outlets]]\nname = "Alpha"\nfeeds = ["/relative/feed.xml"]\n',
            "feed #1 in [[outlets]] #1 'Alpha': '/relative/feed.xml' is not an absolute http(s)",
            id="relative-feed",
        ),
        pytest.param(
            '[[outlets]]\nname = "Alpha"\nfeeds = [""]\n',
            "feed #1 in [[outlets]] #1 'Alpha': '' is not an absolute http(s) URL",
            id="empty-feed",
        ),
        pytest.param(
            '[[outlets]]\nname = "Alpha"\nfeeds = [42]\n',
            "feed #1 in [[outlets]] #1 'Alpha' must be a string, got 42",
            id="number-feed",
        ),
        pytest.param(
            '[[outlets]]\nname = "Alpha"\nhomepage = "www.a.example"\nfeeds = ["https://a.example/f"]\n',
            "'homepage' in [[outlets]] #1 'Alpha': 'www.a.example' is not an absolute http(s) URL",
            id="homepage-not-a-url",
        ),
        pytest.param(
            OUTLET_A + '[[outlets]]\nname = "Beta"\nfeeds = ["https://a.example/feed"]\n',
            "feed https://a.example/feed in [[outlets]] #2 'Beta' is already listed by 'Alpha'; "
            "list each feed once",
            id="duplicate-feed",
        ),
        pytest.param(
            OUTLET_A + '[[outlets]]\nname = "ALPHA"\nfeeds = ["https://b.example/feed"]\n',
            "outlet id 'alpha' of [[outlets]] #2 'ALPHA' is used by [[outlets]] #1 too; "
            "set a unique 'slug'",
            id="duplicate-slug",
        ),
        pytest.param(
            '[[outlets]]\nname = "Alpha"\nslug = "Not A Slug"\nfeeds = ["https://a.example/f"]\n',
            "'slug' in [[outlets]] #1 'Alpha' must be lowercase letters, digits and dashes, "
            'got "Not A Slug"; e.g. slug = "dawn"',
            id="bad-slug",
        ),
        pytest.param(
            '[[outlets]]\nname = "Alpha"\ncountry = 91\nfeeds = ["https://a.example/f"]\n',
            "'country' in [[outlets]] #1 'Alpha' must be a string, got 91; e.g. country = \"\"",
            id="country-number",
        ),
        pytest.param(
            'outlets = ["Alpha"]\n',
            '[[outlets]] #1 must be a table, got "Alpha"',
            id="outlet-not-a-table",
        ),
        # wrong types
        pytest.param(
            '[fetch]\ntimeout_seconds = "x"\n' + OUTLET_A,
            "'timeout_seconds' in [fetch] must be a number, got \"x\"; e.g. timeout_seconds = 20.0",
            id="timeout-string",
        ),
        pytest.param(
            "[fetch]\nmax_bytes = 1.5\n" + OUTLET_A,
            "'max_bytes' in [fetch] must be a whole number, got 1.5; e.g. max_bytes = 5000000",
            id="max-bytes-float",
        ),
        pytest.param(
            "[fetch]\nper_host_concurrency = true\n" + OUTLET_A,
            "'per_host_concurrency' in [fetch] must be a whole number, got true; "
            "e.g. per_host_concurrency = 2",
            id="concurrency-bool",
        ),
        pytest.param(
            'allow_private_hosts = "yes"\n' + OUTLET_A,
            "'allow_private_hosts' at the top of the file must be true or false, got \"yes\"; "
            "e.g. allow_private_hosts = false",
            id="allow-private-string",
        ),
        pytest.param(
            'fetch = "fast"\n' + OUTLET_A,
            '[fetch] must be a table, got "fast"; write [fetch] on a line of its own',
            id="fetch-not-table",
        ),
        pytest.param(
            "[schedule]\nreport_cron = 6\n" + OUTLET_A,
            "'report_cron' in [schedule] must be a string, got 6; e.g. report_cron = \"0 6 * * *\"",
            id="cron-number",
        ),
        # out of range
        pytest.param(
            "[fetch]\ntimeout_seconds = 0\n" + OUTLET_A,
            "'timeout_seconds' in [fetch] must be greater than 0, got 0; "
            "e.g. timeout_seconds = 20.0",
            id="timeout-zero",
        ),
        pytest.param(
            "[fetch]\ntimeout_seconds = -2.5\n" + OUTLET_A,
            "'timeout_seconds' in [fetch] must be greater than 0, got -2.5",
            id="timeout-negative",
        ),
        pytest.param(
            "[fetch]\ntimeout_seconds = inf\n" + OUTLET_A,
            "'timeout_seconds' in [fetch] must be a finite number, got inf",
            id="timeout-infinite",
        ),
        pytest.param(
            "[fetch]\nper_host_concurrency = 0\n" + OUTLET_A,
            "'per_host_concurrency' in [fetch] must be at least 1, got 0; "
            "e.g. per_host_concurrency = 2",
            id="concurrency-zero",
        ),
        pytest.param(
            "[fetch]\ntotal_concurrency = -4\n" + OUTLET_A,
            "'total_concurrency' in [fetch] must be at least 1, got -4",
            id="total-concurrency-negative",
        ),
        pytest.param(
            "[fetch]\nmax_redirects = -1\n" + OUTLET_A,
            "'max_redirects' in [fetch] must be at least 0, got -1; e.g. max_redirects = 5",
            id="redirects-negative",
        ),
        pytest.param(
            "[fetch]\nmax_attempts_per_article = 0\n" + OUTLET_A,
            "'max_attempts_per_article' in [fetch] must be at least 1, got 0",
            id="attempts-zero",
        ),
        pytest.param(
            '[fetch]\nuser_agent = "a\\nb"\n' + OUTLET_A,
            "'user_agent' in [fetch] must be one line of printable text",
            id="user-agent-newline",
        ),
        pytest.param(
            "[schedule]\nfeeds_interval_minutes = 0\n" + OUTLET_A,
            "'feeds_interval_minutes' in [schedule] must be greater than 0, got 0; "
            "e.g. feeds_interval_minutes = 15.0",
            id="interval-zero",
        ),
        # crons
        pytest.param(
            "[schedule]\nreport_cron = '61 6 * * *'\n" + OUTLET_A,
            "'report_cron' in [schedule]: '61 6 * * *' is not a valid cron expression "
            "(bad minute); write five fields, minute hour day month weekday, "
            'e.g. "0 6 * * *"',
            id="cron-bad-minute",
        ),
        pytest.param(
            "[schedule]\nreport_cron = '0 6 * *'\n" + OUTLET_A,
            "'0 6 * *' is not a valid cron expression (has 4 fields, not 5)",
            id="cron-four-fields",
        ),
        pytest.param(
            "[schedule]\nreport_cron = '0 0 6 * * *'\n" + OUTLET_A,
            "(has 6 fields, not 5)",
            id="cron-seconds-field",
        ),
        pytest.param(
            "[schedule]\nreport_cron = '0 6 31 2 *'\n" + OUTLET_A,
            "'0 6 31 2 *' is not a valid cron expression (bad day-of-month)",
            id="cron-never-fires",
        ),
        pytest.param(
            "[schedule]\nreport_cron = 'daily'\n" + OUTLET_A,
            "'daily' is not a valid cron expression (has 1 fields, not 5)",
            id="cron-word",
        ),
    ],
)
def test_config_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_outlets(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")  # every message says which file is wrong
    assert expected in message
    assert "\n" not in message  # one line
    assert isinstance(info.value, ValueError)


def test_a_misspelt_key_is_one_problem_and_other_problems_are_counted(tmp_path: Path) -> None:
    text = (
        "[fetch]\ntimeout_seconds = 0\nper_host_concurrency = 0\n"
        '[[outlets]]\nname = "Dawn"\nfeed = ["https://www.dawn.com/feeds/home"]\n'
    )
    with pytest.raises(ConfigError) as info:
        load_outlets(write(tmp_path, text))
    # the unknown key comes first; "feeds" missing is the same mistake and is not counted
    assert str(info.value).endswith(
        "unknown key 'feed' in [[outlets]] #1 'Dawn'; did you mean 'feeds'? (and 2 more problems)"
    )


def test_unreadable_files(tmp_path: Path) -> None:
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe[[outlets]]")
    with pytest.raises(ConfigError, match=r"binary\.toml: not UTF-8 text"):
        load_outlets(binary)
    with pytest.raises(ConfigError, match="is a folder, not an outlets file"):
        load_outlets(tmp_path)


@pytest.mark.parametrize(
    "cron", ["0 6 * * *", "*/15 * * * *", "30 5 * * mon-fri", "0 0 1 jan *", "0 6 L * *"]
)
def test_crons_accepted_at_load_are_accepted_by_prefect(tmp_path: Path, cron: str) -> None:
    from prefect.client.schemas.schedules import CronSchedule

    config = load_outlets(write(tmp_path, f"[schedule]\nreport_cron = {cron!r}\n{MINIMAL}"))
    assert config.schedule.report_cron == cron
    assert CronSchedule(cron=cron).cron == cron  # serve hands it to Prefect as it is


def test_with_fetch_and_with_schedule_check_what_they_change(tmp_path: Path) -> None:
    config = load_outlets(write(tmp_path, MINIMAL))
    with pytest.raises(ConfigError, match=r"'timeout_seconds' in \[fetch\] must be greater"):
        with_fetch(config, timeout_seconds=0)
    with pytest.raises(ConfigError, match=r"'report_cron' in \[schedule\]: 'x' is not a valid"):
        with_schedule(config, report_cron="x")
    changed = with_schedule(config, feeds_interval_minutes=2)
    assert changed.schedule == ScheduleSettings(feeds_interval_minutes=2.0)
    assert config.schedule == ScheduleSettings()


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


def _schema_errors(data: dict) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft7Validator(outlets_json_schema())
    return [error.message for error in validator.iter_errors(data)]


def test_json_schema_is_valid_and_accepts_the_shipped_outlets_files() -> None:
    import jsonschema

    from simulator.corpus import DEMO_ROOT, load_corpus
    from simulator.server import OutletSimulator

    schema = outlets_json_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["required"] == ["outlets"]
    assert schema["additionalProperties"] is False
    assert "allow_private_hosts" in schema["properties"]
    assert "allow_private_hosts" not in schema["definitions"]["FetchSettings"]["properties"]
    assert "slug" in schema["definitions"]["Outlet"]["properties"]

    seeds = tomllib.loads((REPO / "seeds" / "outlets.toml").read_text(encoding="utf-8"))
    assert _schema_errors(seeds) == []
    # the outlets file `narratrace demo` writes for the simulated outlets
    with OutletSimulator(load_corpus(DEMO_ROOT)) as simulator:
        demo = simulator.outlets_toml(extra="[fetch]\ntimeout_seconds = 5")
    assert _schema_errors(tomllib.loads(demo)) == []
    assert _schema_errors(tomllib.loads(VALID)) == []
    # seeds/demo/outlets.toml describes the simulator's outlets, not an outlets file: both the
    # schema and the loader turn it down
    simulator_file = REPO / "seeds" / "demo" / "outlets.toml"
    assert _schema_errors(tomllib.loads(simulator_file.read_text(encoding="utf-8")))
    with pytest.raises(ConfigError, match="unknown key 'feed_format'"):
        load_outlets(simulator_file)


@pytest.mark.parametrize(
    "text",
    [
        "alow_private_hosts = true\n" + OUTLET_A,
        '[[outlets]]\nname = "Dawn"\nfeed = ["https://www.dawn.com/feeds/home"]\n',
        "[fetch]\nmax_bytes = 1.5\n" + OUTLET_A,
        "[fetch]\nper_host_concurrency = 0\n" + OUTLET_A,
        "[fetch]\nallow_private_hosts = true\n" + OUTLET_A,
        "[schedule]\nfeeds_interval_minutes = 0\n" + OUTLET_A,
        '[[outlets]]\nname = "Alpha"\nslug = "Not A Slug"\nfeeds = ["https://a.example/f"]\n',
        '[[outlets]]\nname = "Alpha"\nfeeds = ["ftp://a.example/f"]\n',
        '[[outlets]]\nname = "Alpha"\nfeeds = []\n',
        "outlets = []\n",
    ],
)
def test_json_schema_turns_down_what_loading_turns_down(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError):
        load_outlets(write(tmp_path, text))
    assert _schema_errors(tomllib.loads(text))


def test_a_new_setting_is_one_line_and_checked_like_the_others() -> None:
    class Extended(FetchSettings):  # as a change adding keys to [fetch] would write them
        retry_after_cap_seconds: float = 300.0
        blocked_hosts: tuple[str, ...] = ()

    data = tomllib.loads('retry_after_cap_seconds = 60\nblocked_hosts = ["a.example"]\n')
    extended = Extended.model_validate(data)
    assert extended.retry_after_cap_seconds == 60.0
    assert extended.blocked_hosts == ("a.example",)  # a TOML array, held as a tuple
    assert Extended().timeout_seconds == 20.0
    with pytest.raises(ValidationError, match="retry_after_cap_seconds"):
        Extended.model_validate({"retry_after_cap_seconds": "60"})  # strict, like the rest
    with pytest.raises(ValidationError, match="extra_forbidden|Extra inputs"):
        Extended.model_validate({"retry_after_cap": 60})
    # and the runtime objects take lists where they hold tuples, as dataclasses did
    config = OutletsConfig(outlets=[Outlet(outlet_id="a", name="A", feeds=["https://a.example/"])])
    assert config.outlets[0].feeds == ("https://a.example/",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("page_deadline_seconds = 0", "'page_deadline_seconds' in [fetch] must be greater than 0"),
        ("feed_deadline_seconds = -1", "'feed_deadline_seconds' in [fetch] must be greater than 0"),
        ("per_host_rate = -0.5", "'per_host_rate' in [fetch] must be at least 0"),
        ("host_budget_seconds = -1", "'host_budget_seconds' in [fetch] must be at least 0"),
        ("retry_backoff_seconds = -3", "'retry_backoff_seconds' in [fetch] must be at least 0"),
        ('per_host_rate = "fast"', "'per_host_rate' in [fetch] must be a number"),
        ("max_backoff_minutes = 1", "max_backoff_minutes must be at least retry_delay_minutes"),
    ],
)
def test_fetch_bounds_are_checked(text: str, expected: str) -> None:
    data = tomllib.loads(f"[fetch]\n{text}\n{OUTLET_A}")
    with pytest.raises(ConfigError) as info:
        parse_outlets(data)
    assert expected in str(info.value)
