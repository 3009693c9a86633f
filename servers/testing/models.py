"""Result models of the testing tools."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, Field

from common.budget import Envelope
from common.content import WITHHELD, FileText, quoted_files

RunStatus = Literal["passed", "failed", "error", "timeout", "no_tests", "interrupted"]


class CollectError(FileText):
    nodeid: str
    message: str = Field(description="The exception, e.g. \"ModuleNotFoundError: No module named 'x'\"")
    location: str | None = Field(default=None, description="path:line in the project where it was raised")
    traceback: str = Field(default="", description="The project's frames of the traceback")

    def content_paths(self) -> Iterable[str]:
        files = [self.nodeid.split("::", 1)[0]]
        if self.location:
            files.append(self.location.rsplit(":", 1)[0])
        return files + quoted_files(self.message, self.traceback)

    def withheld(self) -> CollectError:
        return CollectError(nodeid=self.nodeid, message=WITHHELD)


class Discovery(Envelope):
    interpreter: str
    node_ids: list[str]
    collection_errors: list[CollectError] = Field(default_factory=list)


class Counts(BaseModel):
    """Tests by outcome, counted as pytest's junit XML counts them; `tests` is all of them."""

    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    xfailed: int = 0
    xpassed: int = 0
    tests: int = 0


class Failure(FileText):
    node_id: str
    kind: Literal["failed", "error", "collection_error"]
    phase: str | None = Field(default=None, description="collect, setup, call or teardown")
    message: str
    location: str | None = Field(default=None, description="path:line where it was raised")
    traceback: str = Field(default="", description="The last lines of the traceback")

    def content_paths(self) -> Iterable[str]:
        files = [self.node_id.split("::", 1)[0]]
        if self.location:
            files.append(self.location.rsplit(":", 1)[0])
        return files + quoted_files(self.traceback, self.message)

    def withheld(self) -> Failure:
        # The test still failed: say so, without the text that quotes the file.
        return self.model_copy(update={"message": WITHHELD, "traceback": ""})


class FailureGroup(BaseModel):
    cause: str = Field(description="Exception type and message shared by the group")
    location: str | None
    count: int
    node_ids: list[str] = Field(description="The first few members")


class Slow(BaseModel):
    node_id: str
    duration_s: float


class RunResult(Envelope):
    status: RunStatus
    counts: Counts
    failures: list[Failure] = Field(default_factory=list)
    failure_groups: list[FailureGroup] = Field(default_factory=list)
    slowest: list[Slow] = Field(default_factory=list)
    duration_s: float
    run_id: str
    report: str = Field(description="Path of the full JSONL event report of this run")
    interpreter: str
    running_at_timeout: str | None = Field(default=None, description="The test running when time ran out")
    exit_code: int | None = None
    stderr_tail: str | None = Field(
        default=None, description="pytest's own error output, when it failed to run"
    )


class Selected(BaseModel):
    path: str
    reasons: list[str]


class AffectedResult(Envelope):
    base: str
    changed: list[str]
    selected: list[Selected]
    run: RunResult | None = None


class Diagnostic(BaseModel):
    code: str | None
    message: str
    line: int | None
    column: int | None
    fixable: bool = False


class FileDiagnostics(FileText):
    path: str
    diagnostics: list[Diagnostic]


class FileDiff(FileText):
    path: str
    diff: str


class LintResult(Envelope):
    counts_by_rule: dict[str, int]
    files: list[FileDiagnostics]
    tool: str


class FixResult(Envelope):
    fixed: int = Field(description="How many diagnostics the fixes resolved")
    diffs: list[FileDiff] = Field(description="What the fixes changed, per file, bounded")
    remaining: LintResult = Field(description="The diagnostics left after fixing")


class FormatResult(Envelope):
    would_reformat: list[str]
    diffs: list[FileDiff] = Field(default_factory=list, description="What ruff format would change, per file")
    tool: str


class FlakyRun(BaseModel):
    run_id: str
    outcome: str
    duration_s: float


class FlakyResult(Envelope):
    node_id: str
    runs: list[FlakyRun]
    verdict: Literal["stable_pass", "stable_fail", "flaky", "not_run"]
    history_flaky_rate: float | None = Field(
        default=None,
        description="test_history's flaky_rate: recorded runs of the same commit on a clean tree",
    )


class HistoryEntry(BaseModel):
    run_id: str
    started: str
    outcome: str
    head: str | None
    dirty: bool | None


class HistoryResult(Envelope):
    node_id: str
    runs: list[HistoryEntry] = Field(description="Runs on a committed, clean tree, newest first")
    dirty_runs: list[HistoryEntry] = Field(
        description="Runs on uncommitted changes or outside git, newest first: they count in no rate"
    )
    flaky_rate: float | None = Field(
        description="Share of consecutive runs of the same commit on a clean tree whose pass/fail "
        "differs; null without two such runs"
    )
    flaky_pairs: int = Field(description="How many consecutive same-commit pairs flaky_rate rests on")
    pass_rate: float | None = Field(description="Share of clean-tree runs that passed (xfail/skip left out)")
