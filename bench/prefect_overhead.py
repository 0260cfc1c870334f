"""What Prefect adds to a cycle: the same cycle with and without the flow machinery.

    .venv/bin/python bench/prefect_overhead.py [--articles 500,2500] [--processes 2]

For each size, the synthetic corpus (bench/synthetic.py) is served by the simulators, and one
cycle runs into a fresh database twice: as plain functions (`run_cycle`, what
`narratrace run --once --no-prefect` does) and as a Prefect flow run (`cycle_flow`, each stage
a task run), in alternating order, the extraction pool restarted before each run so both pay
for it. Prefect runs offline against a local server started (and timed) once beforehand, in a
new Prefect home, as every narratrace command that runs flows starts one
(`flows.server.LocalPrefectServer`), then an empty flow run.

Prints figures only; never asserts on time.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

_HOME = tempfile.mkdtemp(prefix="narratrace-bench-prefect-", dir="/tmp")
os.environ.setdefault("PREFECT_HOME", _HOME)
os.environ.pop("PREFECT_API_URL", None)
os.environ.setdefault("PREFECT_SERVER_UI_ENABLED", "false")

from flows.prefect_env import apply_offline_defaults, stop_prefect_threads_at_exit  # noqa: E402

apply_offline_defaults()
stop_prefect_threads_at_exit()  # as the CLI does: no duckdb leak warnings at interpreter exit
# runs after Prefect stops its server (registered later)
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)

from prefect import flow  # noqa: E402
from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: E402
from synthetic import START, SimulatorProcess, machine  # noqa: E402

from flows.cycle import cycle_flow, run_cycle  # noqa: E402
from flows.prefect_env import stop_prefect_threads  # noqa: E402
from flows.server import LocalPrefectServer  # noqa: E402
from ingest.config import load_outlets  # noqa: E402
from ingest.extract import shutdown_pool  # noqa: E402


@flow(name="narratrace-bench-empty")
def empty_flow() -> int:
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", default="500,2500")
    parser.add_argument("--outlets", type=int, default=100)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    print(machine())
    started = time.perf_counter()
    server = LocalPrefectServer().start()
    ready = time.perf_counter() - started
    print(f"Prefect: local server healthy (a new Prefect home) in {ready:.1f} s")
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            measure(args)
    finally:
        stop_prefect_threads()
        server.stop()


def measure(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    empty_flow()
    print(f"Prefect: first flow run in this process {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    empty_flow()
    print(f"Prefect: an empty flow run with the server up {time.perf_counter() - started:.2f} s")
    as_of = START + timedelta(days=1)
    for size in [int(s) for s in args.articles.split(",")]:
        sim = SimulatorProcess(min(args.outlets, size), size)
        with tempfile.TemporaryDirectory(prefix="narratrace-bench-", dir="/tmp") as tmp:
            outlets = Path(tmp) / "outlets.toml"
            outlets.write_text(sim.toml, encoding="utf-8")
            config = load_outlets(outlets)
            times: dict[str, list[float]] = {"plain": [], "prefect": []}
            summaries = {}
            for run, kind in enumerate(["plain", "prefect", "prefect", "plain"]):
                db = Path(tmp) / f"run-{run}.duckdb"
                shutdown_pool()
                started = time.perf_counter()
                if kind == "plain":
                    summary = run_cycle(config, str(db), as_of, args.processes, str(uuid.uuid4()))
                else:
                    summary = cycle_flow(
                        str(outlets), str(db), as_of=as_of, processes=args.processes
                    )
                times[kind].append(time.perf_counter() - started)
                summaries[kind] = summary
                db.unlink()
                shutil.rmtree(f"{db}.bands", ignore_errors=True)
            sim.stop()
        plain = sum(times["plain"]) / 2
        prefect = sum(times["prefect"]) / 2
        print(
            f"{size} articles: plain {', '.join(f'{t:.1f}' for t in times['plain'])} s, "
            f"Prefect flow {', '.join(f'{t:.1f}' for t in times['prefect'])} s: "
            f"Prefect adds {prefect - plain:+.2f} s "
            f"({summaries['prefect'].get('articles_new')} articles in each run)"
        )
    shutdown_pool()


if __name__ == "__main__":
    main()
