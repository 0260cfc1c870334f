"""Progress of a cycle as it goes: feeds polled, articles finished (fetched and extracted,
stored or recorded as failed). Stage functions call a `Progress` with
`(stage, done, total)`; the CLI shows a progress bar on a terminal, and a line every few
seconds otherwise (cron, systemd, served flow runs)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

Progress = Callable[[str, int, "int | None"], None]

STAGE_NAMES = {
    "feeds": "feeds polled",
    "articles": "articles fetched and extracted",
    "batches": "batches done",
}
log = logging.getLogger(__name__)


def no_progress(stage: str, done: int, total: int | None) -> None:
    """The default: nobody is watching."""


class LogProgress:
    """A log line per stage at most every `every` seconds, and one when a stage completes."""

    def __init__(self, logger: logging.Logger, every: float = 10.0):
        self.logger = logger
        self.every = every
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        with self._lock:
            finished = total is not None and done >= total
            if not finished and now - self._last.get(stage, 0.0) < self.every:
                return
            self._last[stage] = now
        of = f" of {total}" if total is not None else ""
        self.logger.info("%s: %d%s", STAGE_NAMES.get(stage, stage), done, of)


class PrefectProgress:
    """Passes every call on to `inner`, and shows the batches done of the fetch-extract stage
    in Prefect's UI as a progress artifact (`cycle-batches`, in percent) of the task run that
    does the stage; the artifact is updated at most every `every` seconds and when the last
    batch is done. Call only inside a Prefect run."""

    KEY = "cycle-batches"

    def __init__(self, inner: Progress, every: float = 2.0):
        self.inner = inner
        self.every = every
        self._artifact: Any = None
        self._last = 0.0

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        self.inner(stage, done, total)
        if stage != "batches" or not total:
            return
        now = time.monotonic()
        if done < total and now - self._last < self.every:
            return
        self._last = now
        percent = 100.0 * done / total
        try:
            from prefect.artifacts import create_progress_artifact, update_progress_artifact

            if self._artifact is None:
                self._artifact = create_progress_artifact(
                    percent, key=self.KEY, description=f"batches of pages done, of {total}"
                )
            else:
                update_progress_artifact(self._artifact, percent)
        except Exception as exc:  # the UI's view of progress never stops a cycle
            log.warning("could not update the progress artifact: %s", exc)


class TerminalProgress:
    """A rich progress bar per stage, on the terminal's stderr. Use as a context manager."""

    def __init__(self, console: Any):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> TerminalProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        with self._lock:
            task = self._tasks.get(stage)
            if task is None:
                task = self._progress.add_task(STAGE_NAMES.get(stage, stage), total=total)
                self._tasks[stage] = task
            self._progress.update(task, completed=done, total=total)
