"""Prefect settings that keep narratrace offline and quiet, and an orderly end for Prefect's
background threads. Applied by the CLI before Prefect is imported; a value already in the
environment wins."""

from __future__ import annotations

import atexit
import logging
import os
import sys

log = logging.getLogger(__name__)

OFFLINE_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}


def apply_offline_defaults() -> None:
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)


def stop_prefect_threads(timeout: float = 10.0) -> None:
    """Send what Prefect's workers still hold (events, logs) and stop its event-loop threads.

    Prefect runs its API client on daemon threads that outlive the last flow run. Left
    running while the interpreter shuts down, they keep objects of the modules they touched
    alive past module teardown, which makes duckdb 2.0 (nanobind) print pages of 'leaked
    instance' warnings. Stopped here first, the interpreter then tears down cleanly. A local
    API server the command started (`flows.server`) is stopped after this."""
    if "prefect" not in sys.modules:
        return
    try:
        from prefect._internal.concurrency import threads
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        EventsWorker.drain_all(timeout=timeout)
        APILogWorker.drain_all(timeout=timeout)
        for loop in (threads._run_sync_loop, threads._global_loop):  # None: never started
            if loop is not None and loop.thread.is_alive():
                loop.shutdown()
                loop.thread.join(timeout)
    except Exception as exc:  # shutting down must never hide the command's own outcome
        log.debug("stopping Prefect's threads: %s", exc)


_registered = False


def stop_prefect_threads_at_exit() -> None:
    """Stop Prefect's threads when the process exits (once per process; importing
    `flows.cycle` does it, so flow runs that Prefect starts in processes of their own, under
    `serve`, end cleanly too). Registered after Prefect is imported, this runs after the exit
    handlers Prefect registers later (its temporary server's among them) and before those
    registered earlier."""
    global _registered
    if not _registered:
        atexit.register(stop_prefect_threads)
        _registered = True
