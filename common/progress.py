"""Progress reporting for long tools, without the tool knowing about MCP.

The accountable server runs every call inside `beating(...)` with the client's progress reporter
(a no-op when the client sent no progress token); domain code calls `report(...)` to send progress
and `running(...)` to name what runs at the moment. Outside a call reports go nowhere.

Heartbeats: a host drops a call after minutes of silence, and one slow test (or one slow check, or
one slow endpoint row) sends nothing for that long. So while a call runs, a loop timer sends a
progress notification whenever nothing was sent for `interval_s` (limits.heartbeat_s), saying what
runs now: the innermost `running(...)` names (a step inside `quiet()` adds its own after its
caller's), else the last message sent, else the tool. Its progress value is the last one sent plus a
little, since the protocol wants each notification's value to grow.

`quiet()` is for a step of a tool that reports its own progress: the step's `report(...)` calls are
not sent (their counts mean something else), but what it names with `running(...)` still reaches
the heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import anyio

Reporter = Callable[[float, float | None, str | None], Awaitable[None]]
T = TypeVar("T")

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
"""The default interval: well inside the 10 s the issue asks for, and far inside any host's patience."""


@dataclass
class _Call:
    """What one call has said so far."""

    send: Reporter
    what: str
    started: float = field(default_factory=time.monotonic)
    said_at: float = field(default_factory=time.monotonic)
    value: float = -math.inf  # the last progress value sent
    total: float | None = None
    message: str | None = None
    names: list[str | None] = field(default_factory=list[str | None])  # running(...) per depth

    async def emit(self, value: float, total: float | None, message: str | None) -> None:
        self.value, self.total, self.said_at = value, total, time.monotonic()
        if message is not None:
            self.message = message
        await self.send(value, total, message)

    def now(self) -> str:
        named = [n for n in self.names if n]
        if named:
            return " > ".join(named)
        return self.message or self.what

    async def pulse(self) -> None:
        """One heartbeat: what runs now, with a progress value a little above the last one."""
        elapsed = time.monotonic() - self.started
        # A little more each time, far from the next step the tool will report.
        value = round(self.value + 0.001, 3) if self.value >= 0 else 0.0
        message = f"still running ({elapsed:.0f}s): {self.now()}"
        try:
            await self.emit(value, self.total, message)
        except Exception as exc:  # a heartbeat must never fail the call it keeps alive
            log.debug("heartbeat not sent: %r", exc)
            self.said_at = time.monotonic()

    async def beat(self, interval_s: float) -> None:
        while True:
            await anyio.sleep(max(0.0, self.said_at + interval_s - time.monotonic()))
            if time.monotonic() - self.said_at >= interval_s:  # else the tool spoke meanwhile
                await self.pulse()


class _Timer:
    """Heartbeats of one call from a loop timer: nothing runs (no task, no task group) until a beat
    is due, so a call that ends within the interval costs one timer armed and cancelled."""

    def __init__(self, call: _Call, interval_s: float, loop: asyncio.AbstractEventLoop) -> None:
        self.call, self.interval_s, self.loop = call, interval_s, loop
        self.tasks: set[asyncio.Task[None]] = set()
        self.handle = loop.call_later(interval_s, self.fire)

    def fire(self) -> None:
        wait = self.call.said_at + self.interval_s - time.monotonic()
        if wait <= 0:
            task = self.loop.create_task(self.call.pulse())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            wait = self.interval_s
        self.handle = self.loop.call_later(wait, self.fire)

    def stop(self) -> None:
        self.handle.cancel()
        for task in list(self.tasks):
            task.cancel()


@dataclass(frozen=True)
class _Scope:
    call: _Call
    depth: int = 0
    muted: bool = False


_CURRENT: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar("onrecord_progress", default=None)


async def report(done: float, total: float | None, message: str | None = None) -> None:
    """Send progress: `done` of `total` (None when unknown), and what just happened."""
    scope = _CURRENT.get()
    if scope is None or scope.muted:
        return
    call = scope.call
    value = max(done, math.nextafter(call.value, math.inf)) if done <= call.value else done
    await call.emit(value, total, message)


def running(what: str | None) -> None:
    """Name what runs at the moment (a test, a check, a run), for the heartbeat; sends nothing.
    Safe from a worker thread running this call's code."""
    scope = _CURRENT.get()
    if scope is None:
        return
    names = scope.call.names
    del names[scope.depth :]
    names.extend([None] * (scope.depth - len(names)))
    names.append(what)


async def beating(send: Reporter | None, what: str, interval_s: float, body: Callable[[], Awaitable[T]]) -> T:
    """`await body()` with progress reports going to `send`, and heartbeats every `interval_s`
    while it runs. `what` names the call when nothing else was said (the tool's name)."""
    if send is None:
        token = _CURRENT.set(None)
        try:
            return await body()
        finally:
            _CURRENT.reset(token)
    call = _Call(send, what)
    token = _CURRENT.set(_Scope(call))
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    try:
        if loop is not None:
            timer = _Timer(call, interval_s, loop)
            try:
                return await body()
            finally:
                timer.stop()
        return await _beating_in_task(call, interval_s, body)
    finally:
        _CURRENT.reset(token)


async def _beating_in_task(call: _Call, interval_s: float, body: Callable[[], Awaitable[T]]) -> T:
    """The same, with a heartbeat task, for an event loop other than asyncio's."""
    caught: Exception | None = None
    result: list[T] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(call.beat, interval_s)
        try:
            result.append(await body())
        except Exception as exc:  # re-raised below, not inside the task group's exception group
            caught = exc
        finally:
            tg.cancel_scope.cancel()
    if caught is not None:
        raise caught
    return result[0]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No reports sent from inside: for a step of a tool that reports its own progress. What the
    step names with `running(...)` still goes into the heartbeat, after its caller's name."""
    scope = _CURRENT.get()
    if scope is None:
        yield
        return
    inner = _Scope(scope.call, scope.depth + 1, muted=True)
    token = _CURRENT.set(inner)
    try:
        yield
    finally:
        _CURRENT.reset(token)
        del scope.call.names[scope.depth + 1 :]
