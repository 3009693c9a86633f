"""Results of the deploy tools. Parts that quote a file are FileText: the content gate checks them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, Field

from common.budget import Envelope
from common.content import FileText

Status = Literal["pass", "warn", "fail", "skipped"]
Verdict = Literal["pass", "warn", "fail", "inconclusive"]
Severity = Literal["blocker", "advisory"]


class Evidence(FileText):
    """Where a check looked and what it saw: a file and line, or a command's output excerpt."""

    path: str | None = None
    line: int | None = None
    text: str = Field(default="", description="The line or output excerpt, secrets redacted")

    def content_paths(self) -> Iterable[str]:
        return [self.path] if self.path else []

    def withheld(self) -> Evidence:
        return Evidence(path=self.path, line=self.line, text="[withheld by policy]")


class Check(BaseModel):
    id: str
    title: str
    severity: Severity = Field(description="blocker: a failure blocks the release; advisory: it warns")
    status: Status
    summary: str = Field(description="What was found, in one sentence")
    evidence: list[Evidence] = Field(default_factory=list)
    fix: str | None = Field(default=None, description="How to make it pass")
    duration_s: float = 0.0


class Waiver(BaseModel):
    """A check the settings took out of the report or kept from blocking, and which file said so."""

    check: str
    how: Literal["disabled", "advisory"] = Field(
        description="disabled: not run; advisory: its failure warns instead of blocking"
    )
    source: str = Field(description="The settings file that says so")


class Readiness(Envelope):
    verdict: Verdict = Field(
        description="fail: a blocker failed; inconclusive: no failure but a check was skipped; "
        "warn: only advisory problems; pass: every check passed"
    )
    blocking: list[str] = Field(description="Ids of the failed blocker checks")
    counts: dict[str, int] = Field(description="Checks by status")
    base: str | None = Field(default=None, description="The revision the diff checks compared against")
    checks: list[Check]
    waived: list[Waiver] = Field(
        default_factory=list,
        description="Checks the settings disabled or made advisory, and the file that says so",
    )


class SecretFinding(FileText):
    rule: str
    path: str
    line: int
    where: str = Field(description="worktree, staged (index differs from the file), or a commit id")
    excerpt: str = Field(description="The line with the secret replaced by [REDACTED:rule]")
    fingerprint: str = Field(description="path:rule:line:hash; add it to the baseline to accept the finding")

    def withheld(self) -> SecretFinding:
        # The fingerprint's hash is of the secret: withheld with the line.
        return self.model_copy(
            update={"excerpt": "[withheld by policy]", "fingerprint": "[withheld by policy]"}
        )


class SecretScan(Envelope):
    scope: Literal["worktree", "history"]
    range: str | None = None
    findings: list[SecretFinding]
    files_scanned: int
    commits_scanned: int = 0
    skipped_files: int = Field(default=0, description="Files not scanned: the sum of the three below")
    skipped_binary: int = Field(default=0, description="Binary files")
    skipped_too_large: int = Field(default=0, description="Over [deploy] max_file_bytes")
    skipped_unreadable: int = Field(default=0, description="Unreadable files")
    not_scanned: list[str] = Field(
        default_factory=list, description="The first files too large or unreadable"
    )
    suppressed_by_baseline: int = 0
    suppressed_by_allowlist: int = Field(default=0, description="Matches the allowlist says are not secrets")
    rules: int = Field(description="Rules applied")
    gitleaks: str = Field(description="ran (its findings merged), or skipped and why")
    ignored_settings: list[str] = Field(
        default_factory=list,
        description="Rule file or baseline parts ignored: they would let secrets through",
    )


class DockerFinding(FileText):
    rule: str
    severity: Literal["error", "warning", "info"]
    path: str
    line: int | None = None
    message: str
    fix: str | None = None
    source: Literal["onrecord", "hadolint"] = "onrecord"


class DockerfileReport(Envelope):
    path: str
    verdict: Literal["pass", "warn", "fail"]
    findings: list[DockerFinding]
    hadolint: str = Field(description="ran, or skipped and why")


class ConfigProblem(FileText):
    path: str
    line: int | None = None
    kind: Literal["parse_error", "env_drift", "k8s_probes", "k8s_resources", "k8s_latest_image"]
    message: str
    fix: str | None = None
    compared_with: list[str] = Field(
        default_factory=list,
        description="Other files the message quotes (env drift)",
    )

    def content_paths(self) -> Iterable[str]:
        return [self.path, *self.compared_with]


class ConfigReport(Envelope):
    verdict: Literal["pass", "warn", "fail"]
    files_checked: int
    problems: list[ConfigProblem]


class Hop(BaseModel):
    url: str
    status: int
    address: str = Field(description="The IP address connected to (resolved once, pinned)")
    location: str | None = None


class HttpCheck(Envelope):
    url: str
    verdict: Literal["pass", "fail"]
    problems: list[str] = Field(description="Why the verdict is fail; empty on pass")
    status: int | None = None
    address: str | None = None
    latency_ms: dict[str, float] = Field(
        default_factory=dict, description="connect, tls, first_byte and total, where measured"
    )
    redirects: list[Hop] = Field(default_factory=list)
    tls_days_left: int | None = None
    tls_expires: str | None = None
    health_status: str | None = Field(default=None, description="`status` of an application/health+json body")
    contains_found: bool | None = None
    body_bytes: int = 0
    body_truncated: bool = False


class ChecklistItem(BaseModel):
    id: str
    question: str
    status: Literal["answered", "open"]
    answer: str | None = Field(default=None, description="The file or link that answers it")
    how: str = Field(description="How to answer it")


class Checklist(Envelope):
    items: list[ChecklistItem]
    open: list[str]
