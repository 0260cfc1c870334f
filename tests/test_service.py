"""narratrace as an always-on service: analysts' connections never stop cycles or reports,
exit codes tell the truth, Ctrl-C and SIGTERM stop a cycle and leave nothing behind. Real
processes of the CLI, a real simulator on 127.0.0.1, real DuckDB files."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import duckdb
import httpx
import pytest

from flows.server import free_port
from simulator.corpus import DEMO_ROOT, load_corpus
from simulator.pages import article_path
from simulator.server import OutletSimulator
from store.publish import StoreLayout

ROOT = Path(__file__).resolve().parent.parent
CORPUS = load_corpus(DEMO_ROOT)


def narratrace(
    *args: str, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The test's own Prefect home and a mark on every process the test starts."""
    values = dict(os.environ)
    values["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    values["NARRATRACE_TEST_CASE"] = uuid.uuid4().hex
    values.pop("PREFECT_API_URL", None)
    return values


def processes_marked(env: dict[str, str]) -> list[str]:
    """Command lines of live processes carrying this test's mark."""
    needle = f"NARRATRACE_TEST_CASE={env['NARRATRACE_TEST_CASE']}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                if (entry / "stat").read_text().split(") ", 1)[1].startswith("Z"):
                    continue
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


def no_process_left(env: dict[str, str], wait: float = 20.0) -> list[str]:
    deadline = time.monotonic() + wait
    left = processes_marked(env)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = processes_marked(env)
    return left


@pytest.fixture
def simulator() -> Iterator[OutletSimulator]:
    with OutletSimulator(CORPUS, timeout_delay=60.0) as sim:
        sim.set_now(CORPUS.start + timedelta(days=1))
        yield sim


def outlets_file(sim: OutletSimulator, path: Path, timeout: float = 1.0) -> Path:
    path.write_text(
        sim.outlets_toml(
            extra=f"[fetch]\ntimeout_seconds = {timeout}\ntransient_retries = 0\n"
            "per_host_concurrency = 8\n"
            "[schedule]\nmin_interval_minutes = 0.01\nmax_interval_minutes = 0.02\n"
        ),
        encoding="utf-8",
    )
    return path


def runs(db: Path) -> list[tuple[str, str | None]]:
    """(status, error) of every run, oldest first, read from the working database."""
    con = duckdb.connect(str(StoreLayout.for_db(db).working), read_only=True)
    try:
        return con.execute("SELECT status, error FROM runs ORDER BY started_at").fetchall()
    finally:
        con.close()


ANALYST = textwrap.dedent(
    """
    import json, sys, time, duckdb
    path, stop = sys.argv[1], sys.argv[2]
    con = duckdb.connect(path, read_only=True)  # held for the whole test
    queries = failures = 0
    counts = []
    import os
    while not os.path.exists(stop):
        try:
            counts.append(con.execute("SELECT count(*) FROM article_clusters").fetchall()[0][0])
            con.execute("SELECT * FROM cluster_summary ORDER BY outlet_count DESC").fetchall()
            queries += 1
        except Exception as exc:
            failures += 1
            print("analyst query failed:", exc, file=sys.stderr, flush=True)
        time.sleep(1)
    con.close()
    fresh = duckdb.connect(path, read_only=True)
    latest = fresh.execute("SELECT count(*) FROM article_clusters").fetchall()[0][0]
    print(json.dumps({"queries": queries, "failures": failures, "seen": sorted(set(counts)),
                      "after_reconnecting": latest}))
    """
)


