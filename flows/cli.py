"""The `narratrace` command line: a thin layer over the flows and the library."""

from __future__ import annotations

import asyncio
import faulthandler
import json
import logging
import math
import os
import signal
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from enum import StrEnum
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flows.prefect_env import apply_offline_defaults, stop_prefect_threads

apply_offline_defaults()

import flows.cycle  # noqa: E402
from flows.cycle import CycleInterrupted, cycle_flow, report_flow, run_cycle  # noqa: E402
from flows.gather import GatherError, gather_flow, run_gather, shard_paths  # noqa: E402
from ingest.config import (  # noqa: E402
    ConfigError,
    check_cron,
    check_scheduler,
    load_outlets,
    outlets_json_schema,
    parse_outlets,
    with_schedule,
)
from store.db import DEFAULT_MEMORY_LIMIT, StoreError  # noqa: E402
from store.publish import Catalog, PublishError, StoreLayout  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTLETS = ROOT / "seeds" / "outlets.toml"
DEFAULT_DB = Path("narratrace.duckdb")
DEFAULT_REPORTS = Path("reports")

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help is shown as written: "[[outlets]]" is not markup
)
config_app = typer.Typer(
    help="Check an outlets file, or print the JSON Schema of outlets files.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
outlets_app = typer.Typer(
    help="Read outlets from an OPML file (as feed readers export it), or write them as OPML.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(config_app, name="config")
app.add_typer(outlets_app, name="outlets")
console = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True)

OutletsOpt = Annotated[
    Path,
    typer.Option(
        "--outlets",
        envvar="NARRATRACE_OUTLETS",
        help="Outlets TOML file ([[outlets]] with name and feeds).",
    ),
]
DbOpt = Annotated[
    Path,
    typer.Option(
        "--db",
        envvar="NARRATRACE_DB",
        help="The DuckDB file analysts open (the published catalog); the pipeline keeps its "
        "own working files in the folder PATH.data beside it.",
    ),
]
DaskOpt = Annotated[
    str | None,
    typer.Option(
        "--dask-scheduler",
        help="Fetch, extract and sign pages on the workers of this Dask scheduler "
        "(tcp://HOST:PORT); default: the outlets file's [cluster] scheduler, else the local "
        "process pool (--processes).",
    ),
]
NarrativesOpt = Annotated[
    Path | None,
    typer.Option("--narratives", help="Watchlist TOML (default: seeds/narratives.toml)."),
]


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(code=1)


LOG_LEVELS = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}


def _count_verbosity(ctx: typer.Context, param: typer.CallbackParam, value: int) -> None:
    """Set the log level from every -v and -q given so far (before and after the command)."""
    meta = ctx.find_root().meta
    step = value if param.name == "verbose" else -value
    meta["verbosity"] = meta.get("verbosity", 0) + step
    level = LOG_LEVELS[max(-1, min(2, meta["verbosity"]))]
    for name in ("", "prefect"):  # narratrace logs to the root logger; Prefect to its own
        logging.getLogger(name).setLevel(level)
    # flow runs that `serve` starts in subprocesses configure logging from Prefect's settings:
    # its loggers take PREFECT_LOGGING_LEVEL, the root logger (narratrace's) the ROOT one
    for setting in ("PREFECT_LOGGING_LEVEL", "PREFECT_LOGGING_ROOT_LEVEL"):
        os.environ[setting] = logging.getLevelName(level)


# every command takes these two (tests/test_cli.py checks that each one does)
VerboseOpt = Annotated[
    int,
    typer.Option(
        "--verbose",
        "-v",
        count=True,
        expose_value=False,
        show_default=False,
        callback=_count_verbosity,
        help="More log output: -v info, -vv debug (default: warnings and errors).",
    ),
]
QuietOpt = Annotated[
    int,
    typer.Option(
        "--quiet",
        "-q",
        count=True,
        expose_value=False,
        show_default=False,
        callback=_count_verbosity,
        help="Log errors only.",
    ),
]


