"""The testing tools other than run_tests: discovery, affected tests, lint, format, flakiness, history."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from common import kinds, offload, procs, progress
from common.budget import clamp, cursor_position, encode_cursor, join_notes, take_within
from common.git import GitError, check_ref_text
from common.policy import path_matches
from common.pyimports import import_graph, module_name
from common.workspace import WorkspaceError
from servers.testing import ruffconfig
from servers.testing.models import (
    AffectedResult,
    CollectError,
    Diagnostic,
    Discovery,
    FileDiagnostics,
    FileDiff,
    FixResult,
    FlakyResult,
    FlakyRun,
    FormatResult,
    HistoryEntry,
    HistoryResult,
    LintResult,
    RunResult,
    Selected,
)
from servers.testing.params import (
    Cursor,
    Keyword,
    LastFailed,
    Marker,
    MaxFailures,
    NodeId,
    Paths,
    Select,
    Timeout,
    Workers,
)
from servers.testing.project import Project, TestingError, expression
from servers.testing.run import collection_error, run_pytest, run_tests
from servers.testing.store import comparable, flaky_rate
from servers.testing.store import runs as recorded_runs

TEST_FILES = ("test_*.py", "*_test.py")
MAX_DIFF_CHARS = 12_000
_RULE_CODE = r"^[A-Z]{1,4}[0-9]{0,4}$"


async def discover_tests(
    project: Project,
    path: Annotated[str | None, Field(description="A file or directory to collect from"), kinds.PATH] = None,
    keyword: Keyword = None,
    marker: Marker = None,
    limit: Annotated[int, Field(ge=1, le=5000, description="Node ids per page")] = 500,
    cursor: Cursor = None,
) -> Discovery:
    """Collect tests without running them: node ids and collection errors with their messages.
    Collection imports the project's test modules."""
    limit = clamp(limit, 1, 5000, 500)
    key = {"path": path, "k": keyword, "m": marker}
    offset = cursor_position(cursor, "discover_tests", key)
    args = ["-p", "onrecord_pytest", "-q", "--color=no", "--collect-only"]
    if (k := expression(keyword, "keyword")) is not None:
        args += ["-k", k]
    if (m := expression(marker, "marker")) is not None:
        args += ["-m", m]
    args += ["--", project.target(path)] if path else []
    raw = await run_pytest(project, args, timeout_s=300)
    items = raw.events.items
    node_ids: list[str] = []
    for e in items:
        if e["e"] == "collected" and e.get("nodeids"):
            node_ids = e["nodeids"]
    errors = [
        CollectError(nodeid=f.node_id, message=f.message, location=f.location, traceback=f.traceback)
        for f in (collection_error(project, e) for e in items if e["e"] == "collect_error")
    ]
    page = take_within(node_ids[offset : offset + limit], project.max_chars // 2, size=lambda n: len(n) + 4)
    nxt = offset + len(page)
    more = nxt < len(node_ids)
    if not items and raw.proc.returncode not in (0, 5):
        raise TestingError(
            f"pytest could not collect: {_tail(raw.proc.text('stderr') or raw.proc.text(), 800)}"
        )
    return Discovery(
        interpreter=raw.interpreter,
        node_ids=page,
        collection_errors=take_within(errors, project.max_chars // 3),
        total=len(node_ids),
        returned=len(page),
        truncated=more,
        next_cursor=encode_cursor("discover_tests", o=nxt, **key) if more else None,
        note=join_notes(
            more and f"{len(node_ids) - nxt} more node ids; pass next_cursor",
            bool(errors)
            and f"{len(errors)} collection error(s): those files' tests are missing from the list",
        ),
    )


def _tail(text: str, chars: int) -> str:
    return text.strip()[-chars:]


# ------------------------------------------------------------------------------------ affected


async def changed_files(project: Project, base: str) -> list[str]:
    sha = await project.git.verify_rev(base, what="base")
    diff = await project.git.run(["diff", "--name-only", "-z", "--no-renames", "--end-of-options", sha])
    others = await project.git.run(["ls-files", "-z", "--others", "--exclude-standard"])
    # Untracked files count only as new Python source (a module or test just written); build
    # output and caches (`.pyc`, data files) are not changes.
    new_sources = {n for n in others.text().split("\0") if n.endswith(".py")}
    return sorted({n for n in diff.text().split("\0") if n} | new_sources)


def _is_test(path: str) -> bool:
    return any(path_matches(p, path) for p in TEST_FILES)


def _read(project: Project, path: str) -> str | None:
    try:
        data, _, _ = project.workspace.read_bytes(path, 2 * 1024 * 1024)
    except (OSError, WorkspaceError):
        return None
    return data.decode("utf-8", errors="replace")


async def select_affected(project: Project, base: str) -> tuple[list[str], list[Selected]]:
    """Changed test files, and tests whose modules import changed modules (transitively)."""
    check_ref_text(base, "base")
    changed = await changed_files(project, base)
    listed = await project.git.run(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
    files = sorted(
        {n for n in listed.text().split("\0") if n.endswith(".py") and (project.root / n).exists()}
    )
    graph = await offload.run(import_graph, files, lambda p: _read(project, p))
    changed_set = set(changed)
    reasons: dict[str, list[str]] = defaultdict(list)
    for f in changed:
        if f.endswith(".py") and _is_test(f):
            reasons[f].append("the test file changed")
    for conftest in (c for c in changed if c.endswith("conftest.py")):
        folder = conftest.rsplit("/", 1)[0] + "/" if "/" in conftest else ""
        for t in files:
            if _is_test(t) and t.startswith(folder):
                reasons[t].append(f"{conftest} changed")
    for test in (t for t in files if _is_test(t)):
        path = _import_path(graph, test, changed_set)
        if path:
            chain = " -> ".join(module_name(p) or p for p in path[1:])
            reasons[test].append(f"imports {chain} (changed)")
    selected = [Selected(path=t, reasons=r) for t, r in sorted(reasons.items())]
    return changed, selected


_DYNAMIC = re.compile(r"\b(?:importlib|__import__|pytest_plugins|import_module)\b")


def dynamic_imports(project: Project, files: list[str]) -> list[str]:
    """Test files and conftests whose imports static analysis cannot follow."""
    found = []
    for name in files:
        if name.endswith(".py") and (_is_test(name) or name.endswith("conftest.py")):
            source = _read(project, name)
            if source is not None and _DYNAMIC.search(source):
                found.append(name)
    return found


def _import_path(graph: dict[str, set[str]], start: str, targets: set[str]) -> list[str] | None:
    """The shortest import chain from start to a changed file, breadth first."""
    queue: deque[list[str]] = deque([[start]])
    seen = {start}
    while queue:
        chain = queue.popleft()
        for nxt in sorted(graph.get(chain[-1], ())):
            if nxt in seen:
                continue
            if nxt in targets:
                return [*chain, nxt]
            seen.add(nxt)
            queue.append([*chain, nxt])
    return None


async def run_affected_tests(
    project: Project,
    base: Annotated[
        str, Field(description="Compare the working tree with this revision"), kinds.REV
    ] = "HEAD",
    keyword: Keyword = None,
    marker: Marker = None,
    last_failed: LastFailed = False,
    max_failures: MaxFailures = None,
    timeout_s: Timeout = 600,
    workers: Workers = None,
) -> AffectedResult:
    """Run only the tests a change can affect: changed test files, and tests whose modules import
    changed modules (transitively). Says why each test file was selected, then the run_tests result."""
    changed, selected = await select_affected(project, base)
    shown = take_within(selected, project.max_chars // 4)
    listed = await project.git.run(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
    dynamic = await offload.run(dynamic_imports, project, [n for n in listed.text().split("\0") if n])
    caveat = bool(dynamic) and (
        f"the selection may be incomplete: {len(dynamic)} test file(s) or conftest(s) import dynamically "
        f"(importlib, __import__, pytest_plugins), e.g. {dynamic[0]!r}, which static analysis cannot follow; "
        "run_tests runs everything"
    )
    if not selected:
        return AffectedResult(
            base=base,
            changed=changed[:200],
            selected=[],
            run=None,
            total=0,
            returned=0,
            note=join_notes(
                "no test is affected by the changes"
                + ("" if changed else f" (nothing changed since {base})")
                + "; nothing was run",
                caveat,
            ),
        )
    run = await run_tests(
        project,
        targets=[s.path for s in selected],
        keyword=keyword,
        marker=marker,
        last_failed=last_failed,
        max_failures=max_failures,
        timeout_s=timeout_s,
        workers=workers,
    )
    return AffectedResult(
        base=base,
        changed=changed[:200],
        selected=shown,
        run=run,
        total=len(selected),
        returned=len(shown),
        truncated=len(shown) < len(selected) or len(changed) > 200,
        note=join_notes(
            len(shown) < len(selected) and f"{len(selected) - len(shown)} more selected test files ran",
            caveat,
        ),
    )


# ---------------------------------------------------------------------------------------- ruff


def ruff_command(project: Project) -> tuple[list[str], str]:
    """The ruff installed with onrecord, never a binary the repository supplies: `lint` and
    `format_check` are read-only tools the policy allows by default, so running the repository's own
    `.venv/bin/ruff` would let a clone run any program of its choosing on a read."""
    del project  # the project decides what ruff reads (its validated config), not which ruff runs
    beside = Path(sys.executable).with_name("ruff")
    if beside.exists():
        return [str(beside)], str(beside)
    return [sys.executable, "-m", "ruff"], f"{sys.executable} -m ruff"


def _paths(project: Project, paths: list[str] | None) -> list[str]:
    if not paths:
        return ["."]
    out = []
    for p in paths:
        out.append(project.argument(p, "path"))
    return out


async def _ruff(project: Project, args: list[str]) -> procs.ProcResult:
    try:
        listed = await project.git.run(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        names = [n for n in listed.text().split("\0") if n]
        configs = ruffconfig.config_files(project.workspace, names)
        if ruffconfig.reads_ignored(configs):
            # ruff will also read the configuration files in ignored folders: check those too.
            configs = await offload.run(
                ruffconfig.config_files,
                project.workspace,
                await offload.run(ruffconfig.walk, project.workspace),
            )
    except GitError:
        configs = ruffconfig.config_files(
            project.workspace, await offload.run(ruffconfig.walk, project.workspace)
        )
    ruffconfig.check(project.workspace, configs)
    command, _ = ruff_command(project)
    result = await procs.run([*command, *args], cwd=project.root, env=dict(os.environ), timeout_s=300)
    if result.timed_out:
        raise TestingError("ruff took longer than 300 s and was stopped")
    if result.returncode not in (0, 1):
        raise TestingError(f"ruff failed: {_tail(result.text('stderr') or result.text(), 800)}")
    return result


async def lint(project: Project, paths: Paths = None, select: Select = None) -> LintResult:
    """ruff check: diagnostics grouped by file, counts by rule. Reads only (ruff runs with --no-fix,
    whatever the project's configuration says); fix_lint applies fixes."""
    targets = _paths(project, paths)
    result = await _ruff(
        project, ["check", "--no-fix", *_select(select), "--output-format", "json", "--", *targets]
    )
    return _diagnostics(project, result)


async def fix_lint(project: Project, paths: Paths = None, select: Select = None) -> FixResult:
    """Apply ruff's safe fixes to the files (a write): what changed per file, how many diagnostics
    were fixed, and the diagnostics left."""
    targets = _paths(project, paths)
    chosen = _select(select)
    preview = await _ruff(project, ["check", "--fix", "--diff", *chosen, "--", *targets])
    fixed = _would_fix(preview.text("stderr") + preview.text())
    await _ruff(project, ["check", "--fix", "--exit-zero", "--quiet", *chosen, "--", *targets])
    remaining = await lint(project, paths, select)
    diffs = split_diff(project, preview.text())
    shown = take_within(diffs, MAX_DIFF_CHARS)
    return FixResult(
        fixed=fixed,
        diffs=shown,
        remaining=remaining,
        total=len(diffs),
        returned=len(shown),
        truncated=len(shown) < len(diffs),
        note=join_notes(
            len(shown) < len(diffs) and f"diffs of {len(diffs) - len(shown)} more file(s) left out"
        ),
    )


def _select(select: list[str] | None) -> list[str]:
    if not select:
        return ["--no-cache"]
    bad = [s for s in select if not isinstance(s, str) or not re.match(_RULE_CODE, s)]
    if bad:
        raise TestingError(f"select {bad!r}: rule codes look like 'E501', 'F' or 'UP006'")
    return ["--no-cache", "--select", ",".join(select)]


def _diagnostics(project: Project, result: procs.ProcResult) -> LintResult:
    try:
        raw = json.loads(result.text() or "[]")
    except ValueError as exc:
        raise TestingError(f"ruff's JSON output could not be read: {exc}") from exc
    by_file: dict[str, list[Diagnostic]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    for d in raw:
        code = d.get("code")
        counts[code or "syntax-error"] += 1
        location = d.get("location") or {}
        by_file[_rel(project, d.get("filename", ""))].append(
            Diagnostic(
                code=code,
                message=d.get("message", ""),
                line=location.get("row"),
                column=location.get("column"),
                fixable=d.get("fix") is not None,
            )
        )
    files = [FileDiagnostics(path=p, diagnostics=ds) for p, ds in sorted(by_file.items())]
    shown = take_within(files, int(project.max_chars * 0.7))
    total = sum(len(f.diagnostics) for f in files)
    return LintResult(
        counts_by_rule=dict(sorted(counts.items(), key=lambda kv: -kv[1])),
        files=shown,
        tool=ruff_command(project)[1],
        total=total,
        returned=sum(len(f.diagnostics) for f in shown),
        truncated=len(shown) < len(files),
        note=join_notes(
            len(shown) < len(files)
            and f"{len(files) - len(shown)} more file(s) with diagnostics; narrow paths"
        ),
    )


def _would_fix(output: str) -> int:
    m = re.search(r"Would fix (\d+)", output)
    return int(m.group(1)) if m else 0


def split_diff(project: Project, diff: str) -> list[FileDiff]:
    """A unified diff of many files as one FileDiff per file (each passes the content gate alone)."""
    out: list[FileDiff] = []
    lines = diff.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            name = lines[i + 1][4:].split("\t")[0].strip().removeprefix("b/")
            out.append(FileDiff(path=_rel(project, name), diff=""))
        if out and not lines[i].startswith("Would fix"):
            body = out[-1].diff
            if len(body) < MAX_DIFF_CHARS:
                out[-1].diff = body + lines[i] + "\n"
        i += 1
    return out


def _rel(project: Project, filename: str) -> str:
    try:
        return Path(filename).resolve().relative_to(project.root).as_posix()
    except ValueError:
        return filename


async def format_check(project: Project, paths: Paths = None) -> FormatResult:
    """ruff format --check: the files ruff would reformat, with a bounded diff per file. Writes nothing."""
    targets = _paths(project, paths)
    result = await _ruff(project, ["format", "--no-cache", "--check", "--diff", "--", *targets])
    diffs = split_diff(project, result.text())
    shown = take_within(diffs, MAX_DIFF_CHARS)
    return FormatResult(
        would_reformat=[d.path for d in diffs],
        diffs=shown,
        tool=ruff_command(project)[1],
        total=len(diffs),
        returned=len(shown),
        truncated=len(shown) < len(diffs),
        note=join_notes(len(shown) < len(diffs) and "diffs of more files left out; check fewer paths"),
    )


# ------------------------------------------------------------------------------ flaky and history


async def check_flaky(
    project: Project,
    node_id: NodeId,
    runs: Annotated[int, Field(ge=2, le=20, description="How many times to run it")] = 5,
) -> FlakyResult:
    """Run one test several times: the outcome of each run and a verdict (stable_pass, stable_fail, flaky)."""
    target = project.target(node_id)
    await _require_collected(project, target)
    count = runs
    results: list[FlakyRun] = []
    for i in range(count):
        started = time.monotonic()
        progress.running(f"run {i + 1} of {count}")
        with progress.quiet():
            run: RunResult = await run_tests(project, targets=[target], timeout_s=600)
        outcome = _outcome_of(project, run, target)
        results.append(
            FlakyRun(run_id=run.run_id, outcome=outcome, duration_s=round(time.monotonic() - started, 3))
        )
        await progress.report(i + 1, count, f"run {i + 1}: {outcome}")
    verdicts = {r.outcome for r in results}
    if verdicts <= {"not_run"}:
        verdict = "not_run"
    elif verdicts <= {"passed", "xfailed", "skipped"}:
        verdict = "stable_pass"
    elif verdicts.isdisjoint({"passed", "xpassed"}):
        verdict = "stable_fail"
    else:
        verdict = "flaky"
    return FlakyResult(
        node_id=target,
        runs=results,
        verdict=verdict,  # type: ignore[arg-type]
        history_flaky_rate=flaky_rate(recorded_runs(project), target)[0],
        returned=len(results),
        total=len(results),
    )


async def _require_collected(project: Project, target: str) -> None:
    """Refuse a node id pytest does not collect, before running anything several times."""
    missing = TestingError(
        f"node id {target!r} names no test pytest collects; discover_tests lists the node ids "
        "(e.g. 'tests/test_api.py::test_login')"
    )
    try:
        raw = await run_pytest(
            project,
            ["-p", "onrecord_pytest", "-q", "--color=no", "--collect-only", "--", target],
            timeout_s=300,
        )
    except TestingError as exc:
        raise (missing if "not found" in str(exc) else exc) from exc
    collected = [n for e in raw.events.items if e["e"] == "collected" for n in e.get("nodeids") or []]
    if not any(n == target or n.startswith((target + "[", target + "::")) for n in collected):
        raise TestingError(
            f"node id {target!r} names no test pytest collects; discover_tests lists the node ids "
            "(e.g. 'tests/test_api.py::test_login')"
        )


def _outcome_of(project: Project, run: RunResult, target: str) -> str:
    for entry in reversed(recorded_runs(project)):
        if entry["run_id"] == run.run_id:
            found = [o for n, o in entry["outcomes"].items() if n == target or n.startswith(target + "[")]
            if not found:
                return "not_run"
            return "failed" if any(o in ("failed", "error") for o in found) else found[0]
    return "not_run"


async def test_history(
    project: Project,
    node_id: NodeId,
    limit: Annotated[int, Field(ge=1, le=500, description="Recent runs to return")] = 20,
) -> HistoryResult:
    """Recent recorded outcomes of one test, with HEAD and dirty flag, and its pass and flaky rates.
    Rates count only runs of a commit on a clean tree: a failure on an uncommitted edit says
    nothing about flakiness, so those runs are listed apart in dirty_runs."""
    if not isinstance(node_id, str) or not node_id or node_id.startswith("-"):
        raise TestingError(f"node_id {node_id!r} must be a test node id, e.g. 'tests/test_a.py::test_b'")
    limit = clamp(limit, 1, 500, 20)
    recorded = recorded_runs(project)
    matching = [r for r in recorded if node_id in r.get("outcomes", {})]

    def entries(runs: list[dict[str, Any]]) -> list[HistoryEntry]:
        return [
            HistoryEntry(
                run_id=r["run_id"],
                started=r["started"],
                outcome=r["outcomes"][node_id],
                head=r.get("head"),
                dirty=r.get("dirty"),
            )
            for r in runs[-limit:][::-1]
        ]

    clean = [r for r in matching if comparable(r)]
    dirty = [r for r in matching if not comparable(r)]
    decided = [
        r["outcomes"][node_id] for r in clean if r["outcomes"][node_id] in ("passed", "failed", "error")
    ]
    rate, pairs = flaky_rate(recorded, node_id)
    runs, dirty_runs = entries(clean), entries(dirty)
    notes = []
    if not matching:
        notes.append("no recorded run includes this node id; run_tests records every run")
    elif rate is None:
        notes.append(
            "no flaky rate: it needs two runs of the same commit on a clean tree "
            f"({len(clean)} clean run(s), {len(dirty)} on uncommitted changes or outside git); "
            "check_flaky runs the test now"
        )
    if len(clean) > limit or len(dirty) > limit:
        notes.append(f"the {limit} most recent runs of each kind are listed; raise limit for more")
    return HistoryResult(
        node_id=node_id,
        runs=runs,
        dirty_runs=dirty_runs,
        flaky_rate=rate,
        flaky_pairs=pairs,
        pass_rate=round(sum(o == "passed" for o in decided) / len(decided), 3) if decided else None,
        total=len(matching),
        returned=len(runs) + len(dirty_runs),
        truncated=len(clean) > limit or len(dirty) > limit,
        note=join_notes(*notes),
    )
