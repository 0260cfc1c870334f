"""Export of the published catalog to Parquet or CSV files, for tools that do not read
DuckDB: one file per published table and view, written under a temporary name and renamed."""

from __future__ import annotations

import os
from pathlib import Path

from store.publish import Catalog

FORMATS = {"parquet": "(FORMAT parquet, COMPRESSION zstd)", "csv": "(FORMAT csv, HEADER true)"}


def export_catalog(catalog: Catalog, out_dir: Path, file_format: str) -> list[tuple[Path, int]]:
    """Write every table and view of `catalog` to `out_dir/<name>.<format>`; return each
    file with its row count."""
    if file_format not in FORMATS:
        raise ValueError(f"unknown export format {file_format!r}; use one of {sorted(FORMATS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, _kind in catalog.names():
        path = out_dir / f"{name}.{file_format}"
        partial = path.with_name(f".{path.name}.partial")
        target = "'" + str(partial).replace("'", "''") + "'"
        try:
            catalog.sql(f'COPY (SELECT * FROM "{name}") TO {target} {FORMATS[file_format]}')
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        rows = int(catalog.sql(f'SELECT count(*) FROM "{name}"')[0][0])
        written.append((path, rows))
    return written
