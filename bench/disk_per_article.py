"""Disk per article after one real cycle: `narratrace run --once` against simulated outlets,
then every file the run left at `--db PATH` and in the folder PATH.data beside it (the working
database, the published Parquet files, the catalogs), per article stored, with the working
database's tables and the published tables apart. A file is counted once however many names
it has (the catalog at --db PATH is a hard link to the newest catalog in PATH.data/catalogs).
The working database's free blocks (held by the file, used by no table) are printed apart.

    .venv/bin/python bench/disk_per_article.py [--articles 5000] [--outlets 100] [--no-prefect]
        [--keep DIR]

The outlets are bench/synthetic.py's corpus (about 4.3 KB of extracted text per article) on 25
loopback hosts, in a process of their own, with `[fetch] per_host_rate = 0`. The cycle runs as
a user runs it: the `narratrace` command in a process of its own (with a temporary local
Prefect server, PREFECT_HOME in the bench's temporary folder, unless --no-prefect). Data lives
in /tmp and is deleted afterwards (copied to --keep DIR first, if given).

Prints figures only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import SimulatorProcess, machine, table_bytes  # noqa: E402

NARRATRACE = Path(sys.executable).with_name("narratrace")


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else []


def published_bytes(published: Path) -> dict[str, int]:
    """Bytes of the published Parquet files, by table (the first folder under published/)."""
    sizes: dict[str, int] = defaultdict(int)
    for file in files_under(published):
        sizes[file.relative_to(published).parts[0]] += file.stat().st_size
    return dict(sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=5000)
    parser.add_argument("--outlets", type=int, default=100)
    parser.add_argument("--hosts", type=int, default=25)
    parser.add_argument("--no-prefect", action="store_true", help="run the cycle without Prefect")
    parser.add_argument(
        "--keep", type=Path, help="copy the run's files to this folder before deleting them"
    )
    args = parser.parse_args()
    print(machine())
    sim = SimulatorProcess(args.outlets, args.articles, args.hosts)
    workdir = Path(tempfile.mkdtemp(prefix="narratrace-disk-", dir="/tmp"))
    try:
        outlets = workdir / "outlets.toml"
        outlets.write_text(sim.toml, encoding="utf-8")
        catalog = workdir / "narratrace.duckdb"
        env = {**os.environ, "PREFECT_HOME": str(workdir / "prefect")}
        command = [
            str(NARRATRACE),
            "run",
            "--once",
            "--outlets",
            str(outlets),
            "--db",
            str(catalog),
        ]
        if args.no_prefect:
            command.append("--no-prefect")
        started = time.perf_counter()
        out = subprocess.run(command, capture_output=True, text=True, env=env)
        took = time.perf_counter() - started
        if out.returncode:
            print(f"narratrace run --once failed ({out.returncode}):\n{out.stderr[-3000:]}")
            raise SystemExit(1)
        sim.stop()
        data = catalog.with_name(catalog.name + ".data")
        working = data / "pipeline.duckdb"
        con = duckdb.connect(str(working), read_only=True)
        try:
            articles = con.execute("SELECT count(*) FROM articles").fetchone()[0]
            text = con.execute("SELECT sum(strlen(text)) FROM articles").fetchone()[0] or 0
            tables = table_bytes(con)
            blocks = con.execute(
                "SELECT block_size, total_blocks, used_blocks, free_blocks "
                "FROM pragma_database_size() WHERE database_name = current_database()"
            ).fetchone()
        finally:
            con.close()
        if not articles:
            print("the cycle stored no article")
            raise SystemExit(1)
        print(
            f"one cycle ({'without Prefect' if args.no_prefect else 'Prefect'}): {articles} "
            f"articles stored in {took:.0f} s; extracted text {text / articles:,.0f} B per "
            "article on average"
        )
        # a file is counted once however many names it has: the catalog at --db PATH is a
        # hard link to the newest one in PATH.data/catalogs
        everything, seen = [], set()
        for p in [*files_under(data), catalog]:
            if p.exists() and (p.stat().st_dev, p.stat().st_ino) not in seen:
                seen.add((p.stat().st_dev, p.stat().st_ino))
                everything.append(p)
        total = sum(p.stat().st_size for p in everything)
        groups: dict[str, int] = defaultdict(int)
        for p in everything:
            rel = p.relative_to(workdir)
            if p == working or p.name == "pipeline.duckdb.wal":
                groups["working database (PATH.data/pipeline.duckdb)"] += p.stat().st_size
            elif len(rel.parts) > 1 and rel.parts[1] == "published":
                groups["published Parquet (PATH.data/published)"] += p.stat().st_size
            elif len(rel.parts) > 1 and rel.parts[1] == "catalogs":
                groups["catalogs (PATH.data/catalogs)"] += p.stat().st_size
            elif p == catalog:
                groups["catalog at --db PATH"] += p.stat().st_size
            else:
                groups[f"other ({rel})"] += p.stat().st_size
        print(
            f"disk in total: {total / 2**20:.1f} MiB = {total / articles:,.0f} B per article "
            "(--db PATH and everything in PATH.data)"
        )
        for name, size in sorted(groups.items(), key=lambda kv: -kv[1]):
            print(f"  {name:50s} {size / articles:8,.0f} B per article")
        block_size, total_blocks, used_blocks, free_blocks = blocks
        print(
            f"working database blocks: {total_blocks} of {block_size // 1024} KiB, "
            f"{used_blocks} used, {free_blocks} free "
            f"({free_blocks * block_size / articles:,.0f} B per article free)"
        )
        print("working database, by table (blocks in the file, pragma_storage_info):")
        for name, size in sorted(tables.items(), key=lambda kv: -kv[1]):
            if size:
                print(f"  {name:24s} {size / articles:8,.0f} B per article")
        print("published Parquet, by table:")
        for name, size in sorted(
            published_bytes(data / "published").items(), key=lambda kv: -kv[1]
        ):
            print(f"  {name:24s} {size / articles:8,.0f} B per article")
        if args.keep:
            shutil.copytree(workdir, args.keep, dirs_exist_ok=True)
    finally:
        if sim._proc.is_alive():
            sim.stop()
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
