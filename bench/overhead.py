"""Per-call cost of the accountable layer (policy + redaction + two hash-chained audit records).

Anchor: the same trivial read-only tool on a plain MCPServer, through the same in-memory Client.
Runs alternate in blocks so drift on a shared machine hits both sides alike. Goal: ratio <= 1.15
with batched fsync.

    .venv/bin/python bench/overhead.py [--calls 2000] [--rounds 5] [--fsync batch|record|off]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client
from mcp.server import MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.config import load_settings
from common.server import AccountableServer

READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)


class Echo(BaseModel):
    text: str
    length: int


async def echo(text: str) -> Echo:
    """Echo text back."""
    return Echo(text=text, length=len(text))


async def per_call_times(server: MCPServer, calls: int, mode: str = "auto") -> list[float]:
    times: list[float] = []
    async with Client(server, mode=mode) as client:
        await client.call_tool("echo", {"text": "warm-up"})
        for i in range(calls):
            started = time.perf_counter()
            result = await client.call_tool("echo", {"text": f"src/module_{i}.py"})
            times.append(time.perf_counter() - started)
            assert not result.is_error
    return times


async def read_times(server: MCPServer, calls: int, mode: str) -> list[float]:
    times: list[float] = []
    async with Client(server, mode=mode) as client:
        await client.call_tool("read_file", {"path": "module.py"})
        for _ in range(calls):
            started = time.perf_counter()
            result = await client.call_tool("read_file", {"path": "module.py"})
            times.append(time.perf_counter() - started)
            assert not result.is_error
    return times


def real_tool_ratio(tmp: Path, args: argparse.Namespace) -> float:
    """The same comparison for a real tool: the repo server's read_file with and without the layer."""
    from servers.repo.server import register

    root = tmp / "repo"
    root.mkdir()
    (root / "module.py").write_text("".join(f"value_{i} = {i}\n" for i in range(200)), encoding="utf-8")
    settings = load_settings(root, managed_file=tmp / "none", user_file=tmp / "none", state=tmp / "state2")
    accountable = AccountableServer("repo", settings)
    register(accountable, settings)
    plain = MCPServer("repo")
    # The same tool functions on a plain server: copy them from the accountable one.
    for tool in accountable._tool_manager.list_tools():
        plain.add_tool(getattr(tool.fn, "__wrapped__", tool.fn), name=tool.name, annotations=tool.annotations)
    calls = max(200, args.calls // 4)
    base: list[float] = []
    ours: list[float] = []
    for _ in range(args.rounds):
        base += anyio.run(read_times, plain, calls // args.rounds, args.mode)
        ours += anyio.run(read_times, accountable, calls // args.rounds, args.mode)
    accountable.audit.close()
    print(
        f"  (read_file: plain {statistics.median(base) * 1e6:.1f} us, accountable {statistics.median(ours) * 1e6:.1f} us)"
    )
    return statistics.median(ours) / statistics.median(base)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=2000, help="calls per side per round")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--mode", choices=["auto", "legacy"], default="auto", help="protocol era of the client")
    p.add_argument("--fsync", choices=["batch", "record", "off"], default="batch")
    args = p.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="onrecord-bench-"))
    (tmp / "root").mkdir()
    settings = load_settings(
        tmp / "root", managed_file=tmp / "none", user_file=tmp / "none", state=tmp / "state"
    )
    settings.fsync = args.fsync

    plain = MCPServer("plain")
    plain.add_tool(echo, annotations=READ_ONLY)
    accountable = AccountableServer("bench", settings)
    accountable.add_tool(echo, annotations=READ_ONLY)

    base: list[float] = []
    ours: list[float] = []
    for _ in range(args.rounds):
        base += anyio.run(per_call_times, plain, args.calls // args.rounds, args.mode)
        ours += anyio.run(per_call_times, accountable, args.calls // args.rounds, args.mode)
    accountable.audit.close()

    b, o = statistics.median(base), statistics.median(ours)
    real = real_tool_ratio(tmp, args)
    records = sum(1 for _ in accountable.audit.path.open(encoding="utf-8")) if accountable.audit.path else 0
    print(
        f"calls per side: {len(base)}  (era={args.mode}, fsync={args.fsync}, {records} audit records written)"
    )
    print(f"anchor  plain MCPServer, in-memory Client:    median {b * 1e6:8.1f} us/call")
    print(f"onrecord AccountableServer, same client:      median {o * 1e6:8.1f} us/call")
    print(f"ratio accountable / plain: {o / b:.3f}  (goal <= 1.15)")
    print(f"for scale, repo.read_file of a 200-line file, same comparison: {real:.3f}")


if __name__ == "__main__":
    main()
