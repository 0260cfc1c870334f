"""A local Prefect API server for the commands that run flows when no PREFECT_API_URL is
configured: started on 127.0.0.1, waited on until healthy, stopped when the command ends, and
tied to the process that started it, so that it ends with it however that process ends
(kill -9 included; Prefect's own temporary server would live on)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

log = logging.getLogger(__name__)


class ServerError(RuntimeError):
    pass


# Run first in the server's process: on Linux, the kernel sends it SIGKILL when the thread that
# started it ends (PR_SET_PDEATHSIG, kept across exec); a parent already gone is caught by its
# pid. Then the process becomes `python -m prefect server start ...`.
_TIED_TO_PARENT = """\
import ctypes, os, signal, sys
if sys.platform.startswith("linux"):
    ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)
if os.getppid() != int(sys.argv[1]):
    os._exit(1)
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPrefectServer:
    def __init__(self, port: int | None = None, log_path: Path | None = None):
        self.port = port or free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.ui_url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> LocalPrefectServer:
        env = dict(os.environ)
        env.pop("PREFECT_API_URL", None)
        env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        env.setdefault("DO_NOT_TRACK", "1")
        # the UI asks the server where the API is; without this it answers the default port
        env["PREFECT_SERVER_UI_API_URL"] = self.api_url
        env["PREFECT_SERVER_API_PORT"] = str(self.port)
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _TIED_TO_PARENT,
                str(os.getpid()),
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ServerError(
                    f"prefect server exited with code {self._process.returncode} during start"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    log.info("prefect server healthy at %s", self.api_url)
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise ServerError(f"prefect server did not become healthy within {timeout:.0f} s")

    def stop(self, timeout: float = 20.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
