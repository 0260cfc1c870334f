"""One real cycle (`flows.cycle.run_cycle`, without Prefect) in a process of its own, for
tests that interrupt it: prints "ready" once imported, then every progress event as
"<stage> <done> <total>", then "done <articles_new>".

    python tests/cycle_process.py --outlets O --db D --as-of ISO [--processes 2]
        [--detect-batch N] [--store-chunk N]
"""

from __future__ import annotations

import argparse
import sys
import uuid
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outlets", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--as-of", required=True)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--detect-batch", type=int, default=0)
    parser.add_argument("--store-chunk", type=int, default=0)
    args = parser.parse_args()

    from flows import stages
    from flows.cycle import run_cycle
    from ingest.config import load_outlets, with_cluster
    from ingest.extract import shutdown_pool

    if args.detect_batch:
        stages.DETECT_BATCH = args.detect_batch  # several detection batches in a small corpus
    config = load_outlets(args.outlets)
    if args.store_chunk:  # smaller batches: more transactions to land between
        config = with_cluster(config, batch_pages=args.store_chunk)
    print("ready", flush=True)

    def progress(stage: str, done: int, total: int | None) -> None:
        print(f"{stage} {done} {total}", flush=True)

    try:
        summary = run_cycle(
            config,
            args.db,
            datetime.fromisoformat(args.as_of),
            args.processes,
            str(uuid.uuid4()),
            progress=progress,
        )
    finally:
        shutdown_pool()
    print(f"done {summary['articles_new']}", flush=True)


if __name__ == "__main__":
    main()
