"""CPU-heavy work off the event loop, stoppable (DESIGN §7).

A tool that parses, scans or matches a lot runs that part with `await offload.run(fn, ...)`: the
event loop keeps serving other calls meanwhile, and when the call is cancelled or runs past
`limits.call_timeout_s` the caller is answered at once. The work itself stops at its next
`offload.checkpoint()`, which a loop over files or rows calls every so often.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread

T = TypeVar("T")


async def run(fn: Callable[..., T], *args: object) -> T:
    """`fn(*args)` in a worker thread; abandoned (and told to stop) if the call is cancelled."""
    return await anyio.to_thread.run_sync(fn, *args, abandon_on_cancel=True)


def checkpoint() -> None:
    """Raise the cancellation of the call this work belongs to, if it was cancelled. Cheap; call
    it once per file or every few thousand rows. A no-op outside a worker thread."""
    try:
        anyio.from_thread.check_cancelled()
    except RuntimeError:
        return  # not in a worker thread: plain domain code or a test
