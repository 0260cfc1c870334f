"""Cycle throughput against the bare-extraction limit, measured in the same run.

    .venv/bin/python bench/cycle_throughput.py [--articles 5000] [--outlets 100] [--processes 2]
        [--corpus heavy|light|both] [--dask]

For each corpus (heavy: pages of 50-220 KB with real-page furniture, trafilatura about 45 ms a
page; light: the simulator's own pages, 10-20 KB, under 10 ms a page):
1. A synthetic corpus (bench/synthetic.py: 5,000 articles over 100 outlets) is served by
   simulators on 25 loopback addresses, in a process of their own.
2. One cycle, end to end, without Prefect (`flows.cycle.run_cycle`) on the local process pool:
   poll every feed; workers fetch, extract and sign every page in batches; the cycle's process
   loads them and detects. Articles per second, each stage's wall time, peak memory, and the
   cost of a batch (an empty batch's round trip).
3. With --dask (last corpus only): the same cycle on a local `dask scheduler` with one, then
   two `dask worker --nthreads 1` processes, against the local pool's figure.
4. The same pages, rendered byte for byte, through trafilatura alone (`extract_article` in a
   process pool of the same size, started beforehand, small chunks): the bare-extraction limit.
   Then, per article: the CPU of the extractions themselves, the CPU of everything else the
   local pool's cycle did (workers' start-up, fetching, signing, the cycle's process, the
   simulators), and the CPU a cycle at 0.8 of bare extraction would leave for it on this
   machine's cores.

Prints figures only; never asserts on time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from multiprocessing import get_context
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import (  # noqa: E402
    START,
    HeavyPageSimulator,
    SimulatorProcess,
    cpu_seconds,
    machine,
    peak_rss_mib,
    subcorpus,
    synthetic_corpus,
)

from flows.cycle import run_cycle  # noqa: E402
from ingest.batch import PageBatch, run_batch  # noqa: E402
from ingest.config import load_outlets  # noqa: E402
from ingest.extract import extract_article, shutdown_pool, worker_pool  # noqa: E402
from narratives.params import DEFAULT_PARAMS  # noqa: E402
from simulator.pages import article_url  # noqa: E402
from simulator.server import OutletSimulator  # noqa: E402


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as children:
                for child in children.read().split():
                    found.append(int(child))
                    found.extend(_descendants(int(child)))
    except OSError:
        pass
    return found


_TICK = os.sysconf("SC_CLK_TCK")


def _thread_cpu() -> dict[int, float]:
    """CPU seconds of each live thread of this process, by native thread id."""
    found = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(tid)] = (int(fields[11]) + int(fields[12])) / _TICK
    return found


def _thread_group(name: str) -> str:
    if name.startswith("fetch"):
        return "fetch threads (HTTP)"
    if name == "MainThread":
        return "main thread (feeds, page hand-off, article rows)"
    if name == "store-writer":
        return "store writer (inserts, detection during the stage)"
    return "other threads (process pool queues)"


class TreeMemory:
    """Samples the resident memory of this process and its descendants every 0.2 s, and the
    CPU time of this process's threads (by role)."""

    def __init__(self, exclude: int = 0) -> None:
        self.exclude = exclude  # a child (with its own children) left out: the simulators
        self.peak_self = 0
        self.peak_tree = 0
        self._threads: dict[int, tuple[str, float]] = {}
        self._base: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="tree-memory")

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.2):
            own = _rss_kib(me)
            skip = {self.exclude, *_descendants(self.exclude)} if self.exclude else set()
            tree = own + sum(_rss_kib(p) for p in _descendants(me) if p not in skip)
            self.peak_self = max(self.peak_self, own)
            self.peak_tree = max(self.peak_tree, tree)
            names = {t.native_id: t.name for t in threading.enumerate()}
            for tid, cpu in _thread_cpu().items():
                if tid in names and names[tid] != "tree-memory":
                    self._threads[tid] = (_thread_group(names[tid]), cpu - self._base.get(tid, 0))

    def thread_cpu(self) -> dict[str, float]:
        """CPU seconds by thread role, as last sampled (a thread's last 0.2 s may be missed)."""
        groups: dict[str, float] = {}
        for group, cpu in self._threads.values():
            groups[group] = groups.get(group, 0.0) + cpu
        return groups

    def __enter__(self) -> TreeMemory:
        self._base = _thread_cpu()  # threads alive before (the main thread): count from here
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _bare(args: tuple[bytes, str]) -> tuple[int, float]:
    body, url = args
    started = time.process_time()
    n = len(extract_article(body, url, "text/html; charset=utf-8").text)
    return n, time.process_time() - started


def bare_extraction(
    pages: list[tuple[bytes, str]], processes: int, chunksize: int = 4
) -> tuple[float, int, float]:
    """Seconds to extract every page with `processes` workers (pool started and warmed
    beforehand, not timed), how many pages gave text, and the CPU seconds the extractions
    themselves took (summed over the pages)."""
    with ProcessPoolExecutor(max_workers=processes, mp_context=get_context("spawn")) as pool:
        list(pool.map(_bare, pages[: processes * 2], chunksize=1))  # import trafilatura
        started = time.perf_counter()
        done = list(pool.map(_bare, pages, chunksize=chunksize))
        elapsed = time.perf_counter() - started
    return elapsed, sum(1 for n, _cpu in done if n), sum(cpu for _n, cpu in done)


