"""Per-call cost of the accountable layer (policy + redaction + two hash-chained audit records).

Three servers with the same trivial read-only tool, each behind its own in-memory Client, all open
at once; calls alternate one by one between them (the order rotating), so drift on a shared machine
hits every side alike:
- anchor `plain`: an MCPServer;
- `floor`: an MCPServer doing only what our guarantees require: the call record (encoded, chained,
  one write) before the tool runs, the result's digest in a result record before the answer;
- `onrecord`: the AccountableServer (policy, redaction, content gate, the same two records).
Goal: onrecord's added cost <= 1.5x the floor's added cost. Also prints repo.read_file over stdio
against the same tool on a plain server (goal <= 1.12x).

    .venv/bin/python bench/overhead.py [--calls 4000] [--fsync batch|record|off] [--stdio-calls 300]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.server import MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.audit import AuditLog
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


class Floor(MCPServer):
    """The guaranteed work only: one chained record before the tool, one after, nothing else."""

    def __init__(self, audit: AuditLog) -> None:
        super().__init__("floor")
        self.audit = audit
        self.calls = 0

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        self.calls += 1
        call_id = str(self.calls)
        self.audit.write("call", {"call_id": call_id, "tool": name, "arguments": arguments})
        result = await super().call_tool(name, arguments, context)
        body = (
            result.model_dump_json(by_alias=True, exclude_none=True)
            if hasattr(result, "model_dump_json")
            else ""
        )
        digest = "sha256:" + hashlib.sha256(body.encode("utf-8")).hexdigest()
        self.audit.write("result", {"call_id": call_id, "tool": name, "status": "ok", "digest": digest})
        return result


async def alternating(servers: dict[str, MCPServer], calls: int, mode: str) -> dict[str, list[float]]:
    """Per-call times of each server, calls alternating one by one, the order rotating."""
    times: dict[str, list[float]] = {name: [] for name in servers}
    async with AsyncExitStack() as stack:
        clients = {name: await stack.enter_async_context(Client(s, mode=mode)) for name, s in servers.items()}
        for client in clients.values():
            await client.call_tool("echo", {"text": "warm-up"})
        order = list(clients)
        for i in range(calls):
            order = order[1:] + order[:1]
            for name in order:
                started = time.perf_counter()
                result = await clients[name].call_tool("echo", {"text": f"src/module_{i}.py"})
                times[name].append(time.perf_counter() - started)
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
    for _ in range(5):
        base += anyio.run(read_times, plain, calls // 5, args.mode)
        ours += anyio.run(read_times, accountable, calls // 5, args.mode)
    accountable.audit.close()
    print(
        f"  (read_file: plain {statistics.median(base) * 1e6:.1f} us, accountable {statistics.median(ours) * 1e6:.1f} us)"
    )
    return statistics.median(ours) / statistics.median(base)


def stdio_ratio(tmp: Path, calls: int) -> tuple[float, float, float]:
    """repo.read_file over stdio: `onrecord serve repo` against a plain MCPServer with the same tool
    in a process of its own, both started now and called alternately."""
    root = tmp / "stdio-repo"
    root.mkdir()
    (root / "module.py").write_text("".join(f"value_{i} = {i}\n" for i in range(200)), encoding="utf-8")
    plain_script = tmp / "plain_repo.py"
    plain_script.write_text(
        PLAIN_REPO.format(root=str(root), project=str(Path(__file__).resolve().parent.parent)),
        encoding="utf-8",
    )
    env = {**os.environ, "ONRECORD_STATE_DIR": str(tmp / "stdio-state"), "XDG_CONFIG_HOME": str(tmp / "cfg")}
    ours = StdioServerParameters(
        command=str(Path(sys.executable).with_name("onrecord")),
        args=["serve", "repo", "--root", str(root)],
        env=env,
    )
    plain = StdioServerParameters(command=sys.executable, args=[str(plain_script)], env=env)

    async def run() -> tuple[list[float], list[float]]:
        mine: list[float] = []
        base: list[float] = []
        async with AsyncExitStack() as stack:
            a = await stack.enter_async_context(Client(ours, mode="legacy"))
            b = await stack.enter_async_context(Client(plain, mode="legacy"))
            for client in (a, b):
                await client.call_tool("read_file", {"path": "module.py"})
            for i in range(calls):
                for client, out in ((a, mine), (b, base)) if i % 2 else ((b, base), (a, mine)):
                    started = time.perf_counter()
                    result = await client.call_tool("read_file", {"path": "module.py"})
                    out.append(time.perf_counter() - started)
                    assert not result.is_error, result.content
        return mine, base

    mine, base = anyio.run(run)
    o, b = statistics.median(mine), statistics.median(base)
    return o / b, o, b


PLAIN_REPO = """
import sys
sys.path.insert(0, {project!r})
from pathlib import Path
from mcp.server import MCPServer
from common.audit import AuditLog
from common.config import load_settings
from common.server import AccountableServer
from servers.repo.server import register