def _show_version(value: bool) -> None:
    if value:
        console.print(f"narratrace {package_version('narratrace')}", markup=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print the version of narratrace and exit.",
        ),
    ] = False,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = 0,
) -> None:
    """narratrace: follow narratives as outlets re-post them. Polls RSS/Atom feeds, extracts
    articles, groups near-duplicate texts into narrative clusters (MinHash + LSH), stores
    everything in DuckDB and writes daily cluster reports."""


@app.command()
def run(
    once: Annotated[bool, typer.Option("--once", help="Run exactly one cycle, then exit.")] = False,
    outlets: OutletsOpt = DEFAULT_OUTLETS,
    db: DbOpt = DEFAULT_DB,
    processes: Annotated[int, typer.Option(help="Extraction processes (trafilatura).")] = 2,
    no_prefect: Annotated[
        bool,
        typer.Option(
            "--no-prefect",
            help="Run the same stages without Prefect (no API "
            "server, no flow run record); for quick checks and benchmarks.",
        ),
    ] = False,
    memory_limit: Annotated[
        str,
        typer.Option(
            help="DuckDB's memory cap in the cycle (e.g. 256MB, 2GB); beyond it DuckDB spills "
            "to disk or, when it cannot, the cycle fails."
        ),
    ] = DEFAULT_MEMORY_LIMIT,
    dask_scheduler: DaskOpt = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = 0,
) -> None:
    """Run one ingestion cycle: poll feeds, fetch and extract new articles, detect narratives,
    store them. Works without a Prefect server (a temporary local one is used)."""
    if not once:
        raise _fail(
            "use `narratrace run --once` for one cycle, or `narratrace serve` for a schedule"
        )
    config = _load(outlets)
    dask_scheduler = _scheduler(dask_scheduler)
    with _progress() as progress, _signal_noted():
        if no_prefect:
            import uuid

            summary = run_cycle(
                config,
                db,
                None,
                processes,
                str(uuid.uuid4()),
                progress=progress,
                memory_limit=memory_limit,
                dask_scheduler=dask_scheduler,
            )
        else:
            flows.cycle.progress_sink = progress
            with _prefect_api(db.absolute().parent):
                summary = cycle_flow(
                    str(outlets),
                    str(db),
                    processes=processes,
                    memory_limit=memory_limit,
                    dask_scheduler=dask_scheduler,
                )
    _print_summary(summary, db)


@contextmanager
def _prefect_api(log_dir: Path, port: int | None = None, announce: bool = False) -> Iterator[None]:
    """Flow runs inside record to PREFECT_API_URL when it is set; otherwise to a local Prefect
    server of this command's own (on `port` if given, its log in `log_dir`), which ends with the
    command however the command ends. `announce`: say where its API and UI are."""
    if os.environ.get("PREFECT_API_URL"):
        if port is not None:
            raise _fail(
                "--prefect-port starts a local server; it cannot be used with PREFECT_API_URL"
            )
        yield
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.server import LocalPrefectServer, ServerError

    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        log: Path | None = log_dir / "prefect-server.log"
    except OSError:  # the command itself says what is wrong with the path
        log = None
    if announce:
        console.print("starting a local Prefect server on 127.0.0.1 ...")
    try:
        server = LocalPrefectServer(port=port, log_path=log).start()
    except ServerError as exc:
        raise _fail(str(exc)) from None
    if announce:
        console.print(f"Prefect API at {server.api_url}, UI at {server.ui_url}")
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield
    finally:
        stop_prefect_threads()  # what they hold (logs, events) reaches the server first
        if announce:
            console.print("stopping the local Prefect server ...")
        server.stop()


def _scheduler(address: str | None) -> str | None:
    if address is None:
        return None
    try:
        return check_scheduler(address)
    except ValueError as exc:
        raise _fail(f"--dask-scheduler: {exc}") from None


@contextmanager
def _signal_noted() -> Iterator[None]:
    """Remember which signal stopped a cycle when Prefect's own handler took it (SIGTERM
    inside a flow run), so that the command still exits 143."""
    global _signal_received
    try:
        yield
    except CycleInterrupted as exc:
        if _signal_received is None and exc.signum is not None:
            _signal_received = exc.signum
        raise


def _load(outlets: Path) -> Any:
    try:
        return load_outlets(outlets)
    except ConfigError as exc:
        raise _fail(str(exc)) from None


