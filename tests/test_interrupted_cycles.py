"""Cycles interrupted at any point lose nothing. Real cycles run in processes of their own
against the outlet simulator (feeds answer 304 once read: their validators are saved), and are
killed with SIGKILL, SIGINT or SIGTERM at seeded random points (while feeds are polled, while
pages are fetched and stored, while detection runs), or stopped by a full disk (a file size
limit: writes past it fail as on a full disk); then one clean cycle. The store must hold
what a run never interrupted holds: the same articles and texts, the same entries, the same
clusters. No extraction worker may outlive a killed cycle."""

from __future__ import annotations

import os
import queue
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from store_snapshots import snapshot

from simulator import OutletSimulator, load_corpus
from store.publish import StoreLayout

CHILD = Path(__file__).resolve().parent / "cycle_process.py"
SEED = 20260312
# where each cycle is interrupted, in turn: while the feeds are polled, twice while pages are
# fetched and stored, and once the last page is in (detection)
PLAN = ["feeds", "articles", "articles", "detection"]
DETECT_BATCH = 40  # detection runs in several batches during the stage, and after it
STORE_CHUNK = 20  # entries stored per transaction (200 in production): more points between
SETTINGS = """
[fetch]
transient_retries = 0
per_host_concurrency = 8

[schedule]
min_interval_minutes = 0.01   # every feed is due at every cycle (and answers 304 once read)
max_interval_minutes = 0.01
"""


def _cycle(
    outlets: Path, db: Path, as_of: datetime, log: Path, max_file_bytes: int = 0
) -> subprocess.Popen[str]:
    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return subprocess.Popen(
        [
            sys.executable,
            str(CHILD),
            "--outlets",
            str(outlets),
            "--db",
            str(db),
            "--as-of",
            as_of.isoformat(),
            "--processes",
            "2",
            "--detect-batch",
            str(DETECT_BATCH),
            "--store-chunk",
            str(STORE_CHUNK),
        ],
        stdout=subprocess.PIPE,
        stderr=log.open("a"),
        text=True,
        preexec_fn=limit_files if max_file_bytes else None,
    )


