"""Test-wide settings: Prefect runs offline against a temporary local server whose home is a
temporary folder; warnings are errors (pyproject) except where a dependency is noisy."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

_PREFECT_HOME = tempfile.mkdtemp(prefix="narratrace-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ.pop("PREFECT_API_URL", None)
os.environ.update(
    {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    }
)

from flows.prefect_env import exit_quietly_after_cleanup, set_exit_code  # noqa: E402

# duckdb 2.0 objects still referenced by Prefect's worker threads at interpreter teardown make
# nanobind print pages of leak warnings; end the process right after the exit handlers instead,
# keeping pytest's exit status.
exit_quietly_after_cleanup()
# runs after Prefect stops its temporary server (registered later), before the quiet exit above
atexit.register(shutil.rmtree, _PREFECT_HOME, ignore_errors=True)


def pytest_sessionfinish(session, exitstatus):  # noqa: ANN001
    set_exit_code(int(exitstatus))


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory):
    """The bundled demo, run once per test session: the outlet simulator on 127.0.0.1, a real
    Prefect flow run per cycle and per daily report, a real DuckDB file. (result, port)"""
    from flows.demo import run_demo
    from flows.server import free_port

    out = tmp_path_factory.mktemp("demo")
    port = free_port()
    result = run_demo(out, processes=2, port=port)
    return result, port