class _progress:
    """A progress bar while a cycle runs on a terminal; log lines every few seconds
    otherwise (shown with -v)."""

    def __enter__(self) -> Any:
        from flows.progress import LogProgress, TerminalProgress

        if err.is_terminal:
            self._bar: Any = TerminalProgress(err).__enter__()
            return self._bar
        self._bar = None
        return LogProgress(logging.getLogger("narratrace.cycle"), every=5.0)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


def _print_summary(summary: dict[str, Any], db: Path) -> None:
    table = Table(title="cycle", show_header=False)
    for key, value in summary.items():
        table.add_row(key, str(value))
    console.print(table)
    console.print(f"database: {db.resolve()}")


@app.command()
def report(
    day: Annotated[
        str | None,
        typer.Option("--date", help="Day to report, YYYY-MM-DD (UTC). Default: yesterday."),
    ] = None,
    db: DbOpt = DEFAULT_DB,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the report files.")
    ] = DEFAULT_REPORTS,
    narratives: NarrativesOpt = None,
    window_days: Annotated[
        int, typer.Option(min=1, help="Days the overview covers, ending with --date.")
    ] = 7,
    quiet_days: Annotated[
        int,
        typer.Option(
            min=1, help="Days without a copy after which a returning narrative is 'resurfaced'."
        ),
    ] = 7,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = 0,
) -> None:
    """Write one day's report: report-DATE.html (overview, charts, feed health) with .md and
    .csv beside it, a page per narrative it lists (clusters/ID.html), and index.html."""
    try:
        when = date.fromisoformat(day) if day else None
    except ValueError:
        raise _fail(f"--date must be YYYY-MM-DD, got {day!r}") from None
    if not db.exists():
        raise _fail(f"no database at {db}; run `narratrace run --once` first")
    try:
        with _prefect_api(db.absolute().parent):
            paths = report_flow(
                str(db),
                str(out),
                when,
                str(narratives) if narratives else None,
                window_days=window_days,
                quiet_days=quiet_days,
            )
    except (StoreError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    for path in paths:
        console.print(f"wrote {path}")


@app.command()
def serve(
    outlets: OutletsOpt = DEFAULT_OUTLETS,
    db: DbOpt = DEFAULT_DB,
    reports: Annotated[
        Path, typer.Option("--reports", help="Folder for daily reports.")
    ] = DEFAULT_REPORTS,
    narratives: NarrativesOpt = None,
    processes: Annotated[int, typer.Option(help="Extraction processes (trafilatura).")] = 2,
    interval_minutes: Annotated[
        float | None,
        typer.Option(
            help="Cycle interval; default from the outlets file "
            "[schedule] feeds_interval_minutes (15)."
        ),
    ] = None,
    report_cron: Annotated[
        str | None,
        typer.Option(
            help="Cron for the daily report; default from the outlets "
            'file [schedule] report_cron ("0 6 * * *").'
        ),
    ] = None,
    prefect_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Port of the local Prefect server (API and UI) on 127.0.0.1; default: a "
            "free port.",
        ),
    ] = None,
    dask_scheduler: DaskOpt = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = 0,
) -> None:
    """Run a cycle at start and then every interval, and the daily report on its cron
    (Prefect serve; a cycle still running when the next is due makes the next one skip).
    Uses PREFECT_API_URL when set; otherwise starts a local Prefect server on 127.0.0.1 and
    stops it on exit. Stop with Ctrl-C or SIGTERM."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.runner import Runner

    class ServeRunner(Runner):
        """The runner `prefect.serve` uses, but SIGTERM stops it as Ctrl-C does, so that the
        command exits 143 (Prefect's own handler exits 0)."""

        def handle_sigterm(self, *args: object, **kwargs: object) -> None:
            _on_signal(signal.SIGTERM, None)

    if interval_minutes is not None and not 0 < interval_minutes < math.inf:
        raise _fail(f"--interval-minutes must be greater than 0, got {interval_minutes:g}")
    if report_cron is not None:
        try:
            check_cron(report_cron)
        except ValueError as exc:
            raise _fail(f"--report-cron: {exc}") from None
    dask_scheduler = _scheduler(dask_scheduler)
    overrides = {"feeds_interval_minutes": interval_minutes, "report_cron": report_cron}
    try:
        config = load_outlets(outlets)
        schedule = with_schedule(
            config, **{key: value for key, value in overrides.items() if value is not None}
        ).schedule
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    interval = schedule.feeds_interval_minutes
    cron = schedule.report_cron
    with _prefect_api(db.absolute().parent, port=prefect_port, announce=True):
        one_at_a_time = ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
        )
        cycle = cycle_flow.to_deployment(
            name="cycle",
            interval=timedelta(minutes=interval),
            concurrency_limit=one_at_a_time,
            parameters={
                "outlets_path": str(outlets.resolve()),
                "db_path": str(db.absolute()),
                "processes": processes,
                "dask_scheduler": dask_scheduler,
            },
        )
        daily = report_flow.to_deployment(
            name="daily-report",
            cron=cron,
            concurrency_limit=one_at_a_time,
            parameters={
                "db_path": str(db.absolute()),
                "out_dir": str(reports.resolve()),
                "narratives_path": str(narratives.resolve()) if narratives else None,
            },
        )
        console.print(
            f"serving: a cycle now and every {interval:g} min, the report on cron '{cron}'"
        )
        starter = threading.Thread(
            target=_first_cycle, args=("narratrace-cycle/cycle",), daemon=True
        )
        starter.start()
        runner = ServeRunner()
        for deployment in (cycle, daily):
            runner.add_deployment(deployment)  # type: ignore[arg-type]
        try:
            asyncio.run(runner.start())
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: main() says which and exits 130/143
            pass