def the_same_pages(
    toml_text: str, n_outlets: int, n_articles: int, light: bool = False
) -> list[tuple[bytes, str]]:
    """Render the pages the simulators served, byte for byte (same corpus, same base URLs)."""
    corpus = synthetic_corpus(n_outlets, n_articles)
    base_of: dict[str, str] = {}
    for line in toml_text.splitlines():
        if line.startswith("feeds = ["):
            url = line.split('"')[1]
            parts = urlsplit(url)
            base_of[parts.path.split("/")[1]] = f"{parts.scheme}://{parts.netloc}"
    by_base: dict[str, list] = {}
    for outlet in corpus.outlets:
        by_base.setdefault(base_of[outlet.slug], []).append(outlet)
    pages = []
    kind = OutletSimulator if light else HeavyPageSimulator
    for base, outlets in by_base.items():
        sim = kind(subcorpus(corpus, outlets))
        sim._base_url = base
        for article in sim.corpus.articles:
            outlet = sim.corpus.outlet(article.outlet)
            pages.append((sim._render_article(outlet, article), article_url(base, article)))
    return pages


def one_cycle(
    toml: str, workdir: Path, processes: int, sim_pid: int, dask: str | None = None
) -> tuple[float, dict, float]:
    """One cycle into a new database: (articles per second, summary, CPU seconds of the
    cycle's process and its pool workers); prints its figures."""
    outlets = workdir / "outlets.toml"
    outlets.write_text(toml, encoding="utf-8")
    config = load_outlets(outlets)
    db = workdir / f"cycle-{uuid.uuid4().hex[:8]}.duckdb"
    cpu_main, cpu_children = cpu_seconds(), cpu_seconds(children=True)
    with TreeMemory(exclude=sim_pid) as memory:
        started = time.perf_counter()
        summary = run_cycle(
            config,
            str(db),
            START + timedelta(days=1),
            processes,
            str(uuid.uuid4()),
            dask_scheduler=dask,
        )
        elapsed = time.perf_counter() - started
    shutdown_pool()
    cpu_main = cpu_seconds() - cpu_main
    cpu_workers = cpu_seconds(children=True) - cpu_children
    n = summary.get("articles_new", 0)
    rate = n / elapsed
    print(
        f"cycle: {n} new articles ({summary.get('articles_failed')} failed) in "
        f"{elapsed:.1f} s = {rate:.1f} articles/s"
    )
    print(f"  stage wall seconds: {summary['seconds']}")
    print(
        f"  clusters new/joined/merged: {summary.get('clusters_new')}/"
        f"{summary.get('clusters_joined')}/{summary.get('clusters_merged')}"
    )
    print(
        f"  peak RSS: cycle process {peak_rss_mib():.0f} MiB; process tree (with workers) "
        f"{memory.peak_tree / 1024:.0f} MiB (sampled every 0.2 s)"
    )
    workers = "(Dask workers not counted)" if dask else f"pool workers {cpu_workers:.1f}"
    print(
        f"  CPU seconds: {workers}, cycle process {cpu_main:.1f} "
        f"({cpu_main / max(1, n) * 1000:.1f} ms per article: polling, handing out batches, "
        "loading them, detection)"
    )
    by_role = ", ".join(f"{k} {v:.1f}" for k, v in sorted(memory.thread_cpu().items()))
    print(f"  cycle process CPU seconds by thread: {by_role}")
    print(f"  database: {db.stat().st_size / 2**20:.0f} MiB")
    return rate, summary, cpu_main + cpu_workers


def bare(pages: list[tuple[bytes, str]], processes: int) -> tuple[float, float, float]:
    """(pages per second, seconds, CPU seconds of the extractions alone) of bare extraction;
    prints its figures."""
    kb = sorted(len(body) / 1024 for body, _url in pages)
    print(
        f"bare extraction: the same {len(pages)} pages (KB median {kb[len(kb) // 2]:.0f}, "
        f"mean {sum(kb) / len(kb):.0f}, max {kb[-1]:.0f})"
    )
    bare_s, ok, extraction_cpu = bare_extraction(pages, processes)
    bare_rate = len(pages) / bare_s
    print(
        f"  {processes} processes: {bare_s:.1f} s = {bare_rate:.1f} pages/s "
        f"({bare_s * processes / len(pages) * 1000:.1f} ms per page per process; "
        f"{ok} gave text); the extractions' own CPU {extraction_cpu:.1f} s "
        f"({extraction_cpu / len(pages) * 1000:.2f} ms per page)"
    )
    return bare_rate, bare_s, extraction_cpu


