"""Start a server exactly as a host config says, and see whether it answers.

A probe spawns the command with the host's arguments and `env`, over a minimal environment (the
SDK's: HOME, LOGNAME, PATH, SHELL, TERM, USER; hosts such as Claude Desktop pass no more), sends the
initialize handshake hosts send, lists the tools, and ends the process. What the server wrote on
stderr is kept, so a failure can say why.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import anyio

# Starting a server imports the SDK (about 1 s alone on a small machine); a loaded machine needs more.
PROBE_TIMEOUT_S = 60.0
_STDERR_TAIL = 6
_PARALLEL = 4


@dataclass(frozen=True)
class Launch:
    """One server as a host will start it."""

    name: str
    command: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None

    def shown(self) -> str:
        return " ".join([self.command, *self.args])


@dataclass(frozen=True)
class ProbeResult:
    """What happened when a server was started: its tools, or what failed."""

    launch: Launch
    ok: bool
    tools: list[str] = field(default_factory=list)
    server: str = ""
    error: str = ""
    stderr: str = ""

    def failure(self) -> str:
        """One paragraph saying what failed, with the server's last words."""
        return f"{self.launch.name}: {self.why()}"

    def why(self) -> str:
        text = f"`{self.launch.shown()}` {self.error}"
        if self.stderr:
            text += "\n    its stderr ended with:\n" + "\n".join(
                f"      {line}" for line in self.stderr.splitlines()
            )
        return text


async def probe(launch: Launch, *, timeout_s: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Handshake with the server `launch` describes and list its tools; never raises for a
    server that fails, it says how it failed."""
    from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
    from mcp.types import Implementation

    params = StdioServerParameters(
        command=launch.command,
        args=launch.args,
        env=launch.env,
        cwd=launch.cwd,
    )
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as errlog:
        error = ""
        tools: list[str] = []
        server = ""
        try:
            with anyio.fail_after(timeout_s):
                async with (
                    stdio_client(params, errlog=errlog) as (read, write),
                    ClientSession(
                        read, write, client_info=Implementation(name="onrecord-probe", version="1")
                    ) as session,
                ):
                    init = await session.initialize()
                    server = f"{init.server_info.name} {init.server_info.version}".strip()
                    tools = [t.name for t in (await session.list_tools()).tools]
        except TimeoutError:
            error = f"did not answer the handshake and tools/list within {timeout_s:.0f} s"
        except FileNotFoundError:
            where = (
                "not on PATH" if "/" not in launch.command and "\\" not in launch.command else "no such file"
            )
            error = f"cannot start: {launch.command!r} is {where}"
        except PermissionError:
            error = "cannot start: the command is not executable"
        except (MCPError, OSError, ValueError, anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            error = f"stopped before answering ({_first_line(exc)})"
        except BaseExceptionGroup as group:
            error = f"stopped before answering ({_first_line(_innermost(group))})"
        if not error and not tools:
            error = "answered the handshake but lists no tools"
        errlog.seek(0)
        tail = "\n".join(errlog.read().strip().splitlines()[-_STDERR_TAIL:])
    return ProbeResult(launch, ok=not error, tools=tools, server=server, error=error, stderr=tail)


async def probe_all(launches: list[Launch], *, timeout_s: float = PROBE_TIMEOUT_S) -> list[ProbeResult]:
    """Probe the launches a few at a time, results in order. Each start spends about a second of
    CPU importing the SDK, so a dozen at once on a small machine would run into their timeouts."""
    results: list[ProbeResult | None] = [None] * len(launches)
    limiter = anyio.CapacityLimiter(_PARALLEL)

    async def one(i: int, launch: Launch) -> None:
        async with limiter:
            results[i] = await probe(launch, timeout_s=timeout_s)

    async with anyio.create_task_group() as tg:
        for i, launch in enumerate(launches):
            tg.start_soon(one, i, launch)
    return [r for r in results if r is not None]


def _innermost(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
