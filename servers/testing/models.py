"""Result models of the testing tools."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from common.budget import Envelope

RunStatus = Literal["passed", "failed", "error", "timeout", "no_tests", "interrupted"]


class CollectError(BaseModel):
    nodeid: str
    message: str


class Discovery(Envelope):
    interpreter: str
    node_ids: list[str]
    collection_errors: list[CollectError] = Field(default_factory=list)


class Counts(BaseModel):
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    xfailed: int = 0
    xpassed: int = 0
    total: int = 0


class Failure(BaseModel):
    node_id: str
    kind: Literal["failed", "error", "collection_error"]
    phase: str | None = Field(default=None, description="setup, call or teardown")
    message: str
    location: str | None = Field(default=None, description="path:line where it was raised")
    traceback: str = Field(default="", description="The last lines of the traceback")


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


class FileDiagnostics(BaseModel):
    path: str
    diagnostics: list[Diagnostic]


class LintResult(Envelope):
    counts_by_rule: dict[str, int]
    files: list[FileDiagnostics]
    fixed: int = 0
    fix_diff: str | None = Field(default=None, description="What fix=True changed, as a bounded diff")
    tool: str


class FormatResult(Envelope):
    would_reformat: list[str]
    diff: str = ""
    tool: str


class FlakyRun(BaseModel):
    run_id: str
    outcome: str
    duration_s: float


class FlakyResult(Envelope):
    node_id: str
    runs: list[FlakyRun]
    verdict: Literal["stable_pass", "stable_fail", "flaky", "not_run"]
    history_flaky_rate: float | None = None


class HistoryEntry(BaseModel):
    run_id: str
    started: str
    outcome: str
    head: str | None
    dirty: bool | None


class HistoryResult(Envelope):
    node_id: str
    runs: list[HistoryEntry]
    flaky_rate: float | None = Field(description="Share of outcome changes between consecutive runs")
    pass_rate: float | None
