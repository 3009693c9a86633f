"""The eval store: runs as JSON files under the root (`.onrecord/evals/` by default).

    runs/<id>.json          one run: metrics, intervals, params, tags, git HEAD and dirty flag
    runs/<id>.items.jsonl   its per-item results (id, label, prediction, score, group), when kept
    cache/<key>.jsonl       endpoint responses, so a rerun resumes

Every write stays inside the store folder: the folder is confined to the root (no symlink out),
and each file is written to a temporary name beside it and renamed into place.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.git import Git, GitError
from common.workspace import Workspace, WorkspaceError
from servers.evals.frame import EvalsError

if TYPE_CHECKING:
    from servers.evals.models import RunSummary

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}-\d{8}T\d{6}Z-[0-9a-f]{6}$")
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_RUNS_READ = 10_000


@dataclass
class Store:
    root: Path
    folder: Path  # absolute, inside root
    relative: str

    @classmethod
    def create(cls, workspace: Workspace, setting: str) -> Store:
        resolved = workspace.resolve(setting, must_exist=False)
        return cls(workspace.root, resolved.absolute, resolved.relative)

    def _dir(self, name: str) -> Path:
        """A sub-folder of the store, made if missing; every folder on the way from the root must
        be a real folder (no symlink), checked before anything is made inside it."""
        path = self.root
        for part in [*Path(self.folder.relative_to(self.root)).parts, name]:
            path = path / part
            with contextlib.suppress(FileExistsError):
                path.mkdir()
            if path.is_symlink() or not path.is_dir():
                raise WorkspaceError(
                    f"the eval store folder {self.rel(path)!r} is a symlink or not a folder; "
                    "runs are only written into real folders inside the root"
                )
        return path

    def write(self, folder: str, name: str, lines: Iterable[str]) -> Path:
        """Write a file atomically: a temporary file beside it, then a rename."""
        target_dir = self._dir(folder)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                for line in lines:
                    f.write(line)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target_dir / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target_dir / name

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def cache_dir(self) -> Path:
        return self._dir("cache")

    def runs_dir(self) -> Path:
        return self.folder / "runs"

    def save_run(self, run: dict[str, Any], items: list[dict[str, Any]] | None) -> Path:
        if items is not None:
            name = f"{run['id']}.items.jsonl"
            self.write("runs", name, (json.dumps(r, separators=(",", ":")) + "\n" for r in items))
            run["items"] = name
        return self.write("runs", f"{run['id']}.json", [json.dumps(run, indent=1, sort_keys=True) + "\n"])

    def load_run(self, run_id: str) -> dict[str, Any]:
        if not RUN_ID.match(run_id):
            raise EvalsError(
                f"run {run_id!r} is not a run id (e.g. 'model-20260101T120000Z-1a2b3c') nor name@<git ref>; "
                "list_runs shows the ids"
            )
        path = self.runs_dir() / f"{run_id}.json"
        try:
            return _parse(path.read_text(encoding="utf-8"), path)
        except FileNotFoundError as exc:
            raise EvalsError(f"no run {run_id!r} in {self.relative!r}; list_runs shows the runs") from exc

    def items_path(self, run: dict[str, Any]) -> Path | None:
        name = run.get("items")
        if not isinstance(name, str) or "/" in name or not name.endswith(".items.jsonl"):
            return None
        path = self.runs_dir() / name
        return path if path.is_file() and not path.is_symlink() else None

    def all_runs(self, name: str | None = None) -> list[dict[str, Any]]:
        """Runs, newest first; damaged files are skipped."""
        folder = self.runs_dir()
        if not folder.is_dir():
            return []
        out = []
        for entry in sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)[: MAX_RUNS_READ * 2]:
            if not entry.name.endswith(".json") or entry.is_symlink() or not RUN_ID.match(entry.name[:-5]):
                continue
            if name is not None and not entry.name.startswith(name + "-"):
                continue
            try:
                run = _parse(Path(entry.path).read_text(encoding="utf-8"), Path(entry.path))
            except (OSError, EvalsError, UnicodeDecodeError):
                continue
            if name is None or run.get("name") == name:
                out.append(run)
            if len(out) >= MAX_RUNS_READ:
                break
        out.sort(key=lambda r: (str(r.get("created", "")), str(r.get("id"))), reverse=True)
        return out

    async def lookup(self, text: str, git: Git) -> dict[str, Any]:
        """A run by id, or by `name@<git ref>`: the newest run of that name recorded at that commit
        (a clean tree preferred over a dirty one)."""
        if "@" not in text:
            return self.load_run(text)
        name, ref = text.rsplit("@", 1)
        if not re.match(NAME, name):
            raise EvalsError(f"run name {name!r} in {text!r} is not a run name")
        try:
            sha = await git.verify_rev(ref, what="git ref")
        except GitError as exc:
            raise EvalsError(f"{text!r}: {exc}") from exc
        found = [r for r in self.all_runs(name) if r.get("head") == sha]
        if not found:
            raise EvalsError(
                f"no run named {name!r} was recorded at {ref!r} ({sha[:12]}); list_runs shows each run's commit"
            )
        clean = [r for r in found if r.get("dirty") is False]
        return (clean or found)[0]


def _parse(text: str, path: Path) -> dict[str, Any]:
    try:
        run = json.loads(text)
    except ValueError as exc:
        raise EvalsError(f"run file {path.name!r} is not valid JSON") from exc
    if not isinstance(run, dict) or not isinstance(run.get("metrics"), dict):
        raise EvalsError(f"run file {path.name!r} is not a run")
    return run


def new_run_id(name: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{name}-{stamp}-{secrets.token_hex(3)}"


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def summary(run: dict[str, Any]) -> RunSummary:
    # The result models are the tools' business: the evals context (built at start) needs none.
    from servers.evals.models import RunSummary, headline

    metrics = {k: v for k, v in run.get("metrics", {}).items() if isinstance(v, int | float)}
    n = run.get("n")
    source = run.get("source")
    return RunSummary(
        id=str(run.get("id")),
        name=str(run.get("name")),
        created=str(run.get("created")),
        head=run.get("head") if isinstance(run.get("head"), str) else None,
        dirty=run.get("dirty") if isinstance(run.get("dirty"), bool) else None,
        source=source if source in ("predictions", "endpoint") else "manual",
        task=run.get("task") if isinstance(run.get("task"), str) else None,
        n=n if isinstance(n, int) else None,
        items=isinstance(run.get("items"), str),
        headline=headline(metrics),
    )
