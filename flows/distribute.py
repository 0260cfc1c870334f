"""The driver's side of the per-article work: pages are cut into batches that workers fetch,
extract and sign (`ingest.batch.run_batch`), in the local process pool or on a Dask cluster.

Politeness across workers: every page's host is given to at most `per_host_concurrency`
*lanes*, each with its share of the host's concurrency and request rate; lanes are placed on
*streams*, and a stream has one batch out at a time. However many workers run the batches,
a host is never fetched by more connections, nor faster, than its settings allow (within a
batch the worker's own fetcher enforces the share). Results come back as Arrow bytes; the
caller (the one writer) loads each in one transaction under the batch's id."""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any, Protocol

from ingest.batch import BatchPage, PageBatch, host_key, run_batch
from ingest.config import FetchSettings
from ingest.feeds import parse_feed

log = logging.getLogger(__name__)

BATCH_PAGES = 50  # pages per batch
STREAMS_PER_SLOT = 2  # a second batch queued per worker thread: no idle gap between batches
TASK_TRIES = 3  # a batch whose worker died is sent again, at most this many times in all


@dataclass(frozen=True)
class PlannedBatch:
    """Pages of one batch, and the fetch settings holding the share of each host's limits
    that its stream has."""

    pages: tuple[BatchPage, ...]
    settings: FetchSettings


def plan_streams(
    pages: Sequence[BatchPage], streams: int, settings: FetchSettings, batch_size: int
) -> list[list[PlannedBatch]]:
    """Pages (in the order they should be fetched) cut into at most `streams` streams of
    batches. A host goes to at most `per_host_concurrency` lanes, each with an equal share
    of the host's concurrency and rate, the shares summing to the host's limits; lanes are
    placed on the least loaded stream; within a stream pages keep their order."""
    position = {id(page): i for i, page in enumerate(pages)}
    by_host: dict[str, list[BatchPage]] = defaultdict(list)
    for page in pages:
        by_host[host_key(page.url)].append(page)
    concurrency = settings.per_host_concurrency
    lanes: list[tuple[list[BatchPage], int, float]] = []
    for host_pages in by_host.values():
        k = max(1, min(concurrency, streams, math.ceil(len(host_pages) / batch_size)))
        for j in range(k):
            share = concurrency // k + (1 if j < concurrency % k else 0)
            lanes.append((host_pages[j::k], share, settings.per_host_rate / k))
    loads = [0] * max(1, streams)
    placed: list[list[tuple[list[BatchPage], int, float]]] = [[] for _ in loads]
    for lane in sorted(lanes, key=lambda lane: -len(lane[0])):
        target = loads.index(min(loads))
        placed[target].append(lane)
        loads[target] += len(lane[0])
    planned = []
    for stream_lanes in placed:
        if not stream_lanes:
            continue
        share_of: dict[int, tuple[int, float]] = {}
        for lane_pages, share, rate in stream_lanes:
            for page in lane_pages:
                share_of[id(page)] = (share, rate)
        ordered = sorted(
            (p for lane_pages, _s, _r in stream_lanes for p in lane_pages),
            key=lambda p: position[id(p)],
        )
        batches = []
        for first in range(0, len(ordered), batch_size):
            part = tuple(ordered[first : first + batch_size])
            shares = [share_of[id(p)] for p in part]
            rates = [rate for _s, rate in shares if rate > 0]
            limited = settings.model_copy(
                update={
                    "per_host_concurrency": min(s for s, _r in shares),
                    "per_host_rate": min(rates) if rates else 0.0,
                }
            )
            batches.append(PlannedBatch(part, limited))
        planned.append(batches)
    return planned


Done = tuple[PageBatch, bytes | None]  # a batch and its result; None: it was never run
Prepare = Callable[[PageBatch], PageBatch]  # a batch brought up to date as it is sent


def _as_is(batch: PageBatch) -> PageBatch:
    return batch


class Workers(Protocol):
    """Where batches run."""

    @property
    def slots(self) -> int:
        """Batches that can run at once."""
        ...

    def run(
        self,
        streams: Sequence[Sequence[PageBatch]],
        deadline: float | None,
        prepare: Prepare = _as_is,
    ) -> Iterator[Done]:
        """Run every stream's batches one after another (the streams side by side) and yield
        each result as it comes; past `deadline` (time.monotonic()) no further batch is sent,
        and the batches left are yielded with None. `prepare` is applied to each batch as it
        is sent (what the batches before it learned of their hosts)."""
        ...

    def parse_feed(self, body: bytes, url: str, content_type: str) -> Any:
        """A feed's body handed to a worker to parse (`ingest.feeds.parse_feed`): a future
        (`done()`, `result()`) of its ParsedFeed, or None when the caller should parse it."""
        ...

    def close(self) -> None: ...


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() > deadline


