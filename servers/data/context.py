"""What every data tool needs: the workspace, git, the sandbox's limits and the output budget."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import anyio

from common import offload
from common.budget import CHARS_PER_TOKEN, DEFAULT_MAX_TOKENS
from common.git import Git
from common.workspace import Workspace, WorkspaceError
from servers.data.formats import Format, require_format
from servers.data.sandbox import Limits, Sandbox
from servers.data.settings import DataSettings

T = TypeVar("T")


@dataclass(frozen=True)
class Source:
    """A dataset ready to read: its name as the caller knows it and the file DuckDB opens."""

    path: str  # relative to the root
    absolute: Path
    format: Format
    gzipped: bool
    size: int
    ref: str | None = None


@dataclass
class DataContext:
    root: Path
    workspace: Workspace
    git: Git
    options: DataSettings = field(default_factory=DataSettings)
    max_tokens: int = DEFAULT_MAX_TOKENS

    @classmethod
    def create(
        cls,
        root: Path | str,
        *,
        hidden: Sequence[Path] = (),
        options: DataSettings | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> DataContext:
        workspace = Workspace(root, hidden)
        return cls(workspace.root, workspace, Git(workspace.root), options or DataSettings(), max_tokens)

    @property
    def max_chars(self) -> int:
        return int(self.max_tokens * CHARS_PER_TOKEN * 0.9)

    @property
    def limits(self) -> Limits:
        o = self.options
        return Limits(timeout_s=o.timeout_s, memory_mb=o.memory_mb, threads=o.threads, spill_mb=o.spill_mb)

    async def run(self, allowed: Sequence[Path], work: Callable[[Sandbox], T], *, ordered: bool = True) -> T:
        """`work` in a worker thread with a fresh sandbox that may read only `allowed` (and return
        rows in any order unless `ordered`); a cancelled call interrupts the running statement."""
        sandbox = Sandbox(list(allowed), self.limits, self.root, ordered)

        def go() -> T:
            with sandbox:
                return work(sandbox)

        try:
            return await offload.run(go)
        except anyio.get_cancelled_exc_class():
            sandbox.interrupt()
            raise

    @contextlib.asynccontextmanager
    async def source(self, path: str, ref: str | None = None) -> AsyncIterator[Source]:
        """The dataset `path` in the working tree, or as it was at `ref` (copied from git to a
        private file for the length of the call)."""
        if ref is None:
            resolved = self.workspace.resolve(path)
            refuse_git_internals(resolved.relative)
            if not resolved.absolute.is_file():
                raise WorkspaceError(f"path {path!r} is not a regular file; pass a dataset file")
            fmt, gz = require_format(resolved.relative)
            yield Source(resolved.relative, resolved.absolute, fmt, gz, resolved.absolute.stat().st_size)
            return
        relative = self.repo_path(path)
        refuse_git_internals(relative)
        fmt, gz = require_format(relative)
        sha = await self.git.verify_rev(ref, what="ref")
        size_out = await self.git.run(["cat-file", "-s", f"{sha}:{relative}"], check=False)
        if size_out.returncode != 0:
            raise WorkspaceError(f"path {relative!r} does not exist at ref {ref!r}")
        size = int(size_out.text().strip() or 0)
        limit = self.options.max_ref_mb * 1024 * 1024
        if size > limit:
            raise WorkspaceError(
                f"{relative!r} at {ref!r} is {size / 1e6:.0f} MB, over the {self.options.max_ref_mb} MB limit "
                "for history reads ([data] max_ref_mb)"
            )
        blob = await self.git.run(["cat-file", "blob", f"{sha}:{relative}"], max_output=limit + 1)
        folder = tempfile.mkdtemp(prefix="onrecord-ref-")
        try:
            target = Path(folder) / Path(relative).name
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(blob.stdout)
            yield Source(relative, Path(os.path.realpath(target)), fmt, gz, size, ref)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def repo_path(self, path: str) -> str:
        """A path inside the repository, checked lexically (it may exist only in history)."""
        return self.workspace.history_path(path)


def refuse_git_internals(relative: str, what: str = "a dataset") -> None:
    if relative == ".git" or relative.startswith(".git/") or "/.git/" in f"/{relative}":
        raise WorkspaceError(f"path {relative!r} is inside .git, git's internal state; it is not {what}")
