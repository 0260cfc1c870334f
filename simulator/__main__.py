"""Serve a corpus standalone: ``python -m simulator --port 8765 --day-seconds 60``.

Prints the base URL on stdout and nothing else; the simulated clock advances one corpus
day every ``--day-seconds`` real seconds until interrupted.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

from simulator.corpus import DEMO_ROOT, CorpusError, load_corpus
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
    parser.add_argument("-v", "--verbose", action="store_true", help="log requests to stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.day_seconds < 0 or args.start_day < 0 or args.timeout_delay < 0:
        print("error: --day-seconds, --start-day and --timeout-delay must be >= 0", file=sys.stderr)
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
        corpus, host=args.host, port=args.port, timeout_delay=args.timeout_delay
    )
    try:
        simulator.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1

    done = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: done.set())
    origin = corpus.start + timedelta(days=args.start_day)
    simulator.set_now(origin)
    if args.day_seconds == 0:
        simulator.release_all()
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
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
