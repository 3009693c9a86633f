"""`search` on a large repository against running `git grep` directly for the same query.

Anchors, each a subprocess timed from spawn to exit in the same repository:
- `git grep -n -I -i -F -e QUERY` (or -P for regexes): tracked files only;
- the same with `--untracked`: the file set `search` promises (tracked plus untracked-not-ignored).
Ours: the repo server's `search` tool through the in-memory Client, first page (limit=100), which
also counts every match, filters by policy and bounds the result. Runs alternate; medians are
compared. Goal: ratio <= 1.3.

    .venv/bin/python bench/search.py [--runs 9]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bigrepo import big_repo
from common.config import load_settings
from servers.repo.server import build_server

QUERIES = [
    ("get_object_or_404", False),
    ("def __init__", False),
    ("import", False),
    (r"class \w+Form\(", True),
]


def git_grep(root: Path, query: str, regex: bool, untracked: bool = False) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            "git",
            "grep",
            "-n",
            "-I",
            "-i",
            *(["--untracked"] if untracked else []),
            "-P" if regex else "-F",
            "-e",
            query,
        ],
        cwd=root,
        capture_output=True,  # read, as search must: sent to /dev/null, git skips writing it
        check=False,
    )
    return time.perf_counter() - started


async def ours(client: Client, query: str, regex: bool) -> tuple[float, int]:
    started = time.perf_counter()
    result = await client.call_tool("search", {"query": query, "regex": regex})
    elapsed = time.perf_counter() - started
    assert not result.is_error, result.content
    return elapsed, result.structured_content["total"]


async def main(runs: int) -> None:
    root = big_repo()
    tmp = Path(tempfile.mkdtemp(prefix="onrecord-bench-"))
    settings = load_settings(root, managed_file=tmp / "none", user_file=tmp / "none", state=tmp / "state")
    server = build_server(settings)
    files = subprocess.run(
        ["git", "ls-files"], cwd=root, capture_output=True, text=True, encoding="utf-8", check=True
    ).stdout.count("\n")
    print(f"repository: {root} ({files} files)")
    ratios, ratios_u = [], []
    async with Client(server) as client:
        for query, regex in QUERIES:
            await ours(client, query, regex)  # warm the page cache for every side
            git_grep(root, query, regex)
            base, base_u, mine = [], [], []
            total = 0
            for _ in range(runs):
                base.append(git_grep(root, query, regex))
                base_u.append(git_grep(root, query, regex, untracked=True))
                elapsed, total = await ours(client, query, regex)
                mine.append(elapsed)
            b, bu, o = statistics.median(base), statistics.median(base_u), statistics.median(mine)
            ratios.append(o / b)
            ratios_u.append(o / bu)
            print(
                f"{query!r:22} matches={total:6}  git grep {b * 1000:6.1f} ms  git grep --untracked "
                f"{bu * 1000:6.1f} ms  search {o * 1000:6.1f} ms  ratios {o / b:.2f} / {o / bu:.2f}"
            )
    print(f"median ratio search / git grep:             {statistics.median(ratios):.2f}  (goal <= 1.3)")
    print(f"median ratio search / git grep --untracked: {statistics.median(ratios_u):.2f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=9)
    anyio.run(main, p.parse_args().runs)
