"""`narratrace sql`: a small read-only SQL prompt over the published catalog, for machines
without a DuckDB command-line shell (the DuckDB Python package ships none)."""

from __future__ import annotations

import sys
from typing import Any

import duckdb
from rich.table import Table

from store.publish import Catalog

MAX_ROWS = 200


class SqlShell:
    def __init__(self, catalog: Catalog, console: Any):
        self.catalog = catalog
        self.console = console

    def run(self, query: str) -> bool:
        """Run one query and print its result as a table; False (and one line) on an error."""
        try:
            cursor = self.catalog.con.execute(query)
            columns = [d[0] for d in cursor.description] if cursor.description else []
            rows = cursor.fetchmany(MAX_ROWS + 1) if columns else []
            if columns:
                cursor.fetchall()  # a result left open would block the next statement
        except duckdb.Error as exc:
            self.console.print(f"error: {str(exc).splitlines()[0]}", markup=False, style="red")
            return False
        if columns:
            table = Table(*columns, show_lines=False)
            for row in rows[:MAX_ROWS]:
                table.add_row(*("NULL" if v is None else str(v) for v in row))
            self.console.print(table)
            if len(rows) > MAX_ROWS:
                self.console.print(f"(first {MAX_ROWS} rows shown)", markup=False)
        return True

    def interact(self) -> None:
        """Read statements ended by ';' until .quit or end of input."""
        try:
            import readline  # noqa: F401  (line editing and history where available)
        except ImportError:
            pass
        interactive = sys.stdin.isatty()
        if interactive:
            self.console.print(
                f"{self.catalog.path} (read-only); end statements with ';', .tables, .quit",
                markup=False,
            )
        buffer: list[str] = []
        while True:
            try:
                line = (
                    input("narratrace> " if not buffer else "        ...> ")
                    if interactive
                    else sys.stdin.readline()
                )
            except EOFError:
                break
            if not interactive and line == "":
                break
            stripped = line.strip()
            if not buffer and stripped in (".quit", ".exit"):
                break
            if not buffer and stripped == ".tables":
                for name, kind in self.catalog.names():
                    self.console.print(f"{name}  ({kind})", markup=False)
                continue
            buffer.append(line.rstrip("\n"))
            if stripped.endswith(";"):
                self.run("\n".join(buffer))
                buffer = []
        if any(part.strip() for part in buffer):
            self.run("\n".join(buffer))
