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


async def git_state(project: Project) -> tuple[str | None, bool | None]:
    try:
        head = await project.git.run(["rev-parse", "--verify", "--quiet", "HEAD"], check=False)
        status = await project.git.run(["status", "--porcelain", "--untracked-files=no"], check=False)
    except OnrecordError:
        return None, None
    sha = head.text().strip() or None
    return sha, bool(status.text().strip()) if status.returncode == 0 else None


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


def flaky_rate(sequence: list[str]) -> float | None:
    """Share of consecutive runs whose pass/fail differs (xfail/skip are left out)."""
    verdicts = [o == "passed" for o in sequence if o in ("passed", "failed", "error")]
    if len(verdicts) < 2:
        return None
    flips = sum(1 for a, b in itertools.pairwise(verdicts) if a != b)
    return round(flips / (len(verdicts) - 1), 3)
