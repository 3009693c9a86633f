"""What every repo tool needs: the workspace, git, the output budget and the policy's path filter."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.budget import CHARS_PER_TOKEN, DEFAULT_MAX_TOKENS
from common.git import Git, GitError
from common.visible import visible_lines
from common.workspace import Workspace

BINARY_SNIFF = 8192


@dataclass
class RepoContext:
    root: Path
    workspace: Workspace
    git: Git
    max_tokens: int = DEFAULT_MAX_TOKENS

    @classmethod
    def create(
        cls,
        root: Path | str,
        *,
        hidden: list[Path] | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> RepoContext:
        workspace = Workspace(root, hidden or [])
        return cls(workspace.root, workspace, Git(workspace.root), max_tokens)

    @property
    def max_chars(self) -> int:
        return int(self.max_tokens * CHARS_PER_TOKEN * 0.9)

    def has_git(self) -> bool:
        try:
            _ = self.git.git_dir
        except GitError:
            return False
        return True

    def repo_path(self, path: str) -> str:
        """A path inside the repository, checked lexically (it may exist only in history)."""
        return self.workspace.history_path(path)


# Make control characters visible (tabs and newlines are a file's own).
visible = visible_lines


def decode(data: bytes) -> tuple[str, str]:
    """Decode repository bytes, never failing: (text, encoding used)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace"), "utf-16"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), "utf-8 (invalid bytes replaced)"


def is_binary(data: bytes) -> bool:
    head = data[:BINARY_SNIFF]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False
    return b"\x00" in head