class Analyst:
    """A separate process holding a read-only connection to the published database and
    querying it every second until stopped."""

    def __init__(self, db: Path, folder: Path, env: dict[str, str]):
        self.stop_file = folder / "analyst.stop"
        self.process = subprocess.Popen(
            [sys.executable, "-c", ANALYST, str(db), str(self.stop_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def finish(self) -> dict:
        self.stop_file.touch()
        out, err = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, err
        result = json.loads(out)
        result["stderr"] = err
        return result


def test_an_analyst_connection_never_stops_cycles_or_reports(simulator, tmp_path, env):
    outlets = outlets_file(simulator, tmp_path / "outlets.toml")
    db = tmp_path / "nt.duckdb"
    first = narratrace("run", "--once", "--no-prefect", "--outlets", str(outlets), "--db", str(db),
                       env=env)  # fmt: skip
    assert first.returncode == 0, first.stderr
    analyst = Analyst(db, tmp_path, env)
    try:
        time.sleep(2)  # the analyst has its connection open and has queried
        for day in (2, 3, 4):  # three more cycles, each with new articles, and a report
            simulator.set_now(CORPUS.start + timedelta(days=day))
            args = ["run", "--once", "--outlets", str(outlets), "--db", str(db), "-v"]
            if day != 3:
                args.append("--no-prefect")  # one of them as a Prefect flow run
            cycle = narratrace(*args, env=env)
            assert cycle.returncode == 0, cycle.stderr
            assert "feeds polled:" in cycle.stderr  # progress, a line every few seconds
        report = narratrace("report", "--date", "2025-04-24", "--db", str(db),
                            "--out", str(tmp_path / "reports"), env=env)  # fmt: skip
        assert report.returncode == 0, report.stderr
    finally:
        seen = analyst.finish()
    assert seen["failures"] == 0, seen["stderr"]
    assert seen["queries"] >= 3
    assert len(seen["seen"]) == 1  # its connection keeps the catalog it opened
    published = duckdb.connect(str(db), read_only=True)
    try:
        stored = published.execute("SELECT count(*) FROM articles").fetchall()[0][0]
    finally:
        published.close()
    assert seen["after_reconnecting"] == stored > seen["seen"][0]
    assert [status for status, _ in runs(db)] == ["completed"] * 4
    assert (tmp_path / "reports" / "report-2025-04-24.html").exists()


def test_serve_runs_a_cycle_at_start_beside_an_analyst_and_stops_cleanly(simulator, tmp_path, env):
    outlets = outlets_file(simulator, tmp_path / "outlets.toml")
    db = tmp_path / "served.duckdb"
    first = narratrace("run", "--once", "--no-prefect", "--outlets", str(outlets), "--db", str(db),
                       env=env)  # fmt: skip
    assert first.returncode == 0, first.stderr
    simulator.set_now(CORPUS.start + timedelta(days=3))
    analyst = Analyst(db, tmp_path, env)
    port = free_port()
    served_env = dict(env, PREFECT_SERVER_UI_ENABLED="true")
    process = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "serve", "--outlets", str(outlets), "--db", str(db),
         "--reports", str(tmp_path / "reports"), "--interval-minutes", "0.5",
         "--prefect-port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=served_env, cwd=ROOT,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")))
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and sum("new articles" in x for x in lines) < 2:
            assert process.poll() is None, "".join(lines)
            time.sleep(1)
        cycle_lines = [x for x in lines if re.match(r"cycle \d{4}-\d\d-\d\d \d\d:\d\d: ", x)]
        assert len(cycle_lines) >= 2, "".join(lines)  # one at start, one on the schedule
        assert "new articles" in cycle_lines[0] and "joined clusters" in cycle_lines[0]
        assert not any("leaked" in x for x in lines), "".join(lines)
        ui = re.search(r"UI at (http://127\.0\.0\.1:(\d+)/)", "".join(lines))
        assert ui and int(ui.group(2)) == port, "".join(lines)
        api = f"http://127.0.0.1:{port}/api"
        page = httpx.get(ui.group(1), timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()
        # the UI asks the server where its API is: it must be this server's
        settings = httpx.get(f"{ui.group(1)}ui-settings", timeout=10).json()
        assert settings["api_url"] == api
        flow_runs = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=10).json()
        names = {run["name"] for run in flow_runs}
        assert any(re.fullmatch(r"cycle \d{4}-\d\d-\d\d \d\d:\d\d", n) for n in names), names
        artifacts = httpx.post(f"{api}/artifacts/filter", json={}, timeout=10).json()
        assert "cycle-summary" in {a["key"] for a in artifacts}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
            reader.join(timeout=10)
            seen = analyst.finish()
    assert process.returncode == 143, "".join(lines)
    assert seen["failures"] == 0, seen["stderr"]
    assert seen["after_reconnecting"] > seen["seen"][0]
    assert not no_process_left(env), "a process outlived serve"
    assert all(status in ("completed", "failed") for status, _ in runs(db))
    assert sum(status == "completed" for status, _ in runs(db)) >= 3


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_a_network_outage_fails_the_cycle(tmp_path, env):
    closed = [free_port(), free_port()]
    outlets = tmp_path / "outlets.toml"
    outlets.write_text(
        "allow_private_hosts = true\n[fetch]\ntransient_retries = 0\ntimeout_seconds = 1\n"
        + "".join(
            f'[[outlets]]\nname = "Outlet {i}"\nfeeds = ["http://127.0.0.{i + 1}:{port}/feed"]\n'
            for i, port in enumerate(closed)
        )
    )
    db = tmp_path / "nt.duckdb"
    result = narratrace("run", "--once", "--no-prefect", "--outlets", str(outlets), "--db", str(db),
                        env=env)  # fmt: skip
    assert "NetworkUnavailable" in _one_error_line(result)
    assert runs(db) == [("failed", runs(db)[0][1])] and "NetworkUnavailable" in runs(db)[0][1]