def _lines(process: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """The process's output lines as they come (None at the end)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.strip())
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _run_to_the_end(outlets: Path, db: Path, as_of: datetime, log: Path) -> None:
    process = _cycle(outlets, db, as_of, log)
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0, log.read_text()[-3000:]
    assert "done" in out


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if fields[0] in ("Z", "X"):  # ended (a zombie nobody has reaped yet)
        return None
    return fields[19]


def _descendants(pid: int) -> dict[int, str]:
    """Every live process below `pid`, with its start time (a pid may be reused)."""
    found: dict[int, str] = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as children:
                kids = [int(child) for child in children.read().split()]
        except OSError:
            continue
        for kid in kids:
            started = _start_time(kid)
            if started is not None:
                found[kid] = started
                found.update(_descendants(kid))
    return found


def _survivors(processes: dict[int, str], wait: float = 15.0) -> list[int]:
    """Those of `processes` still alive after `wait` seconds."""
    ends = time.monotonic() + wait
    while True:
        alive = [pid for pid, started in processes.items() if _start_time(pid) == started]
        if not alive or time.monotonic() > ends:
            return alive
        time.sleep(0.1)


def _interrupt(
    outlets: Path,
    db: Path,
    as_of: datetime,
    log: Path,
    signum: int,
    where: str,
    rng: random.Random,
) -> bool:
    """Run a cycle and send it `signum` at a random point of its stage `where`; True when it
    was interrupted (False when it finished first). Checks that no process it started lives
    on."""
    process = _cycle(outlets, db, as_of, log)
    lines = _lines(process)
    target: int | None = None
    try:
        while True:
            line = lines.get(timeout=300)
            if line is None or line.startswith("done"):
                process.wait(timeout=60)
                return False
            stage, *numbers = line.split()
            if stage == where or (where == "detection" and stage == "articles"):
                done, total = int(numbers[0]), int(numbers[1])
                if where == "detection":
                    if done < total:
                        continue
                    time.sleep(rng.uniform(0.0, 1.0))  # the last page is in: detection runs
                else:
                    target = target or rng.randint(1, total)
                    if done < target:
                        continue
                    time.sleep(rng.uniform(0.0, 0.05))
                break
        workers = _descendants(process.pid)
        process.send_signal(signum)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert _survivors(workers) == [], f"processes outlived the cycle killed by {signum}"
    return process.returncode != 0


@dataclass(frozen=True)
class Served:
    sim: OutletSimulator
    outlets: Path
    clean: dict[str, object]  # the snapshot of a run never interrupted
    clean_size: int  # its database file's size


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    # pages that never answer in time are left out: with no timeout short enough to fire on a
    # busy machine, every outlet but the broken one answers in every run alike
    corpus = load_corpus()
    corpus = replace(corpus, articles=tuple(a for a in corpus.articles if a.fault != "timeout"))
    folder = tmp_path_factory.mktemp("interrupted")
    with OutletSimulator(corpus) as sim:
        sim.release_all()
        outlets = folder / "outlets.toml"
        outlets.write_text(sim.outlets_toml(extra=SETTINGS), encoding="utf-8")
        clean = folder / "clean.duckdb"
        for _ in range(2):  # the same as the interrupted runs' last, clean cycle
            _run_to_the_end(outlets, clean, sim.now, folder / "clean.log")
        yield Served(sim, outlets, snapshot(clean), clean.stat().st_size)


@pytest.mark.parametrize(
    "signum", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["kill", "int", "term"]
)
def test_cycles_interrupted_at_random_points_lose_nothing(
    served: Served, tmp_path: Path, signum: int
) -> None:
    sim, outlets, clean = served.sim, served.outlets, served.clean
    working = [a for a in sim.released() if a.outlet != "northern-courier"]  # its feed: 500
    assert len(clean["articles"]) == len(working)  # type: ignore[arg-type]
    rng = random.Random(f"{SEED}-{int(signum)}")
    db = tmp_path / "interrupted.duckdb"
    log = tmp_path / "cycles.log"
    landed = [_interrupt(outlets, db, sim.now, log, signum, at, rng) for at in PLAN]
    # the first two always find work; later ones may find none left (or land as it ends)
    assert landed[:2] == [True, True], landed
    interrupted = sum(landed)
    _run_to_the_end(outlets, db, sim.now, log)
    after = snapshot(db)
    assert after == clean, [key for key in clean if after[key] != clean[key]]
    con = duckdb.connect(str(StoreLayout.for_db(db).working), read_only=True)
    try:
        runs = dict(con.execute("SELECT status, count(*) FROM runs GROUP BY 1").fetchall())
        not_modified = con.execute(
            "SELECT count(*) FROM fetch_log WHERE outcome = 'not-modified'"
        ).fetchall()[0][0]
    finally:
        con.close()
    # the feeds answered 304 after their first read: what they offered came from the entries
    assert not_modified > 0
    # a signal may land after its run was recorded complete (while the process shuts down)
    assert set(runs) <= {"completed", "failed", "interrupted", "abandoned"}  # none "running"
    assert 1 <= sum(runs.values()) - runs["completed"] <= interrupted
    if signum != signal.SIGINT:  # a process killed outright records nothing: marked later
        assert runs.get("failed", 0) == 0 and runs.get("abandoned", 0) >= 1


def test_cycles_stopped_by_a_full_disk_lose_nothing(served: Served, tmp_path: Path) -> None:
    """Each cycle may write files up to a limit (as if the disk were full there): 5%, then
    15%, then 40% of what the whole run writes; each stops with an error where its writes
    fail. Then a clean cycle."""
    sim, outlets, clean = served.sim, served.outlets, served.clean
    db = tmp_path / "full.duckdb"
    log = tmp_path / "cycles.log"
    size = served.clean_size
    for share in (0.05, 0.15, 0.4):
        process = _cycle(outlets, db, sim.now, log, max_file_bytes=int(size * share))
        out, _ = process.communicate(timeout=300)
        assert process.returncode != 0 and "done" not in out
    assert "File too large" in log.read_text()
    _run_to_the_end(outlets, db, sim.now, log)
    after = snapshot(db)
    assert after == clean, [key for key in clean if after[key] != clean[key]]
