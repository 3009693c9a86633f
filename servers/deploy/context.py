"""What the deploy tools share: the root, its git, the `[deploy]` settings and the testing project."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.budget import CHARS_PER_TOKEN, DEFAULT_MAX_TOKENS
from common.git import Git
from common.workspace import Workspace
from servers.deploy.settings import DeploySettings
from servers.testing.project import Project


@dataclass
class DeployContext:
    workspace: Workspace
    git: Git
    options: DeploySettings
    project: Project  # the testing server's view of the same root: tests and lint run through it
    max_tokens: int = DEFAULT_MAX_TOKENS

    @classmethod
    def create(
        cls,
        root: Path,
        project: Project,
        options: DeploySettings | None = None,
        *,
        hidden: list[Path] | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> DeployContext:
        workspace = Workspace(root, hidden=hidden or [])
        return cls(workspace, Git(workspace.root), options or DeploySettings(), project, max_tokens)

    @property
    def root(self) -> Path:
        return self.workspace.root

    @property
    def max_chars(self) -> int:
        return int(self.max_tokens * CHARS_PER_TOKEN * 0.9)
