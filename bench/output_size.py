"""The largest output of each repo tool on a large repository, with maximal arguments.

Each tool is called with the arguments that ask for the most (each `limit` and `context_lines` at
the maximum its schema allows, whole-file windows, the biggest file, the biggest commit); the size
is that of the text a host puts in the model's context (the JSON text block), in estimated tokens
(chars / 3.5, conservative for code). Goal: every one under 25,000.

    .venv/bin/python bench/output_size.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bigrepo import big_repo
from common.budget import estimate_tokens
from common.config import load_settings
from servers.repo.server import build_server

BIG = 10**9
GOAL = 25_000


def biggest_file(root: Path) -> str:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    names = [n for n in out.decode().split("\0") if n.endswith(".py")]
    return max(names, key=lambda n: (root / n).stat().st_size)


def widest_change(root: Path) -> None:
    """Uncommitted edits across many files, so git_diff and git_status have the most to say."""
    for i, path in enumerate(sorted(root.glob("django/contrib/admin/*.py"))[:40]):
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("self", "this") + f"\n# edit {i}\n", encoding="utf-8")


def calls(root: Path) -> list[tuple[str, dict[str, Any]]]:
    big = biggest_file(root)
    return [
        ("overview", {}),
        ("list_files", {"limit": 1000, "include_ignored": True}),
        ("read_file", {"path": big, "start_line": 1, "end_line": BIG}),
        ("search", {"query": "e", "limit": 500, "context_lines": 10}),
        ("outline", {"path": big}),
        ("find_symbol", {"name": "get", "include_references": True, "limit": 500}),
        ("git_status", {}),
        ("git_diff", {"context_lines": 50}),
        ("git_log", {"limit": 100}),
        ("git_show", {"rev": "HEAD"}),
        ("git_blame", {"path": big, "start_line": 1, "end_line": BIG}),
        ("related_files", {"path": big, "limit": 100}),
    ]


async def main() -> int:
    root = big_repo()
    subprocess.run(["git", "checkout", "-q", "--", "."], cwd=root, check=True)
    widest_change(root)
    tmp = Path(tempfile.mkdtemp(prefix="onrecord-bench-"))
    server = build_server(
        load_settings(root, managed_file=tmp / "none", user_file=tmp / "none", state=tmp / "state")
    )
    worst = 0
    try:
        async with Client(server) as client:
            for tool, arguments in calls(root):
                result = await client.call_tool(tool, arguments)
                text = "".join(getattr(block, "text", "") for block in result.content)
                tokens = estimate_tokens(text)
                worst = max(worst, tokens)
                data = result.structured_content or {}
                flag = "ERROR " if result.is_error else ""
                print(
                    f"{tool:14} {flag}{tokens:7} tokens  {len(text):8} chars  truncated={data.get('truncated')!s:5} "
                    f"returned={data.get('returned')}"
                )
    finally:
        subprocess.run(["git", "checkout", "-q", "--", "."], cwd=root, check=True)
    print(f"largest: {worst} estimated tokens  (goal: every tool < {GOAL})")
    return 0 if worst < GOAL else 1


if __name__ == "__main__":
    sys.exit(anyio.run(main))
