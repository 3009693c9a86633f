"""Heartbeats: a call that runs longer than limits.heartbeat_s keeps sending progress, naming what
runs now, through the in-memory Client in both protocol eras."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.server import MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel

from common import progress
from common.errors import OnrecordError
from common.server import AccountableServer
from tests.helpers import err, first_text, settings_for

pytestmark = pytest.mark.anyio
ERAS = ["legacy", "auto"]
READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)


class Done(BaseModel):
    steps: int


async def quiet_sleep(seconds: float) -> Done:
    """Says nothing, then finishes."""
    await anyio.sleep(seconds)
    return Done(steps=0)


async def stepped(seconds: float) -> Done:
    """Reports one step of three, then runs a long second step with an inner part."""
    await progress.report(1, 3, "step one done")
    progress.running("step two")
    with progress.quiet():
        await progress.report(50, 100, "inner counts, not sent")
        progress.running("inner part")
        await anyio.sleep(seconds)
    progress.running("step three")
    await progress.report(3, 3, "all done")
    return Done(steps=3)


def blocking(seconds: float) -> Done:
    """A sync tool (a worker thread) naming what it does, then holding the thread."""
    progress.running("crunching in a thread")
    time.sleep(seconds)
    return Done(steps=1)


async def fails_late(seconds: float) -> Done:
    await anyio.sleep(seconds)
    raise OnrecordError("the thing broke after a while; try a smaller one")


def make_server(tmp_path: Path, **overrides: Any) -> AccountableServer:
    root = tmp_path / "project"
    root.mkdir(exist_ok=True)
    server = AccountableServer("kit", settings_for(root, tmp=tmp_path, **overrides))
    add: MCPServer = server
    for tool in (quiet_sleep, stepped, blocking, fails_late):
        add.add_tool(tool, annotations=READ_ONLY)
    return server


class Seen:
    def __init__(self) -> None:
        self.events: list[tuple[float, float, float | None, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.events.append((time.monotonic(), progress, total, message))

    @property
    def messages(self) -> list[str | None]:
        return [e[3] for e in self.events]

    def increasing(self) -> bool:
        values = [e[1] for e in self.events]
        return all(a < b for a, b in itertools.pairwise(values))

    def longest_gap(self, started: float) -> float:
        times = [started, *(e[0] for e in self.events)]
        return max(b - a for a, b in itertools.pairwise(times))


@pytest.mark.parametrize("era", ERAS)
async def test_a_silent_call_longer_than_the_interval_gets_heartbeats_naming_the_tool(
    tmp_path: Path, era: str
) -> None:
    server = make_server(tmp_path, heartbeat_s=0.2)
    seen = Seen()
    async with Client(server, mode=era) as client:  # type: ignore[arg-type]
        started = time.monotonic()
        result = await client.call_tool("quiet_sleep", {"seconds": 1.2}, progress_callback=seen)
    assert not result.is_error
    assert len(seen.events) >= 3, seen.events
    assert all(
        m and m.startswith("still running (") and m.endswith("): kit.quiet_sleep") for m in seen.messages
    )
    assert seen.increasing()
    assert seen.longest_gap(started) < 0.2 + 0.35  # the interval, plus scheduling slack


async def test_heartbeats_name_the_innermost_step_and_keep_the_tools_counts(tmp_path: Path) -> None:
    server = make_server(tmp_path, heartbeat_s=0.2)
    seen = Seen()
    async with Client(server, mode="legacy") as client:
        result = await client.call_tool("stepped", {"seconds": 1.0}, progress_callback=seen)
    assert not result.is_error
    assert seen.messages[0] == "step one done" and seen.messages[-1] == "all done"
    beats = seen.events[1:-1]
    assert len(beats) >= 2
    assert all(e[3] and e[3].endswith("): step two > inner part") for e in beats)
    # The step's own counts (50 of 100) are not sent; the heartbeat stays between the tool's steps.
    assert all(1 < e[1] < 2 and e[2] == 3 for e in beats)
    assert "inner counts, not sent" not in seen.messages
    assert seen.increasing()


async def test_a_sync_tool_blocking_its_thread_still_gets_heartbeats(tmp_path: Path) -> None:
    server = make_server(tmp_path, heartbeat_s=0.2)
    seen = Seen()
    async with Client(server, mode="legacy") as client:
        result = await client.call_tool("blocking", {"seconds": 1.0}, progress_callback=seen)
    assert not result.is_error
    assert len(seen.events) >= 2
    assert all(m and m.endswith("): crunching in a thread") for m in seen.messages)


async def test_the_default_interval_is_inside_ten_seconds(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    assert 0 < server.config.heartbeat_s <= 10
    assert server.config.heartbeat_s == progress.HEARTBEAT_S


async def test_errors_and_timeouts_reach_the_caller_as_before(tmp_path: Path) -> None:
    server = make_server(tmp_path, heartbeat_s=0.1, call_timeout_s=0.5)
    seen = Seen()
    async with Client(server, mode="legacy") as client:
        failed = await client.call_tool("fails_late", {"seconds": 0.3}, progress_callback=seen)
        assert (
            err(failed) == "Error executing tool fails_late: the thing broke after a while; try a smaller one"
        )
        timed_out = await client.call_tool("quiet_sleep", {"seconds": 30}, progress_callback=seen)
        assert "call limit (limits.call_timeout_s)" in first_text(timed_out)
        # Without a progress token nothing is sent, and the call is the same.
        before = len(seen.events)
        assert not (await client.call_tool("quiet_sleep", {"seconds": 0.3})).is_error
        assert len(seen.events) == before


async def test_outside_a_call_progress_goes_nowhere() -> None:
    await progress.report(1, 2, "nobody listens")
    progress.running("nothing")
    with progress.quiet():
        progress.running("still nothing")


async def test_alarms_fire_what_is_due_and_nothing_cancelled_or_replaced() -> None:
    alarms = progress.Alarms()
    fired: list[str] = []

    def broken() -> None:
        fired.append("broken")
        raise RuntimeError("one call's alarm fails")

    assert alarms.set("a", 0.05, lambda: fired.append("a"))
    assert alarms.set("b", 0.05, broken)
    assert alarms.set("c", 0.02, lambda: fired.append("c-old"))
    assert alarms.set("c", 0.08, lambda: fired.append("c"))  # replaces the earlier alarm
    assert alarms.set("d", 0.03, lambda: fired.append("d"))
    alarms.cancel("d")
    with anyio.fail_after(5):
        while "c" not in fired:
            await anyio.sleep(0.01)
    await anyio.sleep(0.05)
    # The failing callback stopped neither the alarm due with it nor the later one.
    assert sorted(fired) == ["a", "broken", "c"]


async def test_an_alarm_set_again_by_its_callback_does_not_delay_one_due_sooner() -> None:
    alarms = progress.Alarms()
    fired: list[tuple[str, float]] = []
    started = time.monotonic()

    def again() -> None:
        fired.append(("first", time.monotonic() - started))
        alarms.set("first", 5.0, lambda: None)  # its next time is far away

    assert alarms.set("first", 0.01, again)
    assert alarms.set("soon", 0.2, lambda: fired.append(("soon", time.monotonic() - started)))
    with anyio.fail_after(5):
        while len(fired) < 2:
            await anyio.sleep(0.01)
    assert [name for name, _ in fired] == ["first", "soon"]
    assert fired[1][1] < 2.0  # not held back to the re-set alarm's 5 s
