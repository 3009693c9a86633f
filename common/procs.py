"""Subprocesses the servers run (git, pytest, ruff): argv only, own process group, timeout, capped output.

A timeout or a cancellation kills the whole process group, so a test that forks or a git that
spawns helpers leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from common.errors import OnrecordError

DEFAULT_MAX_OUTPUT = 8 * 1024 * 1024
KILL_GRACE_S = 0.5
LineCallback = Callable[[str], Awaitable[None] | None]


class ProcessError(OnrecordError):
    """A subprocess could not be started."""


@dataclass
class ProcResult:
    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    timed_out: bool
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def text(self, stream: str = "stdout") -> str:
        return getattr(self, stream).decode("utf-8", errors="replace")


def _spawn_options(cwd: Path | str, env: Mapping[str, str] | None) -> dict[str, Any]:
    """No stdin, piped output, and a new session so the whole group can be killed."""
    return {
        "cwd": str(cwd),
        "env": dict(env) if env is not None else None,
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
        "start_new_session": True,
    }


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a process group; a group that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def _drain(stream: asyncio.StreamReader, cap: int, on_line: LineCallback | None) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    kept = 0
    truncated = False
    while True:
        line = await stream.readline() if on_line else await stream.read(65536)
        if not line:
            break
        if on_line is not None:
            maybe = on_line(line.decode("utf-8", errors="replace").rstrip("\n"))
            if maybe is not None:
                await maybe
        if kept < cap:
            piece = line[: cap - kept]
            chunks.append(piece)
            kept += len(piece)
            truncated = truncated or len(piece) < len(line)
        else:
            truncated = True
    return b"".join(chunks), truncated


async def run(
    argv: Sequence[str],
    *,
    cwd: Path | str,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 60.0,
    max_output: int = DEFAULT_MAX_OUTPUT,
    on_stdout_line: LineCallback | None = None,
    spool: bool = False,
) -> ProcResult:
    """Run argv to completion or timeout; cancellation kills the group and re-raises.

    With `spool`, output goes to temporary files read once at the end instead of through pipes:
    much faster for large outputs (git grep, git diff), for commands whose output is bounded by
    the repository itself.
    """
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        options = _spawn_options(cwd, env)
        if spool:
            options["stdout"] = stack.enter_context(tempfile.TemporaryFile())
            options["stderr"] = stack.enter_context(tempfile.TemporaryFile())
        try:
            proc = await asyncio.create_subprocess_exec(*argv, **options)
        except OSError as exc:
            raise ProcessError(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from exc
        drains: list[asyncio.Future[tuple[bytes, bool]]] = []
        if not spool:
            assert proc.stdout is not None and proc.stderr is not None
            drains = [
                asyncio.ensure_future(_drain(proc.stdout, max_output, on_stdout_line)),
                asyncio.ensure_future(_drain(proc.stderr, max_output, None)),
            ]
        timed_out = False
        try:
            try:
                await asyncio.wait_for(proc.wait(), timeout=timeout_s)
            except TimeoutError:
                timed_out = True
                kill_group(proc.pid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), timeout=KILL_GRACE_S)
                except TimeoutError:
                    kill_group(proc.pid, signal.SIGKILL)
                    await proc.wait()
        except BaseException:
            kill_group(proc.pid, signal.SIGKILL)
            for task in drains:
                task.cancel()
            raise
        # Helpers that outlived the leader still hold the pipes; end them so the drains finish.
        kill_group(proc.pid, signal.SIGKILL)
        if spool:
            (stdout, out_cut), (stderr, err_cut) = (
                _read_spool(options[k], max_output) for k in ("stdout", "stderr")
            )
        else:
            (stdout, out_cut), (stderr, err_cut) = [await task for task in drains]
    return ProcResult(
        list(argv),
        proc.returncode if proc.returncode is not None else -1,
        stdout,
        stderr,
        out_cut,
        err_cut,
        timed_out,
        time.monotonic() - started,
    )


def _read_spool(handle: Any, cap: int) -> tuple[bytes, bool]:
    handle.seek(0)
    data = handle.read(cap + 1)
    return data[:cap], len(data) > cap


def run_sync(
    argv: Sequence[str],
    *,
    cwd: Path | str,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
    max_output: int = DEFAULT_MAX_OUTPUT,
) -> ProcResult:
    """The blocking twin of `run`, for code that is not on an event loop."""
    started = time.monotonic()
    try:
        proc = cast("subprocess.Popen[bytes]", subprocess.Popen(list(argv), **_spawn_options(cwd, env)))
    except OSError as exc:
        raise ProcessError(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from exc
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_group(proc.pid)
        stdout, stderr = proc.communicate()
    finally:
        kill_group(proc.pid)
    return ProcResult(
        list(argv),
        proc.returncode,
        stdout[:max_output],
        stderr[:max_output],
        len(stdout) > max_output,
        len(stderr) > max_output,
        timed_out,
        time.monotonic() - started,
    )