class LocalWorkers:
    """The local process pool (`ingest.extract`'s workers); with one process, in this one."""

    def __init__(self, processes: int):
        self.processes = max(1, processes)

    @property
    def slots(self) -> int:
        return self.processes

    def close(self) -> None:
        """The pool outlives the cycle's stages (the CLI stops it on exit)."""

    def parse_feed(self, body: bytes, url: str, content_type: str) -> Future[Any] | None:
        if self.processes <= 1:
            return None
        from ingest.extract import worker_pool

        return worker_pool(self.processes).submit(parse_feed, body, url, content_type)

    def run(
        self,
        streams: Sequence[Sequence[PageBatch]],
        deadline: float | None,
        prepare: Prepare = _as_is,
    ) -> Iterator[Done]:
        if self.processes <= 1:
            yield from self._inline(streams, deadline, prepare)
            return
        from ingest.extract import worker_pool

        pool = worker_pool(self.processes)
        pending: dict[Future[bytes], tuple[int, int]] = {}
        for s, stream in enumerate(streams):
            if stream:
                pending[pool.submit(run_batch, prepare(stream[0]))] = (s, 0)
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    s, i = pending.pop(future)
                    yield streams[s][i], future.result()
                    nxt = i + 1
                    if nxt < len(streams[s]):
                        if _past(deadline):
                            for batch in streams[s][nxt:]:
                                yield batch, None
                        else:
                            pending[pool.submit(run_batch, prepare(streams[s][nxt]))] = (s, nxt)
        finally:
            for future in pending:
                future.cancel()

    def _inline(
        self, streams: Sequence[Sequence[PageBatch]], deadline: float | None, prepare: Prepare
    ) -> Iterator[Done]:
        turns = max((len(stream) for stream in streams), default=0)
        order = [stream[i] for i in range(turns) for stream in streams if i < len(stream)]
        for n, batch in enumerate(order):
            if _past(deadline):
                for left in order[n:]:
                    yield left, None
                return
            yield batch, run_batch(prepare(batch))


class DaskWorkers:
    """A Dask cluster, through its scheduler's address (tcp://HOST:PORT). Every worker must
    run the same versions of narratrace and its dependencies as the driver."""

    def __init__(self, address: str, timeout: float = 30.0):
        from distributed import Client

        self.address = address
        try:
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except OSError as exc:
            raise ConnectionError(f"cannot reach the Dask scheduler at {address}: {exc}") from None

    @property
    def slots(self) -> int:
        info = self.client.scheduler_info()
        workers = info.get("workers", {})
        if not workers:
            self.client.wait_for_workers(1, timeout=60)
            workers = self.client.scheduler_info().get("workers", {})
        return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))

    def close(self) -> None:
        self.client.close()

    def parse_feed(self, body: bytes, url: str, content_type: str) -> Any:
        return self.client.submit(parse_feed, body, url, content_type, pure=False)

    def run(
        self,
        streams: Sequence[Sequence[PageBatch]],
        deadline: float | None,
        prepare: Prepare = _as_is,
    ) -> Iterator[Done]:
        from distributed import as_completed

        tries: dict[str, int] = defaultdict(int)

        def submit(s: int, i: int) -> Any:
            batch = streams[s][i]
            tries[batch.batch_id] += 1
            key = f"narratrace-batch-{batch.batch_id}-{tries[batch.batch_id]}"
            future = self.client.submit(run_batch, prepare(batch), key=key, pure=False)
            where[future.key] = (s, i, future)
            return future

        where: dict[Any, tuple[int, int, Any]] = {}
        first = [submit(s, 0) for s, stream in enumerate(streams) if stream]
        running = as_completed(first, loop=self.client.loop)
        try:
            for future in running:
                s, i, _ = where.pop(future.key)
                batch = streams[s][i]
                try:
                    result = future.result()
                except Exception as exc:  # the worker died (KilledWorker) or the task failed
                    if tries[batch.batch_id] >= TASK_TRIES:
                        raise RuntimeError(
                            f"batch {batch.batch_id} failed {TASK_TRIES} times: {exc}"
                        ) from exc
                    log.warning("batch %s failed (%s); sending it again", batch.batch_id, exc)
                    running.add(submit(s, i))
                    continue
                finally:
                    future.release()
                yield batch, result
                nxt = i + 1
                if nxt < len(streams[s]):
                    if _past(deadline):
                        for left in streams[s][nxt:]:
                            yield left, None
                    else:
                        running.add(submit(s, nxt))
        finally:
            unfinished = [future for _s, _i, future in where.values()]
            if unfinished:
                self.client.cancel(unfinished)
