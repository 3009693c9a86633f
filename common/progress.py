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
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import anyio

Reporter = Callable[[float, float | None, str | None], Awaitable[None]]
T = TypeVar("T")

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
"""The default interval: well inside the 10 s the issue asks for, and far inside any host's patience."""


class Alarms:
    """Callbacks due at event-loop times for every call in flight, from one loop timer.

    Arming and cancelling a loop timer (or a cancel scope with a deadline) on every call costs more
    than the rest of what the call needs; calls that end before anything is due (nearly all) cost a
    dict entry here instead. The timer fires at the earliest time due, runs what is due and re-arms
    for the next. Used on asyncio's loop only; `set` says False on another backend."""

    __slots__ = ("_armed", "_due", "_loop", "_timer")

    def __init__(self) -> None:
        self._due: dict[object, tuple[float, Callable[[], None]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._armed = math.inf

    def set(self, key: object, delay_s: float, callback: Callable[[], None]) -> bool:
        """Run `callback` in `delay_s` seconds unless `cancel(key)` comes first (a key has one
        alarm; setting it again replaces it)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if loop is not self._loop:  # a new event loop: nothing of the old one is in flight
            self._loop, self._timer, self._armed = loop, None, math.inf
            self._due.clear()
        due = loop.time() + delay_s
        self._due[key] = (due, callback)
        if due < self._armed:
            self._arm(loop, due)
        return True

    def cancel(self, key: object) -> None:
        self._due.pop(key, None)

    def _arm(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed = due
        self._timer = loop.call_at(due, self._expire)

    def _expire(self) -> None:
        self._timer, self._armed = None, math.inf
        loop = self._loop
        assert loop is not None
        now = loop.time()
        for key, (due, callback) in [item for item in self._due.items() if item[1][0] <= now]:
            if self._due.get(key, (None,))[0] == due:  # not cancelled or replaced meanwhile
                del self._due[key]
                try:
                    callback()
                except Exception:  # one call's alarm must not stop the others'
                    log.exception("alarm callback failed")
        # A callback may have armed the timer for its own next time: re-arm if anything left is due sooner.
        if self._due and (first := min(due for due, _ in self._due.values())) < self._armed:
            self._arm(loop, first)


ALARMS = Alarms()
"""The process's alarms: heartbeats here, call time limits in common.server."""


class _Call:
    """What one call has said so far."""

    __slots__ = ("message", "names", "pulses", "said_at", "send", "started", "total", "value", "what")

    def __init__(self, send: Reporter, what: str) -> None:
        self.send, self.what = send, what
        self.started = self.said_at = time.monotonic()
        self.value = -math.inf  # the last progress value sent
        self.total: float | None = None
        self.message: str | None = None
        self.names: list[str | None] = []  # running(...) per depth
        self.pulses: set[asyncio.Task[None]] | None = None  # heartbeats being sent

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

    def alarm(self, interval_s: float) -> None:
        """Heartbeats from ALARMS: nothing runs until a beat is due, so a call that ends within
        the interval costs an alarm set and cancelled."""
        wait = self.said_at + interval_s - time.monotonic()
        if wait <= 0:
            task = asyncio.get_running_loop().create_task(self.pulse())
            if self.pulses is None:
                self.pulses = set()
            self.pulses.add(task)
            task.add_done_callback(self.pulses.discard)
            wait = interval_s
        ALARMS.set(self, wait, functools.partial(self.alarm, interval_s))

    def stop(self) -> None:
        ALARMS.cancel(self)
        for task in list(self.pulses or ()):
            task.cancel()


class _Scope:
    __slots__ = ("call", "depth", "muted")

    def __init__(self, call: _Call, depth: int = 0, muted: bool = False) -> None:
        self.call, self.depth, self.muted = call, depth, muted


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
        if ALARMS.set(call, interval_s, functools.partial(call.alarm, interval_s)):
            try:
                return await body()
            finally:
                call.stop()
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
