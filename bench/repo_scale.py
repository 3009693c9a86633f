"""Every repo tool on a 55,000-file, 5,000-commit repository, next to the git command nearest its job.

The repository is `bench.bigrepo.generated_repo()` (deterministic). Each tool is called through the
in-memory Client with realistic arguments, alternating with its git anchor (a subprocess timed from
spawn to exit, its output read through a pipe as a caller would). Goals: every tool's median <= 1 s; `search` <= 1.3x `git grep --untracked`.

    .venv/bin/python bench/repo_scale.py [--runs 5] [--only related_files,find_symbol]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bigrepo import generated_repo
from common.config import load_settings
from servers.repo.server import build_server

MODULE = "pkg123/mod_45.py"
# tool, arguments, git anchor
CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("overview", {}, ["ls-files"]),
    ("list_files", {"limit": 200}, ["ls-files"]),
    ("list_files", {"path": "pkg123", "limit": 200}, ["ls-files", "pkg123"]),
    ("read_file", {"path": MODULE}, ["show", f"HEAD:{MODULE}"]),
    ("search", {"query": "import"}, ["grep", "--untracked", "-n", "-I", "-i", "-F", "-e", "import"]),
    (
        "search",
        {"query": "load_config_45"},
        ["grep", "--untracked", "-n", "-I", "-i", "-F", "-e", "load_config_45"],
    ),
    ("outline", {"path": MODULE}, ["show", f"HEAD:{MODULE}"]),
    ("find_symbol", {"name": "helper_45"}, ["grep", "-n", "-w", "-F", "-e", "helper_45"]),
    (
        "find_symbol",
        {"name": "helper_45", "include_references": True},
        ["grep", "-n", "-w", "-F", "-e", "helper_45"],
    ),
    ("git_status", {}, ["status", "--porcelain"]),
    ("git_diff", {"target": "HEAD~20"}, ["diff", "HEAD~20"]),
    ("git_log", {}, ["log", "-20", "--stat"]),
    ("git_log", {"path": "pkg123"}, ["log", "-20", "--stat", "--", "pkg123"]),
    ("git_show", {"rev": "HEAD~3"}, ["show", "HEAD~3"]),
    ("git_blame", {"path": MODULE}, ["blame", "--porcelain", MODULE]),
    ("related_files", {"path": MODULE}, ["log", "--format=%H", "--name-only", "--", MODULE]),
]


def git(root: Path, args: list[str]) -> float:
    started = time.perf_counter()
    # The output is read, as any caller of git must: sent to /dev/null, git skips writing it.
    subprocess.run(["git", *args], cwd=root, capture_output=True, check=False)
    return time.perf_counter() - started


async def ours(client: Client, tool: str, arguments: dict[str, Any]) -> float:
    started = time.perf_counter()
    result = await client.call_tool(tool, arguments)
    elapsed = time.perf_counter() - started
    if result.is_error:
        raise SystemExit(f"{tool} {arguments}: {result.content}")
    return elapsed


async def main(runs: int, only: set[str]) -> None:
    root = generated_repo()
    tmp = Path(tempfile.mkdtemp(prefix="onrecord-bench-"))
    settings = load_settings(root, managed_file=tmp / "none", user_file=tmp / "none", state=tmp / "state")
    server = build_server(settings)
    print(f"repository: {root}; load average {os.getloadavg()[0]:.2f}")
    worst = 0.0
    async with Client(server) as client:
        for tool, arguments, anchor in CASES:
            if only and tool not in only:
                continue
            await ours(client, tool, arguments)  # warm caches and the page cache, as a session would
            git(root, anchor)
            mine, base = [], []
            for _ in range(runs):
                base.append(git(root, anchor))
                mine.append(await ours(client, tool, arguments))
            o, b = statistics.median(mine), statistics.median(base)
            worst = max(worst, o)
            label = f"{tool} {arguments}"[:60]
            print(
                f"{label:60} {o * 1000:8.1f} ms (min {min(mine) * 1000:.0f}, max {max(mine) * 1000:.0f})"
                f"   git {' '.join(anchor[:2])[:18]:18} {b * 1000:7.1f} ms   ratio {o / b:6.2f}"
            )
    print(f"slowest tool median: {worst:.2f} s (goal <= 1 s)")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--only", default="")
    a = p.parse_args()
    anyio.run(main, a.runs, {t for t in a.only.split(",") if t})
