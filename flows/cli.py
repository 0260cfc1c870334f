"""The `narratrace` command line: a thin layer over the flows and the library."""

from __future__ import annotations

import logging
import signal
import sys
from contextlib import nullcontext
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from flows.prefect_env import (
    apply_offline_defaults,
    exit_quietly_after_cleanup,
    set_exit_code,
)

apply_offline_defaults()

from flows.cycle import cycle_flow, report_flow, run_cycle  # noqa: E402
from ingest.config import ConfigError, load_outlets  # noqa: E402
from store.db import Store, StoreError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTLETS = ROOT / "seeds" / "outlets.toml"
DEFAULT_DB = Path("narratrace.duckdb")
DEFAULT_REPORTS = Path("reports")

app = typer.Typer(
    help="narratrace: follow narratives as outlets re-post them. Polls RSS/Atom feeds, "
    "extracts articles, groups near-duplicate texts into narrative clusters (MinHash + LSH), "
    "stores everything in DuckDB and writes daily cluster reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
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
DbOpt = Annotated[Path, typer.Option("--db", envvar="NARRATRACE_DB", help="DuckDB database file.")]
NarrativesOpt = Annotated[
    Path | None,
    typer.Option("--narratives", help="Watchlist TOML (default: seeds/narratives.toml)."),
]


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=1)


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
) -> None:
    """Run one ingestion cycle: poll feeds, fetch and extract new articles, detect narratives,
    store them. Works without a Prefect server (a temporary local one is used)."""
    if not once:
        raise _fail(
            "use `narratrace run --once` for one cycle, or `narratrace serve` for a schedule"
        )
    try:
        config = load_outlets(outlets)
        if no_prefect:
            import uuid

            summary = run_cycle(config, str(db), None, processes, str(uuid.uuid4()))
        else:
            summary = cycle_flow(str(outlets), str(db), processes=processes)
    except (ConfigError, StoreError) as exc:
        raise _fail(str(exc)) from None
    _print_summary(summary, db)


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
) -> None:
    """Write one day's cluster report as HTML, Markdown and CSV."""
    try:
        when = date.fromisoformat(day) if day else None
    except ValueError:
        raise _fail(f"--date must be YYYY-MM-DD, got {day!r}") from None
    if not db.exists():
        raise _fail(f"no database at {db}; run `narratrace run --once` first")
    try:
        paths = report_flow(str(db), str(out), when, str(narratives) if narratives else None)
    except (StoreError, ValueError) as exc:
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
) -> None:
    """Run cycles and daily reports on a schedule (Prefect serve). Uses PREFECT_API_URL when
    set; otherwise starts a local Prefect server on 127.0.0.1 and stops it on exit."""
    import os

    from prefect import serve as prefect_serve
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.server import LocalPrefectServer, ServerError

    try:
        config = load_outlets(outlets)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    interval = interval_minutes or config.schedule.feeds_interval_minutes
    cron = report_cron or config.schedule.report_cron
    server = None
    if not os.environ.get("PREFECT_API_URL"):
        console.print("starting a local Prefect server on 127.0.0.1 ...")
        try:
            server = LocalPrefectServer(log_path=db.resolve().parent / "prefect-server.log").start()
        except ServerError as exc:
            raise _fail(str(exc)) from None
        console.print(f"Prefect API at {server.api_url} (UI at {server.api_url[:-4]})")

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    settings = temporary_settings({PREFECT_API_URL: server.api_url}) if server else nullcontext()
    try:
        with settings:
            cycle = cycle_flow.to_deployment(
                name="cycle",
                interval=timedelta(minutes=interval),
                parameters={
                    "outlets_path": str(outlets.resolve()),
                    "db_path": str(db.resolve()),
                    "processes": processes,
                },
            )
            daily = report_flow.to_deployment(
                name="daily-report",
                cron=cron,
                parameters={
                    "db_path": str(db.resolve()),
                    "out_dir": str(reports.resolve()),
                    "narratives_path": str(narratives.resolve()) if narratives else None,
                },
            )
            console.print(f"serving: cycle every {interval:g} min, report on cron '{cron}'")
            prefect_serve(cycle, daily, print_starting_message=False)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            console.print("stopping the local Prefect server ...")
            server.stop()


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
) -> None:
    """Run the bundled demo offline: start the outlet simulator on 127.0.0.1, run a cycle at
    every simulated release slot over the demo corpus, and write the daily reports."""
    from flows.demo import DemoError, run_demo

    try:
        result = run_demo(out, processes=processes, port=port, progress=console.print)
    except DemoError as exc:
        raise _fail(str(exc)) from None
    with Store(result.db_path) as store:
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
    html = [p for p in result.report_paths if p.suffix == ".html"]
    console.print(f"reports:  {len(html)} days in {html[0].parent.resolve() if html else out}")


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


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    exit_quietly_after_cleanup()  # registered before any flow runs, so Prefect's handlers run first
    try:
        app()
    except SystemExit as exc:
        set_exit_code(exc.code)
        raise
    finally:
        from ingest.extract import shutdown_pool

        shutdown_pool()  # the extraction workers end before the quiet exit skips their cleanup


if __name__ == "__main__":
    main()
