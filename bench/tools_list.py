"""What `tools/list` costs: each server's listing in characters and estimated tokens, per tool, next
to the reference `mcp-server-git`.

Size is that of the compact JSON a client receives (the result with None fields left out, as the
SDK sends it); tokens are chars / 3.5 (common.budget.estimate_tokens). The reference runs over stdio
from a bench-only venv, ~/.cache/onrecord-bench/anchor-venv, made with pip when missing.

    .venv/bin/python bench/tools_list.py

Before the lean schemas (common/schema.py) the listings were: repo 41,679 chars, testing 31,118,
data 29,523, evals 34,059.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.budget import estimate_tokens
from common.config import load_settings
from common.schema import size
from servers import SERVERS, build

ANCHOR = Path.home() / ".cache" / "onrecord-bench" / "anchor-venv"


def anchor_command() -> Path:
    """The reference server's console script, installing it into the bench venv on first use."""
    script = ANCHOR / "bin" / "mcp-server-git"
    if not script.exists():
        subprocess.run([sys.executable, "-m", "venv", str(ANCHOR)], check=True)
        subprocess.run([str(ANCHOR / "bin" / "pip"), "install", "-q", "mcp-server-git"], check=True)
    return script


def dumped(listing: Any) -> dict[str, Any]:
    return listing.model_dump(mode="json", by_alias=True, exclude_none=True)


def row(name: str, chars: int) -> str:
    return f"  {name:<24} {chars:>7,} chars {estimate_tokens('x' * chars):>6,} tokens"


async def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="onrecord-bench-"))
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-q", "--allow-empty", "-m", "x"],
        cwd=root,
        check=True,
    )
    settings = load_settings(
        root, managed_file=root / "none", user_file=root / "none", state=root / ".state", sections=SERVERS
    )
    per_tool: dict[str, int] = {}
    for name in SERVERS:
        async with Client(build(name, settings)) as client:
            listing = dumped(await client.list_tools())
        print(f"{name}: {row('tools/list', size(listing)).strip()}, {len(listing['tools'])} tools")
        for tool in listing["tools"]:
            per_tool[tool["name"]] = size(tool)
            print(row(tool["name"], size(tool)))
    params = StdioServerParameters(command=str(anchor_command()), args=["--repository", str(root)])
    async with Client(params, mode="legacy") as client:
        reference = dumped(await client.list_tools())
    tools = reference["tools"]
    print(f"mcp-server-git: {row('tools/list', size(reference)).strip()}, {len(tools)} tools")
    for tool in tools:
        ours = per_tool.get(tool["name"])
        beside = f"   (onrecord {tool['name']}: {ours:,} chars)" if ours else ""
        print(row(tool["name"], size(tool)) + beside)
    mean = sum(size(t) for t in tools) // len(tools)
    print(row("mean per tool", mean))
    ours_mean = sum(per_tool.values()) // len(per_tool)
    print(f"onrecord mean per tool: {ours_mean:,} chars, {estimate_tokens('x' * ours_mean):,} tokens")


if __name__ == "__main__":
    anyio.run(main)
