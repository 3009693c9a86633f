"""Running pytest with our plugin, and turning its events into a reviewer's result."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from common import content, procs, progress
from common.budget import clamp, join_notes, take_within
from servers.testing.models import Counts, Failure, FailureGroup, RunResult, Slow
from servers.testing.params import Keyword, LastFailed, Marker, MaxFailures, Targets, Timeout, Workers
from servers.testing.project import Project, TestingError, pytest_args
from servers.testing.store import record_run

TRACEBACK_LINES = 30
TRACEBACK_CHARS = 2500
GROUP_MEMBERS = 5
MAX_GROUPS = 100
POLL_S = 0.2
_VOLATILE = re.compile(r"0x[0-9a-fA-F]+|\d+(?:\.\d+)?")


@dataclass
class Events:
    """What the plugin reported, read as it arrives."""

    path: Path
    offset: int = 0
    items: list[dict[str, Any]] = field(default_factory=list)

    def read_new(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        fresh = []
        for line in data[: end + 1].splitlines():
            try:
                fresh.append(json.loads(line))
            except ValueError:
                continue
        self.items += fresh
        return fresh


@dataclass
class Raw:
    """One pytest run before interpretation."""

    run_id: str
    events: Events
    proc: procs.ProcResult
    started: str
    interpreter: str


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


async def run_pytest(
    project: Project,
    args: Sequence[str],
    *,
    timeout_s: float,
) -> Raw:
    """Run the project's pytest with the plugin; report progress from the event stream."""
    prefix, described = project.python()
    await project.check_pytest(prefix, described)
    run_id = new_run_id()
    runs = project.state / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    events = Events(runs / f"{run_id}.jsonl")
    started = datetime.now(UTC).isoformat(timespec="seconds")
    result: list[procs.ProcResult] = []
    failed: list[Exception] = []

    async def execute() -> None:
        try:
            result.append(
                await procs.run(
                    [*prefix, "-m", "pytest", *args],
                    cwd=project.root,
                    env=project.env(events.path),
                    timeout_s=timeout_s,
                    max_output=256 * 1024,
                )
            )
        except Exception as exc:  # re-raised below, outside the task group's exception group
            failed.append(exc)
        finally:
            tg.cancel_scope.cancel()

    counted: dict[str, Any] = {"total": None, "done": 0}

    async def report(fresh: list[dict[str, Any]]) -> None:
        for event in fresh:
            if event["e"] == "collected" and event.get("count"):
                counted["total"] = max(counted["total"] or 0, int(event["count"]))
            elif event["e"] == "start":
                # What the kit's heartbeat names while this test runs, however long it takes.
                progress.running(event.get("nodeid"))
            elif event["e"] == "report" and _finishes_test(event):
                counted["done"] += 1
                label = outcomes([event]).get(event["nodeid"], event["outcome"])
                await progress.report(counted["done"], counted["total"], f"{event['nodeid']}: {label}")
            elif event["e"] == "finish":
                progress.running("pytest finishing the session")

    async def watch() -> None:
        while True:
            await anyio.sleep(POLL_S)
            await report(events.read_new())

    progress.running("pytest starting and collecting tests")
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        tg.start_soon(execute)
    if failed:
        raise failed[0]
    await report(events.read_new())  # whatever arrived after the last poll
    proc = result[0]
    if proc.returncode == 4 and not proc.timed_out and (broken := _conftest_error(project, proc)):
        # A conftest that fails to import stops pytest before its session: it is the project's
        # collection error, not a usage error, so it is reported like one.
        events.items.append(broken)
    elif proc.returncode == 4 and not proc.timed_out:
        # pytest's usage error (a bad -k or -m expression, an unknown option in the project's
        # config): its results would be meaningless, so say what pytest said instead.
        said = [s for s in (proc.text("stderr") + "\n" + proc.text()).splitlines() if s.strip()]
        line = next((s for s in said if s.startswith("ERROR:")), said[-1] if said else "usage error")
        raise TestingError(f"pytest refused the run: {content.screen(line.removeprefix('ERROR: ').strip())}")
    return Raw(run_id, events, proc, started, described)