class DaskCluster:
    """`dask scheduler` and `dask worker --nthreads 1` processes on 127.0.0.1 (this venv's)."""

    def __init__(self) -> None:
        from flows.server import free_port

        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="narratrace-dask-", dir="/tmp"))
        self.processes: list[subprocess.Popen[bytes]] = []
        self._start("scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard")

    def _start(self, *args: str) -> None:
        self.processes.append(
            subprocess.Popen(
                [str(Path(sys.executable).parent / "dask"), *args],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=self.dir,
            )
        )

    def add_worker(self) -> None:
        from distributed import Client

        n = len(self.processes)
        self._start(
            "worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
            "--host", "127.0.0.1", "--local-directory", str(self.dir / f"w{n}"),
        )  # fmt: skip
        with Client(self.address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(n, timeout=120)
            client.run(lambda: __import__("ingest.batch"))  # import trafilatura beforehand

    def close(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _empty_batch() -> PageBatch:
    from ingest.config import FetchSettings

    return PageBatch("empty", 0, (), FetchSettings(), DEFAULT_PARAMS)


def batch_cost(dask: str | None, processes: int, n: int = 200) -> float:
    """Mean milliseconds of an empty batch's round trip, one at a time: what handing out a
    batch and taking its Arrow result back costs, whatever the pages."""
    batch = _empty_batch()
    if dask is None:
        pool = worker_pool(processes)
        pool.submit(run_batch, batch).result()
        started = time.perf_counter()
        for _ in range(n):
            pool.submit(run_batch, batch).result()
        return (time.perf_counter() - started) / n * 1000
    from distributed import Client

    with Client(dask, set_as_default=False) as client:
        client.submit(run_batch, batch, pure=False).result()
        started = time.perf_counter()
        for _ in range(n):
            client.submit(run_batch, batch, pure=False).result()
        return (time.perf_counter() - started) / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=5000)
    parser.add_argument("--outlets", type=int, default=100)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--hosts", type=int, default=25)
    parser.add_argument(
        "--corpus", choices=["heavy", "light", "both"], default="both", help="page weight"
    )
    parser.add_argument(
        "--dask",
        action="store_true",
        help="also run the cycle on a local Dask scheduler with 1, then 2 one-thread workers "
        "(on the last corpus)",
    )
    args = parser.parse_args()
    print(machine())
    corpora = ["heavy", "light"] if args.corpus == "both" else [args.corpus]
    ratios = {}
    for corpus in corpora:
        light = corpus == "light"
        print(
            f"\n== {corpus} pages: {args.articles} articles, {args.outlets} outlets on "
            f"{args.hosts} loopback hosts; worker processes: {args.processes}"
        )
        sim = SimulatorProcess(args.outlets, args.articles, args.hosts, light=light)
        print(f"simulators ready in {sim.startup_seconds:.1f} s (corpus built, pages rendered)")
        workdir = Path(tempfile.mkdtemp(prefix="narratrace-bench-", dir="/tmp"))
        try:
            print(f"-- local pool ({args.processes} processes)")
            rate, summary, cycle_cpu = one_cycle(sim.toml, workdir, args.processes, sim.pid)
            served_before = sim.served()
            cost = batch_cost(None, args.processes)
            print(f"  cost per batch (empty batch round trip): {cost:.2f} ms")
            shutdown_pool()
            if args.dask and corpus == corpora[-1]:
                cluster = DaskCluster()
                try:
                    for workers in (1, 2):
                        cluster.add_worker()
                        print(f"-- Dask: scheduler and {workers} one-thread worker(s) on 127.0.0.1")
                        dask_rate, _, _ = one_cycle(sim.toml, workdir, 1, sim.pid, cluster.address)
                        cost = batch_cost(cluster.address, 1)
                        print(f"  cost per batch (empty batch round trip): {cost:.2f} ms")
                        print(f"  Dask ({workers} workers) / local pool: {dask_rate / rate:.2f}")
                finally:
                    cluster.close()
            requests, sim_cpu = sim.stop()
            print(f"  simulators (another process): {requests} requests, {sim_cpu:.1f} CPU s")
            bare_rate, bare_s, extraction_cpu = bare(
                the_same_pages(sim.toml, args.outlets, args.articles, light), args.processes
            )
            ratios[corpus] = rate / bare_rate
            ms = 1000 / max(1, summary.get("articles_new", 0))
            served = served_before[1]  # the simulators' CPU during the local pool's cycle
            other = cycle_cpu + served - extraction_cpu
            # at 0.8 of bare extraction the cycle would last bare_s / 0.8 on these cores
            room = bare_s / 0.8 * (os.cpu_count() or 1) - extraction_cpu
            print(
                f"CPU per article, local pool: extraction {extraction_cpu * ms:.2f} ms; all "
                f"else the cycle does {other * ms:.2f} ms (the workers' start-up, fetching, "
                f"signing and hand-over, the cycle's process, the simulators "
                f"{served * ms:.2f} ms); a cycle at 0.8 of bare extraction on "
                f"{os.cpu_count()} cores leaves {room * ms:.2f} ms for it"
            )
            print(f"cycle / bare-extraction limit ({corpus}): {ratios[corpus]:.2f}")
        finally:
            shutil.rmtree(workdir)  # the databases and what was published beside them
    print("\n" + ", ".join(f"{c}: cycle / bare extraction {r:.2f}" for c, r in ratios.items()))


if __name__ == "__main__":
    main()
