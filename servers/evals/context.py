"""What the evals tools share: the root, its git, the eval store and the `[evals]` settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.budget import CHARS_PER_TOKEN, DEFAULT_MAX_TOKENS
from common.errors import OnrecordError
from common.git import Git
from common.workspace import Workspace
from servers.evals.settings import EvalsSettings
from servers.evals.store import Store


@dataclass
class EvalsContext:
    workspace: Workspace
    git: Git
    store: Store
    options: EvalsSettings
    max_tokens: int = DEFAULT_MAX_TOKENS

    @classmethod
    def create(
        cls,
        root: Path,
        options: EvalsSettings | None = None,
        *,
        hidden: list[Path] | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> EvalsContext:
        workspace = Workspace(root, hidden=hidden or [])
        options = options or EvalsSettings()
        return cls(
            workspace, Git(workspace.root), Store.create(workspace, options.store), options, max_tokens
        )

    @property
    def max_chars(self) -> int:
        return int(self.max_tokens * CHARS_PER_TOKEN * 0.9)

    async def git_state(self) -> tuple[str | None, bool | None]:
        """HEAD, and whether the work tree differs from it (a tracked change, or an untracked file
        that is not ignored); the eval store's own files do not count. (None, None) outside git."""
        try:
            head = await self.git.head()
            status = await self.git.run(
                ["status", "--porcelain=v1", "-z", "--untracked-files=all"], check=False
            )
        except OnrecordError:
            return None, None
        if status.returncode != 0:
            return head, None
        store = self.store.relative.rstrip("/") + "/"
        changed = [e[3:] for e in status.text().split("\0") if len(e) > 3]
        return head, any(not (name + "/").startswith(store) for name in changed if name)