_CONFTEST = re.compile(r"ImportError while loading conftest '(?P<path>[^'\n]+)'")
_FRAME_AT = re.compile(r"^(?P<path>\S[^\n]*?):(?P<line>\d+): in ", re.MULTILINE)


def _conftest_error(project: Project, proc: procs.ProcResult) -> dict[str, Any] | None:
    """pytest's report of a conftest it could not import, as a collection error event: the
    exception (its `E` line), the deepest frame in the project, the traceback."""
    text = proc.text("stderr") + "\n" + proc.text()
    found = _CONFTEST.search(text)
    if not found:
        return None
    conftest = _relative(project, found.group("path"))
    body = text[found.end() :].lstrip(".").strip()
    inside = [
        m for m in _FRAME_AT.finditer(body) if not _relative(project, m.group("path")).startswith(("/", ".."))
    ]
    where = inside[-1] if inside else None
    return {
        "e": "collect_error",
        "nodeid": conftest,
        "message": body,
        "cause": {
            "message": _first_error_line(body.splitlines()) or f"{conftest} could not be imported",
            "path": where.group("path") if where else conftest,
            "line": int(where.group("line")) if where else None,
            "traceback": body,
        },
    }


def _finishes_test(event: dict[str, Any]) -> bool:
    when, outcome = event.get("when"), event.get("outcome")
    return when == "call" or (when == "setup" and outcome != "passed")


# --------------------------------------------------------------------------------- interpretation


def outcomes(events: list[dict[str, Any]]) -> dict[str, str]:
    """The final outcome of every test: passed, failed, error, skipped, xfailed or xpassed."""
    final: dict[str, str] = {}
    for e in events:
        if e["e"] != "report":
            continue
        node, when, outcome, xfail = e["nodeid"], e["when"], e["outcome"], e.get("wasxfail")
        if when == "setup":
            if outcome == "failed":
                final[node] = "error"
            elif outcome == "skipped":
                final[node] = "xfailed" if xfail else "skipped"
        elif when == "call":
            if outcome == "passed":
                final[node] = "xpassed" if xfail else "passed"
            elif outcome == "failed":
                final[node] = "failed"
            else:
                final[node] = "xfailed" if xfail else "skipped"
        elif when == "teardown" and outcome == "failed" and final.get(node) in (None, "passed"):
            final[node] = "error"
    return final


def count(events: list[dict[str, Any]]) -> Counts:
    """Counts the way pytest's summary and its junit XML count them: per outcome report, so a test's
    subtests count one each, and a collection error counts as an erroring test."""
    c = Counts()
    for e in events:
        if e["e"] == "collect_error":
            c.errors += 1
            c.tests += 1
            continue
        if e["e"] != "report":
            continue
        when, outcome, xfail = e["when"], e["outcome"], e.get("wasxfail")
        if outcome == "failed":
            if when == "call":
                c.failed += 1
            else:
                c.errors += 1
        elif outcome == "skipped":
            if xfail:
                c.xfailed += 1
            else:
                c.skipped += 1
        elif when == "call":
            if xfail:
                c.xpassed += 1
            else:
                c.passed += 1
        if when == "call" or (when == "setup" and outcome != "passed"):
            c.tests += 1
    return c


def _trim(text: str) -> str:
    """The end of a traceback, cut where a frame starts (never mid-frame at a `^^^^` marker), saying
    how much was left out."""
    lines = text.rstrip().splitlines()
    kept = lines[-TRACEBACK_LINES:]
    while sum(len(line) + 1 for line in kept) > TRACEBACK_CHARS and len(kept) > 1:
        kept = kept[1:]
    # A frame starts at a line that is not indented, not a caret marker and not pytest's `E` line.
    start = (
        next((i for i, line in enumerate(kept) if _starts_frame(line)), 0) if len(kept) < len(lines) else 0
    )
    kept = kept[start:]
    left = len(lines) - len(kept)
    out = "\n".join(kept)[-TRACEBACK_CHARS:]
    return f"({left} earlier lines left out)\n{out}" if left else out