def _first_cycle(deployment: str, timeout: float = 120.0) -> None:
    """Start a run of the cycle deployment as soon as `serve` has registered it, so that a
    cycle runs at start rather than one interval later."""
    import time as clock

    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    deadline = clock.monotonic() + timeout
    while clock.monotonic() < deadline:
        try:
            run_deployment(deployment, timeout=0)
            return
        except ObjectNotFound:
            clock.sleep(1.0)
        except Exception as exc:
            logging.getLogger(__name__).error("could not start the first cycle: %s", exc)
            return


@app.command()
def demo(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the demo database and reports.")
    ] = Path("out/demo"),
    processes: Annotated[int, typer.Option(help="Extraction processes (trafilatura).")] = 2,
    port: Annotated[
        int,
        typer.Option(
            help="Port of the outlet simulator on 127.0.0.1; keep it the same "
            "across runs, since article URLs include it."
        ),
    ] = 8765,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = 0,
) -> None:
    """Run the bundled demo offline: start the outlet simulator on 127.0.0.1, run a cycle at
    every simulated release slot over the demo corpus, and write the daily reports."""
    from flows.demo import DemoError, run_demo

    try:
        with _prefect_api(out.absolute()):
            result = run_demo(out, processes=processes, port=port, progress=console.print)
    except DemoError as exc:
        raise _fail(str(exc)) from None
    with Catalog(result.db_path) as store:
        rows = store.sql(
            "SELECT cluster_id, outlet_count, article_count, origin_outlet, label "
            "FROM cluster_summary WHERE outlet_count > 1 "
            "ORDER BY outlet_count DESC, article_count DESC, cluster_id LIMIT 10"
        )
        totals = store.sql(
            "SELECT (SELECT count(*) FROM articles), (SELECT count(*) FROM cluster_summary), "
            "(SELECT count(*) FROM fetch_log WHERE outcome = 'error' AND kind = 'feed'), "
            "(SELECT count(*) FROM fetch_log WHERE outcome IN ('error', 'fallback') "
            "AND kind = 'article')"
        )[0]
    table = Table(title="narratives spread across outlets (top 10)")
    table.add_column("cluster", no_wrap=True)
    table.add_column("outlets", justify="right")
    table.add_column("articles", justify="right", min_width=8)
    table.add_column("origin", no_wrap=True)
    table.add_column("label", no_wrap=True, overflow="ellipsis", max_width=56)
    for row in rows:
        table.add_row(row[0], str(row[1]), str(row[2]), row[3], row[4] or "")
    console.print(table)
    console.print(
        f"articles: {totals[0]}, clusters: {totals[1]}, failed feed polls: {totals[2]}, "
        f"failed article fetches: {totals[3]} (see the fetch_log table)"
    )
    console.print(f"database: {result.db_path.resolve()}")
    days = {p for p in result.report_paths if p.name.startswith("report-") and p.suffix == ".html"}
    index = next((p for p in result.report_paths if p.name == "index.html"), None)
    console.print(f"reports:  {len(days)} days, {index.resolve() if index else out}")


