"""`profile_dataset` on a generated Parquet file against DuckDB's `SUMMARIZE` of the same file.

Anchor: `SUMMARIZE SELECT * FROM read_parquet(...)` in a plain DuckDB connection with the same
thread count and memory limit. Ours: the data server's `profile_dataset` through the in-memory
Client (sandbox set-up, two aggregate passes, duplicate rows, PII sample, alerts, the envelope).
Runs alternate; medians are compared. Goal (issue 12): ratio <= 1.5 on 10M rows of mixed types.

    .venv/bin/python bench/data_profile.py [--rows 1000000] [--runs 5]
    .venv/bin/python bench/data_profile.py --rows 10000000     # the issue's size
    .venv/bin/python bench/data_profile.py --rows 10000000 --memory-mb 128   # file larger than the limit

The file is generated in a child process, so the peak resident memory printed at the end is this
process's: the server, both anchors and DuckDB under the memory limit.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.config import load_settings
from servers.data.server import build_server

THREADS = 2


def generate(path: Path, rows: int) -> None:
    """Mixed types: ids, categories, skewed amounts with nulls, dates, flags, emails, free text."""
    import duckdb

    with duckdb.connect() as conn:
        conn.execute(
            f"""COPY (
              SELECT i AS id,
                     ['north', 'south', 'east', 'west', 'central'][1 + (hash(i) % 5)::INT] AS region,
                     CASE WHEN i % 17 = 0 THEN NULL ELSE exp((hash(i * 3) % 1000) / 150.0) END AS amount,
                     (hash(i * 7) % 100)::INTEGER AS score,
                     DATE '2020-01-01' + (hash(i * 11) % 2000)::INTEGER AS day,
                     i % 9 = 0 AS flag,
                     'user' || (hash(i * 13) % 100000) || '@example.com' AS email,
                     CASE WHEN i % 5 = 0 THEN (i % 1000)::VARCHAR ELSE 'code-' || (i % 5000) END AS code
              FROM range({rows}) t(i)
            ) TO '{path}' (FORMAT parquet)"""
        )


def summarize(path: Path, memory_mb: int) -> float:
    import duckdb

    with duckdb.connect(config={"threads": THREADS, "memory_limit": f"{memory_mb}MB"}) as conn:
        started = time.perf_counter()
        conn.execute(f"SUMMARIZE SELECT * FROM read_parquet('{path}')").fetchall()
        return time.perf_counter() - started


async def profile(client: Client) -> float:
    started = time.perf_counter()
    result = await client.call_tool("profile_dataset", {"path": "data.parquet"})
    elapsed = time.perf_counter() - started
    assert not result.is_error, result.content
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the generated file (issue: 10M)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--memory-mb", type=int, default=2048, help="DuckDB's memory limit for both sides")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "proj"
        root.mkdir()
        path = root / "data.parquet"
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--generate", str(path), "--rows", str(args.rows)], check=True
        )
        print(
            f"generated {args.rows:,} rows, {path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - started:.1f}s"
        )
        settings = load_settings(root, state=Path(tmp) / "state", sections=["data"])
        settings.servers["data"] = {"threads": THREADS, "memory_mb": args.memory_mb, "timeout_s": 600}
        server = build_server(settings)
        ours: list[float] = []
        anchor: list[float] = []
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        async with Client(server) as client:
            await profile(client)  # warm the page cache and imports
            for _ in range(args.runs):
                anchor.append(summarize(path, args.memory_mb))
                ours.append(await profile(client))
        a, o = statistics.median(anchor), statistics.median(ours)
        print(f"SUMMARIZE      median {a:.3f}s  runs {[round(x, 3) for x in anchor]}")
        print(f"profile_dataset median {o:.3f}s  runs {[round(x, 3) for x in ours]}")
        print(f"ratio profile/SUMMARIZE = {o / a:.2f} (goal <= 1.5)")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"peak resident memory {peak:.0f} MB, {peak - baseline:.0f} MB above the {baseline:.0f} MB the process "
            f"held before any query, with a {args.memory_mb} MB DuckDB limit"
        )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--generate":
        generate(Path(sys.argv[2]), int(sys.argv[4]))
    else:
        anyio.run(main)