def _starts_frame(line: str) -> bool:
    return (
        bool(line)
        and not line[0].isspace()
        and not line.startswith(("E ", "^", ">"))
        and line.strip("^~ ") != ""
    )


def collection_error(project: Project, event: dict[str, Any]) -> Failure:
    """A test module or conftest pytest could not import: the project's exception, the file and line
    it came from, and the project's frames of its traceback (pytest's and importlib's left out)."""
    text = str(event.get("message") or "")
    cause = event.get("cause") if isinstance(event.get("cause"), dict) else None
    if not cause:
        return Failure(
            node_id=event["nodeid"] or "(collection)",
            kind="collection_error",
            message=_first_error_line(text.strip().splitlines()),
            traceback=_trim(text),
        )
    location = None
    if cause.get("path"):
        path = _relative(project, str(cause["path"]))
        location = f"{path}:{cause['line']}" if cause.get("line") else path
    return Failure(
        node_id=event["nodeid"] or "(collection)",
        kind="collection_error",
        phase="collect",
        message=str(cause.get("message") or _first_error_line(text.strip().splitlines()))[:500],
        location=location,
        traceback=_trim(str(cause.get("traceback") or text)),
    )


def failures(project: Project, events: list[dict[str, Any]]) -> list[Failure]:
    out: list[Failure] = []
    for e in events:
        if e["e"] == "collect_error":
            out.append(collection_error(project, e))
        elif e["e"] == "report" and e["outcome"] == "failed":
            crash = e.get("crash") or {}
            location = None
            if crash.get("path"):
                location = f"{_relative(project, crash['path'])}:{crash.get('line')}"
            out.append(
                Failure(
                    node_id=e["nodeid"],
                    kind="failed" if e["when"] == "call" else "error",
                    phase=e["when"],
                    message=(crash.get("message") or "").strip().splitlines()[0][:500]
                    if crash.get("message")
                    else _first_error_line(str(e.get("longrepr") or "").splitlines()),
                    location=location,
                    traceback=_trim(e.get("longrepr") or ""),
                )
            )
    return out


def _first_error_line(lines: list[str]) -> str:
    for line in reversed(lines):
        if line.startswith("E "):
            return line[2:].strip()[:500]
    return (lines[-1] if lines else "").strip()[:500]


def _relative(project: Project, path: str) -> str:
    try:
        return Path(path).resolve().relative_to(project.root).as_posix()
    except ValueError:
        return path


def groups(found: list[Failure]) -> list[FailureGroup]:
    """Failures sharing one cause: the same exception and message (numbers aside), raised at one place."""
    buckets: dict[tuple[str, str | None], list[Failure]] = defaultdict(list)
    for f in found:
        buckets[(_VOLATILE.sub("N", f.message), f.location)].append(f)
    ranked = sorted(buckets.items(), key=lambda kv: (-len(kv[1]), kv[0][0]))
    return [
        FailureGroup(
            cause=members[0].message[:300],
            location=location,
            count=len(members),
            node_ids=[m.node_id for m in members[:GROUP_MEMBERS]],
        )
        for (_, location), members in ranked[:MAX_GROUPS]
    ]


def slowest(events: list[dict[str, Any]], n: int = 10) -> list[Slow]:
    durations: dict[str, float] = defaultdict(float)
    for e in events:
        if e["e"] == "report":
            durations[e["nodeid"]] += float(e.get("duration") or 0.0)
    ranked = sorted(durations.items(), key=lambda kv: -kv[1])[:n]
    return [Slow(node_id=k, duration_s=round(v, 3)) for k, v in ranked]


