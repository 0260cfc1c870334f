"""Prefect settings that keep narratrace offline and quiet. Applied by the CLI before Prefect
is imported; a value already in the environment wins."""

from __future__ import annotations

import atexit
import os
import sys

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


_exit_code = 0


def set_exit_code(code: object) -> None:
    global _exit_code
    _exit_code = code if isinstance(code, int) else (0 if code is None else 1)


def _finish() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_code)


def exit_quietly_after_cleanup() -> None:
    """Register an exit handler that runs after every handler registered later (Prefect's
    temporary-server shutdown among them) and then ends the process at once. It skips only
    interpreter teardown, where duckdb 2.0 objects that Prefect's worker threads still
    reference make nanobind print pages of 'leaked instance' warnings."""
    atexit.register(_finish)
