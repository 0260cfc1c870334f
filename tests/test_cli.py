"""The command line as users and other tools drive it: real subprocesses, a real simulator on
127.0.0.1, real Prefect (a temporary local API server, or a served schedule)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from simulator.corpus import DEMO_ROOT, load_corpus
from simulator.server import OutletSimulator

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ["run", "serve", "report", "demo", "simulate"]


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


def test_every_command_has_help_and_is_documented():
    readme = (ROOT / "README.md").read_text()
    top = narratrace("--help")
    assert top.returncode == 0
    for command in COMMANDS:
        assert command in top.stdout
        result = narratrace(command, "--help")
        assert result.returncode == 0, result.stderr
        assert "Usage" in result.stdout
        assert f"narratrace {command}" in readme, f"README does not show `narratrace {command}`"
    run_help = narratrace("run", "--help").stdout
    for flag in ("--once", "--outlets", "--db", "--processes"):
        assert flag in run_help


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


def test_serve_starts_a_local_server_runs_on_schedule_and_stops_cleanly(
    simulator, tmp_path, own_prefect_home
):
    outlets = _outlets_file(simulator, tmp_path / "outlets.toml")
    db = tmp_path / "served.duckdb"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "serve",
            "--outlets",
            str(outlets),
            "--db",
            str(db),
            "--reports",
            str(tmp_path / "reports"),
            "--interval-minutes",
            "0.25",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=own_prefect_home,
        cwd=ROOT,
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True
    )
    reader.start()
    api_port = None
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and _completed_runs(db) < 1:
            assert process.poll() is None, "".join(lines)
            time.sleep(1)
        assert _completed_runs(db) >= 1, "no scheduled cycle completed:\n" + "".join(lines)
        found = re.search(r"127\.0\.0\.1:(\d+)/api", "".join(lines))
        assert found, "".join(lines)
        api_port = int(found.group(1))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0
    with socket.socket() as sock:  # the local Prefect server is gone too
        assert sock.connect_ex(("127.0.0.1", api_port)) != 0


def _completed_runs(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.IOException:  # the served cycle holds the write lock right now
        return 0
    try:
        return con.execute("SELECT count(*) FROM runs WHERE status = 'completed'").fetchall()[0][0]
    except duckdb.CatalogException:
        return 0
    finally:
        con.close()