def running_at_end(events: list[dict[str, Any]]) -> str | None:
    """The test that started and never finished its teardown."""
    open_tests: dict[str, None] = {}
    for e in events:
        if e["e"] == "start":
            open_tests[e["nodeid"]] = None
        elif e["e"] == "report" and e.get("when") == "teardown":
            open_tests.pop(e["nodeid"], None)
    return next(reversed(open_tests), None) if open_tests else None


def interpret(project: Project, raw: Raw, duration_s: float) -> RunResult:
    """The reviewer's view of one run. Status and counts come first, from all events; only then is
    the detail cut to the budget."""
    items = raw.events.items
    counts = count(items)
    # Screened before grouping: a group's cause must not quote what its failure may not show.
    found = content.screened(failures(project, items))
    finish = next((e for e in reversed(items) if e["e"] == "finish"), None)
    exit_code = raw.proc.returncode if not raw.proc.timed_out else None
    collect_errors = any(e["e"] == "collect_error" for e in items)
    if raw.proc.timed_out:
        status = "timeout"
    elif finish is None:
        status = "error"  # pytest died or never started a session
    elif exit_code == 5:
        status = "no_tests"
    elif exit_code == 0:
        status = "passed"
    elif exit_code == 1:
        status = "failed"
    elif exit_code == 2 and not collect_errors:
        status = "interrupted"
    else:
        status = "error"
    running = running_at_end(items) if raw.proc.timed_out else None
    shown = take_within(found, int(project.max_chars * 0.6))
    group_list = take_within(groups(found), int(project.max_chars * 0.2))
    stderr_tail = None
    if status == "error" and not found:
        stderr_tail = content.screen((raw.proc.text("stderr") or raw.proc.text("stdout"))[-2000:]) or None
    notes = join_notes(
        len(shown) < len(found)
        and f"{len(found) - len(shown)} more failure(s) are in the report and in failure_groups; "
        "rerun with targets= to see them",
        running and f"the run was stopped after its time limit while {running} was running",
        status == "no_tests" and "no tests were selected: check targets, keyword and marker",
        stderr_tail and "pytest stopped before running the tests; stderr_tail says why",
    )
    return RunResult(
        status=status,  # type: ignore[arg-type]
        counts=counts,
        failures=shown,
        failure_groups=group_list,
        slowest=slowest(items),
        duration_s=round(duration_s, 3),
        run_id=raw.run_id,
        report=str(raw.events.path),
        interpreter=raw.interpreter,
        running_at_timeout=running,
        exit_code=exit_code,
        stderr_tail=stderr_tail,
        truncated=len(shown) < len(found),
        total=len(found),
        returned=len(shown),
        note=notes,
    )


async def run_tests(
    project: Project,
    targets: Targets = None,
    keyword: Keyword = None,
    marker: Marker = None,
    last_failed: LastFailed = False,
    max_failures: MaxFailures = None,
    timeout_s: Timeout = 600,
    workers: Workers = None,
) -> RunResult:
    """Run tests and return status (passed, failed, error, timeout, no_tests, interrupted), counts,
    failures with trimmed tracebacks, failure_groups (failures sharing one cause), the slowest tests
    and the run id. The listed items are failures: `total` counts those that exist, `returned` those
    listed; `counts` has the tests by outcome (`counts.tests` all of them). Sends progress per
    finished test, and while one test runs long, a heartbeat naming it."""
    args = pytest_args(
        project, targets, keyword, marker, last_failed=last_failed, max_failures=max_failures, workers=workers
    )
    timeout = float(clamp(int(timeout_s), 1, 24 * 3600, 600))
    if workers is not None:
        prefix, described = project.python()
        await project.check_module(prefix, described, "xdist", "workers")
    started = time.monotonic()
    raw = await run_pytest(project, args, timeout_s=timeout)
    result = interpret(project, raw, time.monotonic() - started)
    await record_run(project, raw, result, outcomes(raw.events.items))
    return result
