"""`narratrace reprocess`: sign every stored article again with the current detection
parameters (`narratives.detect.resign`), then publish the catalog again in full."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from narratives.detect import resign
from narratives.params import DEFAULT_PARAMS, DetectionParams
from store.db import Store, StoreError
from store.publish import Publisher, StoreLayout


def reprocess_store(
    db: Path | str,
    params: DetectionParams = DEFAULT_PARAMS,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Re-sign the store published at `db` (its working database is upgraded by its
    migrations on opening) and republish its catalog. Returns the articles signed again."""
    layout = StoreLayout.for_db(db)
    if not layout.working.exists():
        raise StoreError(f"no narratrace store at {db}: {layout.working} does not exist")
    with Store(layout.working) as store:
        done = resign(store, params, progress=progress)
        Publisher(store.con, layout).publish(datetime.now(UTC), full=True)
    return done
