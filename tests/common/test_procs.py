from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import anyio
import pytest

from common import procs

pytestmark = pytest.mark.anyio

# A parent that starts a grandchild which would outlive it, then hangs.
FORKER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


async def wait_for_file(path: Path) -> int:
    with anyio.fail_after(10):
        while not path.exists() or not path.read_text(encoding="utf-8"):
            await anyio.sleep(0.02)
    return int(path.read_text(encoding="utf-8"))


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    started = time.monotonic()
    result = await procs.run([sys.executable, "-c", FORKER, str(marker)], cwd=tmp_path, timeout_s=1.0)
    assert result.timed_out and time.monotonic() - started < 5
    grandchild = int(marker.read_text(encoding="utf-8"))
    with anyio.fail_after(5):
        while alive(grandchild):
            await anyio.sleep(0.05)


async def test_cancellation_kills_the_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    grandchild = 0
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: procs.run([sys.executable, "-c", FORKER, str(marker)], cwd=tmp_path, timeout_s=60)
        )
        grandchild = await wait_for_file(marker)
        tg.cancel_scope.cancel()
    with anyio.fail_after(5):
        while alive(grandchild):
            await anyio.sleep(0.05)


async def test_output_is_capped_but_the_process_is_drained(tmp_path: Path) -> None:
    code = "import sys; sys.stdout.write('x' * 1_000_000); sys.stderr.write('e')"
    result = await procs.run([sys.executable, "-c", code], cwd=tmp_path, max_output=1000)
    assert result.ok and len(result.stdout) == 1000 and result.stdout_truncated and result.stderr == b"e"


async def test_lines_are_streamed_as_they_come(tmp_path: Path) -> None:
    seen: list[str] = []
    code = "import sys\nfor i in range(3): print(i, flush=True)"
    await procs.run([sys.executable, "-c", code], cwd=tmp_path, on_stdout_line=seen.append)
    assert seen == ["0", "1", "2"]


async def test_a_missing_program_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(procs.ProcessError, match="cannot run 'no-such-program-here'"):
        await procs.run(["no-such-program-here"], cwd=tmp_path)


def test_the_blocking_twin_times_out_too(tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    result = procs.run_sync([sys.executable, "-c", FORKER, str(marker)], cwd=tmp_path, timeout_s=1.0)
    assert result.timed_out
    grandchild = int(marker.read_text(encoding="utf-8"))
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild)
