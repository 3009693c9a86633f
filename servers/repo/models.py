"""Result models of the repo tools: every one carries the envelope (DESIGN §5)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from common.budget import Envelope
from common.content import FileText


class Entry(BaseModel):
    path: str
    type: Literal["file", "dir", "symlink"]
    size: int | None = Field(default=None, description="Bytes; for a dir cut off by max_depth, None")
    files: int | None = Field(default=None, description="For a dir cut off by max_depth: files under it")


class FileList(Envelope):
    root: str
    entries: list[Entry]


class FileContent(Envelope, FileText):
    path: str
    ref: str | None = None
    size: int
    binary: bool = False
    encoding: str | None = None
    total_lines: int | None = None
    start_line: int | None = None
    end_line: int | None = None
    next_start_line: int | None = Field(default=None, description="Pass as start_line to continue reading")
    content: str = Field(default="", description="The lines, each prefixed by its number and a tab")


class Match(BaseModel):
    line: int
    text: str
    before: list[str] = Field(default_factory=list)
    after: list[str] = Field(default_factory=list)


class FileMatches(FileText):
    path: str
    matches: list[Match]


class SearchResult(Envelope):
    query: str
    files: list[FileMatches]


class Commit(BaseModel):
    sha: str
    author: str
    email: str
    date: str
    subject: str
    files: list[FileStat] = Field(default_factory=list)
    files_omitted: int = 0


FileStatus = Literal["added", "modified", "deleted", "renamed", "copied", "type_changed", "unmerged"]


class FileStat(BaseModel):
    path: str
    status: FileStatus = Field(description="What happened to the file, as git states it")
    old_path: str | None = Field(default=None, description="The path before a rename or copy")
    added: int | None = Field(default=None, description="Lines added; None for binary files")
    deleted: int | None = Field(default=None, description="Lines deleted; None for binary files")


class LogResult(Envelope):
    commits: list[Commit]


class StatusResult(Envelope):
    branch: str | None = Field(description="The branch checked out; None when detached or unborn")
    detached: bool = Field(default=False, description="True when HEAD is detached (no branch)")
    head: str | None
    counts: dict[str, int] = Field(
        default_factory=dict, description="Exact counts, whatever the lists below leave out"
    )
    untracked_folders: dict[str, int] = Field(
        default_factory=dict,
        description="Untracked folders shown collapsed ('.venv/'), with their file counts",
    )
    upstream: str | None = None
    ahead: int | None = None
    behind: int | None = None
    staged: list[FileStat]
    unstaged: list[FileStat]
    untracked: list[str]
    conflicted: list[str] = Field(default_factory=list)


class Hunk(FileText):
    path: str
    old_path: str | None = Field(default=None, description="The path before a rename or copy")
    header: str
    text: str

    def content_paths(self) -> list[str]:
        return [self.path, self.old_path] if self.old_path else [self.path]


class DiffResult(Envelope):
    base: str | None
    target: str | None
    files: list[FileStat]
    hunks: list[Hunk]
    files_left_out: list[str] = Field(default_factory=list)


class ShowResult(Envelope):
    sha: str
    author: str | None = None
    email: str | None = None
    date: str | None = None
    message: str | None = None
    parents: list[str] = Field(default_factory=list)
    files: list[FileStat] = Field(default_factory=list)
    hunks: list[Hunk] = Field(default_factory=list)
    files_left_out: list[str] = Field(default_factory=list)
    file: FileContent | None = None


class BlameCommit(BaseModel):
    sha: str
    author: str
    date: str
    summary: str


class BlameRange(BaseModel):
    start_line: int
    end_line: int
    sha: str
    lines: list[str]


class BlameResult(Envelope, FileText):
    path: str
    rev: str | None
    commits: dict[str, BlameCommit]
    ranges: list[BlameRange]
    next_start_line: int | None = None


class Symbol(FileText):
    kind: str
    name: str
    qualified_name: str
    start_line: int
    end_line: int
    signature: str | None = None
    doc: str | None = None
    path: str | None = None


class OutlineResult(Envelope, FileText):
    path: str
    language: str | None
    exact: bool = Field(description="True when symbols come from a real parser (Python ast)")
    symbols: list[Symbol]


class Reference(FileText):
    path: str
    line: int
    text: str


class SymbolResult(Envelope):
    name: str
    definitions: list[Symbol]
    references: list[Reference] = Field(default_factory=list)


class Related(BaseModel):
    path: str
    score: float
    reasons: list[str]


class RelatedResult(Envelope):
    path: str
    related: list[Related]


class Overview(Envelope):
    root: str
    branch: str | None
    detached: bool = False
    head: str | None
    dirty: dict[str, int]
    languages: dict[str, int] = Field(description="Bytes of tracked files by language, largest first")
    top_level: list[Entry]
    key_files: dict[str, list[str]]
    tests: dict[str, object]
    last_commits: list[Commit]
    files_tracked: int = Field(description="git ls-files --cached: tracked files, exactly")
    exact: bool = Field(
        default=True,
        description="Every count is exact; false when the policy withheld files from languages, top_level and tests",
    )
    remotes: dict[str, str] = Field(
        default_factory=dict, description="Remote name -> URL; credentials in URLs are replaced by [REDACTED]"
    )


Commit.model_rebuild()
