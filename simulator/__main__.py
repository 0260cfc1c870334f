"""Serve a corpus standalone: ``python -m simulator --port 8765 --day-seconds 60``.

Prints the base URL on stdout and nothing else; the simulated clock advances one corpus
day every ``--day-seconds`` real seconds until interrupted. ``--faults all`` (or a list)
adds the fault outlets of ``simulator.faults``; ``--outlets-out`` writes a narratrace outlets
file for everything served, ``--manifest`` what a correct crawler records for each feed and
article (JSON, written at start and again on exit, when more articles are released).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

from simulator.corpus import DEMO_ROOT, CorpusError, load_corpus
from simulator.faults import FAULTS, parse_faults
from simulator.server import OutletSimulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description=(
            "Serve the simulated news outlets of a corpus over HTTP on this machine. "
            "Prints the base URL on stdout."
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8765,
        help="port to bind, 0 for any free port (default: %(default)s)",
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        default=DEMO_ROOT,
        help="corpus folder holding outlets.toml and articles/ (default: the demo corpus)",
    )
    parser.add_argument(
        "--day-seconds",
        type=float,
        default=60.0,
        help="real seconds per simulated corpus day; 0 publishes everything at once "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--start-day",
        type=float,
        default=0.0,
        help="corpus day the clock starts at (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout-delay",
        type=float,
        default=5.0,
        help="seconds a page with fault 'timeout' stalls before answering (default: %(default)s)",
    )
    parser.add_argument(
        "--faults",
        default="",
        metavar="all|NAME,...",
        help="also serve fault outlets, each on its own loopback address 127.0.0.10+ on the "
        "same port (the internal service on 127.0.0.9): 'all' or a comma-separated list of "
        + ", ".join(FAULTS),
    )
    parser.add_argument(
        "--hang-seconds",
        type=float,
        default=3600.0,
        help="how long hanging fault outlets stall (default: %(default)s)",
    )
    parser.add_argument(
        "--outlets-out",
        type=Path,
        help="write a narratrace outlets file (TOML) for every outlet served",
    )
    parser.add_argument(
        "--manifest",
        type=Path,
        help="write the expected outcome of every feed and released article (JSON)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log requests to stderr")
    return parser


def _write_manifest(simulator: OutletSimulator, path: Path) -> None:
    rows = [dataclasses.asdict(expected) for expected in simulator.manifest()]
    path.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.day_seconds < 0 or args.start_day < 0 or args.timeout_delay < 0:
        print("error: --day-seconds, --start-day and --timeout-delay must be >= 0", file=sys.stderr)
        return 2
    if args.hang_seconds <= 0:
        print("error: --hang-seconds must be > 0", file=sys.stderr)
        return 2
    try:
        faults = parse_faults(args.faults) if args.faults else ()
    except ValueError as exc:
        print(f"error: --faults: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        corpus = load_corpus(args.corpus)
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    simulator = OutletSimulator(
        corpus,
        host=args.host,
        port=args.port,
        timeout_delay=args.timeout_delay,
        faults=faults,
        hang_seconds=args.hang_seconds,
    )
    try:
        simulator.start()
    except OSError as exc:
        where = " (fault outlets need 127.0.0.9 and 127.0.0.10+ free)" if faults else ""
        print(f"error: cannot listen on {args.host}:{args.port}{where}: {exc}", file=sys.stderr)
        return 1

    done = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: done.set())
    origin = corpus.start + timedelta(days=args.start_day)
    simulator.set_now(origin)
    if args.day_seconds == 0:
        simulator.release_all()
    try:
        if args.outlets_out:
            args.outlets_out.write_text(simulator.outlets_toml(), encoding="utf-8")
        if args.manifest:
            _write_manifest(simulator, args.manifest)
    except OSError as exc:
        simulator.stop()
        print(f"error: cannot write: {exc}", file=sys.stderr)
        return 1
    print(simulator.base_url, flush=True)

    began = time.monotonic()
    tick = min(1.0, args.day_seconds / 24) if args.day_seconds > 0 else 1.0
    try:
        while not done.wait(tick):
            if args.day_seconds > 0:
                elapsed_days = (time.monotonic() - began) / args.day_seconds
                simulator.set_now(origin + timedelta(days=elapsed_days))
    except KeyboardInterrupt:
        pass
    finally:
        if args.manifest:
            try:
                _write_manifest(simulator, args.manifest)
            except OSError as exc:
                print(f"error: cannot write the manifest: {exc}", file=sys.stderr)
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
