"""Progress reporting for long tools, without the tool knowing about MCP.

The accountable server sets a reporter for each call (the client's progress token, if it sent one);
domain code calls `report(...)`. Outside a call, or inside `quiet()`, reports go nowhere.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Iterator

Reporter = Callable[[float, float | None, str | None], Awaitable[None]]
_CURRENT: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar("onrecord_progress", default=None)


async def report(done: float, total: float | None, message: str | None = None) -> None:
    reporter = _CURRENT.get()
    if reporter is not None:
        await reporter(done, total, message)


def enter(reporter: Reporter | None) -> contextvars.Token[Reporter | None]:
    return _CURRENT.set(reporter)


def leave(token: contextvars.Token[Reporter | None]) -> None:
    _CURRENT.reset(token)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No reports from inside: for a step of a tool that reports its own progress."""
    token = _CURRENT.set(None)
    try:
        yield
    finally:
        _CURRENT.reset(token)