def test_duckdb_out_of_memory_fails_the_cycle(simulator, tmp_path, env):
    outlets = outlets_file(simulator, tmp_path / "outlets.toml")
    db = tmp_path / "nt.duckdb"
    result = narratrace("run", "--once", "--no-prefect", "--outlets", str(outlets), "--db", str(db),
                        "--memory-limit", "1MB", env=env)  # fmt: skip
    assert "memory" in _one_error_line(result).lower()


def _small_disk(folder: Path) -> tuple[Path, object]:
    """A folder on a 4 MB file system of its own (tmpfs), or, where mounting is not allowed,
    a folder beside a file size limit set in the child process (writes past it fail as on a
    full disk). Returns the folder and the preexec function for the child."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode == 0:
        return folder, None

    def limit() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4_000_000, 4_000_000))

    return folder, limit


def test_a_full_disk_fails_the_cycle(simulator, tmp_path, env):
    outlets = outlets_file(simulator, tmp_path / "outlets.toml")
    simulator.set_now(CORPUS.start + timedelta(days=40))  # enough articles to fill 4 MB
    disk, limit = _small_disk(tmp_path / "disk")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "flows.cli", "run", "--once", "--no-prefect", "--outlets",
             str(outlets), "--db", str(disk / "nt.duckdb")],
            capture_output=True, text=True, timeout=300, env=env, cwd=ROOT, preexec_fn=limit,  # type: ignore[arg-type]
        )  # fmt: skip
        line = _one_error_line(result)
        assert re.search(r"space|too large|disk", line, re.I), line
    finally:
        if limit is None:
            subprocess.run(["umount", str(disk)], check=False)


def test_a_corrupt_database_stops_the_cycle_with_one_line(simulator, tmp_path, env):
    outlets = outlets_file(simulator, tmp_path / "outlets.toml")
    db = tmp_path / "nt.duckdb"
    layout = StoreLayout.for_db(db)
    layout.data_dir.mkdir()
    layout.working.write_bytes(os.urandom(300_000))
    result = narratrace("run", "--once", "--no-prefect", "--outlets", str(outlets), "--db", str(db),
                        env=env)  # fmt: skip
    assert "cannot open" in _one_error_line(result)


def test_bad_paths_and_schedules_exit_1(simulator, tmp_path, env):
    outlets = outlets_file(simulator, tmp_path / "outlets.toml")
    regular = tmp_path / "a-file"
    regular.write_text("x")
    under_file = narratrace("run", "--once", "--no-prefect", "--outlets", str(outlets),
                            "--db", str(regular / "nt.duckdb"), env=env)  # fmt: skip
    assert "regular file" in _one_error_line(under_file)
    cron = narratrace("serve", "--outlets", str(outlets), "--db", str(tmp_path / "s.duckdb"),
                      "--report-cron", "61 * * * *", env=env)  # fmt: skip
    assert "--report-cron" in _one_error_line(cron)


@pytest.mark.parametrize(("sent", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_a_cycle_and_leaves_nothing_behind(tmp_path, env, sent, code):
    # the whole corpus is out, and its pages that never answer in time hold the cycle: the signal
    # comes once one of them has been asked for, so the cycle is busy when it arrives
    hanging = [article_path(a) for a in CORPUS.articles if a.fault == "timeout"]
    assert hanging
    with OutletSimulator(CORPUS, timeout_delay=120.0) as sim:
        sim.set_now(CORPUS.articles[-1].published_at + timedelta(days=1))
        outlets = outlets_file(sim, tmp_path / "outlets.toml", timeout=60.0)
        db = tmp_path / "nt.duckdb"
        process = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "run", "--once", "--outlets", str(outlets),
             "--db", str(db), "--processes", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
            start_new_session=True,  # its whole process group can be killed if it hangs
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and not any(sim.stats.hits(p) for p in hanging):
                assert process.poll() is None, process.communicate()
                time.sleep(0.2)
            process.send_signal(sent)
            try:
                out, err = process.communicate(timeout=90)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGUSR1)  # its threads' stacks, to its stderr
                time.sleep(2)
                os.killpg(process.pid, signal.SIGKILL)
                out, err = process.communicate(timeout=30)
                pytest.fail(f"the cycle did not stop within 90 s of {sent.name}; stderr:\n{err}")
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate(timeout=30)
    assert process.returncode == code, err
    assert "Traceback" not in err, err
    assert "error:" not in err, err  # what the signal cut short (a query) is not an error
    assert not no_process_left(env), "a process outlived the cycle"
    assert runs(db)[-1][0] == "interrupted"


@pytest.mark.parametrize("prefect", [False, True], ids=["no-prefect", "prefect"])
def test_a_run_left_running_by_a_killed_process_is_marked_abandoned(
    simulator, tmp_path, env, prefect
):
    # killed once a page that never answers in time has been asked for: the cycle is busy;
    # nothing it started lives on (the extraction workers, the local Prefect server)
    hanging = [article_path(a) for a in CORPUS.articles if a.fault == "timeout"]
    db = tmp_path / "nt.duckdb"
    with OutletSimulator(CORPUS, timeout_delay=120.0) as sim:
        sim.set_now(CORPUS.articles[-1].published_at + timedelta(days=1))
        outlets = outlets_file(sim, tmp_path / "outlets.toml", timeout=60.0)
        process = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "run", "--once", "--outlets", str(outlets),
             "--db", str(db), *([] if prefect else ["--no-prefect"])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not any(sim.stats.hits(p) for p in hanging):
                assert process.poll() is None, "the cycle ended before it was killed"
                time.sleep(0.2)
        finally:
            process.kill()
            process.wait(timeout=30)
    assert not no_process_left(env)
    again = narratrace("run", "--once", "--no-prefect", "--outlets",
                       str(outlets_file(simulator, tmp_path / "o2.toml")), "--db", str(db),
                       env=env)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert [status for status, _ in runs(db)] == ["abandoned", "completed"]


def test_export_and_sql_read_the_published_database(simulator, tmp_path, env):
    outlets = outlets_file(simulator, tmp_path / "outlets.toml")
    db = tmp_path / "nt.duckdb"
    assert narratrace("run", "--once", "--no-prefect", "--outlets", str(outlets), "--db", str(db),
                      env=env).returncode == 0  # fmt: skip
    for fmt in ("parquet", "csv"):
        out = tmp_path / f"export-{fmt}"
        result = narratrace("export", "--db", str(db), "--format", fmt, "--out", str(out), env=env)
        assert result.returncode == 0, result.stderr
        names = {p.name for p in out.iterdir()}
        for name in ("article_clusters", "cluster_summary", "articles", "cluster_members",
                     "clusters", "outlets", "feeds", "runs", "fetch_log", "entries"):  # fmt: skip
            assert f"{name}.{fmt}" in names
        con = duckdb.connect()
        reader = "read_parquet" if fmt == "parquet" else "read_csv"
        exported = con.execute(f"SELECT count(*) FROM {reader}('{out}/article_clusters.{fmt}')")
        assert exported.fetchall()[0][0] == len(
            [a for a in simulator.released() if a.outlet != "northern-courier"]
        )
    answer = narratrace(
        "sql", "SELECT count(*) AS n FROM cluster_summary", "--db", str(db), env=env
    )
    assert answer.returncode == 0, answer.stderr
    assert re.search(r"\b\d+\b", answer.stdout.split("n", 1)[1])
    piped = subprocess.run(
        [sys.executable, "-m", "flows.cli", "sql", "--db", str(db)],
        input="SELECT 40 + 2 AS answer;\n.tables\nSELECT broken FROM nowhere;\n",
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert piped.returncode == 0
    assert "42" in piped.stdout and "article_clusters" in piped.stdout
    assert "nowhere" in piped.stdout  # the error, in one line, and the prompt goes on
    bad = narratrace("sql", "SELECT broken FROM nowhere", "--db", str(db), env=env)
    assert bad.returncode == 1
    missing = narratrace("export", "--db", str(tmp_path / "none.duckdb"), env=env)
    assert "run `narratrace run --once` first" in _one_error_line(missing)
    shutil.rmtree(tmp_path / "export-csv")
