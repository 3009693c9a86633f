"""`profile_dataset` on a 1M-row CSV against ydata-profiling in minimal mode on the same file.

Anchor: ydata-profiling (`ProfileReport(df, minimal=True).to_json()` after `pandas.read_csv`),
installed only in a venv of its own under the bench cache, never a dependency of onrecord; timed in
its own process from reading the CSV to the JSON report (imports excluded, as in a running notebook).
Ours: the data server's `profile_dataset` through the in-memory Client, one server running for
every run (the first run pays the tool's first use). Goal (issue 12): ours at
least 12x faster.

    .venv/bin/python bench/data_vs_ydata.py [--rows 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import anyio
from mcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bigrepo import cache_dir
from bench.data_profile import generate
from common.config import load_settings
from servers.data.server import build_server

ANCHOR = """
import sys, time
import pandas
from ydata_profiling import ProfileReport
started = time.perf_counter()  # after the imports: a running notebook has them already
df = pandas.read_csv(sys.argv[1])
ProfileReport(df, minimal=True, progress_bar=False).to_json()
print(time.perf_counter() - started)
"""


def anchor_python() -> Path:
    env = cache_dir() / "ydata-venv"
    python = env / "bin" / "python"
    if not (env / "bin" / "ydata_profiling_ready").exists():
        if not python.exists():
            venv.create(env, with_pip=True)
        subprocess.run([str(env / "bin" / "pip"), "install", "--quiet", "ydata-profiling"], check=True)
        (env / "bin" / "ydata_profiling_ready").write_text("ok\n", encoding="utf-8")
    return python


def anchor(python: Path, csv: Path) -> float:
    out = subprocess.run([str(python), "-c", ANCHOR, str(csv)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


async def alternate(root: Path, python: Path, runs: int) -> tuple[list[float], list[float]]:
    """(ours, anchor) times, a run of each in turn. Ours is one running server answering each run
    (imports and start-up done, as the anchor's are: a host keeps its servers running)."""
    tmp = Path(tempfile.mkdtemp(prefix="onrecord-bench-"))
    settings = load_settings(root, managed_file=tmp / "none", user_file=tmp / "none", state=tmp / "state")
    mine, base = [], []
    async with Client(build_server(settings)) as client:
        for _ in range(runs):
            base.append(anchor(python, root / "data.csv"))
            started = time.perf_counter()
            result = await client.call_tool("profile_dataset", {"path": "data.csv"})
            mine.append(time.perf_counter() - started)
            assert not result.is_error, result.content
    return mine, base


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    root = cache_dir() / f"ydata-{args.rows}"
    csv = root / "data.csv"
    if not csv.exists():
        root.mkdir(parents=True, exist_ok=True)
        parquet = root / "data.parquet"
        generate(parquet, args.rows)
        import duckdb

        with duckdb.connect() as conn:
            conn.execute(f"COPY (SELECT * FROM '{parquet}') TO '{csv}' (HEADER, DELIMITER ',')")
        parquet.unlink()
    python = anchor_python()
    mine, base = anyio.run(alternate, root, python, args.runs)
    o, b = statistics.median(mine), statistics.median(base)
    print(f"{args.rows:,} rows, {csv.stat().st_size / 1e6:.0f} MB CSV, {args.runs} runs each, alternating")
    print(f"anchor ydata-profiling minimal: median {b:6.2f} s (min {min(base):.2f}, max {max(base):.2f})")
    print(f"profile_dataset:                median {o:6.2f} s (min {min(mine):.2f}, max {max(mine):.2f})")
    print(f"per-run ratios (alternating pairs): {[round(x / y, 1) for x, y in zip(base, mine, strict=True)]}")
    print(f"ydata / ours: {b / o:.1f}x faster  (goal >= 12x); load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
