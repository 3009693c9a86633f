"""Peak resident memory of the data server while `profile_dataset` reads a file larger than its
memory limit (issue 12: the peak stays under the limit).

Each run is a fresh child process: the data server through the in-memory Client, warmed by one
`profile_dataset` call on a small file (as a running server is: DuckDB's library pages and
one-time set-up are then resident), then one call on the big file. The child reads its own peak
resident set (VmHWM in /proc/self/status) before and after that call; the figure is the growth,
i.e. what the call cost the server process on top of what it held already. Files (cached under the bench cache): the 10M-row
mixed Parquet of bench/data_profile.py and a CSV of the same columns, both larger than the limit.

    .venv/bin/python bench/data_memory.py [--memory-mb 128] [--runs 3] [--csv-rows 2000000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bigrepo import cache_dir
from bench.data_profile import generate

THREADS = 2


def status_mb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(root: Path, name: str, memory_mb: int, threads: int) -> None:
    """One profile in this process; prints the figures as JSON."""
    import anyio
    import duckdb  # noqa: F401  (the server holds it after its first call)
    from mcp import Client

    from common.config import load_settings
    from servers.data.server import build_server

    async def go() -> dict[str, float]:
        with tempfile.TemporaryDirectory() as tmp:
            settings = load_settings(
                root, managed_file=Path(tmp) / "none", user_file=Path(tmp) / "none", state=Path(tmp) / "state"
            )
            settings.servers["data"] = {"threads": threads, "memory_mb": memory_mb, "timeout_s": 600}
            async with Client(build_server(settings)) as client:
                for small in ("small.csv", "small.parquet"):
                    warm = await client.call_tool("profile_dataset", {"path": small})
                    assert not warm.is_error, warm.content
                before = status_mb("VmHWM")
                started = time.perf_counter()
                result = await client.call_tool("profile_dataset", {"path": name})
                elapsed = time.perf_counter() - started
                assert not result.is_error, result.content
                return {"before": before, "peak": status_mb("VmHWM"), "seconds": elapsed}

    print(json.dumps(anyio.run(go)))


def files(csv_rows: int) -> Path:
    root = cache_dir() / "data-memory"
    root.mkdir(parents=True, exist_ok=True)
    parquet = root / "data.parquet"
    if not parquet.exists():
        generate(parquet, 10_000_000)
    import duckdb

    with duckdb.connect() as conn:
        for name, rows, options in (
            ("data.csv", csv_rows, "HEADER, DELIMITER ','"),
            ("small.csv", 1000, "HEADER, DELIMITER ','"),
            ("small.parquet", 1000, "FORMAT parquet"),
        ):
            if not (root / name).exists():
                conn.execute(f"COPY (SELECT * FROM '{parquet}' LIMIT {rows}) TO '{root / name}' ({options})")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--memory-mb", type=int, default=128)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--csv-rows", type=int, default=2_000_000)
    args = parser.parse_args()
    root = files(args.csv_rows)
    failed = False
    for name in ("data.parquet", "data.csv"):
        size = (root / name).stat().st_size / 1e6
        growth, seconds = [], []
        for _ in range(args.runs):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    str(root),
                    name,
                    str(args.memory_mb),
                    str(args.threads),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            growth.append(figures["peak"] - figures["before"])
            seconds.append(figures["seconds"])
        worst = max(growth)
        failed |= worst >= args.memory_mb
        print(
            f"{name:13} {size:5.0f} MB file, limit {args.memory_mb} MB, {args.threads} threads: peak growth "
            f"min {min(growth):.0f} / median {statistics.median(growth):.0f} / max {worst:.0f} MB "
            f"({'under' if worst < args.memory_mb else 'OVER'} the limit); "
            f"{min(seconds):.2f} / {statistics.median(seconds):.2f} / {max(seconds):.2f} s"
        )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