@app.command()
def simulate(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8765,
    day_seconds: Annotated[
        float, typer.Option(help="Real seconds per simulated corpus day.")
    ] = 60.0,
    faults: Annotated[
        str,
        typer.Option(
            help="Also serve fault outlets: 'all' or a comma-separated list of names (hangs, "
            "drips, 5xx, 429 with Retry-After, truncated, garbage, wrong types, redirect "
            "loops, gzip bombs, 50 MB bodies, a 10,000-item feed, duplicate GUIDs, odd dates "
            "and encodings, entity bombs, path-like bodies, links to an internal address); "
            "each on its own address 127.0.0.10+ on the same port. See docs/operations.md."
        ),
    ] = "",
    outlets_out: Annotated[
        Path | None,
        typer.Option(help="Write an outlets file (TOML) for every outlet served."),
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(help="Write the expected outcome of every feed and article (JSON)."),
    ] = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = 0,
) -> None:
    """Serve the demo corpus with the outlet simulator, advancing one corpus day every
    --day-seconds, until interrupted; with --faults, fault outlets beside it."""
    from simulator.__main__ import main as simulator_main

    argv = ["--port", str(port), "--day-seconds", str(day_seconds)]
    if faults:
        argv += ["--faults", faults]
    if outlets_out is not None:
        argv += ["--outlets-out", str(outlets_out)]
    if manifest is not None:
        argv += ["--manifest", str(manifest)]
    code = simulator_main(argv)
    if code:
        raise typer.Exit(code=code)


