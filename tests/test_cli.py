"""The command line as users and other tools drive it: real subprocesses, a real simulator on
127.0.0.1, real Prefect (a temporary local API server, or a served schedule)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tomllib
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path

import duckdb
import pytest
import typer
from typer.testing import CliRunner

from flows.cli import app
from ingest.config import load_outlets, outlets_json_schema
from simulator.corpus import DEMO_ROOT, load_corpus
from simulator.server import OutletSimulator

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = [
    "run",
    "serve",
    "report",
    "demo",
    "simulate",
    "config check",
    "config schema",
    "outlets import",
    "outlets export",
]


MINIMAL = '[[outlets]]\nname = "Only One"\nfeeds = ["https://one.example/feed"]\n'


def narratrace(*args: str, env: dict[str, str] | None = None, timeout: float = 240):
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


@pytest.fixture
def own_prefect_home(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    env.pop("PREFECT_API_URL", None)
    return env


@pytest.fixture
def simulator():
    corpus = load_corpus(DEMO_ROOT)
    with OutletSimulator(corpus, timeout_delay=3.0) as sim:
        sim.set_now(corpus.start + timedelta(days=1))
        yield sim


def _outlets_file(sim: OutletSimulator, path: Path) -> Path:
    path.write_text(
        sim.outlets_toml(extra="[fetch]\ntimeout_seconds = 1.0\ntransient_retries = 0\n"),
        encoding="utf-8",
    )
    return path


def _commands(command=None, path=()):
    """(words after `narratrace`, click command) of the root and every command under it."""
    command = command or typer.main.get_command(app)
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


@pytest.fixture
def cli(monkeypatch):
    """Run the command line in this process; -v/-q set log levels and Prefect's logging
    settings, which are put back afterwards."""
    for setting in ("PREFECT_LOGGING_LEVEL", "PREFECT_LOGGING_ROOT_LEVEL"):
        monkeypatch.setenv(setting, os.environ.get(setting, "WARNING"))
    levels = {name: logging.getLogger(name).level for name in ("", "prefect")}
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args), prog_name="narratrace")
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_every_command_has_help_shown_as_written_and_is_documented(cli):
    readme = (ROOT / "README.md").read_text()
    top = narratrace("--help")  # once as a real process
    assert top.returncode == 0
    assert "Usage: narratrace" in top.stdout
    seen = set()
    for path, command in _commands():
        result = cli(*path, "--help")
        assert result.exit_code == 0, result.output
        shown = " ".join(result.output.split())
        # the command's text and every option's help appear as written: nothing is taken for
        # markup ("[[outlets]]", "[schedule]") or dropped
        written = [command.help] + [p.help for p in command.params if getattr(p, "help", None)]
        for text in written:
            assert " ".join(text.split()) in shown, (path, text)
        if not getattr(command, "commands", None):  # every command but the groups
            seen.add(" ".join(path))
            assert "-v, --verbose" in shown and "-q, --quiet" in shown, path
            quiet = cli(*path, "-v", "-q", "-vv", "--help")
            assert quiet.exit_code == 0, (path, quiet.output)
            if path:
                assert f"narratrace {' '.join(path)}" in readme, f"README lacks {path}"
    assert set(COMMANDS) <= seen
    assert "[[outlets]]" in cli("run", "--help").output
    serve_help = " ".join(cli("serve", "--help").output.split())
    assert "[schedule] feeds_interval_minutes" in serve_help
    assert "[schedule] report_cron" in serve_help
    assert "[[outlets]]" in cli("outlets", "import", "--help").output


def test_version_prints_the_package_version():
    result = narratrace("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"narratrace {version('narratrace')}\n"
    assert version("narratrace") == "0.1.0"  # pyproject's version, as installed


def test_verbosity_reaches_the_flow_runs_serve_starts_in_subprocesses(cli, tmp_path):
    """A flow run that `serve` starts is a new process that sets its logging up from
    Prefect's settings: narratrace's own loggers there take the level -v and -q gave."""
    probe = (
        "import logging\n"
        "from prefect.logging.configuration import setup_logging\n"
        "setup_logging()\n"
        "print(logging.getLevelName(logging.getLogger('flows.stages').getEffectiveLevel()))\n"
    )
    opml = tmp_path / "feeds.opml"
    opml.write_text(
        '<opml version="2.0"><body><outline xmlUrl="https://a.example/rss"/></body></opml>'
    )
    for n, (flags, level) in enumerate(((["-v"], "INFO"), (["-vv"], "DEBUG"), (["-q"], "ERROR"))):
        done = cli(*flags, "outlets", "import", str(opml), "--out", str(tmp_path / f"{n}.toml"))
        assert done.exit_code == 0, done.output
        env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
        shown = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
        )
        assert shown.stdout.strip() == level, (flags, shown.stderr)


def test_verbosity_sets_the_log_level(tmp_path):
    """-v shows info, -vv debug; -q hides warnings; the default shows warnings only."""
    opml = tmp_path / "feeds.opml"
    opml.write_text(
        '<opml version="2.0"><body><outline text="A" xmlUrl="https://a.example/rss"/>'
        '<outline text="A again" xmlUrl="https://a.example/rss"/></body></opml>'
    )
    skipped = "skipped 'A again': feed https://a.example/rss is listed twice"
    read = "read 1 outlets with 1 feeds from"
    default = narratrace("outlets", "import", str(opml), "--out", str(tmp_path / "a.toml"))
    assert default.returncode == 0, default.stderr
    assert skipped in default.stderr and read not in default.stderr
    quiet = narratrace("outlets", "import", "-q", str(opml), "--out", str(tmp_path / "b.toml"))
    assert quiet.returncode == 0, quiet.stderr
    assert skipped not in quiet.stderr
    assert "skipped 1 outlines" in quiet.stdout  # the command's own summary still says so
    verbose = narratrace("-v", "config", "check", str(tmp_path / "a.toml"))
    assert verbose.returncode == 0, verbose.stderr
    assert read in verbose.stderr and "DEBUG" not in verbose.stderr
    debug = narratrace("config", "check", "-vv", str(tmp_path / "a.toml"))
    assert read in debug.stderr and "DEBUG" in debug.stderr


BAD_CONFIGS = [
    pytest.param(
        '[[outlets]]\nname = "Dawn"\nfeed = ["https://www.dawn.com/feeds/home"]\n',
        "unknown key 'feed' in [[outlets]] #1 'Dawn'; did you mean 'feeds'?",
        id="unknown-key",
    ),
    pytest.param(
        "alow_private_hosts = true\n" + MINIMAL,
        "unknown key 'alow_private_hosts' at the top of the file; "
        "did you mean 'allow_private_hosts'?",
        id="misspelt-key",
    ),
    pytest.param(
        '[fetch]\ntimeout_seconds = "20"\n' + MINIMAL,
        "'timeout_seconds' in [fetch] must be a number, got \"20\"; e.g. timeout_seconds = 20.0",
        id="wrong-type",
    ),
    pytest.param(
        "[schedule]\nfeeds_interval_minutes = 0\n" + MINIMAL,
        "'feeds_interval_minutes' in [schedule] must be greater than 0, got 0",
        id="out-of-range",
    ),
    pytest.param(
        "[fetch]\nper_host_concurrency = 0\n" + MINIMAL,
        "'per_host_concurrency' in [fetch] must be at least 1, got 0",
        id="concurrency-below-one",
    ),
    pytest.param(
        '[schedule]\nreport_cron = "0 25 * * *"\n' + MINIMAL,
        "'report_cron' in [schedule]: '0 25 * * *' is not a valid cron expression (bad hour)",
        id="bad-cron",
    ),
    pytest.param(
        '[[outlets]]\nname = "X"\nfeeds = ["ftp://example.org/feed"]\n',
        "feed #1 in [[outlets]] #1 'X': 'ftp://example.org/feed' is not an absolute http(s) URL",
        id="bad-url",
    ),
    pytest.param(
        MINIMAL + MINIMAL.replace("Only One", "Other"),
        "feed https://one.example/feed in [[outlets]] #2 'Other' is already listed by 'Only One'",
        id="duplicate-feed",
    ),
    pytest.param("[[outlets]\n", "not valid TOML", id="not-toml"),
    pytest.param("", "needs at least one [[outlets]] table with name and feeds", id="empty"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS)
def test_each_config_mistake_is_one_line_and_exit_1(cli, tmp_path, text, expected):
    path = tmp_path / "outlets.toml"
    path.write_text(text, encoding="utf-8")
    result = cli("config", "check", str(path))
    assert result.exit_code == 1
    assert result.stderr == f"error: {path}: {expected}\n" or (
        result.stderr.startswith(f"error: {path}: ")
        and expected in result.stderr
        and result.stderr.count("\n") == 1
    ), result.stderr
    assert result.stdout == ""
    # the commands that read the file stop the same way before doing anything
    db = tmp_path / "x.duckdb"
    for args in (
        ("run", "--once", "--no-prefect", "--outlets", str(path), "--db", str(db)),
        ("outlets", "export", "--outlets", str(path)),
    ):
        again = cli(*args)
        assert again.exit_code == 1 and expected in again.stderr, args
    assert not db.exists()


def test_config_check_in_a_real_process(tmp_path):
    good = narratrace("config", "check", "seeds/outlets.toml")
    assert good.returncode == 0, good.stderr
    config = load_outlets(ROOT / "seeds" / "outlets.toml")
    feeds = sum(len(o.feeds) for o in config.outlets)
    assert good.stdout == (
        f"seeds/outlets.toml: valid; {len(config.outlets)} outlets, {feeds} feeds; "
        "cycle every 15 min, report on cron '0 6 * * *'\n"
    )
    bad = tmp_path / "bad.toml"
    bad.write_text('[[outlets]]\nname = "Dawn"\nfeed = ["https://www.dawn.com/feeds/home"]\n')
    result = narratrace("config", "check", str(bad))
    assert result.returncode == 1
    assert result.stderr == (
        f"error: {bad}: unknown key 'feed' in [[outlets]] #1 'Dawn'; did you mean 'feeds'?\n"
    )
    missing = narratrace("config", "check", str(tmp_path / "nope.toml"))
    assert missing.returncode == 1
    assert missing.stderr == f"error: outlets file not found: {tmp_path / 'nope.toml'}\n"


def test_config_schema_is_json_schema_of_the_outlets_file(cli):
    import jsonschema

    result = cli("config", "schema")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert schema == outlets_json_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    seeds = tomllib.loads((ROOT / "seeds" / "outlets.toml").read_text(encoding="utf-8"))
    assert list(validator.iter_errors(seeds)) == []
    typo = {"outlets": [{"name": "Dawn", "feed": ["https://www.dawn.com/feeds/home"]}]}
    assert not validator.is_valid(typo)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--interval-minutes", "0"), "error: --interval-minutes must be greater than 0, got 0"),
        (("--interval-minutes", "-5"), "error: --interval-minutes must be greater than 0, got -5"),
        (
            ("--report-cron", "0 6 * *"),
            "error: --report-cron: '0 6 * *' is not a valid cron expression (has 4 fields, not 5)",
        ),
    ],
)
def test_serve_refuses_bad_schedule_options(cli, tmp_path, args, expected):
    result = cli("serve", "--db", str(tmp_path / "x.duckdb"), *args)
    assert result.exit_code == 1
    assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1
    assert "starting a local Prefect server" not in result.stdout
    assert not (tmp_path / "x.duckdb").exists()


def test_outlets_import_export_round_trip_through_the_command_line(cli, tmp_path):
    opml = ROOT / "tests" / "data" / "opml" / "nested.opml"
    first = tmp_path / "first.toml"
    result = cli("outlets", "import", str(opml), "--out", str(first))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{first}: 6 outlets with 6 feeds from {opml}\n"
    assert cli("config", "check", str(first)).exit_code == 0  # what import writes passes

    exported = cli("outlets", "export", "--format", "opml", "--outlets", str(first))
    assert exported.exit_code == 0, exported.output
    assert exported.stdout.startswith("<?xml version='1.0' encoding='utf-8'?>\n<opml")
    again_opml = tmp_path / "again.opml"
    again_opml.write_text(exported.stdout, encoding="utf-8")
    second = tmp_path / "second.toml"
    assert cli("outlets", "import", str(again_opml), "--out", str(second)).exit_code == 0
    assert load_outlets(second).outlets == load_outlets(first).outlets
    reexported = cli("outlets", "export", "--outlets", str(second)).stdout
    assert reexported.replace("(second.toml)", "(first.toml)") == exported.stdout

    out_file = tmp_path / "written.opml"
    written = cli("outlets", "export", "--outlets", str(first), "--out", str(out_file))
    assert written.exit_code == 0 and out_file.read_text(encoding="utf-8") == exported.stdout


def test_outlets_import_merges_into_an_outlets_file(cli, tmp_path):
    target = tmp_path / "outlets.toml"
    original = (
        '# my outlets\n[[outlets]]\nname = "Dawn"\nfeeds = ["https://www.dawn.com/feeds/home"]\n'
    )
    target.write_text(original, encoding="utf-8")
    opml = ROOT / "tests" / "data" / "opml" / "inoreader.opml"
    result = cli("outlets", "import", str(opml), "--outlets", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"{target}: 0 new outlets, 1 new feeds (1 already listed) from {opml}; skipped 3 outlines\n"
    )
    text = target.read_text(encoding="utf-8")
    assert text.startswith("# my outlets\n")
    assert load_outlets(target).outlets[0].feeds == (
        "https://www.dawn.com/feeds/home",
        "https://www.dawn.com/feeds/pakistan",
    )
    assert not list(tmp_path.glob(".*partial"))


def test_outlets_import_refuses_what_it_cannot_do(cli, tmp_path):
    opml = ROOT / "tests" / "data" / "opml" / "flat.opml"
    existing = tmp_path / "outlets.toml"
    existing.write_text(MINIMAL, encoding="utf-8")
    empty = tmp_path / "empty.opml"
    empty.write_text('<opml version="2.0"><body><outline text="Folder"/></body></opml>')
    cases = [
        (
            ("outlets", "import", str(empty), "--out", str(tmp_path / "new.toml")),
            f"{empty}: lists no feeds",
        ),
        (("outlets", "import", str(opml)), "give one of --out PATH"),
        (
            ("outlets", "import", str(opml), "--out", str(existing), "--outlets", str(existing)),
            "give one of --out PATH",
        ),
        (
            ("outlets", "import", str(opml), "--out", str(existing)),
            f"{existing} exists; use --outlets {existing} to add to it",
        ),
        (
            ("outlets", "import", str(existing), "--out", str(tmp_path / "new.toml")),
            f"{existing}: not an OPML file: not well-formed XML",
        ),
        (
            ("outlets", "import", str(tmp_path / "nope.opml"), "--out", str(tmp_path / "n.toml")),
            f"cannot read {tmp_path / 'nope.opml'}",
        ),
        (
            ("outlets", "import", str(opml), "--outlets", str(tmp_path / "nope.toml")),
            "outlets file not found",
        ),
    ]
    for args, expected in cases:
        result = cli(*args)
        assert result.exit_code == 1, args
        assert result.stderr.startswith(f"error: {expected}"), (args, result.stderr)
        assert result.stderr.count("\n") == 1
    assert existing.read_text(encoding="utf-8") == MINIMAL  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.opml", "outlets.toml"]


def test_run_once_ingests_released_articles_and_a_rerun_adds_nothing(
    simulator, tmp_path, own_prefect_home
):
    outlets = _outlets_file(simulator, tmp_path / "outlets.toml")
    db = tmp_path / "nt.duckdb"
    first = narratrace(
        "run", "--once", "--outlets", str(outlets), "--db", str(db), env=own_prefect_home
    )
    assert first.returncode == 0, first.stderr
    assert "articles_new" in first.stdout
    second = narratrace(
        "run", "--once", "--outlets", str(outlets), "--db", str(db), env=own_prefect_home
    )
    assert second.returncode == 0, second.stderr
    con = duckdb.connect(str(db), read_only=True)
    try:
        articles = con.execute("SELECT count(*) FROM articles").fetchall()[0][0]
        runs = con.execute("SELECT status, articles_new FROM runs ORDER BY started_at").fetchall()
    finally:
        con.close()
    released = [a for a in simulator.released() if a.outlet != "northern-courier"]
    assert articles == len(released)
    assert runs == [("completed", len(released)), ("completed", 0)]
    report = narratrace(
        "report",
        "--date",
        "2025-04-23",
        "--db",
        str(db),
        "--out",
        str(tmp_path / "reports"),
        env=own_prefect_home,
    )
    assert report.returncode == 0, report.stderr
    for name in ("report-2025-04-23.html", "report-2025-04-23.md", "report-2025-04-23.csv"):
        assert (tmp_path / "reports" / name).exists()
        assert f"wrote {tmp_path / 'reports' / name}" in " ".join(report.stdout.split())
    assert (tmp_path / "reports" / "index.html").exists()
    quiet = narratrace(
        "report", "--date", "2025-04-23", "--db", str(db), "--quiet-days", "0",
        env=own_prefect_home,
    )  # fmt: skip
    assert quiet.returncode != 0 and "--quiet-days" in quiet.stderr


def test_bad_input_gives_a_clear_error_not_a_traceback(tmp_path, own_prefect_home):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[outlets]]\nname = "X"\nfeeds = ["ftp://example.org/feed"]\n')
    result = narratrace(
        "run", "--once", "--outlets", str(bad), "--db", str(tmp_path / "x.db"), env=own_prefect_home
    )
    assert result.returncode == 1
    assert "error:" in result.stderr and "http(s)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.db").exists()
    missing = narratrace(
        "run", "--once", "--outlets", str(tmp_path / "nope.toml"), env=own_prefect_home
    )
    assert missing.returncode == 1 and "not found" in missing.stderr
    no_once = narratrace("run", env=own_prefect_home)
    assert no_once.returncode == 1 and "--once" in no_once.stderr
    bad_date = narratrace("report", "--date", "2025-02-30", "--db", str(bad), env=own_prefect_home)
    assert bad_date.returncode == 1 and "YYYY-MM-DD" in bad_date.stderr