settings = load_settings(Path({root!r}))
accountable = AccountableServer("repo", settings)
register(accountable, settings)
plain = MCPServer("repo")
for tool in accountable._tool_manager.list_tools():
    plain.add_tool(getattr(tool.fn, "__wrapped__", tool.fn), name=tool.name, annotations=tool.annotations)
plain.run()
"""


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=4000, help="calls per server")
    p.add_argument("--mode", choices=["auto", "legacy"], default="auto", help="protocol era of the client")
    p.add_argument("--fsync", choices=["batch", "record", "off"], default="batch")
    p.add_argument("--stdio-calls", type=int, default=300)
    args = p.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="onrecord-bench-"))
    (tmp / "root").mkdir()
    settings = load_settings(
        tmp / "root", managed_file=tmp / "none", user_file=tmp / "none", state=tmp / "state"
    )
    settings.fsync = args.fsync

    plain = MCPServer("plain")
    plain.add_tool(echo, annotations=READ_ONLY)
    floor = Floor(AuditLog(tmp / "floor-audit", "floor", fsync=args.fsync, batch_ms=settings.batch_ms))
    floor.add_tool(echo, annotations=READ_ONLY)
    accountable = AccountableServer("bench", settings)
    accountable.add_tool(echo, annotations=READ_ONLY)

    times = anyio.run(
        alternating, {"plain": plain, "floor": floor, "onrecord": accountable}, args.calls, args.mode
    )
    accountable.audit.close()
    floor.audit.close()
    b, f, o = (statistics.median(times[n]) for n in ("plain", "floor", "onrecord"))
    real = real_tool_ratio(tmp, args)
    print(
        f"calls per server: {args.calls}, alternating (era={args.mode}, fsync={args.fsync}); load {os.getloadavg()[0]:.2f}"
    )
    print(f"anchor  plain MCPServer:          median {b * 1e6:8.1f} us/call")
    print(f"floor   guaranteed records only:  median {f * 1e6:8.1f} us/call   floor / plain    {f / b:.3f}")
    print(f"onrecord AccountableServer:       median {o * 1e6:8.1f} us/call   onrecord / plain {o / b:.3f}")
    added, floor_added = o - b, f - b
    print(
        f"added cost: onrecord {added * 1e6:.1f} us, floor {floor_added * 1e6:.1f} us; "
        f"ratio {added / floor_added:.2f}  (goal <= 1.5)"
    )
    print(f"in-memory repo.read_file of a 200-line file, onrecord / plain: {real:.3f}")
    if args.stdio_calls:
        ratio, mine, base = stdio_ratio(tmp, args.stdio_calls)
        print(
            f"stdio repo.read_file: onrecord {mine * 1e6:.0f} us, plain {base * 1e6:.0f} us; "
            f"ratio {ratio:.3f}  (goal <= 1.12)"
        )


if __name__ == "__main__":
    main()