@config_app.command("check")
def config_check(
    path: Annotated[Path, typer.Argument(help="The outlets file to check.", show_default=False)],
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = 0,
) -> None:
    """Validate an outlets file without running anything: every key known, every value of
    the right type and range, every feed an http(s) URL listed once, a valid report_cron.
    Prints a one-line summary, or the first problem in one line and exits with 1."""
    try:
        config = load_outlets(path)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    feeds = sum(len(outlet.feeds) for outlet in config.outlets)
    console.print(
        f"{path}: valid; {len(config.outlets)} outlets, {feeds} feeds; "
        f"cycle every {config.schedule.feeds_interval_minutes:g} min, "
        f"report on cron '{config.schedule.report_cron}'",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@config_app.command("schema")
def config_schema(
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = 0,
) -> None:
    """Print the JSON Schema of outlets files, for editors that check TOML against one (taplo,
    Even Better TOML): save it and put "#:schema ./outlets.schema.json" on the first line of
    the outlets file."""
    print(json.dumps(outlets_json_schema(), indent=2, ensure_ascii=False))


class OutletsFormat(StrEnum):
    opml = "opml"


@outlets_app.command("import")
def outlets_import(
    file: Annotated[
        Path, typer.Argument(help="OPML file, as feed readers export it.", show_default=False)
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write a new outlets file here (it must not exist yet)."),
    ] = None,
    into: Annotated[
        Path | None,
        typer.Option(
            "--outlets",
            help="Add to this outlets file instead: new [[outlets]] tables at the end, new "
            "feeds of outlets it has (same slug) added to their feeds; comments are kept.",
        ),
    ] = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = 0,
) -> None:
    """Read the outlets of an OPML file into an outlets file. Feed outlines (xmlUrl) become
    feeds, their text or title the outlet's name, htmlUrl its homepage, the folders above
    them its category ("News / India"); feeds with one htmlUrl become one outlet. Feeds
    listed twice or not http(s) are skipped with a warning. What is written passes
    `narratrace config check`."""
    from ingest.opml import OpmlError, merge_into_outlets_file, new_outlets_file, read_opml

    if (out is None) == (into is None):
        raise _fail("give one of --out PATH (a new outlets file) or --outlets PATH (add to one)")
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        found = read_opml(data, str(file))
        if out is not None:
            if out.exists():
                raise _fail(f"{out} exists; use --outlets {out} to add to it")
            if not found.outlets:
                raise _fail(f"{file}: lists no feeds (no <outline> with an http(s) xmlUrl)")
            text = new_outlets_file(
                found.outlets, f"Outlets read from {file.name} by `narratrace outlets import`."
            )
            target, summary = out, f"{len(found.outlets)} outlets with {found.feeds} feeds"
        else:
            assert into is not None
            current = load_outlets(into)
            merged = merge_into_outlets_file(
                into.read_text(encoding="utf-8"), current, found.outlets
            )
            text, target = merged.text, into
            summary = (
                f"{merged.outlets_added} new outlets, {merged.feeds_added} new feeds "
                f"({merged.feeds_already_listed} already listed)"
            )
        parse_outlets(tomllib.loads(text), str(target))  # what is written passes config check
    except (OpmlError, ConfigError) as exc:
        raise _fail(str(exc)) from None
    _write_atomically(target, text)
    skipped = f"; skipped {len(found.skipped)} outlines" if found.skipped else ""
    console.print(
        f"{target}: {summary} from {file}{skipped}", markup=False, highlight=False, soft_wrap=True
    )


@outlets_app.command("export")
def outlets_export(
    format: Annotated[
        OutletsFormat, typer.Option("--format", help="Format to write.")
    ] = OutletsFormat.opml,
    outlets: OutletsOpt = DEFAULT_OUTLETS,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file instead of standard output.")
    ] = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = 0,
) -> None:
    """Write the outlets of an outlets file as OPML 2.0, for feed readers and monitoring tools:
    one outline per feed, in folders for categories, with narratrace's slug, country and kind
    as attributes of its own, so `narratrace outlets import` gives back the same outlets."""
    from ingest.opml import write_opml

    try:
        config = load_outlets(outlets)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    document = write_opml(config.outlets, title=f"narratrace outlets ({outlets.name})")
    if out is None:
        sys.stdout.buffer.write(document)
        sys.stdout.flush()
    else:
        _write_atomically(out, document.decode("utf-8"))
        console.print(f"wrote {out}", markup=False, highlight=False)


def _write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step: a reader sees the old file or the new one."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise _fail(f"cannot write {path}: {exc.strerror or exc}") from None


class ExportFormat(StrEnum):
    parquet = "parquet"
    csv = "csv"


@app.command()
def reprocess(
    db: DbOpt = DEFAULT_DB,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = 0,
) -> None:
    """Sign every stored article again with the current detection parameters, from its stored
    text, and replace its LSH keys (after an upgrade that changed them, e.g. from a version
    that kept a band index folder). In batches of 1,000, each in one transaction, with
    progress shown: stopped, it carries on where it was; run again, it changes nothing.
    Clusters and their ids stay as they are. Then the catalog is published again in full.
    Run it while no cycle runs (the database takes one writer)."""
    from flows.reprocess import reprocess_store

    def show(done: int, total: int) -> None:
        console.print(f"re-signed {done}/{total} articles", markup=False, highlight=False)

    done = reprocess_store(db, progress=show)
    console.print(
        f"{done} articles signed again; catalog published at {db}", markup=False, highlight=False
    )


@app.command()
def gather(
    shards: Annotated[
        list[Path],
        typer.Argument(
            help="Each shard's database (its --db path): a store with cycles of its own.",
            show_default=False,
        ),
    ],
    db: DbOpt = DEFAULT_DB,
    no_prefect: Annotated[
        bool,
        typer.Option("--no-prefect", help="Gather without Prefect (no flow run record)."),
    ] = False,
    memory_limit: Annotated[
        str, typer.Option(help="DuckDB's memory cap while gathering and detecting.")
    ] = DEFAULT_MEMORY_LIMIT,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = 0,
) -> None:
    """Gather the finished cycles of other stores (shards, each polling its own outlets) into
    the store at --db, in one transaction per shard run, then detect narratives across all of
    them and publish its catalog. Reads each shard's published catalog, so it never waits for
    a shard's cycle; a run gathered before is left as it is. A shard that cannot be read is
    named and the command exits 1, after gathering the others."""
    with _signal_noted():
        if no_prefect:
            import uuid

            summary = run_gather(db, shards, str(uuid.uuid4()), memory_limit=memory_limit)
        else:
            with _prefect_api(db.absolute().parent):
                summary = gather_flow(
                    str(db), [str(shard) for shard in shards], memory_limit=memory_limit
                )
    table = Table(title="gather", show_header=False)
    for key, value in summary.items():
        table.add_row(key, str(value))
    console.print(table)
    console.print(f"database: {db.resolve()}")


