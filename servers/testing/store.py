"""Run history under the state directory: outcomes per node id per run, with HEAD and dirty flag."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.errors import OnrecordError

if TYPE_CHECKING:
    from servers.testing.models import RunResult
    from servers.testing.project import Project
    from servers.testing.run import Raw

KEEP_RUNS = 500


def history_path(project: Project) -> Path:
    return project.state / "history.jsonl"


CACHES = ("__pycache__", ".pytest_cache")


def is_cache(name: str) -> bool:
    """Bytecode and pytest's cache: what a test run itself leaves behind, not a change to the code."""
    parts = name.split("/")
    return name.endswith((".pyc", ".pyo")) or any(part in CACHES for part in parts)


async def git_state(project: Project) -> tuple[str | None, bool | None]:
    """HEAD, and whether the tree differs from it: a tracked change (staged or not) or an untracked,
    not ignored file other than bytecode and caches (a test or module just written changes outcomes
    as much as an edit does). (None, None) outside a git repository."""
    try:
        head = await project.git.run(["rev-parse", "--verify", "--quiet", "HEAD"], check=False)
        status = await project.git.run(["status", "--porcelain", "--untracked-files=no"], check=False)
        others = await project.git.run(["ls-files", "-z", "--others", "--exclude-standard"], check=False)
    except OnrecordError:
        return None, None
    sha = head.text().strip() or None
    if status.returncode != 0 or others.returncode != 0:
        return sha, None
    untracked = [n for n in others.text().split("\0") if n and not is_cache(n)]
    return sha, bool(status.text().strip()) or bool(untracked)


async def record_run(project: Project, raw: Raw, result: RunResult, outcomes: dict[str, str]) -> None:
    head, dirty = await git_state(project)
    entry = {
        "run_id": raw.run_id,
        "started": raw.started,
        "status": result.status,
        "head": head,
        "dirty": dirty,
        "outcomes": outcomes,
    }
    path = history_path(project)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry, separators=(",", ":")) + "\n")
    _compact(path)


def _compact(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if len(lines) > KEEP_RUNS * 1.2:
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(lines[-KEEP_RUNS:]), encoding="utf-8")
        tmp.replace(path)


def runs(project: Project) -> list[dict[str, Any]]:
    """Every recorded run, oldest first (damaged lines are skipped)."""
    path = history_path(project)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def comparable(run: dict[str, Any]) -> bool:
    """A run whose outcomes belong to a commit: a known HEAD and a tree known to be clean."""
    return isinstance(run.get("head"), str) and run.get("dirty") is False


def flaky_rate(runs: list[dict[str, Any]], node_id: str) -> tuple[float | None, int]:
    """Share of consecutive runs of the same commit, on a clean tree, whose pass/fail differs, and
    how many such pairs it rests on. A test that fails on an uncommitted edit or after a commit
    changed it is not flaky; xfail and skip are left out. (None, 0) without two comparable runs."""
    by_head: dict[str, list[bool]] = {}
    for run in runs:
        outcome = run.get("outcomes", {}).get(node_id)
        if comparable(run) and outcome in ("passed", "failed", "error"):
            by_head.setdefault(run["head"], []).append(outcome == "passed")
    pairs = sum(len(v) - 1 for v in by_head.values() if len(v) > 1)
    if not pairs:
        return None, 0
    flips = sum(1 for v in by_head.values() for a, b in itertools.pairwise(v) if a != b)
    return round(flips / pairs, 3), pairs
