"""Test-wide settings: Prefect runs offline against a temporary local server whose home is a
temporary folder; warnings are errors (pyproject) except where a dependency is noisy."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

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

# every process the tests start carries this mark, so the session can tell at its end whether
# one outlived it (an extraction worker, a simulator, a Prefect server, a browser)
_SESSION_MARK = f"narratrace-tests-{uuid.uuid4().hex}"
os.environ["NARRATRACE_TEST_SESSION"] = _SESSION_MARK

from flows.prefect_env import stop_prefect_threads_at_exit  # noqa: E402

# Prefect's threads stop before the interpreter tears down (see flows.prefect_env)
stop_prefect_threads_at_exit()
# runs after Prefect stops its temporary server (registered later)
atexit.register(shutil.rmtree, _PREFECT_HOME, ignore_errors=True)


def _marked_processes() -> list[tuple[int, str]]:
    """(pid, command line) of live processes other than this one that carry the mark."""
    found = []
    needle = f"NARRATRACE_TEST_SESSION={_SESSION_MARK}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes():
                continue
            if (entry / "stat").read_text().split(") ", 1)[1].startswith("Z"):
                continue  # a zombie: finished, only waiting to be reaped
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parent = int((entry / "stat").read_text().split(") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == os.getpid() and "resource_tracker" in command:
            continue  # multiprocessing's tracker of this process: it ends when this one does
        found.append((int(entry.name), command.strip()[:160]))
    return found


_signal_received: int | None = None


def _on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM stops the session as Ctrl-C does, so it ends its processes (below) first."""
    global _signal_received
    _signal_received = signum
    raise KeyboardInterrupt


signal.signal(signal.SIGTERM, _on_sigterm)


def pytest_sessionfinish(session, exitstatus):  # noqa: ANN001
    """Fail the session if a process started by a test is still running at its end; a session
    stopped by Ctrl-C or SIGTERM exits 130 or 143, as every command of the project does."""
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        session.exitstatus = 128 + (_signal_received or signal.SIGINT)
    if not Path("/proc/self/environ").exists():
        return
    if "ingest.extract" in sys.modules:  # this process's own extraction workers
        sys.modules["ingest.extract"].shutdown_pool()
    if "prefect.server.api.server" in sys.modules:  # Prefect's temporary server ends here
        from prefect.server.api.server import SubprocessASGIServer

        for server in list(SubprocessASGIServer._instances.values()):
            server.stop()
    deadline = time.monotonic() + 15
    left = _marked_processes()
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = _marked_processes()
    if left:
        for pid, _command in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        lines = "\n".join(f"  pid {pid}: {command}" for pid, command in left)
        session.config.get_terminal_writer().line(
            f"processes started by tests were still running at the end (killed):\n{lines}",
            red=True,
        )
        if session.exitstatus not in (130, 143):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
