"""What the deploy tools share: the root, its git, the `[deploy]` settings and the testing project."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from common import offload
from common.budget import CHARS_PER_TOKEN, DEFAULT_MAX_TOKENS
from common.errors import OnrecordError
from common.git import Git
from common.workspace import Workspace
from servers.deploy.settings import DeploySettings
from servers.testing.project import Project

# Outside git, a walk skips what no deployment ships.
_SKIP_DIRS = frozenset({".git", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache", ".tox"})


class DeployError(OnrecordError):
    """A deploy tool could not do what was asked; the message says why and what to do."""


@dataclass
class DeployContext:
    workspace: Workspace
    git: Git
    options: DeploySettings
    project: Project  # the testing server's view of the same root: tests and lint run through it
    max_tokens: int = DEFAULT_MAX_TOKENS
    # `[deploy]` key -> (file, scope) that set it; a key that is not here has its default.
    sources: dict[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        root: Path,
        project: Project,
        options: DeploySettings | None = None,
        *,
        hidden: list[Path] | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        sources: dict[str, tuple[str, str]] | None = None,
    ) -> DeployContext:
        workspace = Workspace(root, hidden=hidden or [])
        return cls(
            workspace, Git(workspace.root), options or DeploySettings(), project, max_tokens, sources or {}
        )

    def from_project(self, key: str) -> bool:
        """Whether the project's own file (not the humans') set `[deploy] key`."""
        return key in self.sources and self.sources[key][1] == "project"

    def source(self, key: str) -> str:
        """The file that set `[deploy] key`, for a reader of the result."""
        return self.sources[key][0] if key in self.sources else "the default"

    @property
    def root(self) -> Path:
        return self.workspace.root

    @property
    def max_chars(self) -> int:
        return int(self.max_tokens * CHARS_PER_TOKEN * 0.9)

    async def in_git(self) -> bool:
        """Whether the root is inside a git work tree."""
        try:
            result = await self.git.run(["rev-parse", "--is-inside-work-tree"], check=False)
        except OnrecordError:
            return False
        return result.returncode == 0 and result.text().strip() == "true"

    async def shipped_files(self) -> list[str]:
        """The files this checkout would ship, sorted: tracked and untracked-not-ignored in git;
        outside git, every file but tool caches and environments."""
        if await self.in_git():
            listed = await self.git.run(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
            return sorted({n for n in listed.text().split("\0") if n})
        return await offload.run(_walk, self.root)


def _walk(root: Path) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        rel = Path(folder).relative_to(root)
        found += [(rel / f).as_posix() for f in sorted(files)]
    return found