def _shard_pair(value: str) -> tuple[Path, Path]:
    outlets, sep, db = value.partition("=")
    if not sep or not outlets or not db:
        raise _fail(f"--shard {value!r}: give OUTLETS=DB, an outlets file and its database")
    return Path(outlets), Path(db)


@app.command("deploy-shards")
def deploy_shards(
    shard: Annotated[
        list[str],
        typer.Option(
            "--shard",
            help="OUTLETS=DB: a shard's outlets file and its own database; repeat per shard.",
            show_default=False,
        ),
    ],
    db: DbOpt = DEFAULT_DB,
    pool: Annotated[
        str, typer.Option("--pool", help="Prefect work pool (type process; made if missing).")
    ] = "narratrace",
    interval_minutes: Annotated[
        float,
        typer.Option(help="How often each shard runs a cycle and the writer gathers them."),
    ] = 15.0,
    processes: Annotated[
        int, typer.Option(help="Extraction processes of each shard's cycle (trafilatura).")
    ] = 2,
    dask_scheduler: DaskOpt = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = 0,
) -> None:
    """Deploy sharded polling on a Prefect work pool: one cycle deployment per shard (its own
    outlets file and database) and one gathering into the writer's database at --db, each on
    the interval, at most one run of each at a time. Workers on any machine run them:
    `prefect worker start --pool POOL`. Needs PREFECT_API_URL (the server the workers poll).
    Paths are stored as given, made absolute: every worker must see them at the same place."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.deployments.runner import EntrypointType
    from prefect.exceptions import ObjectNotFound

    if not os.environ.get("PREFECT_API_URL"):
        raise _fail("deploy-shards needs the Prefect server your workers poll: set PREFECT_API_URL")
    if not 0 < interval_minutes < math.inf:
        raise _fail(f"--interval-minutes must be greater than 0, got {interval_minutes:g}")
    pairs = [_shard_pair(value) for value in shard]
    for outlets, _db in pairs:
        _load(outlets)
    try:
        dbs = shard_paths(db, [shard_db for _outlets, shard_db in pairs])
    except StoreError as exc:
        raise _fail(str(exc)) from None
    import httpx

    try:
        with get_client(sync_client=True) as client:
            try:
                kind = client.read_work_pool(pool).type
            except ObjectNotFound:
                client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
                kind = "process"
    except httpx.TransportError as exc:
        url = os.environ["PREFECT_API_URL"]
        raise _fail(f"cannot reach the Prefect server at {url} (PREFECT_API_URL): {exc}") from None
    if kind != "process":
        raise _fail(f"work pool {pool!r} is of type {kind}; narratrace deploys to a process pool")
    every = timedelta(minutes=interval_minutes)
    one_at_a_time = ConcurrencyLimitConfig(
        limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
    )
    common = {
        "work_pool_name": pool,
        "interval": every,
        "concurrency_limit": one_at_a_time,
        "build": False,
        "push": False,
        "entrypoint_type": EntrypointType.MODULE_PATH,  # narratrace as installed on workers
        "print_next_steps": False,
    }
    names = []
    for (outlets, _given), shard_db in zip(pairs, dbs, strict=True):
        name = f"shard-{shard_db.stem}"
        cycle_flow.deploy(
            name=name,
            parameters={
                "outlets_path": str(outlets.resolve()),
                "db_path": str(shard_db),
                "processes": processes,
                "dask_scheduler": _scheduler(dask_scheduler),
            },
            **common,  # type: ignore[arg-type]
        )
        names.append(f"narratrace-cycle/{name}")
    writer = StoreLayout.for_db(db).catalog
    gather_flow.deploy(
        name=f"gather-{writer.stem}",
        parameters={"db_path": str(writer), "shards": [str(path) for path in dbs]},
        **common,  # type: ignore[arg-type]
    )
    names.append(f"narratrace-gather/gather-{writer.stem}")
    console.print(
        f"deployed on work pool {pool}, every {interval_minutes:g} min: {', '.join(names)}\n"
        f"start a worker on each machine that runs them: prefect worker start --pool {pool}",
        markup=False,
        highlight=False,
    )


@app.command()
def export(
    db: DbOpt = DEFAULT_DB,
    export_format: Annotated[
        ExportFormat, typer.Option("--format", help="File format of the exported files.")
    ] = ExportFormat.parquet,
    out: Annotated[Path, typer.Option("--out", help="Folder for the exported files.")] = Path(
        "export"
    ),
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = 0,
) -> None:
    """Write every published table and view (the contract views article_clusters and
    cluster_summary, and the tables behind them) as one Parquet or CSV file each, from the
    last finished cycle, for tools that do not read DuckDB. Never waits for a running cycle."""
    from store.export import export_catalog

    with Catalog(db) as catalog:
        written = export_catalog(catalog, out, export_format.value)
    for path, rows in written:
        console.print(f"wrote {path} ({rows} rows)", markup=False, highlight=False)


@app.command()
def sql(
    query: Annotated[
        str | None,
        typer.Argument(help="SQL to run; without it, an interactive prompt.", show_default=False),
    ] = None,
    db: DbOpt = DEFAULT_DB,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = 0,
) -> None:
    """Query the published database read-only, like the DuckDB shell: one query given as an
    argument, or a prompt that runs each statement ended by ';' (.tables lists the tables and
    views, .quit or Ctrl-D leaves). Never blocks a cycle, and a cycle never blocks it."""
    from flows.shell import SqlShell

    with Catalog(db) as catalog:
        shell = SqlShell(catalog, console)
        if query is not None:
            if not shell.run(query):
                raise typer.Exit(code=1)
            return
        shell.interact()


# ---------------------------------------------------------------------------------- entry
class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Python is running, so the command stops as on Ctrl-C."""


_signal_received: int | None = None


def _on_signal(signum: int, frame: object) -> None:
    global _signal_received
    if _signal_received is not None:  # a second signal: stop waiting for a clean end
        os._exit(128 + signum)
    _signal_received = signum
    raise _Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if "could not allocate" in text.lower() or "out of memory" in text.lower():
        return f"DuckDB ran out of memory (try a larger --memory-limit): {text}"
    known = (ConfigError, StoreError, PublishError, GatherError)
    return text if isinstance(exc, known) and text else f"{type(exc).__name__}: {text}"


def main() -> None:
    """Run a command and exit with what it did: 0 when it did its job, 1 when it failed (one
    line on stderr says why; -v shows the traceback), 2 for a usage error, 130 after Ctrl-C
    and 143 after SIGTERM. Child processes (extraction workers) and Prefect's threads are
    stopped before the process ends. SIGUSR1 prints every thread's stack to stderr (a
    process that seems stuck says where), and the process goes on."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    code = 0
    try:
        app(prog_name="narratrace")  # usage errors: shown by typer, exit 2; Ctrl-C: exit 130
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:  # raised outside typer's own handling (e.g. during clean-up)
        code = 130
    except Exception as exc:
        if logging.getLogger().isEnabledFor(logging.INFO):
            err.print_exception()
        if _signal_received is None:  # else what failed was cut short by the signal (a query)
            err.print(f"[red]error:[/red] {escape(_one_line(exc))}", soft_wrap=True)
        code = 1
    if code == 130 or _signal_received is not None:
        code = 128 + (_signal_received or signal.SIGINT)
        name = "SIGTERM" if code == 143 else "Ctrl-C"
        err.print(f"stopped by {name}; what was stored so far is kept", markup=False)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the clean-up below is not interrupted
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from ingest.extract import shutdown_pool

    shutdown_pool(terminate=code != 0)
    stop_prefect_threads()
    sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
